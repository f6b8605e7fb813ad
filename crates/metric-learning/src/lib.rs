//! # metric-learning
//!
//! The descriptor side of the three papers (docs/PAPERS.md, `docs/PAPERS.md protocols`):
//!
//! | part | module | paper / reference |
//! |---|---|---|
//! | GeM (learnable `p`), MAC, SPoC, L2N, channel L2 | [`pooling`] | A.5, B.2; protocols 1.1 |
//! | cirtorch `ImageRetrievalNet` ([`CirNet`]) and CosPlace `GeoLocalizationNet` ([`CosPlaceNet`]) over any [`Backbone`], with their checkpoint key maps | [`nets`], [`backbone`] | A.5, B.2, C.3; protocols 1.1, 2.3 |
//! | contrastive, triplet, CosFace/LMC, IKT and the NocPlace loss | [`losses`] | A.6, B.3, B.4, C.3; protocols 1.2 |
//! | learned (Lw) and PCA whitening | [`whitening`] | A.8; protocols 1.4 |
//! | single / multi-scale extraction with max-side resizing | [`mod@multiscale`] | A.8; protocols 1.5 |
//! | training tuples, hard-negative mining, CosPlace class sampling, augmentation hooks | [`data`] | A.6, A.7, B.5, C.3; protocols 1.3, 2.3 |
//! | tuple (cirtorch) and CosPlace/NocPlace trainers with exact resume | [`train`] | A.6, B.4, B.5, C.3 |
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use metric_learning::{BackboneConfig, CirNetConfig, ContrastiveLossConfig, TupleLayout};
//! use backbones::ResNetConfig;
//!
//! let device = Device::default();
//! // A GeM ResNet-18 at 1/16 width (32-d descriptors), cirtorch style.
//! let net = CirNetConfig::new(BackboneConfig::ResNet(ResNetConfig::resnet18().with_base_width(4)))
//!     .init(&device)
//!     .unwrap();
//! let x = Tensor::<4>::ones([7, 3, 64, 64], &device);
//! let d = net.forward(x);
//! assert_eq!(d.dims(), [7, 32]);
//! // One tuple (q, p, n1..n5): identical descriptors → positive term 0, every negative pays
//! // ½·margin² (up to the eps inside the distance).
//! let labels = TupleLayout::standard_labels(1, 5);
//! let loss: f32 = ContrastiveLossConfig::new().init().forward(d, &labels).unwrap().into_scalar();
//! assert!((loss - 5.0 * 0.5 * 0.7f32.powi(2)).abs() < 1e-3);
//! ```
#![warn(missing_docs)]
#![warn(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod backbone;
pub mod data;
mod error;
pub mod losses;
pub mod multiscale;
pub mod nets;
pub mod pooling;
pub mod train;
pub mod whitening;

pub use backbone::{Backbone, BackboneConfig, BackboneKind};
pub use data::{
    AugmentHooks, Augmentation, ClassSampler, ImageSource, MiningConfig, Tuple, TupleDatabase,
    mine_hard_negatives,
};
pub use error::{MetricError, Result};
pub use losses::{
    ContrastiveLoss, ContrastiveLossConfig, MarginCosineProduct, MarginCosineProductConfig,
    NocPlaceLoss, NocPlaceLossConfig, NocPlaceLossOutput, TripletLoss, TripletLossConfig,
    TupleLayout, cross_entropy, ikt_loss,
};
pub use multiscale::{
    DEFAULT_BATCH_PIXELS, DEFAULT_SCALES, DescriptorNet, ExtractConfig, combine_scales,
    extract_files_per_scale, multiscale, resize_scale_factor,
};
pub use nets::{CirNet, CirNetConfig, CosPlaceAggregation, CosPlaceNet, CosPlaceNetConfig};
pub use pooling::{Gem, GemConfig, Pooling};
pub use train::{
    BestEpoch, CosPlaceTrainer, CosPlaceTrainerConfig, Goal, Selection, TrainLog, TupleLoss,
    TupleTrainer, TupleTrainerConfig,
};
pub use whitening::{Whitening, WhiteningKind};
