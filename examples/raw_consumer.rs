//! The floor for `benches/cost.py`: one plain librdkafka consumer with the service's own
//! fetch and prefetch tuning reads every partition of a topic from the beginning to its end
//! and only counts the records. Prints `{"records":N,"seconds":S}`.
//!
//!     cargo build --release --example raw_consumer
//!     target/release/examples/raw_consumer --brokers HOST:PORT --topic T

use std::time::Instant;

use clap::Parser;

/// Reads a topic to its end with one tuned consumer and counts the records.
#[derive(Debug, Parser)]
struct Args {
    /// Kafka bootstrap brokers.
    #[arg(long)]
    brokers: String,
    /// The topic.
    #[arg(long)]
    topic: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let defaults = actors::config::PartitionConfig::default();
    let kafka = actors::config::KafkaConfig {
        brokers: args.brokers,
        topic: args.topic,
        group: "kafka-actors-raw".to_owned(),
        ..actors::config::KafkaConfig::default()
    };
    let partitions = actors::kafka::partition_ids(&kafka)?;
    let started = Instant::now();
    let records = actors::kafka::count_to_end(&kafka, &partitions, defaults.prefetch_frames)?;
    println!(
        "{{\"records\":{records},\"seconds\":{}}}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
