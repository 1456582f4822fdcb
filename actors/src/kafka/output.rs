//! The Kafka output: closed windows ([`KafkaSink`]) and invalid records ([`KafkaDeadLetters`])
//! produced to topics with `acks=all` and idempotence, each flush acknowledged by every in-sync
//! replica before the offsets it covers are committed; and, for exactly once
//! ([`GroupCommits::exactly_once`]), one transaction per flush that also carries the input
//! offsets (`send_offsets_to_transaction`) with the consumer group's metadata.
//!
//! Producer settings: the service's defaults, then (when the output is the input's cluster)
//! the connection and security properties of `kafka.properties`, then `sink.properties`, then
//! what the guarantee depends on (`acks=all`, idempotence, the transactional id).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::client::RECONNECT_BACKOFF_MAX;
use super::error::AdapterError;
use super::intake::GroupCommits;
use super::lookup::{element_id, LOOKUP_TIMEOUT};
use crate::config::{KafkaConfig, SinkConfig};
use crate::frame::DeadLetter;
use crate::outlet::{DeadLetterSink, TransactionFailure, TransactionalSink};
use crate::ports::CommitPosition;
use crate::sink::{window_key, window_line, Sink};
use crate::window::ClosedWindow;

/// Why the Kafka output cannot start.
#[derive(Debug, thiserror::Error)]
pub enum OutletError {
    /// The producer could not be created or the cluster could not be asked.
    #[error(transparent)]
    Client(#[from] AdapterError),
    /// An output topic does not exist.
    #[error("the output topic `{topic}` ({key}) does not exist on the cluster: create it, or set sink.create_topic = true")]
    TopicMissing {
        /// The topic.
        topic: String,
        /// The setting that names it.
        key: &'static str,
    },
    /// The transactional producer could not start (`init_transactions`).
    #[error("cannot start transactions with transactional id `{transactional_id}`: {reason}")]
    InitTransactions {
        /// The transactional id.
        transactional_id: String,
        /// What the broker or client said.
        reason: String,
    },
}

/// Properties of `kafka.properties` that say how to reach and authenticate to the cluster:
/// they apply to the output producer when it writes to the input's cluster.
fn is_connection_property(key: &str) -> bool {
    const PREFIXES: [&str; 7] = [
        "security.protocol",
        "ssl.",
        "sasl.",
        "socket.",
        "broker.",
        "reconnect.",
        "client.dns.lookup",
    ];
    PREFIXES.iter().any(|p| key.starts_with(p)) || key == "enable.ssl.certificate.verification"
}

/// The output producer's configuration; `extra` comes last (the transactional settings).
fn producer_config(
    kafka: &KafkaConfig,
    sink: &SinkConfig,
    client_id: &str,
    extra: &[(&str, String)],
) -> ClientConfig {
    let mut config = ClientConfig::new();
    let same_cluster = sink.brokers.trim().is_empty();
    let brokers = match same_cluster {
        true => kafka.brokers.trim(),
        false => sink.brokers.trim(),
    };
    config.set("bootstrap.servers", brokers);
    config.set("client.id", client_id);
    config.set(RECONNECT_BACKOFF_MAX.0, RECONNECT_BACKOFF_MAX.1);
    config.set("linger.ms", "5");
    config.set("message.timeout.ms", sink.delivery_timeout_ms.to_string());
    // The output topics are checked (or created) at start; a record must never create one.
    config.set("allow.auto.create.topics", "false");
    if same_cluster {
        for (key, value) in kafka
            .properties
            .iter()
            .filter(|(k, _)| is_connection_property(k))
        {
            config.set(key, value);
        }
    }
    for (key, value) in &sink.properties {
        config.set(key, value);
    }
    config.set("acks", "all");
    config.set("enable.idempotence", "true");
    for (key, value) in extra {
        config.set(*key, value);
    }
    config
}

/// The input's connection settings pointed at the output cluster, for the admin client that
/// creates output topics.
fn output_cluster(kafka: &KafkaConfig, sink: &SinkConfig) -> KafkaConfig {
    let mut properties: std::collections::BTreeMap<String, String> = match sink.brokers.trim() {
        "" => kafka
            .properties
            .iter()
            .filter(|(k, _)| is_connection_property(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        _ => Default::default(),
    };
    properties.extend(
        sink.properties
            .iter()
            .filter(|(k, _)| is_connection_property(k))
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    KafkaConfig {
        brokers: match sink.brokers.trim() {
            "" => kafka.brokers.clone(),
            other => other.to_owned(),
        },
        properties,
        ..KafkaConfig::default()
    }
}

/// Checks that `topic` exists on the output cluster, creating it when `sink.create_topic`
/// says so.
fn ensure_topic(
    producer: &BaseProducer<Acks>,
    kafka: &KafkaConfig,
    sink: &SinkConfig,
    topic: &str,
    key: &'static str,
) -> Result<(), OutletError> {
    let exists = |producer: &BaseProducer<Acks>| -> Result<bool, OutletError> {
        let metadata = producer
            .client()
            .fetch_metadata(Some(topic), LOOKUP_TIMEOUT)
            .map_err(|source| AdapterError::Metadata {
                topic: topic.to_owned(),
                source,
            })?;
        Ok(metadata
            .topics()
            .iter()
            .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty()))
    };
    if exists(producer)? {
        return Ok(());
    }
    if !sink.create_topic {
        return Err(OutletError::TopicMissing {
            topic: topic.to_owned(),
            key,
        });
    }
    super::admin::create_topic(
        &output_cluster(kafka, sink),
        topic,
        sink.topic_partitions,
        -1,
    )?;
    tracing::info!(
        topic,
        partitions = sink.topic_partitions,
        "Created the output topic."
    );
    // The new topic's metadata reaches every broker within moments.
    let deadline = Instant::now() + LOOKUP_TIMEOUT;
    while !exists(producer)? {
        if Instant::now() > deadline {
            return Err(OutletError::TopicMissing {
                topic: topic.to_owned(),
                key,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Hears delivery reports: which records (by index in the batch being delivered) failed.
#[derive(Default)]
pub(crate) struct Acks {
    failed: Mutex<Vec<(usize, String)>>,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        if let Err((error, _)) = result {
            self.failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((index, error.to_string()));
        }
    }
}

/// One record to produce.
struct OutRecord<'a> {
    topic: &'a str,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    /// Dead letters: the record's own headers, then where it came from and why it is here.
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// The records of closed windows.
fn window_records<'a>(topic: &'a str, windows: &[ClosedWindow], label: bool) -> Vec<OutRecord<'a>> {
    windows
        .iter()
        .map(|w| {
            let line = window_line(w, label);
            OutRecord {
                topic,
                key: Some(window_key(&line).into_bytes()),
                payload: Some(serde_json::to_vec(&line).unwrap_or_default()),
                headers: Vec::new(),
            }
        })
        .collect()
}

/// The header names of a dead letter.
pub mod headers {
    /// The topic the record was read from.
    pub const SOURCE_TOPIC: &str = "kafka-actors.source.topic";
    /// Its partition there, in decimal.
    pub const SOURCE_PARTITION: &str = "kafka-actors.source.partition";
    /// Its offset there, in decimal.
    pub const SOURCE_OFFSET: &str = "kafka-actors.source.offset";
    /// Why it is invalid (`not_json`, `missing_field`, ...).
    pub const REASON: &str = "kafka-actors.invalid.reason";
}

/// The records of dead letters: each payload unchanged, with headers naming its source and
/// reason.
fn dead_letter_records<'a>(topic: &'a str, letters: &[DeadLetter]) -> Vec<OutRecord<'a>> {
    letters
        .iter()
        .map(|d| {
            // The record's own headers, then ours (readers taking a header's last value,
            // as Kafka's `lastHeader`, get ours).
            let mut headers = d.headers.clone();
            headers.extend(
                [
                    (headers::SOURCE_TOPIC, d.partition.topic.name().to_owned()),
                    (headers::SOURCE_PARTITION, d.partition.index.to_string()),
                    (headers::SOURCE_OFFSET, d.offset.to_string()),
                    (headers::REASON, d.reason.as_str().to_owned()),
                ]
                .map(|(k, v)| (k.to_owned(), Some(v.into_bytes()))),
            );
            OutRecord {
                topic,
                key: d.key.clone(),
                payload: d.payload.clone(),
                headers,
            }
        })
        .collect()
}

/// Queues `record` (number `index` of its batch), waiting for room in the local queue.
fn send<C: ProducerContext<DeliveryOpaque = usize>>(
    producer: &BaseProducer<C>,
    record: &OutRecord<'_>,
    index: usize,
) -> Result<(), KafkaError> {
    let mut base: BaseRecord<'_, [u8], [u8], usize> =
        BaseRecord::with_opaque_to(record.topic, index);
    if let Some(key) = &record.key {
        base = base.key(key.as_slice());
    }
    if let Some(payload) = &record.payload {
        base = base.payload(payload.as_slice());
    }
    if !record.headers.is_empty() {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        base = base.headers(headers);
    }
    loop {
        match producer.send(base) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                base = back;
                producer.poll(Duration::from_millis(10));
            }
            Err((error, _)) => return Err(error),
        }
    }
}

/// An idempotent producer that delivers batches of records, at least once.
struct Deliverer {
    producer: BaseProducer<Acks>,
    /// How long records not acknowledged are sent again.
    retry_for: Duration,
    timeout: Duration,
}

impl Deliverer {
    fn create(
        kafka: &KafkaConfig,
        sink: &SinkConfig,
        client_id: &'static str,
    ) -> Result<Self, AdapterError> {
        let producer = producer_config(kafka, sink, client_id, &[])
            .create_with_context(Acks::default())
            .map_err(|e| AdapterError::create_client("producer", &e))?;
        Ok(Deliverer {
            producer,
            retry_for: Duration::from_millis(sink.retry_timeout_ms),
            timeout: Duration::from_millis(sink.delivery_timeout_ms),
        })
    }

    /// Delivers every record, sending again what was not acknowledged for up to
    /// `sink.retry_timeout_ms`; returns once all are acknowledged.
    fn deliver(&self, topic: &str, records: &[OutRecord<'_>]) -> std::io::Result<()> {
        let started = Instant::now();
        let mut todo: Vec<usize> = (0..records.len()).collect();
        let mut reason = String::new();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            if attempt > 1 {
                tracing::warn!(
                    topic,
                    records = todo.len(),
                    attempt,
                    %reason,
                    "Output records were not acknowledged; sending them again. Nothing is \
                     committed meanwhile."
                );
                std::thread::sleep(retry_backoff(attempt));
            }
            let mut failed = Vec::new();
            for &index in &todo {
                if let Err(error) = send(&self.producer, &records[index], index) {
                    failed.push((index, error.to_string()));
                }
            }
            // Every queued record is acknowledged or failed within message.timeout.ms.
            if let Err(error) = self.producer.flush(self.timeout + Duration::from_secs(5)) {
                return Err(std::io::Error::other(format!(
                    "records to topic `{topic}` were neither acknowledged nor failed in time: \
                     {error}"
                )));
            }
            failed.extend(std::mem::take(
                &mut *self
                    .producer
                    .context()
                    .failed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()),
            ));
            if failed.is_empty() {
                return Ok(());
            }
            reason = failed[0].1.clone();
            todo = failed.into_iter().map(|(index, _)| index).collect();
            todo.sort_unstable();
            todo.dedup();
            if started.elapsed() >= self.retry_for {
                return Err(std::io::Error::other(format!(
                    "{} records to topic `{topic}` were not acknowledged after {attempt} \
                     attempts in {} ms (sink.retry_timeout_ms): {reason}",
                    todo.len(),
                    started.elapsed().as_millis()
                )));
            }
        }
    }
}

/// The wait before attempt number `attempt` (from 2): 0.5 s more each time, at most 5 s.
fn retry_backoff(attempt: u32) -> Duration {
    Duration::from_millis(500 * u64::from(attempt.saturating_sub(1)).min(10))
}

/// Produces closed windows to `sink.topic`, at least once.
pub struct KafkaSink {
    deliverer: Deliverer,
    topic: String,
    label: bool,
}

impl KafkaSink {
    /// Creates the producer and checks (or creates) the topic.
    ///
    /// # Errors
    /// If the producer cannot be created or the topic is missing.
    pub fn open(kafka: &KafkaConfig, sink: &SinkConfig) -> Result<Self, OutletError> {
        let deliverer = Deliverer::create(kafka, sink, "kafka-actors-sink")?;
        ensure_topic(&deliverer.producer, kafka, sink, &sink.topic, "sink.topic")?;
        Ok(KafkaSink {
            deliverer,
            topic: sink.topic.clone(),
            label: sink.label_partitions,
        })
    }
}

impl Sink for KafkaSink {
    fn write(&mut self, windows: &[ClosedWindow]) -> std::io::Result<()> {
        if windows.is_empty() {
            return Ok(());
        }
        let records = window_records(&self.topic, windows, self.label);
        self.deliverer.deliver(&self.topic, &records)
    }
}

/// Produces invalid records to `sink.dead_letter.topic`, at least once.
pub struct KafkaDeadLetters {
    deliverer: Deliverer,
    topic: String,
}

impl KafkaDeadLetters {
    /// Creates the producer and checks (or creates) the topic.
    ///
    /// # Errors
    /// If the producer cannot be created or the topic is missing.
    pub fn open(kafka: &KafkaConfig, sink: &SinkConfig) -> Result<Self, OutletError> {
        let deliverer = Deliverer::create(kafka, sink, "kafka-actors-dead-letters")?;
        let topic = sink.dead_letter.topic.clone();
        ensure_topic(
            &deliverer.producer,
            kafka,
            sink,
            &topic,
            "sink.dead_letter.topic",
        )?;
        Ok(KafkaDeadLetters { deliverer, topic })
    }
}

impl DeadLetterSink for KafkaDeadLetters {
    fn write(&mut self, letters: &[DeadLetter]) -> std::io::Result<()> {
        let records = dead_letter_records(&self.topic, letters);
        self.deliverer.deliver(&self.topic, &records)
    }
}

/// How a step of a transaction failed.
enum Step {
    /// Abort, and the whole transaction may be tried again.
    Abortable(String),
    /// The group refused the offsets of this member's generation (it rejoined meanwhile, or
    /// was dropped): abort, and try again with the current generation if the member still
    /// owns every partition.
    StaleGeneration(String),
    /// A call did not return within its timeout (librdkafka's
    /// `send_offsets_to_transaction` can wait forever for a group coordinator that went away:
    /// librdkafka issues 5456 and 5511): the producer is left to it and made again.
    Stuck(String),
    /// No retry helps.
    Failed(TransactionFailure),
}

/// Writes each flush and its offsets in one transaction; see [`GroupCommits::exactly_once`].
pub struct TransactionalOutput {
    /// Shared with a thread that sends offsets (see [`Step::Stuck`]).
    producer: Arc<BaseProducer<Acks>>,
    /// What the producer was made from: a group member makes it again after a fatal error.
    config: ClientConfig,
    commits: GroupCommits,
    /// The partition model's group metadata (no member, no generation), taken when the output
    /// starts; a group member's comes from its last assignment (`commits.generation`).
    group: Option<Arc<rdkafka::consumer::ConsumerGroupMetadata>>,
    transactional_id: String,
    topic: String,
    dead_letter_topic: Option<String>,
    label: bool,
    /// How long an aborted flush is tried again.
    retry_for: Duration,
    /// The bound of each librdkafka call.
    timeout: Duration,
}

/// A transactional producer that has started: `init_transactions` fenced every older
/// producer with the same transactional id and aborted the transaction it left open. It is
/// started before the service reads its committed offsets: from then on no older instance
/// can commit, so the offsets read are the last ones (a fenced instance's transaction that
/// committed after the look-up would have its windows written twice).
pub struct Transactions {
    producer: BaseProducer<Acks>,
    /// What the producer was made from.
    config: ClientConfig,
    transactional_id: String,
    /// The bound of each librdkafka call (`sink.transaction_timeout_ms`).
    timeout: Duration,
}

impl Transactions {
    /// Makes the transactional producer with `transactional_id` for `sink`, checks the output
    /// topics and runs `init_transactions`.
    ///
    /// # Errors
    /// If the producer cannot be created or started, or a topic is missing.
    pub fn start(
        kafka: &KafkaConfig,
        sink: &SinkConfig,
        transactional_id: &str,
    ) -> Result<Transactions, OutletError> {
        let extra = [
            ("transactional.id", transactional_id.to_owned()),
            (
                "transaction.timeout.ms",
                sink.transaction_timeout_ms.to_string(),
            ),
        ];
        let config = producer_config(kafka, sink, "kafka-actors-sink", &extra);
        let producer: BaseProducer<Acks> = config
            .create_with_context(Acks::default())
            .map_err(|e| AdapterError::create_client("producer", &e))?;
        ensure_topic(&producer, kafka, sink, &sink.topic, "sink.topic")?;
        if sink.dead_letter.enabled() {
            ensure_topic(
                &producer,
                kafka,
                sink,
                &sink.dead_letter.topic,
                "sink.dead_letter.topic",
            )?;
        }
        let timeout = Duration::from_millis(sink.transaction_timeout_ms);
        producer
            .init_transactions(timeout + LOOKUP_TIMEOUT)
            .map_err(|e| OutletError::InitTransactions {
                transactional_id: transactional_id.to_owned(),
                reason: e.to_string(),
            })?;
        tracing::info!(transactional_id, "Transactions started.");
        Ok(Transactions {
            producer,
            config,
            transactional_id: transactional_id.to_owned(),
            timeout,
        })
    }
}

impl GroupCommits {
    /// Turns these commits into exactly-once output through `transactions`: each flush's
    /// windows (to `sink.topic`) and dead letters, and the input offsets sent to the same
    /// transaction with this consumer's group metadata (so the coordinator refuses offsets
    /// from a member of an old generation).
    #[must_use]
    pub fn exactly_once(
        self,
        transactions: Transactions,
        sink: &SinkConfig,
    ) -> TransactionalOutput {
        let group = match &self.generation {
            Some(_) => None,
            None => self.consumer.group_metadata().map(Arc::new),
        };
        TransactionalOutput {
            producer: Arc::new(transactions.producer),
            config: transactions.config,
            group,
            commits: self,
            transactional_id: transactions.transactional_id,
            topic: sink.topic.clone(),
            dead_letter_topic: sink
                .dead_letter
                .enabled()
                .then(|| sink.dead_letter.topic.clone()),
            label: sink.label_partitions,
            retry_for: Duration::from_millis(sink.retry_timeout_ms),
            timeout: transactions.timeout,
        }
    }
}

/// What a flush needs to know that its partitions are still held (see
/// [`TransactionalOutput::check_membership`]).
struct Held<'a> {
    /// The member's losses when the flush began.
    losses_at: u64,
    /// False once the flush's partitions were let go as lost.
    owned: &'a dyn Fn() -> bool,
}

impl TransactionalOutput {
    /// What `error` means for the transaction.
    fn classify(&self, error: &KafkaError) -> Step {
        let reason = error.to_string();
        let KafkaError::Transaction(rd) = error else {
            return Step::Abortable(reason);
        };
        match rd.code() {
            RDKafkaErrorCode::IllegalGeneration
            | RDKafkaErrorCode::UnknownMemberId
            | RDKafkaErrorCode::RebalanceInProgress => Step::StaleGeneration(reason),
            RDKafkaErrorCode::FencedInstanceId => {
                Step::Failed(TransactionFailure::NotInGroup { reason })
            }
            RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::InvalidProducerEpoch
            | RDKafkaErrorCode::Fenced => Step::Failed(TransactionFailure::Fenced {
                transactional_id: self.transactional_id.clone(),
                reason,
            }),
            _ if rd.is_fatal() => Step::Failed(TransactionFailure::Fatal { reason }),
            _ => Step::Abortable(reason),
        }
    }

    /// The input offsets, with their metadata, as a list for the transaction.
    fn offsets(positions: &[CommitPosition]) -> Result<TopicPartitionList, KafkaError> {
        let mut tpl = TopicPartitionList::with_capacity(positions.len());
        for position in positions {
            let mut element =
                tpl.add_partition(position.partition.topic.name(), position.partition.index);
            element.set_offset(Offset::Offset(position.offset))?;
            element.set_metadata(&position.metadata);
        }
        Ok(tpl)
    }

    /// One try: begin, produce, send the offsets, commit (asking again, until `give_up`, while
    /// the commit's outcome is unknown).
    fn attempt(
        &self,
        records: &[OutRecord<'_>],
        positions: &[CommitPosition],
        give_up: Instant,
        held: &Held<'_>,
    ) -> Result<(), Step> {
        let started = Instant::now();
        self.check_membership(held)?;
        // Records of aborted transactions reported failed: nothing to send again one by one
        // (the whole transaction is tried again).
        self.producer
            .context()
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.producer
            .begin_transaction()
            .map_err(|e| self.classify(&e))?;
        for (index, record) in records.iter().enumerate() {
            send(&self.producer, record, index).map_err(|e| self.classify(&e))?;
        }
        if !positions.is_empty() {
            let tpl = Self::offsets(positions).map_err(|e| {
                Step::Failed(TransactionFailure::Fatal {
                    reason: e.to_string(),
                })
            })?;
            let group = match &self.commits.generation {
                Some(slot) => slot
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .metadata
                    .clone(),
                None => self.group.clone(),
            };
            // Asked after the generation is read: a new one (the member joined again) comes
            // only after the loss was counted and its partitions let go.
            self.check_membership(held)?;
            let Some(group) = group else {
                // A member not yet assigned anything has no generation to commit in.
                return Err(Step::StaleGeneration(
                    "the member has not joined the group yet".into(),
                ));
            };
            tracing::debug!(took = ?started.elapsed(), records = records.len(), "Transaction: records queued.");
            self.send_offsets(tpl, group)?;
            tracing::debug!(took = ?started.elapsed(), "Transaction: offsets sent.");
        }
        // A commit whose outcome is unknown (a timeout) is asked again: librdkafka then
        // reports the outcome of the first.
        let deadline = give_up.max(Instant::now() + self.timeout);
        loop {
            match self.producer.commit_transaction(self.timeout) {
                Ok(()) => {
                    tracing::debug!(took = ?started.elapsed(), "Transaction committed.");
                    return Ok(());
                }
                Err(KafkaError::Transaction(rd))
                    if rd.is_retriable() && Instant::now() < deadline =>
                {
                    tracing::debug!(error = %rd, "Committing the transaction again.");
                }
                Err(error) => return Err(self.classify(&error)),
            }
        }
    }

    /// How many times the member has lost its assignment (0 for the partition model).
    fn losses(&self) -> u64 {
        self.commits.generation.as_ref().map_or(0, |slot| {
            slot.lock().unwrap_or_else(|p| p.into_inner()).losses
        })
    }

    fn lost_meanwhile() -> TransactionFailure {
        TransactionFailure::MembershipLost {
            reason: "the member lost its assignment while the flush was under way; its frames \
                     are read again from the last commit"
                .into(),
        }
    }

    /// A member that lost its assignment since the flush was made must not commit it, even
    /// in the generation it has joined since: the frames were read under the lost assignment,
    /// and the partitions are read again from the last commit.
    fn check_membership(&self, held: &Held<'_>) -> Result<(), Step> {
        match self.losses() == held.losses_at && (held.owned)() {
            true => Ok(()),
            false => Err(Step::Failed(Self::lost_meanwhile())),
        }
    }

    /// `send_offsets_to_transaction` on a thread of its own, waited for no longer than its
    /// timeout and a few seconds more: librdkafka's call can wait forever when the group
    /// coordinator it was talking to went away (librdkafka issues 5456 and 5511, open for
    /// 2.12), and then [`Step::Stuck`] says so.
    fn send_offsets(
        &self,
        offsets: TopicPartitionList,
        group: Arc<rdkafka::consumer::ConsumerGroupMetadata>,
    ) -> Result<(), Step> {
        let (producer, timeout) = (self.producer.clone(), self.timeout);
        let (done, result) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("kafka-txn-offsets".into())
            .spawn(move || {
                let _ = done.send(producer.send_offsets_to_transaction(&offsets, &group, timeout));
            });
        if let Err(error) = spawned {
            return Err(Step::Abortable(format!("cannot start a thread: {error}")));
        }
        match result.recv_timeout(timeout + Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(self.classify(&error)),
            Err(_) => Err(Step::Stuck(format!(
                "sending the offsets to the transaction did not return within {} ms",
                timeout.as_millis() + 5_000
            ))),
        }
    }

    /// `abort_transaction`, with the producer's delivery reports served meanwhile: the abort
    /// waits until every record of the transaction is delivered or purged and its report
    /// handed out, and rdkafka's `BaseProducer` hands reports out only when polled (its
    /// `commit_transaction` flushes first; its `abort_transaction` does not). Unpolled, an
    /// abort with records in flight fails with "Failed to flush all outstanding messages"
    /// every time it is asked, and the flush never ends.
    fn abort_serving(&self, timeout: Duration) -> Result<(), KafkaError> {
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                while !done.load(std::sync::atomic::Ordering::Acquire) {
                    self.producer.poll(Duration::from_millis(20));
                }
            });
            let result = self.producer.abort_transaction(timeout);
            done.store(true, std::sync::atomic::Ordering::Release);
            result
        })
    }

    /// Aborts the transaction under way, asking again until `give_up` while the abort's
    /// outcome is unknown (the coordinator is out of reach); an abort that fails otherwise
    /// leaves the producer unusable.
    fn abort(&self, give_up: Instant) -> Result<(), TransactionFailure> {
        tracing::debug!("Aborting the transaction.");
        let deadline = give_up.max(Instant::now() + self.timeout);
        loop {
            let error = match self.abort_serving(self.timeout) {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            if let KafkaError::Transaction(rd) = &error {
                if rd.is_retriable() && Instant::now() < deadline {
                    tracing::debug!(error = %rd, "Aborting the transaction again.");
                    continue;
                }
            }
            return Err(match self.classify(&error) {
                Step::Failed(failure) => failure,
                Step::Abortable(reason) | Step::StaleGeneration(reason) | Step::Stuck(reason) => {
                    TransactionFailure::Fatal {
                        reason: format!("cannot abort the transaction: {reason}"),
                    }
                }
            });
        }
    }

    /// A fence met by a transaction that was open at least the transaction timeout: the
    /// coordinator aborted it for its age (see [`TransactionFailure::TimedOut`]). A newer
    /// instance on the same partitions that started meanwhile cannot be told apart; the
    /// producer made again then fences it in turn, and of the two the one whose transactions
    /// stay younger than the timeout stops (exactly once holds either way: one writer at a
    /// time).
    fn aged_out(&self, failure: TransactionFailure, open: Duration) -> TransactionFailure {
        match failure {
            TransactionFailure::Fenced { reason, .. } if open >= self.timeout => {
                TransactionFailure::TimedOut {
                    open_ms: open.as_millis(),
                    reason,
                }
            }
            other => other,
        }
    }

    /// After `failure` left the producer unusable: a new one with the same transactional id,
    /// whose `init_transactions` aborts what is left, when that is safe. A fatal error that
    /// is no fence (the broker timed the transaction out during an outage: "invalid
    /// transactional state") is mended in either model. A fence is mended by a group member
    /// only: its id is its own, so nothing but the broker fenced it, and the coordinator still
    /// fences it by generation; the partition model's id is shared by every instance on the
    /// same partitions, and a producer made again would fence the newer instance back.
    fn recover(
        &mut self,
        failure: TransactionFailure,
        give_up: Instant,
    ) -> Result<(), TransactionFailure> {
        match failure {
            TransactionFailure::Fatal { .. } | TransactionFailure::TimedOut { .. } => {
                self.make_again(&failure, give_up)
            }
            TransactionFailure::Fenced { .. } if self.commits.generation.is_some() => {
                self.make_again(&failure, give_up)
            }
            TransactionFailure::Fenced { .. }
            | TransactionFailure::NotInGroup { .. }
            | TransactionFailure::MembershipLost { .. }
            | TransactionFailure::GaveUp { .. }
            | TransactionFailure::Closed => Err(failure),
        }
    }

    /// A new producer with the same transactional id in place of this one (see
    /// [`Self::recover`] and [`Step::Stuck`]).
    /// `init_transactions` is asked again while it times out (the transaction coordinator is
    /// still loading after an outage), until `give_up`.
    fn make_again(
        &mut self,
        why: &dyn std::fmt::Display,
        give_up: Instant,
    ) -> Result<(), TransactionFailure> {
        tracing::warn!(
            transactional_id = %self.transactional_id,
            error = %why,
            "The transactional producer failed; making it again."
        );
        let producer: BaseProducer<Acks> = self
            .config
            .create_with_context(Acks::default())
            .map_err(|e| TransactionFailure::Fatal {
                reason: AdapterError::create_client("producer", &e).to_string(),
            })?;
        loop {
            match producer.init_transactions(self.timeout) {
                Ok(()) => break,
                Err(KafkaError::Transaction(rd))
                    if rd.is_retriable() && Instant::now() < give_up =>
                {
                    tracing::debug!(error = %rd, "Starting transactions again, once more.");
                }
                Err(e) => {
                    return Err(TransactionFailure::Fatal {
                        reason: format!("cannot start transactions again: {e}"),
                    })
                }
            }
        }
        self.producer = Arc::new(producer);
        Ok(())
    }

    /// The partitions of `positions` this member no longer owns (group model); none for the
    /// partition model, which assigns its partitions itself.
    fn not_owned(&self, positions: &[CommitPosition]) -> Vec<crate::topic::PartitionId> {
        if self.commits.scope == super::intake::CommitScope::Any {
            return Vec::new();
        }
        let owned: Vec<crate::topic::PartitionId> = self
            .commits
            .consumer
            .assignment()
            .map(|tpl| tpl.elements().iter().map(element_id).collect())
            .unwrap_or_default();
        positions
            .iter()
            .map(|p| p.partition)
            .filter(|p| !owned.contains(p))
            .collect()
    }
}

impl TransactionalSink for TransactionalOutput {
    fn write_and_commit(
        &mut self,
        windows: &[ClosedWindow],
        letters: &[DeadLetter],
        positions: &[CommitPosition],
        retry_until: Option<Instant>,
        owned: &dyn Fn() -> bool,
    ) -> Result<Vec<CommitPosition>, TransactionFailure> {
        if windows.is_empty() && letters.is_empty() && positions.is_empty() {
            return Ok(Vec::new());
        }
        let (topic, dead_letter_topic) = (self.topic.clone(), self.dead_letter_topic.clone());
        let mut records = window_records(&topic, windows, self.label);
        if let Some(topic) = &dead_letter_topic {
            records.extend(dead_letter_records(topic, letters));
        }
        let started = Instant::now();
        // A release waits for this flush no longer than it said.
        let give_up = retry_until.unwrap_or(started + self.retry_for);
        // The member's losses counted from here, and the partitions let go as lost since the
        // flush was made (`owned`): a loss the rebalance callback reported after this, or one
        // whose partitions the batch actor let go before the flush was made, is seen.
        let held = Held {
            losses_at: self.losses(),
            owned,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let began = Instant::now();
            let reason = match self.attempt(&records, positions, give_up, &held) {
                Ok(()) => return Ok(positions.to_vec()),
                Err(Step::Failed(failure)) => {
                    let failure = self.aged_out(failure, began.elapsed());
                    // Nothing of it may become visible; the producer may be unusable already.
                    let _ = self.abort_serving(Duration::from_secs(5));
                    if Instant::now() >= give_up {
                        return Err(failure);
                    }
                    self.recover(failure, give_up)?;
                    continue;
                }
                Err(Step::Abortable(reason)) => reason,
                Err(Step::Stuck(reason)) => {
                    if Instant::now() >= give_up {
                        return Err(TransactionFailure::GaveUp {
                            attempts: attempt,
                            for_ms: started.elapsed().as_millis(),
                            reason,
                        });
                    }
                    // Our own producer hangs: nothing else fenced it, so a new one with the
                    // same id (which fences the stuck one and aborts its transaction) is safe
                    // in either model.
                    self.make_again(&reason, give_up)?;
                    continue;
                }
                Err(Step::StaleGeneration(reason)) => {
                    self.abort(give_up)?;
                    // A member that rejoined keeps its partitions (cooperative rebalancing)
                    // and commits them in its new generation; one that lost any of them must
                    // write nothing more for them.
                    let lost = self.not_owned(positions);
                    if !lost.is_empty() {
                        // Some or all of its partitions went to another member (its session
                        // expired, or a revocation gave up waiting for this flush): the flush
                        // is dropped. The lost partitions' next owner reads them from the last
                        // committed transaction; the batch actor reads the partitions still
                        // held here again from there too, since the dropped windows hold their
                        // shares as well.
                        return Err(TransactionFailure::MembershipLost {
                            reason: format!(
                                "{reason}; partitions no longer assigned here: {}",
                                lost.iter()
                                    .map(ToString::to_string)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        });
                    }
                    if Instant::now() + retry_backoff(attempt + 1) >= give_up {
                        // Out of time before the member got into a stable generation (a
                        // rebalance held up by a broker or coordinator fault): the flush is
                        // dropped and read again, as when partitions were lost.
                        return Err(TransactionFailure::MembershipLost {
                            reason: format!(
                                "{reason}; the group's generation was still changing when the \
                                 flush's time ran out"
                            ),
                        });
                    }
                    tracing::info!(
                        attempt,
                        %reason,
                        "The group's generation changed during the flush; committing it again \
                         in the current generation."
                    );
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
            };
            if let Err(failure) = self.abort(give_up) {
                // The abort of a transaction the broker already aborted for its age.
                let failure = self.aged_out(failure, began.elapsed());
                if Instant::now() >= give_up {
                    return Err(failure);
                }
                self.recover(failure, give_up)?;
            }
            if Instant::now() + retry_backoff(attempt + 1) >= give_up {
                return Err(TransactionFailure::GaveUp {
                    attempts: attempt,
                    for_ms: started.elapsed().as_millis(),
                    reason,
                });
            }
            tracing::warn!(
                attempt,
                %reason,
                windows = windows.len(),
                dead_letters = letters.len(),
                "The flush's transaction was aborted; trying it again."
            );
            std::thread::sleep(retry_backoff(attempt + 1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::InvalidReason;
    use crate::topic::PartitionId;

    #[test]
    fn the_producer_takes_connection_properties_from_the_input_only_for_the_same_cluster() {
        let mut kafka = KafkaConfig {
            brokers: "in:9092".into(),
            ..KafkaConfig::default()
        };
        for (k, v) in [
            ("security.protocol", "SASL_SSL"),
            ("sasl.password", "pw"),
            ("fetch.wait.max.ms", "50"),
        ] {
            kafka.properties.insert(k.into(), v.into());
        }
        let mut sink = SinkConfig::default();
        sink.properties.insert("linger.ms".into(), "20".into());
        let same = producer_config(&kafka, &sink, "c", &[]);
        assert_eq!(same.get("bootstrap.servers"), Some("in:9092"));
        assert_eq!(same.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(same.get("sasl.password"), Some("pw"));
        assert_eq!(same.get("fetch.wait.max.ms"), None, "consumer-only");
        assert_eq!(same.get("linger.ms"), Some("20"));
        assert_eq!(same.get("acks"), Some("all"));
        assert_eq!(same.get("enable.idempotence"), Some("true"));
        assert_eq!(same.get("allow.auto.create.topics"), Some("false"));
        sink.brokers = "out:9092".into();
        let other = producer_config(&kafka, &sink, "c", &[]);
        assert_eq!(other.get("bootstrap.servers"), Some("out:9092"));
        assert_eq!(other.get("security.protocol"), None);
        assert_eq!(output_cluster(&kafka, &sink).brokers, "out:9092");
    }

    #[test]
    fn a_dead_letter_keeps_its_record_and_names_its_source_in_headers() {
        let letters = [DeadLetter {
            partition: PartitionId::of("frames", 3),
            offset: 41,
            reason: InvalidReason::NotJson,
            payload: Some(b"{oops".to_vec()),
            key: Some(b"device-7".to_vec()),
            headers: vec![
                ("trace".to_owned(), Some(b"abc".to_vec())),
                ("empty".to_owned(), None),
            ],
        }];
        let records = dead_letter_records("dlq", &letters);
        assert_eq!(records[0].payload.as_deref(), Some(&b"{oops"[..]));
        assert_eq!(records[0].key.as_deref(), Some(&b"device-7"[..]));
        assert_eq!(records[0].topic, "dlq");
        let header = |k: &str, v: &str| (k.to_owned(), Some(v.as_bytes().to_vec()));
        assert_eq!(
            records[0].headers,
            vec![
                header("trace", "abc"),
                ("empty".to_owned(), None),
                header(headers::SOURCE_TOPIC, "frames"),
                header(headers::SOURCE_PARTITION, "3"),
                header(headers::SOURCE_OFFSET, "41"),
                header(headers::REASON, "not_json"),
            ]
        );
    }

    #[test]
    fn a_window_record_is_its_line_keyed_by_start_and_partitions() {
        let window = ClosedWindow {
            start: 1_700_000_040,
            end: 1_700_000_100,
            unique_users: 3,
            frames: 7,
            partitions: vec![
                PartitionId::of("frames", 0),
                PartitionId::of("frames", 2),
                PartitionId::of("other", 1),
            ],
        };
        let records = window_records("out", std::slice::from_ref(&window), true);
        assert_eq!(
            records[0].key.as_deref(),
            Some(&b"1700000040 frames:0,2 other:1"[..])
        );
        let line: crate::sink::WindowLine =
            serde_json::from_slice(records[0].payload.as_deref().unwrap()).unwrap();
        assert_eq!(line, crate::sink::WindowLine::from(&window));
        let unlabelled = window_records("out", &[window], false);
        assert_eq!(unlabelled[0].key.as_deref(), Some(&b"1700000040"[..]));
    }
}
