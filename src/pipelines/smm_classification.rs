//! Similarity Min-Max's classification form (Luo et al., ICCV 2023; docs/PAPERS.md C.3,
//! `classification/train.py`) on an exported world: a day→night place-classification task,
//! zero-shot — no night image is used for training.
//!
//! **The task.** The classes are the CosPlace classes of the world's `cosplace/train` set
//! (10 m cells × 30° heading bins, [`crate::anchors::cosplace`]); every fifth day image of a class
//! is held out as a day test image, the others train. The night test images are the world's
//! night renders (`gan/trainB`) whose position and heading fall into one of those classes — the
//! same places at night, never seen in training (the darkening network D trains on `gan/trainA`,
//! day images only).
//!
//! **The stages** (each checkpointed into its own folder of `OUT` and resumed from there):
//! 1. D, exactly as [`super::similarity_minmax::train_darkening`] trains it (`OUT/darkening`).
//! 2. The day-trained classifier (`OUT/classifier-day`): MobileNetV2 with the real ImageNet
//!    weights and a new linear classifier, trained with cross-entropy on day images — the
//!    daytime model the paper starts from and its baseline.
//! 3. From it, two continuations with the same schedule:
//!    - **SMM** (`OUT/classifier-smm`): cross-entropy on day images and on their dark views
//!      (D at exposure `U(0, 0.2)` plus patch and pixel noise, `DarkViewConfig::classification`)
//!      plus the BYOL loss through a momentum encoder ([`crate::darkening::classify`]);
//!    - **the control** (`OUT/classifier-day-continued`): cross-entropy on day images only, so
//!      that a gain of SMM is not a gain of the longer schedule.
//! 4. Top-1 accuracy of every classifier on the day and the night test images with 95 % bootstrap
//!    intervals, and paired comparisons (bootstrap interval of the difference, exact McNemar
//!    test) of SMM against both: `report.{json,md}`, and `views.png` (day training images | their
//!    dark views | night test images of the same classes).
//!
//! Augmentation as the reference's: `RandomResizedCrop(size, scale (0.5, 1))` and a horizontal
//! flip, the dark view made from that crop, then optionally a colour jitter drawn anew for each
//! view ([`crate::core::jitter`]; the reference's `ColorJitter(0.3, 0.3, 0.3, 0.3)` is
//! `--jitter 0.3 --hue 0.3`, off by default: see [`SmmClassificationConfig::jitter`]), ImageNet
//! normalisation; the day-only stages get the same crop, flip and jitter. Test images are resized to `8/7 ×` the size on their shorter side and
//! centre-cropped.
//!
//! ```
//! use nightvision::pipelines::smm_classification::SmmClassificationConfig;
//! let cfg = SmmClassificationConfig::new().with_epochs(2);
//! assert_eq!((cfg.batch, cfg.image_size, cfg.lr), (32, 96, 1e-3));
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::config::Config;
use burn::tensor::{Device, Tensor};
use serde::Serialize;

use super::similarity_minmax::{
    SimilarityMinMaxConfig, check_darkening_settings, darkening_network,
};
use super::{files, invalid, prepare};
use crate::anchors::cosplace::{
    ClassId, CosPlaceConfig, build_classes_from_names, class_and_group, parse_utm_heading,
};
use crate::backbones::{MobileNetV2, MobileNetV2Config};
use crate::core::Normalization;
use crate::core::checkpoint::{CheckpointDir, save_json};
use crate::core::image::{
    Rgb32FImage, center_crop, load_rgb, resize_bilinear, resize_shorter_side, to_tensor,
};
use crate::core::jitter::{ColorJitter, ColorJitterConfig};
use crate::core::rng::derived;
use crate::darkening::classify::{ByolClassifier, ByolStepLog, ByolTrainer, ByolTrainerConfig};
use crate::darkening::{ByolConfig, DarkView, DarkViewConfig};
use crate::eval::{Bootstrap, PairedComparison, RecallCi, bootstrap_recall, paired_bootstrap};
use crate::gan::data::image_files;
use crate::metric::train::random_resized_crop_box;
use crate::pipeline;

/// The day-trained classifier's label.
pub const DAY: &str = "day-trained classifier";
/// The control's label: the day classifier trained on for the same steps as SMM, day images only.
pub const CONTROL: &str = "day classifier, continued (day images only)";
/// The method's label.
pub const SMM: &str = "SMM (dark views, CE + BYOL)";

/// Every knob of the pipeline; the defaults are the `smm_classification` example's.
#[derive(Config, Debug, clap::Args)]
pub struct SmmClassificationConfig {
    /// The exported world to run on (`synthetic_places --out`, or any folder in its format);
    /// without it the default world is rendered into OUT/world.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Output folder: checkpoints of every stage (resumed from), the report, pictures.
    #[arg(long, default_value = "out/smm_classification")]
    #[config(default = "PathBuf::from(\"out/smm_classification\")")]
    pub out: PathBuf,
    /// Darkening-network steps (as `similarity_minmax --d-iterations`).
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
    /// Darkening-network training crop (px).
    #[arg(long, default_value_t = 128)]
    #[config(default = 128)]
    pub crop: usize,
    /// A trained darkening network to use instead of training one (as `similarity_minmax
    /// --darkening-weights`); without it, the one shipped in `models/` where there is one.
    #[arg(long)]
    pub darkening_weights: Option<PathBuf>,
    /// Train D with the `--d-*` settings even where `models/` ships one.
    #[arg(long)]
    #[config(default = false)]
    pub train_darkening: bool,
    /// Epochs of the day-trained classifier.
    #[arg(long, default_value_t = 4)]
    #[config(default = 4)]
    pub day_epochs: usize,
    /// Epochs of each continuation (SMM and the control).
    #[arg(long, default_value_t = 4)]
    #[config(default = 4)]
    pub epochs: usize,
    /// Batch size (the reference's 32).
    #[arg(long, default_value_t = 32)]
    #[config(default = 32)]
    pub batch: usize,
    /// Training and test image size (square, px; the reference's 224).
    #[arg(long, default_value_t = 96)]
    #[config(default = 96)]
    pub image_size: usize,
    /// Adam learning rate (the reference's 1e-3; ×0.1 after one and two thirds of each stage's
    /// steps, as its milestones at epochs 30 and 60 of 90).
    #[arg(long, default_value_t = 1e-3)]
    #[config(default = 1e-3)]
    pub lr: f64,
    /// Weight of the BYOL loss (the reference's 0.1).
    #[arg(long, default_value_t = 0.1)]
    #[config(default = 0.1)]
    pub byol_weight: f64,
    /// Strength of the colour jitter's brightness, contrast and saturation (the reference's
    /// 0.3), drawn anew for every image and view in every stage. The default 0 turns them off.
    /// On this world, two runs without jitter gave SMM +4.4 and +7.3 points at night over the
    /// control (p < 0.01). With the reference's 0.3, the gain was gone (docs/PAPERS.md,
    /// "Similarity Min-Max's classification form").
    #[arg(long, default_value_t = 0.0)]
    #[config(default = 0.0)]
    pub jitter: f64,
    /// Strength of the colour jitter's hue shift (the reference's 0.3; at most 0.5). The default
    /// 0 keeps the hue: in this world the façades' colours are what tells places apart, and a
    /// hue shift of up to ±0.3 left the day classifier at 31 % training accuracy after
    /// three epochs (docs/PAPERS.md, "Similarity Min-Max's classification form").
    #[arg(long, default_value_t = 0.0)]
    #[config(default = 0.0)]
    pub hue: f64,
    /// Every N-th day image of a class is a day test image.
    #[arg(long, default_value_t = 5)]
    #[config(default = 5)]
    pub test_every: usize,
    /// Start every stage over: remove the checkpoints in OUT (otherwise a run resumes, and
    /// refuses a folder trained with other settings, naming them).
    #[arg(long)]
    #[config(default = false)]
    pub restart: bool,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 0)]
    #[config(default = 0)]
    pub seed: u64,
}

/// The classification task built from a world (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct PlaceTask {
    /// Number of classes.
    pub classes: usize,
    /// Training images and their classes.
    pub train: Vec<(PathBuf, usize)>,
    /// Day test images and their classes.
    pub day_test: Vec<(PathBuf, usize)>,
    /// Night test images and their classes.
    pub night_test: Vec<(PathBuf, usize)>,
}

impl PlaceTask {
    /// Builds the task from `data/cosplace/train` (classes, day images) and `data/gan/trainB`
    /// (night images); every `test_every`-th image of a class is a day test image.
    ///
    /// # Errors
    /// Unreadable folders, file names without UTM fields and heading (naming the file), a world
    /// without classes or without night images of them, `test_every < 2`.
    pub fn from_world(data: &Path, test_every: usize) -> pipeline::Result<Self> {
        if test_every < 2 {
            return Err(invalid(
                "test_every",
                format!("{test_every}: at least 2 (one test image per N, the rest train)"),
            ));
        }
        let cos = CosPlaceConfig::default();
        let day = image_files(data.join("cosplace/train"))?;
        let names: Vec<String> = day
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let built = build_classes_from_names(&names, &cos)?;
        let mut index: HashMap<ClassId, usize> = HashMap::new();
        let (mut train, mut day_test) = (Vec::new(), Vec::new());
        for class in built.groups.iter().flat_map(|g| &g.classes) {
            let label = index.len();
            index.insert(class.id, label);
            for (j, &i) in class.images.iter().enumerate() {
                let item = (day[i].clone(), label);
                if j % test_every == test_every - 1 {
                    day_test.push(item);
                } else {
                    train.push(item);
                }
            }
        }
        if index.is_empty() {
            return Err(invalid(
                "data",
                format!(
                    "{}: no CosPlace class with {} or more images",
                    data.join("cosplace/train").display(),
                    cos.min_images_per_class
                ),
            ));
        }
        let mut night_test = Vec::new();
        for p in image_files(data.join("gan/trainB"))? {
            let r = parse_utm_heading(&p.to_string_lossy())?;
            let (class, _) = class_and_group(r.east, r.north, r.heading, &cos);
            if let Some(&label) = index.get(&class) {
                night_test.push((p, label));
            }
        }
        if night_test.is_empty() {
            return Err(invalid(
                "data",
                format!(
                    "{}: no night image falls into a class of cosplace/train",
                    data.join("gan/trainB").display()
                ),
            ));
        }
        Ok(Self {
            classes: index.len(),
            train,
            day_test,
            night_test,
        })
    }
}

/// One classifier's top-1 accuracy (percent) with its 95 % bootstrap interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Accuracy {
    /// The classifier.
    pub method: String,
    /// On the day test images.
    pub day: RecallCi,
    /// On the night test images.
    pub night: RecallCi,
}

/// The pipeline's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassificationReport {
    /// Classes, training, day-test and night-test images.
    pub counts: [usize; 4],
    /// Accuracy of every classifier.
    pub accuracy: Vec<Accuracy>,
    /// SMM against the control and against the day-trained classifier at night:
    /// `(reference, comparison)` with the difference SMM − reference.
    pub night_comparisons: Vec<(String, PairedComparison)>,
    /// The same on the day test images.
    pub day_comparisons: Vec<(String, PairedComparison)>,
    /// The last step of every training stage.
    pub last_steps: Vec<(String, Option<ByolStepLog>)>,
    /// Output folder.
    pub out: PathBuf,
    /// Files written into it.
    pub files: Vec<String>,
    /// Wall time of the run.
    pub seconds: f64,
}

impl ClassificationReport {
    /// A Markdown table of the accuracies and the paired comparisons.
    pub fn to_markdown(&self) -> String {
        let [classes, train, day, night] = self.counts;
        let mut md = format!(
            "## Day→night place classification (Similarity Min-Max, BYOL)\n\n\
             {classes} CosPlace classes; {train} day training images; {day} day and {night} night \
             test images. Top-1 accuracy (%) with 95 % bootstrap intervals.\n\n\
             | classifier | day | night |\n|---|---:|---:|\n"
        );
        for a in &self.accuracy {
            md.push_str(&format!(
                "| {} | {:.1} [{:.1}, {:.1}] | {:.1} [{:.1}, {:.1}] |\n",
                a.method,
                a.day.values[0],
                a.day.lower[0],
                a.day.upper[0],
                a.night.values[0],
                a.night.lower[0],
                a.night.upper[0]
            ));
        }
        md.push_str(
            "\n| SMM − reference | test images | difference (points) | 95 % interval | McNemar b / c | p |\n\
             |---|---|---:|---:|---:|---:|\n",
        );
        for (set, cmps) in [
            ("night", &self.night_comparisons),
            ("day", &self.day_comparisons),
        ] {
            for (name, c) in cmps {
                md.push_str(&format!(
                    "| {name} | {set} | {:+.1} | [{:+.1}, {:+.1}] | {} / {} | {:.2e} |\n",
                    c.diff[0], c.lower[0], c.upper[0], c.mcnemar.b, c.mcnemar.c, c.mcnemar.p_value
                ));
            }
        }
        md
    }
}

/// Training images in memory, resized to a shorter side of `⌈8/7 · size⌉`.
struct TrainImages {
    images: Vec<Tensor<4>>,
    labels: Vec<usize>,
}

/// `path` resized (bilinear) to a shorter side of `⌈8/7 · size⌉`.
fn load_resized(path: &Path, size: usize) -> pipeline::Result<Rgb32FImage> {
    Ok(resize_shorter_side(
        &load_rgb(path)?,
        (size * 8).div_ceil(7),
    ))
}

fn load_train(
    items: &[(PathBuf, usize)],
    size: usize,
    device: &Device,
) -> pipeline::Result<TrainImages> {
    let mut images = Vec::with_capacity(items.len());
    for (p, _) in items {
        let img = load_resized(p, size)?;
        images.push(to_tensor(std::slice::from_ref(&img), device)?);
    }
    Ok(TrainImages {
        images,
        labels: items.iter().map(|&(_, l)| l).collect(),
    })
}

/// Test images: shorter side `⌈8/7 · size⌉`, centre crop `size²`, in `[0, 1]`.
fn load_test(
    items: &[(PathBuf, usize)],
    size: usize,
    device: &Device,
) -> pipeline::Result<Tensor<4>> {
    let mut xs = Vec::with_capacity(items.len());
    for (p, _) in items {
        let img = center_crop(&load_resized(p, size)?, size, size)?;
        xs.push(to_tensor(std::slice::from_ref(&img), device)?);
    }
    Ok(Tensor::cat(xs, 0))
}

impl TrainImages {
    /// The images of `batch` (indices) with a RandomResizedCrop (scale 0.5-1) to `size²` and a
    /// horizontal flip of probability ½, drawn from `derived(seed, step)`; RGB in `[0, 1]`.
    fn batch(&self, indices: &[usize], size: usize, seed: u64, step: u64) -> Tensor<4> {
        let mut rng = derived(seed, step);
        let xs = indices
            .iter()
            .map(|&i| {
                let x = self.images[i].clone();
                let [_, _, h, w] = x.dims();
                let (t, l, ch, cw) = random_resized_crop_box(h, w, 0.5, &mut rng);
                let x = resize_bilinear(x.slice([0..1, 0..3, t..t + ch, l..l + cw]), [size, size]);
                if rand::Rng::random::<bool>(&mut rng) {
                    x.flip([3])
                } else {
                    x
                }
            })
            .collect();
        Tensor::cat(xs, 0)
    }
}

/// A stage of classifier training: `epochs` over the training images in batches, a checkpoint
/// after every epoch, resumed from `dir`. `dark` makes the SMM steps.
struct Stage<'a> {
    images: &'a TrainImages,
    epochs: usize,
    batch: usize,
    size: usize,
    seed: u64,
    dark: Option<&'a DarkView>,
    jitter: &'a ColorJitter,
}

impl Stage<'_> {
    fn steps_per_epoch(&self) -> u64 {
        self.images.labels.len().div_ceil(self.batch) as u64
    }

    fn run(
        &self,
        mut trainer: ByolTrainer<MobileNetV2>,
        dir: &CheckpointDir,
        label: &str,
    ) -> pipeline::Result<(ByolClassifier<MobileNetV2>, Option<ByolStepLog>)> {
        trainer.resume(dir)?;
        let per_epoch = self.steps_per_epoch();
        let total = per_epoch * self.epochs as u64;
        let n = self.images.labels.len();
        let norm = Normalization::ImageNet;
        let t = Instant::now();
        let bar = progress_bar(total, label);
        bar.set_position(trainer.steps_done());
        while trainer.steps_done() < total {
            let step = trainer.steps_done();
            let (epoch, k) = (step / per_epoch, (step % per_epoch) as usize);
            // the epoch's order: a seeded shuffle
            let mut order: Vec<usize> = (0..n).collect();
            rand::seq::SliceRandom::shuffle(
                order.as_mut_slice(),
                &mut derived(self.seed ^ 0x5eed_0c1a, epoch),
            );
            let idx = &order[k * self.batch..((k + 1) * self.batch).min(n)];
            let labels: Vec<usize> = idx.iter().map(|&i| self.images.labels[i]).collect();
            let x = self.images.batch(idx, self.size, self.seed, step);
            // the dark view of the crop, then an independent jitter of each view
            let dark = self.dark.map(|view| {
                let mut rng = derived(self.seed ^ 0xda4c_0c1a, step);
                let y = view.apply(x.clone(), &mut rng).clamp(0.0, 1.0);
                norm.apply(self.jitter.apply(y, &mut rng))
            });
            let x = self
                .jitter
                .apply(x, &mut derived(self.seed ^ 0x717e_0c1a, step));
            trainer.step(norm.apply(x), dark, &labels)?;
            bar.inc(1);
            if trainer.steps_done().is_multiple_of(per_epoch) || trainer.steps_done() == total {
                trainer.save_checkpoint(dir)?;
            }
        }
        bar.finish_and_clear();
        let last = trainer.log().last().copied();
        if let Some(l) = &last {
            log::info!(
                "{label}: {} steps ({:.0} s this run); last step: loss {:.3}, day batch accuracy {:.2}",
                trainer.steps_done(),
                t.elapsed().as_secs_f64(),
                l.loss,
                l.accuracy
            );
        }
        save_json(dir.root().join("log.json"), trainer.log())?;
        Ok((trainer.into_model(), last))
    }
}

/// A progress bar of `total` steps (indicatif draws it on stderr, and hides it when stderr is not
/// a terminal).
fn progress_bar(total: u64, label: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} [{elapsed}<{eta}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(label.to_string());
    bar
}

fn mobilenet(device: &Device) -> pipeline::Result<MobileNetV2> {
    let weights = pipeline::real_weights(
        "the classifier's encoder",
        "weights/mobilenet_v2_imagenet.safetensors",
    )?;
    let mut net = MobileNetV2Config::new().init(&device.clone().autodiff());
    net.load_torchvision(&weights)?;
    Ok(net)
}

/// Per test image: `Some(0)` when the classifier is right, `Some(1)` otherwise (the first-hit
/// rank form of [`bootstrap_recall`], whose R@1 is then the top-1 accuracy).
fn ranks(
    model: &ByolClassifier<MobileNetV2>,
    x: &Tensor<4>,
    labels: &[usize],
) -> Vec<Option<usize>> {
    let n = labels.len();
    let mut out = Vec::with_capacity(n);
    let norm = Normalization::ImageNet;
    for start in (0..n).step_by(50) {
        let end = (start + 50).min(n);
        let pred = model.predict(norm.apply(x.clone().narrow(0, start, end - start)));
        out.extend(
            pred.iter()
                .zip(&labels[start..end])
                .map(|(p, l)| Some(usize::from(p != l))),
        );
    }
    out
}

/// Runs the pipeline (see the [module docs](self)) and writes `report.{json,md}` and
/// `views.png` into `cfg.out`.
///
/// # Errors
/// Missing real weights, an invalid setting, a world that is not in the exported format or has
/// no night image of its CosPlace classes, training, checkpoint and I/O errors.
pub fn run(
    cfg: &SmmClassificationConfig,
    device: &Device,
) -> pipeline::Result<ClassificationReport> {
    let t0 = Instant::now();
    if cfg.batch == 0 || cfg.image_size < 32 || cfg.day_epochs == 0 || cfg.epochs == 0 {
        return Err(invalid(
            "batch / image_size / day_epochs / epochs",
            format!(
                "{} / {} / {} / {}: batch and epochs must be positive, the image size at least 32",
                cfg.batch, cfg.image_size, cfg.day_epochs, cfg.epochs
            ),
        ));
    }
    let jitter_cfg = ColorJitterConfig::new()
        .with_brightness(cfg.jitter)
        .with_contrast(cfg.jitter)
        .with_saturation(cfg.jitter)
        .with_hue(cfg.hue);
    let jitter = ColorJitter::new(jitter_cfg.clone())?;
    // D as the VPR pipeline makes it
    let smm = SimilarityMinMaxConfig::new()
        .with_out(cfg.out.clone())
        .with_d_iterations(cfg.d_iterations)
        .with_d_batch(cfg.d_batch)
        .with_d_lr(cfg.d_lr)
        .with_crop(cfg.crop)
        .with_darkening_weights(cfg.darkening_weights.clone())
        .with_train_darkening(cfg.train_darkening)
        .with_restart(cfg.restart)
        .with_seed(cfg.seed);
    check_darkening_settings(&smm)?;
    let out = cfg.out.as_path();
    let data = prepare(cfg.data.as_deref(), out, false)?;
    let task = PlaceTask::from_world(&data, cfg.test_every)?;
    log::info!(
        "place classification: {} classes, {} training, {} day-test and {} night-test images",
        task.classes,
        task.train.len(),
        task.day_test.len(),
        task.night_test.len()
    );

    // 1. D: shipped, given or trained as the VPR pipeline trains it
    let (d_net, d_source) = darkening_network(
        &smm,
        &data,
        std::path::Path::new(pipeline::MODELS_DIR),
        device,
    )?;
    let view = DarkView::new(d_net, DarkViewConfig::classification())?;

    // 2-3. the classifiers
    let images = load_train(&task.train, cfg.image_size, device)?;
    let stage_cfg = |epochs: usize, byol: bool| {
        let steps = images.labels.len().div_ceil(cfg.batch) as u64 * epochs as u64;
        ByolTrainerConfig::new(ByolConfig::new().with_feat_dim(1280).with_weight(if byol {
            cfg.byol_weight
        } else {
            0.0
        }))
        .with_lr(cfg.lr)
        .with_milestones(vec![steps / 3, steps * 2 / 3])
    };
    let stage_json =
        |what: &str, epochs: usize, trainer: &ByolTrainerConfig, from: Option<&str>| {
            serde_json::json!({
                "encoder": "MobileNetV2, torchvision ImageNet weights",
                "stage": what,
                "continues": from,
                "trainer": trainer,
                "epochs": epochs,
                "batch": cfg.batch,
                "image_size": cfg.image_size,
                "augmentation": "RandomResizedCrop (scale 0.5-1) + horizontal flip",
                "color_jitter": jitter_cfg,
                "dark_view": DarkViewConfig::classification(),
                "test_every": cfg.test_every,
                "classes": task.classes,
                "seed": cfg.seed,
            })
        };
    let stage = |epochs: usize, with_dark: bool| Stage {
        images: &images,
        epochs,
        batch: cfg.batch,
        size: cfg.image_size,
        seed: cfg.seed,
        dark: with_dark.then_some(&view),
        jitter: &jitter,
    };
    // one stage: its folder and configuration, a trainer from ImageNet weights or from the
    // day-trained classifier, then its epochs
    let train_stage = |folder: &str,
                       what: &str,
                       epochs: usize,
                       dark: bool,
                       from: Option<&ByolClassifier<MobileNetV2>>,
                       label: &str| {
        let trainer_cfg = stage_cfg(epochs, dark);
        let mut config = stage_json(what, epochs, &trainer_cfg, from.map(|_| "classifier-day"));
        if dark {
            // the dark views come from D: another D is another SMM stage
            config["darkening"] = d_source.clone();
        }
        let dir = pipeline::stage_dir(&out.join(folder), &config, cfg.restart)?;
        let trainer = match from {
            None => ByolTrainer::new(
                trainer_cfg,
                mobilenet(device)?,
                mobilenet(device)?,
                task.classes,
                device,
            )?,
            Some(model) => {
                ByolTrainer::with_model(trainer_cfg, model.clone(), mobilenet(device)?, device)?
            }
        };
        stage(epochs, dark).run(trainer, &dir, label)
    };
    let (day_model, day_last) = train_stage(
        "classifier-day",
        "cross-entropy on day images",
        cfg.day_epochs,
        false,
        None,
        DAY,
    )?;
    let (control_model, control_last) = train_stage(
        "classifier-day-continued",
        "cross-entropy on day images",
        cfg.epochs,
        false,
        Some(&day_model),
        CONTROL,
    )?;
    let (smm_model, smm_last) = train_stage(
        "classifier-smm",
        "cross-entropy on day images and dark views + BYOL",
        cfg.epochs,
        true,
        Some(&day_model),
        SMM,
    )?;

    // 4. evaluation
    let day_x = load_test(&task.day_test, cfg.image_size, device)?;
    let night_x = load_test(&task.night_test, cfg.image_size, device)?;
    let labels = |items: &[(PathBuf, usize)]| items.iter().map(|&(_, l)| l).collect::<Vec<_>>();
    let (day_y, night_y) = (labels(&task.day_test), labels(&task.night_test));
    let boot = Bootstrap::default();
    let mut accuracy = Vec::new();
    let mut hits = Vec::new();
    for (name, model) in [
        (DAY, &day_model),
        (CONTROL, &control_model),
        (SMM, &smm_model),
    ] {
        let (d, n) = (
            ranks(model, &day_x, &day_y),
            ranks(model, &night_x, &night_y),
        );
        accuracy.push(Accuracy {
            method: name.to_string(),
            day: bootstrap_recall(&d, &[1], &boot)?,
            night: bootstrap_recall(&n, &[1], &boot)?,
        });
        hits.push((d, n));
    }
    let compare = |night: bool| -> pipeline::Result<Vec<(String, PairedComparison)>> {
        let pick = |i: usize| if night { &hits[i].1 } else { &hits[i].0 };
        Ok(vec![
            (
                CONTROL.to_string(),
                paired_bootstrap(pick(1), pick(2), &[1], &boot)?,
            ),
            (
                DAY.to_string(),
                paired_bootstrap(pick(0), pick(2), &[1], &boot)?,
            ),
        ])
    };
    let night_comparisons = compare(true)?;
    let day_comparisons = compare(false)?;

    // picture: day training images | their dark views | night test images of the same classes
    let mut rng = derived(cfg.seed, 7);
    let step = task.night_test.len().div_ceil(6).max(1);
    let night_pick: Vec<&(PathBuf, usize)> = task.night_test.iter().step_by(step).collect();
    let day_pick: Vec<usize> = night_pick
        .iter()
        .filter_map(|&&(_, l)| images.labels.iter().position(|&x| x == l))
        .collect();
    let day_rows = load_test(
        &day_pick
            .iter()
            .map(|&i| task.train[i].clone())
            .collect::<Vec<_>>(),
        cfg.image_size,
        device,
    )?;
    let dark_rows = view.apply(day_rows.clone(), &mut rng).clamp(0.0, 1.0);
    let night_rows = load_test(
        &night_pick.into_iter().cloned().collect::<Vec<_>>(),
        cfg.image_size,
        device,
    )?;
    pipeline::image_grid(&[day_rows, dark_rows, night_rows], out.join("views.png"))?;

    let report = ClassificationReport {
        counts: [
            task.classes,
            task.train.len(),
            task.day_test.len(),
            task.night_test.len(),
        ],
        accuracy,
        night_comparisons,
        day_comparisons,
        last_steps: vec![
            (DAY.to_string(), day_last),
            (CONTROL.to_string(), control_last),
            (SMM.to_string(), smm_last),
        ],
        out: out.to_path_buf(),
        files: files(&[
            "report.json",
            "report.md",
            "views.png",
            "darkening/",
            "classifier-day/",
            "classifier-day-continued/",
            "classifier-smm/",
        ]),
        seconds: t0.elapsed().as_secs_f64(),
    };
    save_json(out.join("report.json"), &report)?;
    crate::core::checkpoint::write_bytes_atomic(
        out.join("report.md"),
        report.to_markdown().as_bytes(),
    )?;
    Ok(report)
}
