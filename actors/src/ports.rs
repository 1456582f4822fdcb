//! The two ways the actors touch Kafka, as traits: reading one partition ([`FrameSource`]) and
//! committing offsets ([`OffsetCommitter`]). The Kafka adapter implements them; actor tests use
//! in-memory fakes. A source never blocks (partition actors share a few threads and wait for
//! records asynchronously); committing blocks and runs where blocking is allowed.

use std::sync::Arc;

use crate::topic::PartitionId;

/// Where a partition starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOffset {
    /// At this offset (the group's committed offset).
    At(i64),
    /// Where `kafka.auto_offset_reset` says (no committed offset).
    Reset,
}

impl StartOffset {
    /// The offset, when it is explicit.
    pub fn offset(self) -> Option<i64> {
        match self {
            StartOffset::At(offset) => Some(offset),
            StartOffset::Reset => None,
        }
    }
}

/// What one [`FrameSource::poll`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollStatus {
    /// Records handed to the callback.
    pub records: usize,
    /// The partition is caught up: a fetch answered by its leader, made after the last break
    /// in the link to it (see `end_void`), found its position at the log's end.
    pub at_end: bool,
    /// Next offset to read, when known: after the last record read, or the start offset.
    pub next_offset: Option<i64>,
    /// The high watermark last reported by a fetch, when known.
    pub high_watermark: Option<i64>,
    /// What the source said of the partition's end before no longer holds: its leader is out
    /// of reach (records produced meanwhile cannot be seen), or the link to it broke since
    /// (an outage, a reconnect, a new leader) and no fetch made after the break has answered
    /// yet. Being at the end must be earned again by a later `at_end`.
    pub end_void: bool,
    /// The position had left the log (retention deleted records before they were read) and
    /// the reader moved on as `kafka.out_of_range` says: the offsets `[from, to)` were
    /// passed over unread.
    pub skipped: Option<(i64, i64)>,
}

/// How far a partition failure reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Waiting and reading again at the same position may succeed (a broker is away).
    Transient,
    /// This reader cannot go on, but a new one from the last commit may (its position fell
    /// off the log, a handler panicked).
    Fatal,
    /// No restart can cure it (a compression codec this build cannot decode, access denied):
    /// the service stops with the error instead of restarting the partition.
    Permanent,
}

/// A failure to read a partition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    /// How far it reaches.
    pub kind: FailureKind,
    /// What happened, without any configuration value.
    pub message: String,
}

/// Called (from any thread) when records or events arrive for a source that had none.
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// One record as a [`FrameSource`] hands it out.
pub struct SourceRecord<'a> {
    /// Its offset.
    pub offset: i64,
    /// Its value (`None`: it had none).
    pub payload: Option<&'a [u8]>,
    /// Its key and headers, read only when asked (a dead letter carries them on).
    pub rest: &'a dyn RecordRest,
}

impl<'a> SourceRecord<'a> {
    /// A record with neither key nor headers.
    #[must_use]
    pub fn plain(offset: i64, payload: Option<&'a [u8]>) -> Self {
        SourceRecord {
            offset,
            payload,
            rest: &NoRest,
        }
    }
}

/// The parts of a record besides its offset and value.
pub trait RecordRest {
    /// Its key.
    fn key(&self) -> Option<&[u8]>;
    /// Its headers, in order (a header may have no value).
    fn headers(&self) -> Vec<(String, Option<Vec<u8>>)>;
}

/// No key, no headers.
pub struct NoRest;

impl RecordRest for NoRest {
    fn key(&self) -> Option<&[u8]> {
        None
    }

    fn headers(&self) -> Vec<(String, Option<Vec<u8>>)> {
        Vec::new()
    }
}

/// Reads one partition.
pub trait FrameSource: Send + 'static {
    /// Hands up to `max` records that are already buffered, in offset order, to
    /// `on_record`. Never waits.
    ///
    /// # Errors
    /// A read failure of any [`FailureKind`]; records read before it are delivered first.
    fn poll(
        &mut self,
        max: usize,
        on_record: &mut dyn FnMut(&SourceRecord<'_>),
    ) -> Result<PollStatus, SourceError>;

    /// Asks to be woken through `wake` whenever records (or an end or error) arrive while
    /// none are buffered. Sources that cannot tell do nothing: their reader then polls again
    /// after `partition.poll_timeout_ms`.
    fn wake_on_records(&mut self, wake: Wake) {
        let _ = wake;
    }

    /// Stops fetching the partition (the memory budget of open windows is reached): what was
    /// fetched and not yet handed out is dropped, and fetched again from the position on
    /// [`Self::resume`]. Sources that fetch nothing ahead do nothing.
    ///
    /// # Errors
    /// If the client refuses; the reader then stays put without polling, which bounds memory
    /// all the same once the client's prefetch is full.
    fn pause(&mut self) -> Result<(), SourceError> {
        Ok(())
    }

    /// Fetches the partition again from the position, after [`Self::pause`].
    ///
    /// # Errors
    /// If the client refuses: the reader cannot go on.
    fn resume(&mut self) -> Result<(), SourceError> {
        Ok(())
    }
}

/// Opens the source of a partition at a start offset.
pub type SourceFactory = Arc<
    dyn Fn(PartitionId, StartOffset) -> Result<Box<dyn FrameSource>, SourceError> + Send + Sync,
>;

/// A failed commit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CommitError {
    /// What trying again can do.
    pub kind: CommitErrorKind,
    /// What happened.
    pub message: String,
}

/// Why a commit failed, by what trying again can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitErrorKind {
    /// A passing fault (the coordinator moving or loading, a rebalance under way, a timeout):
    /// a later commit may succeed.
    Transient,
    /// The member's group generation is stale: the group moved on while this member was
    /// rejoining, and commits succeed again once it has. If it never rejoins (it was dropped
    /// from the group) no retry cures it.
    StaleGeneration,
    /// No retry cures it (authorization, an unknown or fenced member, oversized metadata).
    Permanent,
}

/// One partition's offset to commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPosition {
    /// The partition.
    pub partition: PartitionId,
    /// The next offset to read.
    pub offset: i64,
    /// Stored with the commit and read back at start.
    pub metadata: String,
}

/// Commits offsets of the input topics for the consumer group.
pub trait OffsetCommitter: Send + 'static {
    /// Commits the positions and returns, once the broker has accepted them, the positions
    /// committed: positions of partitions this process no longer reads are left out (a group
    /// member must never overwrite a new owner's commits), and are not committed.
    ///
    /// # Errors
    /// If the broker did not accept the commit.
    fn commit(&mut self, positions: &[CommitPosition]) -> Result<Vec<CommitPosition>, CommitError>;
}

/// A partition this process was given to read: by the service itself (partition model) or by
/// the group coordinator (group model).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignedPartition {
    /// The partition.
    pub partition: PartitionId,
    /// Where reading starts (the group's committed offset, if any).
    pub start: StartOffset,
    /// The metadata of that commit.
    pub metadata: String,
    /// The commit had left the log (retention deleted records before they were read), and
    /// reading starts where `kafka.out_of_range` says: `[from, to)` is passed over.
    pub skipped: Option<(i64, i64)>,
}

/// Hears which partitions this process reads. Called on the thread that serves the consumer
/// (in the group model inside the rebalance): a revocation must not return before the
/// partitions' results are durable and their offsets committed, because the next owner starts
/// from those offsets.
pub trait AssignmentListener: Send + Sync + 'static {
    /// Partitions were assigned; reading them may start.
    fn assigned(&self, partitions: Vec<AssignedPartition>);

    /// Partitions are being taken away; a lost assignment (the membership already expired)
    /// drops them without committing. Returns when the partitions are released.
    fn revoking(&self, partitions: Vec<PartitionId>, how: Revocation);
}

/// How partitions are taken away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// In a rebalance: write what is closed and commit before letting them go.
    Revoked,
    /// The membership had expired: the next owner may already read them, so nothing is
    /// committed.
    Lost,
}

/// What leaving does to the partitions this process reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnLeave {
    /// They go to other members: write what is closed, commit and let them go first (the
    /// group model).
    Release,
    /// Nobody else takes them: stop reading and drain as usual (the partition model).
    Keep,
}

/// Where assignments come from: the partition model (every partition at start) or a group
/// membership (the coordinator's rebalances). Both tell an [`AssignmentListener`].
pub trait AssignmentSource: Send + 'static {
    /// Opens the source of an assigned partition (again, after a restart).
    fn sources(&self) -> SourceFactory;

    /// Starts: the listener hears of assignments from now on.
    fn start(&mut self);

    /// Stops (in the group model: leaves, revoking every partition through the listener).
    /// Blocks.
    fn leave(&mut self);

    /// What leaving does to the partitions read here.
    fn on_leave(&self) -> OnLeave;

    /// For `--until-end` with partitions read elsewhere too (group model): what the group as a
    /// whole has consumed; see [`CoverageProbe`]. `None` when this process reads every
    /// partition.
    fn coverage(&self) -> Option<CoverageProbe>;

    /// The group membership (group model): generation and member id, once joined. `None`
    /// for the partition model, or before the member has joined.
    fn member(&self) -> Option<GroupMember> {
        None
    }
}

/// A group member's identity in the current generation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupMember {
    /// The group's generation id (classic protocol).
    pub generation: i32,
    /// The member id the coordinator gave this member.
    pub member_id: String,
}

/// A fixed set of partitions, assigned once when it starts and never revoked: the partition
/// model's assignment (the service chose the partitions and their starts).
pub struct FixedAssignment {
    sources: SourceFactory,
    partitions: Vec<AssignedPartition>,
    listener: Arc<dyn AssignmentListener>,
}

impl FixedAssignment {
    /// `partitions`, read through `sources`, reported to `listener` at start.
    pub fn new(
        partitions: Vec<AssignedPartition>,
        sources: SourceFactory,
        listener: Arc<dyn AssignmentListener>,
    ) -> Self {
        FixedAssignment {
            sources,
            partitions,
            listener,
        }
    }
}

impl AssignmentSource for FixedAssignment {
    fn sources(&self) -> SourceFactory {
        self.sources.clone()
    }

    fn start(&mut self) {
        self.listener.assigned(self.partitions.clone());
    }

    fn leave(&mut self) {}

    fn on_leave(&self) -> OnLeave {
        OnLeave::Keep
    }

    fn coverage(&self) -> Option<CoverageProbe> {
        None
    }
}

/// Every partition of the input topics, and which of those not in `owned` the group has committed up to
/// their end (another member consumed them to the end); `None` when that cannot be looked up
/// now. Blocks.
pub type CoverageProbe = Arc<dyn Fn(&[PartitionId]) -> Option<GroupCoverage> + Send + Sync>;

/// See [`CoverageProbe`].
#[derive(Debug, Clone, PartialEq, Eq, actix::Message)]
#[rtype(result = "()")]
pub struct GroupCoverage {
    /// Every partition of the input topics.
    pub all: Vec<PartitionId>,
    /// Partitions not owned here that the group has committed at their end offset.
    pub done_elsewhere: Vec<PartitionId>,
}

/// Looks up the current end offset (high watermark) of partitions; partitions it cannot learn
/// are left out. Blocks; the stall watchdog calls it off the actor threads.
pub type EndOffsetProbe =
    Arc<dyn Fn(&[PartitionId]) -> std::collections::BTreeMap<PartitionId, i64> + Send + Sync>;
