//! # nightvision
//!
//! Image retrieval and visual place recognition that work at night, on [burn]. This umbrella crate
//! re-exports the workspace's libraries under short names and holds the examples (one per paper's
//! pipeline, plus tools) and the benches.
//!
//! | module | crate | what |
//! |---|---|---|
//! | [`core`] | `nightvision-core` | image ↔ tensor, normalisation, CLAHE, weight loading, checkpoints |
//! | [`backbones`] | `backbones` | VGG16, ResNet-18/50/101, MobileNetV2 with torchvision names |
//! | [`hed`] | `hed-edges` | HED edge detector and the HED^N losses |
//! | [`gan`] | `nightgen-gan` | day→night translators (CycleGAN, HEDN-GAN, CUT, NEG-CUT) |
//! | [`darkening`] | `darkening-minmax` | Similarity Min-Max darkening network and training |
//! | [`metric`] | `metric-learning` | GeM/CosPlace descriptors, losses, whitening, trainers |
//! | [`anchors`] | `anchor-mining` | random/diverse anchors, translation subset, CosPlace classes |
//! | [`eval`] | `vpr-eval` | readers, exact k-NN, Recall@N, mAP, reports |
//! | [`places`] | `synthetic-places` | the embedded procedural day/night world |
//! | [`pipelines`] | (here) | the three papers' pipelines as library calls: configuration → `run` → report |
//! | [`pipeline`] | (here) | the parts the three paper pipelines share |
//! | [`protocol`] | (here) | the retrieval protocol of DSA and SMM: multi-scale, Lw whitening, mAP with intervals |
//! | [`quality`] | (here) | translation quality: MobileNetV2 Fréchet distance, luminance, HED edge consistency |
//!
//! The backend is chosen by Cargo feature (`flex` by default, `wgpu`, `cuda`) and at run time by
//! `burn::tensor::Device` (`BURN_DEVICE` overrides `Device::default()`); the model code is the same
//! on all of them.
#![warn(missing_docs)]
#![warn(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub use anchor_mining as anchors;
pub use backbones;
pub use darkening_minmax as darkening;
pub use hed_edges as hed;
pub use metric_learning as metric;
pub use nightgen_gan as gan;
pub use nightvision_core as core;
pub use synthetic_places as places;
pub use vpr_eval as eval;

pub mod pipeline;
pub mod pipelines;
pub mod protocol;
pub mod quality;
