//! Diverse anchor mining against the numpy implementation of docs/PAPERS.md A.7
//! (`scripts/make_fixtures.py`), plus properties of the random mode and the error paths.

mod common;

use anchor_mining::{
    AnchorError, AnchorStrategy, DiverseConfig, band, diverse_anchors, diverse_anchors_with_stats,
    mean_nearest_anchor_similarity, random_anchors,
};
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn tensor(shape: &[usize], data: Vec<f32>) -> Tensor<2> {
    Tensor::from_data(
        TensorData::new(data, [shape[0], shape[1]]),
        &Device::default(),
    )
}

/// Deterministic mode picks exactly numpy's anchors, with and without the int8 screen. Exact
/// equality (no tolerance): the fixture script only keeps data whose decisive similarities are
/// separated by > 1e-5, far above f32 rounding differences (~1e-7 at D ≤ 64); the one-hot case has
/// exact ties (all similarities 0) and checks the stable-argsort tie order.
#[test]
fn deterministic_mode_matches_numpy() {
    let cases = common::json("diverse_cases.json");
    for (name, case) in cases.as_object().unwrap() {
        let (shape, data) = common::npy::<f32>(&format!("diverse_{name}_desc.npy"));
        let x = tensor(&shape, data);
        let q = case["q"].as_u64().unwrap() as usize;
        let expected: Vec<usize> = case["anchors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        for screen in [false, true] {
            let cfg = DiverseConfig {
                similar_include: case["similar_include"].as_f64().unwrap(),
                similar_exclude: case["similar_exclude"].as_f64().unwrap(),
                deterministic: true,
                screen,
                ..Default::default()
            };
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            let (got, stats) = diverse_anchors_with_stats(&x, q, &cfg, &mut rng).unwrap();
            assert_eq!(got, expected, "case {name}, screen {screen}");
            assert_eq!(stats.steps, q - 1);
            if screen && name != "onehot_ties" {
                // The screen must actually skip work on these sets once anchors accumulate.
                assert!(stats.exact_rows < stats.screened_rows, "{name}: {stats:?}");
            }
        }
    }
}

/// The band follows Python's float arithmetic: 1 − 0.8 = 0.19999999999999996.
#[test]
fn band_uses_python_float_arithmetic() {
    assert_eq!(band(10, 0.8, 0.2), (1, 8));
    assert_eq!(band(5, 0.8, 0.2), (0, 4));
    assert_eq!(band(1, 0.8, 0.2), (0, 1));
    assert_eq!(band(9999, 0.8, 0.2), (1999, 7999));
    assert_eq!(band(3, 0.0, 1.0), (0, 1));
}

/// Clustered unit descriptors: `clusters` tight groups on random directions.
fn clustered(n: usize, d: usize, clusters: usize, seed: u64) -> Tensor<2> {
    use rand::Rng;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<f32> = (0..clusters * d)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    let mut data = Vec::with_capacity(n * d);
    for i in 0..n {
        // Uneven cluster sizes: half of the points in cluster 0.
        let c = if i % 2 == 0 { 0 } else { i % clusters };
        let row: Vec<f32> = (0..d)
            .map(|k| centres[c * d + k] + 0.6 * rng.random_range(-1.0f32..1.0))
            .collect();
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        data.extend(row.iter().map(|v| v / norm));
    }
    tensor(&[n, d], data)
}

/// Random mode never repeats an anchor and, on clustered data, is more diverse than random choice:
/// the mean similarity of each anchor to its nearest other anchor is lower, over 5 seeds each.
#[test]
fn random_mode_is_unique_and_diverse() {
    let x = clustered(1000, 32, 20, 3);
    let q = 100;
    let cfg = DiverseConfig::default();
    let (mut diverse_mean, mut random_mean) = (0.0, 0.0);
    for seed in 0..5 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let a = diverse_anchors(&x, q, &cfg, &mut rng).unwrap();
        let mut sorted = a.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), q, "repeated anchor with seed {seed}");
        let r = random_anchors(1000, q, &mut rng).unwrap();
        let (sd, sr) = (
            mean_nearest_anchor_similarity(&x, &a).unwrap(),
            mean_nearest_anchor_similarity(&x, &r).unwrap(),
        );
        println!("seed {seed}: mean nearest-anchor similarity diverse {sd:.4}, random {sr:.4}");
        // Paired per seed: diverse mining wins every time, not only on average.
        assert!(sd < sr, "seed {seed}: diverse {sd} vs random {sr}");
        diverse_mean += sd / 5.0;
        random_mean += sr / 5.0;
    }
    println!("mean over seeds: diverse {diverse_mean:.4}, random {random_mean:.4}");
    // Different seeds give different anchor sets (the band draw is really random).
    let mut r1 = ChaCha8Rng::seed_from_u64(1);
    let mut r2 = ChaCha8Rng::seed_from_u64(2);
    assert_ne!(
        diverse_anchors(&x, q, &cfg, &mut r1).unwrap(),
        diverse_anchors(&x, q, &cfg, &mut r2).unwrap()
    );
}

/// All q = Qp candidates can be chosen, each once, including with exact duplicates.
#[test]
fn choosing_every_candidate_never_repeats() {
    let (shape, mut data) = common::npy::<f32>("diverse_clustered_desc.npy");
    // Make rows 1 and 2 exact copies of row 0 (ties at the top of the ranking).
    let d = shape[1];
    let row0 = data[..d].to_vec();
    data[d..2 * d].copy_from_slice(&row0);
    data[2 * d..3 * d].copy_from_slice(&row0);
    let x = tensor(&shape, data);
    for deterministic in [true, false] {
        let cfg = DiverseConfig::default().with_deterministic(deterministic);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut a = diverse_anchors(&x, shape[0], &cfg, &mut rng).unwrap();
        a.sort_unstable();
        assert_eq!(a, (0..shape[0]).collect::<Vec<_>>());
    }
}

#[test]
fn bad_inputs_give_typed_errors() {
    let cfg = DiverseConfig::default();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let (shape, data) = common::npy::<f32>("diverse_isotropic_desc.npy");
    let x = tensor(&shape, data.clone());
    assert!(matches!(
        diverse_anchors(&x, shape[0] + 1, &cfg, &mut rng),
        Err(AnchorError::TooManyAnchors {
            requested: 301,
            available: 300
        })
    ));
    let empty = Tensor::<2>::empty([0, 8], &Device::default());
    assert!(matches!(
        diverse_anchors(&empty, 0, &cfg, &mut rng),
        Err(AnchorError::EmptyCandidates { .. })
    ));
    let mut nan = data.clone();
    nan[5 * shape[1] + 7] = f32::NAN;
    assert!(matches!(
        diverse_anchors(&tensor(&shape, nan), 10, &cfg, &mut rng),
        Err(AnchorError::NonFiniteDescriptor { row: 5, dim: 7 })
    ));
    let mut inf = data.clone();
    inf[3] = f32::INFINITY;
    assert!(matches!(
        diverse_anchors(&tensor(&shape, inf), 10, &cfg, &mut rng),
        Err(AnchorError::NonFiniteDescriptor { row: 0, dim: 3 })
    ));
    let scaled: Vec<f32> = data.iter().map(|v| v * 2.0).collect();
    assert!(matches!(
        diverse_anchors(&tensor(&shape, scaled), 10, &cfg, &mut rng),
        Err(AnchorError::NotNormalised { row: 0, .. })
    ));
    let bad_cfg = DiverseConfig {
        similar_include: 1.5,
        ..cfg
    };
    assert!(matches!(
        diverse_anchors(&x, 10, &bad_cfg, &mut rng),
        Err(AnchorError::InvalidConfig {
            field: "similar_include",
            ..
        })
    ));
    assert!(matches!(
        random_anchors(0, 0, &mut rng),
        Err(AnchorError::EmptyCandidates { .. })
    ));
    assert!(matches!(
        random_anchors(5, 6, &mut rng),
        Err(AnchorError::TooManyAnchors { .. })
    ));
    // Error messages are readable.
    let msg = diverse_anchors(&x, 1000, &cfg, &mut rng)
        .unwrap_err()
        .to_string();
    assert_eq!(msg, "cannot choose 1000 anchors from 300 candidates");
}

/// The strategy draws the candidate pool, calls the closure once with it and maps picks back to
/// pair indices; closure errors and wrong row counts surface as typed errors.
#[test]
fn strategy_maps_pool_indices() {
    let (shape, data) = common::npy::<f32>("diverse_clustered_desc.npy");
    let d = shape[1];
    // 1000 "pairs": pair p has the descriptor of fixture row p % 400.
    let all = data.clone();
    let cfg = DiverseConfig::default()
        .with_qpool_size(400)
        .with_deterministic(true);
    let strategy = AnchorStrategy::Diverse(cfg);
    assert!(strategy.needs_descriptors());
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut seen_pool = Vec::new();
    let picks = strategy
        .select(
            1000,
            50,
            &mut rng,
            |pool: &[usize]| -> Result<Tensor<2>, std::io::Error> {
                seen_pool = pool.to_vec();
                let rows: Vec<f32> = pool
                    .iter()
                    .flat_map(|&p| all[(p % 400) * d..(p % 400 + 1) * d].to_vec())
                    .collect();
                Ok(tensor(&[pool.len(), d], rows))
            },
        )
        .unwrap();
    assert_eq!(seen_pool.len(), 400);
    assert_eq!(picks.len(), 50);
    assert_eq!(picks[0], seen_pool[0]);
    assert!(picks.iter().all(|p| seen_pool.contains(p)));
    let err = strategy
        .select(
            1000,
            50,
            &mut rng,
            |_| -> Result<Tensor<2>, std::io::Error> {
                Err(std::io::Error::other("network failed"))
            },
        )
        .unwrap_err();
    assert!(matches!(err, AnchorError::Describe { .. }));
    assert!(err.to_string().contains("network failed"));
    let err = strategy
        .select(
            1000,
            50,
            &mut rng,
            |_| -> Result<Tensor<2>, std::io::Error> { Ok(tensor(&[3, d], all[..3 * d].to_vec())) },
        )
        .unwrap_err();
    assert!(matches!(
        err,
        AnchorError::DescribeRows {
            expected: 400,
            got: 3
        }
    ));
    assert!(matches!(
        strategy.select(
            100,
            150,
            &mut rng,
            |_| -> Result<Tensor<2>, std::io::Error> { unreachable!() }
        ),
        Err(AnchorError::TooManyAnchors {
            requested: 150,
            available: 100
        })
    ));
}
