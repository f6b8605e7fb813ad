//! CycleGAN training (docs/PAPERS.md A.4 "CycleGAN baseline", docs/PAPERS.md protocols 3.1): exact resume, the
//! cycle loss decreasing, learning on a toy day/night task, typed configuration errors.

mod common;
use common::{assert_stopped_at, brightness, data, domains, full_disk_case, poisoned_data};

use burn::module::Module;
use burn::tensor::Device;
use nightgen_gan::data::{ScaleCrop, UnpairedBatches};
use nightgen_gan::schedule::LinearDecay;
use nightgen_gan::{
    CycleGan, CycleGanConfig, CycleGanLosses, CycleGanTrainer, EMA_FILE, GanError, GanTrainLog,
    NLayerDiscriminatorConfig, ResnetGeneratorConfig,
};
use nightvision_core::checkpoint::{CheckpointDir, Trained, module_to_bytes};

/// gandtr's networks at toy size: ngf 4, one residual block, ndf 4, two PatchGAN layers.
fn tiny_nets(device: &Device) -> CycleGan {
    CycleGan::with_configs(
        ResnetGeneratorConfig::gandtr_cyclegan()
            .with_ngf(4)
            .with_n_blocks(1),
        NLayerDiscriminatorConfig::new()
            .with_ndf(4)
            .with_n_layers(2),
        device,
    )
}

/// `epochs` epochs (one of them decaying) of `iterations_per_epoch`, a pool of 3 so that the
/// pool is full and swapping within a few iterations.
fn cfg(epochs: usize, iterations_per_epoch: usize) -> CycleGanConfig {
    CycleGanConfig {
        schedule: LinearDecay::new(epochs - 1, 1),
        iterations_per_epoch,
        checkpoint_every: iterations_per_epoch,
        pool_size: 3,
        seed: 11,
        ..CycleGanConfig::gandtr()
    }
}

fn weights(n: &CycleGan) -> Vec<Vec<u8>> {
    vec![
        module_to_bytes(&n.day_to_night).unwrap(),
        module_to_bytes(&n.night_to_day).unwrap(),
        module_to_bytes(&n.night_discriminator).unwrap(),
        module_to_bytes(&n.day_discriminator).unwrap(),
    ]
}

fn strip(mut l: GanTrainLog<CycleGanLosses>) -> GanTrainLog<CycleGanLosses> {
    l.epochs.iter_mut().for_each(|e| e.seconds = 0.0);
    l
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let device = Device::default().autodiff();
    let data = data(1);
    let init = tiny_nets(&device);
    // identity on, so that every loss term is exercised, and instance noise, whose draws must
    // follow the resumed stream
    let c = CycleGanConfig {
        lambda_identity: 0.5,
        d_input_noise: 0.1,
        g_ema_decay: 0.9,
        ..cfg(2, 3)
    };

    let straight_dir = tempfile::tempdir().unwrap();
    let straight_ckpt = CheckpointDir::new(straight_dir.path()).unwrap();
    let Trained {
        net: straight,
        log: straight_log,
    } = CycleGanTrainer::new(c.clone(), &data, &device)
        .unwrap()
        .train(init.clone(), Some(&straight_ckpt))
        .unwrap();

    // A run killed after its first checkpoint: train, then drop the final checkpoint so that the
    // newest one left is the epoch-1 checkpoint (CheckpointDir keeps the previous one). The pool
    // of 3 is full at iteration 3, so iterations 4–6 swap pooled images restored from disk.
    let dir = tempfile::tempdir().unwrap();
    let ckpt = CheckpointDir::new(dir.path()).unwrap();
    let trainer = CycleGanTrainer::new(c.clone(), &data, &device).unwrap();
    let _ = trainer.train(init.clone(), Some(&ckpt)).unwrap();
    let latest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("latest.json")).unwrap()).unwrap();
    assert_eq!(latest["step"], 6);
    assert!(dir.path().join("step-000003/pool_night.bin").exists());
    std::fs::remove_dir_all(dir.path().join("step-000006")).unwrap();
    std::fs::write(
        dir.path().join("latest.json"),
        r#"{"step":3,"dir":"step-000003"}"#,
    )
    .unwrap();
    let Trained {
        net: resumed,
        log: resumed_log,
    } = CycleGanTrainer::new(c, &data, &device)
        .unwrap()
        .train(init, Some(&ckpt))
        .unwrap();

    assert_eq!(straight_log.iterations.len(), 6);
    assert!(straight_log.iterations.iter().all(|s| s.identity > 0.0));
    assert_eq!(strip(resumed_log), strip(straight_log));
    for (a, b) in weights(&straight).into_iter().zip(weights(&resumed)) {
        assert!(a == b, "weights differ after resuming");
    }
    let ema = |n: &CycleGan| module_to_bytes(n.day_to_night_ema.as_ref().unwrap()).unwrap();
    assert!(ema(&straight) == ema(&resumed), "moving averages differ");
    assert!(dir.path().join("step-000003").join(EMA_FILE).exists());
}

/// With `identity_iterations`, the identity term applies to the first iterations only.
#[test]
fn identity_warm_up_applies_to_the_first_iterations_only() {
    let device = Device::default().autodiff();
    let data = data(1);
    let c = CycleGanConfig {
        lambda_identity: 0.5,
        identity_iterations: Some(2),
        ..cfg(2, 3)
    };
    let Trained { log, .. } = CycleGanTrainer::new(c, &data, &device)
        .unwrap()
        .train(tiny_nets(&device), None)
        .unwrap();
    let idt: Vec<f32> = log.iterations.iter().map(|s| s.identity).collect();
    assert_eq!(idt.len(), 6);
    assert!(
        idt[..2].iter().all(|&v| v > 0.0) && idt[2..].iter().all(|&v| v == 0.0),
        "{idt:?}"
    );
}

/// The generator's moving average after one iteration is `m·θ₀ + (1 − m)·θ₁` (θ₀ the initial,
/// θ₁ the trained weights), and without a decay none is kept.
#[test]
fn generator_moving_average_closed_form() {
    let device = Device::default().autodiff();
    let data = data(1);
    let init = tiny_nets(&device);
    let first_conv = |g: &nightgen_gan::ResnetGenerator| -> Vec<f32> {
        let nightgen_gan::Layer::Conv(c) = &g.model[1] else {
            panic!("model.1 is the 7×7 convolution")
        };
        c.weight.val().into_data().try_into_vec_as().unwrap()
    };
    let theta0 = first_conv(&init.day_to_night);
    let m = 0.75;
    let c = CycleGanConfig {
        g_ema_decay: m,
        ..cfg(1, 1)
    };
    let Trained { net, .. } = CycleGanTrainer::new(c, &data, &device)
        .unwrap()
        .train(init.clone(), None)
        .unwrap();
    let theta1 = first_conv(&net.day_to_night);
    let ema = first_conv(net.day_to_night_ema.as_ref().unwrap());
    assert!(theta0.iter().zip(&theta1).any(|(a, b)| a != b));
    for ((e, a), b) in ema.iter().zip(&theta0).zip(&theta1) {
        let want = m as f32 * a + (1.0 - m as f32) * b;
        assert!(
            (e - want).abs() <= 1e-7 + 1e-6 * want.abs(),
            "{e} vs {want}"
        );
    }
    let Trained { net, .. } = CycleGanTrainer::new(cfg(1, 1), &data, &device)
        .unwrap()
        .train(init, None)
        .unwrap();
    assert!(net.day_to_night_ema.is_none());
    // batch norm's running statistics are copied into the average, not averaged
    let bn_nets = CycleGan::with_configs(
        ResnetGeneratorConfig::gandtr_cyclegan()
            .with_ngf(4)
            .with_n_blocks(1)
            .with_norm(nightgen_gan::NormKind::Batch),
        NLayerDiscriminatorConfig::new()
            .with_ndf(4)
            .with_n_layers(2),
        &device,
    );
    let c = CycleGanConfig {
        g_ema_decay: m,
        ..cfg(1, 1)
    };
    let Trained { net, .. } = CycleGanTrainer::new(c, &data, &device)
        .unwrap()
        .train(bn_nets, None)
        .unwrap();
    let running_mean = |g: &nightgen_gan::ResnetGenerator| -> Vec<f32> {
        let nightgen_gan::Layer::BatchNorm(bn) = &g.model[2] else {
            panic!("model.2 is the first norm")
        };
        bn.running_mean
            .value()
            .into_data()
            .try_into_vec_as()
            .unwrap()
    };
    let online = running_mean(&net.day_to_night);
    assert!(online.iter().any(|v| *v != 0.0));
    assert_eq!(running_mean(net.day_to_night_ema.as_ref().unwrap()), online);
    let bad = CycleGanConfig {
        g_ema_decay: 1.0,
        ..cfg(1, 1)
    };
    assert!(matches!(
        CycleGanTrainer::new(bad, &data, &device),
        Err(GanError::Config {
            name: "g_ema_decay",
            ..
        })
    ));
}

/// λ = 10 makes the cycle term dominate the generators' objective, so it must fall: the mean
/// over the last 5 of 30 iterations must be below 80 % of the mean over the first 5 (measured:
/// 12.8 → 8.8, 69 %; the sequence falls almost monotonically).
#[test]
fn cycle_loss_decreases() {
    let device = Device::default().autodiff();
    let data = data(1);
    let mut c = cfg(1, 30);
    c.schedule = LinearDecay::new(1, 0);
    c.lr = 2e-3;
    let Trained { log, .. } = CycleGanTrainer::new(c, &data, &device)
        .unwrap()
        .train(tiny_nets(&device), None)
        .unwrap();
    let cycle = |s: &CycleGanLosses| s.cycle_day + s.cycle_night;
    let first: f32 = log.iterations[..5].iter().map(cycle).sum::<f32>() / 5.0;
    let last: f32 = log.iterations[25..].iter().map(cycle).sum::<f32>() / 5.0;
    assert!(last < 0.8 * first, "cycle loss {first} → {last}");
    assert_eq!(log.epochs.len(), 1);
    assert_eq!(log.epochs[0].iterations, 30);
}

/// The day→night generator must learn to output dark images: its adversarial term pulls the
/// output towards the night domain's mean brightness (≈ 0.1) while the cycle term keeps the
/// texture recoverable.
#[test]
fn day_to_night_learns_to_darken() {
    let device = Device::default().autodiff();
    let data = data(2);
    let mut c = cfg(1, 40);
    c.schedule = LinearDecay::new(1, 0);
    c.lr = 2e-3;
    let init = tiny_nets(&device);
    let before = brightness(&init.day_to_night.valid());
    let Trained { net: trained, .. } = CycleGanTrainer::new(c, &data, &device)
        .unwrap()
        .train(init, None)
        .unwrap();
    let after = brightness(&trained.day_to_night.valid());
    println!("brightness {before} → {after}");
    assert!(before > 0.3, "untrained output mean {before}");
    assert!(after < 0.2, "trained output mean {after} (before {before})");
}

#[test]
fn bad_settings_are_typed_errors() {
    let device = Device::default().autodiff();
    let (day, night) = domains();
    let odd = UnpairedBatches::new(
        day,
        night,
        ScaleCrop {
            size: 30,
            min_scale: 0.8,
        },
        1,
    )
    .unwrap();
    assert!(matches!(
        CycleGanTrainer::new(CycleGanConfig::default(), &odd, &device),
        Err(GanError::Config {
            name: "crop size",
            ..
        })
    ));
    let ok = data(1);
    assert!(matches!(
        CycleGanTrainer::new(CycleGanConfig::default(), &ok, &Device::default()),
        Err(GanError::Config { name: "device", .. })
    ));
    for (bad, field) in [
        (
            CycleGanConfig {
                lr: f64::NAN,
                ..CycleGanConfig::default()
            },
            "lr",
        ),
        (
            CycleGanConfig {
                lambda_identity: -0.5,
                ..CycleGanConfig::cyclegan()
            },
            "lambda_identity",
        ),
        (
            CycleGanConfig {
                identity_iterations: Some(0),
                ..CycleGanConfig::cyclegan()
            },
            "identity_iterations",
        ),
        (
            CycleGanConfig {
                schedule: LinearDecay::new(0, 0).with_epoch_count(1),
                ..CycleGanConfig::default()
            },
            "schedule",
        ),
    ] {
        match CycleGanTrainer::new(bad, &ok, &device) {
            Err(GanError::Config { name, .. }) => assert_eq!(name, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    // The default 70×70 PatchGAN (three stride-2 stages) has an empty output map on 16×16
    // crops: an error before training, not a panic inside a convolution.
    let (day, night) = domains();
    let small = UnpairedBatches::new(
        day,
        night,
        ScaleCrop {
            size: 16,
            min_scale: 0.8,
        },
        1,
    )
    .unwrap();
    let nets = CycleGan::with_configs(
        ResnetGeneratorConfig::new().with_ngf(2).with_n_blocks(1),
        NLayerDiscriminatorConfig::new().with_ndf(2),
        &device,
    );
    let trainer = CycleGanTrainer::new(cfg(1, 1), &small, &device).unwrap();
    assert!(matches!(
        trainer.train(nets, None),
        Err(GanError::Config {
            name: "crop size",
            ..
        })
    ));
}

#[test]
fn non_finite_loss_stops_with_the_last_good_checkpoint_kept() {
    let device = Device::default().autodiff();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = CheckpointDir::new(dir.path()).unwrap();
    // One clean epoch (checkpoint at iteration 2), then a corrupt data set for the second.
    CycleGanTrainer::new(cfg(1, 2), &data(1), &device)
        .unwrap()
        .train(tiny_nets(&device), Some(&ckpt))
        .unwrap();
    let err = CycleGanTrainer::new(cfg(2, 2), &poisoned_data(1), &device)
        .unwrap()
        .train(tiny_nets(&device), Some(&ckpt))
        .unwrap_err();
    assert_stopped_at(err, 2, &ckpt);
}

#[test]
fn full_disk_stops_with_an_io_error_and_the_run_resumes() {
    let device = Device::default().autodiff();
    let run = |epochs, ckpt: &CheckpointDir| {
        CycleGanTrainer::new(cfg(epochs, 2), &data(1), &device)
            .unwrap()
            .train(tiny_nets(&device), Some(ckpt))
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

/// Instance noise reaches the discriminators and nothing else: in the first iteration the
/// generators' cycle terms (computed before any noise) are equal with and without it, the
/// discriminator losses differ; a negative σ is refused.
#[test]
fn instance_noise_changes_only_what_the_discriminators_see() {
    let device = Device::default().autodiff();
    let data = data(1);
    let run = |sigma: f64| {
        let c = CycleGanConfig {
            d_input_noise: sigma,
            ..cfg(1, 1)
        };
        CycleGanTrainer::new(c, &data, &device)
            .unwrap()
            .train(tiny_nets(&device), None)
            .unwrap()
            .log
            .iterations[0]
    };
    let (plain, noisy) = (run(0.0), run(0.5));
    assert_eq!(plain.cycle_day, noisy.cycle_day);
    assert_eq!(plain.cycle_night, noisy.cycle_night);
    assert_ne!(plain.discriminator_night, noisy.discriminator_night);
    assert_ne!(
        plain.adversarial_day_to_night,
        noisy.adversarial_day_to_night
    );
    let bad = CycleGanConfig {
        d_input_noise: -0.1,
        ..cfg(1, 1)
    };
    assert!(CycleGanTrainer::new(bad, &data, &device).is_err());
}
