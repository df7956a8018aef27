//! The engine against misbehaving guests: each failure is typed, confined to
//! its call, and the same engine then runs a good plugin normally.

use switchyard_testkit as kit;

use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;
use switchyard::{CallInput, Engine, EngineOptions, Fault, Limits, LoadError, Origin};
use switchyard::{Event, Record};
use switchyard::{MemoryStore, StateRead};

fn event() -> Event {
    let value = json!({
        "event_id": "6f1c2b0e-1d7a-4c39-9a57-3f0f9d1e2a11",
        "event_type": "booking.booking.created",
        "timestamp": "2025-11-24T10:30:00Z",
        "data": {"booking_id": "b-1"}
    });
    switchyard::decode(&Record {
        topic: "booking.booking.created".into(),
        value: Some(value.to_string().into_bytes()),
        ..Record::default()
    })
    .unwrap()
}

fn engine(cache: &std::path::Path) -> Engine {
    Engine::new(EngineOptions {
        cache_dir: Some(cache.to_path_buf()),
        ..EngineOptions::default()
    })
    .unwrap()
}

fn call(engine: &Engine, guest: &str, limits: Limits) -> Result<Vec<Value>, Fault> {
    let version = engine.load_file(guest, &kit::guest(guest)).unwrap();
    let store: Arc<dyn StateRead> = Arc::new(MemoryStore::new());
    let config = Arc::new(Map::new());
    let out = engine.call(
        &version,
        &event(),
        CallInput {
            state: &store,
            config: &config,
            limits,
        },
    )?;
    Ok(out
        .result
        .expect("handler returned ok")
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect())
}

#[test]
fn each_fault_is_typed_and_the_engine_keeps_working() {
    let cache = tempfile::tempdir().unwrap();
    let engine = engine(cache.path());
    let limits = Limits {
        timeout: Duration::from_millis(200),
        memory_bytes: 16 << 20,
    };

    match call(&engine, "trap", limits) {
        Err(Fault::Trap(m)) => assert!(m.contains("boom on booking.booking.created"), "{m}"),
        other => panic!("trap guest: {other:?}"),
    }
    assert_eq!(
        call(&engine, "spin", limits),
        Err(Fault::Timeout(Duration::from_millis(200)))
    );
    assert_eq!(call(&engine, "hog", limits), Err(Fault::Memory(16 << 20)));
    match call(&engine, "deep", limits) {
        Err(Fault::Trap(m)) => assert!(m.contains("call stack exhausted"), "{m}"),
        other => panic!("deep guest: {other:?}"),
    }

    let emitted = call(&engine, "echo", limits).expect("a good plugin still runs");
    assert_eq!(emitted[0]["data"]["booking_id"], "b-1");
    // The wall clock reads the event's time (2025-11-24T10:30:00Z), not now.
    assert_eq!(emitted[0]["now"], 1_763_980_200u64);
    // Randomness is seeded from the event id: the same event, the same bytes.
    assert_eq!(call(&engine, "echo", limits).unwrap(), emitted);
}

#[test]
fn wrong_world_and_non_components_are_rejected_with_the_reason() {
    let cache = tempfile::tempdir().unwrap();
    let engine = engine(cache.path());
    match engine.load_file("w", &kit::guest("wrong_world")) {
        Err(LoadError::WrongWorld(m)) => {
            assert!(m.contains("export `handle` has the wrong type"), "{m}");
            assert!(m.contains("expected `record` found `string`"), "{m}");
        }
        other => panic!("wrong world: {other:?}"),
    }
    assert!(matches!(
        engine.load("x", b"hello"),
        Err(LoadError::NotWasm)
    ));
    let core_module = b"\0asm\x01\0\0\0";
    assert!(matches!(
        engine.load("x", core_module),
        Err(LoadError::CoreModule)
    ));
}

#[test]
fn compiled_components_are_cached_across_engines() {
    let cache = tempfile::tempdir().unwrap();
    let wasm = std::fs::read(kit::guest("echo")).unwrap();
    let first = engine(cache.path());
    assert_eq!(first.load("echo", &wasm).unwrap().origin, Origin::Compiled);
    assert_eq!(first.compiles(), 1);
    drop(first);
    let second = engine(cache.path());
    let version = second.load("echo", &wasm).unwrap();
    assert_eq!(version.origin, Origin::Cached);
    assert_eq!(second.compiles(), 0, "a restart must not recompile");
    // A changed file is a different key: it compiles.
    let other = std::fs::read(kit::guest("trap")).unwrap();
    assert_eq!(
        second.load("trap", &other).unwrap().origin,
        Origin::Compiled
    );
}

#[test]
fn staged_writes_come_back_only_from_successful_calls() {
    let cache = tempfile::tempdir().unwrap();
    let engine = engine(cache.path());
    let store: Arc<dyn StateRead> = Arc::new(MemoryStore::new());
    let config = Arc::new(Map::new());
    let version = engine.load_file("echo", &kit::guest("echo")).unwrap();
    let input = || CallInput {
        state: &store,
        config: &config,
        limits: Limits::default(),
    };
    let out = engine.call(&version, &event(), input()).unwrap();
    assert_eq!(out.writes.get("count"), Some(&Some(b"1".to_vec())));
    // Nothing is applied by the engine itself: the store is unchanged.
    assert_eq!(store.get("echo", "count").unwrap(), None);
}

/// What the host holds for a call (staged state, log lines, emits) counts
/// against the plugin's memory cap: a plugin that would make the host
/// allocate without limit fails with `memory`, and the next call is fine.
#[test]
fn host_allocations_count_against_the_memory_cap() {
    let cache = tempfile::tempdir().unwrap();
    let engine = engine(cache.path());
    let limits = Limits {
        timeout: Duration::from_secs(10),
        memory_bytes: 16 << 20,
    };
    let version = engine.load_file("rogue", &kit::guest("rogue")).unwrap();
    let store: Arc<dyn StateRead> = Arc::new(MemoryStore::new());
    let config = Arc::new(Map::new());
    let run = |mode: &str| {
        let mut e = event();
        e.data = json!({ "mode": mode }).to_string();
        engine
            .call(
                &version,
                &e,
                CallInput {
                    state: &store,
                    config: &config,
                    limits,
                },
            )
            .map(|out| out.result.map(|emits| emits.len()))
    };
    for mode in ["hoard", "chatter", "flood"] {
        assert_eq!(
            run(mode).err(),
            Some(Fault::Memory(16 << 20)),
            "{mode}: the host budget holds"
        );
    }
    assert_eq!(run("fine").unwrap(), Ok(1), "the next call runs normally");
}

/// A plugin that prints a couple of hundred bytes to stdout and to stderr
/// on every call keeps working for longer than a warm instance lives: a
/// call's output is kept for that call only, never refused. (Kept for the
/// life of the instance in a 1 MiB pipe, it turned into a trap some 5,000
/// calls in.)
#[test]
fn a_plugin_that_prints_on_every_call_never_fails_for_it() {
    let cache = tempfile::tempdir().unwrap();
    let engine = engine(cache.path());
    let version = engine.load_file("rogue", &kit::guest("rogue")).unwrap();
    let store: Arc<dyn StateRead> = Arc::new(MemoryStore::new());
    let config = Arc::new(Map::new());
    let mut instance = engine.instantiate(&version).unwrap();
    let calls = switchyard::RECYCLE_AFTER + 10;
    for i in 0..calls {
        let mut e = event();
        e.id = format!("print-{i}");
        e.data = json!({ "mode": "print" }).to_string();
        let out = instance.call(
            &e,
            CallInput {
                state: &store,
                config: &config,
                limits: Limits::default(),
            },
        );
        assert!(
            matches!(&out, Ok(o) if matches!(&o.result, Ok(emits) if emits.len() == 1)),
            "call {i}: {:?}",
            out.map(|o| o.result.map(|e| e.len()))
        );
    }
}

/// A full instance pool is `busy` (wait and retry), never a trap: the engine
/// recognises the pooling allocator's own error type, not its wording.
#[test]
fn a_full_instance_pool_is_busy_not_a_fault_of_the_plugin() {
    let cache = tempfile::tempdir().unwrap();
    let engine = Engine::new(EngineOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        max_memory_bytes: 16 << 20,
        pool_size: 1,
    })
    .unwrap();
    let version = engine.load_file("echo", &kit::guest("echo")).unwrap();
    let held = engine.instantiate(&version).expect("the one slot");
    match engine.instantiate(&version) {
        Err(fault @ Fault::Busy(_)) => assert!(fault.is_transient(), "{fault}"),
        Err(other) => panic!("expected busy, got {other}"),
        Ok(_) => panic!("a second instance fit in a pool of one"),
    }
    drop(held);
    engine
        .instantiate(&version)
        .expect("the slot is free again");
}

/// A plugin built against `switchyard:plugin@0.1.0` (a binary kept from
/// before timers, `tests/guests/v0.1.0/echo.wasm`) still loads and runs, its
/// state and emits as before; a 0.2.0 build of the same guest does too.
#[test]
fn a_plugin_built_against_contract_0_1_0_still_loads_and_runs() {
    let cache = tempfile::tempdir().unwrap();
    let engine = engine(cache.path());
    let old = kit::root().join("tests/guests/v0.1.0/echo.wasm");
    let store: Arc<dyn StateRead> = Arc::new(MemoryStore::new());
    let config = Arc::new(Map::new());
    for (name, path) in [("echo-0.1.0", old), ("echo", kit::guest("echo"))] {
        let version = engine.load_file(name, &path).unwrap();
        let out = engine
            .call(
                &version,
                &event(),
                CallInput {
                    state: &store,
                    config: &config,
                    limits: Limits::default(),
                },
            )
            .unwrap();
        let emits = out.result.expect("handled");
        assert_eq!(emits[0].ty, "echo.booking.booking.created", "{name}");
        let data: Value = serde_json::from_str(&emits[0].data).unwrap();
        assert_eq!(data["count"], 1, "{name}: {data}");
        assert_eq!(data["data"]["booking_id"], "b-1", "{name}: {data}");
    }
}
