//! Fixtures for the lab's tests.

#![allow(dead_code)]

/// Asserts that a chaos scenario run held every check of the oracle (nothing lost, every
/// window exact, nothing committed ahead, commits at the end, the scenario's own
/// expectations) over at least `frames` frames. A failed run's output stays in `dir`.
pub fn assert_scenario_passed(
    result: &lab::chaos::ScenarioResult,
    dir: tempfile::TempDir,
    frames: u64,
) {
    eprintln!("{result:?}");
    if !result.passed {
        eprintln!("output kept in {}", dir.keep().display());
    }
    assert_eq!(result.lost, 0, "{result:?}");
    assert!(result.windows_correct, "{result:?}");
    assert_eq!(result.max_committed_ahead, 0, "{result:?}");
    assert!(result.committed_to_end, "{result:?}");
    assert!(result.problems.is_empty(), "{:?}", result.problems);
    assert!(result.passed);
    assert!(result.frames >= frames, "{result:?}");
    if result.output == lab::chaos::ChaosOutput::ExactlyOnce {
        assert_eq!(result.duplicates, 0, "{result:?}");
        assert_eq!(result.dead_letter_duplicates, 0, "{result:?}");
    }
}
