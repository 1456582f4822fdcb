//! The kafka-actors actor system.
//!
//! ```text
//!                    Chunk (frames of one partition, per poll)          Flush: write windows,
//!  PartitionActor p0 ──────────────────────────────┐                    fsync, then commit
//!  PartitionActor p1 ──────────────────────────────┼──▶ BatchActor ───────────▶ Sink + OffsetCommitter
//!  PartitionActor pN ──────────────────────────────┘      │  windows, watermark
//!        │ ChunkProcessed (counts, timings, lag)           │ FramesLate, Flushed
//!        └───────────────────────────────▶ MetricsActor ◀──┘
//!  RootSupervisor: starts the tree, hears PartitionFailed / BatchEvent, drains it on Shutdown.
//! ```
//!
//! Delivery: at least once. Offsets are committed only after the windows they cover are
//! durable, and never past the first frame of a window not yet written, so after a crash the
//! service replays exactly what rebuilds its open windows. A window whose output was durable
//! but whose commit was lost is written again after a restart (same counts).
//!
//! Only [`kafka`] names rdkafka types; actors see [`ports`] traits, partitions as `i32` and
//! offsets as `i64`.

#![warn(missing_docs)]

pub mod batch;
pub mod config;
pub mod frame;
pub mod generator;
pub mod group;
pub mod kafka;
pub mod leaders;
pub mod metrics;
pub mod partition;
pub mod ports;
pub mod sink;
pub mod supervisor;
pub mod window;

pub use batch::BatchActor;
pub use group::GroupActor;
pub use metrics::MetricsActor;
pub use partition::PartitionActor;
pub use supervisor::RootSupervisor;
