//! Any trunk of the `backbones` crate behind one type, with the key maps of the two checkpoint
//! formats the papers ship (cirtorch `features.*`, CosPlace `backbone.*`).

use backbones::{MobileNetV2, MobileNetV2Config, ResNet, ResNetConfig, Vgg16, Vgg16Config};
use burn::module::Module;
use burn::nn::pool::MaxPool2dConfig;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// torchvision `vgg16.features` indices of the 13 convolutions (ReLU and max-pool entries hold
/// no parameters).
pub const VGG16_CONV_INDICES: [usize; 13] = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28];

/// Which trunk a network uses, and how to build it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum BackboneConfig {
    /// VGG16 `features` (512-d).
    Vgg16(Vgg16Config),
    /// ResNet-18/50/101 up to `layer4` (512-d or 2048-d).
    ResNet(ResNetConfig),
    /// MobileNetV2 `features` (1280-d).
    MobileNetV2(MobileNetV2Config),
}

/// What kind of trunk, for defaults that depend on it (the contrastive margin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackboneKind {
    /// VGG16.
    Vgg16,
    /// ResNet-18 / 34 (basic blocks).
    ResNetBasic,
    /// ResNet-50 / 101 / 152 (bottlenecks).
    ResNetBottleneck,
    /// MobileNetV2.
    MobileNetV2,
}

impl BackboneConfig {
    /// VGG16 at full width.
    pub fn vgg16() -> Self {
        Self::Vgg16(Vgg16Config::new())
    }
    /// ResNet-50.
    pub fn resnet50() -> Self {
        Self::ResNet(ResNetConfig::resnet50())
    }
    /// ResNet-101.
    pub fn resnet101() -> Self {
        Self::ResNet(ResNetConfig::resnet101())
    }
    /// MobileNetV2 (width 1.0).
    pub fn mobilenet_v2() -> Self {
        Self::MobileNetV2(MobileNetV2Config::new())
    }

    /// The trunk's kind.
    pub fn kind(&self) -> BackboneKind {
        match self {
            Self::Vgg16(_) => BackboneKind::Vgg16,
            Self::ResNet(c) if c.bottleneck => BackboneKind::ResNetBottleneck,
            Self::ResNet(_) => BackboneKind::ResNetBasic,
            Self::MobileNetV2(_) => BackboneKind::MobileNetV2,
        }
    }

    /// Channels of the trunk's output feature map.
    pub fn out_channels(&self) -> usize {
        match self {
            Self::Vgg16(c) => c.widths[4],
            Self::ResNet(c) => c.out_channels(),
            Self::MobileNetV2(c) => c.out_channels(),
        }
    }

    /// Checks the configuration.
    pub fn validate(&self) -> crate::Result<()> {
        match self {
            Self::Vgg16(c) => {
                if c.widths.contains(&0) {
                    return Err(crate::MetricError::config(
                        "backbone",
                        "VGG16 widths must be positive",
                    ));
                }
            }
            Self::ResNet(c) => c.validate()?,
            Self::MobileNetV2(c) => c.validate()?,
        }
        Ok(())
    }

    /// Builds the trunk (random weights, no classifier head) on `device`.
    pub fn init(&self, device: &Device) -> Backbone {
        match self {
            Self::Vgg16(c) => Backbone::Vgg16(c.clone().with_num_classes(None).init(device)),
            Self::ResNet(c) => Backbone::ResNet(c.clone().with_num_classes(None).init(device)),
            Self::MobileNetV2(c) => {
                Backbone::MobileNetV2(c.clone().with_num_classes(None).init(device))
            }
        }
    }
}

/// A convolutional trunk from the `backbones` crate.
///
/// Weight files address the trunk without the variant name (burn-store skips enum variants):
/// `backbone.features.0.weight` (VGG16), `backbone.layer1.0.conv1.weight` (ResNet),
/// `backbone.stem.conv.weight` (MobileNetV2). Module visitors (e.g. optimiser parameter groups)
/// see the variant as one more path segment (`backbone.ResNet.layer1…`).
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Backbone {
    /// VGG16.
    Vgg16(Vgg16),
    /// ResNet.
    ResNet(ResNet),
    /// MobileNetV2.
    MobileNetV2(MobileNetV2),
}

impl Backbone {
    /// The trunk's feature map as cirtorch uses it (VGG16 `features[:-1]`, ending in the last
    /// ReLU; ResNet `children()[:-2]`; MobileNetV2 `features`).
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, height, width]` → `[batch, out_channels, h', w']`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Self::Vgg16(m) => m.forward(x),
            Self::ResNet(m) => m.forward(x),
            Self::MobileNetV2(m) => m.forward(x),
        }
    }

    /// The trunk's feature map as CosPlace uses it: identical to [`Backbone::forward`] except
    /// for VGG16, whose `features[:-2]` also drops the last ReLU (conv5_3 before activation).
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, height, width]` → `[batch, out_channels, h', w']`
    pub fn forward_cosplace(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Self::Vgg16(m) => vgg16_without_last_relu(m, x),
            other => other.forward(x),
        }
    }

    /// Channels of the output feature map.
    pub fn out_channels(&self) -> usize {
        let dims = match self {
            Self::Vgg16(m) => m.features.last().map(|c| c.weight.dims()),
            Self::ResNet(m) => m
                .layer4
                .last()
                .map(|b| b.conv3.as_ref().unwrap_or(&b.conv2).weight.dims()),
            Self::MobileNetV2(m) => Some(m.head.conv.weight.dims()),
        };
        dims.map(|d| d[0]).unwrap_or(0)
    }

    /// The variant name (a path segment for module visitors).
    pub fn variant(&self) -> &'static str {
        match self {
            Self::Vgg16(_) => "Vgg16",
            Self::ResNet(_) => "ResNet",
            Self::MobileNetV2(_) => "MobileNetV2",
        }
    }

    /// Key remaps from a Sequential of the torchvision trunk's children stored under `prefix`
    /// (`"features"` in cirtorch checkpoints, `"backbone"` in CosPlace ones) to this module's
    /// parameter paths under `target` (e.g. `"backbone"`):
    ///
    /// | trunk | file key | module path |
    /// |---|---|---|
    /// | VGG16 | `{prefix}.{0,2,5,…,28}.*` (torchvision `features` indices) | `{target}.features.{0..12}.*` |
    /// | ResNet | `{prefix}.0` / `.1` / `.4`–`.7` | `{target}.conv1` / `bn1` / `layer1`–`layer4` (+ `downsample.{0,1}` → `downsample.{conv,bn}`) |
    /// | MobileNetV2 | `{prefix}.0.0` …, torchvision `features` layout | `{target}.stem…`, `{target}.blocks…`, `{target}.head…` ([`MobileNetV2::torchvision_remaps`]) |
    pub fn sequential_remaps(&self, prefix: &str, target: &str) -> Vec<(String, String)> {
        match self {
            Self::Vgg16(_) => VGG16_CONV_INDICES
                .iter()
                .enumerate()
                .map(|(k, i)| {
                    (
                        format!(r"^{prefix}\.{i}\.(.+)$"),
                        format!("{target}.features.{k}.$1"),
                    )
                })
                .collect(),
            Self::ResNet(_) => {
                let mut r: Vec<(String, String)> = [
                    (0, "conv1"),
                    (1, "bn1"),
                    (4, "layer1"),
                    (5, "layer2"),
                    (6, "layer3"),
                    (7, "layer4"),
                ]
                .iter()
                .map(|(i, name)| {
                    (
                        format!(r"^{prefix}\.{i}\.(.+)$"),
                        format!("{target}.{name}.$1"),
                    )
                })
                .collect();
                r.extend(
                    ResNet::TORCHVISION_REMAPS
                        .iter()
                        .map(|(a, b)| (a.to_string(), b.to_string())),
                );
                r
            }
            Self::MobileNetV2(m) => m
                .torchvision_remaps()
                .into_iter()
                .filter(|(from, _)| from.starts_with(r"^features"))
                .map(|(from, to)| {
                    (
                        from.replacen(r"^features\.", &format!(r"^{prefix}\."), 1),
                        format!("{target}.{to}"),
                    )
                })
                .collect(),
        }
    }
}

/// VGG16 conv5_3 before its ReLU (CosPlace's `features[:-2]`).
fn vgg16_without_last_relu(m: &Vgg16, x: Tensor<4>) -> Tensor<4> {
    const BLOCKS: [usize; 5] = [2, 2, 3, 3, 3];
    let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
    let n = m.features.len();
    let mut x = x;
    let mut i = 0;
    for (b, count) in BLOCKS.iter().enumerate() {
        if b > 0 {
            x = pool.forward(x);
        }
        for _ in 0..*count {
            if let Some(conv) = m.features.get(i) {
                x = conv.forward(x);
                if i + 1 < n {
                    x = relu(x);
                }
            }
            i += 1;
        }
    }
    x
}
