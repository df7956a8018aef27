//! The metric families: their names, help texts, labels and buckets, and
//! their registration.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// The families `/metrics` always declares, even before their first series.
pub(super) const DECLARED: [(&str, &str, &str); 4] = [
    (
        "kafka_consumer_lag",
        "gauge",
        "Records behind the end of the partition, summed per topic.",
    ),
    (
        "kafka_consumer_processing_duration_seconds",
        "histogram",
        "Time to handle one record: decode, plugins, produce, dead-letter.",
    ),
    (
        "kafka_consumer_errors_total",
        "counter",
        "Plugin calls or decodes that failed, per input topic.",
    ),
    (
        "kafka_dlq_messages_total",
        "counter",
        "Records sent to a dead-letter topic, per original topic.",
    ),
];

const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Every family of one router, registered in one registry.
pub(super) struct Families {
    pub(super) lag: IntGaugeVec,
    pub(super) processing: HistogramVec,
    pub(super) errors: IntCounterVec,
    pub(super) dlq: IntCounterVec,
    pub(super) invocations: IntCounterVec,
    pub(super) plugin_errors: IntCounterVec,
    pub(super) plugin_duration: HistogramVec,
    pub(super) version: IntGaugeVec,
    pub(super) reload_failures: IntCounterVec,
    pub(super) lost: IntCounterVec,
    pub(super) owned: IntGaugeVec,
    pub(super) commit: Histogram,
    pub(super) timers_pending: IntGaugeVec,
    pub(super) timers_next_due: IntGaugeVec,
    pub(super) timers_fired: IntCounterVec,
    pub(super) timer_lateness: HistogramVec,
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
}

fn gauge(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
}

fn histogram(name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    HistogramVec::new(
        HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()),
        labels,
    )
    .expect("valid metric")
}

impl Families {
    /// Every family, registered in `registry`.
    pub(super) fn register(registry: &Registry) -> Self {
        let topic_group = &["topic", "consumer_group"];
        let families = Families {
            lag: gauge(
                "kafka_consumer_lag",
                "Records behind the end of the partition, summed per topic.",
                topic_group,
            ),
            processing: histogram(
                "kafka_consumer_processing_duration_seconds",
                "Time to handle one record: decode, plugins, produce, dead-letter.",
                topic_group,
            ),
            errors: counter(
                "kafka_consumer_errors_total",
                "Plugin calls or decodes that failed, per input topic.",
                topic_group,
            ),
            dlq: counter(
                "kafka_dlq_messages_total",
                "Records sent to a dead-letter topic, per original topic.",
                &["topic"],
            ),
            invocations: counter(
                "switchyard_plugin_invocations_total",
                "Plugin calls.",
                &["plugin"],
            ),
            plugin_errors: counter(
                "switchyard_plugin_errors_total",
                "Failed plugin calls by error class.",
                &["plugin", "class"],
            ),
            plugin_duration: histogram(
                "switchyard_plugin_duration_seconds",
                "Time in one plugin call, commit included.",
                &["plugin"],
            ),
            version: gauge(
                "switchyard_plugin_version_info",
                "1 for the version each plugin runs.",
                &["plugin", "version"],
            ),
            reload_failures: counter(
                "switchyard_plugin_reload_failures_total",
                "New versions refused (broken, wrong world, failing fixtures).",
                &["plugin"],
            ),
            lost: counter(
                "switchyard_records_lost_total",
                "Records the broker deleted (retention) before the router read them.",
                &["topic"],
            ),
            owned: gauge(
                "switchyard_partition_owned",
                "1 for each partition this instance owns in its consumer group.",
                &["topic", "partition"],
            ),
            commit: Histogram::with_opts(
                HistogramOpts::new(
                    "switchyard_state_commit_seconds",
                    "One group commit to the state store: every ready partition's batch.",
                )
                .buckets(BUCKETS.to_vec()),
            )
            .expect("valid metric"),
            timers_pending: gauge(
                "switchyard_timers_pending",
                "Timers set and not yet fired, per plugin (sampled from the state store).",
                &["plugin"],
            ),
            timers_next_due: gauge(
                "switchyard_timers_next_due_timestamp_seconds",
                "When the plugin's next timer is due, Unix seconds (absent: none pending).",
                &["plugin"],
            ),
            timers_fired: counter(
                "switchyard_timers_fired_total",
                "Timers fired, per plugin.",
                &["plugin"],
            ),
            timer_lateness: HistogramVec::new(
                HistogramOpts::new(
                    "switchyard_timer_lateness_seconds",
                    "How long after its due time a timer fired, per plugin.",
                )
                .buckets(vec![
                    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                ]),
                &["plugin"],
            )
            .expect("valid metric"),
        };
        let f = &families;
        let collectors: [Box<dyn prometheus::core::Collector>; 16] = [
            Box::new(f.timers_pending.clone()),
            Box::new(f.timers_next_due.clone()),
            Box::new(f.timers_fired.clone()),
            Box::new(f.timer_lateness.clone()),
            Box::new(f.commit.clone()),
            Box::new(f.errors.clone()),
            Box::new(f.dlq.clone()),
            Box::new(f.invocations.clone()),
            Box::new(f.plugin_errors.clone()),
            Box::new(f.reload_failures.clone()),
            Box::new(f.lost.clone()),
            Box::new(f.processing.clone()),
            Box::new(f.plugin_duration.clone()),
            Box::new(f.lag.clone()),
            Box::new(f.version.clone()),
            Box::new(f.owned.clone()),
        ];
        for c in collectors {
            registry.register(c).expect("unique metric");
        }
        families
    }
}
