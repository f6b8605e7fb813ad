//! Similarity Min-Max (Luo et al., ICCV 2023; docs/PAPERS.md C) for visual place recognition on an
//! exported world — zero-shot: no night image is used for training.
//!
//! 1. **Minimise** (C.1, C.2): the darkening network D learns to make day images of the training
//!    places (`gan/trainA`) as dissimilar as possible, under a frozen feature extractor F
//!    (MobileNetV2 with the real ImageNet weights, last feature map; the paper uses ResNet-101
//!    `layer4`), from their darkened versions, kept realistic by the exposure, colour, loose-TV
//!    and flexibility regularisers (`OUT/darkening`, losses in `OUT/darkening/log.json`, every
//!    term for the initial and the trained D on a fixed probe of training crops in
//!    `OUT/darkening/probe.json`, the output mean per requested exposure on held-out queries in
//!    `OUT/darkening/exposure-response.json`).
//! 2. **Maximise** (C.3, `train_night.py`): D is frozen; MobileNetV2-GeM is fine-tuned with the
//!    cirtorch contrastive loss (margin 0.85) on tuples whose darkened query copy is an extra
//!    positive (random exposure U(0, 0.2) + patch and pixel noise). A baseline is fine-tuned the
//!    same way without the copy.
//! 3. **Evaluation**: Recall@1/5/10 at 25 m of day, sunset and night queries against the day
//!    database; `darkened.png` shows day images and three dark views of each.
//!
//! The paper's schedule (5000 D iterations of batch 8 at 224², 5 fine-tuning epochs of 22 000
//! tuples at 362 px with ResNet-101) is cut to a few CPU minutes; the mechanism is the same.
//!
//! ```
//! use nightvision::pipelines::similarity_minmax::SimilarityMinMaxConfig;
//! let cfg = SimilarityMinMaxConfig::new().with_d_lr(1e-3).with_d_only(true);
//! assert_eq!(cfg.d_iterations, 100);
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::{PipelineReport, finetune_on_world, invalid, prepare};
use crate::backbones::{MobileNetV2, MobileNetV2Config};
use crate::core::checkpoint::save_json;
use crate::core::rng::derived;
use crate::darkening::train::{DarkeningTrainer, DarkeningTrainerConfig, frozen};
use crate::darkening::{DarkView, DarkViewConfig, DarkeningNet, DarkeningNetConfig};
use crate::gan::data::{ScaleCrop, image_files};
use crate::metric::data::{AugmentHooks, Augmentation, MiningConfig};
use crate::metric::multiscale::ExtractConfig;
use crate::metric::train::{TupleLoss, TupleTrainerConfig};
use crate::metric::{CirNet, ContrastiveLossConfig};
use crate::pipeline::{self, Darkening};
use crate::quality::TranslationBench;

/// The baseline's label: fine-tuned the same way, without the darkened query copy.
pub const BASELINE: &str = "fine-tuned (no darkening)";

/// The exposures at which D's output luminance is probed (`darkening/exposure-response.json`).
pub const PROBE_EXPOSURES: [f32; 5] = [0.05, 0.1, 0.2, 0.3, 0.4];

/// Every knob of the Similarity Min-Max pipeline; the defaults are the `similarity_minmax`
/// example's.
#[derive(Config, Debug, clap::Args)]
pub struct SimilarityMinMaxConfig {
    /// The exported world to run on (`synthetic_places --out`, or any folder in its format);
    /// without it the default world is rendered into OUT/world.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Output folder: checkpoints of every stage (resumed from), reports, pictures.
    #[arg(long, default_value = "out/similarity_minmax")]
    #[config(default = "PathBuf::from(\"out/similarity_minmax\")")]
    pub out: PathBuf,
    /// Darkening-network steps (learning rate ×0.1 after two thirds).
    #[arg(long, default_value_t = 100)]
    #[config(default = 100)]
    pub d_iterations: u64,
    /// Darkening-network batch size.
    #[arg(long, default_value_t = 4)]
    #[config(default = 4)]
    pub d_batch: usize,
    /// Darkening-network Adam learning rate.
    #[arg(long, default_value_t = 1e-4)]
    #[config(default = 1e-4)]
    pub d_lr: f64,
    /// A trained darkening network to use instead of training one: a `.safetensors` file
    /// written by a run of this pipeline (`OUT/darkening/darkening.safetensors`) or shipped in
    /// `models/`, or a darkening checkpoint folder. Without it, the network shipped in `models/`
    /// is used where there is one (the run logs that it is), else D is trained.
    #[arg(long)]
    pub darkening_weights: Option<PathBuf>,
    /// Train D with the `--d-*` settings even where `models/` ships one.
    #[arg(long)]
    #[config(default = false)]
    pub train_darkening: bool,
    /// Stop after D, its exposure response and its translation quality.
    #[arg(long)]
    #[config(default = false)]
    pub d_only: bool,
    /// Darkening-network training crop (px).
    #[arg(long, default_value_t = 128)]
    #[config(default = 128)]
    pub crop: usize,
    /// Fine-tuning epochs.
    #[arg(long, default_value_t = 2)]
    #[config(default = 2)]
    pub epochs: usize,
    /// Model selection of every fine-tuning: the mean contrastive loss on tuples of the world's
    /// cirtorch `val` split every N epochs and after the last, the lowest kept — SMM's
    /// `train_night.py` is cirtorch's `train.py`, which validates every epoch and keeps
    /// `model_best` by that loss unless `--no-val`; 0 keeps the last epoch.
    #[arg(long, default_value_t = 1)]
    #[config(default = 1)]
    pub val_every: usize,
    /// Tuples per fine-tuning epoch.
    #[arg(long, default_value_t = 40)]
    #[config(default = 40)]
    pub tuples: usize,
    /// Fine-tuning Adam learning rate.
    #[arg(long, default_value_t = 1e-5)]
    #[config(default = 1e-5)]
    pub lr: f64,
    /// Fine-tuning image size (longer side, px).
    #[arg(long, default_value_t = 160)]
    #[config(default = 160)]
    pub image_size: usize,
    /// Also evaluate with the paper's retrieval protocol: multi-scale descriptors, Lw whitening
    /// learned from same-place pairs of training images, mAP on the Tokyo-style set
    /// (`paper-protocol.{json,md}`, [`crate::protocol`]); `--no-paper-protocol` skips it.
    #[arg(long = "no-paper-protocol", action = clap::ArgAction::SetFalse)]
    #[config(default = true)]
    pub paper_protocol: bool,
    /// Fine-tune the baseline (same schedule, no darkened copy) too (`--no-baseline` skips it).
    #[arg(long = "no-baseline", action = clap::ArgAction::SetFalse)]
    #[config(default = true)]
    pub baseline: bool,
    /// Start every stage over: remove the checkpoints in OUT (otherwise a run resumes, and
    /// refuses a folder trained with other settings, naming them).
    #[arg(long)]
    #[config(default = false)]
    pub restart: bool,
    /// The mechanism check of CI, in about three minutes: 20 tuples, one epoch (D: the shipped one, as by default), on the small world of
    /// [`crate::pipeline::quick_world_config`] (rendered into OUT/world-quick unless `--data` is
    /// given). The schedule is too short to learn from: its numbers are not results. It cannot be
    /// combined with the flags it sets.
    #[arg(long, conflicts_with_all = ["tuples", "epochs"])]
    #[config(default = false)]
    pub quick: bool,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 0)]
    #[config(default = 0)]
    pub seed: u64,
    /// Data-parallel devices of the training stages that take one optimiser step at a time
    /// (the darkening stage and the fine-tuning): the first N devices of the run's kind (GPUs), or N replicas of the CPU
    /// device, which runs the multi-device code but is not faster there (docs/SCALING.md).
    #[arg(long, default_value_t = 1)]
    #[config(default = 1)]
    pub devices: usize,
}

impl SimilarityMinMaxConfig {
    /// The configuration [`run`] follows: this one, or with [`SimilarityMinMaxConfig::quick`] its quick
    /// schedule.
    ///
    /// ```
    /// use nightvision::pipelines::similarity_minmax::SimilarityMinMaxConfig;
    ///
    /// let cfg = SimilarityMinMaxConfig::new().with_quick(true).effective();
    /// assert_eq!((cfg.tuples, cfg.epochs), (20, 1));
    /// ```
    pub fn effective(&self) -> Self {
        if !self.quick {
            return self.clone();
        }
        Self {
            tuples: 20,
            epochs: 1,
            ..self.clone()
        }
    }
}

/// Stage 1 (minimise): trains (or resumes) the darkening network D into `OUT/darkening` on the
/// day images of the world's training places (`data/gan/trainA`) against a frozen MobileNetV2,
/// and returns it in inference mode. The folder's `config.json` holds D's configuration and the
/// stage's settings, so that [`DarkeningNet::load`] rebuilds it from the folder alone and a
/// resume with other settings is refused (`restart` starts over).
///
/// # Errors
/// Missing weights, an invalid setting or stored configuration, an unreadable training image
/// (naming it), training and I/O errors.
pub fn train_darkening(
    cfg: &SimilarityMinMaxConfig,
    data: &Path,
    device: &Device,
) -> pipeline::Result<DarkeningNet> {
    if cfg.d_iterations == 0 || cfg.d_batch == 0 {
        return Err(invalid("d_iterations / d_batch", "must be positive".into()));
    }
    let train_device = device.clone().autodiff();
    let weights = pipeline::real_weights(
        "the darkening stage's feature extractor",
        "weights/mobilenet_v2_imagenet.safetensors",
    )?;
    let mut trunk = MobileNetV2Config::new().init(&train_device);
    trunk.load_torchvision(&weights)?;
    let trunk = frozen(trunk);
    let d_cfg = DarkeningTrainerConfig {
        iterations: cfg.d_iterations,
        checkpoint_every: 50,
        lr: cfg.d_lr,
        milestones: vec![cfg.d_iterations * 2 / 3],
        seed: cfg.seed,
        ..DarkeningTrainerConfig::new()
    };
    let network = DarkeningNetConfig::new();
    let stage = serde_json::json!({
        "network": network,
        "stage": {
            "method": "similarity min-max stage 1 (MobileNetV2 ImageNet features), Adam, lr x0.1 at 2/3",
            "iterations": cfg.d_iterations,
            "batch": cfg.d_batch,
            "crop": cfg.crop,
            "lr": cfg.d_lr,
            "seed": cfg.seed,
        },
    });
    let ckpt = pipeline::stage_dir(&cfg.out.join("darkening"), &stage, cfg.restart)?;
    // D's initial weights from the run's seed: two runs (or a killed and resumed one) start alike.
    let init = network.init_with_rng(device, &mut derived(cfg.seed ^ 0xda4c_1a17, 0));
    // The frozen trunk as D's feature extractor, one per data-parallel device.
    let parallel = pipeline::data_parallel(device, cfg.devices)?;
    let extractor_of = |t: MobileNetV2| move |x: Tensor<4>| t.forward(x);
    let replicas = parallel.devices()[1..]
        .iter()
        .map(|d| extractor_of(trunk.clone().fork(d)))
        .collect::<Vec<_>>();
    let probe_extractor = extractor_of(trunk.clone());
    let extractor = extractor_of(trunk);
    let trainer = DarkeningTrainer::new(d_cfg.clone(), init.clone(), extractor, device)?
        .with_data_parallel(parallel, replicas)?;
    // day images of the training places only (the GAN's domain A): no test place is seen
    let day = image_files(data.join("gan/trainA"))?;
    let crop = ScaleCrop {
        size: cfg.crop,
        min_scale: 0.8,
    };
    let probe = DarkeningProbe::new(&day, &crop, &d_cfg, cfg.seed, &train_device)?;
    let start = probe.loss(&d_cfg, &init, &probe_extractor)?;
    let mut batch_error = None;
    let t = Instant::now();
    let trained = trainer.train(
        |step| {
            let mut rng = derived(cfg.seed ^ 0xda4c, step);
            let mut xs = Vec::with_capacity(cfg.d_batch);
            for _ in 0..cfg.d_batch {
                let i = rand::Rng::random_range(&mut rng, 0..day.len());
                match day_crop(&day[i], &crop, &mut rng, device) {
                    Ok(x) => xs.push(x),
                    Err(e) => {
                        batch_error = Some(e);
                        return None;
                    }
                }
            }
            Some(Tensor::cat(xs, 0))
        },
        Some(&ckpt),
        |_| {},
    )?;
    let logs = &trained.log;
    if let Some(e) = batch_error {
        return Err(e.into());
    }
    save_json(ckpt.root().join("log.json"), &logs)?;
    let end = probe.loss(&d_cfg, &trained.net, &probe_extractor)?;
    log::info!(
        "darkening D, fixed probe of {} training crops: L_sim {:.3} → {:.3} (ratio {:.3}), L_exp {:.4} → {:.4}, L_col {:.4} → {:.4}",
        probe.exposures.len(),
        start.sim,
        end.sim,
        end.sim / start.sim,
        start.exposure,
        end.exposure,
        start.colour,
        end.colour
    );
    save_json(
        ckpt.root().join(PROBE_FILE),
        &serde_json::json!({
            "what": "L_D of the initial and the trained D on a fixed probe: training-place day crops at exposures evenly spaced over the training range",
            "images": probe.exposures.len(),
            "crop": cfg.crop,
            "exposures": probe.exposures,
            "start": start,
            "end": end,
            "sim_ratio": end.sim / start.sim,
        }),
    )?;
    let net = trained.net.valid();
    // the network alone, with its configuration and the stage's settings in the header: what
    // `--darkening-weights` and `models/` take
    net.save_safetensors(
        &network,
        ckpt.root().join(DARKENING_FILE),
        &[("stage", &stage.to_string())],
    )?;
    if let (Some(a), Some(b)) = (logs.first(), logs.last()) {
        log::info!(
            "darkening D: {} steps in {:.0} s; L_sim {:.3} → {:.3}, total {:.3} → {:.3}",
            logs.len(),
            t.elapsed().as_secs_f64(),
            a.losses.sim,
            b.losses.sim,
            a.losses.total,
            b.losses.total
        );
    }
    Ok(net)
}

/// A `crop` of the day image at `path`, drawn with `rng`, for D's training batches and its
/// probe.
fn day_crop<R: rand::Rng + ?Sized>(
    path: &Path,
    crop: &ScaleCrop,
    rng: &mut R,
    device: &Device,
) -> Result<Tensor<4>, crate::core::CoreError> {
    let img = crate::core::image::load_rgb(path)?;
    crop.apply(&img, rng, device)
        .map_err(|e| crate::core::CoreError::InvalidArgument {
            name: "crop",
            reason: e.to_string(),
        })
}

/// The file a darkening stage writes its fixed-probe losses to (`OUT/darkening/probe.json`):
/// every term of `L_D` for the initial and the trained D on the same [`PROBE_IMAGES`]
/// training-place crops at exposures evenly spaced over the training range, and the ratio of
/// `L_sim` end / start.
pub const PROBE_FILE: &str = "probe.json";

/// The number of crops of D's fixed probe ([`PROBE_FILE`]).
pub const PROBE_IMAGES: usize = 32;

/// D's fixed probe: crops of training-place day images, one per [`PROBE_IMAGES`]-th of the list
/// (seeded crops), and exposures `min + (max − min)(i + ½)/n` over the trainer's range.
struct DarkeningProbe {
    images: Tensor<4>,
    exposures: Vec<f32>,
}

impl DarkeningProbe {
    fn new(
        day: &[PathBuf],
        crop: &ScaleCrop,
        d_cfg: &DarkeningTrainerConfig,
        seed: u64,
        device: &Device,
    ) -> pipeline::Result<Self> {
        let n = PROBE_IMAGES.min(day.len());
        let mut rng = derived(seed ^ 0x009e_0be5, 0);
        let mut xs = Vec::with_capacity(n);
        for i in 0..n {
            xs.push(day_crop(&day[i * day.len() / n], crop, &mut rng, device)?);
        }
        let (lo, hi) = (d_cfg.min_exposure, d_cfg.max_exposure);
        let exposures = (0..n)
            .map(|i| (lo + (hi - lo) * (i as f64 + 0.5) / n as f64) as f32)
            .collect();
        Ok(Self {
            images: Tensor::cat(xs, 0),
            exposures,
        })
    }

    fn loss<F: crate::darkening::train::FeatureExtractor>(
        &self,
        d_cfg: &DarkeningTrainerConfig,
        net: &DarkeningNet,
        extractor: &F,
    ) -> pipeline::Result<crate::darkening::DarkeningLossValues> {
        Ok(crate::darkening::train::evaluate_loss(
            d_cfg,
            net,
            extractor,
            self.images.clone(),
            &self.exposures,
        )?)
    }
}

/// The file a darkening stage writes its network to (`OUT/darkening/darkening.safetensors`):
/// the reference's `state_dict` keys, the [`DarkeningNetConfig`] and the stage's settings in
/// the header ([`DarkeningNet::save_safetensors`]).
pub const DARKENING_FILE: &str = "darkening.safetensors";

/// The `kind` of a shipped darkening network in `models/manifest.json`.
pub const SHIPPED_DARKENING: &str = "darkening";

/// The darkening settings no run can use, refused before any work: both a weights file and
/// `train_darkening`, a weights file that does not exist, a zero step count or batch.
pub(crate) fn check_darkening_settings(cfg: &SimilarityMinMaxConfig) -> pipeline::Result<()> {
    if cfg.d_iterations == 0 || cfg.d_batch == 0 {
        return Err(invalid("d_iterations / d_batch", "must be positive".into()));
    }
    if cfg.darkening_weights.is_some() && cfg.train_darkening {
        return Err(invalid(
            "darkening_weights / train_darkening",
            "give one: a trained network to use, or training from scratch".into(),
        ));
    }
    match &cfg.darkening_weights {
        Some(path) if !path.exists() => Err(invalid(
            "darkening_weights",
            format!("{} does not exist", path.display()),
        )),
        _ => Ok(()),
    }
}

/// The pipeline's darkening network D and where it came from: `--darkening-weights`, else the
/// network shipped in `models_dir` (unless `--train-darkening`), else trained by
/// [`train_darkening`]. The second value records the source for the configuration of every
/// stage that uses D (`{"file", "sha256"}` or `{"trained": settings}`), so that a stage
/// trained with another D is not resumed.
///
/// # Errors
/// Both `darkening_weights` and `train_darkening` set; a weights file that does not exist, does
/// not load strictly, or (shipped) does not match its recorded sha256; training errors.
pub fn darkening_network(
    cfg: &SimilarityMinMaxConfig,
    data: &Path,
    models_dir: &Path,
    device: &Device,
) -> pipeline::Result<(DarkeningNet, serde_json::Value)> {
    check_darkening_settings(cfg)?;
    // the weights file and, for the shipped one, its sha256 already checked against the manifest
    let (path, known_sha256) = match &cfg.darkening_weights {
        Some(path) => (path.clone(), None),
        None if cfg.train_darkening => return trained_darkening(cfg, data, device),
        None => match pipeline::shipped_model(models_dir, SHIPPED_DARKENING)? {
            Some((path, sha256)) => {
                log::info!(
                    "darkening network D: the shipped weights {} (models/README.md says how they were trained; --train-darkening trains D instead)",
                    path.display()
                );
                (path, Some(sha256))
            }
            None => return trained_darkening(cfg, data, device),
        },
    };
    let net = DarkeningNet::load(&path, device)?;
    let sha256 = match known_sha256 {
        Some(sha256) => sha256,
        None if path.is_file() => {
            let bytes = std::fs::read(&path).map_err(|e| crate::core::CoreError::io(&path, e))?;
            pipeline::sha256_hex(&bytes)
        }
        // a checkpoint folder: the hash of the weights it holds
        None => pipeline::sha256_hex(&crate::core::checkpoint::module_to_bytes(&net)?),
    };
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    Ok((net, serde_json::json!({"file": name, "sha256": sha256})))
}

/// D trained by [`train_darkening`], with its settings as the source record.
fn trained_darkening(
    cfg: &SimilarityMinMaxConfig,
    data: &Path,
    device: &Device,
) -> pipeline::Result<(DarkeningNet, serde_json::Value)> {
    let net = train_darkening(cfg, data, device)?;
    let source = serde_json::json!({"trained": {
        "iterations": cfg.d_iterations,
        "batch": cfg.d_batch,
        "crop": cfg.crop,
        "lr": cfg.d_lr,
        "seed": cfg.seed,
    }});
    Ok((net, source))
}

/// Stage 2 (maximise): fine-tunes MobileNetV2-GeM with cirtorch tuples of the world `data`
/// (contrastive, margin 0.85) into `OUT/<dir>` with the augmentation `hooks` (named
/// `augmentation` in the stage's `config.json`, with `darkening`, the source of the D the hooks
/// use, from [`darkening_network`]), and returns it in inference mode; [`CirNet::load`] rebuilds
/// it from the folder.
///
/// # Errors
/// Missing weights, a world without the tuple pickle, training and I/O errors.
pub fn finetune(
    cfg: &SimilarityMinMaxConfig,
    data: &Path,
    hooks: AugmentHooks,
    augmentation: &str,
    darkening: Option<&serde_json::Value>,
    dir: &str,
    device: &Device,
) -> pipeline::Result<CirNet> {
    let trainer = TupleTrainerConfig {
        epochs: cfg.epochs,
        lr: cfg.lr,
        image_size: cfg.image_size,
        loss: TupleLoss::Contrastive(ContrastiveLossConfig::new().with_margin(0.85)),
        mining: MiningConfig {
            neg_num: 5,
            query_size: cfg.tuples,
            pool_size: 400,
        },
        seed: cfg.seed,
        progress: true,
        ..TupleTrainerConfig::default()
    };
    let mut stage = serde_json::json!({
        "method": "contrastive tuples (margin 0.85), Adam",
        "augmentation": augmentation,
        "epochs": cfg.epochs,
        "tuples": cfg.tuples,
        "lr": cfg.lr,
        "image_size": cfg.image_size,
        "seed": cfg.seed,
    });
    if let Some(d) = darkening {
        stage["darkening"] = d.clone();
    }
    finetune_on_world(
        data,
        hooks,
        trainer,
        stage,
        &cfg.out.join(dir),
        cfg.restart,
        &pipeline::data_parallel(device, cfg.devices)?,
        (cfg.val_every > 0).then_some(cfg.val_every),
    )
}

/// Runs the pipeline: trains (or resumes) every stage into `cfg.out`, evaluates, writes
/// `report.{json,md}`, `recall.png`, `translation-quality.{json,md}`, `darkened.png`,
/// `held-out.png`, `translated/` and the descriptors, and returns the report.
///
/// # Errors
/// Missing real weights, an invalid setting, a world that is not in the exported format,
/// training, checkpoint and I/O errors (an unreadable training image names its file).
pub fn run(cfg: &SimilarityMinMaxConfig, device: &Device) -> pipeline::Result<PipelineReport> {
    let t0 = Instant::now();
    let cfg = &cfg.effective();
    check_darkening_settings(cfg)?;
    let out = cfg.out.as_path();
    let data = prepare(cfg.data.as_deref(), out, cfg.quick)?;

    // 1. minimise: train D against a frozen MobileNetV2
    let (d_net, d_source) = darkening_network(cfg, &data, Path::new(pipeline::MODELS_DIR), device)?;
    // exposure response on the held-out day queries: D's output luminance per requested exposure
    let probe = image_files(data.join("vpr/images/test/queries"))?;
    let probe = pipeline::load_square(&probe[..probe.len().min(16)], 128, device)?;
    let mut response = Vec::new();
    for e in PROBE_EXPOSURES {
        let [b, ..] = probe.dims();
        let exposure = Tensor::<4>::full([b, 1, 1, 1], e, device);
        let y = d_net
            .try_forward(probe.clone(), exposure)?
            .image
            .clamp(0.0, 1.0);
        let lum: f32 = y.mean().into_scalar();
        response.push(serde_json::json!({"exposure": e, "mean_output": lum}));
    }
    log::info!(
        "D exposure response (held-out day queries, channel mean): {}",
        serde_json::Value::Array(response.clone())
    );
    save_json(out.join("darkening/exposure-response.json"), &response)?;
    let view = DarkView::new(d_net, DarkViewConfig::vpr())?;
    let darkening = Darkening::new(view, device);

    // picture: day | three dark views
    let day = image_files(data.join("gan/trainA"))?;
    let sample_paths: Vec<PathBuf> = day
        .iter()
        .step_by(day.len().div_ceil(6).max(1))
        .cloned()
        .collect();
    let sample = pipeline::load_square(&sample_paths, 128, device)?;
    let mut rows = vec![sample.clone()];
    let mut rng = derived(cfg.seed, 7);
    for _ in 0..3 {
        rows.push(darkening.augment(sample.clone(), &mut rng)?);
    }
    pipeline::image_grid(&rows, out.join("darkened.png"))?;

    // quality of one seeded dark view per held-out day query (OUT/translated/, OUT/held-out.png)
    let bench = if cfg.quick {
        TranslationBench::quick(&data, device)?
    } else {
        TranslationBench::new(&data, device)?
    };
    let mut quality_rows = bench.reference_rows(cfg.seed)?;
    quality_rows.push(
        bench.run_generator("darkening network D (dark view)", out, |i, x| {
            let mut rng = derived(cfg.seed, 1000 + i as u64);
            Ok(darkening.augment(x, &mut rng)?)
        })?,
    );
    let quality = bench.report(quality_rows)?;
    log::info!("translation quality:\n{}", quality.to_markdown());
    let mut report = PipelineReport::generator_stage(quality, out, &["darkened.png", "darkening/"]);
    if cfg.d_only {
        return report.finish_after_generator(t0);
    }

    // 2. maximise: fine-tune with the darkened query copy as an extra positive
    let eval_cfg = ExtractConfig {
        max_side: 320,
        ..ExtractConfig::default()
    };
    let base = pipeline::mobilenet_v2_gem(device)?;
    let mut eval = super::evaluator(&data, out, cfg.paper_protocol)?;
    eval.evaluate(&base, "off-the-shelf", &eval_cfg, device)?;
    if cfg.baseline {
        let net = finetune(
            cfg,
            &data,
            AugmentHooks::default(),
            "none",
            None,
            "finetune-baseline",
            device,
        )?;
        eval.evaluate(&net, BASELINE, &eval_cfg, device)?;
    }
    let net = finetune(
        cfg,
        &data,
        AugmentHooks::query_copy(darkening),
        "darkened query copy (D, exposure U(0, 0.2), patch and pixel noise)",
        Some(&d_source),
        "finetune-smm",
        device,
    )?;
    eval.evaluate(
        &net,
        "fine-tuned, SMM (darkened query copy)",
        &eval_cfg,
        device,
    )?;

    // 3. report
    report.set_evaluation(
        &eval,
        &super::title(
            "Similarity Min-Max on synthetic-places (MobileNetV2-GeM)",
            cfg.quick,
        ),
        BASELINE,
    )?;
    report.files.push("finetune-smm/".into());
    if cfg.baseline {
        report.files.push("finetune-baseline/".into());
    }
    report.seconds = t0.elapsed().as_secs_f64();
    report.write()?;
    Ok(report)
}
