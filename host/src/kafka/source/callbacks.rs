//! The consumer's callbacks, called by librdkafka from its poll: leases
//! and the assigned partitions on rebalance (a revoke waits for a
//! transaction commit in progress), broker health and credentials, the
//! consumer lag metric, and positions reset by retention.

use super::{Partition, SourceState};
use crate::metrics::Metrics;
use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The consumer's callbacks: leases on rebalance, broker health, and
/// librdkafka's statistics turned into the consumer lag metric.
pub(crate) struct SourceContext {
    pub(super) state: Arc<SourceState>,
    pub(super) metrics: Option<Arc<Metrics>>,
}

impl ClientContext for SourceContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        let reachable = statistics.brokers.values().any(|b| b.state == "UP");
        if reachable {
            self.state.broker_down.store(false, Ordering::Relaxed);
        }
        let Some(metrics) = &self.metrics else { return };
        metrics.consumer_lag(statistics.topics.iter().flat_map(|(name, topic)| {
            topic
                .partitions
                .values()
                .filter(|p| p.partition >= 0)
                .map(move |p| (name.as_str(), p.partition, p.consumer_lag))
        }));
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        if fac == "OFFSET"
            && let Some((partition, at)) = parse_reset(message)
        {
            self.state
                .resets
                .lock()
                .expect("reset lock")
                .insert(partition, at);
        }
        match level as i32 {
            0..=3 => tracing::error!(target: "librdkafka", "{fac}: {message}"),
            4 => tracing::warn!(target: "librdkafka", "{fac}: {message}"),
            5 | 6 => tracing::info!(target: "librdkafka", "{fac}: {message}"),
            _ => tracing::debug!(target: "librdkafka", "{fac}: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::AllBrokersDown) => {
                self.state.broker_down.store(true, Ordering::Relaxed);
            }
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed) => {
                *self.state.auth_failed.lock().expect("auth lock") = Some(reason.to_string());
                self.state.auth_notify.notify_waiters();
            }
            _ => {}
        }
        tracing::warn!("kafka: {error}: {reason}");
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let _committing = self.state.commit_lock();
            let mut leases = self.state.leases.lock().expect("lease lock");
            let mut assigned = self.state.assigned.lock().expect("assignment lock");
            for e in list.elements() {
                let partition = (e.topic().to_string(), e.partition());
                if let Some(lease) = leases.remove(&partition) {
                    lease.0.store(false, Ordering::Release);
                }
                assigned.remove(&partition);
            }
            drop(assigned);
            let owned = self.report_owned();
            tracing::info!(partitions = list.count(), owned, "partitions revoked");
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            // A fresh assignment starts from the committed offsets anyway.
            let mut rewinding = self.state.rewinding.lock().expect("rewind lock");
            for e in list.elements() {
                rewinding.remove(&(e.topic().to_string(), e.partition()));
            }
            drop(rewinding);
            // A partition paused for back-pressure and revoked stays paused
            // in librdkafka if it comes back; its new worker starts with an
            // empty queue and would never see a record. Fetch it.
            if let Err(e) = consumer.resume(list) {
                tracing::warn!("resuming assigned partitions: {e}");
            }
            self.state.assigned.lock().expect("assignment lock").extend(
                list.elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition())),
            );
            let owned = self.report_owned();
            tracing::info!(partitions = list.count(), owned, "partitions assigned");
        }
    }
}

impl SourceContext {
    /// Shows the partitions owned now in `switchyard_partition_owned`;
    /// returns how many there are.
    fn report_owned(&self) -> usize {
        let owned = self.state.owned();
        if let Some(metrics) = &self.metrics {
            metrics.owned(&owned);
        }
        owned.len()
    }
}

/// Reads `topic [3]: offset reset (at offset 120 (leader epoch 0), broker 1) to ...`
fn parse_reset(message: &str) -> Option<(Partition, i64)> {
    let (head, rest) = message.split_once(": offset reset (at offset ")?;
    let (topic, partition) = head.rsplit_once(" [")?;
    // After librdkafka's "[thrd:main]: " prefix; topic names have no spaces.
    let topic = topic.split_whitespace().last()?;
    let partition: i32 = partition.strip_suffix(']')?.parse().ok()?;
    let at: i64 = rest
        .split(|c: char| !c.is_ascii_digit() && c != '-')
        .next()?
        .parse()
        .ok()?;
    Some(((topic.to_string(), partition), at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_librdkafka_offset_reset_lines() {
        let line = "[thrd:main]: orders [2]: offset reset (at offset 120 (leader epoch 0), broker 1) to \
                    cached BEGINNING offset 3000 (leader epoch 0): fetch failed due to requested \
                    offset not available on the broker: Broker: Offset out of range";
        assert_eq!(parse_reset(line), Some((("orders".to_string(), 2), 120)));
        assert_eq!(parse_reset("something else"), None);
    }
}
