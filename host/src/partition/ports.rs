//! The two ports a partition worker talks to Kafka through, so that its
//! logic can run in-process with no broker (the `partition_worker` test):
//! [`Outputs`], where outputs and dead letters go, and [`Offsets`], what it
//! tells the consumer. The Kafka producer ([`Sink`]) and consumer
//! ([`Source`]) implement them.

use crate::config::KafkaConfig;
use crate::event::OutRecord;
use crate::kafka::sink::{Delivery, ProduceError, Sink};
use crate::kafka::source::{Lease, Partition, Source};

/// Where a partition worker's outputs and dead letters go.
#[async_trait::async_trait]
pub trait Outputs: Send + Sync {
    /// Hands one record over; the [`Delivery`] resolves with the answer.
    /// An error is a refusal known at once.
    async fn enqueue(&self, record: &OutRecord) -> Result<Delivery, ProduceError>;

    /// Creates the `topics` that do not exist yet; returns the ones it
    /// could not create, with why.
    async fn ensure_topics(&self, topics: &[String], kafka: &KafkaConfig) -> Vec<String>;
}

/// What a partition worker tells the consumer: flow control and progress.
pub trait Offsets: Send + Sync {
    /// Stops fetching `partition` (its queue is full).
    fn pause(&self, partition: &Partition);

    /// Fetches `partition` again.
    fn resume(&self, partition: &Partition);

    /// Stores the offset after `offset` of `partition` for the next commit,
    /// if `lease` is still live.
    fn store(&self, lease: &Lease, partition: &Partition, offset: i64);
}

#[async_trait::async_trait]
impl Outputs for Sink {
    async fn enqueue(&self, record: &OutRecord) -> Result<Delivery, ProduceError> {
        Sink::enqueue(self, record).await
    }

    async fn ensure_topics(&self, topics: &[String], kafka: &KafkaConfig) -> Vec<String> {
        Sink::ensure_topics(self, topics, kafka).await
    }
}

impl Offsets for Source {
    fn pause(&self, partition: &Partition) {
        Source::pause(self, partition)
    }

    fn resume(&self, partition: &Partition) {
        Source::resume(self, partition)
    }

    fn store(&self, lease: &Lease, partition: &Partition, offset: i64) {
        Source::store(self, lease, partition, offset)
    }
}
