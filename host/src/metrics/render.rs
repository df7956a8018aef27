//! Reading back: the text exposition, and the totals and lags the status
//! page shows.

use super::Metrics;
use super::families::DECLARED;
use prometheus::{Encoder, TextEncoder};

impl Metrics {
    /// Group commits so far and their mean time in seconds.
    pub(crate) fn commits(&self) -> (u64, f64) {
        let n = self.f.commit.get_sample_count();
        let mean = if n == 0 {
            0.0
        } else {
            self.f.commit.get_sample_sum() / n as f64
        };
        (n, mean)
    }

    /// The last consumer lag reported for each of `partitions` (topic,
    /// partition) that has one.
    pub(crate) fn partition_lags(&self, partitions: &[(String, i32)]) -> Vec<(String, i32, i64)> {
        let lags = self.partition_lag.lock().expect("metrics lock");
        partitions
            .iter()
            .filter_map(|p| Some((p.0.clone(), p.1, *lags.get(p)?)))
            .collect()
    }

    /// Totals for the status page: records dead-lettered and errors, summed.
    pub(crate) fn totals(&self) -> (u64, u64, i64) {
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
    pub(crate) fn render(&self) -> String {
        let families = {
            // Not halfway through a rebuild of the owned partitions.
            let _owned = self.owned_lock.lock().expect("metrics lock");
            self.registry.gather()
        };
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
