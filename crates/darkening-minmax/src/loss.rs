//! The losses that train the darkening module D (docs/PAPERS.md C.2), exactly as the reference code
//! (`darkening/loss_func.py`, `darkening/darken_vpr.py`) computes them:
//!
//! | term | function | weight | formula |
//! |---|---|---|---|
//! | `L_sim` (minimised) | [`similarity_loss`] | 0.1 | `mean_{b,h,w} ⟨F(I)/‖·‖, F(D)/‖·‖⟩` (norm over channels) |
//! | `L_exp` | [`exposure_loss`] | 10 | `mean((AvgPool_p(mean_c D) − E)²)` |
//! | `L_col` | [`colour_loss`] | 25 | `mean_b sqrt(Drg² + Drb² + Dgb²)` of the channel means |
//! | `L_ltv(A)` | [`loose_tv_loss`] | 1600 | `2·(Σ h(Δ_y A)²/((H−1)W) + Σ h(Δ_x A)²/(H(W−1)))/batch` |
//! | `L_flex(B)` | [`flex_loss`] | 5 | `mean(1 − B)` |
//!
//! with `h(d) = clamp(α − ||d| − α|, 0, 1)`, `α` = `tv_mid` = 0.02.
//!
//! ⚠ The paper's Eq. 6 writes the exposure loss as an L1 sum over patches; the code takes the
//! mean squared error per pixel (`patch_size` 1). The paper's Eq. 5 compares global features; the
//! code averages a per-location cosine over the last feature map. We follow the code.

use burn::config::Config;
use burn::nn::pool::AvgPool2dConfig;
use burn::tensor::Tensor;

use crate::{DarkeningError, DarkeningOutput};

/// Floor of the L2 norm in [`similarity_loss`] (PyTorch `F.normalize`'s `eps`).
pub const NORMALIZE_EPS: f64 = 1e-12;

/// The similarity loss `L_sim^D`: the cosine between the day and the darkened feature vector at
/// every location, averaged over batch and locations (`L_sim` in `loss_func.py`). D minimises it.
///
/// # Shapes
/// - `day`, `dark`: `[batch, channels, height, width]` (the feature extractor's last map)
/// - output: `[1]`
pub fn similarity_loss(day: Tensor<4>, dark: Tensor<4>) -> Tensor<1> {
    let normalize = |x: Tensor<4>| {
        let norm = x
            .clone()
            .square()
            .sum_dim(1)
            .sqrt()
            .clamp_min(NORMALIZE_EPS);
        x / norm
    };
    (normalize(day) * normalize(dark)).sum_dim(1).mean()
}

/// The exposure control loss `L_exp` (unweighted): the channel mean of the darkened image,
/// average-pooled over `patch_size × patch_size` patches (stride = patch, floor mode), against the
/// target exposure, as a mean squared error.
///
/// # Shapes
/// - `image`: `[batch, 3, height, width]`, the darkened image `D(I, E)`
/// - `exposure`: `[batch, 1, 1, 1]` (one value per image, as in training) or
///   `[batch, 1, height / patch, width / patch]`
/// - output: `[1]`
pub fn exposure_loss(image: Tensor<4>, exposure: Tensor<4>, patch_size: usize) -> Tensor<1> {
    let mean = image.mean_dim(1); // [B, 1, H, W]
    let pooled = if patch_size > 1 {
        AvgPool2dConfig::new([patch_size, patch_size])
            .with_strides([patch_size, patch_size])
            .init()
            .forward(mean)
    } else {
        mean
    };
    let [b, _, h, w] = pooled.dims();
    (pooled - exposure.expand([b, 1, h, w])).square().mean()
}

/// The colour constancy loss `L_col` of Zero-DCE (unweighted): per image, the squared
/// differences of the RGB channel means `Drg = (mr − mg)²`, `Drb = (mr − mb)²`, `Dgb = (mb − mg)²`,
/// `k = sqrt(Drg² + Drb² + Dgb²)`, averaged over the batch.
///
/// As in the reference, the gradient is not finite for an image whose three channel means are
/// exactly equal (the square root at 0).
///
/// # Shapes
/// - `image`: `[batch, 3, height, width]`
/// - output: `[1]`
pub fn colour_loss(image: Tensor<4>) -> Tensor<1> {
    let m = image.mean_dim(3).mean_dim(2); // [B, 3, 1, 1]
    let r = m.clone().narrow(1, 0, 1);
    let g = m.clone().narrow(1, 1, 1);
    let b = m.narrow(1, 2, 1);
    let drg = (r.clone() - g.clone()).square();
    let drb = (r - b.clone()).square();
    let dgb = (b - g).square();
    (drg.square() + drb.square() + dgb.square()).sqrt().mean()
}

/// The loose total-variation loss `L_ltv` on the curve parameters `A` (unweighted):
/// `h(d) = clamp(α − ||d| − α|, 0, 1)` on vertical and horizontal neighbour differences, and
/// `2·(Σ h(Δ_y)²/((H−1)·W) + Σ h(Δ_x)²/(H·(W−1))) / batch` with the sums over batch, channels and
/// positions. Differences larger than `2α` cost nothing: `A` may change sharply at edges.
///
/// # Shapes
/// - `alpha`: `[batch, channels, height, width]` with `height, width ≥ 2` (the counts are 0
///   otherwise and the result is not finite, as in the reference)
/// - output: `[1]`
pub fn loose_tv_loss(alpha: Tensor<4>, mid: f64) -> Tensor<1> {
    let [b, c, h, w] = alpha.dims();
    let loose = |d: Tensor<4>| {
        d.abs()
            .sub_scalar(mid)
            .abs()
            .neg()
            .add_scalar(mid)
            .clamp(0.0, 1.0)
            .square()
            .sum()
    };
    let dy = alpha.clone().slice([0..b, 0..c, 1..h, 0..w])
        - alpha.clone().slice([0..b, 0..c, 0..h - 1, 0..w]);
    let dx =
        alpha.clone().slice([0..b, 0..c, 0..h, 1..w]) - alpha.slice([0..b, 0..c, 0..h, 0..w - 1]);
    let count_h = ((h - 1) * w) as f64;
    let count_w = (h * (w - 1)) as f64;
    (loose(dy).div_scalar(count_h) + loose(dx).div_scalar(count_w)).mul_scalar(2.0 / b as f64)
}

/// The flexibility loss `L_flex` on the scales `B` (unweighted): `mean(1 − B)` (`L_down`).
///
/// # Shapes
/// - `beta`: any shape → output `[1]`
pub fn flex_loss<const D: usize>(beta: Tensor<D>) -> Tensor<1> {
    beta.neg().add_scalar(1.0).mean()
}

/// The weights of the five terms of `L_D` (docs/PAPERS.md C.2; the `darken_vpr.py` defaults).
#[derive(Config, Debug)]
pub struct DarkeningLossWeights {
    /// Weight of `L_sim` (`sim_weight`, 0.1).
    #[config(default = 0.1)]
    pub sim: f64,
    /// Weight of `L_exp` (`exp_weight`, 10).
    #[config(default = 10.0)]
    pub exposure: f64,
    /// Weight of `L_col` (`color_weight`, 25).
    #[config(default = 25.0)]
    pub colour: f64,
    /// Weight of `L_ltv` (`tv_weight`, 1600).
    #[config(default = 1600.0)]
    pub tv: f64,
    /// Weight of `L_flex` (`down_weight`, 5).
    #[config(default = 5.0)]
    pub flex: f64,
}

/// The five unweighted terms of `L_D`, each `[1]`.
#[derive(Debug, Clone)]
pub struct DarkeningLossTerms {
    /// [`similarity_loss`].
    pub sim: Tensor<1>,
    /// [`exposure_loss`].
    pub exposure: Tensor<1>,
    /// [`colour_loss`].
    pub colour: Tensor<1>,
    /// [`loose_tv_loss`].
    pub tv: Tensor<1>,
    /// [`flex_loss`].
    pub flex: Tensor<1>,
}

/// `L_D`: its unweighted terms (for logging) and the weighted sum.
#[derive(Debug, Clone)]
pub struct DarkeningLoss {
    /// The unweighted terms.
    pub terms: DarkeningLossTerms,
    /// `Σ weight · term`, `[1]`.
    pub total: Tensor<1>,
}

/// [`DarkeningLoss`] read back to the host.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DarkeningLossValues {
    /// Unweighted `L_sim`.
    pub sim: f32,
    /// Unweighted `L_exp`.
    pub exposure: f32,
    /// Unweighted `L_col`.
    pub colour: f32,
    /// Unweighted `L_ltv`.
    pub tv: f32,
    /// Unweighted `L_flex`.
    pub flex: f32,
    /// The weighted sum.
    pub total: f32,
}

impl DarkeningLoss {
    /// The terms and the total as numbers (one device read each).
    pub fn values(&self) -> DarkeningLossValues {
        let v = |t: &Tensor<1>| t.clone().into_scalar::<f32>();
        DarkeningLossValues {
            sim: v(&self.terms.sim),
            exposure: v(&self.terms.exposure),
            colour: v(&self.terms.colour),
            tv: v(&self.terms.tv),
            flex: v(&self.terms.flex),
            total: v(&self.total),
        }
    }
}

impl DarkeningLossWeights {
    /// Weights the terms: `sim·L_sim + exposure·L_exp + colour·L_col + tv·L_ltv + flex·L_flex`.
    pub fn total(&self, terms: DarkeningLossTerms) -> DarkeningLoss {
        let total = terms.sim.clone().mul_scalar(self.sim)
            + terms.exposure.clone().mul_scalar(self.exposure)
            + terms.colour.clone().mul_scalar(self.colour)
            + terms.tv.clone().mul_scalar(self.tv)
            + terms.flex.clone().mul_scalar(self.flex);
        DarkeningLoss { terms, total }
    }

    /// [`DarkeningLossValues::total`] recomputed from host values of the terms.
    pub fn weigh(&self, v: &DarkeningLossValues) -> f64 {
        self.sim * f64::from(v.sim)
            + self.exposure * f64::from(v.exposure)
            + self.colour * f64::from(v.colour)
            + self.tv * f64::from(v.tv)
            + self.flex * f64::from(v.flex)
    }
}

/// Configuration of `L_D` (docs/PAPERS.md C.2): weights, the loose-TV threshold and the exposure patch.
#[derive(Config, Debug)]
pub struct DarkeningLossConfig {
    /// The term weights.
    #[config(default = "DarkeningLossWeights::new()")]
    pub weights: DarkeningLossWeights,
    /// `α` of the loose TV (`tv_mid`, 0.02).
    #[config(default = 0.02)]
    pub tv_mid: f64,
    /// Patch side of the exposure loss (`patch_size`, 1).
    #[config(default = 1)]
    pub patch_size: usize,
}

impl DarkeningLossConfig {
    /// Checks the configuration.
    ///
    /// # Errors
    /// [`DarkeningError::Config`] for a zero patch, a negative or non-finite weight or `tv_mid`.
    pub fn validate(&self) -> crate::Result<()> {
        if self.patch_size == 0 {
            return Err(DarkeningError::config("patch_size", "must be positive"));
        }
        let w = &self.weights;
        for (name, v) in [
            ("weights", w.sim),
            ("weights", w.exposure),
            ("weights", w.colour),
            ("weights", w.tv),
            ("weights", w.flex),
            ("tv_mid", self.tv_mid),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(DarkeningError::config(
                    name,
                    format!("{v} must be finite and ≥ 0"),
                ));
            }
        }
        Ok(())
    }

    /// `L_D` of one darkening step.
    ///
    /// # Shapes
    /// - `out`: the network's output on `[batch, 3, height, width]` images
    /// - `exposure`: the target exposure, `[batch, 1, 1, 1]` or `[batch, 1, height / patch,
    ///   width / patch]`
    /// - `feat_day`, `feat_dark`: the frozen extractor's maps of the day and the darkened images,
    ///   `[batch, channels, h, w]`
    ///
    /// # Errors
    /// [`DarkeningError::Shape`] when the image is smaller than 2×2 or the patch, or the tensors
    /// do not fit together.
    pub fn forward(
        &self,
        out: &DarkeningOutput,
        exposure: Tensor<4>,
        feat_day: Tensor<4>,
        feat_dark: Tensor<4>,
    ) -> crate::Result<DarkeningLoss> {
        let [b, c, h, w] = out.image.dims();
        let p = self.patch_size.max(1);
        if h < 2.max(p) || w < 2.max(p) {
            return Err(DarkeningError::shape(
                "darkened image",
                format!("[B, 3, H, W] with H, W ≥ max(2, patch {p})"),
                &out.image.dims(),
            ));
        }
        if out.alpha.dims() != [b, c, h, w] || out.beta.dims() != [b, c, h, w] {
            return Err(DarkeningError::shape(
                "A and B",
                format!("{:?}", [b, c, h, w]),
                &out.alpha.dims(),
            ));
        }
        let e = exposure.dims();
        if e != [b, 1, 1, 1] && e != [b, 1, h / p, w / p] {
            return Err(DarkeningError::shape(
                "exposure",
                format!("[{b}, 1, 1, 1] or [{b}, 1, {}, {}]", h / p, w / p),
                &e,
            ));
        }
        let (fd, fk) = (feat_day.dims(), feat_dark.dims());
        if fd != fk || fd[0] != b {
            return Err(DarkeningError::shape(
                "dark features",
                format!("{fd:?} (the day features' shape, batch {b})"),
                &fk,
            ));
        }
        let terms = DarkeningLossTerms {
            sim: similarity_loss(feat_day, feat_dark),
            exposure: exposure_loss(out.image.clone(), exposure, p),
            colour: colour_loss(out.image.clone()),
            tv: loose_tv_loss(out.alpha.clone(), self.tv_mid),
            flex: flex_loss(out.beta.clone()),
        };
        Ok(self.weights.total(terms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn scalar(t: Tensor<1>) -> f32 {
        t.into_scalar()
    }

    #[test]
    fn defaults_are_the_reference_arguments() {
        let c = DarkeningLossConfig::new();
        let w = &c.weights;
        assert_eq!(
            (w.sim, w.exposure, w.colour, w.tv, w.flex),
            (0.1, 10.0, 25.0, 1600.0, 5.0)
        );
        assert_eq!((c.tv_mid, c.patch_size), (0.02, 1));
        assert!(c.validate().is_ok());
        assert!(c.clone().with_patch_size(0).validate().is_err());
    }

    #[test]
    fn closed_forms() {
        let device = Device::default();
        // Identical features: cosine 1 everywhere.
        let f = Tensor::<4>::random(
            [2, 5, 3, 3],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        assert!((scalar(similarity_loss(f.clone(), f.clone())) - 1.0).abs() < 1e-6);
        assert!((scalar(similarity_loss(f.clone(), f.neg())) + 1.0).abs() < 1e-6);
        // A grey image at 0.3 against E = 0.1: (0.2)² = 0.04; colour loss 0.
        let grey = Tensor::<4>::full([2, 3, 4, 4], 0.3, &device);
        let e = Tensor::<4>::full([2, 1, 1, 1], 0.1, &device);
        assert!((scalar(exposure_loss(grey.clone(), e.clone(), 1)) - 0.04).abs() < 1e-7);
        assert!((scalar(exposure_loss(grey.clone(), e, 2)) - 0.04).abs() < 1e-7);
        assert!(scalar(colour_loss(grey)).abs() < 1e-12);
        // Colour: means (1, 0, 0): Drg = Drb = 1, Dgb = 0 → k = sqrt(2).
        let red = Tensor::<4>::cat(
            vec![
                Tensor::ones([1, 1, 2, 2], &device),
                Tensor::zeros([1, 2, 2, 2], &device),
            ],
            1,
        );
        assert!((scalar(colour_loss(red)) - 2f32.sqrt()).abs() < 1e-6);
        // Loose TV on a 2×2 map with a step of d = α between the columns: Δx holds two
        // differences of α (h = α each, count H(W−1) = 2), Δy only zeros (h = 0).
        let a2 = Tensor::<4>::from_floats([[[[0.0, 0.02], [0.0, 0.02]]]], &device);
        let want = 2.0 * (2.0 * 0.0004 / 2.0) / 1.0;
        assert!((f64::from(scalar(loose_tv_loss(a2, 0.02))) - want).abs() < 1e-9);
        // Differences beyond 2α are free.
        let a3 = Tensor::<4>::from_floats([[[[0.0, 0.5], [0.0, 0.5]]]], &device);
        assert!(scalar(loose_tv_loss(a3, 0.02)).abs() < 1e-12);
        // Flex.
        let b = Tensor::<4>::full([1, 3, 2, 2], 0.96, &device);
        assert!((scalar(flex_loss(b)) - 0.04).abs() < 1e-6);
    }

    #[test]
    fn total_weighs_every_term() {
        let device = Device::default();
        let t = |v: f32| Tensor::<1>::from_floats([v], &device);
        let w = DarkeningLossWeights::new();
        let loss = w.total(DarkeningLossTerms {
            sim: t(0.5),
            exposure: t(0.02),
            colour: t(0.1),
            tv: t(0.001),
            flex: t(0.03),
        });
        let want = 0.1 * 0.5 + 10.0 * 0.02 + 25.0 * 0.1 + 1600.0 * 0.001 + 5.0 * 0.03;
        let v = loss.values();
        assert!(
            (f64::from(v.total) - want).abs() < 1e-5,
            "{} vs {want}",
            v.total
        );
        assert!((w.weigh(&v) - want).abs() < 1e-5);
        assert_eq!((v.sim, v.flex), (0.5, 0.03));
    }
}
