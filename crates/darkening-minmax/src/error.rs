//! Errors of the darkening-minmax crate.

use std::path::PathBuf;

/// Errors of the darkening-minmax crate: configuration and input validation, weight loading,
/// checkpoints and training.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DarkeningError {
    /// Loading weights, reading or writing a file (or another core operation) failed.
    #[error(transparent)]
    Core(#[from] nightvision_core::CoreError),
    /// A configuration value is invalid.
    #[error("invalid darkening configuration {name}: {reason}")]
    Config {
        /// The configuration field.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// A tensor argument does not have the shape it must have.
    #[error("{what}: expected shape {expected}, got {got:?}")]
    Shape {
        /// Which argument.
        what: &'static str,
        /// The shape it must have (`B` etc. for free dimensions).
        expected: String,
        /// The shape it has.
        got: Vec<usize>,
    },
    /// A darkening checkpoint was written for another configuration of the network (its
    /// `curve_round`, `down_scale` or `encode_dim` buffer differs from the module's).
    #[error("checkpoint {path}: buffer {key} is {found}, the module is built with {expected}")]
    CheckpointConfig {
        /// The checkpoint.
        path: PathBuf,
        /// The buffer (`curve_round`, `down_scale`, `encode_dim`).
        key: &'static str,
        /// The module's value.
        expected: f64,
        /// The checkpoint's value.
        found: f64,
    },
    /// A loss (or another training quantity) became NaN or infinite.
    #[error("{what} is not finite ({value}) at step {step}; last good checkpoint: {checkpoint:?}")]
    NonFinite {
        /// The quantity.
        what: &'static str,
        /// Its value.
        value: f32,
        /// The training step (0-based).
        step: u64,
        /// The last checkpoint written, if any.
        checkpoint: Option<PathBuf>,
    },
    /// A checkpoint cannot be resumed by this trainer.
    #[error("cannot resume from {path}: {reason}")]
    Resume {
        /// The checkpoint folder.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl DarkeningError {
    /// A [`DarkeningError::Config`].
    pub(crate) fn config(name: &'static str, reason: impl Into<String>) -> Self {
        Self::Config {
            name,
            reason: reason.into(),
        }
    }

    /// A [`DarkeningError::Shape`].
    pub(crate) fn shape(what: &'static str, expected: impl Into<String>, got: &[usize]) -> Self {
        Self::Shape {
            what,
            expected: expected.into(),
            got: got.to_vec(),
        }
    }
}

/// Result with [`DarkeningError`].
pub type Result<T> = std::result::Result<T, DarkeningError>;

#[cfg(test)]
mod tests {
    use super::*;
    use nightvision_core::CoreError;

    #[test]
    fn core_errors_convert_and_messages_name_the_fields() {
        let core = CoreError::InvalidArgument {
            name: "x",
            reason: "bad".into(),
        };
        let e: DarkeningError = core.into();
        assert!(matches!(e, DarkeningError::Core(_)));
        assert_eq!(e.to_string(), "invalid x: bad");

        let e = DarkeningError::shape("image", "[B, 3, H, W]", &[2, 4, 8, 8]);
        assert_eq!(
            e.to_string(),
            "image: expected shape [B, 3, H, W], got [2, 4, 8, 8]"
        );
        let e = DarkeningError::config("iterations", "must be positive");
        assert!(e.to_string().contains("iterations"));
    }

    #[test]
    fn errors_are_send_and_sync() {
        fn check<T: Send + Sync + std::error::Error + 'static>() {}
        check::<DarkeningError>();
    }
}
