//! Model-level similarity maximisation with BYOL (docs/PAPERS.md C.3, the canonical `L_F^sim` of the
//! classification code `classification/utils/resnet_BYOL.py`, `classification/train.py`).
//!
//! - [`MlpHead`]: `Linear − BatchNorm1d − ReLU − Linear`, the projection heads `q` (online) and
//!   `q′` (momentum) and the predictor `z`, with the reference's parameter names (`fc1`, `bn1`,
//!   `fc2`), collected in [`ByolHeads`] (`head_q`, `head_k`, `pred`).
//! - [`byol_loss`]: `0.5·w·[(2 − 2⟨ẑ(q(F(x_day))), q̂′(F′(x_dark))⟩) + (2 − 2⟨ẑ(q(F(x_dark))),
//!   q̂′(F′(x_day))⟩)]`, hats = L2-normalised, inner products averaged over the batch, targets
//!   without gradient, `w = 0.1`.
//! - [`ema_update`]: the momentum copy `θ′ ← m·θ′ + (1 − m)·θ` (`m = 0.99`) of every parameter;
//!   as in the reference (which iterates over `parameters()`), BatchNorm running statistics are
//!   buffers and are not averaged.
//!
//! Order of one reference step (`dual=True`): online and momentum forwards, **then** the momentum
//! update with the current (not yet stepped) online weights, then the loss, backward and the
//! optimiser step. Call [`ema_update`] / [`ByolHeads::momentum_update`] at the same place to
//! reproduce it.
//!
//! The reference runs the whole model in `train()` mode: every BatchNorm, the momentum head's
//! included, normalises with the statistics of its batch. On an autodiff device burn does the same
//! for BatchNorm layers whose training flag is on (the default), parameters with or without
//! gradient.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use nightvision_core::ema_update;

use crate::DarkeningError;

/// Floor of the L2 norm before the cosine (PyTorch `F.normalize`'s `eps`).
const NORMALIZE_EPS: f64 = 1e-12;

/// Configuration of an [`MlpHead`].
#[derive(Config, Debug)]
pub struct MlpHeadConfig {
    /// Input features.
    pub d_input: usize,
    /// Hidden and output features.
    pub d_output: usize,
    /// Kaiming-normal (fan-in, gain √2) weights, as `proj_head` initialises them; otherwise
    /// PyTorch's default `Linear` init (`pred_head`).
    #[config(default = true)]
    pub kaiming_normal: bool,
}

/// `Linear(d_input → d_output) − BatchNorm1d − ReLU − Linear(d_output → d_output)` (`proj_head`,
/// `pred_head` of `resnet_BYOL.py`).
#[derive(Module, Debug)]
pub struct MlpHead {
    /// First linear layer.
    pub fc1: Linear,
    /// Batch normalisation of the hidden features.
    pub bn1: BatchNorm,
    /// Second linear layer.
    pub fc2: Linear,
}

impl MlpHeadConfig {
    /// Builds the head on `device`.
    pub fn init(&self, device: &Device) -> MlpHead {
        let linear = |i, o| {
            let c = LinearConfig::new(i, o);
            if self.kaiming_normal {
                c.with_initializer(Initializer::KaimingNormal {
                    gain: std::f64::consts::SQRT_2,
                    fan_out_only: false,
                })
            } else {
                c
            }
            .init(device)
        };
        MlpHead {
            fc1: linear(self.d_input, self.d_output),
            bn1: BatchNormConfig::new(self.d_output).init(device),
            fc2: linear(self.d_output, self.d_output),
        }
    }
}

impl MlpHead {
    /// # Shapes
    /// - `x`: `[batch, d_input]` → output `[batch, d_output]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.fc2
            .forward(relu(self.bn1.forward(self.fc1.forward(x))))
    }
}

/// Configuration of the BYOL heads and loss (docs/PAPERS.md C.3, classification defaults).
#[derive(Config, Debug)]
pub struct ByolConfig {
    /// Dimension of the encoder feature (ResNet-18 average pool: 512).
    #[config(default = 512)]
    pub feat_dim: usize,
    /// Projection dimension (128).
    #[config(default = 128)]
    pub proj_dim: usize,
    /// Loss weight `w` (`BYOL_weight`, 0.1).
    #[config(default = 0.1)]
    pub weight: f64,
    /// EMA momentum `m` of the momentum copies (0.99).
    #[config(default = 0.99)]
    pub momentum: f64,
}

impl ByolConfig {
    /// Checks the configuration.
    ///
    /// # Errors
    /// [`DarkeningError::Config`] for zero dimensions, a negative or non-finite weight or a
    /// momentum outside `[0, 1]`.
    pub fn validate(&self) -> crate::Result<()> {
        if self.feat_dim == 0 || self.proj_dim == 0 {
            return Err(DarkeningError::config(
                "feat_dim/proj_dim",
                "must be positive",
            ));
        }
        if !(self.weight.is_finite() && self.weight >= 0.0) {
            return Err(DarkeningError::config(
                "weight",
                format!("{} must be finite and ≥ 0", self.weight),
            ));
        }
        if !(0.0..=1.0).contains(&self.momentum) {
            return Err(DarkeningError::config(
                "momentum",
                format!("{} is not in [0, 1]", self.momentum),
            ));
        }
        Ok(())
    }

    /// Builds the heads: `head_q` and `pred` random (Kaiming-normal projection weights, default
    /// predictor init), `head_k` a copy of `head_q` without gradient (as the reference copies
    /// `param_q` into `param_k` and sets `requires_grad = False`).
    pub fn init(&self, device: &Device) -> ByolHeads {
        let proj = MlpHeadConfig::new(self.feat_dim, self.proj_dim);
        let head_q = proj.init(device);
        let head_k = ema_update(proj.init(device), &head_q, 0.0).no_grad();
        ByolHeads {
            head_q,
            head_k,
            pred: MlpHeadConfig::new(self.proj_dim, self.proj_dim)
                .with_kaiming_normal(false)
                .init(device),
            weight: self.weight,
            momentum: self.momentum,
        }
    }
}

/// The BYOL heads of `ResNet_BYOL` (docs/PAPERS.md C.3), with the reference's names.
#[derive(Module, Debug)]
pub struct ByolHeads {
    /// Online projection head `q`.
    pub head_q: MlpHead,
    /// Momentum projection head `q′` (no gradient; updated by [`ByolHeads::momentum_update`]).
    pub head_k: MlpHead,
    /// Predictor `z`.
    pub pred: MlpHead,
    /// Loss weight `w`.
    pub weight: f64,
    /// EMA momentum `m`.
    pub momentum: f64,
}

impl ByolHeads {
    /// The weighted symmetric BYOL loss from encoder features.
    ///
    /// `feat_day`, `feat_dark` come from the online encoder F (with gradient); `feat_day_k`,
    /// `feat_dark_k` from the momentum encoder F′ (detached here). Each of the four head passes is
    /// its own batch, as in the reference.
    ///
    /// # Shapes
    /// - every feature: `[batch, feat_dim]` → output `[1]`
    pub fn forward(
        &self,
        feat_day: Tensor<2>,
        feat_dark: Tensor<2>,
        feat_day_k: Tensor<2>,
        feat_dark_k: Tensor<2>,
    ) -> Tensor<1> {
        let q_day = self.pred.forward(self.head_q.forward(feat_day));
        let q_dark = self.pred.forward(self.head_q.forward(feat_dark));
        let k_dark = self.head_k.forward(feat_dark_k.detach()).detach();
        let k_day = self.head_k.forward(feat_day_k.detach()).detach();
        byol_loss(q_day, k_dark, q_dark, k_day, self.weight)
    }

    /// `head_k ← m·head_k + (1 − m)·head_q` (`_momentum_update_key_encoder` for the heads).
    pub fn momentum_update(mut self) -> Self {
        self.head_k = ema_update(self.head_k, &self.head_q, self.momentum);
        self
    }
}

fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x
        .clone()
        .square()
        .sum_dim(1)
        .sqrt()
        .clamp_min(NORMALIZE_EPS);
    x / norm
}

/// The symmetric BYOL loss of `classification/train.py`:
/// `0.5·w·[(2 − 2·mean_b⟨q̂₁, k̂₁⟩) + (2 − 2·mean_b⟨q̂₂, k̂₂⟩)]`, vectors L2-normalised here, the
/// targets `k` detached.
///
/// # Shapes
/// - `q1`, `k1`, `q2`, `k2`: `[batch, dim]` → output `[1]`
pub fn byol_loss(
    q1: Tensor<2>,
    k1: Tensor<2>,
    q2: Tensor<2>,
    k2: Tensor<2>,
    weight: f64,
) -> Tensor<1> {
    let term = |q: Tensor<2>, k: Tensor<2>| {
        (l2_normalize(q) * l2_normalize(k.detach()))
            .sum_dim(1)
            .mean()
            .mul_scalar(-2.0)
            .add_scalar(2.0)
    };
    (term(q1, k1) + term(q2, k2)).mul_scalar(0.5 * weight)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec_as().unwrap()
    }

    #[test]
    fn config_defaults_and_validation() {
        let c = ByolConfig::new();
        assert_eq!(
            (c.feat_dim, c.proj_dim, c.weight, c.momentum),
            (512, 128, 0.1, 0.99)
        );
        assert!(c.validate().is_ok());
        assert!(c.clone().with_momentum(1.5).validate().is_err());
        assert!(c.clone().with_proj_dim(0).validate().is_err());
        assert!(c.with_weight(f64::NAN).validate().is_err());
    }

    #[test]
    fn momentum_head_starts_as_a_frozen_copy() {
        let device = Device::default().autodiff();
        let heads = ByolConfig::new()
            .with_feat_dim(8)
            .with_proj_dim(4)
            .init(&device);
        assert_eq!(
            values(heads.head_q.fc1.weight.val()),
            values(heads.head_k.fc1.weight.val())
        );
        assert_eq!(
            values(heads.head_q.fc2.bias.as_ref().unwrap().val()),
            values(heads.head_k.fc2.bias.as_ref().unwrap().val())
        );
        assert!(!heads.head_k.fc1.weight.val().is_require_grad());
        assert!(heads.head_q.fc1.weight.val().is_require_grad());
        assert_ne!(heads.head_q.fc1.weight.id, heads.head_k.fc1.weight.id);
    }

    #[test]
    fn ema_closed_form_and_buffers_untouched() {
        let device = Device::default();
        device.seed(4);
        let cfg = MlpHeadConfig::new(3, 2);
        let online = cfg.init(&device);
        let target = cfg.init(&device);
        // Give the target's BatchNorm running statistics recognisable values.
        let mut target = target;
        target.bn1.running_mean = burn::module::RunningState::new(Tensor::full([2], 0.7, &device));
        let t0 = values(target.fc1.weight.val());
        let o = values(online.fc1.weight.val());
        let tb0 = values(target.bn1.gamma.val());
        let ob = values(online.bn1.gamma.val());
        let id = target.fc1.weight.id;
        let m = 0.99;
        let updated = ema_update(target, &online, m);
        for ((u, t), o) in values(updated.fc1.weight.val()).iter().zip(&t0).zip(&o) {
            let want = m as f32 * t + (1.0 - m as f32) * o;
            assert!((u - want).abs() < 1e-7, "{u} vs {want}");
        }
        for ((u, t), o) in values(updated.bn1.gamma.val()).iter().zip(&tb0).zip(&ob) {
            assert!((u - (m as f32 * t + (1.0 - m as f32) * o)).abs() < 1e-7);
        }
        assert_eq!(values(updated.bn1.running_mean.value()), vec![0.7, 0.7]);
        assert_eq!(updated.fc1.weight.id, id);
        // m = 1 keeps the target, m = 0 copies the online module.
        let copy = ema_update(updated, &online, 0.0);
        assert_eq!(
            values(copy.fc2.weight.val()),
            values(online.fc2.weight.val())
        );
    }

    #[test]
    fn loss_closed_form() {
        let device = Device::default();
        // Identical directions: cosines 1 → loss 0; opposite: cosines −1 → 0.5·0.1·(4 + 4) = 0.4.
        let q = Tensor::<2>::from_floats([[1.0, 2.0], [0.0, -3.0]], &device);
        let k = q.clone().mul_scalar(5.0);
        let zero: f32 = byol_loss(q.clone(), k.clone(), q.clone(), k.clone(), 0.1).into_scalar();
        assert!(zero.abs() < 1e-6);
        let opposite: f32 = byol_loss(q.clone(), k.clone().neg(), q, k.neg(), 0.1).into_scalar();
        assert!((opposite - 0.4).abs() < 1e-6);
    }
}
