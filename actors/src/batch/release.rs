//! Letting partitions go: after a flush that commits them (a revocation), at once with
//! their output dropped (a lost assignment), or back to their last commit (a dropped flush).

use std::time::Instant;

use super::{position, BatchActor, Released};
use crate::topic::PartitionId;
use crate::window::PartitionStart;

/// Partitions to let go once flush number `needed` has finished, and where to answer.
pub(super) struct ReleaseWaiter {
    /// The partitions.
    pub(super) partitions: Vec<PartitionId>,
    /// The flush that writes and commits them.
    pub(super) needed: u64,
    /// Until when that flush tries a failed commit again.
    pub(super) retry_until: Instant,
    /// Where the answer goes.
    pub(super) reply: tokio::sync::oneshot::Sender<Vec<Released>>,
}

impl BatchActor {
    /// Forgets the closed windows not yet written that hold a share of `partitions`, whose
    /// assignment was lost: their next owner (perhaps this member, once it has joined again)
    /// reads them from the last commit and writes those windows itself. Written later, by the
    /// next flush (whose transaction commits no offset of them, so the group cannot refuse
    /// it), they would be written twice. A window that also holds a share of a partition kept
    /// here is written all the same, or that share would be lost (a lost assignment takes
    /// every partition of the member, so this is not expected).
    pub(super) fn drop_pending_of(&mut self, partitions: &[PartitionId]) {
        let before = self.pending.len();
        let mut mixed = 0;
        self.pending.retain(|w| {
            let lost = w
                .partitions
                .iter()
                .filter(|p| partitions.contains(p))
                .count();
            if lost > 0 && lost < w.partitions.len() {
                mixed += 1;
            }
            lost == 0 || lost < w.partitions.len()
        });
        let dropped = before - self.pending.len();
        if dropped > 0 {
            tracing::info!(
                windows = dropped,
                "Closed windows of partitions whose assignment was lost are not written; their \
                 next owner writes them."
            );
        }
        if mixed > 0 {
            tracing::warn!(
                windows = mixed,
                "Closed windows hold shares of both lost and kept partitions: written, so the \
                 lost partitions' shares may be written again by their next owner."
            );
        }
    }

    /// Forgets everything read since the last committed flush of every partition held here:
    /// their shares of open windows, the closed windows not yet written (each holds shares of
    /// held or lost partitions only) and their dead letters. What was written and committed
    /// for them stays, so a restart of their readers ([`BatchEvent::ReadAgain`]) resumes at
    /// the last durable flush (before any, where their reading began); until then their
    /// chunks are not counted. Returns the partitions.
    pub(super) fn forget_since_commit(&mut self) -> Vec<PartitionId> {
        let held: Vec<PartitionId> = self.windows.partitions().collect();
        self.pending.clear();
        self.pending_dead.clear();
        self.frames_since_flush = 0;
        let mut unpaused = false;
        for partition in &held {
            // Before any durable flush, read again from where this reading began: a reader
            // restarted without a position (one started from `auto.offset.reset`) would go on
            // from wherever the client's fetch stands, past what is forgotten here.
            if let Some(PartitionStart {
                next_offset: Some(offset),
                closed_below,
                ..
            }) = self.windows.start_of(*partition)
            {
                self.written
                    .entry(*partition)
                    .or_insert_with(|| position(*partition, offset, closed_below));
            }
            self.windows.remove_partition(*partition);
            unpaused |= self.budget.forget(*partition);
            self.resumes.remove(partition);
        }
        if unpaused {
            self.report_unpaused();
        }
        held
    }

    /// Forgets `partitions`: their open windows, what was committed and written for them (a
    /// partition that comes back starts from its new assignment, never from a position of an
    /// earlier ownership). Returns what was committed for each and where reading it again
    /// must start.
    pub(super) fn release(&mut self, partitions: &[PartitionId]) -> Vec<Released> {
        let mut unpaused = false;
        // Their dead letters past the last commit are read again by the next owner.
        self.pending_dead
            .retain(|d| !partitions.contains(&d.partition));
        for partition in partitions {
            self.windows.remove_partition(*partition);
            unpaused |= self.budget.forget(*partition);
            self.resumes.remove(partition);
        }
        if unpaused {
            self.report_unpaused();
        }
        self.last_commit
            .retain(|p| !partitions.contains(&p.partition));
        partitions
            .iter()
            .map(|p| {
                let released = Released {
                    partition: *p,
                    committed: self.committed.remove(p),
                    resume: self.written.remove(p),
                };
                let committed = released.committed.as_ref().map(|c| c.offset);
                let written = released.resume.as_ref().map(|w| w.offset);
                if let (Some(error), true) = (&self.last_commit_error, written > committed) {
                    tracing::warn!(
                        partition = %p,
                        ?committed,
                        ?written,
                        %error,
                        "Released with output written past its last commit; reading from the \
                         commit writes those windows again."
                    );
                }
                released
            })
            .collect()
    }
}
