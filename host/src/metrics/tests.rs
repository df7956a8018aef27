use super::topics::{MAX_LEARNED_TOPICS, OTHER};
use super::*;
use std::collections::BTreeSet;
use std::time::Duration;

/// Every distinct `topic` label value in the registry.
fn topic_labels(m: &Metrics) -> BTreeSet<String> {
    m.registry
        .gather()
        .iter()
        .flat_map(|f| f.get_metric())
        .flat_map(|m| m.get_label())
        .filter(|l| l.name() == "topic")
        .map(|l| l.value().to_string())
        .collect()
}

#[test]
fn renders_the_catalog_names_with_labels() {
    let m = Metrics::new("g");
    m.declare(&["orders".into()], &["echo".into()]);
    m.processed("orders", false, 3, Duration::from_millis(3));
    m.error("orders");
    m.dead_letter("orders");
    m.invocations(
        "echo",
        &[Duration::from_millis(1), Duration::from_millis(2)],
    );
    m.plugin_error("echo", "trap");
    m.live_version("echo", "aaa");
    m.live_version("echo", "bbb");
    m.consumer_lag([("orders", 0, 5), ("orders", 1, 2), ("orders", 2, -1)]);
    m.owned(&[("orders".into(), 2), ("orders".into(), 0)]);
    m.owned(&[("orders".into(), 0)]);
    m.committed(Duration::from_millis(4));
    let text = m.render();
    assert_eq!(
        m.partition_lags(&[("orders".into(), 0), ("orders".into(), 2)]),
        vec![("orders".to_string(), 0, 5)]
    );
    assert!(
        text.contains(r#"switchyard_partition_owned{partition="0",topic="orders"} 1"#),
        "{text}"
    );
    assert!(!text.contains(r#"partition="2""#), "{text}");
    assert!(
        text.contains("switchyard_state_commit_seconds_count 1"),
        "{text}"
    );
    assert_eq!(m.commits(), (1, 0.004));
    assert!(
        text.contains(r#"kafka_consumer_errors_total{consumer_group="g",topic="orders"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"kafka_dlq_messages_total{topic="orders"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"kafka_consumer_processing_duration_seconds_count{consumer_group="g",topic="orders"} 3"#), "{text}");
    assert!(
        text.contains(r#"switchyard_plugin_invocations_total{plugin="echo"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"switchyard_plugin_duration_seconds_count{plugin="echo"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"switchyard_plugin_errors_total{class="trap",plugin="echo"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"switchyard_plugin_version_info{plugin="echo",version="bbb"} 1"#),
        "{text}"
    );
    assert!(!text.contains(r#"version="aaa""#), "{text}");
    assert!(
        text.contains(r#"kafka_consumer_lag{consumer_group="g",topic="orders"} 7"#),
        "{text}"
    );
    assert_eq!(m.totals(), (1, 1, 7));
    assert_eq!(topic_labels(&m), BTreeSet::from(["orders".to_string()]));
}

#[test]
fn topics_no_plugin_consumes_are_counted_under_other() {
    let m = Metrics::new("g");
    m.declare(&["orders".into()], &[]);
    m.topics
        .consumed_when(Box::new(|topic| topic.starts_with("pay.")));
    m.processed("orders", false, 1, Duration::from_millis(1));
    m.processed("pay.in", false, 1, Duration::from_millis(1));
    m.processed("_schemas", false, 1, Duration::from_millis(1));
    m.processed("connect-offsets", false, 1, Duration::from_millis(1));
    // Records routed to a plugin show that plugins consume their topic.
    m.processed("routed.in", true, 2, Duration::from_millis(1));
    m.lost("audit", 3);
    m.consumer_lag([
        ("orders", 0, 1),
        ("audit", 0, 10),
        ("audit", 1, 20),
        ("_schemas", 0, 5),
    ]);
    m.owned(&[
        ("orders".into(), 0),
        ("audit".into(), 0),
        ("audit".into(), 1),
        ("_schemas".into(), 0),
    ]);
    let text = m.render();
    for line in [
        r#"kafka_consumer_processing_duration_seconds_count{consumer_group="g",topic="(other)"} 2"#,
        r#"kafka_consumer_processing_duration_seconds_count{consumer_group="g",topic="pay.in"} 1"#,
        r#"kafka_consumer_processing_duration_seconds_count{consumer_group="g",topic="routed.in"} 2"#,
        r#"kafka_consumer_lag{consumer_group="g",topic="(other)"} 35"#,
        r#"kafka_consumer_lag{consumer_group="g",topic="orders"} 1"#,
        r#"switchyard_records_lost_total{topic="(other)"} 3"#,
        r#"switchyard_partition_owned{partition="(other)",topic="(other)"} 3"#,
        r#"switchyard_partition_owned{partition="0",topic="orders"} 1"#,
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
    // Their partitions' lags are still there for the status page.
    assert_eq!(
        m.partition_lags(&[("audit".into(), 1)]),
        vec![("audit".to_string(), 1, 20)]
    );
    // A failure shows that plugins consume a topic: it gets its label.
    m.error("audit");
    assert!(
        m.render()
            .contains(r#"kafka_consumer_errors_total{consumer_group="g",topic="audit"} 1"#)
    );
    assert_eq!(
        topic_labels(&m),
        ["(other)", "audit", "orders", "pay.in", "routed.in"]
            .map(String::from)
            .into()
    );
}

#[test]
fn a_flood_of_topics_creates_at_most_the_bound_of_series() {
    const FLOOD: usize = 5_000;
    let m = Metrics::new("g");
    m.declare(&["orders".into()], &[]);
    // The worst case: plugins consume every topic (`*`).
    m.topics.consumed_when(Box::new(|_| true));
    let topics: Vec<String> = (0..FLOOD).map(|i| format!("t.{i}")).collect();
    for topic in &topics {
        m.processed(topic, false, 1, Duration::from_millis(1));
        m.error(topic);
        m.dead_letter(topic);
        m.lost(topic, 1);
    }
    m.consumer_lag(topics.iter().map(|t| (t.as_str(), 0, 1)));
    let owned: Vec<(String, i32)> = topics.iter().map(|t| (t.clone(), 0)).collect();
    m.owned(&owned);
    let labels = topic_labels(&m);
    assert_eq!(labels.len(), 1 + MAX_LEARNED_TOPICS + 1, "{labels:?}");
    assert!(labels.contains("orders") && labels.contains(OTHER));
    // Nothing is lost in the folding: the sums stay exact.
    assert_eq!(m.totals(), (FLOOD as u64, FLOOD as u64, FLOOD as i64));
    let text = m.render();
    let sum = |family: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(&format!("{family}{{")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(sum("switchyard_records_lost_total"), FLOOD as f64);
    assert_eq!(sum("switchyard_partition_owned"), FLOOD as f64);
    // The series per family are bounded as well, not only the values.
    let lost_series = text
        .lines()
        .filter(|l| l.starts_with("switchyard_records_lost_total{"))
        .count();
    assert_eq!(lost_series, 1 + MAX_LEARNED_TOPICS + 1);
}
