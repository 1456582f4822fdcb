use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use super::*;
use crate::ports::AssignedPartition;

/// Partition `index` of the test's topic.
fn p(index: i32) -> PartitionId {
    PartitionId::of("t", index)
}
use crate::config::{FlushConfig, MetricsConfig, WindowConfig};
use crate::fakes::{quiet_sources, Commits, NullSink};
use crate::metrics::MetricsActor;
use crate::ports::AssignmentListener;

/// Assigns partition 0 at start; leaving takes as long as a group member's LeaveGroup, and
/// a rebalance that crossed it assigns partition 1 meanwhile.
struct Crossing {
    sources: SourceFactory,
    listener: Arc<IntakeListener>,
}

fn assigned(partition: PartitionId) -> AssignedPartition {
    AssignedPartition {
        partition,
        start: StartOffset::At(0),
        metadata: String::new(),
        skipped: None,
    }
}

impl AssignmentSource for Crossing {
    fn sources(&self) -> SourceFactory {
        self.sources.clone()
    }
    fn start(&mut self) {
        self.listener.assigned(vec![assigned(p(0))]);
    }
    fn leave(&mut self) {
        self.listener.assigned(vec![assigned(p(1))]);
        std::thread::sleep(Duration::from_millis(300));
    }
    fn on_leave(&self) -> OnLeave {
        OnLeave::Release
    }
    fn coverage(&self) -> Option<CoverageProbe> {
        None
    }
}

/// An intake over `source` on one reader thread, feeding a batch actor that writes
/// nothing; with the batch actor's count of partitions let go as lost, and the reader
/// threads to stop.
fn start_intake(
    source: Box<dyn AssignmentSource>,
    listener: Arc<IntakeListener>,
) -> (
    Addr<IntakeActor>,
    Arc<std::sync::atomic::AtomicU64>,
    Vec<Arbiter>,
) {
    let metrics = MetricsActor::new(MetricsConfig { log_interval_ms: 0 }).start();
    let batch = BatchActor::new(
        crate::batch::BatchSpec {
            window: WindowConfig::default(),
            flush: FlushConfig::default(),
            partitions: Vec::new(),
            closing: crate::batch::Closing::ByWatermark,
            cover: crate::batch::Cover::Given,
            require_full_cover: None,
        },
        crate::outlet::Outlet::at_least_once(Box::new(NullSink), Box::new(Commits::default())),
        crate::batch::BatchLinks {
            metrics: metrics.clone(),
            supervisor: None,
            panics: None,
        },
    );
    let losses = batch.losses();
    let batch = batch.start();
    let outputs = PartitionOutputs {
        batch: batch.clone().recipient(),
        metrics: metrics.clone().recipient(),
        skipped: metrics.recipient(),
        supervisor: Exits.start().recipient(),
    };
    let (threads, arbiters) = ReaderThreads::start(1);
    let intake = IntakeActor::new(
        source,
        listener,
        ReadingSpec {
            partition: PartitionConfig::default(),
            limits: FrameLimits {
                max_bytes: 128,
                min_ts: 0.0,
                max_ts: 1e10,
                max_future_secs: f64::INFINITY,
                future_after: f64::INFINITY,
                invalid: crate::frame::InvalidPolicy::NONE,
            },
            end: EndPolicy::Never,
        },
        IntakeLinks {
            batch,
            outputs,
            threads,
        },
    )
    .start();
    (intake, losses, arbiters)
}

#[actix::test]
async fn nothing_assigned_while_leaving_starts_a_partition_actor() {
    let opens = Arc::new(AtomicU32::new(0));
    let listener = IntakeListener::new(Duration::from_secs(5), RevokeWait::AtMost);
    let source = Crossing {
        sources: quiet_sources(opens.clone()),
        listener: listener.clone(),
    };
    let (intake, _, arbiters) = start_intake(Box::new(source), listener);
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(intake.send(OwnedPartitions).await.unwrap(), vec![p(0)]);
    let history = intake.send(Leave).await.unwrap();
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        opens.load(Ordering::Relaxed),
        1,
        "only partition 0 was ever opened"
    );
    assert!(
        !history.iter().any(
            |r| matches!(r.event, GroupEvent::Assigned { partition, .. } if partition == p(1))
        ),
        "{history:?}"
    );
    for arbiter in arbiters {
        arbiter.stop();
    }
}

/// Assigns partition 0 at start, read by `sources`.
struct AtStart {
    sources: SourceFactory,
    listener: Arc<IntakeListener>,
}

impl AssignmentSource for AtStart {
    fn sources(&self) -> SourceFactory {
        self.sources.clone()
    }
    fn start(&mut self) {
        self.listener.assigned(vec![assigned(p(0))]);
    }
    fn leave(&mut self) {}
    fn on_leave(&self) -> OnLeave {
        OnLeave::Release
    }
    fn coverage(&self) -> Option<CoverageProbe> {
        None
    }
}

/// How long each poll of a [`SlowSource`] takes.
const SLOW_POLL: Duration = Duration::from_millis(800);

/// A partition with nothing to read whose every poll takes [`SLOW_POLL`] (its reader waits
/// on the broker): its actor stops only between polls.
struct SlowSource;

impl crate::ports::FrameSource for SlowSource {
    fn poll(
        &mut self,
        _: usize,
        _: &mut dyn FnMut(&crate::ports::SourceRecord<'_>),
    ) -> Result<crate::ports::PollStatus, crate::ports::SourceError> {
        std::thread::sleep(SLOW_POLL);
        Ok(crate::ports::PollStatus {
            next_offset: Some(0),
            ..crate::ports::PollStatus::default()
        })
    }
}

/// An intake over partition 0 of a [`SlowSource`], running, its assignments heard through
/// `listener`; with the batch actor's count of losses and the reader threads to stop.
async fn slow_intake(
    listener: Arc<IntakeListener>,
) -> (
    Addr<IntakeActor>,
    Arc<std::sync::atomic::AtomicU64>,
    Vec<Arbiter>,
) {
    let sources: SourceFactory =
        Arc::new(|_, _| Ok(Box::new(SlowSource) as Box<dyn crate::ports::FrameSource>));
    let source = AtStart {
        sources,
        listener: listener.clone(),
    };
    let started = start_intake(Box::new(source), listener);
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(started.0.send(OwnedPartitions).await.unwrap(), vec![p(0)]);
    started
}

/// A lost assignment's partitions are let go (the batch actor has dropped what was read
/// under it) before the listener returns, even when that takes longer than the revoke
/// timeout: until then the member must not join the group again (see
/// [`IntakeListener::revoking`]).
#[actix::test]
async fn a_lost_assignment_is_waited_for_until_its_partitions_are_let_go() {
    let revoke_timeout = Duration::from_millis(100);
    let listener = IntakeListener::new(revoke_timeout, RevokeWait::AtMost);
    let (intake, losses, arbiters) = slow_intake(listener.clone()).await;
    // The consumer's driver thread reports the loss while the partition's reader is in a
    // poll.
    let seen = losses.clone();
    let revoking = std::thread::spawn(move || {
        let started = Instant::now();
        listener.revoking(vec![p(0)], Revocation::Lost);
        (
            started.elapsed(),
            seen.load(std::sync::atomic::Ordering::SeqCst),
        )
    });
    while !revoking.is_finished() {
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let (took, losses_at_return) = revoking.join().unwrap();
    assert_eq!(
        losses_at_return, 1,
        "the listener returned after {took:?} before the batch actor let the partition go"
    );
    assert!(
        took > revoke_timeout,
        "the release was slower than the timeout: {took:?}"
    );
    assert_eq!(
        intake.send(OwnedPartitions).await.unwrap(),
        Vec::<PartitionId>::new()
    );
    for arbiter in arbiters {
        arbiter.stop();
    }
}

/// Exactly once, revoked partitions are let go (written and committed) before the listener
/// returns, even when that takes longer than the revoke timeout: a member that went on
/// would commit them after their next owner read its start (seed 220 run 53 of the
/// campaign: a revocation that waited 3 s for a flush held up by a broker whose answers
/// were dropped, then committed the windows the next owner wrote again).
#[actix::test]
async fn exactly_once_a_revocation_is_waited_for_until_its_partitions_are_let_go() {
    let revoke_timeout = Duration::from_millis(100);
    let listener = IntakeListener::new(revoke_timeout, RevokeWait::UntilReleased);
    let (intake, _, arbiters) = slow_intake(listener.clone()).await;
    // The rebalance revokes the partition while its reader is in a poll: stopping it, and
    // so the release, takes longer than the revoke timeout.
    let revoking = std::thread::spawn(move || {
        let started = Instant::now();
        listener.revoking(vec![p(0)], Revocation::Revoked);
        started.elapsed()
    });
    while !revoking.is_finished() {
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let took = revoking.join().unwrap();
    let released = loop {
        let status = intake.send(GetIntakeStatus).await.unwrap();
        if let Some(ms) = status.rebalances.revoke_ms.first() {
            break Duration::from_millis(*ms);
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        released > revoke_timeout,
        "the release was slower than the timeout: {released:?}"
    );
    assert!(
        took >= released,
        "the listener returned after {took:?}, before the release ended ({released:?})"
    );
    for arbiter in arbiters {
        arbiter.stop();
    }
}

/// Hears partition exits, and drops them.
struct Exits;
impl Actor for Exits {
    type Context = Context<Self>;
}
impl Handler<crate::partition::PartitionExited> for Exits {
    type Result = ();
    fn handle(&mut self, _: crate::partition::PartitionExited, _: &mut Self::Context) {}
}
