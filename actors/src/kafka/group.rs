//! [`GroupConsumer`]: the group model's membership. The process's intake consumer
//! ([`IntakeClient`]) subscribes to the input topics by name; the coordinator assigns
//! partitions. Each
//! assigned partition's records go to its own queue, split off before the partition is
//! assigned, and a partition actor reads that queue; the consumer's main queue (rebalances,
//! errors, logs) is served by the intake's driver thread.
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
//!
//! [`IntakeClient`]: super::intake::IntakeClient

use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use rdkafka::consumer::{Consumer, RebalanceProtocol};
use rdkafka::error::KafkaResult;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{Offset, TopicPartitionList};

use super::error::AdapterError;
use super::intake::{
    reset_offset, CommitScope, IntakeClient, IntakeConsumer, IntakeSpec, OnStop, Rebalance,
};
use super::lookup::{
    element_id, log_bounds, partition_list, place_out_of_range, LogEnd, LOOKUP_TIMEOUT,
};
use super::stats::LeaderStats;
use crate::config::{
    Assignment, GroupConfig, KafkaConfig, OffsetReset, OutOfRange, PartitionConfig,
};
use crate::ports::{
    AssignedPartition, AssignmentListener, AssignmentSource, CoverageProbe, EndOffsetProbe,
    GroupCoverage, OnLeave, Revocation, SourceFactory, StartOffset,
};
use crate::topic::PartitionId;

/// The group member's rebalance handling.
struct GroupRebalance {
    listener: Arc<dyn AssignmentListener>,
    /// Where partitions without a commit start.
    reset: OffsetReset,
    /// Where commits outside the log go.
    out_of_range: OutOfRange,
    /// The consumer itself, to split queues from inside the rebalance callback.
    consumer: Arc<OnceLock<Weak<IntakeConsumer>>>,
    /// Where the member's group metadata goes after every assignment, for exactly-once output.
    generation: super::intake::GenerationSlot,
    /// The rebalance protocol of `group.assignment` (every member uses the same strategy).
    /// Known from the settings, not asked of librdkafka: asking is a call that waits without
    /// bound on the group's own thread, which a closing consumer may never serve again
    /// (librdkafka issue 4041).
    protocol: RebalanceProtocol,
    /// How long the committed offsets of newly assigned partitions may take: an open
    /// transaction holding newer offsets (exactly-once output of a member that crashed) keeps
    /// them from being read until it ends.
    committed_wait: std::time::Duration,
}

impl GroupRebalance {
    fn assign(&self, consumer: &IntakeConsumer, tpl: &mut TopicPartitionList) {
        let mut assigned: Vec<AssignedPartition> = tpl
            .elements()
            .iter()
            .map(|e| AssignedPartition {
                partition: element_id(e),
                start: StartOffset::Reset,
                metadata: String::new(),
                skipped: None,
            })
            .collect();
        // Read the committed positions ourselves: the batch actor needs their metadata, and
        // setting them explicitly makes the assignment start exactly there.
        match consumer.committed_offsets(tpl.clone(), self.committed_wait) {
            Ok(committed) => {
                for element in committed.elements() {
                    if let Offset::Offset(offset) = element.offset() {
                        let id = element_id(&element);
                        let _ = tpl.set_partition_offset(
                            id.topic.name(),
                            id.index,
                            Offset::Offset(offset),
                        );
                        if let Some(a) = assigned.iter_mut().find(|a| a.partition == id) {
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
        // own reset policy is `error`; see `consumer_config`). A commit outside the log
        // (records deleted before they were read, or a position past the end of a recreated
        // topic) goes where `kafka.out_of_range` says, and the range passed over is reported;
        // with `stop` it stays where it is and the partition's reader stops the service
        // naming it.
        if let Err(gap) = place_out_of_range(consumer, &mut assigned, self.out_of_range) {
            tracing::error!(%gap, "A committed position lies outside the log.");
        }
        for a in &assigned {
            let offset = match a.start {
                StartOffset::Reset => reset_offset(self.reset),
                StartOffset::At(offset) => Offset::Offset(offset),
            };
            let _ = tpl.set_partition_offset(a.partition.topic.name(), a.partition.index, offset);
        }
        // Split every partition's queue before it is assigned, so no record of it is ever
        // delivered to the main queue. Dropping the handle keeps the split.
        if let Some(arc) = self.consumer.get().and_then(Weak::upgrade) {
            for a in &assigned {
                drop(arc.split_partition_queue(a.partition.topic.name(), a.partition.index));
            }
        }
        if let Err(error) = self.take(consumer, tpl) {
            tracing::error!(%error, "Assigning partitions failed.");
            return;
        }
        tracing::info!(partitions = ?assigned.iter().map(|a| a.partition).collect::<Vec<_>>(), "Partitions assigned.");
        self.listener.assigned(assigned);
    }

    fn revoke(&self, consumer: &IntakeConsumer, tpl: &TopicPartitionList) {
        let partitions: Vec<PartitionId> = tpl.elements().iter().map(element_id).collect();
        let lost = consumer.assignment_lost();
        if lost {
            self.generation
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .losses += 1;
        }
        let started = Instant::now();
        let how = if lost {
            Revocation::Lost
        } else {
            Revocation::Revoked
        };
        self.listener.revoking(partitions.clone(), how);
        tracing::info!(?partitions, lost, took = ?started.elapsed(), "Partitions revoked.");
        let result = match self.protocol {
            RebalanceProtocol::Cooperative => consumer.incremental_unassign(tpl),
            _ => consumer.unassign(),
        };
        if let Err(error) = result {
            tracing::error!(%error, "Unassigning partitions failed.");
        }
    }
}

impl GroupRebalance {
    /// Takes the assignment `tpl` the way the rebalance protocol asks.
    fn take(&self, consumer: &IntakeConsumer, tpl: &TopicPartitionList) -> KafkaResult<()> {
        match self.protocol {
            RebalanceProtocol::Cooperative => consumer.incremental_assign(tpl),
            _ => consumer.assign(tpl),
        }
    }

    /// True once the consumer is closing: its last handle is being dropped, and librdkafka's
    /// close serves the rebalances still due.
    fn closing(&self) -> bool {
        self.consumer
            .get()
            .is_some_and(|consumer| consumer.upgrade().is_none())
    }

    /// An assignment that arrives while the consumer closes (it joined, and the coordinator
    /// answered, after the member stopped serving its queue). librdkafka's close waits for the
    /// assignment to be taken, and takes it as an unassignment; nothing will read the
    /// partitions, so they are taken at once: no look-up of committed offsets (the closing
    /// group serves none: it waits out its timeout, during which the close stalls; seen
    /// taking 10 s, and once never ending, librdkafka issue 4884), and no word to the listener.
    fn assign_while_closing(&self, consumer: &IntakeConsumer, tpl: &TopicPartitionList) {
        match self.take(consumer, tpl) {
            Ok(()) => tracing::debug!(
                partitions = tpl.count(),
                "Assignment while closing taken and given up."
            ),
            Err(error) => tracing::warn!(%error, "Assignment while closing refused."),
        }
    }

    /// Records the generation the member is in now: what its offsets carry from now on (taken
    /// in the rebalance, before partitions are read or let go, not at every flush: asking
    /// waits on the client's main thread).
    fn note_generation(&self, consumer: &IntakeConsumer) {
        let metadata = consumer.group_metadata().map(Arc::new);
        self.generation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .metadata = metadata;
    }
}

impl Rebalance for GroupRebalance {
    fn rebalance(
        &self,
        consumer: &IntakeConsumer,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS if self.closing() => {
                self.assign_while_closing(consumer, tpl);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.note_generation(consumer);
                self.assign(consumer, tpl);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                // Cooperative rebalancing revokes in the new generation, whose offsets the
                // revocation's flush carries.
                self.note_generation(consumer);
                self.revoke(consumer, tpl);
            }
            other => {
                let code: RDKafkaErrorCode = other.into();
                tracing::error!(error = %code, "Rebalance failed; giving up the assignment.");
                self.revoke(consumer, tpl);
            }
        }
    }
}

/// Membership of the input topics' consumer group.
pub struct GroupConsumer {
    intake: IntakeClient,
    static_member: bool,
    generation: super::intake::GenerationSlot,
}

impl GroupConsumer {
    /// Creates the member and subscribes; nothing happens until [`AssignmentSource::start`].
    /// `partitions` is how many partitions the topics have (prefetch is shared among them).
    /// `committed_wait` bounds the look-up of committed offsets at each assignment (at least
    /// 10 s; longer with exactly-once output, whose open transactions hold it up).
    ///
    /// # Errors
    /// If the client cannot be created or the subscription is refused.
    pub fn subscribe(
        kafka: &KafkaConfig,
        group: &GroupConfig,
        intake: &PartitionConfig,
        partitions: usize,
        listener: Arc<dyn AssignmentListener>,
        leaders: Option<&LeaderStats>,
        committed_wait: std::time::Duration,
    ) -> Result<Self, AdapterError> {
        let mut extra = vec![
            (
                "partition.assignment.strategy",
                group.assignment.librdkafka_name().to_owned(),
            ),
            ("session.timeout.ms", group.session_timeout_ms.to_string()),
            (
                "heartbeat.interval.ms",
                (group.session_timeout_ms / 3).clamp(100, 3_000).to_string(),
            ),
        ];
        if !group.instance_id.is_empty() {
            extra.push(("group.instance.id", group.instance_id.clone()));
        }
        let consumer_slot = Arc::new(OnceLock::new());
        let generation = super::intake::GenerationSlot::default();
        let rebalance = GroupRebalance {
            listener,
            reset: kafka.auto_offset_reset,
            out_of_range: kafka.out_of_range,
            consumer: consumer_slot.clone(),
            generation: generation.clone(),
            protocol: match group.assignment {
                Assignment::CooperativeSticky => RebalanceProtocol::Cooperative,
                Assignment::Range | Assignment::Roundrobin => RebalanceProtocol::Eager,
            },
            committed_wait: committed_wait.max(LOOKUP_TIMEOUT),
        };
        let intake = IntakeClient::create(IntakeSpec {
            kafka,
            client_id: "kafka-actors-member",
            prefetch_frames: intake.prefetch_frames,
            prefetch_mib: intake.prefetch_mib,
            partitions,
            extra,
            rebalance: Some(Box::new(rebalance)),
            leaders,
        })?;
        let _ = consumer_slot.set(Arc::downgrade(intake.consumer()));
        let topics = kafka.topic_names();
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        intake
            .consumer()
            .subscribe(&names)
            .map_err(|source| AdapterError::Subscribe {
                topics: topics.join(", "),
                source,
            })?;
        Ok(GroupConsumer {
            intake,
            static_member: !group.instance_id.is_empty(),
            generation,
        })
    }

    /// Commits through this member, never for partitions it does not own.
    pub fn committer(&self) -> super::intake::GroupCommits {
        super::intake::GroupCommits {
            generation: Some(self.generation.clone()),
            ..self.intake.committer(CommitScope::Owned)
        }
    }

    /// End offsets for the stall watchdog, through this member's client.
    pub fn end_offsets(&self) -> EndOffsetProbe {
        self.intake.end_offsets()
    }
}

impl AssignmentSource for GroupConsumer {
    fn on_leave(&self) -> OnLeave {
        OnLeave::Release
    }

    fn coverage(&self) -> Option<CoverageProbe> {
        Some(self.coverage_probe())
    }

    fn member(&self) -> Option<crate::ports::GroupMember> {
        let client = self.intake.consumer().client().native_ptr();
        // SAFETY: the native handle is valid while the consumer lives (`self.intake` holds
        // it). The member id is a copy librdkafka allocates and this frees with
        // rd_kafka_mem_free; the group metadata is a copy freed with its destroy function.
        unsafe {
            let id = rdkafka::bindings::rd_kafka_memberid(client);
            if id.is_null() {
                return None;
            }
            let member_id = std::ffi::CStr::from_ptr(id).to_string_lossy().into_owned();
            rdkafka::bindings::rd_kafka_mem_free(client, id.cast());
            let metadata = rdkafka::bindings::rd_kafka_consumer_group_metadata(client);
            if metadata.is_null() {
                return None;
            }
            let generation =
                rdkafka::bindings::rd_kafka_consumer_group_metadata_generation_id(metadata);
            rdkafka::bindings::rd_kafka_consumer_group_metadata_destroy(metadata);
            (!member_id.is_empty()).then_some(crate::ports::GroupMember {
                generation,
                member_id,
            })
        }
    }

    fn sources(&self) -> SourceFactory {
        super::reader::sources(&self.intake)
    }

    fn start(&mut self) {
        // KIP-345: a static member leaves no trace; the consumer closes without a LeaveGroup,
        // and a restart with the same instance id within the session timeout takes its place.
        self.intake.start(if self.static_member {
            OnStop::Close
        } else {
            OnStop::Leave
        });
    }

    fn leave(&mut self) {
        self.intake.stop();
        if self.static_member {
            tracing::info!("Stopped serving the group (static member: no LeaveGroup).");
        }
    }
}

impl GroupConsumer {
    /// See [`AssignmentSource::coverage`].
    fn coverage_probe(&self) -> CoverageProbe {
        let (consumer, topics) = (
            self.intake.consumer().clone(),
            self.intake.topics().to_vec(),
        );
        Arc::new(move |owned: &[PartitionId]| {
            let all = super::lookup::read_partitions(&*consumer, &topics).ok()?;
            let others: Vec<PartitionId> =
                all.iter().copied().filter(|p| !owned.contains(p)).collect();
            let mut done_elsewhere = Vec::new();
            if !others.is_empty() {
                let tpl = partition_list(&others, |_| None).ok()?;
                let committed = consumer.committed_offsets(tpl, LOOKUP_TIMEOUT).ok()?;
                let ends = log_bounds(&*consumer, &others, LogEnd::End, LOOKUP_TIMEOUT).ok()?;
                for element in committed.elements() {
                    let Offset::Offset(offset) = element.offset() else {
                        continue;
                    };
                    let id = element_id(&element);
                    // A partition whose end is unknown now is not known to be done.
                    let high = ends.get(&id)?;
                    if offset >= *high {
                        done_elsewhere.push(id);
                    }
                }
            }
            Some(GroupCoverage {
                all,
                done_elsewhere,
            })
        })
    }
}
