//! Training-step and descriptor-extraction throughput of GeM networks at cirtorch's training
//! size (longer side 362, here 272×362 images), on the default device with random weights.
//!
//! - `train_step/<net>`: one cirtorch tuple (query, positive, 5 negatives) forwarded as a batch
//!   of 7 (BatchNorm frozen), contrastive loss, backward, and an Adam step with the GeM group —
//!   reported as tuples/s;
//! - `extract/<net>`: single-scale descriptor of one image (no gradient), and the 3-scale
//!   descriptor — reported as images/s.
//!
//! - `data_parallel/…`: one optimiser step of 2 tuples at half that size through
//!   [`DataParallel::gradients`](nightvision_core::parallel::DataParallel::gradients) on one
//!   device and on two replicas of it (threads sharing the cores), and `reduce`: summing two
//!   MobileNetV2-GeM gradient sets on the main device (the reduction's own cost; docs/SCALING.md).
//!
//! ```text
//! cargo bench -p metric-learning --bench training --profile dev
//! ```

use std::hint::black_box;

use backbones::{MobileNetV2Config, ResNetConfig};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Tensor};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use metric_learning::train::gem_group;
use metric_learning::{
    BackboneConfig, CirNetConfig, ContrastiveLossConfig, DEFAULT_SCALES, TupleLayout, multiscale,
};

const SIZE: [usize; 2] = [272, 362];

fn nets() -> [(&'static str, BackboneConfig); 2] {
    [
        (
            "mobilenet_v2_gem",
            BackboneConfig::MobileNetV2(MobileNetV2Config::new()),
        ),
        (
            "resnet50_gem",
            BackboneConfig::ResNet(ResNetConfig::resnet50()),
        ),
    ]
}

fn bench_train_step(c: &mut Criterion) {
    let device = Device::default().autodiff();
    device.seed(0);
    let labels = TupleLayout::standard_labels(1, 5);
    let loss = ContrastiveLossConfig::new().init();
    let mut group = c.benchmark_group("train_step");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));
    for (name, backbone) in nets() {
        let mut net = Some(CirNetConfig::new(backbone).init(&device).unwrap());
        let mut optim = AdamConfig::new().with_epsilon(1e-8).init().with_group(
            gem_group(),
            AdamConfig::new().with_epsilon(1e-8).build(),
            None,
        );
        let x = Tensor::<4>::random(
            [7, 3, SIZE[0], SIZE[1]],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                let n = net.take().unwrap();
                let l = loss
                    .forward(n.forward(black_box(x.clone())), &labels)
                    .unwrap();
                let grads = GradientsParams::from_grads(l.backward(), &n);
                let n = optim.step(1e-6, n, grads);
                black_box(n.gem_p());
                net = Some(n);
            })
        });
    }
    group.finish();
}

fn bench_extract(c: &mut Criterion) {
    let device = Device::default();
    device.seed(0);
    let mut group = c.benchmark_group("extract");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));
    for (name, backbone) in nets() {
        let net = CirNetConfig::new(backbone).init(&device).unwrap().valid();
        let x = Tensor::<4>::random(
            [1, 3, SIZE[0], SIZE[1]],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        group.bench_function(format!("{name}/single_scale"), |b| {
            b.iter(|| black_box(net.forward(black_box(x.clone())).into_data()))
        });
        group.bench_function(format!("{name}/multi_scale"), |b| {
            b.iter(|| {
                let p = net.multiscale_power();
                black_box(
                    multiscale(&net, black_box(x.clone()), &DEFAULT_SCALES, p)
                        .unwrap()
                        .into_data(),
                )
            })
        });
    }
    group.finish();
}

fn bench_data_parallel(c: &mut Criterion) {
    use burn::module::{ModuleVisitor, Param};
    use burn::optim::GradientsAccumulator;
    use nightvision_core::parallel::DataParallel;

    let device = Device::default().autodiff();
    device.seed(0);
    let labels = TupleLayout::standard_labels(1, 5);
    let loss = ContrastiveLossConfig::new().init();
    let mut group = c.benchmark_group("data_parallel");
    group.sample_size(10);
    let net = CirNetConfig::new(BackboneConfig::MobileNetV2(MobileNetV2Config::new()))
        .init(&device)
        .unwrap();
    let tuples: Vec<Tensor<4>> = (0..2)
        .map(|_| {
            Tensor::<4>::random(
                [7, 3, SIZE[0] / 2, SIZE[1] / 2],
                Distribution::Normal(0.0, 1.0),
                &device,
            )
        })
        .collect();
    for (name, dp) in [
        ("1_device", DataParallel::single(&device)),
        ("2_replicas", DataParallel::replicas(&device, 2).unwrap()),
    ] {
        let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
        let mut net = Some(net.clone());
        group.bench_function(format!("step/mobilenet_v2_gem/{name}"), |b| {
            b.iter(|| {
                let n = net.take().unwrap();
                let (grads, _) = dp
                    .gradients(&n, tuples.len(), |shard| {
                        let mut acc = GradientsAccumulator::new();
                        for i in shard.items.clone() {
                            let x = tuples[i].clone().to_device(shard.device);
                            let l = loss.forward(shard.model.forward(x), &labels).unwrap();
                            acc.accumulate(
                                shard.model,
                                GradientsParams::from_grads(l.backward(), shard.model),
                            );
                        }
                        Ok::<_, metric_learning::MetricError>((acc.grads(), ()))
                    })
                    .unwrap();
                net = Some(optim.step(1e-6, n, grads));
            })
        });
    }
    // The reduction alone: two full gradient sets (the parameters themselves) summed.
    struct AsGrads(GradientsParams);
    impl ModuleVisitor for AsGrads {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0.register(p.id, p.val().inner());
        }
    }
    let grads_of = |m: &metric_learning::CirNet| {
        let mut v = AsGrads(GradientsParams::new());
        m.visit(&mut v);
        v.0
    };
    let main = device.clone().inner();
    group.bench_function("reduce/mobilenet_v2_gem", |b| {
        b.iter(|| {
            let mut acc = GradientsAccumulator::new();
            acc.accumulate(&net, grads_of(&net));
            acc.accumulate(&net, grads_of(&net).to_device(&main, &net));
            black_box(acc.grads());
            main.sync().unwrap();
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_train_step,
    bench_extract,
    bench_data_parallel
);
criterion_main!(benches);
