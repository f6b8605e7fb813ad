//! Stage 1 of Similarity Min-Max: training the darkening module D against a frozen feature
//! extractor (docs/PAPERS.md C.2, `darkening/darken_vpr.py`).
//!
//! One [`DarkeningTrainer::step`] on a batch of day images `I ∈ [0, 1]`:
//! 1. one exposure per image, `E ~ U(min_exposure, max_exposure)` (`exp_range 0-0.5`), drawn from
//!    the stream `derived(seed, step)`, so a resumed run draws the same values;
//! 2. `D(I, E)`, its `A` and `B`;
//! 3. features of `normalise(I)` (no gradient) and `normalise(D(I, E))` from the frozen
//!    extractor (ImageNet normalisation, as the reference feeds its ResNet-101);
//! 4. `L_D = 0.1·L_sim + 10·L_exp + 25·L_col + 1600·L_ltv + 5·L_flex` ([`DarkeningLossConfig`]);
//! 5. backward, clipping of the **global** gradient norm to 0.1 (`clip_grad_norm`: one norm over
//!    all parameters, not per tensor as burn's `GradientClipping::Norm`), Adam (lr 1e-4, L2 weight
//!    decay 1e-4, β = (0.9, 0.999), ε = 1e-8: PyTorch's defaults) at the MultiStep learning rate
//!    `lr · 0.1^(number of milestones ≤ step)` with milestones 1000, 3000 (`MultiStepLR`
//!    stepped once per iteration).
//!
//! [`DarkeningTrainer::save_checkpoint`] / [`DarkeningTrainer::resume`] store the network, the
//! Adam state and the step counter through [`CheckpointDir`] (atomic): a resumed run continues
//! bit for bit (same exposures, same parameters, same optimiser moments).

use std::path::PathBuf;

use burn::config::Config;
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use nightvision_core::Normalization;
use nightvision_core::checkpoint::{
    CheckpointDir, Trained, load_module, load_optimizer, module_to_bytes, optimizer_to_bytes,
};
use nightvision_core::rng::{Rng, derived};
use serde::{Deserialize, Serialize};

use nightvision_core::parallel::DataParallel;

use crate::{DarkeningError, DarkeningLossConfig, DarkeningLossValues, DarkeningNet};

/// The frozen feature extractor `F` of `L_sim`: the last convolutional map of a network.
///
/// Implemented for closures and for [`backbones::ResNet`] (its `layer4` map, as the VPR
/// reference uses an ImageNet ResNet-101). The extractor must be frozen (no parameter gradients:
/// `module.no_grad()`; BatchNorm in inference mode: [`nightvision_core::freeze_batchnorm`], or
/// [`frozen`] for both) and live on the trainer's autodiff device, since `L_sim` back-propagates
/// through it to D. The trainer shares it between the threads of data-parallel training, so it
/// must be `Sync` (modules and closures over them are).
pub trait FeatureExtractor {
    /// # Shapes
    /// - `images`: `[batch, 3, height, width]`, normalised as the trainer is configured
    /// - output: `[batch, channels, h, w]`
    fn features(&self, images: Tensor<4>) -> Tensor<4>;
}

impl<F> FeatureExtractor for F
where
    F: Fn(Tensor<4>) -> Tensor<4>,
{
    fn features(&self, images: Tensor<4>) -> Tensor<4> {
        self(images)
    }
}

impl FeatureExtractor for backbones::ResNet {
    fn features(&self, images: Tensor<4>) -> Tensor<4> {
        self.forward(images)
    }
}

/// A module frozen for use as the feature extractor: no parameter gradients and BatchNorm on its
/// running statistics (`resnet.eval()` + `requires_grad = False` in the reference).
pub fn frozen<M: Module>(module: M) -> M {
    nightvision_core::freeze_batchnorm(module.no_grad())
}

/// Configuration of [`DarkeningTrainer`] (defaults: `darken_vpr.py` arguments, docs/PAPERS.md C.2).
#[derive(Config, Debug)]
pub struct DarkeningTrainerConfig {
    /// Adam learning rate (1e-4).
    #[config(default = 1e-4)]
    pub lr: f64,
    /// Adam L2 weight decay (1e-4).
    #[config(default = 1e-4)]
    pub weight_decay: f64,
    /// Maximum global gradient norm (`grad_clip_norm`, 0.1); `None` disables clipping.
    #[config(default = "Some(0.1)")]
    pub grad_clip_norm: Option<f64>,
    /// Steps at which the learning rate is multiplied by `gamma` (`decreasing_lr 1000,3000`).
    #[config(default = "vec![1000, 3000]")]
    pub milestones: Vec<u64>,
    /// Learning-rate decay factor at each milestone (0.1).
    #[config(default = 0.1)]
    pub gamma: f64,
    /// Lower bound of the training exposures (`exp_range 0-0.5`).
    #[config(default = 0.0)]
    pub min_exposure: f64,
    /// Upper bound of the training exposures.
    #[config(default = 0.5)]
    pub max_exposure: f64,
    /// Total training steps of [`DarkeningTrainer::train`] (`max_iters`, 5000).
    #[config(default = 5000)]
    pub iterations: u64,
    /// Checkpoint period of [`DarkeningTrainer::train`] in steps (1000).
    #[config(default = 1000)]
    pub checkpoint_every: u64,
    /// The loss.
    #[config(default = "DarkeningLossConfig::new()")]
    pub loss: DarkeningLossConfig,
    /// Normalisation of the images fed to the feature extractor (ImageNet mean/std).
    #[config(default = "nightvision_core::Normalization::ImageNet")]
    pub normalization: Normalization,
    /// Seed of the exposure draws.
    #[config(default = 0)]
    pub seed: u64,
}

impl DarkeningTrainerConfig {
    /// Checks the configuration.
    ///
    /// # Errors
    /// [`DarkeningError::Config`] for a non-positive learning rate, a negative weight decay or
    /// clipping norm, `gamma` not in `(0, 1]`, an empty or reversed exposure range, a zero
    /// checkpoint period, or an invalid loss configuration.
    pub fn validate(&self) -> crate::Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(DarkeningError::config(
                "lr",
                format!("{} must be > 0", self.lr),
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(DarkeningError::config(
                "weight_decay",
                format!("{} must be ≥ 0", self.weight_decay),
            ));
        }
        if let Some(c) = self.grad_clip_norm
            && !(c.is_finite() && c > 0.0)
        {
            return Err(DarkeningError::config(
                "grad_clip_norm",
                format!("{c} must be > 0"),
            ));
        }
        if !(self.gamma > 0.0 && self.gamma <= 1.0) {
            return Err(DarkeningError::config(
                "gamma",
                format!("{} is not in (0, 1]", self.gamma),
            ));
        }
        if !(self.min_exposure.is_finite()
            && self.max_exposure.is_finite()
            && 0.0 <= self.min_exposure
            && self.min_exposure <= self.max_exposure)
        {
            return Err(DarkeningError::config(
                "exposure range",
                format!(
                    "[{}, {}] must satisfy 0 ≤ min ≤ max",
                    self.min_exposure, self.max_exposure
                ),
            ));
        }
        if self.checkpoint_every == 0 {
            return Err(DarkeningError::config(
                "checkpoint_every",
                "must be positive",
            ));
        }
        self.loss.validate()
    }

    /// The learning rate of step `step` (0-based): `lr · gamma^(milestones ≤ step)`.
    pub fn lr_at(&self, step: u64) -> f64 {
        let n = self.milestones.iter().filter(|&&m| m <= step).count();
        self.lr * self.gamma.powi(n as i32)
    }
}

/// What one training step did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepLog {
    /// The step (0-based).
    pub step: u64,
    /// Learning rate used.
    pub lr: f64,
    /// The exposure drawn for each image.
    pub exposures: Vec<f32>,
    /// The unweighted loss terms and the weighted total.
    pub losses: DarkeningLossValues,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainerState {
    step: u64,
    seed: u64,
    /// Every step's log so far (absent in checkpoints of earlier versions).
    #[serde(default)]
    log: Vec<StepLog>,
}

/// The checkpoint part that holds the darkening network's weights ([`crate::DarkeningNet::load`]).
pub const NET_PART: &str = "darkening.bpk";
const OPTIM_PART: &str = "optim.bpk";

/// Trains a [`DarkeningNet`] (stage 1, docs/PAPERS.md C.2); see the [module docs](self).
pub struct DarkeningTrainer<F> {
    config: DarkeningTrainerConfig,
    net: DarkeningNet,
    optim: ModuleOptimizer,
    extractor: F,
    step: u64,
    log: Vec<StepLog>,
    device: Device,
    last_checkpoint: Option<PathBuf>,
    parallel: DataParallel,
    /// The feature extractors of `parallel`'s devices after the main one.
    replicas: Vec<F>,
}

impl<F: FeatureExtractor + Sync> DarkeningTrainer<F> {
    /// A trainer for `net` on `device` (an autodiff device is made from it; `net` is moved
    /// there). `extractor` must already be frozen and on that autodiff device
    /// ([`FeatureExtractor`]).
    ///
    /// # Errors
    /// [`DarkeningError::Config`] (see [`DarkeningTrainerConfig::validate`]).
    pub fn new(
        config: DarkeningTrainerConfig,
        net: DarkeningNet,
        extractor: F,
        device: &Device,
    ) -> crate::Result<Self> {
        config.validate()?;
        let device = device.clone().autodiff();
        let optim = AdamConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay(
                (config.weight_decay > 0.0)
                    .then(|| WeightDecayConfig::new(config.weight_decay as f32)),
            )
            .init();
        Ok(Self {
            // `fork` (not `to_device`): parameters already initialised on the autodiff device
            // must stay leaves of their own graph.
            net: net.fork(&device).train(),
            config,
            optim,
            extractor,
            step: 0,
            log: Vec::new(),
            parallel: DataParallel::single(&device),
            replicas: Vec::new(),
            device,
            last_checkpoint: None,
        })
    }

    /// Trains data-parallel on `parallel`'s devices: each step's batch is split across them,
    /// each shard's loss weighted by its share of the batch (every term of `L_D` is a mean over
    /// images), and the summed gradients clipped and applied on the main device
    /// ([`nightvision_core::parallel`]). `extractors` holds the frozen feature extractor of each
    /// device after the main one (e.g. `frozen(resnet.clone().fork(&device))`); the trainer's
    /// own extractor serves the main device, which must be the trainer's device. Call it before
    /// training (the network stays where it is).
    ///
    /// # Errors
    /// [`DarkeningError::Config`] when `extractors` does not have one entry per device after the
    /// main one, or the main device is not the trainer's.
    pub fn with_data_parallel(
        mut self,
        parallel: DataParallel,
        extractors: Vec<F>,
    ) -> crate::Result<Self> {
        if extractors.len() + 1 != parallel.len() {
            return Err(DarkeningError::config(
                "data parallel",
                format!(
                    "{} devices need {} extractors besides the trainer's, got {}",
                    parallel.len(),
                    parallel.len() - 1,
                    extractors.len()
                ),
            ));
        }
        if parallel.main() != &self.device {
            return Err(DarkeningError::config(
                "data parallel",
                format!(
                    "the main device {:?} is not the trainer's device {:?}",
                    parallel.main(),
                    self.device
                ),
            ));
        }
        self.parallel = parallel;
        self.replicas = extractors;
        Ok(self)
    }

    /// The configuration.
    pub fn config(&self) -> &DarkeningTrainerConfig {
        &self.config
    }

    /// The training (autodiff) device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The log of every step so far (resumed ones included).
    pub fn log(&self) -> &[StepLog] {
        &self.log
    }

    /// Steps done so far (resumed ones included).
    pub fn steps_done(&self) -> u64 {
        self.step
    }

    /// The network being trained (on the autodiff device).
    pub fn net(&self) -> &DarkeningNet {
        &self.net
    }

    /// The trained network, without autodiff (for inference or as the frozen D of stage 2).
    pub fn into_net(self) -> DarkeningNet {
        self.net.valid()
    }

    /// The exposures of step `step` for `batch` images: `U(min, max)` from `derived(seed, step)`.
    pub fn exposures(&self, step: u64, batch: usize) -> Vec<f32> {
        let mut rng = derived(self.config.seed, step);
        let (lo, hi) = (self.config.min_exposure, self.config.max_exposure);
        (0..batch)
            .map(|_| (rng.random::<f64>() * (hi - lo) + lo) as f32)
            .collect()
    }

    /// One optimisation step on `images`.
    ///
    /// # Shapes
    /// - `images`: `[batch, 3, height, width]`, RGB in `[0, 1]` (any device; moved to the
    ///   trainer's), `height, width ≥ max(2, patch_size)`
    ///
    /// # Errors
    /// [`DarkeningError::Shape`] for other shapes or an extractor whose outputs do not fit,
    /// [`DarkeningError::NonFinite`] when the loss or the gradient norm is NaN or infinite (the
    /// network is left as it was before the step).
    pub fn step(&mut self, images: Tensor<4>) -> crate::Result<StepLog> {
        let b = image_batch(&images)?;
        let step = self.step;
        let lr = self.config.lr_at(step);
        let exposures = self.exposures(step, b);
        let (mut grads, parts) = self.parallel.gradients(&self.net, b, |shard| {
            let n = shard.items.len();
            let x = if n == b {
                images.clone()
            } else {
                images.clone().narrow(0, shard.items.start, n)
            };
            let x = x.to_device(shard.device).detach();
            let e = Tensor::<4>::from_data(
                TensorData::new(exposures[shard.items.clone()].to_vec(), [n, 1, 1, 1]),
                shard.device,
            );
            let extractor = match shard.index {
                0 => &self.extractor,
                k => &self.replicas[k - 1],
            };
            let loss = batch_loss(&self.config, shard.model, extractor, x, e)?;
            let values = loss.values();
            self.check_finite("loss", values.total)?;
            // Every term is a mean over images: a shard's loss counts by its share.
            let total = if n == b {
                loss.total
            } else {
                loss.total.mul_scalar(shard.weight)
            };
            let grads = GradientsParams::from_grads(total.backward(), shard.model);
            Ok::<_, DarkeningError>((grads, (values, shard.weight)))
        })?;
        let losses = match parts.as_slice() {
            [(v, _)] => *v,
            _ => weighted_values(&parts),
        };
        self.check_finite("loss", losses.total)?;
        let grad_norm = global_grad_norm(&self.net, &grads);
        self.check_finite("gradient norm", grad_norm)?;
        if let Some(max) = self.config.grad_clip_norm {
            // torch.nn.utils.clip_grad_norm_: coef = max / (norm + 1e-6), applied when < 1.
            let coef = max / (f64::from(grad_norm) + 1e-6);
            if coef < 1.0 {
                scale_grads(&self.net, &mut grads, coef);
            }
        }
        self.net = self.optim.step(lr, self.net.clone(), grads);
        self.step += 1;
        let log = StepLog {
            step,
            lr,
            exposures,
            losses,
            grad_norm,
        };
        self.log.push(log.clone());
        Ok(log)
    }

    fn check_finite(&self, what: &'static str, value: f32) -> crate::Result<()> {
        if value.is_finite() {
            Ok(())
        } else {
            Err(DarkeningError::NonFinite {
                what,
                value,
                step: self.step,
                checkpoint: self.last_checkpoint.clone(),
            })
        }
    }

    /// Writes checkpoint `steps_done()` (network, Adam state, step counter and seed) atomically
    /// into `dir` and returns its folder.
    ///
    /// # Errors
    /// I/O and record-encoding errors ([`DarkeningError::Core`]).
    pub fn save_checkpoint(&mut self, dir: &CheckpointDir) -> crate::Result<PathBuf> {
        let optim = optimizer_to_bytes(&self.optim)?;
        let parts = [(NET_PART, module_to_bytes(&self.net)?), (OPTIM_PART, optim)];
        let state = TrainerState {
            step: self.step,
            seed: self.config.seed,
            log: self.log.clone(),
        };
        let path = dir.save(self.step, &parts, &state)?;
        self.last_checkpoint = Some(path.clone());
        Ok(path)
    }

    /// Resumes from the latest checkpoint of `dir`, if there is one: the network, the Adam state
    /// and the step counter are replaced. Returns whether a checkpoint was loaded.
    ///
    /// # Errors
    /// [`DarkeningError::Resume`] for a checkpoint of another seed, I/O and record errors.
    pub fn resume(&mut self, dir: &CheckpointDir) -> crate::Result<bool> {
        let Some((_, state, path)) = dir.latest::<TrainerState>()? else {
            return Ok(false);
        };
        if state.seed != self.config.seed {
            return Err(DarkeningError::Resume {
                path,
                reason: format!("seed {} ≠ configured {}", state.seed, self.config.seed),
            });
        }
        self.net = load_module(self.net.clone(), path.join(NET_PART))?;
        self.optim = load_optimizer(self.optim.clone(), path.join(OPTIM_PART))?;
        self.step = state.step;
        self.log = state.log;
        self.last_checkpoint = Some(path);
        Ok(true)
    }

    /// Trains until [`DarkeningTrainerConfig::iterations`] steps are done: resumes from the
    /// latest checkpoint of `ckpt` first (if given), then asks `next_batch(step)` for the images
    /// of each step (stopping early when it returns `None`), calls `on_step` with each step's
    /// log, and checkpoints every [`DarkeningTrainerConfig::checkpoint_every`] steps and at the
    /// end. Returns the network (on the autodiff device; `.valid()` for inference or as the frozen
    /// D of stage 2) and the log of every step, resumed ones included.
    ///
    /// # Errors
    /// Those of [`DarkeningTrainer::step`], [`DarkeningTrainer::resume`] and
    /// [`DarkeningTrainer::save_checkpoint`].
    pub fn train(
        mut self,
        mut next_batch: impl FnMut(u64) -> Option<Tensor<4>>,
        ckpt: Option<&CheckpointDir>,
        mut on_step: impl FnMut(&StepLog),
    ) -> crate::Result<Trained<DarkeningNet, Vec<StepLog>>> {
        if let Some(dir) = ckpt {
            self.resume(dir)?;
        }
        while self.step < self.config.iterations {
            let Some(images) = next_batch(self.step) else {
                break;
            };
            let log = self.step(images)?;
            on_step(&log);
            if let Some(dir) = ckpt
                && self.step.is_multiple_of(self.config.checkpoint_every)
            {
                self.save_checkpoint(dir)?;
            }
        }
        if let Some(dir) = ckpt
            && self.last_checkpoint_step() != Some(self.step)
        {
            self.save_checkpoint(dir)?;
        }
        Ok(Trained {
            net: self.net,
            log: self.log,
        })
    }

    fn last_checkpoint_step(&self) -> Option<u64> {
        let name = self
            .last_checkpoint
            .as_ref()?
            .file_name()?
            .to_str()?
            .to_owned();
        name.strip_prefix("step-")?.parse().ok()
    }
}

/// The batch size of day images `[B, 3, H, W]` with `B ≥ 1`, or a shape error.
fn image_batch(images: &Tensor<4>) -> crate::Result<usize> {
    match images.dims() {
        [b, 3, _, _] if b > 0 => Ok(b),
        dims => Err(DarkeningError::shape(
            "images",
            "[B, 3, H, W] with B ≥ 1",
            &dims,
        )),
    }
}

/// `L_D` of `net` on day images `x` at exposures `e` (`[batch, 1, 1, 1]`): the darkened images,
/// the extractor's features of both (the day ones without gradient) and the weighted terms.
fn batch_loss<F: FeatureExtractor>(
    config: &DarkeningTrainerConfig,
    net: &DarkeningNet,
    extractor: &F,
    x: Tensor<4>,
    e: Tensor<4>,
) -> crate::Result<crate::DarkeningLoss> {
    let norm = config.normalization;
    let out = net.try_forward(x.clone(), e.clone())?;
    let feat_day = extractor.features(norm.apply(x)).detach();
    let feat_dark = extractor.features(norm.apply(out.image.clone()));
    config.loss.forward(&out, e, feat_day, feat_dark)
}

/// The loss `L_D` (every term) of `net` on `images` at `exposures` (one per image), with
/// `config`'s loss and normalisation and the frozen `extractor`, and no optimisation step: what
/// [`DarkeningTrainer::step`] logs for the same inputs. A fixed probe batch scored before and
/// after training measures how far a term fell, free of the batch-to-batch noise of the
/// training log (whose images and exposures change every step).
///
/// `net` is moved to the device of `images`, which must be the extractor's.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use darkening_minmax::{evaluate_loss, DarkeningNetConfig, DarkeningTrainerConfig};
/// let device = Device::default().autodiff();
/// let net = DarkeningNetConfig::new().with_channels(4).init(&device);
/// let images = Tensor::<4>::ones([2, 3, 8, 8], &device).mul_scalar(0.5);
/// // the images themselves as the "features"
/// let values = evaluate_loss(
///     &DarkeningTrainerConfig::new(),
///     &net,
///     &|x: Tensor<4>| x,
///     images,
///     &[0.1, 0.3],
/// )?;
/// assert!(values.sim.is_finite() && values.total.is_finite());
/// # Ok::<(), darkening_minmax::DarkeningError>(())
/// ```
///
/// # Shapes
/// - `images`: `[batch, 3, height, width]`, RGB in `[0, 1]`
/// - `exposures`: `batch` values
///
/// # Errors
/// [`DarkeningError::Shape`] for other shapes or a wrong number of exposures; the loss's errors.
pub fn evaluate_loss<F: FeatureExtractor>(
    config: &DarkeningTrainerConfig,
    net: &DarkeningNet,
    extractor: &F,
    images: Tensor<4>,
    exposures: &[f32],
) -> crate::Result<DarkeningLossValues> {
    let b = image_batch(&images)?;
    if exposures.len() != b {
        return Err(DarkeningError::shape(
            "exposures",
            format!("[{b}]: one per image"),
            &[exposures.len()],
        ));
    }
    let device = images.device();
    let e = Tensor::<4>::from_data(TensorData::new(exposures.to_vec(), [b, 1, 1, 1]), &device);
    let net = net.clone().fork(&device);
    Ok(batch_loss(config, &net, extractor, images.detach(), e)?.values())
}

/// The loss values of a batch from its shards' values and shares: `Σ share · value`.
fn weighted_values(parts: &[(DarkeningLossValues, f64)]) -> DarkeningLossValues {
    let sum = |f: fn(&DarkeningLossValues) -> f32| {
        parts.iter().map(|(v, w)| f64::from(f(v)) * w).sum::<f64>() as f32
    };
    DarkeningLossValues {
        sim: sum(|v| v.sim),
        exposure: sum(|v| v.exposure),
        colour: sum(|v| v.colour),
        tv: sum(|v| v.tv),
        flex: sum(|v| v.flex),
        total: sum(|v| v.total),
    }
}

/// `sqrt(Σ_params ‖g‖²)` over the gradients of `module`'s parameters.
fn global_grad_norm<M: Module>(module: &M, grads: &GradientsParams) -> f32 {
    struct SumSquares<'a> {
        grads: &'a GradientsParams,
        parts: Vec<Tensor<1>>,
    }
    impl ModuleVisitor for SumSquares<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                self.parts.push(g.square().sum());
            }
        }
    }
    let mut v = SumSquares {
        grads,
        parts: Vec::new(),
    };
    module.visit(&mut v);
    if v.parts.is_empty() {
        return 0.0;
    }
    Tensor::cat(v.parts, 0).sum().sqrt().into_scalar()
}

/// Multiplies every gradient of `module`'s parameters by `coef`.
fn scale_grads<M: Module>(module: &M, grads: &mut GradientsParams, coef: f64) {
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        coef: f64,
        seen: Vec<ParamId>,
    }
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if self.seen.contains(&param.id) {
                return;
            }
            if let Some(g) = self.grads.remove::<D>(param.id) {
                self.grads.register(param.id, g.mul_scalar(self.coef));
                self.seen.push(param.id);
            }
        }
    }
    module.visit(&mut Scale {
        grads,
        coef,
        seen: Vec::new(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_learning_rate_schedule() {
        let c = DarkeningTrainerConfig::new();
        assert_eq!(
            (c.lr, c.weight_decay, c.grad_clip_norm),
            (1e-4, 1e-4, Some(0.1))
        );
        assert_eq!(c.milestones, vec![1000, 3000]);
        assert_eq!(
            (c.min_exposure, c.max_exposure, c.iterations),
            (0.0, 0.5, 5000)
        );
        assert!(c.validate().is_ok());
        let close = |a: f64, b: f64| (a - b).abs() < 1e-15;
        assert!(close(c.lr_at(0), 1e-4) && close(c.lr_at(999), 1e-4));
        assert!(close(c.lr_at(1000), 1e-5) && close(c.lr_at(2999), 1e-5));
        assert!(close(c.lr_at(3000), 1e-6) && close(c.lr_at(4999), 1e-6));
        assert!(c.clone().with_lr(0.0).validate().is_err());
        assert!(c.clone().with_max_exposure(-1.0).validate().is_err());
        assert!(c.clone().with_grad_clip_norm(Some(0.0)).validate().is_err());
        assert!(c.with_gamma(0.0).validate().is_err());
    }

    #[test]
    fn resnets_and_closures_are_feature_extractors() {
        fn is_extractor<T: FeatureExtractor>(_: &T) {}
        let device = Device::default();
        let resnet = backbones::ResNetConfig::resnet18().init(&device);
        is_extractor(&resnet);
        is_extractor(&|x: Tensor<4>| x);
    }

    #[test]
    fn global_clipping_scales_every_gradient_by_one_factor() {
        let device = Device::default().autodiff();
        device.seed(1);
        let net = crate::DarkeningNetConfig::new()
            .with_channels(4)
            .init(&device);
        let x = Tensor::<4>::ones([1, 3, 4, 4], &device).mul_scalar(0.5);
        let e = Tensor::<4>::zeros([1, 1, 1, 1], &device);
        let loss = net.forward(x, e).image.sum();
        let mut grads = GradientsParams::from_grads(loss.backward(), &net);
        let before = global_grad_norm(&net, &grads);
        let w0: Vec<f32> = grads
            .get::<4>(net.e_conv7.point_conv.weight.id)
            .unwrap()
            .into_data()
            .try_into_vec_as()
            .unwrap();
        scale_grads(&net, &mut grads, 0.25);
        let after = global_grad_norm(&net, &grads);
        assert!(
            (after - 0.25 * before).abs() <= 1e-5 * before,
            "{before} {after}"
        );
        let w1: Vec<f32> = grads
            .get::<4>(net.e_conv7.point_conv.weight.id)
            .unwrap()
            .into_data()
            .try_into_vec_as()
            .unwrap();
        assert!(
            w0.iter()
                .zip(&w1)
                .all(|(a, b)| (a * 0.25 - b).abs() <= 1e-7)
        );
    }
}
