//! Probe behind docs/PAPERS.md's "What real night training images give at these schedules":
//! fine-tunes MobileNetV2-GeM with `dark_side`'s recipe (contrastive tuples, CLAHE on every image,
//! diverse anchors) three times at one schedule — on the world as rendered (the baseline), with
//! DSA's hashed 25 % of anchors darkened by hand (the translation bench's hand darkening:
//! `clamp(1.526 · x^2.2 + N(0, 0.02²), 0, 1)`, FD 136.7), and on an oracle copy of the world
//! whose training tuples contain real night renders of their own places
//! (`scripts/probes/oracle_world.py`) — and scores them, with the off-the-shelf network, on the
//! world's held-out Tokyo-style test set (paired comparisons). Not built with the workspace; to
//! run it:
//!
//! ```text
//! cp scripts/probes/oracle_probe.rs examples/ && cargo build --example oracle_probe
//! target/debug/examples/oracle_probe WORLD ORACLE_WORLD OUT TUPLES EPOCHS LR [SEED]
//! rm examples/oracle_probe.rs
//! ```
use std::path::PathBuf;

use burn::tensor::Device;
use nightvision::anchors::TranslationSubset;
use nightvision::core::augment::Augmentation;
use nightvision::core::clahe::ClaheConfig;
use nightvision::metric::data::{AnchorSelection, AugmentHooks};
use nightvision::metric::multiscale::ExtractConfig;
use nightvision::pipeline::{self, Clahe, Evaluator};
use nightvision::pipelines::dark_side::{DarkSideConfig, finetune};
use nightvision::quality::HandDarkening;

/// The gain `fit_hand_darkening` finds on the default world (the bench's reference row there).
const DEFAULT_WORLD_GAIN: f64 = 1.526;

/// The bench's luminance-matched hand darkening ([`HandDarkening`]'s formula, gamma and sigma,
/// with the default world's gain) as an augmentation of tensors: its noise is drawn from the
/// trainer's stream instead of the bench's per-image ChaCha streams.
struct HandDark;

impl Augmentation for HandDark {
    fn augment(
        &self,
        x: burn::tensor::Tensor<4>,
        rng: &mut dyn rand::RngCore,
    ) -> nightvision::core::Result<burn::tensor::Tensor<4>> {
        use rand::Rng;
        let shape = x.shape();
        let n = shape.num_elements();
        let noise: Vec<f32> = (0..n)
            .map(|_| {
                // Box-Muller
                let (u, v): (f32, f32) = (rng.random_range(1e-7..1.0), rng.random());
                HandDarkening::DEFAULT_SIGMA as f32
                    * (-2.0 * u.ln()).sqrt()
                    * (std::f32::consts::TAU * v).cos()
            })
            .collect();
        let noise =
            burn::tensor::Tensor::<1>::from_floats(noise.as_slice(), &x.device()).reshape(shape);
        let dark = x.clamp(0.0, 1.0).powf_scalar(HandDarkening::DEFAULT_GAMMA) * DEFAULT_WORLD_GAIN;
        Ok((dark + noise).clamp(0.0, 1.0))
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (world, oracle, out) = (
        PathBuf::from(&a[1]),
        PathBuf::from(&a[2]),
        PathBuf::from(&a[3]),
    );
    let seed: u64 = a.get(7).map_or(0, |s| s.parse().unwrap());
    let cfg = DarkSideConfig::new()
        .with_out(out.clone())
        .with_tuples(a[4].parse().unwrap())
        .with_epochs(a[5].parse().unwrap())
        .with_lr(a[6].parse().unwrap())
        .with_seed(seed);
    let device = Device::default();
    let clahe_cfg = ExtractConfig {
        max_side: 320,
        clahe: Some(ClaheConfig::default()),
        ..ExtractConfig::default()
    };
    let mut eval = Evaluator::new(&world, &[1, 5, 10], None);
    let base = pipeline::mobilenet_v2_gem(&device).unwrap();
    eval.evaluate_recall(&base, "off-the-shelf + CLAHE", &clahe_cfg, &device)
        .unwrap();
    let hooks = || AugmentHooks::default().with_post(Clahe::dsa());
    let t = std::time::Instant::now();
    let day = finetune(&cfg, &world, hooks(), "CLAHE", "day", &device).unwrap();
    eprintln!("fine-tune on the world: {:.0} s", t.elapsed().as_secs_f64());
    eval.evaluate_recall(&day, "fine-tuned, day tuples", &clahe_cfg, &device)
        .unwrap();
    let hand = AugmentHooks {
        augmentation: Some(std::sync::Arc::new(HandDark)),
        anchors: Some(AnchorSelection::Hashed(TranslationSubset::default())),
        positives: false,
        query_copy: false,
        post: Some(std::sync::Arc::new(Clahe::dsa())),
    };
    let hd = finetune(
        &cfg,
        &world,
        hand,
        "hand darkening + CLAHE",
        "hand",
        &device,
    )
    .unwrap();
    eval.evaluate_recall(
        &hd,
        "fine-tuned, hand-darkened anchors",
        &clahe_cfg,
        &device,
    )
    .unwrap();
    let night = finetune(&cfg, &oracle, hooks(), "CLAHE", "oracle", &device).unwrap();
    eval.evaluate_recall(
        &night,
        "fine-tuned, oracle night tuples",
        &clahe_cfg,
        &device,
    )
    .unwrap();
    eval.compare("fine-tuned, oracle night tuples", "fine-tuned, day tuples");
    eval.compare(
        "fine-tuned, hand-darkened anchors",
        "fine-tuned, day tuples",
    );
    let md = eval
        .report("synthetic-places", Some("fine-tuned, day tuples"))
        .unwrap()
        .to_markdown();
    std::fs::write(out.join("oracle.md"), &md).unwrap();
    println!("{md}");
}
