//! Forward throughput of MobileNetV2 and ResNet-50 (inference, random weights) at 224×224 and
//! 480×640, batch 1 and 8, on the default device, plus a 1024³ f32 matmul as the practical
//! compute limit of the backend. `benches/backbones_vs_torch.py` runs this bench and torchvision's
//! same models side by side and prints images/s, GFLOP/s and the ratios.
//!
//! ```text
//! cargo bench -p backbones --bench forward --profile dev
//! ```

use backbones::{MobileNetV2Config, ResNetConfig};
use burn::tensor::{Device, Tensor};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn sizes() -> [(usize, [usize; 2]); 4] {
    [
        (1, [224, 224]),
        (8, [224, 224]),
        (1, [480, 640]),
        (8, [480, 640]),
    ]
}

fn bench_models(c: &mut Criterion) {
    let device = Device::default();
    device.seed(0);
    let mobilenet = MobileNetV2Config::new().init(&device);
    let resnet50 = ResNetConfig::resnet50().init(&device);
    for (name, is_resnet) in [("mobilenet_v2", false), ("resnet50", true)] {
        let mut group = c.benchmark_group(format!("backbones/{name}"));
        group.sample_size(10);
        for (batch, [h, w]) in sizes() {
            let x = Tensor::<4>::random(
                [batch, 3, h, w],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            );
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_with_input(
                BenchmarkId::from_parameter(format!("b{batch}_{h}x{w}")),
                &x,
                |b, x| {
                    b.iter(|| {
                        let y = if is_resnet {
                            resnet50.forward(black_box(x.clone()))
                        } else {
                            mobilenet.forward(black_box(x.clone()))
                        };
                        // Synchronise: read one value back.
                        black_box(y.slice([0..1, 0..1, 0..1, 0..1]).into_scalar::<f32>())
                    })
                },
            );
        }
        group.finish();
    }
}

fn bench_matmul(c: &mut Criterion) {
    let device = Device::default();
    let n: usize = 1024;
    let a = Tensor::<2>::random([n, n], burn::tensor::Distribution::Default, &device);
    let b = Tensor::<2>::random([n, n], burn::tensor::Distribution::Default, &device);
    let mut group = c.benchmark_group("backbones/matmul");
    group.sample_size(20);
    group.throughput(Throughput::Elements((2 * n * n * n) as u64));
    group.bench_function("f32_1024", |bch| {
        bch.iter(|| {
            let y = a.clone().matmul(b.clone());
            black_box(y.slice([0..1, 0..1]).into_scalar::<f32>())
        })
    });
    group.finish();
}

criterion_group!(benches, bench_models, bench_matmul);
criterion_main!(benches);
