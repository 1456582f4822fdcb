//! The lab's errors: the service's own, passed on, and what the tools add.

use actors::config::ConfigError;
use actors::generator::GeneratorError;
use actors::kafka::AdapterError;
use kafka_actors::RunError;

/// Why a lab tool failed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The service failed, or could not start.
    #[error(transparent)]
    Run(Box<RunError>),
    /// A setting the tool was given, or made, is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Kafka could not be reached, read or set up.
    #[error(transparent)]
    Kafka(#[from] AdapterError),
    /// The test-data generator failed.
    #[error(transparent)]
    Generator(#[from] GeneratorError),
    /// A step of the tool failed: a task, a child process, a cluster control command.
    #[error("{0}")]
    Task(String),
    /// A report, settings or output file could not be written or read.
    #[error("cannot write or read `{path}`")]
    Report {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl From<RunError> for LabError {
    fn from(error: RunError) -> Self {
        LabError::Run(Box::new(error))
    }
}
