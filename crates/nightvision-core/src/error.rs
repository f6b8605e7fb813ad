//! The shared error type.

use std::path::PathBuf;

/// Errors of the shared substrate: file I/O, image decoding, weight loading, checkpoints and
/// argument validation. Other crates embed it with `#[from]`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// A file or folder could not be read or written.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An image file could not be decoded or encoded.
    #[error("image error on {path}: {source}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: image::ImageError,
    },
    /// An image has no pixels.
    #[error("empty image {path}: {width}x{height}")]
    EmptyImage {
        /// Where the image came from.
        path: PathBuf,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
    },
    /// Images put into one batch have different sizes.
    #[error(
        "images in one batch must share a size: image {index} is {got:?}, the first is {expected:?}"
    )]
    BatchSize {
        /// Index of the offending image.
        index: usize,
        /// `[height, width]` of the first image.
        expected: [usize; 2],
        /// `[height, width]` of the offending image.
        got: [usize; 2],
    },
    /// A weights file could not be read by its store.
    #[error("cannot read weights {path}: {message}")]
    WeightsRead {
        /// The weights file.
        path: PathBuf,
        /// What the store reported.
        message: String,
    },
    /// A weights file does not match the module: keys missing, unused or wrongly shaped.
    #[error("weights {path} do not match the module:{}", crate::weights::describe_mismatch(.missing, .unused, .mismatched))]
    WeightsMismatch {
        /// The weights file.
        path: PathBuf,
        /// Module parameters the file does not provide (after remapping).
        missing: Vec<String>,
        /// Keys of the file that no module parameter takes (after remapping).
        unused: Vec<String>,
        /// Keys whose shape (or dtype) differs: `(key, what was expected, what was found)`.
        mismatched: Vec<(String, String, String)>,
    },
    /// A key-remapping pattern is not a valid regular expression.
    #[error("invalid key-remapping pattern {pattern:?}: {message}")]
    Remap {
        /// The pattern.
        pattern: String,
        /// Why it is invalid.
        message: String,
    },
    /// A checkpoint or JSON file could not be (de)serialised.
    #[error("cannot (de)serialise {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// A burn module or optimiser record could not be encoded or decoded.
    #[error("cannot (de)serialise the record {path}: {message}")]
    Record {
        /// The file.
        path: PathBuf,
        /// What burn reported.
        message: String,
    },
    /// A configuration or argument value is invalid.
    #[error("invalid {name}: {reason}")]
    InvalidArgument {
        /// The argument or configuration field.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// An index past the end of a list.
    #[error("{what} {index} is out of range (there are {len})")]
    Index {
        /// What was indexed.
        what: &'static str,
        /// The index.
        index: usize,
        /// The list's length.
        len: usize,
    },
    /// An augmentation could not transform its batch.
    #[error("augmentation {what}: {message}")]
    Augmentation {
        /// The augmentation.
        what: &'static str,
        /// Why.
        message: String,
    },
    /// A checkpoint folder holds a run of another configuration than the one requested.
    #[error(
        "{path} holds a run with another configuration: {} differ{} (stored vs requested: {details}); restart it (e.g. --restart) or choose another folder",
        fields.join(", "),
        if fields.len() == 1 { "s" } else { "" }
    )]
    ConfigMismatch {
        /// The folder's `config.json`.
        path: PathBuf,
        /// The differing fields, as JSON paths (`generator.ngf`, `stage.lr`).
        fields: Vec<String>,
        /// `field: stored → requested` for each.
        details: String,
    },
    /// A checkpoint folder's bookkeeping is corrupt (e.g. `latest.json` points outside the folder).
    #[error("corrupt checkpoint file {path}: {reason}")]
    Checkpoint {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A checkpoint folder has no checkpoint (or no configuration) to load from.
    #[error("{path}: {what} not found (train into this folder first)")]
    NoCheckpoint {
        /// The folder.
        path: PathBuf,
        /// What is missing.
        what: String,
    },
}

/// Result with [`CoreError`].
pub type Result<T> = std::result::Result<T, CoreError>;

impl CoreError {
    /// An [`CoreError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
