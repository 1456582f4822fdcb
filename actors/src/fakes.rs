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
        let next = match start {
            StartOffset::At(offset) => Some(offset),
            StartOffset::Reset => None,
        };
        Ok(Box::new(QuietSource { next }) as Box<dyn FrameSource>)
    })
}
