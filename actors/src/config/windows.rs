//! `[window]` and `[flush]`: event-time windows, and when results are written and offsets
//! committed.

use serde::{Deserialize, Serialize};

use super::error::{check, ConfigError};

/// Event-time windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowConfig {
    /// Window length in seconds; a frame belongs to `floor(ts / length) * length`.
    pub length_secs: i64,
    /// A window closes when the watermark passes its end plus this many seconds.
    pub lateness_secs: i64,
    /// A partition that has caught up to its end and stays there this long (milliseconds) no
    /// longer holds the watermark back. Time while its leader is out of reach does not count.
    pub idle_after_ms: u64,
    /// A partition whose event time runs more than this many seconds ahead of the slowest
    /// other partition is logged and counted (`event_time_leads`) each time it gets there: a
    /// sign of a clock or producer gone wrong, or of a partition left far behind. 0: not
    /// watched.
    pub max_lead_secs: u64,
    /// Memory budget of the open windows, in MiB (their distinct uids and bookkeeping). Over
    /// it, every partition ahead of the one holding the watermark back is paused (logged,
    /// with the holder and why, and counted as `budget_pauses`) until windows close and free
    /// a quarter of it. The holder reads on: when it alone fills the budget, the budget is
    /// exceeded rather than a window closed early. Fractions are allowed (0.25 is 256 KiB).
    /// 0: no budget.
    pub open_budget_mib: f64,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            length_secs: 60,
            lateness_secs: 5,
            idle_after_ms: 5_000,
            max_lead_secs: 3_600,
            open_budget_mib: 1_024.0,
        }
    }
}

impl WindowConfig {
    /// The memory budget of open windows in bytes; `None` without one.
    pub fn open_budget_bytes(&self) -> Option<usize> {
        (self.open_budget_mib > 0.0).then(|| (self.open_budget_mib * f64::from(1 << 20)) as usize)
    }
}

impl WindowConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// The first invalid key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(
            (1..=86_400).contains(&self.length_secs),
            "window.length_secs",
            "must be between 1 and 86400",
        )?;
        check(
            (0..=86_400).contains(&self.lateness_secs),
            "window.lateness_secs",
            "must be between 0 and 86400",
        )?;
        check(
            self.idle_after_ms >= 1,
            "window.idle_after_ms",
            "must be at least 1",
        )?;
        check(
            self.open_budget_mib == 0.0
                || (1.0 / 1024.0..=1_048_576.0).contains(&self.open_budget_mib),
            "window.open_budget_mib",
            "must be 0 (no budget) or between 1/1024 (1 KiB) and 1048576 (1 TiB)",
        )
    }
}

/// When results are written and offsets committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlushConfig {
    /// Flush once this many frames were processed since the last flush.
    pub max_frames: u64,
    /// Flush at least this often (milliseconds) when there is something to write or commit.
    pub interval_ms: u64,
    /// Commits that fail with an error no retry can cure (authorization, unknown member,
    /// fenced) for this long (milliseconds) without a commit succeeding stop the service
    /// with the error, rather than writing output whose offsets never get committed.
    pub commit_failure_timeout_ms: u64,
}

impl Default for FlushConfig {
    fn default() -> Self {
        FlushConfig {
            max_frames: 200_000,
            interval_ms: 1_000,
            commit_failure_timeout_ms: 30_000,
        }
    }
}

impl FlushConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// The first invalid key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(
            self.max_frames >= 1,
            "flush.max_frames",
            "must be at least 1",
        )?;
        check(
            (1..=3_600_000).contains(&self.interval_ms),
            "flush.interval_ms",
            "must be between 1 and 3600000",
        )?;
        check(
            (1..=3_600_000).contains(&self.commit_failure_timeout_ms),
            "flush.commit_failure_timeout_ms",
            "must be between 1 and 3600000",
        )
    }
}
