//! Reading topics back and asking the group what it holds: tools for the lab, the tests,
//! the examples and the benchmarks (the `inspect` feature), never called by the service.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::admin::admin_client;
use super::client::{consumer_config, intake_defaults};
use super::error::{AdapterError, Assigning};
use super::lookup::{
    end_offset_probe, lookup_consumer, partition_ids, partition_list, LOOKUP_TIMEOUT,
};
use crate::config::{KafkaConfig, PartitionConfig};
use crate::ports::EndOffsetProbe;
use crate::topic::{PartitionId, Topic};

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
    let defaults = intake_defaults(
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
