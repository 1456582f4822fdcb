//! Where closed windows go: one JSON line per window, on standard output or appended to a file
//! (the Kafka sink, in the Kafka adapter, produces the same line as a record).
//! A sink's `write` returns only once the lines are durable (flushed, and for a file fsynced),
//! because the offsets they cover are committed right after.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::line::window_line;
use crate::outlet::Sink;
use crate::window::ClosedWindow;

fn write_lines(out: &mut impl Write, windows: &[ClosedWindow], label: bool) -> io::Result<()> {
    for window in windows {
        let line = window_line(window, label);
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

/// Appends to a file and fsyncs it before returning. Lines are whole or absent: a write cut
/// short (a full disk, a closed descriptor) is cut back to the last whole line before the error
/// is returned, and a file that ends in a partial line when it is opened (the process died in
/// the middle of a write) loses that partial line. Neither part was committed, so its window is
/// written again whole.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    file: File,
    label: bool,
    /// The file's length after the last whole line.
    len: u64,
}

impl FileSink {
    /// Opens (creating if needed) `path` for appending; `label` writes each line's partitions.
    /// A new file's directory entry is fsynced, so the file survives a crash with its lines.
    ///
    /// # Errors
    /// If the file cannot be opened or repaired.
    pub fn open(path: &Path, label: bool) -> io::Result<Self> {
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        let len = cut_partial_tail(&mut file, path)?;
        if !existed {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir)?.sync_all()?;
            }
        }
        Ok(FileSink {
            path: path.to_owned(),
            file,
            label,
            len,
        })
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Somewhere whole lines are appended to: a file, or a fake in tests.
trait Appendable {
    /// Appends all of `bytes`, or fails (possibly after appending some).
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Cuts the content back to `len` bytes.
    fn cut_to(&mut self, len: u64) -> io::Result<()>;
}

impl Appendable for File {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes)
    }

    fn cut_to(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)
    }
}

/// Appends `bytes` (whole lines) to `target`, whose whole lines end at `len`; on failure cuts
/// back to `len`, so no part of a line stays behind. Returns the new length.
fn append_whole(target: &mut impl Appendable, len: u64, bytes: &[u8]) -> io::Result<u64> {
    if let Err(error) = target.append(bytes) {
        if let Err(cut) = target.cut_to(len) {
            tracing::warn!(%cut, "Cannot cut a failed write back; the next start removes the partial line.");
        }
        return Err(error);
    }
    Ok(len + bytes.len() as u64)
}

/// Removes a partial last line (no newline at the end), logging what was removed; returns the
/// length after the last whole line.
fn cut_partial_tail(file: &mut File, path: &Path) -> io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.metadata()?.len();
    let mut end = len;
    let mut block = vec![0u8; 4_096];
    // Scan back block by block for the last newline.
    while end > 0 {
        let start = end.saturating_sub(block.len() as u64);
        let chunk = &mut block[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if end == len && chunk.last() == Some(&b'\n') {
            return Ok(len);
        }
        if let Some(at) = chunk.iter().rposition(|b| *b == b'\n') {
            end = start + at as u64 + 1;
            break;
        }
        end = start;
    }
    if end < len {
        file.set_len(end)?;
        file.sync_data()?;
        tracing::warn!(
            path = %path.display(),
            removed_bytes = len - end,
            "The output file ended in a partial line (a write was cut short); removed it. Its \
             window was not committed and is written again."
        );
    }
    Ok(end)
}

impl Sink for FileSink {
    fn write(&mut self, windows: &[ClosedWindow]) -> io::Result<()> {
        if windows.is_empty() {
            return Ok(());
        }
        let mut lines = Vec::with_capacity(windows.len() * 160);
        write_lines(&mut lines, windows, self.label)?;
        self.len = append_whole(&mut self.file, self.len, &lines)?;
        self.file.sync_data()
    }
}

/// Where the local sink writes: `sink.kind` is `stdout` or `file` (the Kafka sink is the
/// Kafka adapter's, `kafka::KafkaSink`).
#[derive(Debug, Clone, Copy)]
pub enum LocalSink<'a> {
    /// Standard output.
    Stdout,
    /// Appended to this file.
    File(&'a Path),
}

/// Opens the stdout or file sink; lines name their partitions when `label` says.
///
/// # Errors
/// If the file cannot be opened.
pub fn open_sink(target: LocalSink<'_>, label: bool) -> io::Result<Box<dyn Sink>> {
    Ok(match target {
        LocalSink::Stdout => Box::new(StdoutSink { label }),
        LocalSink::File(path) => Box::new(FileSink::open(path, label)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::read_window_lines;
    use crate::topic::PartitionId;

    /// Partition `index` of the test's topic.
    fn p(index: i32) -> PartitionId {
        PartitionId::of("t", index)
    }

    /// Takes `room` bytes, then fails as a full disk does.
    struct FullDisk {
        content: Vec<u8>,
        room: usize,
    }

    impl Appendable for FullDisk {
        fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
            let fits = bytes.len().min(self.room - self.content.len());
            self.content.extend_from_slice(&bytes[..fits]);
            if fits < bytes.len() {
                return Err(io::Error::from_raw_os_error(28)); // ENOSPC
            }
            Ok(())
        }

        fn cut_to(&mut self, len: u64) -> io::Result<()> {
            self.content.truncate(len as usize);
            Ok(())
        }
    }

    #[test]
    fn a_write_cut_short_leaves_no_part_of_a_line() {
        let mut disk = FullDisk {
            content: b"{\"a\":1}\n".to_vec(),
            room: 20,
        };
        let len = disk.content.len() as u64;
        let error = append_whole(&mut disk, len, b"{\"b\":2}\n{\"c\":3}\n").unwrap_err();
        assert_eq!(error.raw_os_error(), Some(28));
        assert_eq!(
            disk.content, b"{\"a\":1}\n",
            "cut back to the last whole line"
        );
        disk.room = 64;
        assert_eq!(append_whole(&mut disk, len, b"{\"b\":2}\n").unwrap(), 16);
    }

    #[test]
    fn a_partial_last_line_is_removed_when_the_file_is_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let whole = r#"{"window_start":0,"window_end":60,"start":"1970-01-01T00:00:00Z","unique_users":1,"frames":1}"#;
        // A long torn line, across several read blocks.
        let torn = format!("{{\"window_start\":60,\"pad\":\"{}", "x".repeat(9_000));
        std::fs::write(&path, format!("{whole}\n{torn}")).unwrap();
        let mut sink = FileSink::open(&path, true).unwrap();
        sink.write(&[ClosedWindow {
            start: 60,
            end: 120,
            unique_users: 2,
            frames: 3,
            partitions: vec![p(0)],
        }])
        .unwrap();
        let lines = read_window_lines(&path).unwrap();
        assert_eq!(lines.len(), 2, "the torn line is gone, the new one whole");
        assert_eq!((lines[0].window_start, lines[1].window_start), (0, 60));
        // A file of nothing but a partial line is emptied; a whole file is left as it is.
        std::fs::write(&path, "{\"window_sta").unwrap();
        drop(FileSink::open(&path, true).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        std::fs::write(&path, format!("{whole}\n")).unwrap();
        drop(FileSink::open(&path, true).unwrap());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{whole}\n")
        );
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
