//! Random and diverse anchor mining (docs/PAPERS.md A.7, gandtr
//! `components/data/dataset/cirtorch_datasets.py::DiverseAnchorsDataset`).
//!
//! # The algorithm (A.7)
//! ```text
//! chosen = [0]; S = empty (Qp × 0)
//! repeat q − 1 times:
//!     S = [S, Qᵀ·Q[:, last_chosen]]            # cosine similarities to the newest anchor
//!     m = max over columns of S                # similarity to the most similar chosen anchor
//!     valid = Qp − |chosen|
//!     hi = max(int(valid·(1 − similar_exclude)), 1)
//!     lo = min(int(valid·(1 − similar_include)), hi − 1)
//!     band = argsort_ascending(m)[lo:hi]
//!     chosen.append(uniform element of band)   # deterministic mode: band[-1]
//! ```
//! [`diverse_anchors`] keeps `m` as a running maximum (one matrix–vector product per chosen
//! anchor instead of re-reducing the growing `S`) and finds the element of rank `r` with a linear
//! selection on the host instead of sorting `Qp` values.
//!
//! # Ties and chosen anchors
//! The ranking is that of a **stable** ascending argsort (`numpy.argsort(m, kind="stable")`):
//! equal similarities are ordered by candidate index, and `-0.0 == 0.0`. Ranks are taken among the
//! candidates not chosen yet. In the reference the chosen anchors stay in the sort with
//! `m = 1` (their self-similarity), above every other candidate, and `hi ≤ valid` keeps them out of
//! the band, so the two rankings agree — except when a candidate is a (near-)duplicate of a chosen
//! anchor and its rounded similarity reaches the anchor's rounded self-similarity: then the
//! reference can pick the same anchor twice, this implementation never does.
//!
//! # Exactness and speed: the int8 screen
//! Each step needs `s = Q·c` for the new anchor `c`, but `m_i` only changes where `s_i > m_i`.
//! On a CPU the product is memory-bound (10,000 × 2048 f32 = 82 MB read per step), so by default
//! ([`DiverseConfig::screen`]) a host-side int8 copy of the descriptors (4× smaller) bounds every
//! similarity first: with `x̃` the row-wise int8 reconstruction, `e = x − x̃`,
//! `|x_i·x_c − x̃_i·x̃_c| ≤ ‖e_i‖‖x_c‖ + ‖x̃_i‖‖e_c‖`, and the f32 product itself is within
//! `γ_D ‖x_i‖‖x_c‖` (`γ_D = D·2⁻²⁴/(1 − D·2⁻²⁴)`) of the real one. Only rows whose upper bound
//! reaches `m_i` get their similarity computed exactly (f32, burn `select` + `matmul` on the
//! device); all others provably leave `m_i` unchanged. So the screen never skips an update; the
//! only difference from computing every similarity is that recomputed rows go through a matmul of
//! another shape, which may round the same dot product differently in the last bit — visible only
//! when two candidates' running maxima tie to within rounding (numpy's own f32 products differ
//! from burn's in the same way). When more than a quarter of the rows are flagged (the first
//! steps) the full product runs on the device instead. Set `screen = false` on a GPU (or when the
//! device matmul is not IEEE f32, e.g. TF32), which runs one device matvec per step.

use std::time::{Duration, Instant};

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::Rng;

use crate::error::{AnchorError, Result};

/// Parameters of diverse anchor mining (defaults of DSA's `parameters/finetune.yml`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiverseConfig {
    /// Number of candidate (query, positive) pairs drawn per epoch, `Qp` (`qpool_size`, 10,000).
    pub qpool_size: usize,
    /// Fraction kept from the least-similar end: the band starts at rank
    /// `int(valid·(1 − similar_include))` (0.8).
    pub similar_include: f64,
    /// Fraction dropped at the most-similar end: the band ends before rank
    /// `int(valid·(1 − similar_exclude))` (0.2).
    pub similar_exclude: f64,
    /// Pick the last element of the band instead of a uniform one (the reference's
    /// `shuffle=False`, for testing).
    pub deterministic: bool,
    /// Screen similarities with the int8 bound before computing them exactly (see the module
    /// docs). It never skips an update, so results agree with `screen = false` up to last-bit
    /// rounding ties; it only changes speed.
    pub screen: bool,
    /// Allowed deviation of descriptor norms from 1.
    pub norm_tolerance: f32,
}

impl Default for DiverseConfig {
    fn default() -> Self {
        Self {
            qpool_size: 10_000,
            similar_include: 0.8,
            similar_exclude: 0.2,
            deterministic: false,
            screen: true,
            norm_tolerance: 1e-3,
        }
    }
}

impl DiverseConfig {
    /// Set [`Self::deterministic`].
    pub fn with_deterministic(mut self, deterministic: bool) -> Self {
        self.deterministic = deterministic;
        self
    }

    /// Set [`Self::screen`].
    pub fn with_screen(mut self, screen: bool) -> Self {
        self.screen = screen;
        self
    }

    /// Set [`Self::qpool_size`].
    pub fn with_qpool_size(mut self, qpool_size: usize) -> Self {
        self.qpool_size = qpool_size;
        self
    }

    /// Check the fractions lie in `[0, 1]` and the tolerance is finite and non-negative.
    pub fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("similar_include", self.similar_include),
            ("similar_exclude", self.similar_exclude),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(AnchorError::InvalidConfig {
                    field,
                    value: v.to_string(),
                    reason: "must lie in [0, 1]",
                });
            }
        }
        let ok = self.norm_tolerance >= 0.0 && self.norm_tolerance.is_finite();
        if !ok {
            return Err(AnchorError::InvalidConfig {
                field: "norm_tolerance",
                value: self.norm_tolerance.to_string(),
                reason: "must be finite and non-negative",
            });
        }
        if self.qpool_size == 0 {
            return Err(AnchorError::InvalidConfig {
                field: "qpool_size",
                value: "0".into(),
                reason: "the candidate pool must not be empty",
            });
        }
        Ok(())
    }
}

/// The band `[lo, hi)` of ranks (among the `valid` unchosen candidates) that A.7 picks from,
/// with Python's float arithmetic and `int()` truncation:
/// `hi = max(int(valid·(1 − exclude)), 1)`, `lo = min(int(valid·(1 − include)), hi − 1)`.
/// Note `1 − 0.8 = 0.19999999999999996` in binary floating point, so `lo` for `valid = 10` is 1.
pub fn band(valid: usize, similar_include: f64, similar_exclude: f64) -> (usize, usize) {
    let v = valid as f64;
    let hi = ((v * (1.0 - similar_exclude)) as usize).max(1);
    let lo = ((v * (1.0 - similar_include)) as usize).min(hi - 1);
    (lo, hi)
}

/// `q` distinct indices of `0..num_candidates` in random order: the cirtorch baseline
/// (`torch.randperm(len)[:q]`).
pub fn random_anchors<R: Rng + ?Sized>(
    num_candidates: usize,
    q: usize,
    rng: &mut R,
) -> Result<Vec<usize>> {
    if num_candidates == 0 {
        return Err(AnchorError::EmptyCandidates {
            what: "no (query, positive) pairs to choose anchors from",
        });
    }
    if q > num_candidates {
        return Err(AnchorError::TooManyAnchors {
            requested: q,
            available: num_candidates,
        });
    }
    Ok(rand::seq::index::sample(rng, num_candidates, q).into_vec())
}

/// The candidate pool of one epoch: `randperm(num_pairs)[:qpool_size]` (all pairs, shuffled,
/// when there are fewer than `qpool_size`).
pub fn candidate_pool<R: Rng + ?Sized>(
    num_pairs: usize,
    qpool_size: usize,
    rng: &mut R,
) -> Result<Vec<usize>> {
    random_anchors(num_pairs, qpool_size.min(num_pairs), rng)
}

/// Counters of one diverse-mining run (how much work the screen saved).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiverseStats {
    /// Anchor steps run (`q − 1`).
    pub steps: usize,
    /// Steps that computed every similarity on the device.
    pub full_products: usize,
    /// Similarities computed exactly on the device in screened steps.
    pub exact_rows: usize,
    /// Similarities bounded by the int8 screen.
    pub screened_rows: usize,
    /// Wall time of validation and screen set-up.
    pub setup_time: Duration,
    /// Wall time of the int8 screen.
    pub screen_time: Duration,
    /// Wall time of the exact similarities on the device (full and screened steps).
    pub exact_time: Duration,
    /// Wall time of the rank selection.
    pub select_time: Duration,
}

/// Per-row data of the int8 screen.
struct Screen {
    dim: usize,
    codes: Vec<i8>,
    scale: Vec<f64>,
    /// ‖x_i − x̃_i‖ (rounded up).
    err: Vec<f64>,
    /// ‖x̃_i‖.
    qnorm: Vec<f64>,
    /// ‖x_i‖.
    norm: Vec<f64>,
    /// γ_D plus a slack for the f64 arithmetic of the bound.
    gamma: f64,
    avx2: bool,
}

impl Screen {
    fn new(data: &[f32], rows: usize, dim: usize, norms: &[f32]) -> Self {
        let mut codes = vec![0i8; rows * dim];
        let mut scale = vec![0.0; rows];
        let mut err = vec![0.0; rows];
        let mut qnorm = vec![0.0; rows];
        for i in 0..rows {
            let x = &data[i * dim..(i + 1) * dim];
            let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
            let s = if amax > 0.0 { amax / 127.0 } else { 1.0 };
            let (mut e2, mut q2) = (0.0f64, 0.0f64);
            for (c, &v) in codes[i * dim..(i + 1) * dim].iter_mut().zip(x) {
                let k = (v / s).round().clamp(-127.0, 127.0) as i8;
                *c = k;
                let rec = f64::from(s) * f64::from(k);
                let d = f64::from(v) - rec;
                e2 += d * d;
                q2 += rec * rec;
            }
            scale[i] = f64::from(s);
            err[i] = e2.sqrt() * (1.0 + 1e-12);
            qnorm[i] = q2.sqrt();
        }
        let u = (dim as f64) * 2f64.powi(-24);
        Self {
            dim,
            codes,
            scale,
            err,
            qnorm,
            norm: norms.iter().map(|&n| f64::from(n)).collect(),
            gamma: u / (1.0 - u),
            avx2: has_avx2(),
        }
    }

    /// Rows `i` (not chosen) whose similarity to anchor `c` may exceed `m[i]`.
    fn flag(&self, c: usize, m: &[f32], chosen: &[bool], out: &mut Vec<usize>) {
        out.clear();
        let d = self.dim;
        let code_c = &self.codes[c * d..(c + 1) * d];
        let (sc, ec, nc) = (self.scale[c], self.err[c], self.norm[c]);
        for i in 0..m.len() {
            if chosen[i] {
                continue;
            }
            let dot = dot_i8(self.avx2, &self.codes[i * d..(i + 1) * d], code_c);
            let approx = self.scale[i] * sc * f64::from(dot);
            let bound =
                self.err[i] * nc + self.qnorm[i] * ec + self.gamma * self.norm[i] * nc + 1e-6;
            if approx + bound >= f64::from(m[i]) {
                out.push(i);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    std::is_x86_feature_detected!("avx2")
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avx2() -> bool {
    false
}

/// Exact `Σ a_k b_k` in i32 (|a_k b_k| ≤ 127², so no overflow below 133,000 dimensions).
#[inline(always)]
fn dot_i8_generic(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = [0i32; 32];
    let (ca, cb) = (a.chunks_exact(32), b.chunks_exact(32));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..32 {
            acc[k] += i32::from(x[k]) * i32::from(y[k]);
        }
    }
    let mut s: i32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += i32::from(*x) * i32::from(*y);
    }
    s
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dot_i8_avx2(a: &[i8], b: &[i8]) -> i32 {
    dot_i8_generic(a, b)
}

#[inline(always)]
fn dot_i8(avx2: bool, a: &[i8], b: &[i8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: `avx2` is true only when `is_x86_feature_detected!("avx2")` returned true.
        return unsafe { dot_i8_avx2(a, b) };
    }
    let _ = avx2;
    dot_i8_generic(a, b)
}

fn readback(t: Tensor<1>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| AnchorError::Readback {
            message: format!("{e:?}"),
        })
}

/// Check shape, finiteness and norms; return the row norms.
fn validate_descriptors(x: &Tensor<2>, tolerance: f32) -> Result<Vec<f32>> {
    let [rows, dim] = x.dims();
    if rows == 0 {
        return Err(AnchorError::EmptyCandidates {
            what: "the descriptor matrix has no rows",
        });
    }
    if dim == 0 {
        return Err(AnchorError::DescriptorShape {
            expected: "[candidates, dim] with dim > 0".into(),
            got: vec![rows, dim],
        });
    }
    let sq = readback(x.clone().powi_scalar(2).sum_dim(1).reshape([rows]))?;
    let mut norms = Vec::with_capacity(rows);
    for (row, &s) in sq.iter().enumerate() {
        if !s.is_finite() {
            let vals = readback(x.clone().slice([row..row + 1, 0..dim]).reshape([dim]))?;
            if let Some(d) = vals.iter().position(|v| !v.is_finite()) {
                return Err(AnchorError::NonFiniteDescriptor { row, dim: d });
            }
        }
        let n = s.sqrt();
        // Written so that a NaN norm (overflowing squares) is rejected too.
        let within = (n - 1.0).abs() <= tolerance;
        if !within {
            return Err(AnchorError::NotNormalised {
                row,
                norm: n,
                tolerance,
            });
        }
        norms.push(n);
    }
    Ok(norms)
}

/// Order-preserving key of a non-NaN f32 (`-0.0` and `0.0` map to the same key, as they compare
/// equal in numpy).
fn ordered_bits(v: f32) -> u32 {
    let b = if v == 0.0 { 0 } else { v.to_bits() };
    if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    }
}

/// Rank-`r` unchosen candidate in the stable ascending order of `m` (ties by index): a linear-time
/// selection on `(value, index)` keys packed into a `u64`.
fn select_rank(m: &[f32], chosen: &[bool], r: usize, scratch: &mut Vec<u64>) -> usize {
    scratch.clear();
    scratch.extend(
        m.iter()
            .zip(chosen)
            .enumerate()
            .filter(|(_, (_, c))| !**c)
            .map(|(i, (&v, _))| (u64::from(ordered_bits(v)) << 32) | i as u64),
    );
    let (_, nth, _) = scratch.select_nth_unstable(r);
    (*nth & 0xFFFF_FFFF) as usize
}

/// Diverse anchors: indices of `q` rows of `descriptors` (`[Qp, D]`, one L2-normalised descriptor
/// per candidate (query, positive) pair) chosen greedily as in A.7, the first being row 0.
///
/// In random mode `rng` draws one rank per step, uniform in the band; in deterministic mode it is
/// not used. Errors: `q > Qp`, no rows, NaN/∞ values, norms off 1 by more than
/// [`DiverseConfig::norm_tolerance`], an invalid configuration.
pub fn diverse_anchors<R: Rng + ?Sized>(
    descriptors: &Tensor<2>,
    q: usize,
    cfg: &DiverseConfig,
    rng: &mut R,
) -> Result<Vec<usize>> {
    diverse_anchors_with_stats(descriptors, q, cfg, rng).map(|(a, _)| a)
}

/// [`diverse_anchors`] plus counters of the work done.
pub fn diverse_anchors_with_stats<R: Rng + ?Sized>(
    descriptors: &Tensor<2>,
    q: usize,
    cfg: &DiverseConfig,
    rng: &mut R,
) -> Result<(Vec<usize>, DiverseStats)> {
    cfg.validate()?;
    let [qp, dim] = descriptors.dims();
    if qp == 0 {
        return Err(AnchorError::EmptyCandidates {
            what: "the descriptor matrix has no rows",
        });
    }
    if q > qp {
        return Err(AnchorError::TooManyAnchors {
            requested: q,
            available: qp,
        });
    }
    if qp > u32::MAX as usize {
        return Err(AnchorError::DescriptorShape {
            expected: "at most 2^32 - 1 candidates".into(),
            got: vec![qp, dim],
        });
    }
    let t0 = Instant::now();
    let norms = validate_descriptors(descriptors, cfg.norm_tolerance)?;
    let mut stats = DiverseStats::default();
    if q == 0 {
        return Ok((Vec::new(), stats));
    }
    let device: Device = descriptors.device();
    let screen = if cfg.screen && q > 1 {
        let data = descriptors
            .to_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| AnchorError::Readback {
                message: format!("{e:?}"),
            })?;
        Some(Screen::new(&data, qp, dim, &norms))
    } else {
        None
    };
    stats.setup_time = t0.elapsed();
    let full_threshold = qp / 4;
    let mut m = vec![f32::NEG_INFINITY; qp];
    let mut chosen_mask = vec![false; qp];
    let mut chosen = Vec::with_capacity(q);
    chosen.push(0usize);
    chosen_mask[0] = true;
    let mut flagged = Vec::with_capacity(qp);
    let mut scratch = Vec::with_capacity(qp);
    let mut first = true;
    for _ in 1..q {
        let last = *chosen.last().unwrap_or(&0);
        let anchor = descriptors
            .clone()
            .slice([last..last + 1, 0..dim])
            .reshape([dim, 1]);
        let t = Instant::now();
        let use_full = match &screen {
            Some(s) if !first => {
                s.flag(last, &m, &chosen_mask, &mut flagged);
                stats.screened_rows += qp - chosen.len();
                flagged.len() > full_threshold
            }
            _ => true,
        };
        first = false;
        stats.screen_time += t.elapsed();
        let t = Instant::now();
        if use_full {
            let sims = readback(descriptors.clone().matmul(anchor).reshape([qp]))?;
            for ((mi, s), &c) in m.iter_mut().zip(&sims).zip(&chosen_mask) {
                if !c && *s > *mi {
                    *mi = *s;
                }
            }
            stats.full_products += 1;
        } else if !flagged.is_empty() {
            let idx: Vec<i64> = flagged.iter().map(|&i| i as i64).collect();
            let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [flagged.len()]), &device);
            let sims = readback(
                descriptors
                    .clone()
                    .select(0, idx)
                    .matmul(anchor)
                    .reshape([flagged.len()]),
            )?;
            for (&i, &s) in flagged.iter().zip(&sims) {
                if s > m[i] {
                    m[i] = s;
                }
            }
            stats.exact_rows += flagged.len();
        }
        stats.exact_time += t.elapsed();
        let t = Instant::now();
        let valid = qp - chosen.len();
        let (lo, hi) = band(valid, cfg.similar_include, cfg.similar_exclude);
        let r = if cfg.deterministic {
            hi - 1
        } else {
            rng.random_range(lo..hi)
        };
        let pick = select_rank(&m, &chosen_mask, r, &mut scratch);
        chosen.push(pick);
        chosen_mask[pick] = true;
        stats.steps += 1;
        stats.select_time += t.elapsed();
    }
    Ok((chosen, stats))
}

/// Mean over anchors of the cosine similarity to the most similar *other* anchor — low means
/// diverse. `descriptors` is `[N, D]` (L2-normalised), `anchors` at least two distinct rows.
pub fn mean_nearest_anchor_similarity(descriptors: &Tensor<2>, anchors: &[usize]) -> Result<f32> {
    let [rows, dim] = descriptors.dims();
    if anchors.len() < 2 {
        return Err(AnchorError::EmptyCandidates {
            what: "need at least two anchors for a nearest-anchor similarity",
        });
    }
    if let Some(&bad) = anchors.iter().find(|&&a| a >= rows) {
        return Err(AnchorError::TooManyAnchors {
            requested: bad + 1,
            available: rows,
        });
    }
    let device = descriptors.device();
    let n = anchors.len();
    let idx: Vec<i64> = anchors.iter().map(|&i| i as i64).collect();
    let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [n]), &device);
    let a = descriptors.clone().select(0, idx);
    let sims = a.clone().matmul(a.transpose());
    let data = sims
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| AnchorError::Readback {
            message: format!("{e:?}"),
        })?;
    let _ = dim;
    let mut total = 0.0f64;
    for i in 0..n {
        let best = (0..n)
            .filter(|&j| j != i)
            .map(|j| data[i * n + j])
            .fold(f32::NEG_INFINITY, f32::max);
        total += f64::from(best);
    }
    Ok((total / n as f64) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_bits_sorts_like_floats() {
        let vals = [
            f32::NEG_INFINITY,
            -2.5,
            -1e-30,
            -0.0,
            0.0,
            1e-30,
            0.5,
            1.0,
            f32::INFINITY,
        ];
        for w in vals.windows(2) {
            let (a, b) = (ordered_bits(w[0]), ordered_bits(w[1]));
            if w[0] == w[1] {
                assert_eq!(a, b, "{w:?}");
            } else {
                assert!(a < b, "{w:?}");
            }
        }
    }

    #[test]
    fn select_rank_is_a_stable_argsort() {
        let m = [0.5f32, -0.0, 0.25, 0.0, 0.5, 0.1, 0.25];
        let chosen = [false, false, false, false, false, true, false];
        // Stable ascending order of the unchosen: 1 (-0), 3 (0), 2, 6, 0, 4.
        let mut scratch = Vec::new();
        let order: Vec<usize> = (0..6)
            .map(|r| select_rank(&m, &chosen, r, &mut scratch))
            .collect();
        assert_eq!(order, vec![1, 3, 2, 6, 0, 4]);
    }

    #[test]
    fn int8_screen_bound_holds() {
        // The bound must cover the f32 similarity for every pair of a random unit set.
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let (n, d) = (40, 96);
        let mut data: Vec<f32> = (0..n * d).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        for row in data.chunks_mut(d) {
            let s = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            row.iter_mut().for_each(|v| *v /= s);
        }
        let norms: Vec<f32> = data
            .chunks(d)
            .map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt())
            .collect();
        let screen = Screen::new(&data, n, d, &norms);
        let chosen = vec![false; n];
        let mut out = Vec::new();
        for c in 0..n {
            let exact: Vec<f32> = data
                .chunks(d)
                .map(|r| {
                    r.iter()
                        .zip(&data[c * d..(c + 1) * d])
                        .map(|(a, b)| a * b)
                        .sum()
                })
                .collect();
            // With m = exact similarity (minus one ulp) every row must be flagged …
            let m: Vec<f32> = exact.iter().map(|&s| s - s.abs() * 1e-7 - 1e-9).collect();
            screen.flag(c, &m, &chosen, &mut out);
            assert_eq!(out.len(), n, "anchor {c}");
            // … and with m well above it (0.05 > the int8 bound here) none.
            let m: Vec<f32> = exact.iter().map(|&s| s + 0.05).collect();
            screen.flag(c, &m, &chosen, &mut out);
            assert!(out.is_empty(), "anchor {c}: {out:?}");
        }
    }
}
