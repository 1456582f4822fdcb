//! The kafka-actors actor system.
//!
//! ```text
//!  AssignmentSource (partition model: every partition at start; group model: rebalances)
//!        │ Assign / Revoke / Lost
//!        ▼
//!  IntakeActor: starts, stops and restarts one PartitionActor per assigned partition
//!                    Chunk (frames of one partition, per poll)          Flush: write windows,
//!  PartitionActor p0 ──────────────────────────────┐                    fsync, then commit
//!  PartitionActor p1 ──────────────────────────────┼──▶ BatchActor ───────────▶ Outlet
//!  PartitionActor pN ──────────────────────────────┘      │  windows, watermark
//!        │ ChunkProcessed (counts, timings, lag)           │ FramesLate, Flushed
//!        └───────────────────────────────▶ MetricsActor ◀──┘
//!  RootSupervisor: starts the tree, hears PartitionExited / BatchEvent, restarts failed or
//!  stalled partitions through the IntakeActor, drains the tree on Shutdown.
//! ```
//!
//! Threads: one Kafka client per process (its librdkafka threads and one driver thread); the
//! partition actors share `partition.threads` arbiters (reading never blocks); the batch actor
//! has its own; the supervisor and metrics actor share the system's.
//!
//! Delivery: at least once by default. Offsets are committed only after the windows they cover
//! are durable, and never past the first frame of a window not yet written, so after a crash
//! the service replays exactly what rebuilds its open windows. A window whose output was
//! durable but whose commit was lost is written again after a restart (same counts). With the
//! Kafka sink's exactly-once mode a flush's windows, dead letters and offsets are one
//! transaction (see [`outlet`]).
//!
//! Only [`kafka`] names rdkafka types; actors see [`ports`] traits, partitions as
//! [`topic::PartitionId`] (topic and index) and
//! offsets as `i64`.
//!
//! Where things live: flushing, releasing partitions on a rebalance and the memory budget's
//! pauses are in [`batch`] (`flush.rs`, `release.rs`, `budget.rs`); the commit metadata
//! format in [`commit_meta`]; the output line in [`line`]; the input ports in [`ports`] and
//! the output ports in [`outlet`]; the Kafka look-ups in `kafka/lookup.rs`, client settings
//! in `kafka/client.rs`, the Kafka output in `kafka/output/`.

#![warn(missing_docs)]

pub mod batch;
pub mod budget;
pub mod clock;
pub mod commit_meta;
pub mod config;
pub mod failure;
#[cfg(test)]
mod fakes;
pub mod faults;
pub mod frame;
pub mod generator;
pub mod intake;
pub mod kafka;
pub mod layout;
pub mod leaders;
pub mod line;
pub mod metrics;
pub mod outlet;
pub mod panics;
pub mod partition;
pub mod ports;
pub mod sink;
pub mod supervisor;
pub mod topic;
pub mod uids;
pub mod window;

pub use batch::BatchActor;
pub use intake::IntakeActor;
pub use metrics::MetricsActor;
pub use partition::PartitionActor;
pub use supervisor::RootSupervisor;
