//! The output line of a closed window: one JSON object per window, the same for the file and
//! stdout sinks, the Kafka output (as a record's value) and the generator's truth file.

use std::io;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

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

/// The line of `window`, with its partitions when `label` says.
pub fn window_line(window: &ClosedWindow, label: bool) -> WindowLine {
    let mut line = WindowLine::from(window);
    if !label {
        line.partitions.clear();
    }
    line
}

/// The key a window's line is produced with: its start, then the partitions it covers by
/// topic (`1700000040 frames:0,1,2 other:3`); the start alone for an unlabelled line (which
/// covers every partition). Lines of the same window and partitions share the key, so a
/// compacted topic keeps the latest of them.
pub fn window_key(line: &WindowLine) -> String {
    use std::fmt::Write as _;
    let mut key = line.window_start.to_string();
    for (topic, indices) in &line.partitions {
        let list: Vec<String> = indices.iter().map(ToString::to_string).collect();
        let _ = write!(key, " {topic}:{}", list.join(","));
    }
    key
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
