//! Scale-out: router instances in one consumer group sharing their plugin
//! state and versions in a real PostgreSQL server, which each test starts on
//! a free port (see `kit::postgres`).

use switchyard_testkit as kit;

use kit::http::{get, request};
use kit::postgres::Postgres;
use kit::workload;
use kit::{Broker, Client, Kcat, Router, eventually};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use switchyard::{Effect, PgStore, StateRead, StateStore, contract};

const TOKEN: &str = "scale-token";

fn bump(store: &PgStore, id: &str) -> bool {
    let n = store.get("c", "n").unwrap();
    let next = n
        .as_deref()
        .map_or(0, |v| u64::from_le_bytes(v.try_into().unwrap()))
        + 1;
    let effect = Effect {
        plugin: "c".into(),
        event_id: id.into(),
        reads: [("n".to_string(), n)].into(),
        writes: [("n".to_string(), Some(next.to_le_bytes().to_vec()))].into(),
        outputs: Vec::new(),
        timers: Default::default(),
    };
    store.commit(&[&[vec![effect]]]).unwrap() == vec![1]
}

#[test]
fn the_postgres_store_keeps_the_contract_and_loses_no_update_between_instances() {
    let pg = Postgres::start();
    let store = PgStore::connect(&pg.url(), 4, 10).unwrap();
    contract::check_store(&store);
    contract::check_versions(&store);
    // Migrations are idempotent: a second instance connects to the same schema.
    let again = PgStore::connect(&pg.url(), 4, 10).unwrap();
    assert_eq!(again.get("p", "a").unwrap(), Some(b"z".to_vec()));

    // Two instances increment one counter at once, each retrying what
    // conflicted, as partitions do: no increment is lost.
    let stores = [Arc::new(store), Arc::new(again)];
    let threads: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(i, store)| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut conflicts = 0;
                for j in 0..150 {
                    while !bump(&store, &format!("i{i}-{j}")) {
                        conflicts += 1;
                    }
                }
                conflicts
            })
        })
        .collect();
    let conflicts: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let n = stores[0].get("c", "n").unwrap().unwrap();
    assert_eq!(
        u64::from_le_bytes(n.try_into().unwrap()),
        300,
        "{conflicts} conflicts"
    );

    // The processed-id window is bounded per plugin (keep 10, pruned a
    // tenth at a time) and keeps the newest.
    let marks: usize = pg
        .sql("SELECT count(*) FROM switchyard_processed WHERE plugin = 'c'")
        .parse()
        .unwrap();
    assert!(marks <= 11, "{marks} processed ids kept for keep = 10");
    assert!(
        stores[0].processed("c", "i0-149").unwrap().is_some()
            || stores[0].processed("c", "i1-149").unwrap().is_some()
    );
    assert_eq!(stores[0].processed("c", "i0-0").unwrap(), None);

    // An outage is an error to wait out, not a crash; the store comes back.
    pg.stop();
    let down = stores[0].commit(&[&[vec![Effect {
        plugin: "c".into(),
        event_id: "during".into(),
        reads: Default::default(),
        writes: Default::default(),
        outputs: Vec::new(),
        timers: Default::default(),
    }]]]);
    let why = format!("{:#}", down.unwrap_err());
    assert!(why.contains("cannot reach PostgreSQL"), "{why}");
    assert!(stores[0].health().is_err());
    pg.start_again();
    eventually("the store to come back", Duration::from_secs(30), || {
        stores[0].health().map_err(|e| format!("{e:#}"))
    });
    assert!(bump(&stores[0], "after"));
}

fn counter_config(dir: &Path) -> std::path::PathBuf {
    workload::counter_and_receipt(
        dir,
        &format!(
            r#"[kafka]
batch_records = 100

[kafka.client]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "500"

[admin]
token = "{TOKEN}""#
        ),
    )
}

fn start(config: &Path, broker: &Broker, dir: &Path, url: &str, n: usize) -> Router {
    Router::start_plain(
        config,
        broker,
        &dir.join(format!("state-{n}")),
        &dir.join("cache"),
        &["--no-create-topics", "--state-url", url],
    )
}

#[test]
fn three_instances_keep_a_counter_and_receipt_numbers_exact_through_a_kill_9() {
    const N: usize = 3000;
    const PAYMENTS: usize = 600;
    let pg = Postgres::start();
    let broker = Broker::mock();
    for t in [
        "count.in",
        "counted",
        "payment.payment.succeeded",
        "receipt.receipt.generated",
    ] {
        broker.create_topic(t, 6);
        broker.create_topic(&format!("{t}.dlq"), 6);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = counter_config(dir.path());
    let kcat = Kcat(broker.bootstrap());
    let counts: Vec<(String, String)> = (0..N).map(workload::count_event).collect();
    let payments: Vec<(String, String)> = (0..PAYMENTS)
        .map(|i| workload::payment_event('2', i))
        .collect();

    let url = pg.url();
    let mut routers: Vec<Router> = (0..3)
        .map(|n| start(&config, &broker, dir.path(), &url, n))
        .collect();
    for r in &routers {
        eventually("startup", Duration::from_secs(120), || {
            r.or_log(r.logged("router started"))
        });
    }
    kcat.produce_lines("count.in", None, &counts);
    kcat.produce_lines("payment.payment.succeeded", None, &payments);
    // Kill one instance once the group is well into the stream.
    let busy = |r: &Router| r.processed("count.in") >= 100;
    let victim = eventually(
        "an instance well into the stream",
        Duration::from_secs(120),
        || routers.iter().position(busy),
    );
    let done_before = routers[victim].processed("count.in");
    routers.remove(victim).kill9();
    assert!(done_before < N as u64, "killed after the stream was done");
    routers.push(start(&config, &broker, dir.path(), &url, 3));

    let outputs = |topic: &str, field: &str| workload::outputs(&kcat, topic, field);
    eventually("every output", Duration::from_secs(300), || {
        let (counted, receipts) = (
            outputs("counted", "event").len(),
            outputs("receipt.receipt.generated", "payment_id").len(),
        );
        if counted >= N && receipts >= PAYMENTS {
            return Ok(());
        }
        Err(format!(
            "outputs missing: {counted} of {N} counts, {receipts} of {PAYMENTS} receipts\n{}",
            routers
                .iter()
                .map(Router::log)
                .collect::<Vec<_>>()
                .join("\n---\n")
        ))
    });
    for r in routers {
        r.stop();
    }
    for topic in ["count.in.dlq", "payment.payment.succeeded.dlq"] {
        assert!(kcat.consume(topic).is_empty(), "dead letters in {topic}");
    }

    let counted = outputs("counted", "event");
    assert_eq!(counted.len(), N, "every input has an output");
    let mut numbers = BTreeSet::new();
    for (id, copies) in &counted {
        assert!(
            copies.windows(2).all(|w| w[0] == w[1]),
            "duplicates of {id} differ: the event was applied twice"
        );
        let v: Value = serde_json::from_slice(&copies[0]).unwrap();
        numbers.insert(v["data"]["n"].as_u64().unwrap());
    }
    assert_eq!(
        numbers,
        (1..=N as u64).collect::<BTreeSet<_>>(),
        "the shared counter applied every event once: 1..N, no gap, no repeat"
    );

    let receipts = outputs("receipt.receipt.generated", "payment_id");
    let mut issued = BTreeSet::new();
    for (id, copies) in &receipts {
        assert!(
            copies.windows(2).all(|w| w[0] == w[1]),
            "receipts of {id} differ"
        );
        let v: Value = serde_json::from_slice(&copies[0]).unwrap();
        issued.insert(v["data"]["receipt_number"].as_str().unwrap().to_string());
    }
    let expected: BTreeSet<String> = (1..=PAYMENTS).map(|n| format!("RCP-2025-{n:06}")).collect();
    assert_eq!(
        issued, expected,
        "receipt numbers are gapless across instances"
    );
}

fn live_hash(admin: &str) -> (String, String, bool) {
    let v: Value = serde_json::from_str(&get(&format!("{admin}/plugins/counter"))).unwrap();
    (
        v["hash"].as_str().unwrap().to_string(),
        v["origin"].as_str().unwrap().to_string(),
        v["paused"].as_bool().unwrap(),
    )
}

fn wait_all(admins: &[String], what: &str, ok: impl Fn(&(String, String, bool)) -> bool) {
    eventually(what, Duration::from_secs(10), || {
        let seen: Vec<_> = admins.iter().map(|a| live_hash(a)).collect();
        if seen.iter().all(&ok) {
            return Ok(());
        }
        Err(format!("not on every instance: {seen:?}"))
    });
}

#[test]
fn a_version_uploaded_to_one_instance_serves_on_all_three_and_survives_a_restart() {
    let pg = Postgres::start();
    let broker = Broker::mock();
    for t in ["count.in", "payment.payment.succeeded"] {
        broker.create_topic(t, 3);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = counter_config(dir.path());
    let url = pg.url();
    let mut routers: Vec<Router> = (0..3)
        .map(|n| start(&config, &broker, dir.path(), &url, n))
        .collect();
    let admins: Vec<String> = routers.iter().map(Router::admin_url).collect();
    let file_hash = live_hash(&admins[0]).0;

    // Upload another component as `counter` to the first instance only.
    let upload = std::fs::read(kit::guest("echo")).unwrap();
    let (status, body) = request(
        "PUT",
        &format!("{}/plugins/counter", admins[0]),
        Some(TOKEN),
        &upload,
    );
    assert_eq!(status, 200, "{body}");
    let uploaded = live_hash(&admins[0]).0;
    assert_ne!(uploaded, file_hash);
    wait_all(&admins, "the upload", |(h, o, _)| {
        *h == uploaded && o == "upload"
    });

    // A pause made on the second instance holds everywhere.
    let (status, body) = request(
        "POST",
        &format!("{}/plugins/counter/pause", admins[1]),
        Some(TOKEN),
        b"",
    );
    assert_eq!(status, 200, "{body}");
    wait_all(&admins, "the pause", |(_, _, paused)| *paused);
    let (status, body) = request(
        "POST",
        &format!("{}/plugins/counter/resume", admins[2]),
        Some(TOKEN),
        b"",
    );
    assert_eq!(status, 200, "{body}");
    wait_all(&admins, "the resume", |(_, _, paused)| !*paused);

    // A restart keeps the uploaded version instead of the file.
    let restarted = routers.remove(2);
    restarted.stop();
    let again = start(&config, &broker, dir.path(), &url, 2);
    let admin = again.admin_url();
    assert_eq!(
        live_hash(&admin).0,
        uploaded,
        "the restart reverted the upload"
    );
    routers.push(again);

    // A rollback on the restarted instance returns every instance to the file.
    let (status, body) = request(
        "POST",
        &format!("{admin}/plugins/counter/rollback"),
        Some(TOKEN),
        b"",
    );
    assert_eq!(status, 200, "{body}");
    let admins = [admins[0].clone(), admins[1].clone(), admin];
    wait_all(&admins, "the rollback", |(h, _, _)| *h == file_hash);

    // A shadow attached on one instance runs on every one; dropped on
    // another, it is gone from all.
    let candidate = kit::wasm_variant(&std::fs::read(kit::guest("counter")).unwrap(), 7);
    let (status, body) = request(
        "PUT",
        &format!("{}/plugins/counter/shadow", admins[0]),
        Some(TOKEN),
        &candidate,
    );
    assert_eq!(status, 200, "{body}");
    let shadow_of = |admin: &str| {
        let (status, body) = request("GET", &format!("{admin}/plugins/counter/shadow"), None, b"");
        (status == 200).then(|| serde_json::from_str::<Value>(&body).unwrap()["hash"].clone())
    };
    let attached = shadow_of(&admins[0]).expect("the shadow on the instance it was attached to");
    eventually(
        "the shadow on every instance",
        Duration::from_secs(10),
        || {
            let seen: Vec<_> = admins.iter().map(|a| shadow_of(a)).collect();
            if seen.iter().all(|s| s.as_ref() == Some(&attached)) {
                return Ok(());
            }
            Err(format!("{seen:?}"))
        },
    );
    let (status, body) = request(
        "DELETE",
        &format!("{}/plugins/counter/shadow", admins[1]),
        Some(TOKEN),
        b"",
    );
    assert_eq!(status, 200, "{body}");
    eventually(
        "the shadow dropped everywhere",
        Duration::from_secs(10),
        || {
            let seen: Vec<_> = admins.iter().map(|a| shadow_of(a)).collect();
            if seen.iter().all(Option::is_none) {
                return Ok(());
            }
            Err(format!("{seen:?}"))
        },
    );

    // Each instance says which partitions it owns and where its state is;
    // together they own all six, once each.
    eventually(
        "all six partitions owned once",
        Duration::from_secs(30),
        || {
            let owned: Vec<String> = admins
                .iter()
                .flat_map(|a| {
                    let v: Value = serde_json::from_str(&get(&format!("{a}/api/summary"))).unwrap();
                    assert!(
                        v["store"]["backend"]
                            .as_str()
                            .unwrap()
                            .starts_with("PostgreSQL"),
                        "{v}"
                    );
                    serde_json::from_value::<Vec<String>>(v["partitions"].clone()).unwrap()
                })
                .collect();
            let distinct: BTreeSet<&String> = owned.iter().collect();
            if owned.len() == 6 && distinct.len() == 6 {
                return Ok(());
            }
            Err(format!("owned partitions: {owned:?}"))
        },
    );
    assert!(get(&format!("{}/metrics", admins[0])).contains("switchyard_partition_owned{"));

    // /readyz follows the store's health.
    let ready = |admin: &str| request("GET", &format!("{admin}/readyz"), None, b"");
    pg.stop();
    eventually(
        "/readyz to say the store is down",
        Duration::from_secs(15),
        || {
            let (status, body) = ready(&admins[0]);
            if status == 503 && body.contains("state store") {
                return Ok(());
            }
            Err(format!("/readyz stayed {status} {body}"))
        },
    );
    pg.start_again();
    eventually("/readyz to recover", Duration::from_secs(30), || {
        ready(&admins[0]).0 == 200
    });
    for r in routers {
        r.stop();
    }
}
