//! # backbones
//!
//! The convolutional trunks the three papers build on, written with torchvision's parameter names
//! so that torchvision, cirtorch and CosPlace `state_dict`s load with a small, documented key map:
//!
//! | model | used by | output of `forward` |
//! |---|---|---|
//! | [`Vgg16`] | Dark Side Augmentation GeM-VGG16 (docs/PAPERS.md A.5), CosPlace VGG16 | `features[:-1]`: conv5_3 + ReLU, `[B, 512, H/16, W/16]` |
//! | [`ResNet`] 18 / 50 / 101 | GeM-ResNet-101 (A.5, C.3), CosPlace ResNet-18/50 (B.3), SMM's frozen F (C.2) | `layer4`, `[B, 512·e, H/32, W/32]` |
//! | [`MobileNetV2`] | a fast real pretrained backbone (ImageNet weights in the real-data cache) | last conv map, `[B, 1280, H/32, W/32]` |
//!
//! Every model follows `XConfig` → `init(&Device)` → `forward`, returns its last convolutional
//! feature map, and has an optional classifier head (`classify`). `load_torchvision` loads a
//! torchvision checkpoint (`.pth` or `.safetensors`) strictly, naming every mismatching key.
//!
//! ```
//! use backbones::ResNetConfig;
//! use burn::tensor::{Device, Tensor};
//!
//! let device = Device::default();
//! // A ResNet-18 topology at 1/16 width, for a quick check.
//! let net = ResNetConfig::resnet18().with_base_width(4).init(&device);
//! let x = Tensor::<4>::zeros([1, 3, 64, 64], &device);
//! assert_eq!(net.forward(x).dims(), [1, 32, 2, 2]);
//! ```
#![warn(missing_docs)]
#![warn(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod error;
mod mobilenet;
mod resnet;
mod vgg;

pub use error::{BackboneError, Result};
pub use mobilenet::{InvertedResidual, MobileNetV2, MobileNetV2Config};
pub use resnet::{Block, Downsample, ResNet, ResNetConfig};
pub use vgg::{Vgg16, Vgg16Config};

use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d, conv::Conv2d, conv::Conv2dConfig};
use burn::tensor::Device;

/// A bias-free `k×k` convolution with symmetric padding `k/2`, as torchvision builds them.
pub(crate) fn conv(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    groups: usize,
    bias: bool,
    device: &Device,
) -> Conv2d {
    let p = k / 2;
    Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_groups(groups)
        .with_bias(bias)
        .init(device)
}

/// A BatchNorm with PyTorch's defaults (eps 1e-5, momentum 0.1).
pub(crate) fn bn(c: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(c).init(device)
}
