//! Similarity Min-Max (Luo et al., ICCV 2023; papers.md C) for visual place recognition on the
//! embedded world — zero-shot: no night image is used for training.
//!
//! 1. **Minimise** (C.1, C.2): the darkening network D learns to make day images as dissimilar as
//!    possible, under a frozen feature extractor F (MobileNetV2 with the real ImageNet weights,
//!    last feature map; the paper uses ResNet-101 `layer4`), from their darkened versions, kept
//!    realistic by the exposure, colour, loose-TV and flexibility regularisers.
//! 2. **Maximise** (C.3, `train_night.py`): D is frozen; MobileNetV2-GeM is fine-tuned with the
//!    cirtorch contrastive loss (margin 0.85) on tuples whose darkened query copy is an extra
//!    positive (random exposure U(0, 0.2) + patch and pixel noise). A baseline is fine-tuned the
//!    same way without the copy.
//! 3. **Evaluation**: Recall@1/5/10 at 25 m of day and night queries against the day database
//!    (`report.json`, `report.md`, `recall.png`); `darkened.png` shows day images and three dark
//!    views of each; `darkening/log.json` the D losses.
//!
//! ```text
//! cargo run --release --example similarity_minmax -- [--data WORLD_DIR] [--out out/similarity_minmax]
//!     [--d-iterations 100] [--d-batch 4] [--d-lr 1e-4] [--d-only] [--crop 128] [--epochs 2] [--tuples 40] [--lr 1e-5]
//!     [--image-size 160] [--no-baseline] [--seed 0]
//! ```
//! The paper's schedule (5000 D iterations of batch 8 at 224², 5 fine-tuning epochs of 22 000
//! tuples at 362 px with ResNet-101) is cut to a few CPU minutes; the mechanism is the same.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use nightvision::backbones::MobileNetV2Config;
use nightvision::core::checkpoint::{CheckpointDir, save_json};
use nightvision::core::rng::derived;
use nightvision::darkening::train::{DarkeningTrainer, DarkeningTrainerConfig, frozen};
use nightvision::darkening::{DarkView, DarkViewConfig, DarkeningNetConfig};
use nightvision::gan::data::{ScaleCrop, image_files};
use nightvision::metric::data::{AugmentHooks, MiningConfig, TupleDatabase};
use nightvision::metric::multiscale::ExtractConfig;
use nightvision::metric::train::{TupleLoss, TupleTrainerConfig};
use nightvision::metric::{CirNet, ContrastiveLossConfig};
use nightvision::pipeline::{self, Darkening};
use nightvision::quality::TranslationBench;

struct Args {
    data: Option<PathBuf>,
    out: PathBuf,
    d_iterations: u64,
    d_batch: usize,
    d_lr: f64,
    d_only: bool,
    crop: usize,
    epochs: usize,
    tuples: usize,
    lr: f64,
    image_size: usize,
    baseline: bool,
    seed: u64,
}

fn parse() -> Result<Args> {
    let mut a = pico_args::Arguments::from_env();
    let args = Args {
        data: a.opt_value_from_str("--data")?,
        out: a
            .opt_value_from_str("--out")?
            .unwrap_or_else(|| PathBuf::from("out/similarity_minmax")),
        d_iterations: a.opt_value_from_str("--d-iterations")?.unwrap_or(100),
        d_batch: a.opt_value_from_str("--d-batch")?.unwrap_or(4),
        d_lr: a.opt_value_from_str("--d-lr")?.unwrap_or(1e-4),
        d_only: a.contains("--d-only"),
        crop: a.opt_value_from_str("--crop")?.unwrap_or(128),
        epochs: a.opt_value_from_str("--epochs")?.unwrap_or(2),
        tuples: a.opt_value_from_str("--tuples")?.unwrap_or(40),
        lr: a.opt_value_from_str("--lr")?.unwrap_or(1e-5),
        image_size: a.opt_value_from_str("--image-size")?.unwrap_or(160),
        baseline: !a.contains("--no-baseline"),
        seed: a.opt_value_from_str("--seed")?.unwrap_or(0),
    };
    let rest = a.finish();
    if !rest.is_empty() {
        bail!("unexpected arguments: {rest:?}");
    }
    Ok(args)
}

/// The baseline's label: fine-tuned the same way, without the darkened query copy.
const BASELINE: &str = "fine-tuned (no darkening)";

fn main() -> Result<()> {
    let args = parse()?;
    let t0 = Instant::now();
    let data = pipeline::ensure_world(args.data.as_deref(), &args.out)?;
    let device = Device::default();
    let train_device = device.clone().autodiff();
    std::fs::create_dir_all(&args.out)?;

    // 1. minimise: train D against a frozen MobileNetV2
    let weights = pipeline::real_weights(
        "the darkening stage's feature extractor",
        "weights/mobilenet_v2_imagenet.safetensors",
    )?;
    let mut trunk = MobileNetV2Config::new().init(&train_device);
    trunk.load_torchvision(&weights)?;
    let trunk = frozen(trunk);
    let extractor = move |x: Tensor<4>| trunk.forward(x);
    let d_cfg = DarkeningTrainerConfig {
        iterations: args.d_iterations,
        checkpoint_every: 50,
        lr: args.d_lr,
        milestones: vec![args.d_iterations * 2 / 3],
        seed: args.seed,
        ..DarkeningTrainerConfig::new()
    };
    let mut trainer = DarkeningTrainer::new(
        d_cfg,
        DarkeningNetConfig::new().init(&device),
        extractor,
        &device,
    )?;
    // day images of the training places only (the GAN's domain A): no test place is seen
    let day = image_files(data.join("gan/trainA"))?;
    let crop = ScaleCrop {
        size: args.crop,
        min_scale: 0.8,
    };
    let mut batch_error = None;
    let mut logs = Vec::new();
    let t = Instant::now();
    let ckpt = CheckpointDir::new(args.out.join("darkening"))?;
    trainer.train(
        |step| {
            let mut rng = derived(args.seed ^ 0xda4c, step);
            let mut xs = Vec::with_capacity(args.d_batch);
            for _ in 0..args.d_batch {
                let i = rand::Rng::random_range(&mut rng, 0..day.len());
                let img = match nightvision::core::image::load_rgb(&day[i]) {
                    Ok(img) => img,
                    Err(e) => {
                        batch_error = Some(e);
                        return None;
                    }
                };
                match crop.apply(&img, &mut rng, &device) {
                    Ok(x) => xs.push(x),
                    Err(e) => {
                        batch_error = Some(nightvision::core::CoreError::InvalidArgument {
                            name: "crop",
                            reason: e.to_string(),
                        });
                        return None;
                    }
                }
            }
            Some(Tensor::cat(xs, 0))
        },
        Some(&ckpt),
        |log| logs.push(log.clone()),
    )?;
    if let Some(e) = batch_error {
        return Err(e.into());
    }
    save_json(args.out.join("darkening/log.json"), &logs)?;
    if let (Some(a), Some(b)) = (logs.first(), logs.last()) {
        println!(
            "darkening D: {} steps in {:.0} s; L_sim {:.3} → {:.3}, total {:.3} → {:.3}",
            logs.len(),
            t.elapsed().as_secs_f64(),
            a.losses.sim,
            b.losses.sim,
            a.losses.total,
            b.losses.total
        );
    }
    let d_net = trainer.into_net().valid();
    // exposure response on the held-out day queries: D's output luminance per requested exposure
    let probe = image_files(data.join("vpr/images/test/queries"))?;
    let probe = pipeline::load_square(&probe[..probe.len().min(16)], 128, &device)?;
    let mut response = Vec::new();
    for e in [0.05f32, 0.1, 0.2, 0.3, 0.4] {
        let [b, ..] = probe.dims();
        let exposure = Tensor::<4>::full([b, 1, 1, 1], e, &device);
        let y = d_net
            .try_forward(probe.clone(), exposure)?
            .image
            .clamp(0.0, 1.0);
        let lum: f32 = y.mean().into_scalar();
        response.push(serde_json::json!({"exposure": e, "mean_output": lum}));
    }
    println!(
        "D exposure response (held-out day queries, channel mean): {}",
        serde_json::to_string(&response)?
    );
    save_json(args.out.join("darkening/exposure-response.json"), &response)?;
    let view = DarkView::new(d_net, DarkViewConfig::vpr())?;
    let darkening = Darkening::new(view, &device);

    // picture: day | three dark views
    let sample_paths: Vec<PathBuf> = day
        .iter()
        .step_by(day.len().div_ceil(6).max(1))
        .cloned()
        .collect();
    let sample = pipeline::load_square(&sample_paths, 128, &device)?;
    let mut rows = vec![sample.clone()];
    let mut rng = derived(args.seed, 7);
    for _ in 0..3 {
        rows.push(nightvision::metric::data::Augmentation::augment(
            &darkening,
            sample.clone(),
            &mut rng,
        ));
    }
    pipeline::image_grid(&rows, args.out.join("darkened.png"))?;

    // quality of one seeded dark view per held-out day query (OUT/translated/, OUT/held-out.png)
    let bench = TranslationBench::new(&data, &device)?;
    let mut quality_rows = bench.reference_rows(args.seed)?;
    quality_rows.push(bench.run_generator(
        "darkening network D (dark view)",
        &args.out,
        |i, x| {
            let mut rng = derived(args.seed, 1000 + i as u64);
            Ok(nightvision::metric::data::Augmentation::augment(
                &darkening, x, &mut rng,
            ))
        },
    )?);
    let quality = bench.report(quality_rows)?;
    println!("{}", quality.to_markdown());
    if args.d_only {
        quality.write(&args.out)?;
        return Ok(());
    }

    // 2. maximise: fine-tune with the darkened query copy as an extra positive
    let pkl = data.join("cirtorch/train/synthetic-places/synthetic-places.pkl");
    let ims = data.join("cirtorch/train/synthetic-places/ims");
    let db = TupleDatabase::from_cirtorch_pickle(&pkl, "train", &ims)?;
    let eval_cfg = ExtractConfig {
        max_side: 320,
        ..ExtractConfig::default()
    };
    let ns = [1, 5, 10];
    let base = pipeline::mobilenet_v2_gem(&device)?;
    let mut eval = pipeline::Evaluator::new(&data, &ns, Some(&args.out.join("descriptors")));
    eval.evaluate(&base, "off-the-shelf", &eval_cfg, &device)?;
    let finetune = |hooks: AugmentHooks, dir: &str| -> Result<CirNet> {
        let cfg = TupleTrainerConfig {
            epochs: args.epochs,
            lr: args.lr,
            image_size: args.image_size,
            loss: TupleLoss::Contrastive(ContrastiveLossConfig::new().with_margin(0.85)),
            mining: MiningConfig {
                neg_num: 5,
                query_size: args.tuples,
                pool_size: 400,
            },
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
        let net = finetune(AugmentHooks::default(), "finetune-baseline")?;
        eval.evaluate(&net, BASELINE, &eval_cfg, &device)?;
    }
    let net = finetune(AugmentHooks::query_copy(darkening), "finetune-smm")?;
    eval.evaluate(
        &net,
        "fine-tuned, SMM (darkened query copy)",
        &eval_cfg,
        &device,
    )?;

    // 3. report
    let report = eval.report(
        "Similarity Min-Max on synthetic-places (MobileNetV2-GeM)",
        Some(BASELINE),
    )?;
    pipeline::write_report(&report, Some(&quality), &args.out)?;
    println!(
        "similarity_minmax done in {:.0} s → {}/{{report.json,report.md,recall.png,darkened.png,held-out.png,translated/,translation-quality.md,darkening/log.json}}",
        t0.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}
