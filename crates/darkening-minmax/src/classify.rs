//! Model-level similarity maximisation for classification (docs/PAPERS.md C.3,
//! `classification/train.py` with `resnet_BYOL.py`): a classifier trained on day images and
//! their dark views with cross-entropy on both and the BYOL loss between them, through a
//! momentum encoder.
//!
//! One [`ByolTrainer::step`] on a labelled batch of day images `x` and their dark views `x̃`
//! (both normalised as the encoder expects):
//! 1. online features `F(x)`, `F(x̃)` and logits `fc(F(x))`, `fc(F(x̃))`;
//! 2. momentum features `F′(x)`, `F′(x̃)` and their projections `q′(·)` (no gradient);
//! 3. the momentum update `F′ ← m·F′ + (1 − m)·F`, `q′ ← m·q′ + (1 − m)·q` with the online
//!    weights *before* this step's update (`dual=True` of the reference: the update runs inside
//!    the forward);
//! 4. `L = CE(fc(F(x)), y) + CE(fc(F(x̃)), y) + L_BYOL` ([`ByolHeads`], `w = 0.1`);
//! 5. backward and Adam (lr 1e-3, L2 weight decay 1e-5, PyTorch's β and ε) at the MultiStep
//!    learning rate `lr · γ^(number of milestones ≤ step)`.
//!
//! Without dark views (`dark = None`) a step is plain supervised training, `L = CE(fc(F(x)), y)`,
//! with the same optimiser and schedule: the day-trained classifier the paper starts from and
//! compares with.
//!
//! Every module runs in training mode, as in the reference: BatchNorm layers of the encoder, its
//! momentum copy and the heads normalise with the statistics of their batch. [`ByolTrainer::save_checkpoint`] /
//! [`ByolTrainer::resume`] store the online model, the momentum encoder, the Adam state, the
//! step counter and the log (atomic: [`CheckpointDir`]).
//!
//! ```
//! use burn::module::Module;
//! use burn::tensor::{Device, Tensor};
//! use darkening_minmax::classify::{ByolTrainer, ByolTrainerConfig};
//! use darkening_minmax::ByolConfig;
//!
//! // a one-layer "encoder": global average pooling of a 1×1 convolution
//! #[derive(Module, Debug)]
//! struct Tiny {
//!     conv: burn::nn::conv::Conv2d,
//! }
//! impl darkening_minmax::classify::Encoder for Tiny {
//!     fn encode(&self, x: Tensor<4>) -> Tensor<2> {
//!         self.conv.forward(x).mean_dim(3).mean_dim(2).flatten::<2>(1, 3)
//!     }
//! }
//! let device = Device::default();
//! let tiny = || Tiny { conv: burn::nn::conv::Conv2dConfig::new([3, 8], [1, 1]).init(&device) };
//! let cfg = ByolTrainerConfig::new(ByolConfig::new().with_feat_dim(8).with_proj_dim(4));
//! let mut trainer = ByolTrainer::new(cfg, tiny(), tiny(), 3, &device)?;
//! let day = Tensor::<4>::ones([4, 3, 8, 8], &device);
//! let log = trainer.step(day.clone(), Some(day.mul_scalar(0.2)), &[0, 1, 2, 0])?;
//! assert!(log.byol.is_some() && log.loss.is_finite());
//! # Ok::<(), darkening_minmax::DarkeningError>(())
//! ```

use std::path::{Path, PathBuf};

use burn::config::Config;
use burn::module::{Module, ModuleDisplay};
use burn::nn::{Linear, LinearConfig};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};
use nightvision_core::checkpoint::{
    CheckpointDir, load_module, load_optimizer, module_to_bytes, optimizer_to_bytes,
};
use serde::{Deserialize, Serialize};

use crate::DarkeningError;
use crate::byol::{ByolConfig, ByolHeads};
use nightvision_core::ema_update;

/// The image encoder `F` of a [`ByolClassifier`]: one feature vector per image (the reference's
/// 512-d average-pooled ResNet-18 feature).
///
/// Implemented for [`backbones::ResNet`] and [`backbones::MobileNetV2`] (global average pooling
/// of their last feature map).
pub trait Encoder: Module + ModuleDisplay {
    /// # Shapes
    /// - `images`: `[batch, 3, height, width]`, normalised as the encoder expects
    /// - output: `[batch, feat_dim]`
    fn encode(&self, images: Tensor<4>) -> Tensor<2>;
}

fn global_average(x: Tensor<4>) -> Tensor<2> {
    x.mean_dim(3).mean_dim(2).flatten::<2>(1, 3)
}

impl Encoder for backbones::ResNet {
    fn encode(&self, images: Tensor<4>) -> Tensor<2> {
        global_average(self.forward(images))
    }
}

impl Encoder for backbones::MobileNetV2 {
    fn encode(&self, images: Tensor<4>) -> Tensor<2> {
        global_average(self.forward(images))
    }
}

/// The online model of [`ByolTrainer`]: the encoder `F`, the classifier `fc` and the BYOL heads
/// (`head_q`, the momentum `head_k`, the predictor `pred`), with the reference's names.
#[derive(Module, Debug)]
pub struct ByolClassifier<E> {
    /// The encoder `F`.
    pub encoder: E,
    /// The classifier `fc: Linear(feat_dim → classes)`.
    pub fc: Linear,
    /// The BYOL heads.
    pub heads: ByolHeads,
}

impl<E: Encoder> ByolClassifier<E> {
    /// Class logits `fc(F(x))`.
    ///
    /// # Shapes
    /// - `images`: `[batch, 3, height, width]` → `[batch, classes]`
    pub fn classify(&self, images: Tensor<4>) -> Tensor<2> {
        self.fc.forward(self.encoder.encode(images))
    }

    /// The predicted class of every image (the arg-max of [`ByolClassifier::classify`]).
    ///
    /// # Shapes
    /// - `images`: `[batch, 3, height, width]` → `batch` class indices
    pub fn predict(&self, images: Tensor<4>) -> Vec<usize> {
        argmax_rows(self.classify(images))
    }
}

/// Configuration of [`ByolTrainer`] (defaults: `classification/train.py`).
#[derive(Config, Debug)]
pub struct ByolTrainerConfig {
    /// The BYOL heads, loss weight and momentum (`feat_dim` must be the encoder's feature size).
    pub byol: ByolConfig,
    /// Adam learning rate (1e-3).
    #[config(default = 1e-3)]
    pub lr: f64,
    /// L2 weight decay of Adam (1e-5).
    #[config(default = 1e-5)]
    pub weight_decay: f64,
    /// Steps at which the learning rate is multiplied by `gamma` (the reference: epochs 30 and 60
    /// of 90).
    #[config(default = "Vec::new()")]
    pub milestones: Vec<u64>,
    /// Factor of every milestone (0.1).
    #[config(default = 0.1)]
    pub gamma: f64,
}

impl ByolTrainerConfig {
    /// Checks the configuration.
    ///
    /// # Errors
    /// [`DarkeningError::Config`] for a non-positive learning rate, a negative weight decay, a
    /// `gamma` outside `(0, 1]` or an invalid [`ByolConfig`].
    pub fn validate(&self) -> crate::Result<()> {
        self.byol.validate()?;
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(DarkeningError::config(
                "lr",
                format!("{} must be finite and > 0", self.lr),
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(DarkeningError::config(
                "weight_decay",
                format!("{} must be finite and ≥ 0", self.weight_decay),
            ));
        }
        if !(self.gamma > 0.0 && self.gamma <= 1.0) {
            return Err(DarkeningError::config(
                "gamma",
                format!("{} is not in (0, 1]", self.gamma),
            ));
        }
        Ok(())
    }

    /// The learning rate of step `step`: `lr · gamma^(milestones ≤ step)`.
    ///
    /// ```
    /// use darkening_minmax::ByolConfig;
    /// use darkening_minmax::classify::ByolTrainerConfig;
    /// let cfg = ByolTrainerConfig::new(ByolConfig::new()).with_milestones(vec![30, 60]);
    /// assert_eq!(cfg.lr_at(29), 1e-3);
    /// assert!((cfg.lr_at(30) - 1e-4).abs() < 1e-15);
    /// assert!((cfg.lr_at(60) - 1e-5).abs() < 1e-15);
    /// ```
    pub fn lr_at(&self, step: u64) -> f64 {
        let passed = self.milestones.iter().filter(|&&m| m <= step).count();
        self.lr * self.gamma.powi(passed as i32)
    }
}

/// The losses of one [`ByolTrainer::step`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ByolStepLog {
    /// The step (0-based).
    pub step: u64,
    /// Its learning rate.
    pub lr: f64,
    /// Cross-entropy of the day images.
    pub ce_day: f32,
    /// Cross-entropy of the dark views (`None` without them).
    pub ce_dark: Option<f32>,
    /// The weighted BYOL loss (`None` without dark views).
    pub byol: Option<f32>,
    /// The total loss.
    pub loss: f32,
    /// Top-1 accuracy of the day images under the logits of this step (before the update).
    pub accuracy: f32,
}

#[derive(Serialize, Deserialize)]
struct ByolState {
    step: u64,
    log: Vec<ByolStepLog>,
}

/// The checkpoint part that holds the online model ([`ByolClassifier`]).
pub const MODEL_PART: &str = "model.bpk";
const MOMENTUM_PART: &str = "momentum-encoder.bpk";
const OPTIM_PART: &str = "optim.bpk";

/// Trains a [`ByolClassifier`]; see the [module docs](self).
pub struct ByolTrainer<E> {
    config: ByolTrainerConfig,
    model: ByolClassifier<E>,
    encoder_k: E,
    optim: ModuleOptimizer,
    step: u64,
    log: Vec<ByolStepLog>,
    device: Device,
    last_checkpoint: Option<PathBuf>,
}

impl<E: Encoder> ByolTrainer<E> {
    /// A trainer of `encoder` with a new classifier of `classes` classes and new BYOL heads, on
    /// the autodiff device made from `device` (the modules are moved there).
    ///
    /// `encoder_k` becomes the momentum encoder `F′`: any module of the encoder's architecture
    /// whose parameters are not `encoder`'s own (e.g. the same weights loaded a second time);
    /// its parameters are overwritten with `encoder`'s and frozen, as the reference copies
    /// `param_q` into `param_k`.
    ///
    /// # Errors
    /// [`DarkeningError::Config`] (see [`ByolTrainerConfig::validate`]) or zero classes.
    pub fn new(
        config: ByolTrainerConfig,
        encoder: E,
        encoder_k: E,
        classes: usize,
        device: &Device,
    ) -> crate::Result<Self> {
        config.validate()?;
        if classes == 0 {
            return Err(DarkeningError::config("classes", "must be positive"));
        }
        let device = device.clone().autodiff();
        let fc = LinearConfig::new(config.byol.feat_dim, classes).init(&device);
        let heads = config.byol.init(&device);
        let model = ByolClassifier { encoder, fc, heads };
        Self::with_model(config, model, encoder_k, &device)
    }

    /// A trainer that continues from `model` (e.g. the day-trained classifier of an earlier
    /// run, [`ByolTrainer::into_model`]); `encoder_k` as in [`ByolTrainer::new`]. The BYOL
    /// weight and momentum come from `config`, the heads' weights from `model`.
    ///
    /// # Errors
    /// [`DarkeningError::Config`] (see [`ByolTrainerConfig::validate`]).
    pub fn with_model(
        config: ByolTrainerConfig,
        mut model: ByolClassifier<E>,
        encoder_k: E,
        device: &Device,
    ) -> crate::Result<Self> {
        config.validate()?;
        let device = device.clone().autodiff();
        model.heads.weight = config.byol.weight;
        model.heads.momentum = config.byol.momentum;
        // `fork` (not `to_device`): parameters already on the autodiff device stay leaves.
        let model = model.fork(&device).train();
        let encoder_k = ema_update(encoder_k.fork(&device), &model.encoder, 0.0)
            .no_grad()
            .train();
        let optim = AdamConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay(
                (config.weight_decay > 0.0)
                    .then(|| WeightDecayConfig::new(config.weight_decay as f32)),
            )
            .init();
        Ok(Self {
            config,
            model,
            encoder_k,
            optim,
            step: 0,
            log: Vec::new(),
            device,
            last_checkpoint: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ByolTrainerConfig {
        &self.config
    }

    /// The training (autodiff) device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Steps done so far (resumed ones included).
    pub fn steps_done(&self) -> u64 {
        self.step
    }

    /// The log of every step so far (resumed ones included).
    pub fn log(&self) -> &[ByolStepLog] {
        &self.log
    }

    /// The online model (on the autodiff device, in training mode).
    pub fn model(&self) -> &ByolClassifier<E> {
        &self.model
    }

    /// The momentum encoder `F′`.
    pub fn momentum_encoder(&self) -> &E {
        &self.encoder_k
    }

    /// The trained model for inference: no autodiff, BatchNorm on its running statistics.
    pub fn into_model(self) -> ByolClassifier<E> {
        self.model.valid()
    }

    /// One optimisation step; see the [module docs](self).
    ///
    /// # Shapes
    /// - `day`: `[batch, 3, height, width]` (any device; moved to the trainer's), normalised
    /// - `dark`: the dark views of the same images, same shape; `None` for a plain supervised step
    /// - `labels`: `batch` class indices
    ///
    /// # Errors
    /// [`DarkeningError::Shape`] for mismatched shapes, labels or features that do not fit the
    /// classifier (`feat_dim`, classes); [`DarkeningError::NonFinite`] when the loss is NaN or
    /// infinite (the model is left as it was).
    pub fn step(
        &mut self,
        day: Tensor<4>,
        dark: Option<Tensor<4>>,
        labels: &[usize],
    ) -> crate::Result<ByolStepLog> {
        let [b, c, _, _] = day.dims();
        if c != 3 || b == 0 {
            return Err(DarkeningError::shape(
                "day images",
                "[B, 3, H, W] with B ≥ 1",
                &day.dims(),
            ));
        }
        if let Some(d) = &dark
            && d.dims() != day.dims()
        {
            return Err(DarkeningError::shape(
                "dark views",
                format!("{:?} (the day images' shape)", day.dims()),
                &d.dims(),
            ));
        }
        // before any forward pass: a training forward updates BatchNorm's running statistics
        check_labels(labels, b, self.model.fc.weight.dims()[1])?;
        let step = self.step;
        let lr = self.config.lr_at(step);
        let feat_dim = self.config.byol.feat_dim;
        let x_day = day.to_device(&self.device).detach();
        let feat_day = self.model.encoder.encode(x_day.clone());
        if feat_day.dims() != [b, feat_dim] {
            return Err(DarkeningError::shape(
                "encoder features",
                format!("[{b}, {feat_dim}] (ByolConfig::feat_dim)"),
                &feat_day.dims(),
            ));
        }
        let logits_day = self.model.fc.forward(feat_day.clone());
        let accuracy = top1(&logits_day, labels);
        let ce_day = cross_entropy(logits_day, labels)?;
        let (loss, ce_dark, byol, encoder_k, head_k) = match dark {
            None => (ce_day.clone(), None, None, None, None),
            Some(dark) => {
                let x_dark = dark.to_device(&self.device).detach();
                let feat_dark = self.model.encoder.encode(x_dark.clone());
                let ce_dark = cross_entropy(self.model.fc.forward(feat_dark.clone()), labels)?;
                // the momentum branch with this step's momentum weights; their update from the
                // online weights before the optimiser step is applied after it
                let heads = &self.model.heads;
                let byol = heads.forward(
                    feat_day,
                    feat_dark,
                    self.encoder_k.encode(x_day),
                    self.encoder_k.encode(x_dark),
                );
                let encoder_k =
                    ema_update(self.encoder_k.clone(), &self.model.encoder, heads.momentum);
                let head_k = heads.clone().momentum_update().head_k;
                let loss = ce_day.clone() + ce_dark.clone() + byol.clone();
                (
                    loss,
                    Some(ce_dark),
                    Some(byol),
                    Some(encoder_k),
                    Some(head_k),
                )
            }
        };
        let scalar = |t: &Tensor<1>| -> f32 { t.clone().into_scalar() };
        let total = scalar(&loss);
        if !total.is_finite() {
            return Err(DarkeningError::NonFinite {
                what: "loss",
                value: total,
                step,
                checkpoint: self.last_checkpoint.clone(),
            });
        }
        let log = ByolStepLog {
            step,
            lr,
            ce_day: scalar(&ce_day),
            ce_dark: ce_dark.as_ref().map(scalar),
            byol: byol.as_ref().map(scalar),
            loss: total,
            accuracy,
        };
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        self.model = self.optim.step(lr, self.model.clone(), grads);
        if let Some(k) = encoder_k {
            self.encoder_k = k;
        }
        if let Some(k) = head_k {
            self.model.heads.head_k = k;
        }
        self.step += 1;
        self.log.push(log);
        Ok(log)
    }

    /// Writes checkpoint `steps_done()` (online model, momentum encoder, Adam state, step counter
    /// and log) atomically into `dir` and returns its folder.
    ///
    /// # Errors
    /// I/O and record-encoding errors ([`DarkeningError::Core`]).
    pub fn save_checkpoint(&mut self, dir: &CheckpointDir) -> crate::Result<PathBuf> {
        let optim = optimizer_to_bytes(&self.optim)?;
        let parts = [
            (MODEL_PART, module_to_bytes(&self.model)?),
            (MOMENTUM_PART, module_to_bytes(&self.encoder_k)?),
            (OPTIM_PART, optim),
        ];
        let state = ByolState {
            step: self.step,
            log: self.log.clone(),
        };
        let path = dir.save(self.step, &parts, &state)?;
        self.last_checkpoint = Some(path.clone());
        Ok(path)
    }

    /// Resumes from the latest checkpoint of `dir`, if there is one: the online model, the
    /// momentum encoder, the Adam state, the step counter and the log are replaced. Returns
    /// whether a checkpoint was loaded.
    ///
    /// # Errors
    /// I/O and record errors (naming the file).
    pub fn resume(&mut self, dir: &CheckpointDir) -> crate::Result<bool> {
        let Some((_, state, path)) = dir.latest::<ByolState>()? else {
            return Ok(false);
        };
        self.model = load_module(self.model.clone(), path.join(MODEL_PART))?;
        self.encoder_k = load_module(self.encoder_k.clone(), path.join(MOMENTUM_PART))?;
        self.optim = load_optimizer(self.optim.clone(), path.join(OPTIM_PART))?;
        self.step = state.step;
        self.log = state.log;
        self.last_checkpoint = Some(path);
        Ok(true)
    }

    /// The folder of the last checkpoint written or resumed from.
    pub fn last_checkpoint(&self) -> Option<&Path> {
        self.last_checkpoint.as_deref()
    }
}

/// Mean cross-entropy of `logits` against class `labels` (`nn.CrossEntropyLoss()`):
/// `−(1/B) Σᵢ log softmax(logitsᵢ)[labelsᵢ]`.
///
/// # Shapes
/// - `logits`: `[batch, classes]`; `labels`: `batch` indices → output `[1]`
///
/// # Errors
/// [`DarkeningError::Shape`] for an empty batch or a label count other than the batch's,
/// [`DarkeningError::Config`] for a label not below `classes`.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use darkening_minmax::classify::cross_entropy;
/// let device = Device::default();
/// // equal logits: log(classes)
/// let ce: f32 = cross_entropy(Tensor::<2>::zeros([2, 4], &device), &[0, 3])?.into_scalar();
/// assert!((ce - 4f32.ln()).abs() < 1e-6);
/// # Ok::<(), darkening_minmax::DarkeningError>(())
/// ```
pub fn cross_entropy(logits: Tensor<2>, labels: &[usize]) -> crate::Result<Tensor<1>> {
    let [b, classes] = logits.dims();
    check_labels(labels, b, classes)?;
    let mut onehot = vec![0f32; b * classes];
    for (i, &l) in labels.iter().enumerate() {
        onehot[i * classes + l] = 1.0;
    }
    let onehot = Tensor::<2>::from_data(TensorData::new(onehot, [b, classes]), &logits.device());
    Ok(log_softmax(logits, 1)
        .mul(onehot)
        .sum()
        .neg()
        .div_scalar(b as f64))
}

/// One label per image of a non-empty batch, each below `classes`.
fn check_labels(labels: &[usize], batch: usize, classes: usize) -> crate::Result<()> {
    if batch == 0 || labels.len() != batch {
        return Err(DarkeningError::shape(
            "labels",
            format!("{batch} labels, one per image of a batch of B ≥ 1"),
            &[labels.len()],
        ));
    }
    if let Some(&bad) = labels.iter().find(|&&l| l >= classes) {
        return Err(DarkeningError::config(
            "labels",
            format!("label {bad} is not below the classifier's {classes} classes"),
        ));
    }
    Ok(())
}

/// The arg-max class of every row of `logits`.
fn argmax_rows(logits: Tensor<2>) -> Vec<usize> {
    logits
        .argmax(1)
        .flatten::<1>(0, 1)
        .into_data()
        .iter::<i64>()
        .map(|i| usize::try_from(i).unwrap_or(0))
        .collect()
}

fn top1(logits: &Tensor<2>, labels: &[usize]) -> f32 {
    let hits = argmax_rows(logits.clone().detach())
        .iter()
        .zip(labels)
        .filter(|&(p, l)| p == l)
        .count();
    hits as f32 / labels.len().max(1) as f32
}
