//! # darkening-minmax
//!
//! **Similarity Min-Max** (Luo, Wang, Yang, Liu, ICCV 2023; docs/PAPERS.md C): zero-shot day→night
//! adaptation in two stages, following the reference code `Red-Fairy/ZeroShotDayNightDA`.
//!
//! 1. **Minimise** (docs/PAPERS.md C.1, C.2): a small darkening network D ([`DarkeningNet`]) learns to
//!    turn day images into dark ones whose features, under a *frozen* extractor F, are as
//!    *dissimilar* as possible from the day features, kept realistic by exposure, colour,
//!    loose-TV and flexibility regularisers ([`loss`], [`DarkeningLossConfig`]). Trained by
//!    [`DarkeningTrainer`] ([`train`]).
//! 2. **Maximise** (docs/PAPERS.md C.3): D is frozen and F is trained to make day and darkened images
//!    *similar*: a [`DarkView`] (random exposure + patch + pixel noise) and, for classification,
//!    the BYOL loss with momentum heads ([`byol`]); for VPR the darkened query copy enters the
//!    contrastive loss as an extra positive (`metric-learning`'s `AugmentHooks::query_copy`).
//!
//! Evaluation protocols and the headline numbers are in docs/PAPERS.md C.4; data formats, including
//! the `state_dict` buffers that [`DarkeningNet::load_pytorch`] checks, in C.5.
//!
//! ## Where paper and code differ (we follow the code)
//! - **C.1** The paper writes `D(I) = g⁻¹(f(g(I, B), A), B)` with `g(x, β) = x / β`; the code
//!   multiplies by `B` first and divides at the end (`g(x, β) = x·β`). Same family up to
//!   `β ↔ 1/β`, but only the code's form reproduces released checkpoints.
//! - **C.2** The paper's exposure loss (Eq. 6) is an L1 sum over patches; the code takes the mean
//!   squared error per pixel (`patch_size` 1) — [`exposure_loss`]. The paper's similarity (Eq. 5)
//!   is a cosine of global features; the code averages per-location cosines of the last feature
//!   map — [`similarity_loss`].
//! - **C.3** Paper §4.4 adds `D(p)` as an extra *positive* for VPR; `train_night.py` darkens a
//!   copy of the *query*. [`DarkView`] only builds the view; `metric-learning` applies it to the
//!   query copy.
//!
//! D maps `[0, 1]` into `[0, 1/B] ⊆ [0, 1/0.95]`: a curve with `A < 0` brightens, and the final
//! division by `B` can push a pixel slightly above 1 (the reference does not clamp either).
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use darkening_minmax::{DarkeningNetConfig, exposure_map};
//!
//! let device = Device::default();
//! // Seeded: the bound below holds for this draw of the weights; an unseeded draw can exceed 1
//! // by up to 1/B − 1, as said above.
//! device.seed(0);
//! let net = DarkeningNetConfig::new().init(&device); // 64 channels, 8 curves, B ∈ [0.95, 1]
//! let image = Tensor::<4>::ones([1, 3, 16, 16], &device).mul_scalar(0.5); // RGB in [0, 1]
//! let out = net.forward(image, exposure_map(&[0.1], [16, 16], &device));
//! assert_eq!(out.image.dims(), [1, 3, 16, 16]);
//! let (lo, hi): (f32, f32) = (
//!     out.image.clone().min().into_scalar(),
//!     out.image.max().into_scalar(),
//! );
//! assert!(0.0 <= lo && hi <= 1.0, "{lo} {hi}");
//! let b_min: f32 = out.beta.min().into_scalar();
//! assert!(b_min >= 0.95);
//! ```
#![warn(missing_docs)]
#![warn(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod byol;
pub mod classify;
mod dark_view;
mod error;
pub mod loss;
mod model;
pub mod train;

pub use byol::{ByolConfig, ByolHeads, MlpHead, MlpHeadConfig, byol_loss};
pub use dark_view::{DarkView, DarkViewConfig, DarkViewNoise, Darkening};
pub use error::{DarkeningError, Result};
pub use loss::{
    DarkeningLoss, DarkeningLossConfig, DarkeningLossTerms, DarkeningLossValues,
    DarkeningLossWeights, colour_loss, exposure_loss, flex_loss, loose_tv_loss, similarity_loss,
};
pub use model::{
    CHECKPOINT_BUFFERS, CsdnTem, CsdnTemConfig, DARKENING_METADATA, DarkeningNet,
    DarkeningNetConfig, DarkeningOutput, apply_curves, exposure_map,
};
/// Re-exported from [`nightvision_core::ema_update`], where it moved (the GAN trainers use it too).
pub use nightvision_core::ema_update;
pub use train::{
    DarkeningTrainer, DarkeningTrainerConfig, FeatureExtractor, StepLog, evaluate_loss, frozen,
};
