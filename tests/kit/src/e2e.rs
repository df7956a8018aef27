//! Fixture files driven through a real broker: produce each step's record
//! with an outside client, wait for the router to handle it, then consume
//! the output and dead-letter topics and compare them with the fixture.

use crate::{Broker, Rec, Router, eventually};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use switchyard::RouterConfig;
use switchyard::{Header, Record};

fn step_record(step: &Value) -> Rec {
    let value = match (&step["value"], &step["raw"]) {
        (Value::Null, Value::String(raw)) => raw.clone().into_bytes(),
        (v, _) => v.to_string().into_bytes(),
    };
    Rec {
        topic: step["topic"].as_str().unwrap().to_string(),
        partition: None,
        key: step["key"].as_str().map(str::to_string),
        headers: step["headers"]
            .as_object()
            .map(|h| {
                h.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default(),
        value,
    }
}

/// What a produced record means, in the fixture's terms.
fn view(rec: &Rec, expected: &Value) -> Value {
    let record = Record {
        topic: rec.topic.clone(),
        key: rec.key.clone().map(String::into_bytes),
        headers: rec.headers.iter().map(|(k, v)| Header::new(k, v)).collect(),
        value: Some(rec.value.clone()),
        ..Record::default()
    };
    let event = switchyard::decode(&record).expect("the router's output decodes");
    let mut v = serde_json::Map::new();
    v.insert("type".into(), event.ty.into());
    if expected.get("topic").is_some() {
        v.insert("topic".into(), rec.topic.clone().into());
    }
    if expected.get("key").is_some() {
        v.insert("key".into(), rec.key.clone().into());
    }
    v.insert("data".into(), serde_json::from_str(&event.data).unwrap());
    Value::Object(v)
}

fn without_headers(mut v: Value) -> Value {
    if let Value::Object(m) = &mut v {
        m.remove("headers");
    }
    v
}

/// A value with every object's keys in sorted order, so that printing and
/// sorting do not depend on field order.
fn canon(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, Value> = m.iter().map(|(k, v)| (k, canon(v))).collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(canon).collect()),
        other => other.clone(),
    }
}

fn sorted(items: Vec<Value>) -> Vec<Value> {
    let mut items: Vec<Value> = items.iter().map(canon).collect();
    items.sort_by_key(|v| v.to_string());
    items
}

/// Whether a fixture can run against Kafka: no seeded state or config
/// overrides, and no virtual clock.
pub fn eligible(fixture: &Value) -> bool {
    // A fixture that advances a virtual clock to fire timers cannot replay
    // on a broker's wall clock; the timer tests drive those flows live.
    let advances = fixture["steps"]
        .as_array()
        .is_some_and(|steps| steps.iter().any(|s| s.get("advance").is_some()));
    fixture.get("state").is_none() && fixture.get("config").is_none() && !advances
}

/// Runs one fixture of `plugin` in `example` on a fresh router against `broker`.
pub fn run_fixture(
    broker: &Broker,
    example: &Path,
    plugin: &str,
    fixture_path: &Path,
    cache: &Path,
) {
    let fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture_path).unwrap()).unwrap();
    let config_path = example.join("router.toml");
    let config = RouterConfig::load(&config_path).unwrap();
    let steps = fixture["steps"].as_array().unwrap();
    for topic in config.topics_to_create() {
        broker.create_topic(&topic, config.kafka.partitions_for(&topic));
    }
    for step in steps {
        let topic = step["topic"].as_str().unwrap();
        broker.create_topic(topic, 3);
        broker.create_topic(&format!("{topic}.dlq"), 3);
    }
    let state = tempfile::tempdir().unwrap();
    let router = Router::start(&config_path, broker, state.path(), cache);
    let client = broker.client();
    // Records on each topic the router will have handled once a step is
    // done: the steps' inputs, and the outputs of earlier steps that land
    // on a topic it reads (a plugin may emit onto its input topic).
    let mut arriving: BTreeMap<String, u64> = BTreeMap::new();
    let mut expected: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut dead: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let shown = fixture_path.display().to_string();
    for (i, step) in steps.iter().enumerate() {
        let rec = step_record(step);
        client.produce(std::slice::from_ref(&rec));
        let n = {
            let count = arriving.entry(rec.topic.clone()).or_default();
            *count += 1;
            *count
        };
        let what = format!("{shown} step {} (on {})", i + 1, rec.topic);
        eventually(&what, Duration::from_secs(60), || {
            router.or_log(router.processed(&rec.topic) >= n)
        });
        if let Some(err) = step.get("error") {
            dead.entry(format!("{}.dlq", rec.topic))
                .or_default()
                .push(err["class"].as_str().unwrap().to_string());
        }
        for emit in step["emits"].as_array().into_iter().flatten() {
            let topic = emit["topic"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| {
                    config
                        .plugin(plugin)
                        .unwrap()
                        .topic_for(emit["type"].as_str().unwrap())
                });
            *arriving.entry(topic.clone()).or_default() += 1;
            expected
                .entry(topic)
                .or_default()
                .push(without_headers(emit.clone()));
        }
    }
    for (topic, want) in &expected {
        let got: Vec<Rec> = client
            .consume(topic)
            .into_iter()
            .filter(|r| r.header("switchyard-plugin") == Some(plugin))
            .collect();
        let got: Vec<Value> = got
            .iter()
            .zip(want.iter().cycle())
            .map(|(r, e)| view(r, e))
            .collect();
        assert_eq!(
            serde_json::to_string_pretty(&sorted(got)).unwrap(),
            serde_json::to_string_pretty(&sorted(want.clone())).unwrap(),
            "{shown}: records on {topic} differ"
        );
    }
    for (topic, classes) in &dead {
        let mut got: Vec<String> = client
            .consume(topic)
            .iter()
            .map(|r| {
                r.header("switchyard-dlq-error-class")
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        got.sort();
        let mut want = classes.clone();
        want.sort();
        assert_eq!(got, want, "{shown}: dead letters on {topic}");
    }
    router.stop();
}

/// Runs every eligible fixture of every plugin of `example`, each on a fresh
/// router; returns how many ran.
pub fn run_example(new_broker: impl Fn() -> Broker, example: &str) -> usize {
    let dir = crate::root().join("examples").join(example);
    // Compiled plugins are shared between tests (entries are keyed by
    // content): a Python or JavaScript plugin compiles once, not per fixture.
    let cache = crate::root().join("target/test-cache");
    crate::build_wasm("plugins");
    let config = RouterConfig::load(&dir.join("router.toml")).unwrap();
    switchyard::build_stale(&config, None).unwrap();
    let mut ran = 0;
    for plugin in &config.plugins {
        for file in switchyard::fixture_files(plugin).unwrap() {
            let fixture: Value =
                serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            if !eligible(&fixture) {
                continue;
            }
            let broker = new_broker();
            run_fixture(&broker, &dir, &plugin.name, &file, &cache);
            ran += 1;
        }
    }
    ran
}

/// How long after the first record on a topic that the router's own output
/// auto-created (`--no-create-topics`) the plugin subscribed to it handles
/// that record. `client` is added to the router's `[kafka.client]`.
pub fn auto_created_topic_routed_after(broker: &Broker, client: &str) -> Duration {
    broker.create_topic("chain.start", 1);
    let dir = tempfile::tempdir().unwrap();
    let config = crate::echo_config(
        dir.path(),
        r#"subscribe.types = ["chain.start", "echo.chain.start"]"#,
    );
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}\n[kafka.client]\n{client}\n")).unwrap();
    let router = Router::start_plain(
        &config,
        broker,
        &dir.path().join("state"),
        &dir.path().join("cache"),
        &["--no-create-topics"],
    );
    eventually("startup", Duration::from_secs(60), || {
        router.or_log(router.logged("router started"))
    });
    broker.client().produce(&[Rec {
        topic: "chain.start".into(),
        partition: Some(0),
        key: Some("k".into()),
        headers: vec![],
        value: br#"{"event_id":"c-1","event_type":"chain.start","data":{}}"#.to_vec(),
    }]);
    eventually("the first hop", Duration::from_secs(60), || {
        router.or_log(router.processed("chain.start") >= 1)
    });
    let produced = std::time::Instant::now();
    eventually("the auto-created topic", Duration::from_secs(90), || {
        router.or_log(router.processed("echo.chain.start") >= 1)
    });
    let took = produced.elapsed();
    router.stop();
    took
}
