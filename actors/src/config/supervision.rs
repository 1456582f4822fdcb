//! `[supervisor]`: restarts of failed partitions, when a failure stops the service, and how
//! stalls and leader changes are watched.

use serde::{Deserialize, Serialize};

use super::error::{check, ConfigError};

/// How failed partition pipelines are restarted, when a failure stops the service, and how
/// stalls and leader changes are watched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisorConfig {
    /// Wait before the first restart of a failed partition (milliseconds); each further
    /// restart within `restart_window_secs` waits twice as long as the one before.
    pub backoff_initial_ms: u64,
    /// The longest wait before a restart (milliseconds).
    pub backoff_max_ms: u64,
    /// Restarts one partition may take within `restart_window_secs`; the next failure stops
    /// the service with an error naming the partition and the cause.
    pub max_restarts: u32,
    /// The period (seconds) over which restarts are counted against `max_restarts`.
    pub restart_window_secs: u64,
    /// A partition with frames waiting (lag above 0) whose position has not moved for this
    /// long (milliseconds) is restarted from its last commit. 0 turns the watchdog off.
    pub stall_timeout_ms: u64,
    /// How often (milliseconds) librdkafka reports statistics, from which partition leaders
    /// are tracked and a partition whose leader is out of reach is kept from counting as idle
    /// (keep it well below `window.idle_after_ms`). 0 turns both off.
    pub stats_interval_ms: u64,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            backoff_initial_ms: 100,
            backoff_max_ms: 10_000,
            max_restarts: 5,
            restart_window_secs: 60,
            stall_timeout_ms: 30_000,
            stats_interval_ms: 1_000,
        }
    }
}

impl SupervisorConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// The first invalid key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(
            (1..=600_000).contains(&self.backoff_initial_ms),
            "supervisor.backoff_initial_ms",
            "must be between 1 and 600000",
        )?;
        check(
            (self.backoff_initial_ms..=3_600_000).contains(&self.backoff_max_ms),
            "supervisor.backoff_max_ms",
            "must be between supervisor.backoff_initial_ms and 3600000",
        )?;
        check(
            self.max_restarts <= 1_000,
            "supervisor.max_restarts",
            "must be at most 1000",
        )?;
        check(
            (1..=86_400).contains(&self.restart_window_secs),
            "supervisor.restart_window_secs",
            "must be between 1 and 86400",
        )?;
        check(
            self.stall_timeout_ms == 0 || (1_000..=86_400_000).contains(&self.stall_timeout_ms),
            "supervisor.stall_timeout_ms",
            "must be 0 (off) or between 1000 and 86400000",
        )?;
        check(
            self.stats_interval_ms == 0 || (100..=3_600_000).contains(&self.stats_interval_ms),
            "supervisor.stats_interval_ms",
            "must be 0 (off) or between 100 and 3600000",
        )
    }

    /// The wait before restart number `attempt` (1 for the first) within the window.
    pub fn backoff(&self, attempt: u32) -> std::time::Duration {
        let factor = 1u64 << attempt.saturating_sub(1).min(32);
        std::time::Duration::from_millis(
            self.backoff_initial_ms
                .saturating_mul(factor)
                .min(self.backoff_max_ms),
        )
    }
}
