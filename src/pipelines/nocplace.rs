//! NocPlace (Liu et al., arXiv 2402.17159; docs/PAPERS.md B) on an exported world:
//!
//! 1. **The translator** (B.1): CUT's anti-aliased generator and PatchGAN with PatchNCE, trained
//!    on the unpaired `gan/trainA` (day) and `gan/trainB` (night) images (`OUT/translator`).
//!    `translator: NegCut` switches to NEG-CUT's learned hard negatives, NocPlace's choice.
//!    NEG-CUT's NCE underflows to 0 after its first iteration (F starts at xavier gain 0.02 and
//!    Adam's first step aligns every query away from the negatives) and comes back after ~30
//!    iterations — in this trainer as in a PyTorch re-implementation of the reference
//!    (`crates/nightgen-gan/scripts/negcut_dynamics.py`) — and costs 3× CUT's time per iteration,
//!    so on the CPU-sized schedule plain CUT is the default.
//! 2. **The night dataset** (B.1, NPR): every image of the CosPlace training folder
//!    (`cosplace/train`) is translated once, keeping its UTM name.
//! 3. **The daytime model** (B.2, B.3): a CosPlace network (MobileNetV2 with the real ImageNet
//!    weights → L2 → GeM → FC 512 → L2) trained with CosFace (s 30, m 0.4) on the day images —
//!    the stand-in for the released daytime CosPlace checkpoint NocPlace starts from
//!    (`OUT/day-model`).
//! 4. **NocPlace fine-tuning** (B.4, B.5): the daytime model, fine-tuned on the translated night
//!    images with CosFace + inherited knowledge transfer (the daytime model's descriptors of the
//!    *day* versions, seen at the student's training geometry, KL at T = 4, λ 1)
//!    (`OUT/nocplace-model`).
//! 5. **Evaluation** (B.6, B.7): Recall@1/5/10 at 25 m, day, sunset and night queries against the
//!    day database, for the daytime model, the NocPlace model, and partial divide-and-conquer (the
//!    database described once by the daytime model and cached in `OUT/pdc-cache`; sunset and
//!    night queries by the NocPlace model, day queries by the daytime model — and, as NocPlace
//!    evaluates it, every query by the NocPlace model); `translations.png` (day | translated
//!    night). Both CosPlace models are the best of `validations` scores of R@1 on the validation
//!    places (`cosplace/val`: day queries for the daytime model, night queries for NocPlace).
//!
//! The schedule is a CPU-sized sketch of the paper's (NEG-CUT 400 epochs at 512², SF-XL at 512²
//! for 50 epochs of 10 000 iterations of 32).
//!
//! ```
//! use nightvision::pipelines::nocplace::NocPlaceConfig;
//! use nightvision::gan::train_cut::CutMode;
//! let cfg = NocPlaceConfig::new().with_translator(CutMode::NegCut);
//! assert_eq!((cfg.day_iterations, cfg.batch), (30, 8));
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::config::Config;
use burn::module::Module;
use burn::tensor::Device;

use super::{PipelineReport, files, invalid, parse_cut_mode, parse_norm, prepare};
use crate::anchors::{CosPlaceConfig, build_classes_from_names};
use crate::core::checkpoint::module_to_bytes;
use crate::core::image::save_rgb;
use crate::core::jitter::{ColorJitter, ColorJitterConfig};
use crate::eval::{
    DescriptorCache, FirstHits, FnEncoder, GroundTruth, KnnConfig, Metric, PdcOptions, TokyoSplit,
    exact_knn, partial_divide_and_conquer, partial_divide_and_conquer_routed, weights_model_id,
};
use crate::gan::Trained;
use crate::gan::data::{ScaleCrop, UnpairedBatches, image_files};
use crate::gan::generator::GENERATOR_FIELD;
use crate::gan::train_cut::{CutConfig, CutMode, CutTrainer};
use crate::gan::{
    LinearDecay, NLayerDiscriminatorConfig, NormKind, ResnetGenerator, ResnetGeneratorConfig,
};
use crate::metric::data::{AugmentHooks, ClassSampler, ImageSource};
use crate::metric::multiscale::ExtractConfig;
use crate::metric::nets::NETWORK_FIELD;
use crate::metric::train::{
    CosPlaceTrainer, CosPlaceTrainerConfig, Goal, Selection, training_view_descriptors,
};
use crate::metric::{Backbone, BackboneConfig, CosPlaceNet, CosPlaceNetConfig};
use crate::pipeline::{self, Translator};
use crate::quality::TranslationBench;

/// The reference network's label in the report.
pub const BASELINE: &str = "daytime CosPlace";

/// Every knob of the NocPlace pipeline; the defaults are the `nocplace` example's.
#[derive(Config, Debug, clap::Args)]
pub struct NocPlaceConfig {
    /// The exported world to run on (`synthetic_places --out`, or any folder in its format);
    /// without it the default world is rendered into OUT/world.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Output folder: checkpoints of every stage (resumed from), reports, pictures.
    #[arg(long, default_value = "out/nocplace")]
    #[config(default = "PathBuf::from(\"out/nocplace\")")]
    pub out: PathBuf,
    /// Translator iterations (two epochs: constant, then linear decay; batch 1).
    #[arg(long, default_value_t = 150)]
    #[config(default = 150)]
    pub gan_iterations: usize,
    /// Translator training crop (px; images are first resized to 1.5× this shorter side).
    #[arg(long, default_value_t = 64)]
    #[config(default = 64)]
    pub crop: usize,
    /// Translator Adam learning rate.
    #[arg(long, default_value_t = 5e-4)]
    #[config(default = 5e-4)]
    pub gan_lr: f64,
    /// Generator width (and the discriminator's unless `--ndf`; the paper's 64).
    #[arg(long, default_value_t = 16)]
    #[config(default = 16)]
    pub ngf: usize,
    /// Discriminator width (default: `--ngf`).
    #[arg(long)]
    pub ndf: Option<usize>,
    /// Normalisation of the discriminator: instance (CUT's, the default), batch or none (sees
    /// a crop's global brightness and colour; docs/TRAINING.md).
    #[arg(long, value_parser = parse_norm)]
    pub d_norm: Option<NormKind>,
    /// Instance noise: σ of the Gaussian noise added to every image the discriminator sees
    /// (in `[-1, 1]`); 0, the paper's recipe, adds none.
    #[arg(long, default_value_t = 0.0)]
    #[config(default = 0.0)]
    pub d_noise: f64,
    /// Shorter side the translator's training images are resized to before cropping (default
    /// 1.5 × `--crop`; 240, the default world's frames, trains at the scale they are
    /// translated at).
    #[arg(long)]
    pub load_size: Option<usize>,
    /// Generator residual blocks (the paper's 9).
    #[arg(long, default_value_t = 6)]
    #[config(default = 6)]
    pub blocks: usize,
    /// PatchNCE patches per layer (the paper's 256).
    #[arg(long, default_value_t = 64)]
    #[config(default = 64)]
    pub patches: usize,
    /// The translator: cut, or negcut (NocPlace's).
    #[arg(long, default_value = "cut", value_parser = parse_cut_mode)]
    #[config(default = "CutMode::Cut")]
    pub translator: CutMode,
    /// Iterations of the daytime CosPlace model.
    #[arg(long, default_value_t = 30)]
    #[config(default = 30)]
    pub day_iterations: usize,
    /// Iterations of the NocPlace fine-tuning.
    #[arg(long, default_value_t = 30)]
    #[config(default = 30)]
    pub night_iterations: usize,
    /// Model selection: the daytime and the NocPlace models are each scored this many times,
    /// evenly over their iterations (R@1 of `cosplace/val/queries` and
    /// `cosplace/val/queries_night` against `cosplace/val/database`), and the best-scoring
    /// weights are kept, as CosPlace and NocPlace keep their best validation R@1 (1: the last
    /// weights, scored once).
    #[arg(long, default_value_t = 3)]
    #[config(default = 3)]
    pub validations: usize,
    /// Train the daytime model without CosPlace's colour jitter (its defaults: brightness,
    /// contrast and saturation 0.7, hue 0.5, a new draw per image; docs/PAPERS.md B.5). The
    /// NocPlace fine-tune never jitters: its recipe sets every strength to 0.
    #[arg(long = "no-day-jitter", action = clap::ArgAction::SetFalse)]
    #[config(default = true)]
    pub day_jitter: bool,
    /// CosPlace batch size (classes per batch).
    #[arg(long, default_value_t = 8)]
    #[config(default = 8)]
    pub batch: usize,
    /// CosPlace training image size (px).
    #[arg(long, default_value_t = 160)]
    #[config(default = 160)]
    pub image_size: usize,
    /// Stop after the translator and its translation quality.
    #[arg(long)]
    #[config(default = false)]
    pub gan_only: bool,
    /// Start every stage over: remove the checkpoints in OUT (otherwise a run resumes, and
    /// refuses a folder trained with other settings, naming them).
    #[arg(long)]
    #[config(default = false)]
    pub restart: bool,
    /// The mechanism check of CI, in about three minutes: translator 100 iterations, 20 daytime and 20 NocPlace iterations, on the small world of
    /// [`crate::pipeline::quick_world_config`] (rendered into OUT/world-quick unless `--data` is
    /// given). The schedule is too short to learn from: its numbers are not results. It cannot be
    /// combined with the flags it sets.
    #[arg(long, conflicts_with_all = ["gan_iterations", "day_iterations", "night_iterations"])]
    #[config(default = false)]
    pub quick: bool,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 0)]
    #[config(default = 0)]
    pub seed: u64,
    /// Data-parallel devices of the training stages that take one optimiser step at a time
    /// (CosPlace training): the first N devices of the run's kind (GPUs), or N replicas of the CPU
    /// device, which runs the multi-device code but is not faster there (docs/SCALING.md).
    #[arg(long, default_value_t = 1)]
    #[config(default = 1)]
    pub devices: usize,
}

impl NocPlaceConfig {
    /// The configuration [`run`] follows: this one, or with [`NocPlaceConfig::quick`] its quick
    /// schedule.
    ///
    /// ```
    /// use nightvision::pipelines::nocplace::NocPlaceConfig;
    ///
    /// let cfg = NocPlaceConfig::new().with_quick(true).effective();
    /// assert_eq!((cfg.gan_iterations, cfg.day_iterations, cfg.night_iterations), (100, 20, 20));
    /// ```
    pub fn effective(&self) -> Self {
        if !self.quick {
            return self.clone();
        }
        Self {
            gan_iterations: 100,
            day_iterations: 20,
            night_iterations: 20,
            ..self.clone()
        }
    }
}

/// The CosPlace network's configuration: MobileNetV2 trunk, GeM, FC 512, all layers trainable.
pub fn cosplace_net_config() -> CosPlaceNetConfig {
    CosPlaceNetConfig::new(BackboneConfig::mobilenet_v2(), 512).with_train_all_layers(true)
}

/// A CosPlace network on the real ImageNet MobileNetV2 trunk (all layers trainable).
fn cosplace_net(seed: u64, device: &Device) -> pipeline::Result<CosPlaceNet> {
    let weights = pipeline::real_weights(
        "the CosPlace network",
        "weights/mobilenet_v2_imagenet.safetensors",
    )?;
    // The head from the run's seed: two runs (or a killed and resumed one) start alike.
    let mut net = cosplace_net_config().init_with_rng(
        device,
        &mut crate::core::rng::derived(seed ^ 0xc05f_1ace, 0),
    )?;
    if let Backbone::MobileNetV2(trunk) = &mut net.backbone {
        trunk.load_torchvision(&weights)?;
    }
    Ok(net)
}

/// Stage 1: trains (or resumes) the CUT / NEG-CUT translator into `OUT/translator` on the world
/// `data` and returns the generator in inference mode; its `config.json` lets
/// [`ResnetGenerator::load`] / [`Translator::load`] rebuild it from the folder alone, and a resume
/// with other settings is refused (`restart` starts over).
///
/// # Errors
/// An invalid setting or stored configuration, training and I/O errors.
pub fn train_translator(
    cfg: &NocPlaceConfig,
    data: &Path,
    device: &Device,
) -> pipeline::Result<ResnetGenerator> {
    let train_device = device.clone().autodiff();
    let day = ImageSource::Files(image_files(data.join("gan/trainA"))?);
    let night = ImageSource::Files(image_files(data.join("gan/trainB"))?);
    let batches = UnpairedBatches::new(
        day,
        night,
        ScaleCrop {
            size: cfg.crop,
            min_scale: 0.8,
        },
        1,
    )?
    .with_shorter_side(Some(cfg.load_size.unwrap_or(cfg.crop * 3 / 2)));
    let cut_cfg = CutConfig {
        lr: cfg.gan_lr,
        d_input_noise: cfg.d_noise,
        num_patches: cfg.patches,
        schedule: LinearDecay::new(1, 1),
        iterations_per_epoch: cfg.gan_iterations.div_ceil(2),
        checkpoint_every: 50,
        seed: cfg.seed,
        progress: true,
        ..match cfg.translator {
            CutMode::NegCut => CutConfig::negcut(),
            CutMode::Cut => CutConfig::cut(),
        }
    };
    let generator = ResnetGeneratorConfig::cut()
        .with_ngf(cfg.ngf)
        .with_n_blocks(cfg.blocks);
    let mut discriminator = NLayerDiscriminatorConfig::cut()
        .with_ndf(cfg.ndf.unwrap_or(cfg.ngf))
        .with_init_seed(1);
    if let Some(norm) = cfg.d_norm {
        discriminator = discriminator.with_norm(norm);
    }
    let mut stage = serde_json::json!({
        GENERATOR_FIELD: generator,
        "discriminator": discriminator,
        "stage": {
            "method": cfg.translator,
            "iterations": cfg.gan_iterations,
            "crop": cfg.crop,
            "lr": cfg.gan_lr,
            "patches": cfg.patches,
            "seed": cfg.seed,
        },
    });
    // Recorded only when set, so that folders trained before these options existed still resume.
    if cfg.d_noise != 0.0 {
        stage["stage"]["d_noise"] = cfg.d_noise.into();
    }
    if let Some(side) = cfg.load_size {
        stage["stage"]["load_size"] = side.into();
    }
    let dir = pipeline::stage_dir(&cfg.out.join("translator"), &stage, cfg.restart)?;
    let nets = cut_cfg.init_nets(
        generator.try_init(&train_device)?,
        discriminator.try_init(&train_device)?,
        &train_device,
    )?;
    let t = Instant::now();
    let Trained {
        net: nets,
        log: gan_log,
    } = CutTrainer::new(cut_cfg, &batches, &train_device)?.train(nets, Some(&dir))?;
    if let (Some(first), Some(last)) = (gan_log.epochs.first(), gan_log.epochs.last()) {
        log::info!(
            "translator ({:?}): {} iterations in {:.0} s; epoch means {:?} → {:?}",
            cfg.translator,
            gan_log.iterations.len(),
            t.elapsed().as_secs_f64(),
            first.mean,
            last.mean
        );
    }
    Ok(nets.generator.valid())
}

/// The `config.json` of a CosPlace stage: the network's configuration and the stage's settings.
fn cosplace_stage(
    cfg: &NocPlaceConfig,
    what: &str,
    iterations: usize,
    jitter: Option<&ColorJitterConfig>,
) -> serde_json::Value {
    serde_json::json!({
        NETWORK_FIELD: cosplace_net_config(),
        "stage": {
            "method": what,
            "iterations": iterations,
            "batch": cfg.batch,
            "image_size": cfg.image_size,
            "augmentation": "RandomResizedCrop (scale 0.5-1, ratio 3/4-4/3)",
            "color_jitter": jitter,
            // the NocPlace model starts from the daytime model: its jitter names that model too
            "day_model_color_jitter": cfg.day_jitter,
            "model_selection": format!("best of {} validations", cfg.validations),
            "translator": cfg.translator,
            "seed": cfg.seed,
        },
    })
}

/// Runs the pipeline: trains (or resumes) every stage into `cfg.out`, evaluates, writes
/// `report.{json,md}`, `recall.png`, `translation-quality.{json,md}`, `translations.png`,
/// `held-out.png`, `translated/` and the descriptors, and returns the report.
///
/// # Errors
/// Missing real weights, a batch larger than every CosPlace group
/// ([`crate::pipeline::PipelineError::InvalidConfig`]), a world that is not in the exported
/// format, training, checkpoint and I/O errors.
pub fn run(cfg: &NocPlaceConfig, device: &Device) -> pipeline::Result<PipelineReport> {
    let t0 = Instant::now();
    let cfg = &cfg.effective();
    // impossible settings fail before any work
    if cfg.validations == 0 {
        return Err(invalid(
            "validations",
            "at least 1 (the last weights, scored once)".into(),
        ));
    }
    let out = cfg.out.as_path();
    let data = prepare(cfg.data.as_deref(), out, cfg.quick)?;

    // 1. the translator (CUT or NEG-CUT)
    let translator = Translator::new(train_translator(cfg, &data, device)?, device);
    // translation quality on the held-out test places (OUT/translated/, OUT/held-out.png)
    let bench = if cfg.quick {
        TranslationBench::quick(&data, device)?
    } else {
        TranslationBench::new(&data, device)?
    };
    let mut rows = bench.reference_rows(cfg.seed)?;
    let name = match cfg.translator {
        CutMode::Cut => "CUT",
        CutMode::NegCut => "NEG-CUT",
    };
    rows.push(bench.run_generator(name, out, |_, x| Ok(translator.translate(x)?))?);
    let quality = bench.report(rows)?;
    log::info!("translation quality:\n{}", quality.to_markdown());
    if cfg.gan_only {
        return PipelineReport::generator_stage(quality, out, &["translator/"])
            .finish_after_generator(t0);
    }

    // 2. the night version of the CosPlace training set
    let train_paths = image_files(data.join("cosplace/train"))?;
    let names: Vec<String> = train_paths
        .iter()
        .map(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    let t = Instant::now();
    let night_images = translator.translate_files(&train_paths)?;
    log::info!(
        "translated {} CosPlace training images in {:.1} s",
        night_images.len(),
        t.elapsed().as_secs_f64()
    );
    let sample: Vec<PathBuf> = train_paths
        .iter()
        .step_by(train_paths.len().div_ceil(6).max(1))
        .cloned()
        .collect();
    // at the frames' size, as the training set was translated
    let day_sample = pipeline::load_frames(&sample, device)?;
    pipeline::image_grid(
        &[day_sample.clone(), translator.translate(day_sample)?],
        out.join("translations.png"),
    )?;
    if let Some(img) = night_images.first() {
        save_rgb(out.join("night-example.png"), img)?;
    }
    let day_source = ImageSource::Files(train_paths.clone());
    let night_source = ImageSource::Memory {
        images: night_images,
        names: names.clone(),
    };

    // CosPlace classes (UTM cells and heading bins of the file names) of every group
    let classes = build_classes_from_names(
        &names,
        &CosPlaceConfig {
            min_images_per_class: 4,
            // one group: the world's places are 60 m apart, CosPlace's 5 × 5 cells of 10 m
            // groups would put every place in a group of its own
            n: 1,
            l: 1,
            ..CosPlaceConfig::default()
        },
    )?;
    let groups: Vec<ClassSampler> = classes
        .groups
        .iter()
        .filter(|g| g.classes.len() >= cfg.batch)
        .map(|g| ClassSampler::from_cosplace_group(g, 1))
        .collect::<std::result::Result<_, _>>()?;
    if groups.is_empty() {
        return Err(invalid(
            "batch",
            format!(
                "no CosPlace group has {} classes of ≥ 4 images ({} classes in {} groups): lower it",
                cfg.batch,
                classes.num_classes(),
                classes.groups.len()
            ),
        ));
    }
    log::info!(
        "CosPlace: {} classes in {} groups, {} groups with ≥ {} classes used",
        classes.num_classes(),
        classes.groups.len(),
        groups.len(),
        cfg.batch
    );
    // every group once per validation round
    let epochs = groups.len() * cfg.validations;
    let cosplace_cfg = |iterations: usize| CosPlaceTrainerConfig {
        epochs,
        iterations_per_epoch: iterations.div_ceil(epochs),
        batch_size: cfg.batch,
        image_size: cfg.image_size,
        // CosPlace's and NocPlace's RandomResizedCrop (scale 0.5-1); NocPlace's recipe turns
        // the colour jitter off (docs/PAPERS.md B.5)
        random_resized_crop: Some(0.5),
        seed: cfg.seed,
        progress: true,
        ..CosPlaceTrainerConfig::default()
    };
    let losses = |epochs: &[crate::metric::train::EpochLog]| -> Vec<f32> {
        epochs.iter().map(|e| e.mean_loss).collect()
    };
    // model selection by R@1 on the validation places (docs/PAPERS.md B.5)
    let eval_cfg = ExtractConfig {
        max_side: 320,
        ..ExtractConfig::default()
    };
    let val = data.join("cosplace/val");
    let n_groups = groups.len();
    let selection = |queries: &'static str| {
        let (val, eval_cfg) = (val.clone(), eval_cfg.clone());
        Selection::new(n_groups, Goal::Maximize, move |net: &CosPlaceNet| {
            Ok(pipeline::recall_at_1(
                net, &val, queries, &eval_cfg, device,
            )?)
        })
    };
    let selected = |log: &crate::metric::TrainLog| -> String {
        match log.best {
            Some(b) => format!(
                "epoch {} of {} (val R@1 {:.1}; all: {:?})",
                b.epoch + 1,
                log.epochs.len(),
                b.score,
                log.epochs
                    .iter()
                    .filter_map(|e| e.val_score)
                    .collect::<Vec<_>>()
            ),
            None => "the last epoch".into(),
        }
    };

    // 3. the daytime model, with CosPlace's colour jitter before the crop (as CosPlace's
    // `Compose(DeviceAgnosticColorJitter, DeviceAgnosticRandomResizedCrop)`)
    let t = Instant::now();
    let day_jitter = cfg.day_jitter.then(ColorJitterConfig::cosplace);
    // (CosPlace draws every training image as an anchor)
    let day_hooks = match &day_jitter {
        Some(j) => AugmentHooks::anchors_and_positives(ColorJitter::new(j.clone())?),
        None => AugmentHooks::default(),
    };
    let day_model = CosPlaceTrainer::new(
        cosplace_cfg(cfg.day_iterations),
        &day_source,
        groups.clone(),
        None,
        day_hooks,
        device,
    )?
    .with_data_parallel(pipeline::data_parallel(device, cfg.devices)?)
    .train_selecting(
        cosplace_net(cfg.seed, device)?,
        Some(&pipeline::stage_dir(
            &out.join("day-model"),
            &cosplace_stage(
                cfg,
                "CosFace (s 30, m 0.4) on day images, best R@1 on cosplace/val/queries",
                cfg.day_iterations,
                day_jitter.as_ref(),
            ),
            cfg.restart,
        )?),
        &mut selection("queries")?,
    )?;
    log::info!(
        "daytime CosPlace model: loss per epoch {:?} in {:.0} s; kept {}",
        losses(&day_model.log.epochs),
        t.elapsed().as_secs_f64(),
        selected(&day_model.log)
    );
    let day_net = day_model.net.valid();

    // 4. NocPlace: night images, inherited descriptors of their day versions, seen by the
    // daytime model as the student sees its training images (the same square resize)
    let inherited = training_view_descriptors(
        &day_net,
        &day_source,
        &cosplace_cfg(cfg.night_iterations),
        16,
        device,
    )?;
    let t = Instant::now();
    let noc = CosPlaceTrainer::new(
        cosplace_cfg(cfg.night_iterations),
        &night_source,
        groups,
        Some(inherited),
        AugmentHooks::default(),
        device,
    )?
    .with_data_parallel(pipeline::data_parallel(device, cfg.devices)?)
    .train_selecting(
        day_net.clone(),
        Some(&pipeline::stage_dir(
            &out.join("nocplace-model"),
            &cosplace_stage(
                cfg,
                "CosFace + inherited knowledge transfer (T 4, λ 1; teacher at the student's square geometry) on translated night images, from day-model, best R@1 on cosplace/val/queries_night",
                cfg.night_iterations,
                None,
            ),
            cfg.restart,
        )?),
        &mut selection("queries_night")?,
    )?;
    log::info!(
        "NocPlace fine-tuning (CosFace + IKT): loss per epoch {:?} in {:.0} s; kept {}",
        losses(&noc.log.epochs),
        t.elapsed().as_secs_f64(),
        selected(&noc.log)
    );
    let noc_net = noc.net.valid();

    // 5. evaluation
    let ns = [1, 5, 10];
    let mut eval = pipeline::Evaluator::new(&data, &ns, Some(&out.join("descriptors")));
    eval.evaluate(&day_net, BASELINE, &eval_cfg, device)?;
    eval.evaluate(&noc_net, "NocPlace", &eval_cfg, device)?;
    // partial divide-and-conquer: day database by the daytime model (cached), queries by NocPlace
    let cache = DescriptorCache::new(out.join("pdc-cache"));
    let ds = crate::protocol::tokyo_set(&data)?;
    let positives = GroundTruth::from_dataset(&ds)?.positives(25.0)?;
    let db_paths = pipeline::folder_paths(&ds.database);
    let q_paths = pipeline::folder_paths(&ds.queries);
    let encoder = |net: &CosPlaceNet| {
        let net = net.clone();
        let device = device.clone();
        let cfg = eval_cfg.clone();
        move |paths: &[PathBuf]| -> std::result::Result<Vec<f32>, crate::eval::BoxError> {
            Ok(pipeline::describe(&net, paths, &cfg, &device)?.into_vec())
        }
    };
    // the cache key names the weights: a retrained daytime model never reuses stale descriptors
    let id = |name: &str, net: &CosPlaceNet| -> pipeline::Result<String> {
        Ok(weights_model_id(name, &module_to_bytes(net)?))
    };
    let mut db_enc = FnEncoder::new(id("daytime-cosplace", &day_net)?, 512, encoder(&day_net));
    let mut q_enc = FnEncoder::new(id("nocplace", &noc_net)?, 512, encoder(&noc_net));
    let options = PdcOptions {
        db_batch_size: 16,
        extra: format!("max_side={}", eval_cfg.max_side),
        progress: false,
    };
    // NocPlace's own form (B.6): every query by the NocPlace model; and routed by the query's
    // condition (Tokyo 24/7's splits): day queries by the daytime model, sunset and night
    // queries by the NocPlace model. Inner-product k-NN, as the other rows.
    let night: Vec<bool> = (0..q_paths.len())
        .map(|i| TokyoSplit::of(i) != TokyoSplit::Day)
        .collect();
    let every_query = partial_divide_and_conquer(
        &db_paths,
        &q_paths,
        &mut db_enc,
        &mut q_enc,
        &cache,
        &options,
    )?;
    let routed = partial_divide_and_conquer_routed(
        &db_paths,
        &q_paths,
        &night,
        &mut db_enc,
        &mut q_enc,
        &cache,
        &options,
    )?;
    for (label, pdc) in [
        ("NocPlace + partial divide-and-conquer", routed),
        (
            "NocPlace + partial divide-and-conquer (NocPlace's form: all queries by NocPlace)",
            every_query,
        ),
    ] {
        let nn = exact_knn(
            &pdc.database,
            &pdc.queries,
            10,
            &KnnConfig::new(Metric::InnerProduct),
            device,
        )?;
        eval.push(pipeline::Evaluation {
            label: label.into(),
            hits: FirstHits::from_neighbours(&nn, &positives)?,
            ns: ns.to_vec(),
        })?;
    }
    let report = PipelineReport {
        recall: Some(eval.report(
            &super::title(
                "NocPlace on synthetic-places (MobileNetV2 CosPlace, 512-d)",
                cfg.quick,
            ),
            Some(BASELINE),
        )?),
        // NocPlace evaluates with Recall@N only (docs/PAPERS.md B.5)
        map: None,
        quality,
        out: out.to_path_buf(),
        files: files(&[
            "report.json",
            "report.md",
            "recall.png",
            "translation-quality.json",
            "translation-quality.md",
            "translations.png",
            "night-example.png",
            "held-out.png",
            "translated/",
            "descriptors/",
            "translator/",
            "day-model/",
            "nocplace-model/",
            "pdc-cache/",
        ]),
        seconds: t0.elapsed().as_secs_f64(),
    };
    report.write()?;
    Ok(report)
}
