//! Caffe-style per-layer learning-rate and weight-decay multipliers as optimiser parameter groups.
//!
//! HED's Caffe solver (docs/PAPERS.md protocols 3.3) and gandtr's `HedInterpolation.parameter_groups`
//! (docs/PAPERS.md A.3) train the detector with one base learning rate and weight decay, multiplied per
//! parameter group:
//!
//! | group ([`CaffeGroup`]) | parameters of [`Hed`](crate::Hed) | lr × | weight decay × |
//! |---|---|---|---|
//! | `conv.weight` / `conv.bias` | `vgg_one` … `vgg_fou` | 1 / 2 | 1 / 0 |
//! | `conv5.weight` / `conv5.bias` | `vgg_fiv` | 100 / 200 | 1 / 0 |
//! | `score.weight` / `score.bias` | `score_one` … `score_fiv` | 0.01 / 0.02 | 1 / 0 |
//! | `fusion.weight` / `fusion.bias` | `combine` | 0.001 / 0.002 | 1 / 0 |
//!
//! burn 0.22 expresses both with its parameter-group API, matched on module paths:
//! - weight decay: [`caffe_optimizer`] builds a [`ModuleOptimizer`] with one optimiser per group
//!   ([`ModuleOptimizer::with_group`]), each with the base weight decay × its multiplier (coupled
//!   L2, as PyTorch's `Adam(weight_decay=…)`);
//! - learning rate: [`caffe_lr_scheduler`] builds a [`ModuleLrScheduler`] whose group schedulers
//!   are the base schedule × the multiplier ([`ScaledLr`]), so a decaying schedule keeps the ratios.
//!
//! ```
//! use burn::optim::AdamConfig;
//! use hed_edges::optim::{caffe_lr_scheduler, caffe_optimizer};
//!
//! // HEDN-GAN's detector optimiser: Adam lr 1e-6, betas (0.9, 0.999), weight decay 2e-4.
//! let mut optim = caffe_optimizer(&AdamConfig::new().with_epsilon(1e-8), 2e-4).unwrap();
//! let mut lr = caffe_lr_scheduler(1e-6).unwrap();
//! let policy = lr.step(); // pass to `optim.step(policy, model, grads)` every iteration
//! let conv5 = policy.lr_from_param(burn::module::ParamId::new(), Some("vgg_fiv.0.weight"));
//! assert!((conv5 - 1e-4).abs() < 1e-15); // 1e-6 × 100
//! ```

use burn::module::ParamGroup;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::lr_scheduler::{LrScheduler, LrSchedulerRecord};
use burn::optim::{AdamConfig, LearningRate, ModuleOptimizer};

use crate::HedError;

/// One of HED's eight Caffe parameter groups (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaffeGroup {
    /// Weights of the convolutions of blocks 1–4.
    ConvWeight,
    /// Biases of the convolutions of blocks 1–4.
    ConvBias,
    /// Weights of the convolutions of block 5.
    Conv5Weight,
    /// Biases of the convolutions of block 5.
    Conv5Bias,
    /// Weights of the five side-output (score) convolutions.
    ScoreWeight,
    /// Biases of the five side-output convolutions.
    ScoreBias,
    /// Weight of the fusion convolution.
    FusionWeight,
    /// Bias of the fusion convolution.
    FusionBias,
}

impl CaffeGroup {
    /// The eight groups.
    pub const ALL: [CaffeGroup; 8] = [
        Self::ConvWeight,
        Self::ConvBias,
        Self::Conv5Weight,
        Self::Conv5Bias,
        Self::ScoreWeight,
        Self::ScoreBias,
        Self::FusionWeight,
        Self::FusionBias,
    ];

    /// gandtr's name of the group (`conv.weight`, …, `fusion.bias`).
    pub fn name(self) -> &'static str {
        match self {
            Self::ConvWeight => "conv.weight",
            Self::ConvBias => "conv.bias",
            Self::Conv5Weight => "conv5.weight",
            Self::Conv5Bias => "conv5.bias",
            Self::ScoreWeight => "score.weight",
            Self::ScoreBias => "score.bias",
            Self::FusionWeight => "fusion.weight",
            Self::FusionBias => "fusion.bias",
        }
    }

    /// Learning-rate multiplier (docs/PAPERS.md A.3).
    pub fn lr_mult(self) -> f64 {
        match self {
            Self::ConvWeight => 1.0,
            Self::ConvBias => 2.0,
            Self::Conv5Weight => 100.0,
            Self::Conv5Bias => 200.0,
            Self::ScoreWeight => 0.01,
            Self::ScoreBias => 0.02,
            Self::FusionWeight => 0.001,
            Self::FusionBias => 0.002,
        }
    }

    /// Weight-decay multiplier: 1 for weights, 0 for biases.
    pub fn decay_mult(self) -> f64 {
        match self {
            Self::ConvWeight | Self::Conv5Weight | Self::ScoreWeight | Self::FusionWeight => 1.0,
            _ => 0.0,
        }
    }

    /// The regular expression this group matches on burn module paths (`vgg_fiv.2.weight`,
    /// `score_one.bias`, …). Not anchored at the start, so a [`Hed`](crate::Hed) nested in a
    /// larger module (`student.vgg_fiv.2.weight`) matches too.
    pub fn pattern(self) -> &'static str {
        match self {
            Self::ConvWeight => r"(?:^|\.)vgg_(?:one|two|thr|fou)\.\d+\.weight$",
            Self::ConvBias => r"(?:^|\.)vgg_(?:one|two|thr|fou)\.\d+\.bias$",
            Self::Conv5Weight => r"(?:^|\.)vgg_fiv\.\d+\.weight$",
            Self::Conv5Bias => r"(?:^|\.)vgg_fiv\.\d+\.bias$",
            Self::ScoreWeight => r"(?:^|\.)score_(?:one|two|thr|fou|fiv)\.weight$",
            Self::ScoreBias => r"(?:^|\.)score_(?:one|two|thr|fou|fiv)\.bias$",
            Self::FusionWeight => r"(?:^|\.)combine\.weight$",
            Self::FusionBias => r"(?:^|\.)combine\.bias$",
        }
    }

    /// The group of a parameter path, or `None` for a path outside HED.
    pub fn of_path(path: &str) -> Option<CaffeGroup> {
        // Classify by the same segments the patterns use, without compiling regexes.
        let parts: Vec<&str> = path.split('.').collect();
        let kind = *parts.last()?;
        let weight = match kind {
            "weight" => true,
            "bias" => false,
            _ => return None,
        };
        let pick = |w: CaffeGroup, b: CaffeGroup| Some(if weight { w } else { b });
        let n = parts.len();
        if n >= 3 && parts[n - 2].parse::<usize>().is_ok() {
            match parts[n - 3] {
                "vgg_one" | "vgg_two" | "vgg_thr" | "vgg_fou" => {
                    return pick(Self::ConvWeight, Self::ConvBias);
                }
                "vgg_fiv" => return pick(Self::Conv5Weight, Self::Conv5Bias),
                _ => {}
            }
        }
        if n >= 2 {
            match parts[n - 2] {
                "score_one" | "score_two" | "score_thr" | "score_fou" | "score_fiv" => {
                    return pick(Self::ScoreWeight, Self::ScoreBias);
                }
                "combine" => return pick(Self::FusionWeight, Self::FusionBias),
                _ => {}
            }
        }
        None
    }

    /// The burn [`ParamGroup`] of this group (module paths matching [`CaffeGroup::pattern`]).
    ///
    /// # Errors
    /// [`HedError::Config`] if burn rejects the pattern (it does not: the patterns are fixed and
    /// tested).
    pub fn param_group(self) -> crate::Result<ParamGroup> {
        ParamGroup::from_regex(self.pattern()).map_err(|e| HedError::Config {
            name: "parameter group",
            reason: format!("{}: {e:?}", self.name()),
        })
    }
}

/// A [`ModuleOptimizer`] for [`Hed`](crate::Hed) with HED's Caffe weight-decay multipliers: one
/// optimiser per [`CaffeGroup`], built from `adam` with weight decay `weight_decay ×`
/// [`CaffeGroup::decay_mult`] (the configuration's own weight decay is replaced). Parameters
/// outside HED (when the HED is part of a larger module) fall back to `adam` with `weight_decay`.
/// Pair it with [`caffe_lr_scheduler`] for the learning-rate multipliers. Gradient clipping of
/// `adam` is not carried over to the groups (HED does not clip).
///
/// # Errors
/// [`HedError::Config`] if a group pattern is rejected (see [`CaffeGroup::param_group`]).
pub fn caffe_optimizer(adam: &AdamConfig, weight_decay: f32) -> crate::Result<ModuleOptimizer> {
    let with_decay = |d: f32| {
        let decay = (d != 0.0).then(|| WeightDecayConfig::new(d));
        adam.clone().with_weight_decay(decay)
    };
    let mut optim = with_decay(weight_decay).init();
    for group in CaffeGroup::ALL {
        let decay = weight_decay * group.decay_mult() as f32;
        optim = optim.with_group(group.param_group()?, with_decay(decay).build(), None);
    }
    Ok(optim)
}

/// A [`ModuleLrScheduler`] for [`Hed`](crate::Hed) with HED's Caffe learning-rate multipliers:
/// every [`CaffeGroup`] follows `base × `[`CaffeGroup::lr_mult`] (a clone of `base` stepping in
/// lockstep, wrapped in [`ScaledLr`]); other parameters follow `base`. Call `step()` once per
/// iteration and pass the result to `ModuleOptimizer::step`.
///
/// # Errors
/// [`HedError::Config`] if a group pattern is rejected (see [`CaffeGroup::param_group`]).
pub fn caffe_lr_scheduler<S>(base: S) -> crate::Result<ModuleLrScheduler>
where
    S: LrScheduler + Clone + 'static,
{
    let mut scheduler = ModuleLrScheduler::new(base.clone());
    for group in CaffeGroup::ALL {
        scheduler = scheduler.with_group(
            group.param_group()?,
            ScaledLr::new(base.clone(), group.lr_mult()),
        );
    }
    Ok(scheduler)
}

/// A learning-rate schedule multiplied by a constant factor (a Caffe `lr_mult`).
#[derive(Clone, Debug)]
pub struct ScaledLr<S> {
    inner: S,
    factor: f64,
}

impl<S> ScaledLr<S> {
    /// `inner`'s learning rate × `factor` at every step.
    pub fn new(inner: S, factor: f64) -> Self {
        Self { inner, factor }
    }

    /// The factor.
    pub fn factor(&self) -> f64 {
        self.factor
    }
}

impl<S: LrScheduler + Clone + 'static> LrScheduler for ScaledLr<S> {
    fn step(&mut self) -> LearningRate {
        self.inner.step() * self.factor
    }

    fn to_record(&self) -> LrSchedulerRecord {
        self.inner.to_record()
    }

    fn load_record(&mut self, record: LrSchedulerRecord) {
        self.inner.load_record(record);
    }
}
