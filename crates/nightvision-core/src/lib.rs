//! # nightvision-core
//!
//! The substrate every nightvision crate stands on:
//!
//! - [`image`](mod@image): image files ↔ `Tensor<4>` `[batch, 3, height, width]` in `[0, 1]`
//!   (RGB, grayscale, RGBA and 16-bit inputs), resizing (bilinear; "longer side = N" as cirtorch and
//!   the VPR code do);
//! - [`Normalization`]: the three input conventions of the papers with exact inverses — ImageNet
//!   mean/std (descriptors), `[-1, 1]` (the GANs, docs/PAPERS.md A.1), Caffe BGR×255 minus the BSDS mean
//!   (HED, docs/PAPERS.md A.3);
//! - [`clahe`]: CLAHE on the L channel of Lab exactly as OpenCV computes it (Dark Side Augmentation
//!   applies it to every image, docs/PAPERS.md A.5);
//! - [`weights`]: PyTorch `.pth` / safetensors loading over burn-store with key remapping, strict by
//!   default, naming every missing, unused or wrongly shaped key;
//! - [`checkpoint`]: atomic (temp file + rename) save and load of modules and training state;
//! - [`parallel`]: data-parallel training steps over several devices;
//! - [`kernels`]: dense and depthwise convolutions and frozen BatchNorm with their own forward and
//!   backward on the CPU backend (a burn backend extension; feature `flex`), exactly
//!   `Conv2d::forward` / `BatchNorm::forward` elsewhere;
//! - [`rng`]: seeded, portable random streams; [`freeze_batchnorm`]: cirtorch's frozen BatchNorm;
//! - [`CoreError`]: the shared error type.
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use nightvision_core::Normalization;
//!
//! let device = Device::default();
//! let x = Tensor::<4>::ones([1, 3, 4, 4], &device).mul_scalar(0.5);
//! let n = Normalization::ImageNet;
//! let back = n.invert(n.apply(x.clone()));
//! let err: f32 = (back - x).abs().max().into_scalar();
//! assert!(err < 1e-6);
//! ```
#![warn(missing_docs)]
#![warn(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod augment;
pub mod checkpoint;
pub mod clahe;
mod data;
mod error;
pub mod image;
pub mod jitter;
pub mod kernels;
mod module;
mod norm;
pub mod parallel;
pub mod rng;
#[cfg(feature = "testing")]
pub mod testing;
pub mod weights;

pub use data::{real_data_dir, real_data_file};
pub use error::{CoreError, Result};
pub use module::{ema_update, ema_update_copying_buffers, freeze_batchnorm, on_device};
pub use norm::{CAFFE_BGR_MEAN, IMAGENET_MEAN, IMAGENET_STD, Normalization};
