//! Partitions leaving this member or its actors: released on a revocation (written and
//! committed) or a loss (dropped), rewound for a restart, and every change of ownership
//! recorded and logged in one place.

use std::time::{Instant, SystemTime};

use actix::prelude::*;
use futures::future::join_all;

use super::listener::PartitionsRevoked;
use super::IntakeActor;
use crate::batch::{AddPartitions, BatchActor, ReleaseOutput, ReleasePartitions};
use crate::commit_meta::decode_closed_below;
use crate::partition::{PartitionActor, StopIntake};
use crate::ports::{Revocation, StartOffset};
use crate::topic::PartitionId;
use crate::window::PartitionStart;

/// Stops a partition actor (if it still runs).
pub(super) async fn stop_partition_actor(addr: Addr<PartitionActor>) {
    // A dead actor answers with an error, which is fine: it sends nothing more either way.
    let _ = addr.send(StopIntake).await;
}

/// Makes the batch actor write what is closed and commit, forget `partition`'s share of open
/// windows, and take the partition back from where its last durable flush left it (committed
/// or not; or from `fallback`, where it was assigned, when nothing of it was read). Answers
/// where the partition must be read from.
pub(super) async fn rewind_partition(
    batch: &Addr<BatchActor>,
    partition: PartitionId,
    fallback: (StartOffset, Option<f64>),
) -> Result<StartOffset, String> {
    let released = batch
        .send(ReleasePartitions {
            partitions: vec![partition],
            // A restart reads again from the last durable flush, committed or not.
            output: ReleaseOutput::Commit {
                retry_until: Instant::now(),
            },
        })
        .await
        .map_err(|e| format!("batch actor: {e}"))?;
    // Where the last durable flush left it (committed or not), else where it was assigned.
    let (start, closed_below) = match released.first().and_then(|r| r.resume.as_ref()) {
        Some(c) => (StartOffset::At(c.offset), decode_closed_below(&c.metadata)),
        None => fallback,
    };
    let next_offset = start.offset();
    batch
        .send(AddPartitions(vec![PartitionStart {
            partition,
            next_offset,
            closed_below,
        }]))
        .await
        .map_err(|e| format!("batch actor: {e}"))?;
    Ok(start)
}

/// A change of ownership seen by this member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEvent {
    /// The partition was assigned here, starting at `start`.
    Assigned {
        /// The partition.
        partition: PartitionId,
        /// Where reading started.
        start: StartOffset,
    },
    /// The partition was let go, with the last offset this member committed for it.
    Released {
        /// The partition.
        partition: PartitionId,
        /// The last offset committed here, if any.
        committed: Option<i64>,
        /// The assignment was lost (nothing committed at the release).
        lost: bool,
    },
}

/// A [`GroupEvent`] and when it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// Wall-clock time.
    pub at: SystemTime,
    /// What happened.
    pub event: GroupEvent,
}

/// Keeps and logs ownership changes: the one place they are logged, one line each, so a
/// member's log (JSON with `log.format`) tells which partitions it owned when.
pub(super) fn record(
    history: &std::sync::Mutex<Vec<GroupRecord>>,
    events: impl Iterator<Item = GroupEvent>,
) {
    let at = SystemTime::now();
    let mut history = history.lock().unwrap_or_else(|p| p.into_inner());
    for event in events {
        match event {
            GroupEvent::Assigned {
                partition,
                start: StartOffset::At(offset),
            } => tracing::info!(%partition, start = offset, "Partition taken."),
            GroupEvent::Assigned {
                partition,
                start: StartOffset::Reset,
            } => tracing::info!(%partition, start = "reset", "Partition taken."),
            GroupEvent::Released {
                partition,
                committed: Some(offset),
                lost,
            } => tracing::info!(%partition, committed = offset, lost, "Partition released."),
            GroupEvent::Released {
                partition,
                committed: None,
                lost,
            } => tracing::info!(%partition, lost, "Partition released."),
        }
        history.push(GroupRecord { at, event });
    }
}

impl IntakeActor {
    /// Stops the partitions' actors, has the batch actor write and (unless the assignment was
    /// lost) commit, then forgets the partitions. Records the releases. Needs nothing from the
    /// actor once built, so it can run while the actor handles other messages.
    pub(super) fn release(
        &mut self,
        partitions: Vec<PartitionId>,
        how: Revocation,
    ) -> impl std::future::Future<Output = ()> + 'static {
        let lost = how == Revocation::Lost;
        let output = match how {
            Revocation::Lost => ReleaseOutput::Drop,
            // A rebalance under way refuses commits for a moment; the listener stops waiting
            // for the release `revoke_timeout` after it asked for it (just now), so no
            // attempt starts after two thirds of that.
            Revocation::Revoked => ReleaseOutput::Commit {
                retry_until: Instant::now() + self.listener.revoke_timeout * 2 / 3,
            },
        };
        // Only partitions still owned here are released (and recorded): leaving releases
        // everything first, and the revocation that leaving then causes names them again.
        let released: Vec<PartitionId> = partitions
            .iter()
            .copied()
            .filter(|p| self.assigned_at.remove(p).is_some())
            .collect();
        let stopping: Vec<Addr<PartitionActor>> = partitions
            .iter()
            .filter_map(|p| self.partitions.remove(p).map(|r| r.addr))
            .collect();
        let batch = self.batch.clone();
        let history = self.history.clone();
        async move {
            // Stopped actors send nothing more; what their queues still hold is dropped.
            join_all(stopping.iter().map(|addr| addr.send(StopIntake))).await;
            let let_go = match batch.send(ReleasePartitions { partitions, output }).await {
                Ok(let_go) => let_go,
                Err(_) => {
                    tracing::warn!(
                        "The batch actor is gone; revoked partitions released without a commit."
                    );
                    Vec::new()
                }
            };
            record(
                &history,
                released.iter().map(|p| GroupEvent::Released {
                    partition: *p,
                    committed: let_go
                        .iter()
                        .find(|r| r.partition == *p)
                        .and_then(|r| r.committed.as_ref())
                        .map(|c| c.offset),
                    lost,
                }),
            );
        }
    }
}

impl Handler<PartitionsRevoked> for IntakeActor {
    type Result = ();

    fn handle(&mut self, msg: PartitionsRevoked, ctx: &mut Self::Context) {
        let PartitionsRevoked {
            partitions,
            how,
            done,
        } = msg;
        let release = self.release(partitions, how);
        let started = Instant::now();
        ctx.wait(release.into_actor(self).map(move |(), act, _| {
            let rebalances = &mut act.rebalances;
            rebalances.revocations += 1;
            rebalances
                .revoke_ms
                .push(started.elapsed().as_millis() as u64);
            if rebalances.revoke_ms.len() > 1_000 {
                rebalances.revoke_ms.remove(0);
            }
            let _ = done.send(());
        }));
    }
}
