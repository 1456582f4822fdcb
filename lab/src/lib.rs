//! The lab around the kafka-actors service: tools that run the service (the `kafka_actors`
//! library) under controlled conditions and judge or measure it. They ship as the
//! `kafka-actors-lab` binary; `kafka-actors chaos` and `kafka-actors compare` run it.
//!
//! - [`chaos`]: fault scenarios on the embedded cluster or a real one, each judged by an
//!   oracle that knows every frame produced.
//! - [`compare`]: the partition model and the group model side by side on the same data,
//!   with a chart (`chart`).
//! - [`cli`]: the binary's flags.
//! - `oracle`: the output judged against the truth of every frame produced, for both tools.
//!
//! Both must be called inside an actix `System`, as [`kafka_actors::run`] must.

pub mod chaos;
mod chart;
pub mod cli;
pub mod compare;
pub mod error;
mod oracle;
