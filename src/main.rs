//! The `kafka-actors` binary: `run` the service, check a static `layout`; `chaos` and
//! `compare` hand over to the `kafka-actors-lab` binary.

use clap::Parser;
use kafka_actors::cli::{layout_command, run_command, run_lab_tool, Cli, Command};

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run_command(args),
        Command::Layout(args) => layout_command(args),
        Command::Compare(tool) => run_lab_tool("compare", tool.args),
        Command::Chaos(tool) => run_lab_tool("chaos", tool.args),
    }
}
