//! The darkening module D of Similarity Min-Max (docs/PAPERS.md C.1).
//!
//! A Zero-DCE-style curve estimator at full resolution: eight depthwise-separable blocks
//! ([`CsdnTem`]) read the image and a one-channel exposure map and predict, per pixel and
//! channel, a curve parameter `A = tanh(·) ∈ [-1, 1]` and a scale
//! `B = sigmoid(·)·(1 − 0.95) + 0.95 ∈ [0.95, 1]`. The image is then mapped through eight
//! quadratic curves:
//!
//! ```text
//! x = I·B ;  repeat 8×: x = x + A·(x² − x) ;  D(I, E) = x / B
//! ```
//!
//! Derived from `darkening/model.py::enhance_net_nopool_v2` of
//! <https://github.com/Red-Fairy/ZeroShotDayNightDA> (the VPR copy `zero_model.py::
//! enhance_net_nopool_m4` is the same network), with `scale_factor = 1` and `encode_dim = 1` (the
//! raw exposure map is the fourth input channel), as every released configuration uses.
//!
//! ⚠ The paper writes `D(I) = g⁻¹(f(g(I, B), A), B)` with `g(x, β) = x / β`; the code multiplies
//! by `B` first and divides at the end (`g(x, β) = x·β`). The two are the same family up to
//! `β ↔ 1/β`; we follow the code, so released checkpoints give the same images.

use nightvision_core::kernels::conv2d;
use std::path::Path;

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::store::pytorch::PytorchReader;
use burn::store::pytorch_reader::DType as TorchDType;
use burn::tensor::activation::{relu, sigmoid, tanh};
use burn::tensor::{Device, Tensor, TensorData};
use nightvision_core::CoreError;
use nightvision_core::weights::{LoadReport, WeightsLoader};

use crate::DarkeningError;

/// Channels of the image input (RGB).
const IMAGE_CHANNELS: usize = 3;
/// Channels of the exposure encoding (`encode_dim = 1`: the raw exposure map).
const ENCODE_DIM: usize = 1;

/// The non-parameter buffers a reference `state_dict` carries; [`DarkeningNet::load_pytorch`]
/// checks them against the module's configuration instead of loading them.
pub const CHECKPOINT_BUFFERS: [&str; 3] = ["down_scale", "curve_round", "encode_dim"];

/// Configuration of a [`CsdnTem`] block.
#[derive(Config, Debug)]
pub struct CsdnTemConfig {
    /// Input channels.
    pub channels_in: usize,
    /// Output channels.
    pub channels_out: usize,
}

/// A depthwise-separable convolution (`CSDN_Tem` in the reference): a depthwise 3×3 convolution
/// (`groups = channels_in`, padding 1, bias) followed by a pointwise 1×1 convolution (bias).
#[derive(Module, Debug)]
pub struct CsdnTem {
    /// Depthwise 3×3 convolution, weight `[channels_in, 1, 3, 3]`.
    pub depth_conv: Conv2d,
    /// Pointwise 1×1 convolution, weight `[channels_out, channels_in, 1, 1]`.
    pub point_conv: Conv2d,
}

impl CsdnTemConfig {
    /// Builds the block with burn's default initialisers (PyTorch's `Conv2d` default scheme).
    pub fn init(&self, device: &Device) -> CsdnTem {
        let c = self.channels_in;
        CsdnTem {
            depth_conv: Conv2dConfig::new([c, c], [3, 3])
                .with_groups(c)
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            point_conv: Conv2dConfig::new([c, self.channels_out], [1, 1]).init(device),
        }
    }
}

impl CsdnTem {
    /// # Shapes
    /// - `x`: `[batch, channels_in, height, width]`
    /// - output: `[batch, channels_out, height, width]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv2d(&self.point_conv, conv2d(&self.depth_conv, x))
    }
}

/// Configuration of the darkening network [`DarkeningNet`] (defaults: the reference's).
#[derive(Config, Debug)]
pub struct DarkeningNetConfig {
    /// Width of the hidden blocks (`number_f`, 64).
    #[config(default = 64)]
    pub channels: usize,
    /// Number of quadratic curve iterations (`curve_round`, 8).
    #[config(default = 8)]
    pub iterations: usize,
    /// Lower bound of the scale `B` (`down_scale`, 0.95): `B ∈ [down_scale, 1]`.
    #[config(default = 0.95)]
    pub down_scale: f64,
}

impl DarkeningNetConfig {
    /// Checks the configuration.
    ///
    /// # Errors
    /// [`DarkeningError::Config`] for zero channels or a `down_scale` outside `(0, 1]`.
    pub fn validate(&self) -> crate::Result<()> {
        if self.channels == 0 {
            return Err(DarkeningError::config("channels", "must be positive"));
        }
        if !(self.down_scale > 0.0 && self.down_scale <= 1.0) {
            return Err(DarkeningError::config(
                "down_scale",
                format!("{} is not in (0, 1]", self.down_scale),
            ));
        }
        Ok(())
    }

    /// Builds the network with burn's default (PyTorch-like) initialisers, as the reference
    /// trains it (docs/PAPERS.md C.1: no explicit weight init). Call [`validate`](Self::validate)
    /// first for user-given values.
    pub fn init(&self, device: &Device) -> DarkeningNet {
        let f = self.channels;
        let block = |cin, cout| CsdnTemConfig::new(cin, cout).init(device);
        DarkeningNet {
            e_conv0: block(IMAGE_CHANNELS + ENCODE_DIM, f),
            e_conv1: block(f, f),
            e_conv2: block(f, f),
            e_conv3: block(f, f),
            e_conv4: block(f, f),
            e_conv5: block(2 * f, f),
            e_conv6: block(2 * f, f),
            e_conv7: block(2 * f, 2 * IMAGE_CHANNELS),
            iterations: self.iterations,
            down_scale: self.down_scale,
        }
    }

    /// [`init`](Self::init) with every weight and bias drawn from `rng` with the same
    /// distribution (PyTorch's `Conv2d` default, `U(−1/√fan_in, 1/√fan_in)`), so that a
    /// training run is reproducible across processes (`init` draws from the device's generator).
    ///
    /// ```
    /// use burn::tensor::Device;
    /// use darkening_minmax::DarkeningNetConfig;
    /// use nightvision_core::rng::seeded;
    ///
    /// let device = Device::default();
    /// let cfg = DarkeningNetConfig::new().with_channels(4);
    /// let a = cfg.init_with_rng(&device, &mut seeded(1));
    /// let b = cfg.init_with_rng(&device, &mut seeded(1));
    /// let w = |n: &darkening_minmax::DarkeningNet| n.e_conv0.point_conv.weight.val().into_data();
    /// assert_eq!(w(&a), w(&b));
    /// ```
    pub fn init_with_rng<R: nightvision_core::rng::Rng + ?Sized>(
        &self,
        device: &Device,
        rng: &mut R,
    ) -> DarkeningNet {
        let mut net = self.init(device);
        for block in [
            &mut net.e_conv0,
            &mut net.e_conv1,
            &mut net.e_conv2,
            &mut net.e_conv3,
            &mut net.e_conv4,
            &mut net.e_conv5,
            &mut net.e_conv6,
            &mut net.e_conv7,
        ] {
            redraw_conv(&mut block.depth_conv, rng, device);
            redraw_conv(&mut block.point_conv, rng, device);
        }
        net
    }
}

/// Redraws `conv`'s weight and bias from `rng`: `U(−1/√fan_in, 1/√fan_in)` with
/// `fan_in = in_channels / groups × kernel area` (PyTorch's and burn's `Conv2d` default).
fn redraw_conv<R: nightvision_core::rng::Rng + ?Sized>(
    conv: &mut Conv2d,
    rng: &mut R,
    device: &Device,
) {
    let dims = conv.weight.dims();
    let fan_in = (dims[1] * dims[2] * dims[3]).max(1);
    let bound = 1.0 / (fan_in as f32).sqrt();
    let mut draw =
        |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-bound..bound)).collect() };
    let n: usize = dims.iter().product();
    conv.weight = Param::from_tensor(Tensor::from_data(TensorData::new(draw(n), dims), device));
    if conv.bias.is_some() {
        conv.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(draw(dims[0]), [dims[0]]),
            device,
        )));
    }
}

/// The darkening network D (docs/PAPERS.md C.1). Field names are the reference's, so its
/// `state_dict` loads without remaps ([`DarkeningNet::load_pytorch`]).
#[derive(Module, Debug)]
pub struct DarkeningNet {
    /// Block 0: image + exposure (4 channels) → `channels`.
    pub e_conv0: CsdnTem,
    /// Block 1: `channels` → `channels`.
    pub e_conv1: CsdnTem,
    /// Block 2: `channels` → `channels`.
    pub e_conv2: CsdnTem,
    /// Block 3: `channels` → `channels`.
    pub e_conv3: CsdnTem,
    /// Block 4: `channels` → `channels`.
    pub e_conv4: CsdnTem,
    /// Block 5: `cat[x3, x4]` (2·`channels`) → `channels`.
    pub e_conv5: CsdnTem,
    /// Block 6: `cat[x2, x5]` (2·`channels`) → `channels`.
    pub e_conv6: CsdnTem,
    /// Block 7: `cat[x1, x6]` (2·`channels`) → 6 (three `A` and three `B` channels).
    pub e_conv7: CsdnTem,
    /// Curve iterations (`curve_round`).
    pub iterations: usize,
    /// Lower bound of `B` (`down_scale`).
    pub down_scale: f64,
}

/// The output of [`DarkeningNet::forward`], every tensor `[batch, 3, height, width]`.
#[derive(Debug, Clone)]
pub struct DarkeningOutput {
    /// The darkened image `D(I, E)`, in `[0, 1/B]` (`B ≥ down_scale`) for an input in `[0, 1]`.
    pub image: Tensor<4>,
    /// The curve parameter `A = tanh(x7[:, :3]) ∈ [-1, 1]` (the reference's `x_r`).
    pub alpha: Tensor<4>,
    /// The scale `B = sigmoid(x7[:, 3:]) · (1 − down_scale) + down_scale` (the reference's
    /// `down_scale` output).
    pub beta: Tensor<4>,
}

/// The curve mapping of C.1: `x = I·B; repeat n×: x = x + A·(x² − x); out = x / B`.
///
/// # Shapes
/// - `image`, `alpha`, `beta`: `[batch, 3, height, width]` (or broadcastable to it)
/// - output: `[batch, 3, height, width]`
pub fn apply_curves(
    image: Tensor<4>,
    alpha: Tensor<4>,
    beta: Tensor<4>,
    iterations: usize,
) -> Tensor<4> {
    let mut x = image * beta.clone();
    for _ in 0..iterations {
        x = x.clone() + alpha.clone() * (x.clone() * x.clone() - x);
    }
    x / beta
}

/// An exposure map `[batch, 1, height, width]` holding `exposures[b]` everywhere in image `b` (the
/// reference's `exp.view(-1, 1, 1, 1).expand(b, 1, h, w)`).
///
/// ```
/// use burn::tensor::Device;
/// let e = darkening_minmax::exposure_map(&[0.1, 0.3], [4, 5], &Device::default());
/// assert_eq!(e.dims(), [2, 1, 4, 5]);
/// ```
pub fn exposure_map(exposures: &[f32], size: [usize; 2], device: &Device) -> Tensor<4> {
    let b = exposures.len();
    Tensor::<4>::from_data(TensorData::new(exposures.to_vec(), [b, 1, 1, 1]), device)
        .expand([b, 1, size[0], size[1]])
}

/// The safetensors metadata key holding a saved network's [`DarkeningNetConfig`] (JSON;
/// [`DarkeningNet::save_safetensors`]).
pub const DARKENING_METADATA: &str = "nightvision.darkening";

impl DarkeningNet {
    /// Rebuilds a trained darkening network from its checkpoint folder alone: the configuration
    /// in the folder's `config.json` (field `"network"`, a [`DarkeningNetConfig`]) and the
    /// weights of its newest checkpoint ([`crate::train::NET_PART`]), as the pipelines write them.
    /// `dir` may also be a `.safetensors` file written by
    /// [`save_safetensors`](Self::save_safetensors) (the shipped models in `models/`).
    ///
    /// # Errors
    /// [`DarkeningError::Core`] for a folder without configuration or checkpoint, or with weights
    /// of another shape; [`DarkeningError::Config`] for an invalid stored configuration.
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> crate::Result<Self> {
        let path = dir.as_ref();
        if path.is_file() && nightvision_core::weights::is_safetensors(path) {
            return Self::load_safetensors(path, device);
        }
        let ckpt = nightvision_core::checkpoint::CheckpointDir::open(path)?;
        let cfg: DarkeningNetConfig = ckpt.config_field("network")?;
        cfg.validate()?;
        Ok(ckpt.load_latest(cfg.init(device), crate::train::NET_PART)?)
    }

    /// Writes the network as a safetensors file with the reference's `state_dict` keys
    /// (`e_conv0.depth_conv.weight`, …) and `config` in the header ([`DARKENING_METADATA`]),
    /// plus `metadata`; written atomically. [`load_safetensors`](Self::load_safetensors) rebuilds
    /// it from the file alone. The keys and shapes are those [`load_pytorch`](Self::load_pytorch)
    /// reads from the reference's `.pth` files, less the buffers [`CHECKPOINT_BUFFERS`] (which
    /// the header's configuration carries).
    ///
    /// ```
    /// use burn::tensor::{Device, Tensor};
    /// use darkening_minmax::{DarkeningNet, DarkeningNetConfig};
    ///
    /// let device = Device::default();
    /// let cfg = DarkeningNetConfig::new().with_channels(4);
    /// let d = cfg.init(&device);
    /// let dir = std::env::temp_dir().join(format!("nv-dark-doc-{}", std::process::id()));
    /// let path = dir.join("d.safetensors");
    /// d.save_safetensors(&cfg, &path, &[("trained_by", "doctest")])?;
    /// let back = DarkeningNet::load(&path, &device)?;
    /// let x = Tensor::<4>::ones([1, 3, 8, 8], &device).mul_scalar(0.5);
    /// assert_eq!(back.darken(x.clone(), &[0.2])?.into_data(), d.darken(x, &[0.2])?.into_data());
    /// # std::fs::remove_dir_all(dir).ok();
    /// # Ok::<(), darkening_minmax::DarkeningError>(())
    /// ```
    ///
    /// # Errors
    /// [`DarkeningError::Config`] when `config` does not describe this network (another width,
    /// curve count or `down_scale`); [`DarkeningError::Core`] for the file.
    pub fn save_safetensors(
        &self,
        config: &DarkeningNetConfig,
        path: impl AsRef<Path>,
        metadata: &[(&str, &str)],
    ) -> crate::Result<()> {
        config.validate()?;
        let width = self.e_conv1.point_conv.weight.dims()[0];
        if width != config.channels
            || self.iterations != config.iterations
            || (self.down_scale - config.down_scale).abs() > 1e-12
        {
            return Err(DarkeningError::config(
                "config",
                format!(
                    "does not describe this network (channels {width}, iterations {}, down_scale {})",
                    self.iterations, self.down_scale
                ),
            ));
        }
        Ok(nightvision_core::weights::save_with_config(
            self,
            path,
            DARKENING_METADATA,
            config,
            metadata,
        )?)
    }

    /// Rebuilds a network from a file written by [`save_safetensors`](Self::save_safetensors):
    /// the configuration from its header, the weights loaded strictly.
    ///
    /// # Errors
    /// [`DarkeningError::Core`] for an unreadable file, a header without a configuration under
    /// [`DARKENING_METADATA`], or weights that do not match it; [`DarkeningError::Config`] for an
    /// invalid stored configuration.
    pub fn load_safetensors(path: impl AsRef<Path>, device: &Device) -> crate::Result<Self> {
        let path = path.as_ref();
        let cfg: DarkeningNetConfig =
            nightvision_core::weights::read_safetensors_config(path, DARKENING_METADATA)?;
        cfg.validate()?;
        let mut d = cfg.init(device);
        d.load_pytorch(path)?;
        Ok(d)
    }

    /// Darkens `image` towards the exposure map `exposure` (docs/PAPERS.md C.1).
    ///
    /// # Shapes
    /// - `image`: `[batch, 3, height, width]`, RGB in `[0, 1]` (not normalised)
    /// - `exposure`: `[batch, 1, height, width]` (or `[batch, 1, 1, 1]`, broadcast), the target
    ///   mean brightness (training draws it from `U(0, 0.5)`; see [`exposure_map`])
    /// - output: [`DarkeningOutput`], every tensor `[batch, 3, height, width]`
    ///
    /// # Panics
    /// On shapes other than these (use [`DarkeningNet::try_forward`] for checked inputs).
    pub fn forward(&self, image: Tensor<4>, exposure: Tensor<4>) -> DarkeningOutput {
        let [b, _, h, w] = image.dims();
        let exposure = exposure.expand([b, 1, h, w]);
        let x0 = relu(
            self.e_conv0
                .forward(Tensor::cat(vec![image.clone(), exposure], 1)),
        );
        let x1 = relu(self.e_conv1.forward(x0));
        let x2 = relu(self.e_conv2.forward(x1.clone()));
        let x3 = relu(self.e_conv3.forward(x2.clone()));
        let x4 = relu(self.e_conv4.forward(x3.clone()));
        let x5 = relu(self.e_conv5.forward(Tensor::cat(vec![x3, x4], 1)));
        let x6 = relu(self.e_conv6.forward(Tensor::cat(vec![x2, x5], 1)));
        let x7 = self.e_conv7.forward(Tensor::cat(vec![x1, x6], 1)); // [B, 6, H, W]
        let alpha = tanh(x7.clone().narrow(1, 0, IMAGE_CHANNELS));
        let beta = sigmoid(x7.narrow(1, IMAGE_CHANNELS, IMAGE_CHANNELS))
            .mul_scalar(1.0 - self.down_scale)
            .add_scalar(self.down_scale);
        let out = apply_curves(image, alpha.clone(), beta.clone(), self.iterations);
        DarkeningOutput {
            image: out,
            alpha,
            beta,
        }
    }

    /// [`DarkeningNet::forward`] with checked shapes.
    ///
    /// # Errors
    /// [`DarkeningError::Shape`] when `image` is not `[B, 3, H, W]` with `H, W ≥ 1`, or
    /// `exposure` is neither `[B, 1, H, W]` nor `[B, 1, 1, 1]`.
    pub fn try_forward(
        &self,
        image: Tensor<4>,
        exposure: Tensor<4>,
    ) -> crate::Result<DarkeningOutput> {
        let [b, c, h, w] = image.dims();
        if c != IMAGE_CHANNELS || b == 0 || h == 0 || w == 0 {
            return Err(DarkeningError::shape(
                "image",
                "[B, 3, H, W] with B, H, W ≥ 1",
                &image.dims(),
            ));
        }
        let e = exposure.dims();
        if e != [b, 1, h, w] && e != [b, 1, 1, 1] {
            return Err(DarkeningError::shape(
                "exposure",
                format!("[{b}, 1, {h}, {w}] or [{b}, 1, 1, 1]"),
                &e,
            ));
        }
        Ok(self.forward(image, exposure))
    }

    /// Darkens `image` with one exposure value per image (the map is constant over the image).
    ///
    /// # Shapes
    /// - `image`: `[batch, 3, height, width]` in `[0, 1]` → output the same shape
    ///
    /// # Errors
    /// [`DarkeningError::Shape`] when `exposures.len()` differs from the batch size or the image
    /// is not `[B, 3, H, W]`.
    pub fn darken(&self, image: Tensor<4>, exposures: &[f32]) -> crate::Result<Tensor<4>> {
        let [b, _, h, w] = image.dims();
        if exposures.len() != b {
            return Err(DarkeningError::shape(
                "exposures",
                format!("[{b}] (one per image)"),
                &[exposures.len()],
            ));
        }
        let e = exposure_map(exposures, [h, w], &image.device());
        Ok(self.try_forward(image, e)?.image)
    }

    /// Loads a reference `state_dict` (`torch.save(DCE_net.state_dict())`, `.pth`) or a
    /// safetensors file with the same keys, strictly: every `e_conv{0..7}.{depth,point}_conv.
    /// {weight,bias}` must be present and no other key but the buffers [`CHECKPOINT_BUFFERS`].
    /// In a `.pth`, the buffers are checked against the module: `curve_round` must equal
    /// [`DarkeningNet::iterations`], `down_scale` [`DarkeningNet::down_scale`] (to 1e-6) and
    /// `encode_dim` 1 (other encodings are not implemented; their `e_conv0` has another shape).
    ///
    /// # Errors
    /// [`DarkeningError::CheckpointConfig`] for a buffer that disagrees with the module,
    /// [`DarkeningError::Core`] for a missing or unreadable file and missing, unused or wrongly
    /// shaped keys.
    pub fn load_pytorch(&mut self, path: impl AsRef<Path>) -> crate::Result<LoadReport> {
        let path = path.as_ref();
        if !nightvision_core::weights::is_safetensors(path) {
            std::fs::metadata(path).map_err(|e| CoreError::io(path, e))?;
            self.check_buffers(path)?;
        }
        let mut loader = WeightsLoader::new();
        for key in CHECKPOINT_BUFFERS {
            loader = loader.allow_unused_prefix(key);
        }
        let report = loader.load(self, path)?;
        Ok(report)
    }

    fn check_buffers(&self, path: &Path) -> crate::Result<()> {
        let reader = PytorchReader::new(path).map_err(|e| CoreError::WeightsRead {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let expected = [
            ("curve_round", self.iterations as f64, 0.0),
            ("down_scale", self.down_scale, 1e-6),
            ("encode_dim", ENCODE_DIM as f64, 0.0),
        ];
        for (key, want, tol) in expected {
            let Some(t) = reader.get(key) else { continue };
            let bytes = t.read().map_err(|e| CoreError::WeightsRead {
                path: path.to_path_buf(),
                message: format!("buffer {key}: {e}"),
            })?;
            let found = scalar_value(t.dtype(), &bytes).ok_or_else(|| CoreError::WeightsRead {
                path: path.to_path_buf(),
                message: format!("buffer {key}: not a numeric scalar ({:?})", t.dtype()),
            })?;
            if (found - want).abs() > tol {
                return Err(DarkeningError::CheckpointConfig {
                    path: path.to_path_buf(),
                    key,
                    expected: want,
                    found,
                });
            }
        }
        Ok(())
    }
}

/// The first element of a PyTorch tensor's native-endian bytes, as f64.
fn scalar_value(dtype: TorchDType, bytes: &[u8]) -> Option<f64> {
    fn first<const N: usize>(b: &[u8]) -> Option<[u8; N]> {
        b.get(..N)?.try_into().ok()
    }
    Some(match dtype {
        TorchDType::F64 => f64::from_ne_bytes(first(bytes)?),
        TorchDType::F32 => f64::from(f32::from_ne_bytes(first(bytes)?)),
        TorchDType::I64 => i64::from_ne_bytes(first(bytes)?) as f64,
        TorchDType::I32 => f64::from(i32::from_ne_bytes(first(bytes)?)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_validation() {
        let c = DarkeningNetConfig::new();
        assert_eq!((c.channels, c.iterations, c.down_scale), (64, 8, 0.95));
        assert!(c.validate().is_ok());
        assert!(matches!(
            c.clone().with_down_scale(0.0).validate(),
            Err(DarkeningError::Config {
                name: "down_scale",
                ..
            })
        ));
        assert!(matches!(
            c.with_channels(0).validate(),
            Err(DarkeningError::Config {
                name: "channels",
                ..
            })
        ));
    }

    #[test]
    fn parameter_shapes_follow_the_reference() {
        let device = Device::default();
        let net = DarkeningNetConfig::new().with_channels(8).init(&device);
        assert_eq!(net.e_conv0.depth_conv.weight.dims(), [4, 1, 3, 3]);
        assert_eq!(net.e_conv0.point_conv.weight.dims(), [8, 4, 1, 1]);
        assert_eq!(net.e_conv5.depth_conv.weight.dims(), [16, 1, 3, 3]);
        assert_eq!(net.e_conv7.point_conv.weight.dims(), [6, 16, 1, 1]);
        // 64 channels: 4·9+4 + 4·64+64, 4 × (64·9+64 + 64·64+64), 3 × (128·9+128 + 128·c+c).
        let full = DarkeningNetConfig::new().init(&device);
        let want = (36 + 4 + 256 + 64)
            + 4 * (576 + 64 + 4096 + 64)
            + 2 * (1152 + 128 + 8192 + 64)
            + (1152 + 128 + 768 + 6);
        assert_eq!(full.num_params(), want);
    }

    #[test]
    fn curves_closed_form() {
        // Scalar case: I = 0.6, A = 0.5, B = 0.96, two iterations, computed by hand in f64.
        let device = Device::default();
        let t = |v: f32| Tensor::<4>::full([1, 3, 1, 1], v, &device);
        let out: Vec<f32> = apply_curves(t(0.6), t(0.5), t(0.96), 2)
            .into_data()
            .try_into_vec_as()
            .unwrap();
        let mut x = 0.6f64 * 0.96;
        for _ in 0..2 {
            x += 0.5 * (x * x - x);
        }
        let want = (x / 0.96) as f32;
        assert!(
            out.iter().all(|v| (v - want).abs() < 1e-6),
            "{out:?} vs {want}"
        );
        // A = 0 leaves the image unchanged, whatever B is.
        let same: f32 = (apply_curves(t(0.3), t(0.0), t(0.97), 8) - t(0.3))
            .abs()
            .max()
            .into_scalar();
        assert!(same < 1e-7);
    }

    #[test]
    fn output_ranges_and_shapes() {
        let device = Device::default();
        device.seed(1);
        let net = DarkeningNetConfig::new().with_channels(8).init(&device);
        let image = Tensor::<4>::random(
            [2, 3, 9, 11],
            burn::tensor::Distribution::Uniform(0.0, 1.0),
            &device,
        );
        let out = net.darken(image, &[0.1, 0.4]).unwrap();
        assert_eq!(out.dims(), [2, 3, 9, 11]);
        let o = net.forward(
            Tensor::<4>::ones([1, 3, 5, 5], &device),
            Tensor::<4>::zeros([1, 1, 1, 1], &device),
        );
        let amin: f32 = o.alpha.clone().min().into_scalar();
        let amax: f32 = o.alpha.max().into_scalar();
        let bmin: f32 = o.beta.clone().min().into_scalar();
        let bmax: f32 = o.beta.max().into_scalar();
        assert!((-1.0..=1.0).contains(&amin) && (-1.0..=1.0).contains(&amax));
        assert!(bmin >= 0.95 - 1e-6 && bmax <= 1.0 + 1e-6, "{bmin} {bmax}");
    }

    #[test]
    fn bad_inputs_are_errors() {
        let device = Device::default();
        let net = DarkeningNetConfig::new().with_channels(4).init(&device);
        let img = Tensor::<4>::zeros([2, 3, 4, 4], &device);
        assert!(matches!(
            net.darken(img.clone(), &[0.1]),
            Err(DarkeningError::Shape {
                what: "exposures",
                ..
            })
        ));
        assert!(matches!(
            net.try_forward(img.clone(), Tensor::zeros([2, 1, 4, 3], &device)),
            Err(DarkeningError::Shape {
                what: "exposure",
                ..
            })
        ));
        assert!(matches!(
            net.try_forward(
                Tensor::zeros([2, 1, 4, 4], &device),
                Tensor::zeros([2, 1, 4, 4], &device)
            ),
            Err(DarkeningError::Shape { what: "image", .. })
        ));
    }
}
