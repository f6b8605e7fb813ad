//! MobileNetV2 (Sandler et al. 2018), torchvision layout.
//!
//! Derived from `torchvision.models.mobilenetv2` (including `width_mult` and `_make_divisible`).

use std::path::Path;

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig};
use burn::nn::{BatchNorm, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use nightvision_core::kernels::{Activation, batch_norm, batch_norm_add, conv2d};
use nightvision_core::weights::{LoadReport, WeightsLoader};

use crate::{BackboneError, bn, conv};

/// `(expand ratio t, channels c, repeats n, stride s)` of torchvision's MobileNetV2.
const SETTING: [[usize; 4]; 7] = [
    [1, 16, 1, 1],
    [6, 24, 2, 2],
    [6, 32, 3, 2],
    [6, 64, 4, 2],
    [6, 96, 3, 1],
    [6, 160, 3, 2],
    [6, 320, 1, 1],
];

/// torchvision's `_make_divisible(v, 8)`.
fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let mut new_v = d.max(((v + d / 2.0) as usize / divisor * divisor) as f64);
    if new_v < 0.9 * v {
        new_v += d;
    }
    new_v as usize
}

/// Configuration of [`MobileNetV2`].
#[derive(Config, Debug)]
pub struct MobileNetV2Config {
    /// Width multiplier (torchvision `width_mult`, 1.0 for the ImageNet weights).
    #[config(default = 1.0)]
    pub width_mult: f64,
    /// Number of classes of the optional classifier (`None`: no head).
    #[config(default = "None")]
    pub num_classes: Option<usize>,
    /// Freeze every BatchNorm (see [`nightvision_core::freeze_batchnorm`]).
    #[config(default = false)]
    pub frozen_batchnorm: bool,
}

/// A 3×3 or 1×1 convolution + BatchNorm + ReLU6 (torchvision `Conv2dNormActivation`).
#[derive(Module, Debug)]
pub struct ConvBnRelu6 {
    /// The convolution (`.0`).
    pub conv: Conv2d,
    /// The BatchNorm (`.1`).
    pub bn: BatchNorm,
}

impl ConvBnRelu6 {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        batch_norm(&self.bn, conv2d(&self.conv, x), Activation::Relu6)
    }
}

/// An inverted residual block: optional 1×1 expansion, 3×3 depthwise, linear 1×1 projection.
#[derive(Module, Debug)]
pub struct InvertedResidual {
    /// The 1×1 expansion (absent when the expand ratio is 1).
    pub expand: Option<ConvBnRelu6>,
    /// The 3×3 depthwise convolution (carries the stride).
    pub depthwise: ConvBnRelu6,
    /// The linear 1×1 projection.
    pub project: Conv2d,
    /// Its BatchNorm.
    pub project_bn: BatchNorm,
    /// Whether the block adds its input (stride 1 and same channels).
    pub residual: bool,
}

impl InvertedResidual {
    /// # Shapes
    /// - `x`: `[batch, in, h, w]` → `[batch, out, h/stride, w/stride]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = match &self.expand {
            Some(e) => e.forward(x.clone()),
            None => x.clone(),
        };
        let h = conv2d(&self.project, self.depthwise.forward(h));
        if self.residual {
            batch_norm_add(&self.project_bn, h, x, Activation::Identity)
        } else {
            batch_norm(&self.project_bn, h, Activation::Identity)
        }
    }
}

/// torchvision's MobileNetV2; `forward` returns the last conv map (`features` output).
#[derive(Module, Debug)]
pub struct MobileNetV2 {
    /// `features.0`: 3×3 stride-2 stem.
    pub stem: ConvBnRelu6,
    /// `features.1` … `features.17`.
    pub blocks: Vec<InvertedResidual>,
    /// `features.18`: the 1×1 conv to `last_channel` (1280).
    pub head: ConvBnRelu6,
    avgpool: AdaptiveAvgPool2d,
    /// `classifier.1` (the dropout `classifier.0` is an identity at inference).
    pub classifier: Option<Linear>,
}

impl MobileNetV2Config {
    /// Checks the configuration.
    pub fn validate(&self) -> crate::Result<()> {
        if !(self.width_mult.is_finite() && self.width_mult > 0.0) {
            return Err(BackboneError::Config(format!(
                "MobileNetV2 width_mult must be positive, got {}",
                self.width_mult
            )));
        }
        Ok(())
    }

    /// Channels of the last conv map (1280 for `width_mult ≤ 1`).
    pub fn out_channels(&self) -> usize {
        make_divisible(1280.0 * self.width_mult.max(1.0), 8)
    }

    /// Builds the network with random weights on `device`.
    pub fn init(&self, device: &Device) -> MobileNetV2 {
        let cbr = |cin: usize, cout: usize, k: usize, s: usize, g: usize| ConvBnRelu6 {
            conv: conv(cin, cout, k, s, g, false, device),
            bn: bn(cout, device),
        };
        let mut cin = make_divisible(32.0 * self.width_mult, 8);
        let stem = cbr(3, cin, 3, 2, 1);
        let mut blocks = Vec::new();
        for [t, c, n, s] in SETTING {
            let cout = make_divisible(c as f64 * self.width_mult, 8);
            for i in 0..n {
                let stride = if i == 0 { s } else { 1 };
                let hidden = (cin as f64 * t as f64).round() as usize;
                blocks.push(InvertedResidual {
                    expand: (t != 1).then(|| cbr(cin, hidden, 1, 1, 1)),
                    depthwise: cbr(hidden, hidden, 3, stride, hidden),
                    project: conv(hidden, cout, 1, 1, 1, false, device),
                    project_bn: bn(cout, device),
                    residual: stride == 1 && cin == cout,
                });
                cin = cout;
            }
        }
        let last = self.out_channels();
        let net = MobileNetV2 {
            stem,
            blocks,
            head: cbr(cin, last, 1, 1, 1),
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            classifier: self
                .num_classes
                .map(|n| LinearConfig::new(last, n).init(device)),
        };
        if self.frozen_batchnorm {
            nightvision_core::freeze_batchnorm(net)
        } else {
            net
        }
    }
}

impl MobileNetV2 {
    /// The last convolutional feature map.
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, height, width]` (ImageNet-normalised RGB)
    /// - output: `[batch, 1280, ⌈height/32⌉, ⌈width/32⌉]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = self.stem.forward(x);
        for b in &self.blocks {
            x = b.forward(x);
        }
        self.head.forward(x)
    }

    /// Class logits through global average pooling and the classifier; `None` without a head.
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, height, width]` → `[batch, num_classes]`
    pub fn classify(&self, x: Tensor<4>) -> Option<Tensor<2>> {
        let fc = self.classifier.as_ref()?;
        let f = self.avgpool.forward(self.forward(x)).flatten::<2>(1, 3);
        Some(fc.forward(f))
    }

    /// The key map from a torchvision `state_dict`:
    ///
    /// | torchvision | here |
    /// |---|---|
    /// | `features.0.{0,1}` | `stem.{conv,bn}` |
    /// | `features.i.conv.0.{0,1}` (i ≥ 2) | `blocks.(i−1).expand.{conv,bn}` |
    /// | `features.i.conv.1.{0,1}` / `features.1.conv.0.{0,1}` | `blocks.(i−1).depthwise.{conv,bn}` |
    /// | `features.i.conv.2` / `features.1.conv.1` | `blocks.(i−1).project` |
    /// | `features.i.conv.3` / `features.1.conv.2` | `blocks.(i−1).project_bn` |
    /// | `features.18.{0,1}` | `head.{conv,bn}` |
    /// | `classifier.1` | `classifier` |
    pub fn torchvision_remaps(&self) -> Vec<(String, String)> {
        let mut r: Vec<(String, String)> = vec![
            (r"^features\.0\.0\.(.+)$".into(), "stem.conv.$1".into()),
            (r"^features\.0\.1\.(.+)$".into(), "stem.bn.$1".into()),
            (r"^classifier\.1\.(.+)$".into(), "classifier.$1".into()),
        ];
        let n = self.blocks.len();
        r.push((
            format!(r"^features\.{}\.0\.(.+)$", n + 1),
            "head.conv.$1".into(),
        ));
        r.push((
            format!(r"^features\.{}\.1\.(.+)$", n + 1),
            "head.bn.$1".into(),
        ));
        for (b, block) in self.blocks.iter().enumerate() {
            let f = b + 1;
            let names: &[&str] = if block.expand.is_some() {
                &["expand.conv", "expand.bn", "depthwise.conv", "depthwise.bn"]
            } else {
                &["depthwise.conv", "depthwise.bn"]
            };
            for (k, name) in names.iter().enumerate() {
                r.push((
                    format!(r"^features\.{f}\.conv\.{}\.{}\.(.+)$", k / 2, k % 2),
                    format!("blocks.{b}.{name}.$1"),
                ));
            }
            let j = names.len() / 2;
            r.push((
                format!(r"^features\.{f}\.conv\.{j}\.(.+)$"),
                format!("blocks.{b}.project.$1"),
            ));
            r.push((
                format!(r"^features\.{f}\.conv\.{}\.(.+)$", j + 1),
                format!("blocks.{b}.project_bn.$1"),
            ));
        }
        r
    }

    /// Loads a torchvision MobileNetV2 checkpoint (`.pth` or `.safetensors`) strictly. Without a
    /// head, `classifier.*` keys are accepted and ignored.
    pub fn load_torchvision(&mut self, path: impl AsRef<Path>) -> crate::Result<LoadReport> {
        let mut loader = WeightsLoader::new().with_remaps(self.torchvision_remaps());
        if self.classifier.is_none() {
            loader = loader.allow_unused_prefix("classifier.");
        }
        Ok(loader.load(self, path)?)
    }
}

#[cfg(test)]
mod tests {
    use super::make_divisible;
    use burn::tensor::{Device, Tensor, TensorData};
    use nightvision_core::kernels::relu6;

    /// ReLU6 values and gradients against the closed form `min(max(x, 0), 6)` with PyTorch's
    /// hardtanh gradient (1 strictly inside (0, 6), 0 outside and at the bounds' lower end), at
    /// the kinks, inside, outside, and at magnitudes far beyond any activation.
    #[test]
    fn relu6_is_the_closed_form_with_torch_gradients() {
        let device = Device::default().autodiff();
        let xs: Vec<f32> = vec![
            -1e7,
            -7.0,
            -1e-30,
            0.0,
            1e-30,
            1e-7,
            0.5,
            3.0,
            5.999_999_5,
            6.000_000_5,
            6.5,
            11.9,
            12.0,
            1e3,
            1e7,
            3.3e7,
        ];
        let n = xs.len();
        let x = Tensor::<4>::from_data(TensorData::new(xs.clone(), [1, 1, 1, n]), &device)
            .require_grad();
        let y = relu6(x.clone());
        let g = x.grad(&y.clone().sum().backward()).unwrap();
        let ys: Vec<f32> = y.into_data().try_into_vec_as().unwrap();
        let gs: Vec<f32> = g.into_data().try_into_vec_as().unwrap();
        for ((&x, &y), &g) in xs.iter().zip(&ys).zip(&gs) {
            assert_eq!(y, x.clamp(0.0, 6.0), "value at {x}");
            let expected = if x > 0.0 && x < 6.0 { 1.0 } else { 0.0 };
            assert_eq!(g, expected, "gradient at {x}");
        }
    }

    #[test]
    fn make_divisible_matches_torchvision() {
        // torchvision.models._utils._make_divisible
        assert_eq!(make_divisible(32.0, 8), 32);
        assert_eq!(make_divisible(32.0 * 0.25, 8), 8);
        assert_eq!(make_divisible(24.0 * 0.35, 8), 8);
        assert_eq!(make_divisible(96.0 * 0.75, 8), 72);
        assert_eq!(make_divisible(1280.0 * 1.4, 8), 1792);
        assert_eq!(make_divisible(20.0, 8), 24);
    }
}
