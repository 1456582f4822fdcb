//! The command line: `kafka-actors run [flags]`. Flags override every other settings source.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::settings::{Model, Overrides};

/// Consume Kafka topics as an actor system: exact unique users per event-time window.
#[derive(Debug, Parser)]
#[command(name = "kafka-actors", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service. Without brokers it starts an embedded cluster and a frame generator.
    Run(RunArgs),
    /// Run the partition model and the group model on the same data, side by side.
    Compare(CompareArgs),
    /// Run fault scenarios (on the embedded cluster, or a real one with --brokers) and check
    /// them against the ground truth.
    Chaos(ChaosArgs),
}

/// Flags of `chaos`.
#[derive(Debug, Args)]
pub struct ChaosArgs {
    /// Settings file layered over config/default.toml (the scenarios set windows, flushes,
    /// sink and supervision themselves).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A scenario to run (repeatable), or `all`.
    #[arg(long = "scenario", value_name = "NAME|all", default_value = "all")]
    pub scenarios: Vec<String>,
    /// The model to run them with; both when not given.
    #[arg(long, value_enum)]
    pub model: Option<Model>,
    /// Kafka bootstrap brokers: run on this cluster (a fresh topic per scenario, replication
    /// factor 3) instead of the embedded one.
    #[arg(long, value_name = "HOST:PORT[,..]")]
    pub brokers: Option<String>,
    /// With --brokers: a command that kills, restarts and moves leaders between brokers
    /// (`CMD kill N|all`, `CMD restart N|all`, `CMD move-leader TOPIC PARTITION N`), such as
    /// tests/kafka/cluster. Without it the broker-fault scenarios are skipped.
    #[arg(long, value_name = "CMD", requires = "brokers")]
    pub control: Option<PathBuf>,
    /// Frames of each scenario's data set (produced over about six seconds).
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1_000..=600_000))]
    pub frames: u64,
    /// Directory for chaos.json and every scenario's windows (default: a new directory
    /// `chaos-<time>` here).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Flags of `compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Settings file layered over config/default.toml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Kafka bootstrap brokers; without them the embedded cluster is used. The data set is
    /// produced into `kafka.topic`, which should be empty.
    #[arg(long, value_name = "HOST:PORT[,..]")]
    pub brokers: Option<String>,
    /// Frames in the data set.
    #[arg(long, default_value_t = 200_000)]
    pub frames: u64,
    /// Partitions of the topic (embedded cluster).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(i32).range(1..=256))]
    pub partitions: i32,
    /// Runs of each model, alternating.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,
    /// Directory for report.json, chart.svg and the windows of every run (default: a new
    /// directory `compare-<time>` here).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

impl CompareArgs {
    /// The settings these flags override.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            brokers: self.brokers.clone(),
            ..Overrides::default()
        }
    }
}

/// Flags of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Settings file layered over config/default.toml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Kafka bootstrap brokers (HOST:PORT[,..]); without them the embedded cluster is used.
    #[arg(long, value_name = "HOST:PORT[,..]")]
    pub brokers: Option<String>,
    /// The input topic.
    #[arg(long)]
    pub topic: Option<String>,
    /// The consumer group that holds the offsets.
    #[arg(long)]
    pub group: Option<String>,
    /// How to consume: assign every partition (partition) or subscribe to a group (group).
    #[arg(long, value_enum)]
    pub model: Option<Model>,
    /// Stop gracefully after this long (e.g. 30s, 5m).
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    pub stop_after: Option<String>,
    /// Consume every partition to its end, emit every window, commit and exit.
    #[arg(long)]
    pub until_end: bool,
}

fn parse_duration(text: &str) -> Result<String, String> {
    humantime::parse_duration(text)
        .map(|_| text.to_owned())
        .map_err(|e| e.to_string())
}

impl RunArgs {
    /// The settings these flags override.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            brokers: self.brokers.clone(),
            topic: self.topic.clone(),
            group: self.group.clone(),
            stop_after: self.stop_after.clone(),
            until_end: self.until_end,
            model: self.model,
        }
    }
}
