//! The retrieval protocol of Dark Side Augmentation and Similarity Min-Max (cirtorch's `test.py`
//! as both papers run it, docs/PAPERS.md A.8 and C.4): multi-scale descriptors at scales
//! `[1, 1/√2, 1/2]`, learned Lw whitening from same-place pairs of *training* images, and mAP
//! with the old `ok` / `junk` protocol, here on a world's Tokyo-style test set written as a
//! cirtorch ground-truth pickle ([`tokyo_gnd`], [`GND_FILE`]).
//!
//! | | the papers | here |
//! |---|---|---|
//! | test set | Tokyo 24/7 (`gnd_247tokyo1k.pkl`) | the world's `tokyo/images/test`: day database, day / sunset / night queries |
//! | image size | longer side ≤ 1024 (native) | longer side ≤ 320 (native) |
//! | Lw pairs | 91,642 SfM-120k pairs | every pair of views of a place in the world's cirtorch set (train and val, never a test place) |
//! | Lw dimension | all `D` | the top [`DEFAULT_LW_DIMS`] principal directions ([`Whitening::learn_lw_pca`]) |
//! | mAP | over all queries | per condition, with bootstrap intervals and paired tests |
//!
//! Why Lw is learned in a subspace: the world's 1,250 training images of 125 places give at most
//! 1,125 independent pair differences, fewer than MobileNetV2-GeM's 1,280 dimensions, so the
//! intra-place covariance is singular and plain Lw amplifies the directions no pair varies along
//! by `1/√jitter` (see [`Whitening::learn_lw_pca`]). 256 keeps more than four independent
//! differences per dimension; it was fixed before any test-set number was seen.
//!
//! ```
//! use nightvision::protocol::MapEvaluation;
//! use nightvision::eval::{Bootstrap, TokyoSplit};
//! // six queries in day, sunset, night order; APs as fractions
//! let e = MapEvaluation { label: "net".into(), aps: vec![1.0, 0.5, 0.0, 0.5, 0.5, 1.0], lw_dims: 256, jitter: 0.0 };
//! assert_eq!(e.split(TokyoSplit::Night), vec![0.0, 1.0]);
//! let ci = nightvision::eval::bootstrap_map(&e.split(TokyoSplit::Day), &Bootstrap::default())?;
//! assert_eq!(ci.map, 75.0);
//! # Ok::<(), nightvision::eval::EvalError>(())
//! ```

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::Serialize;

use crate::eval::{
    Bootstrap, Descriptors, Gnd, GroundTruth, KnnConfig, MapCi, Metric, PairedMap, QueryGnd,
    TokyoSplit, VprDataset, bootstrap_map, compute_map, paired_map, rank_all,
};
use crate::metric::multiscale::{
    DEFAULT_SCALES, DescriptorNet, ExtractConfig, combine_scales, extract_files,
    extract_files_per_scale,
};
use crate::metric::whitening::Whitening;
use crate::pipeline::{PipelineError, Result, slug};

/// The file name of the Tokyo-style set's ground truth in a pipeline's output folder.
pub const GND_FILE: &str = "gnd_synthetic-tokyo.pkl";

/// The dimension of the principal subspace Lw is learned in (see the [module docs](self)).
pub const DEFAULT_LW_DIMS: usize = 256;

/// The positive radius of the Tokyo-style set (metres), as for Recall@N.
const RADIUS_M: f64 = 25.0;

/// The ground truth of a world's Tokyo-style test set (`world/tokyo/images/test`) in cirtorch's
/// old protocol: `imlist` the database images and `qimlist` the queries (file names relative to
/// their folders, without extension), `ok` the database images within 25 m of each query, no
/// `junk`, no boxes. [`Gnd::write`] stores it as `gnd_<dataset>.pkl`.
///
/// # Errors
/// A folder that is not in the VPR format, names without UTM coordinates.
pub fn tokyo_gnd(world: &Path) -> Result<Gnd> {
    gnd_of(&tokyo_set(world)?)
}

/// A world's Tokyo-style test set (`world/tokyo/images/test`, queries in `queries`).
pub(crate) fn tokyo_set(world: &Path) -> Result<VprDataset> {
    Ok(VprDataset::open(
        world.join("tokyo/images/test"),
        "queries",
    )?)
}

/// [`tokyo_gnd`] of the opened set.
fn gnd_of(ds: &VprDataset) -> Result<Gnd> {
    let positives = GroundTruth::from_dataset(ds)?.positives(RADIUS_M)?;
    let stem = |names: Vec<String>| -> Vec<String> {
        names
            .into_iter()
            .map(|n| match n.rsplit_once('.') {
                Some((s, _)) => s.to_string(),
                None => n,
            })
            .collect()
    };
    let junk = vec![Vec::new(); positives.lists.len()];
    Ok(Gnd::old(
        stem(ds.database.relative_names()),
        stem(ds.queries.relative_names()),
        positives.lists,
        junk,
    )?)
}

/// One network under the protocol: the AP of every query of the Tokyo-style set (fractions, in
/// the set's order, so that query `i` is [`TokyoSplit::of`]`(i)`; NaN for a query without a
/// positive) and how its whitening was learned.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MapEvaluation {
    /// The network's name in reports.
    pub label: String,
    /// AP per query.
    pub aps: Vec<f64>,
    /// The dimension of the Lw subspace.
    pub lw_dims: usize,
    /// The diagonal jitter Lw's Cholesky factorisation needed (0: none).
    pub jitter: f64,
}

impl MapEvaluation {
    /// The APs of the queries of one condition.
    pub fn split(&self, split: TokyoSplit) -> Vec<f64> {
        split
            .indices(self.aps.len())
            .iter()
            .map(|&i| self.aps[i])
            .collect()
    }
}

/// One network and condition in a [`MapReport`]: mAP with its interval and the paired
/// comparisons.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MapRow {
    /// `"{label}, {condition} queries"`.
    pub name: String,
    /// mAP (percent) with its 95 % bootstrap interval.
    pub map: MapCi,
    /// `(reference row name, mAP(this) − mAP(reference))` on the same queries.
    pub comparisons: Vec<(String, PairedMap)>,
}

/// The protocol's results of a pipeline's networks (`paper-protocol.{json,md}`, also appended to
/// `report.md`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MapReport {
    /// How the numbers were made, in one line.
    pub protocol: String,
    /// One row per network and condition.
    pub rows: Vec<MapRow>,
}

impl MapReport {
    /// A Markdown section: one table row per network and condition, then the comparisons.
    ///
    /// ```
    /// use nightvision::protocol::{MapReport, MapRow};
    /// use nightvision::eval::{Bootstrap, bootstrap_map};
    /// let map = bootstrap_map(&[0.5, 1.0], &Bootstrap::default())?;
    /// let r = MapReport { protocol: "ms + Lw".into(), rows: vec![MapRow { name: "net, night queries".into(), map, comparisons: vec![] }] };
    /// assert!(r.to_markdown().contains("| net, night queries | 75.0 ["));
    /// # Ok::<(), nightvision::eval::EvalError>(())
    /// ```
    pub fn to_markdown(&self) -> String {
        let mut md = format!(
            "## The papers' protocol: mAP (%)\n\n{}\n\n| network | mAP [95 % CI] | queries |\n|---|---|---|\n",
            self.protocol
        );
        for r in &self.rows {
            md.push_str(&format!(
                "| {} | {:.1} [{:.1}, {:.1}] | {} |\n",
                r.name, r.map.map, r.map.lower, r.map.upper, r.map.n_queries
            ));
        }
        let mut cmp = String::new();
        for r in &self.rows {
            for (against, c) in &r.comparisons {
                cmp.push_str(&format!(
                    "| {} | {} | {:+.1} [{:+.1}, {:+.1}] | {:.4} |\n",
                    r.name, against, c.diff, c.lower, c.upper, c.p_value
                ));
            }
        }
        if !cmp.is_empty() {
            md.push_str(
                "\nPaired comparisons (bootstrap interval of the mAP difference; sign-flip \
                 permutation test):\n\n| network | against | ΔmAP [95 % CI] | p |\n|---|---|---|---|\n",
            );
            md.push_str(&cmp);
        }
        md
    }

    /// Writes `paper-protocol.json` and `paper-protocol.md` into `out`.
    ///
    /// # Errors
    /// I/O errors naming the file.
    pub fn write(&self, out: &Path) -> Result<()> {
        crate::core::checkpoint::save_json(out.join("paper-protocol.json"), self)?;
        crate::core::checkpoint::write_bytes_atomic(
            out.join("paper-protocol.md"),
            self.to_markdown().as_bytes(),
        )?;
        Ok(())
    }
}

/// Evaluates networks with the protocol on one world; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct PaperProtocol {
    /// Per query: the database images within 25 m (`ok`), no junk.
    truth: Vec<QueryGnd>,
    database: Vec<PathBuf>,
    queries: Vec<PathBuf>,
    train: Vec<PathBuf>,
    qidxs: Vec<usize>,
    pidxs: Vec<usize>,
    lw_dims: usize,
    export: Option<PathBuf>,
    bootstrap: Bootstrap,
    evaluations: Vec<MapEvaluation>,
}

impl PaperProtocol {
    /// The protocol on `world`: its Tokyo-style test set and, for Lw, every pair of images of the
    /// same place in its cirtorch training set (`train` and `val` splits). With `export`, writes
    /// the ground truth to `export/`[`GND_FILE`] and each network's whitened descriptors and
    /// whitening to `export/<slug(label)>/paper-protocol/` (`database.npy`, `queries.npy`,
    /// `lw.safetensors`), from which `cargo run --example evaluate -- map --gnd … --db …
    /// --queries …` recomputes the mAP over all queries.
    ///
    /// # Errors
    /// A world without the Tokyo-style set or the cirtorch pickle, an `lw_dims` of 0, I/O errors.
    pub fn new(world: &Path, lw_dims: usize, export: Option<&Path>) -> Result<Self> {
        if lw_dims == 0 {
            return Err(PipelineError::InvalidConfig {
                field: "lw_dims",
                reason: "must be at least 1".into(),
            });
        }
        let ds = tokyo_set(world)?;
        let gnd = gnd_of(&ds)?;
        let pkl = world.join("cirtorch/train/synthetic-places/synthetic-places.pkl");
        let ims = world.join("cirtorch/train/synthetic-places/ims");
        let (mut train, mut clusters) = (Vec::new(), Vec::new());
        for split in ["train", "val"] {
            let db = crate::metric::data::TupleDatabase::from_cirtorch_pickle(&pkl, split, &ims)?;
            let crate::core::augment::ImageSource::Files(files) = db.images else {
                return Err(PipelineError::InvalidConfig {
                    field: "world",
                    reason: format!("{}: the {split} images are not files", pkl.display()),
                });
            };
            // clusters of the two splits are numbered from 0 each: keep them apart
            let offset = clusters.iter().copied().max().map_or(0, |m: i64| m + 1);
            clusters.extend(db.clusters.iter().map(|c| c + offset));
            train.extend(files);
        }
        let (mut qidxs, mut pidxs) = (Vec::new(), Vec::new());
        for i in 0..train.len() {
            for j in i + 1..train.len() {
                if clusters[i] == clusters[j] {
                    qidxs.push(i);
                    pidxs.push(j);
                }
            }
        }
        if let Some(dir) = export {
            gnd.write(dir.join(GND_FILE))?;
        }
        Ok(Self {
            truth: gnd.old_protocol()?,
            database: crate::pipeline::folder_paths(&ds.database),
            queries: crate::pipeline::folder_paths(&ds.queries),
            train,
            qidxs,
            pidxs,
            lw_dims,
            export: export.map(Path::to_path_buf),
            bootstrap: Bootstrap::default(),
            evaluations: Vec::new(),
        })
    }

    /// The one-line description of the protocol for reports.
    pub fn describe(&self) -> String {
        format!(
            "Multi-scale descriptors (scales 1, 1/√2, 1/2; GeM-p power mean), Lw whitening learned \
             in the top {} principal directions from {} same-place pairs of {} training images, \
             ranking by dot product, mAP with cirtorch's old protocol (ok = database images within \
             25 m, no junk; {}); intervals: {} bootstrap resamples over queries.",
            self.lw_dims,
            self.qidxs.len(),
            self.train.len(),
            GND_FILE,
            self.bootstrap.resamples
        )
    }

    /// Evaluates `net` as `label`: multi-scale descriptors with `cfg`'s size, normalisation and
    /// CLAHE (its scales are replaced by `[1, 1/√2, 1/2]`), Lw learned on the training pairs,
    /// mAP per query.
    ///
    /// # Errors
    /// Image, extraction, whitening and ranking errors.
    pub fn evaluate<N: DescriptorNet + ?Sized>(
        &mut self,
        net: &N,
        label: &str,
        cfg: &ExtractConfig,
        device: &Device,
    ) -> Result<&MapEvaluation> {
        Ok(self.evaluate_keeping_scale_one(net, label, cfg, device)?.0)
    }

    /// [`PaperProtocol::evaluate`], also returning the test set's descriptors at scale 1
    /// (database, queries; rows in the order of the Tokyo-style folders as
    /// [`crate::eval::VprDataset`] lists them). They come from the same pass as the multi-scale
    /// ones and are exactly what `extract_files` gives with `cfg` at scales `[1.0]`, so
    /// [`crate::pipeline::Evaluator::evaluate`] scores Recall@N from them instead of describing
    /// the test set a second time.
    ///
    /// # Errors
    /// As [`PaperProtocol::evaluate`].
    pub fn evaluate_keeping_scale_one<N: DescriptorNet + ?Sized>(
        &mut self,
        net: &N,
        label: &str,
        cfg: &ExtractConfig,
        device: &Device,
    ) -> Result<(&MapEvaluation, [Descriptors; 2])> {
        let ms = ExtractConfig {
            scales: DEFAULT_SCALES.to_vec(),
            ..cfg.clone()
        };
        let train = extract_files(net, &self.train, &ms, device)?;
        let dims = self.lw_dims.min(train.dims()[1]);
        let lw = Whitening::learn_lw_pca(train, &self.qidxs, &self.pidxs, dims)?;
        // whitened multi-scale descriptors, and the scale-1 ones of the same pass
        // (DEFAULT_SCALES[0] is 1)
        let whiten = |paths: &[PathBuf]| -> Result<(Descriptors, Descriptors)> {
            let per_scale = extract_files_per_scale(net, paths, &ms, device)?;
            let one = crate::pipeline::host_descriptors(per_scale[0].clone(), "descriptors")?;
            let multi = combine_scales(per_scale, net.multiscale_power())?;
            let x = lw.apply(multi, Some(dims))?;
            Ok((
                crate::pipeline::host_descriptors(x, "whitened descriptors")?,
                one,
            ))
        };
        let (db, db_one) = whiten(&self.database)?;
        let (q, q_one) = whiten(&self.queries)?;
        if let Some(dir) = &self.export {
            let dir = dir.join(slug(label)).join("paper-protocol");
            std::fs::create_dir_all(&dir).map_err(|e| crate::core::CoreError::io(&dir, e))?;
            db.write_npy(dir.join("database.npy"))?;
            q.write_npy(dir.join("queries.npy"))?;
            lw.save(dir.join("lw.safetensors"))?;
        }
        let ranks = rank_all(&db, &q, &KnnConfig::new(Metric::InnerProduct), device)?;
        let map = compute_map(&ranks, &self.truth, &[1])?;
        self.evaluations.push(MapEvaluation {
            label: label.to_string(),
            aps: map.aps,
            lw_dims: dims,
            jitter: lw.jitter,
        });
        let e = self.evaluations.last().expect("just pushed");
        for split in TokyoSplit::ALL {
            let ci = bootstrap_map(&e.split(split), &self.bootstrap)?;
            log::info!(
                "{:<48} {:>6} queries: mAP {:.1} [{:.1}, {:.1}] (multi-scale + Lw)",
                label,
                split.name(),
                ci.map,
                ci.lower,
                ci.upper
            );
        }
        Ok((e, [db_one, q_one]))
    }

    /// The evaluations so far.
    pub fn evaluations(&self) -> &[MapEvaluation] {
        &self.evaluations
    }

    /// The report: per network and condition mAP with its interval, every network compared
    /// with the first one evaluated (but that one itself), with `baseline`, and with `reference`
    /// of each `(method, reference)` pair in `comparisons`; labels not evaluated are skipped.
    ///
    /// # Errors
    /// As [`bootstrap_map`] and [`paired_map`].
    pub fn report(
        &self,
        baseline: Option<&str>,
        comparisons: &[(String, String)],
    ) -> Result<MapReport> {
        let first = self.evaluations.first().map(|e| e.label.as_str());
        let references = |label: &str| -> Vec<&MapEvaluation> {
            let implicit = match first {
                Some(f) if f != label => vec![f].into_iter().chain(baseline).collect(),
                _ => Vec::new(),
            };
            let explicit = comparisons
                .iter()
                .filter(|(m, _)| m == label)
                .map(|(_, r)| r.as_str());
            let mut refs: Vec<&MapEvaluation> = Vec::new();
            for r in implicit.into_iter().chain(explicit) {
                if let Some(e) = self.evaluations.iter().find(|e| e.label == r)
                    && r != label
                    && !refs.iter().any(|x| x.label == r)
                {
                    refs.push(e);
                }
            }
            refs
        };
        let mut rows = Vec::new();
        for e in &self.evaluations {
            let refs = references(&e.label);
            for split in TokyoSplit::ALL {
                let aps = e.split(split);
                let mut comparisons = Vec::new();
                for r in &refs {
                    comparisons.push((
                        format!("{}, {} queries", r.label, split.name()),
                        paired_map(&r.split(split), &aps, &self.bootstrap)?,
                    ));
                }
                rows.push(MapRow {
                    name: format!("{}, {} queries", e.label, split.name()),
                    map: bootstrap_map(&aps, &self.bootstrap)?,
                    comparisons,
                });
            }
        }
        Ok(MapReport {
            protocol: self.describe(),
            rows,
        })
    }
}
