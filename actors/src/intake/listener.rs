//! The consumer's side of a rebalance: [`IntakeListener`] carries assignments and revocations
//! from the consumer's driver thread to the intake actor and, for a revocation, waits there
//! until the partitions are let go (see [`RevokeWait`]).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::IntakeActor;
use crate::ports::{AssignedPartition, AssignmentListener, Revocation};
use crate::topic::PartitionId;

/// The coordinator assigned partitions.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PartitionsAssigned(pub Vec<AssignedPartition>);

/// The coordinator is taking partitions away; `done` is answered once they are released.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PartitionsRevoked {
    /// The partitions.
    pub partitions: Vec<PartitionId>,
    /// Revoked in a rebalance, or lost (release without committing).
    pub how: Revocation,
    /// Answered when released.
    pub done: std::sync::mpsc::Sender<()>,
}

/// How long the consumer's rebalance callback waits for revoked partitions to be let go
/// (their closed windows written and their offsets committed) before the member goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeWait {
    /// At most `group.revoke_timeout_ms` (at least once): a member that goes on without the
    /// release may still commit those partitions after their next owner read its start, which
    /// at least once allows (the next owner writes the same windows again).
    AtMost,
    /// Until they are let go (exactly once). A member that went on would commit them later in
    /// the generation it joins next, which the broker takes as current (a transactional offset
    /// commit is checked against the member's generation, not against who owns the partition),
    /// after their next owner read its start from the commit before: what the release writes,
    /// the next owner writes again. The wait holds the rebalance, at most for the member's
    /// rebalance timeout (`max.poll.interval.ms`), past which the coordinator removes the
    /// member and refuses its commits.
    UntilReleased,
}

/// Carries assignments from the consumer's driver thread to the intake actor and waits for
/// revocations to finish.
pub struct IntakeListener {
    pub(super) actor: OnceLock<Addr<IntakeActor>>,
    pub(super) revoke_timeout: Duration,
    wait: RevokeWait,
}

impl IntakeListener {
    /// A listener that waits for a revocation as `wait` says (`revoke_timeout` at most, or
    /// until its partitions are let go), and for a lost assignment until its partitions are
    /// let go.
    pub fn new(revoke_timeout: Duration, wait: RevokeWait) -> Arc<Self> {
        Arc::new(IntakeListener {
            actor: OnceLock::new(),
            revoke_timeout,
            wait,
        })
    }
}

impl AssignmentListener for IntakeListener {
    fn assigned(&self, partitions: Vec<AssignedPartition>) {
        match self.actor.get() {
            Some(actor) => actor.do_send(PartitionsAssigned(partitions)),
            None => tracing::error!("Partitions assigned before the intake actor started."),
        }
    }

    fn revoking(&self, partitions: Vec<PartitionId>, how: Revocation) {
        let Some(actor) = self.actor.get() else {
            return;
        };
        let (done, wait) = std::sync::mpsc::channel();
        actor.do_send(PartitionsRevoked {
            partitions: partitions.clone(),
            how,
            done,
        });
        use std::sync::mpsc::RecvTimeoutError::{Disconnected, Timeout};
        let still = match (wait.recv_timeout(self.revoke_timeout), how, self.wait) {
            (Ok(()), _, _) => return,
            // Lost partitions are waited for until they are let go: the member cannot join the
            // group again while this callback runs, and a flush made from what was read under
            // the lost assignment is refused once the batch actor has let them go, but only
            // then. Returning earlier, the member could join again and be given them back
            // before that, and such a flush could commit in the new generation what the
            // partitions' new reading writes again. (Nothing needs the wait to be short: the
            // partitions are someone else's already, and nothing is committed for them.)
            (Err(Timeout), Revocation::Lost, _) => {
                "Lost partitions are not let go yet; the member joins the group again once they \
                 are."
            }
            // Exactly once: see `RevokeWait::UntilReleased`.
            (Err(Timeout), Revocation::Revoked, RevokeWait::UntilReleased) => {
                "Revoked partitions are not let go yet; exactly once, the member waits until \
                 they are written and committed."
            }
            (Err(Timeout), Revocation::Revoked, RevokeWait::AtMost) => {
                tracing::error!(
                    ?partitions,
                    timeout = ?self.revoke_timeout,
                    "Revocation did not finish in time; the next owner may reprocess frames."
                );
                return;
            }
            // The intake actor is gone (the service is stopping): nothing left to release.
            (Err(Disconnected), _, _) => return,
        };
        tracing::warn!(?partitions, waited = ?self.revoke_timeout, "{still}");
        let started = Instant::now();
        let _ = wait.recv();
        tracing::info!(
            ?partitions,
            ?how,
            took = ?(self.revoke_timeout + started.elapsed()),
            "Partitions let go."
        );
    }
}
