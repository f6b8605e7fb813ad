//! Criterion bench of diverse anchor mining at DSA's scale: Qp = 10,000 candidates, q = 2,000
//! anchors, 2048-d descriptors (docs/PAPERS.md A.6/A.7), deterministic mode, with and without the int8
//! screen. The same data (seeded Gaussian-mixture descriptors, written to
//! `target/diverse_anchors_bench.npy`) feeds `benches/diverse_anchors_numpy.py` for the ratio.
//!
//! `cargo bench -p anchor-mining --bench diverse_anchors`
//! Environment: `DIVERSE_BENCH_QP`, `DIVERSE_BENCH_Q`, `DIVERSE_BENCH_D` override the sizes.

use std::time::{Duration, Instant};

use anchor_mining::{DiverseConfig, diverse_anchors_with_stats};
use burn::tensor::{Device, Tensor, TensorData};
use criterion::{Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Clustered unit descriptors: 200 Gaussian centres, noise 0.7 per dimension relative to a unit
/// centre spread (so nearest-neighbour similarities look like those of CNN descriptors).
fn descriptors(qp: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut normal = move || {
        // Box–Muller.
        let u1: f64 = rng.random::<f64>().max(1e-300);
        let u2: f64 = rng.random();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    let centres: Vec<f64> = (0..200 * d).map(|_| normal()).collect();
    let mut out = Vec::with_capacity(qp * d);
    for i in 0..qp {
        let c = (i * 7919) % 200;
        let row: Vec<f64> = (0..d)
            .map(|k| centres[c * d + k] + 0.7 * normal())
            .collect();
        let n = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        out.extend(row.iter().map(|v| (v / n) as f32));
    }
    out
}

fn write_npy(path: &std::path::Path, data: &[f32], shape: [usize; 2]) -> std::io::Result<()> {
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
        shape[0], shape[1]
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + data.len() * 4);
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes)
}

fn bench(c: &mut Criterion) {
    let (qp, q, d) = (
        env_usize("DIVERSE_BENCH_QP", 10_000),
        env_usize("DIVERSE_BENCH_Q", 2_000),
        env_usize("DIVERSE_BENCH_D", 2048),
    );
    let device = Device::default();
    let data = descriptors(qp, d, 0);
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
    let npy = target.join("diverse_anchors_bench.npy");
    if let Err(e) = write_npy(&npy, &data, [qp, d]) {
        eprintln!("cannot write {}: {e}", npy.display());
    }
    let x = Tensor::<2>::from_data(TensorData::new(data, [qp, d]), &device);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut anchors = Vec::new();
    for screen in [true, false] {
        let cfg = DiverseConfig::default()
            .with_deterministic(true)
            .with_screen(screen);
        let t = Instant::now();
        let (a, stats) = diverse_anchors_with_stats(&x, q, &cfg, &mut rng).expect("diverse mining");
        println!(
            "screen={screen}: one run {:.2} s, {stats:?}",
            t.elapsed().as_secs_f64()
        );
        anchors.push(a);
    }
    // Both paths compute the same f32 similarities, but through matmuls of different shapes, so
    // a similarity can round differently in the last bit; that only matters at exact-rounding
    // ties, where the two runs may swap two anchors. Report how far they agree.
    let agree = anchors[0]
        .iter()
        .zip(&anchors[1])
        .take_while(|(a, b)| a == b)
        .count();
    let same_set = {
        let (mut a, mut b) = (anchors[0].clone(), anchors[1].clone());
        a.sort_unstable();
        b.sort_unstable();
        a == b
    };
    println!("screen vs no screen: first {agree} of {q} anchors identical, same set: {same_set}");
    let json = target.join("diverse_anchors_bench_rust.json");
    let _ = std::fs::write(
        &json,
        format!(
            "{{\"qp\": {qp}, \"q\": {q}, \"d\": {d}, \"anchors\": {:?}}}",
            anchors[0]
        ),
    );
    let mut group = c.benchmark_group("diverse_anchors");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    let cfg = DiverseConfig::default().with_deterministic(true);
    group.bench_function(format!("screen_qp{qp}_q{q}_d{d}"), |b| {
        b.iter(|| diverse_anchors_with_stats(&x, q, &cfg, &mut rng).expect("diverse mining"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
