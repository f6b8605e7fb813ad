//! HEDN-GAN training: a day→night generator with edge consistency through a jointly trained HED
//! (Dark Side Augmentation, docs/PAPERS.md A.4 `SupervisedHedNGanEpoch`, `train_hedngan.yml`).
//!
//! Networks: the generator G (ResNet, batch norm), the PatchGAN discriminator D_Y (batch norm),
//! a trainable *student* HED H_s and a frozen *teacher* HED H_t, both from the same BSDS500
//! weights. Every iteration draws an unpaired batch (day `x`, night `y`, [`UnpairedBatches`]) and
//! runs the three steps in the order of A.4:
//!
//! 1. **D step**: `L_D = ½·[MSE(D(y), 1) + MSE(D(G(x)).detach, 0)]`, Adam 2e-4, β (0.5, 0.999).
//! 2. **detector step**: `L_E = hed·[L1(H_s(x), H_t(x)) + L1(H_s(G(x).detach), H_t(x))]` on logits
//!    (the student learns to see the *day* edges in the synthetic night image), Adam 1e-6,
//!    β (0.9, 0.999), weight decay 2e-4, HED's Caffe learning-rate / decay multipliers.
//! 3. **G step**: `L_G = MSE(D(G(x)), 1) + edge·L1(σ H_s(G(x)), σ H_t(x))`, only G stepped.
//!
//! All three learning rates follow gandtr's `lambda_p2p` schedule per epoch ([`LambdaP2p`]).
//! Images enter G in `[-1, 1]` and HED in `[0, 1]` (HED normalises inside). Every host-side random
//! draw of iteration `i` comes from `derived(seed, i)`, so a run resumed from a checkpoint
//! ([`CheckpointDir`]: G, D, H_s, the three optimiser states, the log) continues exactly as an
//! uninterrupted one.

use std::path::PathBuf;
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use hed_edges::{Hed, HedNLossConfig, caffe_lr_scheduler, caffe_optimizer};
use nightvision_core::checkpoint::{
    CheckpointDir, Trained, load_module, load_optimizer, module_to_bytes, optimizer_to_bytes,
    save_json,
};
use nightvision_core::on_device;
use nightvision_core::rng::{RngCore, derived, normals};
use serde::{Deserialize, Serialize};

use crate::data::UnpairedBatches;
use crate::discriminator::{NLayerDiscriminator, NLayerDiscriminatorConfig};
use crate::error::{GanError, Result};
use crate::generator::Layer;
use crate::generator::{ResnetGenerator, ResnetGeneratorConfig};
use crate::losses::GanMode;
use crate::schedule::{LambdaP2p, LinearDecay};

/// Configuration of [`HedNGanTrainer`] (defaults: gandtr `train_hedngan.yml`, docs/PAPERS.md A.4).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HedNGanConfig {
    /// The adversarial objective (LSGAN).
    pub gan_mode: GanMode,
    /// Weight of the generator's adversarial term (1).
    pub adversarial_weight: f64,
    /// Weights of the student's distillation terms (`hed`, 1) and of the generator's edge
    /// consistency (`edge`, 5).
    pub hed_n: HedNWeights,
    /// Adam learning rate of G and D (2e-4).
    pub lr: f64,
    /// Adam β₁ of G and D (0.5).
    pub beta1: f32,
    /// Adam learning rate of the student HED (1e-6; times the Caffe multipliers).
    pub detector_lr: f64,
    /// Adam weight decay of the student HED (2e-4; times the Caffe decay multipliers).
    pub detector_weight_decay: f32,
    /// Epoch schedule of all three learning rates (50 epochs, the last 25 decaying).
    pub schedule: LambdaP2p,
    /// Instance noise: the standard deviation of the Gaussian noise added to every image the
    /// discriminator sees, real and translated, in the `[-1, 1]` range ([`instance_noise`]).
    /// 0 (gandtr's recipe) adds none.
    #[serde(default)]
    pub d_input_noise: f64,
    /// Iterations per epoch (gandtr: 10 000 pairs / batch 10 = 1000).
    pub iterations_per_epoch: usize,
    /// Save a checkpoint every this many iterations (and at the end).
    pub checkpoint_every: usize,
    /// Seed of every host-side random draw.
    pub seed: u64,
    /// Show a progress bar.
    pub progress: bool,
}

/// The HED^N loss weights, serialisable (see [`HedNLossConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HedNWeights {
    /// Weight of each student distillation term (1).
    pub hed: f64,
    /// Weight of the generator's edge-consistency term (5).
    pub edge: f64,
}

impl Default for HedNGanConfig {
    fn default() -> Self {
        Self {
            gan_mode: GanMode::Lsgan,
            adversarial_weight: 1.0,
            hed_n: HedNWeights {
                hed: 1.0,
                edge: 5.0,
            },
            lr: 2e-4,
            beta1: 0.5,
            detector_lr: 1e-6,
            detector_weight_decay: 2e-4,
            schedule: LambdaP2p::gandtr(),
            d_input_noise: 0.0,
            iterations_per_epoch: 1000,
            checkpoint_every: 1000,
            seed: 0,
            progress: false,
        }
    }
}

impl HedNGanConfig {
    /// Checks the configuration.
    ///
    /// # Errors
    /// [`GanError::Config`] naming the field.
    pub fn validate(&self) -> Result<()> {
        self.schedule.validate()?;
        check_positive(&[
            ("lr", self.lr),
            ("detector_lr", self.detector_lr),
            ("adversarial_weight", self.adversarial_weight),
        ])?;
        check_weights(&[
            ("hed", self.hed_n.hed),
            ("edge", self.hed_n.edge),
            ("d_input_noise", self.d_input_noise),
        ])?;
        check_iterations(self.iterations_per_epoch, self.checkpoint_every)?;
        Ok(())
    }

    fn total_iterations(&self) -> usize {
        self.schedule.epochs * self.iterations_per_epoch
    }
}

/// The trained (or training) networks of HEDN-GAN.
#[derive(Debug, Clone)]
pub struct HedNGan {
    /// The day→night generator G.
    pub generator: ResnetGenerator,
    /// The night discriminator D_Y.
    pub discriminator: NLayerDiscriminator,
    /// The student edge detector H_s.
    pub student: Hed,
}

impl HedNGan {
    /// gandtr's networks (batch norm, `kaiming_p2p`) at full size, with the student `student`
    /// (load it from the same weights as the teacher).
    pub fn gandtr(student: Hed, device: &Device) -> Self {
        Self {
            generator: ResnetGeneratorConfig::gandtr_hedngan().init(device),
            discriminator: NLayerDiscriminatorConfig::gandtr_hedngan().init(device),
            student,
        }
    }
}

/// Losses of one iteration.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct StepLosses {
    /// The discriminator loss `L_D`.
    pub discriminator: f32,
    /// The student HED loss `L_E` (weighted).
    pub detector: f32,
    /// The generator's adversarial term (weighted).
    pub generator_adversarial: f32,
    /// The generator's edge-consistency term (weighted).
    pub generator_edge: f32,
}

crate::train::iteration_losses!(StepLosses {
    discriminator => "discriminator loss",
    detector => "detector loss",
    generator_adversarial => "generator adversarial loss",
    generator_edge => "generator edge loss",
});

/// The losses of one training iteration of a trainer ([`StepLosses`] for HEDN-GAN,
/// [`CycleGanLosses`](crate::train_cyclegan::CycleGanLosses),
/// [`CutLosses`](crate::train_cut::CutLosses)); [`GanTrainLog`] keeps them and their epoch means.
pub trait IterationLosses: Copy + Default + PartialEq {
    /// Every loss with its name (the name is what [`GanError::NonFinite`] reports).
    fn named(&self) -> Vec<(&'static str, f32)>;
    /// Adds `other` loss by loss.
    fn add(&mut self, other: &Self);
    /// Multiplies every loss by `factor`.
    fn scaled(self, factor: f32) -> Self;
}

/// Implements [`IterationLosses`] for a struct of `f32` loss fields, each with the name
/// [`GanError::NonFinite`] reports.
macro_rules! iteration_losses {
    ($ty:ty { $($field:ident => $name:literal),+ $(,)? }) => {
        impl $crate::train::IterationLosses for $ty {
            fn named(&self) -> Vec<(&'static str, f32)> {
                vec![$(($name, self.$field)),+]
            }

            fn add(&mut self, o: &Self) {
                $(self.$field += o.$field;)+
            }

            fn scaled(mut self, f: f32) -> Self {
                $(self.$field *= f;)+
                self
            }
        }
    };
}
pub(crate) use iteration_losses;

/// [`GanError::NonFinite`] for the first loss of `step` that is NaN or infinite.
pub(crate) fn check_finite<S: IterationLosses>(
    step: &S,
    iteration: usize,
    checkpoint: &Option<PathBuf>,
) -> Result<()> {
    for (what, value) in step.named() {
        if !value.is_finite() {
            return Err(GanError::NonFinite {
                what,
                value,
                iteration,
                checkpoint: checkpoint.clone(),
            });
        }
    }
    Ok(())
}

/// What one epoch did (means over its iterations).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GanEpochLog<S = StepLosses> {
    /// Epoch index.
    pub epoch: usize,
    /// Learning-rate factor of the schedule.
    pub lr_factor: f64,
    /// Iterations run in this epoch.
    pub iterations: usize,
    /// Mean losses.
    pub mean: S,
    /// Wall time (s).
    pub seconds: f64,
}

/// The log of a run (`S`: the per-iteration losses of the trainer, [`StepLosses`] for HEDN-GAN).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GanTrainLog<S = StepLosses> {
    /// The seed of the run.
    pub seed: u64,
    /// Completed (or partially completed, for the last) epochs.
    pub epochs: Vec<GanEpochLog<S>>,
    /// Losses of every iteration.
    pub iterations: Vec<S>,
}

impl<S: IterationLosses> GanTrainLog<S> {
    /// An empty log of a run with `seed`.
    pub(crate) fn with_seed(seed: u64) -> Self {
        Self {
            seed,
            epochs: Vec::new(),
            iterations: Vec::new(),
        }
    }

    /// Appends the losses of iteration `it` and, when it ends an epoch (or the run of `total`
    /// iterations), replaces that epoch's entry by the means of its iterations.
    pub(crate) fn record(
        &mut self,
        step: S,
        it: usize,
        iterations_per_epoch: usize,
        total: usize,
        lr_factor: f64,
        epoch_t0: &mut Instant,
    ) {
        self.iterations.push(step);
        let epoch = it / iterations_per_epoch;
        let done = it + 1;
        if done.is_multiple_of(iterations_per_epoch) || done == total {
            let first = epoch * iterations_per_epoch;
            let its = &self.iterations[first..done];
            let mut mean = S::default();
            its.iter().for_each(|s| mean.add(s));
            let entry = GanEpochLog {
                epoch,
                lr_factor,
                iterations: its.len(),
                mean: mean.scaled(1.0 / its.len() as f32),
                seconds: epoch_t0.elapsed().as_secs_f64(),
            };
            self.epochs.retain(|e| e.epoch != epoch);
            self.epochs.push(entry);
            *epoch_t0 = Instant::now();
        }
    }
}

/// What a trainer's `state.json` holds besides the module and optimiser files.
#[derive(Serialize, Deserialize)]
pub(crate) struct RunState<S> {
    /// Iterations completed.
    pub(crate) iteration: usize,
    /// The log so far.
    pub(crate) log: GanTrainLog<S>,
}

/// The newest checkpoint of `ckpt` (none without a folder or for a fresh one), checked to come
/// from a run with `seed`.
///
/// # Errors
/// Checkpoint I/O; [`GanError::Resume`] for another seed.
pub(crate) fn resume_point<S: serde::de::DeserializeOwned + Serialize>(
    ckpt: Option<&CheckpointDir>,
    seed: u64,
) -> Result<Option<(RunState<S>, PathBuf)>> {
    let Some(dir) = ckpt else {
        return Ok(None);
    };
    let Some((_, state, path)) = dir.latest::<RunState<S>>()? else {
        return Ok(None);
    };
    if state.log.seed != seed {
        return Err(GanError::Resume {
            path,
            reason: format!("seed {} ≠ configured {}", state.log.seed, seed),
        });
    }
    // The checkpoint's log is the run's: a run killed between the checkpoint and `log.json`
    // left the previous log behind.
    save_json(dir.root().join("log.json"), &state.log)?;
    Ok(Some((state, path)))
}

/// Saves checkpoint `done` (the files `parts` and the state) and the run's `log.json`; returns
/// the checkpoint folder.
///
/// # Errors
/// Checkpoint I/O.
pub(crate) fn save_checkpoint<S: Serialize + Clone>(
    dir: &CheckpointDir,
    done: usize,
    parts: &[(&str, Vec<u8>)],
    log: &GanTrainLog<S>,
) -> Result<PathBuf> {
    let state = RunState {
        iteration: done,
        log: log.clone(),
    };
    let path = dir.save(done as u64, parts, &state)?;
    save_json(dir.root().join("log.json"), log)?;
    Ok(path)
}

/// Trains HEDN-GAN (see the [module docs](self)).
#[derive(Debug)]
pub struct HedNGanTrainer<'a> {
    cfg: HedNGanConfig,
    data: &'a UnpairedBatches,
    teacher: Hed,
    device: Device,
}

impl<'a> HedNGanTrainer<'a> {
    /// A trainer on `device` (an autodiff device, e.g. `Device::default().autodiff()`) with the
    /// frozen `teacher`. Load the teacher and the student from the weights file separately (do
    /// not clone a never-loaded HED: burn shares lazy parameters between clones).
    ///
    /// # Errors
    /// [`GanError::Config`] for an invalid configuration, a non-autodiff device, or crops below
    /// HED's 16-pixel minimum or not multiples of 4.
    pub fn new(
        cfg: HedNGanConfig,
        data: &'a UnpairedBatches,
        teacher: Hed,
        device: &Device,
    ) -> Result<Self> {
        cfg.validate()?;
        if !device.is_autodiff() {
            return Err(GanError::Config {
                name: "device",
                reason: "training needs an autodiff device (`device.autodiff()`)".into(),
            });
        }
        let size = data.crop().size;
        if size < hed_edges::MIN_INPUT_SIDE || !size.is_multiple_of(4) {
            return Err(GanError::Config {
                name: "crop size",
                reason: format!(
                    "{size}: HEDN-GAN needs a multiple of 4 (the generator) of at least {} (HED)",
                    hed_edges::MIN_INPUT_SIDE
                ),
            });
        }
        Ok(Self {
            cfg,
            data,
            teacher: on_device(teacher, device).no_grad(),
            device: device.clone(),
        })
    }

    fn optimizers(&self) -> Result<[ModuleOptimizer; 3]> {
        let adam = AdamConfig::new()
            .with_beta_1(self.cfg.beta1)
            .with_beta_2(0.999)
            .with_epsilon(ADAM_EPSILON);
        let detector = caffe_optimizer(
            &AdamConfig::new()
                .with_beta_1(0.9)
                .with_beta_2(0.999)
                .with_epsilon(ADAM_EPSILON),
            self.cfg.detector_weight_decay,
        )?;
        Ok([adam.init(), adam.init(), detector])
    }

    /// Trains `nets` for the configured epochs, resuming from `ckpt`'s latest checkpoint if there
    /// is one.
    ///
    /// # Errors
    /// Data errors (naming the file), checkpoint I/O, a resumed checkpoint of another seed, a
    /// non-finite loss ([`GanError::NonFinite`], naming the last good checkpoint).
    pub fn train(
        &self,
        nets: HedNGan,
        ckpt: Option<&CheckpointDir>,
    ) -> Result<Trained<HedNGan, GanTrainLog>> {
        let cfg = &self.cfg;
        let d = &self.device;
        let mut g = on_device(nets.generator, d);
        let mut disc = on_device(nets.discriminator, d);
        let mut student = on_device(nets.student, d);
        let [mut opt_g, mut opt_d, mut opt_h] = self.optimizers()?;
        let mut log = GanTrainLog::with_seed(cfg.seed);
        let mut start = 0;
        let mut last_ckpt: Option<PathBuf> = None;
        if let Some((state, path)) = resume_point::<StepLosses>(ckpt, cfg.seed)? {
            g = load_module(g, path.join("generator.bpk"))?;
            disc = load_module(disc, path.join("discriminator.bpk"))?;
            student = load_module(student, path.join("student.bpk"))?;
            opt_g = load_optimizer(opt_g, path.join("optim_generator.bpk"))?;
            opt_d = load_optimizer(opt_d, path.join("optim_discriminator.bpk"))?;
            opt_h = load_optimizer(opt_h, path.join("optim_student.bpk"))?;
            start = state.iteration;
            log = state.log;
            last_ckpt = Some(path);
        }
        let total = cfg.total_iterations();
        let losses = HedNLossConfig::new()
            .with_hed(cfg.hed_n.hed)
            .with_edge(cfg.hed_n.edge);
        let bar = progress_bar(total as u64, start as u64, cfg.progress, "HEDN-GAN");
        let mut epoch_t0 = Instant::now();
        for it in start..total {
            let epoch = it / cfg.iterations_per_epoch;
            let factor = cfg.schedule.factor(epoch);
            let mut rng = derived(cfg.seed, it as u64);
            let (day, night) = self.data.sample(&mut rng, d)?;
            let real_x = day.clone().mul_scalar(2.0).sub_scalar(1.0);
            let real_y = night.mul_scalar(2.0).sub_scalar(1.0);
            let fake_y = g.forward(real_x);
            // the D and detector steps see the translation as a constant
            let fake_const = fake_y.clone().detach();
            let fake01 = fake_y.clone().add_scalar(1.0).mul_scalar(0.5);
            let sigma = cfg.d_input_noise;

            // 1. discriminator
            let loss_d = cfg.gan_mode.discriminator_loss(
                disc.forward(instance_noise(real_y, sigma, &mut rng)),
                disc.forward(instance_noise(fake_const.clone(), sigma, &mut rng)),
            );
            let grads = GradientsParams::from_grads(loss_d.backward(), &disc);
            disc = opt_d.step(cfg.lr * factor, disc, grads);

            // 2. student detector (teacher's day logits shared with the G step)
            let teacher_day = self.teacher.forward_logits(day.clone()).detach();
            let loss_e = losses.detector_loss_from_logits(
                student.forward_logits(day),
                student.forward_logits(fake_const.add_scalar(1.0).mul_scalar(0.5)),
                teacher_day.clone(),
            )?;
            let grads = GradientsParams::from_grads(loss_e.backward(), &student);
            let lrs = caffe_lr_scheduler(cfg.detector_lr * factor)?.step();
            student = opt_h.step(lrs, student, grads);

            // 3. generator
            let adv = cfg
                .gan_mode
                .generator_loss(disc.forward(instance_noise(fake_y, sigma, &mut rng)))
                .mul_scalar(cfg.adversarial_weight);
            let edge = losses.edge_loss_from_logits(student.forward_logits(fake01), teacher_day)?;
            let step = StepLosses {
                discriminator: scalar(&loss_d),
                detector: scalar(&loss_e),
                generator_adversarial: scalar(&adv),
                generator_edge: scalar(&edge),
            };
            check_finite(&step, it, &last_ckpt)?;
            let grads = GradientsParams::from_grads((adv + edge).backward(), &g);
            g = opt_g.step(cfg.lr * factor, g, grads);
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
                let parts = [
                    ("generator.bpk", module_to_bytes(&g)?),
                    ("discriminator.bpk", module_to_bytes(&disc)?),
                    ("student.bpk", module_to_bytes(&student)?),
                    ("optim_generator.bpk", optimizer_to_bytes(&opt_g)?),
                    ("optim_discriminator.bpk", optimizer_to_bytes(&opt_d)?),
                    ("optim_student.bpk", optimizer_to_bytes(&opt_h)?),
                ];
                last_ckpt = Some(save_checkpoint(dir, done, &parts, &log)?);
            }
        }
        bar.finish_and_clear();
        Ok(Trained {
            net: HedNGan {
                generator: g,
                discriminator: disc,
                student,
            },
            log,
        })
    }
}

/// `images` plus Gaussian noise of standard deviation `sigma` drawn from `rng` (instance noise,
/// Sønderby et al. 2017, "Amortised MAP inference for image super-resolution"; Arjovsky &
/// Bottou 2017): given to the discriminator for real and translated images alike, it hides
/// the texture (sensor noise, grain) by which a discriminator can tell the domains apart early,
/// so that its gradient speaks of content (docs/TRAINING.md). `sigma` 0 returns `images`
/// unchanged and draws nothing.
///
/// # Shapes
/// - `images`: `[batch, channels, height, width]`, output the same
///
/// ```
/// use burn::tensor::{Device, Tensor, TensorData};
/// use nightgen_gan::instance_noise;
/// use nightvision_core::rng::seeded;
/// let device = Device::default();
/// let x = Tensor::<4>::zeros([2, 3, 32, 32], &device);
/// let y = instance_noise(x.clone(), 0.1, &mut seeded(0));
/// let std: f32 = y.powf_scalar(2.0).mean().sqrt().into_scalar();
/// assert!((std - 0.1).abs() < 0.01);
/// assert_eq!(instance_noise(x.clone(), 0.0, &mut seeded(0)).into_data(), x.into_data());
/// ```
pub fn instance_noise<R: RngCore + ?Sized>(
    images: Tensor<4>,
    sigma: f64,
    rng: &mut R,
) -> Tensor<4> {
    if sigma == 0.0 {
        return images;
    }
    let dims = images.dims();
    let n = dims.iter().product();
    let noise = Tensor::<4>::from_data(
        TensorData::new(normals(rng, n, sigma), dims),
        &images.device(),
    );
    images + noise
}

/// Adam's ε in every GAN trainer: PyTorch's 1e-8 (burn's default is 1e-5).
pub(crate) const ADAM_EPSILON: f32 = 1e-8;

/// [`GanError::Config`] for the first value that is not finite and positive.
pub(crate) fn check_positive(values: &[(&'static str, f64)]) -> Result<()> {
    for &(name, v) in values {
        if !(v.is_finite() && v > 0.0) {
            return Err(GanError::config(
                name,
                format!("{v} must be finite and positive"),
            ));
        }
    }
    Ok(())
}

/// [`GanError::Config`] for the first loss weight that is not finite and non-negative.
pub(crate) fn check_weights(values: &[(&'static str, f64)]) -> Result<()> {
    for &(name, v) in values {
        if !(v.is_finite() && v >= 0.0) {
            return Err(GanError::config(
                name,
                format!("loss weight {v} must be finite and non-negative"),
            ));
        }
    }
    Ok(())
}

/// [`GanError::Config`] unless Adam's β₁ is in `[0, 1)`.
pub(crate) fn check_beta1(beta1: f32) -> Result<()> {
    if !(beta1.is_finite() && (0.0..1.0).contains(&beta1)) {
        return Err(GanError::config(
            "beta1",
            format!("{beta1} is not in [0, 1)"),
        ));
    }
    Ok(())
}

/// [`GanError::Config`] for zero iterations per epoch or between checkpoints.
pub(crate) fn check_iterations(iterations_per_epoch: usize, checkpoint_every: usize) -> Result<()> {
    if iterations_per_epoch == 0 || checkpoint_every == 0 {
        return Err(GanError::config(
            "iterations_per_epoch / checkpoint_every",
            "must be at least 1",
        ));
    }
    Ok(())
}

/// [`GanError::Config`] for a linear-decay schedule without a single epoch to run.
pub(crate) fn check_linear_decay(schedule: &LinearDecay) -> Result<()> {
    if linear_decay_epochs(schedule) == 0 {
        return Err(GanError::config(
            "schedule",
            "n_epochs + n_epochs_decay + 1 − epoch_count must be at least 1",
        ));
    }
    Ok(())
}

/// The number of epochs of a [`LinearDecay`] run (CycleGAN's `range(epoch_count, n_epochs +
/// n_epochs_decay + 1)`): `n_epochs + n_epochs_decay + 1 − epoch_count`. Epoch `e` (0-based)
/// trains at `factor(e)`, so the last one has `1 / (n_epochs_decay + 1)` of the base rate.
pub(crate) fn linear_decay_epochs(schedule: &LinearDecay) -> usize {
    (schedule.n_epochs + schedule.n_epochs_decay + 1).saturating_sub(schedule.epoch_count)
}

/// Checks a training crop side for the ResNet generator: a multiple of 4 (two stride-2 stages
/// and back, so the output has the input's size) and at least 8 (the residual blocks' reflection
/// padding needs 2 pixels after the two downsamplings).
///
/// # Errors
/// [`GanError::Config`] naming `crop size`.
pub(crate) fn check_generator_crop(size: usize) -> Result<()> {
    if size < 8 || !size.is_multiple_of(4) {
        return Err(GanError::Config {
            name: "crop size",
            reason: format!("{size}: the generator needs a multiple of 4 of at least 8"),
        });
    }
    Ok(())
}

/// Checks that `disc` yields a non-empty logit map for `side × side` inputs (walking its
/// convolutions and blur downsamplings), so that a too-small crop is an error rather than a
/// panic inside a convolution.
///
/// # Errors
/// [`GanError::Config`] naming `crop size`.
pub(crate) fn check_discriminator_crop(disc: &NLayerDiscriminator, side: usize) -> Result<()> {
    let mut s = Some(side);
    for layer in &disc.model {
        s = s.and_then(|s| match layer {
            Layer::Conv(c) => {
                let (before, after) = match c.padding {
                    burn::nn::PaddingConfig2d::Explicit(top, _, bottom, _) => (top, bottom),
                    burn::nn::PaddingConfig2d::Valid => (0, 0),
                    burn::nn::PaddingConfig2d::Same => return Some(s),
                };
                let span = c.dilation[0] * (c.kernel_size[0].max(1) - 1) + 1;
                (s + before + after)
                    .checked_sub(span)
                    .map(|r| r / c.stride[0].max(1) + 1)
            }
            // reflection pad 1 (needs 2 pixels), then a 3×3 stride-2 blur
            Layer::Downsample(_) => (s >= 2).then(|| (s - 1) / 2 + 1),
            Layer::ReflectionPad(p) => (s > p.padding).then_some(s + 2 * p.padding),
            _ => Some(s),
        });
        if s == Some(0) {
            s = None;
        }
    }
    match s {
        Some(_) => Ok(()),
        None => Err(GanError::Config {
            name: "crop size",
            reason: format!("{side}: too small for the discriminator (empty logit map)"),
        }),
    }
}

/// The generator for inference (off the autodiff graph, BatchNorm with running statistics).
pub fn inference_generator(generator: &ResnetGenerator) -> ResnetGenerator {
    generator.valid()
}

/// The value of a one-element loss on the host.
pub(crate) fn scalar(t: &Tensor<1>) -> f32 {
    t.clone().into_scalar()
}

/// A progress bar named `name` at `start` of `total` iterations (hidden unless `show`).
pub(crate) fn progress_bar(
    total: u64,
    start: u64,
    show: bool,
    name: &'static str,
) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} [{elapsed}<{eta}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(name);
    bar.set_position(start);
    bar
}
