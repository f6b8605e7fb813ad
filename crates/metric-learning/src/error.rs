//! Errors of the metric-learning crate.

use std::path::PathBuf;

/// Errors of the metric-learning crate: bad configurations, malformed tuples and labels,
/// mismatched descriptor sizes, impossible mining or sampling requests, non-finite losses, and
/// the I/O / weight-loading errors of the crates below.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricError {
    /// I/O, image decoding, weight loading or checkpoint error from `nightvision-core`.
    #[error(transparent)]
    Core(#[from] nightvision_core::CoreError),
    /// A backbone configuration or loading error.
    #[error(transparent)]
    Backbone(#[from] backbones::BackboneError),
    /// An anchor-mining or CosPlace class-building error.
    #[error(transparent)]
    Anchor(#[from] anchor_mining::AnchorError),
    /// A configuration value is invalid.
    #[error("invalid {name}: {reason}")]
    Config {
        /// The configuration field.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// Tensors or lists whose sizes do not fit together (e.g. descriptors of different
    /// dimensions, labels that do not match the number of descriptors).
    #[error("shape mismatch in {what}: expected {expected}, got {got}")]
    Shape {
        /// What was being checked.
        what: &'static str,
        /// The expected size or shape.
        expected: String,
        /// The size or shape found.
        got: String,
    },
    /// Tuple labels (`-1` query, `1` positive, `0` negative) that do not form cirtorch tuples.
    #[error("invalid tuple labels: {reason}")]
    Labels {
        /// What is wrong with them.
        reason: String,
    },
    /// An input set is empty where at least one element is required.
    #[error("{what} is empty")]
    Empty {
        /// What is empty.
        what: &'static str,
    },
    /// Hard-negative mining could not find enough negatives for a query: the pool holds too few
    /// images outside the query's cluster (at most one negative is taken per cluster).
    #[error(
        "query {query} (cluster {cluster}) needs {needed} negatives but only {found} clusters other than its own are in the pool"
    )]
    NoNegatives {
        /// Index of the query image.
        query: usize,
        /// The query's cluster.
        cluster: i64,
        /// Negatives requested.
        needed: usize,
        /// Negatives available.
        found: usize,
    },
    /// A class used for training has too few images (a CosPlace class needs at least two so
    /// that training sees the place under more than one view).
    #[error("class {class} has {images} image(s); at least {min} are required")]
    SmallClass {
        /// The class (index or name).
        class: String,
        /// Its number of images.
        images: usize,
        /// The minimum.
        min: usize,
    },
    /// An index refers past the end of a list (a tuple or pickle naming a missing image).
    #[error("{what}: index {index} is out of range for {len} elements")]
    Index {
        /// What was indexed.
        what: &'static str,
        /// The index.
        index: usize,
        /// The list length.
        len: usize,
    },
    /// The loss (or a descriptor) became NaN or infinite: training stops; the last good
    /// checkpoint (if any) is kept.
    #[error(
        "non-finite {what} ({value}) at epoch {epoch}, step {step}; last good checkpoint: {}",
        .checkpoint.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "none".into())
    )]
    NonFinite {
        /// What became non-finite.
        what: &'static str,
        /// The value.
        value: f32,
        /// Epoch (0-based) in which it happened.
        epoch: usize,
        /// Optimisation step within the epoch.
        step: usize,
        /// The last checkpoint written before the failure.
        checkpoint: Option<PathBuf>,
    },
    /// Learning a whitening failed (e.g. no pairs, a non-positive eigenvalue kept by PCA).
    #[error("whitening: {reason}")]
    Whitening {
        /// What went wrong.
        reason: String,
    },
    /// A Python pickle (cirtorch's training database) could not be read or has the wrong layout.
    #[error("pickle {path}: {reason}")]
    Pickle {
        /// The pickle file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A checkpoint's saved state does not match the running configuration.
    #[error("cannot resume from {path}: {reason}")]
    Resume {
        /// The checkpoint folder.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The model-selection score of an epoch failed or is not a finite number.
    #[error("model selection: the score of epoch {epoch} failed: {source}")]
    Selection {
        /// The epoch (0-based).
        epoch: usize,
        /// What the score reported.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Result with [`MetricError`].
pub type Result<T> = std::result::Result<T, MetricError>;

impl MetricError {
    pub(crate) fn config(name: &'static str, reason: impl Into<String>) -> Self {
        Self::Config {
            name,
            reason: reason.into(),
        }
    }

    pub(crate) fn shape(what: &'static str, expected: impl ToString, got: impl ToString) -> Self {
        Self::Shape {
            what,
            expected: expected.to_string(),
            got: got.to_string(),
        }
    }
}
