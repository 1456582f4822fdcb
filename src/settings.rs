//! Settings: what the service runs with, layered with the `config` crate.
//!
//! Precedence, lowest first: built-in defaults < `config/default.toml` (if present) <
//! `--config FILE` < environment variables (`KAFKA_ACTORS__SECTION__KEY`, for example
//! `KAFKA_ACTORS__KAFKA__BROKERS`) < command-line flags. Unknown keys and invalid values fail
//! at start with a message naming the key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use actors::config::{
    ConfigError, EmbeddedConfig, FlushConfig, FrameConfig, GeneratorConfig, GroupConfig,
    KafkaConfig, MetricsConfig, PartitionConfig, SinkConfig, SupervisorConfig, WindowConfig,
};
use config::{Config, Environment, File, FileFormat};
use serde::{Deserialize, Serialize};

/// Prefix of environment variables that override settings.
pub const ENV_PREFIX: &str = "KAFKA_ACTORS";

/// Stopping on a signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// After the first SIGTERM or Ctrl-C, intake stops and closed windows are written and
    /// committed within this many milliseconds; past it the service exits with an error and
    /// commits nothing further (what was written and not committed is read again by the next
    /// run). A second signal exits at once.
    pub timeout_ms: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig { timeout_ms: 30_000 }
    }
}

/// How a run ends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Consume every partition to its end, close and emit every window, commit, and exit.
    pub until_end: bool,
    /// With `until_end`: leave the windows the watermark has not closed open (not written, and
    /// the committed offsets stop before their frames), so that a later run over more input
    /// completes them exactly. Off: every window is written at the end, the last ones with
    /// only the frames read so far, and a later run counts the rest of those windows as late.
    pub keep_open_windows: bool,
    /// Stop gracefully after this long (`30s`, `5m`); empty runs until stopped.
    pub stop_after: String,
}

impl RunConfig {
    /// `stop_after` as a duration.
    ///
    /// # Errors
    /// If it is not a duration.
    pub fn stop_after(&self) -> Result<Option<Duration>, ConfigError> {
        if self.stop_after.trim().is_empty() {
            return Ok(None);
        }
        humantime::parse_duration(self.stop_after.trim())
            .map(Some)
            .map_err(|e| {
                ConfigError::new(
                    "run.stop_after",
                    format!("`{}` is not a duration: {e}", self.stop_after),
                )
            })
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging, always to standard error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` filter directives (`info`, `kafka_actors=debug,librdkafka=warn`); `RUST_LOG`
    /// wins when set.
    pub filter: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            filter: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// The admin HTTP endpoint: health, readiness, liveness, Prometheus metrics and status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Serve `/healthz`, `/readyz`, `/livez`, `/metrics` and `/status`.
    pub enabled: bool,
    /// The address to bind: a loopback address unless `allow_remote` is set.
    pub host: String,
    /// The port; 0 takes any free port (the log says which).
    pub port: u16,
    /// Allow binding an address other than loopback (the endpoint has no authentication:
    /// expose it only where a network policy guards it).
    pub allow_remote: bool,
    /// `/livez` fails when a partition that is being read has not polled its source for this
    /// long (milliseconds).
    pub poll_ttl_ms: u64,
    /// `/livez` fails when a flush (write, sync, commit) has run for this long (milliseconds).
    pub flush_ttl_ms: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            host: "127.0.0.1".into(),
            port: 9600,
            allow_remote: false,
            poll_ttl_ms: 60_000,
            flush_ttl_ms: 300_000,
        }
    }
}

impl AdminConfig {
    /// The address to bind.
    ///
    /// # Errors
    /// `admin.host` is not an IP address, or not a loopback one without `admin.allow_remote`.
    pub fn address(&self) -> Result<std::net::SocketAddr, ConfigError> {
        let ip: std::net::IpAddr = self.host.trim().parse().map_err(|_| {
            ConfigError::new(
                "admin.host",
                format!("`{}` is not an IP address", self.host),
            )
        })?;
        if !ip.is_loopback() && !self.allow_remote {
            return Err(ConfigError::new(
                "admin.host",
                format!(
                    "`{ip}` is not a loopback address; the endpoint has no authentication, so \
                     serving other machines needs admin.allow_remote = true"
                ),
            ));
        }
        Ok(std::net::SocketAddr::new(ip, self.port))
    }
}

/// How the service consumes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    /// The service assigns every partition to itself and manages offsets.
    #[default]
    Partition,
    /// The service subscribes; the group coordinator assigns partitions across members.
    Group,
}

impl Model {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Model::Partition => "partition",
            Model::Group => "group",
        }
    }
}

/// Everything the service runs with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// `partition` or `group` (flag --model).
    pub model: Model,
    /// Kafka connection and input.
    pub kafka: KafkaConfig,
    /// The embedded cluster (used when `kafka.brokers` is empty).
    pub embedded: EmbeddedConfig,
    /// The frame generator (embedded cluster only).
    pub generator: GeneratorConfig,
    /// Partition intake.
    pub partition: PartitionConfig,
    /// The group model.
    pub group: GroupConfig,
    /// Frame validity.
    pub frames: FrameConfig,
    /// Event-time windows.
    pub window: WindowConfig,
    /// Flushes and commits.
    pub flush: FlushConfig,
    /// Output of closed windows.
    pub sink: SinkConfig,
    /// Restarts, the stall watchdog and leader tracking.
    pub supervisor: SupervisorConfig,
    /// Metrics and the periodic summary.
    pub metrics: MetricsConfig,
    /// How a run ends.
    pub run: RunConfig,
    /// Stopping on a signal.
    pub shutdown: ShutdownConfig,
    /// Logging.
    pub log: LogConfig,
    /// The admin HTTP endpoint.
    pub admin: AdminConfig,
}

impl Settings {
    /// Checks every section.
    ///
    /// # Errors
    /// The first invalid key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.kafka.validate()?;
        self.embedded.validate()?;
        self.generator.validate()?;
        self.partition.validate()?;
        self.group.validate()?;
        self.frames.validate()?;
        self.window.validate()?;
        self.flush.validate()?;
        self.sink.validate()?;
        self.supervisor.validate()?;
        self.run.stop_after()?;
        if !(100..=3_600_000).contains(&self.shutdown.timeout_ms) {
            return Err(ConfigError::new(
                "shutdown.timeout_ms",
                "must be between 100 and 3600000",
            ));
        }
        if self.admin.enabled {
            self.admin.address()?;
            for (key, value) in [
                ("admin.poll_ttl_ms", self.admin.poll_ttl_ms),
                ("admin.flush_ttl_ms", self.admin.flush_ttl_ms),
            ] {
                if !(1_000..=86_400_000).contains(&value) {
                    return Err(ConfigError::new(key, "must be between 1000 and 86400000"));
                }
            }
        }
        if self.supervisor.stats_interval_ms > 0
            && self.supervisor.stats_interval_ms >= self.window.idle_after_ms
        {
            return Err(ConfigError::new(
                "supervisor.stats_interval_ms",
                format!(
                    "must be below window.idle_after_ms ({} ms): a partition whose leader went \
                     out of reach could otherwise count as idle before the next statistics say so",
                    self.window.idle_after_ms
                ),
            ));
        }
        if self.run.keep_open_windows && !self.run.until_end {
            return Err(ConfigError::new(
                "run.keep_open_windows",
                "applies to a run to the end (run.until_end, --until-end) only",
            ));
        }
        if self.run.keep_open_windows && self.model == Model::Group {
            return Err(ConfigError::new(
                "run.keep_open_windows",
                "is for the partition model: a group member finishes once the group has \
                 committed every partition to its end, which open windows would hold back",
            ));
        }
        let selection = self.kafka.selection()?;
        if !selection.is_all() {
            let key = if self.kafka.instance.trim().is_empty() {
                "kafka.partitions"
            } else {
                "kafka.instance"
            };
            if self.model == Model::Group {
                return Err(ConfigError::new(
                    key,
                    "is for the partition model; in the group model the coordinator assigns the partitions",
                ));
            }
            if !self.sink.label_partitions {
                return Err(ConfigError::new(
                    "sink.label_partitions",
                    format!(
                        "must be on when {key} reads only some partitions: an unlabelled line would pass for a total"
                    ),
                ));
            }
        }
        if self.sink.exactly_once && self.kafka.embedded() {
            return Err(ConfigError::new(
                "sink.exactly_once",
                "needs a Kafka cluster (kafka.brokers): the embedded cluster (librdkafka's mock) \
                 neither keeps the offsets sent to a transaction nor hides aborted records, so \
                 it cannot honour exactly once",
            ));
        }
        if self.sink.exactly_once
            && self
                .kafka
                .properties
                .get("isolation.level")
                .is_some_and(|level| level != "read_committed")
        {
            return Err(ConfigError::new(
                "kafka.properties.isolation.level",
                "must be read_committed with sink.exactly_once: the committed offsets are read \
                 only once no transaction holding newer ones is open (KIP-447)",
            ));
        }
        if self.run.until_end && self.kafka.embedded() && self.generator.frames == 0 {
            return Err(ConfigError::new(
                "generator.frames",
                "must be set (above 0) with --until-end on the embedded cluster, or the input never ends",
            ));
        }
        Ok(())
    }
}

/// Values given on the command line; they override every other source.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--brokers`.
    pub brokers: Option<String>,
    /// `--topic`, once per input topic.
    pub topics: Vec<String>,
    /// `--instance`.
    pub instance: Option<String>,
    /// `--group`.
    pub group: Option<String>,
    /// `--for`.
    pub stop_after: Option<String>,
    /// `--until-end`.
    pub until_end: bool,
    /// `--keep-open`.
    pub keep_open_windows: bool,
    /// `--model`.
    pub model: Option<Model>,
}

/// Settings that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A source could not be read or a value has the wrong type.
    #[error("cannot load settings: {0}")]
    Load(#[from] config::ConfigError),
    /// A key that no section has.
    #[error("unknown setting `{0}`")]
    UnknownKey(String),
    /// A value that is out of range or inconsistent.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

/// Where the settings come from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The defaults file; `config/default.toml` when `None`.
    pub default_file: Option<PathBuf>,
    /// `--config FILE`.
    pub config_file: Option<PathBuf>,
    /// Environment to read instead of the process environment (tests).
    pub env: Option<HashMap<String, String>>,
    /// Command-line values.
    pub overrides: Overrides,
}

/// Loads and validates the settings.
///
/// # Errors
/// A source that cannot be read, an unknown key, or an invalid value, each naming the key.
pub fn load(sources: &Sources) -> Result<Settings, SettingsError> {
    let default_file = sources
        .default_file
        .clone()
        .unwrap_or_else(|| PathBuf::from("config/default.toml"));
    let mut builder = Config::builder().add_source(file(&default_file).required(false));
    if let Some(path) = &sources.config_file {
        builder = builder.add_source(file(path).required(true));
    }
    let env = Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        .list_separator(",")
        .with_list_parse_key("kafka.topics")
        .source(sources.env.clone());
    builder = builder.add_source(env);
    let o = &sources.overrides;
    for (key, value) in [
        ("kafka.brokers", &o.brokers),
        ("kafka.instance", &o.instance),
        ("kafka.group", &o.group),
        ("run.stop_after", &o.stop_after),
    ] {
        builder = builder.set_override_option(key, value.clone())?;
    }
    if !o.topics.is_empty() {
        // The flags name the input: they replace both keys of the other sources.
        builder = builder
            .set_override("kafka.topic", "")?
            .set_override("kafka.topics", o.topics.clone())?;
    }
    if let Some(model) = o.model {
        builder = builder.set_override("model", model.as_str())?;
    }
    if o.until_end {
        builder = builder.set_override("run.until_end", true)?;
    }
    if o.keep_open_windows {
        builder = builder.set_override("run.keep_open_windows", true)?;
    }
    let config = builder.build()?;
    reject_unknown_keys(&config)?;
    let settings: Settings = config.try_deserialize()?;
    settings.validate()?;
    Ok(settings)
}

fn file(path: &Path) -> File<config::FileSourceFile, FileFormat> {
    File::from(path).format(FileFormat::Toml)
}

/// Walks the loaded keys against the known ones so an unknown key is reported with its full
/// path (serde alone names only the last segment).
fn reject_unknown_keys(config: &Config) -> Result<(), SettingsError> {
    let loaded: serde_json::Value = config.clone().try_deserialize()?;
    let known = serde_json::to_value(Settings::default())
        .map_err(|e| SettingsError::UnknownKey(e.to_string()))?;
    fn walk(
        loaded: &serde_json::Value,
        known: &serde_json::Value,
        path: &str,
    ) -> Result<(), SettingsError> {
        let (Some(loaded), Some(known)) = (loaded.as_object(), known.as_object()) else {
            return Ok(());
        };
        for (key, value) in loaded {
            let full = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            match known.get(key) {
                // Free-form librdkafka properties, and partitions by topic name.
                Some(_)
                    if full == "kafka.properties"
                        || full == "kafka.partitions"
                        || full == "sink.properties" => {}
                Some(known) => walk(value, known, &full)?,
                None => return Err(SettingsError::UnknownKey(full)),
            }
        }
        Ok(())
    }
    walk(&loaded, &known, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(
        toml: Option<&str>,
        env: &[(&str, &str)],
    ) -> (Sources, Option<tempfile::NamedTempFile>) {
        let file = toml.map(|text| {
            let f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
            std::fs::write(f.path(), text).unwrap();
            f
        });
        let sources = Sources {
            default_file: Some(PathBuf::from("/nonexistent/default.toml")),
            config_file: file.as_ref().map(|f| f.path().to_owned()),
            env: Some(
                env.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            overrides: Overrides::default(),
        };
        (sources, file)
    }

    #[test]
    fn layers_file_env_and_flags_in_order() {
        let (mut s, _f) = sources(
            Some("[kafka]\ntopic = \"from-file\"\ngroup = \"g-file\"\n[window]\nlength_secs = 30\n[kafka.properties]\n\"fetch.wait.max.ms\" = \"50\"\n"),
            &[("KAFKA_ACTORS__KAFKA__GROUP", "g-env"), ("KAFKA_ACTORS__WINDOW__LATENESS_SECS", "7"), ("KAFKA_ACTORS__KAFKA__BROKERS", "h1:9092,h2:9092")],
        );
        let settings = load(&s).unwrap();
        assert_eq!(settings.kafka.topic, "from-file");
        assert_eq!(settings.kafka.group, "g-env", "env beats the file");
        assert_eq!(settings.window.length_secs, 30);
        assert_eq!(settings.window.lateness_secs, 7, "nested env override");
        assert_eq!(settings.kafka.brokers, "h1:9092,h2:9092");
        assert_eq!(settings.kafka.properties["fetch.wait.max.ms"], "50");
        s.overrides.group = Some("g-flag".into());
        s.overrides.until_end = true;
        s.overrides.stop_after = Some("30s".into());
        let settings = load(&s).unwrap();
        assert_eq!(settings.kafka.group, "g-flag", "flags beat env");
        assert!(settings.run.until_end);
        assert_eq!(
            settings.run.stop_after().unwrap(),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn input_topics_come_from_either_key_the_environment_or_repeated_flags() {
        let (s, _f) = sources(None, &[]);
        assert_eq!(load(&s).unwrap().kafka.topic_names(), ["frames"]);
        let (s, _f) = sources(Some("[kafka]\ntopics = [\"Clicks.v2\", \"views\"]\n"), &[]);
        assert_eq!(
            load(&s).unwrap().kafka.topic_names(),
            ["Clicks.v2", "views"]
        );
        let (s, _f) = sources(None, &[("KAFKA_ACTORS__KAFKA__TOPICS", "a,b")]);
        assert_eq!(load(&s).unwrap().kafka.topic_names(), ["a", "b"]);
        // Flags replace both keys of the other sources.
        let (mut s, _f) = sources(Some("[kafka]\ntopic = \"from-file\"\n"), &[]);
        s.overrides.topics = vec!["x".into(), "y".into()];
        assert_eq!(load(&s).unwrap().kafka.topic_names(), ["x", "y"]);
        let (s, _f) = sources(Some("[kafka]\ntopic = \"a\"\ntopics = [\"b\"]\n"), &[]);
        let error = load(&s).unwrap_err().to_string();
        assert!(
            error.contains("kafka.topics") && error.contains("not both"),
            "{error}"
        );
        let (s, _f) = sources(Some("[kafka]\ntopics = [\"a\", \"a\"]\n"), &[]);
        assert!(load(&s).unwrap_err().to_string().contains("listed twice"));
        let (s, _f) = sources(Some("[kafka]\ntopics = [\"a b\"]\n"), &[]);
        assert!(load(&s).unwrap_err().to_string().contains("kafka.topics"));
    }

    #[test]
    fn partition_subsets_are_for_the_partition_model_and_need_labelled_lines() {
        let (s, _f) = sources(
            Some("[kafka]\ntopics = [\"Frames\", \"b\"]\n[kafka.partitions]\nFrames = \"0-3,8\"\n"),
            &[],
        );
        let settings = load(&s).unwrap();
        assert_eq!(
            settings.kafka.selection().unwrap(),
            actors::layout::Selection::Listed(std::collections::BTreeMap::from([(
                actors::topic::Topic::new("Frames"),
                vec![0, 1, 2, 3, 8]
            )]))
        );
        let (s, _f) = sources(Some("[kafka.partitions]\nframez = \"0\"\n"), &[]);
        let error = load(&s).unwrap_err().to_string();
        assert!(error.contains("kafka.partitions.framez"), "{error}");
        let (mut s, _f) = sources(None, &[]);
        s.overrides.instance = Some("1/3".into());
        assert_eq!(
            load(&s).unwrap().kafka.selection().unwrap(),
            actors::layout::Selection::Instance { index: 1, count: 3 }
        );
        s.overrides.model = Some(Model::Group);
        let error = load(&s).unwrap_err().to_string();
        assert!(
            error.contains("kafka.instance") && error.contains("partition model"),
            "{error}"
        );
        let (mut s, _f) = sources(None, &[("KAFKA_ACTORS__SINK__LABEL_PARTITIONS", "false")]);
        s.overrides.instance = Some("0/2".into());
        let error = load(&s).unwrap_err().to_string();
        assert!(error.contains("sink.label_partitions"), "{error}");
        s.overrides.instance = Some("2/2".into());
        let error = load(&s).unwrap_err().to_string();
        assert!(error.contains("kafka.instance"), "{error}");
    }

    #[test]
    fn leader_statistics_must_come_more_often_than_a_partition_turns_idle() {
        let (s, _f) = sources(
            Some("[supervisor]\nstats_interval_ms = 5000\n[window]\nidle_after_ms = 5000\n"),
            &[],
        );
        let error = load(&s).unwrap_err().to_string();
        assert!(error.contains("supervisor.stats_interval_ms"), "{error}");
        let (s, _f) = sources(
            Some("[supervisor]\nstats_interval_ms = 0\n[window]\nidle_after_ms = 100\n"),
            &[],
        );
        assert!(load(&s).is_ok(), "statistics off");
    }

    #[test]
    fn keeping_windows_open_is_for_a_run_to_the_end_of_the_partition_model() {
        let (mut s, _f) = sources(None, &[("KAFKA_ACTORS__KAFKA__BROKERS", "h:9092")]);
        s.overrides.keep_open_windows = true;
        let error = load(&s).unwrap_err().to_string();
        assert!(
            error.contains("run.keep_open_windows") && error.contains("until_end"),
            "{error}"
        );
        s.overrides.until_end = true;
        assert!(load(&s).unwrap().run.keep_open_windows);
        s.overrides.model = Some(Model::Group);
        let error = load(&s).unwrap_err().to_string();
        assert!(
            error.contains("run.keep_open_windows") && error.contains("partition model"),
            "{error}"
        );
    }

    #[test]
    fn unknown_keys_fail_with_their_full_path() {
        let (s, _f) = sources(Some("[window]\nlenght_secs = 30\n"), &[]);
        let error = load(&s).unwrap_err().to_string();
        assert!(error.contains("window.lenght_secs"), "{error}");
        let (s, _f) = sources(Some("[windows]\nlength_secs = 30\n"), &[]);
        assert!(load(&s).unwrap_err().to_string().contains("`windows`"));
        let (s, _f) = sources(None, &[("KAFKA_ACTORS__FLUSH__MAX_FRAMEZ", "1")]);
        let error = load(&s).unwrap_err().to_string();
        assert!(error.contains("flush.max_framez"), "{error}");
    }

    #[test]
    fn invalid_values_fail_naming_the_key() {
        let (s, _f) = sources(Some("[window]\nlength_secs = \"a minute\"\n"), &[]);
        let error = load(&s).unwrap_err().to_string();
        assert!(error.contains("window.length_secs"), "{error}");
        let (s, _f) = sources(None, &[("KAFKA_ACTORS__WINDOW__LENGTH_SECS", "0")]);
        let error = load(&s).unwrap_err().to_string();
        assert!(error.contains("window.length_secs"), "{error}");
        let (s, _f) = sources(None, &[("KAFKA_ACTORS__SINK__KIND", "kafak")]);
        let error = load(&s).unwrap_err().to_string();
        assert!(error.contains("sink.kind"), "{error}");
        let (mut s, _f) = sources(None, &[]);
        s.overrides.stop_after = Some("soon".into());
        let error = load(&s).unwrap_err().to_string();
        assert!(error.contains("run.stop_after"), "{error}");
        let (mut s, _f) = sources(None, &[]);
        s.overrides.until_end = true;
        let error = load(&s).unwrap_err().to_string();
        assert!(error.contains("generator.frames"), "{error}");
    }

    #[test]
    fn secrets_do_not_appear_in_errors_or_debug_output() {
        let (s, _f) = sources(
            Some(
                "[kafka.properties]\n\"sasl.password\" = \"hunter2\"\n[window]\nlength_secs = -1\n",
            ),
            &[],
        );
        let error = load(&s).unwrap_err().to_string();
        assert!(!error.contains("hunter2"), "{error}");
        let (s, _f) = sources(
            Some("[kafka.properties]\n\"sasl.password\" = \"hunter2\"\n"),
            &[],
        );
        let settings = load(&s).unwrap();
        assert!(!format!("{settings:?}").contains("hunter2"));
        let (s, _f) = sources(
            Some("[sink.properties]\n\"sasl.password\" = \"hunter2\"\n"),
            &[],
        );
        let settings = load(&s).unwrap();
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

    #[test]
    fn the_kafka_sink_and_exactly_once_are_checked_naming_the_key() {
        let kafka_sink = [
            ("KAFKA_ACTORS__KAFKA__BROKERS", "h:9092"),
            ("KAFKA_ACTORS__SINK__KIND", "kafka"),
        ];
        let (s, _f) = sources(None, &kafka_sink);
        let error = load(&s).unwrap_err().to_string();
        assert!(error.contains("sink.topic"), "{error}");
        let with_topic = [
            kafka_sink.as_slice(),
            &[("KAFKA_ACTORS__SINK__TOPIC", "out")],
        ]
        .concat();
        let (s, _f) = sources(None, &with_topic);
        assert_eq!(load(&s).unwrap().sink.topic, "out");
        // Exactly once needs the Kafka sink, and a Kafka cluster.
        let (s, _f) = sources(None, &[("KAFKA_ACTORS__SINK__EXACTLY_ONCE", "true")]);
        let error = load(&s).unwrap_err().to_string();
        assert!(
            error.contains("sink.exactly_once") && error.contains("kafka"),
            "{error}"
        );
        let embedded = [
            ("KAFKA_ACTORS__SINK__KIND", "kafka"),
            ("KAFKA_ACTORS__SINK__TOPIC", "out"),
            ("KAFKA_ACTORS__SINK__EXACTLY_ONCE", "true"),
        ];
        let (s, _f) = sources(None, &embedded);
        let error = load(&s).unwrap_err().to_string();
        assert!(
            error.contains("sink.exactly_once") && error.contains("embedded"),
            "{error}"
        );
        let (s, _f) = sources(
            Some(
                "[sink]\nexactly_once = true\n[kafka.properties]\n\"isolation.level\" = \"read_uncommitted\"\n",
            ),
            &with_topic,
        );
        let error = load(&s).unwrap_err().to_string();
        assert!(error.contains("isolation.level"), "{error}");
        // The guarantee's own producer properties cannot be overridden.
        let (s, _f) = sources(Some("[sink.properties]\nacks = \"1\"\n"), &with_topic);
        let error = load(&s).unwrap_err().to_string();
        assert!(error.contains("sink.properties.acks"), "{error}");
        let (s, _f) = sources(
            Some("[sink]\nexactly_once = true\ndelivery_timeout_ms = 20000\n"),
            &with_topic,
        );
        let error = load(&s).unwrap_err().to_string();
        assert!(error.contains("sink.delivery_timeout_ms"), "{error}");
        let (s, _f) = sources(Some("[sink.dead_letter]\nmax_share = 1.5\n"), &[]);
        let error = load(&s).unwrap_err().to_string();
        assert!(error.contains("sink.dead_letter.max_share"), "{error}");
    }

    #[test]
    fn the_shipped_default_file_lists_every_key_with_the_built_in_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
        let from_file: Settings = Config::builder()
            .add_source(file(&path).required(true))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        assert_eq!(from_file, Settings::default());
        // Every key is written out, not left to the defaults.
        let table: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        let known = serde_json::to_value(Settings::default()).unwrap();
        for (section, keys) in known.as_object().unwrap() {
            let Some(keys) = keys.as_object() else {
                assert!(
                    table.contains_key(section),
                    "config/default.toml lacks {section}"
                );
                continue;
            };
            let written = table.get(section).and_then(|t| t.as_table());
            for key in keys.keys() {
                assert!(
                    written.is_some_and(|t| t.contains_key(key)),
                    "config/default.toml lacks {section}.{key}"
                );
            }
        }
    }

    #[test]
    fn the_admin_endpoint_binds_loopback_unless_remote_access_is_asked_for() {
        let mut settings = Settings::default();
        assert_eq!(
            settings.admin.address().unwrap(),
            "127.0.0.1:9600".parse().unwrap()
        );
        settings.admin.host = "0.0.0.0".into();
        let error = settings.validate().unwrap_err();
        assert_eq!(error.key, "admin.host");
        assert!(error.to_string().contains("admin.allow_remote"), "{error}");
        settings.admin.allow_remote = true;
        assert!(settings.validate().is_ok());
        settings.admin.host = "localhost".into();
        assert_eq!(settings.validate().unwrap_err().key, "admin.host");
        // Off: its address is not checked.
        settings.admin.enabled = false;
        assert!(settings.validate().is_ok());
        settings.shutdown.timeout_ms = 0;
        assert_eq!(settings.validate().unwrap_err().key, "shutdown.timeout_ms");
    }
}
