//! Configuration of the actor system, one struct per concern. These are plain serde structs: the
//! service layers files, environment and flags on top of the defaults written here, and every
//! section is validated at start by [`validate`](KafkaConfig::validate) so a bad value fails
//! with the key it came from.
//!
//! `config/default.toml` in the repository lists every key with the same defaults; a test keeps
//! the two in step.
//!
//! One file per section: [`kafka`](KafkaConfig), [`embedded`](EmbeddedConfig) and the
//! generator, [`reading`](PartitionConfig) (partitions and frames), [`windows`](WindowConfig)
//! (windows and flushes), [`supervision`](SupervisorConfig), [`sink`](SinkConfig),
//! [`group`](GroupConfig); [`ConfigError`] names the key of a bad value.

use serde::{Deserialize, Serialize};

mod embedded;
mod error;
mod group;
mod kafka;
mod reading;
mod secrets;
mod sink;
mod supervision;
#[cfg(test)]
mod tests;
mod windows;

pub use embedded::{EmbeddedConfig, GeneratorConfig};
pub use error::ConfigError;
pub use group::{Assignment, GroupConfig};
pub use kafka::{KafkaConfig, OffsetReset, OutOfRange, DEFAULT_TOPIC};
pub use reading::{FrameConfig, PartitionConfig, MAX_TS_LIMIT};
pub use secrets::is_secret_property;
pub use sink::{DeadLetterConfig, SinkConfig, SinkKind};
pub use supervision::SupervisorConfig;
pub use windows::{FlushConfig, WindowConfig};

/// Metrics and the periodic summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Log a one-line summary this often (milliseconds); 0 disables it.
    pub log_interval_ms: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            log_interval_ms: 10_000,
        }
    }
}
