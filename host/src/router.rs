//! The router: the one place that knows both events and plugins.
//!
//! [`Router::route`] decodes a record, finds the plugins subscribed to it,
//! runs each on the version current at that moment, checks what it emitted
//! against its config, and turns every emit into a [`Produced`] record with
//! the envelope the host fills in. It does no Kafka I/O: the test harness
//! and the Kafka source both drive it, so a fixture runs exactly as a live
//! record does.
//!
//! A plugin's state writes are committed atomically with its outputs (see
//! [`Router::run`]); the caller then produces the outputs.

use crate::config::PluginSpec;
use crate::engine::PluginVersion;
use crate::engine::{CallInput, Engine, Fault};
use crate::envelope::{self, DecodeError, EnvelopeStyle, HOP_HEADER, ID_NAMESPACE, Outgoing};
use crate::event::{Emit, Event, HandlerError, Header, Record};
use crate::registry::{Plugin, PluginRegistry};
use crate::state::{Commit, StateStore};
use serde_json::Value;
use std::sync::Arc;

/// The header naming the plugin that produced a record.
pub const PLUGIN_HEADER: &str = "switchyard-plugin";
/// The header naming the plugin version (content-hash prefix) that produced a record.
pub const VERSION_HEADER: &str = "switchyard-plugin-version";

/// A record ready to be produced.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Produced {
    /// The event type.
    pub ty: String,
    /// The payload, as the plugin returned it.
    pub data: Value,
    /// The destination topic.
    pub topic: String,
    /// The key.
    pub key: Option<String>,
    /// The headers.
    pub headers: Vec<Header>,
    /// The encoded value.
    #[serde(with = "base64_bytes")]
    pub value: Vec<u8>,
}

mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// Why a plugin did not handle an event.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Failure {
    /// The handler returned an error.
    #[error("{0}")]
    Handler(HandlerError),
    /// The call trapped, timed out or ran out of memory.
    #[error("{0}")]
    Fault(Fault),
    /// The plugin emitted a type its config does not allow.
    #[error("forbidden: emitted `{0}`, which its `emits` does not allow")]
    Forbidden(String),
    /// The plugin emitted something malformed.
    #[error("invalid emit: {0}")]
    InvalidEmit(String),
    /// The event already went through too many routing hops.
    #[error("loop: the event has gone through {0} routing hops; refusing to route it again")]
    Loop(u32),
    /// The state store failed.
    #[error("host: {0}")]
    State(String),
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
            Failure::Loop(_) => "loop",
            Failure::State(_) => "host",
        }
    }

    /// Whether retrying could help.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Failure::Handler(HandlerError::Retry(_)) | Failure::State(_)
        )
    }
}

/// What one plugin did with one event.
#[derive(Debug)]
pub struct PluginOutcome {
    /// The plugin.
    pub plugin: Arc<Plugin>,
    /// The version label it ran on.
    pub version: String,
    /// The event id.
    pub event_id: String,
    /// The records to produce, or why there are none.
    pub result: Result<Vec<Produced>, Failure>,
    /// The plugin had already processed this event id; nothing ran and
    /// `result` holds the records it produced then.
    pub duplicate: bool,
}

/// Routes decoded events to plugins.
pub struct Router {
    engine: Arc<Engine>,
    registry: Arc<PluginRegistry>,
    store: Arc<dyn StateStore>,
    max_hops: u32,
}

impl Router {
    /// A router over `registry`'s plugins, keeping state in `store`.
    pub fn new(
        engine: Arc<Engine>,
        registry: Arc<PluginRegistry>,
        store: Arc<dyn StateStore>,
        max_hops: u32,
    ) -> Self {
        Router {
            engine,
            registry,
            store,
            max_hops,
        }
    }

    /// The plugins.
    pub fn registry(&self) -> &Arc<PluginRegistry> {
        &self.registry
    }

    /// Decodes `record` and runs every subscribed plugin on it.
    pub fn route(&self, record: &Record) -> Result<Vec<PluginOutcome>, DecodeError> {
        let event = envelope::decode(record)?;
        Ok(self
            .registry
            .subscribers(&event.ty, &event.topic)
            .map(|plugin| self.run(plugin, &event))
            .collect())
    }

    /// Runs one plugin on one decoded event and commits its state.
    ///
    /// The state writes, the processed mark and the produced records are
    /// committed together before the records are handed back, so a crash
    /// between here and the produce acknowledgement is repaired on
    /// redelivery: the event is recognised and its stored records are
    /// returned again, byte for byte, without running the plugin.
    pub fn run(&self, plugin: &Arc<Plugin>, event: &Event) -> PluginOutcome {
        let version = plugin.current();
        let mut outcome = PluginOutcome {
            plugin: plugin.clone(),
            version: version.label().to_string(),
            event_id: event.id.clone(),
            result: Ok(Vec::new()),
            duplicate: false,
        };
        let spec = &plugin.spec;
        match self.store.processed(&spec.name, &event.id) {
            Ok(Some(outputs)) => {
                outcome.duplicate = true;
                outcome.result = serde_json::from_slice(&outputs)
                    .map_err(|e| Failure::State(format!("stored outputs are unreadable: {e}")));
                return outcome;
            }
            Ok(None) => {}
            Err(e) => {
                outcome.result = Err(Failure::State(format!("{e:#}")));
                return outcome;
            }
        }
        if event.hops >= self.max_hops {
            outcome.result = Err(Failure::Loop(event.hops));
            return outcome;
        }
        let _span = tracing::debug_span!("handle", plugin = %spec.name, version = %outcome.version,
            topic = %event.topic, partition = event.partition, offset = event.offset,
            event_id = %event.id, correlation_id = event.correlation_id.as_deref().unwrap_or(""))
        .entered();
        outcome.result = self.attempt(spec, &version, &outcome.version, event);
        outcome
    }

    /// Calls the plugin and commits, running it again when a concurrent
    /// commit changed what it read.
    fn attempt(
        &self,
        spec: &PluginSpec,
        version: &PluginVersion,
        label: &str,
        event: &Event,
    ) -> Result<Vec<Produced>, Failure> {
        const MAX_CONFLICTS: usize = 32;
        for _ in 0..MAX_CONFLICTS {
            let input = CallInput {
                store: &self.store,
                config: &spec.config,
                limits: spec.limits,
            };
            let call = self
                .engine
                .call(version, event, input)
                .map_err(Failure::Fault)?;
            let emits = call.result.map_err(Failure::Handler)?;
            let produced = emits
                .into_iter()
                .enumerate()
                .map(|(i, emit)| produce(spec, label, event, i, emit))
                .collect::<Result<Vec<_>, _>>()?;
            let outputs = serde_json::to_vec(&produced).expect("records serialize");
            match self
                .store
                .commit(&spec.name, &event.id, &call.reads, &call.writes, &outputs)
            {
                Ok(Commit::Done) => return Ok(produced),
                Ok(Commit::Conflict) => continue,
                Err(e) => return Err(Failure::State(format!("{e:#}"))),
            }
        }
        Err(Failure::State(format!(
            "state kept changing under the plugin ({MAX_CONFLICTS} conflicting commits)"
        )))
    }
}

/// Checks one emit against the plugin's config and wraps it in its envelope.
fn produce(
    spec: &PluginSpec,
    version: &str,
    cause: &Event,
    index: usize,
    emit: Emit,
) -> Result<Produced, Failure> {
    if !spec.emits.matches(&emit.ty) {
        return Err(Failure::Forbidden(emit.ty));
    }
    let data: Value = serde_json::from_str(&emit.data)
        .map_err(|e| Failure::InvalidEmit(format!("`{}` data is not JSON: {e}", emit.ty)))?;
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
    headers.extend(emit.headers);
    headers.push(Header::new(HOP_HEADER, (cause.hops + 1).to_string()));
    headers.push(Header::new(PLUGIN_HEADER, spec.name.clone()));
    headers.push(Header::new(VERSION_HEADER, version));
    Ok(Produced {
        ty: emit.ty,
        data,
        topic,
        key,
        headers,
        value,
    })
}
