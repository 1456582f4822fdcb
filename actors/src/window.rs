//! Event-time windows with exact unique-user counts, the watermark that closes them, and the
//! offsets that are safe to commit. Pure state, no actor: [`BatchActor`](crate::BatchActor)
//! drives it and owns the timing.
//!
//! Rules, in the words of the job:
//! - a frame belongs to the window `floor(ts / length) * length`;
//! - the watermark is the least, over partitions that are neither finished nor idle, of the
//!   highest `ts` seen; it never moves back, and it does not move while any such partition has
//!   not yet delivered a frame;
//! - a window closes once the watermark reaches its end plus the allowed lateness; frames for a
//!   closed window are late and change nothing;
//! - a partition is idle once it has caught up to its end and stayed there for `idle_after`;
//! - the offset committed for a partition never passes the first frame of that partition that
//!   belongs to a window not yet closed, so replaying from it rebuilds every open window.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hashbrown::HashSet;

use crate::config::WindowConfig;
use crate::frame::{window_start, FrameChunk};

/// A window whose results are final.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedWindow {
    /// Start, epoch seconds, inclusive.
    pub start: i64,
    /// End, epoch seconds, exclusive.
    pub end: i64,
    /// Distinct uids among the window's frames.
    pub unique_users: u64,
    /// Valid, on-time frames counted in the window.
    pub frames: u64,
}

#[derive(Default)]
struct OpenWindow {
    uids: HashSet<Box<str>>,
    frames: u64,
    /// Offset of the first frame of each partition in this window.
    first_offsets: BTreeMap<i32, i64>,
}

#[derive(Debug, Default, Clone)]
struct Progress {
    /// Next offset to process: every record below it has been through [`Windows::ingest`].
    next_offset: Option<i64>,
    max_ts: Option<f64>,
    caught_up_since: Option<Instant>,
    finished: bool,
}

/// What one chunk did to the windows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ingested {
    /// Frames added to open windows.
    pub counted: u64,
    /// Frames whose window had already closed.
    pub late: u64,
}

/// Open windows, per-partition progress and the watermark.
pub struct Windows {
    length: i64,
    lateness: i64,
    idle_after: Duration,
    open: BTreeMap<i64, OpenWindow>,
    partitions: BTreeMap<i32, Progress>,
    /// Event time in seconds; `-inf` until every partition has spoken.
    watermark: f64,
}

impl Windows {
    /// Windows over `partitions`, each with the offset it starts from (if known). A
    /// `resume_watermark` restores the watermark of an earlier run, so frames of windows that
    /// run already emitted are treated as late instead of being counted again into a partial
    /// window.
    pub fn new(
        config: &WindowConfig,
        partitions: &[(i32, Option<i64>)],
        resume_watermark: Option<f64>,
    ) -> Self {
        Windows {
            length: config.length_secs,
            lateness: config.lateness_secs,
            idle_after: Duration::from_millis(config.idle_after_ms),
            open: BTreeMap::new(),
            partitions: partitions
                .iter()
                .map(|(p, next_offset)| {
                    (
                        *p,
                        Progress {
                            next_offset: *next_offset,
                            ..Progress::default()
                        },
                    )
                })
                .collect(),
            watermark: resume_watermark.unwrap_or(f64::NEG_INFINITY),
        }
    }

    /// Counts a chunk of partition `partition`. `next_offset` is the partition's position after
    /// the chunk (invalid records included); `at_end` says it has caught up to its end.
    pub fn ingest(
        &mut self,
        partition: i32,
        frames: &FrameChunk,
        next_offset: Option<i64>,
        at_end: bool,
        now: Instant,
    ) -> Ingested {
        let mut result = Ingested::default();
        let closed_below = self.watermark - self.lateness as f64;
        // Frames of one chunk mostly share a window: look the window up once per run of
        // frames that share it.
        let mut frames_iter = frames.iter().peekable();
        while let Some((offset, ts, uid)) = frames_iter.next() {
            let start = window_start(ts, self.length);
            if ((start + self.length) as f64) <= closed_below {
                result.late += 1;
                continue;
            }
            let window = self.open.entry(start).or_default();
            window.first_offsets.entry(partition).or_insert(offset);
            window.frames += 1;
            window.uids.get_or_insert_with(uid, |u: &str| Box::from(u));
            result.counted += 1;
            while let Some((_, _, uid)) =
                frames_iter.next_if(|(_, ts, _)| window_start(*ts, self.length) == start)
            {
                window.frames += 1;
                window.uids.get_or_insert_with(uid, |u: &str| Box::from(u));
                result.counted += 1;
            }
        }
        let progress = self.partitions.entry(partition).or_default();
        if let Some(next) = next_offset {
            progress.next_offset = Some(progress.next_offset.map_or(next, |n| n.max(next)));
        }
        if let Some(max) = frames.max_ts() {
            progress.max_ts = Some(progress.max_ts.map_or(max, |m| m.max(max)));
        }
        if !frames.is_empty() {
            progress.caught_up_since = None;
        }
        if at_end {
            progress.caught_up_since.get_or_insert(now);
        }
        result
    }

    /// Marks a partition as finished (consumed to its end for good): it no longer holds the
    /// watermark back.
    pub fn finish_partition(&mut self, partition: i32) {
        self.partitions.entry(partition).or_default().finished = true;
    }

    /// True when every partition is finished.
    pub fn all_finished(&self) -> bool {
        self.partitions.values().all(|p| p.finished)
    }

    /// Moves the watermark as far as the partitions allow and returns the windows that closed,
    /// oldest first.
    pub fn advance(&mut self, now: Instant) -> Vec<ClosedWindow> {
        let mut low: Option<f64> = None;
        let mut active = 0;
        for progress in self.partitions.values() {
            let idle = progress
                .caught_up_since
                .is_some_and(|since| now.saturating_duration_since(since) >= self.idle_after);
            if progress.finished || idle {
                continue;
            }
            active += 1;
            match progress.max_ts {
                Some(ts) => low = Some(low.map_or(ts, |l| l.min(ts))),
                // A partition that has not delivered a frame yet may still hold the oldest ones.
                None => return Vec::new(),
            }
        }
        if active > 0 {
            if let Some(low) = low {
                self.watermark = self.watermark.max(low);
            }
        }
        let closed_below = self.watermark - self.lateness as f64;
        let mut closed = Vec::new();
        while let Some(entry) = self.open.first_entry() {
            if ((*entry.key() + self.length) as f64) > closed_below {
                break;
            }
            let (start, window) = entry.remove_entry();
            closed.push(self.close(start, window));
        }
        closed
    }

    /// Closes every open window (the input is exhausted) and moves the watermark past them.
    pub fn close_all(&mut self) -> Vec<ClosedWindow> {
        let windows = std::mem::take(&mut self.open);
        if let Some(last) = windows.keys().next_back() {
            self.watermark = self
                .watermark
                .max((last + self.length + self.lateness) as f64);
        }
        windows
            .into_iter()
            .map(|(start, w)| self.close(start, w))
            .collect()
    }

    fn close(&self, start: i64, window: OpenWindow) -> ClosedWindow {
        ClosedWindow {
            start,
            end: start + self.length,
            unique_users: window.uids.len() as u64,
            frames: window.frames,
        }
    }

    /// For every partition with a known position, the offset that is safe to commit: its
    /// position, held back to the first frame it has in any open window.
    pub fn commit_offsets(&self) -> Vec<(i32, i64)> {
        self.partitions
            .iter()
            .filter_map(|(partition, progress)| {
                let next = progress.next_offset?;
                let held = self
                    .open
                    .values()
                    .filter_map(|w| w.first_offsets.get(partition).copied())
                    .min();
                Some((*partition, held.map_or(next, |h| h.min(next))))
            })
            .collect()
    }

    /// The watermark, once every partition has delivered a frame (or one was restored).
    pub fn watermark(&self) -> Option<f64> {
        self.watermark.is_finite().then_some(self.watermark)
    }

    /// Number of windows still open.
    pub fn open_windows(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;

    fn config(length: i64, lateness: i64) -> WindowConfig {
        WindowConfig {
            length_secs: length,
            lateness_secs: lateness,
            idle_after_ms: 1_000,
        }
    }

    fn chunk(frames: &[(i64, f64, &str)]) -> FrameChunk {
        let mut c = FrameChunk::with_capacity(frames.len());
        for (o, ts, uid) in frames {
            c.push(*o, *ts, uid);
        }
        c
    }

    #[test]
    fn counts_distinct_users_across_partitions_and_closes_on_watermark() {
        let now = Instant::now();
        let mut w = Windows::new(&config(60, 5), &[(0, None), (1, None)], None);
        w.ingest(
            0,
            &chunk(&[(0, 60.0, "a"), (1, 61.0, "b"), (2, 70.0, "a")]),
            Some(3),
            false,
            now,
        );
        // Partition 1 has not spoken: nothing can close even though partition 0 is far ahead.
        w.ingest(0, &chunk(&[(3, 200.0, "c")]), Some(4), false, now);
        assert!(w.advance(now).is_empty());
        w.ingest(
            1,
            &chunk(&[(0, 65.0, "b"), (1, 124.0, "d")]),
            Some(2),
            false,
            now,
        );
        // Watermark = min(200, 124) = 124: window [60,120) closes at 125, not yet.
        assert!(w.advance(now).is_empty());
        w.ingest(1, &chunk(&[(2, 125.0, "e")]), Some(3), false, now);
        let closed = w.advance(now);
        assert_eq!(
            closed,
            vec![ClosedWindow {
                start: 60,
                end: 120,
                unique_users: 2,
                frames: 4
            }]
        );
        // A frame for the closed window is late and changes nothing.
        let late = w.ingest(1, &chunk(&[(3, 119.0, "z")]), Some(4), false, now);
        assert_eq!(
            late,
            Ingested {
                counted: 0,
                late: 1
            }
        );
    }

    #[test]
    fn commit_offsets_stop_at_first_frame_of_an_open_window() {
        let now = Instant::now();
        let mut w = Windows::new(&config(10, 0), &[(0, Some(0)), (1, None)], None);
        assert_eq!(w.commit_offsets(), vec![(0, 0)]);
        w.ingest(
            0,
            &chunk(&[(5, 100.0, "a"), (6, 111.0, "b"), (7, 101.0, "c")]),
            Some(9),
            false,
            now,
        );
        assert_eq!(w.commit_offsets(), vec![(0, 5)]);
        w.ingest(1, &chunk(&[(40, 125.0, "a")]), Some(41), false, now);
        let closed = w.advance(now);
        assert_eq!(closed.len(), 1, "window [100,110) closes at watermark 111");
        // Partition 0's earliest open frame is offset 6 (window [110,120)).
        assert_eq!(w.commit_offsets(), vec![(0, 6), (1, 40)]);
        let rest = w.close_all();
        assert_eq!(rest.len(), 2);
        assert_eq!(w.commit_offsets(), vec![(0, 9), (1, 41)]);
    }

    #[test]
    fn idle_partitions_stop_holding_the_watermark_but_backlogs_do_not() {
        let start = Instant::now();
        let mut w = Windows::new(&config(10, 0), &[(0, None), (1, None)], None);
        w.ingest(
            0,
            &chunk(&[(0, 105.0, "a"), (1, 130.0, "b")]),
            Some(2),
            false,
            start,
        );
        // Partition 1 is empty and caught up.
        w.ingest(1, &FrameChunk::default(), Some(0), true, start);
        assert!(w.advance(start).is_empty());
        assert!(w.advance(start + Duration::from_millis(999)).is_empty());
        let closed = w.advance(start + Duration::from_millis(1_000));
        assert_eq!(
            closed.iter().map(|c| c.start).collect::<Vec<_>>(),
            vec![100]
        );
        // New data on partition 1 makes it active again; the watermark does not move back.
        w.ingest(
            1,
            &chunk(&[(0, 121.0, "c")]),
            Some(1),
            false,
            start + Duration::from_secs(2),
        );
        assert_eq!(w.watermark(), Some(130.0));
    }

    #[test]
    fn resumed_watermark_treats_emitted_windows_as_late() {
        let now = Instant::now();
        let mut w = Windows::new(&config(10, 2), &[(0, Some(3))], Some(122.0));
        let r = w.ingest(
            0,
            &chunk(&[(3, 109.0, "a"), (4, 119.0, "b"), (5, 121.0, "c")]),
            Some(6),
            false,
            now,
        );
        assert_eq!(
            r,
            Ingested {
                counted: 1,
                late: 2
            }
        );
    }

    /// Frames of `partitions` partitions, out of order by up to `jitter` seconds.
    fn dataset() -> impl Strategy<Value = (Vec<Vec<(f64, u8)>>, i64)> {
        (1usize..4, 0i64..4).prop_flat_map(|(parts, jitter)| {
            let part = proptest::collection::vec((0u32..400, 0u8..16, 0i64..=jitter), 0..60)
                .prop_map(move |mut frames| {
                    frames.sort_by_key(|f| f.0);
                    frames
                        .into_iter()
                        .map(|(t, uid, j)| ((1_000 + t as i64 - j) as f64 + 0.5, uid))
                        .collect()
                });
            (proptest::collection::vec(part, parts), Just(jitter))
        })
    }

    proptest! {
        /// With jitter within the lateness, in-order delivery per partition, any interleaving of
        /// partitions and any chunking, the closed windows equal a direct count.
        #[test]
        fn closed_windows_match_direct_count((data, jitter) in dataset(), chunk_len in 1usize..7, seed in any::<u64>()) {
            let now = Instant::now();
            let parts: Vec<(i32, Option<i64>)> = (0..data.len() as i32).map(|p| (p, Some(0))).collect();
            let mut w = Windows::new(&config(7, jitter), &parts, None);
            let mut truth: BTreeMap<i64, (BTreeSet<u8>, u64)> = BTreeMap::new();
            for part in &data {
                for (ts, uid) in part {
                    let e = truth.entry((ts / 7.0).floor() as i64 * 7).or_default();
                    e.0.insert(*uid);
                    e.1 += 1;
                }
            }
            let mut cursors = vec![0usize; data.len()];
            let mut emitted = Vec::new();
            let mut rng = seed;
            while cursors.iter().zip(&data).any(|(c, d)| *c < d.len()) {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let p = (rng >> 33) as usize % data.len();
                let from = cursors[p];
                let to = (from + chunk_len).min(data[p].len());
                if from == to { continue; }
                let c = chunk(&data[p][from..to].iter().enumerate()
                    .map(|(i, (ts, uid))| ((from + i) as i64, *ts, ["u0","u1","u2","u3","u4","u5","u6","u7","u8","u9","ua","ub","uc","ud","ue","uf"][*uid as usize]))
                    .collect::<Vec<_>>());
                let r = w.ingest(p as i32, &c, Some(to as i64), false, now);
                prop_assert_eq!(r.late, 0);
                cursors[p] = to;
                // Never commit past the first frame of an open window.
                for (part, offset) in w.commit_offsets() {
                    let first_open = data[part as usize][..cursors[part as usize]].iter().position(|(ts, _)| {
                        let start = (ts / 7.0).floor() as i64 * 7;
                        !emitted.iter().any(|c: &ClosedWindow| c.start == start)
                    });
                    if let Some(first) = first_open { prop_assert!(offset <= first as i64); }
                }
                emitted.extend(w.advance(now));
            }
            for p in 0..data.len() { w.finish_partition(p as i32); }
            emitted.extend(w.close_all());
            let got: BTreeMap<i64, (u64, u64)> = emitted.iter().map(|c| (c.start, (c.unique_users, c.frames))).collect();
            let want: BTreeMap<i64, (u64, u64)> = truth.iter().map(|(s, (u, f))| (*s, (u.len() as u64, *f))).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(emitted.len(), truth.len(), "each window emitted once");
        }
    }
}
