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
