//! The parts the three paper pipelines share (used by the `dark_side`, `nocplace` and
//! `similarity_minmax` examples, and reusable in your own): a pretrained GeM network, day / night
//! Recall@N on a VPR folder, the translators and the darkening network as
//! [`Augmentation`](nightvision_core::augment::Augmentation)s, CLAHE as a post-processing hook, and picture grids.
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use nightvision::metric::data::Augmentation;
//! use nightvision::pipeline::Clahe;
//!
//! let device = Device::default();
//! // Dark Side Augmentation's CLAHE (clip 1.0, 8×8 tiles) on a dark gradient.
//! let x = Tensor::<4>::ones([1, 3, 32, 32], &device).mul_scalar(0.1);
//! let y = Clahe::dsa().augment(x, &mut nightvision::core::rng::seeded(0)).unwrap();
//! assert_eq!(y.dims(), [1, 3, 32, 32]);
//! ```

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

use crate::anchors::AnchorStrategy;
use crate::core::checkpoint::CheckpointDir;
use crate::core::image::{Rgb32FImage, f32_to_rgb8, save_rgb8, to_images, to_tensor};
use crate::core::parallel::DataParallel;
use crate::eval::{
    Bootstrap, Comparison, Descriptors, FirstHits, GroundTruth, KnnConfig, MethodResult, Metric,
    Report, TokyoSplit, VprDataset, exact_knn,
};
use crate::metric::data::{AugmentHooks, MiningConfig, TupleDatabase};
use crate::metric::multiscale::{DescriptorNet, ExtractConfig, extract_files};
use crate::metric::train::{Goal, Selection, TupleTrainer, TupleTrainerConfig};
use crate::metric::{Backbone, BackboneConfig, CirNet, CirNetConfig};

/// The adapters through which the translators, the darkening network and CLAHE plug into the
/// trainers as [`Augmentation`](crate::core::augment::Augmentation)s (they live in their crates;
/// re-exported here for the pipelines' users).
pub use crate::core::augment::Clahe;
pub use crate::darkening::Darkening;
pub use crate::gan::Translator;

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
    /// anchor-mining (CosPlace classes).
    #[error(transparent)]
    Anchors(#[from] crate::anchors::AnchorError),
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
        "{what} needs {file} from the real-data cache ({reason}); run scripts/fetch-real-data.sh"
    )]
    MissingWeights {
        /// Who needs them.
        what: &'static str,
        /// The file, relative to the cache.
        file: &'static str,
        /// Why it was not found.
        reason: String,
    },
    /// The translation-quality bench.
    #[error(transparent)]
    Quality(Box<crate::quality::QualityError>),
    /// A pipeline setting that cannot work.
    #[error("invalid setting {field}: {reason}")]
    InvalidConfig {
        /// The configuration field(s).
        field: &'static str,
        /// Why.
        reason: String,
    },
}

impl From<crate::quality::QualityError> for PipelineError {
    fn from(e: crate::quality::QualityError) -> Self {
        match e {
            crate::quality::QualityError::Pipeline(p) => p,
            other => PipelineError::Quality(Box::new(other)),
        }
    }
}

/// Result with [`PipelineError`].
pub type Result<T> = std::result::Result<T, PipelineError>;

/// The exported world to run on: `data` if given, else the default world rendered (once) into
/// `out/world` (about 100 s on two cores).
///
/// # Errors
/// Rendering and I/O errors.
pub fn ensure_world(data: Option<&Path>, out: &Path) -> Result<PathBuf> {
    render_once(
        data,
        &out.join("world"),
        &crate::places::WorldConfig::default(),
    )
}

/// [`ensure_world`] of the pipelines' `--quick` mode: `data` if given, else the small world of
/// [`quick_world_config`] rendered (once) into `out/world-quick` (about 20 s on two cores).
///
/// # Errors
/// Rendering and I/O errors.
pub fn ensure_quick_world(data: Option<&Path>, out: &Path) -> Result<PathBuf> {
    render_once(data, &out.join("world-quick"), &quick_world_config())
}

/// The small world of the pipelines' `--quick` mode, a check of the mechanism end to end (CI):
/// the default world's renderer, looks and image size with 40 test places, 24 training places
/// and 80 + 80 GAN images (660 renders, about 20 s on two cores).
///
/// ```
/// let quick = nightvision::pipeline::quick_world_config();
/// assert_eq!((quick.places, quick.train_places, quick.gan_images), (40, 24, 80));
/// assert_eq!((quick.width, quick.height), (320, 240));
/// ```
pub fn quick_world_config() -> crate::places::WorldConfig {
    crate::places::WorldConfig {
        places: 40,
        train_places: 24,
        gan_images: 80,
        ..crate::places::WorldConfig::default()
    }
}

/// `data` if given, else `world` rendered into `dir` unless a finished export is there.
fn render_once(
    data: Option<&Path>,
    dir: &Path,
    world: &crate::places::WorldConfig,
) -> Result<PathBuf> {
    if let Some(d) = data {
        return Ok(d.to_path_buf());
    }
    if dir.join("manifest.json").is_file() {
        return Ok(dir.to_path_buf());
    }
    let world = crate::places::World::new(world)?;
    crate::places::export(
        &world,
        &crate::places::ExportOptions {
            out_dir: dir.to_path_buf(),
            overwrite: true,
            progress: false,
        },
    )?;
    Ok(dir.to_path_buf())
}

/// The real-data cache file `file`, or [`PipelineError::MissingWeights`].
pub fn real_weights(what: &'static str, file: &'static str) -> Result<PathBuf> {
    crate::core::real_data_file(file).map_err(|reason| PipelineError::MissingWeights {
        what,
        file,
        reason,
    })
}

/// The folder of the weights shipped with the repository (issue 13), each listed in its
/// `manifest.json` ([`ShippedModel`]).
pub const MODELS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models");

/// One entry of `models/manifest.json`: a shipped weights file, its sha256 and what it holds
/// (`"translator"`, `"darkening"`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShippedModel {
    /// File name inside [`MODELS_DIR`].
    pub file: String,
    /// Lower-case hex sha256 of the file.
    pub sha256: String,
    /// What the file holds.
    pub kind: String,
}

/// The entries of `models_dir/manifest.json`.
///
/// ```
/// let shipped = nightvision::pipeline::shipped_models(nightvision::pipeline::MODELS_DIR)?;
/// assert!(shipped.iter().all(|m| !m.sha256.is_empty()));
/// # Ok::<(), nightvision::pipeline::PipelineError>(())
/// ```
///
/// # Errors
/// An unreadable or malformed manifest, naming it.
pub fn shipped_models(models_dir: impl AsRef<Path>) -> Result<Vec<ShippedModel>> {
    let path = models_dir.as_ref().join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|e| crate::core::CoreError::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| PipelineError::InvalidConfig {
        field: "models/manifest.json",
        reason: format!("{}: {e}", path.display()),
    })
}

/// The shipped weights file of `kind` in `models_dir` (the first listed) and its sha256, after
/// checking the file's bytes against the manifest; `None` when none of that kind is listed.
///
/// ```
/// use nightvision::pipeline::{shipped_model, MODELS_DIR};
/// let (path, sha256) = shipped_model(MODELS_DIR, "darkening")?.expect("a shipped D");
/// assert!(path.is_file());
/// assert_eq!(sha256.len(), 64);
/// # Ok::<(), nightvision::pipeline::PipelineError>(())
/// ```
///
/// # Errors
/// A malformed manifest, a listed file that is missing or whose bytes do not match its sha256.
pub fn shipped_model(
    models_dir: impl AsRef<Path>,
    kind: &str,
) -> Result<Option<(PathBuf, String)>> {
    let dir = models_dir.as_ref();
    let Some(entry) = shipped_models(dir)?.into_iter().find(|m| m.kind == kind) else {
        return Ok(None);
    };
    let path = dir.join(&entry.file);
    let bytes = std::fs::read(&path).map_err(|e| crate::core::CoreError::io(&path, e))?;
    let hex = sha256_hex(&bytes);
    if hex != entry.sha256 {
        return Err(PipelineError::InvalidConfig {
            field: "models/manifest.json",
            reason: format!(
                "{} has sha256 {hex}, the manifest records {}: the file is damaged or was replaced",
                path.display(),
                entry.sha256
            ),
        });
    }
    Ok(Some((path, hex)))
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// cirtorch's GeM network on a MobileNetV2 trunk with the real torchvision ImageNet weights of the
/// real-data cache: MobileNetV2 → GeM (p = 3) → L2N, 1280-d (the CPU stand-in for the papers'
/// VGG16 / ResNet-101 GeM; same head, same losses).
pub fn mobilenet_v2_gem(device: &Device) -> Result<CirNet> {
    let weights = real_weights(
        "the MobileNetV2-GeM network",
        "weights/mobilenet_v2_imagenet.safetensors",
    )?;
    let mut net = mobilenet_v2_gem_config().init(device)?;
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
    host_descriptors(extract_files(net, paths, cfg, device)?, "descriptors")
}

/// Descriptor rows `[N, dim]` read back from the device as host [`Descriptors`] (`what` names
/// them in errors).
pub(crate) fn host_descriptors(x: Tensor<2>, what: &'static str) -> Result<Descriptors> {
    let [n, dim] = x.dims();
    let v = x
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| PipelineError::Readback {
            what,
            message: format!("{e:?}"),
        })?;
    Ok(Descriptors::new(v, n, dim)?)
}

/// One network evaluated on the Tokyo-style test set of a world (`tokyo/images/test`: a day
/// database and queries of the same places by day, at sunset and at night, interleaved so that
/// query `i` is [`TokyoSplit::of`]`(i)`): the first-hit rank of every query, from which Recall@N,
/// its bootstrap interval and paired comparisons with other networks on the same queries follow.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The network's name in reports.
    pub label: String,
    /// First-hit ranks of every query, in the set's order.
    pub hits: FirstHits,
    /// The N of Recall@N.
    pub ns: Vec<usize>,
}

impl Evaluation {
    /// First hits of the queries of one condition.
    ///
    /// ```
    /// use nightvision::eval::{FirstHits, TokyoSplit};
    /// use nightvision::pipeline::Evaluation;
    /// // six queries: day, sunset, night, day, sunset, night
    /// let e = Evaluation {
    ///     label: "net".into(),
    ///     hits: FirstHits { ranks: vec![Some(0), Some(3), None, Some(1), Some(0), Some(0)], depth: 10 },
    ///     ns: vec![1, 5],
    /// };
    /// assert_eq!(e.split(TokyoSplit::Night).ranks, vec![None, Some(0)]);
    /// let results = e.results(&[], &nightvision::eval::Bootstrap::default())?;
    /// assert_eq!(results[0].name, "net, day queries");
    /// assert_eq!(results[0].recall.as_ref().unwrap().values, vec![50.0, 100.0]);
    /// # Ok::<(), nightvision::pipeline::PipelineError>(())
    /// ```
    pub fn split(&self, split: TokyoSplit) -> FirstHits {
        let idx = split.indices(self.hits.ranks.len());
        FirstHits {
            ranks: idx.iter().map(|&i| self.hits.ranks[i]).collect(),
            depth: self.hits.depth,
        }
    }

    /// One [`MethodResult`] per condition (`"{label}, day queries"`, `…sunset…`, `…night…`) with
    /// Recall@N, its 95 % bootstrap interval, and the paired comparison (bootstrap interval of
    /// the difference, McNemar's test on R@1) with each of `references` on the same queries.
    ///
    /// # Errors
    /// As [`FirstHits::recall`] and [`FirstHits::compare`] (different query sets).
    pub fn results(
        &self,
        references: &[&Evaluation],
        bootstrap: &Bootstrap,
    ) -> Result<Vec<MethodResult>> {
        let mut out = Vec::new();
        for split in TokyoSplit::ALL {
            let hits = self.split(split);
            let mut comparisons = Vec::new();
            for r in references.iter().filter(|r| r.label != self.label) {
                comparisons.push(Comparison {
                    against: format!("{}, {} queries", r.label, split.name()),
                    result: r.split(split).compare(&hits, &self.ns, bootstrap)?,
                });
            }
            out.push(MethodResult {
                name: format!("{}, {} queries", self.label, split.name()),
                recall: Some(hits.recall(&self.ns, None)?),
                recall_ci: Some(hits.recall_ci(&self.ns, bootstrap)?),
                comparisons,
                ..Default::default()
            });
        }
        Ok(out)
    }
}

/// A file-name-safe form of a label: lower-case letters and digits, other runs as `-`.
///
/// ```
/// assert_eq!(nightvision::pipeline::slug("fine-tuned, DSA (HEDN-GAN anchors)"), "fine-tuned-dsa-hedn-gan-anchors");
/// ```
pub fn slug(label: &str) -> String {
    let mut s = String::new();
    for c in label.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
    }
    s.trim_end_matches('-').to_string()
}

/// Describes the Tokyo-style test set of `world` (`world/tokyo/images/test`) with `net`, ranks
/// the database for every query by inner product (exact k-NN) and returns the [`Evaluation`]
/// named `label`. With `export`, writes `export/<slug(label)>/{database,queries}.npy` (float32,
/// one descriptor per row) and `{database,queries}.txt` (the image names, one per line, in the
/// same order; their UTM fields are the ground truth), from which
/// `cargo run --example evaluate -- recall --db-names … --query-names … --db … --queries …
/// --metric ip --tokyo-splits` recomputes every number of the report.
///
/// # Errors
/// Reading the set, describing images, the search, writing the exports.
pub fn evaluate_tokyo<N: DescriptorNet + ?Sized>(
    net: &N,
    world: &Path,
    label: &str,
    ns: &[usize],
    cfg: &ExtractConfig,
    device: &Device,
    export: Option<&Path>,
) -> Result<Evaluation> {
    let ds = crate::protocol::tokyo_set(world)?;
    let (db, q) = describe_set(net, &ds, cfg, device)?;
    tokyo_evaluation(ds, db, q, label, ns, device, export)
}

/// [`evaluate_tokyo`] from descriptors already made (database and queries in the order of the
/// opened set's folders).
fn tokyo_evaluation(
    ds: VprDataset,
    db: Descriptors,
    q: Descriptors,
    label: &str,
    ns: &[usize],
    device: &Device,
    export: Option<&Path>,
) -> Result<Evaluation> {
    let k = ns.iter().copied().max().unwrap_or(1);
    let hits = hits_of(&ds, &db, &q, k, device)?;
    if let Some(dir) = export {
        let dir = dir.join(slug(label));
        std::fs::create_dir_all(&dir).map_err(|e| crate::core::CoreError::io(&dir, e))?;
        db.write_npy(dir.join("database.npy"))?;
        q.write_npy(dir.join("queries.npy"))?;
        for (file, folder) in [("database.txt", &ds.database), ("queries.txt", &ds.queries)] {
            let path = dir.join(file);
            let mut text = folder.relative_names().join("\n");
            text.push('\n');
            std::fs::write(&path, text).map_err(|e| crate::core::CoreError::io(&path, e))?;
        }
    }
    Ok(Evaluation {
        label: label.to_string(),
        hits,
        ns: ns.to_vec(),
    })
}

/// Recall@1 (%) of the `queries` folder of a VPR folder (`folder/database`, `folder/<queries>`,
/// UTM names; positives within 25 m) with `net`, inner-product k-NN: the validation score of
/// model selection (CosPlace and NocPlace keep the model of the best R@1 on
/// `val/queries` / `val/queries_night`, docs/PAPERS.md B.5).
///
/// # Errors
/// A folder that is not in the VPR format, image and extraction errors.
pub fn recall_at_1<N: DescriptorNet + ?Sized>(
    net: &N,
    folder: &Path,
    queries: &str,
    cfg: &ExtractConfig,
    device: &Device,
) -> Result<f64> {
    let (.., hits) = first_hits(net, folder, queries, 1, cfg, device)?;
    Ok(hits.recall(&[1], None)?.values[0])
}

/// The VPR folder `folder` with its `queries` folder, `net`'s database and query descriptors,
/// and the first-hit ranks of the queries among their `k` inner-product nearest neighbours
/// (positives within 25 m).
fn first_hits<N: DescriptorNet + ?Sized>(
    net: &N,
    folder: &Path,
    queries: &str,
    k: usize,
    cfg: &ExtractConfig,
    device: &Device,
) -> Result<(VprDataset, Descriptors, Descriptors, FirstHits)> {
    let ds = VprDataset::open(folder, queries)?;
    let (db, q) = describe_set(net, &ds, cfg, device)?;
    let hits = hits_of(&ds, &db, &q, k, device)?;
    Ok((ds, db, q, hits))
}

/// `net`'s descriptors of a VPR set's database and queries, in the folders' order.
fn describe_set<N: DescriptorNet + ?Sized>(
    net: &N,
    ds: &VprDataset,
    cfg: &ExtractConfig,
    device: &Device,
) -> Result<(Descriptors, Descriptors)> {
    Ok((
        describe(net, &folder_paths(&ds.database), cfg, device)?,
        describe(net, &folder_paths(&ds.queries), cfg, device)?,
    ))
}

/// The image paths of a VPR folder, in its order.
pub(crate) fn folder_paths(f: &crate::eval::VprFolder) -> Vec<PathBuf> {
    f.images.iter().map(|i| i.path.clone()).collect()
}

/// The first-hit ranks of `ds`'s queries (descriptors `q`) among their `k` inner-product
/// nearest neighbours in the database (descriptors `db`), positives within 25 m.
fn hits_of(
    ds: &VprDataset,
    db: &Descriptors,
    q: &Descriptors,
    k: usize,
    device: &Device,
) -> Result<FirstHits> {
    let positives = GroundTruth::from_dataset(ds)?.positives(25.0)?;
    let nn = exact_knn(db, q, k, &KnnConfig::new(Metric::InnerProduct), device)?;
    Ok(FirstHits::from_neighbours(&nn, &positives)?)
}

/// Collects the [`Evaluation`]s of a pipeline's networks on one world and turns them into a
/// [`Report`] with intervals and paired comparisons: every network against the first one
/// evaluated (the off-the-shelf network) and against the baseline named in [`Evaluator::report`].
#[derive(Debug, Clone)]
pub struct Evaluator {
    world: PathBuf,
    ns: Vec<usize>,
    export: Option<PathBuf>,
    bootstrap: Bootstrap,
    evaluations: Vec<Evaluation>,
    /// Further (method, reference) label pairs to compare ([`Evaluator::compare`]).
    comparisons: Vec<(String, String)>,
    /// The papers' mAP protocol, when it runs too ([`Evaluator::with_paper_protocol`]).
    protocol: Option<crate::protocol::PaperProtocol>,
}

impl Evaluator {
    /// Evaluations of Recall@`ns` on `world`'s Tokyo-style test set; with `export`, every
    /// network's descriptors and image lists go to `export/<slug(label)>/` (see
    /// [`evaluate_tokyo`]). Intervals: 2,000 bootstrap resamples, seed 0.
    pub fn new(world: &Path, ns: &[usize], export: Option<&Path>) -> Self {
        Self {
            world: world.to_path_buf(),
            ns: ns.to_vec(),
            export: export.map(Path::to_path_buf),
            bootstrap: Bootstrap::default(),
            evaluations: Vec::new(),
            comparisons: Vec::new(),
            protocol: None,
        }
    }

    /// Also evaluates every network with the papers' protocol (multi-scale, Lw, mAP;
    /// [`crate::protocol`]) on the same world; [`Evaluator::map_report`] then reports it.
    pub fn with_paper_protocol(mut self, protocol: crate::protocol::PaperProtocol) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// The papers' protocol and its evaluations, when it runs.
    pub fn paper_protocol(&self) -> Option<&crate::protocol::PaperProtocol> {
        self.protocol.as_ref()
    }

    /// The papers' protocol report of the networks it evaluated (`None` without
    /// [`Evaluator::with_paper_protocol`]), compared as in [`Evaluator::report`]: every network
    /// with the first one the protocol evaluated, with `baseline`, and with the references given
    /// to [`Evaluator::compare`], where the protocol evaluated them.
    ///
    /// # Errors
    /// As [`crate::protocol::PaperProtocol::report`].
    pub fn map_report(&self, baseline: Option<&str>) -> Result<Option<crate::protocol::MapReport>> {
        self.protocol
            .as_ref()
            .map(|p| p.report(baseline, &self.comparisons))
            .transpose()
    }

    /// Also compares the network labelled `method` with the one labelled `reference` in
    /// [`Evaluator::report`] (e.g. an ablation with the full method); a label that is not
    /// evaluated by then is ignored.
    pub fn compare(&mut self, method: &str, reference: &str) {
        self.comparisons
            .push((method.to_string(), reference.to_string()));
    }

    /// Evaluates `net` as `label` and logs (`log::info!`) its Recall@N with intervals per
    /// condition, and its mAP under the papers' protocol when the evaluator has it
    /// ([`Evaluator::with_paper_protocol`]).
    ///
    /// # Errors
    /// As [`evaluate_tokyo`] and [`crate::protocol::PaperProtocol::evaluate`].
    pub fn evaluate<N: DescriptorNet + ?Sized>(
        &mut self,
        net: &N,
        label: &str,
        cfg: &ExtractConfig,
        device: &Device,
    ) -> Result<&Evaluation> {
        let Some(p) = self.protocol.as_mut() else {
            return self.evaluate_recall(net, label, cfg, device);
        };
        if cfg.scales != [1.0] {
            p.evaluate(net, label, cfg, device)?;
            return self.evaluate_recall(net, label, cfg, device);
        }
        // the protocol's pass at scale 1 is the single-scale pass Recall@N needs
        let (_, [db, q]) = p.evaluate_keeping_scale_one(net, label, cfg, device)?;
        let ds = crate::protocol::tokyo_set(&self.world)?;
        for (what, folder, d) in [
            ("database", &ds.database, &db),
            ("queries", &ds.queries, &q),
        ] {
            if folder.images.len() != d.rows() {
                return Err(crate::eval::EvalError::SizeMismatch {
                    what: format!("{what} of the papers' protocol vs the Tokyo-style set"),
                    expected: folder.images.len(),
                    got: d.rows(),
                    path: None,
                }
                .into());
            }
        }
        let e = tokyo_evaluation(ds, db, q, label, &self.ns, device, self.export.as_deref())?;
        self.push(e)
    }

    /// [`Evaluator::evaluate`] without the papers' protocol, for a network whose mAP is not
    /// needed (e.g. an ablation compared by Recall@1): the protocol costs about twice the
    /// Recall@N evaluation (multi-scale descriptors of the test set and of the training
    /// images Lw learns from).
    ///
    /// # Errors
    /// As [`evaluate_tokyo`].
    pub fn evaluate_recall<N: DescriptorNet + ?Sized>(
        &mut self,
        net: &N,
        label: &str,
        cfg: &ExtractConfig,
        device: &Device,
    ) -> Result<&Evaluation> {
        let e = evaluate_tokyo(
            net,
            &self.world,
            label,
            &self.ns,
            cfg,
            device,
            self.export.as_deref(),
        )?;
        self.push(e)
    }

    /// Adds an evaluation made elsewhere (e.g. partial divide-and-conquer retrieval).
    ///
    /// # Errors
    /// [`crate::eval::EvalError`] when its query count differs from the others'.
    pub fn push(&mut self, e: Evaluation) -> Result<&Evaluation> {
        if let Some(first) = self.evaluations.first()
            && first.hits.ranks.len() != e.hits.ranks.len()
        {
            return Err(crate::eval::EvalError::SizeMismatch {
                what: format!("queries of {:?} vs {:?}", e.label, first.label),
                expected: first.hits.ranks.len(),
                got: e.hits.ranks.len(),
                path: None,
            }
            .into());
        }
        for split in TokyoSplit::ALL {
            let ci = e.split(split).recall_ci(&e.ns, &self.bootstrap)?;
            log::info!(
                "{:<48} {:>6} queries: {}",
                e.label,
                split.name(),
                ci.to_line()
            );
        }
        self.evaluations.push(e);
        Ok(self.evaluations.last().expect("just pushed"))
    }

    /// The report: per network and condition Recall@N with its interval, and the paired
    /// comparisons of every network but the first with the first network, with `baseline`
    /// (a label) where it exists, and with the references given to [`Evaluator::compare`].
    ///
    /// # Errors
    /// As [`Evaluation::results`].
    pub fn report(&self, dataset: &str, baseline: Option<&str>) -> Result<Report> {
        let first = self.evaluations.first();
        let base = baseline.and_then(|b| self.evaluations.iter().find(|e| e.label == b));
        let mut methods = Vec::new();
        for (i, e) in self.evaluations.iter().enumerate() {
            // the first network is the reference of all others, compared with nothing itself
            let mut refs: Vec<&Evaluation> = first.into_iter().filter(|_| i > 0).collect();
            if let Some(b) = base
                && i > 0
                && !refs.iter().any(|r| r.label == b.label)
            {
                refs.push(b);
            }
            for (_, r) in self.comparisons.iter().filter(|(m, _)| *m == e.label) {
                if let Some(r) = self.evaluations.iter().find(|x| &x.label == r)
                    && !refs.iter().any(|x| x.label == r.label)
                {
                    refs.push(r);
                }
            }
            methods.extend(e.results(&refs, &self.bootstrap)?);
        }
        Ok(Report::new(dataset, methods))
    }
}

/// Writes `report.json`, `report.md` and `recall.png` into `out` and returns the Markdown of
/// `report.md`. With a translation-quality report, also writes `translation-quality.{json,md}`
/// and appends its section to `report.md`; with a papers'-protocol report, likewise
/// `paper-protocol.{json,md}` and its section.
///
/// # Errors
/// I/O and plotting errors naming the file.
pub fn write_report(
    report: &Report,
    quality: Option<&crate::quality::QualityReport>,
    map: Option<&crate::protocol::MapReport>,
    out: &Path,
) -> Result<String> {
    report.write_json(out.join("report.json"))?;
    let mut md = report.to_markdown();
    if let Some(q) = quality {
        q.write(out)?;
        md.push('\n');
        md.push_str(&q.to_markdown());
    }
    if let Some(m) = map {
        m.write(out)?;
        md.push('\n');
        md.push_str(&m.to_markdown());
    }
    std::fs::write(out.join("report.md"), &md)
        .map_err(|e| crate::core::CoreError::io(out.join("report.md"), e))?;
    report.plot_recall(out.join("recall.png"), 900, 520)?;
    Ok(md)
}

/// The devices of data-parallel training with `n` devices of `device`'s kind: `device` alone for
/// `n = 1`; the first `n` CUDA (or wgpu) devices when `device` is one of them; otherwise `n`
/// replicas of `device` (the CPU backends have one device; their replicas run the
/// multi-device code paths in threads, docs/SCALING.md).
///
/// ```
/// use burn::tensor::Device;
/// let device = Device::default();
/// assert_eq!(nightvision::pipeline::data_parallel(&device, 2).unwrap().len(), 2);
/// assert!(nightvision::pipeline::data_parallel(&device, 0).is_err());
/// ```
///
/// # Errors
/// [`PipelineError::InvalidConfig`] for `n = 0`, or more GPUs than the machine has.
pub fn data_parallel(device: &Device, n: usize) -> Result<DataParallel> {
    if n == 0 {
        return Err(PipelineError::InvalidConfig {
            field: "devices",
            reason: "must be at least 1".into(),
        });
    }
    if n == 1 {
        return Ok(DataParallel::single(device));
    }
    #[allow(unused_mut)]
    let mut kinds: Vec<burn::tensor::DeviceType> = Vec::new();
    #[cfg(feature = "cuda")]
    kinds.push(burn::tensor::DeviceType::Cuda);
    #[cfg(feature = "wgpu")]
    kinds.push(burn::tensor::DeviceType::Wgpu);
    let plain = device.clone().inner();
    for kind in kinds {
        let all = Device::enumerate(kind);
        if all.iter().any(|d| d == &plain) {
            if all.len() < n {
                return Err(PipelineError::InvalidConfig {
                    field: "devices",
                    reason: format!(
                        "{n} requested, but this machine has {} of {device:?}'s kind",
                        all.len()
                    ),
                });
            }
            return Ok(DataParallel::new(all.iter().take(n).cloned().collect())?);
        }
    }
    Ok(DataParallel::replicas(device, n)?)
}

/// The configuration of [`mobilenet_v2_gem`]: cirtorch's GeM network on a MobileNetV2 trunk.
pub fn mobilenet_v2_gem_config() -> CirNetConfig {
    CirNetConfig::new(BackboneConfig::mobilenet_v2())
}

/// Opens the checkpoint folder of one training stage bound to its configuration (`config.json`:
/// the network configuration under `"network"` or `"generator"`, the stage's settings under
/// `"stage"`): with `restart`, its checkpoints and configuration are removed first; otherwise a
/// stored configuration that differs from `config` is refused with
/// [`crate::core::CoreError::ConfigMismatch`] naming every differing field.
///
/// ```
/// let root = tempfile::tempdir().unwrap();
/// let dir = root.path().join("stage");
/// let cfg = serde_json::json!({"network": {"ngf": 16}, "stage": {"lr": 0.001}});
/// nightvision::pipeline::stage_dir(&dir, &cfg, false).unwrap();
/// let other = serde_json::json!({"network": {"ngf": 16}, "stage": {"lr": 0.01}});
/// let e = nightvision::pipeline::stage_dir(&dir, &other, false).unwrap_err();
/// assert!(e.to_string().contains("stage.lr"));
/// nightvision::pipeline::stage_dir(&dir, &other, true).unwrap(); // --restart
/// ```
///
/// # Errors
/// The mismatch; I/O errors naming the file.
pub fn stage_dir(path: &Path, config: &serde_json::Value, restart: bool) -> Result<CheckpointDir> {
    let dir = CheckpointDir::new(path)?;
    if restart {
        dir.clear()?;
    }
    dir.bind_config(config)?;
    Ok(dir)
}

/// Fine-tunes [`mobilenet_v2_gem`] with cirtorch tuples (the metric-learning stage of Dark Side
/// Augmentation and of Similarity Min-Max), checkpointing into (and resuming from) `ckpt` (open
/// it with [`stage_dir`] so that [`CirNet::load`] rebuilds the result from it), and logs the
/// mean loss of every epoch. Returns the network in inference mode.
///
/// With `validation = Some((val, every))`, the network is scored every `every` epochs (and after
/// the last) by its mean contrastive loss on tuples of `val` — every query of the split, hard
/// negatives mined from all of its images (at most one per other place of the split), the same
/// augmentation hooks, drawn with epoch 0's stream each time — and the lowest-loss network is
/// returned, as gandtr keeps `embed_best.pth`
/// (docs/PAPERS.md A.6).
///
/// # Errors
/// Missing weights, training and checkpoint errors; [`PipelineError::InvalidConfig`] for a
/// validation split of fewer than two places.
pub fn finetune_gem(
    db: &TupleDatabase,
    hooks: AugmentHooks,
    cfg: TupleTrainerConfig,
    ckpt: &CheckpointDir,
    parallel: &DataParallel,
    validation: Option<(&TupleDatabase, usize)>,
) -> Result<CirNet> {
    let t = std::time::Instant::now();
    let device = &parallel.main().clone().inner();
    let trainer = TupleTrainer::new(cfg.clone(), db, hooks.clone(), device)?
        .with_data_parallel(parallel.clone());
    let net = mobilenet_v2_gem(device)?;
    let trained = match validation {
        None => trainer.train(net, Some(ckpt))?,
        Some((val, every)) => {
            // a small split (a tiny world) has fewer other places than negatives per tuple
            let places: std::collections::BTreeSet<i64> = val.clusters.iter().copied().collect();
            if places.len() < 2 {
                return Err(PipelineError::InvalidConfig {
                    field: "val_every",
                    reason: format!(
                        "the validation split has {} place(s), a validation tuple needs a \
                         negative of another place: validate on a larger world or turn model \
                         selection off (--val-every 0)",
                        places.len()
                    ),
                });
            }
            let val_cfg = TupleTrainerConfig {
                mining: MiningConfig {
                    neg_num: cfg.mining.neg_num.min(places.len() - 1),
                    query_size: val.qidxs.len(),
                    pool_size: val.images.len(),
                },
                anchors: AnchorStrategy::Random,
                progress: false,
                ..cfg
            };
            let validator = TupleTrainer::new(val_cfg, val, hooks, device)?;
            let mut selection = Selection::new(every, Goal::Minimize, |net: &CirNet| {
                Ok(validator.loss(net, 0)?)
            })?;
            trainer.train_selecting(net, Some(ckpt), &mut selection)?
        }
    };
    let losses: Vec<String> = trained
        .log
        .epochs
        .iter()
        .map(|e| match e.val_score {
            Some(v) => format!("{:.4} (val {v:.4})", e.mean_loss),
            None => format!("{:.4}", e.mean_loss),
        })
        .collect();
    log::info!(
        "fine-tuning ({}): mean loss per epoch [{}] in {:.0} s{}",
        ckpt.root().display(),
        losses.join(", "),
        t.elapsed().as_secs_f64(),
        trained.log.best.map_or(String::new(), |b| format!(
            "; kept epoch {} (lowest validation loss {:.4})",
            b.epoch + 1,
            b.score
        ))
    );
    Ok(trained.net.valid())
}

/// Writes rows of image batches side by side as one PNG: row `r` shows the images of
/// `rows[r]` (each `[B, 3, H, W]` in `[0, 1]`, all of the same size) left to right.
///
/// # Errors
/// I/O and image errors naming the file; [`PipelineError::Readback`] for rows of different sizes.
pub fn image_grid(rows: &[Tensor<4>], path: impl AsRef<Path>) -> Result<()> {
    let imgs: Vec<Vec<Rgb32FImage>> = rows
        .iter()
        .map(|r| to_images(r.clone()))
        .collect::<std::result::Result<_, _>>()?;
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

/// `[B, 3, H, W]` images of `paths` at the first image's size: the others are resized
/// (bilinear) to it where they differ. The translators' preview grids use it, so that they show
/// the frames at the scale the translators are used and scored at (a generator trained at one
/// scale can fail at another; docs/TRAINING.md).
///
/// # Errors
/// Image decoding errors naming the file.
///
/// ```no_run
/// # use burn::tensor::Device;
/// let x = nightvision::pipeline::load_frames(&["a.jpg".into(), "b.jpg".into()], &Device::default())?;
/// assert_eq!(x.dims()[0], 2);
/// # Ok::<(), nightvision::pipeline::PipelineError>(())
/// ```
pub fn load_frames(paths: &[PathBuf], device: &Device) -> Result<Tensor<4>> {
    let mut xs: Vec<Tensor<4>> = Vec::with_capacity(paths.len());
    for p in paths {
        let img = crate::core::image::load_rgb(p)?;
        let x = to_tensor(std::slice::from_ref(&img), device)?;
        let x = match xs.first().map(|f| f.dims()) {
            Some([_, _, h, w]) if x.dims()[2..] != [h, w] => {
                crate::core::image::resize_bilinear(x, [h, w])
            }
            _ => x,
        };
        xs.push(x);
    }
    if xs.is_empty() {
        return Ok(Tensor::from_data(
            TensorData::new(Vec::<f32>::new(), [0, 3, 0, 0]),
            device,
        ));
    }
    Ok(Tensor::cat(xs, 0))
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
