//! What the metrics actor reports: a snapshot of its counters and timings, per partition and
//! in total, and its timings as distributions.

use std::collections::BTreeMap;

use actix::prelude::*;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::topic::PartitionId;

/// A partition's position had left the log, and the reader moved on as
/// `kafka.auto_offset_reset` says, passing over `[from, to)` unread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Message, Serialize)]
#[rtype(result = "()")]
pub struct RecordsSkipped {
    /// The partition.
    pub partition: PartitionId,
    /// The first offset passed over.
    pub from: i64,
    /// Where reading went on.
    pub to: i64,
}

/// An empty histogram.
pub(super) fn histogram() -> Histogram<u64> {
    // Three significant digits over the whole u64 range: a constant, valid configuration.
    Histogram::new(3)
        .unwrap_or_else(|_| unreachable!("3 significant figures is a valid histogram precision"))
}

/// p50 / p99 / max of a histogram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Quantiles {
    /// Samples recorded.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest sample.
    pub max: u64,
}

impl Quantiles {
    pub(super) fn of(h: &Histogram<u64>) -> Self {
        Quantiles {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        }
    }
}

/// One restart, as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestartRecord {
    /// Milliseconds from the start of the actor tree.
    pub at_ms: f64,
    /// The partition.
    pub partition: PartitionId,
    /// Why.
    pub cause: crate::failure::PartitionFailure,
    /// The stall watchdog did it.
    pub watchdog: bool,
}

/// Figures of one partition.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PartitionMetrics {
    /// Valid frames.
    pub frames: u64,
    /// Invalid frames by reason.
    pub invalid: BTreeMap<&'static str, u64>,
    /// Frames of closed windows.
    pub late: u64,
    /// Times its event time ran more than `window.max_lead_secs` ahead of the others.
    pub event_time_leads: u64,
    /// Chunks received.
    pub chunks: u64,
    /// Frames per second from the partition's first chunk to its last.
    pub throughput: f64,
    /// `process_frame` of this partition, nanoseconds.
    pub process_frame_ns: Quantiles,
    /// Position after the last chunk.
    pub position: Option<i64>,
    /// High watermark − position.
    pub lag: Option<i64>,
    /// Restarts of its pipeline.
    pub restarts: u64,
    /// The broker leading it, as last reported (leader tracking on).
    pub leader: Option<i32>,
    /// Leader changes seen.
    pub leader_changes: u64,
    /// Its intake is paused by the memory budget of open windows.
    pub paused: bool,
    /// Its reader has reported at least once (records, or being at its end).
    pub heard: bool,
}

/// Every figure the metrics actor keeps.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MetricsSnapshot {
    /// Valid frames, all partitions.
    pub frames: u64,
    /// Invalid frames by reason, all partitions.
    pub invalid: BTreeMap<&'static str, u64>,
    /// Late frames, all partitions.
    pub late: u64,
    /// Times a partition's event time ran more than `window.max_lead_secs` ahead of the
    /// others, all partitions.
    pub event_time_leads: u64,
    /// Per partition.
    pub partitions: BTreeMap<PartitionId, PartitionMetrics>,
    /// Frames per second from the first frame to the last.
    pub throughput: f64,
    /// `process_frame`, nanoseconds.
    pub process_frame_ns: Quantiles,
    /// `process_frame.normalized`, nanoseconds.
    pub process_frame_normalized_ns: Quantiles,
    /// `batch.flush`, microseconds.
    pub batch_flush_us: Quantiles,
    /// `batch.flush.normalized`, nanoseconds per frame.
    pub batch_flush_normalized_ns: Quantiles,
    /// `batch.throughput`, frames per second.
    pub batch_throughput: Quantiles,
    /// `batch.unique.users`.
    pub batch_unique_users: Quantiles,
    /// Flushes done.
    pub flushes: u64,
    /// Windows written.
    pub windows: u64,
    /// Invalid records written to the dead-letter topic.
    pub dead_letters: u64,
    /// Commits that succeeded.
    pub commits: u64,
    /// Commits that failed.
    pub commit_failures: u64,
    /// Commits that failed, by kind (`transient`, `stale_generation`, `permanent`).
    pub commit_failures_by_kind: BTreeMap<&'static str, u64>,
    /// Total lag over partitions with a known lag.
    pub lag: i64,
    /// Milliseconds from the start of the actor tree to the first frame (the cost of
    /// assignment and the first fetch).
    pub first_frame_ms: Option<f64>,
    /// Milliseconds from the start of the actor tree to the last frame.
    pub last_frame_ms: Option<f64>,
    /// Partition pipelines restarted, for any cause.
    pub restarts: u64,
    /// Of those, restarts by the stall watchdog.
    pub watchdog_recoveries: u64,
    /// Every restart, oldest first.
    pub restart_log: Vec<RestartRecord>,
    /// Every partition leader change seen, oldest first.
    pub leader_changes: Vec<crate::leaders::LeaderChange>,
    /// Records passed over unread because retention deleted them first (or, with
    /// `kafka.auto_offset_reset = latest`, everything up to the end at that moment).
    pub skipped_records: u64,
    /// Every range passed over, oldest first.
    pub skipped: Vec<RecordsSkipped>,
    /// Bytes the open windows hold (as of the last flush or budget change).
    pub open_window_bytes: u64,
    /// The most the open windows have held.
    pub peak_open_window_bytes: u64,
    /// Times a partition was paused because the open windows were over their memory budget.
    pub budget_pauses: u64,
    /// The partition that held the watermark back at the last budget change.
    pub watermark_holder: Option<PartitionId>,
    /// Group model: the member's join state in the last statistics (`steady` between
    /// rebalances).
    pub group_join_state: Option<String>,
}

/// A histogram's distribution in buckets, for Prometheus.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Buckets {
    /// Sum of the samples, in the histogram's unit.
    pub sum: f64,
    /// Samples.
    pub count: u64,
    /// `(upper bound, samples above the previous bound up to this one)`, bounds 1, 2, 5, 10,
    /// 20, ... up to 5e12 in the histogram's unit, then `f64::MAX` for the rest.
    pub buckets: Vec<(f64, u64)>,
}

impl Buckets {
    /// The distribution of `values`.
    pub fn of_values(values: &[u64]) -> Self {
        let mut h = histogram();
        for value in values {
            h.saturating_record(*value);
        }
        Buckets::of(&h)
    }

    pub(super) fn of(h: &Histogram<u64>) -> Self {
        let bounds: Vec<u64> = (0..13)
            .flat_map(|decade| [1, 2, 5].map(|m| m * 10u64.pow(decade)))
            .collect();
        let mut counts = vec![0u64; bounds.len() + 1];
        let mut sum = 0.0;
        for value in h.iter_recorded() {
            let v = value.value_iterated_to();
            let n = value.count_at_value();
            sum += v as f64 * n as f64;
            let slot = bounds.partition_point(|b| *b < v);
            counts[slot] += n;
        }
        let buckets = bounds
            .iter()
            .map(|b| *b as f64)
            .chain([f64::MAX])
            .zip(counts)
            .collect();
        Buckets {
            sum,
            count: h.len(),
            buckets,
        }
    }
}

/// The seed's timings and counts as distributions: `process_frame` (ns), `batch.flush` (µs),
/// `batch.flush.normalized` (ns per frame), `batch.throughput` (frames/s),
/// `batch.unique.users` (users per window).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Distributions {
    /// `process_frame`, nanoseconds per frame.
    pub process_frame_ns: Buckets,
    /// `process_frame.normalized`, nanoseconds.
    pub process_frame_normalized_ns: Buckets,
    /// `batch.flush`, microseconds.
    pub batch_flush_us: Buckets,
    /// `batch.flush.normalized`, nanoseconds per frame.
    pub batch_flush_normalized_ns: Buckets,
    /// `batch.throughput`, frames per second.
    pub batch_throughput: Buckets,
    /// `batch.unique.users`, per window written.
    pub batch_unique_users: Buckets,
}
