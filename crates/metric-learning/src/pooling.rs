//! Global pooling and normalisation layers (cirtorch `layers/functional.py`, `pooling.py`,
//! `normalization.py`; CosPlace `model/layers.py`; docs/PAPERS.md protocols 1.1, docs/PAPERS.md A.5, B.2).
//!
//! - [`gem`]: `f_c = ((1/HW) Σ max(x, ε)^p)^{1/p}` with a learnable scalar `p` ([`Gem`], init 3,
//!   ε = 1e-6);
//! - [`mac`] (global max) and [`spoc`] (global average);
//! - [`l2n`]: cirtorch's `x / (‖x‖₂ + 1e-6)` (eps added to the norm);
//! - [`normalize`]: PyTorch's `F.normalize`, `x / max(‖x‖₂, 1e-12)` (CosPlace's `L2Norm`), and
//!   [`channel_l2`], its per-location form over the channels of a feature map.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// GeM's clamp floor (cirtorch and CosPlace `eps=1e-6`).
pub const GEM_EPS: f64 = 1e-6;
/// cirtorch's `L2N` eps, added to the norm.
pub const L2N_EPS: f64 = 1e-6;
/// PyTorch `F.normalize` eps, a floor on the norm.
pub const NORMALIZE_EPS: f64 = 1e-12;

/// Generalised-mean pooling with exponent tensor `p` (shape `[1]`).
///
/// # Shapes
/// - `x`: `[batch, channels, height, width]`
/// - `p`: `[1]`
/// - output: `[batch, channels]`
pub fn gem(x: Tensor<4>, p: Tensor<1>, eps: f64) -> Tensor<2> {
    let [b, c, h, w] = x.dims();
    let p4 = p.reshape([1, 1, 1, 1]);
    let pooled = x
        .clamp_min(eps)
        .powf(p4.clone().expand([b, c, h, w]))
        .mean_dim(3)
        .mean_dim(2); // [b, c, 1, 1]
    pooled.powf(p4.recip().expand([b, c, 1, 1])).reshape([b, c])
}

/// Generalised-mean pooling with a constant exponent.
///
/// # Shapes
/// - `x`: `[batch, channels, height, width]` → `[batch, channels]`
pub fn gem_scalar(x: Tensor<4>, p: f64, eps: f64) -> Tensor<2> {
    let [b, c, _, _] = x.dims();
    x.clamp_min(eps)
        .powf_scalar(p)
        .mean_dim(3)
        .mean_dim(2)
        .powf_scalar(1.0 / p)
        .reshape([b, c])
}

/// Maximum activations of convolutions (global max pooling).
///
/// # Shapes
/// - `x`: `[batch, channels, height, width]` → `[batch, channels]`
pub fn mac(x: Tensor<4>) -> Tensor<2> {
    let [b, c, _, _] = x.dims();
    x.max_dim(3).max_dim(2).reshape([b, c])
}

/// Sum-pooled convolutional features (global average pooling, as cirtorch computes it).
///
/// # Shapes
/// - `x`: `[batch, channels, height, width]` → `[batch, channels]`
pub fn spoc(x: Tensor<4>) -> Tensor<2> {
    let [b, c, _, _] = x.dims();
    x.mean_dim(3).mean_dim(2).reshape([b, c])
}

/// cirtorch's `L2N`: every row divided by its L2 norm plus `eps`.
///
/// # Shapes
/// - `x`: `[batch, dim]` → `[batch, dim]`
pub fn l2n(x: Tensor<2>, eps: f64) -> Tensor<2> {
    let norm = x.clone().powf_scalar(2.0).sum_dim(1).sqrt().add_scalar(eps);
    x.div(norm)
}

/// PyTorch's `F.normalize(x, p=2, dim)`: `x / max(‖x‖₂, eps)` along `dim`.
///
/// # Shapes
/// - `x`: any; the norm is taken along `dim`, the output has `x`'s shape
pub fn normalize<const D: usize>(x: Tensor<D>, dim: usize, eps: f64) -> Tensor<D> {
    let norm = x
        .clone()
        .powf_scalar(2.0)
        .sum_dim(dim)
        .sqrt()
        .clamp_min(eps);
    x.div(norm)
}

/// CosPlace's first aggregation layer: each spatial location's channel vector scaled to unit
/// length (`F.normalize(x, dim=1)`).
///
/// # Shapes
/// - `x`: `[batch, channels, height, width]` → same shape
pub fn channel_l2(x: Tensor<4>) -> Tensor<4> {
    normalize(x, 1, NORMALIZE_EPS)
}

/// Configuration of [`Gem`].
#[derive(Config, Debug)]
pub struct GemConfig {
    /// Initial exponent (cirtorch and CosPlace: 3).
    #[config(default = 3.0)]
    pub p: f64,
    /// Clamp floor.
    #[config(default = 1e-6)]
    pub eps: f64,
}

impl GemConfig {
    /// Builds the layer on `device`.
    pub fn init(&self, device: &Device) -> Gem {
        Gem {
            p: Param::from_tensor(Tensor::<1>::from_floats([self.p as f32], device)),
            eps: self.eps,
        }
    }
}

/// GeM pooling with one learnable exponent (`GeM.p = Parameter(ones(1) * 3)`).
#[derive(Module, Debug)]
pub struct Gem {
    /// The exponent, shape `[1]` (key `pool.p` in cirtorch, `aggregation.1.p` in CosPlace).
    pub p: Param<Tensor<1>>,
    /// Clamp floor.
    pub eps: f64,
}

impl Gem {
    /// # Shapes
    /// - `x`: `[batch, channels, height, width]` → `[batch, channels]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        gem(x, self.p.val(), self.eps)
    }

    /// The current exponent as a number.
    pub fn p_value(&self) -> f32 {
        self.p
            .val()
            .into_data()
            .try_into_vec_as::<f32>()
            .ok()
            .and_then(|v| v.first().copied())
            .unwrap_or(f32::NAN)
    }
}

/// The global pooling of a cirtorch network (`--pool`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Pooling {
    /// Generalised mean with a learnable exponent (the papers' choice).
    #[default]
    Gem,
    /// Global max pooling.
    Mac,
    /// Global average pooling.
    Spoc,
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn gem_with_p1_is_spoc_and_large_p_tends_to_mac() {
        let device = Device::default();
        let v: Vec<f32> = (0..2 * 3 * 4 * 5)
            .map(|i| ((i * 37 % 11) as f32) / 7.0 + 0.1)
            .collect();
        let x = Tensor::<4>::from_data(TensorData::new(v, [2, 3, 4, 5]), &device);
        let g1 = gem_scalar(x.clone(), 1.0, GEM_EPS);
        let err: f32 = (g1 - spoc(x.clone())).abs().max().into_scalar();
        assert!(err < 1e-6, "{err}");
        // (mean x^p)^(1/p) → max x as p → ∞; at p = 60 over 20 locations the gap is at most
        // max·(1 − 20^(-1/60)) < 0.049·max.
        let g = gem_scalar(x.clone(), 60.0, GEM_EPS);
        let m = mac(x);
        let rel: f32 = ((g - m.clone()).abs() / m).max().into_scalar();
        assert!(rel < 0.049, "{rel}");
    }

    #[test]
    fn l2n_of_zero_is_zero_and_normalize_has_unit_rows() {
        let device = Device::default();
        let x = Tensor::<2>::from_floats([[3.0, 4.0], [0.0, 0.0]], &device);
        let y = l2n(x.clone(), L2N_EPS)
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap();
        assert!((y[0] - 0.6).abs() < 1e-6 && (y[1] - 0.8).abs() < 1e-6);
        assert_eq!(&y[2..], &[0.0, 0.0]);
        let n = normalize(x, 1, NORMALIZE_EPS)
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap();
        assert!((n[0] - 0.6).abs() < 1e-7 && n[3] == 0.0);
    }
}
