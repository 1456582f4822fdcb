//! In-memory stand-ins for the ports, shared by the actor tests.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use crate::outlet::Sink;
use crate::ports::{
    CommitError, CommitPosition, FrameSource, OffsetCommitter, PollStatus, SourceError,
    SourceFactory, SourceRecord,
};
use crate::window::ClosedWindow;

/// A sink that keeps nothing.
pub(crate) struct NullSink;

impl Sink for NullSink {
    fn write(&mut self, _: &[ClosedWindow]) -> std::io::Result<()> {
        Ok(())
    }
}

/// Accepts every commit and records it.
#[derive(Clone, Default)]
pub(crate) struct Commits(pub(crate) Arc<Mutex<Vec<Vec<CommitPosition>>>>);

impl OffsetCommitter for Commits {
    fn commit(&mut self, positions: &[CommitPosition]) -> Result<Vec<CommitPosition>, CommitError> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(positions.to_vec());
        Ok(positions.to_vec())
    }
}

/// A partition with nothing to read, positioned where it was opened; it never says whether
/// it is at its end (as when its leader cannot be reached), unless `at_end`.
pub(crate) struct QuietSource {
    next: Option<i64>,
    at_end: bool,
}

impl FrameSource for QuietSource {
    fn poll(
        &mut self,
        _: usize,
        _: &mut dyn FnMut(&SourceRecord<'_>),
    ) -> Result<PollStatus, SourceError> {
        Ok(PollStatus {
            next_offset: self.next,
            at_end: self.at_end,
            ..PollStatus::default()
        })
    }
}

/// Opens [`QuietSource`]s that never reach their end, and counts the opens.
pub(crate) fn quiet_sources(opens: Arc<AtomicU32>) -> SourceFactory {
    Arc::new(move |_, start| {
        opens.fetch_add(1, Ordering::Relaxed);
        let next = start.offset();
        Ok(Box::new(QuietSource {
            next,
            at_end: false,
        }) as Box<dyn FrameSource>)
    })
}

/// Opens [`QuietSource`]s of empty partitions (always at their end), and counts the opens.
pub(crate) fn empty_sources(opens: Arc<AtomicU32>) -> SourceFactory {
    Arc::new(move |_, start| {
        opens.fetch_add(1, Ordering::Relaxed);
        let next = start.offset();
        Ok(Box::new(QuietSource { next, at_end: true }) as Box<dyn FrameSource>)
    })
}

/// A partition of `frames` frames from the offset it is opened at, one per poll (offset `o`
/// carries `ts` 1 700 000 000 + `o` and uid `u<o>`); then nothing, as if caught up or
/// stalled.
pub(crate) struct CountingSource {
    next: i64,
    frames: i64,
}

impl CountingSource {
    /// Frames up to offset `frames`, from `next`.
    pub(crate) fn new(next: i64, frames: i64) -> Self {
        CountingSource { next, frames }
    }
}

impl FrameSource for CountingSource {
    fn poll(
        &mut self,
        _: usize,
        on_record: &mut dyn FnMut(&SourceRecord<'_>),
    ) -> Result<PollStatus, SourceError> {
        if self.next >= self.frames {
            return Ok(PollStatus {
                next_offset: Some(self.next),
                ..PollStatus::default()
            });
        }
        let payload = format!(
            r#"{{"ts":{},"uid":"u{}"}}"#,
            1_700_000_000 + self.next,
            self.next
        );
        on_record(&SourceRecord::plain(self.next, Some(payload.as_bytes())));
        self.next += 1;
        Ok(PollStatus {
            records: 1,
            next_offset: Some(self.next),
            high_watermark: Some(self.next),
            ..PollStatus::default()
        })
    }
}
