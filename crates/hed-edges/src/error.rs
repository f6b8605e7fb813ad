//! Errors of the hed-edges crate.

/// Errors of the hed-edges crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HedError {
    /// Loading weights, reading or writing a file (or another core operation) failed.
    #[error(transparent)]
    Core(#[from] nightvision_core::CoreError),
    /// The input image is too small for the four 2×2 poolings of the VGG16 trunk.
    #[error(
        "HED needs an input of at least {min}×{min} pixels (four 2×2 max-poolings), got {height}×{width}"
    )]
    InputTooSmall {
        /// Input height.
        height: usize,
        /// Input width.
        width: usize,
        /// The smallest accepted side.
        min: usize,
    },
    /// The input does not have three (RGB) channels.
    #[error("HED takes RGB batches [batch, 3, height, width], got {channels} channels")]
    InputChannels {
        /// Channels of the input.
        channels: usize,
    },
    /// Two tensors that must have the same shape do not.
    #[error("{what}: shape {got:?} differs from {expected:?}")]
    ShapeMismatch {
        /// Which argument.
        what: &'static str,
        /// The shape it must have.
        expected: Vec<usize>,
        /// The shape it has.
        got: Vec<usize>,
    },
    /// A tensor could not be read back to the host as `f32`.
    #[error("could not read {what} back to the host: {message}")]
    Readback {
        /// Which tensor.
        what: &'static str,
        /// The backend's message.
        message: String,
    },
    /// A configuration value is invalid.
    #[error("invalid HED configuration {name}: {reason}")]
    Config {
        /// The configuration field.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },
}

/// Result with [`HedError`].
pub type Result<T> = std::result::Result<T, HedError>;
