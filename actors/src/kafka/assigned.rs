//! [`AssigningConsumer`]: the partition model's consumer. The service assigns the partitions
//! this instance reads (every partition of the input topics, or the share `kafka.partitions` /
//! `kafka.instance` selects) to the process's one intake consumer at the offsets it chose (no
//! group subscription, no coordinator-driven rebalances) and commits through the same client,
//! only for those partitions. Its [`AssignmentSource`] is a [`FixedAssignment`]: every
//! partition once, at start.

use std::sync::Arc;

use super::error::AdapterError;
use super::intake::{CommitScope, IntakeClient, IntakeSpec};
use super::lookup::Committed;
use super::stats::LeaderStats;
use crate::config::{KafkaConfig, PartitionConfig};
use crate::ports::{
    AssignedPartition, AssignmentListener, AssignmentSource, EndOffsetProbe, FixedAssignment,
    StartOffset,
};
use crate::topic::PartitionId;

/// The partition model's consumer, before it reads.
pub struct AssigningConsumer {
    intake: IntakeClient,
    kafka: KafkaConfig,
}

/// What reading through an [`AssigningConsumer`] uses; the consumer closes when the last of
/// these is dropped.
pub struct AssignedIntake {
    /// Reports the assignment and opens partition sources.
    pub assignments: Box<dyn AssignmentSource>,
    /// Commits through the consumer.
    pub committer: super::intake::GroupCommits,
    /// End offsets for the stall watchdog.
    pub end_offsets: EndOffsetProbe,
}

impl AssigningConsumer {
    /// Creates the consumer for `partitions` partitions to read (prefetch is shared among
    /// them).
    ///
    /// # Errors
    /// If librdkafka refuses the configuration.
    pub fn create(
        kafka: &KafkaConfig,
        intake: &PartitionConfig,
        partitions: usize,
        leaders: Option<&LeaderStats>,
    ) -> Result<Self, AdapterError> {
        let intake = IntakeClient::create(IntakeSpec {
            kafka,
            client_id: "kafka-actors",
            prefetch_frames: intake.prefetch_frames,
            prefetch_mib: intake.prefetch_mib,
            partitions,
            extra: Vec::new(),
            rebalance: None,
            leaders,
        })?;
        // Learn the leaders through this client first: an offset query (earliest/latest) that
        // finds no leader is retried only after a fixed 500 ms, and until the partitions fetch
        // the client's statistics report their leaders as out of reach, which holds back the
        // end of `--until-end` by a statistics interval. Asked right away, the answer comes
        // over the connection the new client opens anyway; asked after other look-ups, it
        // waits for a broker connection of its own (about 50 ms here).
        let started = std::time::Instant::now();
        if let Err(error) = intake.partition_ids() {
            tracing::debug!(%error, "Metadata before assigning failed; assigning anyway.");
        }
        tracing::debug!(took = ?started.elapsed(), "Leaders looked up.");
        Ok(AssigningConsumer {
            intake,
            kafka: kafka.clone(),
        })
    }

    /// Every partition of the input topics, ordered by topic and index.
    ///
    /// # Errors
    /// If the metadata cannot be read or a topic does not exist.
    pub fn partition_ids(&self) -> Result<Vec<PartitionId>, AdapterError> {
        self.intake.partition_ids()
    }

    /// The group's committed offsets of `partitions`.
    ///
    /// # Errors
    /// If the group coordinator cannot be reached.
    pub fn committed(&self, partitions: &[PartitionId]) -> Result<Vec<Committed>, AdapterError> {
        self.intake.committed(&self.kafka, partitions)
    }

    /// Assigns the partitions at their starts and starts serving the client; `listener` hears of
    /// the assignment once the returned source starts.
    ///
    /// # Errors
    /// If librdkafka refuses the assignment, or a committed position lies outside its log and
    /// `kafka.out_of_range` is `stop`.
    pub fn assign(
        self,
        mut partitions: Vec<AssignedPartition>,
        listener: Arc<dyn AssignmentListener>,
    ) -> Result<AssignedIntake, AdapterError> {
        // A commit outside the log goes where `kafka.out_of_range` says, or stops the start.
        super::lookup::place_out_of_range(
            &**self.intake.consumer(),
            &mut partitions,
            self.kafka.out_of_range,
        )?;
        let starts: Vec<(PartitionId, StartOffset)> =
            partitions.iter().map(|a| (a.partition, a.start)).collect();
        self.intake.assign(&starts)?;
        let used = AssignedIntake {
            assignments: Box::new(FixedAssignment::new(
                partitions,
                super::reader::sources(&self.intake),
                listener,
            )),
            committer: self.intake.committer(CommitScope::Any),
            end_offsets: self.intake.end_offsets(),
        };
        self.intake.serve_while_used();
        Ok(used)
    }
}
