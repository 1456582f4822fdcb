//! `[embedded]` and `[generator]`: the in-process cluster and the frames written to it when
//! no brokers are configured.

use serde::{Deserialize, Serialize};

use super::error::{check, ConfigError};

/// The in-process cluster started when `kafka.brokers` is empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddedConfig {
    /// Number of brokers in the embedded cluster.
    pub brokers: i32,
    /// Partitions of the input topic it creates.
    pub partitions: i32,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            brokers: 3,
            partitions: 8,
        }
    }
}

impl EmbeddedConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// The first invalid key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(
            (1..=16).contains(&self.brokers),
            "embedded.brokers",
            "must be between 1 and 16",
        )?;
        check(
            (1..=256).contains(&self.partitions),
            "embedded.partitions",
            "must be between 1 and 256",
        )
    }
}

/// The frame generator that feeds the embedded cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeneratorConfig {
    /// Frames produced per second of wall time; 0 produces as fast as the cluster accepts.
    pub rate: u64,
    /// Frames to produce in all; 0 produces until the service stops.
    pub frames: u64,
    /// Number of distinct user ids frames are drawn from.
    pub users: u64,
    /// Frames are out of order by up to this many seconds of event time (keep it at most
    /// `window.lateness_secs`, or frames become late).
    pub jitter_secs: f64,
    /// Share of frames that are deliberately invalid, cycling through every kind of bad frame.
    pub bad_ratio: f64,
    /// Seed of the pseudo-random choices: the same seed gives the same data.
    pub seed: u64,
    /// Event seconds advance by one every this many frames; 0 stamps frames with the wall clock.
    pub event_rate: f64,
    /// First event time (epoch seconds) when `event_rate` is set; 0 means now.
    pub start_ts: f64,
    /// If set, the generator writes the exact expected windows here (JSON lines, the sink's
    /// format) when it finishes.
    pub truth_file: String,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            rate: 5_000,
            frames: 0,
            users: 10_000,
            jitter_secs: 3.0,
            bad_ratio: 0.0,
            seed: 42,
            event_rate: 0.0,
            start_ts: 0.0,
            truth_file: String::new(),
        }
    }
}

impl GeneratorConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// The first invalid key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(self.users >= 1, "generator.users", "must be at least 1")?;
        check(
            self.jitter_secs.is_finite() && self.jitter_secs >= 0.0,
            "generator.jitter_secs",
            "must be a non-negative number",
        )?;
        check(
            (0.0..=1.0).contains(&self.bad_ratio),
            "generator.bad_ratio",
            "must be between 0 and 1",
        )?;
        check(
            self.event_rate.is_finite() && self.event_rate >= 0.0,
            "generator.event_rate",
            "must be a non-negative number",
        )?;
        check(
            self.start_ts.is_finite() && self.start_ts >= 0.0,
            "generator.start_ts",
            "must be a non-negative number",
        )
    }
}
