//! The per-record path, and the one place that knows both events and plugins.
//!
//! [`Router::route`] takes one record through everything that is not I/O:
//! skip excluded topics, decode the envelope, find the subscribed plugins,
//! run each on the version current at that moment (on a warm instance from
//! [`Instances`]), check what it emitted against its config and wrap every
//! emit into an [`OutRecord`]. [`Router::run_batch`] does that for a
//! partition's batch in order, each record seeing the state the ones before
//! it wrote, and stops at the first record that must wait ([`next_step`], a
//! pure retry policy). The test harness calls [`Router::route`], the live
//! partition workers [`Router::run_batch`] (which calls `route`), so a
//! fixture's record runs the same per-record code as a live one; the
//! harness does not go through `run_batch`'s retry policy (a fixture's
//! `retry` error is checked as the error it is). Neither does Kafka I/O nor
//! commits state: the caller commits the [`Effect`]s and produces the
//! records.

use crate::config::{Isolation, KafkaConfig, Matcher, PluginSpec};
use crate::engine::{CallInput, CallOutput, Engine, Fault, Instance, PluginVersion};
use crate::envelope::{self, DecodeError, EnvelopeStyle, HOP_HEADER, ID_NAMESPACE, Outgoing};
use crate::event::{Emit, Event, HandlerError, Header, OutRecord, Record};
use crate::registry::{Plugin, PluginRegistry};
use crate::state::{BatchView, Effect, RecordEffects, StateRead, StateStore};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The header naming the plugin that produced a record.
pub const PLUGIN_HEADER: &str = "switchyard-plugin";
/// The header naming the plugin version (content-hash prefix) that produced a record.
pub const VERSION_HEADER: &str = "switchyard-plugin-version";
/// Emitted headers with these prefixes are the host's and are dropped from
/// emits, so a plugin cannot forge hop counts, versions or CloudEvents
/// attributes.
pub const RESERVED_HEADER_PREFIXES: [&str; 2] = ["switchyard-", "ce_"];

/// Why a plugin did not handle an event.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Failure {
    /// The handler returned an error.
    #[error("{0}")]
    Handler(HandlerError),
    /// The call trapped, timed out or ran out of memory, or the host failed.
    #[error("{0}")]
    Fault(Fault),
    /// The plugin emitted a type its config does not allow.
    #[error("forbidden: emitted `{0}`, which its `emits` does not allow")]
    Forbidden(String),
    /// The plugin emitted something malformed, oversized or to a bad topic.
    #[error("invalid emit: {0}")]
    InvalidEmit(String),
    /// An emit's data does not match the plugin's schema for its type.
    #[error("schema: {0}")]
    Schema(String),
    /// The record's key is not the value of the data field the plugin's
    /// inputs are keyed by (`input_key_field`).
    #[error("key: {0}")]
    Key(String),
    /// The event already went through too many routing hops.
    #[error("loop: the event has gone through {0} routing hops; refusing to route it again")]
    Loop(u32),
    /// The state store failed.
    #[error("host: {0}")]
    State(String),
    /// The plugin is paused by an operator.
    #[error("paused")]
    Paused,
}

impl Failure {
    /// The error class for logs, dead-letter headers and metrics.
    pub fn class(&self) -> &'static str {
        match self {
            Failure::Handler(HandlerError::Retry(_)) => "retry",
            Failure::Handler(HandlerError::Reject(_)) => "reject",
            Failure::Fault(f) => f.class(),
            Failure::Forbidden(_) => "forbidden",
            Failure::InvalidEmit(_) => "invalid-emit",
            Failure::Schema(_) => "schema",
            Failure::Key(_) => "key",
            Failure::Loop(_) => "loop",
            Failure::State(_) => "host",
            Failure::Paused => "paused",
        }
    }
}

/// Whether a record's key, when it has one, is the value of its data's
/// `field` (a string, or a number or boolean as JSON text). A key that
/// names another entity would put this entity's events on a partition
/// where their order is not kept, so such a record is refused rather than
/// handled out of order. A record without a key passes.
fn key_matches(event: &Event, field: &str) -> Result<(), String> {
    let Some(key) = &event.key else {
        return Ok(());
    };
    let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
    let value = match data.get(field) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => Some(v.to_string()),
        _ => None,
    };
    match value {
        Some(value) if &value == key => Ok(()),
        Some(value) => Err(format!(
            "the record's key {key:?} does not match its data's `{field}` {value:?}; fix the producer's key"
        )),
        None => Err(format!(
            "the record is keyed {key:?} but its data has no `{field}` to match; fix the producer or `input_key_field`"
        )),
    }
}

/// What to do after a failure: the pure retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Dead-letter the record for this plugin and move on.
    DeadLetter,
    /// Run the record again after this delay (the partition waits).
    RetryAfter(Duration),
}

/// The retry policy: `retry` from the handler backs off up to
/// `max_retries`, then dead-letters; a paused plugin, a failing store or a
/// busy host wait and retry without limit (they say nothing about the
/// event); everything else is permanent and dead-letters at once.
pub fn next_step(failure: &Failure, attempt: u32, kafka: &KafkaConfig) -> Next {
    match failure {
        Failure::Handler(HandlerError::Retry(_)) if attempt <= kafka.max_retries => {
            Next::RetryAfter(kafka.backoff(attempt))
        }
        Failure::Paused => Next::RetryAfter(Duration::from_millis(100)),
        Failure::State(_) => Next::RetryAfter(kafka.backoff(attempt)),
        Failure::Fault(f) if f.is_transient() => Next::RetryAfter(kafka.backoff(attempt)),
        _ => Next::DeadLetter,
    }
}

/// What one plugin did with one event.
#[derive(Debug)]
pub struct PluginCall {
    /// The plugin.
    pub plugin: Arc<Plugin>,
    /// The version label it ran on.
    pub version: String,
    /// The records to produce, or why there are none.
    pub result: Result<Vec<OutRecord>, Failure>,
    /// The plugin had already processed this event id; nothing ran and
    /// `result` holds the records it produced then.
    pub duplicate: bool,
    /// What it did to state, to commit (none for duplicates and failures).
    pub effect: Option<Effect>,
    /// How long the call took.
    pub took: Duration,
}

/// What became of one record.
#[derive(Debug)]
pub enum RecordOutcome {
    /// Not for the router: an excluded topic, or a record that does not
    /// decode on a topic no plugin could want. Counted, not dead-lettered.
    Skipped(String),
    /// It does not decode, on a topic a plugin may consume: dead-letter it.
    Undecodable(DecodeError),
    /// Decoded and handed to every subscriber.
    Routed {
        /// The event's type.
        ty: String,
        /// The event's id.
        id: String,
        /// One entry per subscribed plugin, in config order.
        calls: Vec<PluginCall>,
    },
}

impl RecordOutcome {
    /// The state effects of this record, in plugin order.
    pub fn effect_refs(&self) -> impl Iterator<Item = &Effect> {
        let calls: &[PluginCall] = match self {
            RecordOutcome::Routed { calls, .. } => calls,
            _ => &[],
        };
        calls.iter().filter_map(|c| c.effect.as_ref())
    }

    /// The state effects to commit for this record.
    pub fn effects(&self) -> RecordEffects {
        self.effect_refs().cloned().collect()
    }
}

/// A record that stopped its batch: it must wait and run again.
#[derive(Debug)]
pub struct Stop {
    /// The plugin that failed.
    pub plugin: String,
    /// Why.
    pub failure: Failure,
    /// How long to wait.
    pub delay: Duration,
}

/// What [`Router::run_batch`] did.
#[derive(Debug)]
pub struct BatchRun {
    /// The outcomes of the records that completed, from the first, in order.
    pub done: Vec<RecordOutcome>,
    /// Why the record after them must wait, if one must.
    pub stop: Option<Stop>,
}

/// One worker's warm instances, one per plugin.
pub struct Instances {
    engine: Arc<Engine>,
    warm: HashMap<String, Instance>,
}

impl Instances {
    /// No warm instances yet.
    pub fn new(engine: Arc<Engine>) -> Self {
        Instances {
            engine,
            warm: HashMap::new(),
        }
    }

    /// Calls `version` of `plugin`: on its warm instance (made, or replaced
    /// when the version changed or it is worn out), or on a fresh one for
    /// `isolation = "per-event"`. A faulted instance is dropped.
    fn call(
        &mut self,
        spec: &PluginSpec,
        version: &PluginVersion,
        event: &Event,
        input: CallInput<'_>,
    ) -> Result<CallOutput, Fault> {
        if spec.isolation == Isolation::PerEvent {
            return self.engine.call(version, event, input);
        }
        let stale = self
            .warm
            .get(&spec.name)
            .is_none_or(|i| i.hash() != version.hash || i.worn_out());
        if stale {
            // Free the old slot before taking a new one.
            self.warm.remove(&spec.name);
            let instance = self.engine.instantiate(version)?;
            self.warm.insert(spec.name.clone(), instance);
        }
        let instance = self.warm.get_mut(&spec.name).expect("just inserted");
        let result = instance.call(event, input);
        if result.is_err() {
            self.warm.remove(&spec.name);
        }
        result
    }
}

/// Routes records to plugins.
pub struct Router {
    registry: Arc<PluginRegistry>,
    exclude: Matcher,
    max_hops: u32,
    max_record_bytes: usize,
    /// Topics on which an event was routed to a plugin.
    learned: std::sync::RwLock<std::collections::HashSet<String>>,
}

impl Router {
    /// A router over `registry`'s plugins.
    pub fn new(
        registry: Arc<PluginRegistry>,
        exclude: Matcher,
        max_hops: u32,
        max_record_bytes: usize,
    ) -> Self {
        Router {
            registry,
            exclude,
            max_hops,
            max_record_bytes,
            learned: Default::default(),
        }
    }

    /// Marks `topic` as one plugins consume, so that a record on it that
    /// does not decode is dead-lettered rather than skipped.
    pub fn learn(&self, topic: &str) {
        if !self.learned.read().expect("learned lock").contains(topic) {
            self.learned
                .write()
                .expect("learned lock")
                .insert(topic.to_string());
        }
    }

    /// The plugins.
    pub fn registry(&self) -> &Arc<PluginRegistry> {
        &self.registry
    }

    /// Whether a record on `topic` that does not decode is worth a dead
    /// letter: some plugin names the topic by a topic glob, or subscribes to
    /// an event type spelled exactly like it (the catalogs name topics after
    /// event types), or an event on it was routed to a plugin since the
    /// router started. Other topics (Avro, `_schemas`, connectors) are
    /// counted and skipped.
    fn wanted(&self, topic: &str) -> bool {
        self.learned.read().expect("learned lock").contains(topic)
            || self.registry.plugins().iter().any(|p| {
                p.spec.topics.matches(topic) || p.spec.types.patterns().iter().any(|t| t == topic)
            })
    }

    /// Takes one record through every subscribed plugin, reading state
    /// through `view`. Nothing is committed.
    pub fn route(
        &self,
        record: &Record,
        view: &Arc<BatchView>,
        instances: &mut Instances,
    ) -> RecordOutcome {
        if self.exclude.matches(&record.topic) {
            return RecordOutcome::Skipped("excluded topic".into());
        }
        let event = match envelope::decode(record) {
            Ok(event) => event,
            Err(e) if self.wanted(&record.topic) => return RecordOutcome::Undecodable(e),
            Err(e) => return RecordOutcome::Skipped(format!("no plugin consumes it, and {e}")),
        };
        let calls: Vec<PluginCall> = self
            .registry
            .subscribers(&event.ty, &event.topic)
            .map(|plugin| self.run(plugin, &event, view, instances))
            .collect();
        if !calls.is_empty() {
            self.learn(&event.topic);
        }
        RecordOutcome::Routed {
            ty: event.ty,
            id: event.id,
            calls,
        }
    }

    /// Runs `records` in order, each seeing the state written by the ones
    /// before it, until one must wait (the first record counts as attempt
    /// `attempt`, the others as their first).
    pub fn run_batch(
        &self,
        records: &[Record],
        attempt: u32,
        store: &Arc<dyn StateStore>,
        instances: &mut Instances,
        kafka: &KafkaConfig,
    ) -> BatchRun {
        let view = Arc::new(BatchView::new(store.clone()));
        if store.remote() {
            // One round trip for the batch's processed marks instead of one
            // per record; it costs a second decode, so only for a remote store.
            let keys: Vec<(String, String)> = records
                .iter()
                .filter(|r| !self.exclude.matches(&r.topic))
                .filter_map(|r| envelope::decode(r).ok())
                .flat_map(|e| {
                    self.registry
                        .subscribers(&e.ty, &e.topic)
                        .map(|p| (p.spec.name.clone(), e.id.clone()))
                        .collect::<Vec<_>>()
                })
                .collect();
            if let Err(e) = view.prefetch(keys) {
                tracing::debug!("prefetching processed marks: {e:#}");
            }
        }
        let mut done = Vec::with_capacity(records.len());
        for (i, record) in records.iter().enumerate() {
            let outcome = self.route(record, &view, instances);
            if let RecordOutcome::Routed { calls, .. } = &outcome {
                let attempt = if i == 0 { attempt } else { 1 };
                let waiting = calls.iter().find_map(|c| {
                    let failure = c.result.as_ref().err()?;
                    match next_step(failure, attempt, kafka) {
                        Next::RetryAfter(delay) => Some(Stop {
                            plugin: c.plugin.spec.name.clone(),
                            failure: failure.clone(),
                            delay,
                        }),
                        Next::DeadLetter => None,
                    }
                });
                if let Some(stop) = waiting {
                    return BatchRun {
                        done,
                        stop: Some(stop),
                    };
                }
            }
            view.apply(outcome.effect_refs());
            done.push(outcome);
        }
        BatchRun { done, stop: None }
    }

    /// Runs one plugin on one decoded event, through `view`.
    fn run(
        &self,
        plugin: &Arc<Plugin>,
        event: &Event,
        view: &Arc<BatchView>,
        instances: &mut Instances,
    ) -> PluginCall {
        let version = plugin.current();
        let started = Instant::now();
        let mut call = PluginCall {
            plugin: plugin.clone(),
            version: version.label().to_string(),
            result: Ok(Vec::new()),
            duplicate: false,
            effect: None,
            took: Duration::ZERO,
        };
        let spec = &plugin.spec;
        if plugin.is_paused() {
            call.result = Err(Failure::Paused);
            return call;
        }
        match view.processed(&spec.name, &event.id) {
            Ok(Some(outputs)) => {
                call.duplicate = true;
                call.result = OutRecord::decode_all(&outputs).map_err(Failure::State);
                return call;
            }
            Ok(None) => {}
            Err(e) => {
                call.result = Err(Failure::State(format!("{e:#}")));
                return call;
            }
        }
        if event.hops >= self.max_hops {
            call.result = Err(Failure::Loop(event.hops));
            return call;
        }
        if let Some(field) = &spec.input_key_field
            && let Err(why) = key_matches(event, field)
        {
            call.result = Err(Failure::Key(why));
            return call;
        }
        let _span = tracing::debug_span!("handle", plugin = %spec.name, version = %call.version,
            topic = %event.topic, partition = event.partition, offset = event.offset,
            event_id = %event.id, correlation_id = event.correlation_id.as_deref().unwrap_or(""))
        .entered();
        let state: Arc<dyn StateRead> = view.clone();
        let input = CallInput {
            state: &state,
            config: &spec.config,
            limits: spec.limits,
        };
        let result = instances
            .call(spec, &version, event, input)
            .map_err(Failure::Fault)
            .and_then(|out| {
                let emits = out.result.map_err(Failure::Handler)?;
                let records = emits
                    .into_iter()
                    .enumerate()
                    .map(|(i, emit)| self.wrap(spec, &call.version, event, i, emit))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((records, out.reads, out.writes))
            });
        call.took = started.elapsed();
        match result {
            Ok((records, reads, writes)) => {
                call.effect = Some(Effect {
                    plugin: spec.name.clone(),
                    event_id: event.id.clone(),
                    reads,
                    writes,
                    outputs: OutRecord::encode_all(&records),
                });
                call.result = Ok(records);
            }
            Err(failure) => call.result = Err(failure),
        }
        call
    }

    /// Checks one emit against the plugin's config and the broker's limits,
    /// and wraps it in its envelope.
    fn wrap(
        &self,
        spec: &PluginSpec,
        version: &str,
        cause: &Event,
        index: usize,
        emit: Emit,
    ) -> Result<OutRecord, Failure> {
        if !spec.emits.matches(&emit.ty) {
            return Err(Failure::Forbidden(emit.ty));
        }
        let data: Value = serde_json::from_str(&emit.data)
            .map_err(|e| Failure::InvalidEmit(format!("`{}` data is not JSON: {e}", emit.ty)))?;
        if let Some(schemas) = &spec.schemas {
            schemas.check(&emit.ty, &data).map_err(Failure::Schema)?;
        }
        let key = emit.key.clone().or_else(|| {
            let field = spec.key_field.as_deref()?;
            match data.get(field)? {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            }
        });
        let topic = emit
            .topic
            .clone()
            .unwrap_or_else(|| spec.topic_for(&emit.ty));
        check_topic_name(&topic).map_err(|why| {
            Failure::InvalidEmit(format!(
                "`{}` goes to topic {topic:?}, which {why}",
                emit.ty
            ))
        })?;
        let id = uuid::Uuid::new_v5(
            &ID_NAMESPACE,
            format!("{}/{}/{index}", cause.id, spec.name).as_bytes(),
        )
        .to_string();
        let mut style = match spec.envelope {
            None => cause.style.clone(),
            Some(kind) if kind == cause.style.kind => cause.style.clone(),
            Some(kind) => EnvelopeStyle::of(kind),
        };
        if let Some(lift) = &spec.lift {
            style.lifted = lift.clone();
        }
        let correlation = cause.correlation_id.as_deref().unwrap_or(&cause.id);
        let out = Outgoing {
            id: &id,
            ty: &emit.ty,
            source: &spec.source,
            time: &cause.time,
            correlation_id: correlation,
            causation_id: &cause.id,
            subject: cause.subject.as_deref(),
            data: &data,
        };
        let (value, mut headers) = envelope::encode(&out, &style);
        headers.extend(emit.headers.into_iter().filter(|h| {
            !RESERVED_HEADER_PREFIXES
                .iter()
                .any(|p| h.key.to_ascii_lowercase().starts_with(p))
        }));
        headers.push(Header::new(HOP_HEADER, (cause.hops + 1).to_string()));
        headers.push(Header::new(PLUGIN_HEADER, spec.name.clone()));
        headers.push(Header::new(VERSION_HEADER, version));
        let record = OutRecord {
            topic,
            key: key.map(String::into_bytes),
            headers,
            value,
            tombstone: false,
        };
        if record.size() > self.max_record_bytes {
            return Err(Failure::InvalidEmit(format!(
                "`{}` is {} bytes, over the {}-byte record limit (`kafka.max_record_bytes`)",
                emit.ty,
                record.size(),
                self.max_record_bytes
            )));
        }
        Ok(record)
    }
}

/// Kafka's rule for topic names: 1 to 249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
fn check_topic_name(topic: &str) -> Result<(), &'static str> {
    if topic.is_empty() || topic.len() > 249 {
        return Err("must be 1 to 249 characters long");
    }
    if topic == "." || topic == ".." {
        return Err("is reserved");
    }
    if !topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("may only contain ASCII letters, digits, `.`, `_` and `-`");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(check_topic_name("payment.payment.succeeded").is_ok());
        assert!(check_topic_name("bad topic!").is_err());
        assert!(check_topic_name("").is_err());
        assert!(check_topic_name(&"x".repeat(250)).is_err());
    }

    #[test]
    fn retry_policy() {
        let kafka = KafkaConfig {
            max_retries: 2,
            ..KafkaConfig::default()
        };
        let retry = Failure::Handler(HandlerError::Retry("later".into()));
        assert!(matches!(next_step(&retry, 2, &kafka), Next::RetryAfter(_)));
        assert_eq!(next_step(&retry, 3, &kafka), Next::DeadLetter);
        let store = Failure::State("disk full".into());
        assert!(matches!(
            next_step(&store, 1000, &kafka),
            Next::RetryAfter(_)
        ));
        let trap = Failure::Fault(Fault::Trap("boom".into()));
        assert_eq!(next_step(&trap, 1, &kafka), Next::DeadLetter);
    }
}
