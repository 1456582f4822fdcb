//! The Kafka adapter: the only module that names rdkafka types. Everything else sees the
//! project's own [`FrameSource`](crate::ports::FrameSource),
//! [`OffsetCommitter`](crate::ports::OffsetCommitter), partitions as
//! [`PartitionId`] (topic and index) and offsets as `i64`.
//!
//! Threading: apart from reading a partition (which never waits), every call here may block
//! (librdkafka round trips), so callers run them on threads that may block: `spawn_blocking`,
//! the batch actor's commits, or the generator's thread.
//!
//! Client settings: the service's defaults first, then `kafka.properties` (the raw librdkafka
//! passthrough), then the properties the delivery guarantee depends on (auto-commit off,
//! offsets stored by the service, partition EOF on), which configuration may not override.

mod assigned;
mod committer;
mod coordinator;
mod embedded;
mod group;
mod intake;
mod output;
mod producer;
mod reader;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

pub use assigned::{AssignedIntake, AssigningConsumer};
pub use committer::KafkaCommitter;
pub use coordinator::{create_topic_on, group_coordinator};
pub use embedded::{BrokerError, BrokerRequest, EmbeddedCluster};
pub use group::GroupConsumer;
pub use intake::GroupCommits;
pub use output::{
    headers, KafkaDeadLetters, KafkaSink, OutletError, TransactionalOutput, Transactions,
};
pub use producer::{Delivery, FrameProducer};
pub use reader::PartitionReader;

use crate::config::{KafkaConfig, OutOfRange, PartitionConfig};
use crate::leaders::{LeaderBoard, Link};
use crate::ports::EndOffsetProbe;
use crate::topic::{PartitionId, Topic};

/// How long metadata and committed-offset look-ups may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long committed offsets are asked for again while the group's coordinator is not ready.
const COORDINATOR_WAIT: Duration = Duration::from_secs(30);
/// How long the watchdog's end-offset look-up may take per partition.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

impl AdapterError {
    /// librdkafka could not create a client. Its configuration errors carry the refused
    /// property's value (a password, for a misspelt or unsupported `sasl.password`): only
    /// the property's name and librdkafka's description are kept.
    pub(crate) fn create_client(role: &'static str, error: &KafkaError) -> Self {
        let reason = match error {
            KafkaError::ClientConfig(_, description, property, _value) => {
                format!("the property `{property}` was refused: {description}")
            }
            other => other.to_string(),
        };
        AdapterError::CreateClient { role, reason }
    }
}

/// A Kafka operation that failed. Messages never contain configuration values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdapterError {
    /// librdkafka refused the client configuration or could not start the client.
    #[error("cannot create the Kafka {role} client: {reason}")]
    CreateClient {
        /// Which client: consumer, producer, committer.
        role: &'static str,
        /// Why, naming a refused property but never its value.
        reason: String,
    },
    /// Topic metadata could not be read.
    #[error("cannot read the metadata of topic `{topic}`")]
    Metadata {
        /// The topic.
        topic: String,
        /// The librdkafka error.
        #[source]
        source: KafkaError,
    },
    /// The brokers could not be used at start: what they last said (which broker, and why:
    /// a refused connection, a failed TLS handshake, an authentication failure naming the SASL
    /// mechanism).
    #[error("cannot read the metadata of topic `{topic}`: {said}")]
    Refused {
        /// The topic.
        topic: String,
        /// The brokers' last error, as librdkafka reported it (it carries no secret).
        said: String,
    },
    /// The topic does not exist or has no partitions.
    #[error("topic `{0}` does not exist on the cluster")]
    TopicMissing(String),
    /// Committed offsets could not be read.
    #[error("cannot read the committed offsets of group `{group}`")]
    Committed {
        /// The consumer group.
        group: String,
        /// The librdkafka error.
        #[source]
        source: KafkaError,
    },
    /// The group coordinator could not be asked about the group.
    #[error("cannot ask the coordinator about group `{group}`")]
    GroupState {
        /// The consumer group.
        group: String,
        /// The librdkafka error.
        #[source]
        source: KafkaError,
    },
    /// Partitions could not be assigned.
    #[error("cannot assign {partitions}")]
    Assign {
        /// Which.
        partitions: Assigning,
        /// The librdkafka error.
        #[source]
        source: KafkaError,
    },
    /// The subscription was refused.
    #[error("cannot subscribe to {topics}")]
    Subscribe {
        /// The topics.
        topics: String,
        /// The librdkafka error.
        #[source]
        source: KafkaError,
    },
    /// Reading the topic failed.
    #[error("cannot read topic `{topic}`")]
    Read {
        /// The topic.
        topic: String,
        /// The librdkafka error.
        #[source]
        source: KafkaError,
    },
    /// A committed position lies outside its partition's log and `kafka.out_of_range` is
    /// `stop`.
    #[error(transparent)]
    OutOfRange(#[from] OutOfRangeError),
    /// The embedded cluster could not be started or changed.
    #[error("embedded cluster: {what}")]
    Embedded {
        /// The operation.
        what: String,
        /// The librdkafka error.
        #[source]
        source: KafkaError,
    },
}

/// A committed position outside its partition's log, with `kafka.out_of_range = stop`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "partition {partition}: the committed position {committed} lies {} (the log holds offsets \
     {log_start} to {log_end}); kafka.out_of_range = stop. Set it to earliest or latest to read \
     on, counting what is passed over",
    if committed < log_start { "before the log: records were deleted before they were read" } else { "past the end of the log: the topic was recreated or truncated" }
)]
pub struct OutOfRangeError {
    /// The partition.
    pub partition: PartitionId,
    /// Its committed position.
    pub committed: i64,
    /// The first offset in the log.
    pub log_start: i64,
    /// The offset after the last record.
    pub log_end: i64,
}

/// Places every committed start of `assigned` that lies outside its partition's log as
/// `policy` says: the start moves to the log's start or end, the offsets passed over are
/// recorded in `skipped`, and a position past the end drops its metadata (it belongs to a log
/// that is gone). The bounds of all committed partitions are asked for in two requests;
/// partitions whose bounds cannot be read are left as they are (their reader meets the error).
///
/// # Errors
/// With [`OutOfRange::Stop`], the first partition out of range.
pub(crate) fn place_out_of_range<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    assigned: &mut [crate::ports::AssignedPartition],
    policy: OutOfRange,
) -> Result<(), OutOfRangeError> {
    let committed: Vec<PartitionId> = assigned
        .iter()
        .filter(|a| a.start.offset().is_some())
        .map(|a| a.partition)
        .collect();
    if committed.is_empty() {
        return Ok(());
    }
    let bounds = |end| {
        log_bounds(consumer, &committed, end, LOOKUP_TIMEOUT).unwrap_or_else(|error| {
            tracing::warn!(%error, ?end, "Cannot read the log bounds of committed partitions.");
            std::collections::BTreeMap::new()
        })
    };
    let (starts, ends) = (bounds(LogEnd::Start), bounds(LogEnd::End));
    for a in assigned.iter_mut() {
        let (Some(offset), Some(&low), Some(&high)) = (
            a.start.offset(),
            starts.get(&a.partition),
            ends.get(&a.partition),
        ) else {
            continue;
        };
        if (low..=high).contains(&offset) {
            continue;
        }
        let gap = OutOfRangeError {
            partition: a.partition,
            committed: offset,
            log_start: low,
            log_end: high,
        };
        let to = match policy {
            OutOfRange::Stop => return Err(gap),
            OutOfRange::Earliest => low,
            OutOfRange::Latest => high,
        };
        a.start = crate::ports::StartOffset::At(to);
        if offset > high {
            // The metadata's event times belong to the log that is gone.
            a.metadata = String::new();
            a.skipped = (to > low).then_some((low, to));
        } else {
            a.skipped = Some((offset, to));
        }
        tracing::warn!(
            partition = %a.partition,
            committed = offset,
            log_start = low,
            log_end = high,
            reading_from = to,
            records_skipped = a.skipped.map_or(0, |(from, to)| to - from),
            past_the_end = offset > high,
            policy = policy.as_str(),
            "The committed position lies outside the log; reading on as kafka.out_of_range says."
        );
    }
    Ok(())
}

/// What an assignment that failed was for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assigning {
    /// One partition.
    Partition(PartitionId),
    /// Every partition of one topic.
    Topic(Topic),
    /// A set of this many partitions, as a whole.
    Set(usize),
}

impl std::fmt::Display for Assigning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Assigning::Partition(partition) => write!(f, "partition {partition}"),
            Assigning::Topic(topic) => write!(f, "the partitions of `{topic}`"),
            Assigning::Set(count) => write!(f, "{count} partitions"),
        }
    }
}

/// A broker that comes back is tried again within a second (librdkafka's default backs off up
/// to 10 s), so partitions resume soon after an outage. `kafka.properties` may override it.
pub(crate) const RECONNECT_BACKOFF_MAX: (&str, &str) = ("reconnect.backoff.max.ms", "1000");

/// The configuration shared by every client: brokers, then the user's properties.
fn client_config(kafka: &KafkaConfig, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", kafka.brokers.trim());
    config.set("client.id", client_id);
    for (key, value) in &kafka.properties {
        config.set(key, value);
    }
    config
}

/// A consumer configuration for `group` that never commits or stores offsets on its own.
fn consumer_config(
    kafka: &KafkaConfig,
    client_id: &str,
    defaults: &[(&str, String)],
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", kafka.brokers.trim());
    config.set("client.id", client_id);
    config.set(RECONNECT_BACKOFF_MAX.0, RECONNECT_BACKOFF_MAX.1);
    // Records of aborted (and still open) transactions are never read (librdkafka's default,
    // set so that it shows); `kafka.properties` may choose read_uncommitted.
    config.set("isolation.level", "read_committed");
    for (key, value) in defaults {
        config.set(*key, value);
    }
    for (key, value) in &kafka.properties {
        config.set(key, value);
    }
    config.set("group.id", &kafka.group);
    config.set("enable.auto.commit", "false");
    config.set("enable.auto.offset.store", "false");
    config.set("enable.partition.eof", "true");
    // Positions are always explicit; a position that left the log (retention deleted it
    // before it was read) comes back as an error, and the reader applies
    // `kafka.auto_offset_reset` itself, so the skipped range is reported and counted rather
    // than only logged by librdkafka.
    config.set("auto.offset.reset", "error");
    config
}

/// How long a broker connection may receive nothing before its partitions count as out of
/// reach (see [`observe_leaders`]).
const RX_IDLE_MAX: Duration = Duration::from_secs(2);

/// Leader tracking for a client: librdkafka's statistics every `interval_ms` feed `board`.
#[derive(Clone)]
pub struct LeaderStats {
    /// Where leaders are recorded.
    pub board: Arc<LeaderBoard>,
    /// `statistics.interval.ms`.
    pub interval_ms: u64,
}

impl LeaderStats {
    /// The client setting that turns statistics on.
    pub(crate) fn setting(&self) -> (&'static str, String) {
        ("statistics.interval.ms", self.interval_ms.to_string())
    }
}

/// Records the leader of every partition the client is consuming (`desired`) from one
/// statistics report, and whether the partition can be read: the client is connected to that
/// leader and fetching (not querying or validating its offset). Partitions the client only
/// knows from metadata are skipped: another client's older metadata must not look like a
/// leader moving back.
pub(crate) fn observe_leaders(board: &LeaderBoard, stats: &[u8]) {
    let Ok(stats) = serde_json::from_slice::<serde_json::Value>(stats) else {
        return;
    };
    // A group member's statistics say where it is in the group's protocol.
    if let Some(join_state) = stats
        .get("cgrp")
        .and_then(|c| c.get("join_state"))
        .and_then(serde_json::Value::as_str)
    {
        board.observe_join_state(join_state);
    }
    let Some(topics) = stats.get("topics").and_then(|t| t.as_object()) else {
        return;
    };
    // Broker ids whose connection is up and answering, with the connection attempts made to
    // each so far. UPDATE is a connected broker being re-described. A broker that stops
    // answering without closing its sockets (a hung process) stays UP until
    // `socket.timeout.ms` (60 s); fetches to a leader come back at least every
    // `fetch.wait.max.ms` (100 ms), so a connection that received nothing for longer than
    // RX_IDLE_MAX is taken as out of reach. Logical brokers (the group coordinator's own
    // connection) carry a real broker's id but fetch nothing: they are left out.
    let brokers: BTreeMap<i64, (bool, i64)> = stats
        .get("brokers")
        .and_then(|b| b.as_object())
        .into_iter()
        .flat_map(|brokers| brokers.values())
        .filter(|broker| {
            !matches!(
                broker.get("source").and_then(serde_json::Value::as_str),
                Some("logical" | "internal")
            )
        })
        .filter_map(|broker| {
            let id = broker.get("nodeid").and_then(serde_json::Value::as_i64)?;
            let up = matches!(
                broker.get("state").and_then(serde_json::Value::as_str),
                Some("UP" | "UPDATE")
            );
            let answering = broker
                .get("rxidle")
                .and_then(serde_json::Value::as_i64)
                .is_none_or(|micros| micros < 0 || micros <= RX_IDLE_MAX.as_micros() as i64);
            let connects = broker
                .get("connects")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(0);
            Some((id, (up && answering, connects)))
        })
        .collect();
    for (name, topic) in topics {
        let topic_id = Topic::new(name);
        let Some(partitions) = topic.get("partitions").and_then(|p| p.as_object()) else {
            continue;
        };
        for partition in partitions.values() {
            let field = |key: &str| partition.get(key).and_then(serde_json::Value::as_i64);
            let desired = partition
                .get("desired")
                .and_then(serde_json::Value::as_bool);
            let fetching = partition
                .get("fetch_state")
                .and_then(serde_json::Value::as_str)
                .is_none_or(|state| state == "active");
            // Which broker the client fetches from is not asked: it may be a follower
            // (rack-aware fetching), and while the client moves the partition to a new leader
            // the leader's change is a break already, whose end only the leader's answer
            // signals.
            let (id, leader) = (field("partition"), field("leader"));
            if let (Some(id), Some(true), Some(leader)) = (id, desired, leader) {
                if id >= 0 {
                    let id = PartitionId::new(topic_id, id as i32);
                    board.observe(id, leader as i32);
                    let link = match brokers.get(&leader) {
                        Some(&(true, connects)) if leader >= 0 && fetching => Some(Link {
                            leader: leader as i32,
                            leader_epoch: field("leader_epoch").unwrap_or(-1),
                            connects,
                        }),
                        _ => None,
                    };
                    board.observe_link(id, link);
                }
            }
        }
    }
}

/// Which end of a partition's log [`log_bounds`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogEnd {
    /// The first offset still in the log (the low watermark).
    Start,
    /// The offset the next record will get (the high watermark).
    End,
}

/// One end of the log of each of `partitions`, in one ListOffsets request per leader (not one
/// round trip per partition: hundreds of partitions answer at once). Partitions whose look-up
/// failed are left out.
///
/// # Errors
/// If the request as a whole failed.
pub(crate) fn log_bounds<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    partitions: &[PartitionId],
    end: LogEnd,
    timeout: Duration,
) -> Result<std::collections::BTreeMap<PartitionId, i64>, KafkaError> {
    // ListOffsets by timestamp: -1 asks for the latest offset, -2 for the earliest.
    let query = match end {
        LogEnd::Start => Offset::Beginning,
        LogEnd::End => Offset::End,
    };
    let tpl = partition_list(partitions, |_| Some(query))?;
    let answered = consumer.offsets_for_times(tpl, timeout)?;
    Ok(answered
        .elements()
        .iter()
        .filter(|e| e.error().is_ok())
        .filter_map(|e| match e.offset() {
            Offset::Offset(offset) => Some((element_id(e), offset)),
            _ => None,
        })
        .collect())
}

/// A list of `partitions`, each at the offset `offset` gives it (none: no offset).
pub(crate) fn partition_list(
    partitions: &[PartitionId],
    offset: impl Fn(PartitionId) -> Option<Offset>,
) -> Result<TopicPartitionList, KafkaError> {
    let mut tpl = TopicPartitionList::with_capacity(partitions.len());
    for p in partitions {
        match offset(*p) {
            Some(offset) => tpl.add_partition_offset(p.topic.name(), p.index, offset)?,
            None => {
                tpl.add_partition(p.topic.name(), p.index);
            }
        }
    }
    Ok(tpl)
}

/// The partition an element of a list names.
pub(crate) fn element_id(
    element: &rdkafka::topic_partition_list::TopicPartitionListElem<'_>,
) -> PartitionId {
    PartitionId::of(element.topic(), element.partition())
}

/// End offsets (high watermarks) of partitions through one long-lived client, for the stall
/// watchdog. A partition whose look-up fails is left out.
///
/// # Errors
/// If the client cannot be created.
pub fn end_offset_probe(kafka: &KafkaConfig) -> Result<EndOffsetProbe, AdapterError> {
    let kafka = KafkaConfig {
        group: "kafka-actors-probe".to_owned(),
        ..kafka.clone()
    };
    let consumer = lookup_consumer(&kafka)?;
    Ok(Arc::new(move |partitions: &[PartitionId]| {
        log_bounds(&consumer, partitions, LogEnd::End, PROBE_TIMEOUT).unwrap_or_default()
    }))
}

/// A short-lived client for look-ups. Closing a client takes about 100 ms (its threads wind
/// down), which no look-up need wait for: it closes on a thread of its own when dropped.
struct LookupClient(Option<BaseConsumer<LookupContext>>);

impl std::ops::Deref for LookupClient {
    type Target = BaseConsumer<LookupContext>;

    fn deref(&self) -> &BaseConsumer<LookupContext> {
        self.0.as_ref().expect("present until dropped")
    }
}

/// The start-up look-up client's callbacks: it keeps the last error librdkafka reported about
/// the brokers (a refused connection, a TLS handshake, an authentication), so a look-up that
/// fails can say why instead of only that the transport failed.
#[derive(Default)]
struct LookupContext {
    last_error: std::sync::Mutex<Option<String>>,
}

impl rdkafka::client::ClientContext for LookupContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "Kafka client error.");
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_owned());
    }
}

impl rdkafka::consumer::ConsumerContext for LookupContext {}

impl LookupClient {
    /// `failed` with what the brokers last said, when they said something: librdkafka reports
    /// connection, TLS and authentication failures as events, served here.
    fn explain(&self, failed: AdapterError) -> AdapterError {
        let AdapterError::Metadata { topic, .. } = &failed else {
            return failed;
        };
        // Serve the events queued during the look-up (errors arrive as events).
        let _ = self.poll(Duration::from_millis(100));
        let said = self
            .context()
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match said {
            Some(said) => AdapterError::Refused {
                topic: topic.clone(),
                said,
            },
            None => failed,
        }
    }
}

impl Drop for LookupClient {
    fn drop(&mut self) {
        let Some(consumer) = self.0.take() else {
            return;
        };
        let closing = std::thread::Builder::new()
            .name("kafka-close".to_owned())
            .spawn(move || drop(consumer));
        if let Err(error) = closing {
            tracing::debug!(%error, "No thread to close a client on; it closed in place.");
        }
    }
}

fn lookup_consumer(kafka: &KafkaConfig) -> Result<LookupClient, AdapterError> {
    consumer_config(kafka, "kafka-actors-lookup", &[])
        .create_with_context(LookupContext::default())
        .map(|consumer| LookupClient(Some(consumer)))
        .map_err(|e| AdapterError::create_client("consumer", &e))
}

/// Every partition of the input topics (`kafka.topics`), ordered by topic and index.
///
/// # Errors
/// If the metadata cannot be read or a topic does not exist.
pub fn partition_ids(kafka: &KafkaConfig) -> Result<Vec<PartitionId>, AdapterError> {
    let client = lookup_consumer(kafka)?;
    read_partitions(&*client, &kafka.input_topics()).map_err(|e| client.explain(e))
}

/// Every partition of `topics`, ordered by topic and index, through `consumer`.
///
/// # Errors
/// If the metadata cannot be read or a topic does not exist (the first missing one is named).
pub(crate) fn read_partitions<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topics: &[Topic],
) -> Result<Vec<PartitionId>, AdapterError> {
    let mut all = Vec::new();
    for topic in topics {
        all.extend(
            read_partition_ids(consumer, topic.name())?
                .into_iter()
                .map(|i| PartitionId::new(*topic, i)),
        );
    }
    all.sort_unstable();
    Ok(all)
}

/// The partition ids of `topic`, ascending, through `consumer`.
pub(crate) fn read_partition_ids<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
) -> Result<Vec<i32>, AdapterError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), LOOKUP_TIMEOUT)
        .map_err(|source| AdapterError::Metadata {
            topic: topic.to_owned(),
            source,
        })?;
    let mut ids: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if ids.is_empty() {
        return Err(AdapterError::TopicMissing(topic.to_owned()));
    }
    ids.sort_unstable();
    Ok(ids)
}

/// A partition's committed position in the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The partition.
    pub partition: PartitionId,
    /// The committed next offset, if the group has one.
    pub offset: Option<i64>,
    /// The metadata stored with the commit (empty if none).
    pub metadata: String,
}

/// The committed offsets of `kafka.group` for `partitions`.
///
/// # Errors
/// If the group coordinator cannot be reached.
pub fn committed_offsets(
    kafka: &KafkaConfig,
    partitions: &[PartitionId],
) -> Result<Vec<Committed>, AdapterError> {
    read_committed(&*lookup_consumer(kafka)?, kafka, partitions)
}

/// The committed next offset of each of `partitions` that has one.
///
/// # Errors
/// If the group coordinator cannot be reached.
pub fn committed_positions(
    kafka: &KafkaConfig,
    partitions: &[PartitionId],
) -> Result<std::collections::BTreeMap<PartitionId, i64>, AdapterError> {
    Ok(committed_offsets(kafka, partitions)?
        .into_iter()
        .filter_map(|c| c.offset.map(|o| (c.partition, o)))
        .collect())
}

/// What the group coordinator says of `kafka.group`: its state (`Stable`, `PreparingRebalance`,
/// `CompletingRebalance`, `Empty`, `Dead`) and how many of its members hold an assignment.
///
/// # Errors
/// If the coordinator cannot be asked.
pub fn group_state(kafka: &KafkaConfig) -> Result<(String, usize), AdapterError> {
    let client = lookup_consumer(kafka)?;
    let groups = client
        .fetch_group_list(Some(&kafka.group), LOOKUP_TIMEOUT)
        .map_err(|source| AdapterError::GroupState {
            group: kafka.group.clone(),
            source,
        })?;
    Ok(groups
        .groups()
        .iter()
        .find(|g| g.name() == kafka.group)
        .map_or_else(
            || ("Dead".to_owned(), 0),
            |g| {
                let assigned = g
                    .members()
                    .iter()
                    .filter(|m| m.assignment().is_some_and(|a| !a.is_empty()))
                    .count();
                (g.state().to_owned(), assigned)
            },
        ))
}

/// The coordinator errors that go away by asking again: the coordinator is not ready, or
/// did not answer in time (out of reach for a moment, or moving to another broker).
fn coordinator_not_ready(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::NotCoordinator
                | RDKafkaErrorCode::CoordinatorNotAvailable
                | RDKafkaErrorCode::CoordinatorLoadInProgress
                | RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::BrokerTransportFailure
        )
    )
}

fn read_committed<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    kafka: &KafkaConfig,
    partitions: &[PartitionId],
) -> Result<Vec<Committed>, AdapterError> {
    let tpl = partition_list(partitions, |_| None).map_err(|source| AdapterError::Committed {
        group: kafka.group.clone(),
        source,
    })?;
    // A group's coordinator may not be ready yet: the first group on a cluster creates the
    // offsets topic, and a coordinator that moved loads its partition first. Kafka answers
    // NOT_COORDINATOR / COORDINATOR_NOT_AVAILABLE / COORDINATOR_LOAD_IN_PROGRESS meanwhile;
    // a coordinator out of reach times out. Asked again for `COORDINATOR_WAIT`, then the
    // error stands (the service does not start).
    let deadline = std::time::Instant::now() + COORDINATOR_WAIT;
    let committed = loop {
        match consumer.committed_offsets(tpl.clone(), LOOKUP_TIMEOUT) {
            Ok(committed) => break committed,
            Err(error) if coordinator_not_ready(&error) && std::time::Instant::now() < deadline => {
                tracing::debug!(group = %kafka.group, %error, "Group coordinator not ready; asking again.");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(source) => {
                return Err(AdapterError::Committed {
                    group: kafka.group.clone(),
                    source,
                })
            }
        }
    };
    Ok(committed
        .elements()
        .iter()
        .map(|e| Committed {
            partition: element_id(e),
            offset: match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            },
            metadata: e.metadata().to_owned(),
        })
        .collect())
}

/// An admin client for the cluster of `kafka`.
fn admin_client(
    kafka: &KafkaConfig,
) -> Result<rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext>, AdapterError> {
    client_config(kafka, "kafka-actors-admin")
        .create()
        .map_err(|e| AdapterError::create_client("admin", &e))
}

/// Creates `topic` with `partitions` partitions on a cluster reached over the network
/// (the embedded cluster has [`EmbeddedCluster::create_topic`]). A topic that already exists
/// is left as it is.
///
/// # Errors
/// If the cluster refuses for another reason.
pub fn create_topic(
    kafka: &KafkaConfig,
    topic: &str,
    partitions: i32,
    replication: i32,
) -> Result<(), AdapterError> {
    use rdkafka::admin::{NewTopic, TopicReplication};
    create_new_topic(
        kafka,
        &NewTopic::new(topic, partitions, TopicReplication::Fixed(replication)),
    )
}

/// Asks the cluster of `kafka` to create `new`; a topic that already exists is left as it is.
///
/// # Errors
/// If the cluster refuses for another reason.
pub(crate) fn create_new_topic(
    kafka: &KafkaConfig,
    new: &rdkafka::admin::NewTopic<'_>,
) -> Result<(), AdapterError> {
    let admin = admin_client(kafka)?;
    let options = rdkafka::admin::AdminOptions::new().operation_timeout(Some(LOOKUP_TIMEOUT));
    let failed = |source| AdapterError::Metadata {
        topic: new.name.to_owned(),
        source,
    };
    let results =
        futures::executor::block_on(admin.create_topics([new], &options)).map_err(failed)?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(failed(KafkaError::AdminOp(code))),
        }
    }
    Ok(())
}

/// Deletes the records of `partition` below `before` (as retention would), for
/// tests and fault scenarios.
///
/// # Errors
/// If the cluster refuses.
pub fn delete_records(
    kafka: &KafkaConfig,
    partition: PartitionId,
    before: i64,
) -> Result<(), AdapterError> {
    use rdkafka::admin::AdminOptions;
    let topic = partition.topic.name();
    let failed = |source| AdapterError::Metadata {
        topic: topic.to_owned(),
        source,
    };
    let admin = admin_client(kafka)?;
    let mut offsets = TopicPartitionList::with_capacity(1);
    offsets
        .add_partition_offset(topic, partition.index, Offset::Offset(before))
        .map_err(failed)?;
    let options = AdminOptions::new().operation_timeout(Some(LOOKUP_TIMEOUT));
    let result =
        futures::executor::block_on(admin.delete_records(&offsets, &options)).map_err(failed)?;
    for element in result.elements() {
        if let Err(error) = element.error() {
            return Err(failed(error));
        }
    }
    Ok(())
}

/// The speed anchor for benchmarks: one plain consumer, tuned like a partition reader with
/// `prefetch`, that reads `partitions` from the beginning to their end and only
/// counts the records. It commits nothing.
///
/// # Errors
/// If the consumer cannot be created or assigned, or reading fails.
pub fn count_to_end(
    kafka: &KafkaConfig,
    partitions: &[PartitionId],
    prefetch: u64,
) -> Result<u64, AdapterError> {
    let mut records = 0u64;
    read_to_end(kafka, partitions, prefetch, |_| records += 1)?;
    Ok(records)
}

/// Every record stored in `partitions`, from the beginning to the end, as
/// `(partition, offset, payload)`: what an oracle checks the service against. Commits nothing.
///
/// # Errors
/// If the consumer cannot be created or assigned, or reading fails.
pub fn stored_records(
    kafka: &KafkaConfig,
    partitions: &[PartitionId],
) -> Result<Vec<(PartitionId, i64, Vec<u8>)>, AdapterError> {
    let mut records = Vec::new();
    read_to_end(kafka, partitions, 10_000, |record| {
        records.push((
            record.partition,
            record.offset,
            record.payload.unwrap_or_default().to_vec(),
        ));
    })?;
    Ok(records)
}

/// A record as read back from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Where it is stored.
    pub partition: PartitionId,
    /// Its offset.
    pub offset: i64,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its value.
    pub payload: Option<Vec<u8>>,
    /// Its headers, in order (a header may have no value).
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl StoredRecord {
    /// The value of the header `name` (its last, if it has several), as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| {
                String::from_utf8_lossy(value.as_deref().unwrap_or_default()).into_owned()
            })
    }
}

/// Waits until the transactions committed in a topic so far are visible to `read_committed`
/// readers. A transaction's commit is decided (the producer's `commit_transaction` returns,
/// its input offsets become readable) before the coordinator's markers reach the output
/// partitions, later still when a partition's leader is slow or hung; a `read_committed`
/// reader sees the records once the partition's last stable offset passes them. So
/// [`StableWait::wait`] notes each partition's high watermark (every record produced so far,
/// committed or not) and waits until the last stable offset reaches it.
pub struct StableWait {
    partitions: Vec<PartitionId>,
    /// High watermarks (`read_uncommitted`).
    high: EndOffsetProbe,
    /// Last stable offsets (`read_committed`).
    stable: EndOffsetProbe,
}

impl StableWait {
    /// Probes for `topic` on the cluster `kafka` names.
    ///
    /// # Errors
    /// If the topic's partitions cannot be looked up or the clients cannot be created.
    pub fn new(kafka: &KafkaConfig, topic: &str) -> Result<StableWait, AdapterError> {
        let mut committed = KafkaConfig {
            topic: topic.to_owned(),
            topics: Vec::new(),
            group: "kafka-actors-settle".to_owned(),
            ..kafka.clone()
        };
        committed
            .properties
            .insert("isolation.level".to_owned(), "read_committed".to_owned());
        let mut uncommitted = committed.clone();
        uncommitted
            .properties
            .insert("isolation.level".to_owned(), "read_uncommitted".to_owned());
        Ok(StableWait {
            partitions: partition_ids(&committed)?,
            high: end_offset_probe(&uncommitted)?,
            stable: end_offset_probe(&committed)?,
        })
    }

    /// Waits up to `within` until every partition's last stable offset reaches the high
    /// watermark it had when called; whether it did (no, while a transaction stays open or
    /// a partition's leader cannot be reached).
    #[must_use]
    pub fn wait(&self, within: Duration) -> bool {
        let produced = (self.high)(&self.partitions);
        let deadline = Instant::now() + within;
        loop {
            let visible = (self.stable)(&self.partitions);
            // A partition whose high watermark could not be learnt (its leader is down) is
            // not waited for.
            let settled = produced
                .iter()
                .all(|(p, hw)| visible.get(p).is_some_and(|lso| lso >= hw));
            if settled {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// [`read_topic`] once the transactions committed in `topic` so far are visible (waiting up
/// to `within`, see [`StableWait`]): what a `read_committed` reader sees of everything
/// committed before the call.
///
/// # Errors
/// If the topic cannot be read.
pub fn read_topic_settled(
    kafka: &KafkaConfig,
    topic: &str,
    within: Duration,
) -> Result<Vec<StoredRecord>, AdapterError> {
    let settled = StableWait::new(kafka, topic)?.wait(within);
    if !settled {
        tracing::warn!(
            topic,
            within = ?within,
            "A transaction stays open in the topic: reading what is committed now."
        );
    }
    read_topic(kafka, topic)
}

/// Every record of every partition of `topic` on the cluster `kafka` names, from the
/// beginning to the end, as a reader with `isolation.level = read_committed` (unless
/// `kafka.properties` says otherwise) sees them: records of aborted transactions are left out,
/// and the end is the last stable offset. Commits nothing.
///
/// # Errors
/// If the topic cannot be read.
pub fn read_topic(kafka: &KafkaConfig, topic: &str) -> Result<Vec<StoredRecord>, AdapterError> {
    // It commits nothing, so any group id does; librdkafka needs one for a consumer queue.
    let lookup = KafkaConfig {
        topic: topic.to_owned(),
        topics: Vec::new(),
        group: "kafka-actors-baseline".to_owned(),
        ..kafka.clone()
    };
    let partitions = partition_ids(&lookup)?;
    let mut records = Vec::new();
    read_to_end(kafka, &partitions, 10_000, |record| {
        records.push(StoredRecord {
            partition: record.partition,
            offset: record.offset,
            key: record.key.map(<[u8]>::to_vec),
            payload: record.payload.map(<[u8]>::to_vec),
            headers: record.headers.clone(),
        });
    })?;
    Ok(records)
}

/// Follows every partition of `topic` from the beginning as a `read_committed` reader (unless
/// `kafka.properties` says otherwise) with a short fetch wait, handing each record to
/// `on_record` as soon as it is readable, until `stop` is set. For measuring when output
/// becomes visible (`examples/tail_output.rs`). Commits nothing.
///
/// # Errors
/// If the topic cannot be read.
pub fn follow_topic(
    kafka: &KafkaConfig,
    topic: &str,
    stop: &std::sync::atomic::AtomicBool,
    mut on_record: impl FnMut(StoredRecord),
) -> Result<(), AdapterError> {
    use rdkafka::Message;
    let kafka = KafkaConfig {
        topic: topic.to_owned(),
        topics: Vec::new(),
        group: "kafka-actors-follower".to_owned(),
        ..kafka.clone()
    };
    let partitions = partition_ids(&kafka)?;
    let defaults = [("fetch.wait.max.ms", "10".to_owned())];
    let consumer: BaseConsumer<ReaderContext> =
        consumer_config(&kafka, "kafka-actors-follower", &defaults)
            .create_with_context(ReaderContext)
            .map_err(|e| AdapterError::create_client("consumer", &e))?;
    let failed = |source| AdapterError::Assign {
        partitions: Assigning::Set(partitions.len()),
        source,
    };
    let tpl = partition_list(&partitions, |_| Some(Offset::Beginning)).map_err(failed)?;
    consumer.assign(&tpl).map_err(failed)?;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(message)) => on_record(StoredRecord {
                partition: PartitionId::of(topic, message.partition()),
                offset: message.offset(),
                key: message.key().map(<[u8]>::to_vec),
                payload: message.payload().map(<[u8]>::to_vec),
                headers: headers_of(&message),
            }),
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(source)) => {
                return Err(AdapterError::Read {
                    topic: topic.to_owned(),
                    source,
                })
            }
        }
    }
    Ok(())
}

/// A record's headers, as names and values.
fn headers_of(message: &rdkafka::message::BorrowedMessage<'_>) -> Vec<(String, Option<Vec<u8>>)> {
    use rdkafka::message::{Headers, Message};
    message
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default()
}

/// One record handed out by [`read_to_end`].
struct ReadRecord<'a> {
    partition: PartitionId,
    offset: i64,
    key: Option<&'a [u8]>,
    payload: Option<&'a [u8]>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Reads `partitions` from the beginning to their end with one plain consumer tuned like a
/// partition reader (one after another per topic: librdkafka's end-of-partition event names
/// the partition's index only), handing every record to `on_record`.
fn read_to_end(
    kafka: &KafkaConfig,
    partitions: &[PartitionId],
    prefetch: u64,
    mut on_record: impl FnMut(&ReadRecord<'_>),
) -> Result<(), AdapterError> {
    let topics: BTreeSet<Topic> = partitions.iter().map(|p| p.topic).collect();
    for topic in topics {
        let of_topic: Vec<PartitionId> = partitions
            .iter()
            .filter(|p| p.topic == topic)
            .copied()
            .collect();
        read_topic_to_end(kafka, topic, &of_topic, prefetch, &mut on_record)?;
    }
    Ok(())
}

/// The callbacks of [`read_to_end`]'s consumer: an end of partition also arrives as a client
/// error event, which says nothing wrong.
struct ReaderContext;

impl rdkafka::client::ClientContext for ReaderContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::PartitionEOF)
        ) {
            tracing::warn!(%error, reason, "Kafka reader error.");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for ReaderContext {}

/// [`read_to_end`] for partitions of one topic.
fn read_topic_to_end(
    kafka: &KafkaConfig,
    topic: Topic,
    partitions: &[PartitionId],
    prefetch: u64,
    on_record: &mut impl FnMut(&ReadRecord<'_>),
) -> Result<(), AdapterError> {
    use rdkafka::Message;
    let defaults = intake::intake_defaults(
        prefetch,
        PartitionConfig::default().prefetch_mib,
        partitions.len(),
    );
    // It commits nothing, so any group id does; librdkafka needs one for a consumer queue.
    let kafka = &KafkaConfig {
        group: "kafka-actors-baseline".to_owned(),
        ..kafka.clone()
    };
    let consumer: BaseConsumer<ReaderContext> =
        consumer_config(kafka, "kafka-actors-baseline", &defaults)
            .create_with_context(ReaderContext)
            .map_err(|e| AdapterError::create_client("consumer", &e))?;
    // As the partition readers do: learn the leaders first, or librdkafka's query for the
    // earliest offset finds none and retries only after a fixed 500 ms.
    if let Err(error) = consumer.fetch_metadata(Some(topic.name()), LOOKUP_TIMEOUT) {
        tracing::debug!(%error, "Metadata before assigning failed; assigning anyway.");
    }
    let failed = |source| AdapterError::Assign {
        partitions: Assigning::Topic(topic),
        source,
    };
    let tpl = partition_list(partitions, |_| Some(Offset::Beginning)).map_err(failed)?;
    consumer.assign(&tpl).map_err(failed)?;
    let mut at_end = BTreeSet::new();
    while at_end.len() < partitions.len() {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let headers = headers_of(&message);
                on_record(&ReadRecord {
                    partition: PartitionId::new(topic, message.partition()),
                    offset: message.offset(),
                    key: message.key(),
                    payload: message.payload(),
                    headers,
                });
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(source)) => {
                return Err(AdapterError::Read {
                    topic: topic.to_string(),
                    source,
                })
            }
            None => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Partition `index` of the test's topic.
    fn p(index: i32) -> PartitionId {
        PartitionId::of("t", index)
    }

    #[test]
    fn guarantee_properties_cannot_be_overridden_by_passthrough() {
        let mut kafka = KafkaConfig {
            group: "kafka-actors-partition".into(),
            ..KafkaConfig::default()
        };
        kafka
            .properties
            .insert("fetch.wait.max.ms".into(), "50".into());
        let config = consumer_config(&kafka, "t", &[("fetch.wait.max.ms", "500".into())]);
        assert_eq!(
            config.get("fetch.wait.max.ms"),
            Some("50"),
            "passthrough wins over service defaults"
        );
        assert_eq!(config.get("enable.auto.commit"), Some("false"));
        assert_eq!(config.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(config.get("group.id"), Some("kafka-actors-partition"));
        let plain = client_config(&kafka, "p");
        assert_eq!(plain.get("fetch.wait.max.ms"), Some("50"));
    }

    /// The shape of librdkafka's statistics (STATISTICS.md), trimmed to the fields read.
    fn stats(broker_states: &[(i64, &str)], partitions: &[(i64, bool, i64, &str)]) -> Vec<u8> {
        stats_rx(
            &broker_states
                .iter()
                .map(|(id, state)| (*id, *state, 5_000))
                .collect::<Vec<_>>(),
            partitions,
        )
    }

    /// [`stats`] with each broker's microseconds since its last receive.
    fn stats_rx(
        broker_states: &[(i64, &str, i64)],
        partitions: &[(i64, bool, i64, &str)],
    ) -> Vec<u8> {
        let brokers: serde_json::Map<String, serde_json::Value> = broker_states
            .iter()
            .map(|(id, state, rxidle)| {
                (
                    format!("127.0.0.1:900{id}/{id}"),
                    serde_json::json!({ "nodeid": id, "state": state, "rxidle": rxidle }),
                )
            })
            .chain(std::iter::once((
                ":0/internal".to_owned(),
                serde_json::json!({ "nodeid": -1, "state": "UP" }),
            )))
            .collect();
        let parts: serde_json::Map<String, serde_json::Value> = partitions
            .iter()
            .map(|(id, desired, leader, fetch_state)| {
                (
                    id.to_string(),
                    serde_json::json!({
                        "partition": id,
                        "desired": desired,
                        "leader": leader,
                        "fetch_state": fetch_state,
                    }),
                )
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "brokers": brokers,
            "topics": { "t": { "partitions": parts } },
        }))
        .expect("plain JSON")
    }

    #[test]
    fn statistics_give_leaders_and_whether_they_are_connected() {
        let board = LeaderBoard::default();
        observe_leaders(
            &board,
            &stats(
                &[(1, "UP"), (2, "CONNECT"), (3, "UPDATE")],
                // Partition 3 is not consumed by this client; partition 4 has no leader;
                // partition 5's leader is up but its offset is still being validated.
                &[
                    (0, true, 1, "active"),
                    (1, true, 2, "active"),
                    (2, true, 3, "active"),
                    (3, false, 2, "none"),
                    (4, true, -1, "active"),
                    (5, true, 1, "validate-epoch-wait"),
                ],
            ),
        );
        assert_eq!(
            board.leaders(),
            std::collections::BTreeMap::from([(p(0), 1), (p(1), 2), (p(2), 3), (p(5), 1)])
        );
        let reachable: Vec<bool> = (0..6).map(|i| board.link_state(p(i)).0).collect();
        assert_eq!(reachable, vec![true, false, true, true, false, false]);
        observe_leaders(
            &board,
            &stats(
                &[(2, "UP"), (1, "UP")],
                &[
                    (1, true, 2, "active"),
                    (4, true, 2, "active"),
                    (5, true, 1, "active"),
                ],
            ),
        );
        assert!(board.link_state(p(1)).0 && board.link_state(p(4)).0 && board.link_state(p(5)).0);
        observe_leaders(&board, &stats(&[(1, "DOWN")], &[(0, true, 1, "active")]));
        assert!(!board.link_state(p(0)).0);
    }

    #[test]
    fn a_leader_that_stopped_answering_is_out_of_reach_although_its_connection_is_up() {
        let board = LeaderBoard::default();
        let report = |rxidle: i64| {
            stats_rx(
                &[(1, "UP", rxidle), (2, "UP", 40_000)],
                &[(0, true, 1, "active"), (1, true, 2, "active")],
            )
        };
        observe_leaders(&board, &report(150_000));
        assert!(board.link_state(p(0)).0 && board.link_state(p(1)).0);
        // Broker 1 hangs (SIGSTOP): its socket stays open, nothing comes back for 3 s.
        observe_leaders(&board, &report(3_000_000));
        assert!(!board.link_state(p(0)).0, "hung leader");
        assert!(board.link_state(p(1)).0);
        observe_leaders(&board, &report(20_000));
        assert!(board.link_state(p(0)).0, "answering again");
        // No receive yet on a new connection is not a hang.
        observe_leaders(&board, &report(-1));
        assert!(board.link_state(p(0)).0);
    }

    #[test]
    fn statistics_show_breaks_in_the_link_to_a_leader() {
        let board = LeaderBoard::default();
        // Broker 1's connection attempts, partition 0's leader, epoch and fetching broker;
        // the group coordinator's logical connection to broker 2 is down throughout.
        let report = |connects: i64, leader: i64, epoch: i64, broker: i64| {
            let stats = serde_json::json!({
                "brokers": {
                    "127.0.0.1:9001/1": { "nodeid": 1, "state": "UP", "connects": connects, "source": "learned" },
                    "127.0.0.1:9002/2": { "nodeid": 2, "state": "UP", "connects": 1, "source": "learned" },
                    "GroupCoordinator": { "nodeid": 2, "state": "DOWN", "connects": 9, "source": "logical" },
                },
                "topics": { "t": { "partitions": { "0": {
                    "partition": 0, "desired": true, "leader": leader, "leader_epoch": epoch,
                    "broker": broker, "fetch_state": "active",
                } } } },
            });
            observe_leaders(&board, &serde_json::to_vec(&stats).expect("plain JSON"));
            board.link_state(p(0))
        };
        assert_eq!(report(1, 1, 7, 1), (true, 0));
        assert_eq!(report(1, 1, 7, 1), (true, 0), "nothing changed");
        assert_eq!(
            report(2, 1, 7, 1),
            (true, 1),
            "reconnected between two reports"
        );
        assert_eq!(report(2, 1, 8, 1), (true, 2), "elected again");
        // Moving to broker 2 (its metadata names the new leader before the fetch moves, or a
        // follower serves the fetches): one break, the leader's.
        assert_eq!(report(2, 2, 9, 1), (true, 3), "a new leader");
        assert_eq!(report(2, 2, 9, 2), (true, 3), "fetched from the new leader");
        assert_eq!(
            report(2, 2, 9, 2),
            (true, 3),
            "the coordinator's connection is not the leader's"
        );
    }

    #[test]
    fn a_members_join_state_is_taken_from_its_statistics() {
        let board = LeaderBoard::default();
        observe_leaders(&board, br#"{"topics":{}}"#);
        assert_eq!(board.join_state(), None);
        observe_leaders(
            &board,
            br#"{"cgrp":{"state":"up","join_state":"wait-sync"},"topics":{}}"#,
        );
        assert_eq!(board.join_state().as_deref(), Some("wait-sync"));
        observe_leaders(&board, br#"{"cgrp":{"state":"up","join_state":"steady"}}"#);
        assert_eq!(board.join_state().as_deref(), Some("steady"));
    }
}
