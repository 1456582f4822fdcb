//! The memory budget of open windows: pausing the partitions ahead of the watermark while
//! the open windows are over it, and resuming them as windows close (see [`OpenBudget`](crate::budget::OpenBudget)).

use std::time::Instant;

use super::{BatchActor, Flow};
use crate::metrics::IntakeBudget;
use crate::topic::PartitionId;

impl BatchActor {
    /// Pauses the partitions ahead of the watermark while the open windows are over their
    /// memory budget, and resumes them once windows close (see [`OpenBudget`](crate::budget::OpenBudget)); the one place
    /// that logs and counts it.
    pub(super) fn review_budget(&mut self) {
        let open = self.windows.open_bytes();
        self.peak_open_bytes = self.peak_open_bytes.max(open);
        if !self.budget.wants_review(open) {
            return;
        }
        let view = self.windows.intake_view(Instant::now());
        let change = self.budget.review(open, &view);
        if change.is_empty() {
            return;
        }
        for partition in &change.pause {
            self.windows.set_paused(*partition, true);
        }
        for partition in &change.resume {
            self.windows.set_paused(*partition, false);
            if let Some(resume) = self.resumes.remove(partition) {
                let _ = resume.send(());
            }
        }
        let open_mib = format_args!("{:.1}", open as f64 / f64::from(1 << 20));
        let budget_mib = self.budget.limit() >> 20;
        let (holder, why) = match view.holder {
            Some((partition, reason)) => (Some(partition), Some(reason)),
            None => (None, None),
        };
        let holder_text = holder.map(|p| p.to_string()).unwrap_or_default();
        let why_text = why.map(|r| r.to_string()).unwrap_or_default();
        if !change.pause.is_empty() {
            tracing::warn!(
                open_mib = %open_mib,
                budget_mib,
                paused = ?change.pause.iter().map(ToString::to_string).collect::<Vec<_>>(),
                holder = %holder_text,
                why = %why_text,
                "Open windows are over window.open_budget_mib: pausing the partitions ahead of \
                 the one that holds the watermark back until windows close."
            );
        }
        if change.exceeded_by_holder {
            tracing::warn!(
                open_mib = %open_mib,
                budget_mib,
                holder = %holder_text,
                why = %why_text,
                "Open windows are over window.open_budget_mib, and no partition is ahead of the \
                 one that holds the watermark back: it reads on, and its windows stay exact."
            );
        }
        if !change.resume.is_empty() {
            tracing::info!(
                open_mib = %open_mib,
                budget_mib,
                resumed = ?change.resume.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "Resuming paused partitions."
            );
        }
        self.metrics.do_send(IntakeBudget {
            paused: self.budget.paused(),
            newly_paused: change.pause.len() as u64,
            holder,
            open_bytes: open as u64,
        });
    }

    /// What a partition that sent a chunk does next: read on, or wait while paused.
    pub(super) fn flow(&mut self, partition: PartitionId) -> Flow {
        if !self.budget.is_paused(partition) {
            return Flow::Go;
        }
        let (resume, resumed) = tokio::sync::oneshot::channel();
        self.resumes.insert(partition, resume);
        Flow::Pause(resumed)
    }

    /// The metrics must not keep showing a partition paused that is no longer read here.
    pub(super) fn report_unpaused(&self) {
        self.metrics.do_send(IntakeBudget {
            paused: self.budget.paused(),
            newly_paused: 0,
            holder: self
                .windows
                .intake_view(Instant::now())
                .holder
                .map(|(p, _)| p),
            open_bytes: self.windows.open_bytes() as u64,
        });
    }
}
