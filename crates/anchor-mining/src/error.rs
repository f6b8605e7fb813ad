//! The crate's error type.

use std::path::PathBuf;

/// Errors of anchor mining, the translation subset and CosPlace class building.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnchorError {
    /// More anchors were requested than there are candidates.
    #[error("cannot choose {requested} anchors from {available} candidates")]
    TooManyAnchors {
        /// Anchors requested (`q`).
        requested: usize,
        /// Candidates available (`Qp`).
        available: usize,
    },
    /// There are no candidates at all (or zero anchors were requested from an empty pool).
    #[error("empty candidate set: {what}")]
    EmptyCandidates {
        /// Which input was empty.
        what: &'static str,
    },
    /// A descriptor holds NaN or infinity.
    #[error("descriptor of candidate {row} has a non-finite value at dimension {dim}")]
    NonFiniteDescriptor {
        /// The candidate (row of the descriptor matrix).
        row: usize,
        /// The first offending dimension.
        dim: usize,
    },
    /// A descriptor is not L2-normalised (diverse mining ranks cosine similarities).
    #[error(
        "descriptor of candidate {row} has L2 norm {norm}, expected 1 ± {tolerance} \
         (L2-normalise the descriptors first)"
    )]
    NotNormalised {
        /// The candidate (row of the descriptor matrix).
        row: usize,
        /// Its norm.
        norm: f32,
        /// The tolerance allowed.
        tolerance: f32,
    },
    /// The descriptor matrix does not have the expected shape.
    #[error("descriptor matrix has shape {got:?}, expected {expected}")]
    DescriptorShape {
        /// What was expected, in words.
        expected: String,
        /// The shape received.
        got: Vec<usize>,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {field} = {value} ({reason})")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// Its value, printed.
        value: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// A file name does not carry the `@`-separated UTM fields of the VPR dataset format.
    #[error("file name {name:?} has no UTM fields: {reason}")]
    NoUtmFields {
        /// The offending file name or path.
        name: String,
        /// What is missing or malformed.
        reason: String,
    },
    /// A file name has no heading field (field 9), which CosPlace classes need.
    #[error("file name {name:?} has no heading (field 9 of the @-separated name): {reason}")]
    NoHeading {
        /// The offending file name or path.
        name: String,
        /// What is missing or malformed.
        reason: String,
    },
    /// A UTM coordinate or heading is NaN or infinite.
    #[error("record {index} has a non-finite {field}: {value}")]
    NonFiniteCoordinate {
        /// Index of the record in the input list.
        index: usize,
        /// `east`, `north` or `heading`.
        field: &'static str,
        /// The value.
        value: f64,
    },
    /// A list of file names could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A line of a list file could not be parsed.
    #[error("{path}:{line}: {source}")]
    ListLine {
        /// The list file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What went wrong on that line.
        #[source]
        source: Box<AnchorError>,
    },
    /// The descriptor closure given to [`crate::AnchorStrategy::select`] failed.
    #[error("computing candidate descriptors failed: {source}")]
    Describe {
        /// The closure's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The descriptor closure returned the wrong number of rows.
    #[error("the descriptor closure returned {got} rows for {expected} candidates")]
    DescribeRows {
        /// Candidates asked for.
        expected: usize,
        /// Rows returned.
        got: usize,
    },
    /// Tensor data could not be read back from the device.
    #[error("cannot read tensor data back from the device: {message}")]
    Readback {
        /// What burn reported.
        message: String,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, AnchorError>;
