//! The `kafka-actors` binary: `run` the service; `chaos` and `compare` hand over to the
//! `kafka-actors-lab` binary.

use clap::Parser;
use kafka_actors::cli::{run_command, run_lab_tool, Cli, Command};

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run_command(args),
        Command::Compare(tool) => run_lab_tool("compare", tool.args),
        Command::Chaos(tool) => run_lab_tool("chaos", tool.args),
    }
}
