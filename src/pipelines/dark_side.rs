//! Dark Side Augmentation (Mohwald, Jenicek, Chum, ICCV 2023; docs/PAPERS.md A) on an exported
//! world:
//!
//! 1. **HEDN-GAN** (A.4): a day→night generator trained on the unpaired `gan/trainA` (day) and
//!    `gan/trainB` (night) images, with edge consistency through a student HED that is trained
//!    jointly against a frozen teacher, both from the real BSDS500 HED weights (`OUT/gan`,
//!    losses in `OUT/gan/log.json`); its translation quality on the held-out test places
//!    ([`TranslationBench`]: `OUT/translated/`, `OUT/held-out.png`). `--translator cyclegan`
//!    trains gandtr's CycleGAN instead (cycle λ 10, no identity term, image pools of 50), the
//!    translator of the paper's best results.
//! 2. **Fine-tuning with synthetic night anchors** (A.6): cirtorch tuples of the world's
//!    `cirtorch` pickle, MobileNetV2-GeM (real ImageNet weights) trained with the contrastive
//!    loss; the frozen generator translates DSA's fixed 25 % hashed subset of anchors, and CLAHE
//!    is applied to every image afterwards. The anchors come from DSA's diverse anchor mining
//!    (A.7: each epoch, a band of the least-similar candidates under the current network). A
//!    baseline is fine-tuned the same way without the translator, and, as an ablation, DSA once
//!    more with cirtorch's random anchors (`OUT/finetune-dsa`, `OUT/finetune-baseline`,
//!    `OUT/finetune-dsa-random`; `--anchors random` swaps the roles).
//! 3. **Evaluation**: Recall@1/5/10 at 25 m of day, sunset and night queries against the day
//!    database, before and after (the fine-tuned networks, like DSA's released models, see CLAHE
//!    input), with intervals and paired comparisons (every fine-tune against the off-the-shelf
//!    network and the baseline, diverse against random anchors); `translations.png` shows day
//!    crops | their translation | CLAHE of the translation.
//!
//! The default schedule is a CPU-sized sketch of the paper's (50 GAN epochs of 1000 iterations of
//! batch 10 at 256², 40 fine-tuning epochs of 2000 tuples at 362 px): the generator is narrower
//! (`ngf 16, blocks 6` instead of 64 and 9), its learning rate higher, and its normalisation
//! instance norm: gandtr's HEDN-GAN uses batch norm with batches of 10 (`norm: Batch` restores it;
//! at 200 iterations of batch 2 it scored no worse, docs/TRAINING.md); the initialisation is
//! CycleGAN's N(0, 0.02), whose near-grey start a short run can learn from, instead of mdir's
//! Kaiming (`init: Gandtr`). At this schedule the generator is far from trained (docs/TRAINING.md
//! measures its translation quality against the iterations).
//!
//! ```
//! use nightvision::pipelines::dark_side::DarkSideConfig;
//! let cfg = DarkSideConfig::new().with_gan_iterations(400).with_gan_only(true);
//! assert_eq!(cfg.out, std::path::PathBuf::from("out/dark_side"));
//! assert!(cfg.baseline);
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::config::Config;
use burn::module::Module;
use burn::tensor::Device;

use super::{PipelineReport, finetune_on_world, invalid, parse_norm, prepare};
use crate::anchors::{AnchorStrategy, DiverseConfig, TranslationSubset};
use crate::core::clahe::ClaheConfig;
use crate::gan::Trained;
use crate::gan::data::{ScaleCrop, UnpairedBatches, image_files};
use crate::gan::generator::{GENERATOR_FIELD, GENERATOR_PART_FIELD};
use crate::gan::train_cyclegan::{CycleGan, CycleGanConfig, CycleGanTrainer};
use crate::gan::{
    EMA_FILE, HedNGan, HedNGanConfig, HedNGanTrainer, InitConfig, LambdaP2p, LinearDecay,
    NLayerDiscriminatorConfig, NormKind, ResnetGenerator, ResnetGeneratorConfig,
};
use crate::hed::{Hed, HedConfig};
use crate::metric::data::{AnchorSelection, AugmentHooks, Augmentation, ImageSource, MiningConfig};
use crate::metric::multiscale::ExtractConfig;
use crate::metric::train::TupleLoss;
use crate::metric::train::TupleTrainerConfig;
use crate::metric::{BackboneKind, CirNet, ContrastiveLossConfig};
use crate::pipeline::{self, Clahe, Translator};
use crate::quality::TranslationBench;

/// The baseline's label: fine-tuned the same way, without the translator.
pub const BASELINE: &str = "fine-tuned (CLAHE, no GAN)";

/// The generator's initialisation.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum GanInit {
    /// CycleGAN's N(0, 0.02) (`init_type normal`).
    Normal,
    /// mdir's / gandtr's Kaiming initialisation.
    Gandtr,
}

impl GanInit {
    /// The scheme the networks are built with.
    pub fn scheme(self) -> InitConfig {
        match self {
            GanInit::Normal => InitConfig::cyclegan(),
            GanInit::Gandtr => InitConfig::gandtr_kaiming(),
        }
    }
}

/// The day→night translator of the pipeline's first stage.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum DsaTranslator {
    /// HEDN-GAN (A.4): adversarial loss and edge consistency through a jointly trained HED.
    Hedngan,
    /// CycleGAN as gandtr trains it (A.4, `train_cyclegan.yml`: cycle λ 10, no identity term,
    /// image pools of 50), the paper's best translator.
    Cyclegan,
}

impl DsaTranslator {
    /// The name in the reports.
    pub fn name(self) -> &'static str {
        match self {
            DsaTranslator::Hedngan => "HEDN-GAN",
            DsaTranslator::Cyclegan => "CycleGAN",
        }
    }
}

/// How the fine-tuning chooses its anchors (the queries of the training tuples).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Anchors {
    /// DSA's diverse anchor mining (docs/PAPERS.md A.7): each epoch, a band of the candidate
    /// pool's least-similar anchors under the current network.
    Diverse,
    /// cirtorch's random anchors.
    Random,
}

impl Anchors {
    /// The tuple trainer's strategy: diverse with DSA's `finetune.yml` defaults (candidate pool
    /// 10 000 pairs, capped at the pairs there are; band 0.8-0.2).
    pub fn strategy(self) -> AnchorStrategy {
        match self {
            Anchors::Diverse => AnchorStrategy::Diverse(DiverseConfig::default()),
            Anchors::Random => AnchorStrategy::Random,
        }
    }

    /// The other strategy (the ablation's).
    pub fn other(self) -> Self {
        match self {
            Anchors::Diverse => Anchors::Random,
            Anchors::Random => Anchors::Diverse,
        }
    }

    /// The name used in the reports and in the stage's `config.json`.
    pub fn name(self) -> &'static str {
        match self {
            Anchors::Diverse => "diverse",
            Anchors::Random => "random",
        }
    }
}

/// Every knob of the Dark Side Augmentation pipeline; the defaults are the `dark_side` example's.
#[derive(Config, Debug, clap::Args)]
pub struct DarkSideConfig {
    /// The exported world to run on (`synthetic_places --out`, or any folder in its format);
    /// without it the default world is rendered into OUT/world.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Output folder: checkpoints of every stage (resumed from), reports, pictures.
    #[arg(long, default_value = "out/dark_side")]
    #[config(default = "PathBuf::from(\"out/dark_side\")")]
    pub out: PathBuf,
    /// The translator: HEDN-GAN, or gandtr's CycleGAN.
    #[arg(long, value_enum, default_value_t = DsaTranslator::Hedngan)]
    #[config(default = "DsaTranslator::Hedngan")]
    pub translator: DsaTranslator,
    /// Translator iterations (two epochs: constant, then linear decay).
    #[arg(long, default_value_t = 150)]
    #[config(default = 150)]
    pub gan_iterations: usize,
    /// Translator batch size.
    #[arg(long, default_value_t = 2)]
    #[config(default = 2)]
    pub gan_batch: usize,
    /// Translator training crop (px; images are first resized to 1.5× this shorter side).
    #[arg(long, default_value_t = 64)]
    #[config(default = 64)]
    pub crop: usize,
    /// Translator Adam learning rate.
    #[arg(long, default_value_t = 5e-4)]
    #[config(default = 5e-4)]
    pub gan_lr: f64,
    /// Instance noise: σ of the Gaussian noise added to every image the discriminator sees
    /// (real and translated, in `[-1, 1]`); 0, the paper's recipe, adds none. docs/TRAINING.md
    /// measures 0.1 against 0.
    #[arg(long, default_value_t = 0.0)]
    #[config(default = 0.0)]
    pub d_noise: f64,
    /// Generator width (and the discriminator's unless `--ndf`; the paper's 64).
    #[arg(long, default_value_t = 16)]
    #[config(default = 16)]
    pub ngf: usize,
    /// Discriminator width (default: `--ngf`).
    #[arg(long)]
    pub ndf: Option<usize>,
    /// Shorter side the translator's training images are resized to before cropping (default
    /// 1.5 × `--crop`); the frames' own shorter side (240 in the default world) trains at the
    /// scale the held-out frames are translated at.
    #[arg(long)]
    pub load_size: Option<usize>,
    /// CUT's anti-aliased upsampling (blur, then a 3×3 convolution) in the generator instead of
    /// transposed convolutions, whose overlaps make checkerboard patterns (docs/TRAINING.md).
    #[arg(long)]
    #[config(default = false)]
    pub antialias_up: bool,
    /// Generator residual blocks (the paper's 9).
    #[arg(long, default_value_t = 6)]
    #[config(default = 6)]
    pub blocks: usize,
    /// Normalisation of generator and discriminator: instance, batch (gandtr's) or none.
    #[arg(long, default_value = "instance", value_parser = parse_norm)]
    #[config(default = "NormKind::Instance")]
    pub norm: NormKind,
    /// Normalisation of the discriminators alone (default: `--norm`); `none` lets them see a
    /// crop's global brightness and colour, which instance norm removes (docs/TRAINING.md).
    #[arg(long, value_parser = parse_norm)]
    pub d_norm: Option<NormKind>,
    /// CycleGAN only: decay of a moving average of the day→night generator's weights, which
    /// becomes the translator (0, the paper's recipe, keeps the last weights; docs/TRAINING.md
    /// measures 0.995).
    #[arg(long, default_value_t = 0.0)]
    #[config(default = 0.0)]
    pub g_ema: f64,
    /// CycleGAN only: weight of the identity term relative to the cycle weight (0, gandtr's
    /// recipe; CycleGAN's own default is 0.5).
    #[arg(long, default_value_t = 0.0)]
    #[config(default = 0.0)]
    pub identity: f64,
    /// CycleGAN only: apply the identity term (`--identity`) to the first N iterations only,
    /// a warm-up that holds the content early and leaves the palette free afterwards
    /// (docs/TRAINING.md); without it the term applies throughout.
    #[arg(long)]
    pub identity_until: Option<usize>,
    /// Initialisation of generator and discriminator.
    #[arg(long, value_enum, default_value_t = GanInit::Normal)]
    #[config(default = "GanInit::Normal")]
    pub init: GanInit,
    /// Fine-tuning epochs.
    #[arg(long, default_value_t = 2)]
    #[config(default = 2)]
    pub epochs: usize,
    /// Model selection of every fine-tuning: the mean contrastive loss on tuples of the world's
    /// cirtorch `val` split (all its queries, negatives mined from all its images) every N
    /// epochs and after the last, the lowest kept (gandtr: every 5 epochs, `embed_best.pth`);
    /// 0 keeps the last epoch without validating.
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
    /// Anchors of every fine-tuning (the baseline's too): DSA's diverse anchor mining, or
    /// cirtorch's random anchors.
    #[arg(long, value_enum, default_value_t = Anchors::Diverse)]
    #[config(default = "Anchors::Diverse")]
    pub anchors: Anchors,
    /// Fine-tune DSA a second time with the other anchor strategy and report it beside
    /// (`--no-anchor-ablation` skips it).
    #[arg(long = "no-anchor-ablation", action = clap::ArgAction::SetFalse)]
    #[config(default = true)]
    pub anchor_ablation: bool,
    /// Also evaluate with the paper's retrieval protocol: multi-scale descriptors, Lw whitening
    /// learned from same-place pairs of training images, mAP on the Tokyo-style set
    /// (`paper-protocol.{json,md}`, [`crate::protocol`]); `--no-paper-protocol` skips it.
    #[arg(long = "no-paper-protocol", action = clap::ArgAction::SetFalse)]
    #[config(default = true)]
    pub paper_protocol: bool,
    /// Fine-tune the baseline (same schedule, no translator) too (`--no-baseline` skips it).
    #[arg(long = "no-baseline", action = clap::ArgAction::SetFalse)]
    #[config(default = true)]
    pub baseline: bool,
    /// A trained translator to use instead of training one: a `.safetensors` file written by a
    /// run of this pipeline (`OUT/gan/translator.safetensors`, or one shipped in `models/`) or a
    /// translator's checkpoint folder.
    #[arg(long)]
    pub translator_weights: Option<PathBuf>,
    /// Stop after the generator and its translation quality.
    #[arg(long)]
    #[config(default = false)]
    pub gan_only: bool,
    /// Start every stage over: remove the checkpoints in OUT (otherwise a run resumes, and
    /// refuses a folder trained with other settings, naming them).
    #[arg(long)]
    #[config(default = false)]
    pub restart: bool,
    /// The mechanism check of CI, in about three minutes: translator 30 iterations, 20 tuples, one epoch, no random-anchor ablation, on the small world of
    /// [`crate::pipeline::quick_world_config`] (rendered into OUT/world-quick unless `--data` is
    /// given). The schedule is too short to learn from: its numbers are not results. It cannot be
    /// combined with the flags it sets.
    #[arg(long, conflicts_with_all = ["gan_iterations", "tuples", "epochs", "anchor_ablation"])]
    #[config(default = false)]
    pub quick: bool,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 0)]
    #[config(default = 0)]
    pub seed: u64,
    /// Data-parallel devices of the training stages that take one optimiser step at a time
    /// (the fine-tuning): the first N devices of the run's kind (GPUs), or N replicas of the CPU
    /// device, which runs the multi-device code but is not faster there (docs/SCALING.md).
    #[arg(long, default_value_t = 1)]
    #[config(default = 1)]
    pub devices: usize,
}

impl DarkSideConfig {
    /// The configuration [`run`] follows: this one, or with [`DarkSideConfig::quick`] its quick
    /// schedule.
    ///
    /// ```
    /// use nightvision::pipelines::dark_side::DarkSideConfig;
    ///
    /// let cfg = DarkSideConfig::new().with_quick(true).effective();
    /// assert_eq!((cfg.gan_iterations, cfg.tuples, cfg.epochs, cfg.anchor_ablation), (30, 20, 1, false));
    /// ```
    pub fn effective(&self) -> Self {
        if !self.quick {
            return self.clone();
        }
        Self {
            gan_iterations: 30,
            tuples: 20,
            epochs: 1,
            anchor_ablation: false,
            ..self.clone()
        }
    }
}

fn hed(weights: &Path, device: &Device) -> pipeline::Result<Hed> {
    let mut h = HedConfig::new().init(device);
    h.load_weights(weights)?;
    Ok(h)
}

/// The translator settings no run can use, refused before any work.
fn check_translator_settings(cfg: &DarkSideConfig) -> pipeline::Result<()> {
    if cfg.gan_iterations == 0 || cfg.gan_batch == 0 {
        return Err(invalid(
            "gan_iterations / gan_batch",
            "must be positive".into(),
        ));
    }
    if let Some(path) = &cfg.translator_weights
        && !path.exists()
    {
        return Err(invalid(
            "translator_weights",
            format!("{} does not exist", path.display()),
        ));
    }
    if cfg.translator == DsaTranslator::Cyclegan {
        cyclegan_config(cfg).validate()?;
    } else if cfg.g_ema != 0.0 {
        return Err(invalid(
            "g_ema",
            "the generator's moving average is kept by the CycleGAN trainer only (--translator cyclegan)"
                .into(),
        ));
    } else if cfg.identity != 0.0 || cfg.identity_until.is_some() {
        return Err(invalid(
            "identity",
            "the identity term belongs to the CycleGAN trainer only (--translator cyclegan)".into(),
        ));
    }
    if cfg.identity_until.is_some() && cfg.identity == 0.0 {
        return Err(invalid(
            "identity_until",
            "limits the identity term, which is off: set --identity too".into(),
        ));
    }
    Ok(())
}

/// Stage 1: trains (or resumes) the HEDN-GAN into `OUT/gan` on the world `data` and returns the
/// generator in inference mode. The folder's `config.json` holds the generator's and the
/// discriminator's configurations and the stage's settings, so that
/// [`ResnetGenerator::load`] / [`Translator::load`] rebuild it from the folder alone and a resume
/// with other settings is refused (`restart` starts over).
///
/// # Errors
/// Missing HED weights, an invalid setting or stored configuration, training and I/O errors.
pub fn train_translator(
    cfg: &DarkSideConfig,
    data: &Path,
    device: &Device,
) -> pipeline::Result<ResnetGenerator> {
    check_translator_settings(cfg)?;
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
        cfg.gan_batch,
    )?
    .with_shorter_side(Some(cfg.load_size.unwrap_or(cfg.crop * 3 / 2)));
    if cfg.translator == DsaTranslator::Cyclegan {
        return train_cyclegan(cfg, &batches, &train_device);
    }
    let hed_weights = pipeline::real_weights("HEDN-GAN", "weights/hed_bsds500.safetensors")?;
    let gan_cfg = HedNGanConfig {
        lr: cfg.gan_lr,
        d_input_noise: cfg.d_noise,
        schedule: LambdaP2p::new().with_epochs(2).with_decay_epochs(1),
        iterations_per_epoch: cfg.gan_iterations.div_ceil(2),
        checkpoint_every: 50,
        seed: cfg.seed,
        progress: true,
        ..HedNGanConfig::default()
    };
    let (generator, discriminator, gan_dir) = gan_stage(
        cfg,
        "HEDN-GAN",
        ResnetGeneratorConfig::gandtr_hedngan(),
        NLayerDiscriminatorConfig::gandtr_hedngan(),
        None,
        &[("hed", "weights/hed_bsds500.safetensors")],
    )?;
    let nets = HedNGan {
        generator: generator.try_init(&train_device)?,
        discriminator: discriminator.try_init(&train_device)?,
        student: hed(&hed_weights, &train_device)?,
    };
    let teacher = hed(&hed_weights, &train_device)?;
    let t = Instant::now();
    let Trained {
        net: nets,
        log: gan_log,
    } = HedNGanTrainer::new(gan_cfg, &batches, teacher, &train_device)?
        .train(nets, Some(&gan_dir))?;
    if let (Some(first), Some(last)) = (gan_log.epochs.first(), gan_log.epochs.last()) {
        log::info!(
            "HEDN-GAN: {} iterations in {:.0} s; D loss {:.3} → {:.3}, G adversarial {:.3} → {:.3}, G edge {:.3} → {:.3}",
            gan_log.iterations.len(),
            t.elapsed().as_secs_f64(),
            first.mean.discriminator,
            last.mean.discriminator,
            first.mean.generator_adversarial,
            last.mean.generator_adversarial,
            first.mean.generator_edge,
            last.mean.generator_edge,
        );
    }
    let g = nets.generator.valid();
    export_translator(cfg, &g, &generator)?;
    Ok(g)
}

/// The translator's generator and discriminator as `cfg` sets them (norm, init, widths, blocks,
/// upsampling) from the method's presets, and its stage folder `OUT/gan`, whose `config.json`
/// records both with the stage's settings (`part`: the generator's checkpoint part when it is
/// not `generator.bpk`; `extra`: more stage fields), so a resume with other settings is
/// refused.
fn gan_stage(
    cfg: &DarkSideConfig,
    method: &str,
    generator: ResnetGeneratorConfig,
    discriminator: NLayerDiscriminatorConfig,
    part: Option<&str>,
    extra: &[(&str, &str)],
) -> pipeline::Result<(
    ResnetGeneratorConfig,
    NLayerDiscriminatorConfig,
    crate::core::checkpoint::CheckpointDir,
)> {
    // The initial weights follow the run's seed too (seed 0 keeps the presets' init seeds; other
    // seeds move them 1,000 apart, clear of the +1..+3 CycleGAN gives its four networks).
    let init_shift = cfg.seed.wrapping_mul(1000);
    let generator = generator
        .with_norm(cfg.norm)
        .with_init_scheme(cfg.init.scheme())
        .with_ngf(cfg.ngf)
        .with_n_blocks(cfg.blocks)
        .with_antialias_up(cfg.antialias_up);
    let seed = generator.init_seed.wrapping_add(init_shift);
    let generator = generator.with_init_seed(seed);
    let discriminator = discriminator
        .with_norm(cfg.d_norm.unwrap_or(cfg.norm))
        .with_init_scheme(cfg.init.scheme())
        .with_ndf(cfg.ndf.unwrap_or(cfg.ngf));
    let seed = discriminator.init_seed.wrapping_add(init_shift);
    let discriminator = discriminator.with_init_seed(seed);
    let mut stage = serde_json::json!({
        GENERATOR_FIELD: generator,
        "discriminator": discriminator,
        "stage": {
            "method": method,
            "iterations": cfg.gan_iterations,
            "batch": cfg.gan_batch,
            "crop": cfg.crop,
            "load_size": cfg.load_size,
            "lr": cfg.gan_lr,
            "d_noise": cfg.d_noise,
            "seed": cfg.seed,
        },
    });
    if let Some(part) = part {
        stage[GENERATOR_PART_FIELD] = part.into();
    }
    for (key, value) in extra {
        stage["stage"][*key] = (*value).into();
    }
    let dir = pipeline::stage_dir(&cfg.out.join("gan"), &stage, cfg.restart)?;
    Ok((generator, discriminator, dir))
}

/// Stage 1 with CycleGAN (gandtr's: cycle λ 10, no identity term, pools of 50; generator and
/// discriminators as the HEDN-GAN's settings make them) into `OUT/gan`; the folder names the
/// day→night generator's part ([`GENERATOR_PART_FIELD`]) so [`ResnetGenerator::load`] finds it.
fn train_cyclegan(
    cfg: &DarkSideConfig,
    batches: &UnpairedBatches,
    train_device: &Device,
) -> pipeline::Result<ResnetGenerator> {
    let gan_cfg = cyclegan_config(cfg);
    // Recorded only when set, so that folders trained before the options existed still resume.
    let (ema, identity) = (cfg.g_ema.to_string(), cfg.identity.to_string());
    let until = cfg.identity_until.map(|n| n.to_string());
    let mut extra = Vec::new();
    if cfg.g_ema > 0.0 {
        extra.push(("g_ema", ema.as_str()));
    }
    if cfg.identity > 0.0 {
        extra.push(("identity", identity.as_str()));
    }
    if let Some(n) = &until {
        extra.push(("identity_until", n.as_str()));
    }
    let (generator, discriminator, gan_dir) = gan_stage(
        cfg,
        "CycleGAN (gandtr: cycle 10, no identity, pools of 50)",
        ResnetGeneratorConfig::gandtr_cyclegan(),
        NLayerDiscriminatorConfig::new(),
        Some(if cfg.g_ema > 0.0 {
            EMA_FILE
        } else {
            "day_to_night.bpk"
        }),
        &extra,
    )?;
    let nets = CycleGan::with_configs(generator.clone(), discriminator, train_device);
    let t = Instant::now();
    let Trained { net: nets, log } =
        CycleGanTrainer::new(gan_cfg, batches, train_device)?.train(nets, Some(&gan_dir))?;
    if let (Some(first), Some(last)) = (log.epochs.first(), log.epochs.last()) {
        log::info!(
            "CycleGAN: {} iterations in {:.0} s; D(night) loss {:.3} → {:.3}, G adversarial {:.3} → {:.3}, cycle (day) {:.3} → {:.3}",
            log.iterations.len(),
            t.elapsed().as_secs_f64(),
            first.mean.discriminator_night,
            last.mean.discriminator_night,
            first.mean.adversarial_day_to_night,
            last.mean.adversarial_day_to_night,
            first.mean.cycle_day,
            last.mean.cycle_day,
        );
    }
    let g = nets.day_to_night_ema.unwrap_or(nets.day_to_night).valid();
    export_translator(cfg, &g, &generator)?;
    Ok(g)
}

/// The CycleGAN trainer's settings of a run (gandtr's, with the run's learning rate, instance
/// noise, generator average, identity weight and two epochs).
fn cyclegan_config(cfg: &DarkSideConfig) -> CycleGanConfig {
    CycleGanConfig {
        lr: cfg.gan_lr,
        d_input_noise: cfg.d_noise,
        g_ema_decay: cfg.g_ema,
        lambda_identity: cfg.identity,
        identity_iterations: cfg.identity_until,
        schedule: LinearDecay::new(1, 1),
        iterations_per_epoch: cfg.gan_iterations.div_ceil(2),
        checkpoint_every: 50,
        seed: cfg.seed,
        progress: true,
        ..CycleGanConfig::gandtr()
    }
}

/// Writes the trained translator as `OUT/gan/translator.safetensors` (PyTorch keys, the
/// generator's configuration and this run's settings in the header), which
/// `--translator-weights`, [`Translator::load`] and PyTorch read.
fn export_translator(
    cfg: &DarkSideConfig,
    generator: &ResnetGenerator,
    generator_cfg: &ResnetGeneratorConfig,
) -> pipeline::Result<()> {
    let settings = serde_json::to_string(cfg)
        .map_err(|e| invalid("config", format!("not serialisable: {e}")))?;
    generator.save_safetensors(
        generator_cfg,
        cfg.out.join("gan").join(TRANSLATOR_FILE),
        &[("nightvision.dark_side", settings.as_str())],
    )?;
    Ok(())
}

/// The file a run writes its trained translator to, in `OUT/gan`: safetensors with PyTorch keys and
/// the configuration in the header ([`ResnetGenerator::save_safetensors`]), read by
/// `--translator-weights` and [`Translator::load`].
pub const TRANSLATOR_FILE: &str = "translator.safetensors";

/// Stage 2: fine-tunes MobileNetV2-GeM with cirtorch tuples of the world `data` into
/// `OUT/<dir>` with the given augmentation `hooks` (named `augmentation` in the stage's
/// `config.json`), and returns it in inference mode; [`CirNet::load`] rebuilds it from the
/// folder.
///
/// # Errors
/// Missing weights, a world without the tuple pickle, training and I/O errors.
pub fn finetune(
    cfg: &DarkSideConfig,
    data: &Path,
    hooks: AugmentHooks,
    augmentation: &str,
    dir: &str,
    device: &Device,
) -> pipeline::Result<CirNet> {
    // the margin of the trunk (0.7 for MobileNetV2; DSA's 0.75 for VGG16, 0.85 for ResNet-101)
    let loss = ContrastiveLossConfig::for_backbone(BackboneKind::MobileNetV2);
    let trainer = TupleTrainerConfig {
        loss: TupleLoss::Contrastive(loss.clone()),
        epochs: cfg.epochs,
        lr: cfg.lr,
        weight_decay: 5e-4,
        gamma: 0.99,
        image_size: cfg.image_size,
        mining: MiningConfig {
            neg_num: 5,
            query_size: cfg.tuples,
            pool_size: 400,
        },
        anchors: cfg.anchors.strategy(),
        seed: cfg.seed,
        progress: true,
        ..TupleTrainerConfig::default()
    };
    let stage = serde_json::json!({
        "method": format!(
            "contrastive tuples (margin {}), Adam, weight decay 5e-4, gamma 0.99",
            loss.margin
        ),
        "augmentation": augmentation,
        "anchors": cfg.anchors.name(),
        "epochs": cfg.epochs,
        "tuples": cfg.tuples,
        "lr": cfg.lr,
        "image_size": cfg.image_size,
        "seed": cfg.seed,
    });
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

/// The report row of the DSA fine-tune with the translator named `translator` (a
/// [`DsaTranslator::name`], or a given file) and `anchors`.
pub fn dsa_label(translator: &str, anchors: Anchors) -> String {
    format!(
        "fine-tuned, DSA ({translator} anchors + CLAHE, {} anchors)",
        anchors.name()
    )
}

/// What made the synthetic night: the translator kind, or the file given with
/// `--translator-weights` (which need not be of the `--translator` kind). It names the quality
/// row and the DSA rows, and enters the fine-tuning stages' configuration, so that a fine-tuning
/// folder of another translator is refused, not resumed.
fn translator_label(cfg: &DarkSideConfig) -> String {
    match &cfg.translator_weights {
        Some(path) => format!("translator {}", path.display()),
        None => cfg.translator.name().to_string(),
    }
}

/// Runs the pipeline: trains (or resumes) every stage into `cfg.out`, evaluates, writes
/// `report.{json,md}`, `recall.png`, `translation-quality.{json,md}`, `translations.png`,
/// `held-out.png`, `translated/` and the descriptors (`descriptors/`), and returns the report.
///
/// # Errors
/// Missing real weights ([`crate::pipeline::PipelineError::MissingWeights`]), an invalid
/// setting, a world that is not in the exported format, training, checkpoint and I/O errors.
pub fn run(cfg: &DarkSideConfig, device: &Device) -> pipeline::Result<PipelineReport> {
    let t0 = Instant::now();
    let cfg = &cfg.effective();
    check_translator_settings(cfg)?;
    let out = cfg.out.as_path();
    let data = prepare(cfg.data.as_deref(), out, cfg.quick)?;

    // 1. the translator (HEDN-GAN or CycleGAN), trained here or given
    let translator = match &cfg.translator_weights {
        Some(path) => {
            log::info!(
                "translator: {} (given with --translator-weights, not trained here)",
                path.display()
            );
            Translator::load(path, device)?
        }
        None => Translator::new(train_translator(cfg, &data, device)?, device),
    };

    // translation grid of training frames at their size (where the translator is used and
    // scored): day | translated | CLAHE(translated)
    // six frames spread over the folder (its first files are views of one place)
    let day_files = image_files(data.join("gan/trainA"))?;
    let sample_paths: Vec<PathBuf> = day_files
        .iter()
        .step_by(day_files.len().div_ceil(6).max(1))
        .cloned()
        .collect();
    let sample = pipeline::load_frames(&sample_paths, device)?;
    let fake = translator.translate(sample.clone())?;
    let clahe = Clahe::dsa().augment(fake.clone(), &mut crate::core::rng::seeded(0))?;
    pipeline::image_grid(&[sample, fake, clahe], out.join("translations.png"))?;

    // translation quality on the held-out test places (OUT/translated/, OUT/held-out.png)
    let bench = if cfg.quick {
        TranslationBench::quick(&data, device)?
    } else {
        TranslationBench::new(&data, device)?
    };
    let mut rows = bench.reference_rows(cfg.seed)?;
    let label = translator_label(cfg);
    rows.push(bench.run_generator(label.as_str(), out, |_, x| Ok(translator.translate(x)?))?);
    let quality = bench.report(rows)?;
    log::info!("translation quality:\n{}", quality.to_markdown());
    let trained = if cfg.translator_weights.is_none() {
        &["translations.png", "gan/"][..]
    } else {
        &["translations.png"][..]
    };
    let mut report = PipelineReport::generator_stage(quality, out, trained);
    if cfg.gan_only {
        return report.finish_after_generator(t0);
    }

    // 2. fine-tuning with synthetic night anchors (and the baseline without)
    let eval_cfg = ExtractConfig {
        max_side: 320,
        ..ExtractConfig::default()
    };
    // DSA's models take CLAHE input at test time too (A.8)
    let clahe_cfg = ExtractConfig {
        clahe: Some(ClaheConfig::default()),
        ..eval_cfg.clone()
    };
    let base = pipeline::mobilenet_v2_gem(device)?;
    let mut eval = super::evaluator(&data, out, cfg.paper_protocol)?;
    // the papers' protocol for the networks DSA's claims rest on (its models take CLAHE input):
    // off-the-shelf + CLAHE, the baseline and DSA; Recall@N for all
    eval.evaluate_recall(&base, "off-the-shelf", &eval_cfg, device)?;
    eval.evaluate(&base, "off-the-shelf + CLAHE", &clahe_cfg, device)?;
    if cfg.baseline {
        let net = finetune(
            cfg,
            &data,
            AugmentHooks::default().with_post(Clahe::dsa()),
            "CLAHE",
            "finetune-baseline",
            device,
        )?;
        eval.evaluate(&net, BASELINE, &clahe_cfg, device)?;
    }
    let hooks = AugmentHooks {
        augmentation: Some(Arc::new(translator)),
        anchors: Some(AnchorSelection::Hashed(TranslationSubset::default())),
        positives: false,
        query_copy: false,
        post: Some(Arc::new(Clahe::dsa())),
    };
    let augmentation = format!("{label} anchors (hashed 25 % subset) + CLAHE");
    let net = finetune(
        cfg,
        &data,
        hooks.clone(),
        &augmentation,
        "finetune-dsa",
        device,
    )?;
    eval.evaluate(&net, &dsa_label(&label, cfg.anchors), &clahe_cfg, device)?;
    if cfg.anchor_ablation {
        let other = cfg.clone().with_anchors(cfg.anchors.other());
        let dir = format!("finetune-dsa-{}", other.anchors.name());
        let net = finetune(&other, &data, hooks, &augmentation, &dir, device)?;
        report.files.push(format!("{dir}/"));
        eval.evaluate_recall(&net, &dsa_label(&label, other.anchors), &clahe_cfg, device)?;
        // the paired test of the anchor strategies: diverse against random
        eval.compare(
            &dsa_label(&label, Anchors::Diverse),
            &dsa_label(&label, Anchors::Random),
        );
    }

    // 3. report
    report.set_evaluation(
        &eval,
        &super::title(
            "Dark Side Augmentation on synthetic-places (MobileNetV2-GeM)",
            cfg.quick,
        ),
        BASELINE,
    )?;
    report.files.push("finetune-dsa/".into());
    if cfg.baseline {
        report.files.push("finetune-baseline/".into());
    }
    report.seconds = t0.elapsed().as_secs_f64();
    report.write()?;
    Ok(report)
}
