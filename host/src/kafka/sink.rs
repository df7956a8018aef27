//! The producer (idempotent, `acks=all`) and topic admin.
//!
//! Records are produced pipelined: [`Sink::enqueue`] hands a record to
//! librdkafka and returns at once with a [`Delivery`] to await later, so a
//! partition worker runs its next batch while the previous one is in flight.
//!
//! Failures are told apart ([`ProduceError`]): a broker that is unreachable
//! is transient, and librdkafka retries it without limit
//! (`message.timeout.ms = 0`), so the record waits; a refusal that will not
//! change (too large, invalid topic, not authorised) is permanent, and the
//! caller dead-letters the input instead.

use crate::config::KafkaConfig;
use crate::event::OutRecord;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;

/// Why a record was not produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProduceError {
    /// The broker refused it for good: dead-letter the input.
    #[error("the broker refused the record: {0}")]
    Permanent(String),
    /// It may work later: wait and produce it again.
    #[error("produce failed for now: {0}")]
    Transient(String),
}

impl ProduceError {
    fn of(error: &KafkaError) -> Self {
        use RDKafkaErrorCode::*;
        let text = error.to_string();
        match error.rdkafka_error_code() {
            Some(
                MessageSizeTooLarge
                | InvalidMessageSize
                | InvalidMessage
                | InvalidRecord
                | InvalidTopic
                | UnknownTopic
                | TopicAuthorizationFailed
                | ClusterAuthorizationFailed
                | InvalidRequiredAcks
                | MessageBatchTooLarge
                | UnsupportedForMessageFormat
                | PolicyViolation,
            ) => ProduceError::Permanent(text),
            _ => ProduceError::Transient(text),
        }
    }
}

/// A record handed to the producer, not yet acknowledged.
pub struct Delivery(Pending);

enum Pending {
    /// librdkafka's answer, to come.
    Broker(DeliveryFuture),
    /// Known already (an in-process output).
    Ready(Result<(), ProduceError>),
}

impl Delivery {
    /// A delivery whose answer is already known: what an output that is not
    /// a Kafka producer (an in-process one, in tests) hands back.
    pub fn ready(result: Result<(), ProduceError>) -> Self {
        Delivery(Pending::Ready(result))
    }

    /// Waits for the broker's answer.
    pub(crate) async fn wait(self) -> Result<(), ProduceError> {
        match self.0 {
            Pending::Ready(result) => result,
            Pending::Broker(future) => match future.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((e, _))) => Err(ProduceError::of(&e)),
                Err(_) => Err(ProduceError::Transient("the producer was dropped".into())),
            },
        }
    }
}

/// Produces records and creates topics.
pub(crate) struct Sink {
    /// The producer; replaced whole when a transactional one is fenced or
    /// fails fatally ([`Sink::recreate`]).
    producer: std::sync::RwLock<FutureProducer>,
    producer_config: ClientConfig,
    admin: AdminClient<DefaultClientContext>,
    known: std::sync::Mutex<std::collections::HashSet<String>>,
    create: bool,
}

impl Sink {
    /// A producer and an admin client for `config`. With `create` off,
    /// [`Sink::ensure_topics`] does nothing (for brokers without the
    /// CreateTopics API, which auto-create topics instead).
    ///
    /// Producer settings, chosen by the throughput benchmark
    /// (BENCHMARKS.md): idempotent with `acks=all`; `linger.ms=2` and
    /// `batch.num.messages=10000` so pipelined records share requests;
    /// `message.timeout.ms=0` so a transient outage never fails a record.
    /// Keys in `[kafka.client]` override them.
    ///
    /// With `transactional_id` (exactly-once) the producer is transactional:
    /// `transaction.timeout.ms` from the config, and a record times out with
    /// its transaction, which then aborts and runs again
    /// ([`crate::kafka::txn`]).
    pub(crate) fn new(
        config: &ClientConfig,
        create: bool,
        kafka: &KafkaConfig,
        transactional_id: Option<&str>,
    ) -> anyhow::Result<Self> {
        let mut producer_config = config.clone();
        producer_config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "2")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "200000")
            .set(
                "message.max.bytes",
                (kafka.max_record_bytes + 1024).to_string(),
            )
            .set("message.timeout.ms", "0");
        if let Some(id) = transactional_id {
            let timeout = kafka.transaction_timeout_ms.to_string();
            producer_config
                .set("transactional.id", id)
                .set("transaction.timeout.ms", &timeout)
                .set("message.timeout.ms", &timeout);
        }
        for (key, value) in &kafka.client {
            producer_config.set(key, value);
        }
        Ok(Sink {
            producer: std::sync::RwLock::new(producer_config.create()?),
            producer_config,
            admin: config.create()?,
            known: Default::default(),
            create,
        })
    }

    /// Creates the topics that do not exist yet; existing ones are left
    /// alone. Returns the topics it could not create, with why.
    pub(crate) async fn ensure_topics(
        &self,
        topics: &[String],
        kafka: &KafkaConfig,
    ) -> Vec<String> {
        if !self.create {
            return Vec::new();
        }
        let topics: Vec<&String> = {
            let known = self.known.lock().expect("topics lock");
            topics.iter().filter(|t| !known.contains(*t)).collect()
        };
        if topics.is_empty() {
            return Vec::new();
        }
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|t| {
                NewTopic::new(
                    t,
                    kafka.partitions_for(t),
                    TopicReplication::Fixed(kafka.replication),
                )
            })
            .collect();
        let options = AdminOptions::new()
            .operation_timeout(Some(Duration::from_secs(5)))
            .request_timeout(Some(Duration::from_secs(5)));
        let mut failed = Vec::new();
        match self.admin.create_topics(&new, &options).await {
            Ok(results) => {
                for result in results {
                    match result {
                        Ok(topic) => tracing::info!(topic, "created topic"),
                        Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                        Err((topic, code)) => failed.push(format!("{topic} ({code})")),
                    }
                }
            }
            Err(e) => failed.extend(topics.iter().map(|t| format!("{t} ({e})"))),
        }
        self.known
            .lock()
            .expect("topics lock")
            .extend(topics.into_iter().cloned());
        failed
    }

    /// Hands `record` to the producer; waits only while its queue is full.
    pub(crate) async fn enqueue(&self, record: &OutRecord) -> Result<Delivery, ProduceError> {
        loop {
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
            for h in &record.headers {
                headers = headers.insert(rdkafka::message::Header {
                    key: &h.key,
                    value: Some(h.bytes()),
                });
            }
            let mut future = FutureRecord::<[u8], [u8]>::to(&record.topic).headers(headers);
            if !record.tombstone {
                future = future.payload(&record.value);
            }
            if let Some(key) = &record.key {
                future = future.key(key);
            }
            let producer = self.producer();
            match producer.send_result(future) {
                Ok(delivery) => return Ok(Delivery(Pending::Broker(delivery))),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(ProduceError::of(&e)),
            }
        }
    }

    /// Produces every record and waits until all are acknowledged.
    pub(crate) async fn send_all(&self, records: &[OutRecord]) -> Result<(), ProduceError> {
        let mut deliveries = Vec::with_capacity(records.len());
        for record in records {
            deliveries.push(self.enqueue(record).await?);
        }
        for delivery in deliveries {
            delivery.wait().await?;
        }
        Ok(())
    }

    /// The producer in use.
    pub(crate) fn producer(&self) -> FutureProducer {
        self.producer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the producer with a new one of the same config (a fenced
    /// or fatally failed transactional producer cannot be used again).
    pub(crate) fn recreate(&self) -> anyhow::Result<FutureProducer> {
        let fresh: FutureProducer = self.producer_config.create()?;
        *self.producer.write().unwrap_or_else(|e| e.into_inner()) = fresh.clone();
        Ok(fresh)
    }

    /// Waits up to `timeout` for everything queued to be delivered.
    pub(crate) fn flush(&self, timeout: Duration) {
        if let Err(e) = self.producer().flush(timeout) {
            tracing::warn!("producer flush: {e}");
        }
    }
}
