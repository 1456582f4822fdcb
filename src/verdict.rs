//! The record of one chaos scenario run with one model, as the oracle judged it (written to
//! `chaos.json`).

use serde::Serialize;

use crate::settings::Model;
use crate::Failure;

/// The oracle's verdict on one scenario run with one model.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    /// The scenario's name (`--scenario NAME`).
    pub scenario: &'static str,
    /// The model.
    pub model: Model,
    /// Frames stored (valid and invalid).
    pub frames: u64,
    /// Of those, records the producer stored twice: a batch retried across a broker outage
    /// is sometimes appended again though only one copy is confirmed. The service must count
    /// both, and so does the truth.
    pub unreported_records: u64,
    /// Frames of window shares never written.
    pub lost: u64,
    /// Frames of window shares written more than once (at-least-once repeats).
    pub duplicates: u64,
    /// Frames the service counted as late (their window was closed when they were read),
    /// live run and drain together. Replays after a restart or a lost assignment count here
    /// (frames of windows the commit metadata says are written); a line short of the truth
    /// with late frames points at a frame that arrived after its window was written.
    pub late: u64,
    /// Records passed over unread (deleted before they were read), live run and drain.
    pub skipped_records: u64,
    /// Every line exact and every share written.
    pub windows_correct: bool,
    /// The most valid frames ever below a committed offset while their window share was not
    /// yet written (must be 0).
    pub max_committed_ahead: u64,
    /// Final commits equal the end offsets.
    pub committed_to_end: bool,
    /// Milliseconds from the fault to frames flowing again (none for faults that stop
    /// nothing, or when the run ended first).
    pub recovery_ms: Option<f64>,
    /// Partition restarts (all causes).
    pub restarts: u64,
    /// Of those, by the stall watchdog.
    pub watchdog_recoveries: u64,
    /// Partition leader changes seen.
    pub leader_changes: u64,
    /// The error the service stopped with, when it stopped on its own.
    pub stopped_with: Option<String>,
    /// Why it stopped, when the run was in this process.
    #[serde(skip)]
    pub stop_cause: Option<Failure>,
    /// Scenario-specific expectations that did not hold.
    pub problems: Vec<String>,
    /// Everything held.
    pub passed: bool,
}
