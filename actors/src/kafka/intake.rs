//! [`IntakeClient`]: the one librdkafka consumer a process reads the input topics through, in
//! both models. Every partition's records go to that partition's own queue, split off the
//! consumer before the partition is assigned, and a partition actor reads the queue; the
//! consumer's main queue (statistics, errors, logs and, in the group model, rebalances) is
//! served by one driver thread. The same client answers the look-ups (partitions, committed
//! offsets, end offsets for the watchdog) and commits, so a process holds one set of broker
//! connections and one set of librdkafka threads whatever the number of partitions.
//!
//! Prefetch is bounded for the process: `partition.prefetch_frames` and
//! `partition.prefetch_mib` are shared among the partitions read (librdkafka applies its
//! queue limits per partition).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::client::{consumer_config, intake_defaults};
use super::committer::commit_positions;
use super::error::{AdapterError, Assigning};
use super::lookup::{
    element_id, log_bounds, read_committed, read_partitions, Committed, LogEnd, PROBE_TIMEOUT,
};
use super::stats::{observe_leaders, LeaderStats};
use crate::config::{KafkaConfig, OffsetReset, OutOfRange};
use crate::ports::{CommitError, CommitPosition, EndOffsetProbe, OffsetCommitter, StartOffset};
use crate::topic::{PartitionId, Topic};

/// Where `kafka.auto_offset_reset` starts a partition without a position. With `error` there is
/// no position, and librdkafka (whose own policy is `error`) reports it.
pub(super) fn reset_offset(reset: OffsetReset) -> Offset {
    match reset {
        OffsetReset::Earliest => Offset::Beginning,
        OffsetReset::Latest => Offset::End,
        OffsetReset::Error => Offset::Invalid,
    }
}

/// Who decides which partitions the intake consumer has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ownership {
    /// The service assigns them (the partition model): a reader may assign its partition
    /// again.
    Assigned,
    /// The group coordinator does (the group model).
    Group,
}

/// The consumer every partition is read through.
pub(crate) type IntakeConsumer = BaseConsumer<IntakeContext>;

/// Serves the group's rebalances, inside librdkafka's callback on the driver thread.
pub(crate) trait Rebalance: Send + Sync + 'static {
    /// Handles one rebalance event: assigns or unassigns `tpl`.
    fn rebalance(
        &self,
        consumer: &IntakeConsumer,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    );
}

/// Client callbacks of the intake consumer.
pub(crate) struct IntakeContext {
    /// The group model's rebalance handling; the partition model never rebalances.
    rebalance: Option<Box<dyn Rebalance>>,
    pub(super) leaders: Option<LeaderStats>,
}

impl ClientContext for IntakeContext {
    fn stats_raw(&self, statistics: &[u8]) {
        tracing::trace!(statistics = %String::from_utf8_lossy(statistics), "librdkafka statistics.");
        if let Some(stats) = &self.leaders {
            observe_leaders(&stats.board, statistics);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::PartitionEOF)
        ) {
            tracing::warn!(%error, reason, "Kafka consumer error.");
        }
    }
}

impl ConsumerContext for IntakeContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match &self.rebalance {
            Some(rebalance) => rebalance.rebalance(consumer, err, tpl),
            None => tracing::error!(?err, "Rebalance without a group subscription; ignored."),
        }
    }
}

/// How the intake consumer is made.
pub(crate) struct IntakeSpec<'a> {
    /// Brokers, topic, group, properties.
    pub kafka: &'a KafkaConfig,
    /// `client.id`.
    pub client_id: &'a str,
    /// Records prefetched for the whole process.
    pub prefetch_frames: u64,
    /// Bytes prefetched for the whole process, in MiB.
    pub prefetch_mib: u64,
    /// Partitions the prefetch is shared among.
    pub partitions: usize,
    /// Settings of this use (group membership), after the intake defaults.
    pub extra: Vec<(&'static str, String)>,
    /// Rebalance handling (group model).
    pub rebalance: Option<Box<dyn Rebalance>>,
    /// Leader tracking.
    pub leaders: Option<&'a LeaderStats>,
}

/// What the driver does when told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnStop {
    /// Nothing: the client closes when its last handle is dropped (partition model, and a
    /// static group member, which leaves no trace: KIP-345).
    Close,
    /// Unsubscribe and wait until every partition is revoked (a dynamic group member).
    Leave,
}

/// How long leaving may take (revocations included).
const LEAVE_TIMEOUT: Duration = Duration::from_secs(60);

/// The process's consumer of the input topics; see the module documentation.
pub(crate) struct IntakeClient {
    consumer: Arc<IntakeConsumer>,
    topics: Vec<Topic>,
    reset: OffsetReset,
    out_of_range: OutOfRange,
    ownership: Ownership,
    stop: Arc<AtomicBool>,
    driver: Option<JoinHandle<()>>,
}

impl IntakeClient {
    /// Creates the consumer; nothing is assigned or subscribed yet.
    ///
    /// # Errors
    /// If librdkafka refuses the configuration.
    pub(crate) fn create(spec: IntakeSpec<'_>) -> Result<Self, AdapterError> {
        let mut defaults =
            intake_defaults(spec.prefetch_frames, spec.prefetch_mib, spec.partitions);
        defaults.extend(spec.leaders.map(LeaderStats::setting));
        defaults.extend(spec.extra);
        let ownership = match spec.rebalance {
            Some(_) => Ownership::Group,
            None => Ownership::Assigned,
        };
        let context = IntakeContext {
            rebalance: spec.rebalance,
            leaders: spec.leaders.cloned(),
        };
        let consumer: IntakeConsumer = consumer_config(spec.kafka, spec.client_id, &defaults)
            .create_with_context(context)
            .map_err(|e| AdapterError::create_client("consumer", &e))?;
        Ok(IntakeClient {
            consumer: Arc::new(consumer),
            topics: spec.kafka.input_topics(),
            reset: spec.kafka.auto_offset_reset,
            out_of_range: spec.kafka.out_of_range,
            ownership,
            stop: Arc::new(AtomicBool::new(false)),
            driver: None,
        })
    }

    /// The input topics.
    pub(crate) fn topics(&self) -> &[Topic] {
        &self.topics
    }

    /// The consumer.
    pub(crate) fn consumer(&self) -> &Arc<IntakeConsumer> {
        &self.consumer
    }

    /// Where partitions without a position start.
    pub(crate) fn reset(&self) -> OffsetReset {
        self.reset
    }

    /// Where positions outside the log go.
    pub(crate) fn out_of_range(&self) -> OutOfRange {
        self.out_of_range
    }

    /// Who decides which partitions the consumer has.
    pub(crate) fn ownership(&self) -> Ownership {
        self.ownership
    }

    /// Every partition of the input topics, ordered.
    ///
    /// # Errors
    /// As [`partition_ids`](super::lookup::partition_ids).
    pub(crate) fn partition_ids(&self) -> Result<Vec<PartitionId>, AdapterError> {
        read_partitions(&*self.consumer, &self.topics)
    }

    /// The group's committed offsets of `partitions`.
    ///
    /// # Errors
    /// As [`committed_offsets`](super::lookup::committed_offsets).
    pub(crate) fn committed(
        &self,
        kafka: &KafkaConfig,
        partitions: &[PartitionId],
    ) -> Result<Vec<Committed>, AdapterError> {
        read_committed(&*self.consumer, kafka, partitions)
    }

    /// Splits off every partition's queue, then assigns the partitions at their start
    /// offsets (the partition model).
    ///
    /// # Errors
    /// If librdkafka refuses the assignment.
    pub(crate) fn assign(&self, starts: &[(PartitionId, StartOffset)]) -> Result<(), AdapterError> {
        let mut tpl = TopicPartitionList::with_capacity(starts.len());
        for (partition, start) in starts {
            drop(
                self.consumer
                    .split_partition_queue(partition.topic.name(), partition.index),
            );
            let offset = match start {
                StartOffset::At(offset) => Offset::Offset(*offset),
                StartOffset::Reset => reset_offset(self.reset),
            };
            tpl.add_partition_offset(partition.topic.name(), partition.index, offset)
                .map_err(|source| AdapterError::Assign {
                    partitions: Assigning::Partition(*partition),
                    source,
                })?;
        }
        self.consumer
            .assign(&tpl)
            .map_err(|source| AdapterError::Assign {
                partitions: Assigning::Set(starts.len()),
                source,
            })
    }

    /// Commits through this client, for the partitions `scope` says.
    pub(crate) fn committer(&self, scope: CommitScope) -> GroupCommits {
        GroupCommits {
            consumer: self.consumer.clone(),
            scope,
            generation: None,
        }
    }

    /// End offsets of partitions, for the stall watchdog; a partition whose look-up fails is
    /// left out.
    pub(crate) fn end_offsets(&self) -> EndOffsetProbe {
        let consumer = self.consumer.clone();
        Arc::new(move |partitions: &[PartitionId]| {
            log_bounds(&consumer, partitions, LogEnd::End, PROBE_TIMEOUT).unwrap_or_default()
        })
    }

    /// Starts serving the main queue on the driver thread; `on_stop` says how it ends.
    pub(crate) fn start(&mut self, on_stop: OnStop) {
        if self.driver.is_some() {
            return;
        }
        let (consumer, stop) = (self.consumer.clone(), self.stop.clone());
        match std::thread::Builder::new()
            .name("kafka-intake".into())
            .spawn(move || drive(&consumer, &stop, on_stop))
        {
            Ok(handle) => self.driver = Some(handle),
            Err(error) => tracing::error!(%error, "Cannot start the intake driver thread."),
        }
    }

    /// Serves the main queue on a driver thread for as long as anything else (a partition
    /// reader, the source factory, a committer, the watchdog's probe) still uses the consumer;
    /// the consumer closes with its last user.
    pub(crate) fn serve_while_used(self) {
        self.stop.store(true, Ordering::Relaxed);
        let consumer = Arc::downgrade(&self.consumer);
        let spawned = std::thread::Builder::new()
            .name("kafka-intake".into())
            .spawn(move || {
                let mut last_warning = None;
                while let Some(consumer) = consumer.upgrade() {
                    drive_once(&consumer, &mut last_warning);
                    if Arc::strong_count(&consumer) == 1 {
                        break;
                    }
                }
            });
        if let Err(error) = spawned {
            tracing::error!(%error, "Cannot start the intake driver thread.");
        }
    }

    /// Stops the driver thread (leaving the group first, if it says so). Blocks.
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(driver) = self.driver.take() {
            let _ = driver.join();
        }
    }
}

impl Drop for IntakeClient {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves the main queue until told to stop, then ends as `on_stop` says. The consumer itself
/// closes when its last handle is dropped.
fn drive(consumer: &IntakeConsumer, stop: &AtomicBool, on_stop: OnStop) {
    let mut last_warning: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        drive_once(consumer, &mut last_warning);
    }
    match on_stop {
        OnStop::Close => {}
        OnStop::Leave => {
            consumer.unsubscribe();
            let deadline = Instant::now() + LEAVE_TIMEOUT;
            while Instant::now() < deadline {
                let _ = consumer.poll(Duration::from_millis(50));
                if consumer.assignment().map_or(true, |a| a.count() == 0) {
                    tracing::info!("Left the consumer group.");
                    return;
                }
            }
            tracing::error!(timeout = ?LEAVE_TIMEOUT, "Partitions still assigned after leaving the group.");
        }
    }
}

/// Serves the main queue for up to 100 ms.
fn drive_once(consumer: &IntakeConsumer, last_warning: &mut Option<Instant>) {
    match consumer.poll(Duration::from_millis(100)) {
        None | Some(Err(KafkaError::PartitionEOF(_))) => {}
        Some(Ok(message)) => {
            // Every assigned partition is split before it is assigned, so this does not
            // happen; if it does, the record is not lost: it was never committed.
            tracing::error!(
                topic = message.topic(),
                partition = message.partition(),
                offset = message.offset(),
                "Record on the consumer's main queue."
            );
        }
        Some(Err(error)) => {
            if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
                tracing::warn!(%error, "Kafka consumer error.");
                *last_warning = Some(Instant::now());
            }
        }
    }
}

/// Which positions a committer commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CommitScope {
    /// Every position it is given (the service assigns the partitions itself).
    Any,
    /// Only those of partitions the client has assigned now: a group member must never
    /// overwrite a new owner's commits with older ones.
    Owned,
}

/// Commits the group's offsets through the intake consumer, or hands that consumer's group
/// membership to a transactional producer ([`GroupCommits::exactly_once`]).
pub struct GroupCommits {
    pub(super) consumer: Arc<IntakeConsumer>,
    pub(super) scope: CommitScope,
    /// Group model: the member's group metadata as of its last assignment (the generation its
    /// offsets must carry); `None` for the partition model, whose client joins no group.
    pub(super) generation: Option<GenerationSlot>,
}

/// A group member's membership as its rebalance callbacks saw it last.
pub(crate) type GenerationSlot = Arc<std::sync::Mutex<Membership>>;

/// What [`GenerationSlot`] holds.
#[derive(Default)]
pub(crate) struct Membership {
    /// The member's group metadata, replaced at every assignment and revocation: the
    /// generation its offsets carry.
    pub(crate) metadata: Option<Arc<rdkafka::consumer::ConsumerGroupMetadata>>,
    /// How many times the member lost its assignment (counted as the loss is reported, before
    /// its partitions are let go): a flush under way across a loss holds frames read under the
    /// lost assignment, which must not be committed in a later generation.
    pub(crate) losses: u64,
}

impl OffsetCommitter for GroupCommits {
    fn commit(&mut self, positions: &[CommitPosition]) -> Result<Vec<CommitPosition>, CommitError> {
        if self.scope == CommitScope::Any {
            commit_positions(&self.consumer, positions)?;
            return Ok(positions.to_vec());
        }
        let owned: Vec<PartitionId> = self
            .consumer
            .assignment()
            .map(|tpl| tpl.elements().iter().map(element_id).collect())
            .unwrap_or_default();
        let (mine, others): (Vec<CommitPosition>, Vec<CommitPosition>) = positions
            .iter()
            .cloned()
            .partition(|p| owned.contains(&p.partition));
        if !others.is_empty() {
            tracing::warn!(
                partitions = ?others.iter().map(|p| p.partition).collect::<Vec<_>>(),
                "Not committing partitions this member does not own."
            );
        }
        if !mine.is_empty() {
            commit_positions(&self.consumer, &mine)?;
        }
        Ok(mine)
    }
}
