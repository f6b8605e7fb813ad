//! CycleGAN training: the day→night baseline of Dark Side Augmentation (docs/PAPERS.md A.4 "CycleGAN
//! baseline", gandtr `SupervisedCycleGanEpoch`, `train_cyclegan.yml`) and CycleGAN itself
//! (docs/PAPERS.md protocols 3.1, `cycle_gan_model.py`).
//!
//! ## Networks and naming
//!
//! The two codebases name the networks differently, and gandtr's discriminator names are the
//! opposite of what they judge (⚠ docs/PAPERS.md A.4). The fields of [`CycleGan`] are named after
//! what they do:
//!
//! | field                 | role                                  | gandtr | CycleGAN |
//! |-----------------------|---------------------------------------|--------|----------|
//! | `day_to_night`        | generator day (x) → night (y)         | `G_X`  | `G_A`    |
//! | `night_to_day`        | generator night (y) → day (x)         | `G_Y`  | `G_B`    |
//! | `night_discriminator` | real night `y` vs `day_to_night(x)`   | `D_X`  | `D_A`    |
//! | `day_discriminator`   | real day `x` vs `night_to_day(y)`     | `D_Y`  | `D_B`    |
//!
//! (In both codebases the discriminator is named after the generator whose output it judges.)
//!
//! ## One iteration (CycleGAN's `optimize_parameters`)
//!
//! With `x` a day batch, `y` a night batch ([`UnpairedBatches`], mapped to `[-1, 1]`),
//! `G = day_to_night`, `F = night_to_day`, `D_Y = night_discriminator`, `D_X = day_discriminator`,
//! λ = [`CycleGanConfig::lambda_cycle`] (10), λ_idt = [`CycleGanConfig::lambda_identity`]:
//!
//! 1. **generators** (both stepped together, the discriminators only passed through):
//!    `L_G = GAN(D_Y(G(x)), 1) + GAN(D_X(F(y)), 1) + λ·|F(G(x)) − x|₁ + λ·|G(F(y)) − y|₁
//!    + λ·λ_idt·(|G(y) − y|₁ + |F(x) − x|₁)` (the identity terms only when λ_idt > 0).
//! 2. **discriminators** (both stepped together): `L_{D_Y} = ½·[GAN(D_Y(y), 1) +
//!    GAN(D_Y(pool_Y(G(x))), 0)]`, `L_{D_X}` likewise with `pool_X(F(y))` — the translations of
//!    step 1 (made before the generator update, detached) through an [`ImagePool`] of 50.
//!
//! GAN is LSGAN ([`GanMode::Lsgan`]); L1 is the mean absolute difference. Each of the four
//! networks has its own Adam (lr 2e-4, β (0.5, 0.999), ε 1e-8 as PyTorch's): Adam is
//! element-wise, so this equals CycleGAN's one optimiser over the chained parameters of both
//! generators (and of both discriminators). The learning rate of epoch `e` (0-based) is
//! `lr · schedule.factor(e)` ([`LinearDecay`], CycleGAN's `linear` policy), for
//! `n_epochs + n_epochs_decay + 1 − epoch_count` epochs.
//!
//! Presets: [`CycleGanConfig::gandtr`] (the default: identity 0, 50 + 50 epochs of 10 000
//! iterations — 10 000 pairs at batch 1) and [`CycleGanConfig::cyclegan`] (identity 0.5,
//! 100 + 100 epochs; CycleGAN's epoch is one pass over the larger domain, set
//! [`CycleGanConfig::iterations_per_epoch`] to it). The data pipeline is the caller's
//! [`UnpairedBatches`] (gandtr's scale crop); CycleGAN's resize-286 / crop-256 / flip is not
//! reproduced.
//!
//! ## Determinism and resume
//!
//! Every host-side random draw of iteration `i` (the batch, the two pools' swap decisions) comes
//! from `derived(seed, i)`: the pools are rebuilt at every iteration from their stored images with
//! a generator seeded from that stream. A checkpoint ([`CheckpointDir`]) holds the four networks,
//! the four optimiser states, both pools' images (`pool_night.bin`, `pool_day.bin`: four
//! little-endian `u64` dims `[n, c, h, w]`, then the `f32` values), the generator's moving
//! average when [`CycleGanConfig::g_ema_decay`] > 0 ([`EMA_FILE`]) and the log, so a resumed run
//! equals an uninterrupted one bit for bit.
//!
//! ```
//! use nightgen_gan::{CycleGanConfig, GanError};
//!
//! let cfg = CycleGanConfig::gandtr();
//! assert_eq!((cfg.lambda_cycle, cfg.lambda_identity, cfg.pool_size), (10.0, 0.0, 50));
//! assert_eq!(CycleGanConfig::cyclegan().lambda_identity, 0.5);
//! cfg.validate()?;
//! let bad = CycleGanConfig { lambda_cycle: -1.0, ..cfg };
//! assert!(matches!(bad.validate(), Err(GanError::Config { name: "lambda_cycle", .. })));
//! # Ok::<(), GanError>(())
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
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
use crate::init::InitConfig;
use crate::losses::{GanMode, cycle_consistency_l1, identity_l1};
use crate::pool::ImagePool;
use crate::schedule::LinearDecay;
use nightvision_core::{ema_update_copying_buffers, on_device};

use crate::train::{
    ADAM_EPSILON, GanTrainLog, check_beta1, check_discriminator_crop, check_finite,
    check_generator_crop, check_iterations, check_linear_decay, check_positive, check_weights,
    instance_noise, linear_decay_epochs, progress_bar, resume_point, save_checkpoint, scalar,
};

/// Configuration of [`CycleGanTrainer`] (defaults: gandtr `train_cyclegan.yml`, docs/PAPERS.md A.4).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CycleGanConfig {
    /// The adversarial objective (LSGAN).
    pub gan_mode: GanMode,
    /// Weight λ of each cycle-consistency term (CycleGAN's `lambda_A = lambda_B`, 10).
    pub lambda_cycle: f64,
    /// Identity weight λ_idt, relative to λ (CycleGAN 0.5; gandtr 0, no identity term).
    pub lambda_identity: f64,
    /// The iterations the identity term applies to: the first `n` (a warm-up that holds the
    /// content while the generator leaves the identity, then leaves the palette free;
    /// docs/TRAINING.md), or all of them (`None`, the references).
    #[serde(default)]
    pub identity_iterations: Option<usize>,
    /// Images kept by each discriminator's [`ImagePool`] (50; 0 disables the pools).
    pub pool_size: usize,
    /// Instance noise of both discriminators' inputs ([`crate::instance_noise`]; 0, the
    /// reference, adds none).
    #[serde(default)]
    pub d_input_noise: f64,
    /// Decay of an exponential moving average of the day→night generator's weights, kept
    /// beside it and updated after every generator step (`θ̄ ← decay·θ̄ + (1 − decay)·θ`);
    /// 0, the reference, keeps none. The average damps the colour swings of the raw
    /// generator at small batches (docs/TRAINING.md). Batch norm's running statistics are
    /// copied, not averaged.
    #[serde(default)]
    pub g_ema_decay: f64,
    /// Adam learning rate of all four networks (2e-4).
    pub lr: f64,
    /// Adam β₁ (0.5; β₂ is 0.999).
    pub beta1: f32,
    /// Epoch schedule of the learning rate (gandtr 50 + 50, CycleGAN 100 + 100).
    pub schedule: LinearDecay,
    /// Iterations per epoch (gandtr: 10 000 pairs / batch 1).
    pub iterations_per_epoch: usize,
    /// Save a checkpoint every this many iterations (and at the end).
    pub checkpoint_every: usize,
    /// Seed of every host-side random draw.
    pub seed: u64,
    /// Show a progress bar.
    pub progress: bool,
}

impl Default for CycleGanConfig {
    /// [`CycleGanConfig::gandtr`].
    fn default() -> Self {
        Self::gandtr()
    }
}

impl CycleGanConfig {
    /// gandtr's day→night CycleGAN (docs/PAPERS.md A.4, docs/PAPERS.md protocols 3.1 last item): LSGAN, cycle 10,
    /// no identity, pools of 50, Adam 2e-4 β₁ 0.5, 50 + 50 epochs of 10 000 iterations.
    pub fn gandtr() -> Self {
        Self {
            gan_mode: GanMode::Lsgan,
            lambda_cycle: 10.0,
            lambda_identity: 0.0,
            identity_iterations: None,
            pool_size: ImagePool::DEFAULT_SIZE,
            d_input_noise: 0.0,
            g_ema_decay: 0.0,
            lr: 2e-4,
            beta1: 0.5,
            schedule: LinearDecay::gandtr_cyclegan(),
            iterations_per_epoch: 10_000,
            checkpoint_every: 10_000,
            seed: 0,
            progress: false,
        }
    }

    /// CycleGAN's defaults (docs/PAPERS.md protocols 3.1): as [`gandtr`](Self::gandtr) with identity 0.5 and
    /// 100 + 100 epochs.
    pub fn cyclegan() -> Self {
        Self {
            lambda_identity: 0.5,
            schedule: LinearDecay::cyclegan(),
            ..Self::gandtr()
        }
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`GanError::Config`] naming the field.
    pub fn validate(&self) -> Result<()> {
        check_positive(&[("lr", self.lr)])?;
        check_beta1(self.beta1)?;
        check_weights(&[
            ("lambda_cycle", self.lambda_cycle),
            ("lambda_identity", self.lambda_identity),
            ("d_input_noise", self.d_input_noise),
        ])?;
        if !(self.g_ema_decay.is_finite() && (0.0..1.0).contains(&self.g_ema_decay)) {
            return Err(GanError::config(
                "g_ema_decay",
                format!("{} is not in [0, 1)", self.g_ema_decay),
            ));
        }
        if self.identity_iterations == Some(0) {
            return Err(GanError::config(
                "identity_iterations",
                "0 would never apply the identity term: give at least 1, or none for all iterations",
            ));
        }
        check_linear_decay(&self.schedule)?;
        check_iterations(self.iterations_per_epoch, self.checkpoint_every)?;
        Ok(())
    }

    fn total_iterations(&self) -> usize {
        linear_decay_epochs(&self.schedule) * self.iterations_per_epoch
    }
}

/// The four networks of CycleGAN (see the naming table in the [module docs](self)).
#[derive(Debug, Clone)]
pub struct CycleGan {
    /// Day → night generator (gandtr `G_X`, CycleGAN `G_A`).
    pub day_to_night: ResnetGenerator,
    /// Night → day generator (gandtr `G_Y`, CycleGAN `G_B`).
    pub night_to_day: ResnetGenerator,
    /// Judges night images: real `y` vs `day_to_night(x)` (gandtr `D_X`, CycleGAN `D_A`).
    pub night_discriminator: NLayerDiscriminator,
    /// Judges day images: real `x` vs `night_to_day(y)` (gandtr `D_Y`, CycleGAN `D_B`).
    pub day_discriminator: NLayerDiscriminator,
    /// The moving average of `day_to_night`'s weights ([`CycleGanConfig::g_ema_decay`]): `None`
    /// until a trainer with a decay > 0 starts it from a copy of `day_to_night`.
    pub day_to_night_ema: Option<ResnetGenerator>,
}

impl CycleGan {
    /// gandtr's networks at full size (docs/PAPERS.md A.2): instance norm, no anti-aliasing,
    /// `normal_p2p` with gain 0.2; the four networks use init seeds 0–3 (independent weights).
    pub fn gandtr(device: &Device) -> Self {
        Self::with_configs(
            ResnetGeneratorConfig::gandtr_cyclegan(),
            NLayerDiscriminatorConfig::new().with_init_scheme(InitConfig::gandtr_normal()),
            device,
        )
    }

    /// CycleGAN's networks (docs/PAPERS.md protocols 3.1): `resnet_9blocks`, 70×70 PatchGAN, N(0, 0.02);
    /// init seeds 0–3.
    // Named like the matching preset `CycleGanConfig::cyclegan`.
    #[allow(clippy::self_named_constructors)]
    pub fn cyclegan(device: &Device) -> Self {
        Self::with_configs(
            ResnetGeneratorConfig::cyclegan(),
            NLayerDiscriminatorConfig::new(),
            device,
        )
    }

    /// Both generators from `generator`, both discriminators from `discriminator`, with init
    /// seeds `seed`, `seed + 1` (generators) and `seed + 2`, `seed + 3` (discriminators), where
    /// `seed` is the configs' `init_seed`.
    ///
    /// # Panics
    /// When a configuration is invalid (see [`ResnetGeneratorConfig::init`]).
    pub fn with_configs(
        generator: ResnetGeneratorConfig,
        discriminator: NLayerDiscriminatorConfig,
        device: &Device,
    ) -> Self {
        let g = generator.init_seed;
        let d = discriminator.init_seed;
        Self {
            day_to_night: generator.clone().with_init_seed(g).init(device),
            night_to_day: generator.with_init_seed(g.wrapping_add(1)).init(device),
            night_discriminator: discriminator
                .clone()
                .with_init_seed(d.wrapping_add(2))
                .init(device),
            day_discriminator: discriminator.with_init_seed(d.wrapping_add(3)).init(device),
            day_to_night_ema: None,
        }
    }
}

/// Losses of one CycleGAN iteration (weighted as they enter their objectives).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct CycleGanLosses {
    /// `L_{D_Y}` of the night discriminator.
    pub discriminator_night: f32,
    /// `L_{D_X}` of the day discriminator.
    pub discriminator_day: f32,
    /// `GAN(D_Y(G(x)), 1)`, the day→night generator's adversarial term.
    pub adversarial_day_to_night: f32,
    /// `GAN(D_X(F(y)), 1)`, the night→day generator's adversarial term.
    pub adversarial_night_to_day: f32,
    /// `λ·|F(G(x)) − x|₁`.
    pub cycle_day: f32,
    /// `λ·|G(F(y)) − y|₁`.
    pub cycle_night: f32,
    /// `λ·λ_idt·(|G(y) − y|₁ + |F(x) − x|₁)` (0 without identity loss).
    pub identity: f32,
}

crate::train::iteration_losses!(CycleGanLosses {
    discriminator_night => "night discriminator loss",
    discriminator_day => "day discriminator loss",
    adversarial_day_to_night => "day→night adversarial loss",
    adversarial_night_to_day => "night→day adversarial loss",
    cycle_day => "day cycle loss",
    cycle_night => "night cycle loss",
    identity => "identity loss",
});

/// Trains CycleGAN (see the [module docs](self)).
#[derive(Debug)]
pub struct CycleGanTrainer<'a> {
    cfg: CycleGanConfig,
    data: &'a UnpairedBatches,
    device: Device,
}

/// The checkpoint file names of the networks and their optimisers, in [`CycleGan`] field order.
const MODULE_FILES: [&str; 4] = [
    "day_to_night.bpk",
    "night_to_day.bpk",
    "night_discriminator.bpk",
    "day_discriminator.bpk",
];
const OPTIM_FILES: [&str; 4] = [
    "optim_day_to_night.bpk",
    "optim_night_to_day.bpk",
    "optim_night_discriminator.bpk",
    "optim_day_discriminator.bpk",
];
const POOL_FILES: [&str; 2] = ["pool_night.bin", "pool_day.bin"];
/// The checkpoint file of [`CycleGan::day_to_night_ema`] (written when the decay is > 0).
pub const EMA_FILE: &str = "day_to_night_ema.bpk";

impl<'a> CycleGanTrainer<'a> {
    /// A trainer on `device` (an autodiff device, e.g. `Device::default().autodiff()`).
    ///
    /// # Errors
    /// [`GanError::Config`] for an invalid configuration, a non-autodiff device, or a crop size
    /// the generator cannot take (a multiple of 4, at least 8).
    pub fn new(cfg: CycleGanConfig, data: &'a UnpairedBatches, device: &Device) -> Result<Self> {
        cfg.validate()?;
        if !device.is_autodiff() {
            return Err(GanError::config(
                "device",
                "training needs an autodiff device (`device.autodiff()`)",
            ));
        }
        check_generator_crop(data.crop().size)?;
        Ok(Self {
            cfg,
            data,
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

    /// Trains `nets` for the configured epochs, resuming from `ckpt`'s latest checkpoint if there
    /// is one.
    ///
    /// # Errors
    /// [`GanError::Config`] when the crop is too small for a discriminator; data errors (naming
    /// the file); checkpoint I/O; [`GanError::Resume`] for a checkpoint of another seed or with
    /// unreadable pools; [`GanError::NonFinite`] (naming the last good checkpoint).
    pub fn train(
        &self,
        nets: CycleGan,
        ckpt: Option<&CheckpointDir>,
    ) -> Result<Trained<CycleGan, GanTrainLog<CycleGanLosses>>> {
        let cfg = &self.cfg;
        let d = &self.device;
        let size = self.data.crop().size;
        check_discriminator_crop(&nets.night_discriminator, size)?;
        check_discriminator_crop(&nets.day_discriminator, size)?;
        let mut g_xy = on_device(nets.day_to_night, d);
        let mut g_yx = on_device(nets.night_to_day, d);
        let mut d_y = on_device(nets.night_discriminator, d);
        let mut d_x = on_device(nets.day_discriminator, d);
        // The average never enters a graph: it starts as an untracked copy of the generator.
        let ema_decay = cfg.g_ema_decay;
        let mut g_ema = (ema_decay > 0.0).then(|| match nets.day_to_night_ema {
            Some(ema) => on_device(ema, d).no_grad(),
            None => g_xy.clone().no_grad(),
        });
        let [mut opt_gxy, mut opt_gyx, mut opt_dy, mut opt_dx] =
            std::array::from_fn(|_| self.optimizer());
        // The pools' stored images (slot order); the pools themselves are rebuilt per iteration.
        let mut pool_y: Vec<Tensor<4>> = Vec::new();
        let mut pool_x: Vec<Tensor<4>> = Vec::new();
        let mut log = GanTrainLog::with_seed(cfg.seed);
        let mut start = 0;
        let mut last_ckpt: Option<PathBuf> = None;
        if let Some((state, path)) = resume_point::<CycleGanLosses>(ckpt, cfg.seed)? {
            g_xy = load_module(g_xy, path.join(MODULE_FILES[0]))?;
            g_yx = load_module(g_yx, path.join(MODULE_FILES[1]))?;
            d_y = load_module(d_y, path.join(MODULE_FILES[2]))?;
            d_x = load_module(d_x, path.join(MODULE_FILES[3]))?;
            opt_gxy = load_optimizer(opt_gxy, path.join(OPTIM_FILES[0]))?;
            opt_gyx = load_optimizer(opt_gyx, path.join(OPTIM_FILES[1]))?;
            opt_dy = load_optimizer(opt_dy, path.join(OPTIM_FILES[2]))?;
            opt_dx = load_optimizer(opt_dx, path.join(OPTIM_FILES[3]))?;
            pool_y = read_pool(&path.join(POOL_FILES[0]), cfg.pool_size, d)?;
            pool_x = read_pool(&path.join(POOL_FILES[1]), cfg.pool_size, d)?;
            if let Some(ema) = g_ema {
                g_ema = Some(load_module(ema, path.join(EMA_FILE))?.no_grad());
            }
            start = state.iteration;
            log = state.log;
            last_ckpt = Some(path);
        }
        let total = cfg.total_iterations();
        let gan = cfg.gan_mode;
        let lambda = cfg.lambda_cycle;
        let lambda_idt = lambda * cfg.lambda_identity;
        let bar = progress_bar(total as u64, start as u64, cfg.progress, "CycleGAN");
        let mut epoch_t0 = Instant::now();
        for it in start..total {
            let epoch = it / cfg.iterations_per_epoch;
            let factor = cfg.schedule.factor(epoch);
            let lr = cfg.lr * factor;
            let mut rng = derived(cfg.seed, it as u64);
            let (day, night) = self.data.sample(&mut rng, d)?;
            let pool_seeds: [u64; 2] = [rng.random(), rng.random()];
            let real_x = day.mul_scalar(2.0).sub_scalar(1.0);
            let real_y = night.mul_scalar(2.0).sub_scalar(1.0);

            // 1. generators
            let fake_y = g_xy.forward(real_x.clone());
            let rec_x = g_yx.forward(fake_y.clone());
            let fake_x = g_yx.forward(real_y.clone());
            let rec_y = g_xy.forward(fake_x.clone());
            // the discriminator step sees the translations made before the generator update
            let fake_y_const = fake_y.clone().detach();
            let fake_x_const = fake_x.clone().detach();
            let sigma = cfg.d_input_noise;
            let adv_xy = gan.generator_loss(d_y.forward(instance_noise(fake_y, sigma, &mut rng)));
            let adv_yx = gan.generator_loss(d_x.forward(instance_noise(fake_x, sigma, &mut rng)));
            let cyc_x = cycle_consistency_l1(rec_x, real_x.clone())?.mul_scalar(lambda);
            let cyc_y = cycle_consistency_l1(rec_y, real_y.clone())?.mul_scalar(lambda);
            let mut loss_g = adv_xy.clone() + adv_yx.clone() + cyc_x.clone() + cyc_y.clone();
            let mut identity = 0.0;
            if lambda_idt > 0.0 && cfg.identity_iterations.is_none_or(|n| it < n) {
                let idt = (identity_l1(g_xy.forward(real_y.clone()), real_y.clone())?
                    + identity_l1(g_yx.forward(real_x.clone()), real_x.clone())?)
                .mul_scalar(lambda_idt);
                identity = scalar(&idt);
                loss_g = loss_g + idt;
            }
            let mut grads = loss_g.backward();
            let grads_xy = GradientsParams::from_module(&mut grads, &g_xy);
            let grads_yx = GradientsParams::from_module(&mut grads, &g_yx);
            g_xy = opt_gxy.step(lr, g_xy, grads_xy);
            g_yx = opt_gyx.step(lr, g_yx, grads_yx);
            if let Some(ema) = g_ema {
                g_ema = Some(ema_update_copying_buffers(ema, &g_xy, ema_decay));
            }

            // 2. discriminators, on pooled translations
            let (pooled_y, stored_y) =
                query_pool(cfg.pool_size, &pool_y, pool_seeds[0], fake_y_const)?;
            let (pooled_x, stored_x) =
                query_pool(cfg.pool_size, &pool_x, pool_seeds[1], fake_x_const)?;
            pool_y = stored_y;
            pool_x = stored_x;
            let mut noisy = |t: Tensor<4>| instance_noise(t, sigma, &mut rng);
            let loss_dy =
                gan.discriminator_loss(d_y.forward(noisy(real_y)), d_y.forward(noisy(pooled_y)));
            let loss_dx =
                gan.discriminator_loss(d_x.forward(noisy(real_x)), d_x.forward(noisy(pooled_x)));
            let mut grads = (loss_dy.clone() + loss_dx.clone()).backward();
            let grads_dy = GradientsParams::from_module(&mut grads, &d_y);
            let grads_dx = GradientsParams::from_module(&mut grads, &d_x);
            d_y = opt_dy.step(lr, d_y, grads_dy);
            d_x = opt_dx.step(lr, d_x, grads_dx);

            let step = CycleGanLosses {
                discriminator_night: scalar(&loss_dy),
                discriminator_day: scalar(&loss_dx),
                adversarial_day_to_night: scalar(&adv_xy),
                adversarial_night_to_day: scalar(&adv_yx),
                cycle_day: scalar(&cyc_x),
                cycle_night: scalar(&cyc_y),
                identity,
            };
            check_finite(&step, it, &last_ckpt)?;
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
                    (MODULE_FILES[0], module_to_bytes(&g_xy)?),
                    (MODULE_FILES[1], module_to_bytes(&g_yx)?),
                    (MODULE_FILES[2], module_to_bytes(&d_y)?),
                    (MODULE_FILES[3], module_to_bytes(&d_x)?),
                    (OPTIM_FILES[0], optimizer_to_bytes(&opt_gxy)?),
                    (OPTIM_FILES[1], optimizer_to_bytes(&opt_gyx)?),
                    (OPTIM_FILES[2], optimizer_to_bytes(&opt_dy)?),
                    (OPTIM_FILES[3], optimizer_to_bytes(&opt_dx)?),
                    (POOL_FILES[0], pool_to_bytes(&pool_y)?),
                    (POOL_FILES[1], pool_to_bytes(&pool_x)?),
                ];
                if let Some(ema) = &g_ema {
                    parts.push((EMA_FILE, module_to_bytes(ema)?));
                }
                last_ckpt = Some(save_checkpoint(dir, done, &parts, &log)?);
            }
        }
        bar.finish_and_clear();
        Ok(Trained {
            net: CycleGan {
                day_to_night: g_xy,
                night_to_day: g_yx,
                night_discriminator: d_y,
                day_discriminator: d_x,
                day_to_night_ema: g_ema,
            },
            log,
        })
    }
}

/// Rebuilds a pool of `size` from its stored images (in slot order; filling draws nothing from
/// the generator), queries it with `fakes` drawing from a generator seeded with `seed`, and
/// returns the discriminator's batch and the images stored afterwards.
fn query_pool(
    size: usize,
    stored: &[Tensor<4>],
    seed: u64,
    fakes: Tensor<4>,
) -> Result<(Tensor<4>, Vec<Tensor<4>>)> {
    let mut pool = ImagePool::new(size, seed);
    for image in stored {
        pool.query(image.clone())?;
    }
    let out = pool.query(fakes)?;
    Ok((out, pool.images().to_vec()))
}

/// The pool file: `[n, c, h, w]` as little-endian `u64`, then the `n·c·h·w` values as `f32`.
fn pool_to_bytes(images: &[Tensor<4>]) -> Result<Vec<u8>> {
    let (dims, values) = match images.first() {
        None => ([0; 4], Vec::new()),
        Some(first) => {
            let [_, c, h, w] = first.dims();
            let all = Tensor::cat(images.to_vec(), 0);
            let values =
                all.into_data()
                    .try_into_vec_as::<f32>()
                    .map_err(|e| GanError::InvalidInput {
                        what: "pooled images",
                        reason: format!("not convertible to f32: {e:?}"),
                    })?;
            ([images.len(), c, h, w], values)
        }
    };
    let mut bytes = Vec::with_capacity(32 + 4 * values.len());
    for d in dims {
        bytes.extend_from_slice(&(d as u64).to_le_bytes());
    }
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    Ok(bytes)
}

/// Reads a pool file written by [`pool_to_bytes`] into `[1, c, h, w]` images on `device`.
fn read_pool(path: &Path, pool_size: usize, device: &Device) -> Result<Vec<Tensor<4>>> {
    let bytes = std::fs::read(path).map_err(|e| nightvision_core::CoreError::io(path, e))?;
    let bad = |reason: String| GanError::Resume {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() < 32 {
        return Err(bad(format!(
            "{} bytes is too short for a pool header",
            bytes.len()
        )));
    }
    let mut dims = [0usize; 4];
    for (i, d) in dims.iter_mut().enumerate() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[8 * i..8 * i + 8]);
        *d = usize::try_from(u64::from_le_bytes(word))
            .map_err(|_| bad("pool dimension overflows usize".into()))?;
    }
    let [n, c, h, w] = dims;
    if n > pool_size {
        return Err(bad(format!(
            "{n} pooled images exceed the pool size {pool_size}"
        )));
    }
    let count = [n, c, h, w]
        .iter()
        .try_fold(1usize, |a, &b| a.checked_mul(b))
        .ok_or_else(|| bad("pool dimensions overflow".into()))?;
    if bytes.len() != 32 + 4 * count {
        return Err(bad(format!(
            "{} bytes for a [{n}, {c}, {h}, {w}] pool (expected {})",
            bytes.len(),
            32 + 4 * count
        )));
    }
    if n == 0 {
        return Ok(Vec::new());
    }
    let values: Vec<f32> = bytes[32..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let all = Tensor::<4>::from_data(TensorData::new(values, [n, c, h, w]), device);
    Ok((0..n).map(|i| all.clone().narrow(0, i, 1)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_files_round_trip_bit_exactly() {
        let device = Device::default();
        let images: Vec<Tensor<4>> = (0..3)
            .map(|i| {
                Tensor::<4>::random(
                    [1, 3, 4, 5],
                    burn::tensor::Distribution::Normal(i as f64, 1.0),
                    &device,
                )
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pool.bin");
        std::fs::write(&path, pool_to_bytes(&images).unwrap()).unwrap();
        let back = read_pool(&path, 50, &device).unwrap();
        assert_eq!(back.len(), 3);
        for (a, b) in images.iter().zip(&back) {
            assert_eq!(a.to_data(), b.to_data());
        }
        std::fs::write(&path, pool_to_bytes(&[]).unwrap()).unwrap();
        assert!(read_pool(&path, 50, &device).unwrap().is_empty());
        // More images than the pool holds, and a truncated file, are resume errors.
        std::fs::write(&path, pool_to_bytes(&images).unwrap()).unwrap();
        assert!(matches!(
            read_pool(&path, 2, &device),
            Err(GanError::Resume { .. })
        ));
        let bytes = pool_to_bytes(&images).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
        assert!(matches!(
            read_pool(&path, 50, &device),
            Err(GanError::Resume { .. })
        ));
    }

    #[test]
    fn rebuilt_pool_equals_a_persistent_one() {
        // A pool rebuilt from its stored images and queried with a generator makes the same
        // choice as a pool kept alive with that generator: filling a pool draws nothing.
        let device = Device::default();
        let img = |v: f32| Tensor::<4>::ones([1, 1, 1, 1], &device).mul_scalar(v);
        let ids = |t: &[Tensor<4>]| -> Vec<f32> {
            t.iter().map(|t| t.clone().into_scalar::<f32>()).collect()
        };
        for seed in 0..8 {
            let mut alive = ImagePool::new(2, seed);
            alive.query(img(0.0)).unwrap();
            alive.query(img(1.0)).unwrap();
            let want = alive.query(img(9.0)).unwrap();
            let (got, stored) = query_pool(2, &[img(0.0), img(1.0)], seed, img(9.0)).unwrap();
            assert_eq!(got.into_scalar::<f32>(), want.into_scalar::<f32>());
            assert_eq!(ids(&stored), ids(alive.images()));
        }
    }
}
