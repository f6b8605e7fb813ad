//! # nightgen-gan
//!
//! Day→night unpaired image translation on burn: the ResNet generator and PatchGAN discriminator
//! shared by CycleGAN, CUT/NEG-CUT and the HED-GAN family (docs/PAPERS.md A.2, A.4, B.1; docs/PAPERS.md protocols
//! 3.1–3.2), their losses, and the training steps.
#![warn(missing_docs)]
#![warn(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod data;
pub mod discriminator;
mod error;
pub mod generator;
pub mod init;
pub mod losses;
pub mod patchnce;
pub mod pool;
pub mod schedule;
pub mod train;
pub mod train_cut;
pub mod train_cyclegan;
pub mod translator;

pub use discriminator::{NLayerDiscriminator, NLayerDiscriminatorConfig};
pub use error::{GanError, Result};
pub use generator::{
    BlurDownsample, BlurUpsample, GENERATOR_METADATA, Layer, MIN_TRANSLATE_SIDE, NormKind,
    ReflectionPad2d, ResnetBlock, ResnetGenerator, ResnetGeneratorConfig, translate_images,
};
pub use init::{InitConfig, InitKind, init_weights};
pub use losses::{GanMode, cycle_consistency_l1, edge_consistency_l1, identity_l1, l1_loss};
/// What every trainer returns (the networks and the log of the run); from `nightvision-core`.
pub use nightvision_core::checkpoint::Trained;
pub use patchnce::{
    NegativeGenerator, NegativeGeneratorConfig, PatchIds, PatchMlp, PatchNceLoss,
    PatchNceLossConfig, PatchSampleF, PatchSampleFConfig, negative_diversity_loss,
    negative_diversity_loss_layers,
};
pub use pool::ImagePool;
pub use schedule::{LambdaP2p, LinearDecay};
pub use train::{
    GanEpochLog, GanTrainLog, HedNGan, HedNGanConfig, HedNGanTrainer, HedNWeights, IterationLosses,
    StepLosses, instance_noise,
};
pub use train_cut::{
    CutConfig, CutGan, CutLosses, CutMode, CutTrainer, NegCutNets, NegativeObjective,
};
pub use train_cyclegan::{CycleGan, CycleGanConfig, CycleGanLosses, CycleGanTrainer, EMA_FILE};
pub use translator::Translator;
