//! # nightgen-gan
//!
//! Day→night unpaired image translation on burn: the ResNet generator and PatchGAN discriminator
//! shared by CycleGAN, CUT/NEG-CUT and the HED-GAN family (papers.md A.2, A.4, B.1; protocols.md
//! 3.1–3.2), their losses, and the training steps.
#![warn(missing_docs)]

mod error;

pub use error::{GanError, Result};
