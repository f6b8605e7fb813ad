//! Exact k-nearest-neighbour search in blocks on the burn device.
//!
//! The database is split into blocks of `block_rows` rows. For every (query batch, block) pair the
//! device computes the score matrix with one `matmul` (`[q, d] × [d, b]`), then a two-stage top-k
//! that avoids sorting the whole `[q, b]` matrix (burn's `topk` is a full sort on the CPU backends):
//!
//! 1. the scores are viewed as `[q, b/c, c]` chunks of `c` consecutive database rows and reduced to
//!    chunk maxima (`max_dim`);
//! 2. `topk_with_indices(k + 1)` over the `b/c` chunk maxima picks the `k` best chunks (the
//!    `(k+1)`-th value detects ties at the boundary), and `gather` fetches their `k·c` scores.
//!
//! The `k` true best scores of a block always lie in the `k` chunks with the largest maxima: a
//! chunk outside them has a maximum below the `k`-th chunk maximum, so `k` other entries (the
//! chunk maxima) beat all of its entries. When the `k`-th and `(k+1)`-th chunk maxima are equal
//! the choice of chunks is ambiguous; that (query, block) row is then resolved exactly from the
//! full score row. Only the `k·c` candidates (a few hundred values per query) go to the host,
//! where they are merged into a running top-k ordered by (score descending, database index
//! ascending): ties are broken by the lower database index, whatever the backend's sort does with
//! equal keys. Device memory is bounded by one score block (`q_batch × block_rows` floats) plus the
//! database blocks (uploaded once, or streamed one at a time by [`exact_knn_streaming`]).
//!
//! The metric is the inner product (cirtorch, `IndexFlatIP`) or the squared L2 distance
//! (`IndexFlatL2`, VPR-methods-evaluation), ranked by `2 q·x − ‖x‖²`; the reported L2 distances
//! are `‖q‖² − (2 q·x − ‖x‖²)` clamped at 0, as faiss computes them.

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::descriptors::Descriptors;
use crate::error::{EvalError, Result};

/// The similarity of a k-NN search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Inner product, larger is closer (cosine on L2-normalised descriptors; cirtorch).
    InnerProduct,
    /// Squared Euclidean distance, smaller is closer (faiss `IndexFlatL2`; VPR-methods-evaluation).
    #[default]
    L2,
}

impl std::str::FromStr for Metric {
    type Err = EvalError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ip" | "inner_product" | "dot" | "cosine" => Ok(Metric::InnerProduct),
            "l2" | "L2" | "euclidean" => Ok(Metric::L2),
            other => Err(EvalError::InvalidArgument {
                name: "metric",
                reason: format!("{other:?} is neither \"ip\" nor \"l2\""),
            }),
        }
    }
}

/// Where an exact k-NN search runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum KnnEngine {
    /// [`KnnEngine::Host`] on burn's CPU devices (Flex, NdArray), [`KnnEngine::Device`] on every
    /// other device (GPUs).
    #[default]
    Auto,
    /// Blocked `matmul` + two-stage top-k with burn ops on the given device
    /// ([`DeviceDatabase`]): any backend, GPUs included.
    Device,
    /// The packed host index with a fused score + top-k CPU kernel ([`HostIndex`](crate::HostIndex)).
    Host,
}

impl KnnEngine {
    /// The engine this setting means on `device`.
    pub fn resolve(self, device: &Device) -> KnnEngine {
        match self {
            KnnEngine::Auto if is_host_device(device) => KnnEngine::Host,
            KnnEngine::Auto => KnnEngine::Device,
            other => other,
        }
    }
}

impl std::str::FromStr for KnnEngine {
    type Err = EvalError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(KnnEngine::Auto),
            "device" => Ok(KnnEngine::Device),
            "host" | "cpu" => Ok(KnnEngine::Host),
            other => Err(EvalError::InvalidArgument {
                name: "engine",
                reason: format!("{other:?} is none of \"auto\", \"device\", \"host\""),
            }),
        }
    }
}

/// Whether `device` is one of burn's host (CPU) devices. burn 0.22 hides the backend enum behind
/// its features, so a library that enables none reads the device's `Debug` name
/// (`Device<Flex(..)>`, `Device<NdArray(..)>`, possibly inside `Autodiff(..)`).
fn is_host_device(device: &Device) -> bool {
    let name = format!("{device:?}");
    name.contains("Flex") || name.contains("NdArray")
}

/// Settings of the blocked search.
#[derive(Debug, Clone, PartialEq)]
pub struct KnnConfig {
    /// The similarity.
    pub metric: Metric,
    /// Where the search runs ([`exact_knn`] and [`KnnIndex`]; [`DeviceDatabase`] is always the
    /// device engine).
    pub engine: KnnEngine,
    /// Database rows per block (the score block is `query_batch × block_rows` floats).
    pub block_rows: usize,
    /// Rows per chunk of the two-stage top-k (`k·chunk` candidates per query and block go to the
    /// host). A multiple of 8 suits SIMD reductions.
    pub chunk: usize,
    /// Upper bound on the score block's element count; the query batch is
    /// `max(1, max_block_elements / block_rows)`.
    pub max_block_elements: usize,
    /// Show an indicatif progress bar over the blocks.
    pub progress: bool,
}

impl Default for KnnConfig {
    fn default() -> Self {
        Self {
            metric: Metric::L2,
            engine: KnnEngine::Auto,
            block_rows: 32_768,
            chunk: 64,
            max_block_elements: 1 << 24,
            progress: false,
        }
    }
}

impl KnnConfig {
    /// The default configuration with `metric`.
    pub fn new(metric: Metric) -> Self {
        Self {
            metric,
            ..Self::default()
        }
    }

    fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("block_rows", self.block_rows),
            ("chunk", self.chunk),
            ("max_block_elements", self.max_block_elements),
        ] {
            if v == 0 {
                return Err(EvalError::InvalidArgument {
                    name: match name {
                        "block_rows" => "block_rows",
                        "chunk" => "chunk",
                        _ => "max_block_elements",
                    },
                    reason: "must be at least 1".into(),
                });
            }
        }
        Ok(())
    }
}

/// The result of a k-NN search: for each query, `k` database indices and their scores, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbours {
    /// Neighbours per query (`min(k, n_db)`).
    pub k: usize,
    /// Number of queries.
    pub n_queries: usize,
    /// Row-major `n_queries × k` database indices.
    pub indices: Vec<u32>,
    /// Row-major `n_queries × k` scores: inner products, or squared L2 distances.
    pub scores: Vec<f32>,
    /// The metric.
    pub metric: Metric,
}

impl Neighbours {
    /// Database indices of query `q`, best first.
    pub fn indices_of(&self, q: usize) -> &[u32] {
        &self.indices[q * self.k..(q + 1) * self.k]
    }

    /// Scores of query `q`, best first.
    pub fn scores_of(&self, q: usize) -> &[f32] {
        &self.scores[q * self.k..(q + 1) * self.k]
    }

    /// The neighbour lists as rows.
    pub fn to_rows(&self) -> Vec<Vec<u32>> {
        (0..self.n_queries)
            .map(|q| self.indices_of(q).to_vec())
            .collect()
    }
}

/// A full ranking, as cirtorch's `ranks` (one column per query): stored query-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranks {
    /// Ranked database indices per query (length `n_rows` each).
    pub n_rows: usize,
    /// Number of queries.
    pub n_queries: usize,
    /// Query-major: `data[q * n_rows + r]` is the database index at rank `r` for query `q`.
    pub data: Vec<u32>,
}

impl Ranks {
    /// The ranking of query `q`.
    pub fn column(&self, q: usize) -> &[u32] {
        &self.data[q * self.n_rows..(q + 1) * self.n_rows]
    }

    /// Reads cirtorch's `(n_db, n_q)` integer ranks from `.npy` (any int dtype, C or Fortran).
    pub fn read_npy(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let arr = crate::npy::read_npy(path)?;
        let format = |found: String| EvalError::ArrayFormat {
            path: path.to_path_buf(),
            key: String::new(),
            expected: "a 2-D integer array (n_db, n_queries)".into(),
            found,
        };
        if arr.shape.len() != 2 {
            return Err(format(arr.describe()));
        }
        let Some(values) = arr.as_i64() else {
            return Err(format(arr.describe()));
        };
        let (n_rows, n_queries) = (arr.shape[0], arr.shape[1]);
        let mut data = vec![0u32; values.len()];
        for (i, &v) in values.iter().enumerate() {
            let (r, q) = (i / n_queries, i % n_queries);
            data[q * n_rows + r] = u32::try_from(v).map_err(|_| EvalError::IndexOutOfRange {
                what: format!("ranks[{r}, {q}] of {}", path.display()),
                index: v,
                len: u32::MAX as usize,
            })?;
        }
        Ok(Self {
            n_rows,
            n_queries,
            data,
        })
    }

    /// Writes the `(n_rows, n_queries)` int64 array cirtorch uses.
    pub fn write_npy(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        let mut out = vec![0i64; self.data.len()];
        for q in 0..self.n_queries {
            for (r, &v) in self.column(q).iter().enumerate() {
                out[r * self.n_queries + q] = v as i64;
            }
        }
        crate::npy::write_npy_i64(path.as_ref(), &[self.n_rows, self.n_queries], &out)
    }
}

/// A database uploaded to the device in blocks, for repeated searches.
#[derive(Debug, Clone)]
pub struct DeviceDatabase {
    blocks: Vec<DbBlock>,
    n: usize,
    dim: usize,
    max_sq_norm: f64,
    config: KnnConfig,
    device: Device,
}

#[derive(Debug, Clone)]
struct DbBlock {
    start: usize,
    len: usize,
    /// `[len, dim]`
    x: Tensor<2>,
    /// `[1, len]` squared norms (L2 only)
    sq_norms: Option<Tensor<2>>,
}

pub(crate) fn check_db(db: &Descriptors) -> Result<()> {
    if db.is_empty() {
        return Err(EvalError::Empty {
            what: "database".into(),
            path: None,
        });
    }
    if db.rows() > u32::MAX as usize {
        return Err(EvalError::InvalidArgument {
            name: "database",
            reason: format!("{} rows exceed the u32 index range", db.rows()),
        });
    }
    Ok(())
}

pub(crate) fn max_sq_norm(d: &Descriptors) -> f64 {
    d.as_slice()
        .chunks_exact(d.dim())
        .map(|r| r.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>())
        .fold(0.0, f64::max)
}

/// |partial sums of q·x| <= ‖q‖‖x‖ (Cauchy–Schwarz): scores cannot overflow f32 (hence no
/// inf − inf = NaN) when this bound holds.
fn check_score_range(q_max: f64, db_max: f64) -> Result<()> {
    let bound = 2.0 * (q_max * db_max).sqrt() + db_max;
    if bound > (f32::MAX as f64) / 4.0 {
        return Err(EvalError::InvalidArgument {
            name: "descriptors",
            reason: format!(
                "norms too large for f32 scores (max ‖q‖² = {q_max:e}, max ‖x‖² = {db_max:e})"
            ),
        });
    }
    Ok(())
}

fn upload_block(
    db: &Descriptors,
    start: usize,
    len: usize,
    metric: Metric,
    device: &Device,
) -> DbBlock {
    let dim = db.dim();
    let slice = &db.as_slice()[start * dim..(start + len) * dim];
    let x = Tensor::<2>::from_data(TensorData::new(slice.to_vec(), [len, dim]), device);
    let sq_norms = (metric == Metric::L2).then(|| {
        let norms: Vec<f32> = slice
            .chunks_exact(dim)
            .map(|r| r.iter().map(|v| v * v).sum::<f32>())
            .collect();
        Tensor::<2>::from_data(TensorData::new(norms, [1, len]), device)
    });
    DbBlock {
        start,
        len,
        x,
        sq_norms,
    }
}

impl DeviceDatabase {
    /// Uploads `db` to `device` in blocks of `config.block_rows` rows.
    pub fn upload(db: &Descriptors, config: KnnConfig, device: &Device) -> Result<Self> {
        config.validate()?;
        check_db(db)?;
        let blocks = (0..db.rows())
            .step_by(config.block_rows)
            .map(|s| {
                upload_block(
                    db,
                    s,
                    config.block_rows.min(db.rows() - s),
                    config.metric,
                    device,
                )
            })
            .collect();
        Ok(Self {
            blocks,
            n: db.rows(),
            dim: db.dim(),
            max_sq_norm: max_sq_norm(db),
            config,
            device: device.clone(),
        })
    }

    /// Number of database rows.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the database is empty (never, by construction).
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Descriptor dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The `k` nearest database rows of every query.
    pub fn search(&self, queries: &Descriptors, k: usize) -> Result<Neighbours> {
        let blocks: Vec<_> = self.blocks.iter().map(|b| (b.start, b.len)).collect();
        search_impl(
            queries,
            k,
            self.n,
            self.dim,
            self.max_sq_norm,
            &self.config,
            &self.device,
            &blocks,
            |i| Ok(self.blocks[i].clone()),
        )
    }
}

/// A database prepared for repeated exact searches by the engine [`KnnConfig::engine`] selects.
#[derive(Debug, Clone)]
pub enum KnnIndex {
    /// Packed on the host ([`KnnEngine::Host`]).
    Host(crate::HostIndex),
    /// Uploaded to the burn device ([`KnnEngine::Device`]).
    Device(DeviceDatabase),
}

impl KnnIndex {
    /// Packs or uploads `db` for `config.engine` resolved on `device`.
    pub fn build(db: &Descriptors, config: &KnnConfig, device: &Device) -> Result<Self> {
        config.validate()?;
        Ok(match config.engine.resolve(device) {
            KnnEngine::Host => KnnIndex::Host(crate::HostIndex::new(db, config.metric)?),
            _ => KnnIndex::Device(DeviceDatabase::upload(db, config.clone(), device)?),
        })
    }

    /// The engine in use.
    pub fn engine(&self) -> KnnEngine {
        match self {
            KnnIndex::Host(_) => KnnEngine::Host,
            KnnIndex::Device(_) => KnnEngine::Device,
        }
    }

    /// The `k` nearest database rows of every query.
    pub fn search(&self, queries: &Descriptors, k: usize) -> Result<Neighbours> {
        match self {
            KnnIndex::Host(index) => index.search(queries, k),
            KnnIndex::Device(index) => index.search(queries, k),
        }
    }
}

/// Exact k-NN: prepares `db` once for the engine of `config` (see [`KnnEngine`]), then searches.
///
/// ```
/// use burn::tensor::Device;
/// use vpr_eval::{exact_knn, Descriptors, KnnConfig, Metric};
/// let db = Descriptors::new(vec![1.0, 0.0, 0.0, 1.0, 0.7, 0.7], 3, 2).unwrap();
/// let q = Descriptors::new(vec![0.9, 0.1], 1, 2).unwrap();
/// let nn = exact_knn(&db, &q, 2, &KnnConfig::new(Metric::InnerProduct), &Device::default()).unwrap();
/// assert_eq!(nn.indices_of(0), &[0, 2]);
/// ```
pub fn exact_knn(
    db: &Descriptors,
    queries: &Descriptors,
    k: usize,
    config: &KnnConfig,
    device: &Device,
) -> Result<Neighbours> {
    KnnIndex::build(db, config, device)?.search(queries, k)
}

/// Exact k-NN on the device engine that uploads one database block at a time, so device memory holds a single block
/// (for databases larger than device memory: a 1M × 2048 float database is 8 GB on the host, but
/// only `block_rows × 2048` floats on the device).
pub fn exact_knn_streaming(
    db: &Descriptors,
    queries: &Descriptors,
    k: usize,
    config: &KnnConfig,
    device: &Device,
) -> Result<Neighbours> {
    config.validate()?;
    check_db(db)?;
    let blocks: Vec<(usize, usize)> = (0..db.rows())
        .step_by(config.block_rows)
        .map(|s| (s, config.block_rows.min(db.rows() - s)))
        .collect();
    search_impl(
        queries,
        k,
        db.rows(),
        db.dim(),
        max_sq_norm(db),
        config,
        device,
        &blocks,
        |i| {
            Ok(upload_block(
                db,
                blocks[i].0,
                blocks[i].1,
                config.metric,
                device,
            ))
        },
    )
}

/// Running top-k of one query, ordered by (score descending, index ascending).
#[derive(Debug, Clone)]
pub(crate) struct TopK {
    k: usize,
    pub(crate) items: Vec<(f32, u32)>,
}

#[inline]
fn better(a: (f32, u32), b: (f32, u32)) -> bool {
    a.0 > b.0 || (a.0 == b.0 && a.1 < b.1)
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        Self {
            k,
            items: Vec::with_capacity(k + 1),
        }
    }

    /// The score a candidate must reach (`>=`) to possibly enter: the worst kept score once the
    /// list is full, `−∞` before.
    #[inline]
    pub(crate) fn threshold(&self) -> f32 {
        match self.items.last() {
            Some(&(s, _)) if self.items.len() == self.k => s,
            _ => f32::NEG_INFINITY,
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, score: f32, idx: u32) {
        let item = (score, idx);
        if self.items.len() == self.k {
            match self.items.last() {
                Some(&worst) if better(item, worst) => {}
                _ => return,
            }
        }
        let pos = self.items.partition_point(|&x| better(x, item));
        self.items.insert(pos, item);
        self.items.truncate(self.k);
    }
}

fn data_err(op: &'static str, source: burn::tensor::DataError) -> EvalError {
    EvalError::Device { op, source }
}

/// Checks `k`, the queries' emptiness, dimension and score range against a database.
pub(crate) fn check_queries(
    queries: &Descriptors,
    k: usize,
    dim: usize,
    db_max_sq_norm: f64,
) -> Result<()> {
    if k == 0 {
        return Err(EvalError::InvalidArgument {
            name: "k",
            reason: "must be at least 1".into(),
        });
    }
    if queries.is_empty() {
        return Err(EvalError::Empty {
            what: "queries".into(),
            path: None,
        });
    }
    if queries.dim() != dim {
        return Err(EvalError::SizeMismatch {
            what: "descriptor dimension of the queries vs the database".into(),
            expected: dim,
            got: queries.dim(),
            path: None,
        });
    }
    check_score_range(max_sq_norm(queries), db_max_sq_norm)
}

/// Turns the per-query top-k lists (ranking scores) into [`Neighbours`] (reported scores).
pub(crate) fn finish(
    queries: &Descriptors,
    tops: Vec<TopK>,
    k_eff: usize,
    metric: Metric,
) -> Result<Neighbours> {
    let nq = queries.rows();
    let mut indices = Vec::with_capacity(nq * k_eff);
    let mut scores = Vec::with_capacity(nq * k_eff);
    for (qi, t) in tops.into_iter().enumerate() {
        let q_sq: f32 = queries.row(qi).iter().map(|v| v * v).sum();
        for (s, i) in t.items {
            if !s.is_finite() {
                return Err(EvalError::NonFinite {
                    what: "similarity scores".into(),
                    row: qi,
                    col: i as usize,
                    value: s as f64,
                    path: None,
                });
            }
            indices.push(i);
            scores.push(match metric {
                Metric::InnerProduct => s,
                Metric::L2 => (q_sq - s).max(0.0),
            });
        }
    }
    Ok(Neighbours {
        k: k_eff,
        n_queries: nq,
        indices,
        scores,
        metric,
    })
}

#[allow(clippy::too_many_arguments)]
fn search_impl(
    queries: &Descriptors,
    k: usize,
    n_db: usize,
    dim: usize,
    db_max_sq_norm: f64,
    config: &KnnConfig,
    device: &Device,
    blocks: &[(usize, usize)],
    get_block: impl Fn(usize) -> Result<DbBlock>,
) -> Result<Neighbours> {
    check_queries(queries, k, dim, db_max_sq_norm)?;
    let metric = config.metric;
    let k_eff = k.min(n_db);
    let c = config.chunk;
    let max_block = blocks.iter().map(|b| b.1).max().unwrap_or(1);
    let q_batch = (config.max_block_elements / max_block).max(1);
    let nq = queries.rows();
    let mut tops: Vec<TopK> = (0..nq).map(|_| TopK::new(k_eff)).collect();

    let bar = if config.progress {
        let total = (nq.div_ceil(q_batch) * blocks.len()) as u64;
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "k-NN {bar:40} {pos}/{len} blocks [{elapsed}<{eta}]",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };

    for qs in (0..nq).step_by(q_batch) {
        let qe = (qs + q_batch).min(nq);
        let qb = qe - qs;
        let mut qdata = queries.as_slice()[qs * dim..qe * dim].to_vec();
        if metric == Metric::L2 {
            // rank by 2 q·x − ‖x‖²; doubling is exact in floating point
            qdata.iter_mut().for_each(|v| *v *= 2.0);
        }
        let qt = Tensor::<2>::from_data(TensorData::new(qdata, [qb, dim]), device);
        for bi in 0..blocks.len() {
            let block = get_block(bi)?;
            block_topk(&qt, &block, qs, k_eff, c, &mut tops)?;
            bar.inc(1);
        }
    }
    bar.finish_and_clear();

    finish(queries, tops, k_eff, metric)
}

/// Scores of a query batch against one block: `[qb, len]`, larger is better.
fn block_scores(qt: &Tensor<2>, block: &DbBlock) -> Tensor<2> {
    let s = qt.clone().matmul(block.x.clone().transpose());
    match &block.sq_norms {
        Some(n) => s - n.clone(),
        None => s,
    }
}

fn block_topk(
    qt: &Tensor<2>,
    block: &DbBlock,
    q_offset: usize,
    k: usize,
    c: usize,
    tops: &mut [TopK],
) -> Result<()> {
    let [qb, _] = qt.dims();
    let len = block.len;
    let scores = block_scores(qt, block);
    let nch = len.div_ceil(c);
    if nch <= k {
        // every chunk is a candidate: take the block as it is
        let v = scores
            .into_data()
            .try_into_vec_as::<f32>()
            .map_err(|e| data_err("read scores", e))?;
        for (qi, row) in v.chunks_exact(len).enumerate() {
            let t = &mut tops[q_offset + qi];
            for (j, &s) in row.iter().enumerate() {
                t.push(s, (block.start + j) as u32);
            }
        }
        return Ok(());
    }
    let padded = nch * c;
    let scores = if padded > len {
        let pad = Tensor::<2>::full([qb, padded - len], f32::NEG_INFINITY, &scores.device());
        Tensor::cat(vec![scores, pad], 1)
    } else {
        scores
    };
    let s3: Tensor<3> = scores.clone().reshape([qb, nch, c]);
    let chunk_max: Tensor<2> = s3.clone().max_dim(2).reshape([qb, nch]);
    let kc = (k + 1).min(nch);
    let (top_vals, top_idx) = chunk_max.topk_with_indices(kc, 1);
    let sel: Tensor<2, Int> = top_idx.clone().narrow(1, 0, k);
    let gather_idx: Tensor<3, Int> = sel.reshape([qb, k, 1]).expand([qb, k, c]);
    let cand = s3.gather(1, gather_idx);
    let cand = cand
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| data_err("read candidates", e))?;
    let top_vals = top_vals
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| data_err("read chunk maxima", e))?;
    let top_idx = top_idx
        .into_data()
        .try_into_vec_as::<i64>()
        .map_err(|e| data_err("read chunk indices", e))?;
    for qi in 0..qb {
        let t = &mut tops[q_offset + qi];
        let vals = &top_vals[qi * kc..(qi + 1) * kc];
        if kc > k && vals[k - 1] == vals[k] {
            // tie at the chunk boundary: resolve this row exactly from its full scores
            let row = scores
                .clone()
                .slice([qi..qi + 1, 0..len])
                .into_data()
                .try_into_vec_as::<f32>()
                .map_err(|e| data_err("read score row", e))?;
            for (j, &s) in row.iter().enumerate() {
                t.push(s, (block.start + j) as u32);
            }
            continue;
        }
        for j in 0..k {
            let chunk = top_idx[qi * kc + j] as usize;
            let vals = &cand[(qi * k + j) * c..(qi * k + j + 1) * c];
            let base = chunk * c;
            for (t_off, &s) in vals.iter().enumerate() {
                let local = base + t_off;
                if local < len {
                    t.push(s, (block.start + local) as u32);
                }
            }
        }
    }
    Ok(())
}

/// Full ranking of the database for every query (cirtorch's `argsort(-scores)`, ties broken by
/// the lower database index), computed block by block on the device.
pub fn rank_all(
    db: &Descriptors,
    queries: &Descriptors,
    config: &KnnConfig,
    device: &Device,
) -> Result<Ranks> {
    config.validate()?;
    check_db(db)?;
    if queries.is_empty() {
        return Err(EvalError::Empty {
            what: "queries".into(),
            path: None,
        });
    }
    db.check_same_dim(queries, "the queries vs the database")?;
    check_score_range(max_sq_norm(queries), max_sq_norm(db))?;
    let n = db.rows();
    let dim = db.dim();
    let nq = queries.rows();
    let q_batch = (config.max_block_elements / config.block_rows.min(n)).max(1);
    let mut data = Vec::with_capacity(n * nq);
    for qs in (0..nq).step_by(q_batch) {
        let qe = (qs + q_batch).min(nq);
        let qb = qe - qs;
        let mut qdata = queries.as_slice()[qs * dim..qe * dim].to_vec();
        if config.metric == Metric::L2 {
            qdata.iter_mut().for_each(|v| *v *= 2.0);
        }
        let qt = Tensor::<2>::from_data(TensorData::new(qdata, [qb, dim]), device);
        let mut rows: Vec<Vec<(f32, u32)>> = vec![Vec::with_capacity(n); qb];
        for s in (0..n).step_by(config.block_rows) {
            let len = config.block_rows.min(n - s);
            let block = upload_block(db, s, len, config.metric, device);
            let v = block_scores(&qt, &block)
                .into_data()
                .try_into_vec_as::<f32>()
                .map_err(|e| data_err("read scores", e))?;
            for (qi, row) in v.chunks_exact(len).enumerate() {
                rows[qi].extend(row.iter().enumerate().map(|(j, &x)| (x, (s + j) as u32)));
            }
        }
        for row in rows.iter_mut() {
            // scores are finite (checked range): IEEE order, so -0.0 and 0.0 tie like in numpy
            row.sort_unstable_by(|a, b| {
                b.0.partial_cmp(&a.0)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then(a.1.cmp(&b.1))
            });
            data.extend(row.iter().map(|x| x.1));
        }
    }
    Ok(Ranks {
        n_rows: n,
        n_queries: nq,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topk_orders_by_score_then_index() {
        let mut t = TopK::new(3);
        for (s, i) in [(1.0, 5), (2.0, 9), (1.0, 2), (2.0, 3), (0.5, 0), (1.0, 1)] {
            t.push(s, i);
        }
        assert_eq!(t.items, vec![(2.0, 3), (2.0, 9), (1.0, 1)]);
    }

    #[test]
    fn metric_parses() {
        assert_eq!("ip".parse::<Metric>().unwrap(), Metric::InnerProduct);
        assert_eq!("l2".parse::<Metric>().unwrap(), Metric::L2);
        assert!("cos2".parse::<Metric>().is_err());
    }
}
