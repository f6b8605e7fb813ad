//! NocPlace (Liu et al., arXiv 2402.17159; papers.md B) on the embedded world:
//!
//! 1. **The translator** (B.1): CUT's anti-aliased generator and PatchGAN with PatchNCE, trained
//!    on the unpaired `gan/trainA` (day) and `gan/trainB` (night) images. `--translator negcut`
//!    switches to NEG-CUT's learned hard negatives, NocPlace's choice. NEG-CUT's NCE underflows to
//!    0 after its first iteration (F starts at xavier gain 0.02 and Adam's first step aligns every
//!    query away from the negatives) and comes back after ~30 iterations — in this trainer as in a
//!    PyTorch re-implementation of the reference (`crates/nightgen-gan/scripts/negcut_dynamics.py`)
//!    — and costs 3× CUT's time per iteration, so on this CPU-sized schedule plain CUT is the
//!    default.
//! 2. **The night dataset** (B.1, NPR): every image of the CosPlace training folder
//!    (`cosplace/train`) is translated once, keeping its UTM name.
//! 3. **The daytime model** (B.2, B.3): a CosPlace network (MobileNetV2 with the real ImageNet
//!    weights → L2 → GeM → FC 512 → L2) trained with CosFace (s 30, m 0.4) on the day images —
//!    the stand-in for the released daytime CosPlace checkpoint NocPlace starts from.
//! 4. **NocPlace fine-tuning** (B.4, B.5): the daytime model, fine-tuned on the translated night
//!    images with CosFace + inherited knowledge transfer (the daytime model's descriptors of the
//!    *day* versions, KL at T = 4, λ 1).
//! 5. **Evaluation** (B.6, B.7): Recall@1/5/10 at 25 m, day and night queries against the day
//!    database, for the daytime model, the NocPlace model, and partial divide-and-conquer (the
//!    database described once by the daytime model and cached, the queries by the NocPlace model).
//!    `report.json`, `report.md`, `recall.png`; `translations.png` (day | translated night).
//!
//! ```text
//! cargo run --release --example nocplace -- [--data WORLD_DIR] [--out out/nocplace]
//!     [--gan-iterations 150] [--crop 64] [--gan-lr 5e-4] [--ngf 16] [--blocks 6] [--patches 64]
//!     [--translator cut|negcut] [--day-iterations 30] [--night-iterations 30] [--batch 8]
//!     [--image-size 160] [--seed 0]
//! ```
//! Every stage checkpoints into `OUT/` and resumes. The schedule is a CPU-sized sketch of the
//! paper's (NEG-CUT 400 epochs at 512², SF-XL at 512² for 50 epochs of 10 000 iterations of 32).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::tensor::{Device, TensorData};
use nightvision::anchors::{CosPlaceConfig, build_classes_from_names};
use nightvision::core::checkpoint::CheckpointDir;
use nightvision::core::image::save_rgb;
use nightvision::eval::{
    DescriptorCache, FirstHits, FnEncoder, GroundTruth, KnnConfig, Metric, PdcOptions, VprDataset,
    exact_knn, partial_divide_and_conquer,
};
use nightvision::gan::data::{ScaleCrop, UnpairedBatches, image_files};
use nightvision::gan::train_cut::{CutConfig, CutMode, CutTrainer};
use nightvision::gan::{LinearDecay, NLayerDiscriminatorConfig, ResnetGeneratorConfig};
use nightvision::metric::data::{AugmentHooks, ClassSampler, ImageSource};
use nightvision::metric::multiscale::ExtractConfig;
use nightvision::metric::train::{CosPlaceTrainer, CosPlaceTrainerConfig};
use nightvision::metric::{Backbone, BackboneConfig, CosPlaceNet, CosPlaceNetConfig};
use nightvision::pipeline::{self, Translator};
use nightvision::quality::TranslationBench;

struct Args {
    data: Option<PathBuf>,
    out: PathBuf,
    gan_iterations: usize,
    crop: usize,
    gan_lr: f64,
    ngf: usize,
    blocks: usize,
    patches: usize,
    day_iterations: usize,
    night_iterations: usize,
    batch: usize,
    image_size: usize,
    translator: CutMode,
    seed: u64,
}

fn parse() -> Result<Args> {
    let mut a = pico_args::Arguments::from_env();
    let args = Args {
        data: a.opt_value_from_str("--data")?,
        out: a
            .opt_value_from_str("--out")?
            .unwrap_or_else(|| PathBuf::from("out/nocplace")),
        gan_iterations: a.opt_value_from_str("--gan-iterations")?.unwrap_or(150),
        crop: a.opt_value_from_str("--crop")?.unwrap_or(64),
        gan_lr: a.opt_value_from_str("--gan-lr")?.unwrap_or(5e-4),
        ngf: a.opt_value_from_str("--ngf")?.unwrap_or(16),
        blocks: a.opt_value_from_str("--blocks")?.unwrap_or(6),
        patches: a.opt_value_from_str("--patches")?.unwrap_or(64),
        day_iterations: a.opt_value_from_str("--day-iterations")?.unwrap_or(30),
        night_iterations: a.opt_value_from_str("--night-iterations")?.unwrap_or(30),
        batch: a.opt_value_from_str("--batch")?.unwrap_or(8),
        image_size: a.opt_value_from_str("--image-size")?.unwrap_or(160),
        translator: match a
            .opt_value_from_str::<_, String>("--translator")?
            .as_deref()
        {
            Some("negcut") => CutMode::NegCut,
            None | Some("cut") => CutMode::Cut,
            Some(other) => bail!("--translator {other:?}: negcut or cut"),
        },
        seed: a.opt_value_from_str("--seed")?.unwrap_or(0),
    };
    let rest = a.finish();
    if !rest.is_empty() {
        bail!("unexpected arguments: {rest:?}");
    }
    Ok(args)
}

/// A CosPlace network on the real ImageNet MobileNetV2 trunk (all layers trainable).
fn cosplace_net(device: &Device) -> Result<CosPlaceNet> {
    let weights = pipeline::real_weights(
        "the CosPlace network",
        "weights/mobilenet_v2_imagenet.safetensors",
    )?;
    let mut net = CosPlaceNetConfig::new(BackboneConfig::mobilenet_v2(), 512)
        .with_train_all_layers(true)
        .init(device)?;
    if let Backbone::MobileNetV2(trunk) = &mut net.backbone {
        trunk.load_torchvision(&weights)?;
    }
    Ok(net)
}

fn main() -> Result<()> {
    let args = parse()?;
    let t0 = Instant::now();
    let data = pipeline::ensure_world(args.data.as_deref(), &args.out)?;
    let device = Device::default();
    let train_device = device.clone().autodiff();
    std::fs::create_dir_all(&args.out)?;

    // 1. the translator (CUT or NEG-CUT)
    let day = ImageSource::Files(image_files(data.join("gan/trainA"))?);
    let night = ImageSource::Files(image_files(data.join("gan/trainB"))?);
    let batches = UnpairedBatches::new(
        day,
        night,
        ScaleCrop {
            size: args.crop,
            min_scale: 0.8,
        },
        1,
    )?
    .with_shorter_side(Some(args.crop * 3 / 2));
    let cut_cfg = CutConfig {
        lr: args.gan_lr,
        num_patches: args.patches,
        schedule: LinearDecay::new(1, 1),
        iterations_per_epoch: args.gan_iterations.div_ceil(2),
        checkpoint_every: 50,
        seed: args.seed,
        progress: true,
        ..match args.translator {
            CutMode::NegCut => CutConfig::negcut(),
            CutMode::Cut => CutConfig::cut(),
        }
    };
    let nets = cut_cfg.init_nets(
        ResnetGeneratorConfig::cut()
            .with_ngf(args.ngf)
            .with_n_blocks(args.blocks)
            .try_init(&train_device)?,
        NLayerDiscriminatorConfig::cut()
            .with_ndf(args.ngf)
            .with_init_seed(1)
            .try_init(&train_device)?,
        &train_device,
    )?;
    let t = Instant::now();
    let (nets, log) = CutTrainer::new(cut_cfg, &batches, &train_device)?.train(
        nets,
        Some(&CheckpointDir::new(args.out.join("translator"))?),
    )?;
    let (first, last) = (
        log.epochs.first().context("no translator epoch")?,
        log.epochs.last().context("no translator epoch")?,
    );
    println!(
        "translator ({:?}): {} iterations in {:.0} s; epoch means {} → {}",
        args.translator,
        log.iterations.len(),
        t.elapsed().as_secs_f64(),
        serde_json::to_string(&first.mean)?,
        serde_json::to_string(&last.mean)?
    );
    let translator = Translator::new(nets.generator.valid(), &device);
    // translation quality on the held-out test places (OUT/translated/, OUT/held-out.png)
    let bench = TranslationBench::new(&data, &device)?;
    let mut rows = bench.reference_rows(args.seed)?;
    let name = match args.translator {
        CutMode::Cut => "CUT",
        _ => "NEG-CUT",
    };
    rows.push(bench.run_generator(name, &args.out, |_, x| translator.translate(x))?);
    let quality = bench.report(rows)?;
    println!("{}", quality.to_markdown());

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
    println!(
        "translated {} CosPlace training images in {:.1} s",
        night_images.len(),
        t.elapsed().as_secs_f64()
    );
    let sample: Vec<PathBuf> = train_paths
        .iter()
        .step_by(train_paths.len().div_ceil(6).max(1))
        .cloned()
        .collect();
    let day_sample = pipeline::load_square(&sample, 128, &device)?;
    pipeline::image_grid(
        &[day_sample.clone(), translator.translate(day_sample)?],
        args.out.join("translations.png"),
    )?;
    if let Some(img) = night_images.first() {
        save_rgb(args.out.join("night-example.png"), img)?;
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
        .filter(|g| g.classes.len() >= args.batch)
        .map(|g| ClassSampler::from_cosplace_group(g, 1))
        .collect::<Result<_, _>>()?;
    if groups.is_empty() {
        bail!(
            "no CosPlace group has {} classes of ≥ 4 images ({} classes in {} groups): lower --batch",
            args.batch,
            classes.num_classes(),
            classes.groups.len()
        );
    }
    println!(
        "CosPlace: {} classes in {} groups, {} groups with ≥ {} classes used",
        classes.num_classes(),
        classes.groups.len(),
        groups.len(),
        args.batch
    );
    let cosplace_cfg = |iterations: usize| CosPlaceTrainerConfig {
        epochs: groups.len(),
        iterations_per_epoch: iterations.div_ceil(groups.len()),
        batch_size: args.batch,
        image_size: args.image_size,
        seed: args.seed,
        progress: true,
        ..CosPlaceTrainerConfig::default()
    };

    // 3. the daytime model
    let t = Instant::now();
    let day_model = CosPlaceTrainer::new(
        cosplace_cfg(args.day_iterations),
        &day_source,
        groups.clone(),
        None,
        AugmentHooks::default(),
        &device,
    )?
    .train(
        cosplace_net(&device)?,
        Some(&CheckpointDir::new(args.out.join("day-model"))?),
    )?;
    println!(
        "daytime CosPlace model: loss per epoch {:?} in {:.0} s",
        day_model
            .log
            .epochs
            .iter()
            .map(|e| e.mean_loss)
            .collect::<Vec<_>>(),
        t.elapsed().as_secs_f64()
    );
    let day_net = day_model.net.valid();

    // 4. NocPlace: night images, inherited descriptors of their day versions
    let desc_cfg = ExtractConfig {
        max_side: args.image_size,
        ..ExtractConfig::default()
    };
    let inherited = pipeline::describe(&day_net, &train_paths, &desc_cfg, &device)?;
    let inherited = burn::tensor::Tensor::<2>::from_data(
        TensorData::new(
            inherited.as_slice().to_vec(),
            [inherited.rows(), inherited.dim()],
        ),
        &device,
    );
    let t = Instant::now();
    let noc = CosPlaceTrainer::new(
        cosplace_cfg(args.night_iterations),
        &night_source,
        groups,
        Some(inherited),
        AugmentHooks::default(),
        &device,
    )?
    .train(
        day_net.clone(),
        Some(&CheckpointDir::new(args.out.join("nocplace-model"))?),
    )?;
    println!(
        "NocPlace fine-tuning (CosFace + IKT): loss per epoch {:?} in {:.0} s",
        noc.log
            .epochs
            .iter()
            .map(|e| e.mean_loss)
            .collect::<Vec<_>>(),
        t.elapsed().as_secs_f64()
    );
    let noc_net = noc.net.valid();

    // 5. evaluation
    let eval_cfg = ExtractConfig {
        max_side: 320,
        ..ExtractConfig::default()
    };
    let ns = [1, 5, 10];
    let mut eval = pipeline::Evaluator::new(&data, &ns, Some(&args.out.join("descriptors")));
    eval.evaluate(&day_net, "daytime CosPlace", &eval_cfg, &device)?;
    eval.evaluate(&noc_net, "NocPlace", &eval_cfg, &device)?;
    // partial divide-and-conquer: day database by the daytime model (cached), queries by NocPlace
    let cache = DescriptorCache::new(args.out.join("pdc-cache"));
    let ds = VprDataset::open(data.join("tokyo/images/test"), "queries")?;
    let positives = GroundTruth::from_dataset(&ds)?.positives(25.0)?;
    let db_paths: Vec<PathBuf> = ds.database.images.iter().map(|i| i.path.clone()).collect();
    let q_paths: Vec<PathBuf> = ds.queries.images.iter().map(|i| i.path.clone()).collect();
    let encoder = |net: &CosPlaceNet| {
        let net = net.clone();
        let device = device.clone();
        let cfg = eval_cfg.clone();
        move |paths: &[PathBuf]| -> Result<Vec<f32>, nightvision::eval::BoxError> {
            Ok(pipeline::describe(&net, paths, &cfg, &device)?.into_vec())
        }
    };
    let mut db_enc = FnEncoder::new("daytime-cosplace", 512, encoder(&day_net));
    let mut q_enc = FnEncoder::new("nocplace", 512, encoder(&noc_net));
    let out = partial_divide_and_conquer(
        &db_paths,
        &q_paths,
        &mut db_enc,
        &mut q_enc,
        &cache,
        &PdcOptions {
            db_batch_size: 16,
            extra: format!("max_side={}", eval_cfg.max_side),
            progress: false,
        },
    )?;
    let nn = exact_knn(
        &out.database,
        &out.queries,
        10,
        &KnnConfig::new(Metric::L2),
        &device,
    )?;
    eval.push(pipeline::Evaluation {
        label: "NocPlace + partial divide-and-conquer".into(),
        hits: FirstHits::from_neighbours(&nn, &positives)?,
        ns: ns.to_vec(),
    })?;
    let report = eval.report(
        "NocPlace on synthetic-places (MobileNetV2 CosPlace, 512-d)",
        Some("daytime CosPlace"),
    )?;
    pipeline::write_report(&report, Some(&quality), &args.out)?;
    println!(
        "nocplace done in {:.0} s → {}/{{report.json,report.md,recall.png,translations.png,held-out.png,translated/,translation-quality.md}}",
        t0.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}
