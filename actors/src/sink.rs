//! Where closed windows go: one JSON line per window, on standard output or appended to a file.
//! A sink's `write` returns only once the lines are durable (flushed, and for a file fsynced),
//! because the offsets they cover are committed right after.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::{SinkConfig, SinkKind};
use crate::topic::{by_topic, PartitionsByTopic};
use crate::window::ClosedWindow;

/// The output record of one closed window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowLine {
    /// Window start, epoch seconds.
    pub window_start: i64,
    /// Window end (exclusive), epoch seconds.
    pub window_end: i64,
    /// Window start in RFC 3339, UTC.
    pub start: String,
    /// Distinct uids in the window.
    pub unique_users: u64,
    /// Frames counted in the window.
    pub frames: u64,
    /// The partitions this line accounts for, by topic (`{"frames": [0, 1, 2]}`). A service
    /// that reads every partition names them all; with partitions spread over several
    /// instances each names its own, and when every uid lives in one partition the lines of a
    /// window add up to the exact total. Left out when `sink.label_partitions` is off (then
    /// every line covers every partition of every input topic).
    #[serde(default, skip_serializing_if = "PartitionsByTopic::is_empty")]
    pub partitions: PartitionsByTopic,
}

impl From<&ClosedWindow> for WindowLine {
    fn from(w: &ClosedWindow) -> Self {
        WindowLine {
            window_start: w.start,
            window_end: w.end,
            start: rfc3339(w.start),
            unique_users: w.unique_users,
            frames: w.frames,
            partitions: by_topic(&w.partitions),
        }
    }
}

/// Formats epoch seconds as RFC 3339 UTC (`2026-11-21T10:00:00Z`).
pub fn rfc3339(epoch_secs: i64) -> String {
    // Window starts are validated to lie in [frames.min_ts, frames.max_ts], both non-negative.
    let time = UNIX_EPOCH + Duration::from_secs(epoch_secs.max(0) as u64);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// Destination of closed windows.
pub trait Sink: Send + 'static {
    /// Writes the windows and returns once they are durable.
    ///
    /// # Errors
    /// Any I/O error; nothing covered by this call may be committed then.
    fn write(&mut self, windows: &[ClosedWindow]) -> io::Result<()>;
}

fn write_lines(out: &mut impl Write, windows: &[ClosedWindow], label: bool) -> io::Result<()> {
    for window in windows {
        let mut line = WindowLine::from(window);
        if !label {
            line.partitions.clear();
        }
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Writes to standard output; logs go to standard error so stdout holds only results.
#[derive(Debug)]
pub struct StdoutSink {
    label: bool,
}

impl Sink for StdoutSink {
    fn write(&mut self, windows: &[ClosedWindow]) -> io::Result<()> {
        write_lines(&mut io::stdout().lock(), windows, self.label)
    }
}

/// Appends to a file and fsyncs it before returning.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    file: File,
    label: bool,
}

impl FileSink {
    /// Opens (creating if needed) `path` for appending; `label` writes each line's partitions.
    ///
    /// # Errors
    /// If the file cannot be opened.
    pub fn open(path: &Path, label: bool) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(FileSink {
            path: path.to_owned(),
            file,
            label,
        })
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Sink for FileSink {
    fn write(&mut self, windows: &[ClosedWindow]) -> io::Result<()> {
        if windows.is_empty() {
            return Ok(());
        }
        let mut out = BufWriter::new(&mut self.file);
        write_lines(&mut out, windows, self.label)?;
        drop(out);
        self.file.sync_data()
    }
}

/// Builds the sink `config` describes.
///
/// # Errors
/// If the file sink's file cannot be opened.
pub fn open_sink(config: &SinkConfig) -> io::Result<Box<dyn Sink>> {
    let sink: Box<dyn Sink> = match config.kind {
        SinkKind::Stdout => Box::new(StdoutSink {
            label: config.label_partitions,
        }),
        SinkKind::File => Box::new(FileSink::open(
            Path::new(&config.path),
            config.label_partitions,
        )?),
    };
    Ok(match config.write_delay_ms {
        0 => sink,
        ms => Box::new(SlowSink {
            inner: sink,
            delay: std::time::Duration::from_millis(ms),
        }),
    })
}

/// Waits before every write: a slow output, for fault-injection runs.
struct SlowSink {
    inner: Box<dyn Sink>,
    delay: std::time::Duration,
}

impl Sink for SlowSink {
    fn write(&mut self, windows: &[ClosedWindow]) -> io::Result<()> {
        std::thread::sleep(self.delay);
        self.inner.write(windows)
    }
}

/// Reads a file of window lines (the file sink's output, or a truth file).
///
/// # Errors
/// If the file cannot be read or a line is not a window line.
pub fn read_window_lines(path: &Path) -> io::Result<Vec<WindowLine>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::PartitionId;

    /// Partition `index` of the test's topic.
    fn p(index: i32) -> PartitionId {
        PartitionId::of("t", index)
    }

    #[test]
    fn file_sink_appends_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let mut sink = FileSink::open(&path, true).unwrap();
        let w = ClosedWindow {
            start: 1_700_000_040,
            end: 1_700_000_100,
            unique_users: 3,
            frames: 7,
            partitions: vec![p(0), p(1), PartitionId::of("other", 2)],
        };
        sink.write(std::slice::from_ref(&w)).unwrap();
        sink.write(&[]).unwrap();
        let mut again = FileSink::open(&path, false).unwrap();
        again
            .write(&[ClosedWindow {
                start: 1_700_000_100,
                end: 1_700_000_160,
                unique_users: 1,
                frames: 1,
                partitions: vec![p(0), p(1)],
            }])
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines().next().unwrap(),
            r#"{"window_start":1700000040,"window_end":1700000100,"start":"2023-11-14T22:14:00Z","unique_users":3,"frames":7,"partitions":{"other":[2],"t":[0,1]}}"#
        );
        assert!(
            !text.lines().nth(1).unwrap().contains("partitions"),
            "unlabelled: {text}"
        );
        let lines = read_window_lines(&path).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].window_start, 1_700_000_100);
    }
}
