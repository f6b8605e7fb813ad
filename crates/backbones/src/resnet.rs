//! ResNet-18/50/101 (He et al. 2016), torchvision layout (stride on the 3×3 convolution, "v1.5").
//!
//! Derived from `torchvision.models.resnet`.

use std::path::Path;

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor};
use nightvision_core::kernels::{Activation, batch_norm, batch_norm_add, conv2d};
use nightvision_core::weights::{LoadReport, WeightsLoader};

use crate::{BackboneError, bn, conv};

/// Configuration of a [`ResNet`].
#[derive(Config, Debug)]
pub struct ResNetConfig {
    /// Blocks per stage (`[2,2,2,2]` ResNet-18, `[3,4,6,3]` ResNet-50, `[3,4,23,3]` ResNet-101).
    pub layers: [usize; 4],
    /// Bottleneck blocks (ResNet-50/101) instead of basic blocks (ResNet-18/34).
    pub bottleneck: bool,
    /// Width of the stem and the first stage (torchvision: 64; smaller for tests).
    #[config(default = 64)]
    pub base_width: usize,
    /// Number of classes of the optional `fc` head (`None`: no head).
    #[config(default = "None")]
    pub num_classes: Option<usize>,
    /// Freeze every BatchNorm (running statistics used even in training; cirtorch's
    /// `set_batchnorm_eval`).
    #[config(default = false)]
    pub frozen_batchnorm: bool,
}

impl ResNetConfig {
    /// ResNet-18.
    pub fn resnet18() -> Self {
        Self::new([2, 2, 2, 2], false)
    }
    /// ResNet-50.
    pub fn resnet50() -> Self {
        Self::new([3, 4, 6, 3], true)
    }
    /// ResNet-101.
    pub fn resnet101() -> Self {
        Self::new([3, 4, 23, 3], true)
    }

    fn expansion(&self) -> usize {
        if self.bottleneck { 4 } else { 1 }
    }

    /// Channels of the `layer4` output (512 for ResNet-18, 2048 for ResNet-50/101).
    pub fn out_channels(&self) -> usize {
        self.base_width * 8 * self.expansion()
    }

    /// Checks the configuration.
    pub fn validate(&self) -> crate::Result<()> {
        if self.base_width == 0 || self.layers.contains(&0) {
            return Err(BackboneError::Config(format!(
                "ResNet needs a positive base width and at least one block per stage, got {:?} / {}",
                self.layers, self.base_width
            )));
        }
        Ok(())
    }

    /// Builds the network with random weights on `device`.
    pub fn init(&self, device: &Device) -> ResNet {
        let w = self.base_width;
        let e = self.expansion();
        let mut inplanes = w;
        let mut stage = |planes: usize, blocks: usize, stride: usize| -> Vec<Block> {
            (0..blocks)
                .map(|i| {
                    let s = if i == 0 { stride } else { 1 };
                    let downsample =
                        (i == 0 && (s != 1 || inplanes != planes * e)).then(|| Downsample {
                            conv: conv(inplanes, planes * e, 1, s, 1, false, device),
                            bn: bn(planes * e, device),
                        });
                    let block = if self.bottleneck {
                        Block {
                            conv1: conv(inplanes, planes, 1, 1, 1, false, device),
                            bn1: bn(planes, device),
                            conv2: conv(planes, planes, 3, s, 1, false, device),
                            bn2: bn(planes, device),
                            conv3: Some(conv(planes, planes * e, 1, 1, 1, false, device)),
                            bn3: Some(bn(planes * e, device)),
                            downsample,
                        }
                    } else {
                        Block {
                            conv1: conv(inplanes, planes, 3, s, 1, false, device),
                            bn1: bn(planes, device),
                            conv2: conv(planes, planes, 3, 1, 1, false, device),
                            bn2: bn(planes, device),
                            conv3: None,
                            bn3: None,
                            downsample,
                        }
                    };
                    inplanes = planes * e;
                    block
                })
                .collect()
        };
        let layer1 = stage(w, self.layers[0], 1);
        let layer2 = stage(w * 2, self.layers[1], 2);
        let layer3 = stage(w * 4, self.layers[2], 2);
        let layer4 = stage(w * 8, self.layers[3], 2);
        let net = ResNet {
            conv1: conv(3, w, 7, 2, 1, false, device),
            bn1: bn(w, device),
            maxpool: MaxPoolStem::new(),
            layer1,
            layer2,
            layer3,
            layer4,
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc: self
                .num_classes
                .map(|n| LinearConfig::new(self.out_channels(), n).init(device)),
        };
        if self.frozen_batchnorm {
            nightvision_core::freeze_batchnorm(net)
        } else {
            net
        }
    }
}

/// The stem's 3×3 stride-2 max-pool with padding 1.
#[derive(Module, Debug)]
pub(crate) struct MaxPoolStem {
    pool: MaxPool2d,
}

impl MaxPoolStem {
    fn new() -> Self {
        Self {
            pool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
        }
    }
}

/// torchvision's `downsample` Sequential (1×1 conv + BatchNorm) on the skip path.
#[derive(Module, Debug)]
pub struct Downsample {
    /// `downsample.0`.
    pub conv: Conv2d,
    /// `downsample.1`.
    pub bn: BatchNorm,
}

/// A residual block: basic (two 3×3 convolutions) or bottleneck (1×1, 3×3, 1×1 with `conv3`).
#[derive(Module, Debug)]
pub struct Block {
    /// First convolution (3×3 basic, 1×1 bottleneck).
    pub conv1: Conv2d,
    /// Its BatchNorm.
    pub bn1: BatchNorm,
    /// Second convolution (3×3; carries the stride in both kinds).
    pub conv2: Conv2d,
    /// Its BatchNorm.
    pub bn2: BatchNorm,
    /// The bottleneck's expanding 1×1 convolution.
    pub conv3: Option<Conv2d>,
    /// Its BatchNorm.
    pub bn3: Option<BatchNorm>,
    /// The projection on the skip path, where shape changes.
    pub downsample: Option<Downsample>,
}

impl Block {
    /// # Shapes
    /// - `x`: `[batch, in, h, w]` → `[batch, out, h/stride, w/stride]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(d) => batch_norm(&d.bn, conv2d(&d.conv, x.clone()), Activation::Identity),
            None => x.clone(),
        };
        let out = batch_norm(&self.bn1, conv2d(&self.conv1, x), Activation::Relu);
        let out = conv2d(&self.conv2, out);
        match (&self.conv3, &self.bn3) {
            (Some(c3), Some(b3)) => {
                let out = batch_norm(&self.bn2, out, Activation::Relu);
                batch_norm_add(b3, conv2d(c3, out), identity, Activation::Relu)
            }
            _ => batch_norm_add(&self.bn2, out, identity, Activation::Relu),
        }
    }
}

/// A torchvision ResNet; `forward` returns the `layer4` feature map.
#[derive(Module, Debug)]
pub struct ResNet {
    /// Stem convolution (7×7, stride 2).
    pub conv1: Conv2d,
    /// Stem BatchNorm.
    pub bn1: BatchNorm,
    maxpool: MaxPoolStem,
    /// Stage 1 (stride 4 overall).
    pub layer1: Vec<Block>,
    /// Stage 2 (stride 8).
    pub layer2: Vec<Block>,
    /// Stage 3 (stride 16).
    pub layer3: Vec<Block>,
    /// Stage 4 (stride 32).
    pub layer4: Vec<Block>,
    avgpool: AdaptiveAvgPool2d,
    /// The optional ImageNet classifier.
    pub fc: Option<Linear>,
}

impl ResNet {
    /// The `layer4` feature map.
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, height, width]` (ImageNet-normalised RGB)
    /// - output: `[batch, 8·base_width·expansion, ≈height/32, ≈width/32]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = batch_norm(&self.bn1, conv2d(&self.conv1, x), Activation::Relu);
        let mut x = self.maxpool.pool.forward(x);
        for layer in [&self.layer1, &self.layer2, &self.layer3, &self.layer4] {
            for block in layer {
                x = block.forward(x);
            }
        }
        x
    }

    /// Class logits through global average pooling and `fc`; `None` without a head.
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, height, width]` → `[batch, num_classes]`
    pub fn classify(&self, x: Tensor<4>) -> Option<Tensor<2>> {
        let fc = self.fc.as_ref()?;
        let f = self.avgpool.forward(self.forward(x)).flatten::<2>(1, 3);
        Some(fc.forward(f))
    }

    /// The key remaps from a torchvision `state_dict` (`layer1.0.downsample.0.weight` →
    /// `layer1.0.downsample.conv.weight`, `….downsample.1.*` → `….downsample.bn.*`); all other
    /// names are torchvision's. cirtorch checkpoints store the trunk under `state_dict` with a
    /// `features.` prefix and `features.{0,1,4,5,6,7}` for conv1, bn1, layer1–4 — see
    /// [`ResNet::CIRTORCH_REMAPS`].
    pub const TORCHVISION_REMAPS: [(&'static str, &'static str); 2] = [
        (r"^(.+)\.downsample\.0\.(.+)$", "$1.downsample.conv.$2"),
        (r"^(.+)\.downsample\.1\.(.+)$", "$1.downsample.bn.$2"),
    ];

    /// Remaps of cirtorch's `ImageRetrievalNet.features` (a Sequential of torchvision's children
    /// without avgpool and fc): `features.0` conv1, `features.1` bn1, `features.4..7` layer1..4.
    pub const CIRTORCH_REMAPS: [(&'static str, &'static str); 6] = [
        (r"^features\.0\.(.+)$", "conv1.$1"),
        (r"^features\.1\.(.+)$", "bn1.$1"),
        (r"^features\.4\.(.+)$", "layer1.$1"),
        (r"^features\.5\.(.+)$", "layer2.$1"),
        (r"^features\.6\.(.+)$", "layer3.$1"),
        (r"^features\.7\.(.+)$", "layer4.$1"),
    ];

    /// Loads a torchvision ResNet checkpoint strictly. Without a head, `fc.*` keys are accepted
    /// and ignored.
    pub fn load_torchvision(&mut self, path: impl AsRef<Path>) -> crate::Result<LoadReport> {
        let mut loader = WeightsLoader::new().with_remaps(Self::TORCHVISION_REMAPS);
        if self.fc.is_none() {
            loader = loader.allow_unused_prefix("fc.");
        }
        Ok(loader.load(self, path)?)
    }
}
