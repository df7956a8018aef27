//! Comparing what two versions of a plugin did with the same event, on the
//! same state and config: their emits, emit by emit and field by field,
//! their state writes key by key, their timer changes and their error.
//! A plugin is a deterministic function of (event, state, config), so any
//! difference is a real one.

use crate::engine::StagedTimers;
use crate::event::OutRecord;
use crate::state::Writes;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// What one version did with one event, in a form to compare.
#[derive(Debug, Clone, Default)]
pub(crate) struct Observed {
    /// Its emits, as a consumer reads them (type, topic, key, data).
    pub(crate) emits: Vec<Value>,
    /// Its state writes: key → JSON value (`null` for a delete).
    pub(crate) writes: Map<String, Value>,
    /// Its timer changes: name → what it did.
    pub(crate) timers: Map<String, Value>,
    /// Its error, if it failed.
    pub(crate) error: Option<String>,
}

/// One difference, readable on its own.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Difference {
    /// Where: `emit 1 data.receipt_url`, `state seq:2025`, `timer t:x`,
    /// `error`, `emits`.
    pub(crate) at: String,
    /// The live version's value (`null` when it has none).
    pub(crate) live: Value,
    /// The other version's.
    pub(crate) shadow: Value,
}

impl Observed {
    /// What a call that succeeded did.
    pub(crate) fn of(records: &[OutRecord], writes: &Writes, timers: &StagedTimers) -> Self {
        Observed {
            emits: records.iter().map(emit_view).collect(),
            writes: writes
                .iter()
                .map(|(k, v)| (k.clone(), v.as_deref().map_or(Value::Null, bytes_view)))
                .collect(),
            timers: timers
                .iter()
                .map(|(name, change)| {
                    let v = match change {
                        Some((due_ms, payload)) => json!({
                            "set": chrono::DateTime::from_timestamp_millis(*due_ms).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                            "payload": bytes_view(payload),
                        }),
                        None => json!("cancel"),
                    };
                    (name.clone(), v)
                })
                .collect(),
            error: None,
        }
    }

    /// A call that failed with `why`.
    pub(crate) fn failed(why: String) -> Self {
        Observed {
            error: Some(why),
            ..Observed::default()
        }
    }
}

/// A record as a consumer reads it back through the router's decoder.
fn emit_view(record: &OutRecord) -> Value {
    let view = crate::fixtures::record_view(record);
    let mut v = match view {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    v.insert("topic".into(), json!(record.topic));
    v.insert(
        "key".into(),
        json!(record.key.as_deref().map(String::from_utf8_lossy)),
    );
    Value::Object(v)
}

/// Bytes as JSON when they are JSON, else as text.
fn bytes_view(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(bytes)))
}

/// Every difference between `live` and `shadow`, in order: the error, the
/// emits (count, then each one field by field), state writes, timers.
pub(crate) fn compare(live: &Observed, shadow: &Observed) -> Vec<Difference> {
    let mut out = Vec::new();
    if live.error != shadow.error {
        out.push(Difference {
            at: "error".into(),
            live: json!(live.error),
            shadow: json!(shadow.error),
        });
    }
    if live.emits.len() != shadow.emits.len() {
        out.push(Difference {
            at: "emits".into(),
            live: json!(live.emits.len()),
            shadow: json!(shadow.emits.len()),
        });
    }
    for i in 0..live.emits.len().max(shadow.emits.len()) {
        let at = format!("emit {}", i + 1);
        match (live.emits.get(i), shadow.emits.get(i)) {
            (Some(a), Some(b)) => fields(&at, a, b, &mut out, true),
            (a, b) => out.push(Difference {
                at,
                live: a.cloned().unwrap_or(Value::Null),
                shadow: b.cloned().unwrap_or(Value::Null),
            }),
        }
    }
    keyed("state", &live.writes, &shadow.writes, &mut out);
    keyed("timer", &live.timers, &shadow.timers, &mut out);
    out
}

fn keyed(what: &str, a: &Map<String, Value>, b: &Map<String, Value>, out: &mut Vec<Difference>) {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for k in keys {
        let (x, y) = (a.get(k), b.get(k));
        if x != y {
            out.push(Difference {
                at: format!("{what} {k}"),
                live: x.cloned().unwrap_or(json!("(not written)")),
                shadow: y.cloned().unwrap_or(json!("(not written)")),
            });
        }
    }
}

/// The differing leaves of two JSON values, named by path: `emit 1
/// data.receipt_url` (`top` for the first level below `at`).
fn fields(at: &str, a: &Value, b: &Value, out: &mut Vec<Difference>, top: bool) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let path = if top {
                    format!("{at} {k}")
                } else {
                    format!("{at}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => fields(&path, p, q, out, false),
                    (p, q) => out.push(Difference {
                        at: path,
                        live: p.cloned().unwrap_or(json!("(absent)")),
                        shadow: q.cloned().unwrap_or(json!("(absent)")),
                    }),
                }
            }
        }
        _ if a != b => out.push(Difference {
            at: at.to_string(),
            live: a.clone(),
            shadow: b.clone(),
        }),
        _ => {}
    }
}

/// The differences as text, one per line: `emit 1 data.receipt_url: live
/// "…" → shadow "…"`.
pub(crate) fn render(diffs: &[Difference]) -> String {
    diffs
        .iter()
        .map(|d| format!("{}: live {} → shadow {}\n", d.at, d.live, d.shadow))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(emits: Vec<Value>, writes: Vec<(&str, Value)>) -> Observed {
        Observed {
            emits,
            writes: writes
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            ..Observed::default()
        }
    }

    #[test]
    fn names_each_differing_field_and_key() {
        let live = seen(
            vec![json!({"type": "r", "data": {"url": "a.pdf", "n": 1}})],
            vec![("seq:2025", json!(1)), ("x", json!("same"))],
        );
        let shadow = seen(
            vec![json!({"type": "r", "data": {"url": "A.pdf", "n": 1}})],
            vec![("seq:2025", json!(2)), ("x", json!("same"))],
        );
        let diffs = compare(&live, &shadow);
        let at: Vec<&str> = diffs.iter().map(|d| d.at.as_str()).collect();
        assert_eq!(at, ["emit 1 data.url", "state seq:2025"]);
        assert_eq!(diffs[0].live, json!("a.pdf"));
        assert_eq!(diffs[0].shadow, json!("A.pdf"));
        assert!(render(&diffs).contains("emit 1 data.url: live \"a.pdf\" → shadow \"A.pdf\""));
    }

    #[test]
    fn equal_calls_have_no_difference_and_errors_and_counts_do() {
        let a = seen(vec![json!({"type": "r"})], vec![]);
        assert!(compare(&a, &a.clone()).is_empty());
        let failed = Observed::failed("trap: unreachable".into());
        let at: Vec<String> = compare(&a, &failed).into_iter().map(|d| d.at).collect();
        assert_eq!(at, ["error", "emits", "emit 1"]);
    }
}
