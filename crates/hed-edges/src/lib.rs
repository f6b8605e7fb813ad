//! # hed-edges
//!
//! HED, the holistically-nested edge detector (Xie & Tu, ICCV 2015), as Dark Side Augmentation's
//! edge-consistency GANs use it (docs/PAPERS.md A.3, A.4; docs/PAPERS.md protocols 3.3):
//!
//! - [`Hed`] ([`HedConfig`]): the common PyTorch port (sniklaus/pytorch-hed) — a VGG16 trunk in
//!   five blocks, five side outputs upsampled bilinearly (`align_corners = false`) to the input
//!   size, a 1×1 fusion, sigmoid or raw logits; any input size from 16×16 up (the port's fixed
//!   480×320 is not required; odd sizes follow PyTorch's floor-mode pooling and bilinear
//!   resampling). [`Hed::load_weights`] reads the real BSDS500 weights of the real-data cache
//!   (`weights/hed_bsds500.safetensors`), the port's own `.pth`/`.pytorch` files and gandtr
//!   `HedInterpolation` state dicts, strictly.
//! - [`loss`]: HED's class-balanced cross-entropy ([`class_balanced_bce`], [`hed_loss`] over the
//!   side outputs and the fusion) and the HED^N teacher/student losses ([`HedNLossConfig`]).
//! - [`optim`]: the Caffe per-layer learning-rate and weight-decay multipliers as burn parameter
//!   groups ([`caffe_optimizer`], [`caffe_lr_scheduler`]).
//! - [`EdgeMap`]: edge maps on the host, written as PNG or `.npy`.
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use hed_edges::{HedConfig, Hed, HedError};
//!
//! let device = Device::default();
//! // The HED topology at 1/16 width, random weights (load real ones with `load_weights`).
//! let hed = HedConfig::new().with_widths([4, 8, 16, 32, 32]).init(&device);
//! let image = Tensor::<4>::ones([1, 3, 37, 50], &device).mul_scalar(0.5); // RGB in [0, 1]
//! let out = hed.try_forward_output(image).unwrap();
//! assert_eq!(out.fused.dims(), [1, 1, 37, 50]);
//! assert!(out.sides.iter().all(|s| s.dims() == [1, 1, 37, 50]));
//! let edges = out.sigmoid().fused; // probabilities in (0, 1)
//! assert!(edges.clone().min().into_scalar::<f32>() > 0.0);
//!
//! // Inputs below 16×16 cannot go through four 2×2 poolings.
//! let tiny = Tensor::<4>::zeros([1, 3, 15, 40], &device);
//! assert!(matches!(hed.try_forward(tiny), Err(HedError::InputTooSmall { .. })));
//! ```
#![warn(missing_docs)]
#![warn(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod error;
mod io;
pub mod loss;
mod model;
pub mod optim;

pub use error::{HedError, Result};
pub use io::EdgeMap;
pub use loss::{
    HedNLossConfig, class_balanced_bce, distillation_l1, edge_consistency_l1, hed_loss,
};
pub use model::{Hed, HedConfig, HedOutput, MIN_INPUT_SIDE, upsample_bilinear};
pub use optim::{CaffeGroup, ScaledLr, caffe_lr_scheduler, caffe_optimizer};
