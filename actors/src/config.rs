//! Configuration of the actor system, one struct per concern. These are plain serde structs: the
//! service layers files, environment and flags on top of the defaults written here, and every
//! section is validated at start by [`validate`](KafkaConfig::validate) so a bad value fails
//! with the key it came from.
//!
//! `config/default.toml` in the repository lists every key with the same defaults; a test keeps
//! the two in step.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::frame::FrameLimits;

/// A configuration value that cannot be used, with the key it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value for `{key}`: {reason}")]
pub struct ConfigError {
    /// Dotted key, as written in the TOML file (`window.length_secs`).
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    /// An error for `key`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

fn check(ok: bool, key: &str, reason: &str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(key, reason))
    }
}

/// Where a partition starts when its group has no committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OffsetReset {
    /// The oldest retained record.
    Earliest,
    /// The end of the partition: only records produced from now on.
    Latest,
    /// Fail the partition instead of guessing.
    Error,
}

impl OffsetReset {
    /// The librdkafka spelling of this policy.
    pub fn as_str(self) -> &'static str {
        match self {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
            OffsetReset::Error => "error",
        }
    }
}

/// What happens to a committed position that lies outside its partition's log: records were
/// deleted before they were read (retention, truncation), or the position lies past the end
/// (the topic was recreated, or an unclean election lost records).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutOfRange {
    /// Stop with an error naming the partition, the position and the log's bounds.
    Stop,
    /// Read on from the first offset still in the log, counting the records passed over.
    Earliest,
    /// Read on from the end of the log, counting the records passed over.
    Latest,
}

impl OutOfRange {
    /// The setting's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OutOfRange::Stop => "stop",
            OutOfRange::Earliest => "earliest",
            OutOfRange::Latest => "latest",
        }
    }
}

/// How to reach Kafka and what to consume.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `HOST:PORT[,HOST:PORT..]`. Empty: start the embedded cluster and the
    /// frame generator in-process.
    pub brokers: String,
    /// The input topic: shorthand for `topics = [topic]`. Setting both is an error; with
    /// neither set the input is the topic `frames`.
    pub topic: String,
    /// The input topics. Their frames go into the same windows; partitions are named by topic
    /// and index everywhere.
    pub topics: Vec<String>,
    /// Partition model only: the partitions of each topic this instance reads, as a list of
    /// indices and ranges (`frames = "0-3,8"`). A topic not listed is not read. Empty: every
    /// partition (or those `instance` picks).
    pub partitions: BTreeMap<String, String>,
    /// Partition model only: `i/N` reads every partition whose index is `i` modulo `N`, of
    /// every input topic, so `N` instances numbered `0..N` read each partition once. Empty:
    /// every partition (or those `partitions` lists).
    pub instance: String,
    /// Consumer group that holds the committed offsets. Empty: `kafka-actors-partition` for the
    /// partition model, `kafka-actors-group` for the group model (a group with subscribed
    /// members refuses commits from a consumer that only assigns, so the two never share one).
    pub group: String,
    /// Start position for partitions without a committed offset: earliest, latest or error.
    pub auto_offset_reset: OffsetReset,
    /// A committed position outside its partition's log (records deleted before they were
    /// read; a position past the end of a recreated or truncated topic): `stop` with an error
    /// naming the partition and the gap, or read on from the `earliest` or `latest` offset,
    /// counting and logging the records passed over. Never skipped silently.
    pub out_of_range: OutOfRange,
    /// Raw librdkafka properties passed to every client, applied after the service's own
    /// settings (for example `"fetch.wait.max.ms" = "100"` or SASL settings). Values of keys
    /// that look like secrets are never logged.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: String::new(),
            topic: String::new(),
            topics: Vec::new(),
            partitions: BTreeMap::new(),
            instance: String::new(),
            group: String::new(),
            auto_offset_reset: OffsetReset::Earliest,
            out_of_range: OutOfRange::Stop,
            properties: BTreeMap::new(),
        }
    }
}

/// The input topic when none is configured.
pub const DEFAULT_TOPIC: &str = "frames";

/// librdkafka properties the service sets itself: overriding them would break the delivery
/// guarantee, so they are rejected in `kafka.properties`.
const RESERVED_PROPERTIES: [&str; 5] = [
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.partition.eof",
    "group.id",
    "bootstrap.servers",
];

/// True for property names whose values must never reach a log line or an error: passwords
/// (misspelt ones too: `pass`), secrets, tokens, keys and PEM material, JAAS and OAUTHBEARER
/// configurations, credentials.
pub fn is_secret_property(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "pass",
        "secret",
        "token",
        "key",
        "pem",
        "jaas",
        "oauthbearer",
        "credential",
    ]
    .iter()
    .any(|word| name.contains(word))
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let properties = redacted(&self.properties);
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("topics", &self.topics)
            .field("partitions", &self.partitions)
            .field("instance", &self.instance)
            .field("group", &self.group)
            .field("auto_offset_reset", &self.auto_offset_reset)
            .field("out_of_range", &self.out_of_range)
            .field("properties", &properties)
            .finish()
    }
}

impl KafkaConfig {
    /// The input topics: `topics`, or `topic`, or `frames`.
    pub fn topic_names(&self) -> Vec<String> {
        if !self.topics.is_empty() {
            self.topics.iter().map(|t| t.trim().to_owned()).collect()
        } else if !self.topic.trim().is_empty() {
            vec![self.topic.trim().to_owned()]
        } else {
            vec![DEFAULT_TOPIC.to_owned()]
        }
    }

    /// The input topics, interned.
    pub fn input_topics(&self) -> Vec<crate::topic::Topic> {
        self.topic_names()
            .iter()
            .map(|t| crate::topic::Topic::new(t))
            .collect()
    }

    /// Which partitions of the input topics this instance reads, from `partitions` and
    /// `instance`.
    ///
    /// # Errors
    /// A range that does not parse, a topic listed that is not an input topic, an instance
    /// that is not `i/N` with `i < N`, or both keys set.
    pub fn selection(&self) -> Result<crate::layout::Selection, ConfigError> {
        crate::layout::Selection::parse(&self.partitions, &self.instance, &self.topic_names())
            .map_err(|e| ConfigError::new(e.key, e.reason))
    }

    /// True when no brokers are configured and the embedded cluster is used.
    pub fn embedded(&self) -> bool {
        self.brokers.trim().is_empty()
    }

    /// Checks every field.
    ///
    /// # Errors
    /// The first invalid key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.embedded() {
            for broker in self.brokers.split(',') {
                let broker = broker.trim();
                let valid = broker.rsplit_once(':').is_some_and(|(host, port)| {
                    !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
                });
                check(
                    valid,
                    "kafka.brokers",
                    &format!("`{broker}` is not HOST:PORT"),
                )?;
            }
        }
        check(
            self.topic.trim().is_empty() || self.topics.is_empty(),
            "kafka.topics",
            "set kafka.topic or kafka.topics, not both",
        )?;
        let key = if self.topics.is_empty() {
            "kafka.topic"
        } else {
            "kafka.topics"
        };
        let topics = self.topic_names();
        for topic in &topics {
            check_topic_name(topic, key)?;
        }
        for (i, topic) in topics.iter().enumerate() {
            check(
                !topics[..i].contains(topic),
                key,
                &format!("topic `{topic}` is listed twice"),
            )?;
        }
        self.selection()?;
        for name in self.properties.keys() {
            if RESERVED_PROPERTIES.contains(&name.as_str()) {
                return Err(ConfigError::new(
                    format!("kafka.properties.{name}"),
                    "is set by the service (use kafka.brokers / kafka.group, commits are managed)",
                ));
            }
        }
        Ok(())
    }
}

/// Kafka's rule for topic names: ASCII letters, digits, `.`, `_` and `-`, at most 249.
fn check_topic_name(topic: &str, key: &str) -> Result<(), ConfigError> {
    check(!topic.is_empty(), key, "a topic name must not be empty")?;
    check(
        topic.len() <= 249
            && topic
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
        key,
        &format!(
            "`{topic}`: Kafka topic names use only ASCII letters, digits, '.', '_' and '-' (at most 249)"
        ),
    )
}

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

/// Where closed windows go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// One JSON line per window on standard output.
    Stdout,
    /// Appended to `sink.path`, flushed and fsynced before the offsets it covers are committed.
    File,
    /// Produced to the topic `sink.topic` (`acks=all`, idempotent), acknowledged before the
    /// offsets it covers are committed; with `sink.exactly_once`, in one transaction with them.
    Kafka,
}

/// The output of closed windows.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkConfig {
    /// `stdout`, `file` or `kafka`.
    pub kind: SinkKind,
    /// File to append to when `kind = "file"`.
    pub path: String,
    /// Write the partitions each line accounts for. Without this label a line that does not
    /// cover every partition of the topic (one of several instances of the group model) would
    /// pass for a total, so the service refuses to write one and stops with an error instead.
    pub label_partitions: bool,
    /// Fault injection: wait this long (milliseconds) before every write, as a slow output
    /// would. 0 (the default) writes at once.
    pub write_delay_ms: u64,
    /// `kind = "kafka"`: the topic each closed window is produced to, as the same JSON line
    /// the other sinks write, keyed by its window start and the partitions it covers (so a
    /// compacted topic keeps the latest line of each).
    pub topic: String,
    /// Kafka sink and dead letters: bootstrap brokers of the output cluster. Empty: the
    /// input's (`kafka.brokers`); the connection and security properties of
    /// `kafka.properties` (`security.protocol`, `ssl.*`, `sasl.*`, `socket.*`, `broker.*`,
    /// `reconnect.*`, `client.dns.lookup`) then apply to the producer too.
    pub brokers: String,
    /// Kafka sink and dead letters: raw librdkafka producer properties, applied after the
    /// service's defaults and the inherited connection properties. `acks`,
    /// `enable.idempotence`, `transactional.id` and `bootstrap.servers` are the service's own
    /// and rejected here. Values of keys that look like secrets are never logged.
    pub properties: BTreeMap<String, String>,
    /// Create `topic` and `dead_letter.topic` at start when they are missing (with
    /// `topic_partitions` partitions and the brokers' default replication). Off: a missing
    /// topic stops the start with an error naming it.
    pub create_topic: bool,
    /// Partitions of a topic `create_topic` creates.
    pub topic_partitions: i32,
    /// Kafka sink and dead letters: how long one attempt at delivering a flush's records may
    /// take until every in-sync replica has acknowledged them (librdkafka
    /// `message.timeout.ms`).
    pub delivery_timeout_ms: u64,
    /// Kafka sink and dead letters: how long a flush whose records were not acknowledged (or,
    /// exactly once, whose transaction was aborted) is tried again, in milliseconds. Nothing
    /// is committed meanwhile; past it, output stops with an error naming the topic and the
    /// broker's reason.
    pub retry_timeout_ms: u64,
    /// `kind = "kafka"`: each flush produces its windows and dead letters and commits the
    /// input offsets in one Kafka transaction, so a reader with `isolation.level =
    /// read_committed` sees every window exactly once, also after a crash. Needs Apache Kafka
    /// (or a broker that keeps transactional offsets): the embedded cluster does not.
    pub exactly_once: bool,
    /// Exactly once: the producer's transactional id. Empty: derived from the model. The
    /// partition model uses `<group>.<partitions read>`, so a second instance started on the
    /// same partitions fences the first; the group model uses `<group>.<group.instance_id>`
    /// for a static member, else `<group>.<host>.<pid>.<start ms>.<n>` (the group's
    /// generation fences a member that lost its partitions). See the README.
    pub transactional_id: String,
    /// Exactly once: how long the broker lets a transaction stay open before it aborts it
    /// (librdkafka `transaction.timeout.ms`). After a crash, readers with `read_committed`
    /// and the next owner of the partitions wait up to this long for the crashed process's
    /// open transaction, unless a restart with the same transactional id aborts it first.
    /// At least `delivery_timeout_ms`.
    pub transaction_timeout_ms: u64,
    /// Dead letters: where invalid frames go.
    pub dead_letter: DeadLetterConfig,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            kind: SinkKind::Stdout,
            path: String::new(),
            label_partitions: true,
            write_delay_ms: 0,
            topic: String::new(),
            brokers: String::new(),
            properties: BTreeMap::new(),
            create_topic: false,
            topic_partitions: 1,
            delivery_timeout_ms: 10_000,
            retry_timeout_ms: 120_000,
            exactly_once: false,
            transactional_id: String::new(),
            transaction_timeout_ms: 10_000,
            dead_letter: DeadLetterConfig::default(),
        }
    }
}

impl fmt::Debug for SinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinkConfig")
            .field("kind", &self.kind)
            .field("path", &self.path)
            .field("label_partitions", &self.label_partitions)
            .field("write_delay_ms", &self.write_delay_ms)
            .field("topic", &self.topic)
            .field("brokers", &self.brokers)
            .field("properties", &redacted(&self.properties))
            .field("create_topic", &self.create_topic)
            .field("topic_partitions", &self.topic_partitions)
            .field("delivery_timeout_ms", &self.delivery_timeout_ms)
            .field("retry_timeout_ms", &self.retry_timeout_ms)
            .field("exactly_once", &self.exactly_once)
            .field("transactional_id", &self.transactional_id)
            .field("transaction_timeout_ms", &self.transaction_timeout_ms)
            .field("dead_letter", &self.dead_letter)
            .finish()
    }
}

/// Producer properties the service sets itself (the delivery guarantee depends on them).
const RESERVED_PRODUCER_PROPERTIES: [&str; 4] = [
    "acks",
    "enable.idempotence",
    "transactional.id",
    "bootstrap.servers",
];

impl SinkConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// The first invalid key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(
            self.kind != SinkKind::File || !self.path.trim().is_empty(),
            "sink.path",
            "must be set when sink.kind = \"file\"",
        )?;
        check(
            self.kind != SinkKind::Kafka || !self.topic.trim().is_empty(),
            "sink.topic",
            "must be set when sink.kind = \"kafka\"",
        )?;
        check(
            !self.exactly_once || self.kind == SinkKind::Kafka,
            "sink.exactly_once",
            "needs sink.kind = \"kafka\": only a Kafka transaction writes results and commits \
             offsets as one",
        )?;
        check(
            self.write_delay_ms <= 600_000,
            "sink.write_delay_ms",
            "must be at most 600000",
        )?;
        check(
            (1..=10_000).contains(&self.topic_partitions),
            "sink.topic_partitions",
            "must be between 1 and 10000",
        )?;
        check(
            (1_000..=900_000).contains(&self.delivery_timeout_ms),
            "sink.delivery_timeout_ms",
            "must be between 1000 and 900000",
        )?;
        check(
            (0..=86_400_000).contains(&self.retry_timeout_ms),
            "sink.retry_timeout_ms",
            "must be between 0 and 86400000",
        )?;
        check(
            (1_000..=900_000).contains(&self.transaction_timeout_ms),
            "sink.transaction_timeout_ms",
            "must be between 1000 and 900000",
        )?;
        check(
            !self.exactly_once || self.delivery_timeout_ms <= self.transaction_timeout_ms,
            "sink.delivery_timeout_ms",
            "must not exceed sink.transaction_timeout_ms with sink.exactly_once (a record may \
             not outlive its transaction)",
        )?;
        for key in self.properties.keys() {
            if RESERVED_PRODUCER_PROPERTIES.contains(&key.as_str()) {
                return Err(ConfigError::new(
                    format!("sink.properties.{key}"),
                    "is set by the service (acks=all, idempotence, transactions and brokers \
                     follow from the sink's settings)",
                ));
            }
        }
        check(
            self.transactional_id.len() <= 200,
            "sink.transactional_id",
            "must be at most 200 bytes",
        )?;
        self.dead_letter.validate()
    }

    /// Whether a producer is needed: the Kafka sink, or dead letters.
    pub fn produces(&self) -> bool {
        self.kind == SinkKind::Kafka || self.dead_letter.enabled()
    }
}

/// Dead letters: invalid frames produced unchanged to a topic of their own, with headers
/// naming where they came from and why they are invalid, instead of only being counted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeadLetterConfig {
    /// The dead-letter topic (on the output cluster: `sink.brokers`, or the input's). Empty:
    /// invalid frames are counted and skipped. With `sink.exactly_once` they go in the same
    /// transaction as the windows.
    pub topic: String,
    /// With a dead-letter topic: a partition that delivers this many invalid frames in a row
    /// stops the service with an error naming it (a producer writing another format should
    /// page someone, not fill a topic). 0: no limit.
    pub max_consecutive: u64,
    /// With a dead-letter topic: a partition where more than this share (0 to 1) of
    /// `share_of` consecutive records is invalid stops the service with an error naming it.
    /// 1: no limit.
    pub max_share: f64,
    /// The number of records `max_share` is taken over, counted in blocks per partition.
    pub share_of: u64,
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        DeadLetterConfig {
            topic: String::new(),
            max_consecutive: 1_000,
            max_share: 0.5,
            share_of: 10_000,
        }
    }
}

impl DeadLetterConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// The first invalid key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(
            (0.0..=1.0).contains(&self.max_share),
            "sink.dead_letter.max_share",
            "must be between 0 and 1",
        )?;
        check(
            (1..=100_000_000).contains(&self.share_of),
            "sink.dead_letter.share_of",
            "must be between 1 and 100000000",
        )
    }

    /// Whether invalid frames are dead-lettered.
    pub fn enabled(&self) -> bool {
        !self.topic.trim().is_empty()
    }

    /// What a partition does with invalid frames.
    pub fn policy(&self) -> crate::frame::InvalidPolicy {
        match self.enabled() {
            true => crate::frame::InvalidPolicy {
                dead_letter: true,
                max_consecutive: self.max_consecutive,
                max_share: self.max_share,
                share_of: self.share_of,
            },
            false => crate::frame::InvalidPolicy::default(),
        }
    }
}

/// Properties as `Debug` shows them: values of secret-looking keys replaced.
fn redacted(properties: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    properties
        .iter()
        .map(|(k, v)| {
            let shown = if is_secret_property(k) {
                "<redacted>"
            } else {
                v.as_str()
            };
            (k.as_str(), shown)
        })
        .collect()
}

/// How partitions are assigned to group members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Assignment {
    /// Incremental: only moved partitions stop during a rebalance.
    CooperativeSticky,
    /// Eager, range assignor: every partition is revoked at every rebalance.
    Range,
    /// Eager, round-robin assignor.
    Roundrobin,
}

impl Assignment {
    /// The librdkafka `partition.assignment.strategy` value.
    pub fn librdkafka_name(self) -> &'static str {
        match self {
            Assignment::CooperativeSticky => "cooperative-sticky",
            Assignment::Range => "range",
            Assignment::Roundrobin => "roundrobin",
        }
    }
}

/// The group model: one subscribing member, partitions assigned by the group coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupConfig {
    /// `cooperative-sticky`, `range` or `roundrobin`; every member of a group must use the same.
    pub assignment: Assignment,
    /// The coordinator drops a member it has not heard from for this long (milliseconds).
    pub session_timeout_ms: u64,
    /// A revocation must be flushed and committed within this long (milliseconds); must be
    /// below `session_timeout_ms`. With exactly-once output a revocation is waited for until
    /// it is committed, however long that takes (see the README, "Revoke").
    pub revoke_timeout_ms: u64,
    /// Static membership (`group.instance.id`): a member that restarts within the session
    /// timeout gets its partitions back without a rebalance. Empty: dynamic membership.
    pub instance_id: String,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            assignment: Assignment::CooperativeSticky,
            session_timeout_ms: 45_000,
            revoke_timeout_ms: 20_000,
            instance_id: String::new(),
        }
    }
}

impl GroupConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// The first invalid key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(
            (1_000..=3_600_000).contains(&self.session_timeout_ms),
            "group.session_timeout_ms",
            "must be between 1000 and 3600000",
        )?;
        check(
            self.revoke_timeout_ms >= 1 && self.revoke_timeout_ms < self.session_timeout_ms,
            "group.revoke_timeout_ms",
            "must be at least 1 and below group.session_timeout_ms",
        )?;
        check(
            self.instance_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
            "group.instance_id",
            "uses only ASCII letters, digits, '.', '_' and '-'",
        )
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka settings reading `topics`, with `partitions` and `instance` selecting among them.
    fn kafka(topics: &[&str], partitions: &[(&str, &str)], instance: &str) -> KafkaConfig {
        KafkaConfig {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            partitions: partitions
                .iter()
                .map(|(t, r)| (t.to_string(), r.to_string()))
                .collect(),
            instance: instance.into(),
            ..KafkaConfig::default()
        }
    }

    #[test]
    fn config_keys_are_named_when_wrong() {
        let err = |k: KafkaConfig| k.validate().unwrap_err().key;
        assert_eq!(
            err(kafka(&["a"], &[("a", "0-x")], "")),
            "kafka.partitions.a"
        );
        assert_eq!(err(kafka(&["a"], &[("b", "0")], "")), "kafka.partitions.b");
        assert_eq!(err(kafka(&["a"], &[("a", "0")], "0/2")), "kafka.instance");
        for bad in ["3/3", "1", "a/b", "0/0", "-1/2"] {
            assert_eq!(err(kafka(&["a"], &[], bad)), "kafka.instance", "{bad}");
        }
        assert_eq!(
            kafka(&["a"], &[], " 1/3 ").selection().unwrap(),
            crate::layout::Selection::Instance { index: 1, count: 3 }
        );
    }

    #[test]
    fn defaults_are_valid() {
        KafkaConfig::default().validate().unwrap();
        EmbeddedConfig::default().validate().unwrap();
        GeneratorConfig::default().validate().unwrap();
        PartitionConfig::default().validate().unwrap();
        FrameConfig::default().validate().unwrap();
        WindowConfig::default().validate().unwrap();
        FlushConfig::default().validate().unwrap();
        SinkConfig::default().validate().unwrap();
        SupervisorConfig::default().validate().unwrap();
    }

    #[test]
    fn restart_backoff_doubles_up_to_its_cap() {
        let config = SupervisorConfig {
            backoff_initial_ms: 100,
            backoff_max_ms: 1_000,
            ..SupervisorConfig::default()
        };
        let waits: Vec<u64> = (1..=6)
            .map(|attempt| config.backoff(attempt).as_millis() as u64)
            .collect();
        assert_eq!(waits, vec![100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(config.backoff(500).as_millis(), 1_000, "no overflow");
    }

    #[test]
    fn supervisor_values_name_their_key() {
        let stall = SupervisorConfig {
            stall_timeout_ms: 500,
            ..SupervisorConfig::default()
        };
        assert_eq!(
            stall.validate().unwrap_err().key,
            "supervisor.stall_timeout_ms"
        );
        let backoff = SupervisorConfig {
            backoff_initial_ms: 5_000,
            backoff_max_ms: 1_000,
            ..SupervisorConfig::default()
        };
        assert_eq!(
            backoff.validate().unwrap_err().key,
            "supervisor.backoff_max_ms"
        );
        let sink = SinkConfig {
            write_delay_ms: 700_000,
            ..SinkConfig::default()
        };
        assert_eq!(sink.validate().unwrap_err().key, "sink.write_delay_ms");
    }

    #[test]
    fn invalid_values_name_their_key() {
        let kafka = KafkaConfig {
            brokers: "localhost:9092,nohost".into(),
            ..KafkaConfig::default()
        };
        assert_eq!(kafka.validate().unwrap_err().key, "kafka.brokers");
        let kafka = KafkaConfig {
            topic: "bad topic".into(),
            ..KafkaConfig::default()
        };
        assert_eq!(kafka.validate().unwrap_err().key, "kafka.topic");
        let mut kafka = KafkaConfig::default();
        kafka
            .properties
            .insert("enable.auto.commit".into(), "true".into());
        assert_eq!(
            kafka.validate().unwrap_err().key,
            "kafka.properties.enable.auto.commit"
        );
        let window = WindowConfig {
            length_secs: 0,
            ..WindowConfig::default()
        };
        assert_eq!(window.validate().unwrap_err().key, "window.length_secs");
        let sink = SinkConfig {
            kind: SinkKind::File,
            path: String::new(),
            ..SinkConfig::default()
        };
        assert_eq!(sink.validate().unwrap_err().key, "sink.path");
        let generator = GeneratorConfig {
            bad_ratio: 1.5,
            ..GeneratorConfig::default()
        };
        assert_eq!(generator.validate().unwrap_err().key, "generator.bad_ratio");
    }

    #[test]
    fn frame_times_are_bounded_so_every_window_can_be_written() {
        let frames = FrameConfig {
            max_ts: 1e15,
            ..FrameConfig::default()
        };
        let error = frames.validate().unwrap_err();
        assert_eq!(error.key, "frames.max_ts");
        assert!(error.reason.contains("9999"), "{}", error.reason);
        let latest = FrameConfig {
            max_ts: MAX_TS_LIMIT,
            ..FrameConfig::default()
        };
        assert!(latest.validate().is_ok());
        // The latest window start and end that a frame at max_ts gives still format.
        let start = crate::frame::window_start(MAX_TS_LIMIT, 86_400);
        assert!(crate::line::rfc3339(start + 86_400).starts_with("9999-12-31"));
        // With no limit on the future, only the plausibility range applies.
        let open = FrameConfig {
            max_future_secs: 0,
            ..FrameConfig::default()
        };
        assert!(open.limits().future_after.is_infinite());
    }

    #[test]
    fn debug_output_redacts_secret_properties() {
        let mut kafka = KafkaConfig::default();
        kafka
            .properties
            .insert("sasl.password".into(), "hunter2".into());
        kafka
            .properties
            .insert("ssl.key.password".into(), "swordfish".into());
        kafka
            .properties
            .insert("fetch.wait.max.ms".into(), "50".into());
        let shown = format!("{kafka:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("swordfish"),
            "{shown}"
        );
        assert!(
            shown.contains("fetch.wait.max.ms") && shown.contains("50"),
            "{shown}"
        );
    }
}
