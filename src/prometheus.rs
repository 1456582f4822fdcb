//! The metrics actor's figures in the Prometheus text format, encoded by `prometheus-client`
//! from one [`MetricsSnapshot`] per scrape (a [`Collector`]: the figures live in the metrics
//! actor, not in `prometheus-client` metrics). Per-partition series carry `topic` and
//! `partition` labels; only partitions this process owns (or has counted) appear.

use std::collections::{BTreeMap, BTreeSet};

use actors::batch::WindowsStatus;
use actors::intake::Rebalances;
use actors::metrics::{Buckets, Distributions, MetricsSnapshot};
use actors::supervisor::ServiceStatus;
use actors::topic::PartitionId;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// Encodes `snapshot` as Prometheus text. Position, lag, leader and pause series are given
/// for the `owned` partitions only (a revoked partition's series disappear), with `lags`
/// as the lag; counters cover every partition this process counted.
///
/// # Errors
/// Formatting failed (it does not, into a `String`).
pub fn encode(
    status: &ServiceStatus,
    lags: &BTreeMap<PartitionId, i64>,
) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("kafka_actors");
    registry.register_collector(Box::new(Figures {
        snapshot: status.metrics.clone(),
        lags: lags.clone(),
        owned: status.intake.partitions.keys().copied().collect(),
        windows: status.windows.clone(),
        distributions: status.distributions.clone(),
        rebalances: status.intake.rebalances.clone(),
        now: actors::clock::now_epoch_secs(),
    }));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

#[derive(Debug)]
struct Figures {
    snapshot: MetricsSnapshot,
    lags: BTreeMap<PartitionId, i64>,
    owned: BTreeSet<PartitionId>,
    windows: WindowsStatus,
    distributions: Distributions,
    rebalances: Rebalances,
    /// Wall clock, epoch seconds.
    now: f64,
}

type Labels = Vec<(&'static str, String)>;

fn of(partition: &PartitionId) -> Labels {
    vec![
        ("topic", partition.topic.name().to_owned()),
        ("partition", partition.index.to_string()),
    ]
}

/// One metric family: a series per label set (a series without labels is written without
/// braces).
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    series: impl IntoIterator<Item = (Labels, M)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, value) in series {
        if labels.is_empty() {
            return value.encode(metric);
        }
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels, u64)>,
) -> Result<(), std::fmt::Error> {
    let series = series.into_iter().map(|(l, v)| (l, ConstCounter::new(v)));
    family(encoder, name, help, MetricType::Counter, series)
}

fn gauge<N>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels, N)>,
) -> Result<(), std::fmt::Error>
where
    ConstGauge<N>: EncodeMetric,
{
    let series = series.into_iter().map(|(l, v)| (l, ConstGauge::new(v)));
    family(encoder, name, help, MetricType::Gauge, series)
}

/// A distribution kept in `unit`s, exposed in base units (`scale` per unit).
fn histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    buckets: &Buckets,
    scale: f64,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    let scaled: Vec<(f64, u64)> = buckets
        .buckets
        .iter()
        .map(|(bound, n)| {
            let bound = if *bound == f64::MAX {
                f64::MAX
            } else {
                bound * scale
            };
            (bound, *n)
        })
        .collect();
    metric.encode_histogram::<Labels>(buckets.sum * scale, buckets.count, &scaled, None)
}

impl Collector for Figures {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.snapshot;
        let parts = || s.partitions.iter();
        let owned = || parts().filter(|(p, _)| self.owned.contains(p));
        let e = &mut encoder;
        counter(
            e,
            "frames",
            "Valid frames read.",
            parts().map(|(p, m)| (of(p), m.frames)),
        )?;
        counter(
            e,
            "invalid_frames",
            "Invalid frames, by reason.",
            parts().flat_map(|(p, m)| {
                m.invalid.iter().map(move |(reason, n)| {
                    let mut labels = of(p);
                    labels.push(("reason", (*reason).to_owned()));
                    (labels, *n)
                })
            }),
        )?;
        counter(
            e,
            "late_frames",
            "Frames whose window had already been written.",
            parts().map(|(p, m)| (of(p), m.late)),
        )?;
        counter(
            e,
            "event_time_leads",
            "Times a partition's event time ran more than window.max_lead_secs ahead of the others.",
            parts().map(|(p, m)| (of(p), m.event_time_leads)),
        )?;
        gauge(
            e,
            "position",
            "Next offset to read.",
            owned().filter_map(|(p, m)| m.position.map(|v| (of(p), v))),
        )?;
        gauge(
            e,
            "lag",
            "The log's end minus the position: the end is the later of the broker's answer to \
             the watchdog's look-up and the last fetch's high watermark.",
            self.lags.iter().map(|(p, lag)| (of(p), *lag)),
        )?;
        gauge(
            e,
            "leader",
            "The broker leading the partition.",
            owned().filter_map(|(p, m)| m.leader.map(|v| (of(p), i64::from(v)))),
        )?;
        counter(
            e,
            "leader_changes",
            "Leader changes seen.",
            parts().map(|(p, m)| (of(p), m.leader_changes)),
        )?;
        gauge(
            e,
            "partition_paused",
            "1 while the partition is paused by the memory budget of open windows.",
            owned().map(|(p, m)| (of(p), i64::from(m.paused))),
        )?;
        let mut restarts: std::collections::BTreeMap<(PartitionId, &'static str), u64> =
            std::collections::BTreeMap::new();
        for record in &s.restart_log {
            *restarts
                .entry((record.partition, record.cause.kind()))
                .or_default() += 1;
        }
        counter(
            e,
            "restarts",
            "Partition pipeline restarts, by cause.",
            restarts.iter().map(|((p, cause), n)| {
                let mut labels = of(p);
                labels.push(("cause", (*cause).to_owned()));
                (labels, *n)
            }),
        )?;
        counter(
            e,
            "watchdog_recoveries",
            "Restarts by the stall watchdog.",
            [(Labels::new(), s.watchdog_recoveries)],
        )?;
        counter(
            e,
            "flushes",
            "Flushes (write, sync, commit).",
            [(Labels::new(), s.flushes)],
        )?;
        counter(
            e,
            "windows_written",
            "Window lines written.",
            [(Labels::new(), s.windows)],
        )?;
        counter(
            e,
            "dead_letters",
            "Invalid records written to the dead-letter topic.",
            [(Labels::new(), s.dead_letters)],
        )?;
        counter(
            e,
            "commits",
            "Commits that succeeded.",
            [(Labels::new(), s.commits)],
        )?;
        counter(
            e,
            "commit_failures",
            "Commits that failed, by kind: transient (a retry may cure it), stale_generation \
             (the group moved on while this member rejoined), permanent (no retry cures it).",
            ["transient", "stale_generation", "permanent"].map(|kind| {
                let n = s.commit_failures_by_kind.get(kind).copied().unwrap_or(0);
                (vec![("kind", kind.to_owned())], n)
            }),
        )?;
        counter(
            e,
            "skipped_records",
            "Records passed over because they were deleted before they were read.",
            [(Labels::new(), s.skipped_records)],
        )?;
        counter(
            e,
            "budget_pauses",
            "Times a partition was paused at window.open_budget_mib.",
            [(Labels::new(), s.budget_pauses)],
        )?;
        gauge(
            e,
            "open_window_bytes",
            "Bytes the open windows hold.",
            [(Labels::new(), s.open_window_bytes as i64)],
        )?;
        gauge(
            e,
            "throughput_frames_per_second",
            "Frames per second from the first frame to the last.",
            [(Labels::new(), s.throughput)],
        )?;
        let standings = || {
            self.windows
                .partitions
                .iter()
                .filter(|(p, _)| self.owned.contains(p))
        };
        gauge(
            e,
            "watermark_seconds",
            "The watermark: the least highest event time over partitions neither idle nor finished.",
            self.windows.watermark.map(|w| (Labels::new(), w)),
        )?;
        gauge(
            e,
            "event_time_seconds",
            "The highest event time read from the partition.",
            standings().filter_map(|(p, w)| w.standing.max_ts.map(|ts| (of(p), ts))),
        )?;
        gauge(
            e,
            "event_time_lag_seconds",
            "Wall clock minus the partition's highest event time.",
            standings().filter_map(|(p, w)| w.standing.max_ts.map(|ts| (of(p), self.now - ts))),
        )?;
        gauge(
            e,
            "open_windows",
            "Windows not yet written.",
            [(Labels::new(), self.windows.open_windows as i64)],
        )?;
        gauge(
            e,
            "open_window_uids",
            "Distinct uids the partition holds in open windows.",
            standings().map(|(p, w)| (of(p), w.standing.open_uids as i64)),
        )?;
        counter(
            e,
            "rebalances",
            "Assignments received (the partition model's one at start included).",
            [(Labels::new(), self.rebalances.assignments)],
        )?;
        counter(
            e,
            "revocations",
            "Revocations and lost assignments handled.",
            [(Labels::new(), self.rebalances.revocations)],
        )?;
        histogram(
            e,
            "revoke_duration_seconds",
            "Time to release revoked partitions: write what is closed, commit, stop their actors.",
            &Buckets::of_values(&self.rebalances.revoke_ms),
            1e-3,
        )?;
        let d = &self.distributions;
        histogram(
            e,
            "process_frame_seconds",
            "process_frame: time to take a record from the client and parse it, per frame.",
            &d.process_frame_ns,
            1e-9,
        )?;
        histogram(
            e,
            "process_frame_normalized_seconds",
            "process_frame.normalized: processing time of a flush's frames over its frames.",
            &d.process_frame_normalized_ns,
            1e-9,
        )?;
        histogram(
            e,
            "batch_flush_seconds",
            "batch.flush: time to write, sync and commit one flush.",
            &d.batch_flush_us,
            1e-6,
        )?;
        histogram(
            e,
            "batch_flush_normalized_seconds",
            "batch.flush.normalized: batch.flush over the frames of the flush.",
            &d.batch_flush_normalized_ns,
            1e-9,
        )?;
        histogram(
            e,
            "batch_throughput_frames_per_second",
            "batch.throughput: frames per second between two flushes.",
            &d.batch_throughput,
            1.0,
        )?;
        histogram(
            e,
            "batch_unique_users",
            "batch.unique.users: distinct users of each window written.",
            &d.batch_unique_users,
            1.0,
        )?;
        Ok(())
    }
}
