//! CUT / NEG-CUT training (docs/PAPERS.md protocols 3.2, docs/PAPERS.md A.4, B.1): exact resume in both modes,
//! learning on a toy day/night task, NEG-CUT's N step and F′ momentum update, typed
//! configuration errors.

mod common;
use common::{assert_stopped_at, brightness, data, full_disk_case, poisoned_data};

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor};
use nightgen_gan::schedule::LinearDecay;
use nightgen_gan::{
    CutConfig, CutGan, CutLosses, CutMode, CutTrainer, GanError, GanTrainLog,
    NLayerDiscriminatorConfig, PatchSampleF, ResnetGeneratorConfig,
};
use nightvision_core::checkpoint::{CheckpointDir, Trained, module_to_bytes};
use nightvision_core::rng::seeded;

/// Toy settings: CUT's loss weights (λ_NCE = λ_idt = 1) on gandtr's generator layout (no
/// anti-aliasing) with ngf 4 and one residual block, NCE on the encoder layers 4 (16×16), 8 (8×8)
/// and the block 10, 16 patches, 16-wide F, 8-dim noise.
fn cfg(mode: CutMode, epochs: usize, iterations_per_epoch: usize) -> CutConfig {
    CutConfig {
        mode,
        nce_layers: vec![4, 8, 10],
        num_patches: 16,
        feature_nc: 16,
        noise_dim: 8,
        schedule: LinearDecay::new(epochs - 1, 1),
        iterations_per_epoch,
        checkpoint_every: iterations_per_epoch,
        seed: 5,
        ..CutConfig::cut()
    }
}

/// F, F′ and N are initialised on the host (`init_weights`), so no device seeding is needed and
/// tests running in parallel cannot disturb each other's weights.
fn tiny_nets(c: &CutConfig, device: &Device) -> CutGan {
    c.init_nets(
        ResnetGeneratorConfig::gandtr_cut()
            .with_ngf(4)
            .with_n_blocks(1)
            .init(device),
        NLayerDiscriminatorConfig::new()
            .with_ndf(4)
            .with_n_layers(2)
            .init(device),
        device,
    )
    .unwrap()
}

fn weights(n: &CutGan) -> Vec<Vec<u8>> {
    let mut w = vec![
        module_to_bytes(&n.generator).unwrap(),
        module_to_bytes(&n.discriminator).unwrap(),
        module_to_bytes(&n.feature).unwrap(),
    ];
    if let Some(neg) = &n.negatives {
        w.push(module_to_bytes(&neg.generator).unwrap());
        w.push(module_to_bytes(&neg.momentum_feature).unwrap());
    }
    w
}

fn strip(mut l: GanTrainLog<CutLosses>) -> GanTrainLog<CutLosses> {
    l.epochs.iter_mut().for_each(|e| e.seconds = 0.0);
    l
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let device = Device::default().autodiff();
    let data = data(2);
    for mode in [CutMode::Cut, CutMode::NegCut] {
        let c = cfg(mode, 2, 2);
        let init = tiny_nets(&c, &device);

        let straight_dir = tempfile::tempdir().unwrap();
        let straight_ckpt = CheckpointDir::new(straight_dir.path()).unwrap();
        let Trained {
            net: straight,
            log: straight_log,
        } = CutTrainer::new(c.clone(), &data, &device)
            .unwrap()
            .train(init.clone(), Some(&straight_ckpt))
            .unwrap();

        // A run killed after its first checkpoint: train, then drop the final checkpoint so
        // that the newest one left is the epoch-1 checkpoint.
        let dir = tempfile::tempdir().unwrap();
        let ckpt = CheckpointDir::new(dir.path()).unwrap();
        let trainer = CutTrainer::new(c.clone(), &data, &device).unwrap();
        let _ = trainer.train(init.clone(), Some(&ckpt)).unwrap();
        std::fs::remove_dir_all(dir.path().join("step-000004")).unwrap();
        std::fs::write(
            dir.path().join("latest.json"),
            r#"{"step":2,"dir":"step-000002"}"#,
        )
        .unwrap();
        let Trained {
            net: resumed,
            log: resumed_log,
        } = CutTrainer::new(c, &data, &device)
            .unwrap()
            .train(init, Some(&ckpt))
            .unwrap();

        assert_eq!(straight_log.iterations.len(), 4, "{mode:?}");
        let negcut = mode == CutMode::NegCut;
        for s in &straight_log.iterations {
            assert!(s.nce > 0.0 && s.nce_identity > 0.0, "{mode:?}: {s:?}");
            assert_eq!(s.negative_nce > 0.0, negcut, "{mode:?}: {s:?}");
        }
        assert_eq!(strip(resumed_log), strip(straight_log), "{mode:?}");
        let (a, b) = (weights(&straight), weights(&resumed));
        assert_eq!(a.len(), if negcut { 5 } else { 3 });
        for (i, (a, b)) in a.iter().zip(&b).enumerate() {
            assert!(a == b, "{mode:?}: network {i} differs after resuming");
        }
    }
}

/// The generator must learn to output dark images: the adversarial term pulls its output towards
/// the night domain's mean brightness (≈ 0.1) while PatchNCE keeps the content.
#[test]
fn generator_learns_to_darken() {
    let device = Device::default().autodiff();
    let data = data(2);
    let mut c = cfg(CutMode::Cut, 1, 40);
    c.schedule = LinearDecay::new(1, 0);
    c.lr = 2e-3;
    let init = tiny_nets(&c, &device);
    let before = brightness(&init.generator.valid());
    let Trained { net: trained, log } = CutTrainer::new(c, &data, &device)
        .unwrap()
        .train(init, None)
        .unwrap();
    let after = brightness(&trained.generator.valid());
    println!("brightness {before} → {after}");
    assert!(log.iterations.iter().all(|s| s.nce.is_finite()));
    assert!(before > 0.3, "untrained output mean {before}");
    assert!(after < 0.2, "trained output mean {after} (before {before})");
}

/// NEG-CUT's N step: one Adam step (the trainer's optimiser settings) on `L_N` from
/// [`CutTrainer::negative_objective`] must raise the NCE that N maximises, evaluated on the same
/// batch, patch positions and noise (the same `rng` seed).
#[test]
fn negative_step_increases_the_nce() {
    let device = Device::default().autodiff();
    let data = data(2);
    let c = cfg(CutMode::NegCut, 1, 1);
    let nets = tiny_nets(&c, &device);
    let trainer = CutTrainer::new(c.clone(), &data, &device).unwrap();
    let (day, night) = data.sample(&mut seeded(3), &device).unwrap();
    let (x, y) = (
        day.mul_scalar(2.0).sub_scalar(1.0),
        night.mul_scalar(2.0).sub_scalar(1.0),
    );
    let value = |t: &Tensor<1>| -> f32 { t.clone().into_scalar() };
    let mut nets = nets;
    let mut optim = AdamConfig::new()
        .with_beta_1(c.beta1)
        .with_beta_2(0.999)
        .with_epsilon(1e-8)
        .init();
    let mut nce = Vec::new();
    let mut loss = Vec::new();
    for _ in 0..4 {
        let obj = trainer
            .negative_objective(&nets, x.clone(), y.clone(), &mut seeded(4))
            .unwrap();
        nce.push(value(&obj.nce));
        loss.push(value(&obj.loss));
        assert!(value(&obj.diversity) <= 0.0);
        let mut neg = nets.negatives.take().unwrap();
        let grads = GradientsParams::from_grads(obj.loss.backward(), &neg.generator);
        neg.generator = optim.step(c.lr, neg.generator, grads);
        nets.negatives = Some(neg);
    }
    println!("NCE {nce:?}, L_N {loss:?}");
    // the same draw gives the same value
    let again = trainer
        .negative_objective(&nets, x.clone(), y.clone(), &mut seeded(4))
        .unwrap();
    let last = value(&again.nce);
    let again2 = trainer
        .negative_objective(&nets, x, y, &mut seeded(4))
        .unwrap();
    assert_eq!(last, value(&again2.nce));
    nce.push(last);
    for w in nce.windows(2) {
        assert!(w[1] > w[0] + NCE_RISE, "NCE {nce:?}");
    }
}

/// Minimum rise of the N step's NCE per Adam step at lr 2e-4. Adam's first steps move every
/// weight of N by ≈ lr against the sign of its gradient of `L_N`; the measured NCE goes
/// 0.82 → 2.92 → 4.31 → 4.99 → …, while the f32 evaluation noise of a loss of that size is ≈ 1e-6.
const NCE_RISE: f32 = 1e-3;

/// A NEG-CUT iteration runs, and F′ follows F by the EMA after F's step:
/// `F′₁ = 0.9·F′₀ + 0.1·F₁`.
#[test]
fn negcut_iteration_updates_the_momentum_features() {
    let device = Device::default().autodiff();
    let data = data(1);
    let c = cfg(CutMode::NegCut, 1, 1);
    let nets = tiny_nets(&c, &device);
    let f0 = nets.negatives.as_ref().unwrap().momentum_feature.clone();
    let n0 = module_to_bytes(&nets.negatives.as_ref().unwrap().generator).unwrap();
    let Trained { net: trained, log } = CutTrainer::new(c, &data, &device)
        .unwrap()
        .train(nets, None)
        .unwrap();
    let s = log.iterations[0];
    assert!(
        s.negative_nce > 0.0 && s.nce > 0.0 && s.diversity <= 0.0,
        "{s:?}"
    );
    let neg = trained.negatives.as_ref().unwrap();
    assert!(
        module_to_bytes(&neg.generator).unwrap() != n0,
        "N was not stepped"
    );
    let params = |f: &PatchSampleF| -> Vec<Tensor<2>> {
        f.mlps
            .iter()
            .flat_map(|m| [m.fc1.weight.val(), m.fc2.weight.val()])
            .collect()
    };
    let (old, online, new) = (
        params(&f0),
        params(&trained.feature),
        params(&neg.momentum_feature),
    );
    for ((o, f), n) in old.into_iter().zip(online).zip(new) {
        let want = o.clone().mul_scalar(0.9) + f.clone().mul_scalar(0.1);
        let err: f32 = (n - want).abs().max().into_scalar();
        assert!(err < EMA_TOL, "EMA error {err}");
        // F moved in its step, so the EMA is not a no-op
        let moved: f32 = (f - o).abs().max().into_scalar();
        assert!(moved > 1e-4, "{moved}");
    }
}

/// `0.9·a + 0.1·b` in f32 on weights of magnitude ≲ 0.1: a few ulps ≈ 1e-8.
const EMA_TOL: f32 = 1e-6;

#[test]
fn bad_settings_are_typed_errors() {
    let device = Device::default().autodiff();
    let ok = data(1);
    let expect = |c: CutConfig, field: &str| match CutTrainer::new(c, &ok, &device) {
        Err(GanError::Config { name, .. }) => assert_eq!(name, field),
        other => panic!("{field}: {other:?}"),
    };
    expect(
        CutConfig {
            num_patches: 15,
            ..cfg(CutMode::NegCut, 1, 1)
        },
        "num_patches",
    );
    expect(
        CutConfig {
            temperature: 0.0,
            ..CutConfig::cut()
        },
        "temperature",
    );
    expect(
        CutConfig {
            nce_layers: vec![],
            ..CutConfig::cut()
        },
        "nce_layers",
    );
    expect(
        CutConfig {
            ema_decay: 1.5,
            ..CutConfig::negcut()
        },
        "ema_decay",
    );
    assert!(matches!(
        CutTrainer::new(CutConfig::cut(), &ok, &Device::default()),
        Err(GanError::Config { name: "device", .. })
    ));
    // a layer index beyond the generator
    let c = CutConfig {
        nce_layers: vec![4, 99],
        ..cfg(CutMode::Cut, 1, 1)
    };
    let g = ResnetGeneratorConfig::new()
        .with_ngf(2)
        .with_n_blocks(1)
        .init(&device);
    let d = NLayerDiscriminatorConfig::new()
        .with_ndf(2)
        .with_n_layers(2)
        .init(&device);
    assert!(matches!(
        c.init_nets(g, d, &device),
        Err(GanError::Config {
            name: "nce_layers",
            ..
        })
    ));
    // CUT networks handed to a NEG-CUT trainer
    let cut_nets = tiny_nets(&cfg(CutMode::Cut, 1, 1), &device);
    let trainer = CutTrainer::new(cfg(CutMode::NegCut, 1, 1), &ok, &device).unwrap();
    assert!(matches!(
        trainer.train(cut_nets, None),
        Err(GanError::Config {
            name: "negatives",
            ..
        })
    ));
}

#[test]
fn non_finite_loss_stops_with_the_last_good_checkpoint_kept() {
    let device = Device::default().autodiff();
    for mode in [CutMode::Cut, CutMode::NegCut] {
        let dir = tempfile::tempdir().unwrap();
        let ckpt = CheckpointDir::new(dir.path()).unwrap();
        // One clean epoch (checkpoint at iteration 2), then a corrupt data set for the second.
        let c = cfg(mode, 1, 2);
        CutTrainer::new(c.clone(), &data(1), &device)
            .unwrap()
            .train(tiny_nets(&c, &device), Some(&ckpt))
            .unwrap();
        let c = cfg(mode, 2, 2);
        let err = CutTrainer::new(c.clone(), &poisoned_data(1), &device)
            .unwrap()
            .train(tiny_nets(&c, &device), Some(&ckpt))
            .unwrap_err();
        assert_stopped_at(err, 2, &ckpt);
    }
}

#[test]
fn full_disk_stops_with_an_io_error_and_the_run_resumes() {
    let device = Device::default().autodiff();
    let run = |epochs, ckpt: &CheckpointDir| {
        let c = cfg(CutMode::NegCut, epochs, 2);
        CutTrainer::new(c.clone(), &data(1), &device)
            .unwrap()
            .train(tiny_nets(&c, &device), Some(ckpt))
            .map(|t| t.log.iterations.len())
    };
    full_disk_case(
        "full_disk_stops_with_an_io_error_and_the_run_resumes",
        |ckpt| {
            run(1, ckpt).unwrap();
        },
        |ckpt| run(2, ckpt),
    );
}

/// Instance noise (`d_input_noise`) changes the discriminator's inputs and nothing else: the
/// first iteration's NCE terms (same patches, same translation) are the same with and without it.
#[test]
fn instance_noise_changes_only_what_the_discriminator_sees() {
    let device = Device::default().autodiff();
    let data = data(1);
    let run = |sigma: f64| {
        let c = CutConfig {
            d_input_noise: sigma,
            ..cfg(CutMode::Cut, 1, 1)
        };
        CutTrainer::new(c.clone(), &data, &device)
            .unwrap()
            .train(tiny_nets(&c, &device), None)
            .unwrap()
            .log
            .iterations[0]
    };
    let (plain, noisy) = (run(0.0), run(0.5));
    assert_eq!(plain.nce, noisy.nce);
    assert_eq!(plain.nce_identity, noisy.nce_identity);
    assert_ne!(plain.discriminator, noisy.discriminator);
    assert_ne!(plain.adversarial, noisy.adversarial);
    let bad = CutConfig {
        d_input_noise: -0.1,
        ..cfg(CutMode::Cut, 1, 1)
    };
    assert!(matches!(
        CutTrainer::new(bad, &data, &device),
        Err(GanError::Config {
            name: "d_input_noise",
            ..
        })
    ));
}
