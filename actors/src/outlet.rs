//! Where a flush goes: its closed windows, its dead letters and the input offsets they cover.
//!
//! At least once ([`Outlet::AtLeastOnce`]), the windows are written and acknowledged (a file
//! fsynced, a topic's in-sync replicas), then the dead letters, and only then are the offsets
//! committed: a crash in between writes the windows again. Exactly once
//! ([`Outlet::ExactlyOnce`]), one Kafka transaction holds all three, so a reader with
//! `read_committed` sees a flush whole or not at all.

use std::time::Instant;

use crate::frame::DeadLetter;
use crate::ports::{CommitPosition, OffsetCommitter};
use crate::window::ClosedWindow;

/// Destination of closed windows.
pub trait Sink: Send + 'static {
    /// Writes the windows and returns once they are durable.
    ///
    /// # Errors
    /// Any I/O error; nothing covered by this call may be committed then.
    fn write(&mut self, windows: &[ClosedWindow]) -> std::io::Result<()>;
}

/// Where invalid records go, unchanged.
pub trait DeadLetterSink: Send + 'static {
    /// Writes the records and returns once they are durable (acknowledged).
    ///
    /// # Errors
    /// If they are not; nothing covered by this call may be committed then.
    fn write(&mut self, letters: &[DeadLetter]) -> std::io::Result<()>;
}

/// Writes a flush and commits its offsets in one transaction.
pub trait TransactionalSink: Send + 'static {
    /// Writes `windows` and `letters` and commits `positions` (none: nothing new to commit)
    /// as one transaction; returns the positions committed. Tries an aborted transaction again
    /// until `retry_until` when one is given, else for the sink's `retry_timeout_ms`.
    /// `owned` says whether the flush's partitions are still held as when it was made: false
    /// once any was let go as lost (the member's assignment was lost; it may have joined again
    /// since and be given them back, read again from the last commit). A group member asks it
    /// after reading the generation its offsets will carry and before sending them, and
    /// commits nothing once it is false ([`TransactionFailure::MembershipLost`]): committed
    /// in the new generation, the flush would write what the partitions' new reading writes
    /// again.
    ///
    /// # Errors
    /// The transaction was aborted and trying again cannot help, or did not help in time:
    /// nothing of it is visible to `read_committed` readers and nothing was committed.
    fn write_and_commit(
        &mut self,
        windows: &[ClosedWindow],
        letters: &[DeadLetter],
        positions: &[CommitPosition],
        retry_until: Option<Instant>,
        owned: &dyn Fn() -> bool,
    ) -> Result<Vec<CommitPosition>, TransactionFailure>;
}

/// Why a flush's transaction could not be committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionFailure {
    /// Another producer with the same transactional id started (a newer instance on the same
    /// partitions): this process is a zombie and must write nothing more.
    #[error("fenced: another producer started with transactional id `{transactional_id}` ({reason}); this instance stops so that only the new one writes")]
    Fenced {
        /// The transactional id.
        transactional_id: String,
        /// What the broker said.
        reason: String,
    },
    /// The transaction stayed open at least `sink.transaction_timeout_ms` (an outage held the
    /// flush) and ended in a fence: the transaction coordinator aborts a transaction that old
    /// and bumps the producer's epoch, which librdkafka 2.12 reports as a fence. Nothing says
    /// another producer started: a producer made again with the same id writes the flush
    /// again.
    #[error("the transaction was open {open_ms} ms, at least sink.transaction_timeout_ms, and the broker aborted it ({reason})")]
    TimedOut {
        /// How long it was open.
        open_ms: u128,
        /// What the broker said.
        reason: String,
    },
    /// The group moved on without this member (its session expired, or it was removed): the
    /// coordinator refuses its offsets, and its partitions belong to someone else now.
    #[error("the group refused this member's offsets ({reason}): it is no longer a member of the current generation; stopping, and a restart reads from the group's commits")]
    NotInGroup {
        /// What the broker said.
        reason: String,
    },
    /// The member lost some or all partitions of the flush (its session expired, or a
    /// revocation stopped waiting for the flush), or its generation kept changing until the
    /// flush's time ran out, while the transaction was open: the
    /// transaction is aborted and the flush dropped. The lost partitions' next owner reads
    /// them from the last committed transaction; the partitions still held are read again
    /// from there by this member (the dropped windows held their shares too). Output goes on.
    #[error("the member lost the flush's partitions ({reason}); the flush was dropped with them")]
    MembershipLost {
        /// What the broker said.
        reason: String,
    },
    /// The transaction kept failing.
    #[error("the flush's transaction was aborted {attempts} times in {for_ms} ms (sink.retry_timeout_ms): {reason}")]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// How long they took.
        for_ms: u128,
        /// The last error.
        reason: String,
    },
    /// An error no retry cures (authorization, a fatal producer error).
    #[error("the transaction cannot be committed: {reason}")]
    Fatal {
        /// What the broker or client said.
        reason: String,
    },
    /// Commits are closed (a stop missed its deadline).
    #[error("the stop missed shutdown.timeout_ms: nothing more is committed")]
    Closed,
}

/// Where flushes go; see the module documentation.
pub enum Outlet {
    /// Write the windows, then the dead letters, then commit.
    AtLeastOnce {
        /// Where windows go.
        sink: Box<dyn Sink>,
        /// Where invalid records go, when there is a dead-letter topic.
        dead_letters: Option<Box<dyn DeadLetterSink>>,
        /// Commits offsets.
        committer: Box<dyn OffsetCommitter>,
    },
    /// One transaction per flush.
    ExactlyOnce(Box<dyn TransactionalSink>),
}

impl Outlet {
    /// At least once, without dead letters.
    pub fn at_least_once(sink: Box<dyn Sink>, committer: Box<dyn OffsetCommitter>) -> Self {
        Outlet::AtLeastOnce {
            sink,
            dead_letters: None,
            committer,
        }
    }
}
