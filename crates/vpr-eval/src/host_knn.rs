//! Exact k-NN on the host CPU: a packed database and a fused score + top-k kernel.
//!
//! This is the CPU engine behind [`KnnEngine::Host`](crate::KnnEngine) (what `Auto` picks on
//! burn's CPU devices); the device engine ([`DeviceDatabase`](crate::DeviceDatabase)) runs the
//! same search with burn ops on any backend. Both return identical neighbour lists up to float32
//! rounding of the scores (tested against each other and against an exact float64 ranking).
//!
//! # Why a dedicated kernel
//!
//! A top-k search is a matrix product whose result is thrown away almost entirely: of the
//! `n_q × n_db` scores only `n_q × k` survive. Writing the score matrix to memory and reading it
//! back (what a `matmul` followed by a top-k does) costs as much as the product itself for a
//! 512-d database, and general GEMM libraries leave a further 20–30 % on the table for these
//! shapes (one small dimension). Here the database is packed once, at index time, into panels of
//! [`NR`] rows stored dimension-major (`panel[d][r]`), and the queries into tiles of [`MR`] rows
//! (`tile[d][i]`). A register-blocked micro-kernel computes an `MR × NR` block of scores in
//! registers over the whole descriptor, compares it with each query's current k-th best score and
//! only then touches memory — for the rare scores that enter a top-k. Panels are the outer loop
//! (each is read from memory once per query block and reused from cache by every query tile);
//! threads split the panels and merge their top-k lists at the end.
//!
//! Scores are accumulated in float32 in descriptor order with fused multiply-adds (AVX2 + FMA on
//! x86-64, detected at run time; a portable kernel elsewhere), as BLAS `sgemm` does; ties are
//! broken by the lower database index, as everywhere in this crate.

use rayon::prelude::*;

use crate::descriptors::Descriptors;
use crate::error::Result;
use crate::knn::{Metric, Neighbours, TopK, check_db, check_queries, max_sq_norm};

/// Database rows per panel (two 8-lane AVX registers).
pub const NR: usize = 16;
/// Queries per tile (6 × 2 accumulator registers + 2 panel loads + 1 broadcast = 15 of 16 AVX2
/// registers).
pub const MR: usize = 6;

/// Default bytes of packed queries processed per pass over the database: the query block stays
/// in a core's L2 cache while the panels stream past it.
pub const DEFAULT_QUERY_BLOCK_BYTES: usize = 768 * 1024;

/// A database packed for the host kernel (faiss's `IndexFlat` on the CPU, in spirit).
///
/// The index holds its own copy of the descriptors (padded to a multiple of [`NR`] rows), so the
/// [`Descriptors`] it was built from can be dropped: a 1M × 2048 float database needs 8 GB either
/// way; for a database larger than memory use the streaming device engine
/// ([`exact_knn_streaming`](crate::exact_knn_streaming)).
///
/// ```
/// use vpr_eval::{Descriptors, HostIndex, Metric};
/// let db = Descriptors::new(vec![1.0, 0.0, 0.0, 1.0, 0.6, 0.8], 3, 2).unwrap();
/// let q = Descriptors::new(vec![0.0, 1.0], 1, 2).unwrap();
/// let index = HostIndex::new(&db, Metric::InnerProduct).unwrap();
/// let nn = index.search(&q, 2).unwrap();
/// assert_eq!(nn.indices_of(0), &[1, 2]);
/// ```
#[derive(Debug, Clone)]
pub struct HostIndex {
    n: usize,
    dim: usize,
    metric: Metric,
    /// `n_panels × dim × NR`, dimension-major inside a panel, zero rows as padding.
    panels: Vec<f32>,
    /// `n_panels × NR`: `−‖x‖²` (L2), `0` (inner product), `−∞` for padding rows.
    bias: Vec<f32>,
    max_sq_norm: f64,
    query_block_bytes: usize,
}

impl HostIndex {
    /// Packs `db` for searches with `metric`.
    pub fn new(db: &Descriptors, metric: Metric) -> Result<Self> {
        check_db(db)?;
        let (n, dim) = (db.rows(), db.dim());
        let n_panels = n.div_ceil(NR);
        let mut panels = vec![0.0f32; n_panels * dim * NR];
        let mut bias = vec![f32::NEG_INFINITY; n_panels * NR];
        panels
            .par_chunks_mut(dim * NR)
            .zip(bias.par_chunks_mut(NR))
            .enumerate()
            .for_each(|(p, (panel, bias))| {
                for r in 0..NR.min(n - p * NR) {
                    let row = db.row(p * NR + r);
                    for (d, &v) in row.iter().enumerate() {
                        panel[d * NR + r] = v;
                    }
                    bias[r] = match metric {
                        Metric::InnerProduct => 0.0,
                        Metric::L2 => -row.iter().map(|v| v * v).sum::<f32>(),
                    };
                }
            });
        Ok(Self {
            n,
            dim,
            metric,
            panels,
            bias,
            max_sq_norm: max_sq_norm(db),
            query_block_bytes: DEFAULT_QUERY_BLOCK_BYTES,
        })
    }

    /// Sets the bytes of packed queries per pass over the database (at least one tile).
    pub fn with_query_block_bytes(mut self, bytes: usize) -> Self {
        self.query_block_bytes = bytes;
        self
    }

    /// Number of database rows.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the index is empty (never, by construction).
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Descriptor dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The metric the index was packed for.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The `k` nearest database rows of every query, best first (ties: lower index first).
    pub fn search(&self, queries: &Descriptors, k: usize) -> Result<Neighbours> {
        check_queries(queries, k, self.dim, self.max_sq_norm)?;
        let nq = queries.rows();
        let k_eff = k.min(self.n);
        let tile_bytes = MR * self.dim * 4;
        let tiles_per_block = (self.query_block_bytes / tile_bytes).max(1);
        let q_block = tiles_per_block * MR;
        let kernel = Kernel::detect();
        let mut tops: Vec<TopK> = Vec::with_capacity(nq);
        for qs in (0..nq).step_by(q_block) {
            let qe = (qs + q_block).min(nq);
            let packed = self.pack_queries(queries, qs, qe);
            tops.extend(self.search_block(&packed, qe - qs, k_eff, kernel));
        }
        crate::knn::finish(queries, tops, k_eff, self.metric)
    }

    /// Packs queries `qs..qe` into tiles `[d][MR]` (doubled for L2: the kernel ranks by
    /// `2 q·x − ‖x‖²`; doubling is exact).
    fn pack_queries(&self, queries: &Descriptors, qs: usize, qe: usize) -> Vec<f32> {
        let dim = self.dim;
        let scale = match self.metric {
            Metric::InnerProduct => 1.0,
            Metric::L2 => 2.0,
        };
        let n_tiles = (qe - qs).div_ceil(MR);
        let mut packed = vec![0.0f32; n_tiles * dim * MR];
        for q in qs..qe {
            let (t, i) = ((q - qs) / MR, (q - qs) % MR);
            let tile = &mut packed[t * dim * MR..(t + 1) * dim * MR];
            for (d, &v) in queries.row(q).iter().enumerate() {
                tile[d * MR + i] = v * scale;
            }
        }
        packed
    }

    fn search_block(&self, packed: &[f32], nq: usize, k: usize, kernel: Kernel) -> Vec<TopK> {
        let n_panels = self.n.div_ceil(NR);
        let threads = rayon::current_num_threads().max(1);
        // a few chunks per thread for balance; each chunk warms up its own top-k lists
        let chunk = n_panels.div_ceil(threads * 4).max(1);
        let empty = || (0..nq).map(|_| TopK::new(k)).collect::<Vec<_>>();
        (0..n_panels)
            .into_par_iter()
            .step_by(chunk)
            .map(|p0| {
                let mut tops = empty();
                self.scan_panels(
                    packed,
                    nq,
                    p0..(p0 + chunk).min(n_panels),
                    kernel,
                    &mut tops,
                );
                tops
            })
            .reduce(empty, |mut a, b| {
                for (ta, tb) in a.iter_mut().zip(b) {
                    for (s, i) in tb.items {
                        ta.push(s, i);
                    }
                }
                a
            })
    }

    fn scan_panels(
        &self,
        packed: &[f32],
        nq: usize,
        panels: std::ops::Range<usize>,
        kernel: Kernel,
        tops: &mut [TopK],
    ) {
        let dim = self.dim;
        let n_tiles = nq.div_ceil(MR);
        // current k-th best score per query (−∞ until its list is full); +∞ for padding queries
        let mut thr: Vec<f32> = (0..n_tiles * MR)
            .map(|q| {
                if q < nq {
                    f32::NEG_INFINITY
                } else {
                    f32::INFINITY
                }
            })
            .collect();
        let mut out = [0.0f32; MR * NR];
        for p in panels {
            let panel = &self.panels[p * dim * NR..(p + 1) * dim * NR];
            let bias: &[f32; NR] = self.bias[p * NR..(p + 1) * NR]
                .try_into()
                .expect("bias slices are NR long");
            for t in 0..n_tiles {
                let tile = &packed[t * dim * MR..(t + 1) * dim * MR];
                let th: &[f32; MR] = thr[t * MR..(t + 1) * MR]
                    .try_into()
                    .expect("threshold slices are MR long");
                let masks = kernel.run(tile, panel, dim, bias, th, &mut out);
                if masks.iter().all(|&m| m == 0) {
                    continue;
                }
                for (i, &mask) in masks.iter().enumerate() {
                    let mut m = mask;
                    if m == 0 {
                        continue;
                    }
                    let q = t * MR + i;
                    let top = &mut tops[q];
                    while m != 0 {
                        let r = m.trailing_zeros() as usize;
                        m &= m - 1;
                        let idx = p * NR + r;
                        if idx < self.n {
                            top.push(out[i * NR + r], idx as u32);
                        }
                    }
                    thr[q] = top.threshold();
                }
            }
        }
    }
}

/// The micro-kernel chosen for this CPU.
#[derive(Debug, Clone, Copy)]
enum Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

impl Kernel {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Kernel::Avx2Fma;
        }
        Kernel::Portable
    }

    /// Scores of one query tile against one panel into `out[i * NR + r]`; returns per query the
    /// bit mask of rows whose score is `>=` its threshold.
    #[inline]
    fn run(
        self,
        tile: &[f32],
        panel: &[f32],
        dim: usize,
        bias: &[f32; NR],
        thr: &[f32; MR],
        out: &mut [f32; MR * NR],
    ) -> [u32; MR] {
        debug_assert_eq!(tile.len(), dim * MR);
        debug_assert_eq!(panel.len(), dim * NR);
        match self {
            Kernel::Portable => kernel_portable(tile, panel, dim, bias, thr, out),
            // SAFETY: `detect` checked AVX2 and FMA; the slices have the lengths asserted above.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2Fma => unsafe { kernel_avx2(tile, panel, dim, bias, thr, out) },
        }
    }
}

fn kernel_portable(
    tile: &[f32],
    panel: &[f32],
    dim: usize,
    bias: &[f32; NR],
    thr: &[f32; MR],
    out: &mut [f32; MR * NR],
) -> [u32; MR] {
    let mut acc = [[0.0f32; NR]; MR];
    for d in 0..dim {
        let b: &[f32; NR] = panel[d * NR..(d + 1) * NR].try_into().expect("NR");
        for (i, row) in acc.iter_mut().enumerate() {
            let a = tile[d * MR + i];
            for (x, &y) in row.iter_mut().zip(b) {
                *x = a.mul_add(y, *x);
            }
        }
    }
    let mut masks = [0u32; MR];
    for i in 0..MR {
        for r in 0..NR {
            let s = acc[i][r] + bias[r];
            out[i * NR + r] = s;
            if s >= thr[i] {
                masks[i] |= 1 << r;
            }
        }
    }
    masks
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_avx2(
    tile: &[f32],
    panel: &[f32],
    dim: usize,
    bias: &[f32; NR],
    thr: &[f32; MR],
    out: &mut [f32; MR * NR],
) -> [u32; MR] {
    use std::arch::x86_64::*;
    let a = tile.as_ptr();
    let b = panel.as_ptr();
    let mut c = [[_mm256_setzero_ps(); 2]; MR];
    // SAFETY (whole block): `tile` holds dim × MR and `panel` dim × NR floats (caller), so every
    // offset below is in bounds; unaligned loads are used throughout.
    unsafe {
        for d in 0..dim {
            let b0 = _mm256_loadu_ps(b.add(d * NR));
            let b1 = _mm256_loadu_ps(b.add(d * NR + 8));
            let ad = a.add(d * MR);
            for (i, ci) in c.iter_mut().enumerate() {
                let ai = _mm256_broadcast_ss(&*ad.add(i));
                ci[0] = _mm256_fmadd_ps(ai, b0, ci[0]);
                ci[1] = _mm256_fmadd_ps(ai, b1, ci[1]);
            }
        }
        let bias0 = _mm256_loadu_ps(bias.as_ptr());
        let bias1 = _mm256_loadu_ps(bias.as_ptr().add(8));
        let mut masks = [0u32; MR];
        for (i, ci) in c.iter().enumerate() {
            let s0 = _mm256_add_ps(ci[0], bias0);
            let s1 = _mm256_add_ps(ci[1], bias1);
            let t = _mm256_set1_ps(thr[i]);
            let m0 = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(s0, t)) as u32;
            let m1 = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(s1, t)) as u32;
            masks[i] = m0 | (m1 << 8);
            _mm256_storeu_ps(out.as_mut_ptr().add(i * NR), s0);
            _mm256_storeu_ps(out.as_mut_ptr().add(i * NR + 8), s1);
        }
        masks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(rows: usize, dim: usize, seed: u64) -> Descriptors {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let data = (0..rows * dim)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        Descriptors::new(data, rows, dim).unwrap()
    }

    #[test]
    fn kernels_agree_with_scalar_scores() {
        let dim = 37;
        let db = random(NR, dim, 1);
        let q = random(MR, dim, 2);
        let index = HostIndex::new(&db, Metric::L2).unwrap();
        let packed = index.pack_queries(&q, 0, MR);
        let thr = [0.0f32; MR];
        let mut out = [0.0f32; MR * NR];
        for kernel in [Kernel::Portable, Kernel::detect()] {
            let masks = kernel.run(
                &packed,
                &index.panels,
                dim,
                &index.bias[..NR].try_into().unwrap(),
                &thr,
                &mut out,
            );
            for i in 0..MR {
                for r in 0..NR {
                    let dot: f64 = q
                        .row(i)
                        .iter()
                        .zip(db.row(r))
                        .map(|(a, b)| *a as f64 * *b as f64)
                        .sum();
                    let sq: f64 = db.row(r).iter().map(|v| (*v as f64).powi(2)).sum();
                    let want = 2.0 * dot - sq;
                    // float32 accumulation of 37 products of magnitude <= 0.25: error well below 1e-5
                    assert!(
                        (out[i * NR + r] as f64 - want).abs() < 1e-5,
                        "{kernel:?} {i} {r}"
                    );
                    assert_eq!(masks[i] >> r & 1 == 1, out[i * NR + r] >= 0.0);
                }
            }
        }
    }
}
