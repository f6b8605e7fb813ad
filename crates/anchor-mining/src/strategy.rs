//! Anchor selection as a strategy that tuple training calls once per epoch.
//!
//! metric-learning depends on this crate, not the other way round: the trainer hands over the
//! number of (query, positive) pairs and a closure that computes descriptors for a list of pair
//! indices with the current network, and gets back the pair indices of the epoch's anchors.

use burn::tensor::Tensor;
use rand::Rng;

use crate::diverse::{DiverseConfig, candidate_pool, diverse_anchors, random_anchors};
use crate::error::{AnchorError, Result};

/// How an epoch's anchors (queries of the training tuples) are chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AnchorStrategy {
    /// The cirtorch baseline: a random permutation prefix of all pairs.
    Random,
    /// Diverse anchor mining (docs/PAPERS.md A.7) over a random candidate pool of
    /// [`DiverseConfig::qpool_size`] pairs.
    Diverse(DiverseConfig),
}

impl AnchorStrategy {
    /// Whether [`Self::select`] will call its descriptor closure.
    pub fn needs_descriptors(&self) -> bool {
        matches!(self, Self::Diverse(_))
    }

    /// Choose `q` distinct pair indices out of `0..num_pairs`.
    ///
    /// For [`AnchorStrategy::Diverse`], `describe` receives the candidate pool (pair indices,
    /// `min(qpool_size, num_pairs)` of them) and must return their L2-normalised query descriptors
    /// as a `[pool.len(), D]` tensor (rows in the order given); it is never called for
    /// [`AnchorStrategy::Random`]. Its error is wrapped in [`AnchorError::Describe`].
    pub fn select<R, F, E>(
        &self,
        num_pairs: usize,
        q: usize,
        rng: &mut R,
        describe: F,
    ) -> Result<Vec<usize>>
    where
        R: Rng + ?Sized,
        F: FnOnce(&[usize]) -> std::result::Result<Tensor<2>, E>,
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        match self {
            Self::Random => random_anchors(num_pairs, q, rng),
            Self::Diverse(cfg) => {
                cfg.validate()?;
                let pool = candidate_pool(num_pairs, cfg.qpool_size, rng)?;
                if q > pool.len() {
                    return Err(AnchorError::TooManyAnchors {
                        requested: q,
                        available: pool.len(),
                    });
                }
                let desc =
                    describe(&pool).map_err(|e| AnchorError::Describe { source: e.into() })?;
                let [rows, _] = desc.dims();
                if rows != pool.len() {
                    return Err(AnchorError::DescribeRows {
                        expected: pool.len(),
                        got: rows,
                    });
                }
                let picks = diverse_anchors(&desc, q, cfg, rng)?;
                Ok(picks.into_iter().map(|p| pool[p]).collect())
            }
        }
    }
}
