//! CUT and NEG-CUT training: contrastive unpaired translation (docs/PAPERS.md protocols 3.2, docs/PAPERS.md A.4
//! "CUT baseline", taesungp/contrastive-unpaired-translation `cut_model.py`) and its
//! learned-negatives variant (docs/PAPERS.md B.1, NEGCUT `negcut_model.py`).
//!
//! ## Networks
//!
//! [`CutGan`]: the generator G (day → night), the discriminator D (judges night images), the
//! patch projection F ([`PatchSampleF`], one MLP per NCE layer) and, for NEG-CUT only
//! ([`NegCutNets`]), the negative generator N and the momentum copy F′ of F. F (and F′) are
//! created **eagerly** by [`CutConfig::init_nets`] from [`ResnetGenerator::layer_channels`] at
//! [`CutConfig::nce_layers`], so CUT's data-dependent initialisation (one forward/backward before
//! the F optimiser exists) is not needed; F′ is an independent initialisation, as NEGCUT's
//! `define_F` twice (see [`crate::patchnce`]). All three are initialised on the host from
//! [`CutConfig::init_seed`] (xavier-normal, gain 0.02, as the reference's lazily created MLPs).
//!
//! ## One iteration
//!
//! `x` a day batch, `y` a night batch ([`UnpairedBatches`], mapped to `[-1, 1]`). As the
//! reference's `forward`, G translates `cat(x, y)` in one pass when `nce_idt` is on (instance
//! norm makes this equal to two passes): `G(x)` and the identity `G(y)`.
//!
//! 1. **D step**: `L_D = ½·[GAN(D(G(x).detach), 0) + GAN(D(y), 1)]` (LSGAN).
//! 2. **N step** (NEG-CUT only, `compute_N_loss`): `L_N = −NCE_both + λ_MS·div`, with the NCE
//!    terms computed on detached queries and keys (only N receives gradients) and
//!    `div = −mean |n[:, :K/2] − n[:, K/2:]|` ([`negative_diversity_loss_layers`]) on the
//!    negatives of the **last** NCE pass (the identity pass when `nce_idt` is on), as the
//!    reference reads `self.neg_k_pool` after both passes. Only N is stepped.
//! 3. **G + F step** (`compute_G_loss`, N frozen): `L_G = λ_GAN·GAN(D(G(x)), 1) + NCE_both`,
//!    with D already updated; G and F are stepped.
//! 4. **EMA** (NEG-CUT only): `F′ ← 0.9·F′ + 0.1·F` ([`PatchSampleF::ema_update`], with F after
//!    its step).
//!
//! `NCE_both = ½·[λ_NCE·NCE(x, G(x)) + λ_idt·NCE(y, G(y))]` with `nce_idt` (CUT: λ_idt = λ_NCE = 1;
//! gandtr: λ_NCE 1, λ_idt **10**, docs/PAPERS.md A.4), else `λ_NCE·NCE(x, G(x))`. One NCE pass
//! (`calculate_NCE_loss(src, tgt)`) encodes `src` and `tgt` with G's encoder
//! ([`ResnetGenerator::forward_layers`] at `nce_layers`), samples `num_patches` positions per
//! layer (a fresh draw per pass, shared by the query and key sides and by the images of the
//! batch), projects them with F, and averages [`PatchNceLoss`] (τ 0.07; keys detached) over the
//! layers. CUT's negatives are the other patches of the same image (diagonal masked); NEG-CUT's
//! are the `K = num_patches` outputs of N on F′'s all-position maps of `src` plus fresh
//! `z ~ N(0, I_64)` ([`PatchNceLoss::forward_learned_layers`]). In the G step the negatives are
//! not detached, so the NCE gradient also reaches G's encoder through `F′(feat_k) → N`, as in
//! the reference; N's and F′'s gradients there are discarded.
//!
//! Each trained network has its own Adam (lr 2e-4, β (0.5, 0.999), ε 1e-8 as PyTorch's; N uses
//! the same learning rate, as NEGCUT's `optimizer_N`). The learning rate of epoch `e` is
//! `lr · schedule.factor(e)` ([`LinearDecay`]): CUT / NEG-CUT 200 + 200 epochs, gandtr 25 + 25
//! (its `lambda_p2p` over 50 epochs, [`LambdaP2p::as_linear_decay`]).
//!
//! Presets: [`CutConfig::cut`] (the default; CUT mode: `nce_layers 0,4,8,12,16` for CUT's
//! anti-aliased generator), [`CutConfig::negcut`] (B.1: CUT's settings with learned negatives,
//! λ_MS 1, EMA 0.9), [`CutConfig::gandtr`] (A.4: `nce_layers 4,8,12,16` for the generator without
//! anti-aliasing, identity NCE weight 10, 50 epochs of 10 000 iterations). CUT's epoch is one
//! pass over the larger domain: set [`CutConfig::iterations_per_epoch`] to it.
//!
//! ## Determinism and resume
//!
//! Every host-side random draw of iteration `i` — the batch, the patch positions of every NCE
//! pass and NEG-CUT's noise `z` (drawn on the host, Box–Muller, not from the device generator) —
//! comes from `derived(seed, i)`. A checkpoint ([`CheckpointDir`]) holds G, D, F (and N, F′),
//! their optimiser states and the log, so a resumed run equals an uninterrupted one bit for bit.
//!
//! ```
//! use nightgen_gan::train_cut::{CutConfig, CutMode};
//! use nightgen_gan::GanError;
//!
//! let cut = CutConfig::cut();
//! assert_eq!(cut.nce_layers, [0, 4, 8, 12, 16]);
//! assert_eq!((cut.num_patches, cut.temperature), (256, 0.07));
//! assert_eq!(CutConfig::gandtr().nce_layers, [4, 8, 12, 16]);
//! assert_eq!(CutConfig::negcut().mode, CutMode::NegCut);
//! cut.validate()?;
//! // NEG-CUT splits its K = num_patches negatives in two halves: K must be even.
//! let odd = CutConfig { num_patches: 255, ..CutConfig::negcut() };
//! assert!(matches!(odd.validate(), Err(GanError::Config { name: "num_patches", .. })));
//! # Ok::<(), GanError>(())
//! ```

use std::path::PathBuf;
use std::time::Instant;

use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use nightvision_core::checkpoint::{
    CheckpointDir, Trained, load_module, load_optimizer, module_to_bytes, optimizer_to_bytes,
};
use nightvision_core::rng::{Rng, derived};
use serde::{Deserialize, Serialize};

use crate::data::UnpairedBatches;
use crate::discriminator::{NLayerDiscriminator, NLayerDiscriminatorConfig};
use crate::error::{GanError, Result};
use crate::generator::{ResnetGenerator, ResnetGeneratorConfig};
use crate::init::{InitConfig, init_weights};
use crate::losses::GanMode;
use crate::patchnce::{
    NEGCUT_EMA_DECAY, NegativeGenerator, NegativeGeneratorConfig, PatchIds, PatchNceLoss,
    PatchNceLossConfig, PatchSampleF, PatchSampleFConfig, negative_diversity_loss_layers,
};
#[cfg(doc)]
use crate::schedule::LambdaP2p;
use crate::schedule::LinearDecay;
use nightvision_core::on_device;

use crate::train::{
    ADAM_EPSILON, GanTrainLog, check_beta1, check_discriminator_crop, check_finite,
    check_generator_crop, check_iterations, check_linear_decay, check_positive, check_weights,
    instance_noise, linear_decay_epochs, progress_bar, resume_point, save_checkpoint, scalar,
};

/// Which contrastive objective [`CutTrainer`] optimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CutMode {
    /// CUT: the negatives of a patch are the other sampled patches of its image.
    #[default]
    Cut,
    /// NEG-CUT (docs/PAPERS.md B.1): negatives generated by N from the momentum features F′, N
    /// trained adversarially to maximise the NCE.
    NegCut,
}

/// Mixed into the seed of the instance noise's stream, which is apart from the iteration's own.
const NOISE_STREAM: u64 = 0x9e37_79b9_7f4a_7c15;

/// Configuration of [`CutTrainer`] (defaults: CUT, docs/PAPERS.md protocols 3.2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CutConfig {
    /// CUT or NEG-CUT.
    pub mode: CutMode,
    /// The adversarial objective (LSGAN).
    pub gan_mode: GanMode,
    /// Weight λ_GAN of the generator's adversarial term (1).
    pub lambda_gan: f64,
    /// Weight λ_NCE of `NCE(x, G(x))` (1).
    pub lambda_nce: f64,
    /// CUT's `nce_idt`: add the identity term `NCE(y, G(y))` and average the two (true).
    pub nce_idt: bool,
    /// Weight of the identity term (CUT: λ_NCE = 1; gandtr: 10).
    pub lambda_nce_idt: f64,
    /// Generator Sequential indices whose outputs PatchNCE compares (CUT `0,4,8,12,16`, gandtr
    /// `4,8,12,16`).
    pub nce_layers: Vec<usize>,
    /// Patches sampled per layer (256; 0 = every position, CUT only). NEG-CUT's number of
    /// negatives per image and layer `K` is the same number, and must be even.
    pub num_patches: usize,
    /// Output width of F, F′ and N (`netF_nc`, 256).
    pub feature_nc: usize,
    /// PatchNCE temperature τ (`nce_T`, 0.07).
    pub temperature: f64,
    /// `nce_includes_all_negatives_from_minibatch` (false: negatives from the query's image).
    pub include_all_negatives_from_minibatch: bool,
    /// NEG-CUT: weight λ_MS of the negatives' diversity term in the N step (1).
    pub lambda_diversity: f64,
    /// NEG-CUT: EMA decay of F′ (0.9).
    pub ema_decay: f64,
    /// NEG-CUT: dimension of N's noise `z` (64).
    pub noise_dim: usize,
    /// Instance noise of the discriminator's inputs ([`crate::instance_noise`], real and
    /// translated alike; 0, the reference, adds none).
    #[serde(default)]
    pub d_input_noise: f64,
    /// Adam learning rate of G, D, F and N (2e-4).
    pub lr: f64,
    /// Adam β₁ (0.5; β₂ is 0.999).
    pub beta1: f32,
    /// Epoch schedule of the learning rate (CUT 200 + 200, gandtr 25 + 25).
    pub schedule: LinearDecay,
    /// Iterations per epoch (gandtr: 10 000 pairs / batch 1).
    pub iterations_per_epoch: usize,
    /// Save a checkpoint every this many iterations (and at the end).
    pub checkpoint_every: usize,
    /// Seed of every host-side random draw of training.
    pub seed: u64,
    /// Seed of the initialisation of F (F′ and N use `init_seed + 1`, `init_seed + 2`).
    pub init_seed: u64,
    /// Show a progress bar.
    pub progress: bool,
}

impl Default for CutConfig {
    /// [`CutConfig::cut`].
    fn default() -> Self {
        Self::cut()
    }
}

impl CutConfig {
    /// CUT (`--CUT_mode CUT`, docs/PAPERS.md protocols 3.2): λ_GAN 1, λ_NCE 1, `nce_idt` with weight 1,
    /// `nce_layers 0,4,8,12,16`, 256 patches, τ 0.07, Adam 2e-4 β₁ 0.5, 200 + 200 epochs.
    pub fn cut() -> Self {
        Self {
            mode: CutMode::Cut,
            gan_mode: GanMode::Lsgan,
            lambda_gan: 1.0,
            lambda_nce: 1.0,
            nce_idt: true,
            lambda_nce_idt: 1.0,
            nce_layers: vec![0, 4, 8, 12, 16],
            num_patches: 256,
            feature_nc: 256,
            temperature: 0.07,
            include_all_negatives_from_minibatch: false,
            lambda_diversity: 1.0,
            ema_decay: NEGCUT_EMA_DECAY,
            noise_dim: 64,
            d_input_noise: 0.0,
            lr: 2e-4,
            beta1: 0.5,
            schedule: LinearDecay::cut(),
            iterations_per_epoch: 10_000,
            checkpoint_every: 10_000,
            seed: 0,
            init_seed: 0,
            progress: false,
        }
    }

    /// NEG-CUT as NocPlace trains it (docs/PAPERS.md B.1, `--NEGCUT_mode negcut`): CUT's settings
    /// with learned negatives, λ_MS 1, F′ EMA 0.9, `z ∈ R⁶⁴`.
    pub fn negcut() -> Self {
        Self {
            mode: CutMode::NegCut,
            ..Self::cut()
        }
    }

    /// gandtr's tuned CUT (docs/PAPERS.md A.4): `nce_layers 4,8,12,16` (generator without
    /// anti-aliasing), identity NCE weight 10, 25 + 25 epochs of 10 000 iterations.
    pub fn gandtr() -> Self {
        Self {
            nce_layers: vec![4, 8, 12, 16],
            lambda_nce_idt: 10.0,
            schedule: crate::schedule::LambdaP2p::gandtr().as_linear_decay(),
            ..Self::cut()
        }
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`GanError::Config`] naming the field.
    pub fn validate(&self) -> Result<()> {
        check_positive(&[
            ("lr", self.lr),
            ("lambda_nce", self.lambda_nce),
            ("temperature", self.temperature),
        ])?;
        check_weights(&[
            ("lambda_gan", self.lambda_gan),
            ("lambda_nce_idt", self.lambda_nce_idt),
            ("lambda_diversity", self.lambda_diversity),
            ("d_input_noise", self.d_input_noise),
        ])?;
        check_beta1(self.beta1)?;
        if !(0.0..=1.0).contains(&self.ema_decay) {
            return Err(GanError::config(
                "ema_decay",
                format!("{} is not in [0, 1]", self.ema_decay),
            ));
        }
        if self.nce_layers.is_empty() {
            return Err(GanError::config(
                "nce_layers",
                "at least one layer is needed",
            ));
        }
        if self.feature_nc == 0 {
            return Err(GanError::config("feature_nc", "must be at least 1"));
        }
        if self.mode == CutMode::NegCut {
            if self.num_patches == 0 || !self.num_patches.is_multiple_of(2) {
                return Err(GanError::config(
                    "num_patches",
                    format!(
                        "{}: NEG-CUT generates num_patches negatives and splits them in two \
                         halves; it must be even and positive",
                        self.num_patches
                    ),
                ));
            }
            if self.noise_dim == 0 {
                return Err(GanError::config("noise_dim", "must be at least 1"));
            }
        }
        check_linear_decay(&self.schedule)?;
        check_iterations(self.iterations_per_epoch, self.checkpoint_every)?;
        Ok(())
    }

    fn total_iterations(&self) -> usize {
        linear_decay_epochs(&self.schedule) * self.iterations_per_epoch
    }

    /// The channel counts of the generator's `nce_layers` outputs (F's MLP inputs).
    ///
    /// # Errors
    /// [`GanError::Config`] naming `nce_layers` when an index is not a layer of `generator`.
    pub fn feature_channels(&self, generator: &ResnetGenerator) -> Result<Vec<usize>> {
        self.nce_layers
            .iter()
            .map(|&i| {
                generator.layer_channels.get(i).copied().ok_or_else(|| {
                    GanError::config(
                        "nce_layers",
                        format!(
                            "layer {i} does not exist: the generator has {} layers",
                            generator.num_layers()
                        ),
                    )
                })
            })
            .collect()
    }

    /// Completes `generator` and `discriminator` into the networks of this mode: F (and, for
    /// NEG-CUT, an independently initialised F′ and N) sized from the generator's channels at
    /// `nce_layers`. Their linear weights are xavier-normal with gain 0.02 and their biases 0
    /// (CUT / NEGCUT `init_net(xavier, 0.02)`), drawn on the host by [`init_weights`] with the
    /// seeds `init_seed`, `init_seed + 1`, `init_seed + 2`, so they do not depend on the device's
    /// random generator.
    ///
    /// # Errors
    /// As [`validate`](Self::validate) and [`feature_channels`](Self::feature_channels).
    pub fn init_nets(
        &self,
        generator: ResnetGenerator,
        discriminator: NLayerDiscriminator,
        device: &Device,
    ) -> Result<CutGan> {
        self.validate()?;
        let channels = self.feature_channels(&generator)?;
        let f = PatchSampleFConfig::new(channels).with_nc(self.feature_nc);
        f.validate()?;
        let init = InitConfig::cut();
        let feature = init_weights(f.init(device), init, self.init_seed);
        let negatives = match self.mode {
            CutMode::Cut => None,
            CutMode::NegCut => {
                let n = NegativeGeneratorConfig::new(self.nce_layers.len())
                    .with_nc(self.feature_nc)
                    .with_z_dim(self.noise_dim)
                    .with_num_negatives(self.num_patches);
                n.validate()?;
                Some(NegCutNets {
                    generator: init_weights(n.init(device), init, self.init_seed.wrapping_add(2)),
                    momentum_feature: init_weights(
                        f.init(device),
                        init,
                        self.init_seed.wrapping_add(1),
                    ),
                })
            }
        };
        Ok(CutGan {
            generator,
            discriminator,
            feature,
            negatives,
        })
    }
}

/// NEG-CUT's additional networks.
#[derive(Debug, Clone)]
pub struct NegCutNets {
    /// The negative generator N.
    pub generator: NegativeGenerator,
    /// The momentum copy F′ of F (EMA, never stepped).
    pub momentum_feature: PatchSampleF,
}

/// The networks of CUT / NEG-CUT (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct CutGan {
    /// The day→night generator G.
    pub generator: ResnetGenerator,
    /// The night discriminator D.
    pub discriminator: NLayerDiscriminator,
    /// The patch projection F.
    pub feature: PatchSampleF,
    /// NEG-CUT's N and F′ (`None` for CUT).
    pub negatives: Option<NegCutNets>,
}

impl CutGan {
    /// CUT's / NEG-CUT's networks at full size (docs/PAPERS.md B.1): anti-aliased generator and
    /// discriminator, xavier-normal gain 0.02 (generator init seed 0, discriminator 1).
    ///
    /// # Errors
    /// As [`CutConfig::init_nets`].
    pub fn cut(cfg: &CutConfig, device: &Device) -> Result<Self> {
        cfg.init_nets(
            ResnetGeneratorConfig::cut().try_init(device)?,
            NLayerDiscriminatorConfig::cut()
                .with_init_seed(1)
                .try_init(device)?,
            device,
        )
    }

    /// gandtr's CUT networks (docs/PAPERS.md A.2): instance norm, no anti-aliasing, `kaiming_p2p`
    /// (generator init seed 0, discriminator 1).
    ///
    /// # Errors
    /// As [`CutConfig::init_nets`].
    pub fn gandtr(cfg: &CutConfig, device: &Device) -> Result<Self> {
        cfg.init_nets(
            ResnetGeneratorConfig::gandtr_cut().try_init(device)?,
            NLayerDiscriminatorConfig::new()
                .with_init_scheme(InitConfig::gandtr_kaiming())
                .with_init_seed(1)
                .try_init(device)?,
            device,
        )
    }
}

/// Losses of one CUT / NEG-CUT iteration (weighted as they enter their objectives).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct CutLosses {
    /// The discriminator loss `L_D`.
    pub discriminator: f32,
    /// `λ_GAN·GAN(D(G(x)), 1)` (G step).
    pub adversarial: f32,
    /// `λ_NCE·NCE(x, G(x))` (G step).
    pub nce: f32,
    /// `λ_idt·NCE(y, G(y))` (G step; 0 without `nce_idt`).
    pub nce_identity: f32,
    /// NEG-CUT: the `NCE_both` the N step maximises, before its update (0 for CUT).
    pub negative_nce: f32,
    /// NEG-CUT: `λ_MS·div` of the N step, ≤ 0 (0 for CUT).
    pub diversity: f32,
}

crate::train::iteration_losses!(CutLosses {
    discriminator => "discriminator loss",
    adversarial => "adversarial loss",
    nce => "NCE loss",
    nce_identity => "identity NCE loss",
    negative_nce => "negative generator NCE",
    diversity => "negative diversity loss",
});

/// The terms of NEG-CUT's N step on one batch ([`CutTrainer::negative_objective`]).
#[derive(Debug, Clone)]
pub struct NegativeObjective {
    /// `NCE_both` on detached queries and keys (what N maximises).
    pub nce: Tensor<1>,
    /// `λ_MS·div` on the negatives of the last NCE pass (≤ 0).
    pub diversity: Tensor<1>,
    /// `L_N = −nce + diversity`, minimised by N's optimiser.
    pub loss: Tensor<1>,
}

/// One NCE pass: its weighted loss and (NEG-CUT) the negatives it used.
struct NcePass {
    loss: Tensor<1>,
    negatives: Option<Vec<Tensor<3>>>,
}

/// A batch in `[-1, 1]` and G's translations of it.
struct Translated {
    real_x: Tensor<4>,
    real_y: Tensor<4>,
    fake_y: Tensor<4>,
    idt_y: Option<Tensor<4>>,
}

/// The two NCE passes of a step.
struct NceBoth {
    x: NcePass,
    y: Option<NcePass>,
}

impl NceBoth {
    /// `NCE_both`: the mean of the two passes with `nce_idt`, else the `x` pass.
    fn both(&self) -> Tensor<1> {
        match &self.y {
            Some(y) => (self.x.loss.clone() + y.loss.clone()).mul_scalar(0.5),
            None => self.x.loss.clone(),
        }
    }

    /// The negatives of the last pass (the reference's `self.neg_k_pool`).
    fn last_negatives(&self) -> Option<&Vec<Tensor<3>>> {
        self.y.as_ref().unwrap_or(&self.x).negatives.as_ref()
    }
}

/// The checkpoint file names.
const FILES: [&str; 9] = [
    "generator.bpk",
    "discriminator.bpk",
    "feature.bpk",
    "negative_generator.bpk",
    "momentum_feature.bpk",
    "optim_generator.bpk",
    "optim_discriminator.bpk",
    "optim_feature.bpk",
    "optim_negative_generator.bpk",
];

/// Trains CUT or NEG-CUT (see the [module docs](self)).
#[derive(Debug)]
pub struct CutTrainer<'a> {
    cfg: CutConfig,
    data: &'a UnpairedBatches,
    nce: PatchNceLoss,
    device: Device,
}

impl<'a> CutTrainer<'a> {
    /// A trainer on `device` (an autodiff device, e.g. `Device::default().autodiff()`).
    ///
    /// # Errors
    /// [`GanError::Config`] for an invalid configuration, a non-autodiff device, or a crop size
    /// the generator cannot take (a multiple of 4, at least 8).
    pub fn new(cfg: CutConfig, data: &'a UnpairedBatches, device: &Device) -> Result<Self> {
        cfg.validate()?;
        if !device.is_autodiff() {
            return Err(GanError::config(
                "device",
                "training needs an autodiff device (`device.autodiff()`)",
            ));
        }
        check_generator_crop(data.crop().size)?;
        let nce = PatchNceLossConfig::new()
            .with_temperature(cfg.temperature)
            .with_include_all_negatives_from_minibatch(cfg.include_all_negatives_from_minibatch)
            .init()?;
        Ok(Self {
            cfg,
            data,
            nce,
            device: device.clone(),
        })
    }

    fn optimizer(&self) -> ModuleOptimizer {
        AdamConfig::new()
            .with_beta_1(self.cfg.beta1)
            .with_beta_2(0.999)
            .with_epsilon(ADAM_EPSILON)
            .init()
    }

    /// Checks that `nets` fit the configuration (mode, NCE layers, layer counts, crop size); F's
    /// widths are checked by its first forward.
    fn check_nets(&self, nets: &CutGan) -> Result<()> {
        let cfg = &self.cfg;
        let layers = cfg.feature_channels(&nets.generator)?.len();
        if nets.feature.num_layers() != layers {
            return Err(GanError::ShapeMismatch {
                what: "feature MLP layers",
                expected: vec![layers],
                got: vec![nets.feature.num_layers()],
            });
        }
        match (&nets.negatives, cfg.mode) {
            (None, CutMode::Cut) => {}
            (Some(n), CutMode::NegCut) => {
                let got = [n.momentum_feature.num_layers(), n.generator.mlps.len()];
                if got != [layers, layers] {
                    return Err(GanError::ShapeMismatch {
                        what: "NEG-CUT network layers [F′, N]",
                        expected: vec![layers, layers],
                        got: got.to_vec(),
                    });
                }
                let got = [n.generator.num_negatives, n.generator.z_dim];
                if got != [cfg.num_patches, cfg.noise_dim] {
                    return Err(GanError::ShapeMismatch {
                        what: "negative generator [num_negatives, z_dim]",
                        expected: vec![cfg.num_patches, cfg.noise_dim],
                        got: got.to_vec(),
                    });
                }
            }
            (have, mode) => {
                return Err(GanError::config(
                    "negatives",
                    format!(
                        "{mode:?} mode {} NEG-CUT networks (build them with CutConfig::init_nets)",
                        if have.is_some() {
                            "does not take"
                        } else {
                            "needs"
                        }
                    ),
                ));
            }
        }
        check_discriminator_crop(&nets.discriminator, self.data.crop().size)
    }

    /// G's translations of `x` and (with `nce_idt`) `y`, in one pass over `cat(x, y)`.
    fn translate(&self, g: &ResnetGenerator, real_x: Tensor<4>, real_y: Tensor<4>) -> Translated {
        let b = real_x.dims()[0];
        let (fake_y, idt_y) = if self.cfg.nce_idt {
            let fake = g.forward(Tensor::cat(vec![real_x.clone(), real_y.clone()], 0));
            let n = fake.dims()[0];
            (fake.clone().narrow(0, 0, b), Some(fake.narrow(0, b, n - b)))
        } else {
            (g.forward(real_x.clone()), None)
        };
        Translated {
            real_x,
            real_y,
            fake_y,
            idt_y,
        }
    }

    /// One NCE pass `calculate_NCE_loss(src, tgt)` times `weight`. With `n_step`, the queries,
    /// keys and encoder features are detached (only N gets gradients).
    fn nce_pass<R: Rng + ?Sized>(
        &self,
        nets: &CutGan,
        src: Tensor<4>,
        tgt: Tensor<4>,
        weight: f64,
        n_step: bool,
        rng: &mut R,
    ) -> Result<NcePass> {
        let cfg = &self.cfg;
        let g = &nets.generator;
        let (src, tgt) = if n_step {
            (src.detach(), tgt.detach())
        } else {
            (src, tgt)
        };
        let mut feat_q = g.forward_layers(tgt, &cfg.nce_layers)?;
        let mut feat_k = g.forward_layers(src, &cfg.nce_layers)?;
        if n_step {
            feat_q = feat_q.into_iter().map(Tensor::detach).collect();
            feat_k = feat_k.into_iter().map(Tensor::detach).collect();
        }
        let ids = PatchIds::sample(&feat_k, cfg.num_patches, rng);
        let k = nets.feature.forward(&feat_k, &ids)?;
        let q = nets.feature.forward(&feat_q, &ids)?;
        let (q, k) = if n_step {
            (
                q.into_iter().map(Tensor::detach).collect::<Vec<_>>(),
                k.into_iter().map(Tensor::detach).collect::<Vec<_>>(),
            )
        } else {
            (q, k)
        };
        match &nets.negatives {
            None => Ok(NcePass {
                loss: self.nce.forward_layers(&q, &k)?.mul_scalar(weight),
                negatives: None,
            }),
            Some(neg) => {
                let maps = neg.momentum_feature.forward_all(&feat_k)?;
                let batch = maps.first().map_or(0, |m| m.dims()[0]);
                let noise = self.noise(neg, batch, rng);
                let negatives = neg.generator.forward_with_noise(&maps, &noise)?;
                Ok(NcePass {
                    loss: self
                        .nce
                        .forward_learned_layers(&q, &k, &negatives)?
                        .mul_scalar(weight),
                    negatives: Some(negatives),
                })
            }
        }
    }

    /// NEG-CUT's noise `z ~ N(0, I)`, per layer `[batch, K, z_dim]`, drawn on the host
    /// (Box–Muller) so that it follows the iteration's seeded generator.
    fn noise<R: Rng + ?Sized>(&self, n: &NegCutNets, batch: usize, rng: &mut R) -> Vec<Tensor<3>> {
        let (k, z) = (n.generator.num_negatives, n.generator.z_dim);
        (0..n.generator.mlps.len())
            .map(|_| {
                let values: Vec<f32> = (0..batch * k * z)
                    .map(|_| {
                        let u1: f64 = rng.random();
                        let u2: f64 = rng.random();
                        ((-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos())
                            as f32
                    })
                    .collect();
                Tensor::from_data(TensorData::new(values, [batch, k, z]), &self.device)
            })
            .collect()
    }

    /// Both NCE passes of a step (the identity pass only with `nce_idt`).
    fn nce_both<R: Rng + ?Sized>(
        &self,
        nets: &CutGan,
        t: &Translated,
        n_step: bool,
        rng: &mut R,
    ) -> Result<NceBoth> {
        let cfg = &self.cfg;
        let (src, tgt) = (t.real_x.clone(), t.fake_y.clone());
        let x = self.nce_pass(nets, src, tgt, cfg.lambda_nce, n_step, rng)?;
        let y = match &t.idt_y {
            Some(idt) => {
                let (src, tgt) = (t.real_y.clone(), idt.clone());
                Some(self.nce_pass(nets, src, tgt, cfg.lambda_nce_idt, n_step, rng)?)
            }
            None => None,
        };
        Ok(NceBoth { x, y })
    }

    fn objective_from(&self, both: &NceBoth) -> Result<NegativeObjective> {
        let nce = both.both();
        let negatives = both
            .last_negatives()
            .ok_or_else(|| GanError::config("negatives", "CUT mode has no negative generator"))?;
        let diversity =
            negative_diversity_loss_layers(negatives)?.mul_scalar(self.cfg.lambda_diversity);
        Ok(NegativeObjective {
            loss: diversity.clone() - nce.clone(),
            nce,
            diversity,
        })
    }

    /// NEG-CUT's N-step objective on a batch (docs/PAPERS.md B.1 `compute_N_loss`): translates `x`
    /// (and `y` with `nce_idt`) with G, then computes `NCE_both` on detached queries and keys
    /// with N's negatives, the diversity term and `L_N`. The patch positions and the noise are
    /// drawn from `rng` in the trainer's order, so the same `rng` state gives the same value.
    /// The trainer minimises [`NegativeObjective::loss`] with N's Adam (and N alone).
    ///
    /// # Shapes
    /// - `real_x`, `real_y`: `[batch, 3, size, size]` in `[-1, 1]`; outputs `[1]`
    ///
    /// # Errors
    /// [`GanError::Config`] for CUT-mode networks; shape errors for networks that do not fit
    /// the configuration.
    pub fn negative_objective<R: Rng + ?Sized>(
        &self,
        nets: &CutGan,
        real_x: Tensor<4>,
        real_y: Tensor<4>,
        rng: &mut R,
    ) -> Result<NegativeObjective> {
        let t = self.translate(&nets.generator, real_x, real_y);
        let both = self.nce_both(nets, &t, true, rng)?;
        self.objective_from(&both)
    }

    /// Trains `nets` (from [`CutConfig::init_nets`]) for the configured epochs, resuming from
    /// `ckpt`'s latest checkpoint if there is one.
    ///
    /// # Errors
    /// [`GanError::Config`] / [`GanError::ShapeMismatch`] when the networks do not fit the
    /// configuration or the crop is too small for the discriminator; data errors (naming the
    /// file); checkpoint I/O; [`GanError::Resume`] for a checkpoint of another seed;
    /// [`GanError::NonFinite`] (naming the last good checkpoint).
    pub fn train(
        &self,
        nets: CutGan,
        ckpt: Option<&CheckpointDir>,
    ) -> Result<Trained<CutGan, GanTrainLog<CutLosses>>> {
        self.check_nets(&nets)?;
        let cfg = &self.cfg;
        let d = &self.device;
        let mut nets = CutGan {
            generator: on_device(nets.generator, d),
            discriminator: on_device(nets.discriminator, d),
            feature: on_device(nets.feature, d),
            negatives: nets.negatives.map(|n| NegCutNets {
                generator: on_device(n.generator, d),
                momentum_feature: on_device(n.momentum_feature, d),
            }),
        };
        let [mut opt_g, mut opt_d, mut opt_f, mut opt_n] =
            std::array::from_fn(|_| self.optimizer());
        let mut log = GanTrainLog::with_seed(cfg.seed);
        let mut start = 0;
        let mut last_ckpt: Option<PathBuf> = None;
        if let Some((state, path)) = resume_point::<CutLosses>(ckpt, cfg.seed)? {
            nets.generator = load_module(nets.generator, path.join(FILES[0]))?;
            nets.discriminator = load_module(nets.discriminator, path.join(FILES[1]))?;
            nets.feature = load_module(nets.feature, path.join(FILES[2]))?;
            if let Some(n) = nets.negatives.take() {
                nets.negatives = Some(NegCutNets {
                    generator: load_module(n.generator, path.join(FILES[3]))?,
                    momentum_feature: load_module(n.momentum_feature, path.join(FILES[4]))?,
                });
                opt_n = load_optimizer(opt_n, path.join(FILES[8]))?;
            }
            opt_g = load_optimizer(opt_g, path.join(FILES[5]))?;
            opt_d = load_optimizer(opt_d, path.join(FILES[6]))?;
            opt_f = load_optimizer(opt_f, path.join(FILES[7]))?;
            start = state.iteration;
            log = state.log;
            last_ckpt = Some(path);
        }
        let total = cfg.total_iterations();
        let gan = cfg.gan_mode;
        let name = match cfg.mode {
            CutMode::Cut => "CUT",
            CutMode::NegCut => "NEG-CUT",
        };
        let bar = progress_bar(total as u64, start as u64, cfg.progress, name);
        let mut epoch_t0 = Instant::now();
        for it in start..total {
            let epoch = it / cfg.iterations_per_epoch;
            let factor = cfg.schedule.factor(epoch);
            let lr = cfg.lr * factor;
            let mut rng = derived(cfg.seed, it as u64);
            let (day, night) = self.data.sample(&mut rng, d)?;
            let real_x = day.mul_scalar(2.0).sub_scalar(1.0);
            let real_y = night.mul_scalar(2.0).sub_scalar(1.0);
            let t = self.translate(&nets.generator, real_x, real_y);
            let mut step = CutLosses::default();

            // 1. discriminator. The instance noise has its own stream, so that the patches and
            // negatives drawn below are the same with and without it.
            let sigma = cfg.d_input_noise;
            let mut noise_rng = derived(cfg.seed ^ NOISE_STREAM, it as u64);
            let loss_d = gan.discriminator_loss(
                nets.discriminator
                    .forward(instance_noise(t.real_y.clone(), sigma, &mut noise_rng)),
                nets.discriminator.forward(instance_noise(
                    t.fake_y.clone().detach(),
                    sigma,
                    &mut noise_rng,
                )),
            );
            step.discriminator = scalar(&loss_d);
            let grads = GradientsParams::from_grads(loss_d.backward(), &nets.discriminator);
            nets.discriminator = opt_d.step(lr, nets.discriminator, grads);

            // 2. NEG-CUT: the negative generator maximises the NCE
            if nets.negatives.is_some() {
                let both = self.nce_both(&nets, &t, true, &mut rng)?;
                let obj = self.objective_from(&both)?;
                step.negative_nce = scalar(&obj.nce);
                step.diversity = scalar(&obj.diversity);
                if let Some(mut n) = nets.negatives.take() {
                    let grads = GradientsParams::from_grads(obj.loss.backward(), &n.generator);
                    n.generator = opt_n.step(lr, n.generator, grads);
                    nets.negatives = Some(n);
                }
            }

            // 3. generator and F (N frozen: its gradients are not applied)
            let adv = gan
                .generator_loss(nets.discriminator.forward(instance_noise(
                    t.fake_y.clone(),
                    sigma,
                    &mut noise_rng,
                )))
                .mul_scalar(cfg.lambda_gan);
            let both = self.nce_both(&nets, &t, false, &mut rng)?;
            step.adversarial = scalar(&adv);
            step.nce = scalar(&both.x.loss);
            step.nce_identity = both.y.as_ref().map_or(0.0, |y| scalar(&y.loss));
            check_finite(&step, it, &last_ckpt)?;
            let mut grads = (adv + both.both()).backward();
            let grads_g = GradientsParams::from_module(&mut grads, &nets.generator);
            let grads_f = GradientsParams::from_module(&mut grads, &nets.feature);
            nets.generator = opt_g.step(lr, nets.generator, grads_g);
            nets.feature = opt_f.step(lr, nets.feature, grads_f);

            // 4. NEG-CUT: momentum update of F′ towards the updated F
            if let Some(mut n) = nets.negatives.take() {
                n.momentum_feature = n
                    .momentum_feature
                    .ema_update(&nets.feature, cfg.ema_decay)?;
                nets.negatives = Some(n);
            }

            log.record(
                step,
                it,
                cfg.iterations_per_epoch,
                total,
                factor,
                &mut epoch_t0,
            );
            bar.inc(1);

            let done = it + 1;
            if let Some(dir) = ckpt
                && (done % cfg.checkpoint_every == 0 || done == total)
            {
                let mut parts = vec![
                    (FILES[0], module_to_bytes(&nets.generator)?),
                    (FILES[1], module_to_bytes(&nets.discriminator)?),
                    (FILES[2], module_to_bytes(&nets.feature)?),
                    (FILES[5], optimizer_to_bytes(&opt_g)?),
                    (FILES[6], optimizer_to_bytes(&opt_d)?),
                    (FILES[7], optimizer_to_bytes(&opt_f)?),
                ];
                if let Some(n) = &nets.negatives {
                    parts.push((FILES[3], module_to_bytes(&n.generator)?));
                    parts.push((FILES[4], module_to_bytes(&n.momentum_feature)?));
                    parts.push((FILES[8], optimizer_to_bytes(&opt_n)?));
                }
                last_ckpt = Some(save_checkpoint(dir, done, &parts, &log)?);
            }
        }
        bar.finish_and_clear();
        Ok(Trained { net: nets, log })
    }
}
