//! Statistics that tell whether a difference between two methods is real: bootstrap confidence
//! intervals of Recall@N, a paired bootstrap of the R@N difference with an exact McNemar test, and
//! the Fréchet distance between two feature sets (the FID formula, for translation quality).
//!
//! # Bootstrap over queries
//!
//! [`bootstrap_recall`] resamples the queries with replacement `resamples` times (default
//! [`DEFAULT_RESAMPLES`] = 2,000; 1,000 or more is the usual standard, any number ≥ 1 is accepted)
//! and reports the **percentile interval**: the 2.5 and 97.5 percentiles of the resampled R@N,
//! with numpy's default linear interpolation (Hyndman & Fan type 7: sort the `B` values, take
//! position `q·(B − 1)` and interpolate linearly between its two neighbours). Queries without a
//! positive count as misses, as in [`FirstHits::recall`].
//!
//! The resampled query indices come from [`SplitMix64`] (Steele, Lea & Flood 2014) seeded with
//! [`Bootstrap::seed`]: resample `r = 0, 1, …` draws its `n` indices one after the other with the
//! unbiased [`SplitMix64::below`]. The generator is small enough to write out in any language,
//! so an interval can be reproduced exactly elsewhere (`scripts/stats_reference.py` does it in
//! Python; the tests compare to 1e-12).
//!
//! [`paired_bootstrap`] compares two methods on the same queries: every resample draws one set of
//! query indices and evaluates both methods on it, so the interval of `R@N(B) − R@N(A)` accounts
//! for their correlation. It also runs the exact two-sided McNemar test on the R@1 hits
//! ([`mcnemar_exact`]).
//!
//! # Fréchet distance
//!
//! `d = |μa − μb|² + tr Σa + tr Σb − 2 tr((Σa Σb)^½)` with float64 means and unbiased
//! covariances (`ddof = 1`, as `numpy.cov(x, rowvar=False)`); see [`FeatureStats`].
//!
//! ```
//! use vpr_eval::{Bootstrap, bootstrap_recall, paired_bootstrap};
//!
//! // first-hit ranks of 6 queries (None: no positive was found)
//! let a = [Some(0), Some(3), None, Some(0), Some(1), Some(0)];
//! let b = [Some(0), Some(0), None, Some(0), Some(0), Some(2)];
//! let ci = bootstrap_recall(&a, &[1, 5], &Bootstrap::default())?;
//! assert_eq!(ci.values[0], 50.0);
//! assert!(ci.lower[0] <= 50.0 && 50.0 <= ci.upper[0]);
//!
//! let cmp = paired_bootstrap(&a, &b, &[1], &Bootstrap::default())?;
//! assert!((cmp.diff[0] - 100.0 / 6.0).abs() < 1e-12);
//! assert_eq!((cmp.mcnemar.b, cmp.mcnemar.c), (1, 2));
//! # Ok::<(), vpr_eval::EvalError>(())
//! ```

use std::num::NonZeroU64;

use nalgebra::{Cholesky, DMatrix, SVD, SymmetricEigen};
use serde::{Deserialize, Serialize};

use crate::descriptors::Descriptors;
use crate::error::{EvalError, Result};
use crate::metrics::{FirstHits, validate_ns};

// --------------------------------------------------------------------------------------------
// Generator
// --------------------------------------------------------------------------------------------

/// SplitMix64 (Steele, Lea & Flood 2014; the seeding generator of `java.util.SplittableRandom`
/// and of the xoshiro family): a 64-bit state advanced by a fixed odd constant and a bijective
/// mixing function. Small, fast, statistically sound for resampling, and reproducible bit for
/// bit in any language:
///
/// ```text
/// state = state + 0x9E3779B97F4A7C15            (mod 2^64; the state starts at the seed)
/// z = state
/// z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9      (mod 2^64)
/// z = (z ^ (z >> 27)) * 0x94D049BB133111EB      (mod 2^64)
/// return z ^ (z >> 31)
/// ```
///
/// ```
/// use vpr_eval::SplitMix64;
/// let mut rng = SplitMix64::new(0);
/// assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF); // the reference implementation's first value
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose state starts at `seed`.
    ///
    /// ```
    /// use vpr_eval::SplitMix64;
    /// assert_eq!(SplitMix64::new(7).next_u64(), SplitMix64::new(7).next_u64());
    /// ```
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    ///
    /// ```
    /// use vpr_eval::SplitMix64;
    /// let mut rng = SplitMix64::new(0);
    /// rng.next_u64();
    /// assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    /// ```
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform integer in `[0, n)` without modulo bias, by rejection: draw `x` until
    /// `x ≥ 2^64 mod n`, then return `x mod n` (the accepted range holds a multiple of `n`
    /// values; for `n` below 2^32 a rejection happens with probability below 2^-32).
    ///
    /// ```
    /// use std::num::NonZeroU64;
    /// use vpr_eval::SplitMix64;
    /// let mut rng = SplitMix64::new(1);
    /// let n = NonZeroU64::new(10).unwrap();
    /// assert!((0..100).all(|_| rng.below(n) < 10));
    /// ```
    pub fn below(&mut self, n: NonZeroU64) -> u64 {
        let n = n.get();
        let threshold = n.wrapping_neg() % n; // (2^64 − n) mod n = 2^64 mod n
        loop {
            let x = self.next_u64();
            if x >= threshold {
                return x % n;
            }
        }
    }
}

// --------------------------------------------------------------------------------------------
// Bootstrap of Recall@N
// --------------------------------------------------------------------------------------------

/// The default number of bootstrap resamples.
pub const DEFAULT_RESAMPLES: usize = 2000;

/// The default seed of the bootstrap generator.
pub const DEFAULT_SEED: u64 = 0;

/// Rows per block when a covariance is accumulated from more rows than dimensions.
const COV_BLOCK_ROWS: usize = 4096;

/// Lower and upper quantiles of the 95 % percentile interval.
const QUANTILES: (f64, f64) = (0.025, 0.975);

/// Settings of a bootstrap over queries.
///
/// ```
/// use vpr_eval::Bootstrap;
/// let b = Bootstrap::default();
/// assert_eq!((b.resamples, b.seed), (2000, 0));
/// assert_eq!(Bootstrap::new(5000, 7).resamples, 5000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bootstrap {
    /// Number of resamples `B` (≥ 1; 1,000 or more is the usual standard for a 95 % interval).
    pub resamples: usize,
    /// Seed of the [`SplitMix64`] generator that draws the resampled query indices.
    pub seed: u64,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Self {
            resamples: DEFAULT_RESAMPLES,
            seed: DEFAULT_SEED,
        }
    }
}

impl Bootstrap {
    /// `resamples` resamples drawn with generator seed `seed`.
    ///
    /// ```
    /// use vpr_eval::Bootstrap;
    /// assert_eq!(Bootstrap::new(1000, 3), Bootstrap { resamples: 1000, seed: 3 });
    /// ```
    pub fn new(resamples: usize, seed: u64) -> Self {
        Self { resamples, seed }
    }

    fn validate(&self) -> Result<()> {
        if self.resamples == 0 {
            return Err(EvalError::InvalidArgument {
                name: "resamples",
                reason: "the bootstrap needs at least 1 resample (1,000 or more is standard)"
                    .into(),
            });
        }
        Ok(())
    }
}

/// Recall@N with its 95 % bootstrap percentile interval, in percent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecallCi {
    /// The N values.
    pub n: Vec<usize>,
    /// Recall@N over all queries (percent), one per N.
    pub values: Vec<f64>,
    /// 2.5 percentile of the resampled Recall@N (percent), one per N.
    pub lower: Vec<f64>,
    /// 97.5 percentile of the resampled Recall@N (percent), one per N.
    pub upper: Vec<f64>,
    /// Number of queries.
    pub n_queries: usize,
    /// Number of bootstrap resamples.
    pub resamples: usize,
    /// Seed of the generator.
    pub seed: u64,
}

impl RecallCi {
    /// `R@1: 61.0 [54.0, 68.0], R@5: …` (one decimal).
    ///
    /// ```
    /// use vpr_eval::{Bootstrap, bootstrap_recall};
    /// let ci = bootstrap_recall(&[Some(0), Some(0)], &[1], &Bootstrap::default())?;
    /// assert_eq!(ci.to_line(), "R@1: 100.0 [100.0, 100.0]");
    /// # Ok::<(), vpr_eval::EvalError>(())
    /// ```
    pub fn to_line(&self) -> String {
        (0..self.n.len())
            .map(|i| {
                format!(
                    "R@{}: {:.1} [{:.1}, {:.1}]",
                    self.n[i], self.values[i], self.lower[i], self.upper[i]
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The exact two-sided McNemar test on paired binary outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct McNemar {
    /// Discordant pairs where method A is right and B wrong.
    pub b: u64,
    /// Discordant pairs where method A is wrong and B right.
    pub c: u64,
    /// `min(1, 2·P(X ≤ min(b, c)))` with `X ~ Binomial(b + c, 1/2)`; 1 when `b + c = 0`.
    pub p_value: f64,
}

/// Two methods on the same queries: the paired bootstrap of the R@N difference `B − A` and the
/// exact McNemar test on the R@1 hits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedComparison {
    /// The N values.
    pub n: Vec<usize>,
    /// Recall@N of method A (percent).
    pub recall_a: Vec<f64>,
    /// Recall@N of method B (percent).
    pub recall_b: Vec<f64>,
    /// `R@N(B) − R@N(A)` in percentage points, one per N.
    pub diff: Vec<f64>,
    /// 2.5 percentile of the resampled difference (percentage points).
    pub lower: Vec<f64>,
    /// 97.5 percentile of the resampled difference (percentage points).
    pub upper: Vec<f64>,
    /// McNemar's test on the R@1 hits (`b`: A hit and B missed, `c`: A missed and B hit).
    pub mcnemar: McNemar,
    /// Number of queries.
    pub n_queries: usize,
    /// Number of bootstrap resamples.
    pub resamples: usize,
    /// Seed of the generator.
    pub seed: u64,
}

/// The distinct N values in ascending order, where each requested N sits among them, and for
/// each query its level: the index of the smallest sorted N it is a hit at (`k` for a miss at
/// every N). A query is a hit at `sorted[j]` iff `level ≤ j`.
struct Levels {
    sorted: Vec<usize>,
    position: Vec<usize>,
}

impl Levels {
    fn new(ns: &[usize]) -> Self {
        let mut sorted = ns.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let position = ns
            .iter()
            .map(|n| sorted.partition_point(|s| s < n))
            .collect();
        Self { sorted, position }
    }

    fn of(&self, ranks: &[Option<usize>]) -> Vec<usize> {
        ranks
            .iter()
            .map(|r| match r {
                None => self.sorted.len(),
                Some(r) => self.sorted.partition_point(|&n| n <= *r),
            })
            .collect()
    }

    /// Hits per requested N (in the caller's order) from a histogram of levels.
    fn hits(&self, histogram: &[usize], out: &mut [usize]) {
        let mut cumulative = Vec::with_capacity(self.sorted.len());
        let mut total = 0;
        for &h in &histogram[..self.sorted.len()] {
            total += h;
            cumulative.push(total);
        }
        for (o, &p) in out.iter_mut().zip(&self.position) {
            *o = cumulative[p];
        }
    }
}

/// Hit counts per requested N of every resample, for each method: `out[m][r * ns + i]`.
fn resampled_hits(
    levels: &Levels,
    methods: &[Vec<usize>],
    bootstrap: &Bootstrap,
) -> Vec<Vec<usize>> {
    let n = methods[0].len();
    let k = levels.position.len();
    let mut rng = SplitMix64::new(bootstrap.seed);
    let bound = NonZeroU64::new(n as u64).unwrap_or(NonZeroU64::MIN);
    let mut out = vec![vec![0usize; bootstrap.resamples * k]; methods.len()];
    let mut histograms = vec![vec![0usize; levels.sorted.len() + 1]; methods.len()];
    for r in 0..bootstrap.resamples {
        for h in histograms.iter_mut() {
            h.fill(0);
        }
        for _ in 0..n {
            let q = rng.below(bound) as usize;
            for (h, l) in histograms.iter_mut().zip(methods) {
                h[l[q]] += 1;
            }
        }
        for (o, h) in out.iter_mut().zip(&histograms) {
            levels.hits(h, &mut o[r * k..(r + 1) * k]);
        }
    }
    out
}

/// The `q` quantile (0 ≤ q ≤ 1) of `values` with numpy's default linear interpolation, computed
/// as numpy 1.24 does (`np.percentile(values, 100 q)`). Sorts `values`.
fn percentile_linear(values: &mut [f64], q: f64) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    let last = values.len() - 1;
    let h = q * last as f64;
    let below = h.floor();
    let t = h - below;
    let i = (below as usize).min(last);
    let (a, b) = (values[i], values[(i + 1).min(last)]);
    // numpy's `_lerp`: the form that is exact at the nearer end
    if t >= 0.5 {
        b - (b - a) * (1.0 - t)
    } else {
        a + (b - a) * t
    }
}

fn percent(hits: f64, n: usize) -> f64 {
    hits / n as f64 * 100.0
}

fn check_queries(ranks: &[Option<usize>], what: &str) -> Result<()> {
    if ranks.is_empty() {
        return Err(EvalError::Empty {
            what: format!("query set of {what}"),
            path: None,
        });
    }
    Ok(())
}

/// Recall@N (percent) of per-query first-hit ranks (`None`: no positive found, a miss) with its
/// 95 % percentile bootstrap interval over queries (see the [module docs](self) for the exact
/// resampling and percentile definitions).
///
/// Errors: an empty N list or an N of 0, no queries, `resamples == 0`. The cost is
/// `resamples × n_queries` generator draws (2,000 × 100,000 queries: about a second).
///
/// ```
/// use vpr_eval::{Bootstrap, bootstrap_recall};
/// // 100 queries, 50 found at rank 0, 50 without a positive
/// let ranks: Vec<Option<usize>> = (0..100).map(|i| (i % 2 == 0).then_some(0)).collect();
/// let ci = bootstrap_recall(&ranks, &[1], &Bootstrap::new(2000, 42))?;
/// assert_eq!(ci.values, vec![50.0]);
/// // about ±1.96·sqrt(0.25 / 100) = ±9.8 points
/// assert!(ci.lower[0] > 35.0 && ci.lower[0] < 45.0 && ci.upper[0] > 55.0 && ci.upper[0] < 65.0);
/// # Ok::<(), vpr_eval::EvalError>(())
/// ```
pub fn bootstrap_recall(
    ranks: &[Option<usize>],
    ns: &[usize],
    bootstrap: &Bootstrap,
) -> Result<RecallCi> {
    validate_ns(ns)?;
    bootstrap.validate()?;
    check_queries(ranks, "the bootstrap")?;
    let n = ranks.len();
    let levels = Levels::new(ns);
    let method = levels.of(ranks);
    let point = point_hits(&levels, &method);
    let counts = resampled_hits(&levels, std::slice::from_ref(&method), bootstrap);
    let k = ns.len();
    let mut lower = Vec::with_capacity(k);
    let mut upper = Vec::with_capacity(k);
    let mut column = vec![0.0; bootstrap.resamples];
    for i in 0..k {
        for (r, c) in column.iter_mut().enumerate() {
            *c = percent(counts[0][r * k + i] as f64, n);
        }
        lower.push(percentile_linear(&mut column, QUANTILES.0));
        upper.push(percentile_linear(&mut column, QUANTILES.1));
    }
    Ok(RecallCi {
        n: ns.to_vec(),
        values: point.iter().map(|&h| percent(h as f64, n)).collect(),
        lower,
        upper,
        n_queries: n,
        resamples: bootstrap.resamples,
        seed: bootstrap.seed,
    })
}

fn point_hits(levels: &Levels, method: &[usize]) -> Vec<usize> {
    let mut histogram = vec![0usize; levels.sorted.len() + 1];
    for &l in method {
        histogram[l] += 1;
    }
    let mut hits = vec![0; levels.position.len()];
    levels.hits(&histogram, &mut hits);
    hits
}

/// Compares method B with method A on the same queries (first-hit ranks, `None`: a miss): the
/// difference `R@N(B) − R@N(A)` with its 95 % paired bootstrap interval (each resample evaluates
/// both methods on one set of resampled queries), and the exact McNemar test on the R@1 hits
/// (a query is an R@1 hit when its rank is 0).
///
/// Errors: different query counts, no queries, an empty N list or an N of 0, `resamples == 0`.
///
/// ```
/// use vpr_eval::{Bootstrap, paired_bootstrap};
/// // B fixes 30 of A's 100 misses and breaks 10 of its 100 hits
/// let a: Vec<Option<usize>> = (0..200).map(|i| (i < 100).then_some(0)).collect();
/// let b: Vec<Option<usize>> = (0..200).map(|i| (i >= 10 && i < 130).then_some(0)).collect();
/// let cmp = paired_bootstrap(&a, &b, &[1], &Bootstrap::default())?;
/// assert_eq!(cmp.diff, vec![10.0]);
/// assert!(cmp.lower[0] > 0.0); // the interval excludes 0 ...
/// assert_eq!((cmp.mcnemar.b, cmp.mcnemar.c), (10, 30));
/// assert!(cmp.mcnemar.p_value < 0.01); // ... and McNemar agrees
/// # Ok::<(), vpr_eval::EvalError>(())
/// ```
pub fn paired_bootstrap(
    a: &[Option<usize>],
    b: &[Option<usize>],
    ns: &[usize],
    bootstrap: &Bootstrap,
) -> Result<PairedComparison> {
    if a.len() != b.len() {
        return Err(EvalError::SizeMismatch {
            what: "queries of method B vs queries of method A (a paired comparison needs the same queries)"
                .into(),
            expected: a.len(),
            got: b.len(),
            path: None,
        });
    }
    validate_ns(ns)?;
    bootstrap.validate()?;
    check_queries(a, "the paired bootstrap")?;
    let n = a.len();
    let levels = Levels::new(ns);
    let methods = [levels.of(a), levels.of(b)];
    let hits_a = point_hits(&levels, &methods[0]);
    let hits_b = point_hits(&levels, &methods[1]);
    let counts = resampled_hits(&levels, &methods, bootstrap);
    let k = ns.len();
    let mut lower = Vec::with_capacity(k);
    let mut upper = Vec::with_capacity(k);
    let mut column = vec![0.0; bootstrap.resamples];
    for i in 0..k {
        for (r, c) in column.iter_mut().enumerate() {
            let j = r * k + i;
            *c = percent(counts[1][j] as f64 - counts[0][j] as f64, n);
        }
        lower.push(percentile_linear(&mut column, QUANTILES.0));
        upper.push(percentile_linear(&mut column, QUANTILES.1));
    }
    let (mut discordant_b, mut discordant_c) = (0u64, 0u64);
    for (ra, rb) in a.iter().zip(b) {
        match (*ra == Some(0), *rb == Some(0)) {
            (true, false) => discordant_b += 1,
            (false, true) => discordant_c += 1,
            _ => {}
        }
    }
    Ok(PairedComparison {
        n: ns.to_vec(),
        recall_a: hits_a.iter().map(|&h| percent(h as f64, n)).collect(),
        recall_b: hits_b.iter().map(|&h| percent(h as f64, n)).collect(),
        diff: hits_a
            .iter()
            .zip(&hits_b)
            .map(|(&ha, &hb)| percent(hb as f64 - ha as f64, n))
            .collect(),
        lower,
        upper,
        mcnemar: mcnemar_exact(discordant_b, discordant_c),
        n_queries: n,
        resamples: bootstrap.resamples,
        seed: bootstrap.seed,
    })
}

impl FirstHits {
    /// [`bootstrap_recall`] of these first-hit ranks.
    ///
    /// ```
    /// use vpr_eval::{Bootstrap, FirstHits};
    /// let hits = FirstHits { ranks: vec![Some(0), None, Some(4)], depth: 5 };
    /// let ci = hits.recall_ci(&[1, 5], &Bootstrap::default())?;
    /// assert_eq!(ci.values, hits.recall(&[1, 5], None)?.values);
    /// # Ok::<(), vpr_eval::EvalError>(())
    /// ```
    pub fn recall_ci(&self, ns: &[usize], bootstrap: &Bootstrap) -> Result<RecallCi> {
        bootstrap_recall(&self.ranks, ns, bootstrap)
    }

    /// [`paired_bootstrap`] with `self` as method A and `other` as method B.
    ///
    /// ```
    /// use vpr_eval::{Bootstrap, FirstHits};
    /// let a = FirstHits { ranks: vec![Some(0), None, Some(4)], depth: 5 };
    /// let b = FirstHits { ranks: vec![Some(0), Some(0), Some(4)], depth: 5 };
    /// let cmp = a.compare(&b, &[1], &Bootstrap::default())?;
    /// assert!((cmp.diff[0] - 100.0 / 3.0).abs() < 1e-12);
    /// # Ok::<(), vpr_eval::EvalError>(())
    /// ```
    pub fn compare(
        &self,
        other: &FirstHits,
        ns: &[usize],
        bootstrap: &Bootstrap,
    ) -> Result<PairedComparison> {
        paired_bootstrap(&self.ranks, &other.ranks, ns, bootstrap)
    }
}

// --------------------------------------------------------------------------------------------
// mAP: bootstrap interval and paired test
// --------------------------------------------------------------------------------------------

/// Mean average precision with its 95 % bootstrap percentile interval, in percent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapCi {
    /// mAP over the queries with positives (percent).
    pub map: f64,
    /// 2.5 percentile of the resampled mAP (percent).
    pub lower: f64,
    /// 97.5 percentile of the resampled mAP (percent).
    pub upper: f64,
    /// Number of queries (with positives) the mean is over.
    pub n_queries: usize,
    /// Number of bootstrap resamples.
    pub resamples: usize,
    /// Seed of the generator.
    pub seed: u64,
}

/// Two methods' APs on the same queries: the paired bootstrap interval of `mAP(B) − mAP(A)` and
/// a two-sided paired sign-flip permutation test of the mean AP difference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedMap {
    /// mAP of method A (percent).
    pub map_a: f64,
    /// mAP of method B (percent).
    pub map_b: f64,
    /// `mAP(B) − mAP(A)` in percentage points.
    pub diff: f64,
    /// 2.5 percentile of the resampled difference (percentage points).
    pub lower: f64,
    /// 97.5 percentile of the resampled difference (percentage points).
    pub upper: f64,
    /// `(1 + #{|mean(s·d)| ≥ |mean(d)|}) / (1 + resamples)` over `resamples` random sign vectors
    /// `s` (the per-query AP differences `d` are symmetric about 0 under the null hypothesis).
    pub p_value: f64,
    /// Number of queries (with positives).
    pub n_queries: usize,
    /// Number of resamples of the bootstrap and of the permutation test.
    pub resamples: usize,
    /// Seed of both generators.
    pub seed: u64,
}

/// The APs of queries with positives (a NaN AP marks a query without, as in
/// [`crate::MapResult::aps`]).
fn finite_aps(aps: &[f64], what: &str) -> Result<Vec<f64>> {
    let v: Vec<f64> = aps.iter().copied().filter(|a| !a.is_nan()).collect();
    if v.is_empty() {
        return Err(EvalError::Empty {
            what: format!("queries with positives of {what}"),
            path: None,
        });
    }
    if let Some(bad) = v.iter().find(|a| !(0.0..=1.0).contains(*a)) {
        return Err(EvalError::InvalidArgument {
            name: "aps",
            reason: format!("an AP must lie in [0, 1], got {bad}"),
        });
    }
    Ok(v)
}

/// The mean of `v` in percent.
fn mean_percent(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64 * 100.0
}

/// The 95 % percentile bootstrap interval of the mean of `v` (percent): `resamples` resamples
/// of `v.len()` indices each, drawn one after the other from one generator seeded with `seed`
/// (as [`bootstrap_recall`] draws its queries).
fn bootstrap_mean_interval(v: &[f64], bootstrap: &Bootstrap) -> (f64, f64) {
    let n = v.len();
    let mut rng = SplitMix64::new(bootstrap.seed);
    let bound = NonZeroU64::new(n as u64).unwrap_or(NonZeroU64::MIN);
    let mut column: Vec<f64> = (0..bootstrap.resamples)
        .map(|_| (0..n).map(|_| v[rng.below(bound) as usize]).sum::<f64>() / n as f64 * 100.0)
        .collect();
    (
        percentile_linear(&mut column, QUANTILES.0),
        percentile_linear(&mut column, QUANTILES.1),
    )
}

/// mAP (percent) of per-query APs (fractions; NaN for a query without positives, excluded as
/// [`crate::compute_map`] does) with its 95 % percentile bootstrap interval over queries, drawn
/// as [`bootstrap_recall`] draws.
///
/// Errors: no query with positives, an AP outside [0, 1], `resamples == 0`.
///
/// ```
/// use vpr_eval::{Bootstrap, bootstrap_map};
/// let ci = bootstrap_map(&[1.0, 0.5, f64::NAN, 0.0], &Bootstrap::default())?;
/// assert_eq!((ci.map, ci.n_queries), (50.0, 3));
/// assert!(ci.lower >= 0.0 && ci.lower < 50.0 && ci.upper > 50.0 && ci.upper <= 100.0);
/// # Ok::<(), vpr_eval::EvalError>(())
/// ```
pub fn bootstrap_map(aps: &[f64], bootstrap: &Bootstrap) -> Result<MapCi> {
    bootstrap.validate()?;
    let v = finite_aps(aps, "the mAP bootstrap")?;
    let (lower, upper) = bootstrap_mean_interval(&v, bootstrap);
    Ok(MapCi {
        map: mean_percent(&v),
        lower,
        upper,
        n_queries: v.len(),
        resamples: bootstrap.resamples,
        seed: bootstrap.seed,
    })
}

/// Compares method B's per-query APs with method A's on the same queries: `mAP(B) − mAP(A)` with
/// its paired bootstrap interval (one set of resampled queries for both) and a two-sided
/// sign-flip permutation test (`resamples` sign vectors from generator seed `seed + 1`).
/// Queries without positives (NaN in either list) are left out of both.
///
/// Errors: lists of different lengths, different queries without positives, an AP outside
/// [0, 1], no query with positives, `resamples == 0`.
///
/// ```
/// use vpr_eval::{Bootstrap, paired_map};
/// // B is 0.2 better on each of 50 queries: the interval excludes 0, the test rejects
/// let a: Vec<f64> = (0..50).map(|i| 0.3 + 0.01 * (i % 10) as f64).collect();
/// let b: Vec<f64> = a.iter().map(|x| x + 0.2).collect();
/// let c = paired_map(&a, &b, &Bootstrap::default())?;
/// assert!((c.diff - 20.0).abs() < 1e-9 && c.lower > 19.9 && c.p_value < 0.001);
/// # Ok::<(), vpr_eval::EvalError>(())
/// ```
pub fn paired_map(a: &[f64], b: &[f64], bootstrap: &Bootstrap) -> Result<PairedMap> {
    if a.len() != b.len() {
        return Err(EvalError::SizeMismatch {
            what: "APs of method B vs APs of method A (a paired comparison needs the same queries)"
                .into(),
            expected: a.len(),
            got: b.len(),
            path: None,
        });
    }
    if let Some(i) = (0..a.len()).find(|&i| a[i].is_nan() != b[i].is_nan()) {
        return Err(EvalError::InvalidArgument {
            name: "aps",
            reason: format!("query {i} has positives for one method and none for the other"),
        });
    }
    bootstrap.validate()?;
    let (va, vb) = (finite_aps(a, "method A")?, finite_aps(b, "method B")?);
    let n = va.len();
    let d: Vec<f64> = vb.iter().zip(&va).map(|(b, a)| b - a).collect();
    let observed = mean_percent(&d);
    let (lower, upper) = bootstrap_mean_interval(&d, bootstrap);
    let mut flips = SplitMix64::new(bootstrap.seed.wrapping_add(1));
    // a relative tolerance, so that a sign vector giving the observed sum in another order counts
    let tol = 1e-9 * observed.abs().max(1e-12);
    let extreme = (0..bootstrap.resamples)
        .filter(|_| {
            let s: f64 = d
                .iter()
                .map(|&x| if flips.next_u64() >> 63 == 1 { -x } else { x })
                .sum::<f64>()
                / n as f64
                * 100.0;
            s.abs() >= observed.abs() - tol
        })
        .count();
    Ok(PairedMap {
        map_a: mean_percent(&va),
        map_b: mean_percent(&vb),
        diff: observed,
        lower,
        upper,
        p_value: (1 + extreme) as f64 / (1 + bootstrap.resamples) as f64,
        n_queries: n,
        resamples: bootstrap.resamples,
        seed: bootstrap.seed,
    })
}

// --------------------------------------------------------------------------------------------
// Exact McNemar test
// --------------------------------------------------------------------------------------------

/// The exact two-sided McNemar test from the discordant counts `b` (A right, B wrong) and `c`
/// (A wrong, B right): `p = min(1, 2·P(X ≤ min(b, c)))` with `X ~ Binomial(b + c, 1/2)`, and
/// `p = 1` when `b + c = 0`. Equal to `scipy.stats.binomtest(min(b, c), b + c, 0.5).pvalue`.
///
/// The binomial probabilities use Loader's saddle-point expansion (the algorithm of R's
/// `dbinom`), accurate to a few ulps for any `n` (within 4e-14 of scipy in the tests, `n` up to
/// 100,700); the tail is summed downwards from `min(b, c)` with the exact term ratio and
/// stops once the rest cannot change the sum. p-values below ~1e-308 underflow to 0.
///
/// ```
/// use vpr_eval::mcnemar_exact;
/// assert_eq!(mcnemar_exact(0, 5).p_value, 0.0625); // 2 · 2^-5
/// assert_eq!(mcnemar_exact(0, 0).p_value, 1.0);
/// assert_eq!(mcnemar_exact(12, 12).p_value, 1.0);
/// assert!(mcnemar_exact(20000, 20400).p_value < 0.05);
/// ```
pub fn mcnemar_exact(b: u64, c: u64) -> McNemar {
    let n = b.saturating_add(c);
    let k = b.min(c);
    let p_value = if n == 0 || b == c {
        1.0
    } else {
        (2.0 * binomial_half_cdf(k, n)).min(1.0)
    };
    McNemar { b, c, p_value }
}

/// `P(X ≤ k)` for `X ~ Binomial(n, 1/2)` and `2k < n`.
fn binomial_half_cdf(k: u64, n: u64) -> f64 {
    let mut term = binomial_half_pmf(k, n);
    let mut sum = term;
    let nf = n as f64;
    let mut i = k;
    while i > 0 && term > 0.0 {
        // pmf(i − 1) = pmf(i) · i / (n − i + 1); the ratio shrinks as i falls, so the rest of
        // the tail is below term · r / (1 − r)
        let r = i as f64 / (nf - i as f64 + 1.0);
        term *= r;
        sum += term;
        i -= 1;
        if term * r / (1.0 - r) < sum * 1e-18 {
            break;
        }
    }
    sum
}

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// `P(X = x)` for `X ~ Binomial(n, 1/2)`, by Loader (2000), "Fast and accurate computation of
/// binomial probabilities": `exp(−stirlerr terms − bd0 terms) / sqrt(2π x (n − x) / n)`.
fn binomial_half_pmf(x: u64, n: u64) -> f64 {
    if x == 0 || x == n {
        // 2^-n exactly (0.5^n by repeated squaring is exact; below 2^-1074 it is 0)
        return if n > 1100 { 0.0 } else { 0.5f64.powi(n as i32) };
    }
    let (xf, nf) = (x as f64, n as f64);
    let half = nf * 0.5;
    let lc = stirlerr(nf) - stirlerr(xf) - stirlerr(nf - xf) - bd0(xf, half) - bd0(nf - xf, half);
    let lf = LN_2PI + xf.ln() + (-xf / nf).ln_1p();
    (lc - 0.5 * lf).exp()
}

/// `ln(m!) − ((m + ½) ln m − m + ½ ln 2π)`, the error of Stirling's formula, for an integer `m ≥ 1`.
fn stirlerr(m: f64) -> f64 {
    if m <= 15.0 {
        // m! is exact in f64 up to 22!
        let mut factorial = 1.0f64;
        let mut j = 2.0;
        while j <= m {
            factorial *= j;
            j += 1.0;
        }
        return factorial.ln() - (m + 0.5) * m.ln() + m - 0.5 * LN_2PI;
    }
    const S0: f64 = 1.0 / 12.0;
    const S1: f64 = 1.0 / 360.0;
    const S2: f64 = 1.0 / 1260.0;
    const S3: f64 = 1.0 / 1680.0;
    const S4: f64 = 1.0 / 1188.0;
    let nn = m * m;
    if m > 500.0 {
        (S0 - S1 / nn) / m
    } else if m > 80.0 {
        (S0 - (S1 - S2 / nn) / nn) / m
    } else if m > 35.0 {
        (S0 - (S1 - (S2 - S3 / nn) / nn) / nn) / m
    } else {
        (S0 - (S1 - (S2 - (S3 - S4 / nn) / nn) / nn) / nn) / m
    }
}

/// `x ln(x / np) + np − x`, without cancellation when `x ≈ np` (Loader's `bd0`).
fn bd0(x: f64, np: f64) -> f64 {
    if (x - np).abs() < 0.1 * (x + np) {
        let mut v = (x - np) / (x + np);
        let mut s = (x - np) * v;
        if s.abs() < f64::MIN_POSITIVE {
            return s;
        }
        let mut ej = 2.0 * x * v;
        v *= v;
        for j in 1..1000 {
            ej *= v;
            let s1 = s + ej / (2 * j + 1) as f64;
            if s1 == s {
                return s1;
            }
            s = s1;
        }
        return s;
    }
    x * (x / np).ln() + np - x
}

// --------------------------------------------------------------------------------------------
// Fréchet distance
// --------------------------------------------------------------------------------------------

/// The float64 mean and unbiased covariance of a feature set, kept in a factored form so that a
/// reference set's statistics are computed once and reused for many [`frechet_distance`]s.
///
/// The covariance is stored as a factor `F` with `Σ = F Fᵀ`: for `rows ≤ dim` the centred data
/// itself (`Xᵀ / sqrt(rows − 1)`, `dim × rows`; rank-deficient covariances cost nothing extra),
/// otherwise the Cholesky factor of `Σ` (or `V·diag(sqrt(max(λ, 0)))` from its symmetric
/// eigendecomposition when `Σ` is singular).
///
/// [`FeatureStats::frechet_distance`] computes `tr((Σa Σb)^½)` as the sum of the singular values
/// of `Fbᵀ Fa`: they are the square roots of the eigenvalues of `Faᵀ Σb Fa`, which has the
/// non-zero eigenvalues of `Σa^½ Σb Σa^½` (and of `Σa Σb`). The SVD of the factor product avoids
/// the `sqrt(ε)` noise that clipping tiny negative eigenvalues of a squared matrix leaves, and for
/// a few hundred samples of dimension 1280 it is a few-hundred-square problem: 300 × 1280 against
/// 250 × 1280 takes about 40 ms. With more rows than dimensions each set costs a `dim × dim`
/// covariance and Cholesky factorisation, and each pair a `dim × dim` SVD (2,000 × 1280 against
/// 2,000 × 1280: about 2.5 s on one core, the SVD taking most of it).
///
/// ```
/// use vpr_eval::FeatureStats;
/// // two points per set in 2-D
/// let a = FeatureStats::new(&[0.0, 0.0, 2.0, 0.0], 2, 2)?;
/// assert_eq!(a.mean(), &[1.0, 0.0]);
/// assert_eq!(a.covariance(), vec![2.0, 0.0, 0.0, 0.0]); // ddof = 1
/// assert!(a.frechet_distance(&a)?.abs() < 1e-12);
/// # Ok::<(), vpr_eval::EvalError>(())
/// ```
#[derive(Debug, Clone)]
pub struct FeatureStats {
    rows: usize,
    dim: usize,
    mean: Vec<f64>,
    trace: f64,
    factor: DMatrix<f64>,
}

impl FeatureStats {
    /// Statistics of `data`, a row-major `rows × dim` matrix of f32 features (one row per image).
    ///
    /// Errors: `dim == 0`, `data.len() != rows × dim`, fewer than 2 rows (the unbiased covariance
    /// is undefined), a NaN or infinite value.
    ///
    /// ```
    /// use vpr_eval::{EvalError, FeatureStats};
    /// let s = FeatureStats::new(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3, 2)?;
    /// assert_eq!((s.rows(), s.dim()), (3, 2));
    /// assert!(matches!(FeatureStats::new(&[1.0, 2.0], 1, 2), Err(EvalError::InvalidArgument { .. })));
    /// # Ok::<(), vpr_eval::EvalError>(())
    /// ```
    pub fn new(data: &[f32], rows: usize, dim: usize) -> Result<Self> {
        if dim == 0 {
            return Err(EvalError::InvalidArgument {
                name: "feature dimension",
                reason: "the feature set has dimension 0".into(),
            });
        }
        if data.len() != rows.saturating_mul(dim) {
            return Err(EvalError::SizeMismatch {
                what: format!("features: number of values for {rows} rows of dimension {dim}"),
                expected: rows.saturating_mul(dim),
                got: data.len(),
                path: None,
            });
        }
        if rows < 2 {
            return Err(EvalError::InvalidArgument {
                name: "feature set",
                reason: format!(
                    "{rows} row(s): the unbiased covariance needs at least 2 feature vectors"
                ),
            });
        }
        if let Some(i) = data.iter().position(|x| !x.is_finite()) {
            return Err(EvalError::NonFinite {
                what: "features".into(),
                row: i / dim,
                col: i % dim,
                value: data[i] as f64,
                path: None,
            });
        }
        let mut mean = vec![0.0f64; dim];
        for row in data.chunks_exact(dim) {
            for (m, &x) in mean.iter_mut().zip(row) {
                *m += x as f64;
            }
        }
        for m in mean.iter_mut() {
            *m /= rows as f64;
        }
        let denominator = (rows - 1) as f64;
        // the centred rows `start..end`, transposed: column i is a row minus the mean
        let centred = |start: usize, end: usize| {
            DMatrix::from_fn(dim, end - start, |j, i| {
                data[(start + i) * dim + j] as f64 - mean[j]
            })
        };
        let (trace, factor) = if rows <= dim {
            let x = centred(0, rows);
            let trace = x.iter().map(|v| v * v).sum::<f64>() / denominator;
            (trace, x / denominator.sqrt())
        } else {
            // Σ accumulated over blocks of rows, so that many rows never need a second copy
            let mut cov = DMatrix::<f64>::zeros(dim, dim);
            let block = COV_BLOCK_ROWS.max(dim);
            for start in (0..rows).step_by(block) {
                let x = centred(start, (start + block).min(rows));
                cov.gemm(1.0 / denominator, &x, &x.transpose(), 1.0);
            }
            // symmetric to the last bit (the product's two triangles may round differently)
            for j in 0..dim {
                for i in j + 1..dim {
                    let v = 0.5 * (cov[(i, j)] + cov[(j, i)]);
                    cov[(i, j)] = v;
                    cov[(j, i)] = v;
                }
            }
            (cov.trace(), covariance_factor(cov)?)
        };
        Ok(Self {
            rows,
            dim,
            mean,
            trace,
            factor,
        })
    }

    /// Statistics of a descriptor matrix (already checked to be finite).
    ///
    /// ```
    /// use vpr_eval::{Descriptors, FeatureStats};
    /// let d = Descriptors::new(vec![0.0, 1.0, 2.0, 3.0], 2, 2)?;
    /// assert_eq!(FeatureStats::from_descriptors(&d)?.mean(), &[1.0, 2.0]);
    /// # Ok::<(), vpr_eval::EvalError>(())
    /// ```
    pub fn from_descriptors(descriptors: &Descriptors) -> Result<Self> {
        Self::new(
            descriptors.as_slice(),
            descriptors.rows(),
            descriptors.dim(),
        )
    }

    /// Number of feature vectors.
    ///
    /// ```
    /// # use vpr_eval::FeatureStats;
    /// assert_eq!(FeatureStats::new(&[0.0, 1.0, 2.0], 3, 1)?.rows(), 3);
    /// # Ok::<(), vpr_eval::EvalError>(())
    /// ```
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Feature dimension.
    ///
    /// ```
    /// # use vpr_eval::FeatureStats;
    /// assert_eq!(FeatureStats::new(&[0.0, 1.0, 2.0], 3, 1)?.dim(), 1);
    /// # Ok::<(), vpr_eval::EvalError>(())
    /// ```
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The mean feature (float64).
    ///
    /// ```
    /// # use vpr_eval::FeatureStats;
    /// assert_eq!(FeatureStats::new(&[0.0, 1.0, 2.0], 3, 1)?.mean(), &[1.0]);
    /// # Ok::<(), vpr_eval::EvalError>(())
    /// ```
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// `tr Σ`, the sum of the unbiased per-dimension variances.
    ///
    /// ```
    /// # use vpr_eval::FeatureStats;
    /// assert_eq!(FeatureStats::new(&[0.0, 1.0, 2.0], 3, 1)?.trace(), 1.0);
    /// # Ok::<(), vpr_eval::EvalError>(())
    /// ```
    pub fn trace(&self) -> f64 {
        self.trace
    }

    /// The unbiased covariance `Σ` (`dim × dim`, row-major), rebuilt from the stored factor.
    ///
    /// ```
    /// # use vpr_eval::FeatureStats;
    /// let s = FeatureStats::new(&[0.0, 0.0, 1.0, 2.0, 2.0, 4.0], 3, 2)?;
    /// let c = s.covariance();
    /// assert!((c[0] - 1.0).abs() < 1e-12 && (c[1] - 2.0).abs() < 1e-12 && (c[3] - 4.0).abs() < 1e-12);
    /// # Ok::<(), vpr_eval::EvalError>(())
    /// ```
    pub fn covariance(&self) -> Vec<f64> {
        let cov = &self.factor * self.factor.transpose();
        // symmetric, so the column-major storage is also the row-major matrix; transpose anyway
        cov.transpose().as_slice().to_vec()
    }

    /// The Fréchet distance to `other`:
    /// `|μa − μb|² + tr Σa + tr Σb − 2 tr((Σa Σb)^½)` (see the type docs for how the trace of the
    /// square root is computed). Rounding can make the distance of (nearly) identical sets
    /// slightly negative; it is clamped to 0.
    ///
    /// Errors: different dimensions.
    ///
    /// ```
    /// use vpr_eval::FeatureStats;
    /// // 1-D: d = (μa − μb)² + (σa − σb)²
    /// let a = FeatureStats::new(&[0.0, 2.0], 2, 1)?; // μ 1, σ² 2
    /// let b = FeatureStats::new(&[3.0, 7.0], 2, 1)?; // μ 5, σ² 8
    /// let d = a.frechet_distance(&b)?;
    /// assert!((d - (16.0 + (2f64.sqrt() - 8f64.sqrt()).powi(2))).abs() < 1e-12);
    /// # Ok::<(), vpr_eval::EvalError>(())
    /// ```
    pub fn frechet_distance(&self, other: &FeatureStats) -> Result<f64> {
        check_same_dim(self.dim, other.dim)?;
        let mean_term: f64 = self
            .mean
            .iter()
            .zip(&other.mean)
            .map(|(a, b)| (a - b) * (a - b))
            .sum();
        let cross = other.factor.transpose() * &self.factor;
        let svd =
            SVD::try_new(cross, false, false, f64::EPSILON, 0).ok_or(EvalError::NoConvergence {
                what: "SVD of the Fréchet cross-covariance factor",
            })?;
        let trace_sqrt: f64 = svd.singular_values.iter().sum();
        Ok((mean_term + self.trace + other.trace - 2.0 * trace_sqrt).max(0.0))
    }
}

/// `F` with `F Fᵀ = cov` (symmetric PSD): the Cholesky factor, or, when `cov` is singular,
/// [`eigen_factor`].
fn covariance_factor(cov: DMatrix<f64>) -> Result<DMatrix<f64>> {
    match Cholesky::new(cov.clone()) {
        Some(ch) => Ok(ch.unpack()),
        None => eigen_factor(cov),
    }
}

/// `V·diag(sqrt(max(λ, 0)))` from the symmetric eigendecomposition `cov = V Λ Vᵀ`.
fn eigen_factor(cov: DMatrix<f64>) -> Result<DMatrix<f64>> {
    let eig = SymmetricEigen::try_new(cov, f64::EPSILON, 0).ok_or(EvalError::NoConvergence {
        what: "symmetric eigendecomposition of a feature covariance",
    })?;
    let mut v = eig.eigenvectors;
    for (j, &l) in eig.eigenvalues.iter().enumerate() {
        v.column_mut(j).scale_mut(l.max(0.0).sqrt());
    }
    Ok(v)
}

fn check_same_dim(a: usize, b: usize) -> Result<()> {
    if a != b {
        return Err(EvalError::SizeMismatch {
            what: "feature dimension of the second set (Fréchet distance)".into(),
            expected: a,
            got: b,
            path: None,
        });
    }
    Ok(())
}

/// The Fréchet distance between two feature sets (rows = images), as FID computes it from
/// Inception features: float64 means and unbiased covariances of each set,
/// `|μa − μb|² + tr Σa + tr Σb − 2 tr((Σa Σb)^½)`. To compare many sets with one reference,
/// build its [`FeatureStats`] once and call [`FeatureStats::frechet_distance`].
///
/// Errors: different dimensions, fewer than 2 rows in a set.
///
/// ```
/// use vpr_eval::{Descriptors, frechet_distance};
/// let a = Descriptors::new(vec![0.0, 0.0, 1.0, 1.0, 2.0, 0.0], 3, 2)?;
/// let b = Descriptors::new(vec![5.0, 0.0, 6.0, 1.0, 7.0, 0.0], 3, 2)?; // a shifted by (5, 0)
/// assert!((frechet_distance(&a, &b)? - 25.0).abs() < 1e-9);
/// # Ok::<(), vpr_eval::EvalError>(())
/// ```
pub fn frechet_distance(a: &Descriptors, b: &Descriptors) -> Result<f64> {
    check_same_dim(a.dim(), b.dim())?;
    FeatureStats::from_descriptors(a)?.frechet_distance(&FeatureStats::from_descriptors(b)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_numpy_linear() {
        // np.percentile([3, 1, 2, 10], [2.5, 50, 97.5]) = [1.075, 2.5, 9.475]
        let mut v = [3.0, 1.0, 2.0, 10.0];
        assert!((percentile_linear(&mut v, 0.025) - 1.075).abs() < 1e-12);
        assert!((percentile_linear(&mut v, 0.5) - 2.5).abs() < 1e-12);
        assert!((percentile_linear(&mut v, 0.975) - 9.475).abs() < 1e-12);
        let mut one = [4.0];
        assert_eq!(percentile_linear(&mut one, 0.975), 4.0);
    }

    #[test]
    fn below_is_in_range_and_uses_all_values() {
        let mut rng = SplitMix64::new(3);
        let n = NonZeroU64::new(7).unwrap();
        let mut seen = [0usize; 7];
        for _ in 0..7000 {
            seen[rng.below(n) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| c > 850 && c < 1150), "{seen:?}");
        // n = 2^64 − 1: the threshold is 1, only x = 0 is rejected
        let big = NonZeroU64::new(u64::MAX).unwrap();
        assert!(rng.below(big) < u64::MAX);
    }

    /// Closed forms: P(X = x) for small n from exact binomial coefficients.
    #[test]
    fn binomial_pmf_small_n_exact() {
        let mut c = 1.0f64; // C(40, x)
        for x in 0..=40u64 {
            let exact = c / 2f64.powi(40);
            let got = binomial_half_pmf(x, 40);
            assert!(
                (got - exact).abs() <= 1e-13 * exact,
                "x={x}: {got} vs {exact}"
            );
            c = c * (40 - x) as f64 / (x + 1) as f64;
        }
        // the CDF at the centre of an odd n is exactly 1/2
        assert!((binomial_half_cdf(50, 101) - 0.5).abs() < 1e-13);
        assert!((binomial_half_cdf(50_000, 100_001) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn cholesky_and_eigen_factors_reproduce_the_covariance() {
        let cov = DMatrix::from_row_slice(3, 3, &[4.0, 2.0, 0.5, 2.0, 3.0, 0.25, 0.5, 0.25, 1.0]);
        for f in [
            covariance_factor(cov.clone()).unwrap(),
            eigen_factor(cov.clone()).unwrap(),
        ] {
            assert!((&f * f.transpose() - &cov).amax() < 1e-14);
        }
        // singular: a zero row and column, the Cholesky fails, the eigen factor has rank 2
        let singular =
            DMatrix::from_row_slice(3, 3, &[4.0, 0.0, 2.0, 0.0, 0.0, 0.0, 2.0, 0.0, 3.0]);
        assert!(Cholesky::new(singular.clone()).is_none());
        let f = covariance_factor(singular.clone()).unwrap();
        assert!((&f * f.transpose() - &singular).amax() < 1e-14);
    }

    #[test]
    fn levels_count_hits_like_recall() {
        let ranks = [Some(0), Some(4), Some(5), None, Some(19), Some(20)];
        let ns = [20, 1, 5, 5];
        let levels = Levels::new(&ns);
        let hits = point_hits(&levels, &levels.of(&ranks));
        assert_eq!(hits, vec![4, 1, 2, 2]);
    }
}
