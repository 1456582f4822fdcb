//! Look-ups: partitions of the input topics, committed offsets, log bounds and end offsets,
//! through short-lived clients or the caller's consumer.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::client::consumer_config;
use super::error::{AdapterError, OutOfRangeError};
use crate::config::{KafkaConfig, OutOfRange};
use crate::ports::EndOffsetProbe;
use crate::topic::{PartitionId, Topic};

/// How long metadata and committed-offset look-ups may take.
pub(super) const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long committed offsets are asked for again while the group's coordinator is not ready.
const COORDINATOR_WAIT: Duration = Duration::from_secs(30);
/// How long the watchdog's end-offset look-up may take per partition.
pub(super) const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

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
pub(super) struct LookupClient(Option<BaseConsumer<LookupContext>>);

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
pub(super) struct LookupContext {
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

pub(super) fn lookup_consumer(kafka: &KafkaConfig) -> Result<LookupClient, AdapterError> {
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

/// The coordinator errors that go away by asking again: the coordinator is not ready, or
/// did not answer in time (out of reach for a moment, or moving to another broker).
pub(super) fn coordinator_not_ready(error: &KafkaError) -> bool {
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

pub(super) fn read_committed<C: rdkafka::consumer::ConsumerContext>(
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
