//! Reading back: the text exposition, and the totals and partitions the
//! status page shows.

use super::Metrics;
use super::families::DECLARED;
use prometheus::{Encoder, TextEncoder};

impl Metrics {
    /// The partitions this instance owns, as `topic[partition]`, sorted.
    pub fn partitions(&self) -> Vec<String> {
        let mut out: Vec<(String, i32)> = self
            .registry
            .gather()
            .iter()
            .filter(|f| f.name() == "switchyard_partition_owned")
            .flat_map(|f| f.get_metric())
            .map(|m| {
                let label = |n: &str| {
                    m.get_label()
                        .iter()
                        .find(|l| l.name() == n)
                        .map(|l| l.value().to_string())
                        .unwrap_or_default()
                };
                (label("topic"), label("partition").parse().unwrap_or(0))
            })
            .collect();
        out.sort();
        out.into_iter().map(|(t, p)| format!("{t}[{p}]")).collect()
    }

    /// Group commits so far and their mean time in seconds.
    pub fn commits(&self) -> (u64, f64) {
        let n = self.f.commit.get_sample_count();
        let mean = if n == 0 {
            0.0
        } else {
            self.f.commit.get_sample_sum() / n as f64
        };
        (n, mean)
    }

    /// The consumer lag of every partition this instance owns, by topic and
    /// partition.
    pub fn partition_lags(&self) -> Vec<(String, i32, i64)> {
        let owned: std::collections::HashSet<String> = self.partitions().into_iter().collect();
        self.partition_lag
            .lock()
            .expect("metrics lock")
            .iter()
            .filter(|((t, p), _)| owned.contains(&format!("{t}[{p}]")))
            .map(|((t, p), lag)| (t.clone(), *p, *lag))
            .collect()
    }

    /// Totals for the status page: records dead-lettered and errors, summed.
    pub fn totals(&self) -> (u64, u64, i64) {
        let sum = |families: Vec<prometheus::proto::MetricFamily>, name: &str| -> f64 {
            families
                .iter()
                .filter(|f| f.name() == name)
                .flat_map(|f| f.get_metric())
                .map(|m| m.get_counter().get_value() + m.get_gauge().get_value())
                .sum()
        };
        let families = self.registry.gather();
        (
            sum(families.clone(), "kafka_dlq_messages_total") as u64,
            sum(families.clone(), "kafka_consumer_errors_total") as u64,
            sum(families, "kafka_consumer_lag") as i64,
        )
    }

    /// The text exposition of every metric.
    ///
    /// A family with no series yet (no topic named in the config has been
    /// seen) is still declared, with its `HELP` and `TYPE` lines.
    pub fn render(&self) -> String {
        let families = self.registry.gather();
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut out)
            .expect("text encoding never fails");
        let mut text = String::from_utf8(out).expect("text format is UTF-8");
        for (name, kind, help) in DECLARED {
            if !text.contains(&format!("# TYPE {name} ")) {
                text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            }
        }
        text
    }
}
