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
//! - a partition is idle once it has caught up to its end and stayed there for `idle_after`,
//!   and has said so within the last [`HEARD_WITHIN`] (its reader repeats "still at the end"
//!   every [`AT_END_HEARTBEAT`]): a reader that stopped reporting (stalled, or dead and not yet
//!   restarted) holds the watermark instead of letting windows close without its frames, and a
//!   reader that cannot reach its partition's leader says it is not at the end, which restarts
//!   the clock (what producers buffered during a broker outage arrives after it);
//! - while any partition is idle, the watermark goes no further than the partitions holding it
//!   had reached [`IDLE_GRACE`] before: an idle partition's "at the end" is an answer about
//!   the past, and what its producer wrote since arrives one fetch round trip later;
//! - the offset committed for a partition never passes the first frame of that partition that
//!   belongs to a window not yet closed, so replaying from it rebuilds every open window.
//!
//! Windows are kept per partition inside ([`OpenWindow`] holds one part per partition) and each
//! partition has its own `closed_below`, the event time below which its windows are written
//! (the one name for it; commits record it as metadata): normally the watermark, but a partition
//! that arrives later (a restart, or a partition moved here by a rebalance) starts from the
//! point recorded with its last commit and catches up at its own pace. A window's parts close
//! together when their partitions pass it together, which gives one output line per window; a
//! catching-up partition's parts close on their own and give a separate line for the same
//! window that names only that partition. Every line lists the partitions it accounts for, and
//! when each uid lives in one partition, the lines of a window add up to the exact total.
//! A moved-away partition's parts are dropped: its new owner replays them from the commit.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hashbrown::HashSet;

/// How often a partition reader that is caught up says so again.
pub const AT_END_HEARTBEAT: Duration = Duration::from_millis(250);
/// A caught-up partition counts as idle only if it was heard from within this long.
pub const HEARD_WITHIN: Duration = Duration::from_secs(1);
/// While a partition is idle, the watermark goes no further than the other partitions had
/// reached this long ago. An idle partition's "at the end" is an answer about the past: frames
/// written to it since reach the service one fetch round trip later, and its producer's clock
/// is where the others' was. Closing windows at once on the others' progress made those frames
/// late whenever its fetches came back slower than theirs (a slow link to its leader): they
/// missed windows they belonged to. A leader that has not answered for 2 s is taken as out of
/// reach (the partition is then not idle), so a round trip is shorter than this.
pub const IDLE_GRACE: Duration = Duration::from_secs(3);

use crate::config::WindowConfig;
use crate::frame::{window_start, FrameChunk};
use crate::topic::PartitionId;
use crate::uids::UidSet;

/// A window's results for the partitions it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedWindow {
    /// Start, epoch seconds, inclusive.
    pub start: i64,
    /// End, epoch seconds, exclusive.
    pub end: i64,
    /// Distinct uids among the window's frames of these partitions.
    pub unique_users: u64,
    /// Valid, on-time frames of these partitions in the window.
    pub frames: u64,
    /// The partitions this result accounts for (with or without frames in the window).
    pub partitions: Vec<PartitionId>,
}

/// One partition's share of an open window.
struct Part {
    uids: UidSet,
    frames: u64,
    /// Offset of the partition's first frame in this window.
    first_offset: i64,
}

#[derive(Default)]
struct OpenWindow {
    parts: BTreeMap<PartitionId, Part>,
}

#[derive(Debug, Clone)]
struct Progress {
    /// Next offset to process: every record below it has been through [`Windows::ingest`].
    next_offset: Option<i64>,
    max_ts: Option<f64>,
    caught_up_since: Option<Instant>,
    /// The last chunk (or "still at the end") from its reader.
    last_heard: Option<Instant>,
    finished: bool,
    /// Windows ending (plus lateness) at or below this are closed for this partition.
    closed_below: f64,
    /// Its event time is more than `max_lead` ahead of the slowest other partition (reported
    /// once each time it gets there).
    leading: bool,
    /// Its intake is paused (the open windows reached their memory budget): it is never idle
    /// meanwhile, since what it has not read may belong to any open window.
    paused: bool,
    /// Where its reading began, with the `closed_below` it started with
    /// ([`Windows::start_of`]).
    start: PartitionStart,
}

impl Progress {
    /// Caught up for `idle_after`, and its reader said so within [`HEARD_WITHIN`]; never while
    /// paused.
    fn idle(&self, idle_after: Duration, now: Instant) -> bool {
        !self.paused
            && self
                .caught_up_since
                .is_some_and(|since| now.saturating_duration_since(since) >= idle_after)
            && self
                .last_heard
                .is_some_and(|heard| now.saturating_duration_since(heard) <= HEARD_WITHIN)
    }

    /// Still holds the watermark back: neither finished nor idle.
    fn holds(&self, idle_after: Duration, now: Instant) -> bool {
        !self.finished && !self.idle(idle_after, now)
    }
}

/// Bytes an open window's part takes besides its uids (its map entry and counters).
const PART_OVERHEAD: usize = 96;

/// Bytes a part holds.
fn part_bytes(part: &Part) -> usize {
    PART_OVERHEAD + part.uids.heap_bytes()
}

/// Why the partition that holds the watermark back does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HoldReason {
    /// Its reader has reported nothing since the partition was added: no first chunk (its
    /// leader may be out of reach, or its first fetch is slow).
    NotHeardFrom,
    /// It has delivered no frame yet and is not idle (not caught up for `idle_after` yet).
    NoFrameYet,
    /// Its reader has not reported for longer than [`HEARD_WITHIN`] (stalled, restarting, or
    /// cut off from its leader) after catching up.
    Silent {
        /// Milliseconds since it last reported.
        for_ms: u128,
    },
    /// Its event time is the lowest of the partitions still read: a backlog, or producers
    /// behind the others.
    Behind {
        /// Its highest event time.
        ts: f64,
    },
}

impl std::fmt::Display for HoldReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HoldReason::NotHeardFrom => f.write_str("its reader has reported nothing yet"),
            HoldReason::NoFrameYet => f.write_str("it has delivered no frame yet"),
            HoldReason::Silent { for_ms } => {
                write!(f, "its reader has been silent for {for_ms} ms")
            }
            HoldReason::Behind { ts } => write!(f, "its event time {ts} is the lowest"),
        }
    }
}

/// One partition's event-time standing ([`Windows::standings`]).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Standing {
    /// Its highest event time seen.
    pub max_ts: Option<f64>,
    /// Its windows ending (plus lateness) at or below this are written.
    pub closed_below: Option<f64>,
    /// Open windows it has frames in.
    pub open_windows: usize,
    /// Distinct uids of its parts of the open windows.
    pub open_uids: u64,
    /// Caught up and quiet: it does not hold the watermark back.
    pub idle: bool,
    /// Consumed to its end for good.
    pub finished: bool,
    /// Paused by the memory budget.
    pub paused: bool,
}

/// The partition the watermark waits for, and the partitions ahead of it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IntakeView {
    /// The partition holding the watermark back, and why; `None` when every partition is
    /// finished or idle.
    pub holder: Option<(PartitionId, HoldReason)>,
    /// Partitions still read whose event time is above the holder's, furthest ahead first:
    /// pausing them stops open windows from growing without keeping the watermark from
    /// moving.
    pub ahead: Vec<PartitionId>,
}

/// Where a partition starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartitionStart {
    /// The partition.
    pub partition: PartitionId,
    /// The offset it is read from, if known.
    pub next_offset: Option<i64>,
    /// The `closed_below` recorded with its last commit, if any.
    pub closed_below: Option<f64>,
}

/// A partition's safe commit position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CommitPoint {
    /// The partition.
    pub partition: PartitionId,
    /// The offset to commit.
    pub offset: i64,
    /// The partition's `closed_below`, to record with the commit.
    pub closed_below: Option<f64>,
}

/// What one chunk did to the windows.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Ingested {
    /// Frames added to open windows.
    pub counted: u64,
    /// Frames whose window had already closed.
    pub late: u64,
    /// The chunk took its partition's event time more than `window.max_lead_secs` ahead of
    /// the slowest other partition.
    pub lead: Option<Lead>,
}

/// A partition's event time ran far ahead of the others.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lead {
    /// The partition's highest event time.
    pub ts: f64,
    /// The slowest other partition's highest event time.
    pub others_ts: f64,
}

/// Open windows, per-partition progress and the watermark.
pub struct Windows {
    length: i64,
    lateness: i64,
    idle_after: Duration,
    /// `window.max_lead_secs`; infinite when not watched.
    max_lead: f64,
    open: BTreeMap<i64, OpenWindow>,
    partitions: BTreeMap<PartitionId, Progress>,
    /// Event time in seconds; `-inf` until every partition has spoken.
    watermark: f64,
    /// The least highest event time of the partitions that hold the watermark, each time it
    /// changed, oldest first: what an idle partition is allowed to pass ([`IDLE_GRACE`]).
    reached: std::collections::VecDeque<(Instant, f64)>,
    /// When the partition holding the watermark back was last logged (debug level).
    last_hold_log: Option<Instant>,
    /// Bytes the open windows' parts hold ([`part_bytes`]).
    open_bytes: usize,
}

impl Windows {
    /// Windows over `partitions`.
    pub fn new(config: &WindowConfig, partitions: &[PartitionStart]) -> Self {
        let mut windows = Windows {
            length: config.length_secs,
            lateness: config.lateness_secs,
            idle_after: Duration::from_millis(config.idle_after_ms),
            max_lead: match config.max_lead_secs {
                0 => f64::INFINITY,
                secs => secs as f64,
            },
            open: BTreeMap::new(),
            partitions: BTreeMap::new(),
            watermark: f64::NEG_INFINITY,
            reached: std::collections::VecDeque::new(),
            last_hold_log: None,
            open_bytes: 0,
        };
        for start in partitions {
            windows.add_partition(*start);
        }
        windows
    }

    /// Starts counting a partition (assigned, or present from the start).
    pub fn add_partition(&mut self, start: PartitionStart) {
        let progress = Progress {
            next_offset: start.next_offset,
            max_ts: None,
            caught_up_since: None,
            last_heard: None,
            finished: false,
            closed_below: start.closed_below.unwrap_or(f64::NEG_INFINITY),
            leading: false,
            paused: false,
            start,
        };
        self.partitions.insert(start.partition, progress);
    }

    /// Stops counting a partition and forgets its share of the open windows; whoever reads it
    /// next rebuilds that share from its committed offset.
    pub fn remove_partition(&mut self, partition: PartitionId) {
        self.partitions.remove(&partition);
        let mut freed = 0;
        self.open.retain(|_, window| {
            if let Some(part) = window.parts.remove(&partition) {
                freed += part_bytes(&part);
            }
            !window.parts.is_empty()
        });
        self.open_bytes -= freed;
    }

    /// Notes where `partition`'s reader began reading (a reader started without a position
    /// learns it from its first record); the first one told counts.
    pub fn note_read_from(&mut self, partition: PartitionId, read_from: Option<i64>) {
        if let Some(progress) = self.partitions.get_mut(&partition) {
            progress.start.next_offset = progress.start.next_offset.or(read_from);
        }
    }

    /// Where `partition`'s reading began: its start or, added without a position (from
    /// `auto.offset.reset`), where its reader said it began ([`Self::note_read_from`]).
    /// Reading it again from there rebuilds everything counted for it since it was added.
    pub fn start_of(&self, partition: PartitionId) -> Option<PartitionStart> {
        self.partitions.get(&partition).map(|p| p.start)
    }

    /// The partitions being counted.
    pub fn partitions(&self) -> impl Iterator<Item = PartitionId> + '_ {
        self.partitions.keys().copied()
    }

    /// Counts a chunk of partition `partition`. `next_offset` is the partition's position after
    /// the chunk (invalid records included); `at_end` says it has caught up to its end.
    pub fn ingest(
        &mut self,
        partition: PartitionId,
        frames: &FrameChunk,
        next_offset: Option<i64>,
        at_end: bool,
        now: Instant,
    ) -> Ingested {
        let mut result = Ingested::default();
        let Some(progress) = self.partitions.get_mut(&partition) else {
            // Not (or no longer) ours: a chunk that raced a revocation.
            return result;
        };
        let closed_below = progress.closed_below - self.lateness as f64;
        if let Some(next) = next_offset {
            progress.next_offset = Some(progress.next_offset.map_or(next, |n| n.max(next)));
        }
        if let Some(max) = frames.max_ts() {
            progress.max_ts = Some(progress.max_ts.map_or(max, |m| m.max(max)));
        }
        // New frames, or a reader that cannot tell (its leader is out of reach), restart the
        // idle clock: quiet time counts only while the end is known.
        if !frames.is_empty() || !at_end {
            progress.caught_up_since = None;
        }
        if at_end {
            progress.caught_up_since.get_or_insert(now);
        }
        progress.last_heard = Some(now);
        // Frames of one chunk mostly share a window: look the window up once per run of
        // frames that share it.
        let mut frames_iter = frames.iter().peekable();
        while let Some((offset, ts, uid)) = frames_iter.next() {
            let start = window_start(ts, self.length);
            if ((start + self.length) as f64) <= closed_below {
                result.late += 1;
                continue;
            }
            let parts = &mut self.open.entry(start).or_default().parts;
            let part = parts.entry(partition).or_insert_with(|| {
                self.open_bytes += PART_OVERHEAD;
                Part {
                    uids: UidSet::default(),
                    frames: 0,
                    first_offset: offset,
                }
            });
            let before = part.uids.heap_bytes();
            part.frames += 1;
            part.uids.insert(uid);
            result.counted += 1;
            while let Some((_, _, uid)) =
                frames_iter.next_if(|(_, ts, _)| window_start(*ts, self.length) == start)
            {
                part.frames += 1;
                part.uids.insert(uid);
                result.counted += 1;
            }
            self.open_bytes += part.uids.heap_bytes() - before;
        }
        if !frames.is_empty() {
            result.lead = self.check_lead(partition);
        }
        result
    }

    /// Whether `partition` has just run more than `max_lead` ahead of the slowest other
    /// partition that is still read (reported once until it falls back within the bound).
    fn check_lead(&mut self, partition: PartitionId) -> Option<Lead> {
        let ts = self.partitions.get(&partition)?.max_ts?;
        let others_ts = self
            .partitions
            .iter()
            .filter(|(p, progress)| **p != partition && !progress.finished)
            .filter_map(|(_, progress)| progress.max_ts)
            .reduce(f64::min);
        let ahead = others_ts.is_some_and(|others| ts - others > self.max_lead);
        let progress = self.partitions.get_mut(&partition)?;
        match (progress.leading, ahead) {
            (false, true) => {
                progress.leading = true;
                others_ts.map(|others_ts| Lead { ts, others_ts })
            }
            (true, false) => {
                progress.leading = false;
                None
            }
            _ => None,
        }
    }

    /// Marks a partition as finished (consumed to its end for good): it no longer holds the
    /// watermark back.
    pub fn finish_partition(&mut self, partition: PartitionId) {
        if let Some(progress) = self.partitions.get_mut(&partition) {
            progress.finished = true;
        }
    }

    /// True when `partition` is known here and finished.
    pub fn is_finished(&self, partition: PartitionId) -> bool {
        self.partitions.get(&partition).is_some_and(|p| p.finished)
    }

    /// True when every partition is finished.
    pub fn all_finished(&self) -> bool {
        self.partitions.values().all(|p| p.finished)
    }

    /// Moves the watermark and every partition's `closed_below` as far as they may go and
    /// returns what closed, oldest window first.
    pub fn advance(&mut self, now: Instant) -> Vec<ClosedWindow> {
        let mut low: Option<f64> = None;
        let mut any_idle = false;
        for (partition, progress) in &self.partitions {
            if progress.finished {
                continue;
            }
            if progress.idle(self.idle_after, now) {
                any_idle = true;
                continue;
            }
            match progress.max_ts {
                Some(ts) => low = Some(low.map_or(ts, |l| l.min(ts))),
                // A partition that has not delivered a frame yet may still hold the oldest ones.
                None => {
                    if self
                        .last_hold_log
                        .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(5))
                    {
                        tracing::debug!(
                            %partition,
                            caught_up_ms = ?progress.caught_up_since.map(|t| now.saturating_duration_since(t).as_millis()),
                            heard_ms = ?progress.last_heard.map(|t| now.saturating_duration_since(t).as_millis()),
                            "The watermark waits for a partition that has delivered no frame and is not idle."
                        );
                        self.last_hold_log = Some(now);
                    }
                    return Vec::new();
                }
            }
        }
        if let Some(reached) = low {
            if self.reached.back().is_none_or(|(_, last)| *last != reached) {
                self.reached.push_back((now, reached));
            }
        }
        let graced = self.reached_before(now);
        if any_idle {
            // No further than the others were IDLE_GRACE ago (nothing known then: no further);
            // once every partition is idle, as far as they were then.
            low = match (low, graced) {
                (Some(low), Some(graced)) => Some(low.min(graced)),
                (None, graced) => graced,
                (Some(_), None) => None,
            };
        }
        if let Some(low) = low {
            self.watermark = self.watermark.max(low);
        }
        let watermark = self.watermark;
        let mut moves = Vec::with_capacity(self.partitions.len());
        for (partition, progress) in &mut self.partitions {
            let quiet = progress.finished || progress.idle(self.idle_after, now);
            // A partition behind the watermark (it arrived late) closes at its own pace.
            let reach = if quiet {
                watermark
            } else {
                progress.max_ts.map_or(watermark, |m| m.min(watermark))
            };
            let old = progress.closed_below;
            progress.closed_below = old.max(reach);
            moves.push((*partition, old, progress.closed_below));
        }
        self.close_moved(&moves)
    }

    /// What the partitions holding the watermark had reached [`IDLE_GRACE`] before `now`;
    /// forgets what no later call needs.
    fn reached_before(&mut self, now: Instant) -> Option<f64> {
        let cutoff = now.checked_sub(IDLE_GRACE)?;
        while self.reached.len() > 1 && self.reached[1].0 <= cutoff {
            self.reached.pop_front();
        }
        self.reached
            .front()
            .filter(|(at, _)| *at <= cutoff)
            .map(|(_, reached)| *reached)
    }

    /// Closes every open window (the input is exhausted).
    pub fn close_all(&mut self) -> Vec<ClosedWindow> {
        let Some(last) = self.open.keys().next_back().copied() else {
            return Vec::new();
        };
        let beyond = (last + self.length + self.lateness) as f64;
        self.watermark = self.watermark.max(beyond);
        let moves: Vec<(PartitionId, f64, f64)> = self
            .partitions
            .iter_mut()
            .map(|(partition, progress)| {
                let old = progress.closed_below;
                progress.closed_below = old.max(beyond);
                (*partition, old, progress.closed_below)
            })
            .collect();
        self.close_moved(&moves)
    }

    /// Emits the parts of every window that partitions passed, given `(partition, old, new)`
    /// `closed_below`s.
    fn close_moved(&mut self, moves: &[(PartitionId, f64, f64)]) -> Vec<ClosedWindow> {
        let Some(furthest) = moves.iter().map(|m| m.2).reduce(f64::max) else {
            return Vec::new();
        };
        let mut closed = Vec::new();
        for (start, window) in self.open.iter_mut() {
            let edge = (start + self.length + self.lateness) as f64;
            if edge > furthest {
                break;
            }
            let covering: Vec<PartitionId> = moves
                .iter()
                .filter(|(_, old, new)| *old < edge && edge <= *new)
                .map(|m| m.0)
                .collect();
            let parts: Vec<Part> = covering
                .iter()
                .filter_map(|p| window.parts.remove(p))
                .collect();
            if parts.is_empty() {
                continue;
            }
            self.open_bytes -= parts.iter().map(part_bytes).sum::<usize>();
            closed.push(ClosedWindow {
                start: *start,
                end: start + self.length,
                unique_users: distinct(&parts),
                frames: parts.iter().map(|p| p.frames).sum(),
                partitions: covering,
            });
        }
        self.open.retain(|_, window| !window.parts.is_empty());
        closed
    }

    /// For every partition with a known position, the offset that is safe to commit: its
    /// position, held back to its first frame in any open window.
    pub fn commit_points(&self) -> Vec<CommitPoint> {
        self.partitions
            .iter()
            .filter_map(|(partition, progress)| {
                let next = progress.next_offset?;
                let held = self
                    .open
                    .values()
                    .filter_map(|w| w.parts.get(partition).map(|p| p.first_offset))
                    .min();
                Some(CommitPoint {
                    partition: *partition,
                    offset: held.map_or(next, |h| h.min(next)),
                    closed_below: progress
                        .closed_below
                        .is_finite()
                        .then_some(progress.closed_below),
                })
            })
            .collect()
    }

    /// The watermark, once every partition has delivered a frame.
    pub fn watermark(&self) -> Option<f64> {
        self.watermark.is_finite().then_some(self.watermark)
    }

    /// Number of windows with at least one open part.
    pub fn open_windows(&self) -> usize {
        self.open.len()
    }

    /// Each partition's event-time standing, for status reports.
    pub fn standings(&self, now: Instant) -> BTreeMap<PartitionId, Standing> {
        self.partitions
            .iter()
            .map(|(partition, progress)| {
                let parts = self.open.values().filter_map(|w| w.parts.get(partition));
                let open_windows = parts.clone().count();
                let open_uids = parts.map(|part| part.uids.len() as u64).sum();
                let standing = Standing {
                    max_ts: progress.max_ts,
                    closed_below: progress
                        .closed_below
                        .is_finite()
                        .then_some(progress.closed_below),
                    open_windows,
                    open_uids,
                    idle: progress.idle(self.idle_after, now),
                    finished: progress.finished,
                    paused: progress.paused,
                };
                (*partition, standing)
            })
            .collect()
    }

    /// Bytes the open windows hold: their uids (arena and table) and a fixed overhead per
    /// partition's part of a window. What the memory budget (`window.open_budget_mib`)
    /// measures.
    pub fn open_bytes(&self) -> usize {
        self.open_bytes
    }

    /// Pauses or resumes counting `partition` as possibly idle: a paused partition (its
    /// intake stopped by the memory budget) is never idle, and its idle clock starts afresh
    /// when it resumes.
    pub fn set_paused(&mut self, partition: PartitionId, paused: bool) {
        if let Some(progress) = self.partitions.get_mut(&partition) {
            progress.paused = paused;
            progress.caught_up_since = None;
        }
    }

    /// Which partition holds the watermark back and why, and which partitions are ahead of
    /// it (see [`IntakeView`]).
    pub fn intake_view(&self, now: Instant) -> IntakeView {
        let holding = || {
            self.partitions
                .iter()
                .filter(|(_, progress)| progress.holds(self.idle_after, now))
        };
        // A partition without frames holds before any with frames (its oldest frames may be
        // older than anything seen).
        let Some((holder, progress)) = holding().min_by(|(_, a), (_, b)| {
            let key = |p: &Progress| p.max_ts.unwrap_or(f64::NEG_INFINITY);
            key(a).total_cmp(&key(b))
        }) else {
            return IntakeView::default();
        };
        let silent_for = progress
            .last_heard
            .map(|heard| now.saturating_duration_since(heard));
        let reason = match (progress.last_heard, progress.max_ts) {
            (None, _) => HoldReason::NotHeardFrom,
            (Some(_), _)
                if progress.caught_up_since.is_some()
                    && silent_for.is_some_and(|s| s > HEARD_WITHIN) =>
            {
                HoldReason::Silent {
                    for_ms: silent_for.unwrap_or_default().as_millis(),
                }
            }
            (Some(_), None) => HoldReason::NoFrameYet,
            (Some(_), Some(ts)) => HoldReason::Behind { ts },
        };
        let low = progress.max_ts.unwrap_or(f64::NEG_INFINITY);
        let mut ahead: Vec<(PartitionId, f64)> = holding()
            .filter_map(|(p, progress)| progress.max_ts.map(|ts| (*p, ts)))
            .filter(|(_, ts)| *ts > low)
            .collect();
        ahead.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        IntakeView {
            holder: Some((*holder, reason)),
            ahead: ahead.into_iter().map(|(p, _)| p).collect(),
        }
    }
}

/// Distinct uids over the parts of one window.
fn distinct(parts: &[Part]) -> u64 {
    match parts {
        [only] => only.uids.len() as u64,
        _ => {
            let mut all: HashSet<&str> =
                HashSet::with_capacity(parts.iter().map(|p| p.uids.len()).sum());
            for part in parts {
                all.extend(part.uids.iter());
            }
            all.len() as u64
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;

    fn p(index: i32) -> PartitionId {
        PartitionId::of("t", index)
    }

    /// The `k`-th partition of a test over two topics: `a-0`, `b-0`, `a-1`, `b-1`, ...
    fn mixed(k: usize) -> PartitionId {
        PartitionId::of(if k.is_multiple_of(2) { "a" } else { "b" }, (k / 2) as i32)
    }

    fn config(length: i64, lateness: i64) -> WindowConfig {
        WindowConfig {
            length_secs: length,
            lateness_secs: lateness,
            idle_after_ms: 1_000,
            max_lead_secs: 0,
            open_budget_mib: 0.0,
        }
    }

    fn chunk(frames: &[(i64, f64, &str)]) -> FrameChunk {
        let mut c = FrameChunk::with_capacity(frames.len());
        for (o, ts, uid) in frames {
            c.push(*o, *ts, uid);
        }
        c
    }

    fn starts(partitions: &[(i32, Option<i64>)]) -> Vec<PartitionStart> {
        partitions
            .iter()
            .map(|(partition, next_offset)| PartitionStart {
                partition: p(*partition),
                next_offset: *next_offset,
                closed_below: None,
            })
            .collect()
    }

    fn offsets(w: &Windows) -> Vec<(i32, i64)> {
        w.commit_points()
            .iter()
            .map(|c| (c.partition.index, c.offset))
            .collect()
    }

    fn closed(
        start: i64,
        end: i64,
        unique_users: u64,
        frames: u64,
        partitions: &[i32],
    ) -> ClosedWindow {
        ClosedWindow {
            start,
            end,
            unique_users,
            frames,
            partitions: partitions.iter().map(|i| p(*i)).collect(),
        }
    }

    #[test]
    fn counts_distinct_users_across_partitions_and_closes_on_watermark() {
        let now = Instant::now();
        let mut w = Windows::new(&config(60, 5), &starts(&[(0, None), (1, None)]));
        w.ingest(
            p(0),
            &chunk(&[(0, 60.0, "a"), (1, 61.0, "b"), (2, 70.0, "a")]),
            Some(3),
            false,
            now,
        );
        // Partition 1 has not spoken: nothing can close even though partition 0 is far ahead.
        w.ingest(p(0), &chunk(&[(3, 200.0, "c")]), Some(4), false, now);
        assert!(w.advance(now).is_empty());
        w.ingest(
            p(1),
            &chunk(&[(0, 65.0, "b"), (1, 124.0, "d")]),
            Some(2),
            false,
            now,
        );
        // Watermark = min(200, 124) = 124: window [60,120) closes at 125, not yet.
        assert!(w.advance(now).is_empty());
        w.ingest(p(1), &chunk(&[(2, 125.0, "e")]), Some(3), false, now);
        assert_eq!(w.advance(now), vec![closed(60, 120, 2, 4, &[0, 1])]);
        // A frame for the closed window is late and changes nothing.
        let late = w.ingest(p(1), &chunk(&[(3, 119.0, "z")]), Some(4), false, now);
        assert_eq!(
            late,
            Ingested {
                counted: 0,
                late: 1,
                lead: None,
            }
        );
    }

    #[test]
    fn a_partition_far_ahead_of_the_others_is_reported_once_each_time_it_gets_there() {
        let now = Instant::now();
        let config = WindowConfig {
            max_lead_secs: 3_600,
            ..config(60, 5)
        };
        let mut w = Windows::new(&config, &starts(&[(0, Some(0)), (1, Some(0))]));
        let at = |ts: f64| chunk(&[(0, ts, "a")]);
        assert_eq!(w.ingest(p(0), &at(1_000.0), Some(1), false, now).lead, None);
        assert_eq!(w.ingest(p(1), &at(1_010.0), Some(1), false, now).lead, None);
        let ahead = w.ingest(p(1), &at(10_000.0), Some(2), false, now);
        assert_eq!(
            ahead.lead,
            Some(Lead {
                ts: 10_000.0,
                others_ts: 1_000.0
            })
        );
        assert_eq!(ahead.counted, 1, "reported, still counted");
        assert_eq!(
            w.ingest(p(1), &at(10_001.0), Some(3), false, now).lead,
            None,
            "once"
        );
        // Partition 0 catches up; a later jump is reported again.
        w.ingest(p(0), &at(9_000.0), Some(2), false, now);
        assert_eq!(
            w.ingest(p(1), &at(10_002.0), Some(4), false, now).lead,
            None
        );
        w.ingest(p(0), &at(9_001.0), Some(3), false, now);
        assert!(w
            .ingest(p(1), &at(20_000.0), Some(5), false, now)
            .lead
            .is_some());
        // Not watched with max_lead_secs = 0.
        let mut off = Windows::new(
            &WindowConfig {
                max_lead_secs: 0,
                ..config
            },
            &starts(&[(0, Some(0)), (1, Some(0))]),
        );
        off.ingest(p(0), &at(1_000.0), Some(1), false, now);
        assert_eq!(off.ingest(p(1), &at(1e9), Some(1), false, now).lead, None);
    }

    #[test]
    fn commit_offsets_stop_at_first_frame_of_an_open_window() {
        let now = Instant::now();
        let mut w = Windows::new(&config(10, 0), &starts(&[(0, Some(0)), (1, None)]));
        assert_eq!(offsets(&w), vec![(0, 0)]);
        w.ingest(
            p(0),
            &chunk(&[(5, 100.0, "a"), (6, 111.0, "b"), (7, 101.0, "c")]),
            Some(9),
            false,
            now,
        );
        assert_eq!(offsets(&w), vec![(0, 5)]);
        w.ingest(p(1), &chunk(&[(40, 125.0, "a")]), Some(41), false, now);
        assert_eq!(
            w.advance(now).len(),
            1,
            "window [100,110) closes at watermark 111"
        );
        // Partition 0's earliest open frame is offset 6 (window [110,120)).
        assert_eq!(offsets(&w), vec![(0, 6), (1, 40)]);
        assert_eq!(w.commit_points()[0].closed_below, Some(111.0));
        assert_eq!(w.close_all().len(), 2);
        assert_eq!(offsets(&w), vec![(0, 9), (1, 41)]);
    }

    #[test]
    fn idle_partitions_stop_holding_the_watermark_but_backlogs_do_not() {
        let start = Instant::now();
        let mut w = Windows::new(&config(10, 0), &starts(&[(0, None), (1, None)]));
        w.ingest(
            p(0),
            &chunk(&[(0, 105.0, "a"), (1, 130.0, "b")]),
            Some(2),
            false,
            start,
        );
        // Partition 1 is empty and caught up.
        w.ingest(p(1), &FrameChunk::default(), Some(0), true, start);
        assert!(w.advance(start).is_empty());
        let at = |ms| start + Duration::from_millis(ms);
        w.ingest(p(1), &FrameChunk::default(), Some(0), true, at(750));
        assert!(w.advance(at(999)).is_empty());
        // Idle from 1 s; partition 0 had reached 130 only then, so windows close once it has
        // been there for IDLE_GRACE.
        let grace = IDLE_GRACE.as_millis() as u64;
        let closed = at_end_until(&mut w, start, p(1), 1_000, 1_000 + grace);
        assert_eq!(closed, vec![(1_000 + grace, vec![closed_at(100, &[0, 1])])]);
        // New data on partition 1 makes it active again; the watermark does not move back.
        w.ingest(
            p(1),
            &chunk(&[(0, 121.0, "c")]),
            Some(1),
            false,
            start + Duration::from_secs(2),
        );
        assert_eq!(w.watermark(), Some(130.0));
    }

    /// Partition `idle` says it is at its end every 250 ms from `from_ms` to `to_ms` (after
    /// `start` of the first call's windows), the windows advancing each time; returns what
    /// closed, and when.
    fn at_end_until(
        w: &mut Windows,
        start: Instant,
        idle: PartitionId,
        from_ms: u64,
        to_ms: u64,
    ) -> Vec<(u64, Vec<ClosedWindow>)> {
        let mut closed = Vec::new();
        for ms in (from_ms..=to_ms).step_by(250) {
            let now = start + Duration::from_millis(ms);
            w.ingest(idle, &FrameChunk::default(), None, true, now);
            let some = w.advance(now);
            if !some.is_empty() {
                closed.push((ms, some));
            }
        }
        closed
    }

    /// Both producers pause, so both partitions go idle; they resume together, but partition
    /// 1's leader answers 900 ms later than partition 0's (a slow link). Partition 0's new
    /// frames pass window 100 (plus lateness) at once; partition 1's first new frame, stamped
    /// as its producer's clock was, belongs to window 100 and arrives 900 ms later. Counted,
    /// and the window written whole: closing it on partition 0's progress alone made that frame
    /// late (`chaos --nemesis random --seed 211 --first-run 6`, 13 to 91 frames missed).
    #[test]
    fn an_idle_partition_whose_fetches_come_back_slower_misses_no_window() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut w = Windows::new(&config(10, 3), &starts(&[(0, None), (1, None)]));
        w.ingest(p(0), &chunk(&[(0, 101.0, "a")]), Some(1), true, start);
        w.ingest(p(1), &chunk(&[(0, 102.0, "b")]), Some(1), true, start);
        for ms in (250..=2_000).step_by(250) {
            w.ingest(p(0), &FrameChunk::default(), None, true, at(ms));
            w.ingest(p(1), &FrameChunk::default(), None, true, at(ms));
            assert!(w.advance(at(ms)).is_empty(), "{ms} ms");
        }
        // The producers resume at 2 s: partition 0's frames arrive at once.
        w.ingest(p(0), &chunk(&[(1, 114.0, "c")]), Some(2), false, at(2_050));
        for ms in (2_100..=2_850).step_by(250) {
            w.ingest(p(1), &FrameChunk::default(), None, true, at(ms));
            assert!(w.advance(at(ms)).is_empty(), "{ms} ms");
        }
        let late = w.ingest(
            p(1),
            &chunk(&[(1, 108.0, "d"), (2, 115.0, "e")]),
            Some(3),
            false,
            at(2_950),
        );
        assert_eq!(late.late, 0, "{late:?}");
        assert_eq!(w.advance(at(3_000)), vec![closed(100, 110, 3, 3, &[0, 1])]);
    }

    /// Partition 0 is idle; partition 1 reads its last frames (to 115) and goes idle too,
    /// within IDLE_GRACE: window 100 closes IDLE_GRACE after partition 1 got there, though
    /// nothing holds the watermark by then.
    #[test]
    fn windows_close_when_the_last_reading_partition_goes_idle_within_the_grace() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut w = Windows::new(&config(10, 3), &starts(&[(0, None), (1, None)]));
        w.ingest(p(0), &chunk(&[(0, 102.0, "a")]), Some(1), true, start);
        w.ingest(p(1), &chunk(&[(0, 103.0, "b")]), Some(1), false, start);
        for ms in (250..=1_500).step_by(250) {
            w.ingest(p(0), &FrameChunk::default(), None, true, at(ms));
            assert!(w.advance(at(ms)).is_empty(), "{ms} ms");
        }
        w.ingest(p(1), &chunk(&[(1, 115.0, "c")]), Some(2), true, at(1_600));
        let mut written = Vec::new();
        for ms in (1_750..=6_000).step_by(250) {
            w.ingest(p(0), &FrameChunk::default(), None, true, at(ms));
            w.ingest(p(1), &FrameChunk::default(), None, true, at(ms));
            let some = w.advance(at(ms));
            if !some.is_empty() {
                written.push((ms, some));
            }
        }
        let grace = IDLE_GRACE.as_millis() as u64;
        assert_eq!(
            written,
            vec![(1_750 + grace, vec![closed(100, 110, 2, 2, &[0, 1])])]
        );
    }

    /// Partition 0 is ahead (130) and still reading; partition 1 (at 101) caught up at `start`.
    fn one_ahead_one_caught_up(start: Instant) -> Windows {
        let mut w = Windows::new(&config(10, 0), &starts(&[(0, None), (1, None)]));
        w.ingest(
            p(0),
            &chunk(&[(0, 105.0, "a"), (1, 130.0, "b")]),
            Some(2),
            false,
            start,
        );
        w.ingest(p(1), &chunk(&[(0, 101.0, "c")]), Some(1), true, start);
        w
    }

    #[test]
    fn a_caught_up_partition_that_goes_silent_holds_the_watermark() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut w = one_ahead_one_caught_up(start);
        // Partition 1's reader stopped reporting (stalled or dead): frames may be waiting
        // there, so nothing closes.
        assert!(w.advance(at(5_000)).is_empty());
        // Once it says again that it is at its end, it is idle, and windows close once
        // partition 0 has been ahead of them for IDLE_GRACE with nothing holding it back.
        let grace = IDLE_GRACE.as_millis() as u64;
        let closed = at_end_until(&mut w, start, p(1), 5_000, 5_000 + grace);
        assert_eq!(
            closed
                .iter()
                .map(|(ms, c)| (*ms, c.len()))
                .collect::<Vec<_>>(),
            vec![(5_000 + grace, 1)]
        );
    }

    #[test]
    fn a_reader_that_cannot_reach_its_leader_restarts_the_idle_clock() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut w = one_ahead_one_caught_up(start);
        // Partition 1 is quiet, but from 600 ms its leader is out of reach (a broker outage):
        // its heartbeats say it is not known to be at its end.
        for ms in (250..=600).step_by(250) {
            w.ingest(p(1), &FrameChunk::default(), Some(1), true, at(ms));
        }
        for ms in (750..=2_000).step_by(250) {
            w.ingest(p(1), &FrameChunk::default(), Some(1), false, at(ms));
            assert!(
                w.advance(at(ms)).is_empty(),
                "not idle while cut off ({ms} ms)"
            );
        }
        // Reached again at 2.25 s: idle only a full `idle_after` (1 s) later, which gives what
        // producers buffered meanwhile time to arrive, and windows close once partition 0 has
        // been ahead of them for IDLE_GRACE with nothing holding it back.
        let grace = IDLE_GRACE.as_millis() as u64;
        let closed = at_end_until(&mut w, start, p(1), 2_250, 3_250 + grace + 500);
        assert_eq!(
            closed
                .iter()
                .map(|(ms, c)| (*ms, c.len()))
                .collect::<Vec<_>>(),
            vec![(3_250 + grace, 1)]
        );
    }

    fn closed_at(start: i64, partitions: &[i32]) -> ClosedWindow {
        closed(start, start + 10, 1, 1, partitions)
    }

    #[test]
    fn a_resumed_partition_treats_windows_it_already_closed_as_late() {
        let now = Instant::now();
        let mut w = Windows::new(
            &config(10, 2),
            &[PartitionStart {
                partition: p(0),
                next_offset: Some(3),
                closed_below: Some(122.0),
            }],
        );
        let r = w.ingest(
            p(0),
            &chunk(&[(3, 109.0, "a"), (4, 119.0, "b"), (5, 121.0, "c")]),
            Some(6),
            false,
            now,
        );
        assert_eq!(
            r,
            Ingested {
                counted: 1,
                late: 2,
                lead: None,
            }
        );
    }

    #[test]
    fn a_partition_that_arrives_behind_closes_its_own_share_separately() {
        let now = Instant::now();
        let mut w = Windows::new(&config(10, 0), &starts(&[(0, Some(0))]));
        w.ingest(
            p(0),
            &chunk(&[(0, 101.0, "a"), (1, 135.0, "b")]),
            Some(2),
            false,
            now,
        );
        assert_eq!(w.advance(now), vec![closed(100, 110, 1, 1, &[0])]);
        // Partition 1 moves here; its last owner closed it up to 100.
        w.add_partition(PartitionStart {
            partition: p(1),
            next_offset: Some(7),
            closed_below: Some(100.0),
        });
        assert!(w.advance(now).is_empty(), "partition 1 has not spoken");
        w.ingest(
            p(1),
            &chunk(&[
                (7, 95.0, "x"),
                (8, 104.0, "y"),
                (9, 104.5, "y"),
                (10, 112.0, "z"),
            ]),
            Some(11),
            false,
            now,
        );
        // Its share of [100,110) is new: a second line for that window, naming partition 1 only.
        assert_eq!(w.advance(now), vec![closed(100, 110, 1, 2, &[1])]);
        // The watermark stays at 135 (it never moves back) while partition 1 catches up.
        assert_eq!(w.watermark(), Some(135.0));
        w.ingest(p(1), &chunk(&[(11, 140.0, "w")]), Some(12), false, now);
        // Partition 1 has caught up with the watermark (135): its share of [110,120) closes.
        assert_eq!(w.advance(now), vec![closed(110, 120, 1, 1, &[1])]);
        assert_eq!(
            w.commit_points()[1].offset,
            11,
            "held by its frame in [140,150)"
        );
        // From here both partitions close together again.
        w.ingest(p(0), &chunk(&[(2, 151.0, "v")]), Some(3), false, now);
        assert_eq!(w.advance(now), vec![closed(130, 140, 1, 1, &[0, 1])]);
        w.ingest(p(1), &chunk(&[(12, 152.0, "u")]), Some(13), false, now);
        assert_eq!(w.advance(now), vec![closed(140, 150, 1, 1, &[0, 1])]);
    }

    #[test]
    fn a_removed_partition_leaves_no_trace_in_open_windows() {
        let now = Instant::now();
        let mut w = Windows::new(&config(10, 0), &starts(&[(0, Some(0)), (1, Some(0))]));
        w.ingest(p(0), &chunk(&[(0, 101.0, "a")]), Some(1), false, now);
        w.ingest(
            p(1),
            &chunk(&[(0, 102.0, "b"), (1, 125.0, "c")]),
            Some(2),
            false,
            now,
        );
        w.remove_partition(p(1));
        assert_eq!(offsets(&w), vec![(0, 0)]);
        let r = w.ingest(p(1), &chunk(&[(2, 126.0, "d")]), Some(3), false, now);
        assert_eq!(
            r,
            Ingested::default(),
            "a chunk that raced the removal is ignored"
        );
        assert_eq!(w.close_all(), vec![closed(100, 110, 1, 1, &[0])]);
    }

    #[test]
    fn open_bytes_follow_the_uids_of_open_windows_and_return_to_zero() {
        let now = Instant::now();
        let mut w = Windows::new(&config(10, 0), &starts(&[(0, Some(0)), (1, Some(0))]));
        assert_eq!(w.open_bytes(), 0);
        let many: Vec<(i64, f64, String)> = (0..1_000)
            .map(|i| (i, 101.0, format!("user-{i}")))
            .collect();
        let frames: Vec<(i64, f64, &str)> = many
            .iter()
            .map(|(o, ts, u)| (*o, *ts, u.as_str()))
            .collect();
        w.ingest(p(0), &chunk(&frames), Some(1_000), false, now);
        let one_part = w.open_bytes();
        assert!(one_part > 1_000 * 6, "{one_part} bytes for 1 000 uids");
        // The same uids again take nothing more.
        w.ingest(p(0), &chunk(&frames), Some(2_000), false, now);
        assert_eq!(w.open_bytes(), one_part);
        w.ingest(p(1), &chunk(&frames[..10]), Some(10), false, now);
        w.ingest(p(1), &chunk(&[(10, 125.0, "x")]), Some(11), false, now);
        assert!(w.open_bytes() > one_part);
        w.remove_partition(p(1));
        assert_eq!(w.open_bytes(), one_part);
        assert_eq!(w.close_all().len(), 1);
        assert_eq!(w.open_bytes(), 0);
    }

    #[test]
    fn a_paused_partition_is_never_idle_and_its_idle_clock_restarts_on_resume() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut w = one_ahead_one_caught_up(start);
        // Partition 1 (at 101) is caught up; paused, it holds the watermark however long it
        // has been at its end, even while it keeps saying so.
        w.set_paused(p(1), true);
        for ms in (250..=3_000).step_by(250) {
            w.ingest(p(1), &FrameChunk::default(), Some(1), true, at(ms));
            assert!(w.advance(at(ms)).is_empty(), "idle while paused ({ms} ms)");
        }
        w.set_paused(p(1), false);
        w.ingest(p(1), &FrameChunk::default(), Some(1), true, at(3_100));
        assert!(
            w.advance(at(3_900)).is_empty(),
            "idle before a full idle_after"
        );
        let grace = IDLE_GRACE.as_millis() as u64;
        // Idle from 4.1 s, first seen so at 4.25 s.
        let closed = at_end_until(&mut w, start, p(1), 4_000, 4_250 + grace + 500);
        assert_eq!(
            closed
                .iter()
                .map(|(ms, c)| (*ms, c.len()))
                .collect::<Vec<_>>(),
            vec![(4_250 + grace, 1)]
        );
    }

    #[test]
    fn the_intake_view_names_the_holder_and_why_and_who_is_ahead() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut w = Windows::new(
            &config(10, 0),
            &starts(&[(0, Some(0)), (1, Some(0)), (2, Some(0))]),
        );
        w.ingest(p(1), &chunk(&[(0, 150.0, "a")]), Some(1), false, start);
        w.ingest(p(2), &chunk(&[(0, 120.0, "b")]), Some(1), false, start);
        let view = w.intake_view(start);
        assert_eq!(view.holder, Some((p(0), HoldReason::NotHeardFrom)));
        assert_eq!(view.ahead, vec![p(1), p(2)], "furthest ahead first");
        // Partition 0 reports, without frames yet.
        w.ingest(p(0), &FrameChunk::default(), Some(0), false, at(10));
        assert_eq!(
            w.intake_view(at(10)).holder,
            Some((p(0), HoldReason::NoFrameYet))
        );
        w.ingest(p(0), &chunk(&[(0, 101.0, "c")]), Some(1), false, at(20));
        let view = w.intake_view(at(20));
        assert_eq!(view.holder, Some((p(0), HoldReason::Behind { ts: 101.0 })));
        assert_eq!(view.ahead, vec![p(1), p(2)]);
        // Caught up, then silent for 1.5 s: it still holds, and the view says why.
        w.ingest(p(0), &FrameChunk::default(), Some(1), true, at(30));
        assert_eq!(
            w.intake_view(at(1_530)).holder,
            Some((p(0), HoldReason::Silent { for_ms: 1_500 }))
        );
        // Idle (heard recently, caught up for idle_after): partition 2 holds now.
        w.ingest(p(0), &FrameChunk::default(), Some(1), true, at(1_600));
        let view = w.intake_view(at(1_700));
        assert_eq!(view.holder, Some((p(2), HoldReason::Behind { ts: 120.0 })));
        assert_eq!(view.ahead, vec![p(1)]);
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

    const UIDS: [&str; 16] = [
        "u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9", "ua", "ub", "uc", "ud", "ue",
        "uf",
    ];

    proptest! {
        /// With jitter within the lateness, in-order delivery per partition, any interleaving of
        /// partitions and any chunking, the closed windows equal a direct count.
        #[test]
        fn closed_windows_match_direct_count((data, jitter) in dataset(), chunk_len in 1usize..7, seed in any::<u64>()) {
            let now = Instant::now();
            // Partitions alternate between two topics: the windows merge frames of both.
            let parts: Vec<PartitionStart> = (0..data.len()).map(|k| PartitionStart {
                partition: mixed(k),
                next_offset: Some(0),
                closed_below: None,
            }).collect();
            let mut w = Windows::new(&config(7, jitter), &parts);
            let mut truth: BTreeMap<i64, (BTreeSet<u8>, u64)> = BTreeMap::new();
            for part in &data {
                for (ts, uid) in part {
                    let e = truth.entry((ts / 7.0).floor() as i64 * 7).or_default();
                    e.0.insert(*uid);
                    e.1 += 1;
                }
            }
            let mut cursors = vec![0usize; data.len()];
            let mut emitted: Vec<ClosedWindow> = Vec::new();
            let mut rng = seed;
            while cursors.iter().zip(&data).any(|(c, d)| *c < d.len()) {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let p = (rng >> 33) as usize % data.len();
                let from = cursors[p];
                let to = (from + chunk_len).min(data[p].len());
                if from == to { continue; }
                let c = chunk(&data[p][from..to].iter().enumerate()
                    .map(|(i, (ts, uid))| ((from + i) as i64, *ts, UIDS[*uid as usize]))
                    .collect::<Vec<_>>());
                let r = w.ingest(mixed(p), &c, Some(to as i64), false, now);
                prop_assert_eq!(r.late, 0);
                cursors[p] = to;
                // Never commit past the first frame of an open window.
                for point in w.commit_points() {
                    let part = (0..data.len()).find(|k| mixed(*k) == point.partition).expect("a partition of the test");
                    let first_open = data[part][..cursors[part]].iter().position(|(ts, _)| {
                        let start = (ts / 7.0).floor() as i64 * 7;
                        !emitted.iter().any(|c| c.start == start)
                    });
                    if let Some(first) = first_open { prop_assert!(point.offset <= first as i64); }
                }
                emitted.extend(w.advance(now));
            }
            for k in 0..data.len() { w.finish_partition(mixed(k)); }
            emitted.extend(w.close_all());
            prop_assert_eq!(w.open_bytes(), 0, "closed windows hold no memory");
            let mut all: Vec<PartitionId> = (0..data.len()).map(mixed).collect();
            all.sort();
            prop_assert!(emitted.iter().all(|c| c.partitions == all), "one line per window, for every partition");
            let got: BTreeMap<i64, (u64, u64)> = emitted.iter().map(|c| (c.start, (c.unique_users, c.frames))).collect();
            let want: BTreeMap<i64, (u64, u64)> = truth.iter().map(|(s, (u, f))| (*s, (u.len() as u64, *f))).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(emitted.len(), truth.len(), "each window emitted once");
        }
    }
}
