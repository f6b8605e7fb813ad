//! Both exact engines — the blocked device search and the packed host kernel — are identical to a
//! brute force, including ties.
//!
//! Descriptors hold small integers, so every inner product and squared norm is exact in f32 and
//! equal scores are real ties: the lists must match bit for bit, with ties broken by the lower
//! database index, for any block size, chunk size, query block and k (property over seeded
//! cases).

use burn::tensor::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vpr_eval::{
    Descriptors, DeviceDatabase, EvalError, HostIndex, KnnConfig, KnnEngine, KnnIndex, MR, Metric,
    exact_knn, exact_knn_streaming, rank_all,
};

fn int_matrix(rng: &mut ChaCha8Rng, rows: usize, dim: usize, range: i32) -> Descriptors {
    let data = (0..rows * dim)
        .map(|_| rng.random_range(-range..=range) as f32)
        .collect();
    Descriptors::new(data, rows, dim).unwrap()
}

/// Score (larger is better) as the definition: exact in f64 for small integers.
fn score(q: &[f32], x: &[f32], metric: Metric) -> f64 {
    match metric {
        Metric::InnerProduct => q
            .iter()
            .zip(x)
            .map(|(a, b)| (*a as f64) * (*b as f64))
            .sum(),
        Metric::L2 => -q
            .iter()
            .zip(x)
            .map(|(a, b)| ((*a - *b) as f64).powi(2))
            .sum::<f64>(),
    }
}

fn brute(db: &Descriptors, q: &Descriptors, k: usize, metric: Metric) -> Vec<Vec<(u32, f64)>> {
    (0..q.rows())
        .map(|qi| {
            let mut s: Vec<(u32, f64)> = (0..db.rows())
                .map(|i| (i as u32, score(q.row(qi), db.row(i), metric)))
                .collect();
            // IEEE comparison: -0.0 and 0.0 tie (total_cmp would order them)
            s.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap().then(a.0.cmp(&b.0)));
            s.truncate(k);
            s
        })
        .collect()
}

#[test]
fn blocked_search_equals_brute_force_with_ties() {
    let device = Device::default();
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut boundary_ties = 0;
    for case in 0..12 {
        let n_db = rng.random_range(1..700);
        let n_q = rng.random_range(1..40);
        let dim = rng.random_range(1..12);
        // a tiny value range makes many exact ties
        let range = if case % 2 == 0 { 1 } else { 3 };
        let mut db = int_matrix(&mut rng, n_db, dim, range).into_vec();
        // duplicate rows: identical descriptors, identical scores
        for i in 0..n_db / 5 {
            let src = rng.random_range(0..n_db);
            let dst = rng.random_range(0..n_db);
            if src != dst && i % 2 == 0 {
                let row: Vec<f32> = db[src * dim..(src + 1) * dim].to_vec();
                db[dst * dim..(dst + 1) * dim].copy_from_slice(&row);
            }
        }
        let db = Descriptors::new(db, n_db, dim).unwrap();
        let q = int_matrix(&mut rng, n_q, dim, range);
        let k = rng.random_range(1..30);
        for metric in [Metric::InnerProduct, Metric::L2] {
            let want = brute(&db, &q, k, metric);
            let settings = [(n_db.max(1), 8), (64, 8), (50, 16), (33, 4), (1024, 64)];
            for (si, (block_rows, chunk)) in settings.into_iter().enumerate() {
                let cfg = KnnConfig {
                    block_rows,
                    chunk,
                    max_block_elements: 4096,
                    engine: KnnEngine::Device,
                    ..KnnConfig::new(metric)
                };
                let nn = exact_knn(&db, &q, k, &cfg, &device).unwrap();
                // the host kernel, with query blocks of 1..5 tiles
                let host = HostIndex::new(&db, metric)
                    .unwrap()
                    .with_query_block_bytes((si + 1) * MR * dim * 4)
                    .search(&q, k)
                    .unwrap();
                assert_eq!(host, nn, "case {case} {metric:?} host vs device");
                assert_eq!(nn.k, k.min(n_db));
                for qi in 0..n_q {
                    let ids: Vec<u32> = want[qi].iter().map(|x| x.0).collect();
                    assert_eq!(
                        nn.indices_of(qi),
                        &ids[..],
                        "case {case} {metric:?} block {block_rows} chunk {chunk} query {qi}"
                    );
                    for (s, w) in nn.scores_of(qi).iter().zip(&want[qi]) {
                        let w = match metric {
                            Metric::InnerProduct => w.1,
                            Metric::L2 => -w.1,
                        };
                        assert!(*s as f64 == w, "{s} vs {w}");
                    }
                    if want[qi].len() == k && n_db > k {
                        // count cases where the k-th and (k+1)-th scores tie
                        let full = brute(&db, &q, k + 1, metric);
                        if full[qi][k - 1].1 == full[qi][k].1 {
                            boundary_ties += 1;
                        }
                    }
                }
                let streamed = exact_knn_streaming(&db, &q, k, &cfg, &device).unwrap();
                assert_eq!(streamed, nn);
            }
        }
    }
    assert!(
        boundary_ties > 50,
        "the property must exercise ties at the k-th place ({boundary_ties})"
    );
}

#[test]
fn full_ranking_equals_brute_force() {
    let device = Device::default();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let db = int_matrix(&mut rng, 157, 5, 2);
    let q = int_matrix(&mut rng, 9, 5, 2);
    for metric in [Metric::InnerProduct, Metric::L2] {
        let cfg = KnnConfig {
            block_rows: 40,
            ..KnnConfig::new(metric)
        };
        let ranks = rank_all(&db, &q, &cfg, &device).unwrap();
        let want = brute(&db, &q, 157, metric);
        for (qi, w) in want.iter().enumerate() {
            let ids: Vec<u32> = w.iter().map(|x| x.0).collect();
            assert_eq!(ranks.column(qi), &ids[..]);
        }
    }
}

#[test]
fn reused_device_database_gives_the_same_result() {
    let device = Device::default();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let db = int_matrix(&mut rng, 300, 7, 3);
    let q = int_matrix(&mut rng, 11, 7, 3);
    let cfg = KnnConfig {
        block_rows: 128,
        chunk: 16,
        engine: KnnEngine::Device,
        ..KnnConfig::new(Metric::L2)
    };
    let index = DeviceDatabase::upload(&db, cfg.clone(), &device).unwrap();
    assert_eq!(index.len(), 300);
    let a = index.search(&q, 5).unwrap();
    let b = index.search(&q, 5).unwrap();
    assert_eq!(a, b);
    assert_eq!(a, exact_knn(&db, &q, 5, &cfg, &device).unwrap());
    let host = KnnIndex::build(&db, &KnnConfig::new(Metric::L2), &device).unwrap();
    // burn's CPU device: `Auto` picks the host kernel
    assert_eq!(host.engine(), KnnEngine::Host);
    assert_eq!(host.search(&q, 5).unwrap(), a);
}

/// Unit-norm float descriptors (no exact ties): the two engines agree on a database that spans
/// several host work chunks and device blocks, with as many queries as a Tokyo 24/7 split.
#[test]
fn engines_agree_on_float_descriptors() {
    let device = Device::default();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let unit = |rng: &mut ChaCha8Rng, rows: usize, dim: usize| {
        let data = (0..rows * dim)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        Descriptors::new(data, rows, dim).unwrap().l2_normalised()
    };
    let db = unit(&mut rng, 5003, 64);
    let q = unit(&mut rng, 105, 64);
    for metric in [Metric::InnerProduct, Metric::L2] {
        let device_nn = exact_knn(
            &db,
            &q,
            20,
            &KnnConfig {
                engine: KnnEngine::Device,
                block_rows: 1024,
                ..KnnConfig::new(metric)
            },
            &device,
        )
        .unwrap();
        let host_nn = HostIndex::new(&db, metric).unwrap().search(&q, 20).unwrap();
        assert_eq!(host_nn.indices, device_nn.indices, "{metric:?}");
        for (a, b) in host_nn.scores.iter().zip(&device_nn.scores) {
            // different float32 summation orders of 64 products of unit vectors
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
}

#[test]
fn bad_inputs_are_typed_errors() {
    let device = Device::default();
    for engine in [KnnEngine::Device, KnnEngine::Host] {
        bad_inputs(&device, engine);
    }
}

fn bad_inputs(device: &Device, engine: KnnEngine) {
    let device = device.clone();
    let cfg = KnnConfig {
        engine,
        ..KnnConfig::default()
    };
    let db = Descriptors::new(vec![1.0; 12], 4, 3).unwrap();
    let q = Descriptors::new(vec![1.0; 4], 2, 2).unwrap();
    assert!(matches!(
        exact_knn(&db, &q, 1, &cfg, &device),
        Err(EvalError::SizeMismatch {
            expected: 3,
            got: 2,
            ..
        })
    ));
    let empty = Descriptors::new(vec![], 0, 3).unwrap();
    let q3 = Descriptors::new(vec![1.0; 3], 1, 3).unwrap();
    assert!(matches!(
        exact_knn(&empty, &q3, 1, &cfg, &device),
        Err(EvalError::Empty { .. })
    ));
    assert!(matches!(
        exact_knn(&db, &empty, 1, &cfg, &device),
        Err(EvalError::Empty { .. })
    ));
    assert!(matches!(
        exact_knn(&db, &q3, 0, &cfg, &device),
        Err(EvalError::InvalidArgument { name: "k", .. })
    ));
    let zero_block = KnnConfig {
        block_rows: 0,
        ..cfg.clone()
    };
    assert!(matches!(
        exact_knn(&db, &q3, 1, &zero_block, &device),
        Err(EvalError::InvalidArgument { .. })
    ));
    // norms whose products overflow f32
    let huge = Descriptors::new(vec![1e30; 3], 1, 3).unwrap();
    assert!(matches!(
        exact_knn(&huge, &huge, 1, &cfg, &device),
        Err(EvalError::InvalidArgument {
            name: "descriptors",
            ..
        })
    ));
    // NaN cannot even enter
    assert!(matches!(
        Descriptors::new(vec![f32::NAN, 0.0, 0.0], 1, 3),
        Err(EvalError::NonFinite { .. })
    ));
}
