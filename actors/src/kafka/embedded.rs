//! [`EmbeddedCluster`]: librdkafka's in-process mock cluster, used when no brokers are
//! configured and by the tests. It keeps only about 5 MiB per partition (older data is dropped),
//! so it suits live runs and small backlogs, not large histories.

use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, DefaultProducerContext, Producer};
use rdkafka::ClientConfig;

use super::AdapterError;

/// An in-process Kafka cluster. The cluster lives as long as this value; drop every client of
/// it first (a consumer of a vanished cluster waits for its brokers when it closes).
pub struct EmbeddedCluster {
    /// The cluster belongs to this client handle: created with `test.mock.num.brokers`, it
    /// lets us reach mock functions `MockCluster` does not wrap, and unlike `MockCluster` the
    /// handle may move between threads.
    owner: BaseProducer<DefaultProducerContext>,
    bootstrap: String,
}

impl EmbeddedCluster {
    /// Starts a cluster of `brokers` brokers.
    ///
    /// # Errors
    /// If librdkafka cannot start it.
    pub fn start(brokers: i32) -> Result<Self, AdapterError> {
        let owner: BaseProducer<DefaultProducerContext> = ClientConfig::new()
            .set("test.mock.num.brokers", brokers.to_string())
            .create()
            .map_err(|source| AdapterError::CreateClient {
                role: "embedded cluster",
                source,
            })?;
        let cluster = EmbeddedCluster {
            bootstrap: String::new(),
            owner,
        };
        let bootstrap = cluster.with_mock(|mock| Ok(mock.bootstrap_servers()))?;
        // SAFETY: the handle belongs to `owner`, which is alive; the call only sets a timer
        // value inside the mock cluster. New groups then form at once instead of after the
        // mock's default 3 s delay.
        unsafe {
            let raw = rdkafka::bindings::rd_kafka_handle_mock_cluster(
                cluster.owner.client().native_ptr(),
            );
            if !raw.is_null() {
                rdkafka::bindings::rd_kafka_mock_group_initial_rebalance_delay_ms(raw, 0);
            }
        }
        Ok(EmbeddedCluster {
            bootstrap,
            ..cluster
        })
    }

    fn with_mock<T>(
        &self,
        f: impl FnOnce(&MockCluster<'_, DefaultProducerContext>) -> rdkafka::error::KafkaResult<T>,
    ) -> Result<T, AdapterError> {
        let mock = self
            .owner
            .client()
            .mock_cluster()
            .ok_or_else(|| AdapterError::Embedded {
                what: "the client has no mock cluster".into(),
                source: rdkafka::error::KafkaError::MockCluster(
                    rdkafka::types::RDKafkaErrorCode::Fail,
                ),
            })?;
        f(&mock).map_err(|source| AdapterError::Embedded {
            what: "mock operation failed".into(),
            source,
        })
    }

    /// The cluster's `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// Creates a topic.
    ///
    /// # Errors
    /// If the mock refuses (for example a replication factor above the broker count).
    pub fn create_topic(
        &self,
        topic: &str,
        partitions: i32,
        replication: i32,
    ) -> Result<(), AdapterError> {
        self.with_mock(|mock| mock.create_topic(topic, partitions, replication))
    }
}
