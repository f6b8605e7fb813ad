//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while configuring, rendering or exporting a synthetic world.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SynthError {
    /// The configuration asks for a world without places.
    #[error("config field `{field}` must be at least 1: a world needs places (got 0)")]
    NoPlaces {
        /// The offending config field.
        field: &'static str,
    },
    /// The configuration asks for zero viewpoints of some image set.
    #[error("config field `{field}` must be at least 1: every place needs viewpoints (got 0)")]
    NoViewpoints {
        /// The offending config field.
        field: &'static str,
    },
    /// A configuration value lies outside its valid range.
    #[error("config field `{field}` = {value} is out of range: expected {expected}")]
    InvalidConfig {
        /// The offending config field.
        field: &'static str,
        /// The value found, formatted.
        value: String,
        /// The valid range, in words.
        expected: &'static str,
    },
    /// A configuration file could not be parsed.
    #[error("cannot parse config file {path}: {source}")]
    ConfigParse {
        /// The config file.
        path: PathBuf,
        /// The JSON error (it names line and column).
        #[source]
        source: serde_json::Error,
    },
    /// A place or view index that the world does not have.
    #[error("{what} index {index} is out of range (the world has {len})")]
    IndexOutOfRange {
        /// What was indexed ("place", "view").
        what: &'static str,
        /// The index asked for.
        index: usize,
        /// How many there are.
        len: usize,
    },
    /// The output folder exists and holds files, and `overwrite` was not set.
    #[error(
        "output folder {path} exists and is not empty ({entries} entries); \
         choose another folder or set `overwrite`"
    )]
    OutputNotEmpty {
        /// The output folder.
        path: PathBuf,
        /// How many entries it holds.
        entries: usize,
    },
    /// The output path exists but is not a folder.
    #[error("output path {path} exists and is not a folder")]
    OutputNotADirectory {
        /// The output path.
        path: PathBuf,
    },
    /// The output folder (or its parent) cannot be written.
    #[error("cannot write into {path}: {source}")]
    OutputNotWritable {
        /// The folder that could not be created or written.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An I/O error on a named file.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Encoding an image failed.
    #[error("cannot encode image {path}: {source}")]
    Image {
        /// The image file being written.
        path: PathBuf,
        /// The encoder's error.
        #[source]
        source: image::ImageError,
    },
    /// Serialising the cirtorch pickle failed.
    #[error("cannot write pickle {path}: {source}")]
    Pickle {
        /// The pickle file.
        path: PathBuf,
        /// The serialiser's error.
        #[source]
        source: serde_pickle::Error,
    },
    /// Serialising a JSON manifest failed.
    #[error("cannot write JSON {path}: {source}")]
    Json {
        /// The JSON file.
        path: PathBuf,
        /// The serialiser's error.
        #[source]
        source: serde_json::Error,
    },
}

impl SynthError {
    /// An [`SynthError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, SynthError>;
