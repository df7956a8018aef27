//! One record's path: skip excluded topics, decode, run each subscribed
//! plugin with retries, produce what it emitted, dead-letter what failed.
//! Records of one partition go through here one at a time, in order; the
//! caller stores the offset only after [`Pipeline::handle`] returns `Ok`.

use crate::config::{KafkaConfig, Matcher};
use crate::envelope;
use crate::event::Record;
use crate::kafka::dlq::DeadLetter;
use crate::kafka::sink::{Outgoing, Sink};
use crate::metrics::Metrics;
use crate::router::{Produced, Router};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Counters for the dev summary line.
#[derive(Debug, Default)]
pub struct Stats {
    /// Records handled (routed, skipped or dead-lettered).
    pub records: AtomicU64,
    /// Records produced from emits.
    pub emitted: AtomicU64,
    /// Plugin calls that failed (each attempt).
    pub errors: AtomicU64,
    /// Records sent to a dead-letter topic.
    pub dead_letters: AtomicU64,
}

/// Takes records from the source to the sink through the router.
pub struct Pipeline {
    router: Arc<Router>,
    sink: Arc<Sink>,
    kafka: KafkaConfig,
    exclude: Matcher,
    stats: Arc<Stats>,
    metrics: Arc<Metrics>,
}

impl Pipeline {
    /// A pipeline over `router` and `sink`.
    pub fn new(
        router: Arc<Router>,
        sink: Arc<Sink>,
        kafka: KafkaConfig,
        exclude: Matcher,
        stats: Arc<Stats>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Pipeline {
            router,
            sink,
            kafka,
            exclude,
            stats,
            metrics,
        }
    }

    /// Handles one record. An `Err` means its outputs could not be produced:
    /// the offset must not be stored, and the caller stops.
    pub async fn handle(&self, record: &Record) -> anyhow::Result<()> {
        if self.exclude.matches(&record.topic) {
            return Ok(());
        }
        let started = Instant::now();
        let result = self.route(record).await;
        self.metrics.processed(&record.topic, started.elapsed());
        result
    }

    async fn route(&self, record: &Record) -> anyhow::Result<()> {
        let at = format!("{}[{}]@{}", record.topic, record.partition, record.offset);
        self.stats.records.fetch_add(1, Ordering::Relaxed);
        let event = match envelope::decode(record) {
            Ok(event) => event,
            Err(e) => {
                self.metrics.error(&record.topic);
                let letter = DeadLetter {
                    plugin: None,
                    version: None,
                    attempts: 1,
                    class: "decode",
                    message: &e.to_string(),
                };
                self.dead_letter(record, &letter).await?;
                tracing::info!(target: "switchyard::tail", "handled {at} type=- dead-lettered (decode: {e})");
                return Ok(());
            }
        };
        let mut summary = Vec::new();
        let plugins: Vec<_> = self
            .router
            .registry()
            .subscribers(&event.ty, &event.topic)
            .cloned()
            .collect();
        let event = Arc::new(event);
        for plugin in plugins {
            let mut attempt = 1;
            loop {
                plugin.resumed().await;
                let (router, p, e) = (self.router.clone(), plugin.clone(), event.clone());
                let called = Instant::now();
                let outcome = tokio::task::spawn_blocking(move || router.run(&p, &e)).await?;
                let failed = outcome.result.as_ref().err().map(|f| f.class());
                if !outcome.duplicate {
                    self.metrics
                        .invocation(&plugin.spec.name, called.elapsed(), failed);
                    plugin.count(failed.is_some());
                }
                match outcome.result {
                    Ok(produced) => {
                        self.produce(&produced).await?;
                        self.stats
                            .emitted
                            .fetch_add(produced.len() as u64, Ordering::Relaxed);
                        let to: Vec<String> = produced
                            .iter()
                            .map(|p| format!("{} ({})", p.ty, p.topic))
                            .collect();
                        let dup = if outcome.duplicate {
                            " (redelivered)"
                        } else {
                            ""
                        };
                        summary.push(format!(
                            "{}@{}{dup} -> [{}]",
                            plugin.spec.name,
                            outcome.version,
                            to.join(", ")
                        ));
                        break;
                    }
                    Err(failure) => {
                        self.stats.errors.fetch_add(1, Ordering::Relaxed);
                        self.metrics.error(&record.topic);
                        if failure.is_transient() && attempt <= self.kafka.max_retries {
                            let delay = self.kafka.backoff(attempt);
                            tracing::warn!(plugin = %plugin.spec.name, attempt, ?delay, "{at}: {failure}; retrying");
                            tokio::time::sleep(delay).await;
                            attempt += 1;
                            continue;
                        }
                        let message = failure.to_string();
                        let letter = DeadLetter {
                            plugin: Some(&plugin.spec.name),
                            version: Some(&outcome.version),
                            attempts: attempt,
                            class: failure.class(),
                            message: &message,
                        };
                        self.dead_letter(record, &letter).await?;
                        tracing::warn!(plugin = %plugin.spec.name, "{at}: {message}; dead-lettered after {attempt} attempt(s)");
                        summary.push(format!(
                            "{} dead-lettered ({})",
                            plugin.spec.name,
                            failure.class()
                        ));
                        break;
                    }
                }
            }
        }
        if summary.is_empty() {
            tracing::info!(target: "switchyard::tail", "handled {at} type={} no subscriber", event.ty);
        } else {
            tracing::info!(target: "switchyard::tail", "handled {at} type={} id={} {}", event.ty, event.id, summary.join("; "));
        }
        Ok(())
    }

    async fn produce(&self, produced: &[Produced]) -> anyhow::Result<()> {
        let records: Vec<Outgoing> = produced
            .iter()
            .map(|p| Outgoing {
                topic: p.topic.clone(),
                key: p.key.clone().map(String::into_bytes),
                headers: p.headers.clone(),
                value: p.value.clone(),
            })
            .collect();
        self.send(&records).await
    }

    async fn dead_letter(&self, record: &Record, letter: &DeadLetter<'_>) -> anyhow::Result<()> {
        let out = letter.wrap(record);
        self.sink
            .ensure_topics(std::slice::from_ref(&out.topic), &self.kafka)
            .await?;
        self.send(std::slice::from_ref(&out)).await?;
        self.stats.dead_letters.fetch_add(1, Ordering::Relaxed);
        self.metrics.dead_letter(&record.topic);
        Ok(())
    }

    /// Produces with retries; the producer already retries internally, so a
    /// failure here means the cluster is unreachable for a long while.
    async fn send(&self, records: &[Outgoing]) -> anyhow::Result<()> {
        let mut attempt = 1;
        loop {
            match self.sink.send_all(records).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt < 5 => {
                    tracing::warn!(attempt, "{e:#}; retrying");
                    tokio::time::sleep(self.kafka.backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
