//! Bootstrap intervals, McNemar and the Fréchet distance against the numpy / scipy reference of
//! `scripts/stats_reference.py` (fixture `tests/fixtures/stats/`), closed forms and properties.

mod common;

use std::time::Instant;

use serde_json::Value;
use vpr_eval::{
    Bootstrap, Descriptors, EvalError, FeatureStats, FirstHits, PairedComparison, RecallCi,
    SplitMix64, bootstrap_map, bootstrap_recall, frechet_distance, mcnemar_exact, paired_bootstrap,
    paired_map,
};

/// Absolute tolerance (percentage points) between the Rust and the numpy bootstrap intervals. Both
/// draw the same indices, count the same integers and divide the same way; only numpy's
/// percentile computes its virtual index as `n·q + (1 − q) − 1` instead of `(n − 1)·q`, which moves
/// an interpolated value by ~1e-14 at most.
const BOOTSTRAP_TOL: f64 = 1e-12;

/// Relative tolerance of the McNemar p-values against scipy's `binomtest` (boost's incomplete beta
/// in scipy 1.10, accurate to ~1e-14; ours: Loader's saddle point plus ~2 ulp per summed term).
const MCNEMAR_RTOL: f64 = 1e-10;

/// Relative tolerance of the Fréchet distance against the FID reference (`scipy.linalg.sqrtm` of
/// `Σa Σb`). On the rank-deficient cases sqrtm of a singular matrix is only accurate to about
/// `sqrt(ε)·‖Σ‖` per lost eigenvalue: its value differs from the SVD-based one by 2e-8 relative.
const FRECHET_SCIPY_RTOL: f64 = 1e-6;

/// Relative tolerance against the numpy SVD value of the same formula (nuclear norm of
/// `Xb Xaᵀ / sqrt((na − 1)(nb − 1))`): both are backward-stable SVDs, differing in rounding only.
const FRECHET_SVD_RTOL: f64 = 1e-10;

/// `|d(a, a)|` relative to `tr Σa`: an exact zero up to the rounding of one SVD.
const SELF_DISTANCE_RTOL: f64 = 1e-9;

fn reference() -> Value {
    common::json_fixture("stats/reference.json")
}

fn ranks(v: &Value) -> Vec<Option<usize>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().map(|r| r as usize))
        .collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{what}[{i}]: {g} vs {w}");
    }
}

fn rel_close(got: f64, want: f64, rtol: f64, what: &str) {
    assert!(
        (got - want).abs() <= rtol * want.abs(),
        "{what}: {got} vs {want} (rel {:e})",
        ((got - want) / want).abs()
    );
}

#[test]
fn generator_matches_reference_values() {
    let r = reference();
    let mut rng = SplitMix64::new(0);
    for want in r["splitmix64_seed0_first"].as_array().unwrap() {
        assert_eq!(rng.next_u64(), want.as_u64().unwrap());
    }
}

#[test]
fn recall_intervals_equal_numpy_reference() {
    let r = reference();
    let cases = r["recall"].as_array().unwrap();
    assert!(cases.len() >= 4);
    for (c, case) in cases.iter().enumerate() {
        let ranks = ranks(&case["ranks"]);
        let ns = usizes(&case["n"]);
        let b = Bootstrap::new(
            case["resamples"].as_u64().unwrap() as usize,
            case["seed"].as_u64().unwrap(),
        );
        let ci = bootstrap_recall(&ranks, &ns, &b).unwrap();
        assert_close(
            &ci.values,
            &floats(&case["values"]),
            BOOTSTRAP_TOL,
            &format!("case {c} values"),
        );
        assert_close(
            &ci.lower,
            &floats(&case["lower"]),
            BOOTSTRAP_TOL,
            &format!("case {c} lower"),
        );
        assert_close(
            &ci.upper,
            &floats(&case["upper"]),
            BOOTSTRAP_TOL,
            &format!("case {c} upper"),
        );
        assert_eq!(
            (ci.n_queries, ci.resamples, ci.seed),
            (ranks.len(), b.resamples, b.seed)
        );
        // the same through FirstHits, and equal to the plain Recall@N
        let hits = FirstHits { ranks, depth: 30 };
        assert_eq!(hits.recall_ci(&ns, &b).unwrap(), ci);
        assert_eq!(hits.recall(&ns, None).unwrap().values, ci.values);
    }
}

#[test]
fn paired_comparison_equals_numpy_and_scipy_reference() {
    let r = reference();
    for (c, case) in r["paired"].as_array().unwrap().iter().enumerate() {
        let a = ranks(&case["ranks_a"]);
        let b = ranks(&case["ranks_b"]);
        let ns = usizes(&case["n"]);
        let boot = Bootstrap::new(
            case["resamples"].as_u64().unwrap() as usize,
            case["seed"].as_u64().unwrap(),
        );
        let cmp = paired_bootstrap(&a, &b, &ns, &boot).unwrap();
        let what = |x: &str| format!("paired case {c} {x}");
        assert_close(
            &cmp.recall_a,
            &floats(&case["recall_a"]),
            BOOTSTRAP_TOL,
            &what("recall_a"),
        );
        assert_close(
            &cmp.recall_b,
            &floats(&case["recall_b"]),
            BOOTSTRAP_TOL,
            &what("recall_b"),
        );
        assert_close(
            &cmp.diff,
            &floats(&case["diff"]),
            BOOTSTRAP_TOL,
            &what("diff"),
        );
        assert_close(
            &cmp.lower,
            &floats(&case["lower"]),
            BOOTSTRAP_TOL,
            &what("lower"),
        );
        assert_close(
            &cmp.upper,
            &floats(&case["upper"]),
            BOOTSTRAP_TOL,
            &what("upper"),
        );
        let m = &case["mcnemar"];
        assert_eq!(cmp.mcnemar.b, m["b"].as_u64().unwrap());
        assert_eq!(cmp.mcnemar.c, m["c"].as_u64().unwrap());
        rel_close(
            cmp.mcnemar.p_value,
            m["p_value"].as_f64().unwrap(),
            MCNEMAR_RTOL,
            &what("p"),
        );
        // FirstHits::compare is the same thing
        let fa = FirstHits {
            ranks: a,
            depth: 30,
        };
        let fb = FirstHits {
            ranks: b,
            depth: 30,
        };
        assert_eq!(fa.compare(&fb, &ns, &boot).unwrap(), cmp);
    }
}

#[test]
fn mcnemar_equals_scipy_binomtest() {
    let r = reference();
    let cases = r["mcnemar"].as_array().unwrap();
    for case in cases {
        let (b, c) = (case["b"].as_u64().unwrap(), case["c"].as_u64().unwrap());
        let want = case["p_value"].as_f64().unwrap();
        let got = mcnemar_exact(b, c);
        assert_eq!((got.b, got.c), (b, c));
        rel_close(
            got.p_value,
            want,
            MCNEMAR_RTOL,
            &format!("McNemar ({b}, {c})"),
        );
    }
    // the hand-chosen pairs of the brief are all there, with n up to 120,000
    for pair in [
        (0, 0),
        (0, 5),
        (3, 17),
        (500, 560),
        (20000, 20400),
        (60000, 60000),
    ] {
        assert!(
            cases
                .iter()
                .any(|c| (c["b"].as_u64().unwrap(), c["c"].as_u64().unwrap()) == pair),
            "{pair:?} missing from the fixture"
        );
    }
}

#[test]
fn mcnemar_closed_forms_and_extremes() {
    // p = 2 · sum_{i ≤ k} C(n, i) / 2^n
    assert_eq!(mcnemar_exact(0, 1).p_value, 1.0);
    rel_close(
        mcnemar_exact(1, 9).p_value,
        2.0 * 11.0 / 1024.0,
        1e-14,
        "(1, 9)",
    );
    assert_eq!(mcnemar_exact(9, 1).p_value, mcnemar_exact(1, 9).p_value);
    // symmetric in b and c, monotone in the imbalance, no NaN or overflow for huge n
    for n in [1_000u64, 100_000, 1_000_000, 10_000_000] {
        let mut last = 1.0;
        for k in [n / 2, n / 2 - n / 100, n / 2 - n / 20, n / 4, 0] {
            let p = mcnemar_exact(k, n - k).p_value;
            assert_eq!(p, mcnemar_exact(n - k, k).p_value);
            assert!(
                p.is_finite() && (0.0..=1.0).contains(&p),
                "n={n} k={k}: {p}"
            );
            assert!(p <= last, "n={n} k={k}: {p} > {last}");
            last = p;
        }
    }
    // 2 · 2^-n, exact down to the subnormals, then 0
    assert_eq!(mcnemar_exact(0, 1000).p_value, 0.5f64.powi(999));
    assert_eq!(mcnemar_exact(0, 1074).p_value, 0.5f64.powi(1073));
    assert_eq!(mcnemar_exact(0, 100_000).p_value, 0.0);
}

fn splitmix_features(seed: u64, rows: usize, dim: usize, variant: &str) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    let u: Vec<f64> = (0..rows * dim)
        .map(|_| (rng.next_u64() >> 44) as f64 / (1u64 << 20) as f64 - 0.5)
        .collect();
    let mut x = Vec::with_capacity(rows * dim);
    for i in 0..rows {
        for j in 0..dim {
            let v = match variant {
                "a" => u[i * dim + j] * (1u32 << (j % 3)) as f64,
                _ => u[i * dim + j] + 0.5 * u[i * dim + (j + 1) % dim] + 0.25,
            };
            assert_eq!(v as f32 as f64, v, "not exact in f32");
            x.push(v as f32);
        }
    }
    x
}

/// The same features with `extra` zero columns appended: the distance is unchanged, and with
/// enough columns the factor switches from the covariance (Cholesky / eigen) to the centred data.
fn pad(d: &Descriptors, extra: usize) -> Descriptors {
    let dim = d.dim() + extra;
    let mut v = Vec::with_capacity(d.rows() * dim);
    for i in 0..d.rows() {
        v.extend_from_slice(d.row(i));
        v.extend(std::iter::repeat_n(0.0, extra));
    }
    Descriptors::new(v, d.rows(), dim).unwrap()
}

#[test]
fn frechet_equals_scipy_reference() {
    let r = reference();
    let cases = r["frechet"].as_array().unwrap();
    for case in cases.iter().filter(|c| c.get("a").is_some()) {
        let name = case["name"].as_str().unwrap();
        let load = |k: &str| {
            Descriptors::read_npy(common::fixture(&format!(
                "stats/{}",
                case[k].as_str().unwrap()
            )))
            .unwrap()
        };
        let (a, b) = (load("a"), load("b"));
        let d = frechet_distance(&a, &b).unwrap();
        rel_close(
            d,
            case["d_scipy"].as_f64().unwrap(),
            FRECHET_SCIPY_RTOL,
            name,
        );
        rel_close(d, case["d_svd"].as_f64().unwrap(), FRECHET_SVD_RTOL, name);
        // symmetric, and reusable statistics give the same value
        let (sa, sb) = (
            FeatureStats::from_descriptors(&a).unwrap(),
            FeatureStats::from_descriptors(&b).unwrap(),
        );
        rel_close(sb.frechet_distance(&sa).unwrap(), d, FRECHET_SVD_RTOL, name);
        assert_eq!(sa.frechet_distance(&sb).unwrap(), d);
        // a set against itself: 0
        let trace = case["trace_a"].as_f64().unwrap();
        rel_close(sa.trace(), trace, 1e-12, name);
        let self_d = sa.frechet_distance(&sa).unwrap();
        assert!(
            self_d.abs() < SELF_DISTANCE_RTOL * trace,
            "{name}: d(a, a) = {self_d}"
        );
        // padding with zero columns does not change the distance (switches the factorisation
        // for the 300 × 64 case: Cholesky of Σ -> centred data)
        let extra = a.rows().max(b.rows());
        let dp = frechet_distance(&pad(&a, extra), &pad(&b, extra)).unwrap();
        rel_close(dp, d, FRECHET_SVD_RTOL, name);
    }
}

#[test]
fn frechet_1280_dims_few_hundred_rows_equals_scipy_and_is_fast() {
    let r = reference();
    let case = r["frechet"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "splitmix_1280")
        .unwrap();
    let spec = &case["splitmix"];
    let dim = spec["dim"].as_u64().unwrap() as usize;
    let set = |k: &str| {
        let s = &spec[k];
        let rows = s["rows"].as_u64().unwrap() as usize;
        let x = splitmix_features(
            s["seed"].as_u64().unwrap(),
            rows,
            dim,
            s["variant"].as_str().unwrap(),
        );
        Descriptors::new(x, rows, dim).unwrap()
    };
    let (a, b) = (set("a"), set("b"));
    let start = Instant::now();
    let d = frechet_distance(&a, &b).unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    rel_close(
        d,
        case["d_scipy"].as_f64().unwrap(),
        FRECHET_SCIPY_RTOL,
        "1280",
    );
    rel_close(d, case["d_svd"].as_f64().unwrap(), FRECHET_SVD_RTOL, "1280");
    let sa = FeatureStats::from_descriptors(&a).unwrap();
    let self_d = sa.frechet_distance(&sa).unwrap();
    assert!(self_d.abs() < SELF_DISTANCE_RTOL * case["trace_a"].as_f64().unwrap());
    println!("Fréchet distance 300 × 1280 vs 250 × 1280: {elapsed:.3} s");
    // generous: the test profile and a busy machine; it takes a fraction of a second
    assert!(elapsed < 10.0, "{elapsed} s");
}

/// Eigendecomposition path: clipping eigenvalues at rounding level (±ε‖Σ‖) leaves up to
/// `sqrt(ε)` relative noise in the trace of the square root.
const SINGULAR_RTOL: f64 = 1e-7;

#[test]
fn frechet_singular_covariance_with_more_rows_than_dims() {
    // 40 rows, 6 dims, column 5 constant: Σ has an exactly zero row and column, the Cholesky fails
    // and the eigendecomposition path is taken; padding with zero columns switches to the data
    // factor, which the distance must not notice
    let mut rng = SplitMix64::new(5);
    let mut make = |shift: f32| {
        let mut v = Vec::new();
        for _ in 0..40 {
            for j in 0..5 {
                let u = (rng.next_u64() >> 44) as f32 / (1u64 << 20) as f32 - 0.5;
                v.push(u * (j + 1) as f32 + shift);
            }
            v.push(1.0);
        }
        Descriptors::new(v, 40, 6).unwrap()
    };
    let (a, b) = (make(0.0), make(0.25));
    let d = frechet_distance(&a, &b).unwrap();
    let dp = frechet_distance(&pad(&a, 40), &pad(&b, 40)).unwrap();
    rel_close(d, dp, SINGULAR_RTOL, "singular covariance");
    let sa = FeatureStats::from_descriptors(&a).unwrap();
    assert!(sa.covariance()[5 * 6 + 5].abs() < 1e-12);
    assert!(sa.frechet_distance(&sa).unwrap() < SELF_DISTANCE_RTOL * sa.trace());
}

#[test]
fn intervals_contain_the_point_estimate() {
    let r = reference();
    for case in r["recall"].as_array().unwrap() {
        let ranks = ranks(&case["ranks"]);
        for seed in [0, 1, 2] {
            let ci = bootstrap_recall(&ranks, &[1, 5, 10, 20], &Bootstrap::new(500, seed)).unwrap();
            for i in 0..4 {
                assert!(
                    ci.lower[i] <= ci.values[i] && ci.values[i] <= ci.upper[i],
                    "{ci:?}"
                );
            }
        }
    }
    for case in r["paired"].as_array().unwrap() {
        let cmp = paired_bootstrap(
            &ranks(&case["ranks_a"]),
            &ranks(&case["ranks_b"]),
            &[1, 5, 10, 20],
            &Bootstrap::default(),
        )
        .unwrap();
        for i in 0..4 {
            assert!(
                cmp.lower[i] <= cmp.diff[i] && cmp.diff[i] <= cmp.upper[i],
                "{cmp:?}"
            );
        }
    }
}

#[test]
fn interval_width_matches_the_binomial_standard_error() {
    // p = 0.5, n = 200: the 95 % normal interval is 2 · 1.96 · sqrt(p (1 − p) / n) · 100 = 13.86
    let ranks: Vec<Option<usize>> = (0..200).map(|i| (i % 2 == 0).then_some(0)).collect();
    let expected = 2.0 * 1.96 * (0.25f64 / 200.0).sqrt() * 100.0;
    for seed in [0, 1, 2, 3] {
        let ci = bootstrap_recall(&ranks, &[1], &Bootstrap::new(2000, seed)).unwrap();
        let width = ci.upper[0] - ci.lower[0];
        assert!(
            (width / expected - 1.0).abs() < 0.15,
            "seed {seed}: width {width} vs {expected}"
        );
    }
}

#[test]
fn deterministic_for_a_seed() {
    let ranks: Vec<Option<usize>> = (0..300).map(|i| (i % 3 != 0).then_some(i % 7)).collect();
    let b = Bootstrap::new(1000, 77);
    let x = bootstrap_recall(&ranks, &[1, 5], &b).unwrap();
    assert_eq!(x, bootstrap_recall(&ranks, &[1, 5], &b).unwrap());
    let y = bootstrap_recall(&ranks, &[1, 5], &Bootstrap::new(1000, 78)).unwrap();
    assert_eq!(x.values, y.values);
    assert_ne!((x.lower, x.upper), (y.lower, y.upper));
}

#[test]
fn results_round_trip_through_json() {
    let a = [Some(0), None, Some(3), Some(0)];
    let b = [Some(1), Some(0), Some(0), Some(0)];
    let ci = bootstrap_recall(&a, &[1, 5], &Bootstrap::new(100, 1)).unwrap();
    let back: RecallCi = serde_json::from_str(&serde_json::to_string(&ci).unwrap()).unwrap();
    assert_eq!(back, ci);
    let cmp = paired_bootstrap(&a, &b, &[1, 5], &Bootstrap::new(100, 1)).unwrap();
    let back: PairedComparison =
        serde_json::from_str(&serde_json::to_string(&cmp).unwrap()).unwrap();
    assert_eq!(back, cmp);
    assert_eq!(ci.to_line().matches("R@").count(), 2);
}

#[test]
fn bootstrap_errors_are_typed() {
    let a = [Some(0), None];
    let b = Bootstrap::default();
    // different query counts
    assert!(matches!(
        paired_bootstrap(&a, &[Some(0)], &[1], &b),
        Err(EvalError::SizeMismatch {
            expected: 2,
            got: 1,
            ..
        })
    ));
    // zero queries
    assert!(matches!(
        bootstrap_recall(&[], &[1], &b),
        Err(EvalError::Empty { .. })
    ));
    assert!(matches!(
        paired_bootstrap(&[], &[], &[1], &b),
        Err(EvalError::Empty { .. })
    ));
    // resamples = 0
    for res in [
        bootstrap_recall(&a, &[1], &Bootstrap::new(0, 0)).map(|_| ()),
        paired_bootstrap(&a, &a, &[1], &Bootstrap::new(0, 0)).map(|_| ()),
    ] {
        assert!(matches!(
            res,
            Err(EvalError::InvalidArgument {
                name: "resamples",
                ..
            })
        ));
    }
    // an N of 0, or no N
    for ns in [&[1, 0][..], &[]] {
        assert!(matches!(
            bootstrap_recall(&a, ns, &b),
            Err(EvalError::InvalidArgument { name: "N list", .. })
        ));
        assert!(matches!(
            paired_bootstrap(&a, &a, ns, &b),
            Err(EvalError::InvalidArgument { name: "N list", .. })
        ));
    }
    // one resample and one query are valid
    let one = bootstrap_recall(&[Some(0)], &[1], &Bootstrap::new(1, 0)).unwrap();
    assert_eq!((one.lower[0], one.upper[0]), (100.0, 100.0));
}

#[test]
fn frechet_errors_are_typed() {
    let two = Descriptors::new(vec![0.0, 1.0, 2.0, 3.0], 2, 2).unwrap();
    let one = Descriptors::new(vec![0.0, 1.0], 1, 2).unwrap();
    let other_dim = Descriptors::new(vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0], 2, 3).unwrap();
    // fewer than 2 rows
    assert!(matches!(
        frechet_distance(&one, &two),
        Err(EvalError::InvalidArgument {
            name: "feature set",
            ..
        })
    ));
    assert!(matches!(
        FeatureStats::new(&[], 0, 4),
        Err(EvalError::InvalidArgument {
            name: "feature set",
            ..
        })
    ));
    // different dimensions
    assert!(matches!(
        frechet_distance(&two, &other_dim),
        Err(EvalError::SizeMismatch {
            expected: 2,
            got: 3,
            ..
        })
    ));
    let (s2, s3) = (
        FeatureStats::from_descriptors(&two).unwrap(),
        FeatureStats::from_descriptors(&other_dim).unwrap(),
    );
    assert!(matches!(
        s2.frechet_distance(&s3),
        Err(EvalError::SizeMismatch { .. })
    ));
    // zero dimension
    assert!(matches!(
        FeatureStats::new(&[], 3, 0),
        Err(EvalError::InvalidArgument {
            name: "feature dimension",
            ..
        })
    ));
    // non-finite values
    assert!(matches!(
        FeatureStats::new(&[0.0, 1.0, f32::NAN, 3.0], 2, 2),
        Err(EvalError::NonFinite { row: 1, col: 0, .. })
    ));
    assert!(matches!(
        FeatureStats::new(&[0.0, f32::INFINITY, 2.0, 3.0], 2, 2),
        Err(EvalError::NonFinite { row: 0, col: 1, .. })
    ));
    // a length that is not rows × dim
    assert!(matches!(
        FeatureStats::new(&[0.0; 5], 2, 2),
        Err(EvalError::SizeMismatch {
            expected: 4,
            got: 5,
            ..
        })
    ));
}

fn aps(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect()
}

/// The mAP bootstrap draws the same indices as numpy's reference; only the order of the sums
/// differs (numpy sums pairwise).
const MAP_TOL: f64 = 1e-9;

#[test]
fn map_intervals_equal_numpy_reference() {
    let r = common::json_fixture("stats/map_reference.json");
    let cases = r["single"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for (c, case) in cases.iter().enumerate() {
        let b = Bootstrap::new(
            case["resamples"].as_u64().unwrap() as usize,
            case["seed"].as_u64().unwrap(),
        );
        let ci = bootstrap_map(&aps(&case["aps"]), &b).unwrap();
        for (got, key) in [(ci.map, "map"), (ci.lower, "lower"), (ci.upper, "upper")] {
            let want = case[key].as_f64().unwrap();
            assert!(
                (got - want).abs() < MAP_TOL,
                "case {c} {key}: {got} vs {want}"
            );
        }
        assert_eq!(ci.n_queries as u64, case["n_queries"].as_u64().unwrap());
        assert!(ci.lower <= ci.map && ci.map <= ci.upper);
    }
}

#[test]
fn paired_map_equals_numpy_reference_and_the_exact_sign_flip_test() {
    let r = common::json_fixture("stats/map_reference.json");
    let cases = r["paired"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for (c, case) in cases.iter().enumerate() {
        let b = Bootstrap::new(
            case["resamples"].as_u64().unwrap() as usize,
            case["seed"].as_u64().unwrap(),
        );
        let cmp = paired_map(&aps(&case["aps_a"]), &aps(&case["aps_b"]), &b).unwrap();
        for (got, key) in [
            (cmp.map_a, "map_a"),
            (cmp.map_b, "map_b"),
            (cmp.diff, "diff"),
            (cmp.lower, "lower"),
            (cmp.upper, "upper"),
        ] {
            let want = case[key].as_f64().unwrap();
            assert!(
                (got - want).abs() < MAP_TOL,
                "case {c} {key}: {got} vs {want}"
            );
        }
        // the same sign vectors: the same count, so the same p-value to the last bit
        assert_eq!(cmp.p_value, case["p_value"].as_f64().unwrap(), "case {c}");
        // with 20,000 draws the Monte Carlo p lies within 4 standard errors of the exact one
        if let Some(exact) = case["p_exact"].as_f64() {
            let se = (exact * (1.0 - exact) / b.resamples as f64).sqrt();
            assert!(
                (cmp.p_value - exact).abs() < 4.0 * se + 1e-4,
                "{} vs {exact}",
                cmp.p_value
            );
        }
    }
}

#[test]
fn paired_map_properties_and_errors() {
    let b = Bootstrap::default();
    let a = [0.2, 0.9, f64::NAN, 0.5];
    // a method against itself: no difference, p = 1
    let same = paired_map(&a, &a, &b).unwrap();
    assert_eq!(
        (same.diff, same.lower, same.upper, same.p_value),
        (0.0, 0.0, 0.0, 1.0)
    );
    assert_eq!(same.n_queries, 3);
    // swapping the methods negates the difference and keeps the p-value
    let c = [0.4, 0.7, f64::NAN, 0.9];
    let (ab, ba) = (
        paired_map(&a, &c, &b).unwrap(),
        paired_map(&c, &a, &b).unwrap(),
    );
    assert!((ab.diff + ba.diff).abs() < 1e-12 && ab.p_value == ba.p_value);
    assert!(matches!(
        paired_map(&a, &c[..3], &b),
        Err(EvalError::SizeMismatch { .. })
    ));
    assert!(matches!(
        paired_map(&a, &[0.4, 0.7, 0.1, 0.9], &b),
        Err(EvalError::InvalidArgument { .. })
    ));
    assert!(matches!(
        bootstrap_map(&[1.5], &b),
        Err(EvalError::InvalidArgument { .. })
    ));
    assert!(matches!(
        bootstrap_map(&[f64::NAN], &b),
        Err(EvalError::Empty { .. })
    ));
    assert!(bootstrap_map(&[0.5], &Bootstrap::new(0, 0)).is_err());
}
