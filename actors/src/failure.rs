//! Why things stop, as types: the supervisor, the oracle and the tests match variants; the
//! messages (`Display`) are what operators read in logs and errors.

use serde::Serialize;

use crate::ports::{FailureKind, SourceError};
use crate::topic::PartitionId;

/// Why a partition actor stopped or was restarted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PartitionFailure {
    /// One of its handlers panicked.
    Panicked {
        /// The panic's message and location.
        message: String,
    },
    /// Reading failed.
    Source {
        /// How far it reaches.
        reach: FailureKind,
        /// What happened.
        message: String,
    },
    /// It had records waiting but did not move (the stall watchdog).
    Stalled {
        /// Records between its position and the end.
        waiting: i64,
        /// How long it had not moved, in milliseconds.
        still_ms: u128,
    },
    /// Its reader reported nothing (no records, not being at its end) since it was assigned:
    /// its leader may be out of reach. It holds the watermark back meanwhile (the watchdog).
    Unheard {
        /// How long it had been assigned without a report, in milliseconds.
        for_ms: u128,
    },
    /// Too many invalid frames came, with a dead-letter topic: no restart cures a producer
    /// writing another format.
    InvalidFlood(crate::frame::InvalidFlood),
    /// Someone asked for the restart.
    Requested,
    /// A flush holding its frames was dropped (exactly once: the member lost other partitions
    /// of the flush while its transaction was open): it is read again from its last commit.
    FlushDropped,
}

impl PartitionFailure {
    /// How far it reaches: only a source error can be beyond a restart's cure.
    pub fn reach(&self) -> FailureKind {
        match self {
            PartitionFailure::Source { reach, .. } => *reach,
            PartitionFailure::InvalidFlood(_) => FailureKind::Permanent,
            PartitionFailure::Panicked { .. }
            | PartitionFailure::Stalled { .. }
            | PartitionFailure::Unheard { .. }
            | PartitionFailure::Requested
            | PartitionFailure::FlushDropped => FailureKind::Fatal,
        }
    }

    /// A short name of the cause (`panicked`, `source`, `stalled`, `unheard`,
    /// `invalid_flood`, `requested`, `flush_dropped`), for labels.
    pub fn kind(&self) -> &'static str {
        match self {
            PartitionFailure::Panicked { .. } => "panicked",
            PartitionFailure::Source { .. } => "source",
            PartitionFailure::Stalled { .. } => "stalled",
            PartitionFailure::Unheard { .. } => "unheard",
            PartitionFailure::InvalidFlood(_) => "invalid_flood",
            PartitionFailure::Requested => "requested",
            PartitionFailure::FlushDropped => "flush_dropped",
        }
    }

    /// The stall watchdog found it.
    pub fn is_stall(&self) -> bool {
        matches!(
            self,
            PartitionFailure::Stalled { .. } | PartitionFailure::Unheard { .. }
        )
    }
}

impl From<SourceError> for PartitionFailure {
    fn from(error: SourceError) -> Self {
        PartitionFailure::Source {
            reach: error.kind,
            message: error.message,
        }
    }
}

impl std::fmt::Display for PartitionFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PartitionFailure::Panicked { message } => write!(f, "panicked: {message}"),
            PartitionFailure::Source { message, .. } => f.write_str(message),
            PartitionFailure::Stalled { waiting, still_ms } => write!(
                f,
                "stalled: {waiting} frames waiting and no progress for {still_ms} ms"
            ),
            PartitionFailure::Unheard { for_ms } => write!(
                f,
                "no first chunk: its reader reported nothing for {for_ms} ms after it was \
                 assigned, and it holds the watermark back"
            ),
            PartitionFailure::InvalidFlood(flood) => flood.fmt(f),
            PartitionFailure::Requested => f.write_str("requested"),
            PartitionFailure::FlushDropped => f.write_str(
                "a flush holding its frames was dropped with partitions this member lost; read \
                 again from its last commit",
            ),
        }
    }
}

/// Why output (windows and commits) cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputFailure {
    /// The sink refused the windows.
    #[error("cannot write results: {0}")]
    Write(String),
    /// Commits failed with an error no retry cures, for longer than allowed.
    #[error("offsets cannot be committed: {error} (no commit succeeded for {for_ms} ms; flush.commit_failure_timeout_ms = {timeout_ms})")]
    CommitsRefused {
        /// The last commit error.
        error: String,
        /// How long no commit succeeded.
        for_ms: u128,
        /// The setting.
        timeout_ms: u64,
    },
    /// A line would not cover every partition, and output is unlabelled.
    #[error("refusing to write window {start} for partitions {partitions:?} of {all:?} without partition labels (set sink.label_partitions = true, or run one instance)")]
    PartialLine {
        /// The window start.
        start: i64,
        /// What the line covers.
        partitions: Vec<PartitionId>,
        /// Every partition of the topic.
        all: Vec<PartitionId>,
    },
    /// A flush's transaction (exactly once) could not be committed: nothing of it is visible
    /// and nothing was committed; a restart reads from the last committed transaction.
    #[error("cannot write results exactly once: {0}")]
    Transaction(crate::outlet::TransactionFailure),
    /// The thread that writes and commits died.
    #[error("flush thread failed: {0}")]
    FlushThread(String),
}

/// Why the service stopped on its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StopCause {
    /// A partition failed more often than the restart budget allows.
    #[error("partition {partition} failed {failures} times within {window_secs} s (supervisor.max_restarts = {max_restarts}); last cause: {last}")]
    RestartBudget {
        /// The partition.
        partition: PartitionId,
        /// Failures within the window, this one included.
        failures: usize,
        /// `supervisor.restart_window_secs`.
        window_secs: u64,
        /// `supervisor.max_restarts`.
        max_restarts: u32,
        /// The last failure.
        last: PartitionFailure,
    },
    /// A partition cannot be read and no restart would help.
    #[error("partition {partition} cannot be read and a restart would not help: {cause}")]
    Unreadable {
        /// The partition.
        partition: PartitionId,
        /// The failure.
        cause: PartitionFailure,
    },
    /// Output failed.
    #[error(transparent)]
    Output(OutputFailure),
    /// An actor the service cannot run without panicked.
    #[error("the {actor} actor panicked: {message}")]
    Panicked {
        /// Which actor.
        actor: &'static str,
        /// The panic's message and location.
        message: String,
    },
}
