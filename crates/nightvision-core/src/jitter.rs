//! torchvision's `ColorJitter` on tensors: brightness, contrast, saturation and hue, each with a
//! random factor, applied in a random order (`transforms.ColorJitter.forward`).
//!
//! The four adjustments are torchvision's tensor functions (`adjust_brightness`,
//! `adjust_contrast`, `adjust_saturation`, `adjust_hue`, with its `_rgb2hsv` / `_hsv2rgb`),
//! operation for operation, for RGB in `[0, 1]` (tests: `tests/jitter.rs` against torchvision
//! 0.14 to 1e-5):
//!
//! | adjustment | formula |
//! |---|---|
//! | brightness `f` | `clamp(f·x, 0, 1)` |
//! | contrast `f` | `clamp(f·x + (1 − f)·mean(gray(x)), 0, 1)`, the mean over the whole image |
//! | saturation `f` | `clamp(f·x + (1 − f)·gray(x), 0, 1)` per pixel |
//! | hue `h` | RGB → HSV, `H ← (H + h) mod 1`, HSV → RGB |
//!
//! with `gray = 0.2989 R + 0.587 G + 0.114 B`. [`ColorJitterConfig::sample`] draws what
//! `ColorJitter.get_params` draws: a permutation of the four, factors `U[max(0, 1 − b), 1 + b]`
//! for brightness, contrast and saturation and `U[−h, h]` for the hue; a strength of 0 leaves its
//! adjustment out. [`ColorJitter`] draws new parameters for every image of a batch, as CosPlace's
//! `DeviceAgnosticColorJitter` does.
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use nightvision_core::jitter::{ColorJitterConfig, JitterParams};
//!
//! let device = Device::default();
//! let x = Tensor::<4>::full([1, 3, 4, 4], 0.5, &device);
//! // brightness ×1.2 only
//! let p = JitterParams { order: [0, 1, 2, 3], brightness: Some(1.2), contrast: None, saturation: None, hue: None };
//! let y: f32 = p.apply(x).mean().into_scalar();
//! assert!((y - 0.6).abs() < 1e-6);
//!
//! let cfg = ColorJitterConfig::cosplace(); // 0.7, 0.7, 0.7, hue 0.5
//! let p = cfg.sample(&mut nightvision_core::rng::seeded(0));
//! assert!(p.brightness.is_some_and(|b| (0.3..=1.7).contains(&b)));
//! ```

use burn::config::Config;
use burn::tensor::Tensor;

use crate::augment::Augmentation;
use crate::error::CoreError;
use crate::rng::{Rng, RngCore};

/// Strengths of [`ColorJitter`] (torchvision's arguments; 0 leaves an adjustment out).
#[derive(Config, Debug, PartialEq)]
pub struct ColorJitterConfig {
    /// Brightness factor drawn from `U[max(0, 1 − b), 1 + b]`.
    #[config(default = 0.0)]
    pub brightness: f64,
    /// Contrast factor drawn from `U[max(0, 1 − c), 1 + c]`.
    #[config(default = 0.0)]
    pub contrast: f64,
    /// Saturation factor drawn from `U[max(0, 1 − s), 1 + s]`.
    #[config(default = 0.0)]
    pub saturation: f64,
    /// Hue shift drawn from `U[−h, h]`, `0 ≤ h ≤ 0.5`.
    #[config(default = 0.0)]
    pub hue: f64,
}

impl ColorJitterConfig {
    /// CosPlace's training defaults (`--brightness 0.7 --contrast 0.7 --saturation 0.7 --hue
    /// 0.5`, docs/PAPERS.md B.5).
    pub fn cosplace() -> Self {
        Self::new()
            .with_brightness(0.7)
            .with_contrast(0.7)
            .with_saturation(0.7)
            .with_hue(0.5)
    }

    /// Similarity Min-Max's classification jitter (`ColorJitter(0.3, 0.3, 0.3, 0.3)`,
    /// docs/PAPERS.md C.3).
    pub fn smm_classification() -> Self {
        Self::new()
            .with_brightness(0.3)
            .with_contrast(0.3)
            .with_saturation(0.3)
            .with_hue(0.3)
    }

    /// Checks the strengths.
    ///
    /// # Errors
    /// [`CoreError::InvalidArgument`] for a negative or non-finite strength, or a hue above 0.5.
    pub fn validate(&self) -> crate::error::Result<()> {
        for (name, v) in [
            ("brightness", self.brightness),
            ("contrast", self.contrast),
            ("saturation", self.saturation),
            ("hue", self.hue),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(CoreError::InvalidArgument {
                    name,
                    reason: format!("{v}: a colour-jitter strength must be finite and ≥ 0"),
                });
            }
        }
        if self.hue > 0.5 {
            return Err(CoreError::InvalidArgument {
                name: "hue",
                reason: format!("{}: the hue strength is at most 0.5", self.hue),
            });
        }
        Ok(())
    }

    /// Whether every adjustment is left out.
    pub fn is_identity(&self) -> bool {
        self.brightness == 0.0 && self.contrast == 0.0 && self.saturation == 0.0 && self.hue == 0.0
    }

    /// Draws one image's parameters (`ColorJitter.get_params`): the order, then the factors of
    /// brightness, contrast, saturation and hue.
    pub fn sample<R: RngCore + ?Sized>(&self, rng: &mut R) -> JitterParams {
        let mut order = [0usize, 1, 2, 3];
        for i in (1..4).rev() {
            let j = rng.random_range(0..=i);
            order.swap(i, j);
        }
        let mut factor = |s: f64| {
            (s > 0.0).then(|| {
                let lo = (1.0 - s).max(0.0);
                lo + rng.random::<f64>() * (1.0 + s - lo)
            })
        };
        let brightness = factor(self.brightness);
        let contrast = factor(self.contrast);
        let saturation = factor(self.saturation);
        let hue = (self.hue > 0.0).then(|| (rng.random::<f64>() * 2.0 - 1.0) * self.hue);
        JitterParams {
            order,
            brightness,
            contrast,
            saturation,
            hue,
        }
    }
}

/// One draw of [`ColorJitterConfig::sample`]: the order of the adjustments (0 brightness,
/// 1 contrast, 2 saturation, 3 hue) and their factors (`None`: left out).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JitterParams {
    /// The order in which the adjustments run (a permutation of 0..4).
    pub order: [usize; 4],
    /// Brightness factor.
    pub brightness: Option<f64>,
    /// Contrast factor.
    pub contrast: Option<f64>,
    /// Saturation factor.
    pub saturation: Option<f64>,
    /// Hue shift in `[−0.5, 0.5]`.
    pub hue: Option<f64>,
}

impl JitterParams {
    /// Applies the adjustments in their order to every image of `x` (the same factors for all).
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, height, width]` in `[0, 1]` → the same shape
    pub fn apply(&self, mut x: Tensor<4>) -> Tensor<4> {
        for k in self.order {
            x = match k {
                0 => match self.brightness {
                    Some(f) => adjust_brightness(x, f),
                    None => x,
                },
                1 => match self.contrast {
                    Some(f) => adjust_contrast(x, f),
                    None => x,
                },
                2 => match self.saturation {
                    Some(f) => adjust_saturation(x, f),
                    None => x,
                },
                _ => match self.hue {
                    Some(h) => adjust_hue(x, h),
                    None => x,
                },
            };
        }
        x
    }
}

/// `gray = 0.2989 R + 0.587 G + 0.114 B` (`rgb_to_grayscale`, one channel).
///
/// # Shapes
/// - `x`: `[batch, 3, height, width]` → `[batch, 1, height, width]`
pub fn rgb_to_grayscale(x: Tensor<4>) -> Tensor<4> {
    let [r, g, b] = channels(&x);
    r.mul_scalar(0.2989) + g.mul_scalar(0.587) + b.mul_scalar(0.114)
}

/// The three channels of `[batch, 3, height, width]`, each `[batch, 1, height, width]`.
fn channels(x: &Tensor<4>) -> [Tensor<4>; 3] {
    let [b, _, h, w] = x.dims();
    [0, 1, 2].map(|i| x.clone().slice([0..b, i..i + 1, 0..h, 0..w]))
}

/// `clamp(ratio·x + (1 − ratio)·other, 0, 1)` (torchvision's `_blend` for float images).
fn blend(x: Tensor<4>, other: Tensor<4>, ratio: f64) -> Tensor<4> {
    (x.mul_scalar(ratio) + other.mul_scalar(1.0 - ratio)).clamp(0.0, 1.0)
}

/// `clamp(f·x, 0, 1)` (`adjust_brightness`).
///
/// # Shapes
/// - `x`: `[batch, 3, height, width]` → the same shape
pub fn adjust_brightness(x: Tensor<4>, factor: f64) -> Tensor<4> {
    x.mul_scalar(factor).clamp(0.0, 1.0)
}

/// `clamp(f·x + (1 − f)·mean(gray(x)), 0, 1)`, the mean per image (`adjust_contrast`).
///
/// # Shapes
/// - `x`: `[batch, 3, height, width]` → the same shape
pub fn adjust_contrast(x: Tensor<4>, factor: f64) -> Tensor<4> {
    let mean = rgb_to_grayscale(x.clone())
        .mean_dim(3)
        .mean_dim(2)
        .mean_dim(1);
    // `[batch, 1, 1, 1]`, broadcast over the image in the blend
    blend(x, mean, factor)
}

/// `clamp(f·x + (1 − f)·gray(x), 0, 1)` per pixel (`adjust_saturation`).
///
/// # Shapes
/// - `x`: `[batch, 3, height, width]` → the same shape
pub fn adjust_saturation(x: Tensor<4>, factor: f64) -> Tensor<4> {
    let gray = rgb_to_grayscale(x.clone());
    blend(x, gray, factor)
}

/// Hue shift by `h ∈ [−0.5, 0.5]` of a turn through HSV (`adjust_hue`).
///
/// # Shapes
/// - `x`: `[batch, 3, height, width]` in `[0, 1]` → the same shape
pub fn adjust_hue(x: Tensor<4>, h: f64) -> Tensor<4> {
    let [hue, s, v] = rgb_to_hsv(x);
    let hue = hue.add_scalar(h);
    let hue = hue.clone() - hue.floor();
    hsv_to_rgb(hue, s, v)
}

/// torchvision's `_rgb2hsv`: `[H, S, V]`, each `[batch, 1, height, width]`, `H ∈ [0, 1)`.
///
/// # Shapes
/// - `x`: `[batch, 3, height, width]`
pub fn rgb_to_hsv(x: Tensor<4>) -> [Tensor<4>; 3] {
    let [r, g, bl] = channels(&x);
    let maxc = x.clone().max_dim(1);
    let minc = x.min_dim(1);
    let eqc = maxc.clone().equal(minc.clone());
    let cr = maxc.clone() - minc;
    let ones = maxc.ones_like();
    let s = cr.clone() / maxc.clone().mask_where(eqc.clone(), ones.clone());
    let cr_divisor = cr.mask_where(eqc, ones);
    let rc = (maxc.clone() - r.clone()) / cr_divisor.clone();
    let gc = (maxc.clone() - g.clone()) / cr_divisor.clone();
    let bc = (maxc.clone() - bl) / cr_divisor;
    let is_r = maxc.clone().equal(r);
    let is_g = maxc.clone().equal(g);
    let hr = (bc.clone() - gc.clone()).mul(is_r.clone().float());
    let hg = (rc.clone() - bc)
        .add_scalar(2.0)
        .mul(is_g.clone().float().mul(is_r.clone().bool_not().float()));
    let hb = (gc - rc)
        .add_scalar(4.0)
        .mul(is_g.bool_not().float().mul(is_r.bool_not().float()));
    let hue = (hr + hg + hb).div_scalar(6.0).add_scalar(1.0);
    let hue = hue.clone() - hue.floor();
    [hue, s, maxc]
}

/// torchvision's `_hsv2rgb`: RGB `[batch, 3, height, width]` from `H, S, V` of
/// `[batch, 1, height, width]` each.
pub fn hsv_to_rgb(hue: Tensor<4>, s: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    let h6 = hue.mul_scalar(6.0);
    let i = h6.clone().floor();
    let f = h6 - i.clone();
    // i mod 6 (i ∈ [0, 6] for H ∈ [0, 1], so this maps 6 to 0)
    let i = i.clone() - i.div_scalar(6.0).floor().mul_scalar(6.0);
    let p = (v.clone() * s.clone().neg().add_scalar(1.0)).clamp(0.0, 1.0);
    let q = (v.clone() * (s.clone() * f.clone()).neg().add_scalar(1.0)).clamp(0.0, 1.0);
    let t = (v.clone() * (s * f.neg().add_scalar(1.0)).neg().add_scalar(1.0)).clamp(0.0, 1.0);
    let pick = |values: [&Tensor<4>; 6]| {
        let mut out = v.zeros_like();
        for (k, val) in values.into_iter().enumerate() {
            let mask = i.clone().equal_elem(k as f64).float();
            out = out + mask * val.clone();
        }
        out
    };
    let r = pick([&v, &q, &p, &p, &t, &v]);
    let g = pick([&t, &v, &v, &q, &p, &p]);
    let b = pick([&p, &p, &t, &v, &v, &q]);
    Tensor::cat(vec![r, g, b], 1)
}

/// `ColorJitter` as an [`Augmentation`]: new parameters for every image of a batch, drawn from
/// the trainer's stream (CosPlace's `DeviceAgnosticColorJitter`).
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use nightvision_core::augment::Augmentation;
/// use nightvision_core::jitter::{ColorJitter, ColorJitterConfig};
///
/// let device = Device::default();
/// let jitter = ColorJitter::new(ColorJitterConfig::cosplace())?;
/// let x = Tensor::<4>::full([2, 3, 8, 8], 0.4, &device);
/// let y = jitter.augment(x, &mut nightvision_core::rng::seeded(1))?;
/// assert_eq!(y.dims(), [2, 3, 8, 8]);
/// # Ok::<(), nightvision_core::CoreError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ColorJitter {
    config: ColorJitterConfig,
}

impl ColorJitter {
    /// A jitter with checked strengths.
    ///
    /// # Errors
    /// [`CoreError::InvalidArgument`] (see [`ColorJitterConfig::validate`]).
    pub fn new(config: ColorJitterConfig) -> crate::error::Result<Self> {
        config.validate()?;
        Ok(Self { config })
    }

    /// The strengths.
    pub fn config(&self) -> &ColorJitterConfig {
        &self.config
    }

    /// Jitters every image of `x` with its own parameters drawn from `rng` (in batch order).
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, height, width]` in `[0, 1]` → the same shape
    pub fn apply<R: RngCore + ?Sized>(&self, x: Tensor<4>, rng: &mut R) -> Tensor<4> {
        let [b, _, h, w] = x.dims();
        if self.config.is_identity() || b == 0 {
            return x;
        }
        let xs = (0..b)
            .map(|i| {
                let p = self.config.sample(rng);
                p.apply(x.clone().slice([i..i + 1, 0..3, 0..h, 0..w]))
            })
            .collect();
        Tensor::cat(xs, 0)
    }
}

impl Augmentation for ColorJitter {
    fn augment(&self, x: Tensor<4>, rng: &mut dyn RngCore) -> crate::error::Result<Tensor<4>> {
        let d = x.dims();
        if d[1] != 3 || d[2] == 0 || d[3] == 0 {
            return Err(CoreError::Augmentation {
                what: "colour jitter",
                message: format!("expected [B, 3, H, W] images, got {d:?}"),
            });
        }
        Ok(self.apply(x, rng))
    }
}
