//! Forward throughput of HED at the port's 320×480 (height × width), batch 1, full widths, on the
//! default device: the fused edge map (sigmoid), as `Hed::forward` computes it for edge maps and
//! for the HED^N teacher. `benches/hed_torch.py` (workspace root) times the same forward in
//! Debian's PyTorch and prints the ratio.
//!
//! ```text
//! cargo bench -p hed-edges --bench hed
//! ```
//! With the real-data cache present the real BSDS500 weights are used (the time does not depend
//! on the values); otherwise burn's random initialisation.

use burn::tensor::{Device, Distribution, Tensor};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hed_edges::HedConfig;
use std::hint::black_box;

fn bench_forward(c: &mut Criterion) {
    let device = Device::default();
    device.seed(0);
    let mut hed = HedConfig::new().init(&device);
    match nightvision_core::real_data_file("weights/hed_bsds500.safetensors") {
        Ok(path) => {
            if let Err(e) = hed.load_weights(&path) {
                eprintln!("random weights ({e})");
            }
        }
        Err(reason) => eprintln!("random weights: {reason}"),
    }
    let x = Tensor::<4>::random([1, 3, 320, 480], Distribution::Uniform(0.0, 1.0), &device);
    let mut group = c.benchmark_group("hed");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));
    group.bench_function("forward_b1_320x480", |b| {
        b.iter(|| {
            let y = hed.forward(black_box(x.clone()));
            // Synchronise: read one value back.
            black_box(y.slice([0..1, 0..1, 0..1, 0..1]).into_scalar::<f32>())
        })
    });
    group.finish();
}

criterion_group!(benches, bench_forward);
criterion_main!(benches);
