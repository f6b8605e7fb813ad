//! Time of one training iteration of the examples' translators and of one step of the Similarity
//! Min-Max darkening network, at the examples' default shapes, on the default device with random
//! weights (issue 16; `benches/gan_vs_torch.py` runs the same computation in PyTorch).
//!
//! - `iteration/cut`: one CUT iteration as the `nocplace` example trains its translator
//!   (`NocPlaceConfig` defaults: crops of 64² of images resized to a shorter side of 96, batch 1,
//!   CUT's anti-aliased generator with ngf 16 and 6 blocks, anti-aliased PatchGAN with ndf 16,
//!   `CutConfig::cut()` with 64 patches — NCE layers 0, 4, 8, 12, 16, identity NCE — and lr 5e-4):
//!   D step, G + F step.
//! - `iteration/hedngan`: one HEDN-GAN iteration as the `dark_side` example trains its translator
//!   (`DarkSideConfig` defaults: crops of 64² of images resized to a shorter side of 96, batch 2,
//!   `gandtr_hedngan` generator and discriminator with the example's instance norm, N(0, 0.02)
//!   init, ngf = ndf = 16, 6 blocks, transposed convolutions, lr 5e-4; full-width HED student and
//!   frozen teacher, randomly initialised): D step, student-detector step, G step.
//! - `step/darkening`: one `DarkeningTrainer::step` as the `similarity_minmax` example's stage 1
//!   (`SimilarityMinMaxConfig` defaults: batch 4 of 128² crops, `DarkeningNetConfig::new()`,
//!   frozen MobileNetV2 trunk with random weights, lr 1e-4).
//!
//! The data of the two GAN rows is read as the examples read it: 8 random 320×240 PNGs per domain
//! written to a temporary folder, decoded, resized and cropped every iteration (the darkening row
//! times the step on a fixed random batch, as the example loads its batch outside the step).
//!
//! The GAN rows time `train` calls of 4 iterations each (2 epochs of 2, no checkpoint, no
//! progress bar) with `iter_custom`: each call's wall time divided by 4 is one iteration's time
//! (the networks are rebuilt, untimed, before every call; the optimiser set-up inside `train` is
//! included, shared by the 4 iterations).
//!
//! ```text
//! cargo bench -p nightgen-gan --bench iterations --profile dev
//! ```

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use backbones::MobileNetV2Config;
use burn::tensor::{Device, Distribution, Tensor};
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use darkening_minmax::{DarkeningNetConfig, DarkeningTrainer, DarkeningTrainerConfig, frozen};
use hed_edges::HedConfig;
use nightgen_gan::data::{ScaleCrop, UnpairedBatches, image_files};
use nightgen_gan::train_cut::{CutConfig, CutTrainer};
use nightgen_gan::{
    HedNGan, HedNGanConfig, HedNGanTrainer, InitConfig, LambdaP2p, LinearDecay,
    NLayerDiscriminatorConfig, NormKind, ResnetGeneratorConfig,
};
use nightvision_core::augment::ImageSource;

/// Iterations per timed `train` call (2 epochs of 2, as the examples' 2-epoch schedules).
const ITERATIONS: usize = 4;
const ITERATIONS_PER_EPOCH: usize = 2;

// `NocPlaceConfig` defaults (src/pipelines/nocplace.rs; the umbrella crate, not reachable from
// here): crop 64, ngf 16 (also the discriminator's ndf), blocks 6, patches 64, gan_lr 5e-4,
// translator CUT; the translator's batch is 1 and the shorter side crop·3/2.
const NOC_CROP: usize = 64;
const NOC_NGF: usize = 16;
const NOC_BLOCKS: usize = 6;
const NOC_PATCHES: usize = 64;
const NOC_LR: f64 = 5e-4;
const NOC_BATCH: usize = 1;

// `DarkSideConfig` defaults (src/pipelines/dark_side.rs): crop 64, gan_batch 2, load_size None
// (shorter side crop·3/2), ngf 16, ndf None (= ngf), blocks 6, norm instance, init normal
// (`InitConfig::cyclegan()`), antialias_up false, gan_lr 5e-4, d_noise 0.
const DSA_CROP: usize = 64;
const DSA_BATCH: usize = 2;
const DSA_NGF: usize = 16;
const DSA_BLOCKS: usize = 6;
const DSA_LR: f64 = 5e-4;

// `SimilarityMinMaxConfig` defaults (src/pipelines/similarity_minmax.rs): d_batch 4, crop 128,
// d_lr 1e-4, d_iterations 100 (milestone at 2/3).
const SMM_BATCH: usize = 4;
const SMM_CROP: usize = 128;
const SMM_LR: f64 = 1e-4;
const SMM_ITERATIONS: u64 = 100;

/// 8 random 320×240 PNGs per domain in `dir/trainA` (day) and `dir/trainB` (night).
fn write_images(dir: &Path) {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        // xorshift64*: deterministic noise without another dependency
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
    };
    for (domain, gain) in [("trainA", 1.0_f32), ("trainB", 0.25)] {
        let folder = dir.join(domain);
        std::fs::create_dir_all(&folder).unwrap();
        for k in 0..8 {
            let img = image::RgbImage::from_fn(320, 240, |_, _| {
                image::Rgb([next(), next(), next()].map(|v| (f32::from(v) * gain) as u8))
            });
            img.save(folder.join(format!("{k:02}.png"))).unwrap();
        }
    }
}

fn batches(dir: &Path, crop: usize, batch: usize) -> UnpairedBatches {
    let day = ImageSource::Files(image_files(dir.join("trainA")).unwrap());
    let night = ImageSource::Files(image_files(dir.join("trainB")).unwrap());
    UnpairedBatches::new(
        day,
        night,
        ScaleCrop {
            size: crop,
            min_scale: 0.8,
        },
        batch,
    )
    .unwrap()
    .with_shorter_side(Some(crop * 3 / 2))
}

/// Runs `call` (one `train` of [`ITERATIONS`] iterations, after an untimed `setup`) per
/// criterion iteration and returns the summed time per training iteration.
fn per_iteration<S, T>(
    iters: u64,
    mut setup: impl FnMut() -> S,
    mut call: impl FnMut(S) -> T,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let input = setup();
        let t0 = Instant::now();
        black_box(call(input));
        total += t0.elapsed() / ITERATIONS as u32;
    }
    total
}

fn bench_iterations(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    write_images(tmp.path());
    let device = Device::default().autodiff();
    device.seed(0);
    let mut group = c.benchmark_group("iteration");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_millis(500));
    // 10 flat samples of one `train` call each (HEDN-GAN: ~3 s a call on 2 CPU cores)
    group.measurement_time(Duration::from_secs(30));

    // CUT as `nocplace::train_translator` builds it
    let data = batches(tmp.path(), NOC_CROP, NOC_BATCH);
    let cut_cfg = CutConfig {
        lr: NOC_LR,
        num_patches: NOC_PATCHES,
        schedule: LinearDecay::new(1, 1),
        iterations_per_epoch: ITERATIONS_PER_EPOCH,
        checkpoint_every: ITERATIONS,
        seed: 0,
        progress: false,
        ..CutConfig::cut()
    };
    let trainer = CutTrainer::new(cut_cfg.clone(), &data, &device).unwrap();
    group.bench_function("cut", |b| {
        b.iter_custom(|iters| {
            per_iteration(
                iters,
                || {
                    cut_cfg
                        .init_nets(
                            ResnetGeneratorConfig::cut()
                                .with_ngf(NOC_NGF)
                                .with_n_blocks(NOC_BLOCKS)
                                .init(&device),
                            NLayerDiscriminatorConfig::cut()
                                .with_ndf(NOC_NGF)
                                .with_init_seed(1)
                                .init(&device),
                            &device,
                        )
                        .unwrap()
                },
                |nets| {
                    let t = trainer.train(nets, None).unwrap();
                    assert_eq!(t.log.iterations.len(), ITERATIONS);
                    t
                },
            )
        })
    });

    // HEDN-GAN as `dark_side::train_translator` builds it (random HED weights)
    let data = batches(tmp.path(), DSA_CROP, DSA_BATCH);
    let gan_cfg = HedNGanConfig {
        lr: DSA_LR,
        d_input_noise: 0.0,
        schedule: LambdaP2p::new().with_epochs(2).with_decay_epochs(1),
        iterations_per_epoch: ITERATIONS_PER_EPOCH,
        checkpoint_every: ITERATIONS,
        seed: 0,
        progress: false,
        ..HedNGanConfig::default()
    };
    group.bench_function("hedngan", |b| {
        b.iter_custom(|iters| {
            per_iteration(
                iters,
                || {
                    let nets = HedNGan {
                        generator: ResnetGeneratorConfig::gandtr_hedngan()
                            .with_norm(NormKind::Instance)
                            .with_init_scheme(InitConfig::cyclegan())
                            .with_ngf(DSA_NGF)
                            .with_n_blocks(DSA_BLOCKS)
                            .with_antialias_up(false)
                            .init(&device),
                        discriminator: NLayerDiscriminatorConfig::gandtr_hedngan()
                            .with_norm(NormKind::Instance)
                            .with_init_scheme(InitConfig::cyclegan())
                            .with_ndf(DSA_NGF)
                            .init(&device),
                        // separate initialisations: clones of a lazy HED would share parameters
                        student: HedConfig::new().init(&device),
                    };
                    let teacher = HedConfig::new().init(&device);
                    (nets, teacher)
                },
                |(nets, teacher)| {
                    let t = HedNGanTrainer::new(gan_cfg.clone(), &data, teacher, &device)
                        .unwrap()
                        .train(nets, None)
                        .unwrap();
                    assert_eq!(t.log.iterations.len(), ITERATIONS);
                    t
                },
            )
        })
    });
    group.finish();
}

fn bench_darkening(c: &mut Criterion) {
    let device = Device::default();
    device.seed(0);
    let train_device = device.clone().autodiff();
    let mut group = c.benchmark_group("step");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    // as `similarity_minmax::train_darkening`: the frozen trunk on the autodiff device
    let trunk = frozen(MobileNetV2Config::new().init(&train_device));
    let d_cfg = DarkeningTrainerConfig {
        iterations: SMM_ITERATIONS,
        checkpoint_every: 50,
        lr: SMM_LR,
        milestones: vec![SMM_ITERATIONS * 2 / 3],
        seed: 0,
        ..DarkeningTrainerConfig::new()
    };
    let extractor = move |x: Tensor<4>| trunk.forward(x);
    let mut trainer = DarkeningTrainer::new(
        d_cfg,
        DarkeningNetConfig::new().init(&device),
        extractor,
        &device,
    )
    .unwrap();
    let x = Tensor::<4>::random(
        [SMM_BATCH, 3, SMM_CROP, SMM_CROP],
        Distribution::Uniform(0.0, 1.0),
        &device,
    );
    group.bench_function("darkening", |b| {
        b.iter(|| black_box(trainer.step(black_box(x.clone())).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, bench_iterations, bench_darkening);
criterion_main!(benches);
