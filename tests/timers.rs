//! Timers live: catalog 002's payment window on a broker, with the window
//! set to 3 s, fired on the wall clock by the router.

use switchyard_testkit as kit;

use kit::{Broker, Kcat, Router, eventually};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// The autocheck example's config, with absolute paths and the payment
/// window set to `window`, written into `dir`.
fn autocheck_config(dir: &Path, window: &str) -> std::path::PathBuf {
    let example = kit::root().join("examples/autocheck");
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

/// Now, RFC 3339: a window counts from its event's time.
fn now() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn created(appointment: &str) -> (String, String) {
    let value = json!({
        "eventType": "appointment.created", "eventId": format!("created-{appointment}"),
        "timestamp": now(), "version": "1.0",
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
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::mock();
    for t in [
        "appointments-topic",
        "payments-topic",
        "notifications-topic",
        "inspections-topic",
    ] {
        broker.create_topic(t, 2);
        broker.create_topic(&format!("{t}.dlq"), 2);
    }
    let config = autocheck_config(dir.path(), "3s");
    let router = Router::start(
        &config,
        &broker,
        &dir.path().join("state"),
        &dir.path().join("cache"),
    );
    let kcat = Kcat(broker.bootstrap());
    kcat.produce_lines(
        "appointments-topic",
        None,
        &[created("appt-unpaid"), created("appt-paid")],
    );
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
    // window (set earlier) has passed too.
    kcat.produce_lines("appointments-topic", None, &[created("appt-later")]);
    eventually(
        "the later appointment cancelled",
        Duration::from_secs(60),
        || {
            router.or_log(
                appointments(&broker, "appointment.cancelled").contains(&"appt-later".to_string()),
            )
        },
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
