//! VGG16 (Simonyan & Zisserman 2015), torchvision layout.
//!
//! Derived from `torchvision.models.vgg` (configuration "D", no BatchNorm).

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use nightvision_core::kernels::conv2d;
use nightvision_core::weights::{LoadReport, WeightsLoader};
use std::path::Path;

/// Configuration of [`Vgg16`].
#[derive(Config, Debug)]
pub struct Vgg16Config {
    /// Output channels of the five blocks (torchvision: 64, 128, 256, 512, 512). Smaller widths
    /// build the same topology for tests.
    #[config(default = "[64, 128, 256, 512, 512]")]
    pub widths: [usize; 5],
    /// Number of classes of the optional classifier (`None`: `features` only).
    #[config(default = "None")]
    pub num_classes: Option<usize>,
    /// Width of the classifier's two hidden layers (torchvision: 4096).
    #[config(default = 4096)]
    pub classifier_hidden: usize,
}

/// VGG16's convolutional `features` without the last max-pool, as cirtorch uses it
/// (`list(vgg16.features.children())[:-1]`): 13 3×3 convolutions with ReLU and four 2×2 max-pools.
#[derive(Module, Debug)]
pub struct Vgg16 {
    /// The 13 convolutions, in order (torchvision `features.{0,2,5,7,10,12,14,17,19,21,24,26,28}`).
    pub features: Vec<Conv2d>,
    pool: MaxPool2d,
    avgpool: AdaptiveAvgPool2d,
    /// The optional classifier (torchvision `classifier.{0,3,6}`): `widths[4]·7·7 → hidden →
    /// hidden → classes` with ReLU (dropout is an identity at inference).
    pub classifier: Option<Vec<Linear>>,
}

/// Number of convolutions in each of the five blocks.
const BLOCKS: [usize; 5] = [2, 2, 3, 3, 3];

impl Vgg16Config {
    /// Builds the network with random weights on `device`.
    pub fn init(&self, device: &Device) -> Vgg16 {
        let mut features = Vec::with_capacity(13);
        let mut cin = 3;
        for (b, n) in BLOCKS.iter().enumerate() {
            for _ in 0..*n {
                features.push(crate::conv(cin, self.widths[b], 3, 1, 1, true, device));
                cin = self.widths[b];
            }
        }
        let hidden = self.classifier_hidden;
        let classifier = self.num_classes.map(|n| {
            vec![
                LinearConfig::new(self.widths[4] * 49, hidden).init(device),
                LinearConfig::new(hidden, hidden).init(device),
                LinearConfig::new(hidden, n).init(device),
            ]
        });
        Vgg16 {
            features,
            pool: MaxPool2dConfig::new([2, 2]).init(),
            avgpool: AdaptiveAvgPool2dConfig::new([7, 7]).init(),
            classifier,
        }
    }
}

impl Vgg16 {
    /// The conv5_3 feature map (after its ReLU).
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, height, width]` (ImageNet-normalised RGB)
    /// - output: `[batch, widths[4], ⌊height/16⌋, ⌊width/16⌋]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = x;
        let mut i = 0;
        for (b, n) in BLOCKS.iter().enumerate() {
            if b > 0 {
                x = self.pool.forward(x);
            }
            for _ in 0..*n {
                x = relu(conv2d(&self.features[i], x));
                i += 1;
            }
        }
        x
    }

    /// Class logits: the last max-pool, 7×7 adaptive average pooling and the classifier; `None`
    /// without a head.
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, height, width]` → `[batch, num_classes]`
    pub fn classify(&self, x: Tensor<4>) -> Option<Tensor<2>> {
        let fc = self.classifier.as_ref()?;
        let f = self.avgpool.forward(self.pool.forward(self.forward(x)));
        let mut h = f.flatten::<2>(1, 3);
        for (i, layer) in fc.iter().enumerate() {
            h = layer.forward(h);
            if i + 1 < fc.len() {
                h = relu(h);
            }
        }
        Some(h)
    }

    /// Loads torchvision / cirtorch VGG16 `features` weights (`features.N.weight|bias`; cirtorch
    /// checkpoints keep the same keys under `state_dict`). The torchvision Sequential indices are
    /// renumbered contiguously (`classifier.{0,3,6}` likewise); without a head, `classifier.*`
    /// keys are accepted and ignored.
    pub fn load_torchvision(&mut self, path: impl AsRef<Path>) -> crate::Result<LoadReport> {
        let mut loader = WeightsLoader::new().with_contiguous_indices(true);
        if self.classifier.is_none() {
            loader = loader.allow_unused_prefix("classifier.");
        }
        Ok(loader.load(self, path)?)
    }
}
