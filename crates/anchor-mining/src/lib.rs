//! Which samples a training epoch sees: random and diverse anchor mining, the hashed translation
//! subset and CosPlace classes and groups.
//!
//! * [`diverse`] — diverse anchor mining exactly as Dark Side Augmentation does it
//!   (docs/PAPERS.md A.7), with a running maximum, linear-time rank selection and
//!   an exact int8 screen; and the random (cirtorch) baseline.
//! * [`translation`] — the deterministic 25 % subset of anchors shown as synthetic night
//!   (docs/PAPERS.md A.6): `int(md5(stem).hexdigest()[-4:], 16) / 65536 < 0.25`.
//! * [`cosplace`] — CosPlace's UTM/heading classes and groups (docs/PAPERS.md B.5, docs/PAPERS.md protocols 2.3).
//! * [`strategy`] — [`AnchorStrategy`], what tuple training calls each epoch.
//!
//! ```
//! use anchor_mining::{AnchorStrategy, DiverseConfig, TranslationSubset, ImageRole};
//! use burn::tensor::{Device, Tensor, TensorData};
//! use rand::SeedableRng;
//!
//! let device = Device::default();
//! // Six unit descriptors in 2-D at angles 0°, 10°, …, 50°.
//! let rows: Vec<f32> = (0..6)
//!     .flat_map(|k| {
//!         let a = (k as f32 * 10.0).to_radians();
//!         [a.cos(), a.sin()]
//!     })
//!     .collect();
//! let desc = Tensor::<2>::from_data(TensorData::new(rows, [6, 2]), &device);
//! let cfg = DiverseConfig::default().with_deterministic(true);
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let anchors = anchor_mining::diverse_anchors(&desc, 3, &cfg, &mut rng).unwrap();
//! // Row 0 first; then the band [int(5·0.2), int(5·0.8)) = [0, 4) of the ascending max-similarity
//! // ranking is 5°-steps away from 0°: ranks 0..4 are rows 5, 4, 3, 2 → its last element, row 2.
//! assert_eq!(anchors[..2], [0, 2]);
//!
//! // The strategy form used by tuple training (the closure is not called for Random).
//! let picks = AnchorStrategy::Random
//!     .select(100, 10, &mut rng, |_| -> Result<Tensor<2>, std::io::Error> { unreachable!() })
//!     .unwrap();
//! assert_eq!(picks.len(), 10);
//!
//! let subset = TranslationSubset::default();
//! assert!(!subset.is_translated(ImageRole::Positive, "any/name.jpg"));
//! ```

#![warn(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cosplace;
pub mod diverse;
mod error;
pub mod strategy;
pub mod translation;

pub use cosplace::{
    ClassId, CosPlaceClass, CosPlaceClasses, CosPlaceConfig, CosPlaceGroup, GroupId, UtmRecord,
    build_classes, build_classes_from_names, class_and_group, parse_utm, parse_utm_heading,
    read_utm_list,
};
pub use diverse::{
    DiverseConfig, DiverseStats, band, candidate_pool, diverse_anchors, diverse_anchors_with_stats,
    mean_nearest_anchor_similarity, random_anchors,
};
pub use error::{AnchorError, Result};
pub use strategy::AnchorStrategy;
pub use translation::{
    DEFAULT_TRANSLATION_RATIO, ImageRole, TranslationSubset, hash_fraction, image_stem,
};
