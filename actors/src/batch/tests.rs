use std::sync::{Arc, Mutex};

use super::*;
use crate::commit_meta::decode_closed_below;
use crate::config::MetricsConfig;
use crate::metrics::GetMetrics;
use crate::outlet::Sink;
use crate::outlet::TransactionFailure;
use crate::ports::OffsetCommitter;
use crate::ports::{CommitError, CommitErrorKind};

/// Everything the fakes saw, in order: `Write(window starts)` and `Commit(offsets)`.
#[derive(Debug, Clone, PartialEq)]
enum Event {
    Write(Vec<i64>),
    Commit(Vec<(i32, i64, String)>),
    /// Dead letters written, by partition and offset.
    Dead(Vec<(i32, i64)>),
    /// One transaction: window starts, dead letters, offsets.
    Transaction(Vec<i64>, Vec<(i32, i64)>, Vec<(i32, i64)>),
}

struct FakeDeadLetters(Log);
impl crate::outlet::DeadLetterSink for FakeDeadLetters {
    fn write(&mut self, letters: &[DeadLetter]) -> std::io::Result<()> {
        self.0 .0.lock().unwrap().push(Event::Dead(
            letters
                .iter()
                .map(|d| (d.partition.index, d.offset))
                .collect(),
        ));
        Ok(())
    }
}

/// Commits transactions, or refuses them all with `failure`.
struct FakeTransactions(Log, Option<crate::outlet::TransactionFailure>);
impl crate::outlet::TransactionalSink for FakeTransactions {
    fn write_and_commit(
        &mut self,
        windows: &[ClosedWindow],
        letters: &[DeadLetter],
        positions: &[CommitPosition],
        _: Option<Instant>,
        _: &dyn Fn() -> bool,
    ) -> Result<Vec<CommitPosition>, crate::outlet::TransactionFailure> {
        if let Some(failure) = &self.1 {
            return Err(failure.clone());
        }
        self.0 .0.lock().unwrap().push(Event::Transaction(
            windows.iter().map(|w| w.start).collect(),
            letters
                .iter()
                .map(|d| (d.partition.index, d.offset))
                .collect(),
            positions
                .iter()
                .map(|p| (p.partition.index, p.offset))
                .collect(),
        ));
        Ok(positions.to_vec())
    }
}

/// A chunk whose records at `invalid` offsets were invalid (dead letters).
fn with_dead_letters(mut chunk: Chunk, invalid: &[i64]) -> Chunk {
    chunk.dead_letters = invalid
        .iter()
        .map(|offset| DeadLetter {
            partition: chunk.partition,
            offset: *offset,
            reason: crate::frame::InvalidReason::NotJson,
            payload: Some(b"{".to_vec()),
            key: None,
            headers: Vec::new(),
        })
        .collect();
    chunk
}

#[actix::test]
async fn dead_letters_are_durable_before_the_offsets_past_them_are_committed() {
    let log = Log::default();
    let mut actor = unstarted(&log, 0, 10, &[0, 1], Closing::ByWatermark, None);
    actor.output = Output::Idle(Outlet::AtLeastOnce {
        sink: Box::new(FakeSink(log.clone())),
        dead_letters: Some(Box::new(FakeDeadLetters(log.clone()))),
        committer: Box::new(FakeCommitter(log.clone(), 0)),
    });
    let batch = actor.start();
    // Offsets 1 and 3 of partition 0 are invalid.
    let first = chunk(0, &[(0, 100.0, "a"), (2, 112.0, "b")], 4);
    batch.send(with_dead_letters(first, &[1, 3])).await.unwrap();
    batch
        .send(chunk(1, &[(0, 101.0, "c"), (1, 121.0, "d")], 2))
        .await
        .unwrap();
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    // Window 110 holds partition 0's commit at offset 2: the dead letter at 3 waits for
    // the commit that passes it.
    let events = log.events();
    assert_eq!(events[0], Event::Write(vec![100]));
    assert_eq!(events[1], Event::Dead(vec![(0, 1)]));
    assert_eq!(
        events[2],
        commit(&[(0, 2), (1, 1)], "kafka-actors:v1:wm=112")
    );
    assert_eq!(events.len(), 3, "{events:?}");
    let report = batch.send(Drain { close_all: true }).await.unwrap();
    assert_eq!(indexed(&report.committed), vec![(0, 4), (1, 2)]);
    assert_eq!(
        log.events()[3..],
        [
            Event::Write(vec![110, 120]),
            Event::Dead(vec![(0, 3)]),
            commit(&[(0, 4), (1, 2)], "kafka-actors:v1:wm=130"),
        ]
    );
}

#[actix::test]
async fn exactly_once_writes_windows_dead_letters_and_offsets_in_one_transaction() {
    let log = Log::default();
    let mut actor = unstarted(&log, 0, 10, &[0, 1], Closing::ByWatermark, None);
    actor.output = Output::Idle(Outlet::ExactlyOnce(Box::new(FakeTransactions(
        log.clone(),
        None,
    ))));
    let batch = actor.start();
    let first = chunk(0, &[(0, 100.0, "a"), (2, 112.0, "b")], 4);
    batch.send(with_dead_letters(first, &[1, 3])).await.unwrap();
    batch
        .send(chunk(1, &[(0, 101.0, "c"), (1, 121.0, "d")], 2))
        .await
        .unwrap();
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    let report = batch.send(Drain { close_all: true }).await.unwrap();
    let events = log.events();
    assert_eq!(
        events[0],
        Event::Transaction(vec![100], vec![(0, 1)], vec![(0, 2), (1, 1)])
    );
    assert_eq!(
        events[1],
        Event::Transaction(vec![110, 120], vec![(0, 3)], vec![(0, 4), (1, 2)])
    );
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(indexed(&report.committed), vec![(0, 4), (1, 2)]);
}

/// Loses part of the membership in its first transaction, then commits, keeping every
/// window it commits.
struct LosingOnce(Log, bool, Arc<Mutex<Vec<ClosedWindow>>>);
impl crate::outlet::TransactionalSink for LosingOnce {
    fn write_and_commit(
        &mut self,
        windows: &[ClosedWindow],
        letters: &[DeadLetter],
        positions: &[CommitPosition],
        until: Option<Instant>,
        owned: &dyn Fn() -> bool,
    ) -> Result<Vec<CommitPosition>, crate::outlet::TransactionFailure> {
        if !std::mem::replace(&mut self.1, true) {
            return Err(crate::outlet::TransactionFailure::MembershipLost {
                reason: "partitions no longer assigned here: t-2".into(),
            });
        }
        self.2.lock().unwrap().extend_from_slice(windows);
        FakeTransactions(self.0.clone(), None)
            .write_and_commit(windows, letters, positions, until, owned)
    }
}

/// A flush dropped because the member lost some of its partitions (say a third, t-2,
/// revoked while the transaction waited) held the kept partitions' shares too: the batch
/// forgets everything read since their last commit and asks for them to be read again
/// from it (before any, from where their reading began: a partition started from
/// `auto.offset.reset` from its first record); output goes on, and every window is
/// written once, exact.
#[actix::test]
async fn a_flush_dropped_with_part_of_its_partitions_has_the_rest_read_again() {
    let log = Log::default();
    let events = Arc::new(Mutex::new(Vec::new()));
    let written = Arc::new(Mutex::new(Vec::new()));
    let supervisor = Supervisor(events.clone()).start();
    let mut actor = unstarted(
        &log,
        0,
        10,
        &[0, 1],
        Closing::ByWatermark,
        Some(supervisor.recipient()),
    );
    // Partition 0 had no commit: its reader starts where `auto.offset.reset` puts it
    // (offset 5 here) and says so with its first record.
    actor.windows.add_partition(PartitionStart {
        partition: p(0),
        next_offset: None,
        closed_below: None,
    });
    actor.output = Output::Idle(Outlet::ExactlyOnce(Box::new(LosingOnce(
        log.clone(),
        false,
        written.clone(),
    ))));
    let batch = actor.start();
    let first = [
        chunk(0, &[(5, 100.0, "a"), (6, 112.0, "b")], 7),
        chunk(1, &[(0, 101.0, "c"), (1, 121.0, "d")], 2),
    ];
    for c in first {
        batch.send(c).await.unwrap();
    }
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    // The first flush (window 100) was dropped: nothing written or committed, the output
    // did not stop, and both partitions are to be read again.
    assert!(log.events().is_empty(), "{:?}", log.events());
    let asked: Vec<_> = events
        .lock()
        .unwrap()
        .iter()
        .map(|e| match e {
            BatchEvent::ReadAgain(partitions) => partitions.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(asked, vec![vec![p(0), p(1)]]);
    // Read on by the old readers before their restart: not counted.
    batch.send(chunk(0, &[(7, 125.0, "e")], 8)).await.unwrap();
    // The restart (as the intake does it): let go with a commit, start again where the
    // last durable flush left them; nothing was written, so where their reading began.
    for (partition, from) in [(0, 5), (1, 0)] {
        let released = batch
            .send(ReleasePartitions {
                partitions: vec![p(partition)],
                output: ReleaseOutput::Commit {
                    retry_until: Instant::now(),
                },
            })
            .await
            .unwrap();
        assert_eq!(
            released[0]
                .resume
                .as_ref()
                .map(|r| (r.offset, r.metadata.as_str())),
            Some((from, "")),
            "{released:?}"
        );
        batch
            .send(AddPartitions(vec![PartitionStart {
                partition: p(partition),
                next_offset: Some(from),
                closed_below: None,
            }]))
            .await
            .unwrap();
    }
    batch
        .send(chunk(
            0,
            &[(5, 100.0, "a"), (6, 112.0, "b"), (7, 125.0, "e")],
            8,
        ))
        .await
        .unwrap();
    batch
        .send(chunk(1, &[(0, 101.0, "c"), (1, 121.0, "d")], 2))
        .await
        .unwrap();
    let report = batch.send(Drain { close_all: true }).await.unwrap();
    assert_eq!(events.lock().unwrap().len(), 1, "no failure reported");
    assert_eq!(indexed(&report.committed), vec![(0, 8), (1, 2)]);
    let lines: Vec<(i64, u64, u64)> = written
        .lock()
        .unwrap()
        .iter()
        .map(|w| (w.start, w.unique_users, w.frames))
        .collect();
    assert_eq!(lines, vec![(100, 2, 2), (110, 1, 1), (120, 2, 2)]);
}

/// Drops every flush, as a member that never gets into a stable generation sees it.
struct LosingAlways;
impl crate::outlet::TransactionalSink for LosingAlways {
    fn write_and_commit(
        &mut self,
        _: &[ClosedWindow],
        _: &[DeadLetter],
        _: &[CommitPosition],
        _: Option<Instant>,
        _: &dyn Fn() -> bool,
    ) -> Result<Vec<CommitPosition>, crate::outlet::TransactionFailure> {
        Err(crate::outlet::TransactionFailure::MembershipLost {
            reason: "generation still changing".into(),
        })
    }
}

/// Flushes dropped for longer than `flush.commit_failure_timeout_ms` (200 ms here) stop
/// the output instead of reading the same frames again for ever.
#[actix::test]
async fn flushes_dropped_for_longer_than_the_commit_failure_timeout_stop_the_output() {
    let log = Log::default();
    let events = Arc::new(Mutex::new(Vec::new()));
    let supervisor = Supervisor(events.clone()).start();
    let mut actor = unstarted(
        &log,
        0,
        10,
        &[0, 1],
        Closing::ByWatermark,
        Some(supervisor.recipient()),
    );
    actor.output = Output::Idle(Outlet::ExactlyOnce(Box::new(LosingAlways)));
    let batch = actor.start();
    for _ in 0..5 {
        // Read again from the start, as the restart after each drop does.
        let starts = [0, 1].map(|i| PartitionStart {
            partition: p(i),
            next_offset: Some(0),
            closed_below: None,
        });
        // Once the output stopped, the actor is gone.
        let sent = async {
            batch.send(AddPartitions(starts.to_vec())).await?;
            batch
                .send(chunk(0, &[(0, 100.0, "a"), (1, 112.0, "b")], 2))
                .await?;
            batch
                .send(chunk(1, &[(0, 101.0, "c"), (1, 121.0, "d")], 2))
                .await
        };
        if sent.await.is_err() {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    let events = events.lock().unwrap().clone();
    let stop = events.iter().find_map(|e| match e {
        BatchEvent::Failed(OutputFailure::Transaction(TransactionFailure::NotInGroup {
            reason,
        })) => Some(reason.clone()),
        _ => None,
    });
    assert!(
        stop.as_deref()
            .is_some_and(|r| r.contains("flushes dropped for")),
        "{events:?}"
    );
    assert!(
        matches!(events.first(), Some(BatchEvent::ReadAgain(_))),
        "read again first: {events:?}"
    );
    assert!(log.events().is_empty(), "nothing written or committed");
}

/// Holds the first transaction for `.1` (a coordinator that hangs), then writes, as a
/// group member would, unless its partitions were let go as lost meanwhile (`owned`).
struct SlowFirst(Log, Option<Duration>);
impl crate::outlet::TransactionalSink for SlowFirst {
    fn write_and_commit(
        &mut self,
        windows: &[ClosedWindow],
        letters: &[DeadLetter],
        positions: &[CommitPosition],
        until: Option<Instant>,
        owned: &dyn Fn() -> bool,
    ) -> Result<Vec<CommitPosition>, crate::outlet::TransactionFailure> {
        if let Some(hold) = self.1.take() {
            std::thread::sleep(hold);
        }
        if !owned() {
            return Err(crate::outlet::TransactionFailure::MembershipLost {
                reason: "lost meanwhile".into(),
            });
        }
        FakeTransactions(self.0.clone(), None)
            .write_and_commit(windows, letters, positions, until, owned)
    }
}

/// The assignment is lost while a flush hangs: neither that flush nor the closed window
/// waiting behind it is written (the partitions' next owner reads both from the last
/// commit); what is read after they are assigned again is.
#[actix::test]
async fn nothing_read_under_a_lost_assignment_is_written_after_the_loss() {
    let log = Log::default();
    let mut actor = unstarted(&log, 0, 10, &[0, 1], Closing::ByWatermark, None);
    actor.output = Output::Idle(Outlet::ExactlyOnce(Box::new(SlowFirst(
        log.clone(),
        Some(Duration::from_millis(400)),
    ))));
    let batch = actor.start();
    // Window 100 closes and its flush hangs; window 110 closes meanwhile and waits.
    batch
        .send(chunk(0, &[(0, 100.0, "a"), (1, 112.0, "b")], 2))
        .await
        .unwrap();
    batch
        .send(chunk(1, &[(0, 101.0, "c"), (1, 113.0, "d")], 2))
        .await
        .unwrap();
    actix_rt::time::sleep(Duration::from_millis(50)).await;
    batch.send(chunk(0, &[(2, 121.0, "e")], 3)).await.unwrap();
    batch.send(chunk(1, &[(2, 122.0, "f")], 3)).await.unwrap();
    actix_rt::time::sleep(Duration::from_millis(50)).await;
    batch
        .send(ReleasePartitions {
            partitions: vec![p(0), p(1)],
            output: ReleaseOutput::Drop,
        })
        .await
        .unwrap();
    actix_rt::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(log.events(), vec![], "nothing written after the loss");
    // Assigned again, from the last commit (none): read again and written once.
    let starts = [0, 1].map(|i| PartitionStart {
        partition: p(i),
        next_offset: Some(0),
        closed_below: None,
    });
    batch.send(AddPartitions(starts.to_vec())).await.unwrap();
    batch
        .send(chunk(
            0,
            &[(0, 100.0, "a"), (1, 112.0, "b"), (2, 121.0, "e")],
            3,
        ))
        .await
        .unwrap();
    batch
        .send(chunk(
            1,
            &[(0, 101.0, "c"), (1, 113.0, "d"), (2, 122.0, "f")],
            3,
        ))
        .await
        .unwrap();
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    let written: Vec<i64> = log
        .events()
        .iter()
        .flat_map(|e| match e {
            Event::Transaction(windows, ..) => windows.clone(),
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(written, vec![100, 110], "{:?}", log.events());
}

#[actix::test]
async fn a_transaction_that_cannot_commit_stops_the_output_with_nothing_committed() {
    let log = Log::default();
    let events = Arc::new(Mutex::new(Vec::new()));
    let supervisor = Supervisor(events.clone()).start();
    let mut actor = unstarted(
        &log,
        0,
        10,
        &[0, 1],
        Closing::ByWatermark,
        Some(supervisor.recipient()),
    );
    let fenced = crate::outlet::TransactionFailure::Fenced {
        transactional_id: "g.all".into(),
        reason: "producer fenced".into(),
    };
    actor.output = Output::Idle(Outlet::ExactlyOnce(Box::new(FakeTransactions(
        log.clone(),
        Some(fenced.clone()),
    ))));
    let batch = actor.start();
    let _ = batch
        .send(chunk(0, &[(0, 100.0, "a"), (2, 112.0, "b")], 3))
        .await;
    let _ = batch
        .send(chunk(1, &[(0, 101.0, "c"), (1, 121.0, "d")], 2))
        .await;
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    assert!(log.events().is_empty(), "{:?}", log.events());
    let events = events.lock().unwrap();
    assert!(
        matches!(
            events.as_slice(),
            [BatchEvent::Failed(OutputFailure::Transaction(f))] if *f == fenced
        ),
        "{events:?}"
    );
}

/// Partition `index` of the test's topic.
fn p(index: i32) -> PartitionId {
    PartitionId::of("t", index)
}

/// Offsets by partition index.
fn indexed(offsets: &[(PartitionId, i64)]) -> Vec<(i32, i64)> {
    offsets.iter().map(|(p, o)| (p.index, *o)).collect()
}

/// A commit of `offsets`, every partition with the same recorded `closed_below`.
fn commit(offsets: &[(i32, i64)], metadata: &str) -> Event {
    Event::Commit(
        offsets
            .iter()
            .map(|(p, o)| (*p, *o, metadata.to_owned()))
            .collect(),
    )
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Event>>>);

impl Log {
    fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }
}

struct FakeSink(Log);
impl Sink for FakeSink {
    fn write(&mut self, windows: &[ClosedWindow]) -> std::io::Result<()> {
        if !windows.is_empty() {
            self.0
                 .0
                .lock()
                .unwrap()
                .push(Event::Write(windows.iter().map(|w| w.start).collect()));
        }
        Ok(())
    }
}

struct FakeCommitter(Log, usize);
impl OffsetCommitter for FakeCommitter {
    fn commit(&mut self, positions: &[CommitPosition]) -> Result<Vec<CommitPosition>, CommitError> {
        if self.1 > 0 {
            self.1 -= 1;
            return Err(CommitError {
                kind: CommitErrorKind::Transient,
                message: "coordinator moving".into(),
            });
        }
        self.0 .0.lock().unwrap().push(Event::Commit(
            positions
                .iter()
                .map(|p| (p.partition.index, p.offset, p.metadata.clone()))
                .collect(),
        ));
        Ok(positions.to_vec())
    }
}

fn chunk(partition: i32, frames: &[(i64, f64, &str)], next: i64) -> Chunk {
    let mut c = FrameChunk::with_capacity(frames.len());
    for (o, ts, uid) in frames {
        c.push(*o, *ts, uid);
    }
    Chunk {
        partition: p(partition),
        frames: c,
        dead_letters: Vec::new(),
        next_offset: Some(next),
        read_from: Some(frames.first().map_or(next, |f| f.0)),
        at_end: false,
        finished: false,
    }
}

fn actor(log: &Log, failing_commits: usize, interval_ms: u64) -> Addr<BatchActor> {
    unstarted(
        log,
        failing_commits,
        interval_ms,
        &[0, 1],
        Closing::AllAtEnd,
        None,
    )
    .start()
}

/// A batch actor over `partitions` (10 s windows, no lateness), writing to and committing
/// into `log`.
fn unstarted(
    log: &Log,
    failing_commits: usize,
    interval_ms: u64,
    partitions: &[i32],
    closing: Closing,
    supervisor: Option<Recipient<BatchEvent>>,
) -> BatchActor {
    BatchActor::new(
        spec(interval_ms, partitions, closing),
        logged(log, failing_commits),
        links(supervisor),
    )
}

/// 10 s windows, no lateness, over `partitions` (each from offset 0), flushing every
/// `interval_ms`; the given partitions to cover, lines free to cover some of them.
fn spec(interval_ms: u64, partitions: &[i32], closing: Closing) -> BatchSpec {
    BatchSpec {
        window: WindowConfig {
            length_secs: 10,
            lateness_secs: 0,
            idle_after_ms: 60_000,
            max_lead_secs: 0,
            open_budget_mib: 0.0,
        },
        flush: FlushConfig {
            max_frames: 1_000_000,
            interval_ms,
            commit_failure_timeout_ms: 200,
        },
        partitions: partitions
            .iter()
            .map(|partition| PartitionStart {
                partition: p(*partition),
                next_offset: Some(0),
                closed_below: None,
            })
            .collect(),
        closing,
        cover: Cover::Given,
        require_full_cover: None,
    }
}

/// Writes to and commits into `log`, the first `failing_commits` commits failing.
fn logged(log: &Log, failing_commits: usize) -> Outlet {
    Outlet::at_least_once(
        Box::new(FakeSink(log.clone())),
        Box::new(FakeCommitter(log.clone(), failing_commits)),
    )
}

/// A metrics actor of its own, and `supervisor`.
fn links(supervisor: Option<Recipient<BatchEvent>>) -> BatchLinks {
    BatchLinks {
        metrics: MetricsActor::new(MetricsConfig { log_interval_ms: 0 }).start(),
        supervisor,
        panics: None,
    }
}

/// Keeps every window written.
struct KeepingSink(Arc<Mutex<Vec<ClosedWindow>>>);
impl Sink for KeepingSink {
    fn write(&mut self, windows: &[ClosedWindow]) -> std::io::Result<()> {
        self.0.lock().unwrap().extend_from_slice(windows);
        Ok(())
    }
}

/// A batch actor over partitions 0-2 with a memory budget of 1 MiB for open windows,
/// keeping what it writes in `written`; and its metrics actor.
fn budgeted(
    log: &Log,
    written: &Arc<Mutex<Vec<ClosedWindow>>>,
) -> (Addr<BatchActor>, Addr<MetricsActor>) {
    let mut spec = spec(10, &[0, 1, 2], Closing::ByWatermark);
    spec.window.open_budget_mib = 1.0;
    let links = links(None);
    let metrics = links.metrics.clone();
    let batch = BatchActor::new(
        spec,
        Outlet::at_least_once(
            Box::new(KeepingSink(written.clone())),
            Box::new(FakeCommitter(log.clone(), 0)),
        ),
        links,
    );
    (batch.start(), metrics)
}

async fn send(
    batch: &Addr<BatchActor>,
    partition: i32,
    ts: f64,
    uids: std::ops::Range<u32>,
    next: i64,
) -> Flow {
    let names: Vec<String> = uids.map(|i| format!("user-{i:07}")).collect();
    let frames: Vec<(i64, f64, &str)> = names.iter().map(|u| (0, ts, u.as_str())).collect();
    batch.send(chunk(partition, &frames, next)).await.unwrap()
}

async fn resumed(flow: Flow) -> bool {
    match flow {
        Flow::Go => panic!("the partition was not paused"),
        Flow::Pause(resumed) => tokio::time::timeout(Duration::from_secs(2), resumed)
            .await
            .is_ok_and(|r| r.is_ok()),
    }
}

#[actix::test]
async fn over_the_memory_budget_partitions_ahead_of_the_watermark_pause_until_windows_close() {
    let (log, written) = (Log::default(), Arc::new(Mutex::new(Vec::new())));
    let (batch, metrics) = budgeted(&log, &written);
    let open = || async { metrics.send(GetMetrics).await.unwrap() };
    // Partition 0 holds the watermark at 101; partition 2 is a little ahead.
    assert!(matches!(send(&batch, 0, 101.0, 0..1, 1).await, Flow::Go));
    assert!(matches!(send(&batch, 2, 105.0, 0..1, 1).await, Flow::Go));
    // Partition 1 runs ahead with 100 000 users in window 200: past 1 MiB it is paused.
    let mut flows = Vec::new();
    for k in 0..10 {
        flows.push(
            send(
                &batch,
                1,
                200.0,
                k * 10_000..(k + 1) * 10_000,
                i64::from(k + 1),
            )
            .await,
        );
    }
    let first_pause = flows.iter().position(|f| matches!(f, Flow::Pause(_)));
    assert!(
        first_pause.is_some_and(|k| k >= 2),
        "paused at chunk {first_pause:?}"
    );
    let p1 = flows.pop().unwrap();
    // Partition 2 is ahead of the holder too: paused at its next chunk. The holder reads on.
    let p2 = send(&batch, 2, 106.0, 0..1, 2).await;
    assert!(matches!(p2, Flow::Pause(_)));
    assert!(matches!(send(&batch, 0, 102.0, 1..2, 2).await, Flow::Go));
    let figures = open().await;
    assert!(
        figures.open_window_bytes > 1 << 20,
        "{} bytes open",
        figures.open_window_bytes
    );
    assert_eq!(figures.watermark_holder, Some(p(0)));
    assert!(
        figures.partitions[&p(1)].paused
            && !figures.partitions.get(&p(0)).is_some_and(|m| m.paused)
    );
    // The holder moves to 250: partition 2 (at 106) now holds the watermark and resumes at
    // once, and partition 0, now ahead, is paused in its turn.
    let p0 = send(&batch, 0, 250.0, 2..3, 3).await;
    assert!(resumed(p2).await, "the new holder resumes");
    // Partition 2 moves past partition 1 (at 200): partition 1 holds and resumes...
    let p2 = send(&batch, 2, 260.0, 1..2, 3).await;
    assert!(
        resumed(p1).await,
        "partition 1 resumes once it holds the watermark"
    );
    // ...and its move past 250 closes window 200, which frees the budget: all resume.
    assert!(matches!(send(&batch, 1, 255.0, 0..1, 12).await, Flow::Go));
    assert!(
        resumed(p0).await && resumed(p2).await,
        "everything resumes below 3/4 of the budget"
    );
    let figures = open().await;
    assert!(
        figures.open_window_bytes < 1 << 18,
        "{} bytes open",
        figures.open_window_bytes
    );
    assert!(figures.peak_open_window_bytes > 1 << 20);
    assert_eq!(
        figures.budget_pauses, 4,
        "partitions 1 and 2, then 0, then 2 again"
    );
    assert!(figures.partitions.values().all(|m| !m.paused));
    // The window of 100 000 users is exact (written by the flush thread: waited for, up to
    // 5 s on a loaded machine).
    for _ in 0..100 {
        if written.lock().unwrap().iter().any(|w| w.start == 200) {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    let written = written.lock().unwrap().clone();
    let w200 = written
        .iter()
        .find(|w| w.start == 200)
        .expect("window 200 written");
    assert_eq!((w200.unique_users, w200.frames), (100_000, 100_000));
    assert_eq!(w200.partitions, vec![p(0), p(1), p(2)]);
}

#[actix::test]
async fn a_released_paused_partition_no_longer_shows_as_paused() {
    let (log, written) = (Log::default(), Arc::new(Mutex::new(Vec::new())));
    let (batch, metrics) = budgeted(&log, &written);
    assert!(matches!(send(&batch, 0, 101.0, 0..1, 1).await, Flow::Go));
    let mut last = Flow::Go;
    for k in 0..10 {
        last = send(
            &batch,
            1,
            200.0,
            k * 10_000..(k + 1) * 10_000,
            i64::from(k + 1),
        )
        .await;
    }
    assert!(matches!(last, Flow::Pause(_)));
    let figures = metrics.send(GetMetrics).await.unwrap();
    assert!(figures.partitions[&p(1)].paused);
    // A rebalance takes partition 1 away.
    batch
        .send(ReleasePartitions {
            partitions: vec![p(1)],
            output: ReleaseOutput::Drop,
        })
        .await
        .unwrap();
    let figures = metrics.send(GetMetrics).await.unwrap();
    assert!(
        !figures.partitions.get(&p(1)).is_some_and(|m| m.paused),
        "{:?}",
        figures.partitions.get(&p(1))
    );
}

#[actix::test]
async fn a_group_member_at_its_end_writes_its_share_but_completes_only_once_every_partition_is_accounted_for(
) {
    // This member owns partition 0 of a 2-partition topic; partition 1 is held elsewhere.
    let log = Log::default();
    let events = Arc::new(Mutex::new(Vec::new()));
    let supervisor = Supervisor(events.clone()).start();
    let batch = BatchActor::new(
        BatchSpec {
            cover: Cover::Group,
            ..spec(20, &[0], Closing::AllAtEnd)
        },
        logged(&log, 0),
        links(Some(supervisor.recipient())),
    )
    .start();
    let mut done = chunk(0, &[(0, 100.0, "a")], 1);
    done.at_end = true;
    done.finished = true;
    batch.send(done).await.unwrap();
    let settle = || actix_rt::time::sleep(Duration::from_millis(100));
    settle().await;
    // Its own share is written and committed at the end at once: the member holding
    // partition 1 waits for that commit before it finishes, as this one waits for its.
    let own_share = vec![
        Event::Write(vec![100]),
        commit(&[(0, 1)], "kafka-actors:v1:wm=110"),
    ];
    assert_eq!(log.events(), own_share);
    let completed = || {
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, BatchEvent::Completed))
    };
    assert!(!completed(), "coverage not known yet");
    batch
        .send(GroupCoverage {
            all: vec![p(0), p(1)],
            done_elsewhere: vec![],
        })
        .await
        .unwrap();
    settle().await;
    assert!(!completed(), "partition 1 not consumed");
    batch
        .send(GroupCoverage {
            all: vec![p(0), p(1)],
            done_elsewhere: vec![p(1)],
        })
        .await
        .unwrap();
    settle().await;
    assert!(completed(), "every partition accounted for");
    assert_eq!(
        log.events(),
        own_share,
        "nothing written or committed twice"
    );
}

#[actix::test]
async fn commits_only_after_the_windows_they_cover_are_written() {
    let log = Log::default();
    let batch = actor(&log, 0, 20);
    batch
        .send(chunk(
            0,
            &[(0, 100.0, "a"), (1, 105.0, "b"), (2, 112.0, "a")],
            3,
        ))
        .await
        .unwrap();
    batch
        .send(chunk(1, &[(0, 101.0, "c"), (1, 121.0, "d")], 2))
        .await
        .unwrap();
    // Watermark = min(112, 121) = 112: window 100 closes; partition 0 holds at offset 2
    // (window 110), partition 1 at offset 1 (window 120).
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    let report = batch.send(Drain { close_all: false }).await.unwrap();
    let events = log.events();
    assert_eq!(events[0], Event::Write(vec![100]));
    assert_eq!(
        events[1],
        commit(&[(0, 2), (1, 1)], "kafka-actors:v1:wm=112")
    );
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(indexed(&report.committed), vec![(0, 2), (1, 1)]);
    assert_eq!(report.open_windows, 2);
    let report = batch.send(Drain { close_all: true }).await.unwrap();
    assert_eq!(log.events()[2], Event::Write(vec![110, 120]));
    assert_eq!(indexed(&report.committed), vec![(0, 3), (1, 2)]);
    assert_eq!(report.open_windows, 0);
}

#[actix::test]
async fn a_failed_commit_is_retried_by_a_later_flush() {
    let log = Log::default();
    let batch = actor(&log, 1, 10);
    batch
        .send(chunk(0, &[(0, 100.0, "a"), (1, 125.0, "b")], 2))
        .await
        .unwrap();
    batch.send(chunk(1, &[(0, 130.0, "c")], 1)).await.unwrap();
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    let events = log.events();
    assert_eq!(events[0], Event::Write(vec![100]));
    assert!(
        events.contains(&commit(&[(0, 1), (1, 0)], "kafka-actors:v1:wm=125")),
        "the retried commit went out: {events:?}"
    );
}

/// Window 100 closed on partition 0 (125 and 130 passed it), then partition 0 released
/// with commit retries for `retry_for`: what was released, and how long it took.
async fn release_after_a_window(
    batch: &Addr<BatchActor>,
    retry_for: Duration,
) -> (Vec<Released>, Duration) {
    batch
        .send(chunk(0, &[(0, 100.0, "a"), (1, 125.0, "b")], 2))
        .await
        .unwrap();
    batch.send(chunk(1, &[(0, 130.0, "c")], 1)).await.unwrap();
    let started = Instant::now();
    let released = batch
        .send(ReleasePartitions {
            partitions: vec![p(0)],
            output: ReleaseOutput::Commit {
                retry_until: Instant::now() + retry_for,
            },
        })
        .await
        .unwrap();
    (released, started.elapsed())
}

#[actix::test]
async fn a_release_tries_a_refused_commit_again_before_letting_the_partition_go() {
    // The group refuses the next three commits (a rebalance under way).
    let log = Log::default();
    let batch = unstarted(&log, 3, 60_000, &[0, 1], Closing::ByWatermark, None).start();
    let (released, _) = release_after_a_window(&batch, Duration::from_secs(2)).await;
    // Window 100 is written and its frames committed, at the fourth attempt.
    assert_eq!(
        released[0].committed.as_ref().map(|c| c.offset),
        Some(1),
        "{:?}",
        log.events()
    );
    assert_eq!(
        log.events(),
        vec![
            Event::Write(vec![100]),
            commit(&[(0, 1), (1, 0)], "kafka-actors:v1:wm=125")
        ]
    );
}

#[actix::test]
async fn a_release_gives_up_on_a_refused_commit_after_its_retry_time() {
    let log = Log::default();
    let batch = unstarted(
        &log,
        usize::MAX,
        60_000,
        &[0, 1],
        Closing::ByWatermark,
        None,
    )
    .start();
    let (released, took) = release_after_a_window(&batch, Duration::from_millis(350)).await;
    assert_eq!(released[0].committed, None);
    assert_eq!(released[0].resume.as_ref().map(|r| r.offset), Some(1));
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[actix::test]
async fn a_partition_released_while_commits_fail_resumes_where_its_unwritten_frames_start() {
    // Started without a committed offset (from wherever the reset policy puts it), and
    // every commit fails.
    let log = Log::default();
    let batch = unstarted(&log, usize::MAX, 60_000, &[], Closing::ByWatermark, None).start();
    let unknown = |partition| PartitionStart {
        partition,
        next_offset: None,
        closed_below: None,
    };
    batch
        .send(AddPartitions(vec![unknown(p(0)), unknown(p(1))]))
        .await
        .unwrap();
    batch
        .send(chunk(0, &[(5, 100.0, "a"), (6, 125.0, "b")], 7))
        .await
        .unwrap();
    batch.send(chunk(1, &[(0, 130.0, "c")], 1)).await.unwrap();
    let released = batch
        .send(ReleasePartitions {
            partitions: vec![p(0)],
            output: ReleaseOutput::Commit {
                retry_until: Instant::now(),
            },
        })
        .await
        .unwrap();
    // Window 100 was written; offset 6 opens window 120, which is not.
    assert_eq!(log.events(), vec![Event::Write(vec![100])]);
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].committed, None, "every commit failed");
    let resume = released[0]
        .resume
        .as_ref()
        .expect("a position to resume from");
    assert_eq!((resume.partition.index, resume.offset), (0, 6));
    assert_eq!(decode_closed_below(&resume.metadata), Some(125.0));
}

#[actix::test]
async fn a_partition_that_comes_back_forgets_the_commits_of_its_earlier_ownership() {
    let log = Log::default();
    let batch = unstarted(&log, 0, 60_000, &[0, 1], Closing::ByWatermark, None).start();
    batch
        .send(chunk(0, &[(0, 100.0, "a"), (1, 125.0, "b")], 2))
        .await
        .unwrap();
    batch.send(chunk(1, &[(0, 130.0, "c")], 1)).await.unwrap();
    let first = batch
        .send(ReleasePartitions {
            partitions: vec![p(0)],
            output: ReleaseOutput::Commit {
                retry_until: Instant::now(),
            },
        })
        .await
        .unwrap();
    assert_eq!(first[0].committed.as_ref().map(|c| c.offset), Some(1));
    // Another member read on; the partition comes back at 500 and is lost before this
    // member commits anything for it.
    batch
        .send(AddPartitions(vec![PartitionStart {
            partition: p(0),
            next_offset: Some(500),
            closed_below: None,
        }]))
        .await
        .unwrap();
    let second = batch
        .send(ReleasePartitions {
            partitions: vec![p(0)],
            output: ReleaseOutput::Drop,
        })
        .await
        .unwrap();
    assert_eq!(
        second,
        vec![Released {
            partition: p(0),
            committed: None,
            resume: None
        }],
        "nothing of the earlier ownership survives"
    );
}

/// Refuses every commit as a broker refuses an unauthorized group, or commits only the
/// partitions in `.1` (the others are no longer read here).
struct Refusing(Log, Option<Vec<PartitionId>>);
impl OffsetCommitter for Refusing {
    fn commit(&mut self, positions: &[CommitPosition]) -> Result<Vec<CommitPosition>, CommitError> {
        let Some(owned) = &self.1 else {
            return Err(CommitError {
                kind: CommitErrorKind::Permanent,
                message: "Broker: Group authorization failed".into(),
            });
        };
        let mine: Vec<CommitPosition> = positions
            .iter()
            .filter(|p| owned.contains(&p.partition))
            .cloned()
            .collect();
        self.0 .0.lock().unwrap().push(Event::Commit(
            mine.iter()
                .map(|p| (p.partition.index, p.offset, p.metadata.clone()))
                .collect(),
        ));
        Ok(mine)
    }
}

fn with_committer(
    log: &Log,
    committer: Refusing,
    supervisor: Option<Recipient<BatchEvent>>,
) -> Addr<BatchActor> {
    let mut actor = unstarted(log, 0, 10, &[0, 1], Closing::ByWatermark, supervisor);
    actor.output = Output::Idle(Outlet::at_least_once(
        Box::new(FakeSink(log.clone())),
        Box::new(committer),
    ));
    actor.start()
}

#[actix::test]
async fn a_release_does_not_retry_a_commit_no_retry_cures() {
    let log = Log::default();
    let batch = with_committer(&log, Refusing(log.clone(), None), None);
    let (released, took) = release_after_a_window(&batch, Duration::from_secs(5)).await;
    assert_eq!(released[0].committed, None);
    assert!(
        took < Duration::from_secs(1),
        "an authorization failure was tried again for {took:?}"
    );
}

#[actix::test]
async fn commits_that_can_never_succeed_stop_the_output_within_the_timeout() {
    let log = Log::default();
    let events = Arc::new(Mutex::new(Vec::new()));
    let supervisor = Supervisor(events.clone()).start();
    let batch = with_committer(
        &log,
        Refusing(log.clone(), None),
        Some(supervisor.recipient()),
    );
    // A new window every 100 ms; once the actor has stopped, nothing is taken.
    for (i, ts) in [100.0, 112.0, 124.0, 136.0, 148.0].iter().enumerate() {
        let offset = i as i64;
        let _ = batch
            .send(chunk(0, &[(offset, *ts, "a")], offset + 1))
            .await;
        let _ = batch
            .send(chunk(1, &[(offset, *ts, "b")], offset + 1))
            .await;
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    let events = events.lock().unwrap().clone();
    assert!(
        events.iter().any(|e| matches!(
            e,
            BatchEvent::Failed(failure @ OutputFailure::CommitsRefused { error, timeout_ms: 200, .. })
                if error.contains("Group authorization failed")
                    && failure.to_string().starts_with("offsets cannot be committed")
        )),
        "{events:?}"
    );
    assert!(!batch.connected(), "the batch actor stopped");
    // Output stopped with it: windows 100 and 110 were written before the timeout ran
    // out (every flush's commit failed), the later ones never.
    let written: Vec<Event> = log.events();
    assert!(written.contains(&Event::Write(vec![100])), "{written:?}");
    assert!(!written.contains(&Event::Write(vec![130])), "{written:?}");
}

#[actix::test]
async fn positions_left_out_of_a_commit_are_not_recorded_as_committed() {
    let log = Log::default();
    // Partition 1 was revoked from this member while its windows were being written.
    let batch = with_committer(&log, Refusing(log.clone(), Some(vec![p(0)])), None);
    batch
        .send(chunk(0, &[(0, 100.0, "a"), (1, 125.0, "b")], 2))
        .await
        .unwrap();
    batch.send(chunk(1, &[(0, 130.0, "c")], 1)).await.unwrap();
    let report = batch.send(Drain { close_all: false }).await.unwrap();
    assert_eq!(indexed(&report.committed), vec![(0, 1)]);
    assert!(log
        .events()
        .contains(&commit(&[(0, 1)], "kafka-actors:v1:wm=125")));
}

struct Supervisor(Arc<Mutex<Vec<BatchEvent>>>);
impl Actor for Supervisor {
    type Context = Context<Self>;
}
impl Handler<BatchEvent> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: BatchEvent, _: &mut Self::Context) {
        self.0.lock().unwrap().push(msg);
    }
}

#[actix::test]
async fn refuses_to_write_a_partial_window_without_partition_labels() {
    let log = Log::default();
    let events = Arc::new(Mutex::new(Vec::new()));
    let supervisor = Supervisor(events.clone()).start();
    // This instance owns partitions 0 and 1 of a 3-partition topic.
    let batch = BatchActor::new(
        BatchSpec {
            require_full_cover: Some(vec![p(0), p(1), p(2)]),
            ..spec(10, &[0, 1], Closing::ByWatermark)
        },
        logged(&log, 0),
        links(Some(supervisor.recipient())),
    )
    .start();
    batch
        .send(chunk(0, &[(0, 100.0, "a"), (1, 125.0, "b")], 2))
        .await
        .unwrap();
    batch.send(chunk(1, &[(0, 130.0, "c")], 1)).await.unwrap();
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    assert!(
        log.events().is_empty(),
        "nothing written, nothing committed: {:?}",
        log.events()
    );
    let events = events.lock().unwrap();
    assert!(
        events.iter().any(|e| matches!(
            e,
            BatchEvent::Failed(failure @ OutputFailure::PartialLine { start: 100, .. })
                if failure.to_string().starts_with("refusing to write window 100")
        )),
        "{events:?}"
    );
    assert!(!batch.connected(), "the batch actor stopped");
}
