//! Errors of the nightgen-gan crate.

/// Errors of the nightgen-gan crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GanError {
    /// Loading weights, reading or writing a file (or another core operation) failed.
    #[error(transparent)]
    Core(#[from] nightvision_core::CoreError),
    /// A configuration value is invalid.
    #[error("invalid configuration {name}: {reason}")]
    Config {
        /// The configuration field.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },
}

/// Result with [`GanError`].
pub type Result<T> = std::result::Result<T, GanError>;
