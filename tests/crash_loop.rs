//! The crash loop, modelled on how Kafka Streams tests exactly-once: a
//! driver feeds uniquely numbered events, the router is killed with
//! `kill -9` at random moments and restarted each time, and a verifier reads
//! every output and dead-letter topic back and counts.
//!
//! Three plugins run: the `counter` guest, which is not idempotent by
//! itself (every event takes the next number from a counter in state, so an
//! event applied twice would skip a number); the receipt plugin, whose
//! receipt numbers must be gapless; and the waitlist plugin (catalog 001),
//! whose queue after every promotion must equal what a fresh single run
//! (one router, never killed, on a broker of its own) reports for the same
//! events.
//!
//! The test suite runs a short loop on each broker: on the embedded one
//! with two instances sharing PostgreSQL; and on Apache Kafka with two
//! static members sharing PostgreSQL, once with exactly-once, where a
//! read_committed verifier must find no duplicate at all and no
//! transaction left open, and once with at-least-once, whose redelivered
//! duplicates it counts. The Tansu loop (durable storage, one static
//! member) runs behind `scripts/tansu.sh`. The soak runs are behind
//! `scripts/soak.sh` (see RELIABILITY.md), set by environment:
//! `CRASH_EVENTS` (default 3000), `CRASH_KILLS` (3), `CRASH_INSTANCES` (2
//! on the embedded broker, sharing a PostgreSQL store the test starts; 1
//! keeps redb, the default on Tansu), `CRASH_SEED`,
//! and `CRASH_CLIENT` (lines added to `[kafka.client]`, such as
//! `"debug" = "cgrp"`; `E2E_VERBOSE=1 E2E_ROUTER_LOG=info,librdkafka=debug`
//! then shows them).
//! With two instances, every kill also moves partitions between them, some
//! of them paused for back-pressure at the time.

use switchyard_testkit as kit;

use kit::postgres::Postgres;
use kit::workload::{self, count_event, payment_event};
use kit::{Broker, Kcat, Rec, Router, eventually};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator, so a failing run can be repeated with
/// its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

const PARTITIONS: i32 = 6;

/// Produces `lines` to `topic`, spread over its partitions by key.
fn feed(broker: &Broker, topic: &str, lines: Vec<(String, String)>) {
    match broker {
        Broker::Mock(_) => Kcat(broker.bootstrap()).produce_lines(topic, None, &lines),
        Broker::Tansu { .. } | Broker::Kafka(_) => {
            for chunk in lines.chunks(20_000) {
                let records: Vec<Rec> = chunk
                    .iter()
                    .map(|(k, v)| Rec {
                        topic: topic.into(),
                        partition: None,
                        key: Some(k.clone()),
                        headers: vec![],
                        value: v.clone().into_bytes(),
                    })
                    .collect();
                broker.client().produce(&records);
            }
        }
    }
}

/// The broker a crash loop runs on, and with which guarantee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum On {
    /// librdkafka's mock cluster, at-least-once.
    Embedded,
    /// Tansu with durable storage, at-least-once.
    Tansu,
    /// Apache Kafka, at-least-once.
    Kafka,
    /// Apache Kafka, exactly-once.
    KafkaExactlyOnce,
}

#[test]
fn a_crash_loop_of_kill_9s_on_the_embedded_broker_loses_nothing_and_applies_everything_once() {
    crash_loop(On::Embedded, 2);
}

#[test]
#[ignore = "Tansu runs behind scripts/tansu.sh"]
fn a_crash_loop_of_kill_9s_on_tansu_loses_nothing_and_applies_everything_once() {
    crash_loop(On::Tansu, 1);
}

#[test]
fn a_crash_loop_of_kill_9s_on_apache_kafka_with_exactly_once_has_no_duplicate() {
    crash_loop(On::KafkaExactlyOnce, 2);
}

#[test]
fn a_crash_loop_of_kill_9s_on_apache_kafka_with_at_least_once_counts_its_duplicates() {
    crash_loop(On::Kafka, 2);
}

/// Runs the crash loop on `on`, with `instances` routers unless
/// `CRASH_INSTANCES` says otherwise.
fn crash_loop(on: On, instances: u64) {
    let tansu = on == On::Tansu;
    let kafka = matches!(on, On::Kafka | On::KafkaExactlyOnce);
    let exactly_once = on == On::KafkaExactlyOnce;
    let events = env("CRASH_EVENTS", 3000) as usize;
    let payments = (events / 10).max(10);
    let rooms = (events / 600).max(5);
    let cancellations = rooms * workload::WAITLIST_STEPS / 3;
    let kills = env("CRASH_KILLS", 3) as usize;
    let instances = env("CRASH_INSTANCES", instances).max(1) as usize;
    let seed = env("CRASH_SEED", 0x5eed_1234_abcd).max(1);
    let mut rng = Rng(seed);

    let broker = match on {
        On::Tansu => Broker::tansu_durable(),
        On::Kafka | On::KafkaExactlyOnce => Broker::kafka(),
        On::Embedded => Broker::mock(),
    };
    let topics = [
        "count.in",
        "counted",
        "payment.payment.succeeded",
        "receipt.receipt.generated",
        "booking-events",
        "waitlist-events",
    ];
    for t in topics {
        // The embedded broker keeps about 5 MB per partition: outputs, with
        // their headers and redelivered copies, are spread wider to stay
        // under it at 100,000 events.
        let partitions = if ["count.in", "payment.payment.succeeded", "booking-events"].contains(&t)
        {
            PARTITIONS
        } else {
            8 * PARTITIONS
        };
        broker.create_topic(t, partitions);
        broker.create_topic(&format!("{t}.dlq"), PARTITIONS);
    }
    let pg = (instances > 1).then(Postgres::start);
    let url = pg.as_ref().map(Postgres::url);
    let dir = tempfile::tempdir().unwrap();
    // The embedded broker answers its group coordinator at once, so a 6 s
    // session brings a killed instance's partitions back quickly. Tansu on
    // libsql answers slowly under load (every heartbeat and offset commit
    // is a database write), and was seen silent for over 20 s before its
    // header table was indexed; a 6 s session would turn such stalls into
    // endless rebalances, so there the router keeps librdkafka's 45 s
    // default, as a user's would.
    let session = if tansu {
        ""
    } else {
        "\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"500\""
    };
    let patience = Duration::from_secs(if tansu { 180 } else { 30 });
    // At-least-once on Apache Kafka must show the duplicates a kill leaves:
    // the records its victim routed after its last offset commit. The
    // router commits stored offsets every second, and routes this test's
    // few thousand events in less: a kill 0.2-1.5 s after the victim's
    // first record then often came after its last commit, with nothing to
    // redeliver (seen once, with three plugin workers on 2 cores). Offsets
    // committed every 20 s leave a kill in the loop's first seconds
    // something to redeliver, whatever the router's speed.
    let commits = if kafka && !exactly_once {
        "\"auto.commit.interval.ms\" = \"20000\""
    } else {
        ""
    };
    let client_extra = std::env::var("CRASH_CLIENT").unwrap_or_default();
    let guarantee = if exactly_once {
        "exactly-once"
    } else {
        "at-least-once"
    };
    let config = workload::write_config(
        dir.path(),
        &format!(
            r#"[kafka]
guarantee = "{guarantee}"
batch_records = 200
# Small queues: partitions are paused for back-pressure all the time, and
# revoked and reassigned while paused.
queue_records = 100

[kafka.client]
{session}
{commits}
{client_extra}"#
        ),
        &[
            workload::counter_plugin(),
            workload::receipt_plugin(),
            workload::waitlist_plugin("waitlist-events"),
        ],
    );
    let start = |n: usize| {
        let state = dir.path().join(format!("state-{n}"));
        let mut flags = vec![];
        if !broker.router_creates_topics() {
            flags.push("--no-create-topics");
        }
        if let Some(url) = &url {
            flags.extend(["--state-url", url.as_str()]);
        }
        // On Tansu and Apache Kafka each instance is a static member: its
        // restart takes its partitions back from the killed process at once
        // (and, with exactly-once, its stable transactional id aborts what
        // the killed process left open). Tansu 0.6 also does not rebalance
        // a group whose dead dynamic member expires after the survivors
        // have synced, so they would wait with no partitions.
        let id = format!("crash-{n}");
        if tansu || kafka {
            flags.extend(["--instance-id", id.as_str()]);
        }
        Router::start_plain(&config, &broker, &state, &dir.path().join("cache"), &flags)
    };

    let started = Instant::now();
    feed(&broker, "count.in", (0..events).map(count_event).collect());
    feed(
        &broker,
        "payment.payment.succeeded",
        (0..payments).map(|i| payment_event('3', i)).collect(),
    );
    feed(&broker, "booking-events", workload::waitlist_events(rooms));

    // Instance `n` keeps its state folder across its restarts, as a machine
    // would; with PostgreSQL they all share the store.
    let mut routers: Vec<Router> = (0..instances).map(start).collect();
    let (mut survived, mut mid_stream) = (0, 0);
    for _ in 0..kills {
        // Kill mid-stream: once the victim has routed something since it
        // started (or after `patience`), at a random moment up to 1.5 s
        // later.
        let victim = rng.below(instances as u64) as usize;
        let since = Instant::now();
        while routers[victim].records() == 0 && since.elapsed() < patience {
            std::thread::sleep(Duration::from_millis(50));
        }
        if routers[victim].records() > 0 {
            mid_stream += 1;
        }
        std::thread::sleep(Duration::from_millis(200 + rng.below(1300)));
        routers.remove(victim).kill9();
        routers.insert(victim, start(victim));
        survived += 1;
    }

    // Waits until every input has an output. (A read of Tansu's topics
    // takes minutes at 100,000 events.)
    let client = broker.client();
    // A read competes with the routers for the broker (on Tansu it is
    // most of the broker's work): eventually waits as long as it took.
    eventually(
        "every input's output",
        Duration::from_secs(env("CRASH_TIMEOUT_SECS", 300)),
        || {
            let counted = workload::outputs(&*client, "counted", "event");
            let receipts = workload::outputs(&*client, "receipt.receipt.generated", "payment_id");
            let promoted = workload::promotions(&*client, "waitlist-events");
            if counted.len() >= events
                && receipts.len() >= payments
                && promoted.len() >= cancellations
            {
                return Ok(());
            }
            Err(format!(
                "outputs missing: {} of {events} counts, {} of {payments} receipts, \
                 {} of {cancellations} promotions (seed {seed})\n{}",
                counted.len(),
                receipts.len(),
                promoted.len(),
                routers
                    .iter()
                    .map(Router::log)
                    .collect::<Vec<_>>()
                    .join("\n---\n")
            ))
        },
    );
    for r in routers {
        r.stop();
    }
    let took = started.elapsed();

    // The verifier, once the routers are stopped, so that it sees every
    // redelivered copy.
    let counted = workload::outputs(&*client, "counted", "event");
    let receipts = workload::outputs(&*client, "receipt.receipt.generated", "payment_id");
    let promoted = workload::promotions(&*client, "waitlist-events");
    let dead: usize = topics
        .iter()
        .map(|t| client.consume(&format!("{t}.dlq")).len())
        .sum();
    let duplicates: usize = counted
        .values()
        .chain(receipts.values())
        .chain(promoted.values())
        .map(|copies| copies.len() - 1)
        .sum();
    let open: Vec<String> = if kafka {
        let py = broker.py();
        topics
            .iter()
            .flat_map(|t| [t.to_string(), format!("{t}.dlq")])
            .flat_map(|t| {
                py.open_transactions(&t)
                    .into_iter()
                    .map(move |(p, lso, hw)| format!("{t}[{p}] lso {lso} < hw {hw}"))
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut differing = workload::differing(&counted);
    differing.extend(workload::differing(&receipts));
    differing.extend(workload::differing(&promoted));
    let fresh = fresh_waitlist(rooms, cancellations, &dir.path().join("cache"));
    let queues = workload::queues(&promoted);
    let queue_mismatches = fresh
        .iter()
        .filter(|(booking, queue)| queues.get(*booking) != Some(queue))
        .count()
        + queues.keys().filter(|b| !fresh.contains_key(*b)).count();
    let numbers: BTreeSet<u64> = workload::first_values(&counted, "n")
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    let issued: BTreeSet<String> = workload::first_values(&receipts, "receipt_number")
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    let counter_exact = numbers == (1..=events as u64).collect::<BTreeSet<_>>();
    let receipts_gapless = issued
        == (1..=payments)
            .map(|n| format!("RCP-2025-{n:06}"))
            .collect::<BTreeSet<_>>();
    let lost = (events + payments + cancellations)
        .saturating_sub(counted.len() + receipts.len() + promoted.len());
    let table = format!(
        "| measure | value |\n|---|---|\n\
         | broker | {} |\n| state | {} |\n| seed | {seed:#x} |\n\
         | inputs | {} ({events} counts, {payments} payments, {} waitlist events in {rooms} rooms) |\n\
         | kill -9s survived | {survived} ({mid_stream} after the victim had routed records) |\n\
         | inputs routed | {} with their output found, and {} waitlist joins (they emit nothing; the queues account for them) |\n| **inputs lost** | **{lost}** |\n\
         | guarantee | {guarantee} |\n\
         | duplicate outputs (redelivered) | {duplicates}, {} differing from the first copy |\n\
         | transactions left open (last stable offset below the high watermark) | {} |\n\
         | dead letters | {dead} |\n\
         | counter numbers 1..N, no gap or repeat | {counter_exact} |\n\
         | receipt numbers gapless | {receipts_gapless} |\n\
         | waitlist queue after each of {} promotions as in a fresh single run | {} |\n\
         | wall time | {:.0} s |\n",
        match on {
            On::Tansu => "Tansu (libsql, durable)",
            On::Kafka | On::KafkaExactlyOnce => "Apache Kafka 4.1 (KRaft, one node)",
            On::Embedded => "embedded (librdkafka mock)",
        },
        if instances > 1 {
            format!("PostgreSQL, {instances} instances")
        } else {
            "redb, 1 instance".to_string()
        },
        events + payments + rooms * workload::WAITLIST_STEPS,
        rooms * workload::WAITLIST_STEPS,
        counted.len() + receipts.len() + promoted.len(),
        rooms * workload::WAITLIST_STEPS - cancellations,
        differing.len(),
        open.len(),
        fresh.len(),
        if queue_mismatches == 0 {
            "true".to_string()
        } else {
            format!("false: {queue_mismatches} differ")
        },
        took.as_secs_f64(),
    );
    println!("{table}");
    let report = kit::root().join(format!(
        "target/crash-loop-{}-{instances}.md",
        match on {
            On::Tansu => "tansu",
            On::Kafka => "kafka",
            On::KafkaExactlyOnce => "kafka-eos",
            On::Embedded => "mock",
        }
    ));
    let _ = std::fs::write(&report, &table);

    assert_eq!(lost, 0, "inputs lost\n{table}");
    assert!(
        differing.is_empty(),
        "duplicates differ: {differing:?}\n{table}"
    );
    assert_eq!(dead, 0, "dead letters\n{table}");
    assert!(open.is_empty(), "transactions left open: {open:?}\n{table}");
    if exactly_once {
        assert_eq!(duplicates, 0, "duplicates under exactly-once\n{table}");
    } else if kafka && mid_stream > 0 {
        // The same kills without transactions redeliver outputs: this is
        // what tells the two guarantees apart.
        assert!(duplicates > 0, "no duplicate under at-least-once\n{table}");
    }
    assert!(counter_exact, "the counter skipped or repeated\n{table}");
    assert!(receipts_gapless, "receipt numbers have gaps\n{table}");
    assert_eq!(
        fresh.len(),
        cancellations,
        "the fresh run promoted\n{table}"
    );
    assert_eq!(queue_mismatches, 0, "waitlist queues differ\n{table}");
    assert_eq!(survived, kills);
}

/// The waitlist's queue after each promotion in a fresh single run: one
/// router, never killed, on an embedded broker of its own, fed the same
/// events (by cancelled booking).
fn fresh_waitlist(
    rooms: usize,
    cancellations: usize,
    cache: &std::path::Path,
) -> BTreeMap<String, Value> {
    let broker = Broker::mock();
    for t in ["booking-events", "waitlist-events"] {
        broker.create_topic(t, PARTITIONS);
        broker.create_topic(&format!("{t}.dlq"), PARTITIONS);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = workload::write_config(
        dir.path(),
        "",
        &[workload::waitlist_plugin("waitlist-events")],
    );
    feed(&broker, "booking-events", workload::waitlist_events(rooms));
    let router = Router::start_plain(
        &config,
        &broker,
        &dir.path().join("state"),
        cache,
        &["--no-create-topics"],
    );
    let client = broker.client();
    let promoted = eventually("every promotion", Duration::from_secs(120), || {
        let promoted = workload::promotions(&*client, "waitlist-events");
        router.or_log((promoted.len() >= cancellations).then_some(promoted))
    });
    router.stop();
    let queues = workload::queues(&promoted);
    // Each promotion lists who is still waiting; comparing records without
    // it would prove nothing about the queue.
    assert!(
        queues.values().all(|q| q["eventData"]["remaining"]
            .as_array()
            .is_some_and(|r| !r.is_empty())),
        "a promotion without the remaining queue: {queues:?}"
    );
    queues
}

/// Zombie fencing on Apache Kafka with exactly-once: of two instances on
/// PostgreSQL, one is SIGSTOPped mid-stream past its session timeout, the
/// other takes its partitions and goes on, and then the stopped one is
/// SIGCONTed with its transaction still open (the transaction timeout is
/// longer than the stop). Its group metadata is a generation old, so the
/// broker refuses its offsets and its transaction aborts. If the zombie was
/// stopped after its offsets had joined its transaction, the broker instead
/// holds the survivor's offset fetch until that transaction ends, so only
/// one of the two routes those records. Either way a read_committed reader
/// finds every count exactly once, 1..N, and no transaction open.
#[test]
fn a_zombie_instance_woken_after_its_partitions_moved_commits_nothing() {
    let events = 4000;
    let broker = Broker::kafka();
    for t in ["count.in", "counted"] {
        broker.create_topic(t, PARTITIONS);
        broker.create_topic(&format!("{t}.dlq"), PARTITIONS);
    }
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let config = workload::write_config(
        dir.path(),
        r#"[kafka]
guarantee = "exactly-once"
transaction_timeout_ms = 60000
batch_records = 50

[kafka.client]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "500""#,
        &[workload::counter_plugin()],
    );
    let start = |n: usize| {
        let state = dir.path().join(format!("state-{n}"));
        Router::start_plain(
            &config,
            &broker,
            &state,
            &dir.path().join("cache"),
            &["--state-url", &pg.url()],
        )
    };
    feed(
        &broker,
        "count.in",
        (0..events / 2).map(count_event).collect(),
    );
    let first = start(0);
    let second = start(1);
    // The group spreads `count.in` and `counted` over the two: the zombie
    // is whichever routes `count.in` first (the other may hold only
    // `counted` until the zombie's partitions move to it).
    let routing = |r: &Router| r.processed("count.in") > 0;
    eventually("an instance routing", Duration::from_secs(90), || {
        first.or_log(second.or_log(routing(&first) || routing(&second)))
    });
    let (zombie, survivor) = if routing(&first) {
        (first, second)
    } else {
        (second, first)
    };
    eventually("the survivor starting", Duration::from_secs(60), || {
        survivor.or_log(survivor.logged("router started"))
    });

    let signal = |sig: &str, pid: u32| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    };
    signal("-STOP", zombie.pid());
    let stopped = Instant::now();
    let survivor_before = survivor.processed("count.in");
    feed(
        &broker,
        "count.in",
        (events / 2..events).map(count_event).collect(),
    );
    // Past the 6 s session the survivor is given every partition of
    // `count.in`. It routes them at once, unless the zombie was stopped
    // after its offsets joined its transaction: then the broker holds the
    // survivor's offset fetch (KIP-447's unstable offsets) until the zombie
    // commits or its transaction times out, and the zombie wakes after 20 s
    // either way.
    eventually(
        "the survivor owning the zombie's partitions",
        Duration::from_secs(90),
        || {
            survivor.or_log(
                survivor.metric("switchyard_partition_owned", &[("topic", "count.in")])
                    == PARTITIONS as u64,
            )
        },
    );
    while survivor.processed("count.in") == survivor_before
        && stopped.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    let handled_before = survivor.processed("count.in") - survivor_before;
    signal("-CONT", zombie.pid());
    let client = broker.client();
    eventually("every count", Duration::from_secs(180), || {
        let counted = workload::outputs(&*client, "counted", "event");
        if counted.len() >= events {
            return Ok(());
        }
        Err(format!(
            "{} of {events} counts\n{}\n---\n{}",
            counted.len(),
            zombie.log(),
            survivor.log()
        ))
    });
    let zombie_log = zombie.stop();
    let survivor_log = survivor.stop();
    let counted = workload::outputs(&*client, "counted", "event");
    let duplicates: usize = counted.values().map(|c| c.len() - 1).sum();
    let numbers: BTreeSet<u64> = workload::first_values(&counted, "n")
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    let py = broker.py();
    let open: Vec<_> = ["counted", "counted.dlq"]
        .iter()
        .flat_map(|t| py.open_transactions(t))
        .collect();
    let logs = format!("{zombie_log}\n---\n{survivor_log}");
    assert_eq!(duplicates, 0, "duplicates after the zombie woke\n{logs}");
    assert_eq!(
        numbers,
        (1..=events as u64).collect::<BTreeSet<_>>(),
        "the counter skipped or repeated\n{logs}"
    );
    assert!(open.is_empty(), "transactions left open: {open:?}");
    // Whether the zombie held records in its open transaction when it was
    // stopped is up to timing; when it did, its refusal is in its log.
    println!(
        "survivor routed {handled_before} before the zombie woke; zombie's transaction refused: {}",
        zombie_log.contains("transaction aborted") || zombie_log.contains("transactional producer")
    );
}
