//! Criterion benches of the hot paths: exact k-NN (host kernel and blocked device engine) and
//! cirtorch mAP.
//!
//! `cargo bench -p vpr-eval --bench knn`. Seeded synthetic inputs; the large comparison against
//! faiss and numpy is `benches/knn_vs_faiss.py` in the workspace root.

use burn::tensor::Device;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use vpr_eval::{
    Descriptors, DeviceDatabase, HostIndex, KnnConfig, Metric, QueryGnd, compute_map, rank_all,
};

fn random(rows: usize, dim: usize, seed: u64) -> Descriptors {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let data = (0..rows * dim)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    Descriptors::new(data, rows, dim).unwrap().l2_normalised()
}

fn knn(c: &mut Criterion) {
    let device = Device::default();
    let mut group = c.benchmark_group("vpr-eval/exact_knn_top20");
    group.sample_size(10);
    for &(n_db, n_q, dim) in &[(20_000usize, 100usize, 512usize), (5_000, 70, 2048)] {
        let db = random(n_db, dim, 1);
        let q = random(n_q, dim, 2);
        for metric in [Metric::InnerProduct, Metric::L2] {
            let index = DeviceDatabase::upload(&db, KnnConfig::new(metric), &device).unwrap();
            group.bench_with_input(
                BenchmarkId::from_parameter(format!("device/{n_db}x{n_q}x{dim}/{metric:?}")),
                &q,
                |b, q| b.iter(|| black_box(index.search(q, 20).unwrap())),
            );
            let host = HostIndex::new(&db, metric).unwrap();
            group.bench_with_input(
                BenchmarkId::from_parameter(format!("host/{n_db}x{n_q}x{dim}/{metric:?}")),
                &q,
                |b, q| b.iter(|| black_box(host.search(q, 20).unwrap())),
            );
        }
    }
    group.finish();
}

fn map(c: &mut Criterion) {
    let device = Device::default();
    let db = random(5_000, 128, 3);
    let q = random(70, 128, 4);
    let ranks = rank_all(&db, &q, &KnnConfig::new(Metric::InnerProduct), &device).unwrap();
    let gnd: Vec<QueryGnd> = (0..70u32)
        .map(|i| QueryGnd {
            ok: (0..50).map(|j| (i * 37 + j * 11) % 5_000).collect(),
            junk: (0..20).map(|j| (i * 53 + j * 7 + 1) % 5_000).collect(),
        })
        .collect();
    c.bench_function("vpr-eval/compute_map_5000x70", |b| {
        b.iter(|| black_box(compute_map(&ranks, &gnd, &[1, 5, 10]).unwrap()))
    });
}

criterion_group!(benches, knn, map);
criterion_main!(benches);
