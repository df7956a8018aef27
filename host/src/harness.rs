//! The local test harness behind `switchyard test`: runs plugins on fixture
//! files with no broker.
//!
//! A fixture is one JSON file that drives one plugin through a chain of
//! records sharing one state:
//!
//! ```json
//! {
//!   "description": "a declined card yields payment.payment.failed",
//!   "plugin": "payment",
//!   "config": { "decline_over": 500 },
//!   "state": { "seq": 41 },
//!   "steps": [
//!     {
//!       "topic": "booking.booking.created",
//!       "key": "b-1",
//!       "headers": { "traceparent": "00-..." },
//!       "value": { "event_id": "...", "event_type": "booking.booking.created", "data": {} },
//!       "emits": [ { "type": "payment.payment.failed", "topic": "...", "key": "...", "data": {} } ]
//!     },
//!     { "topic": "t", "raw": "not json", "error": { "class": "decode" } }
//!   ],
//!   "expect_state": { "seq": 42 }
//! }
//! ```
//!
//! - `plugin` defaults to the plugin whose `fixtures` folder holds the file;
//!   `config` is merged over that plugin's config; `state` seeds its state
//!   (each value stored as JSON text).
//! - `value` is the record's JSON payload in the catalog's own envelope;
//!   `raw` is a payload given as plain text, for malformed input.
//! - A step expects either `emits` (compared in order; `topic` and `key` only
//!   when given) or an `error` (`class` and optionally a `contains` substring).
//!   A step with neither expects no emits; `"unrouted": true` expects the
//!   plugin not to be subscribed to the record at all.
//! - Each fixture runs twice on fresh state and a fresh instance; the two
//!   runs must produce byte-identical records, or the fixture fails as
//!   non-deterministic.
//! - Then every fixture of the plugin runs twice more, in order, on one
//!   shared warm instance (still on fresh state per fixture), as the router
//!   reuses instances. If a fixture's records differ from its fresh run, the
//!   plugin's emits depend on what its instance handled before (a global or
//!   cached value): the fixture fails and says so. Plugins with
//!   `isolation = "per-event"` skip this check.

use crate::config::{Isolation, PluginSpec, RouterConfig};
use crate::engine::Engine;
use crate::envelope;
use crate::event::{Header, OutRecord, Record};
use crate::registry::{Plugin, PluginRegistry};
use crate::router::{Instances, RecordOutcome, Router};
use crate::state::{BatchView, MemoryStore, StateStore};
use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One fixture file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// What it shows.
    #[serde(default)]
    pub description: String,
    /// The plugin it drives.
    #[serde(default)]
    pub plugin: Option<String>,
    /// Config entries merged over the plugin's own.
    #[serde(default)]
    pub config: Map<String, Value>,
    /// The plugin's state before the first step.
    #[serde(default)]
    pub state: Map<String, Value>,
    /// The records, in order.
    pub steps: Vec<Step>,
    /// State entries expected after the last step (`null`: absent).
    #[serde(default)]
    pub expect_state: Option<Map<String, Value>>,
}

/// One input record and what it should yield.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The topic it is read from.
    pub topic: String,
    /// Its partition.
    #[serde(default)]
    pub partition: i32,
    /// Its offset; defaults to the step's index.
    #[serde(default)]
    pub offset: Option<i64>,
    /// Its key.
    #[serde(default)]
    pub key: Option<String>,
    /// Its headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Its JSON payload.
    #[serde(default)]
    pub value: Option<Value>,
    /// Its payload as plain text, for records that are not JSON.
    #[serde(default)]
    pub raw: Option<String>,
    /// The expected emits.
    #[serde(default)]
    pub emits: Option<Vec<Value>>,
    /// The expected error.
    #[serde(default)]
    pub error: Option<ExpectedError>,
    /// Expect the plugin not to be subscribed to this record at all (to
    /// show, say, that its own emits do not loop back into it).
    #[serde(default)]
    pub unrouted: bool,
}

/// An expected failure.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedError {
    /// The error class: `decode`, `retry`, `reject`, `trap`, `timeout`,
    /// `memory`, `forbidden`, `invalid-emit`, `schema`, `key` or `loop`.
    pub class: String,
    /// A substring the message must contain.
    #[serde(default)]
    pub contains: Option<String>,
}

/// The result of running a set of fixtures.
#[derive(Debug, Default)]
pub struct Report {
    /// Fixtures that passed.
    pub passed: usize,
    /// Fixtures that failed, with why.
    pub failed: Vec<(PathBuf, String)>,
}

/// Runs the fixtures of every plugin in `config` (or only `only`), printing
/// one line per fixture and a diff for each failure to `out`.
pub fn run_config(
    engine: &Arc<Engine>,
    config: &RouterConfig,
    only: Option<&str>,
    out: &mut dyn Write,
) -> anyhow::Result<Report> {
    if let Some(name) = only
        && config.plugin(name).is_none()
    {
        bail!(
            "{}: no plugin named `{name}`; pick one of the `[[plugin]]` names",
            config.path.display()
        );
    }
    let registry = Arc::new(PluginRegistry::load(engine, config, only)?);
    let mut report = Report::default();
    for plugin in registry.plugins() {
        let files = fixture_files(&plugin.spec)?;
        let history = history_check(engine, config, plugin, &files);
        for (file, history) in files.into_iter().zip(history) {
            let shown = file.display().to_string();
            match run_fixture(engine, config, plugin, &file).and_then(|fresh| match history {
                Some(Ok(warm)) if warm != fresh => Err(HISTORY.to_string()),
                Some(Err(why)) => Err(format!("{HISTORY}\n{why}")),
                _ => Ok(()),
            }) {
                Ok(()) => {
                    report.passed += 1;
                    writeln!(out, "ok   {:<12} {shown}", plugin.spec.name)?;
                }
                Err(why) => {
                    writeln!(
                        out,
                        "FAIL {:<12} {shown}\n{}",
                        plugin.spec.name,
                        indent(&why)
                    )?;
                    report.failed.push((file, why));
                }
            }
        }
    }
    Ok(report)
}

/// Runs a plugin's fixtures on a candidate `version` (before it goes live);
/// returns how many passed, or the first failure.
pub fn check_version(
    engine: &Arc<Engine>,
    config: &RouterConfig,
    spec: &PluginSpec,
    version: Arc<crate::engine::PluginVersion>,
) -> Result<usize, String> {
    let candidate = Arc::new(Plugin::new(spec.clone(), version));
    let files = fixture_files(spec).map_err(|e| format!("{e:#}"))?;
    let history = history_check(engine, config, &candidate, &files);
    for (file, history) in files.iter().zip(history) {
        let fresh = run_fixture(engine, config, &candidate, file)
            .map_err(|why| format!("fixture {} fails: {why}", file.display()))?;
        if history.is_some_and(|warm| warm != Ok(fresh)) {
            return Err(format!("fixture {} fails: {HISTORY}", file.display()));
        }
    }
    Ok(files.len())
}

const HISTORY: &str = "emits depend on what the instance handled before: on a warm instance \
that already ran the other fixtures it produced different records than on a fresh one. \
Keep values in state rather than in globals, or set `isolation = \"per-event\"`";

/// Runs every fixture of `owner` twice, in order, on one warm instance;
/// returns each fixture's records from the second round, or why it failed
/// there (`None` where the fixture cannot be read, or for per-event plugins).
fn history_check(
    engine: &Arc<Engine>,
    config: &RouterConfig,
    owner: &Arc<Plugin>,
    files: &[PathBuf],
) -> Vec<Option<Result<Vec<Vec<u8>>, String>>> {
    if owner.spec.isolation == Isolation::PerEvent {
        return vec![None; files.len()];
    }
    let fixtures: Vec<Option<Fixture>> = files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).ok()?;
            serde_json::from_str(&text).ok()
        })
        .collect();
    let mut instances = Instances::new(engine.clone());
    let mut round = || -> Vec<Option<Result<Vec<Vec<u8>>, String>>> {
        fixtures
            .iter()
            .map(|f| Some(replay(config, owner, f.as_ref()?, &mut instances)))
            .collect()
    };
    round();
    round()
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("     {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The fixture files a plugin ships, sorted by path.
pub fn fixture_files(spec: &PluginSpec) -> anyhow::Result<Vec<PathBuf>> {
    let Some(path) = &spec.fixtures else {
        return Ok(Vec::new());
    };
    if path.is_file() {
        return Ok(vec![path.clone()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| {
            format!(
                "{}: cannot read the fixtures folder of plugin `{}`; fix `fixtures`",
                path.display(),
                spec.name
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    Ok(files)
}

/// Runs one fixture twice on fresh instances and checks both runs; returns
/// the records it produced.
fn run_fixture(
    engine: &Arc<Engine>,
    config: &RouterConfig,
    owner: &Arc<Plugin>,
    file: &Path,
) -> Result<Vec<Vec<u8>>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read: {e}"))?;
    let fixture = parse_fixture(&text)?;
    if let Some(name) = &fixture.plugin
        && *name != owner.spec.name
    {
        return Err(format!(
            "names plugin `{name}` but sits in the fixtures of `{}`",
            owner.spec.name
        ));
    }
    let first = replay(config, owner, &fixture, &mut Instances::new(engine.clone()))?;
    let second = replay(config, owner, &fixture, &mut Instances::new(engine.clone()))?;
    if first != second {
        return Err("not deterministic: a replay on fresh state produced different bytes".into());
    }
    Ok(first)
}

/// Parses a fixture file's text and checks that every step makes a record.
pub fn parse_fixture(text: &str) -> Result<Fixture, String> {
    let fixture: Fixture =
        serde_json::from_str(text).map_err(|e| format!("not a valid fixture: {e}"))?;
    for (i, step) in fixture.steps.iter().enumerate() {
        step_record(step, i)?;
    }
    Ok(fixture)
}

/// One run of a fixture on fresh state; returns every produced record's bytes.
fn replay(
    config: &RouterConfig,
    owner: &Arc<Plugin>,
    fixture: &Fixture,
    instances: &mut Instances,
) -> Result<Vec<Vec<u8>>, String> {
    let mut spec = owner.spec.clone();
    let mut merged = (*spec.config).clone();
    merged.extend(fixture.config.clone());
    spec.config = Arc::new(merged);
    let plugin = Arc::new(Plugin::new(spec, owner.current()));
    let registry = Arc::new(PluginRegistry::from_plugins(vec![plugin.clone()]));
    let memory = Arc::new(MemoryStore::new());
    for (key, value) in &fixture.state {
        memory.seed(&plugin.spec.name, key, value.to_string().into_bytes());
    }
    let store: Arc<dyn StateStore> = memory;
    let router = Router::new(
        registry,
        config.exclude.clone(),
        config.max_hops,
        config.kafka.max_record_bytes,
    );
    // A fixture's topics are its plugin's: bad input on them is dead-lettered.
    for step in &fixture.steps {
        router.learn(&step.topic);
    }
    let mut bytes = Vec::new();
    for (index, step) in fixture.steps.iter().enumerate() {
        let record = step_record(step, index)?;
        let at = format!("step {} ({})", index + 1, step.topic);
        let view = Arc::new(BatchView::new(store.clone()));
        let outcome = router.route(&record, &view, instances);
        store
            .commit(&[&[outcome.effects()]])
            .map_err(|e| format!("{at}: {e:#}"))?;
        let actual: Result<Vec<OutRecord>, (String, String)> = match outcome {
            RecordOutcome::Skipped(_) if step.unrouted => continue,
            RecordOutcome::Skipped(why) => Err(("skipped".into(), why)),
            RecordOutcome::Undecodable(e) => Err(("decode".into(), e.to_string())),
            RecordOutcome::Routed { mut calls, .. } => {
                let Some(outcome) = calls.pop() else {
                    if step.unrouted {
                        continue;
                    }
                    return Err(format!(
                        "{at}: plugin `{}` is not subscribed to this record's type or topic",
                        plugin.spec.name
                    ));
                };
                if step.unrouted {
                    return Err(format!(
                        "{at}: expected the plugin not to be subscribed, but it ran"
                    ));
                }
                outcome
                    .result
                    .map_err(|f| (f.class().into(), f.to_string()))
            }
        };
        check_step(step, &actual).map_err(|why| format!("{at}: {why}"))?;
        if let Ok(produced) = &actual {
            bytes.extend(produced.iter().map(|p| p.value.clone()));
        }
    }
    if let Some(expected) = &fixture.expect_state {
        let snapshot = store
            .snapshot(&plugin.spec.name)
            .map_err(|e| e.to_string())?;
        for (key, want) in expected {
            let got = snapshot
                .get(key)
                .map(|v| {
                    serde_json::from_slice(v)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(v).into()))
                })
                .unwrap_or(Value::Null);
            if &got != want {
                return Err(format!(
                    "state `{key}` after the last step differs\n{}",
                    diff(want, &got)
                ));
            }
        }
    }
    Ok(bytes)
}

fn step_record(step: &Step, index: usize) -> Result<Record, String> {
    let value = match (&step.value, &step.raw) {
        (Some(v), None) => Some(serde_json::to_vec(v).expect("JSON serializes")),
        (None, Some(raw)) => Some(raw.clone().into_bytes()),
        (None, None) => None,
        (Some(_), Some(_)) => {
            return Err(format!(
                "step {}: give `value` or `raw`, not both",
                index + 1
            ));
        }
    };
    Ok(Record {
        topic: step.topic.clone(),
        partition: step.partition,
        offset: step.offset.unwrap_or(index as i64),
        key: step.key.clone().map(String::into_bytes),
        headers: step
            .headers
            .iter()
            .map(|(k, v)| Header::new(k, v))
            .collect(),
        value,
    })
}

fn check_step(
    step: &Step,
    actual: &Result<Vec<OutRecord>, (String, String)>,
) -> Result<(), String> {
    match (&step.error, actual) {
        (Some(want), Err((class, message))) => {
            if *class != want.class {
                return Err(format!(
                    "expected a `{}` error, got `{class}`: {message}",
                    want.class
                ));
            }
            if let Some(needle) = &want.contains
                && !message.contains(needle.as_str())
            {
                return Err(format!(
                    "expected the error to contain {needle:?}, got: {message}"
                ));
            }
            Ok(())
        }
        (Some(want), Ok(produced)) => Err(format!(
            "expected a `{}` error, but the plugin emitted {} event(s)",
            want.class,
            produced.len()
        )),
        (None, Err((class, message))) => {
            Err(format!("expected emits, got a `{class}` error: {message}"))
        }
        (None, Ok(produced)) => {
            let expected = step.emits.clone().unwrap_or_default();
            let actual: Vec<Value> = produced
                .iter()
                .enumerate()
                .map(|(i, p)| view(p, expected.get(i)))
                .collect();
            let expected = Value::Array(expected);
            let actual = Value::Array(actual);
            if expected == actual {
                Ok(())
            } else {
                Err(format!("emits differ\n{}", diff(&expected, &actual)))
            }
        }
    }
}

/// The comparable view of a produced record: type and data always; topic,
/// key and headers when the expectation names them.
fn view(p: &OutRecord, expected: Option<&Value>) -> Value {
    let wants = |field: &str| expected.and_then(|e| e.get(field)).is_some();
    // Read back through the router's own decoder: what a consumer would see.
    let (ty, data) = match envelope::decode(&Record {
        topic: p.topic.clone(),
        key: p.key.clone(),
        headers: p.headers.clone(),
        value: Some(p.value.clone()),
        ..Record::default()
    }) {
        Ok(event) => (
            json!(event.ty),
            serde_json::from_str(&event.data).unwrap_or(Value::Null),
        ),
        Err(e) => (json!(format!("undecodable: {e}")), Value::Null),
    };
    let mut v = Map::new();
    v.insert("type".into(), ty);
    if wants("topic") {
        v.insert("topic".into(), json!(p.topic));
    }
    if wants("key") {
        v.insert(
            "key".into(),
            json!(p.key.as_deref().map(String::from_utf8_lossy)),
        );
    }
    if let Some(Value::Object(want)) = expected.and_then(|e| e.get("headers")) {
        let got: Map<String, Value> = want
            .keys()
            .map(|k| {
                let found = p
                    .headers
                    .iter()
                    .find(|h| &h.key == k)
                    .map(|h| json!(h.value));
                (k.clone(), found.unwrap_or(Value::Null))
            })
            .collect();
        v.insert("headers".into(), Value::Object(got));
    }
    v.insert("data".into(), data);
    Value::Object(v)
}

/// A unified diff of two JSON values, pretty-printed with sorted keys.
pub fn diff(expected: &Value, actual: &Value) -> String {
    let pretty =
        |v: &Value| serde_json::to_string_pretty(&sorted(v)).expect("JSON serializes") + "\n";
    let (e, a) = (pretty(expected), pretty(actual));
    similar::TextDiff::from_lines(&e, &a)
        .unified_diff()
        .context_radius(3)
        .header("expected", "actual")
        .to_string()
}

fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let ordered: BTreeMap<&String, Value> = m.iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(ordered.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}
