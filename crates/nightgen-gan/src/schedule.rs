//! Per-epoch learning-rate factors of the GAN recipes.
//!
//! - [`LinearDecay`]: CycleGAN's and CUT's `lr_policy linear` (docs/PAPERS.md protocols 3.1;
//!   `networks.py::get_scheduler`): `lr_l = 1 − max(0, epoch + epoch_count − n_epochs) /
//!   (n_epochs_decay + 1)`, constant for `n_epochs` epochs, then linear towards 0 over
//!   `n_epochs_decay` epochs. Presets: CycleGAN 100 + 100, CUT/NEG-CUT 200 + 200, gandtr's
//!   CycleGAN 50 + 50 (docs/PAPERS.md A.4, B.1).
//! - [`LambdaP2p`]: gandtr's `lambda_p2p` (docs/PAPERS.md A.4; HEDGAN/HEDN-GAN and its CUT): `epochs`
//!   in total, constant, then linear over the last `decay_epochs`: `lr_l = 1 − max(0, epoch + 1 −
//!   (epochs − decay_epochs)) / (decay_epochs + 1)` — 50 epochs, 25 constant:
//!   `1 − max(0, epoch + 1 − 25) / 26`. It equals [`LinearDecay`] with `epoch_count = 1`,
//!   `n_epochs = epochs − decay_epochs`, `n_epochs_decay = decay_epochs`.
//!
//! `epoch` is the argument PyTorch's `LambdaLR` passes to the rule: the number of
//! `scheduler.step()` calls so far (0 before the first). The learning rate is `base_lr · lr_l`.
//! Both rules are returned exactly as the formulas give them, without clamping (they stay
//! positive through the scheduled epochs and reach 0 or below only past them).
//!
//! ```
//! use nightgen_gan::schedule::{LambdaP2p, LinearDecay};
//!
//! let cyclegan = LinearDecay::cyclegan(); // 100 + 100 epochs
//! assert_eq!(cyclegan.factor(99), 1.0);
//! assert!((cyclegan.factor(150) - (1.0 - 51.0 / 101.0)).abs() < 1e-12);
//! let p2p = LambdaP2p::gandtr(); // 50 epochs, linear over the last 25
//! assert_eq!(p2p.lr(2e-4, 0), 2e-4);
//! assert!((p2p.factor(49) - 1.0 / 26.0).abs() < 1e-12);
//! ```

use burn::config::Config;

use crate::GanError;

/// CycleGAN's linear-decay rule; see the [module docs](self).
#[derive(Config, Debug)]
pub struct LinearDecay {
    /// Epochs at the initial learning rate (`n_epochs`).
    pub n_epochs: usize,
    /// Epochs of linear decay (`n_epochs_decay`).
    pub n_epochs_decay: usize,
    /// The starting epoch count (`epoch_count`, 1 unless resuming).
    #[config(default = 1)]
    pub epoch_count: usize,
}

impl LinearDecay {
    /// CycleGAN's defaults: 100 + 100 epochs.
    pub fn cyclegan() -> Self {
        Self::new(100, 100)
    }

    /// CUT's and NEG-CUT's defaults: 200 + 200 epochs.
    pub fn cut() -> Self {
        Self::new(200, 200)
    }

    /// gandtr's day→night CycleGAN (`train_cyclegan.yml`): 50 + 50 epochs.
    pub fn gandtr_cyclegan() -> Self {
        Self::new(50, 50)
    }

    /// `lr_l = 1 − max(0, epoch + epoch_count − n_epochs) / (n_epochs_decay + 1)`.
    pub fn factor(&self, epoch: usize) -> f64 {
        let over = (epoch + self.epoch_count).saturating_sub(self.n_epochs);
        1.0 - over as f64 / (self.n_epochs_decay as f64 + 1.0)
    }

    /// `base_lr · factor(epoch)`.
    pub fn lr(&self, base_lr: f64, epoch: usize) -> f64 {
        base_lr * self.factor(epoch)
    }
}

/// gandtr's `lambda_p2p` rule; see the [module docs](self).
#[derive(Config, Debug)]
pub struct LambdaP2p {
    /// Total number of epochs.
    #[config(default = 50)]
    pub epochs: usize,
    /// Epochs of linear decay at the end.
    #[config(default = 25)]
    pub decay_epochs: usize,
}

impl LambdaP2p {
    /// gandtr's HEDGAN / HEDN-GAN / CUT schedule: 50 epochs, constant 25, decay 25.
    pub fn gandtr() -> Self {
        Self::new()
    }

    /// Checks `decay_epochs ≤ epochs`.
    ///
    /// # Errors
    /// [`GanError::Config`] otherwise.
    pub fn validate(&self) -> crate::Result<()> {
        if self.decay_epochs > self.epochs {
            return Err(GanError::Config {
                name: "decay_epochs",
                reason: format!(
                    "{} decay epochs exceed the {} epochs in total",
                    self.decay_epochs, self.epochs
                ),
            });
        }
        Ok(())
    }

    /// `lr_l = 1 − max(0, epoch + 1 − (epochs − decay_epochs)) / (decay_epochs + 1)` (with
    /// `decay_epochs > epochs` the constant phase is taken as 0 epochs).
    pub fn factor(&self, epoch: usize) -> f64 {
        let constant = self.epochs.saturating_sub(self.decay_epochs);
        let over = (epoch + 1).saturating_sub(constant);
        1.0 - over as f64 / (self.decay_epochs as f64 + 1.0)
    }

    /// `base_lr · factor(epoch)`.
    pub fn lr(&self, base_lr: f64, epoch: usize) -> f64 {
        base_lr * self.factor(epoch)
    }

    /// The same rule as a [`LinearDecay`].
    pub fn as_linear_decay(&self) -> LinearDecay {
        LinearDecay::new(
            self.epochs.saturating_sub(self.decay_epochs),
            self.decay_epochs,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sums and quotients of small integers: the f64 results agree with the hand tables to
    /// rounding of one division.
    const TOL: f64 = 1e-12;

    fn check(got: impl Fn(usize) -> f64, table: &[(usize, f64)]) {
        for &(epoch, want) in table {
            let g = got(epoch);
            assert!((g - want).abs() < TOL, "epoch {epoch}: {g} vs {want}");
        }
    }

    #[test]
    fn linear_decay_small_table() {
        // n_epochs 2, n_epochs_decay 3, epoch_count 1: epoch + 1 − 2 = −1, 0, 1, 2, 3, 4 → / 4.
        let s = LinearDecay::new(2, 3);
        check(
            |e| s.factor(e),
            &[(0, 1.0), (1, 1.0), (2, 0.75), (3, 0.5), (4, 0.25), (5, 0.0)],
        );
        // Resuming at epoch_count 3 shifts the table by two epochs.
        let r = LinearDecay::new(2, 3).with_epoch_count(3);
        check(|e| r.factor(e), &[(0, 0.75), (1, 0.5), (2, 0.25), (3, 0.0)]);
        // epoch_count 0: one more constant epoch.
        let z = LinearDecay::new(2, 3).with_epoch_count(0);
        check(|e| z.factor(e), &[(0, 1.0), (2, 1.0), (3, 0.75)]);
    }

    #[test]
    fn cyclegan_table() {
        let s = LinearDecay::cyclegan();
        check(
            |e| s.factor(e),
            &[
                (0, 1.0),
                (98, 1.0),
                (99, 1.0),
                (100, 1.0 - 1.0 / 101.0),
                (150, 1.0 - 51.0 / 101.0),
                (199, 1.0 / 101.0),
            ],
        );
        assert!((s.lr(2e-4, 150) - 2e-4 * 50.0 / 101.0).abs() < 1e-16);
        let c = LinearDecay::cut();
        check(
            |e| c.factor(e),
            &[(199, 1.0), (200, 200.0 / 201.0), (399, 1.0 / 201.0)],
        );
        let g = LinearDecay::gandtr_cyclegan();
        check(
            |e| g.factor(e),
            &[(49, 1.0), (50, 50.0 / 51.0), (99, 1.0 / 51.0)],
        );
    }

    #[test]
    fn lambda_p2p_tables() {
        // 6 epochs, 3 decay: epoch + 1 − 3 = −2, −1, 0, 1, 2, 3 → / 4.
        let s = LambdaP2p::new().with_epochs(6).with_decay_epochs(3);
        check(
            |e| s.factor(e),
            &[(0, 1.0), (1, 1.0), (2, 1.0), (3, 0.75), (4, 0.5), (5, 0.25)],
        );
        // gandtr: 1 − max(0, ep + 1 − 25) / 26.
        let g = LambdaP2p::gandtr();
        check(
            |e| g.factor(e),
            &[
                (0, 1.0),
                (23, 1.0),
                (24, 1.0),
                (25, 25.0 / 26.0),
                (37, 1.0 - 13.0 / 26.0),
                (49, 1.0 / 26.0),
            ],
        );
        // Identical to the CycleGAN rule with 25 + 25 epochs.
        let l = g.as_linear_decay();
        for e in 0..60 {
            assert_eq!(g.factor(e), l.factor(e), "epoch {e}");
        }
        assert!(g.validate().is_ok());
        assert!(matches!(
            LambdaP2p::new().with_decay_epochs(60).validate(),
            Err(GanError::Config { .. })
        ));
    }
}
