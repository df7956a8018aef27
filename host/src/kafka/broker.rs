//! The embedded dev broker: librdkafka's mock cluster, in-process, on
//! loopback. It speaks the Kafka protocol, so kcat or any client can
//! produce to it; it keeps everything in memory and is gone at exit.

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

/// A running mock cluster.
pub struct EmbeddedBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl EmbeddedBroker {
    /// Starts a one-broker cluster on a free loopback port.
    pub fn start() -> anyhow::Result<Self> {
        Ok(EmbeddedBroker {
            cluster: MockCluster::new(1)?,
        })
    }

    /// Its `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Takes the broker down (its connections drop and new ones are
    /// refused) or brings it back, keeping what it stored: an outage, for
    /// tests.
    pub fn set_down(&self, down: bool) -> anyhow::Result<()> {
        if down {
            self.cluster.broker_down(1)?;
        } else {
            self.cluster.broker_up(1)?;
        }
        Ok(())
    }

    /// Creates a topic. The mock cluster has no CreateTopics API, so the
    /// router's admin client cannot; topics it does not know of are
    /// auto-created on first produce.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> anyhow::Result<()> {
        match self.cluster.create_topic(topic, partitions, 1) {
            Err(rdkafka::error::KafkaError::MockCluster(
                rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists,
            )) => Ok(()),
            other => Ok(other?),
        }
    }
}
