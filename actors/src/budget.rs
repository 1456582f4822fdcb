//! [`OpenBudget`]: the memory budget of open windows (`window.open_budget_mib`). Pure state,
//! no actor: the [`BatchActor`](crate::BatchActor) asks it after every chunk and tick, and
//! pauses or resumes partitions' intake as it says.
//!
//! While the watermark cannot move (a partition that never delivers its first chunk, a long
//! backlog on one partition), the partitions ahead of it keep filling open windows that cannot
//! close. Once the open windows hold more than the budget, every partition ahead of the one
//! holding the watermark back is paused: it reads nothing more (librdkafka stops fetching it
//! and drops what it had fetched), so open windows stop growing, while the holder reads on and
//! moves the watermark, which closes windows. Once they hold no more than
//! [`RESUME_AT`] of the budget every paused partition resumes. A paused partition that no
//! longer is ahead (the holder went idle or caught up with it) resumes at once, since the
//! watermark now waits for it. The holder itself is never paused; when it alone fills the
//! budget, the budget is exceeded (and said so once) rather than closing a window early.

use std::collections::BTreeSet;

use crate::topic::PartitionId;
use crate::window::IntakeView;

/// Share of the budget below which paused partitions resume (hysteresis: a budget crossed
/// back and forth by one chunk would pause and resume on every chunk).
pub const RESUME_AT: f64 = 0.75;

/// What the budget wants done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BudgetChange {
    /// Partitions to pause now.
    pub pause: Vec<PartitionId>,
    /// Partitions to resume now.
    pub resume: Vec<PartitionId>,
    /// The budget is exceeded with nothing to pause: the holder alone fills it (reported once
    /// each time it happens).
    pub exceeded_by_holder: bool,
}

impl BudgetChange {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.pause.is_empty() && self.resume.is_empty() && !self.exceeded_by_holder
    }
}

/// Where the open windows stand against the budget.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Standing {
    /// At most the budget (or back below [`RESUME_AT`] of it): everything reads.
    Within,
    /// Over the budget: these partitions are paused.
    Over {
        paused: BTreeSet<PartitionId>,
        /// Exceeded with nothing to pause was reported.
        reported: bool,
    },
}

/// The memory budget of open windows; see the module documentation.
#[derive(Debug, Clone)]
pub struct OpenBudget {
    limit: usize,
    resume_below: usize,
    standing: Standing,
}

impl OpenBudget {
    /// A budget of `limit` bytes; `None` never pauses.
    pub fn new(limit: Option<usize>) -> Self {
        let limit = limit.unwrap_or(usize::MAX);
        OpenBudget {
            limit,
            resume_below: (limit as f64 * RESUME_AT) as usize,
            standing: Standing::Within,
        }
    }

    /// The budget in bytes (`usize::MAX` when there is none).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// True when `partition` is paused.
    pub fn is_paused(&self, partition: PartitionId) -> bool {
        matches!(&self.standing, Standing::Over { paused, .. } if paused.contains(&partition))
    }

    /// The paused partitions.
    pub fn paused(&self) -> Vec<PartitionId> {
        match &self.standing {
            Standing::Within => Vec::new(),
            Standing::Over { paused, .. } => paused.iter().copied().collect(),
        }
    }

    /// True when a review may change something: over the resume mark, or partitions paused.
    /// Lets the caller skip building the view while far below the budget.
    pub fn wants_review(&self, open_bytes: usize) -> bool {
        open_bytes > self.resume_below || matches!(self.standing, Standing::Over { .. })
    }

    /// Forgets a partition that is no longer read here; true if it was paused.
    pub fn forget(&mut self, partition: PartitionId) -> bool {
        match &mut self.standing {
            Standing::Over { paused, .. } => paused.remove(&partition),
            Standing::Within => false,
        }
    }

    /// What to pause and resume, given what the open windows hold and who is ahead of the
    /// watermark's holder.
    pub fn review(&mut self, open_bytes: usize, view: &IntakeView) -> BudgetChange {
        let over = open_bytes > self.limit;
        let mut change = BudgetChange::default();
        let standing = std::mem::replace(&mut self.standing, Standing::Within);
        self.standing = match (standing, over) {
            (Standing::Within, false) => Standing::Within,
            (Standing::Within, true) => {
                change.pause = view.ahead.clone();
                change.exceeded_by_holder = view.ahead.is_empty();
                Standing::Over {
                    paused: view.ahead.iter().copied().collect(),
                    reported: view.ahead.is_empty(),
                }
            }
            (Standing::Over { paused, .. }, _) if open_bytes <= self.resume_below => {
                change.resume = paused.into_iter().collect();
                Standing::Within
            }
            (Standing::Over { paused, reported }, over) => {
                let ahead: BTreeSet<PartitionId> = view.ahead.iter().copied().collect();
                // Paused partitions the watermark now waits for read again.
                change.resume = paused.difference(&ahead).copied().collect();
                let mut paused: BTreeSet<PartitionId> =
                    paused.intersection(&ahead).copied().collect();
                if over {
                    change.pause = view
                        .ahead
                        .iter()
                        .filter(|p| !paused.contains(*p))
                        .copied()
                        .collect();
                    paused.extend(change.pause.iter().copied());
                }
                let stuck = over && paused.is_empty();
                change.exceeded_by_holder = stuck && !reported;
                Standing::Over {
                    paused,
                    reported: reported || stuck,
                }
            }
        };
        change
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::HoldReason;

    fn p(index: i32) -> PartitionId {
        PartitionId::of("t", index)
    }

    fn view(holder: i32, ahead: &[i32]) -> IntakeView {
        IntakeView {
            holder: Some((p(holder), HoldReason::NotHeardFrom)),
            ahead: ahead.iter().map(|i| p(*i)).collect(),
        }
    }

    #[test]
    fn over_the_budget_pauses_every_partition_ahead_and_resumes_below_the_mark() {
        let mut budget = OpenBudget::new(Some(1_000));
        assert!(budget.review(1_000, &view(0, &[2, 1])).is_empty());
        let change = budget.review(1_001, &view(0, &[2, 1]));
        assert_eq!(change.pause, vec![p(2), p(1)]);
        assert!(budget.is_paused(p(1)) && !budget.is_paused(p(0)));
        // Between the resume mark and the budget: nothing changes.
        assert!(budget.review(800, &view(0, &[2, 1])).is_empty());
        let change = budget.review(750, &view(0, &[2, 1]));
        assert_eq!(change.resume, vec![p(1), p(2)]);
        assert!(budget.paused().is_empty());
        assert!(!budget.wants_review(750) && budget.wants_review(751));
    }

    #[test]
    fn a_paused_partition_the_watermark_now_waits_for_resumes_at_once() {
        let mut budget = OpenBudget::new(Some(1_000));
        budget.review(2_000, &view(0, &[2, 1]));
        // Partition 0 went idle: partition 1 holds the watermark now.
        let change = budget.review(1_500, &view(1, &[2]));
        assert_eq!(change.resume, vec![p(1)]);
        assert!(change.pause.is_empty());
        assert_eq!(budget.paused(), vec![p(2)]);
        // Still over: a partition newly ahead is paused too.
        let change = budget.review(1_500, &view(1, &[3, 2]));
        assert_eq!(change.pause, vec![p(3)]);
        assert_eq!(budget.paused(), vec![p(2), p(3)]);
    }

    #[test]
    fn a_holder_that_alone_fills_the_budget_is_reported_once_and_never_paused() {
        let mut budget = OpenBudget::new(Some(1_000));
        let change = budget.review(5_000, &view(0, &[]));
        assert!(change.exceeded_by_holder && change.pause.is_empty());
        assert!(!budget.review(6_000, &view(0, &[])).exceeded_by_holder);
        assert!(budget.review(100, &view(0, &[])).is_empty());
        assert!(budget.review(5_000, &view(0, &[])).exceeded_by_holder);
    }

    #[test]
    fn without_a_budget_nothing_is_paused() {
        let mut budget = OpenBudget::new(None);
        assert!(budget.review(usize::MAX - 1, &view(0, &[1])).is_empty());
        assert!(!budget.wants_review(1 << 40));
    }

    #[test]
    fn a_forgotten_partition_is_not_resumed() {
        let mut budget = OpenBudget::new(Some(10));
        budget.review(20, &view(0, &[1, 2]));
        assert!(budget.forget(p(1)));
        assert!(!budget.forget(p(1)));
        assert_eq!(budget.review(0, &view(0, &[])).resume, vec![p(2)]);
    }
}
