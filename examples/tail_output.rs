//! For `benches/sink_cost.py`: follows the service's output, a file of window lines or a Kafka
//! topic (as a `read_committed` reader), and prints each window line the moment it becomes
//! visible, with that moment: the line with `"seen_ms":T` added (T in epoch milliseconds). Stops after `--for` seconds, or with `--to-end` once a topic is
//! read to its end (then `seen_ms` is the read time).
//!
//!     cargo build --release --example tail_output
//!     target/release/examples/tail_output --brokers HOST:PORT --topic OUT --for 60
//!     target/release/examples/tail_output --file windows.jsonl --for 60

use std::io::{BufRead, Seek, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actors::line::WindowLine;
use clap::Parser;

/// Follows the windows a service writes and says when each became visible.
#[derive(Debug, Parser)]
struct Args {
    /// Kafka bootstrap brokers (with `--topic`).
    #[arg(long, requires = "topic")]
    brokers: Option<String>,
    /// The output topic to follow.
    #[arg(long)]
    topic: Option<String>,
    /// The output file to follow.
    #[arg(long, conflicts_with = "topic")]
    file: Option<std::path::PathBuf>,
    /// How long to follow, in seconds.
    #[arg(long = "for", default_value_t = 60.0)]
    seconds: f64,
    /// Read the topic to its end and stop.
    #[arg(long, requires = "topic")]
    to_end: bool,
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn print(line: &WindowLine) {
    let mut value = serde_json::to_value(line).unwrap_or_default();
    value["seen_ms"] = serde_json::Value::from(now_ms() as u64);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let until = Instant::now() + Duration::from_secs_f64(args.seconds);
    if let (Some(brokers), Some(topic)) = (&args.brokers, &args.topic) {
        let kafka = actors::config::KafkaConfig {
            brokers: brokers.clone(),
            ..actors::config::KafkaConfig::default()
        };
        if args.to_end {
            for record in actors::kafka::read_topic(&kafka, topic)? {
                if let Some(line) = record
                    .payload
                    .as_deref()
                    .and_then(|p| serde_json::from_slice::<WindowLine>(p).ok())
                {
                    print(&line);
                }
            }
            return Ok(());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let timer = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
            timer.store(true, Ordering::Relaxed);
        });
        actors::kafka::follow_topic(&kafka, topic, &stop, |record| {
            if let Some(line) = record
                .payload
                .as_deref()
                .and_then(|p| serde_json::from_slice::<WindowLine>(p).ok())
            {
                print(&line);
            }
        })?;
        return Ok(());
    }
    let path = args
        .file
        .ok_or_else(|| anyhow::anyhow!("--file or --brokers with --topic"))?;
    // Whole lines only: a line being appended is read once its newline is there.
    let mut offset = 0u64;
    let mut partial = String::new();
    while Instant::now() < until {
        if let Ok(mut file) = std::fs::File::open(&path) {
            file.seek(std::io::SeekFrom::Start(offset))?;
            let mut reader = std::io::BufReader::new(file);
            let mut text = String::new();
            loop {
                text.clear();
                let read = reader.read_line(&mut text)?;
                if read == 0 {
                    break;
                }
                offset += read as u64;
                partial.push_str(&text);
                if partial.ends_with('\n') {
                    if let Ok(line) = serde_json::from_str::<WindowLine>(partial.trim()) {
                        print(&line);
                    }
                    partial.clear();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}
