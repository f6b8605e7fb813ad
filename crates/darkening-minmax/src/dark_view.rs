//! The dark view of model-level similarity maximisation (docs/PAPERS.md C.3): a frozen darkening
//! network applied with a random, slightly non-uniform exposure map
//!
//! ```text
//! E′ = U(0, e_max)  (one value per image)
//!    + resize_bilinear(N(0, σ²) at (H / f, W / f), (H, W))     ("patch" noise)
//!    + N(0, σ²) at (H, W)                                       ("pixel" noise)
//! ```
//!
//! with `e_max = 0.2`, `σ = 0.025` (`noise_mode pixel_patch`, `noise_intensity 0.025`) and
//! `f = 32` for VPR (`train_night.py`) or 16 for classification (`classification/train.py`).
//! The upsampling is PyTorch's bilinear with `align_corners = false` (torchvision `TF.resize` on
//! a tensor), through [`resize_bilinear`]. `H / f` is floored as in the reference; a side smaller
//! than `f` gets one noise cell (the reference would fail there).
//!
//! Random numbers come from the caller's generator (a seeded [`nightvision_core::rng`] stream), so
//! a dark view is reproducible and a resumed run draws the same views.
//!
//! ⚠ Paper §4.4 says the darkened image is an extra *positive*; the VPR code darkens a copy of
//! the *query* (`input[q][1]`). This module only makes the view; which image it is applied to is
//! the trainer's choice (`metric-learning`'s `AugmentHooks::query_copy` follows the code).

use burn::config::Config;
use burn::tensor::{Device, Tensor, TensorData};
use nightvision_core::image::resize_bilinear;
use nightvision_core::rng::{Rng, RngCore, normals};

use crate::{DarkeningError, DarkeningNet, exposure_map};

/// Configuration of the dark view (defaults: VPR, `train_night.py`).
#[derive(Config, Debug)]
pub struct DarkViewConfig {
    /// Upper bound of the per-image exposure `U(0, max_exposure)` (`exp_range 0-0.2`).
    #[config(default = 0.2)]
    pub max_exposure: f64,
    /// Standard deviation σ of both noises (`noise_intensity`, 0.025).
    #[config(default = 0.025)]
    pub noise_std: f64,
    /// Downsampling factor of the patch noise: 32 for VPR, 16 for classification.
    #[config(default = 32)]
    pub patch_factor: usize,
    /// Add the patch noise (`'patch' in noise_mode`).
    #[config(default = true)]
    pub patch_noise: bool,
    /// Add the pixel noise (`'pixel' in noise_mode`).
    #[config(default = true)]
    pub pixel_noise: bool,
}

impl DarkViewConfig {
    /// The VPR dark view (`train_night.py`): patch factor 32.
    pub fn vpr() -> Self {
        Self::new()
    }

    /// The classification dark view (`classification/train.py`): patch factor 16.
    pub fn classification() -> Self {
        Self::new().with_patch_factor(16)
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`DarkeningError::Config`] for a zero patch factor, a negative or non-finite exposure bound
    /// or standard deviation.
    pub fn validate(&self) -> crate::Result<()> {
        if self.patch_factor == 0 {
            return Err(DarkeningError::config("patch_factor", "must be positive"));
        }
        if !(self.max_exposure.is_finite() && self.max_exposure >= 0.0) {
            return Err(DarkeningError::config(
                "max_exposure",
                format!("{} must be finite and ≥ 0", self.max_exposure),
            ));
        }
        if !(self.noise_std.is_finite() && self.noise_std >= 0.0) {
            return Err(DarkeningError::config(
                "noise_std",
                format!("{} must be finite and ≥ 0", self.noise_std),
            ));
        }
        Ok(())
    }

    /// The side lengths of the patch-noise grid for an image of `size = [height, width]`:
    /// `max(1, side / patch_factor)`.
    pub fn patch_grid(&self, size: [usize; 2]) -> [usize; 2] {
        let f = self.patch_factor.max(1);
        size.map(|s| (s / f).max(1))
    }

    /// Draws the random parts of a dark view for `batch` images of `size = [height, width]`, in
    /// the reference's order (exposures, patch noise, pixel noise).
    pub fn sample<R: RngCore + ?Sized>(
        &self,
        batch: usize,
        size: [usize; 2],
        rng: &mut R,
        device: &Device,
    ) -> DarkViewNoise {
        let exposure: Vec<f32> = (0..batch)
            .map(|_| (rng.random::<f64>() * self.max_exposure) as f32)
            .collect();
        let mut normal = |shape: [usize; 4]| {
            let n = shape.iter().product();
            let v = normals(rng, n, self.noise_std);
            Tensor::<4>::from_data(TensorData::new(v, shape), device)
        };
        let [ph, pw] = self.patch_grid(size);
        let patch = self.patch_noise.then(|| normal([batch, 1, ph, pw]));
        let pixel = self
            .pixel_noise
            .then(|| normal([batch, 1, size[0], size[1]]));
        DarkViewNoise {
            exposure,
            patch,
            pixel,
        }
    }
}

/// The random parts of one dark view.
#[derive(Debug, Clone)]
pub struct DarkViewNoise {
    /// One exposure per image, `U(0, max_exposure)`.
    pub exposure: Vec<f32>,
    /// The patch noise `[batch, 1, H / f, W / f]`, if enabled.
    pub patch: Option<Tensor<4>>,
    /// The pixel noise `[batch, 1, H, W]`, if enabled.
    pub pixel: Option<Tensor<4>>,
}

impl DarkViewNoise {
    /// The exposure map `E′ = E + resize_bilinear(patch) + pixel`.
    ///
    /// # Shapes
    /// - output: `[batch, 1, size[0], size[1]]` (on the noise tensors' device, or `device` if
    ///   there is no noise)
    pub fn exposure_map(&self, size: [usize; 2], device: &Device) -> Tensor<4> {
        let mut e = exposure_map(&self.exposure, size, device);
        if let Some(p) = &self.patch {
            e = e + resize_bilinear(p.clone(), size);
        }
        if let Some(p) = &self.pixel {
            e = e + p.clone();
        }
        e
    }
}

/// A frozen darkening network with a dark-view configuration: the image transformation of
/// model-level similarity maximisation (docs/PAPERS.md C.3).
#[derive(Debug)]
pub struct DarkView {
    /// The (frozen) darkening network.
    pub net: DarkeningNet,
    /// The exposure and noise configuration.
    pub config: DarkViewConfig,
}

impl DarkView {
    /// A dark view with a checked configuration.
    ///
    /// # Errors
    /// [`DarkeningError::Config`] (see [`DarkViewConfig::validate`]).
    pub fn new(net: DarkeningNet, config: DarkViewConfig) -> crate::Result<Self> {
        config.validate()?;
        Ok(Self { net, config })
    }

    /// Darkens `images` with freshly drawn exposure maps.
    ///
    /// The result is detached: the darkening network is frozen in this stage.
    ///
    /// # Shapes
    /// - `images`: `[batch, 3, height, width]` in `[0, 1]` → output the same shape
    ///
    /// # Panics
    /// When `images` is not `[batch, 3, height, width]` (see [`DarkView::try_apply`]).
    pub fn apply<R: RngCore + ?Sized>(&self, images: Tensor<4>, rng: &mut R) -> Tensor<4> {
        let [b, _, h, w] = images.dims();
        let device = images.device();
        let noise = self.config.sample(b, [h, w], rng, &device);
        self.apply_with(images, &noise)
    }

    /// Darkens `images` with the given random parts (the deterministic part of the view).
    ///
    /// # Shapes
    /// - `images`: `[batch, 3, height, width]`; `noise` drawn for the same batch and size
    pub fn apply_with(&self, images: Tensor<4>, noise: &DarkViewNoise) -> Tensor<4> {
        let [_, _, h, w] = images.dims();
        let e = noise.exposure_map([h, w], &images.device());
        self.net.forward(images, e).image.detach()
    }

    /// [`DarkView::apply`] with a checked input shape.
    ///
    /// # Errors
    /// [`DarkeningError::Shape`] when `images` is not `[B, 3, H, W]` with `B, H, W ≥ 1`.
    pub fn try_apply<R: RngCore + ?Sized>(
        &self,
        images: Tensor<4>,
        rng: &mut R,
    ) -> crate::Result<Tensor<4>> {
        let d = images.dims();
        if d[1] != 3 || d[0] == 0 || d[2] == 0 || d[3] == 0 {
            return Err(DarkeningError::shape(
                "images",
                "[B, 3, H, W] with B, H, W ≥ 1",
                &d,
            ));
        }
        Ok(self.apply(images, rng))
    }
}

/// The dark view of a frozen darkening network as a [`nightvision_core::augment::Augmentation`]
/// (Similarity Min-Max, docs/PAPERS.md C.3: random exposure + patch and pixel noise, then D),
/// running on its own device; outputs are clamped to `[0, 1]`.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use darkening_minmax::{DarkView, DarkViewConfig, Darkening, DarkeningNetConfig};
/// use nightvision_core::augment::Augmentation;
///
/// let device = Device::default();
/// let d = DarkeningNetConfig::new().with_channels(4).init(&device);
/// let night = Darkening::new(DarkView::new(d, DarkViewConfig::vpr())?, &device);
/// let x = Tensor::<4>::ones([1, 3, 32, 32], &device).mul_scalar(0.6);
/// let y = night.augment(x, &mut nightvision_core::rng::seeded(0))?;
/// assert_eq!(y.dims(), [1, 3, 32, 32]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Darkening {
    view: std::sync::Mutex<DarkView>,
    device: Device,
}

impl std::fmt::Debug for Darkening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Darkening")
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl Darkening {
    /// Wraps a dark view whose network lives on `device`.
    pub fn new(view: DarkView, device: &Device) -> Self {
        Self {
            view: std::sync::Mutex::new(view),
            device: device.clone(),
        }
    }
}

impl nightvision_core::augment::Augmentation for Darkening {
    fn augment(&self, x: Tensor<4>, rng: &mut dyn RngCore) -> nightvision_core::Result<Tensor<4>> {
        use nightvision_core::augment::detached;
        let origin = x.device();
        let view = self
            .view
            .lock()
            .map_err(|_| nightvision_core::CoreError::Augmentation {
                what: "darkening network",
                message: "a previous dark view panicked".into(),
            })?;
        Ok(detached(
            view.apply(detached(x, &self.device), rng).clamp(0.0, 1.0),
            &origin,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nightvision_core::rng::seeded;

    fn stats(v: &[f32]) -> (f64, f64) {
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n;
        (mean, var.sqrt())
    }

    #[test]
    fn presets_and_validation() {
        assert_eq!(DarkViewConfig::vpr().patch_factor, 32);
        assert_eq!(DarkViewConfig::classification().patch_factor, 16);
        let c = DarkViewConfig::new();
        assert_eq!((c.max_exposure, c.noise_std), (0.2, 0.025));
        assert!(c.validate().is_ok());
        assert!(c.clone().with_patch_factor(0).validate().is_err());
        assert!(c.clone().with_noise_std(-1.0).validate().is_err());
        assert!(c.with_max_exposure(f64::NAN).validate().is_err());
        // Floor division as `h // 32`; at least one cell.
        assert_eq!(DarkViewConfig::vpr().patch_grid([70, 100]), [2, 3]);
        assert_eq!(DarkViewConfig::vpr().patch_grid([20, 33]), [1, 1]);
    }

    #[test]
    fn noise_statistics() {
        // 16 × 96 × 96 = 147 456 pixel draws: the standard error of the mean is σ/384 ≈ 6.5e-5
        // and of the standard deviation σ/543 ≈ 4.6e-5; the bounds are > 5 standard errors.
        let device = Device::default();
        let cfg = DarkViewConfig::classification();
        let noise = cfg.sample(16, [96, 96], &mut seeded(11), &device);
        let pixel: Vec<f32> = noise.pixel.unwrap().into_data().try_into_vec_as().unwrap();
        let (m, s) = stats(&pixel);
        assert!(m.abs() < 4e-4, "pixel mean {m}");
        assert!((s - 0.025).abs() < 3e-4, "pixel std {s}");
        let patch = noise.patch.unwrap();
        assert_eq!(patch.dims(), [16, 1, 6, 6]);
        let patch: Vec<f32> = patch.into_data().try_into_vec_as().unwrap();
        let (m, s) = stats(&patch); // 576 draws: standard errors 1e-3 (mean), 7.4e-4 (std)
        assert!(m.abs() < 5e-3 && (s - 0.025).abs() < 4e-3, "patch {m} {s}");
        assert_eq!(noise.exposure.len(), 16);
        assert!(noise.exposure.iter().all(|&e| (0.0..0.2).contains(&e)));
        let many = cfg.sample(4000, [1, 1], &mut seeded(12), &device).exposure;
        let (m, s) = stats(&many); // U(0, 0.2): mean 0.1, std 0.2/√12 ≈ 0.0577
        assert!(
            (m - 0.1).abs() < 5e-3 && (s - 0.2 / 12f64.sqrt()).abs() < 3e-3,
            "{m} {s}"
        );
    }

    #[test]
    fn seeded_and_switchable() {
        let device = Device::default();
        let cfg = DarkViewConfig::vpr();
        let a = cfg.sample(2, [40, 64], &mut seeded(3), &device);
        let b = cfg.sample(2, [40, 64], &mut seeded(3), &device);
        assert_eq!(a.exposure, b.exposure);
        assert_eq!(
            a.exposure_map([40, 64], &device).into_data(),
            b.exposure_map([40, 64], &device).into_data()
        );
        let none = cfg.with_patch_noise(false).with_pixel_noise(false).sample(
            2,
            [8, 8],
            &mut seeded(3),
            &device,
        );
        assert!(none.patch.is_none() && none.pixel.is_none());
        let m: Vec<f32> = none
            .exposure_map([8, 8], &device)
            .into_data()
            .try_into_vec_as()
            .unwrap();
        assert!(m[..64].iter().all(|&v| v == none.exposure[0]));
    }
}
