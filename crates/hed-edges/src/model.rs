//! The HED network as the common PyTorch port (sniklaus/pytorch-hed `run.py`) defines it.
//!
//! docs/PAPERS.md A.3, docs/PAPERS.md protocols 3.3: a VGG16 trunk in five blocks without BatchNorm (2, 2, 3, 3, 3
//! 3×3 convolutions with ReLU, a 2×2 max-pool of stride 2 in floor mode before blocks 2–5), a 1×1
//! convolution to one channel on each block's output (the side outputs), each upsampled bilinearly
//! (`align_corners = false`) to the input size, and a 1×1 fusion over the five, followed by a
//! sigmoid (or not, for the raw logits).
//!
//! See [`Hed`] for the parameter names.

use burn::config::Config;
use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Tensor};
use nightvision_core::Normalization;
use nightvision_core::kernels::conv2d;
use nightvision_core::weights::{LoadReport, WeightsLoader};
use std::path::Path;

use crate::HedError;

/// The smallest input side HED accepts: four 2×2 poolings leave a 1×1 map at 16 pixels.
pub const MIN_INPUT_SIDE: usize = 16;

/// Number of 3×3 convolutions in each of the five VGG16 blocks.
const BLOCKS: [usize; 5] = [2, 2, 3, 3, 3];

/// Key remaps from the PyTorch port's and gandtr's names to the fields of [`Hed`] (applied after
/// the contiguous renumbering of `Sequential` indices).
const REMAPS: [(&str, &str); 22] = [
    (r"^(?:net|module)VggOne\.", "vgg_one."),
    (r"^(?:net|module)VggTwo\.", "vgg_two."),
    (r"^(?:net|module)VggThr\.", "vgg_thr."),
    (r"^(?:net|module)VggFou\.", "vgg_fou."),
    (r"^(?:net|module)VggFiv\.", "vgg_fiv."),
    (r"^(?:net|module)ScoreOne\.", "score_one."),
    (r"^(?:net|module)ScoreTwo\.", "score_two."),
    (r"^(?:net|module)ScoreThr\.", "score_thr."),
    (r"^(?:net|module)ScoreFou\.", "score_fou."),
    (r"^(?:net|module)ScoreFiv\.", "score_fiv."),
    (r"^(?:net|module)Combine\.0\.", "combine."),
    (r"^vgg1\.", "vgg_one."),
    (r"^vgg2\.", "vgg_two."),
    (r"^vgg3\.", "vgg_thr."),
    (r"^vgg4\.", "vgg_fou."),
    (r"^vgg5\.", "vgg_fiv."),
    (r"^score1\.", "score_one."),
    (r"^score2\.", "score_two."),
    (r"^score3\.", "score_thr."),
    (r"^score4\.", "score_fou."),
    (r"^score5\.", "score_fiv."),
    (r"^fusion\.0\.", "combine."),
];

/// Configuration of [`Hed`].
#[derive(Config, Debug)]
pub struct HedConfig {
    /// Output channels of the five VGG16 blocks (HED: 64, 128, 256, 512, 512). Smaller widths
    /// build the same topology for tests.
    #[config(default = "[64, 128, 256, 512, 512]")]
    pub widths: [usize; 5],
    /// How an RGB batch in `[0, 1]` becomes the network input. HED (the Caffe model and the
    /// PyTorch port): [`Normalization::CaffeBgr`], i.e. BGR × 255 minus (104.00699, 116.66877,
    /// 122.67892). [`Normalization::Identity`] for inputs that are already normalised.
    #[config(default = "nightvision_core::Normalization::CaffeBgr")]
    pub normalization: Normalization,
}

/// HED: the VGG16 trunk, five side outputs and their fusion (docs/PAPERS.md A.3; the PyTorch port
/// sniklaus/pytorch-hed `run.py`).
///
/// # Parameter names
/// The Rust fields are snake_case spellings of the port's modules; [`Hed::load_weights`] maps the
/// port's keys onto them with one regex per module, after renumbering the port's `Sequential`
/// indices contiguously (its ReLU and max-pool entries hold no parameters):
///
/// | PyTorch port (`net*`, older `module*`) | gandtr `HedInterpolation` | field |
/// |---|---|---|
/// | `netVggOne.{0,2}` | `vgg1.{0,2}` | `vgg_one.{0,1}` |
/// | `netVggTwo.{1,3}` | `vgg2.{1,3}` | `vgg_two.{0,1}` |
/// | `netVggThr.{1,3,5}`, `netVggFou.…`, `netVggFiv.…` | `vgg3`, `vgg4`, `vgg5` | `vgg_thr`, `vgg_fou`, `vgg_fiv` `.{0,1,2}` |
/// | `netScoreOne` … `netScoreFiv` | `score1` … `score5` | `score_one` … `score_fiv` |
/// | `netCombine.0` | `fusion.0` | `combine` |
///
/// Keeping the PyTorch names as Rust field names would need `#[allow(non_snake_case)]` on a derived
/// module; a fixed table of remaps keeps the Rust side idiomatic at no cost to loading.
#[derive(Module, Debug)]
pub struct Hed {
    /// Block 1: two 3×3 convolutions (port `netVggOne.{0,2}`).
    pub vgg_one: Vec<Conv2d>,
    /// Block 2: max-pool, two 3×3 convolutions (port `netVggTwo.{1,3}`).
    pub vgg_two: Vec<Conv2d>,
    /// Block 3: max-pool, three 3×3 convolutions (port `netVggThr.{1,3,5}`).
    pub vgg_thr: Vec<Conv2d>,
    /// Block 4: max-pool, three 3×3 convolutions (port `netVggFou.{1,3,5}`).
    pub vgg_fou: Vec<Conv2d>,
    /// Block 5: max-pool, three 3×3 convolutions (port `netVggFiv.{1,3,5}`).
    pub vgg_fiv: Vec<Conv2d>,
    /// Side output 1: 1×1 convolution to one channel on block 1 (port `netScoreOne`).
    pub score_one: Conv2d,
    /// Side output 2 (port `netScoreTwo`).
    pub score_two: Conv2d,
    /// Side output 3 (port `netScoreThr`).
    pub score_thr: Conv2d,
    /// Side output 4 (port `netScoreFou`).
    pub score_fou: Conv2d,
    /// Side output 5 (port `netScoreFiv`).
    pub score_fiv: Conv2d,
    /// The fusion: 1×1 convolution over the five upsampled side outputs (port `netCombine.0`).
    pub combine: Conv2d,
    pool: MaxPool2d,
    #[module(skip)]
    normalization: Normalization,
}

/// The five upsampled side outputs and the fused output of [`Hed`], all `[batch, 1, height,
/// width]` at the input size: logits from [`Hed::forward_output`], probabilities after
/// [`HedOutput::sigmoid`].
#[derive(Debug, Clone)]
pub struct HedOutput {
    /// Side outputs 1–5 (blocks 1–5), bilinearly upsampled to the input size.
    pub sides: [Tensor<4>; 5],
    /// The fusion of the five side outputs.
    pub fused: Tensor<4>,
}

impl HedOutput {
    /// Applies the sigmoid to every map (logits → edge probabilities).
    pub fn sigmoid(self) -> HedOutput {
        HedOutput {
            sides: self.sides.map(sigmoid),
            fused: sigmoid(self.fused),
        }
    }

    /// The six maps in order: side 1 … side 5, then the fusion.
    pub fn maps(&self) -> impl Iterator<Item = &Tensor<4>> {
        self.sides.iter().chain(std::iter::once(&self.fused))
    }
}

impl HedConfig {
    /// Builds the network with random weights on `device` (burn's default initialisers; load the
    /// real weights with [`Hed::load_weights`]).
    pub fn init(&self, device: &Device) -> Hed {
        let conv3 = |cin: usize, cout: usize| {
            Conv2dConfig::new([cin, cout], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        let conv1 = |cin: usize| Conv2dConfig::new([cin, 1], [1, 1]).init(device);
        let mut cin = 3;
        let [vgg_one, vgg_two, vgg_thr, vgg_fou, vgg_fiv]: [Vec<Conv2d>; 5] =
            std::array::from_fn(|b| {
                (0..BLOCKS[b])
                    .map(|_| {
                        let conv = conv3(cin, self.widths[b]);
                        cin = self.widths[b];
                        conv
                    })
                    .collect()
            });
        let w = self.widths;
        Hed {
            vgg_one,
            vgg_two,
            vgg_thr,
            vgg_fou,
            vgg_fiv,
            score_one: conv1(w[0]),
            score_two: conv1(w[1]),
            score_thr: conv1(w[2]),
            score_fou: conv1(w[3]),
            score_fiv: conv1(w[4]),
            combine: conv1(5),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            normalization: self.normalization,
        }
    }
}

/// Bilinear resampling with PyTorch's `F.interpolate(x, size, mode="bilinear",
/// align_corners=False)` semantics: source coordinate `(i + 0.5) · in/out − 0.5`, clamped at 0, no
/// antialiasing. This is how HED brings its side outputs to the input size.
///
/// Always computed as two matrix products
/// ([`resize_bilinear_separable`](nightvision_core::image::resize_bilinear_separable)): their
/// backward exists on every backend (burn 0.22's GPU backends have no bilinear
/// `interpolate_backward`, which HEDN-GAN's trained student needs), and a frozen teacher and a
/// trained student with the same weights then compute the same bits (HEDN-GAN's distillation
/// term is exactly 0 on day images).
///
/// # Shapes
/// - `x`: `[batch, channels, h, w]`
/// - output: `[batch, channels, size[0], size[1]]`
pub fn upsample_bilinear(x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
    nightvision_core::image::resize_bilinear_separable(x, size)
}

fn block(convs: &[Conv2d], mut x: Tensor<4>) -> Tensor<4> {
    for conv in convs {
        x = relu(conv2d(conv, x));
    }
    x
}

impl Hed {
    /// The key remapping [`Hed::load_weights`] uses: contiguous `Sequential` indices and the
    /// port's / gandtr's names mapped onto the fields (see [`Hed`]), strict. Add
    /// e.g. [`WeightsLoader::with_top_level_key`] for a checkpoint that wraps the state dict.
    pub fn weights_loader() -> WeightsLoader {
        WeightsLoader::new()
            .with_contiguous_indices(true)
            .with_remaps(REMAPS)
    }

    /// Loads HED weights in the PyTorch port's layout: `weights/hed_bsds500.safetensors` of the
    /// real-data cache, the port's own `network-bsds500.pytorch` / `.pth` files (`net*` or the
    /// older `module*` names), or a gandtr `HedInterpolation` state dict. The format follows the
    /// extension (`.safetensors`, otherwise PyTorch). Strict: every parameter must be present with
    /// its shape and no key may be left over.
    ///
    /// # Errors
    /// [`HedError::Core`] wrapping [`nightvision_core::CoreError::Io`] (missing file),
    /// [`WeightsRead`](nightvision_core::CoreError::WeightsRead) (unreadable) or
    /// [`WeightsMismatch`](nightvision_core::CoreError::WeightsMismatch) naming every missing,
    /// unused or wrongly shaped key.
    pub fn load_weights(&mut self, path: impl AsRef<Path>) -> crate::Result<LoadReport> {
        self.load_weights_with(&Self::weights_loader(), path)
    }

    /// [`Hed::load_weights`] with a custom loader (start from [`Hed::weights_loader`]).
    pub fn load_weights_with(
        &mut self,
        loader: &WeightsLoader,
        path: impl AsRef<Path>,
    ) -> crate::Result<LoadReport> {
        Ok(loader.load(self, path)?)
    }

    /// The input normalisation this network applies (see [`HedConfig::normalization`]).
    pub fn normalization(&self) -> Normalization {
        self.normalization
    }

    /// The side outputs and the fusion, as logits (gandtr's `no_sigmoid=True`, extended to the
    /// side outputs the HED loss needs).
    ///
    /// Infallible: `x` must have 3 channels and both sides ≥ [`MIN_INPUT_SIDE`]; use
    /// [`Hed::try_forward_output`] on untrusted input.
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, height, width]`, RGB in `[0, 1]` (normalised inside with
    ///   [`HedConfig::normalization`])
    /// - output: six maps `[batch, 1, height, width]`
    pub fn forward_output(&self, x: Tensor<4>) -> HedOutput {
        let [_, _, h, w] = x.dims();
        let x = self.normalization.apply(x);
        let v1 = block(&self.vgg_one, x);
        let v2 = block(&self.vgg_two, self.pool.forward(v1.clone()));
        let v3 = block(&self.vgg_thr, self.pool.forward(v2.clone()));
        let v4 = block(&self.vgg_fou, self.pool.forward(v3.clone()));
        let v5 = block(&self.vgg_fiv, self.pool.forward(v4.clone()));
        let sides = [
            conv2d(&self.score_one, v1),
            conv2d(&self.score_two, v2),
            conv2d(&self.score_thr, v3),
            conv2d(&self.score_fou, v4),
            conv2d(&self.score_fiv, v5),
        ]
        .map(|s| upsample_bilinear(s, [h, w]));
        let fused = conv2d(&self.combine, Tensor::cat(sides.to_vec(), 1));
        HedOutput { sides, fused }
    }

    /// The fused edge map as logits (gandtr `forward(x, no_sigmoid=True)`).
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, height, width]`, RGB in `[0, 1]`
    /// - output: `[batch, 1, height, width]`
    pub fn forward_logits(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_output(x).fused
    }

    /// The fused edge probability map, what the PyTorch port returns.
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, height, width]`, RGB in `[0, 1]`
    /// - output: `[batch, 1, height, width]` in `(0, 1)`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        sigmoid(self.forward_logits(x))
    }

    /// Checks that `x` is an input HED can process: 3 channels, both sides ≥ [`MIN_INPUT_SIDE`].
    ///
    /// # Errors
    /// [`HedError::InputChannels`], [`HedError::InputTooSmall`].
    pub fn check_input(x: &Tensor<4>) -> crate::Result<()> {
        let [_, channels, height, width] = x.dims();
        if channels != 3 {
            return Err(HedError::InputChannels { channels });
        }
        if height < MIN_INPUT_SIDE || width < MIN_INPUT_SIDE {
            return Err(HedError::InputTooSmall {
                height,
                width,
                min: MIN_INPUT_SIDE,
            });
        }
        Ok(())
    }

    /// [`Hed::forward_output`] after [`Hed::check_input`].
    ///
    /// # Errors
    /// [`HedError::InputChannels`], [`HedError::InputTooSmall`].
    pub fn try_forward_output(&self, x: Tensor<4>) -> crate::Result<HedOutput> {
        Self::check_input(&x)?;
        Ok(self.forward_output(x))
    }

    /// [`Hed::forward`] after [`Hed::check_input`].
    ///
    /// # Errors
    /// [`HedError::InputChannels`], [`HedError::InputTooSmall`].
    pub fn try_forward(&self, x: Tensor<4>) -> crate::Result<Tensor<4>> {
        Self::check_input(&x)?;
        Ok(self.forward(x))
    }
}
