//! Flushes: closed windows, dead letters and the offsets safe to commit, taken at one instant
//! and handed to the outlet on a blocking thread, one flush at a time; what their outcome
//! does to the actor (commits recorded, releases answered, the output stopped or, exactly
//! once, the flush dropped and its partitions read again).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::{positions, BatchActor, BatchEvent, Completion, DrainReport, RELEASE_COMMIT_RETRY};
use crate::failure::OutputFailure;
use crate::frame::DeadLetter;
use crate::metrics::Flushed;
use crate::outlet::{Outlet, TransactionFailure};
use crate::ports::{CommitError, CommitErrorKind, CommitPosition};
use crate::topic::PartitionId;
use crate::window::ClosedWindow;

/// How many flushes started and finished; flushes run one at a time, in order, so every
/// flush numbered up to `finished` is done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct FlushCount {
    /// The number of the last flush started.
    pub(super) started: u64,
    /// The number of the last flush finished.
    pub(super) finished: u64,
}

/// One flush's work, made on the actor and done on the flush thread.
struct FlushJob {
    /// Its number.
    seq: u64,
    /// Says whether no partition was let go as lost since the job was made.
    owned: OwnedSince,
    windows: Vec<ClosedWindow>,
    /// Invalid records for the dead-letter topic.
    dead_letters: Vec<DeadLetter>,
    positions: Vec<CommitPosition>,
    commit: bool,
    /// Until when a failed commit is tried again (partitions are being released); `None`
    /// for a single attempt.
    retry_commit_until: Option<Instant>,
    /// Frames counted since the flush before.
    frames: u64,
}

/// Whether partitions were let go as lost since a flush was made (see
/// [`TransactionalSink::write_and_commit`](crate::outlet::TransactionalSink::write_and_commit)).
struct OwnedSince {
    losses: Arc<AtomicU64>,
    at: u64,
}

impl OwnedSince {
    fn still(&self) -> bool {
        self.losses.load(Ordering::SeqCst) == self.at
    }
}

/// What a flush did, handed back to the actor with the outlet.
struct FlushDone {
    /// The outlet, back from the flush thread.
    target: Outlet,
    /// The job done.
    job: FlushJob,
    /// How long writing and committing took.
    duration: Duration,
    /// The write failed: the output stops.
    sink_error: Option<OutputFailure>,
    /// What the commit did, when one was made.
    commit: Option<Result<Vec<CommitPosition>, CommitError>>,
    /// Exactly once: the member lost some or all partitions of the flush while its
    /// transaction was open; nothing of it was written or committed, and it is dropped.
    dropped: Option<String>,
}

/// Where output stands (what an operator sees for it).
pub(super) enum Output {
    /// No flush is running; the outlet is here.
    Idle(Outlet),
    /// Flush number `seq` has the sink and committer on the flush thread; with `again`,
    /// another flush is due as soon as it returns.
    Flushing {
        /// The flush's number.
        seq: u64,
        /// Another flush is wanted right after it.
        again: bool,
        /// When it started.
        since: Instant,
    },
    /// Output failed: nothing more is written or committed.
    Failed,
}

impl Output {
    /// When the flush under way started.
    pub(super) fn flushing_since(&self) -> Option<Instant> {
        match self {
            Output::Flushing { since, .. } => Some(*since),
            Output::Idle(_) | Output::Failed => None,
        }
    }
}

impl BatchActor {
    /// Whether `positions` need a commit: not already the last one's.
    fn commit_wanted(&self, positions: &[CommitPosition]) -> bool {
        !positions.is_empty() && positions != self.last_commit.as_slice()
    }

    /// Flushes if enough frames came or enough time passed since the last flush, or one is
    /// forced.
    pub(super) fn maybe_flush(&mut self, ctx: &mut Context<Self>) {
        let due = self.force
            || self.frames_since_flush >= self.config.max_frames
            || self.last_flush.elapsed() >= Duration::from_millis(self.config.interval_ms);
        if due {
            self.flush(ctx);
        }
    }

    /// Starts a flush of what is closed now, or asks for one right after the flush under way.
    pub(super) fn flush(&mut self, ctx: &mut Context<Self>) {
        if let Some(all) = &self.require_full_cover {
            if let Some(partial) = self.pending.iter().find(|w| &w.partitions != all) {
                let error = OutputFailure::PartialLine {
                    start: partial.start,
                    partitions: partial.partitions.clone(),
                    all: all.clone(),
                };
                self.pending.clear();
                return self.fail(error, ctx);
            }
        }
        let target = match std::mem::replace(&mut self.output, Output::Failed) {
            Output::Idle(target) => target,
            Output::Flushing { seq, since, .. } => {
                self.output = Output::Flushing {
                    seq,
                    again: true,
                    since,
                };
                return;
            }
            Output::Failed => return,
        };
        // Windows and offsets are taken at the same instant: every window still open bounds
        // the offsets, every window closed before is in this flush or an earlier one.
        let positions = positions(&self.windows);
        let commit = self.commit_wanted(&positions);
        // A dead letter goes out with the commit that passes it, never before: written ahead
        // of its commit, it would be read and written again after a restart from that commit.
        let passed: std::collections::BTreeMap<PartitionId, i64> =
            positions.iter().map(|p| (p.partition, p.offset)).collect();
        let (dead_letters, later): (Vec<DeadLetter>, Vec<DeadLetter>) =
            std::mem::take(&mut self.pending_dead)
                .into_iter()
                .partition(|d| passed.get(&d.partition).is_some_and(|at| d.offset < *at));
        self.pending_dead = later;
        self.flushes.started += 1;
        let seq = self.flushes.started;
        // The earliest deadline: no releasing side may wait longer than it said.
        let retry_commit_until = self
            .release_waiters
            .iter()
            .filter(|w| w.needed == seq)
            .map(|w| w.retry_until)
            .min();
        let job = FlushJob {
            seq,
            owned: OwnedSince {
                losses: self.losses.clone(),
                at: self.losses.load(Ordering::SeqCst),
            },
            windows: std::mem::take(&mut self.pending),
            dead_letters,
            positions,
            commit,
            retry_commit_until,
            frames: std::mem::take(&mut self.frames_since_flush),
        };
        self.last_flush = Instant::now();
        self.force = false;
        if job.windows.is_empty() && job.dead_letters.is_empty() && !job.commit {
            // Nothing to write: these positions are the last commit's, durable already.
            self.written
                .extend(job.positions.iter().map(|p| (p.partition, p.clone())));
            self.output = Output::Idle(target);
            self.flushes.finished = job.seq;
            self.flush_finished(ctx);
            return;
        }
        self.output = Output::Flushing {
            seq: job.seq,
            again: false,
            since: Instant::now(),
        };
        let work = actix_rt::task::spawn_blocking(move || run_flush(target, job));
        ctx.spawn(work.into_actor(self).map(|result, act, ctx| match result {
            Ok(done) => act.on_flush_done(done, ctx),
            Err(join_error) => {
                // The flush thread panicked: the sink and committer are gone.
                act.fail(OutputFailure::FlushThread(join_error.to_string()), ctx);
            }
        }));
    }

    /// Takes a flush's outcome: the outlet back, commits recorded, the output stopped on a
    /// failure, or (exactly once) the flush dropped and the partitions still held read again.
    fn on_flush_done(&mut self, done: FlushDone, ctx: &mut Context<Self>) {
        let FlushDone {
            target,
            job,
            duration,
            sink_error,
            commit,
            dropped,
        } = done;
        let commit_error = match &commit {
            Some(Err(error)) => Some(error.to_string()),
            _ => None,
        };
        match std::mem::replace(&mut self.output, Output::Idle(target)) {
            // Another flush was asked for meanwhile: it goes out as soon as this one is done.
            Output::Flushing { seq, again, .. } if seq == job.seq => self.force |= again,
            Output::Flushing { seq, .. } => {
                tracing::error!(
                    seq,
                    done = job.seq,
                    "A flush returned that was not running."
                );
            }
            Output::Idle(_) | Output::Failed => {
                tracing::error!(done = job.seq, "A flush returned while none was running.");
            }
        }
        self.flushes.finished = job.seq;
        if let Some(reason) = dropped {
            // A dropped flush is a commit that did not happen: flushes dropped for longer than
            // `flush.commit_failure_timeout_ms` (a member that never gets into a stable
            // generation) stop the output rather than read the same frames again for ever.
            let since = *self.commits_failing_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_millis(self.config.commit_failure_timeout_ms) {
                let reason = format!(
                    "flushes dropped for {} ms (flush.commit_failure_timeout_ms): {reason}",
                    since.elapsed().as_millis()
                );
                self.fail(
                    OutputFailure::Transaction(TransactionFailure::NotInGroup { reason }),
                    ctx,
                );
                return;
            }
            // The lost partitions' next owner reads them from the last committed transaction.
            // The dropped windows also held the shares of partitions still held here (a
            // revocation that took only some): those are read again from there as well.
            let held = self.forget_since_commit();
            tracing::warn!(
                %reason,
                windows = job.windows.len(),
                dead_letters = job.dead_letters.len(),
                read_again = ?held.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "The member lost partitions of the flush while its transaction was open; the \
                 transaction was aborted and the flush dropped, and the partitions still held \
                 are read again from their last commit."
            );
            if let (false, Some(supervisor)) = (held.is_empty(), &self.supervisor) {
                supervisor.do_send(BatchEvent::ReadAgain(held));
            }
            self.flush_finished(ctx);
            return;
        }
        self.metrics.do_send(Flushed {
            duration,
            frames: job.frames,
            unique_users: job.windows.iter().map(|w| w.unique_users).collect(),
            commit_attempted: job.commit && sink_error.is_none(),
            dead_letters: match sink_error {
                None => job.dead_letters.len() as u64,
                Some(_) => 0,
            },
            commit_error: commit_error.clone(),
            commit_failure: match &commit {
                Some(Err(error)) => Some(error.kind),
                _ => None,
            },
            open_bytes: self.windows.open_bytes() as u64,
            peak_open_bytes: self.peak_open_bytes as u64,
        });
        if let Some(error) = sink_error {
            self.fail(error, ctx);
            return;
        }
        self.written
            .extend(job.positions.iter().map(|p| (p.partition, p.clone())));
        match commit {
            Some(Err(error)) => {
                // Logged and counted by the metrics actor (`Flushed`).
                self.last_commit_error = Some(error.to_string());
                // A passing fault never stops the output; anything else does once commits have
                // failed for `flush.commit_failure_timeout_ms`.
                if error.kind != CommitErrorKind::Transient {
                    let since = *self.commits_failing_since.get_or_insert_with(Instant::now);
                    let limit = Duration::from_millis(self.config.commit_failure_timeout_ms);
                    if since.elapsed() >= limit {
                        let error = OutputFailure::CommitsRefused {
                            error: error.to_string(),
                            for_ms: since.elapsed().as_millis(),
                            timeout_ms: self.config.commit_failure_timeout_ms,
                        };
                        return self.fail(error, ctx);
                    }
                }
            }
            Some(Ok(committed)) => {
                // Only what was committed counts: positions of partitions no longer read
                // here were left out.
                self.committed
                    .extend(committed.into_iter().map(|p| (p.partition, p)));
                self.last_commit = job.positions;
                self.last_commit_error = None;
                self.commits_failing_since = None;
            }
            None => {}
        }
        self.flush_finished(ctx);
    }

    /// After a flush: answers the releases and drains waiting for it, starts the next flush if
    /// one is due, and reports completion.
    fn flush_finished(&mut self, ctx: &mut Context<Self>) {
        let done = self.flushes.finished;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.release_waiters)
            .into_iter()
            .partition(|w| w.needed <= done);
        self.release_waiters = waiting;
        for waiter in ready {
            let _ = waiter.reply.send(self.release(&waiter.partitions));
        }
        if self.force {
            self.flush(ctx);
            return;
        }
        if self.completion == Completion::Closing && self.pending.is_empty() {
            self.completion = Completion::Reported;
            if let Some(supervisor) = &self.supervisor {
                supervisor.do_send(BatchEvent::Completed);
            }
        }
        if !self.drain_waiters.is_empty() && self.pending.is_empty() {
            let report = DrainReport {
                committed: self
                    .committed
                    .values()
                    .map(|p| (p.partition, p.offset))
                    .collect(),
                open_windows: self.windows.open_windows(),
                commit_error: self.last_commit_error.clone(),
            };
            for waiter in self.drain_waiters.drain(..) {
                let _ = waiter.send(report.clone());
            }
        }
    }
}

/// Writes and commits one flush: on the flush thread, where blocking is allowed.
fn run_flush(mut target: Outlet, job: FlushJob) -> FlushDone {
    let started = Instant::now();
    let mut sink_error = None;
    let mut commit = None;
    let mut dropped = None;
    match &mut target {
        Outlet::AtLeastOnce {
            sink,
            dead_letters,
            committer,
        } => {
            let written = sink.write(&job.windows).and_then(|()| match dead_letters {
                Some(dead) if !job.dead_letters.is_empty() => dead.write(&job.dead_letters),
                _ => Ok(()),
            });
            if let Err(error) = written {
                sink_error = Some(OutputFailure::Write(error.to_string()));
            } else if job.commit {
                let mut result = committer.commit(&job.positions);
                while let (Err(error), Some(until)) = (&result, job.retry_commit_until) {
                    if error.kind == CommitErrorKind::Permanent
                        || Instant::now() + RELEASE_COMMIT_RETRY > until
                    {
                        break;
                    }
                    tracing::debug!(%error, "Commit before a release failed; trying again.");
                    std::thread::sleep(RELEASE_COMMIT_RETRY);
                    result = committer.commit(&job.positions);
                }
                commit = Some(result);
            }
        }
        Outlet::ExactlyOnce(transactions) => {
            let positions: &[CommitPosition] = if job.commit { &job.positions } else { &[] };
            match transactions.write_and_commit(
                &job.windows,
                &job.dead_letters,
                positions,
                job.retry_commit_until,
                &|| job.owned.still(),
            ) {
                Ok(committed) => commit = job.commit.then_some(Ok(committed)),
                Err(TransactionFailure::MembershipLost { reason }) => dropped = Some(reason),
                Err(failure) => sink_error = Some(OutputFailure::Transaction(failure)),
            }
        }
    }
    FlushDone {
        target,
        job,
        duration: started.elapsed(),
        sink_error,
        commit,
        dropped,
    }
}
