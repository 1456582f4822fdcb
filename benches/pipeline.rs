//! Speed of the partition model, measured side by side with its anchors:
//! - `frames/*`: the per-frame work (parse, count into windows) without Kafka;
//! - `embedded_cluster/*`: the whole service (`run --until-end` over a pre-produced topic on
//!   the embedded cluster, fresh group each time) against plain librdkafka consumers that only
//!   count the same records: one consumer for all partitions, and one per partition on its own
//!   thread (the partition model's reading pattern without its work). The ratio to the second
//!   is the cost of the actor pipeline.
//!
//! `cargo bench --bench pipeline`; figures and their ratios go to BENCHMARKS.md.

use std::time::{Duration, Instant};

use actors::config::{GeneratorConfig, SinkKind, WindowConfig};
use actors::frame::{parse_frame, FrameChunk};
use actors::generator;
use actors::kafka::{self, EmbeddedCluster};
use actors::topic::PartitionId;
use actors::window::{PartitionStart, Windows};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use kafka_actors::Settings;

const FRAMES: u64 = 500_000;
const PARTITIONS: i32 = 8;

fn frames(c: &mut Criterion) {
    let limits = actors::config::FrameConfig::default().limits();
    let payloads: Vec<Vec<u8>> = (0..2_000)
        .map(|i| {
            format!(
                r#"{{"ts":{},"uid":"u{}"}}"#,
                1_790_000_000 + i / 100,
                (i * 7_919) % 10_000
            )
            .into_bytes()
        })
        .collect();
    let mut group = c.benchmark_group("frames");
    group.throughput(Throughput::Elements(payloads.len() as u64));
    group.bench_function("parse_2000", |b| {
        b.iter(|| {
            payloads
                .iter()
                .filter(|p| parse_frame(Some(p), &limits).is_ok())
                .count()
        })
    });
    let mut chunk = FrameChunk::with_capacity(payloads.len());
    for (offset, p) in payloads.iter().enumerate() {
        if let Ok(f) = parse_frame(Some(p), &limits) {
            chunk.push(offset as i64, f.ts, &f.uid);
        }
    }
    let window = WindowConfig::default();
    group.bench_function("count_2000", |b| {
        b.iter_batched(
            || {
                Windows::new(
                    &window,
                    &[PartitionStart {
                        partition: PartitionId::of("bench", 0),
                        next_offset: Some(0),
                        closed_below: None,
                    }],
                )
            },
            |mut w| {
                w.ingest(
                    PartitionId::of("bench", 0),
                    &chunk,
                    Some(2_000),
                    false,
                    Instant::now(),
                )
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn embedded_cluster(c: &mut Criterion) {
    let cluster = EmbeddedCluster::start(3).expect("embedded cluster");
    cluster.create_topic("bench", PARTITIONS, 3).expect("topic");
    let mut settings = Settings::default();
    settings.kafka.brokers = cluster.bootstrap_servers().to_owned();
    settings.kafka.topic = "bench".into();
    settings.run.until_end = true;
    settings.metrics.log_interval_ms = 0;
    settings.window.length_secs = 60;
    settings.sink.kind = SinkKind::File;
    settings.admin.port = 0;
    let dir = tempfile::tempdir().expect("temp dir");
    settings.sink.path = dir.path().join("windows.jsonl").display().to_string();
    let data = GeneratorConfig {
        rate: 0,
        frames: FRAMES,
        users: 10_000,
        event_rate: 2_000.0,
        start_ts: 1_790_000_000.0,
        ..GeneratorConfig::default()
    };
    let partitions: Vec<PartitionId> = (0..PARTITIONS)
        .map(|i| PartitionId::of("bench", i))
        .collect();
    let report = generator::spawn(
        &settings.kafka,
        &data,
        settings.frames.limits(),
        60,
        partitions.clone(),
        false,
    )
    .expect("generator")
    .wait()
    .expect("generator run");
    assert_eq!(report.delivered, FRAMES);
    // The anchors read with the same librdkafka tuning as the service's partition readers.
    let prefetch = settings.partition.prefetch_frames;

    let mut group = c.benchmark_group("embedded_cluster");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(40))
        .throughput(Throughput::Elements(FRAMES));
    let mut round = 0u32;
    group.bench_function("raw_consumer_count", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let mut kafka = settings.kafka.clone();
                kafka.group = format!("bench-raw-{round}");
                let started = Instant::now();
                let n = kafka::count_to_end(&kafka, &partitions, prefetch).expect("baseline read");
                total += started.elapsed();
                assert_eq!(n, FRAMES);
            }
            total
        })
    });
    group.bench_function("raw_consumer_per_partition_count", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let mut kafka = settings.kafka.clone();
                kafka.group = format!("bench-raw-pp-{round}");
                let started = Instant::now();
                let n: u64 = std::thread::scope(|scope| {
                    let readers: Vec<_> = partitions
                        .iter()
                        .map(|p| {
                            let kafka = &kafka;
                            scope.spawn(move || {
                                kafka::count_to_end(kafka, &[*p], prefetch).expect("baseline read")
                            })
                        })
                        .collect();
                    readers
                        .into_iter()
                        .map(|r| r.join().expect("reader thread"))
                        .sum()
                });
                total += started.elapsed();
                assert_eq!(n, FRAMES);
            }
            total
        })
    });
    group.bench_function("partition_model_until_end", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let mut s = settings.clone();
                s.kafka.group = format!("bench-run-{round}");
                let started = Instant::now();
                let run = actix::System::new()
                    .block_on(kafka_actors::run(s, std::future::pending()))
                    .expect("run");
                total += started.elapsed();
                assert_eq!(run.summary.metrics.frames, FRAMES);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, frames, embedded_cluster);
criterion_main!(benches);
