//! The parts the three paper pipelines share (used by the `dark_side`, `nocplace` and
//! `similarity_minmax` examples, and reusable in your own): a pretrained GeM network, day / night
//! Recall@N on a VPR folder, the translators and the darkening network as `metric-learning`
//! [`Augmentation`]s, CLAHE as a post-processing hook, and picture grids.
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use nightvision::metric::data::Augmentation;
//! use nightvision::pipeline::Clahe;
//!
//! let device = Device::default();
//! // Dark Side Augmentation's CLAHE (clip 1.0, 8×8 tiles) on a dark gradient.
//! let x = Tensor::<4>::ones([1, 3, 32, 32], &device).mul_scalar(0.1);
//! let y = Clahe::dsa().augment(x, &mut nightvision::core::rng::seeded(0));
//! assert_eq!(y.dims(), [1, 3, 32, 32]);
//! ```

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use rand::RngCore;

use crate::core::checkpoint::CheckpointDir;
use crate::core::clahe::{ClaheConfig, clahe_lab_f32};
use crate::core::image::{Rgb32FImage, f32_to_rgb8, save_rgb8, to_images, to_tensor};
use crate::darkening::DarkView;
use crate::eval::{
    Descriptors, FirstHits, GroundTruth, KnnConfig, MethodResult, Metric, Report, VprDataset,
    exact_knn,
};
use crate::gan::{ResnetGenerator, translate_images};
use crate::metric::data::{AugmentHooks, Augmentation, TupleDatabase};
use crate::metric::multiscale::{DescriptorNet, ExtractConfig, extract_files};
use crate::metric::train::{TupleTrainer, TupleTrainerConfig};
use crate::metric::{Backbone, BackboneConfig, CirNet, CirNetConfig};

/// Errors of the pipelines: those of every crate, and missing real weights.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// nightvision-core (I/O, images, weights, checkpoints).
    #[error(transparent)]
    Core(#[from] crate::core::CoreError),
    /// backbones.
    #[error(transparent)]
    Backbone(#[from] crate::backbones::BackboneError),
    /// metric-learning.
    #[error(transparent)]
    Metric(#[from] crate::metric::MetricError),
    /// vpr-eval.
    #[error(transparent)]
    Eval(#[from] crate::eval::EvalError),
    /// nightgen-gan.
    #[error(transparent)]
    Gan(#[from] crate::gan::GanError),
    /// darkening-minmax.
    #[error(transparent)]
    Darkening(#[from] crate::darkening::DarkeningError),
    /// hed-edges.
    #[error(transparent)]
    Hed(#[from] crate::hed::HedError),
    /// synthetic-places.
    #[error(transparent)]
    Places(#[from] crate::places::SynthError),
    /// A tensor could not be read back from the device.
    #[error("reading {what} from the device: {message}")]
    Readback {
        /// What was read.
        what: &'static str,
        /// burn's message.
        message: String,
    },
    /// Real weights the pipeline needs are not in the real-data cache.
    #[error(
        "{what} needs {file} from the real-data cache ({reason}); run ../shared/fetch-real-data.sh"
    )]
    MissingWeights {
        /// Who needs them.
        what: &'static str,
        /// The file, relative to the cache.
        file: &'static str,
        /// Why it was not found.
        reason: String,
    },
}

/// Result with [`PipelineError`].
pub type Result<T> = std::result::Result<T, PipelineError>;

/// The exported world to run on: `data` if given, else the default world rendered (once) into
/// `out/world` (28 s on two cores).
///
/// # Errors
/// Rendering and I/O errors.
pub fn ensure_world(data: Option<&Path>, out: &Path) -> Result<PathBuf> {
    if let Some(d) = data {
        return Ok(d.to_path_buf());
    }
    let dir = out.join("world");
    if dir.join("manifest.json").is_file() {
        return Ok(dir);
    }
    let world = crate::places::World::new(&crate::places::WorldConfig::default())?;
    crate::places::export(
        &world,
        &crate::places::ExportOptions {
            out_dir: dir.clone(),
            overwrite: true,
            progress: false,
        },
    )?;
    Ok(dir)
}

/// The real-data cache file `file`, or [`PipelineError::MissingWeights`].
pub fn real_weights(what: &'static str, file: &'static str) -> Result<PathBuf> {
    crate::core::real_data_file(file).map_err(|reason| PipelineError::MissingWeights {
        what,
        file,
        reason,
    })
}

/// cirtorch's GeM network on a MobileNetV2 trunk with the real torchvision ImageNet weights of the
/// real-data cache: MobileNetV2 → GeM (p = 3) → L2N, 1280-d (the CPU stand-in for the papers'
/// VGG16 / ResNet-101 GeM; same head, same losses).
pub fn mobilenet_v2_gem(device: &Device) -> Result<CirNet> {
    let weights = real_weights(
        "the MobileNetV2-GeM network",
        "weights/mobilenet_v2_imagenet.safetensors",
    )?;
    let mut net = CirNetConfig::new(BackboneConfig::mobilenet_v2()).init(device)?;
    if let Backbone::MobileNetV2(trunk) = &mut net.backbone {
        trunk.load_torchvision(&weights)?;
    }
    Ok(net)
}

/// Descriptors of image files (single scale unless `cfg` says otherwise) as host [`Descriptors`].
pub fn describe<N: DescriptorNet + ?Sized>(
    net: &N,
    paths: &[PathBuf],
    cfg: &ExtractConfig,
    device: &Device,
) -> Result<Descriptors> {
    let d = extract_files(net, paths, cfg, device)?;
    let [n, dim] = d.dims();
    let v = d
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| PipelineError::Readback {
            what: "descriptors",
            message: format!("{e:?}"),
        })?;
    Ok(Descriptors::new(v, n, dim)?)
}

/// Recall@`ns` at 25 m of the day queries (`queries/`) and the night queries (`queries_night/`)
/// against the day database of a VPR folder (`…/images/test`), one [`MethodResult`] each, named
/// `"{label}, day queries"` / `"{label}, night queries"`. The database is described once.
pub fn day_night_recall<N: DescriptorNet + ?Sized>(
    net: &N,
    vpr_root: &Path,
    ns: &[usize],
    label: &str,
    cfg: &ExtractConfig,
    device: &Device,
) -> Result<Vec<MethodResult>> {
    let mut out = Vec::new();
    let mut db: Option<Descriptors> = None;
    let k = ns.iter().copied().max().unwrap_or(1);
    for (name, folder) in [
        ("day queries", "queries"),
        ("night queries", "queries_night"),
    ] {
        let ds = VprDataset::open(vpr_root, folder)?;
        let positives = GroundTruth::from_dataset(&ds)?.positives(25.0)?;
        let db = match &db {
            Some(d) => d,
            None => {
                let paths: Vec<PathBuf> =
                    ds.database.images.iter().map(|i| i.path.clone()).collect();
                db.insert(describe(net, &paths, cfg, device)?)
            }
        };
        let paths: Vec<PathBuf> = ds.queries.images.iter().map(|i| i.path.clone()).collect();
        let q = describe(net, &paths, cfg, device)?;
        let nn = exact_knn(db, &q, k, &KnnConfig::new(Metric::InnerProduct), device)?;
        let recall = FirstHits::from_neighbours(&nn, &positives)?.recall(ns, None)?;
        out.push(MethodResult {
            name: format!("{label}, {name}"),
            recall: Some(recall),
            ..Default::default()
        });
    }
    Ok(out)
}

/// Writes `report.json`, `report.md` and `recall.png` into `out` and prints the Markdown table.
///
/// # Errors
/// I/O and plotting errors naming the file.
pub fn write_report(report: &Report, out: &Path) -> Result<()> {
    report.write_json(out.join("report.json"))?;
    let md = report.to_markdown();
    std::fs::write(out.join("report.md"), &md)
        .map_err(|e| crate::core::CoreError::io(out.join("report.md"), e))?;
    report.plot_recall(out.join("recall.png"), 900, 520)?;
    println!("{md}");
    Ok(())
}

/// Fine-tunes [`mobilenet_v2_gem`] with cirtorch tuples (the metric-learning stage of Dark Side
/// Augmentation and of Similarity Min-Max), checkpointing into (and resuming from) `ckpt`, and
/// prints the mean loss of every epoch. Returns the network in inference mode.
///
/// # Errors
/// Missing weights, training and checkpoint errors.
pub fn finetune_gem(
    db: &TupleDatabase,
    hooks: AugmentHooks,
    cfg: TupleTrainerConfig,
    ckpt: &Path,
    device: &Device,
) -> Result<CirNet> {
    let t = std::time::Instant::now();
    let trained = TupleTrainer::new(cfg, db, hooks, device)?
        .train(mobilenet_v2_gem(device)?, Some(&CheckpointDir::new(ckpt)?))?;
    let losses: Vec<String> = trained
        .log
        .epochs
        .iter()
        .map(|e| format!("{:.4}", e.mean_loss))
        .collect();
    println!(
        "fine-tuning ({}): mean loss per epoch [{}] in {:.0} s",
        ckpt.display(),
        losses.join(", "),
        t.elapsed().as_secs_f64()
    );
    Ok(trained.net.valid())
}

/// `x`'s values as a tensor on `device` (a host round trip: an augmentation runs its own network
/// on its own device, off the trainer's autodiff graph).
fn moved(x: Tensor<4>, device: &Device) -> Tensor<4> {
    Tensor::from_data(x.into_data(), device)
}

/// A frozen day→night generator as an [`Augmentation`] (Dark Side Augmentation, papers.md A.6:
/// the translator in eval mode, images mapped to `[-1, 1]` and back).
pub struct Translator {
    generator: Mutex<ResnetGenerator>,
    device: Device,
}

impl Translator {
    /// Wraps a generator (put in inference mode with `valid()`), running on `device`.
    pub fn new(generator: ResnetGenerator, device: &Device) -> Self {
        Self {
            generator: Mutex::new(generator.valid().fork(device)),
            device: device.clone(),
        }
    }

    /// Translates image files into memory (NocPlace translates a whole day dataset once, B.1),
    /// keeping their names.
    ///
    /// # Errors
    /// Image decoding errors naming the file; [`PipelineError::Gan`] for images below 5 px.
    pub fn translate_files(&self, paths: &[PathBuf]) -> Result<Vec<Rgb32FImage>> {
        let mut out = Vec::with_capacity(paths.len());
        for p in paths {
            let img = crate::core::image::load_rgb(p)?;
            let x = to_tensor(std::slice::from_ref(&img), &self.device)?;
            out.extend(to_images(self.translate(x)?));
        }
        Ok(out)
    }

    /// Translates `[B, 3, H, W]` images in `[0, 1]` (any size ≥ 5 px) on the translator's device.
    ///
    /// # Errors
    /// [`PipelineError::Gan`] for bad shapes.
    pub fn translate(&self, x: Tensor<4>) -> Result<Tensor<4>> {
        let origin = x.device();
        let g = self.generator.lock().map_err(|_| PipelineError::Readback {
            what: "the translator (a previous translation panicked)",
            message: String::new(),
        })?;
        let y = translate_images(&g, moved(x, &self.device))?;
        Ok(moved(y, &origin))
    }
}

impl Augmentation for Translator {
    fn augment(&self, x: Tensor<4>, _rng: &mut dyn RngCore) -> Tensor<4> {
        // shapes come from the trainer's own preparation; a failure here is a bug, not input
        let fallback = x.clone();
        self.translate(x).unwrap_or(fallback)
    }
}

/// The darkening network's dark view as an [`Augmentation`] (Similarity Min-Max, papers.md C.3:
/// random exposure + patch and pixel noise, then the frozen D).
pub struct Darkening {
    view: Mutex<DarkView>,
    device: Device,
}

impl Darkening {
    /// Wraps a dark view whose network lives on `device`.
    pub fn new(view: DarkView, device: &Device) -> Self {
        Self {
            view: Mutex::new(view),
            device: device.clone(),
        }
    }
}

impl Augmentation for Darkening {
    fn augment(&self, x: Tensor<4>, rng: &mut dyn RngCore) -> Tensor<4> {
        let origin = x.device();
        match self.view.lock() {
            Ok(view) => moved(
                view.apply(moved(x, &self.device), rng).clamp(0.0, 1.0),
                &origin,
            ),
            Err(_) => x,
        }
    }
}

/// CLAHE on the L channel of every image (OpenCV-exact, mdir's float-Lab path) as an
/// [`Augmentation`]: Dark Side Augmentation applies it to every training image after the
/// translator (papers.md A.6, `clahepost`, clip 1.0, 8×8 tiles).
#[derive(Debug, Clone)]
pub struct Clahe {
    cfg: ClaheConfig,
}

impl Clahe {
    /// CLAHE with `cfg`.
    pub fn new(cfg: ClaheConfig) -> Self {
        Self { cfg }
    }

    /// DSA's setting: clip limit 1.0, 8×8 tiles.
    pub fn dsa() -> Self {
        Self {
            cfg: ClaheConfig::default(),
        }
    }
}

impl Augmentation for Clahe {
    fn augment(&self, x: Tensor<4>, _rng: &mut dyn RngCore) -> Tensor<4> {
        let device = x.device();
        let images = to_images(x.clone());
        let out: std::result::Result<Vec<Rgb32FImage>, _> =
            images.iter().map(|i| clahe_lab_f32(i, &self.cfg)).collect();
        match out.and_then(|imgs| to_tensor(&imgs, &device)) {
            Ok(t) => t,
            // non-finite input: pass it on, the trainer's loss check names the step
            Err(_) => x,
        }
    }
}

/// Writes rows of image batches side by side as one PNG: row `r` shows the images of
/// `rows[r]` (each `[B, 3, H, W]` in `[0, 1]`, all of the same size) left to right.
///
/// # Errors
/// I/O and image errors naming the file; [`PipelineError::Readback`] for rows of different sizes.
pub fn image_grid(rows: &[Tensor<4>], path: impl AsRef<Path>) -> Result<()> {
    let imgs: Vec<Vec<Rgb32FImage>> = rows.iter().map(|r| to_images(r.clone())).collect();
    let Some(first) = imgs.iter().flatten().next() else {
        return Ok(());
    };
    let (w, h) = first.dimensions();
    if imgs.iter().flatten().any(|i| i.dimensions() != (w, h)) {
        return Err(PipelineError::Readback {
            what: "grid rows",
            message: "images of different sizes".into(),
        });
    }
    let cols = imgs.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let mut canvas = Rgb32FImage::new(cols * w, imgs.len() as u32 * h);
    for (r, row) in imgs.iter().enumerate() {
        for (c, img) in row.iter().enumerate() {
            image::imageops::replace(
                &mut canvas,
                img,
                (c as u32 * w) as i64,
                (r as u32 * h) as i64,
            );
        }
    }
    save_rgb8(path, &f32_to_rgb8(&canvas))?;
    Ok(())
}

/// `[B, 3, H, W]` images of `paths` resized (bilinear) to `size × size`.
///
/// # Errors
/// Image decoding errors naming the file.
pub fn load_square(paths: &[PathBuf], size: usize, device: &Device) -> Result<Tensor<4>> {
    let mut xs = Vec::with_capacity(paths.len());
    for p in paths {
        let img = crate::core::image::load_rgb(p)?;
        let x = to_tensor(std::slice::from_ref(&img), device)?;
        xs.push(crate::core::image::resize_bilinear(x, [size, size]));
    }
    if xs.is_empty() {
        return Ok(Tensor::from_data(
            TensorData::new(Vec::<f32>::new(), [0, 3, size, size]),
            device,
        ));
    }
    Ok(Tensor::cat(xs, 0))
}
