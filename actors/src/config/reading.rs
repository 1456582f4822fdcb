//! `[partition]` and `[frames]`: how a partition is read, and what makes a frame valid.

use serde::{Deserialize, Serialize};

use super::error::{check, ConfigError};
use crate::frame::FrameLimits;

/// Intake of one partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PartitionConfig {
    /// Most frames a partition actor sends onward in one chunk.
    pub chunk_max_frames: usize,
    /// How long one poll waits for the first record of a chunk, in milliseconds.
    pub poll_timeout_ms: u64,
    /// At most one log line per partition per this many milliseconds about invalid frames.
    pub invalid_log_interval_ms: u64,
    /// Records librdkafka prefetches for the whole process, shared among the topic's
    /// partitions (`queued.min.messages`, at least 100 per partition).
    pub prefetch_frames: u64,
    /// Bytes librdkafka prefetches for the whole process, in MiB, shared among the topic's
    /// partitions (`queued.max.messages.kbytes`, at least 64 KiB per partition).
    pub prefetch_mib: u64,
    /// Threads the partition actors run on (they never block; parsing is the work).
    pub threads: usize,
}

impl Default for PartitionConfig {
    fn default() -> Self {
        PartitionConfig {
            chunk_max_frames: 2_000,
            poll_timeout_ms: 100,
            invalid_log_interval_ms: 1_000,
            prefetch_frames: 20_000,
            prefetch_mib: 64,
            threads: 2,
        }
    }
}

impl PartitionConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// The first invalid key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(
            (1..=1_000_000).contains(&self.chunk_max_frames),
            "partition.chunk_max_frames",
            "must be between 1 and 1000000",
        )?;
        check(
            (1..=10_000).contains(&self.poll_timeout_ms),
            "partition.poll_timeout_ms",
            "must be between 1 and 10000",
        )?;
        check(
            (1..=10_000_000).contains(&self.prefetch_frames),
            "partition.prefetch_frames",
            "must be between 1 and 10000000",
        )?;
        check(
            (1..=65_536).contains(&self.prefetch_mib),
            "partition.prefetch_mib",
            "must be between 1 and 65536",
        )?;
        check(
            (1..=64).contains(&self.threads),
            "partition.threads",
            "must be between 1 and 64",
        )
    }
}

/// What makes a frame valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FrameConfig {
    /// Largest accepted payload in bytes.
    pub max_bytes: usize,
    /// Smallest plausible `ts` (epoch seconds); default 2000-01-01.
    pub min_ts: f64,
    /// Largest plausible `ts` (epoch seconds); default 2100-01-01.
    pub max_ts: f64,
    /// Frames whose `ts` is more than this many seconds ahead of the wall clock when they are
    /// read are invalid (`future_ts`); replays of the past stay valid. 0: no limit.
    pub max_future_secs: u64,
}

impl Default for FrameConfig {
    fn default() -> Self {
        FrameConfig {
            max_bytes: 4_096,
            min_ts: 946_684_800.0,
            max_ts: 4_102_444_800.0,
            max_future_secs: 300,
        }
    }
}

/// The largest `frames.max_ts`: a day before the end of year 9999, so that every window start
/// and end (windows are at most a day long) is a time RFC 3339 can write.
pub const MAX_TS_LIMIT: f64 = 253_402_300_799.0 - 86_400.0;

impl FrameConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// The first invalid key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(
            (16..=1 << 20).contains(&self.max_bytes),
            "frames.max_bytes",
            "must be between 16 and 1048576",
        )?;
        check(
            self.min_ts.is_finite() && self.min_ts >= 0.0,
            "frames.min_ts",
            "must be a non-negative number",
        )?;
        check(
            self.max_ts.is_finite() && self.max_ts > self.min_ts,
            "frames.max_ts",
            "must be a number above frames.min_ts",
        )?;
        check(
            self.max_ts <= MAX_TS_LIMIT,
            "frames.max_ts",
            &format!(
                "must be at most {MAX_TS_LIMIT} (9999-12-30): later window starts cannot be written"
            ),
        )
    }

    /// The limits frames are checked against.
    pub fn limits(&self) -> FrameLimits {
        let max_future_secs = match self.max_future_secs {
            0 => f64::INFINITY,
            secs => secs as f64,
        };
        FrameLimits {
            max_bytes: self.max_bytes,
            min_ts: self.min_ts,
            max_ts: self.max_ts,
            max_future_secs,
            future_after: f64::INFINITY,
            invalid: crate::frame::InvalidPolicy::default(),
        }
        .at(crate::clock::now_epoch_secs())
    }
}
