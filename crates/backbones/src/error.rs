//! Errors of the backbones crate.

/// Errors of the backbones crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackboneError {
    /// Loading weights (or another core operation) failed.
    #[error(transparent)]
    Core(#[from] nightvision_core::CoreError),
    /// A configuration value is invalid.
    #[error("invalid backbone configuration: {0}")]
    Config(String),
}

/// Result with [`BackboneError`].
pub type Result<T> = std::result::Result<T, BackboneError>;
