//! The three papers' pipelines as library calls: a configuration with every knob of the examples'
//! flags (`#[derive(Config)]`, serde, and `clap::Args` so a command line maps onto it one to one)
//! and `run(&config, &device)`, which trains every stage on an exported world, checkpoints each into
//! the configuration's `out` folder (resuming from there), evaluates and writes the report.
//!
//! | module | paper | stages |
//! |---|---|---|
//! | [`dark_side`] | Dark Side Augmentation (ICCV 2023) | HEDN-GAN → tuple fine-tuning with synthetic-night anchors + CLAHE |
//! | [`nocplace`] | NocPlace (arXiv 2402.17159) | CUT / NEG-CUT → night CosPlace set → daytime CosPlace → NocPlace (CosFace + IKT) → partial divide-and-conquer |
//! | [`similarity_minmax`] | Similarity Min-Max (ICCV 2023) | darkening network D → tuple fine-tuning with a darkened query copy |
//!
//! Progress goes through the [`log`] facade (`info` per stage; install any logger, e.g.
//! `env_logger`, to see it); the trainers' progress bars follow each stage's `progress` flag.
//!
//! ```no_run
//! use burn::tensor::Device;
//! use nightvision::pipelines::similarity_minmax::{self, SimilarityMinMaxConfig};
//!
//! // a short run on an exported world; the report also lands in out/smm/report.{json,md}
//! let cfg = SimilarityMinMaxConfig::new()
//!     .with_data(Some("out/synthetic-places".into()))
//!     .with_out("out/smm".into())
//!     .with_d_iterations(20)
//!     .with_tuples(10)
//!     .with_epochs(1);
//! let report = similarity_minmax::run(&cfg, &Device::default())?;
//! println!("{}", report.to_markdown());
//! # Ok::<(), nightvision::pipeline::PipelineError>(())
//! ```

pub mod dark_side;
pub mod nocplace;
pub mod similarity_minmax;
pub mod smm_classification;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::eval::Report;
use crate::pipeline::{PipelineError, Result, write_report};
use crate::quality::QualityReport;

/// What a pipeline run produced: the Recall@N report of its networks (absent when the run
/// stopped after its generator), its generator's translation quality on the held-out places,
/// and where the files are.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PipelineReport {
    /// Recall@1/5/10 with intervals and paired comparisons of every network, or `None` after
    /// `gan_only` / `d_only`.
    pub recall: Option<Report>,
    /// The papers' retrieval protocol (multi-scale, Lw, mAP; [`crate::protocol`]) of the
    /// networks, where the pipeline's paper uses it and the run evaluated it.
    pub map: Option<crate::protocol::MapReport>,
    /// The generator's translation quality beside the reference rows.
    pub quality: QualityReport,
    /// The output folder.
    pub out: PathBuf,
    /// The files written into `out` (relative names).
    pub files: Vec<String>,
    /// Wall-clock seconds of the run (resumed stages count only their remaining part).
    pub seconds: f64,
}

impl PipelineReport {
    /// The report of a generator stage (no recall yet): its translation quality and the files
    /// every generator stage writes (`translation-quality.{json,md}`, `held-out.png`,
    /// `translated/`), then `extra`.
    fn generator_stage(quality: QualityReport, out: &Path, extra: &[&str]) -> Self {
        let mut names = files(&[
            "translation-quality.json",
            "translation-quality.md",
            "held-out.png",
            "translated/",
        ]);
        names.extend(files(extra));
        Self {
            recall: None,
            map: None,
            quality,
            out: out.to_path_buf(),
            files: names,
            seconds: 0.0,
        }
    }

    /// Writes the report of a run that stops after its generator (`gan_only`, `d_only`) and
    /// returns it, timed from `t0`.
    fn finish_after_generator(mut self, t0: std::time::Instant) -> Result<Self> {
        self.seconds = t0.elapsed().as_secs_f64();
        self.write()?;
        Ok(self)
    }

    /// The report as Markdown: the recall table (when there is one), then the translation
    /// quality table, then the papers' protocol (when it ran).
    pub fn to_markdown(&self) -> String {
        let mut md = self
            .recall
            .as_ref()
            .map(Report::to_markdown)
            .unwrap_or_default();
        if !md.is_empty() {
            md.push('\n');
        }
        md.push_str(&self.quality.to_markdown());
        if let Some(m) = &self.map {
            md.push('\n');
            md.push_str(&m.to_markdown());
        }
        md
    }

    /// Sets the recall report of `eval` (titled `dataset`, compared with `baseline`) and its
    /// papers'-protocol report, with the files they write.
    fn set_evaluation(
        &mut self,
        eval: &crate::pipeline::Evaluator,
        dataset: &str,
        baseline: &str,
    ) -> Result<()> {
        self.recall = Some(eval.report(dataset, Some(baseline))?);
        self.map = eval.map_report(Some(baseline))?;
        self.files.extend(files(&[
            "report.json",
            "report.md",
            "recall.png",
            "descriptors/",
        ]));
        if self.map.is_some() {
            self.files
                .extend(files(&["paper-protocol.json", "paper-protocol.md"]));
        }
        Ok(())
    }

    /// Writes the report into `out`: `report.{json,md}` and `recall.png` with the quality section
    /// appended (see [`write_report`]) when there is a recall report, and
    /// `paper-protocol.{json,md}` (also appended to `report.md`) when the protocol ran; else only
    /// `translation-quality.{json,md}`.
    fn write(&self) -> Result<()> {
        match &self.recall {
            Some(r) => {
                write_report(r, Some(&self.quality), self.map.as_ref(), &self.out).map(|_| ())
            }
            None => self.quality.write(&self.out),
        }
    }
}

/// Parses a normalisation kind (`instance`, `batch` or `none`) for the command line.
///
/// # Errors
/// Any other word, with the accepted ones.
pub fn parse_norm(s: &str) -> std::result::Result<crate::gan::NormKind, String> {
    match s {
        "instance" => Ok(crate::gan::NormKind::Instance),
        "batch" => Ok(crate::gan::NormKind::Batch),
        "none" => Ok(crate::gan::NormKind::None),
        other => Err(format!("{other:?}: instance, batch or none")),
    }
}

/// Parses a CUT variant (`cut` or `negcut`) for the command line.
///
/// # Errors
/// Any other word, with the accepted ones.
pub fn parse_cut_mode(s: &str) -> std::result::Result<crate::gan::train_cut::CutMode, String> {
    match s {
        "cut" => Ok(crate::gan::train_cut::CutMode::Cut),
        "negcut" => Ok(crate::gan::train_cut::CutMode::NegCut),
        other => Err(format!("{other:?}: cut or negcut")),
    }
}

/// Creates `out`, removes the temporary files a killed run left in it (see
/// [`remove_stale_parts`]) and returns the world to run on (`data`, or the default world
/// rendered into `out/world`; with `quick`, the quick world rendered into `out/world-quick`).
fn prepare(data: Option<&Path>, out: &Path, quick: bool) -> Result<PathBuf> {
    std::fs::create_dir_all(out).map_err(|e| crate::core::CoreError::io(out, e))?;
    remove_stale_parts(out)?;
    if quick {
        crate::pipeline::ensure_quick_world(data, out)
    } else {
        crate::pipeline::ensure_world(data, out)
    }
}

/// Removes, below `dir`, the temporary `.NAME.PID.part` files and folders of atomic writes
/// (`nightvision_core::checkpoint::write_atomic`, `CheckpointDir::save`) that a killed run left
/// behind. Nothing reads them (a write is visible only once renamed into place); this only frees
/// their space. Returns how many were removed.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::create_dir_all(dir.path().join("gan/.step-000004.4242.part")).unwrap();
/// std::fs::write(dir.path().join(".report.json.4242.part"), b"{").unwrap();
/// std::fs::write(dir.path().join("report.json"), b"{}").unwrap();
/// assert_eq!(nightvision::pipelines::remove_stale_parts(dir.path()).unwrap(), 2);
/// assert!(dir.path().join("report.json").exists() && dir.path().join("gan").exists());
/// ```
///
/// # Errors
/// I/O errors naming the path.
pub fn remove_stale_parts(dir: &Path) -> Result<usize> {
    let io = |p: &Path, e| PipelineError::from(crate::core::CoreError::io(p, e));
    let mut removed = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| io(&d, e))? {
            let entry = entry.map_err(|e| io(&d, e))?;
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let is_dir = entry.file_type().map_err(|e| io(&path, e))?.is_dir();
            if name.starts_with('.') && name.ends_with(".part") {
                if is_dir {
                    std::fs::remove_dir_all(&path).map_err(|e| io(&path, e))?;
                } else {
                    std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
                }
                removed += 1;
            } else if is_dir {
                stack.push(path);
            }
        }
    }
    Ok(removed)
}

/// Fine-tunes MobileNetV2-GeM with the cirtorch tuples of the world `data` into `dir`, bound to
/// its `config.json` (the network's configuration and `stage`, the settings that define the run);
/// the shared tail of the DSA and SMM fine-tuning stages.
#[allow(clippy::too_many_arguments)]
fn finetune_on_world(
    data: &Path,
    hooks: crate::metric::data::AugmentHooks,
    trainer: crate::metric::train::TupleTrainerConfig,
    stage: serde_json::Value,
    dir: &Path,
    restart: bool,
    parallel: &crate::core::parallel::DataParallel,
    validate_every: Option<usize>,
) -> Result<crate::metric::CirNet> {
    let pkl = data.join("cirtorch/train/synthetic-places/synthetic-places.pkl");
    let ims = data.join("cirtorch/train/synthetic-places/ims");
    let split =
        |name: &str| crate::metric::data::TupleDatabase::from_cirtorch_pickle(&pkl, name, &ims);
    let db = split("train")?;
    let val = match validate_every {
        Some(every) => Some((split("val")?, every)),
        None => None,
    };
    let mut stage = stage;
    stage["model_selection"] = serde_json::Value::from(match validate_every {
        None => "last epoch".to_string(),
        Some(k) => format!("lowest cirtorch val loss, every {k} epochs"),
    });
    let config = serde_json::json!({
        crate::metric::nets::NETWORK_FIELD: crate::pipeline::mobilenet_v2_gem_config(),
        "stage": stage,
    });
    let ckpt = crate::pipeline::stage_dir(dir, &config, restart)?;
    crate::pipeline::finetune_gem(
        &db,
        hooks,
        trainer,
        &ckpt,
        parallel,
        val.as_ref().map(|(v, every)| (v, *every)),
    )
}

/// The evaluator of DSA's and SMM's networks on the world `data`: Recall@1/5/10 with the
/// descriptors exported to `OUT/descriptors`, and the papers' protocol too when `paper_protocol`.
fn evaluator(data: &Path, out: &Path, paper_protocol: bool) -> Result<crate::pipeline::Evaluator> {
    let export = out.join("descriptors");
    let eval = crate::pipeline::Evaluator::new(data, &[1, 5, 10], Some(&export));
    Ok(if paper_protocol {
        eval.with_paper_protocol(crate::protocol::PaperProtocol::new(
            data,
            crate::protocol::DEFAULT_LW_DIMS,
            Some(&export),
        )?)
    } else {
        eval
    })
}

/// A report's title: `base`, marked as a mechanism check in `--quick` mode.
fn title(base: &str, quick: bool) -> String {
    if quick {
        format!("{base} [quick: not results]")
    } else {
        base.to_string()
    }
}

/// An invalid setting of a pipeline's configuration.
fn invalid(field: &'static str, reason: String) -> PipelineError {
    PipelineError::InvalidConfig { field, reason }
}

/// File names for [`PipelineReport::files`].
fn files(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_string()).collect()
}
