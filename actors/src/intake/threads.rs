//! The arbiter threads partition actors run on, and a running partition actor.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::prelude::*;

use crate::partition::PartitionActor;
use crate::topic::PartitionId;

/// The arbiter threads the partition actors share.
#[derive(Clone)]
pub struct ReaderThreads {
    handles: Arc<Vec<ArbiterHandle>>,
}

impl ReaderThreads {
    /// Starts `threads` arbiters; the caller stops and joins them.
    pub fn start(threads: usize) -> (Self, Vec<Arbiter>) {
        let arbiters: Vec<Arbiter> = (0..threads.max(1)).map(|_| Arbiter::new()).collect();
        let handles = arbiters.iter().map(Arbiter::handle).collect();
        (
            ReaderThreads {
                handles: Arc::new(handles),
            },
            arbiters,
        )
    }

    /// The thread of `partition`'s actor: consecutive partitions of a topic on consecutive
    /// threads, each topic starting at a thread of its own.
    fn of(&self, partition: PartitionId) -> &ArbiterHandle {
        let topic_start = partition.topic.name().bytes().fold(0usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(b))
        });
        let slot = topic_start.wrapping_add(partition.index.unsigned_abs() as usize);
        &self.handles[slot % self.handles.len()]
    }
}

/// A running partition actor (both models).
pub(super) struct RunningPartition {
    pub(crate) addr: Addr<PartitionActor>,
    pub(crate) incarnation: u64,
}

impl RunningPartition {
    /// Starts `actor` on its partition's reader thread.
    pub(crate) fn start(actor: PartitionActor, threads: &ReaderThreads) -> Self {
        let incarnation = actor.incarnation_id();
        let thread = threads.of(actor.partition_id());
        let addr = PartitionActor::start_in_arbiter(thread, move |_| actor);
        RunningPartition { addr, incarnation }
    }

    /// Takes `partition`'s actor out of `running` if it is incarnation `incarnation` (any, when
    /// `None`); a restart for an actor already replaced or let go finds nothing.
    pub(crate) fn take(
        running: &mut BTreeMap<PartitionId, RunningPartition>,
        partition: PartitionId,
        incarnation: Option<u64>,
    ) -> Option<RunningPartition> {
        let current = running.get(&partition)?.incarnation;
        if incarnation.is_some_and(|g| g != current) {
            return None;
        }
        running.remove(&partition)
    }
}
