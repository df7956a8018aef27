//! Timers on the per-record path: what a call staged becomes its effect's
//! timer changes, and a timer that came due runs as a *firing*.
//!
//! A firing travels a partition worker's batch path as a record of its own
//! ([`firing_record`]): on the timer's partition, with offset -1 (no offset
//! is stored for it), a `switchyard-timer` header naming the plugin, and a
//! JSON value holding the timer. So it is run by [`super::Router::run_batch`]
//! with the retry policy, committed, produced and dead-lettered exactly like
//! a record; and the dead letter of a firing that failed for good carries the
//! timer's name, payload and plugin, and fires again when it is replayed.
//!
//! A firing is deterministic: its event id is derived from (plugin, timer
//! name, due time) and its time is the due time, so a replay of a firing
//! yields identical bytes.
//!
//! The timer is removed only once the firing's outputs are safe: after
//! they are acknowledged (at-least-once), or after the Kafka transaction
//! holding them commits (exactly-once), by committing [`removal`]. A
//! crash or an aborted transaction before that leaves the timer due: it
//! fires again, the firing is a duplicate (its processed mark committed
//! with its state), and its records are produced again, byte-identical,
//! from the outbox (with exactly-once, only if the transaction that held
//! them did not commit: see `kafka/txn/fired.rs`). A firing that is
//! dead-lettered is removed the same way once its dead letter is safe.

use crate::engine::StagedTimers;
use crate::envelope::EnvelopeStyle;
use crate::envelope::ID_NAMESPACE;
use crate::event::{Event, Header, Record, TimerCall};
use crate::state::{DueTimer, Effect, Timer, TimerChange, TimerChanges};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

/// The header that marks a record as a timer's firing; its value is the
/// plugin's name.
pub(crate) const TIMER_HEADER: &str = "switchyard-timer";

/// What a timer keeps of the event that set it, so that its firing's emits
/// look like that event's: the envelope style and the correlation id.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Context {
    style: Option<crate::envelope::EnvelopeKind>,
    #[serde(default)]
    lifted: Vec<String>,
    correlation_id: Option<String>,
}

/// A firing as its record carries it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Firing {
    /// The plugin whose timer it is.
    pub(crate) plugin: String,
    /// The timer's name.
    pub(crate) name: String,
    /// Its due time, milliseconds since the epoch.
    pub(crate) due_ms: i64,
    /// Its payload, base64.
    payload: String,
    /// The setting event's context, base64 (see [`Context`]).
    context: String,
}

/// The timer changes of a call on `event`: a set timer belongs to the
/// event's partition and keeps its style and correlation.
pub(crate) fn changes(staged: StagedTimers, event: &Event) -> TimerChanges {
    if staged.is_empty() {
        // Most calls set no timer: no context to write.
        return TimerChanges::new();
    }
    let context = serde_json::to_vec(&Context {
        style: Some(event.style.kind),
        lifted: event.style.lifted.clone(),
        correlation_id: event
            .correlation_id
            .clone()
            .or_else(|| Some(event.id.clone())),
    })
    .expect("JSON serializes");
    staged
        .into_iter()
        .map(|(name, change)| {
            let change = match change {
                Some((due_ms, payload)) => TimerChange::Set(Timer {
                    due_ms,
                    payload,
                    topic: event.topic.clone(),
                    partition: event.partition,
                    context: context.clone(),
                }),
                None => TimerChange::Cancel,
            };
            (name, change)
        })
        .collect()
}

/// The record that carries `due`'s firing through the batch path.
pub fn firing_record(due: &DueTimer) -> Record {
    let firing = Firing {
        plugin: due.plugin.clone(),
        name: due.name.clone(),
        due_ms: due.timer.due_ms,
        payload: B64.encode(&due.timer.payload),
        context: B64.encode(&due.timer.context),
    };
    Record {
        topic: due.timer.topic.clone(),
        partition: due.timer.partition,
        offset: -1,
        key: None,
        headers: vec![Header::new(TIMER_HEADER, due.plugin.clone())],
        value: Some(serde_json::to_vec(&firing).expect("JSON serializes")),
    }
}

/// The firing `record` carries, if it is one.
pub(crate) fn firing_of(record: &Record) -> Option<Result<Firing, String>> {
    record.header(TIMER_HEADER)?;
    let value = record.value.as_deref().unwrap_or_default();
    Some(
        serde_json::from_slice(value)
            .map_err(|e| format!("a timer firing that does not parse: {e}")),
    )
}

/// The plugin and due time of the firing `record` carries, if it is one.
pub fn firing_due(record: &Record) -> Option<(String, i64)> {
    match firing_of(record)? {
        Ok(f) => Some((f.plugin, f.due_ms)),
        Err(_) => None,
    }
}

/// The effect that removes the timer whose firing `record` carries (if it
/// is one and the timer is still due at that time), under an id of its
/// own; commit it once the firing's outputs are safe.
pub fn removal(record: &Record) -> Option<Effect> {
    let firing = firing_of(record)?.ok()?;
    let id = firing.event(record).id;
    Some(Effect {
        plugin: firing.plugin.clone(),
        event_id: format!("{id}:done"),
        reads: Default::default(),
        writes: Default::default(),
        outputs: Vec::new(),
        timers: [(
            firing.name,
            TimerChange::Fired {
                due_ms: firing.due_ms,
            },
        )]
        .into(),
    })
}

/// The event id of the firing of `plugin`'s timer `name` due at `due_ms`:
/// a UUID v5 of the three, the same on every run.
pub(crate) fn firing_id(plugin: &str, name: &str, due_ms: i64) -> String {
    uuid::Uuid::new_v5(
        &ID_NAMESPACE,
        format!("timer/{plugin}/{name}/{due_ms}").as_bytes(),
    )
    .to_string()
}

/// The due time as RFC 3339 UTC, milliseconds kept.
pub(crate) fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Firing {
    /// What `on-timer` receives.
    pub(crate) fn call(&self) -> TimerCall {
        TimerCall {
            name: self.name.clone(),
            payload: B64.decode(&self.payload).unwrap_or_default(),
            due: rfc3339(self.due_ms),
        }
    }

    /// The event the firing stands for: its id derived from (plugin, name,
    /// due time), its time the due time, on the timer's partition, in the
    /// style and correlation of the event that set it.
    pub(crate) fn event(&self, record: &Record) -> Event {
        let context: Context = B64
            .decode(&self.context)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let id = firing_id(&self.plugin, &self.name, self.due_ms);
        let mut style = EnvelopeStyle::of(context.style.unwrap_or_default());
        style.lifted = context.lifted;
        Event {
            id,
            ty: format!("timer:{}", self.name),
            source: self.plugin.clone(),
            time: rfc3339(self.due_ms),
            correlation_id: context.correlation_id,
            subject: None,
            data: "{}".into(),
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
            key: None,
            headers: Vec::new(),
            style,
            hops: 0,
        }
    }
}
