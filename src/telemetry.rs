//! Logging: `tracing` to standard error (standard output carries only results), filtered by
//! `RUST_LOG` or `log.filter`. librdkafka's own log lines arrive through the `log` bridge with
//! target `librdkafka`. Call [`init`] before creating any Kafka client: librdkafka reads the log
//! level once, when a client configuration is created.

use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::prelude::*;

use crate::settings::{LogConfig, LogFormat};

/// Installs the global subscriber. Safe to call twice (the second call changes nothing).
///
/// # Errors
/// If `log.filter` is not a valid filter.
pub fn init(config: &LogConfig) -> Result<(), tracing_subscriber::filter::ParseError> {
    let filter = match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::builder()
            .with_default_directive(LevelFilter::INFO.into())
            .parse_lossy(directives),
        _ => EnvFilter::builder()
            .with_default_directive(LevelFilter::INFO.into())
            .parse(&config.filter)?,
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = match config.format {
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    // Already installed (tests, or a second call): keep the first.
    drop(result);
    Ok(())
}
