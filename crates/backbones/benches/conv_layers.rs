//! One convolution layer of each kind the training steps spend their time in, at the shapes of a
//! cirtorch tuple (7 images of 272×362): forward without gradients, and a training pass (forward,
//! then the input and weight gradients of `sum(y · up)`), through burn's own `Conv2d::forward`
//! and through `nightvision_core::kernels::conv2d`. `benches/conv_vs_torch.py` runs this bench
//! and the same layers in PyTorch side by side.
//!
//! ```text
//! cargo bench -p backbones --bench conv_layers --profile dev
//! ```

use std::hint::black_box;
use std::time::Duration;

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Device, Distribution, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use nightvision_core::kernels::conv2d;

/// One layer: a cirtorch tuple's batch through one convolution.
struct Layer {
    name: &'static str,
    /// batch, in channels, out channels, kernel, stride, padding, groups, height, width
    shape: [usize; 9],
}

/// The layers of `benches/conv_vs_torch.py`'s `LAYERS`.
const LAYERS: [Layer; 6] = [
    Layer {
        name: "resnet50_stem_7x7_s2",
        shape: [7, 3, 64, 7, 2, 3, 1, 272, 362],
    },
    Layer {
        name: "resnet50_1x1_256to64",
        shape: [7, 256, 64, 1, 1, 0, 1, 68, 91],
    },
    Layer {
        name: "resnet50_3x3_64",
        shape: [7, 64, 64, 3, 1, 1, 1, 68, 91],
    },
    Layer {
        name: "resnet50_3x3_512",
        shape: [7, 512, 512, 3, 1, 1, 1, 9, 12],
    },
    Layer {
        name: "mobilenet_v2_dw_3x3_144",
        shape: [7, 144, 144, 3, 1, 1, 144, 68, 91],
    },
    Layer {
        name: "mobilenet_v2_dw_3x3_144_s2",
        shape: [7, 144, 144, 3, 2, 1, 144, 68, 91],
    },
];

fn read_back(y: Tensor<4>) -> f32 {
    y.slice([0..1, 0..1, 0..1, 0..1]).into_scalar::<f32>()
}

fn bench(c: &mut Criterion) {
    let device = Device::default().autodiff();
    device.seed(0);
    let mut group = c.benchmark_group("conv");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for Layer { name, shape } in LAYERS {
        let [n, cin, cout, k, s, p, g, h, w] = shape;
        let conv: Conv2d = Conv2dConfig::new([cin, cout], [k, k])
            .with_stride([s, s])
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .with_groups(g)
            .with_bias(false)
            .init(&device);
        let x = Tensor::<4>::random([n, cin, h, w], Distribution::Normal(0.0, 1.0), &device);
        let y_dims = conv.forward(x.clone()).dims();
        let up = Tensor::<4>::random(y_dims, Distribution::Normal(0.0, 1.0), &device);
        type Impl = fn(&Conv2d, Tensor<4>) -> Tensor<4>;
        let impls: [(&str, Impl); 2] = [("burn", |c, x| c.forward(x)), ("ours", conv2d)];
        for (who, f) in impls {
            group.bench_function(format!("{name}/{who}/forward"), |b| {
                b.iter(|| black_box(read_back(f(&conv, black_box(x.clone())))))
            });
            group.bench_function(format!("{name}/{who}/train"), |b| {
                b.iter(|| {
                    let xg = x.clone().require_grad();
                    let grads = (f(&conv, xg.clone()) * up.clone()).sum().backward();
                    let dx = xg.grad(&grads).map(read_back);
                    let dw = conv.weight.val().grad(&grads).map(read_back);
                    black_box((dx, dw))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
