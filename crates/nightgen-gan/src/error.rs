//! Errors of the nightgen-gan crate.

/// Errors of the nightgen-gan crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GanError {
    /// Loading weights, reading or writing a file (or another core operation) failed.
    #[error(transparent)]
    Core(#[from] nightvision_core::CoreError),
    /// A HED operation (edge maps of HEDN-GAN) failed.
    #[error(transparent)]
    Hed(#[from] hed_edges::HedError),
    /// A loss became NaN or infinite; training stopped (the last good checkpoint is kept).
    #[error(
        "{what} is {value} at iteration {iteration}; last good checkpoint: {}",
        checkpoint.as_ref().map_or("none".to_string(), |p| p.display().to_string())
    )]
    NonFinite {
        /// Which loss.
        what: &'static str,
        /// Its value.
        value: f32,
        /// The iteration.
        iteration: usize,
        /// The newest checkpoint written before it, to resume from with other settings.
        checkpoint: Option<std::path::PathBuf>,
    },
    /// A checkpoint cannot be resumed with this configuration.
    #[error("cannot resume from {}: {reason}", path.display())]
    Resume {
        /// The checkpoint folder.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// A configuration value is invalid.
    #[error("invalid configuration {name}: {reason}")]
    Config {
        /// The configuration field.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// An input tensor (or list of tensors) does not have the shape the operation needs.
    #[error("shape mismatch for {what}: expected {expected:?}, got {got:?}")]
    ShapeMismatch {
        /// The input concerned.
        what: &'static str,
        /// The expected dimensions (or counts).
        expected: Vec<usize>,
        /// The dimensions (or counts) received.
        got: Vec<usize>,
    },
    /// An input value is out of its valid range (e.g. a patch id beyond the feature map).
    #[error("invalid input {what}: {reason}")]
    InvalidInput {
        /// The input concerned.
        what: &'static str,
        /// Why it is invalid.
        reason: String,
    },
}

impl GanError {
    /// Shorthand for [`GanError::Config`].
    pub fn config(name: &'static str, reason: impl Into<String>) -> Self {
        GanError::Config {
            name,
            reason: reason.into(),
        }
    }
}

/// Result with [`GanError`].
pub type Result<T> = std::result::Result<T, GanError>;
