//! Timers live: catalog 002's payment window on a broker, with the window
//! set to 3 s, fired on the wall clock by the router.

use switchyard_testkit as kit;

use kit::postgres::Postgres;
use kit::{Broker, Kcat, Router, eventually};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// The topics of the autocheck example.
const AUTOCHECK_TOPICS: [&str; 4] = [
    "appointments-topic",
    "payments-topic",
    "notifications-topic",
    "inspections-topic",
];

/// Creates `topics` and their dead-letter topics, `partitions` each.
fn create_topics(broker: &Broker, topics: &[&str], partitions: i32) {
    for t in topics {
        broker.create_topic(t, partitions);
        broker.create_topic(&format!("{t}.dlq"), partitions);
    }
}

/// An example's config, with absolute paths and the payment window set to
/// `window`, written into `dir`.
fn example_config(dir: &Path, name: &str, window: &str) -> std::path::PathBuf {
    let example = kit::root().join("examples").join(name);
    let text = std::fs::read_to_string(example.join("router.toml"))
        .unwrap()
        .replace(
            "../../plugins/",
            &format!("{}/plugins/", kit::root().display()),
        )
        .replace("\"fixtures/", &format!("\"{}/fixtures/", example.display()))
        .replace("\"schemas/", &format!("\"{}/schemas/", example.display()))
        .replace(
            "payment_window = \"15m\"",
            &format!("payment_window = \"{window}\""),
        );
    let path = dir.join("router.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Now plus `secs`, RFC 3339: a window counts from its event's time.
fn at(secs: i64) -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    chrono::DateTime::from_timestamp_millis(ms + secs * 1000)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn now() -> String {
    at(0)
}

/// `appointment.created` for `appointment`, stamped `secs` from now (its
/// window counts from then).
fn created(appointment: &str, secs: i64) -> (String, String) {
    let value = json!({
        "eventType": "appointment.created", "eventId": format!("created-{appointment}"),
        "timestamp": at(secs), "version": "1.0",
        "data": {"appointmentId": appointment, "customerId": "user-uuid-123", "serviceType": "premium",
                 "date": "2030-01-15", "time": "10:00 AM", "inspectorId": "inspector-uuid-789",
                 "status": "pending_payment", "amount": 80.00}
    });
    (appointment.to_string(), value.to_string())
}

fn completed(appointment: &str) -> (String, String) {
    let value = json!({
        "eventType": "payment.completed", "eventId": format!("paid-{appointment}"),
        "timestamp": now(), "version": "1.0",
        "data": {"paymentId": format!("pay-{appointment}"), "appointmentId": appointment, "amount": 80.00,
                 "currency": "USD", "status": "completed", "completedAt": now(),
                 "paymentMethod": "paypal"}
    });
    (appointment.to_string(), value.to_string())
}

/// The appointment ids of the `ty` events on `appointments-topic`.
fn appointments(broker: &Broker, ty: &str) -> Vec<String> {
    broker
        .client()
        .consume("appointments-topic")
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.value).ok())
        .filter(|v| v["eventType"] == ty)
        .map(|v| {
            v["data"]["appointmentId"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[test]
fn an_unpaid_appointment_is_cancelled_when_its_window_ends_and_a_paid_one_is_confirmed() {
    payment_window(Broker::mock(), false);
}

/// The same on Apache Kafka with exactly-once: a firing's outputs go into
/// a transaction, and its timer is removed once that commits; read
/// committed, each window's outcome appears once.
#[test]
fn the_payment_window_on_apache_kafka_with_exactly_once() {
    payment_window(Broker::kafka(), true);
}

fn payment_window(broker: Broker, exactly_once: bool) {
    let dir = tempfile::tempdir().unwrap();
    create_topics(&broker, &AUTOCHECK_TOPICS, 2);
    let config = example_config(dir.path(), "autocheck", "3s");
    if exactly_once {
        let text = std::fs::read_to_string(&config)
            .unwrap()
            .replace("[kafka]\n", "[kafka]\nguarantee = \"exactly-once\"\n");
        std::fs::write(&config, text).unwrap();
    }
    let router = Router::start(
        &config,
        &broker,
        &dir.path().join("state"),
        &dir.path().join("cache"),
    );
    let kcat = Kcat(broker.bootstrap());
    // The paid appointment's window ends 5 s after the unpaid one's: room to
    // handle its payment on a busy machine.
    kcat.produce_lines(
        "appointments-topic",
        None,
        &[created("appt-unpaid", 0), created("appt-paid", 5)],
    );
    eventually("both appointments handled", Duration::from_secs(60), || {
        router.or_log(router.processed("appointments-topic") >= 2)
    });
    kcat.produce_lines("payments-topic", None, &[completed("appt-paid")]);
    eventually(
        "the paid appointment confirmed",
        Duration::from_secs(60),
        || router.or_log(appointments(&broker, "appointment.confirmed") == ["appt-paid"]),
    );
    let started = std::time::Instant::now();
    eventually(
        "the unpaid appointment cancelled",
        Duration::from_secs(60),
        || {
            router.or_log(
                appointments(&broker, "appointment.cancelled").contains(&"appt-unpaid".to_string()),
            )
        },
    );
    let cancelled: Vec<Value> = broker
        .client()
        .consume("appointments-topic")
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.value).ok())
        .filter(|v| v["eventType"] == "appointment.cancelled")
        .collect();
    assert_eq!(cancelled[0]["data"]["reason"], "payment window expired");
    assert_eq!(cancelled[0]["data"]["cancelledBy"], "system");
    assert_eq!(cancelled[0]["data"]["refundEligible"], false);
    // A later appointment's cancellation is the signal that the paid one's
    // window (which ends before it) has passed too.
    kcat.produce_lines("appointments-topic", None, &[created("appt-later", 6)]);
    eventually(
        "the later appointment cancelled",
        Duration::from_secs(60),
        || {
            router.or_log(
                appointments(&broker, "appointment.cancelled").contains(&"appt-later".to_string()),
            )
        },
    );
    assert_eq!(
        router.metric("switchyard_timers_fired_total", &[("plugin", "payment")]),
        2,
        "the two windows that ended"
    );
    // The paid appointment's reminder waits for 2030-01-14, 24 h before it.
    eventually("the reminder pending", Duration::from_secs(30), || {
        let timers = router.summary()["timers"]["payment"].clone();
        router.or_log(
            (timers["pending"] == 1)
                .then_some(())
                .ok_or(timers.to_string()),
        )
    });
    assert_eq!(
        router.summary()["timers"]["payment"]["next_due"],
        "2030-01-14T10:00:00Z"
    );
    let log = router.stop();
    let cancelled = appointments(&broker, "appointment.cancelled");
    assert!(
        !cancelled.contains(&"appt-paid".to_string()),
        "{cancelled:?}\n{log}"
    );
    assert_eq!(cancelled.len(), 2, "each window fires once: {cancelled:?}");
    eprintln!(
        "the unpaid window fired {:?} after confirmation",
        started.elapsed()
    );
}

fn joined(id: &str, priority: i64, start: &str, end: &str) -> (String, String) {
    let value = json!({
        "eventId": format!("join-{id}"), "eventType": "waitlist.joined", "waitlistId": id,
        "userId": format!("user-{id}"), "resourceId": "room-9", "timestamp": now(),
        "eventData": {"priority": priority, "position": 1, "desiredStartTime": start, "desiredEndTime": end},
        "metadata": {"service": "booking-service", "version": "1.0.0"}
    });
    ("room-9".to_string(), value.to_string())
}

/// The `ty` events of `waitlist-events`, as (waitlistId, event).
fn waitlist(broker: &Broker, ty: &str) -> Vec<String> {
    broker
        .client()
        .consume("waitlist-events")
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.value).ok())
        .filter(|v| v["eventType"] == ty)
        .map(|v| v["waitlistId"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_waitlist_entry_expires_at_its_desired_start_and_the_next_one_is_promoted() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::mock();
    create_topics(&broker, &["booking-events", "waitlist-events"], 1);
    let config = example_config(dir.path(), "resource-booking", "15m");
    let router = Router::start(
        &config,
        &broker,
        &dir.path().join("state"),
        &dir.path().join("cache"),
    );
    let kcat = Kcat(broker.bootstrap());
    kcat.produce_lines(
        "waitlist-events",
        Some(0),
        &[
            joined("wl-soon", 100, &at(3), &at(7200)),
            joined("wl-later", 50, &at(3600), &at(10800)),
        ],
    );
    eventually("the first entry expired", Duration::from_secs(60), || {
        router.or_log(waitlist(&broker, "waitlist.expired") == ["wl-soon"])
    });
    let cancelled = json!({
        "eventId": "cancel-9", "eventType": "booking.cancelled", "bookingId": "booking-9", "userId": "user-1",
        "resourceId": "room-9", "timestamp": now(),
        "eventData": {"id": "booking-9", "title": "Team Meeting", "status": "cancelled",
                      "startTime": at(1800), "endTime": at(9000), "attendeesCount": 5},
        "metadata": {"service": "booking-service", "version": "1.0.0"}
    });
    kcat.produce_lines(
        "booking-events",
        Some(0),
        &[("room-9".into(), cancelled.to_string())],
    );
    eventually("the next entry promoted", Duration::from_secs(60), || {
        router.or_log(waitlist(&broker, "waitlist.promoted") == ["wl-later"])
    });
    router.stop();
    assert_eq!(
        waitlist(&broker, "waitlist.expired"),
        ["wl-soon"],
        "expired once"
    );
}

/// Two instances sharing PostgreSQL: a window set on one instance, which is
/// killed before it ends, fires once on the other after it takes the
/// partition over.
#[test]
fn a_timer_set_on_a_killed_instance_fires_on_the_one_that_takes_its_partition() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::mock();
    create_topics(&broker, &AUTOCHECK_TOPICS, 1);
    let config = example_config(dir.path(), "autocheck", "8s");
    // A killed instance's partitions move after a 6 s session.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{text}\n[kafka.client]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"500\"\n"
        ),
    )
    .unwrap();
    let url = pg.url();
    let start = |n: usize| {
        Router::start_plain(
            &config,
            &broker,
            &dir.path().join(format!("state-{n}")),
            &dir.path().join("cache"),
            &["--no-create-topics", "--state-url", &url],
        )
    };
    let first = start(1);
    let kcat = Kcat(broker.bootstrap());
    kcat.produce_lines(
        "appointments-topic",
        Some(0),
        &[created("appt-handover", 0)],
    );
    eventually(
        "the first instance set the window",
        Duration::from_secs(60),
        || first.or_log(first.processed("appointments-topic") >= 1),
    );
    first.kill9();
    let second = start(2);
    eventually(
        "the window fired on the second instance",
        Duration::from_secs(90),
        || second.or_log(!appointments(&broker, "appointment.cancelled").is_empty()),
    );
    // Fired, and then gone: nothing of it stays pending.
    eventually("the fired timer removed", Duration::from_secs(30), || {
        let pending = second.summary()["timers"]["payment"]["pending"].clone();
        let none = pending.is_null() || pending == 0;
        second.or_log(none.then_some(()).ok_or(pending.to_string()))
    });
    let fired = second.metric("switchyard_timers_fired_total", &[("plugin", "payment")]);
    let log = second.stop();
    // At-least-once: a rebalance right after the takeover (the killed
    // member's session ending) may hand the partition to a new worker
    // before the first one removed the timer; it then fires again as a
    // duplicate, its output byte-identical from the outbox.
    let cancelled = appointments(&broker, "appointment.cancelled");
    assert!(
        (1..=2).contains(&fired) && cancelled.iter().all(|a| a == "appt-handover"),
        "fired {fired}: {cancelled:?}\n{log}"
    );
}

/// A crash loop with timers: the counter guest sets one timer per `tick.in`
/// event (T in all, due over the next seconds), and each firing takes the
/// next number from a counter in state. The router is killed with `kill -9`
/// again and again. Every timer fires, its effect applies once (the numbers
/// are exactly 1..=T), none is lost; with exactly-once on Apache Kafka, no
/// firing's output appears twice.
fn timers_through_kill_9s(broker: Broker, exactly_once: bool) {
    let timers: usize = std::env::var("TIMER_CRASH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let dir = tempfile::tempdir().unwrap();
    create_topics(&broker, &["tick.in", "ticked"], 4);
    let guarantee = if exactly_once {
        "exactly-once"
    } else {
        "at-least-once"
    };
    let config = kit::workload::write_config(
        dir.path(),
        &format!(
            "[kafka]\nguarantee = \"{guarantee}\"\nbatch_records = 100\n\n[kafka.client]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"500\""
        ),
        &[format!(
            "\n[[plugin]]\nname = \"counter\"\nwasm = \"{}\"\nsubscribe.types = [\"tick.*\"]\nemits = [\"ticked\"]\n",
            kit::guest("counter").display()
        )],
    );
    let kafka = exactly_once;
    let start = || {
        let mut flags = vec!["--no-create-topics"];
        if kafka {
            flags.extend(["--instance-id", "ticker"]);
        }
        Router::start_plain(
            &config,
            &broker,
            &dir.path().join("state"),
            &dir.path().join("cache"),
            &flags,
        )
    };
    // Due over the next 6 s, from now.
    let lines: Vec<(String, String)> = (0..timers)
        .map(|i| {
            let value = json!({
                "event_id": format!("tick-{i}"), "event_type": "tick.in", "timestamp": now(),
                "data": {"delay_ms": (i * 6000 / timers) as u64}
            });
            (format!("k{i}"), value.to_string())
        })
        .collect();
    let mut router = start();
    Kcat(broker.bootstrap()).produce_lines("tick.in", None, &lines);
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(1500));
        router.kill9();
        router = start();
    }
    let read = || -> Vec<Value> {
        broker
            .client()
            .consume("ticked")
            .iter()
            .filter_map(|r| serde_json::from_slice::<Value>(&r.value).ok())
            .collect()
    };
    eventually("every timer fired", Duration::from_secs(180), || {
        let names: std::collections::BTreeSet<String> = read()
            .iter()
            .map(|v| v["data"]["timer"].as_str().unwrap_or_default().to_string())
            .collect();
        router.or_log(
            (names.len() >= timers)
                .then_some(())
                .ok_or(format!("{} of {timers}", names.len())),
        )
    });
    let log = router.stop();
    let ticked = read();
    let numbers: std::collections::BTreeSet<u64> = ticked
        .iter()
        .filter_map(|v| v["data"]["n"].as_u64())
        .collect();
    assert_eq!(
        numbers,
        (1..=timers as u64).collect(),
        "the firings' counter skipped or repeated a number\n{log}"
    );
    let names: std::collections::BTreeSet<String> = ticked
        .iter()
        .map(|v| v["data"]["timer"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(names.len(), timers, "a timer was lost");
    if exactly_once {
        assert_eq!(ticked.len(), timers, "a firing's output appeared twice");
    }
    eprintln!(
        "{timers} timers through 4 kills: {} outputs ({} duplicates)",
        ticked.len(),
        ticked.len() - timers
    );
}

#[test]
fn timers_through_a_crash_loop_on_the_embedded_broker_fire_once_each() {
    timers_through_kill_9s(Broker::mock(), false);
}

/// Under exactly-once, a crash between a transaction's commit and the
/// removal of the timers it fired leaves them due; the partition's offset
/// metadata lists them (`kafka/txn/fired.rs`), so the next owner removes
/// them without producing their outputs again.
#[test]
fn timers_through_a_crash_loop_on_apache_kafka_with_exactly_once_have_no_duplicate() {
    timers_through_kill_9s(Broker::kafka(), true);
}
