//! Adversarial and L1 losses of the day→night GANs.
//!
//! - [`GanMode`]: CycleGAN/CUT's `GANLoss` (docs/PAPERS.md protocols 3.1, 3.2; docs/PAPERS.md A.4, B.1). The target
//!   (1 for real, 0 for fake) is broadcast to the full prediction map and the loss is the mean over
//!   every element: [`GanMode::Lsgan`] is `MSELoss`, [`GanMode::Vanilla`] is
//!   `BCEWithLogitsLoss` (the discriminator outputs logits, no sigmoid). The generator loss is
//!   `L(D(G(x)), 1)`; the discriminator loss is `0.5 · [L(D(real), 1) + L(D(fake), 0)]`. Every
//!   GAN of the papers (gandtr's CycleGAN, CUT, HEDGAN and HEDN-GAN; NEG-CUT) uses LSGAN.
//! - [`cycle_consistency_l1`], [`identity_l1`]: CycleGAN's `|G_B(G_A(A)) − A|₁` and
//!   `|G_A(B) − B|₁` (mean reduction, weights λ = 10 and λ·0.5 applied by the caller; gandtr uses
//!   no identity term).
//! - [`edge_consistency_l1`]: the edge-consistency term of HEDGAN / HEDN-GAN (docs/PAPERS.md A.4),
//!   `L1(H(G(x)), H(x))` on edge maps (sigmoid outputs of the detector), before its weight 5.
//!
//! Nothing here detaches: as in PyTorch, pass `D(fake.detach())` to
//! [`GanMode::discriminator_loss`]. Only [`edge_consistency_l1`] detaches its target, because the
//! target edge map always comes from a frozen detector (HEDGAN's `H`, HEDN-GAN's teacher `H_t`).
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use nightgen_gan::GanMode;
//!
//! let device = Device::default();
//! let pred = Tensor::<4>::ones([1, 1, 3, 3], &device).mul_scalar(0.5);
//! // LSGAN: (0.5 − 1)² for the generator, 0.5·[(0.5 − 1)² + 0.5²] for the discriminator.
//! let g: f32 = GanMode::Lsgan.generator_loss(pred.clone()).into_scalar();
//! let d: f32 = GanMode::Lsgan.discriminator_loss(pred.clone(), pred).into_scalar();
//! assert!((g - 0.25).abs() < 1e-6 && (d - 0.25).abs() < 1e-6);
//! ```

use burn::tensor::Tensor;
use burn::tensor::activation::log_sigmoid;
use serde::{Deserialize, Serialize};

use crate::{GanError, Result};

/// The adversarial objective (CycleGAN's `--gan_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GanMode {
    /// Least-squares GAN: mean squared error to the target (`nn.MSELoss`). The default and the
    /// objective of every GAN in the papers.
    #[default]
    Lsgan,
    /// The original GAN: binary cross-entropy on logits (`nn.BCEWithLogitsLoss`).
    Vanilla,
}

impl GanMode {
    /// The loss of a prediction map against a constant target, 1 (`real`) or 0, broadcast to the
    /// map's full size; mean over all elements.
    ///
    /// # Shapes
    /// - `pred`: any shape, typically the PatchGAN logit map `[batch, 1, h, w]`
    /// - output: `[1]`
    pub fn loss<const D: usize>(&self, pred: Tensor<D>, real: bool) -> Tensor<1> {
        match self {
            GanMode::Lsgan => {
                let target = if real { 1.0 } else { 0.0 };
                pred.sub_scalar(target).powi_scalar(2).mean()
            }
            // BCE with logits: −log σ(x) for target 1, −log σ(−x) = −log(1 − σ(x)) for target 0;
            // `log_sigmoid` is stable for any logit.
            GanMode::Vanilla => {
                let x = if real { pred } else { pred.neg() };
                log_sigmoid(x).neg().mean()
            }
        }
    }

    /// The generator's adversarial loss `L(D(G(x)), 1)`.
    ///
    /// # Shapes
    /// - `pred_fake`: the discriminator's output on generated images, any shape
    /// - output: `[1]`
    pub fn generator_loss<const D: usize>(&self, pred_fake: Tensor<D>) -> Tensor<1> {
        self.loss(pred_fake, true)
    }

    /// The discriminator loss `0.5 · [L(D(real), 1) + L(D(fake), 0)]`, each term a mean over its
    /// own map (the two maps may differ in batch size).
    ///
    /// # Shapes
    /// - `pred_real`, `pred_fake`: the discriminator's outputs, any shapes of rank `D`
    /// - output: `[1]`
    pub fn discriminator_loss<const D: usize>(
        &self,
        pred_real: Tensor<D>,
        pred_fake: Tensor<D>,
    ) -> Tensor<1> {
        (self.loss(pred_real, true) + self.loss(pred_fake, false)).mul_scalar(0.5)
    }
}

impl std::str::FromStr for GanMode {
    type Err = GanError;

    /// Parses CycleGAN's option names `lsgan` and `vanilla` (case-insensitive).
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "lsgan" => Ok(GanMode::Lsgan),
            "vanilla" => Ok(GanMode::Vanilla),
            other => Err(GanError::Config {
                name: "gan_mode",
                reason: format!("unknown GAN mode {other:?} (expected lsgan or vanilla)"),
            }),
        }
    }
}

fn same_shape<const D: usize>(what: &'static str, got: &Tensor<D>, want: &Tensor<D>) -> Result<()> {
    if got.dims() != want.dims() {
        return Err(GanError::ShapeMismatch {
            what,
            expected: want.dims().to_vec(),
            got: got.dims().to_vec(),
        });
    }
    Ok(())
}

/// Mean absolute difference `mean |a − b|` (PyTorch's `nn.L1Loss()`), gradients to both inputs.
///
/// # Shapes
/// - `a`, `b`: equal shapes; output `[1]`
///
/// # Errors
/// [`GanError::ShapeMismatch`] when the shapes differ.
pub fn l1_loss<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Result<Tensor<1>> {
    same_shape("L1 target", &b, &a)?;
    Ok((a - b).abs().mean())
}

/// CycleGAN's cycle-consistency term `mean |G_B(G_A(x)) − x|` (before its weight λ = 10).
///
/// # Shapes
/// - `reconstructed`, `original`: `[batch, 3, height, width]`; output `[1]`
///
/// # Errors
/// [`GanError::ShapeMismatch`] when the shapes differ.
pub fn cycle_consistency_l1(reconstructed: Tensor<4>, original: Tensor<4>) -> Result<Tensor<1>> {
    same_shape("cycle original", &original, &reconstructed)?;
    Ok((reconstructed - original).abs().mean())
}

/// CycleGAN's identity term `mean |G_A(y) − y|` (before its weight λ·0.5).
///
/// # Shapes
/// - `mapped`, `original`: `[batch, 3, height, width]`; output `[1]`
///
/// # Errors
/// [`GanError::ShapeMismatch`] when the shapes differ.
pub fn identity_l1(mapped: Tensor<4>, original: Tensor<4>) -> Result<Tensor<1>> {
    same_shape("identity original", &original, &mapped)?;
    Ok((mapped - original).abs().mean())
}

/// HEDGAN / HEDN-GAN's edge consistency `mean |H(G(x)) − H(x)|` on edge maps (probabilities,
/// i.e. the detector's sigmoid outputs), before its weight 5. The target map `H(x)` is detached:
/// it comes from the frozen detector (HEDGAN) or the frozen teacher (HEDN-GAN); the gradient
/// flows into `fake_edges` only. For a version that takes logits see
/// `hed_edges::edge_consistency_l1`.
///
/// # Shapes
/// - `fake_edges`, `real_edges`: `[batch, 1, height, width]`; output `[1]`
///
/// # Errors
/// [`GanError::ShapeMismatch`] when the shapes differ.
pub fn edge_consistency_l1(fake_edges: Tensor<4>, real_edges: Tensor<4>) -> Result<Tensor<1>> {
    same_shape("real edge map", &real_edges, &fake_edges)?;
    Ok((fake_edges - real_edges.detach()).abs().mean())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn vanilla_closed_form() {
        // Logit 0: BCE = ln 2 for either target.
        let device = Device::default();
        let pred = Tensor::<4>::zeros([2, 1, 2, 2], &device);
        let g: f32 = GanMode::Vanilla.generator_loss(pred.clone()).into_scalar();
        let d: f32 = GanMode::Vanilla
            .discriminator_loss(pred.clone(), pred)
            .into_scalar();
        assert!((g - std::f32::consts::LN_2).abs() < 1e-6, "{g}");
        assert!((d - std::f32::consts::LN_2).abs() < 1e-6, "{d}");
    }

    #[test]
    fn gan_mode_parses_and_serialises() {
        assert_eq!("LSGAN".parse::<GanMode>().unwrap(), GanMode::Lsgan);
        assert_eq!("vanilla".parse::<GanMode>().unwrap(), GanMode::Vanilla);
        assert!(matches!(
            "wgangp".parse::<GanMode>(),
            Err(GanError::Config {
                name: "gan_mode",
                ..
            })
        ));
        assert_eq!(GanMode::default(), GanMode::Lsgan);
    }

    #[test]
    fn l1_shape_mismatch_is_an_error() {
        let device = Device::default();
        let a = Tensor::<4>::zeros([1, 3, 4, 4], &device);
        let b = Tensor::<4>::zeros([1, 3, 4, 5], &device);
        assert!(matches!(
            cycle_consistency_l1(a.clone(), b.clone()),
            Err(GanError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            edge_consistency_l1(a, b),
            Err(GanError::ShapeMismatch { .. })
        ));
    }
}
