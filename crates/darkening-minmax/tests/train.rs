//! Stage-1 training (docs/PAPERS.md C.2): a few steps against a tiny frozen feature extractor lower
//! the similarity loss; a run resumed from a checkpoint continues exactly like an uninterrupted
//! one; bad inputs and non-finite losses are errors.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use darkening_minmax::{
    DarkeningError, DarkeningLossConfig, DarkeningLossWeights, DarkeningNet, DarkeningNetConfig,
    DarkeningTrainer, DarkeningTrainerConfig, StepLog, frozen,
};
use nightvision_core::checkpoint::CheckpointDir;
use nightvision_core::rng::{Rng, derived};

/// A frozen two-conv extractor (3 → 8 → 16 channels, stride 4 overall).
struct Extractor {
    c1: Conv2d,
    c2: Conv2d,
}

impl Extractor {
    fn new(device: &Device) -> Self {
        let conv = |i, o| {
            Conv2dConfig::new([i, o], [3, 3])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        Self {
            c1: frozen(host_seeded(conv(3, 8), 100)),
            c2: frozen(host_seeded(conv(8, 16), 101)),
        }
    }

    fn closure(self) -> impl Fn(Tensor<4>) -> Tensor<4> {
        move |x| self.c2.forward(relu(self.c1.forward(x)))
    }
}

/// Seeded images of step `step`: smooth-ish random RGB in [0, 1].
fn images(step: u64, device: &Device) -> Tensor<4> {
    batch_of(2, step, device)
}

/// `n` seeded images of step `step`.
fn batch_of(n: usize, step: u64, device: &Device) -> Tensor<4> {
    let mut rng = derived(42, step);
    let v: Vec<f32> = (0..n * 3 * 16 * 16).map(|_| rng.random::<f32>()).collect();
    Tensor::from_data(TensorData::new(v, [n, 3, 16, 16]), device)
}

fn net(seed: u64, device: &Device) -> DarkeningNet {
    host_seeded(
        DarkeningNetConfig::new().with_channels(8).init(device),
        seed,
    )
}

/// Replaces every parameter with host-seeded values, `U(±1/√fan_in)` (biases `U(±0.1)`): the
/// device generator is shared by the tests running in parallel, so `device.seed` is not enough
/// for two identical networks.
fn host_seeded<M: Module>(m: M, seed: u64) -> M {
    struct Seeded(nightvision_core::rng::ChaCha8Rng);
    impl ModuleMapper for Seeded {
        fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let rng = &mut self.0;
            p.map(|t| {
                let dims = t.dims();
                let n: usize = dims.iter().product();
                let bound = if D == 1 {
                    0.1
                } else {
                    1.0 / ((n / dims[0]) as f32).sqrt()
                };
                let v: Vec<f32> = (0..n)
                    .map(|_| (rng.random::<f32>() * 2.0 - 1.0) * bound)
                    .collect();
                Tensor::<D>::from_data(TensorData::new(v, dims), &t.device())
                    .set_require_grad(t.is_require_grad())
            })
        }
    }
    m.map(&mut Seeded(nightvision_core::rng::seeded(seed)))
}

/// Every parameter value of a module, in visiting order.
fn params<M: Module>(m: &M) -> Vec<Vec<f32>> {
    struct V(Vec<Vec<f32>>);
    impl ModuleVisitor for V {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0.push(p.val().into_data().try_into_vec_as().unwrap());
        }
    }
    let mut v = V(Vec::new());
    m.visit(&mut v);
    v.0
}

#[test]
fn training_steps_lower_the_similarity_loss() {
    let device = Device::default().autodiff();
    // L_sim alone, a fixed batch and exposure, a larger learning rate: only the minimisation of
    // the day/dark feature similarity is at work.
    let cfg = DarkeningTrainerConfig::new()
        .with_lr(3e-3)
        .with_min_exposure(0.1)
        .with_max_exposure(0.1)
        .with_loss(
            DarkeningLossConfig::new().with_weights(
                DarkeningLossWeights::new()
                    .with_exposure(0.0)
                    .with_colour(0.0)
                    .with_tv(0.0)
                    .with_flex(0.0)
                    .with_sim(1.0),
            ),
        );
    let mut t = DarkeningTrainer::new(
        cfg,
        net(1, &device),
        Extractor::new(&device).closure(),
        &device,
    )
    .unwrap();
    let x = images(0, &device);
    let logs: Vec<StepLog> = (0..12).map(|_| t.step(x.clone()).unwrap()).collect();
    let first = logs[0].losses.sim;
    let last = logs[11].losses.sim;
    println!(
        "L_sim: {:?}",
        logs.iter().map(|l| l.losses.sim).collect::<Vec<_>>()
    );
    assert!(last < first - 1e-3, "L_sim {first} → {last}");
    assert_eq!(t.steps_done(), 12);
    assert!(logs.iter().all(|l| l.exposures == vec![0.1, 0.1]));
}

#[test]
fn default_loss_terms_are_logged_and_weighted() {
    let device = Device::default().autodiff();
    let cfg = DarkeningTrainerConfig::new();
    let weights = cfg.loss.weights.clone();
    let mut t = DarkeningTrainer::new(
        cfg,
        net(2, &device),
        Extractor::new(&device).closure(),
        &device,
    )
    .unwrap();
    let log = t.step(images(0, &device)).unwrap();
    let l = log.losses;
    for v in [l.sim, l.exposure, l.colour, l.tv, l.flex, l.total] {
        assert!(v.is_finite());
    }
    // The total is the weighted sum of the logged terms (f32 sums of five terms).
    let want = weights.weigh(&l);
    assert!((f64::from(l.total) - want).abs() < 1e-5 * want.abs().max(1.0));
    assert!(log.exposures.iter().all(|e| (0.0..0.5).contains(e)));
    assert_eq!(log.lr, 1e-4);
    assert!(log.grad_norm > 0.0);
}

/// Runs steps `from..to` of the seeded schedule.
fn run(
    t: &mut DarkeningTrainer<impl darkening_minmax::FeatureExtractor + Sync>,
    from: u64,
    to: u64,
    device: &Device,
) -> Vec<StepLog> {
    (from..to)
        .map(|s| t.step(images(s, device)).unwrap())
        .collect()
}

#[test]
fn resume_equals_continuous_training_bit_for_bit() {
    let device = Device::default().autodiff();
    let cfg = || {
        DarkeningTrainerConfig::new()
            .with_lr(1e-3)
            .with_milestones(vec![2, 4]) // the schedule crosses a milestone after the resume
            .with_seed(9)
    };
    let mut continuous = DarkeningTrainer::new(
        cfg(),
        net(3, &device),
        Extractor::new(&device).closure(),
        &device,
    )
    .unwrap();
    let all = run(&mut continuous, 0, 6, &device);

    let dir = tempfile::tempdir().unwrap();
    let ckpt = CheckpointDir::new(dir.path().join("run")).unwrap();
    let mut first = DarkeningTrainer::new(
        cfg(),
        net(3, &device),
        Extractor::new(&device).closure(),
        &device,
    )
    .unwrap();
    let head = run(&mut first, 0, 3, &device);
    first.save_checkpoint(&ckpt).unwrap();
    drop(first);

    // A fresh trainer with other initial weights: everything comes from the checkpoint.
    let mut resumed = DarkeningTrainer::new(
        cfg(),
        net(77, &device),
        Extractor::new(&device).closure(),
        &device,
    )
    .unwrap();
    assert!(resumed.resume(&ckpt).unwrap());
    assert_eq!(resumed.steps_done(), 3);
    let tail = run(&mut resumed, 3, 6, &device);

    assert_eq!(head[..], all[..3]);
    assert_eq!(tail[..], all[3..], "logs after the resume differ");
    // Milestones 2 and 4: step 3 runs at 1e-3 · 0.1, step 4 at 1e-3 · 0.1².
    assert!((tail[0].lr - 1e-4).abs() < 1e-15 && (tail[1].lr - 1e-5).abs() < 1e-15);
    assert_eq!(
        params(continuous.net()),
        params(resumed.net()),
        "parameters differ"
    );
}

#[test]
fn train_loop_checkpoints_and_resumes() {
    let device = Device::default().autodiff();
    let cfg = || {
        DarkeningTrainerConfig::new()
            .with_iterations(5)
            .with_checkpoint_every(2)
            .with_seed(4)
    };
    let dir = tempfile::tempdir().unwrap();
    let ckpt = CheckpointDir::new(dir.path()).unwrap();
    // Interrupted after 3 batches (the provider runs dry), then resumed to 5.
    let a = DarkeningTrainer::new(
        cfg(),
        net(5, &device),
        Extractor::new(&device).closure(),
        &device,
    )
    .unwrap();
    let mut seen = Vec::new();
    let first = a
        .train(
            |s| (s < 3).then(|| images(s, &device)),
            Some(&ckpt),
            |l| seen.push(l.step),
        )
        .unwrap();
    assert_eq!(seen, [0, 1, 2]);
    assert_eq!(first.log.len(), 3);
    assert_eq!(
        ckpt.latest::<serde::de::IgnoredAny>().unwrap().unwrap().0,
        3
    );
    let b = DarkeningTrainer::new(
        cfg(),
        net(6, &device),
        Extractor::new(&device).closure(),
        &device,
    )
    .unwrap();
    let mut seen = Vec::new();
    let b = b
        .train(
            |s| Some(images(s, &device)),
            Some(&ckpt),
            |l| seen.push(l.step),
        )
        .unwrap();
    assert_eq!(seen, [3, 4]);
    // The returned log covers the whole run, the steps before the interruption included.
    let steps: Vec<u64> = b.log.iter().map(|l| l.step).collect();
    assert_eq!(steps, [0, 1, 2, 3, 4]);
    assert_eq!(b.log[..3], first.log[..]);
    assert_eq!(
        ckpt.latest::<serde::de::IgnoredAny>().unwrap().unwrap().0,
        5
    );

    // Uninterrupted, without checkpoints: the same network.
    let c = DarkeningTrainer::new(
        cfg(),
        net(5, &device),
        Extractor::new(&device).closure(),
        &device,
    )
    .unwrap();
    let c = c.train(|s| Some(images(s, &device)), None, |_| {}).unwrap();
    assert_eq!(params(&b.net), params(&c.net));
    assert_eq!(b.log, c.log);

    // Another seed cannot resume this run.
    let mut d = DarkeningTrainer::new(
        cfg().with_seed(5),
        net(5, &device),
        Extractor::new(&device).closure(),
        &device,
    )
    .unwrap();
    assert!(matches!(
        d.resume(&ckpt),
        Err(DarkeningError::Resume { .. })
    ));
}

#[test]
fn bad_inputs_and_non_finite_losses_are_errors() {
    let device = Device::default().autodiff();
    let mut t = DarkeningTrainer::new(
        DarkeningTrainerConfig::new(),
        net(8, &device),
        Extractor::new(&device).closure(),
        &device,
    )
    .unwrap();
    assert!(matches!(
        t.step(Tensor::zeros([2, 1, 16, 16], &device)),
        Err(DarkeningError::Shape { .. })
    ));
    assert!(matches!(
        t.step(Tensor::zeros([2, 3, 1, 16], &device)),
        Err(DarkeningError::Shape { .. })
    ));
    let before = params(t.net());
    let nan = Tensor::<4>::full([2, 3, 16, 16], f32::NAN, &device);
    assert!(matches!(
        t.step(nan),
        Err(DarkeningError::NonFinite {
            what: "loss",
            step: 0,
            ..
        })
    ));
    assert_eq!(t.steps_done(), 0);
    assert_eq!(
        params(t.net()),
        before,
        "a failed step must not change the network"
    );
    assert!(matches!(
        DarkeningTrainer::new(
            DarkeningTrainerConfig::new().with_lr(-1.0),
            net(8, &device),
            Extractor::new(&device).closure(),
            &device,
        ),
        Err(DarkeningError::Config { name: "lr", .. })
    ));
}

/// A trainer of `iterations` steps (seed 4) that checkpoints every 2 steps.
fn checkpointing_trainer(
    iterations: u64,
    device: &Device,
) -> DarkeningTrainer<impl darkening_minmax::FeatureExtractor> {
    DarkeningTrainer::new(
        DarkeningTrainerConfig::new()
            .with_iterations(iterations)
            .with_checkpoint_every(2)
            .with_seed(4),
        net(5, device),
        Extractor::new(device).closure(),
        device,
    )
    .unwrap()
}

#[test]
fn full_disk_stops_with_an_io_error_and_the_run_resumes() {
    use nightvision_core::testing::full_disk::{
        full_disk_child, is_file_too_large, run_with_file_size_limit,
    };
    const NAME: &str = "full_disk_stops_with_an_io_error_and_the_run_resumes";
    let device = Device::default().autodiff();
    let trainer = |iterations| checkpointing_trainer(iterations, &device);
    if let Some(dir) = full_disk_child() {
        // Resumed at step 2, the checkpoint of step 4 does not fit on the disk.
        let ckpt = CheckpointDir::new(dir).unwrap();
        let err = trainer(4)
            .train(|s| Some(images(s, &device)), Some(&ckpt), |_| {})
            .unwrap_err();
        assert!(is_file_too_large(&err), "{err}");
        assert!(matches!(err, DarkeningError::Core(_)), "{err}");
        let (latest, _, _) = ckpt.latest::<serde::de::IgnoredAny>().unwrap().unwrap();
        assert_eq!(latest, 2, "the previous checkpoint stays the newest");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ckpt = CheckpointDir::new(dir.path()).unwrap();
    trainer(2)
        .train(|s| Some(images(s, &device)), Some(&ckpt), |_| {})
        .unwrap();
    run_with_file_size_limit(NAME, dir.path(), 2048);
    // With space again, the run resumes from step 2 and equals an uninterrupted one.
    let resumed = trainer(4)
        .train(|s| Some(images(s, &device)), Some(&ckpt), |_| {})
        .unwrap();
    let straight = trainer(4)
        .train(|s| Some(images(s, &device)), None, |_| {})
        .unwrap();
    assert_eq!(params(&resumed.net), params(&straight.net));
    assert_eq!(resumed.log, straight.log);
}

#[test]
fn a_nan_batch_stops_the_run_with_the_last_good_checkpoint_kept() {
    let device = Device::default().autodiff();
    let trainer = |iterations| checkpointing_trainer(iterations, &device);
    let dir = tempfile::tempdir().unwrap();
    let ckpt = CheckpointDir::new(dir.path()).unwrap();
    trainer(2)
        .train(|s| Some(images(s, &device)), Some(&ckpt), |_| {})
        .unwrap();
    // Resumed at step 2, the data turns to NaN.
    let nan = |_| Some(Tensor::<4>::full([2, 3, 16, 16], f32::NAN, &device));
    match trainer(4).train(nan, Some(&ckpt), |_| {}).unwrap_err() {
        DarkeningError::NonFinite {
            what,
            step,
            checkpoint: Some(path),
            ..
        } => {
            assert_eq!((what, step), ("loss", 2));
            assert!(path.ends_with("step-000002"), "{}", path.display());
        }
        other => panic!("expected NonFinite with the last checkpoint, got {other}"),
    }
    let (latest, _, _) = ckpt.latest::<serde::de::IgnoredAny>().unwrap().unwrap();
    assert_eq!(latest, 2, "the last good checkpoint stays the newest");
}

/// Two replicas of the CPU device against one device, batches of 3 (shards of 2 and 1, each
/// loss weighted by its share): the parameters agree within `TOL` after 6 clipped Adam steps;
/// a two-device run resumed from a checkpoint equals its uninterrupted run bit for bit.
#[test]
fn two_devices_train_as_one_and_resume_exactly() {
    const TOL: f32 = 1e-5;
    let device = Device::default().autodiff();
    let cfg = || {
        DarkeningTrainerConfig::new()
            .with_lr(1e-3)
            .with_seed(5)
            .with_iterations(6)
            .with_checkpoint_every(3)
    };
    let two = nightvision_core::parallel::DataParallel::replicas(&device, 2).unwrap();
    let trainer = |parallel: bool| {
        let t = DarkeningTrainer::new(
            cfg(),
            net(3, &device),
            Extractor::new(&device).closure(),
            &device,
        )
        .unwrap();
        if parallel {
            t.with_data_parallel(two.clone(), vec![Extractor::new(&device).closure()])
                .unwrap()
        } else {
            t
        }
    };
    let batches = |s: u64| Some(batch_of(3, s, &device));
    let one = trainer(false).train(batches, None, |_| {}).unwrap();
    let both = trainer(true).train(batches, None, |_| {}).unwrap();
    let (diff, scale) = nightvision_core::testing::max_param_difference(&one.net, &both.net);
    println!("darkening: max |w(1 device) − w(2 devices)| = {diff:e} (largest |w| {scale:.3})");
    assert!(diff <= TOL, "{diff:e} > {TOL:e}");
    for (a, b) in one.log.iter().zip(&both.log) {
        assert_eq!(a.exposures, b.exposures);
        let rel = (a.losses.total - b.losses.total).abs() / a.losses.total.abs();
        assert!(rel < 1e-5, "loss {} vs {}", a.losses.total, b.losses.total);
    }

    // Killed after step 3 and resumed on two devices: the uninterrupted two-device run.
    let dir = tempfile::tempdir().unwrap();
    let ckpt = CheckpointDir::new(dir.path().join("run")).unwrap();
    let stop_at_3 = |s: u64| (s < 3).then(|| batch_of(3, s, &device));
    trainer(true).train(stop_at_3, Some(&ckpt), |_| {}).unwrap();
    let resumed = trainer(true).train(batches, Some(&ckpt), |_| {}).unwrap();
    assert_eq!(resumed.log, both.log);
    assert_eq!(params(&resumed.net), params(&both.net));

    // One extractor per extra device, and the trainer's device as the main one.
    let err = trainer(false)
        .with_data_parallel(two.clone(), Vec::new())
        .err()
        .unwrap();
    assert!(matches!(err, DarkeningError::Config { .. }), "{err}");
}

#[test]
fn evaluate_loss_is_what_a_step_logs_and_refuses_bad_inputs() {
    let device = Device::default().autodiff();
    let cfg = DarkeningTrainerConfig::new().with_seed(3);
    let init = net(4, &device);
    let x = batch_of(3, 7, &device);
    let extractor = Extractor::new(&device).closure();
    let mut t = DarkeningTrainer::new(cfg.clone(), init.clone(), extractor, &device).unwrap();
    let e = t.exposures(0, 3);
    let extractor = Extractor::new(&device).closure();
    let before = darkening_minmax::evaluate_loss(&cfg, &init, &extractor, x.clone(), &e).unwrap();
    let logged = t.step(x.clone()).unwrap().losses;
    let close = |a: f32, b: f32| (a - b).abs() <= 1e-6 * a.abs().max(1.0);
    for (a, b) in [
        (before.sim, logged.sim),
        (before.exposure, logged.exposure),
        (before.colour, logged.colour),
        (before.tv, logged.tv),
        (before.flex, logged.flex),
        (before.total, logged.total),
    ] {
        assert!(close(a, b), "{before:?} vs the step's {logged:?}");
    }
    // the stepped network scores differently on the same probe
    let after = darkening_minmax::evaluate_loss(&cfg, t.net(), &extractor, x.clone(), &e).unwrap();
    assert_ne!(after.total, before.total);
    // a wrong number of exposures or channels is an error, not a panic
    assert!(matches!(
        darkening_minmax::evaluate_loss(&cfg, &init, &extractor, x.clone(), &e[..2]),
        Err(DarkeningError::Shape { .. })
    ));
    assert!(matches!(
        darkening_minmax::evaluate_loss(&cfg, &init, &extractor, x.narrow(1, 0, 2), &e[..2]),
        Err(DarkeningError::Shape { .. })
    ));
}
