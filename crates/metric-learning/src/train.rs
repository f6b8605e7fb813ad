//! Trainers: cirtorch tuple training (docs/PAPERS.md A.6, C.3) and CosPlace / NocPlace class training
//! (B.4, B.5), seeded, checkpointed every epoch and resumable exactly.
//!
//! **Tuple training** ([`TupleTrainer`]), per epoch `e`:
//! 1. a generator `derived(seed, e)` drives every random choice of the epoch (anchors, negative
//!    pool, augmentations), so a run resumed at an epoch boundary draws the same numbers;
//! 2. anchors from an [`AnchorStrategy`] (random, or diverse with the current network), a random
//!    negative pool, descriptors of both with the current network (no gradient, anchors through
//!    the augmentation hook as DSA does while mining), [`mine_hard_negatives`];
//! 3. per tuple: forward of its `2 + k` images (one batch per image size; BatchNorm frozen, so
//!    this equals cirtorch's image-by-image forward), loss, backward, gradients accumulated; an
//!    Adam step every `batch_size` tuples with the summed gradients (cirtorch's per-tuple
//!    `backward()` + `step()` every batch); GeM's `p` in its own parameter group at
//!    `gem_lr_multiplier ×` the learning rate without weight decay;
//! 4. learning rate `lr·γ^e` (ExponentialLR stepped per epoch); the epoch's log is appended; a
//!    checkpoint (module record, optimiser state, log) is written atomically.
//!
//! A non-finite loss stops training with [`MetricError::NonFinite`] naming the last good
//! checkpoint, which is left untouched.
//!
//! **CosPlace training** ([`CosPlaceTrainer`]): epoch `e` trains group `e mod groups` with its own
//! [`MarginCosineProduct`] classifier and Adam (classifier learning rate), batches of distinct
//! classes with one random image each, loss [`NocPlaceLoss`](crate::NocPlaceLoss) (CosFace cross-entropy, plus IKT when
//! inherited descriptors are given).

use std::path::PathBuf;
use std::time::Instant;

use anchor_mining::{AnchorStrategy, ImageRole};
use burn::module::{Module, ParamGroup};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::lr_scheduler::module_lr_scheduler::{ModuleLearningRate, ModuleLrScheduler};
use burn::optim::{AdamConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use nightvision_core::Normalization;
use nightvision_core::checkpoint::{
    CheckpointDir, load_module, load_optimizer, module_from_bytes, module_to_bytes,
    optimizer_to_bytes, save_json,
};
use nightvision_core::image::{resize_bilinear, resize_max_side, to_tensor};
use nightvision_core::parallel::{DataParallel, take_grads};
use nightvision_core::rng::{ChaCha8Rng, Rng, derived};
use serde::{Deserialize, Serialize};

use crate::data::{
    AugmentHooks, ClassSampler, ImageSource, MiningConfig, Tuple, TupleDatabase,
    mine_hard_negatives,
};
use crate::error::MetricError;
use crate::losses::{
    ContrastiveLossConfig, MarginCosineProduct, MarginCosineProductConfig, NocPlaceLossConfig,
    TripletLossConfig, TupleLayout,
};
use crate::multiscale::progress_bar;
use crate::nets::{CirNet, CosPlaceNet};

/// The loss of tuple training.
#[derive(Debug, Clone)]
pub enum TupleLoss {
    /// cirtorch's contrastive loss.
    Contrastive(ContrastiveLossConfig),
    /// cirtorch's triplet loss.
    Triplet(TripletLossConfig),
}

/// Configuration of [`TupleTrainer`] (defaults: cirtorch `train.py` / docs/PAPERS.md A.6).
#[derive(Debug, Clone)]
pub struct TupleTrainerConfig {
    /// Epochs to train (in total, counting resumed ones).
    pub epochs: usize,
    /// Adam learning rate of the network (A.6: 5e-7; cirtorch default 1e-6).
    pub lr: f64,
    /// Adam weight decay (L2) of every parameter but GeM's `p` (A.6: 5e-4; cirtorch 1e-6).
    pub weight_decay: f64,
    /// GeM `p` learning-rate multiplier (10), no weight decay.
    pub gem_lr_multiplier: f64,
    /// Per-epoch learning-rate decay γ (A.6: 0.99; cirtorch `exp(−0.01)`).
    pub gamma: f64,
    /// Tuples per optimiser step (5).
    pub batch_size: usize,
    /// Longer image side (362).
    pub image_size: usize,
    /// Epoch sampling: negatives per tuple, tuples per epoch, negative pool size.
    pub mining: MiningConfig,
    /// How the epoch's anchors are chosen.
    pub anchors: AnchorStrategy,
    /// The loss.
    pub loss: TupleLoss,
    /// Input normalisation (after augmentation).
    pub normalization: Normalization,
    /// Seed of every host-side random choice.
    pub seed: u64,
    /// Show progress bars.
    pub progress: bool,
}

impl Default for TupleTrainerConfig {
    fn default() -> Self {
        Self {
            epochs: 1,
            lr: 1e-6,
            weight_decay: 1e-6,
            gem_lr_multiplier: 10.0,
            gamma: (-0.01f64).exp(),
            batch_size: 5,
            image_size: 362,
            mining: MiningConfig::default(),
            anchors: AnchorStrategy::Random,
            loss: TupleLoss::Contrastive(ContrastiveLossConfig::new()),
            normalization: Normalization::ImageNet,
            seed: 0,
            progress: false,
        }
    }
}

/// What one epoch did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// Epoch index (0-based).
    pub epoch: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Loss of every optimiser step (summed over its tuples).
    pub step_losses: Vec<f32>,
    /// Mean loss per tuple (tuple training) or per step (CosPlace).
    pub mean_loss: f32,
    /// Average distance to mined negatives (tuple training).
    pub avg_neg_distance: Option<f32>,
    /// GeM exponent after the epoch.
    pub gem_p: Option<f32>,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// The model-selection score after this epoch, when a [`Selection`] scored it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_score: Option<f64>,
}

/// The JSON log of a run (also stored in every checkpoint, so a resumed run continues it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainLog {
    /// The seed.
    pub seed: u64,
    /// Completed epochs.
    pub epochs: Vec<EpochLog>,
    /// The best-scoring epoch so far of a run with a [`Selection`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best: Option<BestEpoch>,
}

/// The epoch a [`Selection`] kept.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BestEpoch {
    /// Epoch index (0-based).
    pub epoch: usize,
    /// Its score.
    pub score: f64,
}

/// Which way a [`Selection`] score improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Goal {
    /// Lower is better (a validation loss: gandtr keeps the lowest, docs/PAPERS.md A.6).
    Minimize,
    /// Higher is better (a validation recall: CosPlace and NocPlace keep the highest R@1, B.5).
    Maximize,
}

/// Model selection during training: `score` is called with the network in inference mode
/// after every `every`-th epoch and after the last one, and the trainer returns the best-scoring
/// network (ties keep the earlier epoch). The best network travels in every checkpoint
/// (`best-model.bpk`), so a resumed run keeps selecting among all of its epochs.
///
/// The score returns any error (boxed); it reaches the caller as [`MetricError::Selection`].
///
/// ```
/// use metric_learning::train::{Goal, Selection};
/// let mut calls = 0;
/// let s = Selection::<u8>::new(2, Goal::Maximize, |_| {
///     calls += 1;
///     Ok(0.5)
/// })?;
/// assert_eq!(s.every(), 2);
/// assert!(Selection::<u8>::new(0, Goal::Minimize, |_| Ok(0.0)).is_err());
/// # Ok::<(), metric_learning::MetricError>(())
/// ```
pub struct Selection<'s, N> {
    every: usize,
    goal: Goal,
    score: ScoreFn<'s, N>,
}

/// The error a [`Selection`] score may return.
pub type ScoreError = Box<dyn std::error::Error + Send + Sync>;

/// A boxed [`Selection`] score.
type ScoreFn<'s, N> = Box<dyn FnMut(&N) -> std::result::Result<f64, ScoreError> + 's>;

impl<'s, N> Selection<'s, N> {
    /// Scores every `every`-th epoch (and the last) by `score`, keeping the best by `goal`.
    ///
    /// # Errors
    /// [`MetricError::Config`] for `every == 0`.
    pub fn new(
        every: usize,
        goal: Goal,
        score: impl FnMut(&N) -> std::result::Result<f64, ScoreError> + 's,
    ) -> crate::Result<Self> {
        if every == 0 {
            return Err(MetricError::config(
                "selection",
                "every must be at least 1 epoch",
            ));
        }
        Ok(Self {
            every,
            goal,
            score: Box::new(score),
        })
    }

    /// Epochs between two scores.
    pub fn every(&self) -> usize {
        self.every
    }

    /// The direction of improvement.
    pub fn goal(&self) -> Goal {
        self.goal
    }

    /// Whether epoch `epoch` (0-based) of `epochs` is scored.
    fn due(&self, epoch: usize, epochs: usize) -> bool {
        (epoch + 1).is_multiple_of(self.every) || epoch + 1 == epochs
    }

    /// Scores `net` (the inference-mode network); a failed or non-finite score is an error.
    fn score(&mut self, net: &N, epoch: usize) -> crate::Result<f64> {
        let v = (self.score)(net).map_err(|source| MetricError::Selection { epoch, source })?;
        if !v.is_finite() {
            return Err(MetricError::Selection {
                epoch,
                source: format!("{v} is not a finite number").into(),
            });
        }
        Ok(v)
    }

    /// Whether `score` beats the best so far.
    fn improves(&self, score: f64, best: Option<BestEpoch>) -> bool {
        match (best, self.goal) {
            (None, _) => true,
            (Some(b), Goal::Minimize) => score < b.score,
            (Some(b), Goal::Maximize) => score > b.score,
        }
    }
}

impl<N> std::fmt::Debug for Selection<'_, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Selection")
            .field("every", &self.every)
            .field("goal", &self.goal)
            .finish_non_exhaustive()
    }
}

/// One epoch of a selecting run: scores `net` when due, updates `log.best` and `best` (the
/// kept network's record: a copy, since a module's clone shares BatchNorm running statistics
/// with the network that goes on training) and records the score in the epoch's log entry.
fn select_epoch<N: Module + Clone>(
    selection: Option<&mut Selection<'_, N>>,
    net: &N,
    epoch: usize,
    epochs: usize,
    log: &mut TrainLog,
    best: &mut Option<Vec<u8>>,
) -> crate::Result<()> {
    let Some(sel) = selection else {
        return Ok(());
    };
    if !sel.due(epoch, epochs) {
        return Ok(());
    }
    let score = sel.score(&net.valid(), epoch)?;
    if let Some(e) = log.epochs.last_mut() {
        e.val_score = Some(score);
    }
    if sel.improves(score, log.best) {
        log.best = Some(BestEpoch { epoch, score });
        *best = Some(module_to_bytes(net)?);
    }
    Ok(())
}

/// The optimiser of tuple training: Adam with weight decay, GeM's `p` in a group without it.
fn tuple_optimizer(cfg: &TupleTrainerConfig) -> ModuleOptimizer {
    let base = AdamConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(
            (cfg.weight_decay > 0.0).then(|| WeightDecayConfig::new(cfg.weight_decay as f32)),
        )
        .init();
    base.with_group(
        gem_group(),
        AdamConfig::new().with_epsilon(1e-8).build(),
        None,
    )
}

/// The parameter group of GeM's exponent (`pool.p`).
pub fn gem_group() -> ParamGroup {
    ParamGroup::from_path("pool.p")
}

fn learning_rates(lr: f64, mult: f64) -> ModuleLearningRate {
    ModuleLrScheduler::new(lr)
        .with_group(gem_group(), lr * mult)
        .step()
}

fn check_finite(
    value: f32,
    what: &'static str,
    epoch: usize,
    step: usize,
    ckpt: &Option<PathBuf>,
) -> crate::Result<()> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(MetricError::NonFinite {
            what,
            value,
            epoch,
            step,
            checkpoint: ckpt.clone(),
        })
    }
}

/// A prepared image: resized, augmented (if its role asks for it), normalised, `[1, 3, h, w]`.
#[allow(clippy::too_many_arguments)]
fn prepare(
    images: &ImageSource,
    i: usize,
    role: ImageRole,
    hooks: &AugmentHooks,
    max_side: usize,
    square: Option<usize>,
    normalization: Normalization,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> crate::Result<Tensor<4>> {
    let img = images.load(i)?;
    let x = match square {
        Some(s) => resize_bilinear(to_tensor(std::slice::from_ref(&img), device)?, [s, s]),
        None => to_tensor(
            std::slice::from_ref(&resize_max_side(&img, max_side)),
            device,
        )?,
    };
    let x = hooks.apply(x, role, &images.name(i)?, rng)?;
    Ok(normalization.apply(x))
}

/// Forwards images of possibly different sizes, one batch per size, and returns the
/// descriptors in input order.
fn forward_grouped(f: impl Fn(Tensor<4>) -> Tensor<2>, xs: Vec<Tensor<4>>) -> Tensor<2> {
    let mut groups: Vec<([usize; 2], Vec<usize>)> = Vec::new();
    for (i, x) in xs.iter().enumerate() {
        let [_, _, h, w] = x.dims();
        match groups.iter_mut().find(|(s, _)| *s == [h, w]) {
            Some((_, v)) => v.push(i),
            None => groups.push(([h, w], vec![i])),
        }
    }
    let device = xs[0].device();
    if groups.len() == 1 {
        return f(Tensor::cat(xs, 0));
    }
    let mut outs = Vec::with_capacity(groups.len());
    let mut order = Vec::with_capacity(xs.len());
    for (_, idx) in &groups {
        outs.push(f(Tensor::cat(
            idx.iter().map(|&i| xs[i].clone()).collect(),
            0,
        )));
        order.extend(idx.iter().copied());
    }
    // Row r of the concatenation holds input order[r]; invert.
    let mut inv = vec![0i64; order.len()];
    for (r, &i) in order.iter().enumerate() {
        inv[i] = r as i64;
    }
    let n = inv.len();
    Tensor::cat(outs, 0).select(
        0,
        Tensor::<1, Int>::from_data(TensorData::new(inv, [n]), &device),
    )
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TupleState {
    epoch: usize,
    log: TrainLog,
}

pub use nightvision_core::checkpoint::Trained;

/// cirtorch-style tuple training of a [`CirNet`].
pub struct TupleTrainer<'a> {
    cfg: TupleTrainerConfig,
    db: &'a TupleDatabase,
    hooks: AugmentHooks,
    device: Device,
    parallel: DataParallel,
}

impl<'a> TupleTrainer<'a> {
    /// A trainer on `device` (an autodiff device is made from it).
    ///
    /// # Errors
    /// [`MetricError::Config`] for zero epochs/batch/image size, a non-positive or non-finite
    /// learning rate or γ.
    pub fn new(
        cfg: TupleTrainerConfig,
        db: &'a TupleDatabase,
        hooks: AugmentHooks,
        device: &Device,
    ) -> crate::Result<Self> {
        if cfg.batch_size == 0 || cfg.image_size == 0 {
            return Err(MetricError::config(
                "tuple trainer",
                "batch_size and image_size must be positive",
            ));
        }
        if !(cfg.lr.is_finite() && cfg.lr > 0.0 && cfg.gamma.is_finite() && cfg.gamma > 0.0) {
            return Err(MetricError::config(
                "tuple trainer",
                format!("lr {} and gamma {} must be positive", cfg.lr, cfg.gamma),
            ));
        }
        Ok(Self {
            cfg,
            db,
            hooks,
            device: device.clone().autodiff(),
            parallel: DataParallel::single(device),
        })
    }

    /// Trains data-parallel on `parallel`'s devices (its main device replaces the trainer's):
    /// each optimiser step's tuples are split across the devices and their summed gradients
    /// applied on the main device ([`nightvision_core::parallel`]). The result equals
    /// single-device training up to the order of floating-point sums.
    pub fn with_data_parallel(mut self, parallel: DataParallel) -> Self {
        self.device = parallel.main().clone();
        self.parallel = parallel;
        self
    }

    /// The training (autodiff) device (the main device of data-parallel training).
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Descriptors (no gradient) of `images` in `role`, one image at a time.
    fn describe(
        &self,
        net: &CirNet,
        images: &[usize],
        role: ImageRole,
        rng: &mut ChaCha8Rng,
    ) -> crate::Result<Tensor<2>> {
        let plain = self.device.clone().inner();
        let bar = progress_bar(images.len() as u64, "mining", self.cfg.progress);
        let mut out = Vec::with_capacity(images.len());
        for &i in images {
            let x = prepare(
                &self.db.images,
                i,
                role,
                &self.hooks,
                self.cfg.image_size,
                None,
                self.cfg.normalization,
                rng,
                &plain,
            )?;
            out.push(net.forward(x));
            bar.inc(1);
        }
        bar.finish_and_clear();
        if out.is_empty() {
            return Err(MetricError::Empty {
                what: "images to describe",
            });
        }
        Ok(Tensor::cat(out, 0))
    }

    /// The epoch's tuples: anchors, negative pool, mining with the current network.
    ///
    /// # Errors
    /// [`MetricError::NoNegatives`] when the pool cannot provide `neg_num` negatives for a query,
    /// and I/O or configuration errors.
    pub fn epoch_tuples(
        &self,
        net: &CirNet,
        rng: &mut ChaCha8Rng,
    ) -> crate::Result<(Vec<Tuple>, f32)> {
        let valid = net.valid();
        let num_pairs = self.db.qidxs.len();
        let q = self.cfg.mining.query_size.min(num_pairs);
        let pairs = self
            .cfg
            .anchors
            .select(num_pairs, q, rng, |cands: &[usize]| {
                let imgs: Vec<usize> = cands.iter().map(|&c| self.db.qidxs[c]).collect();
                let mut r = rng_for_describe(self.cfg.seed);
                self.describe(&valid, &imgs, ImageRole::Anchor, &mut r)
            })?;
        let draw = self.cfg.mining.draw_pool(self.db, pairs, rng)?;
        let queries: Vec<usize> = draw.pairs.iter().map(|&p| self.db.qidxs[p]).collect();
        let qd = self.describe(&valid, &queries, ImageRole::Anchor, rng)?;
        let pd = self.describe(&valid, &draw.pool, ImageRole::Negative, rng)?;
        let mined = mine_hard_negatives(
            qd,
            pd,
            &queries,
            &draw.pool,
            &self.db.clusters,
            self.cfg.mining.neg_num,
        )?;
        let tuples = draw
            .pairs
            .iter()
            .zip(mined.negatives)
            .map(|(&p, negatives)| Tuple {
                query: self.db.qidxs[p],
                positive: self.db.pidxs[p],
                negatives,
            })
            .collect();
        Ok((tuples, mined.avg_neg_distance))
    }

    /// Trains `net` for the configured epochs, resuming from `ckpt`'s latest checkpoint if there
    /// is one, checkpointing after every epoch.
    ///
    /// # Errors
    /// [`MetricError::NonFinite`] for a NaN/∞ loss (the last good checkpoint is kept),
    /// [`MetricError::Resume`] for a checkpoint of another seed, mining, I/O and checkpoint errors.
    pub fn train(
        &self,
        net: CirNet,
        ckpt: Option<&CheckpointDir>,
    ) -> crate::Result<Trained<CirNet, TrainLog>> {
        self.run(net, ckpt, None)
    }

    /// As [`train`](Self::train), with model selection: the returned network is the one of the
    /// best-scoring epoch (`log.best` names it; `log.epochs[e].val_score` holds every score),
    /// as gandtr keeps `embed_best.pth` by the validation loss (docs/PAPERS.md A.6).
    ///
    /// # Errors
    /// As [`train`](Self::train); [`MetricError::Selection`] for a score that fails or is not
    /// finite.
    pub fn train_selecting(
        &self,
        net: CirNet,
        ckpt: Option<&CheckpointDir>,
        selection: &mut Selection<'_, CirNet>,
    ) -> crate::Result<Trained<CirNet, TrainLog>> {
        self.run(net, ckpt, Some(selection))
    }

    /// The mean loss per tuple of one epoch's tuples (mined with the network, as epoch `epoch`
    /// of a run would draw them) without any update: gandtr's validation loss when the trainer
    /// holds the validation split (all its queries with `query_size ≥` their number).
    ///
    /// # Errors
    /// As [`epoch_tuples`](Self::epoch_tuples); [`MetricError::Empty`] for no tuples.
    pub fn loss(&self, net: &CirNet, epoch: usize) -> crate::Result<f64> {
        let cfg = &self.cfg;
        let plain = self.device.clone().inner();
        let net = nightvision_core::on_device(net.clone(), &plain).valid();
        let mut rng = derived(cfg.seed, epoch as u64);
        let (tuples, _) = self.epoch_tuples(&net, &mut rng)?;
        if tuples.is_empty() {
            return Err(MetricError::Empty {
                what: "validation tuples",
            });
        }
        let mut total = 0f64;
        for t in &tuples {
            let loss = self.tuple_loss(&net, t, rng.random(), &plain)?;
            total += f64::from(loss.into_scalar::<f32>());
        }
        Ok(total / tuples.len() as f64)
    }

    /// The loss of one tuple with `net` on `device`: its images prepared with the hooks (the
    /// query's darkened copy as an extra positive when the hooks ask for it) from the stream
    /// `derived(seed, 0)`, described, and scored with the configured loss.
    fn tuple_loss(
        &self,
        net: &CirNet,
        t: &Tuple,
        seed: u64,
        device: &Device,
    ) -> crate::Result<Tensor<1>> {
        let cfg = &self.cfg;
        let mut trng = derived(seed, 0);
        let mut xs = t
            .images()
            .into_iter()
            .map(|(i, role)| {
                prepare(
                    &self.db.images,
                    i,
                    role,
                    &self.hooks,
                    cfg.image_size,
                    None,
                    cfg.normalization,
                    &mut trng,
                    device,
                )
            })
            .collect::<crate::Result<Vec<_>>>()?;
        let mut labels = TupleLayout::standard_labels(1, t.negatives.len());
        if self.hooks.query_copy && self.hooks.augmentation.is_some() {
            let q = prepare(
                &self.db.images,
                t.query,
                ImageRole::Anchor,
                &self.hooks.for_query_copy(),
                cfg.image_size,
                None,
                cfg.normalization,
                &mut trng,
                device,
            )?;
            xs.insert(1, q);
            labels.insert(1, 1);
        }
        let desc = forward_grouped(|x| net.forward(x), xs);
        Ok(match &cfg.loss {
            TupleLoss::Contrastive(c) => c.init().forward(desc, &labels)?,
            TupleLoss::Triplet(c) => c.init().forward(desc, &labels)?,
        })
    }

    fn run(
        &self,
        net: CirNet,
        ckpt: Option<&CheckpointDir>,
        mut selection: Option<&mut Selection<'_, CirNet>>,
    ) -> crate::Result<Trained<CirNet, TrainLog>> {
        let cfg = &self.cfg;
        let mut net = nightvision_core::on_device(net, &self.device).train();
        let mut optim = tuple_optimizer(cfg);
        let mut log = TrainLog {
            seed: cfg.seed,
            epochs: Vec::new(),
            best: None,
        };
        let mut best: Option<Vec<u8>> = None;
        let mut start = 0;
        let mut last_ckpt: Option<PathBuf> = None;
        if let Some(dir) = ckpt
            && let Some((_, state, path)) = dir.latest::<TupleState>()?
        {
            if state.log.seed != cfg.seed {
                return Err(MetricError::Resume {
                    path,
                    reason: format!("seed {} ≠ configured {}", state.log.seed, cfg.seed),
                });
            }
            net = load_module(net, path.join("model.bpk"))?;
            optim = load_optimizer(optim, path.join("optim.bpk"))?;
            best = load_best(&state.log, &path)?;
            start = state.epoch;
            log = state.log;
            last_ckpt = Some(path);
            // The checkpoint's log is the run's: a run killed between the checkpoint and
            // `log.json` left the previous log behind.
            save_json(dir.root().join("log.json"), &log)?;
        }
        for epoch in start..cfg.epochs {
            let t0 = Instant::now();
            let mut rng = derived(cfg.seed, epoch as u64);
            let (tuples, avg_nd) = self.epoch_tuples(&net, &mut rng)?;
            let lr = cfg.lr * cfg.gamma.powi(epoch as i32);
            let lrs = learning_rates(lr, cfg.gem_lr_multiplier);
            let bar = progress_bar(tuples.len() as u64, &format!("epoch {epoch}"), cfg.progress);
            let mut step_losses = Vec::new();
            let mut total = 0f64;
            for (step, chunk) in tuples.chunks(cfg.batch_size).enumerate() {
                // One stream per tuple, drawn in tuple order: the draws do not depend on how
                // the tuples are split across devices.
                let seeds: Vec<u64> = chunk.iter().map(|_| rng.random()).collect();
                let (grads, losses) = self.parallel.gradients(&net, chunk.len(), |shard| {
                    let mut acc = GradientsAccumulator::<CirNet>::new();
                    let mut losses = Vec::with_capacity(shard.items.len());
                    for j in shard.items.clone() {
                        let t = &chunk[j];
                        let loss = self.tuple_loss(shard.model, t, seeds[j], shard.device)?;
                        let value: f32 = loss.clone().into_scalar();
                        check_finite(value, "loss", epoch, step, &last_ckpt)?;
                        losses.push(value);
                        acc.accumulate(
                            shard.model,
                            GradientsParams::from_grads(loss.backward(), shard.model),
                        );
                        bar.inc(1);
                    }
                    Ok::<_, MetricError>((acc.grads(), losses))
                })?;
                let batch_loss: f32 = losses.iter().flatten().sum();
                net = optim.step(lrs.clone(), net, grads);
                step_losses.push(batch_loss);
                total += f64::from(batch_loss);
                bar.set_message(format!(
                    "epoch {epoch} loss {:.4}",
                    batch_loss / chunk.len() as f32
                ));
            }
            bar.finish_and_clear();
            // `train()` folds pending BatchNorm running-state updates into the stored value, so
            // the checkpoint holds what the live network uses (burn's `RunningState` records
            // can otherwise lag one update behind).
            net = net.train();
            let gem_p = net.gem_p();
            if let Some(p) = gem_p {
                check_finite(p, "GeM p", epoch, step_losses.len(), &last_ckpt)?;
            }
            log.epochs.push(EpochLog {
                epoch,
                lr,
                mean_loss: (total / tuples.len().max(1) as f64) as f32,
                step_losses,
                avg_neg_distance: Some(avg_nd),
                gem_p,
                seconds: t0.elapsed().as_secs_f64(),
                val_score: None,
            });
            select_epoch(
                selection.as_deref_mut(),
                &net,
                epoch,
                cfg.epochs,
                &mut log,
                &mut best,
            )?;
            if let Some(dir) = ckpt {
                let mut parts = vec![
                    ("model.bpk", module_to_bytes(&net)?),
                    ("optim.bpk", optimizer_to_bytes(&optim)?),
                ];
                if let Some(b) = &best {
                    parts.push(("best-model.bpk", b.clone()));
                }
                let state = TupleState {
                    epoch: epoch + 1,
                    log: log.clone(),
                };
                last_ckpt = Some(dir.save(epoch as u64 + 1, &parts, &state)?);
                save_json(dir.root().join("log.json"), &log)?;
            }
        }
        let net = selected(net, selection.is_some(), best, ckpt)?;
        Ok(Trained { net, log })
    }
}

/// The best network's record of a resumed selecting run (`best-model.bpk` of its checkpoint).
fn load_best(log: &TrainLog, ckpt: &std::path::Path) -> crate::Result<Option<Vec<u8>>> {
    let path = ckpt.join("best-model.bpk");
    if log.best.is_none() {
        return Ok(None);
    }
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) => Err(MetricError::Resume {
            path,
            reason: format!("the log names a best epoch but its network cannot be read: {e}"),
        }),
    }
}

/// The network a run returns: with a selection, the best epoch's (`best`, a record of `net`'s
/// architecture), otherwise `net`.
fn selected<N: Module>(
    net: N,
    selecting: bool,
    best: Option<Vec<u8>>,
    ckpt: Option<&CheckpointDir>,
) -> crate::Result<N> {
    match (selecting, best) {
        (true, Some(bytes)) => {
            let origin = ckpt.map_or_else(
                || PathBuf::from("best-model.bpk"),
                |d| d.root().join("best-model.bpk"),
            );
            Ok(module_from_bytes(net, bytes, &origin)?)
        }
        _ => Ok(net),
    }
}

/// The generator used to describe diverse-anchor candidates: independent of the epoch stream
/// (their augmentation must not shift the epoch's other draws).
fn rng_for_describe(seed: u64) -> ChaCha8Rng {
    derived(seed ^ 0x5eed_a4c4_0000_0000, u64::MAX)
}

/// Configuration of [`CosPlaceTrainer`] (defaults: CosPlace / NocPlace `parser.py`).
#[derive(Debug, Clone)]
pub struct CosPlaceTrainerConfig {
    /// Epochs (in total, counting resumed ones).
    pub epochs: usize,
    /// Optimiser steps per epoch (CosPlace 10 000).
    pub iterations_per_epoch: usize,
    /// Classes per batch (32).
    pub batch_size: usize,
    /// Model learning rate (`--lr`, 1e-5; NocPlace recipe 1e-6).
    pub lr: f64,
    /// Classifier learning rate (`--classifiers_lr`, 1e-2).
    pub classifiers_lr: f64,
    /// Side of the square training images (512).
    pub image_size: usize,
    /// CosFace scale and margin.
    pub s: f64,
    /// CosFace margin.
    pub m: f64,
    /// Loss (IKT temperature and weight; IKT is used when inherited descriptors are given).
    pub loss: NocPlaceLossConfig,
    /// Input normalisation (after augmentation).
    pub normalization: Normalization,
    /// CosPlace's `RandomResizedCrop` of every training image (`--random_resized_crop`): the
    /// lower end of the area fraction (CosPlace and NocPlace: 0.5), aspect ratios 3/4 to 4/3,
    /// the crop resized back to the `image_size` square ([`random_resized_crop_box`]). `None`
    /// (the default here, so that a step is a function of the images alone) trains on the
    /// whole image.
    pub random_resized_crop: Option<f64>,
    /// Seed.
    pub seed: u64,
    /// Show progress bars.
    pub progress: bool,
}

/// The crop of torchvision's `RandomResizedCrop.get_params` for an `height × width` image:
/// up to ten draws of an area fraction in `[min_scale, 1]` and a log-uniform aspect ratio in
/// `[3/4, 4/3]`, the first that fits placed uniformly; otherwise the centre crop of the whole
/// image with its aspect ratio clamped to that range. Returns `(top, left, crop height, crop
/// width)`.
///
/// ```
/// use metric_learning::train::random_resized_crop_box;
/// use nightvision_core::rng::seeded;
/// let (t, l, h, w) = random_resized_crop_box(64, 64, 0.5, &mut seeded(0));
/// assert!(t + h <= 64 && l + w <= 64);
/// let area = (h * w) as f64 / (64.0 * 64.0);
/// assert!((0.45..=1.0).contains(&area));
/// ```
pub fn random_resized_crop_box<R: Rng + ?Sized>(
    height: usize,
    width: usize,
    min_scale: f64,
    rng: &mut R,
) -> (usize, usize, usize, usize) {
    let (hf, wf) = (height as f64, width as f64);
    let area = hf * wf;
    let (lo, hi) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
    for _ in 0..10 {
        let target = area * rng.random_range(min_scale.min(1.0)..=1.0);
        let ratio = rng.random_range(lo..=hi).exp();
        let w = (target * ratio).sqrt().round() as usize;
        let h = (target / ratio).sqrt().round() as usize;
        if 0 < w && w <= width && 0 < h && h <= height {
            let top = rng.random_range(0..=height - h);
            let left = rng.random_range(0..=width - w);
            return (top, left, h, w);
        }
    }
    let in_ratio = wf / hf;
    let (h, w) = if in_ratio < 3.0 / 4.0 {
        (((wf / (3.0 / 4.0)).round() as usize).min(height), width)
    } else if in_ratio > 4.0 / 3.0 {
        (height, ((hf * (4.0 / 3.0)).round() as usize).min(width))
    } else {
        (height, width)
    };
    ((height - h) / 2, (width - w) / 2, h, w)
}

impl Default for CosPlaceTrainerConfig {
    fn default() -> Self {
        Self {
            epochs: 1,
            iterations_per_epoch: 10_000,
            batch_size: 32,
            lr: 1e-5,
            classifiers_lr: 1e-2,
            image_size: 512,
            s: 30.0,
            m: 0.4,
            loss: NocPlaceLossConfig::new(),
            normalization: Normalization::ImageNet,
            random_resized_crop: None,
            seed: 0,
            progress: false,
        }
    }
}

/// The result of CosPlace training: a [`Trained`] with the per-group classifiers besides (kept to
/// continue training; retrieval needs only `net`).
#[derive(Debug)]
pub struct TrainedCosPlace {
    /// The network.
    pub net: CosPlaceNet,
    /// One classifier per group.
    pub classifiers: Vec<MarginCosineProduct>,
    /// The log.
    pub log: TrainLog,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CosPlaceState {
    epoch: usize,
    log: TrainLog,
}

/// CosPlace / NocPlace class training of a [`CosPlaceNet`].
pub struct CosPlaceTrainer<'a> {
    cfg: CosPlaceTrainerConfig,
    images: &'a ImageSource,
    groups: Vec<ClassSampler>,
    inherited: Option<Tensor<2>>,
    hooks: AugmentHooks,
    device: Device,
    parallel: DataParallel,
}

/// The descriptors of `images` by `net` seen exactly as [`CosPlaceTrainer`] prepares its training
/// images with `cfg` (resized to a `cfg.image_size` square, `cfg.normalization`), without
/// augmentation hooks and without gradient, in batches of `batch_size`: NocPlace's inherited
/// descriptors, so that the teacher (the daytime model on the day images) sees the same geometry
/// as the student (docs/PAPERS.md B.4: both take the dataset's square images).
///
/// # Shapes
/// - output: `[images.len(), dim]`
///
/// # Errors
/// [`MetricError::Config`] for a zero `batch_size` or `image_size`, [`MetricError::Empty`] for no
/// images, image loading errors naming the file.
///
/// ```
/// use burn::tensor::Device;
/// use metric_learning::data::ImageSource;
/// use metric_learning::train::{CosPlaceTrainerConfig, training_view_descriptors};
/// use metric_learning::{BackboneConfig, CosPlaceNetConfig};
/// use nightvision_core::image::Rgb32FImage;
/// let device = Device::default();
/// let trunk = BackboneConfig::ResNet(backbones::ResNetConfig::resnet18().with_base_width(2));
/// let net = CosPlaceNetConfig::new(trunk, 8).init(&device)?;
/// let images = ImageSource::memory(vec![Rgb32FImage::new(40, 30), Rgb32FImage::new(30, 40)]);
/// let cfg = CosPlaceTrainerConfig { image_size: 32, ..CosPlaceTrainerConfig::default() };
/// let d = training_view_descriptors(&net, &images, &cfg, 4, &device)?;
/// assert_eq!(d.dims(), [2, 8]);
/// # Ok::<(), metric_learning::MetricError>(())
/// ```
pub fn training_view_descriptors(
    net: &CosPlaceNet,
    images: &ImageSource,
    cfg: &CosPlaceTrainerConfig,
    batch_size: usize,
    device: &Device,
) -> crate::Result<Tensor<2>> {
    if batch_size == 0 || cfg.image_size == 0 {
        return Err(MetricError::config(
            "training_view_descriptors",
            "batch_size and image_size must be positive",
        ));
    }
    if images.is_empty() {
        return Err(MetricError::Empty {
            what: "images to describe",
        });
    }
    let net = net.clone().valid();
    let device = device.clone().inner();
    let hooks = AugmentHooks::default();
    let mut rng = derived(0, 0);
    let mut out = Vec::new();
    let mut start = 0;
    while start < images.len() {
        let end = (start + batch_size).min(images.len());
        let xs = (start..end)
            .map(|i| {
                prepare(
                    images,
                    i,
                    ImageRole::Anchor,
                    &hooks,
                    cfg.image_size,
                    Some(cfg.image_size),
                    cfg.normalization,
                    &mut rng,
                    &device,
                )
            })
            .collect::<crate::Result<Vec<_>>>()?;
        out.push(net.forward(Tensor::cat(xs, 0)));
        start = end;
    }
    Ok(Tensor::cat(out, 0))
}

impl<'a> CosPlaceTrainer<'a> {
    /// A trainer over `groups` (class samplers of the CosPlace groups used, e.g. from
    /// [`ClassSampler::from_cosplace_group`]) of `images`. `inherited`, `[images.len(), dim]`,
    /// holds the day model's descriptor of every image (NocPlace IKT); training images are the
    /// night versions, passed through `hooks` as anchors.
    ///
    /// # Errors
    /// [`MetricError::Empty`] without groups, [`MetricError::Config`] for a batch larger than a
    /// group's class count or zero sizes, [`MetricError::Shape`] for inherited descriptors that
    /// do not cover every image.
    pub fn new(
        cfg: CosPlaceTrainerConfig,
        images: &'a ImageSource,
        groups: Vec<ClassSampler>,
        inherited: Option<Tensor<2>>,
        hooks: AugmentHooks,
        device: &Device,
    ) -> crate::Result<Self> {
        if groups.is_empty() {
            return Err(MetricError::Empty {
                what: "CosPlace group list",
            });
        }
        if cfg.batch_size == 0 || cfg.image_size == 0 || cfg.iterations_per_epoch == 0 {
            return Err(MetricError::config(
                "CosPlace trainer",
                "batch_size, image_size and iterations must be positive",
            ));
        }
        if let Some(m) = cfg.random_resized_crop
            && !(m > 0.0 && m <= 1.0)
        {
            return Err(MetricError::config(
                "random_resized_crop",
                format!("the smallest area fraction must be in (0, 1], got {m}"),
            ));
        }
        if let Some(g) = groups.iter().find(|g| g.num_classes() < cfg.batch_size) {
            return Err(MetricError::config(
                "batch_size",
                format!(
                    "{} classes per batch but a group has only {}",
                    cfg.batch_size,
                    g.num_classes()
                ),
            ));
        }
        let device = device.clone().autodiff();
        let inherited = match inherited {
            Some(t) => {
                if t.dims()[0] != images.len() {
                    return Err(MetricError::shape(
                        "inherited descriptors",
                        format!("{} rows", images.len()),
                        t.dims()[0],
                    ));
                }
                Some(t.to_device(&device.clone().inner()))
            }
            None => None,
        };
        Ok(Self {
            cfg,
            images,
            groups,
            inherited,
            hooks,
            parallel: DataParallel::single(&device),
            device,
        })
    }

    /// Trains data-parallel on `parallel`'s devices (its main device replaces the trainer's):
    /// each batch is split across the devices, each shard's mean loss weighted by its share of
    /// the batch, and the summed gradients applied on the main device
    /// ([`nightvision_core::parallel`]). With a trunk whose BatchNorm layers normalise with
    /// batch statistics, each device normalises its own shard (as PyTorch's DDP without
    /// `SyncBatchNorm`), and only the main device's running statistics are kept.
    pub fn with_data_parallel(mut self, parallel: DataParallel) -> Self {
        self.device = parallel.main().clone();
        self.parallel = parallel;
        self
    }

    /// Trains (resuming from `ckpt` if it has a checkpoint), checkpointing every epoch.
    ///
    /// # Errors
    /// [`MetricError::Shape`] when inherited descriptors differ in size from the network's,
    /// [`MetricError::NonFinite`] for a NaN loss, I/O and checkpoint errors.
    pub fn train(
        &self,
        net: CosPlaceNet,
        ckpt: Option<&CheckpointDir>,
    ) -> crate::Result<TrainedCosPlace> {
        self.run(net, ckpt, None)
    }

    /// As [`train`](Self::train), with model selection: the returned network is the one of the
    /// best-scoring epoch (`log.best`), as CosPlace and NocPlace keep the model of the best R@1
    /// on their validation queries (docs/PAPERS.md B.5); the classifiers are the last epoch's.
    ///
    /// # Errors
    /// As [`train`](Self::train); [`MetricError::Selection`] for a score that fails or is not
    /// finite.
    pub fn train_selecting(
        &self,
        net: CosPlaceNet,
        ckpt: Option<&CheckpointDir>,
        selection: &mut Selection<'_, CosPlaceNet>,
    ) -> crate::Result<TrainedCosPlace> {
        self.run(net, ckpt, Some(selection))
    }

    fn run(
        &self,
        net: CosPlaceNet,
        ckpt: Option<&CheckpointDir>,
        mut selection: Option<&mut Selection<'_, CosPlaceNet>>,
    ) -> crate::Result<TrainedCosPlace> {
        let cfg = &self.cfg;
        let dim = net.dim();
        if let Some(inh) = &self.inherited
            && inh.dims()[1] != dim
        {
            return Err(MetricError::shape(
                "inherited descriptor dimension",
                dim,
                inh.dims()[1],
            ));
        }
        let mut net = nightvision_core::on_device(net, &self.device).train();
        let mut classifiers = self
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                MarginCosineProductConfig::new(dim, g.num_classes())
                    .with_s(cfg.s)
                    .with_m(cfg.m)
                    .init_with_rng(
                        &self.device,
                        &mut derived(cfg.seed ^ 0xc1a5_5000_0000_0000, i as u64),
                    )
            })
            .collect::<crate::Result<Vec<_>>>()?;
        let adam = || AdamConfig::new().with_epsilon(1e-8);
        let mut model_optim: ModuleOptimizer = adam().init();
        let mut cls_optims: Vec<ModuleOptimizer> =
            self.groups.iter().map(|_| adam().init()).collect();
        let mut log = TrainLog {
            seed: cfg.seed,
            epochs: Vec::new(),
            best: None,
        };
        let mut best: Option<Vec<u8>> = None;
        let mut start = 0;
        let mut last_ckpt = None;
        if let Some(dir) = ckpt
            && let Some((_, state, path)) = dir.latest::<CosPlaceState>()?
        {
            if state.log.seed != cfg.seed {
                return Err(MetricError::Resume {
                    path,
                    reason: format!("seed {} ≠ configured {}", state.log.seed, cfg.seed),
                });
            }
            net = load_module(net, path.join("model.bpk"))?;
            model_optim = load_optimizer(model_optim, path.join("optim.bpk"))?;
            for (g, (c, o)) in classifiers
                .iter_mut()
                .zip(cls_optims.iter_mut())
                .enumerate()
            {
                *c = load_module(c.clone(), path.join(format!("classifier-{g}.bpk")))?;
                *o = load_optimizer(o.clone(), path.join(format!("classifier-optim-{g}.bpk")))?;
            }
            best = load_best(&state.log, &path)?;
            start = state.epoch;
            log = state.log;
            last_ckpt = Some(path);
            // The checkpoint's log is the run's: a run killed between the checkpoint and
            // `log.json` left the previous log behind.
            save_json(dir.root().join("log.json"), &log)?;
        }
        let loss_fn = cfg.loss.init();
        for epoch in start..cfg.epochs {
            let t0 = Instant::now();
            let g = epoch % self.groups.len();
            let mut rng = derived(cfg.seed, epoch as u64);
            let bar = progress_bar(
                cfg.iterations_per_epoch as u64,
                &format!("epoch {epoch}"),
                cfg.progress,
            );
            let mut step_losses = Vec::with_capacity(cfg.iterations_per_epoch);
            for step in 0..cfg.iterations_per_epoch {
                let batch = self.groups[g].sample(cfg.batch_size, &mut rng)?;
                // One stream per image, drawn in batch order (independent of the device split).
                let seeds: Vec<u64> = batch.iter().map(|_| rng.random()).collect();
                let model = (net.clone(), classifiers[g].clone());
                let (mut grads, values) =
                    self.parallel.gradients(&model, batch.len(), |shard| {
                        let (net, classifier) = shard.model;
                        let items = shard.items.clone();
                        let xs = batch[items.clone()]
                            .iter()
                            .zip(&seeds[items.clone()])
                            .map(|(&(_, i), &seed)| {
                                let x = prepare(
                                    self.images,
                                    i,
                                    ImageRole::Anchor,
                                    &self.hooks,
                                    cfg.image_size,
                                    Some(cfg.image_size),
                                    cfg.normalization,
                                    &mut derived(seed, 0),
                                    shard.device,
                                )?;
                                // (the crop commutes with the per-channel normalisation)
                                Ok(match cfg.random_resized_crop {
                                    Some(min_scale) => {
                                        let s = cfg.image_size;
                                        let (t, l, h, w) = random_resized_crop_box(
                                            s,
                                            s,
                                            min_scale,
                                            &mut derived(seed, 1),
                                        );
                                        resize_bilinear(
                                            x.slice([0..1, 0..3, t..t + h, l..l + w]),
                                            [s, s],
                                        )
                                    }
                                    None => x,
                                })
                            })
                            .collect::<crate::Result<Vec<_>>>()?;
                        let labels: Vec<usize> =
                            batch[items.clone()].iter().map(|&(c, _)| c).collect();
                        let desc = net.forward(Tensor::cat(xs, 0));
                        let inherited = self.inherited.as_ref().map(|t| {
                            let idx: Vec<i64> = batch[items.clone()]
                                .iter()
                                .map(|&(_, i)| i as i64)
                                .collect();
                            let n = idx.len();
                            t.clone()
                                .select(
                                    0,
                                    Tensor::<1, Int>::from_data(
                                        TensorData::new(idx, [n]),
                                        &t.device(),
                                    ),
                                )
                                .to_device(shard.device)
                        });
                        let out = loss_fn.forward(classifier, desc, inherited, &labels)?;
                        // The loss is a mean over the batch: a shard's mean counts by its share.
                        let total = if items.len() == batch.len() {
                            out.total
                        } else {
                            out.total.mul_scalar(shard.weight)
                        };
                        let value: f32 = total.clone().into_scalar();
                        check_finite(value, "loss", epoch, step, &last_ckpt)?;
                        let grads = GradientsParams::from_grads(total.backward(), shard.model);
                        Ok::<_, MetricError>((grads, value))
                    })?;
                let value: f32 = values.iter().sum();
                check_finite(value, "loss", epoch, step, &last_ckpt)?;
                let gm = take_grads(&mut grads, &net);
                let gc = take_grads(&mut grads, &classifiers[g]);
                net = model_optim.step(cfg.lr, net, gm);
                classifiers[g] = cls_optims[g].step(cfg.classifiers_lr, classifiers[g].clone(), gc);
                step_losses.push(value);
                bar.inc(1);
            }
            bar.finish_and_clear();
            net = net.train(); // sync BatchNorm running statistics before recording them
            let mean = step_losses.iter().map(|&v| f64::from(v)).sum::<f64>()
                / step_losses.len().max(1) as f64;
            log.epochs.push(EpochLog {
                epoch,
                lr: cfg.lr,
                step_losses,
                mean_loss: mean as f32,
                avg_neg_distance: None,
                gem_p: Some(net.aggregation.gem.p_value()),
                seconds: t0.elapsed().as_secs_f64(),
                val_score: None,
            });
            select_epoch(
                selection.as_deref_mut(),
                &net,
                epoch,
                cfg.epochs,
                &mut log,
                &mut best,
            )?;
            if let Some(dir) = ckpt {
                let mut parts: Vec<(String, Vec<u8>)> = vec![
                    ("model.bpk".into(), module_to_bytes(&net)?),
                    ("optim.bpk".into(), optimizer_to_bytes(&model_optim)?),
                ];
                if let Some(b) = &best {
                    parts.push(("best-model.bpk".into(), b.clone()));
                }
                for (i, (c, o)) in classifiers.iter().zip(&cls_optims).enumerate() {
                    parts.push((format!("classifier-{i}.bpk"), module_to_bytes(c)?));
                    parts.push((format!("classifier-optim-{i}.bpk"), optimizer_to_bytes(o)?));
                }
                let refs: Vec<(&str, Vec<u8>)> =
                    parts.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
                last_ckpt = Some(dir.save(
                    epoch as u64 + 1,
                    &refs,
                    &CosPlaceState {
                        epoch: epoch + 1,
                        log: log.clone(),
                    },
                )?);
                save_json(dir.root().join("log.json"), &log)?;
            }
        }
        let net = selected(net, selection.is_some(), best, ckpt)?;
        Ok(TrainedCosPlace {
            net,
            classifiers,
            log,
        })
    }
}
