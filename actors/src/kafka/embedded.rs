//! [`EmbeddedCluster`]: librdkafka's in-process mock cluster, used when no brokers are
//! configured and by the tests. It keeps only about 5 MiB per partition (older data is dropped),
//! so it suits live runs and small backlogs, not large histories.

use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, DefaultProducerContext, Producer};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::ClientConfig;

use super::error::AdapterError;

/// A kind of request the embedded cluster can be told to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerRequest {
    /// Fetch.
    Fetch,
    /// OffsetCommit.
    OffsetCommit,
    /// OffsetFetch.
    OffsetFetch,
    /// Heartbeat (group membership).
    Heartbeat,
    /// JoinGroup.
    JoinGroup,
    /// SyncGroup.
    SyncGroup,
}

impl BrokerRequest {
    fn api_key(self) -> RDKafkaApiKey {
        match self {
            BrokerRequest::Fetch => RDKafkaApiKey::Fetch,
            BrokerRequest::OffsetCommit => RDKafkaApiKey::OffsetCommit,
            BrokerRequest::OffsetFetch => RDKafkaApiKey::OffsetFetch,
            BrokerRequest::Heartbeat => RDKafkaApiKey::Heartbeat,
            BrokerRequest::JoinGroup => RDKafkaApiKey::JoinGroup,
            BrokerRequest::SyncGroup => RDKafkaApiKey::SyncGroup,
        }
    }
}

/// An error answer the embedded cluster can give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerError {
    /// The member is not known to the coordinator (its session is gone).
    UnknownMemberId,
    /// A rebalance is in progress.
    RebalanceInProgress,
    /// The broker is not the coordinator.
    NotCoordinator,
    /// The request timed out on the broker.
    RequestTimedOut,
    /// The broker drops the connection instead of answering.
    Disconnect,
    /// The broker does not lead the partition (retriable: metadata is refreshed).
    NotLeaderForPartition,
    /// The broker does not know the partition (retriable).
    UnknownTopicOrPartition,
    /// The coordinator is still loading (retriable).
    CoordinatorLoadInProgress,
    /// The client may not use the group (not retriable).
    GroupAuthorizationFailed,
}

impl BrokerError {
    fn code(self) -> RDKafkaRespErr {
        match self {
            BrokerError::UnknownMemberId => RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID,
            BrokerError::RebalanceInProgress => {
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS
            }
            BrokerError::NotCoordinator => RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
            BrokerError::RequestTimedOut => RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            BrokerError::Disconnect => RDKafkaRespErr::RD_KAFKA_RESP_ERR__TRANSPORT,
            BrokerError::NotLeaderForPartition => {
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION
            }
            BrokerError::UnknownTopicOrPartition => {
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
            }
            BrokerError::CoordinatorLoadInProgress => {
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS
            }
            BrokerError::GroupAuthorizationFailed => {
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED
            }
        }
    }
}

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
            .map_err(|e| AdapterError::create_client("embedded cluster", &e))?;
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

    /// Makes the next requests of a kind fail, one error per request, in order.
    ///
    /// # Errors
    /// If the cluster is gone.
    pub fn fail_next(
        &self,
        request: BrokerRequest,
        errors: &[BrokerError],
    ) -> Result<(), AdapterError> {
        let codes: Vec<RDKafkaRespErr> = errors.iter().map(|e| e.code()).collect();
        self.with_mock(|mock| {
            mock.request_errors(request.api_key(), &codes);
            Ok(())
        })
    }

    /// Moves the leadership of a partition to `broker` (1-based ids). The log is shared, so no
    /// record moves or is lost; fetches to the old leader are answered NOT_LEADER.
    ///
    /// # Errors
    /// If the mock refuses (an unknown broker).
    pub fn move_leader(
        &self,
        topic: &str,
        partition: i32,
        broker: i32,
    ) -> Result<(), AdapterError> {
        self.with_mock(|mock| mock.partition_leader(topic, partition, Some(broker)))
    }

    /// Takes a broker down: its connections close and it accepts none until
    /// [`broker_up`](Self::broker_up). Its partitions keep it as leader (move them to go on).
    ///
    /// # Errors
    /// If the mock refuses (an unknown broker).
    pub fn broker_down(&self, broker: i32) -> Result<(), AdapterError> {
        self.with_mock(|mock| mock.broker_down(broker))
    }

    /// Brings a broker back up on the same port.
    ///
    /// # Errors
    /// If the mock refuses (an unknown broker).
    pub fn broker_up(&self, broker: i32) -> Result<(), AdapterError> {
        self.with_mock(|mock| mock.broker_up(broker))
    }

    /// Adds `delay` to every round trip to `broker` (zero removes it).
    ///
    /// # Errors
    /// If the mock refuses (an unknown broker).
    pub fn broker_latency(&self, broker: i32, delay: Duration) -> Result<(), AdapterError> {
        self.with_mock(|mock| mock.broker_round_trip_time(broker, delay))
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
