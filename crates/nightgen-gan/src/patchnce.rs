//! PatchNCE (CUT) and its learned-negatives variant (NEG-CUT).
//!
//! **CUT** (docs/PAPERS.md protocols 3.2; docs/PAPERS.md A.4 "CUT baseline", B.1; taesungp/contrastive-unpaired-translation
//! `networks.py::PatchSampleF`, `patchnce.py`, `cut_model.py::calculate_NCE_loss`):
//!
//! - [`PatchSampleF`] ([`PatchSampleFConfig`]): per encoder layer `l` a feature map `[B, C_l, H, W]`
//!   is flattened to `[B, HW, C_l]`; the same random positions ([`PatchIds`], sampled on the key
//!   side from a seeded RNG and reused on the query side) are taken from every image; an MLP
//!   `Linear(C_l, 256) → ReLU → Linear(256, 256)` projects them; each row is L2-normalised as
//!   `x / (‖x‖₂ + 1e-7)`. The MLPs are created **eagerly** from the list of layer channel counts
//!   (the reference creates them lazily at the first forward; the weights are identical in
//!   structure).
//! - [`PatchNceLoss`]: with `q` the query patches (from `G(x)`), `k` the key patches (from `x`,
//!   detached): `l_pos = ⟨q_i, k_i⟩`, `l_neg = q kᵀ` between the patches of one image with the
//!   diagonal set to −10, `logits = [l_pos, l_neg] / τ` (τ = 0.07), cross-entropy with target 0,
//!   reduction none. [`PatchNceLoss::forward_layers`] averages each layer's per-patch losses and
//!   then the layers, as `calculate_NCE_loss` does (λ_NCE is applied by the caller).
//!   `include_all_negatives_from_minibatch` is CUT's `batch_dim_for_bmm` switch: `false` (default,
//!   `batch_dim_for_bmm = batch_size`) keeps negatives within each image, `true`
//!   (`batch_dim_for_bmm = 1`) uses the patches of every image of the batch.
//!
//! **NEG-CUT** (docs/PAPERS.md B.1; `BinuxLiu/NEGCUT` = NEGCUT `models/negative_generator.py`,
//! `losses.py::LearnedPatchNCELoss`, `negcut_model.py`):
//!
//! - A momentum copy `F′` of `F` ([`PatchSampleF::ema_update`], decay
//!   [`NEGCUT_EMA_DECAY`] = 0.9 after each G step) is applied to **all** positions
//!   ([`PatchSampleF::forward_all`], NEGCUT's `num_patches = 0`): the MLP and the L2 norm act on
//!   every position's channel vector and the result is reshaped to `[B, 256, H, W]`.
//! - [`NegativeGenerator`]: the spatial mean of that map, repeated `K = 256` times, concatenated
//!   with `z ~ N(0, I_64)`, through `Linear(256 + 64, 256) → ReLU → Linear(256, 256)`, L2-normalised:
//!   `K` negatives per image and layer, `[B, K, 256]`.
//! - [`PatchNceLoss::forward_learned`]: `logits = [⟨q_i, k_i⟩, q_i·n_1 … q_i·n_K] / τ`, CE with
//!   target 0 (no diagonal mask; with `include_all_negatives_from_minibatch` every query sees the
//!   negatives of every image).
//! - [`negative_diversity_loss`]: `−mean |n[:, :K/2] − n[:, K/2:]|`, weight λ_MS = 1.
//!   The N step minimises `−NCE(q.detach(), k.detach(), n) + λ_MS · diversity`, the G/F step
//!   minimises `L_GAN + NCE(q, k, n)` with N frozen.
//!
//! **Gradient paths the reference has** (build them the same way): in the G step the negatives
//! are *not* detached, so the NCE gradient also reaches the generator's encoder through
//! `F′(feat_k) → N`; `F′`'s own parameters receive gradients that are never applied (the EMA
//! overwrites them), so they may be frozen.
//!
//! **Initialisation.** The reference MLPs are created lazily and then initialised by `init_net`
//! with the run's `init_type`/`init_gain` (CUT/NEG-CUT default xavier-normal, gain 0.02, biases
//! 0); NEGCUT's `define_N` calls `init_net(xavier, 1.0)` *before* the layers exist, so it has no
//! effect and N is also xavier 0.02 in practice. Both configs default to that
//! ([`Initializer::XavierNormal`] with gain 0.02, zero biases). The reference `F′` is an
//! independent random initialisation, not a copy of `F`.
//!
//! **PyTorch names.** The reference stores layer `i`'s MLP as `mlp_<i>` = `nn.Sequential(Linear,
//! ReLU, Linear)`, so its keys are `mlp_<i>.0.{weight,bias}` and `mlp_<i>.2.{weight,bias}` (the ReLU
//! at index 1 has none). Here the MLPs are `mlps: Vec<PatchMlp>` with fields `fc1`, `fc2`; the
//! remap is [`PYTORCH_KEY_REMAPS`]: `mlp_<i>.0.* → mlps.<i>.fc1.*`, `mlp_<i>.2.* → mlps.<i>.fc2.*`
//! (the same for `PatchSampleF` state dicts (`net_F`, `net_F_`) and `NegativeGenerator` ones
//! (`net_N`)). `Linear` weights are transposed by the loader.
//!
//! ```
//! use burn::tensor::{Device, Distribution, Tensor};
//! use nightgen_gan::patchnce::{PatchIds, PatchNceLossConfig, PatchSampleFConfig};
//! use nightvision_core::rng::seeded;
//!
//! let device = Device::default();
//! // Two layers of a (tiny) encoder: 8 channels at 6×6, 16 channels at 3×3; batch of 2.
//! let feat_k = vec![
//!     Tensor::<4>::random([2, 8, 6, 6], Distribution::Normal(0.0, 1.0), &device),
//!     Tensor::<4>::random([2, 16, 3, 3], Distribution::Normal(0.0, 1.0), &device),
//! ];
//! let feat_q: Vec<Tensor<4>> = feat_k.iter().map(|f| f.clone().mul_scalar(0.9)).collect();
//! let f = PatchSampleFConfig::new(vec![8, 16]).with_nc(32).init(&device);
//! // 5 random positions per layer (all 9 of the 3×3 layer would be used for num_patches ≥ 9).
//! let ids = PatchIds::sample(&feat_k, 5, &mut seeded(0));
//! let k = f.forward(&feat_k, &ids)?;
//! let q = f.forward(&feat_q, &ids)?; // the same positions on the query side
//! assert_eq!(k[0].dims(), [2, 5, 32]);
//! let nce = PatchNceLossConfig::new().init()?;
//! let loss: f32 = nce.forward_layers(&q, &k)?.into_scalar();
//! assert!(loss.is_finite() && loss > 0.0);
//! # Ok::<(), nightgen_gan::GanError>(())
//! ```

use std::path::Path;

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use nightvision_core::weights::{LoadReport, WeightsLoader};
use rand::Rng;
use rand::seq::SliceRandom;

use crate::GanError;

/// The EMA decay of NEG-CUT's momentum copy `F′` (`accumulate(netF_, netF, decay=0.9)`).
pub const NEGCUT_EMA_DECAY: f64 = 0.9;

/// The ε of the reference `Normalize(2)`: `x / (‖x‖₂ + 1e-7)`.
pub const L2_EPS: f64 = 1e-7;

/// Regex remaps from the reference PyTorch keys (`mlp_<i>.0.*`, `mlp_<i>.2.*`) to this crate's
/// module paths (`mlps.<i>.fc1.*`, `mlps.<i>.fc2.*`), for [`PatchSampleF`] and
/// [`NegativeGenerator`] state dicts; see the [module docs](self).
pub const PYTORCH_KEY_REMAPS: [(&str, &str); 2] = [
    (r"^mlp_([0-9]+)\.0\.(weight|bias)$", "mlps.$1.fc1.$2"),
    (r"^mlp_([0-9]+)\.2\.(weight|bias)$", "mlps.$1.fc2.$2"),
];

fn config_err(name: &'static str, reason: impl Into<String>) -> GanError {
    GanError::Config {
        name,
        reason: reason.into(),
    }
}

fn shape_err(what: &'static str, expected: &[usize], got: &[usize]) -> GanError {
    GanError::ShapeMismatch {
        what,
        expected: expected.to_vec(),
        got: got.to_vec(),
    }
}

/// The floor of `‖x‖₂²` under the square root in [`l2_normalize`]: far below any non-zero
/// feature's squared norm, it changes nothing where the reference is finite.
pub const L2_SQUARED_FLOOR: f64 = 1e-24;

/// `x / (‖x‖₂ + 1e-7)` along `dim` (the reference `Normalize(2)` on the channel axis).
///
/// The squared norm is floored at [`L2_SQUARED_FLOOR`] before the square root. The output is
/// the same as the reference's for every input (a zero vector still maps to 0), and so are the
/// gradients wherever the reference's are finite. At an all-zero vector (a patch whose ReLU
/// features are all 0, common in narrow networks) the reference's gradient is NaN (`d√s/ds` at 0
/// is infinite, times 0), and one such patch turns every weight NaN after one step; here it is
/// the finite `1 / (√floor + 1e-7)`, with no term through the norm.
///
/// # Shapes
/// - `x`: any; output: same shape
pub fn l2_normalize<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    let norm = x
        .clone()
        .powi_scalar(2)
        .sum_dim(dim)
        .clamp_min(L2_SQUARED_FLOOR)
        .sqrt()
        .add_scalar(L2_EPS);
    x / norm
}

/// The two-layer projection `Linear(d_in, nc) → ReLU → Linear(nc, nc)` (PyTorch `mlp_<i>.0`,
/// `mlp_<i>.2`).
#[derive(Module, Debug)]
pub struct PatchMlp {
    /// First linear layer (PyTorch `mlp_<i>.0`).
    pub fc1: Linear,
    /// Second linear layer (PyTorch `mlp_<i>.2`).
    pub fc2: Linear,
}

impl PatchMlp {
    fn new(d_in: usize, nc: usize, initializer: &Initializer, device: &Device) -> Self {
        let linear = |i: usize, o: usize| {
            let mut l = LinearConfig::new(i, o)
                .with_initializer(initializer.clone())
                .init(device);
            // `init_net` sets every Linear bias to 0.
            l.bias = Some(Initializer::Zeros.init([o], device));
            l
        };
        Self {
            fc1: linear(d_in, nc),
            fc2: linear(nc, nc),
        }
    }

    /// Applies the MLP to the last axis.
    ///
    /// # Shapes
    /// - input: `[..., d_in]`; output: `[..., nc]`
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.fc2.forward(relu(self.fc1.forward(x)))
    }

    fn d_in(&self) -> usize {
        self.fc1.weight.lazy_shape().dims::<2>()[0]
    }

    fn nc(&self) -> usize {
        self.fc2.weight.lazy_shape().dims::<2>()[1]
    }

    fn ema(self, online: &PatchMlp, decay: f64) -> Self {
        Self {
            fc1: ema_linear(self.fc1, &online.fc1, decay),
            fc2: ema_linear(self.fc2, &online.fc2, decay),
        }
    }
}

fn ema_tensor<const D: usize>(mine: Tensor<D>, online: Tensor<D>, decay: f64) -> Tensor<D> {
    let grad = mine.is_require_grad();
    // `par1.mul_(decay).add_(par2, alpha = 1 - decay)`.
    let v = (mine.detach().mul_scalar(decay) + online.detach().mul_scalar(1.0 - decay)).detach();
    if grad { v.require_grad() } else { v }
}

fn ema_param<const D: usize>(
    mine: Param<Tensor<D>>,
    online: &Param<Tensor<D>>,
    decay: f64,
) -> Param<Tensor<D>> {
    let o = online.val();
    mine.map(|t| ema_tensor(t, o, decay))
}

fn ema_linear(mine: Linear, online: &Linear, decay: f64) -> Linear {
    let bias = match (mine.bias, &online.bias) {
        (Some(b), Some(ob)) => Some(ema_param(b, ob, decay)),
        (b, _) => b,
    };
    Linear {
        weight: ema_param(mine.weight, &online.weight, decay),
        bias,
    }
}

fn load_mlps<M: Module>(module: &mut M, path: &Path) -> crate::Result<LoadReport> {
    Ok(WeightsLoader::new()
        .with_remaps(PYTORCH_KEY_REMAPS)
        .load(module, path)?)
}

/// The sampled positions of every layer: indices into the flattened `H·W` grid, the same for
/// every image of the batch (as in the reference).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PatchIds {
    /// One list of positions per layer.
    pub layers: Vec<Vec<usize>>,
}

impl PatchIds {
    /// Samples `num_patches` positions per layer: a random permutation of `0..H·W` (from `rng`)
    /// truncated to `min(num_patches, H·W)`, as the reference's `np.random.permutation`.
    /// `num_patches = 0` selects every position in order.
    ///
    /// # Shapes
    /// - `feats`: per layer `[batch, channels, height, width]` (only `height·width` is used)
    pub fn sample<R: Rng + ?Sized>(feats: &[Tensor<4>], num_patches: usize, rng: &mut R) -> Self {
        let positions: Vec<usize> = feats
            .iter()
            .map(|f| {
                let [_, _, h, w] = f.dims();
                h * w
            })
            .collect();
        Self::sample_positions(&positions, num_patches, rng)
    }

    /// As [`PatchIds::sample`], from the number of positions `H·W` of each layer.
    pub fn sample_positions<R: Rng + ?Sized>(
        positions: &[usize],
        num_patches: usize,
        rng: &mut R,
    ) -> Self {
        let layers = positions
            .iter()
            .map(|&n| {
                let mut ids: Vec<usize> = (0..n).collect();
                if num_patches > 0 {
                    ids.shuffle(rng);
                    ids.truncate(num_patches.min(n));
                }
                ids
            })
            .collect();
        Self { layers }
    }

    /// Every position of every layer, in order (the reference's `num_patches = 0`).
    ///
    /// # Shapes
    /// - `feats`: per layer `[batch, channels, height, width]`
    pub fn all(feats: &[Tensor<4>]) -> Self {
        Self {
            layers: feats
                .iter()
                .map(|f| {
                    let [_, _, h, w] = f.dims();
                    (0..h * w).collect()
                })
                .collect(),
        }
    }
}

/// Configuration of [`PatchSampleF`] (CUT's `netF = mlp_sample`).
#[derive(Config, Debug)]
pub struct PatchSampleFConfig {
    /// Channel count of each sampled encoder layer (CUT's `nce_layers`), in order.
    pub in_channels: Vec<usize>,
    /// Output width of the MLPs (`netF_nc`).
    #[config(default = 256)]
    pub nc: usize,
    /// Weight initialisation of the linear layers (biases are 0). Default: xavier-normal, gain
    /// 0.02 (CUT/NEG-CUT `init_type xavier`, `init_gain 0.02`).
    #[config(default = "Initializer::XavierNormal { gain: 0.02 }")]
    pub initializer: Initializer,
}

impl PatchSampleFConfig {
    /// Checks that there is at least one layer and that every width is positive.
    ///
    /// # Errors
    /// [`GanError::Config`] otherwise.
    pub fn validate(&self) -> crate::Result<()> {
        if self.in_channels.is_empty() {
            return Err(config_err("in_channels", "at least one layer is needed"));
        }
        if self.in_channels.contains(&0) {
            return Err(config_err("in_channels", "channel counts must be positive"));
        }
        if self.nc == 0 {
            return Err(config_err("nc", "must be positive"));
        }
        Ok(())
    }

    /// Builds the per-layer MLPs (eagerly, one per entry of `in_channels`).
    pub fn init(&self, device: &Device) -> PatchSampleF {
        PatchSampleF {
            mlps: self
                .in_channels
                .iter()
                .map(|&c| PatchMlp::new(c, self.nc, &self.initializer, device))
                .collect(),
        }
    }
}

/// CUT's patch sampler and projection head `F` (and NEG-CUT's momentum copy `F′`); see the
/// [module docs](self).
#[derive(Module, Debug)]
pub struct PatchSampleF {
    /// One MLP per layer (PyTorch `mlp_<i>`).
    pub mlps: Vec<PatchMlp>,
}

impl PatchSampleF {
    /// The number of layers.
    pub fn num_layers(&self) -> usize {
        self.mlps.len()
    }

    fn check_feats(&self, feats: &[Tensor<4>]) -> crate::Result<()> {
        if feats.len() != self.mlps.len() {
            return Err(shape_err(
                "number of feature layers",
                &[self.mlps.len()],
                &[feats.len()],
            ));
        }
        for (f, mlp) in feats.iter().zip(&self.mlps) {
            let dims = f.dims();
            if dims[1] != mlp.d_in() {
                return Err(shape_err(
                    "feature channels",
                    &[dims[0], mlp.d_in(), dims[2], dims[3]],
                    &dims,
                ));
            }
        }
        Ok(())
    }

    /// Projects the positions `ids` of every layer and L2-normalises them.
    ///
    /// # Shapes
    /// - `feats`: per layer `[batch, C_l, H_l, W_l]`
    /// - output: per layer `[batch, P_l, nc]` with `P_l = ids.layers[l].len()` (the reference's
    ///   `[batch·P_l, nc]`, image-major, is its reshape)
    ///
    /// # Errors
    /// [`GanError::ShapeMismatch`] for a wrong number of layers or channels;
    /// [`GanError::InvalidInput`] for an empty id list or an id `≥ H_l·W_l`.
    pub fn forward(&self, feats: &[Tensor<4>], ids: &PatchIds) -> crate::Result<Vec<Tensor<3>>> {
        self.check_feats(feats)?;
        if ids.layers.len() != feats.len() {
            return Err(shape_err(
                "number of patch-id layers",
                &[feats.len()],
                &[ids.layers.len()],
            ));
        }
        let mut out = Vec::with_capacity(feats.len());
        for ((feat, mlp), layer_ids) in feats.iter().zip(&self.mlps).zip(&ids.layers) {
            let [b, c, h, w] = feat.dims();
            if layer_ids.is_empty() {
                return Err(GanError::InvalidInput {
                    what: "patch ids",
                    reason: "a layer has no patch ids".into(),
                });
            }
            if let Some(&bad) = layer_ids.iter().find(|&&i| i >= h * w) {
                return Err(GanError::InvalidInput {
                    what: "patch ids",
                    reason: format!("id {bad} outside a {h}×{w} feature map"),
                });
            }
            let device = feat.device();
            let idx: Vec<i64> = layer_ids.iter().map(|&i| i as i64).collect();
            let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [layer_ids.len()]), &device);
            let x = feat
                .clone()
                .reshape([b, c, h * w])
                .swap_dims(1, 2) // [B, HW, C]
                .select(1, idx); // [B, P, C]
            out.push(l2_normalize(mlp.forward(x), 2));
        }
        Ok(out)
    }

    /// Samples `num_patches` positions per layer from `rng` ([`PatchIds::sample`]) and projects
    /// them; returns the ids so the query side can reuse them with [`PatchSampleF::forward`].
    ///
    /// # Shapes
    /// As [`PatchSampleF::forward`] with `P_l = min(num_patches, H_l·W_l)` (all positions for
    /// `num_patches = 0`).
    ///
    /// # Errors
    /// As [`PatchSampleF::forward`].
    pub fn forward_sample<R: Rng + ?Sized>(
        &self,
        feats: &[Tensor<4>],
        num_patches: usize,
        rng: &mut R,
    ) -> crate::Result<(Vec<Tensor<3>>, PatchIds)> {
        self.check_feats(feats)?;
        let ids = PatchIds::sample(feats, num_patches, rng);
        Ok((self.forward(feats, &ids)?, ids))
    }

    /// Projects every position and returns maps (NEGCUT's `num_patches = 0`: the MLP and the L2
    /// norm act on each position's channel vector).
    ///
    /// CUT's own `PatchSampleF` normalises the `num_patches = 0` output over the *position* axis
    /// (its `[B, HW, nc]` tensor meets a `Normalize` that sums over dim 1); CUT never trains with
    /// it. NEG-CUT's `F′` uses NEGCUT's corrected version, implemented here.
    ///
    /// # Shapes
    /// - `feats`: per layer `[batch, C_l, H_l, W_l]`; output: per layer `[batch, nc, H_l, W_l]`
    ///
    /// # Errors
    /// [`GanError::ShapeMismatch`] for a wrong number of layers or channels.
    pub fn forward_all(&self, feats: &[Tensor<4>]) -> crate::Result<Vec<Tensor<4>>> {
        self.check_feats(feats)?;
        Ok(feats
            .iter()
            .zip(&self.mlps)
            .map(|(feat, mlp)| {
                let [b, c, h, w] = feat.dims();
                let x = feat.clone().reshape([b, c, h * w]).swap_dims(1, 2); // [B, HW, C]
                let y = l2_normalize(mlp.forward(x), 2); // [B, HW, nc]
                let nc = y.dims()[2];
                y.swap_dims(1, 2).reshape([b, nc, h, w])
            })
            .collect())
    }

    /// NEG-CUT's momentum update of `F′` (`self`) towards `F` (`online`):
    /// `θ′ ← decay·θ′ + (1 − decay)·θ` for every weight and bias ([`NEGCUT_EMA_DECAY`] = 0.9).
    /// The result is detached from any graph; parameters keep their ids and trainability.
    ///
    /// # Errors
    /// [`GanError::Config`] for a decay outside `[0, 1]`; [`GanError::ShapeMismatch`] when the
    /// two modules differ in layers or widths.
    pub fn ema_update(self, online: &PatchSampleF, decay: f64) -> crate::Result<Self> {
        if !(0.0..=1.0).contains(&decay) {
            return Err(config_err("decay", format!("{decay} is not in [0, 1]")));
        }
        let widths = |m: &PatchSampleF| -> Vec<usize> {
            m.mlps.iter().flat_map(|l| [l.d_in(), l.nc()]).collect()
        };
        if widths(&self) != widths(online) {
            return Err(shape_err(
                "EMA source widths",
                &widths(&self),
                &widths(online),
            ));
        }
        Ok(Self {
            mlps: self
                .mlps
                .into_iter()
                .zip(&online.mlps)
                .map(|(m, o)| m.ema(o, decay))
                .collect(),
        })
    }

    /// Loads a reference state dict (`mlp_<i>.0.*`, `mlp_<i>.2.*`; `.pth` or `.safetensors`),
    /// strictly, with [`PYTORCH_KEY_REMAPS`].
    ///
    /// # Errors
    /// [`GanError::Core`] when the file cannot be read or its keys/shapes do not match.
    pub fn load_pytorch(&mut self, path: impl AsRef<Path>) -> crate::Result<LoadReport> {
        load_mlps(self, path.as_ref())
    }
}

/// Configuration of [`PatchNceLoss`].
#[derive(Config, Debug)]
pub struct PatchNceLossConfig {
    /// The temperature τ (`nce_T`).
    #[config(default = 0.07)]
    pub temperature: f64,
    /// CUT's `nce_includes_all_negatives_from_minibatch` (`batch_dim_for_bmm = 1` when true):
    /// negatives from every image of the batch instead of the query's own image only.
    #[config(default = false)]
    pub include_all_negatives_from_minibatch: bool,
}

impl PatchNceLossConfig {
    /// Builds the loss.
    ///
    /// # Errors
    /// [`GanError::Config`] for a temperature that is not positive and finite.
    pub fn init(&self) -> crate::Result<PatchNceLoss> {
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(config_err(
                "temperature",
                format!("{} must be positive", self.temperature),
            ));
        }
        Ok(PatchNceLoss {
            temperature: self.temperature,
            include_all_negatives_from_minibatch: self.include_all_negatives_from_minibatch,
        })
    }
}

/// CUT's PatchNCE loss and NEG-CUT's learned-negatives version; see the [module docs](self).
#[derive(Debug, Clone, PartialEq)]
pub struct PatchNceLoss {
    /// The temperature τ.
    pub temperature: f64,
    /// Negatives from the whole batch (`batch_dim_for_bmm = 1`) rather than per image.
    pub include_all_negatives_from_minibatch: bool,
}

/// The mean of per-layer losses (an error for no layers).
fn layer_mean(what: &'static str, losses: Vec<Tensor<1>>) -> crate::Result<Tensor<1>> {
    let n = losses.len();
    losses
        .into_iter()
        .reduce(|a, b| a + b)
        .map(|t| t.div_scalar(n as f64))
        .ok_or_else(|| shape_err(what, &[1], &[0]))
}

fn check_layers(what: &'static str, a: usize, b: usize) -> crate::Result<()> {
    if a != b || a == 0 {
        return Err(shape_err(what, &[a.max(1)], &[b]));
    }
    Ok(())
}

impl PatchNceLoss {
    /// `−log softmax([l_pos, l_neg] / τ)[0]` per row.
    fn cross_entropy_target0(&self, l_pos: Tensor<2>, l_neg: Tensor<2>) -> Tensor<1> {
        let n = l_pos.dims()[0];
        let logits = Tensor::cat(vec![l_pos, l_neg], 1).div_scalar(self.temperature);
        log_softmax(logits, 1).narrow(1, 0, 1).reshape([n]).neg()
    }

    fn positives(q: &Tensor<3>, k: &Tensor<3>) -> Tensor<2> {
        let [b, p, _] = q.dims();
        (q.clone() * k.clone()).sum_dim(2).reshape([b * p, 1])
    }

    /// The per-patch PatchNCE losses of one layer (reduction none). `k` is detached.
    ///
    /// # Shapes
    /// - `q`, `k`: `[batch, patches, dim]` (the same positions in the same order)
    /// - output: `[batch·patches]`, image-major
    ///
    /// # Errors
    /// [`GanError::ShapeMismatch`] when `q` and `k` differ in shape.
    pub fn forward_no_reduction(&self, q: Tensor<3>, k: Tensor<3>) -> crate::Result<Tensor<1>> {
        if q.dims() != k.dims() {
            return Err(shape_err("PatchNCE keys", &q.dims(), &k.dims()));
        }
        let [b, p, d] = q.dims();
        let k = k.detach();
        let l_pos = Self::positives(&q, &k);
        let (bb, pp) = if self.include_all_negatives_from_minibatch {
            (1, b * p)
        } else {
            (b, p)
        };
        let device = q.device();
        let qb = q.reshape([bb, pp, d]);
        let kb = k.reshape([bb, pp, d]);
        let l_neg = qb.matmul(kb.swap_dims(1, 2)); // [bb, pp, pp]
        let diagonal = Tensor::<2>::eye(pp, &device)
            .equal_elem(1.0)
            .unsqueeze::<3>()
            .expand([bb, pp, pp]);
        let l_neg = l_neg.mask_fill(diagonal, -10.0).reshape([b * p, pp]);
        Ok(self.cross_entropy_target0(l_pos, l_neg))
    }

    /// The mean PatchNCE loss of one layer.
    ///
    /// # Shapes
    /// - `q`, `k`: `[batch, patches, dim]`; output `[1]`
    ///
    /// # Errors
    /// As [`PatchNceLoss::forward_no_reduction`].
    pub fn forward(&self, q: Tensor<3>, k: Tensor<3>) -> crate::Result<Tensor<1>> {
        Ok(self.forward_no_reduction(q, k)?.mean())
    }

    /// CUT's `calculate_NCE_loss` without λ: the mean over layers of each layer's mean loss.
    ///
    /// # Shapes
    /// - `qs`, `ks`: per layer `[batch, patches_l, dim]`; output `[1]`
    ///
    /// # Errors
    /// [`GanError::ShapeMismatch`] for differing (or zero) layer counts or shapes.
    pub fn forward_layers(&self, qs: &[Tensor<3>], ks: &[Tensor<3>]) -> crate::Result<Tensor<1>> {
        check_layers("PatchNCE key layers", qs.len(), ks.len())?;
        let losses = qs
            .iter()
            .zip(ks)
            .map(|(q, k)| self.forward(q.clone(), k.clone()))
            .collect::<crate::Result<Vec<_>>>()?;
        layer_mean("PatchNCE layers", losses)
    }

    /// NEG-CUT's learned-negatives loss of one layer (`LearnedPatchNCELoss` with `neg_sample`),
    /// reduction none: `logits = [⟨q_i, k_i⟩, q_i·n_1 … q_i·n_K] / τ`, CE with target 0, no
    /// diagonal mask. `k` is detached, `negatives` is not.
    ///
    /// # Shapes
    /// - `q`, `k`: `[batch, patches, dim]`; `negatives`: `[batch, K, dim]`
    /// - output: `[batch·patches]`
    ///
    /// # Errors
    /// [`GanError::ShapeMismatch`] when the shapes do not agree.
    pub fn forward_learned_no_reduction(
        &self,
        q: Tensor<3>,
        k: Tensor<3>,
        negatives: Tensor<3>,
    ) -> crate::Result<Tensor<1>> {
        if q.dims() != k.dims() {
            return Err(shape_err("PatchNCE keys", &q.dims(), &k.dims()));
        }
        let [b, p, d] = q.dims();
        let [nb, nk, nd] = negatives.dims();
        if nb != b || nd != d {
            return Err(shape_err("negatives", &[b, nk, d], &[nb, nk, nd]));
        }
        let k = k.detach();
        let l_pos = Self::positives(&q, &k);
        let bb = if self.include_all_negatives_from_minibatch {
            1
        } else {
            b
        };
        let qb = q.reshape([bb, b * p / bb, d]);
        let nbm = negatives.reshape([bb, b * nk / bb, d]);
        let kk = b * nk / bb;
        let l_neg = qb.matmul(nbm.swap_dims(1, 2)).reshape([b * p, kk]);
        Ok(self.cross_entropy_target0(l_pos, l_neg))
    }

    /// The mean learned-negatives loss of one layer.
    ///
    /// # Shapes
    /// As [`PatchNceLoss::forward_learned_no_reduction`]; output `[1]`.
    ///
    /// # Errors
    /// As [`PatchNceLoss::forward_learned_no_reduction`].
    pub fn forward_learned(
        &self,
        q: Tensor<3>,
        k: Tensor<3>,
        negatives: Tensor<3>,
    ) -> crate::Result<Tensor<1>> {
        Ok(self.forward_learned_no_reduction(q, k, negatives)?.mean())
    }

    /// NEG-CUT's `calculate_NCE_loss` without λ: the mean over layers of each layer's mean
    /// learned-negatives loss.
    ///
    /// # Shapes
    /// - per layer `q`, `k`: `[batch, patches_l, dim]`, `negatives`: `[batch, K, dim]`; output `[1]`
    ///
    /// # Errors
    /// [`GanError::ShapeMismatch`] for differing (or zero) layer counts or shapes.
    pub fn forward_learned_layers(
        &self,
        qs: &[Tensor<3>],
        ks: &[Tensor<3>],
        negatives: &[Tensor<3>],
    ) -> crate::Result<Tensor<1>> {
        check_layers("PatchNCE key layers", qs.len(), ks.len())?;
        check_layers("negative layers", qs.len(), negatives.len())?;
        let losses = qs
            .iter()
            .zip(ks)
            .zip(negatives)
            .map(|((q, k), n)| self.forward_learned(q.clone(), k.clone(), n.clone()))
            .collect::<crate::Result<Vec<_>>>()?;
        layer_mean("PatchNCE layers", losses)
    }
}

/// NEG-CUT's diversity term of one layer, `−mean |n[:, :K/2] − n[:, K/2:]|` (before λ_MS = 1):
/// minimising it pushes the two halves of the generated negatives apart.
///
/// # Shapes
/// - `negatives`: `[batch, K, dim]` with `K` even; output `[1]`
///
/// # Errors
/// [`GanError::InvalidInput`] when `K` is odd or zero (the reference's halves would not match).
pub fn negative_diversity_loss(negatives: Tensor<3>) -> crate::Result<Tensor<1>> {
    let [_, k, _] = negatives.dims();
    if k == 0 || !k.is_multiple_of(2) {
        return Err(GanError::InvalidInput {
            what: "negatives",
            reason: format!("the number of negatives ({k}) must be even and positive"),
        });
    }
    let h = k / 2;
    let a = negatives.clone().narrow(1, 0, h);
    let b = negatives.narrow(1, h, h);
    Ok((a - b).abs().mean().neg())
}

/// [`negative_diversity_loss`] averaged over layers (NEGCUT's `loss_MS_noise` without λ_MS).
///
/// # Shapes
/// - per layer `[batch, K, dim]`; output `[1]`
///
/// # Errors
/// As [`negative_diversity_loss`]; [`GanError::ShapeMismatch`] for an empty list.
pub fn negative_diversity_loss_layers(negatives: &[Tensor<3>]) -> crate::Result<Tensor<1>> {
    let losses = negatives
        .iter()
        .map(|n| negative_diversity_loss(n.clone()))
        .collect::<crate::Result<Vec<_>>>()?;
    layer_mean("negative layers", losses)
}

/// Configuration of [`NegativeGenerator`] (NEGCUT `Negative_Generator(use_conv=False)`,
/// `netN = neg_gen_momentum`).
#[derive(Config, Debug)]
pub struct NegativeGeneratorConfig {
    /// The number of NCE layers (one MLP each).
    pub num_layers: usize,
    /// Feature width of `F′`'s output and of the negatives (`netF_nc`).
    #[config(default = 256)]
    pub nc: usize,
    /// Dimension of the noise `z ~ N(0, I)`.
    #[config(default = 64)]
    pub z_dim: usize,
    /// Negatives per image and layer `K` (the reference's `num_patches`); must be even for the
    /// diversity term.
    #[config(default = 256)]
    pub num_negatives: usize,
    /// Weight initialisation (biases 0). Default xavier-normal gain 0.02, the reference's
    /// effective initialisation (see the [module docs](self)).
    #[config(default = "Initializer::XavierNormal { gain: 0.02 }")]
    pub initializer: Initializer,
}

impl NegativeGeneratorConfig {
    /// Checks the widths and that `num_negatives` is even and positive.
    ///
    /// # Errors
    /// [`GanError::Config`] otherwise.
    pub fn validate(&self) -> crate::Result<()> {
        if self.num_layers == 0 {
            return Err(config_err("num_layers", "at least one layer is needed"));
        }
        if self.nc == 0 {
            return Err(config_err("nc", "must be positive"));
        }
        if self.num_negatives == 0 || !self.num_negatives.is_multiple_of(2) {
            return Err(config_err(
                "num_negatives",
                format!("{} must be even and positive", self.num_negatives),
            ));
        }
        Ok(())
    }

    /// Builds one MLP `Linear(nc + z_dim, nc) → ReLU → Linear(nc, nc)` per layer.
    pub fn init(&self, device: &Device) -> NegativeGenerator {
        NegativeGenerator {
            mlps: (0..self.num_layers)
                .map(|_| PatchMlp::new(self.nc + self.z_dim, self.nc, &self.initializer, device))
                .collect(),
            z_dim: self.z_dim,
            num_negatives: self.num_negatives,
        }
    }
}

/// NEG-CUT's negative generator `N`; see the [module docs](self).
#[derive(Module, Debug)]
pub struct NegativeGenerator {
    /// One MLP per layer (PyTorch `mlp_<i>`).
    pub mlps: Vec<PatchMlp>,
    /// Noise dimension.
    pub z_dim: usize,
    /// Negatives per image and layer.
    pub num_negatives: usize,
}

impl NegativeGenerator {
    /// Draws the noise of every layer, `z ~ N(0, I)` on `device` (seed it with `Device::seed`).
    ///
    /// # Shapes
    /// - output: per layer `[batch, num_negatives, z_dim]`
    pub fn sample_noise(&self, batch: usize, device: &Device) -> Vec<Tensor<3>> {
        (0..self.mlps.len())
            .map(|_| {
                Tensor::random(
                    [batch, self.num_negatives, self.z_dim],
                    Distribution::Normal(0.0, 1.0),
                    device,
                )
            })
            .collect()
    }

    /// Generates the negatives from `F′`'s all-position maps and given noise: spatial mean,
    /// repeated `K` times, concatenated with the noise, MLP, L2 norm.
    ///
    /// # Shapes
    /// - `feats_all`: per layer `[batch, nc, H_l, W_l]` ([`PatchSampleF::forward_all`] of `F′`)
    /// - `noise`: per layer `[batch, K, z_dim]`
    /// - output: per layer `[batch, K, nc]`
    ///
    /// # Errors
    /// [`GanError::ShapeMismatch`] for wrong layer counts or shapes.
    pub fn forward_with_noise(
        &self,
        feats_all: &[Tensor<4>],
        noise: &[Tensor<3>],
    ) -> crate::Result<Vec<Tensor<3>>> {
        let layers = self.mlps.len();
        if feats_all.len() != layers {
            return Err(shape_err(
                "number of feature layers",
                &[layers],
                &[feats_all.len()],
            ));
        }
        if noise.len() != layers {
            return Err(shape_err(
                "number of noise layers",
                &[layers],
                &[noise.len()],
            ));
        }
        let mut out = Vec::with_capacity(layers);
        for ((feat, z), mlp) in feats_all.iter().zip(noise).zip(&self.mlps) {
            let [b, c, h, w] = feat.dims();
            let nc = mlp.d_in().saturating_sub(self.z_dim);
            if c != nc {
                return Err(shape_err(
                    "F′ feature channels",
                    &[b, nc, h, w],
                    &[b, c, h, w],
                ));
            }
            let [zb, zk, zd] = z.dims();
            if zb != b || zd != self.z_dim || zk == 0 {
                return Err(shape_err(
                    "noise",
                    &[b, self.num_negatives, self.z_dim],
                    &[zb, zk, zd],
                ));
            }
            let mean = feat.clone().reshape([b, c, h * w]).mean_dim(2); // [B, C, 1]
            let rep = mean.swap_dims(1, 2).expand([b, zk, c]); // [B, K, C]
            let inp = Tensor::cat(vec![rep, z.clone()], 2); // [B, K, C + z]
            out.push(l2_normalize(mlp.forward(inp), 2));
        }
        Ok(out)
    }

    /// [`NegativeGenerator::forward_with_noise`] with fresh noise from
    /// [`NegativeGenerator::sample_noise`] (`K = num_negatives`).
    ///
    /// # Shapes
    /// - `feats_all`: per layer `[batch, nc, H_l, W_l]`; output: per layer `[batch, K, nc]`
    ///
    /// # Errors
    /// As [`NegativeGenerator::forward_with_noise`].
    pub fn forward(&self, feats_all: &[Tensor<4>]) -> crate::Result<Vec<Tensor<3>>> {
        let Some(first) = feats_all.first() else {
            return Err(shape_err(
                "number of feature layers",
                &[self.mlps.len()],
                &[0],
            ));
        };
        let noise = self.sample_noise(first.dims()[0], &first.device());
        self.forward_with_noise(feats_all, &noise)
    }

    /// Loads a reference state dict (`mlp_<i>.0.*`, `mlp_<i>.2.*`), strictly, with
    /// [`PYTORCH_KEY_REMAPS`].
    ///
    /// # Errors
    /// [`GanError::Core`] when the file cannot be read or its keys/shapes do not match.
    pub fn load_pytorch(&mut self, path: impl AsRef<Path>) -> crate::Result<LoadReport> {
        load_mlps(self, path.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nightvision_core::rng::seeded;

    #[test]
    fn l2_normalize_has_finite_gradients_at_a_zero_vector() {
        use burn::tensor::{Device, TensorData};
        let device = Device::default().autodiff();
        // Row 0 is all zero (a dead ReLU patch), row 1 is [3, 4].
        let x = Tensor::<2>::from_data(
            TensorData::new(vec![0.0f32, 0.0, 3.0, 4.0], [2, 2]),
            &device,
        )
        .require_grad();
        let w = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 1.0, 2.0], [2, 2]),
            &device,
        );
        let y = l2_normalize(x.clone(), 1);
        let grads = (y.clone() * w).sum().backward();
        let g: Vec<f32> = x
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap();
        assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
        // Zero row: no term through the norm, d/dx (x / (√floor + ε)) · w = w / (1e-12 + 1e-7).
        let inv = 1.0 / (1e-12 + 1e-7);
        assert!(
            (g[0] as f64 / inv - 1.0).abs() < 1e-5
                && (g[1] as f64 / (2.0 * inv) - 1.0).abs() < 1e-5
        );
        // Row [3, 4] (closed form with n = 5 + ε): dy_i/dx_j = δ_ij / n − x_i x_j / (5 n²).
        let n = 5.0 + L2_EPS;
        let (x0, x1) = (3.0, 4.0);
        let g0 = (1.0 / n - x0 * x0 / (5.0 * n * n)) * 1.0 + (-x1 * x0 / (5.0 * n * n)) * 2.0;
        let g1 = (-x0 * x1 / (5.0 * n * n)) * 1.0 + (1.0 / n - x1 * x1 / (5.0 * n * n)) * 2.0;
        assert!(
            (g[2] as f64 - g0).abs() < 1e-6 && (g[3] as f64 - g1).abs() < 1e-6,
            "{g:?}"
        );
        let yv: Vec<f32> = y.into_data().try_into_vec_as::<f32>().unwrap();
        assert_eq!(&yv[..2], &[0.0, 0.0]);
    }

    #[test]
    fn sampled_ids_are_distinct_truncated_and_reproducible() {
        let a = PatchIds::sample_positions(&[16, 4, 9], 5, &mut seeded(3));
        let b = PatchIds::sample_positions(&[16, 4, 9], 5, &mut seeded(3));
        assert_eq!(a, b);
        assert_eq!(a.layers.iter().map(Vec::len).collect::<Vec<_>>(), [5, 4, 5]);
        for (ids, n) in a.layers.iter().zip([16, 4, 9]) {
            let mut s = ids.clone();
            s.sort_unstable();
            s.dedup();
            assert_eq!(s.len(), ids.len());
            assert!(ids.iter().all(|&i| i < n));
        }
        // The 4-position layer is a full permutation; num_patches = 0 keeps the order.
        let all = PatchIds::sample_positions(&[6], 0, &mut seeded(3));
        assert_eq!(all.layers, vec![(0..6).collect::<Vec<_>>()]);
    }

    #[test]
    fn forward_all_equals_forward_with_every_id() {
        let device = Device::default();
        let feats = vec![Tensor::<4>::random(
            [2, 3, 4, 5],
            Distribution::Normal(0.0, 1.0),
            &device,
        )];
        let f = PatchSampleFConfig::new(vec![3])
            .with_nc(8)
            .with_initializer(Initializer::XavierNormal { gain: 1.0 })
            .init(&device);
        let maps = f.forward_all(&feats).unwrap()[0].clone(); // [2, 8, 4, 5]
        let rows = f.forward(&feats, &PatchIds::all(&feats)).unwrap()[0].clone(); // [2, 20, 8]
        let maps = maps.reshape([2, 8, 20]).swap_dims(1, 2);
        let diff: f32 = (maps - rows.clone()).abs().max().into_scalar();
        assert!(diff < 1e-6, "{diff}");
        // `x / (‖x‖ + ε)` has a norm just below 1 (exactly 0 for a row the ReLU zeroed).
        let norms = rows.powi_scalar(2).sum_dim(2).sqrt();
        let top: f32 = norms.max().into_scalar();
        assert!(top <= 1.0 + 1e-6 && top > 0.99, "{top}");
    }

    #[test]
    fn bad_inputs_are_errors() {
        let device = Device::default();
        let f = PatchSampleFConfig::new(vec![3, 4]).with_nc(8).init(&device);
        let feats = vec![
            Tensor::<4>::zeros([1, 3, 2, 2], &device),
            Tensor::<4>::zeros([1, 5, 2, 2], &device),
        ];
        let ids = PatchIds::all(&feats);
        assert!(matches!(
            f.forward(&feats, &ids),
            Err(GanError::ShapeMismatch { .. })
        ));
        let feats = vec![feats[0].clone(), Tensor::<4>::zeros([1, 4, 2, 2], &device)];
        let bad = PatchIds {
            layers: vec![vec![0], vec![4]],
        };
        assert!(matches!(
            f.forward(&feats, &bad),
            Err(GanError::InvalidInput { .. })
        ));
        assert!(PatchSampleFConfig::new(vec![]).validate().is_err());
        assert!(
            PatchNceLossConfig::new()
                .with_temperature(0.0)
                .init()
                .is_err()
        );
        assert!(
            NegativeGeneratorConfig::new(1)
                .with_num_negatives(5)
                .validate()
                .is_err()
        );
        let n = Tensor::<3>::zeros([1, 3, 4], &device);
        assert!(negative_diversity_loss(n).is_err());
    }

    #[test]
    fn negative_generator_draws_unit_negatives() {
        let device = Device::default();
        // Gain 1 and 64 hidden units: outputs of norm ~1, so ε = 1e-7 is negligible and a row
        // with every ReLU off (a zero output) has probability ~2⁻⁶⁴.
        let n = NegativeGeneratorConfig::new(2)
            .with_nc(64)
            .with_z_dim(4)
            .with_num_negatives(6)
            .with_initializer(Initializer::XavierNormal { gain: 1.0 })
            .init(&device);
        let maps = vec![
            Tensor::<4>::random([3, 64, 4, 4], Distribution::Normal(0.0, 1.0), &device),
            Tensor::<4>::random([3, 64, 2, 5], Distribution::Normal(0.0, 1.0), &device),
        ];
        let negs = n.forward(&maps).unwrap();
        for x in &negs {
            assert_eq!(x.dims(), [3, 6, 64]);
            let err: f32 = x
                .clone()
                .powi_scalar(2)
                .sum_dim(2)
                .sqrt()
                .sub_scalar(1.0)
                .abs()
                .max()
                .into_scalar();
            assert!(err < 1e-5, "{err}");
        }
        // Fresh noise gives different negatives for the same features.
        let again = n.forward(&maps).unwrap();
        let diff: f32 = (again[0].clone() - negs[0].clone())
            .abs()
            .max()
            .into_scalar();
        assert!(diff > 1e-3, "{diff}");
        // F′ maps with the wrong width.
        let wrong = vec![maps[0].clone().narrow(1, 0, 8), maps[1].clone()];
        assert!(matches!(
            n.forward(&wrong),
            Err(GanError::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn ema_moves_towards_online() {
        let device = Device::default();
        let cfg = PatchSampleFConfig::new(vec![3]).with_nc(4);
        let online = cfg.init(&device);
        let momentum = cfg.init(&device);
        let w0 = momentum.mlps[0].fc1.weight.val();
        let wo = online.mlps[0].fc1.weight.val();
        let id = momentum.mlps[0].fc1.weight.id;
        let updated = momentum.ema_update(&online, 0.9).unwrap();
        assert_eq!(updated.mlps[0].fc1.weight.id, id);
        let want = w0.mul_scalar(0.9) + wo.mul_scalar(0.1);
        let diff: f32 = (updated.mlps[0].fc1.weight.val() - want)
            .abs()
            .max()
            .into_scalar();
        assert!(diff < 1e-7, "{diff}");
        let other = PatchSampleFConfig::new(vec![5]).with_nc(4).init(&device);
        assert!(updated.clone().ema_update(&other, 0.9).is_err());
        assert!(updated.ema_update(&online, 1.5).is_err());
    }
}
