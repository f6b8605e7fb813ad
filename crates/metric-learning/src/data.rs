//! Training data: cirtorch tuples with hard-negative mining, CosPlace class sampling, and the
//! augmentation hook (docs/PAPERS.md A.6, A.7, B.5, C.3; docs/PAPERS.md protocols 1.3, 2.3).
//!
//! - [`TupleDatabase`]: images with a cluster id each and the (query, positive) pairs — from
//!   cirtorch's training pickle ([`TupleDatabase::from_cirtorch_pickle`]) or any in-memory list.
//! - [`mine_hard_negatives`]: cirtorch's `create_epoch_tuples` step 4–5: for every query, walk the
//!   pool ranked by descriptor similarity and take images whose cluster is neither the query's nor
//!   one already taken, until `neg_num` negatives.
//! - [`ClassSampler`]: class-balanced sampling of CosPlace classes (one random image per class).
//! - [`Augmentation`] / [`AugmentHooks`]: a transformation of `[0, 1]` RGB batches applied to
//!   anchors (optionally only DSA's hashed subset) and/or positives — a day→night translator or
//!   a darkening network plugs in here without this crate depending on it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anchor_mining::{CosPlaceGroup, ImageRole, TranslationSubset};
use burn::tensor::Tensor;
use rand::{Rng, RngCore};
use vpr_eval::pickle::{PyValue, unpickle};

use crate::error::MetricError;

pub use nightvision_core::augment::{Augmentation, ImageSource};

/// cirtorch's `cid2filename`: `prefix/cid[-2:]/cid[-4:-2]/cid[-6:-4]/cid`.
///
/// ```
/// use metric_learning::data::cid2filename;
/// let p = cid2filename("0123456789abcdef", std::path::Path::new("ims"));
/// assert_eq!(p, std::path::Path::new("ims/ef/cd/ab/0123456789abcdef"));
/// ```
pub fn cid2filename(cid: &str, prefix: &Path) -> PathBuf {
    let n = cid.len();
    let part = |a: usize, b: usize| {
        cid.get(n.saturating_sub(a)..n.saturating_sub(b))
            .unwrap_or("")
    };
    prefix
        .join(part(2, 0))
        .join(part(4, 2))
        .join(part(6, 4))
        .join(cid)
}

/// A training database: images, their clusters (3-D models / places) and (query, positive) pairs.
#[derive(Debug, Clone)]
pub struct TupleDatabase {
    /// The images.
    pub images: ImageSource,
    /// Cluster id of every image (negatives never share the query's cluster).
    pub clusters: Vec<i64>,
    /// Query image of every pair.
    pub qidxs: Vec<usize>,
    /// Positive image of every pair.
    pub pidxs: Vec<usize>,
}

impl TupleDatabase {
    /// Checks and builds a database.
    ///
    /// # Errors
    /// [`MetricError::Shape`] when `clusters` does not have one entry per image or the pair lists
    /// differ in length; [`MetricError::Empty`] without pairs; [`MetricError::Index`] for a pair
    /// naming a missing image.
    pub fn new(
        images: ImageSource,
        clusters: Vec<i64>,
        qidxs: Vec<usize>,
        pidxs: Vec<usize>,
    ) -> crate::Result<Self> {
        if clusters.len() != images.len() {
            return Err(MetricError::shape(
                "clusters",
                format!("{} (one per image)", images.len()),
                clusters.len(),
            ));
        }
        if qidxs.len() != pidxs.len() {
            return Err(MetricError::shape(
                "positive list",
                format!("{} (one per query)", qidxs.len()),
                pidxs.len(),
            ));
        }
        if qidxs.is_empty() {
            return Err(MetricError::Empty {
                what: "(query, positive) pair list",
            });
        }
        let n = images.len();
        if let Some(&bad) = qidxs.iter().chain(&pidxs).find(|&&i| i >= n) {
            return Err(MetricError::Index {
                what: "pair image",
                index: bad,
                len: n,
            });
        }
        Ok(Self {
            images,
            clusters,
            qidxs,
            pidxs,
        })
    }

    /// Reads split `split` (`"train"` or `"val"`) of cirtorch's `retrieval-SfM-120k.pkl`:
    /// `{split: {'cids', 'cluster', 'qidxs', 'pidxs'}}`; images are at
    /// [`cid2filename`]`(cid, ims_root)`.
    ///
    /// The file is read by vpr-eval's pickle reader ([`vpr_eval::pickle::unpickle`]): nothing
    /// is executed, every declared length is checked against the bytes left, nesting is bounded
    /// and memory stays within a small multiple of the file's size.
    ///
    /// # Errors
    /// [`MetricError::Pickle`] naming the file and the missing key, wrong type or inconsistent
    /// list (the checks of [`TupleDatabase::new`]); [`MetricError::Core`] for I/O errors.
    pub fn from_cirtorch_pickle(
        path: impl AsRef<Path>,
        split: &str,
        ims_root: impl AsRef<Path>,
    ) -> crate::Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| nightvision_core::CoreError::io(path, e))?;
        let bad = |reason: String| MetricError::Pickle {
            path: path.to_path_buf(),
            reason,
        };
        let value =
            unpickle(&bytes).map_err(|e| bad(format!("at byte {}: {}", e.offset, e.reason)))?;
        if !matches!(value, PyValue::Dict(_)) {
            return Err(bad("the top level is not a dict".into()));
        }
        let db = dict_get(&value, split)
            .filter(|v| matches!(v, PyValue::Dict(_)))
            .ok_or_else(|| bad(format!("no dict under key {split:?}")))?;
        let list = |key: &str| -> crate::Result<&[PyValue]> {
            dict_get(db, key)
                .and_then(PyValue::as_seq)
                .ok_or_else(|| bad(format!("{split}.{key} is missing or not a list")))
        };
        let cids: Vec<String> = list("cids")?
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                PyValue::Str(s) => Ok(s.clone()),
                PyValue::Str8(b) | PyValue::Bytes(b) => Ok(String::from_utf8_lossy(b).into_owned()),
                other => Err(bad(format!("{split}.cids[{i}] is {other:?}, not a string"))),
            })
            .collect::<crate::Result<_>>()?;
        let ints = |key: &str| -> crate::Result<Vec<i64>> {
            list(key)?
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_i64()
                        .ok_or_else(|| bad(format!("{split}.{key}[{i}] is {v:?}, not an integer")))
                })
                .collect()
        };
        let to_idx = |key: &str| -> crate::Result<Vec<usize>> {
            ints(key)?
                .into_iter()
                .enumerate()
                .map(|(i, v)| {
                    usize::try_from(v)
                        .map_err(|_| bad(format!("{split}.{key}[{i}] = {v} is negative")))
                })
                .collect()
        };
        let clusters = ints("cluster")?;
        let (qidxs, pidxs) = (to_idx("qidxs")?, to_idx("pidxs")?);
        let root_dir = ims_root.as_ref();
        let images = ImageSource::Files(cids.iter().map(|c| cid2filename(c, root_dir)).collect());
        // the lists' consistency is the file's: its errors name the file
        Self::new(images, clusters, qidxs, pidxs).map_err(|e| bad(format!("split {split:?}: {e}")))
    }
}

/// Item `key` of a pickled dict whose keys are `str` (Python 3) or `bytes` / Python 2 `str`.
fn dict_get<'a>(d: &'a PyValue, key: &str) -> Option<&'a PyValue> {
    match d {
        PyValue::Dict(items) => items
            .iter()
            .find(|(k, _)| k.as_str() == Some(key) || k.as_bytes() == Some(key.as_bytes()))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// One training tuple (image indices).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tuple {
    /// The query (anchor).
    pub query: usize,
    /// Its positive.
    pub positive: usize,
    /// Hard negatives, hardest first.
    pub negatives: Vec<usize>,
}

impl Tuple {
    /// `[query, positive, negatives…]` with their roles.
    pub fn images(&self) -> Vec<(usize, ImageRole)> {
        [
            (self.query, ImageRole::Anchor),
            (self.positive, ImageRole::Positive),
        ]
        .into_iter()
        .chain(self.negatives.iter().map(|&n| (n, ImageRole::Negative)))
        .collect()
    }
}

/// The result of hard-negative mining.
#[derive(Debug, Clone)]
pub struct Mined {
    /// Negatives of every query, hardest first.
    pub negatives: Vec<Vec<usize>>,
    /// cirtorch's logged average distance `‖q − n + 1e-6‖` over all mined negatives.
    pub avg_neg_distance: f32,
}

/// cirtorch's hard-negative mining: `scores = pool · queryᵀ`, each query's pool images sorted by
/// descending score; an image is taken when its cluster differs from the query's and from every
/// negative already taken, until `neg_num` negatives.
///
/// # Shapes
/// - `query_desc`: `[queries.len(), D]`; `pool_desc`: `[pool.len(), D]`
///
/// # Errors
/// [`MetricError::Shape`] for mismatched counts or descriptor dimensions,
/// [`MetricError::Index`] for an image without a cluster, [`MetricError::NoNegatives`] when the
/// pool cannot supply `neg_num` distinct other clusters for a query.
pub fn mine_hard_negatives(
    query_desc: Tensor<2>,
    pool_desc: Tensor<2>,
    queries: &[usize],
    pool: &[usize],
    clusters: &[i64],
    neg_num: usize,
) -> crate::Result<Mined> {
    let [nq, dq] = query_desc.dims();
    let [np, dp] = pool_desc.dims();
    if dq != dp {
        return Err(MetricError::shape("pool descriptor dimension", dq, dp));
    }
    if nq != queries.len() {
        return Err(MetricError::shape("query descriptors", queries.len(), nq));
    }
    if np != pool.len() {
        return Err(MetricError::shape("pool descriptors", pool.len(), np));
    }
    let cluster = |i: usize| {
        clusters.get(i).copied().ok_or(MetricError::Index {
            what: "image cluster",
            index: i,
            len: clusters.len(),
        })
    };
    let scores: Vec<f32> = pool_desc
        .clone()
        .matmul(query_desc.clone().transpose())
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| MetricError::shape("mining scores", "f32 data", format!("{e:?}")))?;
    let qv: Vec<f32> = query_desc
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| MetricError::shape("query descriptors", "f32 data", format!("{e:?}")))?;
    let pv: Vec<f32> = pool_desc
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| MetricError::shape("pool descriptors", "f32 data", format!("{e:?}")))?;
    let mut negatives = Vec::with_capacity(nq);
    let (mut dist_sum, mut dist_n) = (0f64, 0usize);
    for (q, &qimg) in queries.iter().enumerate() {
        let qc = cluster(qimg)?;
        let mut order: Vec<usize> = (0..np).collect();
        // Descending score; ties keep pool order (stable sort).
        order.sort_by(|&a, &b| scores[b * nq + q].total_cmp(&scores[a * nq + q]));
        let mut used = HashSet::from([qc]);
        let mut negs = Vec::with_capacity(neg_num);
        for &r in &order {
            if negs.len() == neg_num {
                break;
            }
            let c = cluster(pool[r])?;
            if used.insert(c) {
                negs.push(pool[r]);
                let d: f64 = (0..dq)
                    .map(|k| f64::from(qv[q * dq + k] - pv[r * dq + k] + 1e-6).powi(2))
                    .sum::<f64>()
                    .sqrt();
                dist_sum += d;
                dist_n += 1;
            }
        }
        if negs.len() < neg_num {
            return Err(MetricError::NoNegatives {
                query: qimg,
                cluster: qc,
                needed: neg_num,
                found: negs.len(),
            });
        }
        negatives.push(negs);
    }
    Ok(Mined {
        negatives,
        avg_neg_distance: if dist_n > 0 {
            (dist_sum / dist_n as f64) as f32
        } else {
            0.0
        },
    })
}

/// Per-epoch tuple sampling (cirtorch `TuplesDataset.create_epoch_tuples`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MiningConfig {
    /// Negatives per tuple (`--neg-num`, 5).
    pub neg_num: usize,
    /// Tuples per epoch (`--query-size`, 2000); capped at the number of pairs.
    pub query_size: usize,
    /// Random negative pool per epoch (`--pool-size`, 20000); capped at the number of images.
    pub pool_size: usize,
}

impl Default for MiningConfig {
    fn default() -> Self {
        Self {
            neg_num: 5,
            query_size: 2000,
            pool_size: 20000,
        }
    }
}

/// The epoch's pairs and negative pool, chosen before descriptors are computed.
#[derive(Debug, Clone)]
pub struct EpochDraw {
    /// Chosen pair indices (into `qidxs` / `pidxs`).
    pub pairs: Vec<usize>,
    /// Random pool of candidate negatives (image indices).
    pub pool: Vec<usize>,
}

impl MiningConfig {
    /// Draws the epoch's pairs (`anchors`, e.g. from an [`anchor_mining::AnchorStrategy`]) and a
    /// random negative pool (`randperm(len(images))[:pool_size]`).
    ///
    /// # Errors
    /// [`MetricError::Config`] for `neg_num = 0` or `query_size = 0`.
    pub fn draw_pool<R: Rng + ?Sized>(
        &self,
        db: &TupleDatabase,
        pairs: Vec<usize>,
        rng: &mut R,
    ) -> crate::Result<EpochDraw> {
        if self.neg_num == 0 || self.query_size == 0 {
            return Err(MetricError::config(
                "mining",
                "neg_num and query_size must be positive",
            ));
        }
        let n = db.images.len();
        let pool = rand::seq::index::sample(rng, n, self.pool_size.min(n)).into_vec();
        Ok(EpochDraw { pairs, pool })
    }
}

/// Which images an [`Augmentation`] is applied to.
#[derive(Clone, Default)]
pub struct AugmentHooks {
    /// The transformation (none: images pass through).
    pub augmentation: Option<Arc<dyn Augmentation>>,
    /// Apply to anchors (queries), also while mining. `Some(subset)` restricts it to DSA's hashed
    /// subset of anchor names ([`TranslationSubset`], ratio 0.25); `None` disables it.
    pub anchors: Option<AnchorSelection>,
    /// Apply to positives.
    pub positives: bool,
    /// Similarity Min-Max for VPR (docs/PAPERS.md C.3, `train_night.py`): every tuple gets an
    /// augmented copy of its query as an extra positive, right after the query (labels
    /// `[-1, 1, 1, 0, …]`), so the contrastive loss pulls the darkened query towards the query.
    /// The paper says the positive is darkened; the code darkens a query copy — we follow the code.
    pub query_copy: bool,
    /// Applied to every image after the augmentation, before normalisation (Dark Side
    /// Augmentation, docs/PAPERS.md A.6: CLAHE on all images, translated or not).
    pub post: Option<Arc<dyn Augmentation>>,
}

/// Which anchors are augmented.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AnchorSelection {
    /// Every anchor.
    All,
    /// DSA's deterministic hashed subset of anchor names.
    Hashed(TranslationSubset),
}

impl std::fmt::Debug for AugmentHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AugmentHooks")
            .field(
                "augmentation",
                &self.augmentation.as_ref().map(|_| "<dyn Augmentation>"),
            )
            .field("anchors", &self.anchors)
            .field("positives", &self.positives)
            .field("query_copy", &self.query_copy)
            .field("post", &self.post.as_ref().map(|_| "<dyn Augmentation>"))
            .finish()
    }
}

impl AugmentHooks {
    /// Hooks that augment every anchor and every positive with `a`.
    pub fn anchors_and_positives(a: impl Augmentation + 'static) -> Self {
        Self {
            augmentation: Some(Arc::new(a)),
            anchors: Some(AnchorSelection::All),
            positives: true,
            query_copy: false,
            post: None,
        }
    }

    /// These hooks with `post` applied to every image after the augmentation.
    pub fn with_post(mut self, post: impl Augmentation + 'static) -> Self {
        self.post = Some(Arc::new(post));
        self
    }

    /// Hooks that leave the tuple's own images untouched and add an `a`-augmented copy of every
    /// query as an extra positive (Similarity Min-Max, docs/PAPERS.md C.3).
    pub fn query_copy(a: impl Augmentation + 'static) -> Self {
        Self {
            augmentation: Some(Arc::new(a)),
            anchors: None,
            positives: false,
            query_copy: true,
            post: None,
        }
    }

    /// The hooks that augment the query copy: every anchor, nothing else.
    pub(crate) fn for_query_copy(&self) -> Self {
        Self {
            augmentation: self.augmentation.clone(),
            anchors: Some(AnchorSelection::All),
            positives: false,
            query_copy: false,
            post: self.post.clone(),
        }
    }

    /// Whether image `name` in `role` is augmented.
    pub fn applies(&self, role: ImageRole, name: &str) -> bool {
        if self.augmentation.is_none() {
            return false;
        }
        match role {
            ImageRole::Anchor => match self.anchors {
                Some(AnchorSelection::All) => true,
                Some(AnchorSelection::Hashed(s)) => s.is_translated(ImageRole::Anchor, name),
                None => false,
            },
            ImageRole::Positive => self.positives,
            ImageRole::Negative => false,
        }
    }

    /// Applies the augmentation to a `[1, 3, h, w]` image in `[0, 1]` if it is selected, then
    /// `post` (if any).
    ///
    /// # Errors
    /// The augmentation's error ([`MetricError::Core`]).
    pub fn apply(
        &self,
        x: Tensor<4>,
        role: ImageRole,
        name: &str,
        rng: &mut dyn RngCore,
    ) -> crate::Result<Tensor<4>> {
        let x = match (&self.augmentation, self.applies(role, name)) {
            (Some(a), true) => a.augment(x, rng)?,
            _ => x,
        };
        Ok(match &self.post {
            Some(p) => p.augment(x, rng)?,
            None => x,
        })
    }
}

/// Class-balanced sampling over classes of images (CosPlace: a batch draws distinct classes,
/// then one random image of each).
#[derive(Debug, Clone)]
pub struct ClassSampler {
    classes: Vec<Vec<usize>>,
}

impl ClassSampler {
    /// Classes given as lists of image indices; every class needs at least `min_images`
    /// (≥ 1) images.
    ///
    /// # Errors
    /// [`MetricError::Empty`] without classes, [`MetricError::SmallClass`] for a class below
    /// `min_images`.
    pub fn new(classes: Vec<Vec<usize>>, min_images: usize) -> crate::Result<Self> {
        if classes.is_empty() {
            return Err(MetricError::Empty { what: "class list" });
        }
        let min = min_images.max(1);
        if let Some((i, c)) = classes.iter().enumerate().find(|(_, c)| c.len() < min) {
            return Err(MetricError::SmallClass {
                class: i.to_string(),
                images: c.len(),
                min,
            });
        }
        Ok(Self { classes })
    }

    /// The classes of one CosPlace group (built by [`anchor_mining::build_classes`]).
    ///
    /// # Errors
    /// As [`ClassSampler::new`].
    pub fn from_cosplace_group(group: &CosPlaceGroup, min_images: usize) -> crate::Result<Self> {
        let classes: Vec<Vec<usize>> = group.classes.iter().map(|c| c.images.clone()).collect();
        if let Some(c) = group
            .classes
            .iter()
            .find(|c| c.images.len() < min_images.max(1))
        {
            return Err(MetricError::SmallClass {
                class: format!("{:?}", c.id),
                images: c.images.len(),
                min: min_images.max(1),
            });
        }
        Self::new(classes, min_images)
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// The image lists.
    pub fn classes(&self) -> &[Vec<usize>] {
        &self.classes
    }

    /// `batch` distinct classes, uniformly, each with one uniformly drawn image:
    /// `(class, image)` pairs.
    ///
    /// # Errors
    /// [`MetricError::Config`] when `batch` is 0 or exceeds the number of classes.
    pub fn sample<R: Rng + ?Sized>(
        &self,
        batch: usize,
        rng: &mut R,
    ) -> crate::Result<Vec<(usize, usize)>> {
        if batch == 0 || batch > self.classes.len() {
            return Err(MetricError::config(
                "batch size",
                format!(
                    "{batch} distinct classes requested from {}",
                    self.classes.len()
                ),
            ));
        }
        let picks = rand::seq::index::sample(rng, self.classes.len(), batch).into_vec();
        Ok(picks
            .into_iter()
            .map(|c| {
                let imgs = &self.classes[c];
                (c, imgs[rng.random_range(0..imgs.len())])
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
    use nightvision_core::rng::seeded;

    fn unit_rows(v: &[[f32; 2]], device: &Device) -> Tensor<2> {
        let flat: Vec<f32> = v
            .iter()
            .flat_map(|r| {
                let n = (r[0] * r[0] + r[1] * r[1]).sqrt();
                [r[0] / n, r[1] / n]
            })
            .collect();
        Tensor::from_data(TensorData::new(flat, [v.len(), 2]), device)
    }

    #[test]
    fn mining_skips_the_query_cluster_and_repeated_clusters() {
        let device = Device::default();
        // Query image 0 (cluster 7). Pool images 1..=5 by decreasing similarity to the query:
        // 1 (cluster 7, the query's), 2 (cluster 1), 3 (cluster 1 again), 4 (cluster 2), 5 (cluster 3).
        let clusters = [7, 7, 1, 1, 2, 3];
        let q = unit_rows(&[[1.0, 0.0]], &device);
        let pool = unit_rows(
            &[[1.0, 0.05], [1.0, 0.1], [1.0, 0.2], [1.0, 0.4], [1.0, 0.8]],
            &device,
        );
        let m = mine_hard_negatives(
            q.clone(),
            pool.clone(),
            &[0],
            &[1, 2, 3, 4, 5],
            &clusters,
            3,
        )
        .unwrap();
        assert_eq!(m.negatives, vec![vec![2, 4, 5]]);
        assert!(m.avg_neg_distance > 0.0);
        // Four negatives cannot be found: only three clusters other than 7 exist.
        let e = mine_hard_negatives(q, pool, &[0], &[1, 2, 3, 4, 5], &clusters, 4).unwrap_err();
        assert!(
            matches!(
                e,
                MetricError::NoNegatives {
                    query: 0,
                    cluster: 7,
                    needed: 4,
                    found: 3
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn mining_rejects_mismatched_descriptor_sizes() {
        let device = Device::default();
        let q = Tensor::<2>::zeros([1, 4], &device);
        let p = Tensor::<2>::zeros([2, 3], &device);
        let e = mine_hard_negatives(q, p, &[0], &[1, 2], &[0, 1, 2], 1).unwrap_err();
        assert!(matches!(e, MetricError::Shape { .. }), "{e}");
    }

    #[test]
    fn class_sampler_is_balanced_and_rejects_single_image_classes() {
        let e = ClassSampler::new(vec![vec![0, 1], vec![2]], 2).unwrap_err();
        assert!(
            matches!(
                e,
                MetricError::SmallClass {
                    images: 1,
                    min: 2,
                    ..
                }
            ),
            "{e}"
        );
        let s = ClassSampler::new(vec![vec![0, 1], vec![2, 3, 4], vec![5, 6]], 2).unwrap();
        let mut rng = seeded(3);
        let mut counts = [0usize; 3];
        for _ in 0..3000 {
            let b = s.sample(2, &mut rng).unwrap();
            assert_ne!(b[0].0, b[1].0, "classes in a batch are distinct");
            for (c, img) in b {
                assert!(s.classes()[c].contains(&img));
                counts[c] += 1;
            }
        }
        // Each class is drawn with probability 2/3 per batch: 2000 ± 5σ (σ ≈ 26).
        for c in counts {
            assert!((1870..=2130).contains(&c), "{counts:?}");
        }
        assert!(s.sample(4, &mut rng).is_err());
    }

    #[test]
    fn database_checks_its_lists() {
        let imgs = ImageSource::memory(vec![nightvision_core::image::Rgb32FImage::new(2, 2); 3]);
        assert!(matches!(
            TupleDatabase::new(imgs.clone(), vec![0, 1], vec![0], vec![1]),
            Err(MetricError::Shape { .. })
        ));
        assert!(matches!(
            TupleDatabase::new(imgs.clone(), vec![0, 1, 2], vec![0], vec![5]),
            Err(MetricError::Index { index: 5, .. })
        ));
        assert!(matches!(
            TupleDatabase::new(imgs, vec![0, 1, 2], vec![], vec![]),
            Err(MetricError::Empty { .. })
        ));
    }

    #[test]
    fn hooks_follow_roles_and_the_hashed_subset() {
        let h = AugmentHooks {
            augmentation: Some(Arc::new(|x: Tensor<4>| x.mul_scalar(0.5))),
            anchors: Some(AnchorSelection::Hashed(TranslationSubset::default())),
            positives: false,
            query_copy: false,
            post: None,
        };
        assert!(!h.applies(ImageRole::Negative, "a.jpg"));
        assert!(!h.applies(ImageRole::Positive, "a.jpg"));
        let names: Vec<String> = (0..2000).map(|i| format!("img{i}.jpg")).collect();
        let frac = names
            .iter()
            .filter(|n| h.applies(ImageRole::Anchor, n))
            .count() as f64
            / 2000.0;
        // A quarter of names, binomial σ ≈ 0.0097.
        assert!((frac - 0.25).abs() < 0.05, "{frac}");
    }
}
