//! In-memory stand-ins for the ports, shared by the actor tests.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use crate::ports::{
    CommitError, CommitPosition, FrameSource, OffsetCommitter, PollStatus, SourceError,
    SourceFactory, StartOffset,
};
use crate::sink::Sink;
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

/// A partition with nothing to read, positioned where it was opened.
pub(crate) struct QuietSource {
    next: Option<i64>,
}

impl FrameSource for QuietSource {
    fn poll(
        &mut self,
        _: usize,
        _: &mut dyn FnMut(i64, Option<&[u8]>),
    ) -> Result<PollStatus, SourceError> {
        Ok(PollStatus {
            next_offset: self.next,
            ..PollStatus::default()
        })
    }
}

/// Opens [`QuietSource`]s and counts the opens.
pub(crate) fn quiet_sources(opens: Arc<AtomicU32>) -> SourceFactory {
    Arc::new(move |_, start| {
        opens.fetch_add(1, Ordering::Relaxed);
        let next = start.offset();
        Ok(Box::new(QuietSource { next }) as Box<dyn FrameSource>)
    })
}

/// A partition that always has one more frame: each poll delivers the next offset's.
pub(crate) struct EndlessSource {
    next: i64,
}

impl FrameSource for EndlessSource {
    fn poll(
        &mut self,
        _: usize,
        on_record: &mut dyn FnMut(i64, Option<&[u8]>),
    ) -> Result<PollStatus, SourceError> {
        let payload = format!(
            r#"{{"ts":{},"uid":"u{}"}}"#,
            1_700_000_000 + self.next,
            self.next
        );
        on_record(self.next, Some(payload.as_bytes()));
        self.next += 1;
        Ok(PollStatus {
            records: 1,
            next_offset: Some(self.next),
            high_watermark: Some(self.next + 1),
            ..PollStatus::default()
        })
    }
}

/// Opens [`EndlessSource`]s.
pub(crate) fn endless_sources() -> SourceFactory {
    Arc::new(|_, start| {
        let next = match start {
            StartOffset::At(offset) => offset,
            StartOffset::Reset => 0,
        };
        Ok(Box::new(EndlessSource { next }) as Box<dyn FrameSource>)
    })
}
