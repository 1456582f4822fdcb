//! [`GroupConsumer`]: the group model's membership. One consumer subscribes to the input topic;
//! the coordinator assigns partitions. Each assigned partition's records go to its own queue,
//! split off before the partition is assigned, and a partition actor reads that queue; the
//! consumer's main queue (rebalances, errors, logs) is served by a driver thread.
//!
//! Rebalances run on the driver thread inside librdkafka's callback:
//! - assign: the group's committed offsets (and their metadata) are read and set explicitly,
//!   each partition's queue is split off, the partitions are assigned (incrementally under
//!   cooperative-sticky), and the listener hears of them;
//! - revoke: the listener is told and the callback waits for it, so the partitions' results
//!   are durable and their offsets committed before anyone else may read them; then they are
//!   unassigned. A lost assignment (expired session) is reported as lost: no commit.
//!
//! Commits go through this member's consumer ([`GroupConsumer::committer`]): a group with live
//! members refuses commits from non-members.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::committer::commit_positions;
use super::reader::{reader_defaults, reset_offset, PartitionReader};
use super::{consumer_config, observe_leaders, AdapterError, LeaderStats, LOOKUP_TIMEOUT};
use crate::config::{GroupConfig, KafkaConfig, OffsetReset};
use crate::ports::{
    AssignedPartition, CommitError, CommitPosition, CoverageProbe, FailureKind, FrameSource,
    GroupCoverage, GroupMembership, OffsetCommitter, RebalanceListener, SourceError, SourceFactory,
    StartOffset,
};

/// How long leaving may take (revocations included).
const LEAVE_TIMEOUT: Duration = Duration::from_secs(60);

/// Client callbacks of the group member.
pub(crate) struct GroupContext {
    listener: Arc<dyn RebalanceListener>,
    topic: String,
    /// Where partitions without a commit start.
    reset: OffsetReset,
    /// The consumer itself, to split queues from inside the rebalance callback.
    consumer: OnceLock<Weak<BaseConsumer<GroupContext>>>,
    pub(super) leaders: Option<LeaderStats>,
}

impl ClientContext for GroupContext {
    fn stats_raw(&self, statistics: &[u8]) {
        if let Some(stats) = &self.leaders {
            observe_leaders(&stats.board, statistics);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::PartitionEOF)
        ) {
            tracing::warn!(%error, reason, "Group consumer error.");
        }
    }
}

impl GroupContext {
    fn assign(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let mut assigned: Vec<AssignedPartition> = tpl
            .elements()
            .iter()
            .map(|e| AssignedPartition {
                partition: e.partition(),
                start: StartOffset::Reset,
                metadata: String::new(),
                skipped: None,
            })
            .collect();
        // Read the committed positions ourselves: the batch actor needs their metadata, and
        // setting them explicitly makes the assignment start exactly there.
        match consumer.committed_offsets(tpl.clone(), LOOKUP_TIMEOUT) {
            Ok(committed) => {
                for element in committed.elements() {
                    if let Offset::Offset(offset) = element.offset() {
                        let _ = tpl.set_partition_offset(
                            &self.topic,
                            element.partition(),
                            Offset::Offset(offset),
                        );
                        if let Some(a) = assigned
                            .iter_mut()
                            .find(|a| a.partition == element.partition())
                        {
                            a.start = StartOffset::At(offset);
                            a.metadata = element.metadata().to_owned();
                        }
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "Cannot read committed offsets at assignment; librdkafka looks them up itself.");
            }
        }
        // Without a commit, start where `kafka.auto_offset_reset` says, explicitly (the client's
        // own reset policy is `error`; see `consumer_config`). A commit that retention has
        // passed (the records were deleted before they were read) moves to where the policy
        // says, and the range passed over is reported.
        for a in &mut assigned {
            match a.start {
                StartOffset::Reset => {
                    let _ = tpl.set_partition_offset(
                        &self.topic,
                        a.partition,
                        reset_offset(self.reset),
                    );
                }
                StartOffset::At(offset) => {
                    let Ok((low, high)) =
                        consumer.fetch_watermarks(&self.topic, a.partition, LOOKUP_TIMEOUT)
                    else {
                        continue;
                    };
                    let to = match self.reset {
                        _ if offset >= low => continue,
                        OffsetReset::Earliest => low,
                        OffsetReset::Latest => high,
                        // The reader meets the error and stops the service naming it.
                        OffsetReset::Error => continue,
                    };
                    let _ = tpl.set_partition_offset(&self.topic, a.partition, Offset::Offset(to));
                    a.start = StartOffset::At(to);
                    a.skipped = Some((offset, to));
                }
            }
        }
        // Split every partition's queue before it is assigned, so no record of it is ever
        // delivered to the main queue. Dropping the handle keeps the split.
        if let Some(arc) = self.consumer.get().and_then(Weak::upgrade) {
            for a in &assigned {
                drop(arc.split_partition_queue(&self.topic, a.partition));
            }
        }
        let result = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_assign(tpl),
            _ => consumer.assign(tpl),
        };
        if let Err(error) = result {
            tracing::error!(%error, "Assigning partitions failed.");
            return;
        }
        tracing::info!(partitions = ?assigned.iter().map(|a| a.partition).collect::<Vec<_>>(), "Partitions assigned.");
        self.listener.assigned(assigned);
    }

    fn revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
        let lost = consumer.assignment_lost();
        let started = Instant::now();
        self.listener.revoking(partitions.clone(), lost);
        tracing::info!(?partitions, lost, took = ?started.elapsed(), "Partitions revoked.");
        let result = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_unassign(tpl),
            _ => consumer.unassign(),
        };
        if let Err(error) = result {
            tracing::error!(%error, "Unassigning partitions failed.");
        }
    }
}

impl ConsumerContext for GroupContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.assign(consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.revoke(consumer, tpl),
            other => {
                let code: RDKafkaErrorCode = other.into();
                tracing::error!(error = %code, "Rebalance failed; giving up the assignment.");
                self.revoke(consumer, tpl);
            }
        }
    }
}

/// Membership of the input topic's consumer group.
pub struct GroupConsumer {
    consumer: Arc<BaseConsumer<GroupContext>>,
    topic: String,
    stop: Arc<AtomicBool>,
    driver: Option<JoinHandle<()>>,
    static_member: bool,
    reset: OffsetReset,
}

impl GroupConsumer {
    /// Creates the member and subscribes; nothing happens until [`GroupMembership::start`].
    ///
    /// # Errors
    /// If the client cannot be created or the subscription is refused.
    pub fn subscribe(
        kafka: &KafkaConfig,
        group: &GroupConfig,
        prefetch: u64,
        listener: Arc<dyn RebalanceListener>,
        leaders: Option<&LeaderStats>,
    ) -> Result<Self, AdapterError> {
        let mut defaults: Vec<(&str, String)> = reader_defaults(prefetch).into_iter().collect();
        defaults.extend(leaders.map(LeaderStats::setting));
        defaults.push((
            "partition.assignment.strategy",
            group.assignment.librdkafka_name().to_owned(),
        ));
        defaults.push(("session.timeout.ms", group.session_timeout_ms.to_string()));
        defaults.push((
            "heartbeat.interval.ms",
            (group.session_timeout_ms / 3).clamp(100, 3_000).to_string(),
        ));
        if !group.instance_id.is_empty() {
            defaults.push(("group.instance.id", group.instance_id.clone()));
        }
        let context = GroupContext {
            listener,
            reset: kafka.auto_offset_reset,
            topic: kafka.topic.clone(),
            consumer: OnceLock::new(),
            leaders: leaders.cloned(),
        };
        let consumer: BaseConsumer<GroupContext> =
            consumer_config(kafka, "kafka-actors-member", &defaults)
                .create_with_context(context)
                .map_err(|source| AdapterError::CreateClient {
                    role: "group consumer",
                    source,
                })?;
        let consumer = Arc::new(consumer);
        let _ = consumer.context().consumer.set(Arc::downgrade(&consumer));
        consumer
            .subscribe(&[&kafka.topic])
            .map_err(|source| AdapterError::Subscribe {
                topic: kafka.topic.clone(),
                source,
            })?;
        Ok(GroupConsumer {
            consumer,
            topic: kafka.topic.clone(),
            stop: Arc::new(AtomicBool::new(false)),
            driver: None,
            static_member: !group.instance_id.is_empty(),
            reset: kafka.auto_offset_reset,
        })
    }

    /// Commits through this member.
    pub fn committer(&self) -> Box<dyn OffsetCommitter> {
        Box::new(GroupCommitter {
            consumer: self.consumer.clone(),
            topic: self.topic.clone(),
        })
    }
}

/// Serves the main queue until told to stop, then unsubscribes: everything is revoked through
/// the listener (on this thread) and the member leaves the group. The consumer itself closes
/// when its last handle is dropped.
fn drive(consumer: Arc<BaseConsumer<GroupContext>>, stop: Arc<AtomicBool>, static_member: bool) {
    let mut last_warning: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(100)) {
            None | Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Ok(message)) => {
                // Every assigned partition is split before it is assigned, so this does not
                // happen; if it does, the record is not lost: it was never committed.
                tracing::error!(
                    partition = message.partition(),
                    offset = message.offset(),
                    "Record on the group's main queue."
                );
            }
            Some(Err(error)) => {
                if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
                    tracing::warn!(%error, "Group consumer error.");
                    last_warning = Some(Instant::now());
                }
            }
        }
    }
    if static_member {
        // KIP-345: a static member leaves no trace; the consumer closes when its last handle
        // is dropped, without a LeaveGroup, and a restart with the same instance id within the
        // session timeout takes its place.
        tracing::info!("Stopped serving the group (static member: no LeaveGroup).");
        return;
    }
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

impl GroupMembership for GroupConsumer {
    fn coverage(&self) -> CoverageProbe {
        let (consumer, topic) = (self.consumer.clone(), self.topic.clone());
        Arc::new(move |owned: &[i32]| {
            let all = super::read_partition_ids(&*consumer, &topic).ok()?;
            let others: Vec<i32> = all.iter().copied().filter(|p| !owned.contains(p)).collect();
            let mut done_elsewhere = Vec::new();
            if !others.is_empty() {
                let mut tpl = TopicPartitionList::with_capacity(others.len());
                for partition in &others {
                    tpl.add_partition(&topic, *partition);
                }
                let committed = consumer.committed_offsets(tpl, LOOKUP_TIMEOUT).ok()?;
                for element in committed.elements() {
                    let Offset::Offset(offset) = element.offset() else {
                        continue;
                    };
                    let (_, high) = consumer
                        .fetch_watermarks(&topic, element.partition(), LOOKUP_TIMEOUT)
                        .ok()?;
                    if offset >= high {
                        done_elsewhere.push(element.partition());
                    }
                }
            }
            Some(GroupCoverage {
                all,
                done_elsewhere,
            })
        })
    }

    fn sources(&self) -> SourceFactory {
        let (consumer, topic, reset) = (self.consumer.clone(), self.topic.clone(), self.reset);
        Arc::new(move |partition, start| {
            let reader =
                PartitionReader::split(&consumer, &topic, partition, reset).map_err(|e| {
                    SourceError {
                        kind: FailureKind::Fatal,
                        message: e.to_string(),
                    }
                })?;
            // The assignment positioned the partition; a restarted reader must go back to the
            // commit it resumes from, and records fetched for the old reader (still in the
            // partition's queue) are discarded by the seek. Without a position nothing was
            // read yet, so the queue holds exactly what comes next.
            if let StartOffset::At(offset) = start {
                consumer
                    .seek(&topic, partition, Offset::Offset(offset), Duration::ZERO)
                    .map_err(|e| SourceError {
                        kind: FailureKind::Fatal,
                        message: format!("partition {partition}: seek to {offset}: {e}"),
                    })?;
            }
            Ok(Box::new(reader) as Box<dyn FrameSource>)
        })
    }

    fn start(&mut self) {
        if self.driver.is_some() {
            return;
        }
        let (consumer, stop, static_member) =
            (self.consumer.clone(), self.stop.clone(), self.static_member);
        match std::thread::Builder::new()
            .name("group-driver".into())
            .spawn(move || drive(consumer, stop, static_member))
        {
            Ok(handle) => self.driver = Some(handle),
            Err(error) => tracing::error!(%error, "Cannot start the group driver thread."),
        }
    }

    fn leave(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(driver) = self.driver.take() {
            let _ = driver.join();
        }
    }
}

/// Commits through the group member's consumer.
struct GroupCommitter {
    consumer: Arc<BaseConsumer<GroupContext>>,
    topic: String,
}

impl OffsetCommitter for GroupCommitter {
    fn commit(&mut self, positions: &[CommitPosition]) -> Result<(), CommitError> {
        // Never commit for a partition this member no longer owns: its new owner's commits
        // would be overwritten with older ones.
        let owned: Vec<i32> = self
            .consumer
            .assignment()
            .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
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
        if mine.is_empty() {
            return Ok(());
        }
        commit_positions(&self.consumer, &self.topic, &mine)
    }
}
