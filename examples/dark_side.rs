//! Dark Side Augmentation (Mohwald, Jenicek, Chum, ICCV 2023; papers.md A) on the embedded world:
//!
//! 1. **HEDN-GAN** (A.4): a day→night generator trained on the unpaired `gan/trainA` (day) and
//!    `gan/trainB` (night) images, with edge consistency through a student HED that is trained
//!    jointly against a frozen teacher, both from the real BSDS500 HED weights.
//! 2. **Fine-tuning with synthetic night anchors** (A.6): cirtorch tuples of the world's
//!    `cirtorch` pickle, MobileNetV2-GeM (real ImageNet weights) trained with the contrastive loss;
//!    the frozen generator translates DSA's fixed 25 % hashed subset of anchors, and CLAHE is
//!    applied to every image afterwards. A baseline is fine-tuned the same way without the
//!    translator.
//! 3. **Evaluation**: Recall@1/5/10 at 25 m of day and night queries against the day database,
//!    before and after (the fine-tuned networks, like DSA's released models, see CLAHE input), as `report.json`, `report.md` and `recall.png`; `translations.png` shows
//!    day crops | their translation | CLAHE of the translation; `gan/log.json` the GAN losses.
//!
//! ```text
//! cargo run --release --example dark_side -- [--data WORLD_DIR] [--out out/dark_side]
//!     [--gan-iterations 150] [--gan-batch 2] [--crop 64] [--gan-lr 5e-4] [--ngf 16] [--blocks 6]
//!     [--norm instance|batch] [--init normal|gandtr] [--epochs 2] [--tuples 40] [--lr 1e-5] [--image-size 160]
//!     [--no-baseline] [--gan-only] [--seed 0]
//! ```
//! Without `--data` the default world is rendered into `OUT/world`. GAN and fine-tuning
//! checkpoint into `OUT/gan` and `OUT/finetune*` and resume from there. The schedule is a CPU-sized
//! sketch of the paper's (50 GAN epochs of 1000 iterations of batch 10 at 256², 40 fine-tuning
//! epochs of 2000 tuples at 362 px): the generator is narrower (`--ngf 16 --blocks 6` instead of 64
//! and 9), its learning rate higher, and its normalisation instance norm by default: gandtr's
//! HEDN-GAN uses batch norm with batches of 10 (`--norm batch` restores it; at 200 iterations of
//! batch 2 it scored no worse, docs/TRAINING.md); and the initialisation is CycleGAN's
//! N(0, 0.02), whose near-grey start a short run can learn from, instead of mdir's Kaiming
//! (`--init gandtr`). At this schedule the generator is far from trained (docs/TRAINING.md
//! measures its translation quality against the iterations).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::tensor::Device;
use nightvision::anchors::{AnchorStrategy, TranslationSubset};
use nightvision::core::checkpoint::CheckpointDir;
use nightvision::core::clahe::ClaheConfig;
use nightvision::gan::data::{ScaleCrop, UnpairedBatches, image_files};
use nightvision::gan::{
    HedNGan, HedNGanConfig, HedNGanTrainer, InitConfig, LambdaP2p, NLayerDiscriminatorConfig,
    NormKind, ResnetGeneratorConfig,
};
use nightvision::hed::{Hed, HedConfig};
use nightvision::metric::data::{
    AnchorSelection, AugmentHooks, ImageSource, MiningConfig, TupleDatabase,
};
use nightvision::metric::multiscale::ExtractConfig;
use nightvision::metric::train::TupleTrainerConfig;
use nightvision::pipeline::{self, Clahe, Translator};
use nightvision::quality::TranslationBench;

struct Args {
    data: Option<PathBuf>,
    out: PathBuf,
    gan_iterations: usize,
    gan_batch: usize,
    crop: usize,
    gan_lr: f64,
    ngf: usize,
    blocks: usize,
    epochs: usize,
    tuples: usize,
    lr: f64,
    image_size: usize,
    baseline: bool,
    norm: NormKind,
    init: InitConfig,
    gan_only: bool,
    seed: u64,
}

fn parse() -> Result<Args> {
    let mut a = pico_args::Arguments::from_env();
    let args = Args {
        data: a.opt_value_from_str("--data")?,
        out: a
            .opt_value_from_str("--out")?
            .unwrap_or_else(|| PathBuf::from("out/dark_side")),
        gan_iterations: a.opt_value_from_str("--gan-iterations")?.unwrap_or(150),
        gan_batch: a.opt_value_from_str("--gan-batch")?.unwrap_or(2),
        crop: a.opt_value_from_str("--crop")?.unwrap_or(64),
        gan_lr: a.opt_value_from_str("--gan-lr")?.unwrap_or(5e-4),
        ngf: a.opt_value_from_str("--ngf")?.unwrap_or(16),
        blocks: a.opt_value_from_str("--blocks")?.unwrap_or(6),
        epochs: a.opt_value_from_str("--epochs")?.unwrap_or(2),
        tuples: a.opt_value_from_str("--tuples")?.unwrap_or(40),
        lr: a.opt_value_from_str("--lr")?.unwrap_or(1e-5),
        image_size: a.opt_value_from_str("--image-size")?.unwrap_or(160),
        baseline: !a.contains("--no-baseline"),
        norm: match a.opt_value_from_str::<_, String>("--norm")?.as_deref() {
            None | Some("instance") => NormKind::Instance,
            Some("batch") => NormKind::Batch,
            Some(other) => bail!("--norm {other:?}: instance or batch"),
        },
        init: match a.opt_value_from_str::<_, String>("--init")?.as_deref() {
            None | Some("normal") => InitConfig::cyclegan(),
            Some("gandtr") => InitConfig::gandtr_kaiming(),
            Some(other) => bail!("--init {other:?}: normal or gandtr"),
        },
        gan_only: a.contains("--gan-only"),
        seed: a.opt_value_from_str("--seed")?.unwrap_or(0),
    };
    let rest = a.finish();
    if !rest.is_empty() {
        bail!("unexpected arguments: {rest:?}");
    }
    Ok(args)
}

/// The baseline's label: fine-tuned the same way, without the translator.
const BASELINE: &str = "fine-tuned (CLAHE, no GAN)";

fn hed(weights: &Path, device: &Device) -> Result<Hed> {
    let mut h = HedConfig::new().init(device);
    h.load_weights(weights)?;
    Ok(h)
}

fn main() -> Result<()> {
    let args = parse()?;
    let t0 = Instant::now();
    let data = pipeline::ensure_world(args.data.as_deref(), &args.out)?;
    let device = Device::default();
    let train_device = device.clone().autodiff();
    std::fs::create_dir_all(&args.out)?;

    // 1. HEDN-GAN
    let hed_weights = pipeline::real_weights("HEDN-GAN", "weights/hed_bsds500.safetensors")?;
    let day = ImageSource::Files(image_files(data.join("gan/trainA"))?);
    let night = ImageSource::Files(image_files(data.join("gan/trainB"))?);
    let batches = UnpairedBatches::new(
        day,
        night,
        ScaleCrop {
            size: args.crop,
            min_scale: 0.8,
        },
        args.gan_batch,
    )?
    .with_shorter_side(Some(args.crop * 3 / 2));
    let gan_cfg = HedNGanConfig {
        lr: args.gan_lr,
        schedule: LambdaP2p::new().with_epochs(2).with_decay_epochs(1),
        iterations_per_epoch: args.gan_iterations.div_ceil(2),
        checkpoint_every: 50,
        seed: args.seed,
        progress: true,
        ..HedNGanConfig::default()
    };
    let nets = HedNGan {
        generator: ResnetGeneratorConfig::gandtr_hedngan()
            .with_norm(args.norm)
            .with_init_scheme(args.init)
            .with_ngf(args.ngf)
            .with_n_blocks(args.blocks)
            .try_init(&train_device)?,
        discriminator: NLayerDiscriminatorConfig::gandtr_hedngan()
            .with_norm(args.norm)
            .with_init_scheme(args.init)
            .with_ndf(args.ngf)
            .try_init(&train_device)?,
        student: hed(&hed_weights, &train_device)?,
    };
    let teacher = hed(&hed_weights, &train_device)?;
    let t = Instant::now();
    let gan_dir = CheckpointDir::new(args.out.join("gan"))?;
    let (nets, gan_log) = HedNGanTrainer::new(gan_cfg, &batches, teacher, &train_device)?
        .train(nets, Some(&gan_dir))?;
    let (first, last) = (
        gan_log.epochs.first().context("no GAN epoch")?,
        gan_log.epochs.last().context("no GAN epoch")?,
    );
    println!(
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
    let translator = Translator::new(nets.generator.valid(), &device);

    // translation grid: day crops | translated | CLAHE(translated)
    let sample_paths: Vec<PathBuf> = image_files(data.join("gan/trainA"))?
        .into_iter()
        .take(6)
        .collect();
    let sample = pipeline::load_square(&sample_paths, 128, &device)?;
    let fake = translator.translate(sample.clone())?;
    let clahe = nightvision::metric::data::Augmentation::augment(
        &Clahe::dsa(),
        fake.clone(),
        &mut nightvision::core::rng::seeded(0),
    );
    pipeline::image_grid(&[sample, fake, clahe], args.out.join("translations.png"))?;

    // translation quality on the held-out test places (OUT/translated/, OUT/held-out.png)
    let bench = TranslationBench::new(&data, &device)?;
    let mut rows = bench.reference_rows(args.seed)?;
    rows.push(bench.run_generator("HEDN-GAN", &args.out, |_, x| translator.translate(x))?);
    let quality = bench.report(rows)?;
    println!("{}", quality.to_markdown());
    if args.gan_only {
        quality.write(&args.out)?;
        return Ok(());
    }

    // 2. fine-tuning with synthetic night anchors (and the baseline without)
    let pkl = data.join("cirtorch/train/synthetic-places/synthetic-places.pkl");
    let ims = data.join("cirtorch/train/synthetic-places/ims");
    let db = TupleDatabase::from_cirtorch_pickle(&pkl, "train", &ims)?;
    let eval_cfg = ExtractConfig {
        max_side: 320,
        ..ExtractConfig::default()
    };
    let ns = [1, 5, 10];
    // DSA's models take CLAHE input at test time too (papers.md A.8)
    let clahe_cfg = ExtractConfig {
        clahe: Some(ClaheConfig::default()),
        ..eval_cfg.clone()
    };
    let base = pipeline::mobilenet_v2_gem(&device)?;
    let mut eval = pipeline::Evaluator::new(&data, &ns, Some(&args.out.join("descriptors")));
    eval.evaluate(&base, "off-the-shelf", &eval_cfg, &device)?;
    eval.evaluate(&base, "off-the-shelf + CLAHE", &clahe_cfg, &device)?;
    let finetune = |hooks: AugmentHooks, dir: &str| -> Result<nightvision::metric::CirNet> {
        let cfg = TupleTrainerConfig {
            epochs: args.epochs,
            lr: args.lr,
            weight_decay: 5e-4,
            gamma: 0.99,
            image_size: args.image_size,
            mining: MiningConfig {
                neg_num: 5,
                query_size: args.tuples,
                pool_size: 400,
            },
            anchors: AnchorStrategy::Random,
            seed: args.seed,
            progress: true,
            ..TupleTrainerConfig::default()
        };
        Ok(pipeline::finetune_gem(
            &db,
            hooks,
            cfg,
            &args.out.join(dir),
            &device,
        )?)
    };
    if args.baseline {
        let net = finetune(
            AugmentHooks::default().with_post(Clahe::dsa()),
            "finetune-baseline",
        )?;
        eval.evaluate(&net, BASELINE, &clahe_cfg, &device)?;
    }
    let hooks = AugmentHooks {
        augmentation: Some(std::sync::Arc::new(translator)),
        anchors: Some(AnchorSelection::Hashed(TranslationSubset::default())),
        positives: false,
        query_copy: false,
        post: Some(std::sync::Arc::new(Clahe::dsa())),
    };
    let net = finetune(hooks, "finetune-dsa")?;
    eval.evaluate(
        &net,
        "fine-tuned, DSA (HEDN-GAN anchors + CLAHE)",
        &clahe_cfg,
        &device,
    )?;

    // 3. report
    let report = eval.report(
        "Dark Side Augmentation on synthetic-places (MobileNetV2-GeM)",
        Some(BASELINE),
    )?;
    pipeline::write_report(&report, Some(&quality), &args.out)?;
    println!(
        "dark_side done in {:.0} s → {}/{{report.json,report.md,recall.png,translations.png,held-out.png,translated/,translation-quality.md,gan/log.json}}",
        t0.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}
