//! The ResNet generator of CycleGAN, CUT / NEG-CUT and Dark Side Augmentation's GANs.
//!
//! docs/PAPERS.md A.2 (gandtr `p2p_networks.py::ResnetGenerator`), B.1 (NEG-CUT = CUT defaults),
//! docs/PAPERS.md protocols 3.1 (CycleGAN `networks.py::ResnetGenerator`), 3.2 (CUT):
//!
//! ```text
//! ReflPad(3) → Conv7×7(in→ngf) → Norm → ReLU
//! 2 × [Conv3×3 s2 p1 (c→2c) → Norm → ReLU]                       (anti-aliased: Conv s1, Norm, ReLU, Downsample)
//! n_blocks × ResnetBlock(4·ngf): x + [ReflPad1, Conv3×3, Norm, ReLU, ReflPad1, Conv3×3, Norm](x)
//! 2 × [ConvT3×3 s2 p1 op1 (c→c/2) → Norm → ReLU]                  (anti-aliased: Upsample, Conv s1, Norm, ReLU)
//! ReflPad(3) → Conv7×7(ngf→out, bias) → Tanh
//! ```
//!
//! Norm is `InstanceNorm2d(affine=False)` with biased convolutions (CycleGAN, CUT) or
//! `BatchNorm2d` (affine, running statistics) with bias-free convolutions (HEDGAN / HEDNGAN).
//! Batch norm uses the batch statistics on an autodiff device (training, PyTorch's `train()`)
//! and the running statistics otherwise (`eval()`, e.g. on `module.valid()`); burn updates
//! `running_var` with the biased batch variance where PyTorch uses the unbiased one (a relative
//! difference of 1/(n−1) on the batch term, n = batch·height·width).
//!
//! ## Parameter names and PyTorch checkpoints
//!
//! The network is stored exactly like the reference `nn.Sequential`: [`ResnetGenerator::model`] is
//! a `Vec<`[`Layer`]`>` with one entry per PyTorch entry (parameter-free ones included), and each
//! [`ResnetBlock`] has its own `conv_block` `Vec`. A parameter's burn path is therefore
//! `model.<index>.<Variant>.weight`, and since burn-store's PyTorch reader skips enum variant names,
//! a CycleGAN / CUT / gandtr `state_dict` (`model.1.weight`, `model.10.conv_block.5.weight`,
//! `model.2.running_mean`, …) loads **without renaming a single key**. The remaps
//! [`ResnetGenerator::load_pytorch`] applies are:
//!
//! | file key                         | module path                         | why                                  |
//! |----------------------------------|-------------------------------------|--------------------------------------|
//! | `module.<rest>`                  | `<rest>`                            | `nn.DataParallel` checkpoints        |
//! | `model.<i>.<p>` (safetensors)    | `model.<i>.<Variant>.<p>`           | the safetensors reader keeps variants |
//! | `….weight` / `….bias` of a BN    | `gamma` / `beta`                    | burn-store's PyTorch adapter          |
//!
//! and the keys that may stay unused are `num_batches_tracked` (a BatchNorm counter) and `filt`
//! (the constant blur kernels of CUT's `Downsample` / `Upsample`, recomputed here).
//!
//! ⚠ Known issue: burn-store 0.22.1's `.pth` reader (the `zip` 9.8.1 crate) rejects a few valid
//! `torch.save` archives with "Invalid Central Directory header" (seen for one fixture, depending
//! on the archive's internal folder name, i.e. the file name it was saved under, and its
//! content). Re-saving the `state_dict` under another name, or as safetensors, works around it.
//!
//! Layer indices are the reference ones, so CUT's `nce_layers` (`0,4,8,12,16` with anti-aliasing,
//! gandtr's `4,8,12,16` without) address the same tensors in [`ResnetGenerator::forward_layers`].
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use nightgen_gan::{NormKind, ResnetGeneratorConfig, translate_images};
//!
//! let device = Device::default();
//! let g = ResnetGeneratorConfig::new()
//!     .with_ngf(4)
//!     .with_n_blocks(2)
//!     .with_norm(NormKind::Batch)
//!     .try_init(&device)?;
//! // 18 × 23 is not a multiple of 4: translate_images pads by reflection and crops back.
//! let day = Tensor::<4>::ones([1, 3, 18, 23], &device).mul_scalar(0.5);
//! let night = translate_images(&g, day)?;
//! assert_eq!(night.dims(), [1, 3, 18, 23]);
//! let (lo, hi): (f32, f32) = (night.clone().min().into_scalar(), night.max().into_scalar());
//! assert!(0.0 <= lo && hi <= 1.0);
//! // Encoder features at Sequential indices (CUT's `nce_layers`), stopping after index 10.
//! let x = Tensor::<4>::zeros([1, 3, 16, 16], &device);
//! let feats = g.forward_layers(x, &[4, 8, 10])?;
//! assert_eq!(feats[0].dims(), [1, 8, 8, 8]);
//! # Ok::<(), nightgen_gan::GanError>(())
//! ```

use nightvision_core::kernels::conv2d as kernel_conv2d;
use std::path::Path;

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Identity, InstanceNorm, InstanceNormConfig, LeakyRelu,
    LeakyReluConfig, PaddingConfig2d, Relu, Tanh,
};
use burn::tensor::module::{conv_transpose2d, conv2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, PadMode};
use burn::tensor::{Device, Tensor, TensorData};
use nightvision_core::weights::{LoadReport, WeightsLoader};
use serde::{Deserialize, Serialize};

use crate::GanError;
use crate::init::{InitConfig, init_weights};

/// The normalisation layer of the generator and discriminator (docs/PAPERS.md A.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NormKind {
    /// `InstanceNorm2d(affine=False)`, convolutions with bias (CycleGAN, CUT, NEG-CUT).
    Instance,
    /// `BatchNorm2d(affine=True, track_running_stats=True)`, convolutions without bias
    /// (gandtr's HEDGAN / HEDNGAN).
    Batch,
    /// No normalisation: `Identity` in the norm's place and bias-free convolutions, as the
    /// reference's `--norm none` builds them (`use_bias = norm_layer == nn.InstanceNorm2d`). A
    /// discriminator without normalisation sees each crop's global brightness and colour, which
    /// instance norm removes from every feature map (docs/TRAINING.md).
    None,
}

impl NormKind {
    /// Whether the convolutions followed by this norm have a bias (`use_bias` of the reference).
    pub fn conv_bias(self) -> bool {
        matches!(self, NormKind::Instance)
    }

    pub(crate) fn layer(self, channels: usize, device: &Device) -> Layer {
        match self {
            NormKind::Instance => Layer::InstanceNorm(
                InstanceNormConfig::new(channels)
                    .with_affine(false)
                    .init(device),
            ),
            NormKind::Batch => Layer::BatchNorm(BatchNormConfig::new(channels).init(device)),
            NormKind::None => Layer::Identity(Identity),
        }
    }
}

/// `nn.ReflectionPad2d(padding)`: mirror padding without repeating the edge, on all four sides.
#[derive(Module, Debug)]
pub struct ReflectionPad2d {
    /// Pixels added on each side.
    pub padding: usize,
}

impl ReflectionPad2d {
    /// # Shapes
    /// - input: `[batch, channels, height, width]`, `height, width > padding`
    /// - output: `[batch, channels, height + 2·padding, width + 2·padding]`
    ///
    /// # Panics
    /// When a side is not larger than `padding` (reflection needs `padding` interior pixels).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let p = self.padding;
        x.pad([(p, p), (p, p)], PadMode::Reflect)
    }
}

/// The binomial blur kernel of CUT's anti-aliasing (`get_filter`): the outer product of the
/// binomial row of length `size` (1 ≤ size ≤ 7), normalised to sum 1, as a depthwise weight
/// `[channels, 1, size, size]` times `scale`.
fn blur_kernel(size: usize, channels: usize, scale: f32, device: &Device) -> Tensor<4> {
    // Binomial row: C(size - 1, k).
    let mut row = vec![1f32; size];
    for k in 1..size {
        row[k] = row[k - 1] * (size - k) as f32 / k as f32;
    }
    let mut k2 = Vec::with_capacity(size * size);
    for a in &row {
        for b in &row {
            k2.push(a * b);
        }
    }
    let sum: f32 = k2.iter().sum();
    let single: Vec<f32> = k2.iter().map(|v| v / sum * scale).collect();
    let mut all = Vec::with_capacity(channels * size * size);
    for _ in 0..channels {
        all.extend_from_slice(&single);
    }
    Tensor::from_data(TensorData::new(all, [channels, 1, size, size]), device)
}

/// CUT's anti-aliased `Downsample(channels)` (docs/PAPERS.md B.1; `pad_type='reflect'`, `filt_size=3`,
/// `stride=2`): reflection pad 1, then a depthwise stride-2 convolution with the 3×3 binomial
/// kernel `[1,2,1]ᵀ[1,2,1]/16`. The kernel is a constant (the reference's `filt` buffer is
/// recomputed, not loaded).
#[derive(Module, Debug)]
pub struct BlurDownsample {
    /// Number of channels (the depthwise groups).
    pub channels: usize,
}

impl BlurDownsample {
    /// # Shapes
    /// - input: `[batch, channels, height, width]`, `height, width ≥ 2`
    /// - output: `[batch, channels, ⌈height/2⌉, ⌈width/2⌉]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let filt = blur_kernel(3, self.channels, 1.0, &x.device());
        let x = x.pad([(1, 1), (1, 1)], PadMode::Reflect);
        conv2d(
            x,
            filt,
            None,
            ConvOptions::new([2, 2], [0, 0], [1, 1], self.channels),
        )
    }
}

/// CUT's anti-aliased `Upsample(channels)` (docs/PAPERS.md B.1; `pad_type='repl'`, `filt_size=4`,
/// `stride=2`): replication pad 1, a depthwise transposed convolution (stride 2, padding 2) with
/// the 4×4 binomial kernel `[1,3,3,1]ᵀ[1,3,3,1]/64 · 4`, then `[:, :, 1:-1, 1:-1]`.
#[derive(Module, Debug)]
pub struct BlurUpsample {
    /// Number of channels (the depthwise groups).
    pub channels: usize,
}

impl BlurUpsample {
    /// # Shapes
    /// - input: `[batch, channels, height, width]`
    /// - output: `[batch, channels, 2·height, 2·width]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let filt = blur_kernel(4, self.channels, 4.0, &x.device());
        let x = x.pad([(1, 1), (1, 1)], PadMode::Edge);
        let y = conv_transpose2d(
            x,
            filt,
            None,
            ConvTransposeOptions::new([2, 2], [2, 2], [0, 0], [1, 1], self.channels),
        );
        // (h + 2 - 1)·2 - 4 + 4 = 2h + 2 rows: drop the first (`[1:]`) and, the kernel being even,
        // the last (`[:-1]`).
        let [b, c, h, w] = y.dims();
        y.slice([0..b, 0..c, 1..h - 1, 1..w - 1])
    }
}

/// One entry of a reference `nn.Sequential` (generator, [`ResnetBlock`] or discriminator).
///
/// The variant name is not part of the PyTorch key (`model.<index>.weight`): burn-store's PyTorch
/// reader skips enum variants.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Layer {
    /// `nn.ReflectionPad2d`.
    ReflectionPad(ReflectionPad2d),
    /// `nn.Conv2d`.
    Conv(Conv2d),
    /// `nn.ConvTranspose2d`.
    ConvTranspose(ConvTranspose2d),
    /// `nn.InstanceNorm2d(affine=False)`.
    InstanceNorm(InstanceNorm),
    /// `nn.BatchNorm2d`.
    BatchNorm(BatchNorm),
    /// `Identity`: the place of the norm with [`NormKind::None`].
    Identity(Identity),
    /// `nn.ReLU`.
    Relu(Relu),
    /// `nn.LeakyReLU(0.2)`.
    LeakyRelu(LeakyRelu),
    /// `nn.Tanh`.
    Tanh(Tanh),
    /// A residual block of the generator.
    ResnetBlock(ResnetBlock),
    /// CUT's anti-aliased `Downsample`.
    Downsample(BlurDownsample),
    /// CUT's anti-aliased `Upsample`.
    Upsample(BlurUpsample),
}

impl Layer {
    /// Applies the layer.
    ///
    /// # Shapes
    /// - input: `[batch, channels, height, width]`; output: the layer's output.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Layer::ReflectionPad(m) => m.forward(x),
            Layer::Conv(m) => kernel_conv2d(m, x),
            Layer::ConvTranspose(m) => m.forward(x),
            Layer::InstanceNorm(m) => m.forward(x),
            Layer::BatchNorm(m) => m.forward(x),
            Layer::Identity(_) => x,
            Layer::Relu(m) => m.forward(x),
            Layer::LeakyRelu(m) => m.forward(x),
            Layer::Tanh(m) => m.forward(x),
            Layer::ResnetBlock(m) => m.forward(x),
            Layer::Downsample(m) => m.forward(x),
            Layer::Upsample(m) => m.forward(x),
        }
    }

    /// The name of the variant (`"Conv"`, `"ResnetBlock"`, …), which is also its burn path
    /// segment.
    pub fn variant_name(&self) -> &'static str {
        match self {
            Layer::ReflectionPad(_) => "ReflectionPad",
            Layer::Conv(_) => "Conv",
            Layer::ConvTranspose(_) => "ConvTranspose",
            Layer::InstanceNorm(_) => "InstanceNorm",
            Layer::BatchNorm(_) => "BatchNorm",
            Layer::Identity(_) => "Identity",
            Layer::Relu(_) => "Relu",
            Layer::LeakyRelu(_) => "LeakyRelu",
            Layer::Tanh(_) => "Tanh",
            Layer::ResnetBlock(_) => "ResnetBlock",
            Layer::Downsample(_) => "Downsample",
            Layer::Upsample(_) => "Upsample",
        }
    }

    /// Whether the layer holds tensors a PyTorch checkpoint stores.
    fn has_weights(&self) -> bool {
        matches!(
            self,
            Layer::Conv(_) | Layer::ConvTranspose(_) | Layer::BatchNorm(_) | Layer::ResnetBlock(_)
        )
    }

    pub(crate) fn conv(
        channels: [usize; 2],
        kernel: usize,
        stride: usize,
        padding: usize,
        bias: bool,
        device: &Device,
    ) -> Layer {
        Layer::Conv(
            Conv2dConfig::new(channels, [kernel, kernel])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(
                    padding, padding, padding, padding,
                ))
                .with_bias(bias)
                .init(device),
        )
    }

    pub(crate) fn leaky_relu() -> Layer {
        Layer::LeakyRelu(LeakyReluConfig::new().with_negative_slope(0.2).init())
    }
}

/// Key remaps for a safetensors copy of a PyTorch `state_dict`: burn-store's safetensors reader
/// keeps enum variant names in module paths (`model.1.Conv.weight`), its PyTorch reader does not.
pub(crate) fn variant_remaps(prefix: &str, layers: &[Layer], out: &mut Vec<(String, String)>) {
    for (i, layer) in layers.iter().enumerate() {
        if !layer.has_weights() {
            continue;
        }
        let path = format!("{prefix}.{i}");
        let escaped = regex_escape(&path);
        match layer {
            Layer::ResnetBlock(block) => {
                let inner: Vec<(String, String)> = {
                    let mut v = Vec::new();
                    variant_remaps("conv_block", &block.conv_block, &mut v);
                    v
                };
                for (from, to) in inner {
                    // `^conv_block\.1\.(.+)$` → `^model\.10\.conv_block\.1\.(.+)$`
                    let from = format!("^{escaped}\\.{}", from.trim_start_matches('^'));
                    out.push((from, format!("{path}.ResnetBlock.{to}")));
                }
            }
            _ => out.push((
                format!("^{escaped}\\.([^.]+)$"),
                format!("{path}.{}.$1", layer.variant_name()),
            )),
        }
    }
}

fn regex_escape(s: &str) -> String {
    s.replace('.', "\\.")
}

/// The loader shared by the generator and the discriminator (see the [module docs](self)).
pub(crate) fn pytorch_loader(
    prefix: &str,
    layers: &[Layer],
    path: &Path,
) -> crate::Result<WeightsLoader> {
    let mut loader = WeightsLoader::new()
        .with_remap(r"^module\.(.+)$", "$1")
        .allow_unused_suffix(".filt");
    if nightvision_core::weights::is_safetensors(path) {
        let mut remaps = Vec::new();
        variant_remaps(prefix, layers, &mut remaps);
        loader = loader.with_remaps(remaps);
    }
    Ok(loader)
}

/// The residual block of the generator (`ResnetBlock`, reflect padding, no dropout):
/// `x + conv_block(x)` with `conv_block = [ReflPad1, Conv3×3, Norm, ReLU, ReflPad1, Conv3×3, Norm]`
/// (PyTorch keys `conv_block.1.weight`, `conv_block.5.weight`, …).
#[derive(Module, Debug)]
pub struct ResnetBlock {
    /// The seven layers of the block, at the reference indices.
    pub conv_block: Vec<Layer>,
}

impl ResnetBlock {
    fn new(dim: usize, norm: NormKind, device: &Device) -> Self {
        let bias = norm.conv_bias();
        let pad = || Layer::ReflectionPad(ReflectionPad2d { padding: 1 });
        Self {
            conv_block: vec![
                pad(),
                Layer::conv([dim, dim], 3, 1, 0, bias, device),
                norm.layer(dim, device),
                Layer::Relu(Relu::new()),
                pad(),
                Layer::conv([dim, dim], 3, 1, 0, bias, device),
                norm.layer(dim, device),
            ],
        }
    }

    /// # Shapes
    /// - input: `[batch, dim, height, width]`, `height, width ≥ 2`
    /// - output: `[batch, dim, height, width]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut h = x.clone();
        for layer in &self.conv_block {
            h = layer.forward(h);
        }
        x + h
    }
}

/// Configuration of [`ResnetGenerator`] (docs/PAPERS.md A.2, docs/PAPERS.md protocols 3.1). The defaults are
/// CycleGAN's `resnet_9blocks` (ngf 64, instance norm, no anti-aliasing, init N(0, 0.02)).
#[derive(Config, Debug)]
pub struct ResnetGeneratorConfig {
    /// Input channels.
    #[config(default = 3)]
    pub input_nc: usize,
    /// Output channels.
    #[config(default = 3)]
    pub output_nc: usize,
    /// Filters of the first and last convolutions (64); the residual blocks have `4·ngf`.
    #[config(default = 64)]
    pub ngf: usize,
    /// Number of residual blocks: 9 (`resnet_9blocks`, 256×256 training) or 6.
    #[config(default = 9)]
    pub n_blocks: usize,
    /// The normalisation layer.
    #[config(default = "NormKind::Instance")]
    pub norm: NormKind,
    /// CUT's anti-aliased downsampling (`not --no_antialias`; CUT / NEG-CUT default, docs/PAPERS.md
    /// B.1). Off in CycleGAN and gandtr.
    #[config(default = false)]
    pub antialias: bool,
    /// CUT's anti-aliased upsampling (`not --no_antialias_up`). Off in CycleGAN and gandtr.
    #[config(default = false)]
    pub antialias_up: bool,
    /// Weight initialisation applied by [`ResnetGeneratorConfig::init`].
    #[config(default = "InitConfig::cyclegan()")]
    pub init_scheme: InitConfig,
    /// Seed of the weight initialisation.
    #[config(default = 0)]
    pub init_seed: u64,
}

impl ResnetGeneratorConfig {
    /// CycleGAN (docs/PAPERS.md protocols 3.1): instance norm, no anti-aliasing, N(0, 0.02).
    pub fn cyclegan() -> Self {
        Self::new()
    }

    /// CUT / NEG-CUT defaults (docs/PAPERS.md protocols 3.2, docs/PAPERS.md B.1): instance norm, anti-aliased
    /// down- and upsampling, Xavier-normal init with gain 0.02.
    pub fn cut() -> Self {
        Self::new()
            .with_antialias(true)
            .with_antialias_up(true)
            .with_init_scheme(InitConfig::cut())
    }

    /// gandtr's CycleGAN (docs/PAPERS.md A.2): instance norm, no anti-aliasing, `normal_p2p` with
    /// mdir's default gain **0.2**.
    pub fn gandtr_cyclegan() -> Self {
        Self::new().with_init_scheme(InitConfig::gandtr_normal())
    }

    /// gandtr's CUT (docs/PAPERS.md A.2): instance norm, no anti-aliasing, `kaiming_p2p`.
    pub fn gandtr_cut() -> Self {
        Self::new().with_init_scheme(InitConfig::gandtr_kaiming())
    }

    /// gandtr's HEDGAN / HEDNGAN (docs/PAPERS.md A.2): batch norm, no anti-aliasing, `kaiming_p2p`
    /// (BatchNorm weights N(1, 0.2)).
    pub fn gandtr_hedngan() -> Self {
        Self::new()
            .with_norm(NormKind::Batch)
            .with_init_scheme(InitConfig::gandtr_kaiming())
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`GanError::Config`] when a channel count is zero or the init gain is not finite and
    /// positive.
    pub fn validate(&self) -> crate::Result<()> {
        for (name, v) in [
            ("input_nc", self.input_nc),
            ("output_nc", self.output_nc),
            ("ngf", self.ngf),
        ] {
            if v == 0 {
                return Err(GanError::Config {
                    name,
                    reason: "must be at least 1".into(),
                });
            }
        }
        self.init_scheme.validate()
    }

    /// Builds the generator and initialises it with `init_scheme` / `init_seed`.
    ///
    /// # Panics
    /// When [`validate`](Self::validate) fails; use [`try_init`](Self::try_init) for user input.
    pub fn init(&self, device: &Device) -> ResnetGenerator {
        match self.try_init(device) {
            Ok(g) => g,
            Err(e) => panic!("{e}"),
        }
    }

    /// Validates, builds and initialises the generator.
    ///
    /// # Errors
    /// See [`validate`](Self::validate).
    pub fn try_init(&self, device: &Device) -> crate::Result<ResnetGenerator> {
        self.validate()?;
        let (model, channels) = self.build(device);
        let g = ResnetGenerator {
            model,
            input_nc: self.input_nc,
            output_nc: self.output_nc,
            layer_channels: channels,
        };
        Ok(init_weights(g, self.init_scheme, self.init_seed))
    }

    /// The reference `nn.Sequential`, and the output channels of each entry.
    fn build(&self, device: &Device) -> (Vec<Layer>, Vec<usize>) {
        let norm = self.norm;
        let bias = norm.conv_bias();
        let ngf = self.ngf;
        let mut layers = Vec::new();
        let mut channels = Vec::new();
        let mut push = |l: Layer, c: usize| {
            layers.push(l);
            channels.push(c);
        };
        push(
            Layer::ReflectionPad(ReflectionPad2d { padding: 3 }),
            self.input_nc,
        );
        push(
            Layer::conv([self.input_nc, ngf], 7, 1, 0, bias, device),
            ngf,
        );
        push(norm.layer(ngf, device), ngf);
        push(Layer::Relu(Relu::new()), ngf);
        for i in 0..2 {
            let c = ngf << i;
            if self.antialias {
                push(Layer::conv([c, 2 * c], 3, 1, 1, bias, device), 2 * c);
                push(norm.layer(2 * c, device), 2 * c);
                push(Layer::Relu(Relu::new()), 2 * c);
                push(Layer::Downsample(BlurDownsample { channels: 2 * c }), 2 * c);
            } else {
                push(Layer::conv([c, 2 * c], 3, 2, 1, bias, device), 2 * c);
                push(norm.layer(2 * c, device), 2 * c);
                push(Layer::Relu(Relu::new()), 2 * c);
            }
        }
        let dim = 4 * ngf;
        for _ in 0..self.n_blocks {
            push(Layer::ResnetBlock(ResnetBlock::new(dim, norm, device)), dim);
        }
        for i in 0..2 {
            let c = dim >> i;
            if self.antialias_up {
                push(Layer::Upsample(BlurUpsample { channels: c }), c);
                push(Layer::conv([c, c / 2], 3, 1, 1, bias, device), c / 2);
            } else {
                push(
                    Layer::ConvTranspose(
                        ConvTranspose2dConfig::new([c, c / 2], [3, 3])
                            .with_stride([2, 2])
                            .with_padding([1, 1])
                            .with_padding_out([1, 1])
                            .with_bias(bias)
                            .init(device),
                    ),
                    c / 2,
                );
            }
            push(norm.layer(c / 2, device), c / 2);
            push(Layer::Relu(Relu::new()), c / 2);
        }
        push(Layer::ReflectionPad(ReflectionPad2d { padding: 3 }), ngf);
        push(
            Layer::conv([ngf, self.output_nc], 7, 1, 0, true, device),
            self.output_nc,
        );
        push(Layer::Tanh(Tanh::new()), self.output_nc);
        (layers, channels)
    }
}

/// The ResNet generator (docs/PAPERS.md A.2; see the [module docs](self) for the layer table and the
/// PyTorch key layout).
#[derive(Module, Debug)]
pub struct ResnetGenerator {
    /// The reference `nn.Sequential`, one entry per PyTorch index.
    pub model: Vec<Layer>,
    /// Input channels.
    pub input_nc: usize,
    /// Output channels.
    pub output_nc: usize,
    /// Output channels of each entry of `model` (what CUT's `PatchSampleF` MLPs take in).
    pub layer_channels: Vec<usize>,
}

/// The field of a translator's checkpoint folder `config.json` holding the generator's
/// [`ResnetGeneratorConfig`] ([`ResnetGenerator::load`]).
pub const GENERATOR_FIELD: &str = "generator";
/// The optional field naming the checkpoint part with the day→night generator's weights
/// (`"generator.bpk"` when absent: the HEDN-GAN and CUT trainers; CycleGAN writes
/// `"day_to_night.bpk"`).
pub const GENERATOR_PART_FIELD: &str = "generator_part";

/// The safetensors metadata key holding a saved generator's [`ResnetGeneratorConfig`] (JSON;
/// [`ResnetGenerator::save_safetensors`]).
pub const GENERATOR_METADATA: &str = "nightvision.generator";

impl ResnetGenerator {
    /// Rebuilds a trained generator from its checkpoint folder alone: the configuration in the
    /// folder's `config.json` (field [`GENERATOR_FIELD`]; the part name in
    /// [`GENERATOR_PART_FIELD`], default `generator.bpk`) and the weights of its newest
    /// checkpoint, as the pipelines write them. `dir` may also be a `.safetensors` file written by
    /// [`save_safetensors`](Self::save_safetensors) (the shipped models in `models/`). Call
    /// `valid()` on it for inference.
    ///
    /// # Errors
    /// [`GanError::Core`] for a folder without configuration or checkpoint, or with weights of
    /// another architecture; [`GanError::Config`] for an invalid stored configuration.
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> crate::Result<Self> {
        let path = dir.as_ref();
        if path.is_file() && nightvision_core::weights::is_safetensors(path) {
            return Self::load_safetensors(path, device);
        }
        let ckpt = nightvision_core::checkpoint::CheckpointDir::open(path)?;
        let cfg: ResnetGeneratorConfig = ckpt.config_field(GENERATOR_FIELD)?;
        let stored: serde_json::Value = ckpt.config()?;
        let part = match stored.get(GENERATOR_PART_FIELD) {
            None => "generator.bpk",
            Some(serde_json::Value::String(p)) => p.as_str(),
            Some(other) => {
                return Err(GanError::config(
                    GENERATOR_PART_FIELD,
                    format!("{other} in {} is not a file name", path.display()),
                ));
            }
        };
        Ok(ckpt.load_latest(cfg.try_init(device)?, part)?)
    }

    /// The translated image in `[-1, 1]` (Tanh output).
    ///
    /// # Shapes
    /// - input: `[batch, input_nc, height, width]` in `[-1, 1]`; for the output to have the input
    ///   size, `height` and `width` must be multiples of 4 (see [`translate_images`]) and at
    ///   least 8
    /// - output: `[batch, output_nc, height, width]`
    ///
    /// # Panics
    /// When a side is too small for a reflection padding (fewer than 4 pixels at the input,
    /// fewer than 2 after the two downsamplings).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.model.iter().fold(x, |h, layer| layer.forward(h))
    }

    /// Number of entries of the reference `nn.Sequential` (28 for `resnet_9blocks` without
    /// anti-aliasing, 32 with it).
    pub fn num_layers(&self) -> usize {
        self.model.len()
    }

    fn check_layer_ids(&self, layer_ids: &[usize]) -> crate::Result<()> {
        if let Some(&bad) = layer_ids.iter().find(|&&i| i >= self.model.len()) {
            return Err(GanError::InvalidInput {
                what: "generator layer id",
                reason: format!(
                    "{bad} is out of range: the generator has {} layers",
                    self.model.len()
                ),
            });
        }
        Ok(())
    }

    /// The outputs of the Sequential entries `layer_ids` (CUT's
    /// `netG(x, nce_layers, encode_only=True)`), in the order of `layer_ids`; the forward stops
    /// after the largest id. Id 0 is the reflection-padded input.
    ///
    /// ⚠ As in the reference, whose ReLUs are in place (`nn.ReLU(True)`), the feature of an entry
    /// directly followed by a ReLU is the **post-ReLU** tensor when the forward continues past
    /// that ReLU: gandtr's `nce_layers` `4,8,12,16` without anti-aliasing take layer 8 (a norm)
    /// after its ReLU, while a list ending at 8 gets it before. CUT's default `0,4,8,12,16` with
    /// anti-aliasing (pad, conv, conv, blocks) is not affected.
    ///
    /// # Shapes
    /// - input: `[batch, input_nc, height, width]` in `[-1, 1]`
    /// - output: one `[batch, layer_channels[id], h_id, w_id]` tensor per id
    ///
    /// # Errors
    /// [`GanError::InvalidInput`] when an id is not below [`num_layers`](Self::num_layers).
    pub fn forward_layers(
        &self,
        x: Tensor<4>,
        layer_ids: &[usize],
    ) -> crate::Result<Vec<Tensor<4>>> {
        self.check_layer_ids(layer_ids)?;
        let Some(&last) = layer_ids.iter().max() else {
            return Ok(Vec::new());
        };
        let (_, feats) = self.run(x, layer_ids, last);
        Ok(feats)
    }

    /// The output (as [`forward`](Self::forward)) and the outputs of the entries `layer_ids`
    /// (CUT's `netG(x, layers)`), in the order of `layer_ids`.
    ///
    /// # Shapes
    /// As [`forward`](Self::forward) and [`forward_layers`](Self::forward_layers).
    ///
    /// # Errors
    /// [`GanError::InvalidInput`] when an id is not below [`num_layers`](Self::num_layers).
    pub fn forward_with_layers(
        &self,
        x: Tensor<4>,
        layer_ids: &[usize],
    ) -> crate::Result<(Tensor<4>, Vec<Tensor<4>>)> {
        self.check_layer_ids(layer_ids)?;
        Ok(self.run(x, layer_ids, self.model.len() - 1))
    }

    fn run(&self, x: Tensor<4>, layer_ids: &[usize], last: usize) -> (Tensor<4>, Vec<Tensor<4>>) {
        let mut slots: Vec<Option<Tensor<4>>> = vec![None; layer_ids.len()];
        let mut h = x;
        for (i, layer) in self.model.iter().enumerate().take(last + 1) {
            h = layer.forward(h);
            // The reference's ReLUs are in place (`nn.ReLU(True)`): a feature kept at the entry
            // just before a ReLU is overwritten by the ReLU once the forward runs through it.
            let in_place = matches!(layer, Layer::Relu(_));
            for (slot, &id) in slots.iter_mut().zip(layer_ids) {
                if id == i || (in_place && id + 1 == i) {
                    *slot = Some(h.clone());
                }
            }
        }
        // Every id is ≤ last and was checked to be in range, so every slot is filled.
        (h, slots.into_iter().flatten().collect())
    }

    /// The loader [`load_pytorch`](Self::load_pytorch) uses for `path` (remaps in the
    /// [module docs](self)); extend it (e.g. [`WeightsLoader::with_top_level_key`], a prefix
    /// remap) for checkpoints that wrap the `state_dict`, then call [`WeightsLoader::load`].
    ///
    /// # Errors
    /// None at present; reserved for loader construction failures.
    pub fn pytorch_loader(&self, path: impl AsRef<Path>) -> crate::Result<WeightsLoader> {
        pytorch_loader("model", &self.model, path.as_ref())
    }

    /// Writes the generator as a safetensors file with PyTorch's keys (CycleGAN's / CUT's
    /// `state_dict` names: `model.1.weight`, `model.10.conv_block.1.weight`, …) and its
    /// configuration in the header ([`GENERATOR_METADATA`]), plus `metadata`; written atomically.
    /// [`load_safetensors`](Self::load_safetensors) rebuilds it from the file alone, and
    /// PyTorch's `load_state_dict` reads it into the reference network.
    ///
    /// ```
    /// use burn::tensor::{Device, Tensor};
    /// use nightgen_gan::{ResnetGenerator, ResnetGeneratorConfig};
    ///
    /// let device = Device::default();
    /// let cfg = ResnetGeneratorConfig::cyclegan().with_ngf(2).with_n_blocks(1);
    /// let g = cfg.init(&device);
    /// let dir = std::env::temp_dir().join(format!("nv-gen-doc-{}", std::process::id()));
    /// let path = dir.join("g.safetensors");
    /// g.save_safetensors(&cfg, &path, &[("trained_by", "doctest")])?;
    /// let back = ResnetGenerator::load_safetensors(&path, &device)?;
    /// let x = Tensor::<4>::ones([1, 3, 8, 8], &device).mul_scalar(0.5);
    /// assert_eq!(back.forward(x.clone()).into_data(), g.forward(x).into_data());
    /// # std::fs::remove_dir_all(dir).ok();
    /// # Ok::<(), nightgen_gan::GanError>(())
    /// ```
    ///
    /// # Errors
    /// [`GanError::Config`] when `config` does not describe this generator (another layer count
    /// or channel count); [`GanError::Core`] for the file.
    pub fn save_safetensors(
        &self,
        config: &ResnetGeneratorConfig,
        path: impl AsRef<Path>,
        metadata: &[(&str, &str)],
    ) -> crate::Result<()> {
        let want = config.try_init(&Device::default())?;
        if want.model.len() != self.model.len()
            || want.layer_channels != self.layer_channels
            || (want.input_nc, want.output_nc) != (self.input_nc, self.output_nc)
        {
            return Err(GanError::config(
                "config",
                "does not describe this generator (layers or channels differ)",
            ));
        }
        Ok(nightvision_core::weights::save_with_config(
            self,
            path,
            GENERATOR_METADATA,
            config,
            metadata,
        )?)
    }

    /// Rebuilds a generator from a file written by [`save_safetensors`](Self::save_safetensors):
    /// the configuration from its header, the weights loaded strictly.
    ///
    /// # Errors
    /// [`GanError::Core`] for an unreadable file, a header without a configuration under
    /// [`GENERATOR_METADATA`], or weights that do not match it; [`GanError::Config`] for an
    /// invalid stored configuration.
    pub fn load_safetensors(path: impl AsRef<Path>, device: &Device) -> crate::Result<Self> {
        let path = path.as_ref();
        let cfg: ResnetGeneratorConfig =
            nightvision_core::weights::read_safetensors_config(path, GENERATOR_METADATA)?;
        let mut g = cfg.try_init(device)?;
        g.load_pytorch(path)?;
        Ok(g)
    }

    /// Loads a CycleGAN / CUT / gandtr generator `state_dict` (`.pth`, e.g. `latest_net_G_A.pth`,
    /// or a safetensors copy with the same keys), strictly.
    ///
    /// # Errors
    /// [`GanError::Core`] for a missing or unreadable file, or keys/shapes that do not match this
    /// configuration (the error lists them).
    pub fn load_pytorch(&mut self, path: impl AsRef<Path>) -> crate::Result<LoadReport> {
        let path = path.as_ref();
        Ok(self.pytorch_loader(path)?.load(self, path)?)
    }
}

/// Translates images with a generator: maps `[0, 1]` to `[-1, 1]`, pads the bottom and right by
/// reflection to multiples of 4 (the generator's two stride-2 stages), runs the generator, crops
/// back and maps to `[0, 1]` (`(y + 1) / 2`, as CycleGAN's `tensor2im`).
///
/// # Shapes
/// - images: `[batch, input_nc, height, width]` in `[0, 1]`, `height, width ≥ 5`
/// - output: `[batch, output_nc, height, width]` in `[0, 1]`
///
/// # Errors
/// [`GanError::ShapeMismatch`] when the channel count is not the generator's `input_nc`,
/// [`GanError::InvalidInput`] when a side is shorter than 5 pixels (the padded image must reach 8
/// for the residual blocks' reflection padding).
pub fn translate_images(
    generator: &ResnetGenerator,
    images: Tensor<4>,
) -> crate::Result<Tensor<4>> {
    let [b, c, h, w] = images.dims();
    if c != generator.input_nc {
        return Err(GanError::ShapeMismatch {
            what: "images [batch, channels, height, width]",
            expected: vec![b, generator.input_nc, h, w],
            got: vec![b, c, h, w],
        });
    }
    if h < MIN_TRANSLATE_SIDE || w < MIN_TRANSLATE_SIDE {
        return Err(GanError::InvalidInput {
            what: "images",
            reason: format!(
                "{h}×{w} is too small: both sides must be at least {MIN_TRANSLATE_SIDE} pixels"
            ),
        });
    }
    let (ph, pw) = ((4 - h % 4) % 4, (4 - w % 4) % 4);
    let x = images.mul_scalar(2.0).sub_scalar(1.0);
    let x = if ph + pw > 0 {
        x.pad([(0, ph), (0, pw)], PadMode::Reflect)
    } else {
        x
    };
    let y = generator.forward(x);
    let y = if ph + pw > 0 {
        y.slice([0..b, 0..generator.output_nc, 0..h, 0..w])
    } else {
        y
    };
    Ok(y.add_scalar(1.0).mul_scalar(0.5))
}

/// The smallest image side [`translate_images`] accepts.
pub const MIN_TRANSLATE_SIDE: usize = 5;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_indices_follow_the_reference_sequential() {
        let device = Device::default();
        let g = ResnetGeneratorConfig::new().with_ngf(2).init(&device);
        assert_eq!(g.num_layers(), 28);
        let names: Vec<&str> = g.model.iter().map(Layer::variant_name).collect();
        assert_eq!(
            &names[..4],
            ["ReflectionPad", "Conv", "InstanceNorm", "Relu"]
        );
        assert_eq!(names[4], "Conv");
        assert_eq!(names[10], "ResnetBlock");
        assert_eq!(names[18], "ResnetBlock");
        assert_eq!(names[19], "ConvTranspose");
        assert_eq!(&names[25..], ["ReflectionPad", "Conv", "Tanh"]);
        let cut = ResnetGeneratorConfig::cut().with_ngf(2).init(&device);
        let names: Vec<&str> = cut.model.iter().map(Layer::variant_name).collect();
        assert_eq!(cut.num_layers(), 32);
        assert_eq!(names[7], "Downsample");
        assert_eq!(names[11], "Downsample");
        assert_eq!(names[12], "ResnetBlock");
        assert_eq!(names[21], "Upsample");
        assert_eq!(names[25], "Upsample");
        let six = ResnetGeneratorConfig::new()
            .with_ngf(2)
            .with_n_blocks(6)
            .init(&device);
        assert_eq!(six.num_layers(), 25);
        assert_eq!(six.layer_channels[12], 8);
        assert_eq!(six.layer_channels[0], 3);
    }

    #[test]
    fn batch_norm_convolutions_have_no_bias() {
        let device = Device::default();
        let g = ResnetGeneratorConfig::gandtr_hedngan()
            .with_ngf(2)
            .with_n_blocks(1)
            .init(&device);
        let biases: Vec<bool> = g
            .model
            .iter()
            .filter_map(|l| match l {
                Layer::Conv(c) => Some(c.bias.is_some()),
                Layer::ConvTranspose(c) => Some(c.bias.is_some()),
                _ => None,
            })
            .collect();
        // 7×7, two down, two up: no bias; the output 7×7: bias.
        assert_eq!(biases, [false, false, false, false, false, true]);
        let Layer::ResnetBlock(block) = &g.model[10] else {
            panic!("index 10 is not a block");
        };
        let Layer::Conv(c) = &block.conv_block[1] else {
            panic!("conv_block.1 is not a conv");
        };
        assert!(c.bias.is_none());
    }

    #[test]
    fn invalid_configs_and_inputs_are_errors() {
        let device = Device::default();
        let err = ResnetGeneratorConfig::new().with_ngf(0).try_init(&device);
        assert!(matches!(err, Err(GanError::Config { name: "ngf", .. })));
        let g = ResnetGeneratorConfig::new()
            .with_ngf(2)
            .with_n_blocks(1)
            .init(&device);
        let x = Tensor::<4>::zeros([1, 3, 8, 8], &device);
        assert!(matches!(
            g.forward_layers(x.clone(), &[3, 20]),
            Err(GanError::InvalidInput { .. })
        ));
        assert!(g.forward_layers(x, &[]).unwrap().is_empty());
        let small = Tensor::<4>::zeros([1, 3, 4, 9], &device);
        assert!(matches!(
            translate_images(&g, small),
            Err(GanError::InvalidInput { .. })
        ));
        let gray = Tensor::<4>::zeros([1, 1, 8, 8], &device);
        assert!(matches!(
            translate_images(&g, gray),
            Err(GanError::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn blur_kernels_are_the_binomial_filters() {
        let device = Device::default();
        let k3 = blur_kernel(3, 1, 1.0, &device)
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap();
        let want3 = [1., 2., 1., 2., 4., 2., 1., 2., 1.].map(|v: f32| v / 16.0);
        for (a, b) in k3.iter().zip(want3) {
            assert!((a - b).abs() < 1e-7);
        }
        let k4 = blur_kernel(4, 2, 4.0, &device);
        assert_eq!(k4.dims(), [2, 1, 4, 4]);
        let s: f32 = k4.sum().into_scalar();
        assert!(
            (s - 8.0).abs() < 1e-5,
            "two channels of a kernel summing to 4"
        );
    }

    #[test]
    fn antialiased_resampling_shapes() {
        let device = Device::default();
        let x = Tensor::<4>::ones([1, 2, 7, 6], &device);
        let d = BlurDownsample { channels: 2 }.forward(x.clone());
        assert_eq!(d.dims(), [1, 2, 4, 3]);
        // A constant image stays constant (the kernels sum to 1, reflection keeps the value).
        let dev: f32 = d.sub_scalar(1.0).abs().max().into_scalar();
        assert!(dev < 1e-6);
        let u = BlurUpsample { channels: 2 }.forward(x);
        assert_eq!(u.dims(), [1, 2, 14, 12]);
        let dev: f32 = u.sub_scalar(1.0).abs().max().into_scalar();
        assert!(dev < 1e-6);
    }
}
