//! The contract tests every store must pass; public so that the end-to-end
//! tests can run them against a real PostgreSQL server.

use super::{Effect, LiveVersion, StateStore, VersionStore};
use std::collections::BTreeMap;

fn effect(id: &str, reads: &[(&str, Option<&[u8]>)], writes: &[(&str, Option<&[u8]>)]) -> Effect {
    let map = |kv: &[(&str, Option<&[u8]>)]| {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.map(<[u8]>::to_vec)))
            .collect()
    };
    Effect {
        plugin: "p".into(),
        event_id: id.into(),
        reads: map(reads),
        writes: map(writes),
        outputs: format!("out-{id}").into_bytes(),
    }
}

/// The contract every store keeps; run against each implementation.
pub fn check_store(store: &dyn StateStore) {
    let setup = vec![effect("e0", &[], &[("gone", Some(b"1"))])];
    assert_eq!(store.commit(&[&[setup]]).unwrap(), vec![1]);
    assert_eq!(store.processed("p", "e1").unwrap(), None);
    let e1 = vec![effect(
        "e1",
        &[("a", None)],
        &[("a", Some(b"x")), ("gone", None)],
    )];
    // e2 read what e1 wrote earlier in the same batch.
    let e2 = vec![effect("e2", &[("a", Some(b"x"))], &[("a", Some(b"y"))])];
    assert_eq!(store.commit(&[&[e1, e2]]).unwrap(), vec![2]);
    assert_eq!(store.get("p", "a").unwrap(), Some(b"y".to_vec()));
    assert_eq!(store.get("p", "gone").unwrap(), None);
    assert_eq!(store.get("other", "a").unwrap(), None);
    assert_eq!(
        store.processed("p", "e1").unwrap(),
        Some(b"out-e1".to_vec())
    );
    // Two partitions in one group commit: the first wins; the second read
    // `a` before it changed, so it stops there and changes nothing.
    let winner = vec![effect("e3", &[("a", Some(b"y"))], &[("a", Some(b"z"))])];
    let stale = vec![effect("e4", &[("a", Some(b"y"))], &[("a", Some(b"lost"))])];
    let after = vec![effect("e5", &[], &[("b", Some(b"1"))])];
    assert_eq!(
        store.commit(&[&[winner], &[stale, after]]).unwrap(),
        vec![1, 0]
    );
    assert_eq!(store.get("p", "a").unwrap(), Some(b"z".to_vec()));
    assert_eq!(store.get("p", "b").unwrap(), None);
    assert_eq!(store.processed("p", "e4").unwrap(), None);
    // An event already processed is not applied again.
    let again = vec![effect("e3", &[], &[("a", Some(b"twice"))])];
    assert_eq!(store.commit(&[&[again]]).unwrap(), vec![0]);
    assert_eq!(store.get("p", "a").unwrap(), Some(b"z".to_vec()));
    assert_eq!(
        store.snapshot("p").unwrap(),
        BTreeMap::from([("a".to_string(), b"z".to_vec())])
    );
}

/// Stored versions: publish, read back, change.
pub fn check_versions(store: &dyn VersionStore) {
    assert_eq!(store.live().unwrap(), vec![]);
    let v1 = LiveVersion {
        plugin: "p".into(),
        hash: "h1".into(),
        origin: "file".into(),
        paused: false,
    };
    store.publish(&v1, Some(b"one")).unwrap();
    let v2 = LiveVersion {
        hash: "h2".into(),
        origin: "upload".into(),
        ..v1.clone()
    };
    store.publish(&v2, Some(b"two")).unwrap();
    let paused = LiveVersion {
        paused: true,
        ..v2.clone()
    };
    store.publish(&paused, None).unwrap();
    assert_eq!(store.live().unwrap(), vec![paused]);
    assert_eq!(store.wasm("h1").unwrap(), Some(b"one".to_vec()));
    assert_eq!(store.wasm("h2").unwrap(), Some(b"two".to_vec()));
    assert_eq!(store.wasm("h3").unwrap(), None);
}
