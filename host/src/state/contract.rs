//! The contract tests every store must pass; public so that the end-to-end
//! tests can run them against a real PostgreSQL server.

use super::{DueTimer, Effect, LiveVersion, StateStore, Timer, TimerChange, VersionStore};
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
        timers: Default::default(),
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
    // A batch's marks, asked at once: only the processed ones answer.
    let keys = ["e1", "e3", "e4"].map(|id| ("p".to_string(), id.to_string()));
    let found = store.processed_many(&keys).unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[&keys[1]], b"out-e3".to_vec());
    // An event already processed is not applied again.
    let again = vec![effect("e3", &[], &[("a", Some(b"twice"))])];
    assert_eq!(store.commit(&[&[again]]).unwrap(), vec![0]);
    assert_eq!(store.get("p", "a").unwrap(), Some(b"z".to_vec()));
    assert_eq!(
        store.snapshot("p").unwrap(),
        BTreeMap::from([("a".to_string(), b"z".to_vec())])
    );
    check_timers(store);
}

/// A timer on `partition` of topic `in`, due at `due_ms`, carrying `payload`.
fn timer(partition: i32, due_ms: i64, payload: &str) -> Timer {
    Timer {
        due_ms,
        payload: payload.as_bytes().to_vec(),
        topic: "in".into(),
        partition,
        context: format!("ctx-{payload}").into_bytes(),
    }
}

/// A record of one call of `plugin` on event `id`, reading `reads` and
/// making the timer `changes`.
fn timing(
    plugin: &str,
    id: &str,
    reads: &[(&str, Option<&[u8]>)],
    changes: &[(&str, TimerChange)],
) -> Vec<Effect> {
    let mut e = effect(id, reads, &[]);
    e.plugin = plugin.into();
    e.timers = changes
        .iter()
        .map(|(name, change)| (name.to_string(), change.clone()))
        .collect();
    vec![e]
}

fn due(plugin: &str, name: &str, timer: Timer) -> DueTimer {
    DueTimer {
        plugin: plugin.into(),
        name: name.into(),
        timer,
    }
}

/// The (plugin, name, due time) of each of `timers`.
fn names(timers: &[DueTimer]) -> Vec<(&str, &str, i64)> {
    timers
        .iter()
        .map(|d| (d.plugin.as_str(), d.name.as_str(), d.timer.due_ms))
        .collect()
}

/// Timers: set, replace, cancel, fire, and the due queries.
fn check_timers(store: &dyn StateStore) {
    use TimerChange::{Cancel, Fired, Set};
    let (p0, p1, p2) = (
        ("in".to_string(), 0),
        ("in".to_string(), 1),
        ("in".to_string(), 2),
    );
    assert_eq!(store.pending_timers().unwrap(), BTreeMap::new());
    assert_eq!(store.next_due(&p0).unwrap(), None);
    assert_eq!(store.due_timers(&p0, i64::MAX, 10).unwrap(), vec![]);

    // Set: one record setting several, in two plugins and two partitions.
    let set = [
        timing(
            "p",
            "t1",
            &[],
            &[
                ("a", Set(timer(0, 100, "a"))),
                ("b", Set(timer(0, 50, "b"))),
                ("c", Set(timer(1, -10, "c"))),
            ],
        ),
        timing("q", "t1", &[], &[("a", Set(timer(0, 50, "qa")))]),
    ];
    assert_eq!(store.commit(&[&set]).unwrap(), vec![2]);
    // Ordered by due time, then plugin, then name; returned as stored.
    assert_eq!(
        store.due_timers(&p0, 100, 10).unwrap(),
        vec![
            due("p", "b", timer(0, 50, "b")),
            due("q", "a", timer(0, 50, "qa")),
            due("p", "a", timer(0, 100, "a")),
        ]
    );
    assert_eq!(
        names(&store.due_timers(&p0, 99, 10).unwrap()),
        [("p", "b", 50), ("q", "a", 50)]
    );
    assert_eq!(
        names(&store.due_timers(&p0, 100, 1).unwrap()),
        [("p", "b", 50)]
    );
    assert_eq!(store.due_timers(&p0, 49, 10).unwrap(), vec![]);
    assert_eq!(store.due_timers(&p0, 100, 0).unwrap(), vec![]);
    assert_eq!(
        names(&store.due_timers(&p1, i64::MAX, 10).unwrap()),
        [("p", "c", -10)]
    );
    assert_eq!(store.due_timers(&p2, i64::MAX, 10).unwrap(), vec![]);
    let other_topic = ("other".to_string(), 0);
    assert_eq!(
        store.due_timers(&other_topic, i64::MAX, 10).unwrap(),
        vec![]
    );
    assert_eq!(store.next_due(&p0).unwrap(), Some(50));
    assert_eq!(store.next_due(&p1).unwrap(), Some(-10));
    assert_eq!(store.next_due(&p2).unwrap(), None);
    assert_eq!(
        store.pending_timers().unwrap(),
        BTreeMap::from([("p".into(), (3, Some(-10))), ("q".into(), (1, Some(50)))])
    );

    // Replace: a new due time, and the partition of the last set.
    let moved = timing("p", "t2", &[], &[("a", Set(timer(1, 5, "a2")))]);
    assert_eq!(store.commit(&[&[moved]]).unwrap(), vec![1]);
    assert_eq!(
        names(&store.due_timers(&p0, i64::MAX, 10).unwrap()),
        [("p", "b", 50), ("q", "a", 50)]
    );
    assert_eq!(
        store.due_timers(&p1, i64::MAX, 10).unwrap(),
        vec![
            due("p", "c", timer(1, -10, "c")),
            due("p", "a", timer(1, 5, "a2")),
        ]
    );
    let later = timing("p", "t3", &[], &[("b", Set(timer(0, 70, "b2")))]);
    assert_eq!(store.commit(&[&[later]]).unwrap(), vec![1]);
    assert_eq!(
        names(&store.due_timers(&p0, i64::MAX, 10).unwrap()),
        [("q", "a", 50), ("p", "b", 70)]
    );

    // Cancel removes; cancelling what is not set is no error.
    let cancel = timing("p", "t4", &[], &[("c", Cancel), ("never", Cancel)]);
    assert_eq!(store.commit(&[&[cancel]]).unwrap(), vec![1]);
    assert_eq!(
        names(&store.due_timers(&p1, i64::MAX, 10).unwrap()),
        [("p", "a", 5)]
    );
    assert_eq!(store.next_due(&p1).unwrap(), Some(5));

    // A firing removes the timer only if it is still due at that time.
    let stale = timing("p", "t5", &[], &[("a", Fired { due_ms: 100 })]);
    assert_eq!(store.commit(&[&[stale]]).unwrap(), vec![1]);
    assert_eq!(store.next_due(&p1).unwrap(), Some(5));
    let fired = timing("p", "t6", &[], &[("a", Fired { due_ms: 5 })]);
    assert_eq!(store.commit(&[&[fired]]).unwrap(), vec![1]);
    assert_eq!(store.next_due(&p1).unwrap(), None);
    assert_eq!(store.due_timers(&p1, i64::MAX, 10).unwrap(), vec![]);

    // A record that fails the check changes no timer, nor do the records
    // after it in its batch; a record before it does.
    let ok = timing("p", "t7", &[], &[("d", Set(timer(2, 1, "d")))]);
    let failing = timing(
        "p",
        "t8",
        &[("a", Some(b"not-z"))],
        &[("e", Set(timer(2, 2, "e"))), ("b", Cancel)],
    );
    let after = timing("p", "t9", &[], &[("f", Set(timer(2, 3, "f")))]);
    assert_eq!(store.commit(&[&[ok, failing, after]]).unwrap(), vec![1]);
    assert_eq!(
        names(&store.due_timers(&p2, i64::MAX, 10).unwrap()),
        [("p", "d", 1)]
    );
    assert_eq!(store.next_due(&p0).unwrap(), Some(50));

    // Commit order: a later record's change to the same timer wins, within
    // a batch and across the batches of one commit; a firing of a timer set
    // earlier in the commit removes it only if the due times match.
    let first = [
        timing("p", "t10", &[], &[("g", Set(timer(2, 10, "g1")))]),
        timing("p", "t11", &[], &[("g", Set(timer(2, 20, "g2")))]),
        timing("p", "t12", &[], &[("h", Set(timer(2, 30, "h")))]),
        timing("p", "t13", &[], &[("h", Fired { due_ms: 30 })]),
        timing("p", "t14", &[], &[("i", Set(timer(2, 40, "i")))]),
        timing("p", "t15", &[], &[("i", Fired { due_ms: 39 })]),
    ];
    let second = [timing(
        "p",
        "t16",
        &[],
        &[("d", Cancel), ("j", Set(timer(2, 50, "j")))],
    )];
    let third = [timing("p", "t17", &[], &[("j", Set(timer(0, 60, "j2")))])];
    assert_eq!(
        store.commit(&[&first, &second, &third]).unwrap(),
        vec![6, 1, 1]
    );
    assert_eq!(
        store.due_timers(&p2, i64::MAX, 10).unwrap(),
        vec![
            due("p", "g", timer(2, 20, "g2")),
            due("p", "i", timer(2, 40, "i")),
        ]
    );
    assert_eq!(
        names(&store.due_timers(&p0, i64::MAX, 10).unwrap()),
        [("q", "a", 50), ("p", "j", 60), ("p", "b", 70)]
    );
    assert_eq!(
        store.pending_timers().unwrap(),
        BTreeMap::from([("p".into(), (4, Some(20))), ("q".into(), (1, Some(50)))])
    );
    // Timer changes leave the values alone.
    assert_eq!(store.get("p", "a").unwrap(), Some(b"z".to_vec()));
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
