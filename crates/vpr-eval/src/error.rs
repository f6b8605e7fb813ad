//! The crate's error type.

use std::path::PathBuf;

/// A boxed error returned by user-supplied encoders (see [`crate::pdc`]).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while reading evaluation data, searching and scoring.
///
/// Variants name the file and the line, key, row or byte offset that is at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// A file or folder could not be read or written.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A `.npy` file (or an array inside a `.npz`) is malformed or truncated.
    #[error("cannot read array {key:?} of {path}: {source}")]
    Npy {
        /// The `.npy` or `.npz` file.
        path: PathBuf,
        /// The array name inside an `.npz` (`""` for a plain `.npy`).
        key: String,
        /// What npyz or the zip reader reported.
        #[source]
        source: std::io::Error,
    },
    /// An array has an unsupported dtype, rank or shape.
    #[error("array {key:?} of {path}: expected {expected}, found {found}")]
    ArrayFormat {
        /// The file.
        path: PathBuf,
        /// The array name inside an `.npz` (`""` for a plain `.npy`).
        key: String,
        /// What was expected.
        expected: String,
        /// What the file holds.
        found: String,
    },
    /// A key that must be present is missing from an `.npz` or a pickle.
    #[error("{path}: missing key {key:?}")]
    MissingKey {
        /// The file.
        path: PathBuf,
        /// The missing key (for pickles a path such as `gnd[3].easy`).
        key: String,
    },
    /// A pickle file is truncated or uses an opcode this reader does not support.
    #[error("cannot unpickle {path} at byte {offset}: {reason}")]
    Pickle {
        /// The pickle file.
        path: PathBuf,
        /// Byte offset of the failing opcode.
        offset: usize,
        /// What went wrong.
        reason: String,
    },
    /// A ground-truth pickle has an unexpected structure.
    #[error("{path}: bad value at {key}: expected {expected}")]
    GndFormat {
        /// The pickle file.
        path: PathBuf,
        /// Where in the structure, e.g. `gnd[3].bbx`.
        key: String,
        /// What was expected there.
        expected: String,
    },
    /// An image file name does not follow the `@east@north@zone@letter@lat@lon@...@.jpg` scheme.
    #[error("malformed VPR image name {name:?}{}: {reason}", location(.path, .line))]
    BadImageName {
        /// The offending name.
        name: String,
        /// The list file it came from, if any.
        path: Option<PathBuf>,
        /// Its 1-based line in that list file, if any.
        line: Option<usize>,
        /// What is wrong with it.
        reason: String,
    },
    /// Two inputs that must agree in size do not.
    #[error("{what}: expected {expected}, got {got}{}", path_suffix(.path))]
    SizeMismatch {
        /// What is being compared (e.g. `"descriptor dimension"`).
        what: String,
        /// The expected size.
        expected: usize,
        /// The size found.
        got: usize,
        /// The file involved, if any.
        path: Option<PathBuf>,
    },
    /// A descriptor (or coordinate) holds NaN or an infinity.
    #[error("{what}: non-finite value {value} at row {row}, column {col}{}", path_suffix(.path))]
    NonFinite {
        /// Which matrix.
        what: String,
        /// Row of the first offending value.
        row: usize,
        /// Column of the first offending value.
        col: usize,
        /// The value.
        value: f64,
        /// The file it came from, if any.
        path: Option<PathBuf>,
    },
    /// An input that must not be empty is.
    #[error("{what} is empty{}", path_suffix(.path))]
    Empty {
        /// What is empty.
        what: String,
        /// The file involved, if any.
        path: Option<PathBuf>,
    },
    /// An argument is out of its valid range.
    #[error("invalid {name}: {reason}")]
    InvalidArgument {
        /// The argument.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// A ranking or ground truth refers to a database index that does not exist.
    #[error("{what}: index {index} out of range for {len} items")]
    IndexOutOfRange {
        /// Where the index comes from.
        what: String,
        /// The index.
        index: i64,
        /// Number of valid items.
        len: usize,
    },
    /// A numerical routine (an SVD or an eigendecomposition) did not converge.
    #[error("{what} did not converge")]
    NoConvergence {
        /// The routine and its input, e.g. `"SVD of the Fréchet cross-covariance factor"`.
        what: &'static str,
    },
    /// A JSON file could not be (de)serialised.
    #[error("cannot (de)serialise JSON {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// Drawing a plot failed.
    #[error("cannot draw plot {path}: {reason}")]
    Plot {
        /// The PNG file.
        path: PathBuf,
        /// What plotters reported.
        reason: String,
    },
    /// A user-supplied encoder failed.
    #[error("encoder {model:?} failed on images {start}..{end}")]
    Encoder {
        /// The encoder's model id.
        model: String,
        /// First image index of the failing batch.
        start: usize,
        /// One past the last image index of the failing batch.
        end: usize,
        /// The encoder's error.
        #[source]
        source: BoxError,
    },
    /// Reading a result back from the device failed.
    #[error("device read-back failed ({op}): {source}")]
    Device {
        /// What was being read.
        op: &'static str,
        /// burn's error.
        #[source]
        source: burn::tensor::DataError,
    },
    /// An error from the shared substrate.
    #[error(transparent)]
    Core(#[from] nightvision_core::CoreError),
}

fn path_suffix(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => format!(" (in {})", p.display()),
        None => String::new(),
    }
}

fn location(path: &Option<PathBuf>, line: &Option<usize>) -> String {
    match (path, line) {
        (Some(p), Some(l)) => format!(" at {}:{l}", p.display()),
        (Some(p), None) => format!(" in {}", p.display()),
        (None, Some(l)) => format!(" at line {l}"),
        (None, None) => String::new(),
    }
}

impl EvalError {
    /// An [`EvalError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EvalError::Io {
            path: path.into(),
            source,
        }
    }
}

/// `Result` with [`EvalError`].
pub type Result<T> = std::result::Result<T, EvalError>;
