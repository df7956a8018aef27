//! The producer (idempotent, `acks=all`) and topic admin.

use crate::config::KafkaConfig;
use crate::event::Header;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;

/// A record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The topic.
    pub topic: String,
    /// The key.
    pub key: Option<Vec<u8>>,
    /// The headers.
    pub headers: Vec<Header>,
    /// The value.
    pub value: Vec<u8>,
}

/// Produces records and creates topics.
pub struct Sink {
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    known: std::sync::Mutex<std::collections::HashSet<String>>,
    create: bool,
}

impl Sink {
    /// A producer and an admin client for `config`. With `create` off,
    /// [`Sink::ensure_topics`] does nothing (for brokers without the
    /// CreateTopics API, which auto-create topics instead).
    pub fn new(config: &ClientConfig, create: bool) -> anyhow::Result<Self> {
        let mut producer_config = config.clone();
        producer_config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "30000");
        Ok(Sink {
            producer: producer_config.create()?,
            admin: config.create()?,
            known: Default::default(),
            create,
        })
    }

    /// Creates the topics that do not exist yet; existing ones are left alone.
    pub async fn ensure_topics(
        &self,
        topics: &[String],
        kafka: &KafkaConfig,
    ) -> anyhow::Result<()> {
        if !self.create {
            return Ok(());
        }
        let topics: Vec<&String> = {
            let known = self.known.lock().expect("topics lock");
            topics.iter().filter(|t| !known.contains(*t)).collect()
        };
        if topics.is_empty() {
            return Ok(());
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
            .operation_timeout(Some(Duration::from_secs(10)))
            .request_timeout(Some(Duration::from_secs(15)));
        for result in self.admin.create_topics(&new, &options).await? {
            match result {
                Ok(topic) => tracing::info!(topic, "created topic"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => anyhow::bail!("cannot create topic {topic}: {code}"),
            }
        }
        self.known
            .lock()
            .expect("topics lock")
            .extend(topics.into_iter().cloned());
        Ok(())
    }

    /// Produces every record and waits until all are acknowledged.
    pub async fn send_all(&self, records: &[Outgoing]) -> anyhow::Result<()> {
        let sends = records.iter().map(|r| {
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
            for h in &r.headers {
                headers = headers.insert(rdkafka::message::Header {
                    key: &h.key,
                    value: Some(h.value.as_bytes()),
                });
            }
            let mut record = FutureRecord::<[u8], [u8]>::to(&r.topic)
                .payload(&r.value)
                .headers(headers);
            if let Some(key) = &r.key {
                record = record.key(key);
            }
            self.producer.send(record, Duration::from_secs(30))
        });
        for result in futures::future::join_all(sends).await {
            result.map_err(|(e, _)| anyhow::anyhow!("produce failed: {e}"))?;
        }
        Ok(())
    }

    /// Waits for everything queued to be delivered.
    pub fn flush(&self) {
        if let Err(e) = self.producer.flush(Duration::from_secs(10)) {
            tracing::warn!("producer flush: {e}");
        }
    }
}
