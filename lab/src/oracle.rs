//! The oracle: the service's output judged against the truth of every frame produced. Every
//! line exact for the partitions it names, every share of every window written once, no commit
//! ahead of written output, and every invalid record dead-lettered once. Shared by `chaos`
//! (each scenario's verdict) and `compare` (the processes' output).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use actors::generator::GeneratorReport;
use actors::kafka;
use actors::line::WindowLine;
use actors::topic::{from_topics, PartitionId};

/// Committed offsets and written shares at one moment.
pub(crate) struct Sample {
    /// The group's committed offsets.
    pub(crate) committed: BTreeMap<PartitionId, i64>,
    /// The (window, partition) shares written by then.
    pub(crate) written: BTreeSet<(i64, PartitionId)>,
}

/// The window lines of the file at `path` (none when it does not exist).
pub(crate) fn lines(path: &Path) -> Vec<WindowLine> {
    if path.exists() {
        // A line being appended may be cut short: read what parses.
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    } else {
        Vec::new()
    }
}

/// What the dead-letter topic holds.
pub(crate) struct DeadLetterCount {
    /// Distinct source records.
    pub(crate) distinct: u64,
    /// Extra copies.
    pub(crate) duplicates: u64,
    /// Sources that are valid frames (must be none).
    pub(crate) valid: Vec<(PartitionId, i64)>,
}

/// Counts the dead letters `records` by the source each names in its headers.
pub(crate) fn count_dead_letters(
    records: &[kafka::StoredRecord],
    report: &GeneratorReport,
) -> DeadLetterCount {
    let valid_frames: BTreeSet<(PartitionId, i64)> = report
        .placements
        .iter()
        .filter(|p| p.window.is_some())
        .map(|p| (p.partition, p.offset))
        .collect();
    let mut seen: BTreeMap<(PartitionId, i64), u64> = BTreeMap::new();
    for record in records {
        let source = (|| {
            let topic = record.header(kafka::headers::SOURCE_TOPIC)?;
            let partition: i32 = record
                .header(kafka::headers::SOURCE_PARTITION)?
                .parse()
                .ok()?;
            let offset: i64 = record.header(kafka::headers::SOURCE_OFFSET)?.parse().ok()?;
            Some((PartitionId::of(&topic, partition), offset))
        })();
        // A record without its source headers is counted as a source of its own: it cannot
        // match an invalid input record, and the count shows it.
        let source = source.unwrap_or((record.partition, -1 - record.offset));
        *seen.entry(source).or_default() += 1;
    }
    DeadLetterCount {
        distinct: seen.len() as u64,
        duplicates: seen.values().map(|n| n - 1).sum(),
        valid: seen
            .keys()
            .filter(|s| valid_frames.contains(s))
            .copied()
            .collect(),
    }
}

/// The oracle's counts.
pub(crate) struct Verdict {
    /// Valid frames of (window, partition) shares no line accounts for.
    pub(crate) lost: u64,
    /// Valid frames of shares written more than once, counted once per extra time.
    pub(crate) duplicates: u64,
    /// Every line that differs from the truth: its window, partitions, and both counts.
    pub(crate) inexact: Vec<String>,
    /// Valid frames missing from lines written short of the truth: frames that missed their
    /// window (the service read them after it was written, or never).
    pub(crate) missed: u64,
    /// The most frames any sample of committed offsets covered without their windows written.
    pub(crate) max_committed_ahead: u64,
}

/// Judges the lines `written` (by any number of processes) against the truth in `report`:
/// every line exact for the partitions it names, every share of every window written once,
/// and (from `samples`) no commit ahead of written output.
pub(crate) fn judge(
    written: &[WindowLine],
    report: &GeneratorReport,
    samples: &[Sample],
) -> Verdict {
    let truth = &report.truth;
    let mut inexact = Vec::new();
    let mut missed = 0;
    let mut seen: BTreeMap<(i64, PartitionId), u64> = BTreeMap::new();
    for line in written {
        let covered = from_topics(&line.partitions);
        let expected = covered
            .iter()
            .map(|p| truth.share(line.window_start, *p))
            .fold((0, 0), |acc, share| (acc.0 + share.0, acc.1 + share.1));
        missed += expected.1.saturating_sub(line.frames);
        if (line.unique_users, line.frames) != expected {
            inexact.push(format!(
                "window {} {:?}: ({}, {}) vs {expected:?}",
                line.window_start, line.partitions, line.unique_users, line.frames
            ));
        }
        for partition in covered {
            *seen.entry((line.window_start, partition)).or_default() += 1;
        }
    }
    let (mut lost, mut duplicates) = (0, 0);
    for window in truth.lines() {
        for &partition in truth.partitions() {
            let frames = truth.share(window.window_start, partition).1;
            if frames == 0 {
                continue;
            }
            match seen.get(&(window.window_start, partition)).copied() {
                None | Some(0) => lost += frames,
                Some(times) => duplicates += (times - 1) * frames,
            }
        }
    }
    // Valid frames by partition, in offset order, with their windows.
    let mut frames: BTreeMap<PartitionId, Vec<(i64, i64)>> = BTreeMap::new();
    for placement in &report.placements {
        if let Some(window) = placement.window {
            frames
                .entry(placement.partition)
                .or_default()
                .push((placement.offset, window));
        }
    }
    for list in frames.values_mut() {
        list.sort_unstable();
    }
    let max_committed_ahead = samples
        .iter()
        .map(|sample| {
            sample
                .committed
                .iter()
                .map(|(partition, committed)| {
                    frames.get(partition).map_or(0, |list| {
                        list.iter()
                            .take_while(|(offset, _)| offset < committed)
                            .filter(|(_, window)| !sample.written.contains(&(*window, *partition)))
                            .count() as u64
                    })
                })
                .sum::<u64>()
        })
        .max()
        .unwrap_or(0);
    Verdict {
        lost,
        duplicates,
        inexact,
        missed,
        max_committed_ahead,
    }
}
