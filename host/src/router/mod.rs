//! The per-record path, and the one place that knows both events and plugins.
//!
//! [`Router::route`] takes one record through everything that is not I/O:
//! skip excluded topics, decode the envelope, find the subscribed plugins,
//! run each on the version current at that moment (on a warm instance from
//! the worker's [`Instances`]), check what it emitted against its config
//! and wrap every emit into an [`OutRecord`] (`emit.rs`).
//! [`Router::run_batch`] does that for a partition's batch in order, each
//! record seeing the state the ones before it wrote, and stops at the first
//! record that must wait ([`next_step`], a pure retry policy in
//! `failure.rs`). The live partition workers and the fixture runner
//! ([`crate::fixtures`]) both call [`Router::run_batch`], so a fixture's
//! record runs the same per-record code and the same retry policy as a live
//! one (the fixture runner skips the backoff delays). Nothing here does
//! Kafka I/O or commits state: the caller commits the [`Effect`]s and
//! produces the records.

mod emit;
mod failure;
mod outcome;
mod prepare;
mod shadow;
mod timer;

pub(crate) use failure::{Failure, Next, next_step};
pub(crate) use outcome::{BatchRun, PluginCall, RecordOutcome, Stop};
use prepare::Prepared;
pub(crate) use timer::firing_id;
pub use timer::{firing_due, firing_record, removal};

use crate::config::{KafkaConfig, Matcher};
use crate::engine::CallInput;
use crate::event::{Event, OutRecord, Record, TimerCall};
use crate::pool::Instances;
use crate::registry::{Plugin, PluginRegistry};
use crate::state::{BatchView, Effect, StateError, StateRead, StateStore};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    pub(crate) fn learn(&self, topic: &str) {
        if !self.learned.read().expect("learned lock").contains(topic) {
            self.learned
                .write()
                .expect("learned lock")
                .insert(topic.to_string());
        }
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

    /// Takes one record, as [`Router::prepare`] made it, through every
    /// subscribed plugin, reading state through `view`, and through their
    /// shadows if `sample` (see [`crate::shadow`]). Nothing is committed.
    fn route(
        &self,
        record: &Record,
        prepared: Prepared,
        view: &Arc<BatchView>,
        instances: &mut Instances,
        sample: bool,
    ) -> RecordOutcome {
        let event = match prepared {
            Prepared::Excluded => return RecordOutcome::Skipped("excluded topic".into()),
            Prepared::Firing(firing) => return self.fire(firing, record, view, instances, sample),
            Prepared::Event(Ok(event)) => event,
            Prepared::Event(Err(e)) if self.wanted(&record.topic) => {
                return RecordOutcome::Undecodable(e);
            }
            Prepared::Event(Err(e)) => {
                return RecordOutcome::Skipped(format!("no plugin consumes it, and {e}"));
            }
        };
        let calls: Vec<PluginCall> = self
            .registry
            .subscribers(&event.ty, &event.topic)
            .map(|plugin| self.run(plugin, &event, None, view, instances, sample))
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
    pub(crate) fn run_batch(
        &self,
        records: &[Record],
        attempt: u32,
        store: &Arc<dyn StateStore>,
        instances: &mut Instances,
        kafka: &KafkaConfig,
    ) -> BatchRun {
        let view = Arc::new(BatchView::new(store.clone()));
        self.run_batch_in(records, attempt, &view, instances, kafka)
    }

    /// [`Router::run_batch`] reading through `view`, which the caller
    /// keeps: a partition worker runs its next batch on a view after this
    /// one's ([`BatchView::after`]) while this one commits.
    pub(crate) fn run_batch_in(
        &self,
        records: &[Record],
        attempt: u32,
        view: &Arc<BatchView>,
        instances: &mut Instances,
        kafka: &KafkaConfig,
    ) -> BatchRun {
        // Every record is decoded first, so that the batch's processed marks
        // are looked up together: one read transaction for the batch on
        // redb, one round trip on PostgreSQL, instead of one per record.
        let prepared: Vec<Prepared> = records.iter().map(|r| self.prepare(r)).collect();
        let keys: Vec<(String, String)> = prepared
            .iter()
            .filter_map(|p| match p {
                Prepared::Event(Ok(e)) => Some(e),
                _ => None,
            })
            .flat_map(|e| {
                self.registry
                    .subscribers(&e.ty, &e.topic)
                    .map(|p| (p.spec.name.clone(), e.id.clone()))
            })
            .collect();
        if !keys.is_empty()
            && let Err(e) = view.prefetch(keys)
        {
            tracing::debug!("prefetching processed marks: {e:#}");
        }
        let mut done = Vec::with_capacity(records.len());
        // Under load (a long batch) only `SAMPLE` records run on shadows.
        let every = records.len().div_ceil(crate::shadow::SAMPLE).max(1);
        for (i, (record, prepared)) in records.iter().zip(prepared).enumerate() {
            let outcome = self.route(record, prepared, view, instances, i % every == 0);
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

    /// Runs a timer's firing on its plugin's `on-timer`: only that plugin,
    /// whatever subscribes to the topic.
    fn fire(
        &self,
        firing: Result<timer::Firing, String>,
        record: &Record,
        view: &Arc<BatchView>,
        instances: &mut Instances,
        sample: bool,
    ) -> RecordOutcome {
        let firing = match firing {
            Ok(firing) => firing,
            Err(why) => return RecordOutcome::Skipped(why),
        };
        let Some(plugin) = self.registry.get(&firing.plugin) else {
            return RecordOutcome::Skipped(format!(
                "a timer of plugin `{}`, which is not configured",
                firing.plugin
            ));
        };
        let event = firing.event(record);
        let call = firing.call();
        // The timer itself is removed only once the firing's outputs are
        // safe (acknowledged, or in a committed transaction): see
        // `timer::removal`. Until then it stays due, and a firing that runs
        // again re-produces the same records from the outbox.
        let outcome = self.run(plugin, &event, Some(&call), view, instances, sample);
        RecordOutcome::Routed {
            ty: event.ty,
            id: event.id,
            calls: vec![outcome],
        }
    }

    /// Runs one plugin on one decoded event (or, with `timer`, that timer's
    /// firing, `event` standing for it), through `view`; and on its shadow,
    /// if it has one and `sample`.
    fn run(
        &self,
        plugin: &Arc<Plugin>,
        event: &Event,
        timer: Option<&TimerCall>,
        view: &Arc<BatchView>,
        instances: &mut Instances,
        sample: bool,
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
                call.result = OutRecord::decode_all(&outputs).map_err(|why| {
                    Failure::State(StateError::Other(Arc::new(anyhow::anyhow!(
                        "a stored outbox does not decode: {why}"
                    ))))
                });
                return call;
            }
            Ok(None) => {}
            Err(e) => {
                call.result = Err(Failure::State(StateError::from(e)));
                return call;
            }
        }
        if event.hops >= self.max_hops {
            call.result = Err(Failure::Loop(event.hops));
            return call;
        }
        if let Some(field) = &spec.input_key_field
            && let Err(why) = emit::key_matches(event, field)
        {
            call.result = Err(Failure::Key(why));
            return call;
        }
        let _span = tracing::debug_span!("handle", plugin = %spec.name, version = %call.version,
            topic = %event.topic, partition = event.partition, offset = event.offset,
            event_id = %event.id, correlation_id = event.correlation_id.as_deref().unwrap_or(""))
        .entered();
        let live = Call {
            spec,
            version: &version,
            label: &call.version,
            slot: &spec.name,
        };
        let result = self.invoke(&live, event, timer, view.clone(), instances);
        call.took = started.elapsed();
        if let Some(shadow) = plugin.shadow() {
            self.shadow(
                &shadow, &live, event, timer, view, instances, &result, sample,
            );
        }
        match result {
            Ok(Ran {
                records,
                reads,
                writes,
                timers,
            }) => {
                call.effect = Some(Effect {
                    plugin: spec.name.clone(),
                    event_id: event.id.clone(),
                    reads,
                    writes,
                    outputs: OutRecord::encode_all(&records),
                    timers: timer::changes(timers, event),
                });
                call.result = Ok(records);
            }
            Err(failure) => call.result = Err(failure),
        }
        call
    }

    /// Calls one version and wraps its emits (under `call.label`).
    fn invoke(
        &self,
        call: &Call<'_>,
        event: &Event,
        timer: Option<&TimerCall>,
        state: Arc<dyn StateRead>,
        instances: &mut Instances,
    ) -> Result<Ran, Failure> {
        let spec = call.spec;
        let input = CallInput {
            state: &state,
            config: &spec.config,
            limits: spec.limits,
        };
        let out = instances
            .call(call.slot, spec, call.version, event, timer, input)
            .map_err(Failure::Fault)?;
        let emits = out.result.map_err(Failure::Handler)?;
        let records = emits
            .into_iter()
            .enumerate()
            .map(|(i, emit)| emit::wrap(spec, call.label, event, i, emit, self.max_record_bytes))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Ran {
            records,
            reads: out.reads,
            writes: out.writes,
            timers: out.timers,
        })
    }
}

/// Which version a call runs, under which label its emits go out, and in
/// which warm-instance slot.
#[derive(Clone, Copy)]
pub(super) struct Call<'a> {
    spec: &'a crate::config::PluginSpec,
    version: &'a crate::engine::PluginVersion,
    label: &'a str,
    slot: &'a str,
}

/// What a call that succeeded did.
pub(super) struct Ran {
    records: Vec<OutRecord>,
    reads: crate::state::Reads,
    writes: crate::state::Writes,
    timers: crate::engine::StagedTimers,
}
