//! Fault injection at the ports: a [`FaultPlan`] wraps the partition sources an
//! [`AssignmentSource`] opens, and a source of a partition with a fault armed panics, fails or
//! stalls at its next poll, once or on every open (so every restarted reader meets it again).
//! The actors know nothing of it: a panic in `poll` is a panic in the partition actor's
//! handler, a failure is a read error, a stall is a source that delivers nothing while its
//! records wait.
//!
//! Used by `kafka-actors chaos` and the tests; a service without a plan reads unwrapped
//! sources.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::frame::DeadLetter;
use crate::outlet::Sink;
use crate::outlet::{Outlet, TransactionFailure, TransactionalSink};
use crate::ports::CommitPosition;
use crate::ports::{
    AssignmentSource, CoverageProbe, FailureKind, FrameSource, OnLeave, PollStatus, SourceError,
    SourceFactory, SourceRecord, Wake,
};
use crate::topic::PartitionId;
use crate::window::ClosedWindow;

/// A fault to inject into a partition's source.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionFault {
    /// Panic inside the reading partition actor.
    Panic,
    /// Fail as after a fatal read error.
    Fail,
    /// Deliver nothing for this many milliseconds without failing (the watchdog's case).
    StallMs(u64),
}

/// How often an armed fault fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Times {
    /// At the next poll of the partition's source, then never again.
    Once,
    /// At the next poll of the current source and at the first poll of every source opened
    /// for the partition later (a partition that keeps failing).
    EveryOpen,
}

/// Faults armed per partition, shared by whoever injects them and the sources they hit.
#[derive(Clone, Default)]
pub struct FaultPlan {
    armed: Arc<Mutex<BTreeMap<PartitionId, (PartitionFault, Times)>>>,
    /// Every write of the output fails while set ([`FaultPlan::refuse_output`]).
    output_refused: Arc<AtomicBool>,
    /// How many more exactly-once flushes with windows are written before one is answered
    /// as one whose partitions were partly lost ([`FaultPlan::drop_flush`]).
    drop_flush: Arc<Mutex<Option<u32>>>,
}

/// The error an output refusing writes answers.
pub const OUTPUT_REFUSED: &str = "the output refuses every write (an injected fault)";

impl FaultPlan {
    /// Makes every write of the output fail (`true`) or pass again (`false`): the window
    /// sink's writes fail with an I/O error, exactly-once transactions as a fatal error.
    pub fn refuse_output(&self, refuse: bool) {
        tracing::warn!(refuse, "Injecting an output fault.");
        self.output_refused.store(refuse, Ordering::SeqCst);
    }

    /// Exactly once: once `after` more flushes holding windows are written, the next one is
    /// not, and is answered as a group member's transaction is when the member lost some of
    /// the flush's partitions meanwhile ([`TransactionFailure::MembershipLost`]); the flushes
    /// after it are written.
    pub fn drop_flush(&self, after: u32) {
        tracing::warn!(after, "Injecting a dropped flush.");
        *self.drop_flush.lock().unwrap_or_else(|p| p.into_inner()) = Some(after);
    }

    /// Wraps the writes of `outlet` in the output faults ([`FaultPlan::refuse_output`],
    /// [`FaultPlan::drop_flush`]).
    #[must_use]
    pub fn wrap_outlet(&self, outlet: Outlet) -> Outlet {
        let refused = self.output_refused.clone();
        let drop_flush = self.drop_flush.clone();
        match outlet {
            Outlet::AtLeastOnce {
                sink,
                dead_letters,
                committer,
            } => Outlet::AtLeastOnce {
                sink: Box::new(RefusingOutput {
                    inner: sink,
                    refused,
                    drop_flush,
                }),
                dead_letters,
                committer,
            },
            Outlet::ExactlyOnce(transactions) => Outlet::ExactlyOnce(Box::new(RefusingOutput {
                inner: transactions,
                refused,
                drop_flush,
            })),
        }
    }

    /// Arms `fault` for `partition`, replacing what was armed for it.
    pub fn inject(&self, partition: PartitionId, fault: PartitionFault, times: Times) {
        tracing::warn!(%partition, ?fault, ?times, "Injecting a fault.");
        self.lock().insert(partition, (fault, times));
    }

    /// Wraps the sources `assignments` opens.
    pub fn wrap(&self, assignments: Box<dyn AssignmentSource>) -> Box<dyn AssignmentSource> {
        Box::new(FaultyAssignments {
            inner: assignments,
            plan: self.clone(),
        })
    }

    /// Wraps a source factory.
    pub fn wrap_sources(&self, sources: SourceFactory) -> SourceFactory {
        let plan = self.clone();
        Arc::new(move |partition, start| {
            let inner = sources(partition, start)?;
            Ok(Box::new(FaultySource {
                partition,
                inner,
                plan: plan.clone(),
                fired: false,
                stalled_until: None,
                next_offset: None,
            }) as Box<dyn FrameSource>)
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<PartitionId, (PartitionFault, Times)>> {
        self.armed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The fault a source of `partition` meets now, if any; `fired` says whether this source
    /// already met its every-open fault.
    fn take(&self, partition: PartitionId, fired: bool) -> Option<PartitionFault> {
        let mut armed = self.lock();
        match armed.get(&partition) {
            Some((_, Times::Once)) => armed.remove(&partition).map(|(fault, _)| fault),
            Some((fault, Times::EveryOpen)) if !fired => Some(fault.clone()),
            Some((_, Times::EveryOpen)) | None => None,
        }
    }
}

/// An assignment source whose partition sources meet the plan's faults.
struct FaultyAssignments {
    inner: Box<dyn AssignmentSource>,
    plan: FaultPlan,
}

impl AssignmentSource for FaultyAssignments {
    fn sources(&self) -> SourceFactory {
        self.plan.wrap_sources(self.inner.sources())
    }
    fn member(&self) -> Option<crate::ports::GroupMember> {
        self.inner.member()
    }
    fn start(&mut self) {
        self.inner.start();
    }
    fn leave(&mut self) {
        self.inner.leave();
    }
    fn on_leave(&self) -> OnLeave {
        self.inner.on_leave()
    }
    fn coverage(&self) -> Option<CoverageProbe> {
        self.inner.coverage()
    }
}

/// A partition source that meets the plan's faults.
struct FaultySource {
    partition: PartitionId,
    inner: Box<dyn FrameSource>,
    plan: FaultPlan,
    /// This source met its every-open fault already.
    fired: bool,
    /// Delivering nothing until then.
    stalled_until: Option<Instant>,
    /// The inner source's position, for the polls it does not see.
    next_offset: Option<i64>,
}

impl FrameSource for FaultySource {
    fn poll(
        &mut self,
        max: usize,
        on_record: &mut dyn FnMut(&SourceRecord<'_>),
    ) -> Result<PollStatus, SourceError> {
        if let Some(fault) = self.plan.take(self.partition, self.fired) {
            self.fired = true;
            match fault {
                PartitionFault::Panic => panic!("injected panic in partition {}", self.partition),
                PartitionFault::Fail => {
                    return Err(SourceError {
                        kind: FailureKind::Fatal,
                        message: format!("partition {}: injected failure", self.partition),
                    })
                }
                PartitionFault::StallMs(ms) => {
                    self.stalled_until = Some(Instant::now() + Duration::from_millis(ms));
                }
            }
        }
        if self
            .stalled_until
            .is_some_and(|until| Instant::now() < until)
        {
            return Ok(PollStatus {
                next_offset: self.next_offset,
                ..PollStatus::default()
            });
        }
        self.stalled_until = None;
        let status = self.inner.poll(max, on_record)?;
        self.next_offset = status.next_offset;
        Ok(status)
    }

    fn wake_on_records(&mut self, wake: Wake) {
        self.inner.wake_on_records(wake);
    }

    fn pause(&mut self) -> Result<(), SourceError> {
        self.inner.pause()
    }

    fn resume(&mut self) -> Result<(), SourceError> {
        self.inner.resume()
    }
}

/// An output whose writes fail while `refused` is set.
struct RefusingOutput<T: ?Sized> {
    inner: Box<T>,
    refused: Arc<AtomicBool>,
    /// Exactly once only: see [`FaultPlan::drop_flush`].
    drop_flush: Arc<Mutex<Option<u32>>>,
}

/// `outlet` with every write waited for `delay` first (`sink.write_delay_ms`: a slow output,
/// for fault-injection runs): the windows of a flush at least once, the whole transaction
/// exactly once. No delay leaves the outlet as it is.
#[must_use]
pub fn delay_writes(outlet: Outlet, delay: Duration) -> Outlet {
    if delay.is_zero() {
        return outlet;
    }
    match outlet {
        Outlet::AtLeastOnce {
            sink,
            dead_letters,
            committer,
        } => Outlet::AtLeastOnce {
            sink: Box::new(SlowOutput { inner: sink, delay }),
            dead_letters,
            committer,
        },
        Outlet::ExactlyOnce(transactions) => Outlet::ExactlyOnce(Box::new(SlowOutput {
            inner: transactions,
            delay,
        })),
    }
}

/// Waits before every write: see [`delay_writes`].
struct SlowOutput<T: ?Sized> {
    inner: Box<T>,
    delay: Duration,
}

impl Sink for SlowOutput<dyn Sink> {
    fn write(&mut self, windows: &[ClosedWindow]) -> std::io::Result<()> {
        std::thread::sleep(self.delay);
        self.inner.write(windows)
    }
}

impl TransactionalSink for SlowOutput<dyn TransactionalSink> {
    fn write_and_commit(
        &mut self,
        windows: &[ClosedWindow],
        letters: &[DeadLetter],
        positions: &[CommitPosition],
        retry_until: Option<Instant>,
        owned: &dyn Fn() -> bool,
    ) -> Result<Vec<CommitPosition>, TransactionFailure> {
        std::thread::sleep(self.delay);
        self.inner
            .write_and_commit(windows, letters, positions, retry_until, owned)
    }
}

/// The reason a flush dropped by [`FaultPlan::drop_flush`] is given.
pub const FLUSH_DROPPED: &str =
    "an injected fault: the member lost some of the flush's partitions while its transaction \
     was open";

impl Sink for RefusingOutput<dyn Sink> {
    fn write(&mut self, windows: &[ClosedWindow]) -> std::io::Result<()> {
        if self.refused.load(Ordering::SeqCst) {
            return Err(std::io::Error::other(OUTPUT_REFUSED));
        }
        self.inner.write(windows)
    }
}

impl TransactionalSink for RefusingOutput<dyn TransactionalSink> {
    fn write_and_commit(
        &mut self,
        windows: &[ClosedWindow],
        letters: &[DeadLetter],
        positions: &[CommitPosition],
        retry_until: Option<Instant>,
        owned: &dyn Fn() -> bool,
    ) -> Result<Vec<CommitPosition>, TransactionFailure> {
        if self.refused.load(Ordering::SeqCst) {
            return Err(TransactionFailure::Fatal {
                reason: OUTPUT_REFUSED.to_owned(),
            });
        }
        if !windows.is_empty() {
            let mut armed = self.drop_flush.lock().unwrap_or_else(|p| p.into_inner());
            match *armed {
                Some(0) => {
                    *armed = None;
                    return Err(TransactionFailure::MembershipLost {
                        reason: FLUSH_DROPPED.to_owned(),
                    });
                }
                Some(after) => *armed = Some(after - 1),
                None => {}
            }
        }
        self.inner
            .write_and_commit(windows, letters, positions, retry_until, owned)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// Partition `index` of the test's topic.
    fn p(index: i32) -> PartitionId {
        PartitionId::of("t", index)
    }
    use crate::fakes::{quiet_sources, CountingSource};
    use crate::ports::StartOffset;

    fn poll(source: &mut Box<dyn FrameSource>) -> Result<PollStatus, SourceError> {
        source.poll(10, &mut |_| {})
    }

    #[test]
    fn a_refused_output_fails_every_write_until_it_is_healed() {
        let plan = FaultPlan::default();
        let outlet = plan.wrap_outlet(Outlet::at_least_once(
            Box::new(crate::fakes::NullSink),
            Box::new(crate::fakes::Commits::default()),
        ));
        let Outlet::AtLeastOnce { mut sink, .. } = outlet else {
            panic!("the outlet keeps its kind");
        };
        assert!(sink.write(&[]).is_ok());
        plan.refuse_output(true);
        for _ in 0..2 {
            let error = sink.write(&[]).unwrap_err();
            assert_eq!(error.to_string(), OUTPUT_REFUSED);
        }
        plan.refuse_output(false);
        assert!(sink.write(&[]).is_ok());
    }

    #[test]
    fn a_fault_armed_once_hits_the_next_poll_only() {
        let plan = FaultPlan::default();
        let sources = plan.wrap_sources(quiet_sources(Arc::new(AtomicU32::new(0))));
        let mut source = sources(p(3), StartOffset::At(5)).unwrap();
        assert!(poll(&mut source).is_ok());
        plan.inject(p(3), PartitionFault::Fail, Times::Once);
        plan.inject(p(4), PartitionFault::Fail, Times::Once);
        let error = poll(&mut source).unwrap_err();
        assert_eq!(error.kind, FailureKind::Fatal);
        assert_eq!(error.message, "partition t-3: injected failure");
        assert!(poll(&mut source).is_ok(), "once");
        let mut reopened = sources(p(3), StartOffset::At(5)).unwrap();
        assert!(poll(&mut reopened).is_ok(), "once, not on every open");
    }

    #[test]
    fn a_fault_armed_for_every_open_hits_each_new_source_once() {
        let plan = FaultPlan::default();
        let opens = Arc::new(AtomicU32::new(0));
        let sources = plan.wrap_sources(quiet_sources(opens.clone()));
        plan.inject(p(0), PartitionFault::Fail, Times::EveryOpen);
        for _ in 0..3 {
            let mut source = sources(p(0), StartOffset::At(0)).unwrap();
            assert!(poll(&mut source).is_err());
            assert!(poll(&mut source).is_ok());
        }
        assert_eq!(opens.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_stall_delivers_nothing_for_its_duration_and_keeps_the_position() {
        let plan = FaultPlan::default();
        let counting: SourceFactory = Arc::new(|_, start| {
            let next = start.offset().unwrap_or(0);
            Ok(Box::new(CountingSource::new(next, i64::MAX)) as Box<dyn FrameSource>)
        });
        let sources = plan.wrap_sources(counting);
        let mut source = sources(p(1), StartOffset::At(42)).unwrap();
        assert_eq!(poll(&mut source).unwrap().next_offset, Some(43));
        plan.inject(p(1), PartitionFault::StallMs(200), Times::Once);
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(150) {
            let status = poll(&mut source).unwrap();
            assert_eq!((status.records, status.next_offset), (0, Some(43)));
        }
        std::thread::sleep(Duration::from_millis(60));
        let status = poll(&mut source).unwrap();
        assert_eq!(
            (status.records, status.next_offset),
            (1, Some(44)),
            "reads on"
        );
    }

    #[test]
    #[should_panic(expected = "injected panic in partition t-2")]
    fn a_panic_is_raised_inside_poll() {
        let plan = FaultPlan::default();
        let sources = plan.wrap_sources(quiet_sources(Arc::new(AtomicU32::new(0))));
        let mut source = sources(p(2), StartOffset::Reset).unwrap();
        plan.inject(p(2), PartitionFault::Panic, Times::Once);
        let _ = poll(&mut source);
    }
}
