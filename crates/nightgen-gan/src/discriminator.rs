//! The PatchGAN discriminator (`NLayerDiscriminator`, `netD basic`): docs/PAPERS.md A.2, B.1,
//! docs/PAPERS.md protocols 3.1.
//!
//! With `n_layers = 3`, `ndf = 64`, `kw = 4`, `padw = 1` (the 70×70 PatchGAN):
//!
//! ```text
//! 0 Conv4 s2 (in→64, bias)   1 LeakyReLU(0.2)
//! 2 Conv4 s2 (64→128)        3 Norm   4 LeakyReLU
//! 5 Conv4 s2 (128→256)       6 Norm   7 LeakyReLU
//! 8 Conv4 s1 (256→512)       9 Norm  10 LeakyReLU
//! 11 Conv4 s1 (512→1, bias)                            → logits map, no sigmoid
//! ```
//!
//! Channel multipliers are `min(2ⁿ, 8)`. The middle convolutions have a bias only with instance
//! norm. With CUT's anti-aliasing (docs/PAPERS.md B.1, NEG-CUT default) each stride-2 convolution
//! becomes a stride-1 convolution followed (after its norm and LeakyReLU) by a blur
//! [`BlurDownsample`], which shifts the indices as in the reference.
//!
//! Parameter names follow the reference `nn.Sequential` (`model.<index>.weight`), exactly as for
//! the [generator](crate::generator): a CycleGAN / CUT `latest_net_D_A.pth` loads with
//! [`NLayerDiscriminator::load_pytorch`] and no key renaming.
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use nightgen_gan::NLayerDiscriminatorConfig;
//!
//! let device = Device::default();
//! let d = NLayerDiscriminatorConfig::new().with_ndf(4).try_init(&device)?;
//! let logits = d.forward(Tensor::<4>::zeros([2, 3, 64, 64], &device));
//! assert_eq!(logits.dims(), [2, 1, 6, 6]);
//! # Ok::<(), nightgen_gan::GanError>(())
//! ```

use std::path::Path;

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use nightvision_core::weights::{LoadReport, WeightsLoader};

use crate::GanError;
use crate::generator::{BlurDownsample, Layer, NormKind, pytorch_loader};
use crate::init::{InitConfig, init_weights};

/// Configuration of [`NLayerDiscriminator`]. The defaults are CycleGAN's `basic` PatchGAN (ndf 64,
/// 3 layers, instance norm, no anti-aliasing, init N(0, 0.02)).
#[derive(Config, Debug)]
pub struct NLayerDiscriminatorConfig {
    /// Input channels.
    #[config(default = 3)]
    pub input_nc: usize,
    /// Filters of the first convolution.
    #[config(default = 64)]
    pub ndf: usize,
    /// Number of stride-2 stages (3: the 70×70 PatchGAN).
    #[config(default = 3)]
    pub n_layers: usize,
    /// The normalisation layer.
    #[config(default = "NormKind::Instance")]
    pub norm: NormKind,
    /// CUT's anti-aliased downsampling (CUT / NEG-CUT default, docs/PAPERS.md B.1).
    #[config(default = false)]
    pub antialias: bool,
    /// Weight initialisation applied by [`NLayerDiscriminatorConfig::init`].
    #[config(default = "InitConfig::cyclegan()")]
    pub init_scheme: InitConfig,
    /// Seed of the weight initialisation.
    #[config(default = 0)]
    pub init_seed: u64,
}

/// Kernel size `kw` of every convolution.
const KW: usize = 4;
/// Padding `padw` of every convolution.
const PADW: usize = 1;

impl NLayerDiscriminatorConfig {
    /// CUT / NEG-CUT: anti-aliased, Xavier-normal init with gain 0.02 (docs/PAPERS.md B.1).
    pub fn cut() -> Self {
        Self::new()
            .with_antialias(true)
            .with_init_scheme(InitConfig::cut())
    }

    /// gandtr's HEDGAN / HEDNGAN: batch norm, `kaiming_p2p` (docs/PAPERS.md A.2).
    pub fn gandtr_hedngan() -> Self {
        Self::new()
            .with_norm(NormKind::Batch)
            .with_init_scheme(InitConfig::gandtr_kaiming())
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`GanError::Config`] when `input_nc` or `ndf` is zero or the init gain is invalid.
    pub fn validate(&self) -> crate::Result<()> {
        for (name, v) in [("input_nc", self.input_nc), ("ndf", self.ndf)] {
            if v == 0 {
                return Err(GanError::Config {
                    name,
                    reason: "must be at least 1".into(),
                });
            }
        }
        self.init_scheme.validate()
    }

    /// Builds and initialises the discriminator.
    ///
    /// # Panics
    /// When [`validate`](Self::validate) fails; use [`try_init`](Self::try_init) for user input.
    pub fn init(&self, device: &Device) -> NLayerDiscriminator {
        match self.try_init(device) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        }
    }

    /// Validates, builds and initialises the discriminator.
    ///
    /// # Errors
    /// See [`validate`](Self::validate).
    pub fn try_init(&self, device: &Device) -> crate::Result<NLayerDiscriminator> {
        self.validate()?;
        let norm = self.norm;
        let bias = norm.conv_bias();
        let ndf = self.ndf;
        let mut model = Vec::new();
        let stride = if self.antialias { 1 } else { 2 };
        model.push(Layer::conv(
            [self.input_nc, ndf],
            KW,
            stride,
            PADW,
            true,
            device,
        ));
        model.push(Layer::leaky_relu());
        if self.antialias {
            model.push(Layer::Downsample(BlurDownsample { channels: ndf }));
        }
        let mut mult = 1;
        for n in 1..self.n_layers {
            let prev = mult;
            mult = (1 << n.min(3)).min(8);
            model.push(Layer::conv(
                [ndf * prev, ndf * mult],
                KW,
                stride,
                PADW,
                bias,
                device,
            ));
            model.push(norm.layer(ndf * mult, device));
            model.push(Layer::leaky_relu());
            if self.antialias {
                model.push(Layer::Downsample(BlurDownsample {
                    channels: ndf * mult,
                }));
            }
        }
        let prev = mult;
        mult = (1 << self.n_layers.min(3)).min(8);
        model.push(Layer::conv(
            [ndf * prev, ndf * mult],
            KW,
            1,
            PADW,
            bias,
            device,
        ));
        model.push(norm.layer(ndf * mult, device));
        model.push(Layer::leaky_relu());
        model.push(Layer::conv([ndf * mult, 1], KW, 1, PADW, true, device));
        let d = NLayerDiscriminator { model };
        Ok(init_weights(d, self.init_scheme, self.init_seed))
    }
}

/// The PatchGAN discriminator (see the [module docs](self)).
#[derive(Module, Debug)]
pub struct NLayerDiscriminator {
    /// The reference `nn.Sequential`, one entry per PyTorch index.
    pub model: Vec<Layer>,
}

impl NLayerDiscriminator {
    /// The patch logits (no sigmoid; LSGAN compares them with 1 / 0).
    ///
    /// # Shapes
    /// - input: `[batch, input_nc, height, width]` in `[-1, 1]`
    /// - output: `[batch, 1, h', w']`; for `n_layers = 3` without anti-aliasing
    ///   `h' = ⌊h/8⌋ - 2` for `h` divisible by 8 (256 → 30; 64 → 6)
    ///
    /// # Panics
    /// When the input is too small for the convolutions (fewer than 1 output pixel) or, with
    /// anti-aliasing, for a reflection padding.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.model.iter().fold(x, |h, layer| layer.forward(h))
    }

    /// The loader [`load_pytorch`](Self::load_pytorch) uses for `path` (same remaps as the
    /// [generator](crate::generator)).
    ///
    /// # Errors
    /// None at present; reserved for loader construction failures.
    pub fn pytorch_loader(&self, path: impl AsRef<Path>) -> crate::Result<WeightsLoader> {
        pytorch_loader("model", &self.model, path.as_ref())
    }

    /// Loads a CycleGAN / CUT / gandtr discriminator `state_dict` (`latest_net_D_A.pth`, or a
    /// safetensors copy), strictly.
    ///
    /// # Errors
    /// [`GanError::Core`] for a missing or unreadable file or mismatched keys / shapes.
    pub fn load_pytorch(&mut self, path: impl AsRef<Path>) -> crate::Result<LoadReport> {
        let path = path.as_ref();
        Ok(self.pytorch_loader(path)?.load(self, path)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 3-layer PatchGAN's entries with `norm` at the norm's places.
    fn patchgan_70_layout(norm: &'static str) -> Vec<&'static str> {
        let mut names = vec!["Conv", "LeakyRelu"];
        for _ in 0..3 {
            names.extend(["Conv", norm, "LeakyRelu"]);
        }
        names.push("Conv");
        names
    }

    #[test]
    fn patchgan_70_layout_and_output_size() {
        let device = Device::default();
        let d = NLayerDiscriminatorConfig::new().with_ndf(2).init(&device);
        let names: Vec<&str> = d.model.iter().map(Layer::variant_name).collect();
        assert_eq!(names, patchgan_70_layout("InstanceNorm"));
        let y = d.forward(Tensor::zeros([1, 3, 256, 256], &device));
        assert_eq!(y.dims(), [1, 1, 30, 30]);
        let cut = NLayerDiscriminatorConfig::cut().with_ndf(2).init(&device);
        assert_eq!(cut.model.len(), 15);
        assert_eq!(cut.model[2].variant_name(), "Downsample");
        assert_eq!(cut.model[14].variant_name(), "Conv");
    }

    #[test]
    fn no_norm_keeps_pytorch_indices_and_drops_inner_biases() {
        // CycleGAN's `--norm none`: `Identity` where the norm was (so `model.<i>` keys keep
        // their indices) and `use_bias = False` in the inner convolutions; the first and the
        // last convolution keep their bias.
        let device = Device::default();
        let d = NLayerDiscriminatorConfig::new()
            .with_ndf(2)
            .with_norm(NormKind::None)
            .init(&device);
        let names: Vec<&str> = d.model.iter().map(Layer::variant_name).collect();
        assert_eq!(names, patchgan_70_layout("Identity"));
        let biases: Vec<bool> = d
            .model
            .iter()
            .filter_map(|l| match l {
                Layer::Conv(c) => Some(c.bias.is_some()),
                _ => None,
            })
            .collect();
        assert_eq!(biases, [true, false, false, false, true]);
        let y = d.forward(Tensor::ones([1, 3, 64, 64], &device));
        assert_eq!(y.dims(), [1, 1, 6, 6]);
    }

    #[test]
    fn channel_multipliers_saturate_at_eight() {
        let device = Device::default();
        let d = NLayerDiscriminatorConfig::new()
            .with_ndf(1)
            .with_n_layers(5)
            .init(&device);
        let outs: Vec<usize> = d
            .model
            .iter()
            .filter_map(|l| match l {
                Layer::Conv(c) => Some(c.weight.dims()[0]),
                _ => None,
            })
            .collect();
        assert_eq!(outs, [1, 2, 4, 8, 8, 8, 1]);
    }

    #[test]
    fn zero_ndf_is_rejected() {
        let r = NLayerDiscriminatorConfig::new()
            .with_ndf(0)
            .try_init(&Device::default());
        assert!(matches!(r, Err(GanError::Config { name: "ndf", .. })));
    }
}
