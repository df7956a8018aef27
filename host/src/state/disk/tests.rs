//! The redb store's tests.

use super::migrate::{OLD_ORDER, OLD_OUTBOX, OLD_PROCESSED};
use super::*;
use crate::state::{Effect, Timer, TimerChange};
use redb::{ReadableTableMetadata, TableHandle};

#[test]
fn disk_store_keeps_the_contract_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let store = DiskStore::open(&path, 100).unwrap();
    super::super::contract::check_store(&store);
    super::super::contract::check_versions(&store);
    drop(store);
    let store = DiskStore::open(&path, 100).unwrap();
    assert_eq!(store.get("p", "a").unwrap(), Some(b"z".to_vec()));
    assert_eq!(
        store.processed("p", "e1").unwrap(),
        Some(b"out-e1".to_vec())
    );
    // The contract's timers outlive it too.
    assert_eq!(store.next_due(&("in".into(), 0)).unwrap(), Some(50));
    assert_eq!(store.pending_timers().unwrap().len(), 2);
}

#[test]
fn timer_keys_sort_as_their_fields() {
    let fields = [
        ("", -1, i64::MIN, "p", "n"),
        ("", 0, 0, "p", "n"),
        ("a", i32::MIN, 0, "p", "n"),
        ("a", -1, i64::MAX, "p", "n"),
        ("a", 0, i64::MIN, "p", "n"),
        ("a", 0, -1, "p", "n"),
        ("a", 0, 0, "", "z"),
        ("a", 0, 0, "p", ""),
        ("a", 0, 0, "p", "\0"),
        ("a", 0, 0, "p", "\0\0"),
        ("a", 0, 0, "p", "\u{1}"),
        ("a", 0, 0, "p", "n"),
        ("a", 0, 0, "p\0", "a"),
        ("a", 0, 0, "pa", ""),
        ("a", 0, 1, "a", "a"),
        ("a", i32::MAX, 0, "p", "n"),
        ("a\0", 0, 0, "p", "n"),
        ("a\0b", 0, 0, "p", "n"),
        ("ab", i32::MIN, 0, "p", "n"),
        ("é", 0, 0, "p", "n"),
    ];
    for pair in fields.windows(2) {
        assert!(pair[0] < pair[1], "fixture out of order: {pair:?}");
        let [a, b] = [pair[0], pair[1]].map(|(t, p, d, pl, n)| due_key(t, p, d, pl, n));
        assert!(a < b, "{:?} sorts after {:?}", pair[0], pair[1]);
    }
    let key = due_key("a", 3, -42, "p", "n");
    let prefix = partition_prefix("a", 3);
    assert!(key.starts_with(&prefix) && key < past(&prefix));
    assert_eq!(read_i64(&key[prefix.len()..]).unwrap(), -42);
    assert_eq!(past(&[1, 0xFF, 0xFF]), [2]);
}

#[test]
fn due_timers_reads_only_the_asked_partition() {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(&dir.path().join("t.redb"), 100).unwrap();
    // 20,000 timers over 20 partitions of two topics, due 0..1000 each.
    let (partitions, per) = (20, 1000);
    for p in 0..partitions {
        let (topic, partition) = (if p % 2 == 0 { "in" } else { "other" }, p / 2);
        let timers = (0..per)
            .map(|i| {
                let timer = Timer {
                    due_ms: (i * 7919 % per) as i64,
                    payload: vec![p as u8],
                    topic: topic.into(),
                    partition,
                    context: Vec::new(),
                };
                (format!("{topic}-{partition}-{i}"), TimerChange::Set(timer))
            })
            .collect();
        let effect = Effect {
            plugin: format!("p{}", p % 3),
            event_id: format!("e{p}"),
            reads: Default::default(),
            writes: Default::default(),
            outputs: Vec::new(),
            timers,
        };
        assert_eq!(store.commit(&[&[vec![effect]]]).unwrap(), vec![1]);
    }
    let asked = ("in".to_string(), 3);
    let started = std::time::Instant::now();
    let (due, read) = store.scan_due(&asked, 99, usize::MAX).unwrap();
    let took = started.elapsed();
    // Exactly that partition's 100 timers due by 99, in order, and only
    // they were read.
    assert_eq!(due.len(), 100);
    assert_eq!(read, 100);
    assert!(
        due.iter()
            .all(|d| (d.timer.topic.as_str(), d.timer.partition) == ("in", 3))
    );
    assert!(
        due.windows(2)
            .all(|w| w[0].timer.due_ms <= w[1].timer.due_ms)
    );
    assert_eq!(due.last().unwrap().timer.due_ms, 99);
    assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
    // A limit stops the scan there.
    let (first, read) = store.scan_due(&asked, i64::MAX, 10).unwrap();
    assert_eq!((first.len(), read), (10, 10));
    assert_eq!(store.next_due(&asked).unwrap(), Some(0));
    assert_eq!(store.next_due(&("in".to_string(), 10)).unwrap(), None);
    let pending = store.pending_timers().unwrap();
    assert_eq!(pending.values().map(|(n, _)| n).sum::<u64>(), 20_000);
    assert!(pending.values().all(|(_, earliest)| *earliest == Some(0)));
}

#[test]
fn processed_ids_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(&dir.path().join("s.redb"), 2).unwrap();
    let effect = |id: &str| Effect {
        plugin: "p".into(),
        event_id: id.into(),
        reads: Default::default(),
        writes: Default::default(),
        outputs: id.as_bytes().to_vec(),
        timers: Default::default(),
    };
    store
        .commit(&[&[vec![effect("e1")], vec![effect("e2")]]])
        .unwrap();
    store.commit(&[&[vec![effect("e3")]]]).unwrap();
    assert_eq!(store.processed("p", "e1").unwrap(), None);
    assert_eq!(store.processed("p", "e2").unwrap(), Some(b"e2".to_vec()));
    assert_eq!(store.processed("p", "e3").unwrap(), Some(b"e3".to_vec()));
}

#[test]
fn the_index_follows_the_window_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("window.redb");
    let keep = 50;
    let ids: Vec<String> = (0..400u64)
        .map(|n| format!("{:016x}", n.wrapping_mul(0x9E37_79B9_7F4A_7C15u64)))
        .collect();
    let store = DiskStore::open(&path, keep).unwrap();
    for chunk in ids.chunks(7) {
        let batch: Vec<Effect> = chunk.iter().map(|id| marked(id)).collect();
        let records: Vec<Vec<Effect>> = batch.into_iter().map(|e| vec![e]).collect();
        assert_eq!(store.commit(&[&records]).unwrap(), vec![records.len()]);
    }
    assert_eq!(store.marks.read().unwrap().len(), keep as usize);
    // The outputs' chunks (one a commit here) are pruned with the window:
    // the eight holding its 50 (350..=399, from 350 by sevens), none older.
    let chunks = store.db.begin_read().unwrap().open_table(OUTPUTS).unwrap();
    assert_eq!(chunks.len().unwrap(), 8);
    drop(chunks);
    let expect = |store: &DiskStore| {
        for (n, id) in ids.iter().enumerate() {
            let kept = n >= ids.len() - keep as usize;
            let want = kept.then(|| format!("out-{id}").into_bytes());
            assert_eq!(store.processed("p", id).unwrap(), want, "{n}");
        }
    };
    expect(&store);
    // A kept id is not applied again; a forgotten one is.
    let (forgotten, kept) = (&ids[0], &ids[ids.len() - 1]);
    let again = [vec![marked(kept)]];
    assert_eq!(store.commit(&[&again]).unwrap(), vec![0]);
    drop(store);
    let store = DiskStore::open(&path, keep).unwrap();
    expect(&store);
    let again = [vec![marked(forgotten)]];
    assert_eq!(store.commit(&[&again]).unwrap(), vec![1]);
    assert_eq!(store.marks.read().unwrap().len(), keep as usize);
}

#[test]
fn a_smaller_window_is_trimmed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trim.redb");
    let ids: Vec<String> = (0..120).map(|n| format!("id-{n}")).collect();
    let store = DiskStore::open(&path, 50).unwrap();
    for id in &ids {
        let q = Effect {
            plugin: "q".into(),
            ..marked(id)
        };
        let records = [vec![marked(id)], vec![q]];
        assert_eq!(store.commit(&[&records]).unwrap(), vec![2]);
    }
    drop(store);
    let store = DiskStore::open(&path, 10).unwrap();
    assert_eq!(store.marks.read().unwrap().len(), 20);
    for (n, id) in ids.iter().enumerate() {
        let want = (n >= 110).then(|| format!("out-{id}").into_bytes());
        assert_eq!(store.processed("p", id).unwrap(), want, "p {n}");
        assert_eq!(store.processed("q", id).unwrap(), want, "q {n}");
    }
    let txn = store.db.begin_read().unwrap();
    assert_eq!(txn.open_table(IDS).unwrap().len().unwrap(), 20);
    assert_eq!(txn.open_table(OUTPUTS).unwrap().len().unwrap(), 20);
    // The next commits keep the new window.
    let next = [vec![marked("id-120")]];
    assert_eq!(store.commit(&[&next]).unwrap(), vec![1]);
    assert_eq!(store.processed("p", &ids[110]).unwrap(), None);
    assert_eq!(store.marks.read().unwrap().len(), 20);
}

/// A processed mark of `id` for plugin `p`, its outputs `out-{id}`.
pub(super) fn marked(id: &str) -> Effect {
    Effect {
        plugin: "p".into(),
        event_id: id.into(),
        reads: Default::default(),
        writes: Default::default(),
        outputs: format!("out-{id}").into_bytes(),
        timers: Default::default(),
    }
}

/// Writes marks of plugin `p` as a router of the first layout does: each
/// (sequence, id) with outputs `out-{id}`.
fn write_first_layout(path: &std::path::Path, marks: &[(u64, &str)]) {
    let db = Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut processed = txn.open_table(OLD_PROCESSED).unwrap();
        let mut order = txn.open_table(OLD_ORDER).unwrap();
        for (seq, id) in marks {
            processed
                .insert(join("p", id).as_str(), format!("out-{id}").as_bytes())
                .unwrap();
            order.insert(("p", *seq), *id).unwrap();
        }
    }
    txn.commit().unwrap();
}

#[test]
fn marks_of_the_first_layout_are_migrated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.redb");
    write_first_layout(&path, &[(0, "e1"), (1, "e2")]);
    let store = DiskStore::open(&path, 2).unwrap();
    assert_eq!(
        store.processed("p", "e1").unwrap(),
        Some(b"out-e1".to_vec())
    );
    assert_eq!(
        store.processed("p", "e2").unwrap(),
        Some(b"out-e2".to_vec())
    );
    // The window goes on from the migrated sequence: e3 pushes e1 out.
    assert_eq!(store.commit(&[&[vec![marked("e3")]]]).unwrap(), vec![1]);
    assert_eq!(store.processed("p", "e1").unwrap(), None);
    assert_eq!(
        store.processed("p", "e3").unwrap(),
        Some(b"out-e3".to_vec())
    );
    drop(store);
    let db = Database::create(&path).unwrap();
    let names: Vec<String> = db
        .begin_read()
        .unwrap()
        .list_tables()
        .unwrap()
        .map(|t| t.name().to_string())
        .collect();
    assert!(!names.contains(&"processed".to_string()), "{names:?}");
    assert!(!names.contains(&"processed_order".to_string()), "{names:?}");
}

#[test]
fn marks_an_older_router_wrote_after_a_migration_do_not_overwrite_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("both.redb");
    let store = DiskStore::open(&path, 10).unwrap();
    store
        .commit(&[&[vec![marked("new1")], vec![marked("new2")]]])
        .unwrap();
    drop(store);
    // Older routers, which know only the first or the second layout,
    // number from 0.
    write_first_layout(&path, &[(0, "old")]);
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let mut outbox = txn.open_table(OLD_OUTBOX).unwrap();
        outbox
            .insert(("p", 0), ("older", b"out-older".as_slice()))
            .unwrap();
        drop(outbox);
        txn.commit().unwrap();
    }
    let store = DiskStore::open(&path, 10).unwrap();
    for id in ["new1", "new2", "old", "older"] {
        assert_eq!(
            store.processed("p", id).unwrap(),
            Some(format!("out-{id}").into_bytes()),
            "{id}"
        );
    }
}

#[test]
fn pruning_an_older_entry_keeps_the_mark_of_a_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("twice.redb");
    // `x` is marked at 0; an older router then marks it again, and the
    // migration puts that at 1.
    let store = DiskStore::open(&path, 2).unwrap();
    store.commit(&[&[vec![marked("x")]]]).unwrap();
    drop(store);
    write_first_layout(&path, &[(0, "x")]);
    let store = DiskStore::open(&path, 2).unwrap();
    // `y` at 2 prunes entry 0, the older `x`: the mark, now at 1, stays.
    assert_eq!(store.commit(&[&[vec![marked("y")]]]).unwrap(), vec![1]);
    assert_eq!(store.processed("p", "x").unwrap(), Some(b"out-x".to_vec()));
    assert_eq!(store.processed("p", "y").unwrap(), Some(b"out-y".to_vec()));
}

#[test]
fn lookups_while_commits_prune_find_each_id_with_its_own_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(DiskStore::open(&dir.path().join("race.redb"), 20).unwrap());
    let committed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = {
        let (store, committed) = (store.clone(), committed.clone());
        std::thread::spawn(move || {
            for n in 0..400 {
                let records = [vec![marked(&format!("e{n}"))]];
                assert_eq!(store.commit(&[&records]).unwrap(), vec![1]);
                committed.store(n + 1, std::sync::atomic::Ordering::Release);
            }
        })
    };
    let mut seen = 0;
    while !writer.is_finished() {
        let done = committed.load(std::sync::atomic::Ordering::Acquire);
        let keys: Vec<(String, String)> = (done.saturating_sub(30)..done + 5)
            .map(|n| ("p".to_string(), format!("e{n}")))
            .collect();
        for ((_, id), outputs) in store.processed_many(&keys).unwrap() {
            assert_eq!(outputs, format!("out-{id}").into_bytes());
            seen += 1;
        }
        // Committed before the lookup: found, unless 20 more commits have
        // pushed it out of the window since.
        if done > 0 {
            let last = format!("e{}", done - 1);
            let found = store.processed("p", &last).unwrap().is_some();
            let now = committed.load(std::sync::atomic::Ordering::Acquire);
            assert!(found || now >= done + 19, "{last}");
        }
    }
    writer.join().unwrap();
    assert!(seen > 0);
}

#[test]
fn a_commit_larger_than_the_window_keeps_each_plugins_newest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("large.redb");
    let store = DiskStore::open(&path, 3).unwrap();
    let ids: Vec<String> = (0..10).map(|n| format!("id-{n}")).collect();
    // p marks all ten, q only the even ones, interleaved in one commit.
    let records: Vec<Vec<Effect>> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| {
            let q = Effect {
                plugin: "q".into(),
                ..marked(id)
            };
            if n % 2 == 0 {
                vec![marked(id), q]
            } else {
                vec![marked(id)]
            }
        })
        .collect();
    assert_eq!(store.commit(&[&records]).unwrap(), vec![10]);
    let expect = |store: &DiskStore| {
        for (n, id) in ids.iter().enumerate() {
            let out = || Some(format!("out-{id}").into_bytes());
            let p = if n >= 7 { out() } else { None };
            let q = if [4, 6, 8].contains(&n) { out() } else { None };
            assert_eq!(store.processed("p", id).unwrap(), p, "p {n}");
            assert_eq!(store.processed("q", id).unwrap(), q, "q {n}");
        }
    };
    expect(&store);
    assert_eq!(store.marks.read().unwrap().len(), 6);
    drop(store);
    let store = DiskStore::open(&path, 3).unwrap();
    expect(&store);
    let txn = store.db.begin_read().unwrap();
    assert_eq!(txn.open_table(IDS).unwrap().len().unwrap(), 6);
    // One chunk a plugin holds its outputs, the pruned ones' with them.
    assert_eq!(txn.open_table(OUTPUTS).unwrap().len().unwrap(), 2);
}
