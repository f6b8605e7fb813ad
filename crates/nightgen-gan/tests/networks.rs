//! Parity of the ResNet generator and the PatchGAN discriminator with an independent PyTorch
//! re-implementation (docs/PAPERS.md A.2, B.1; docs/PAPERS.md protocols 3.1, 3.2).
//!
//! Fixtures: `scripts/gen_network_fixtures.py` (Debian's torch 1.13) builds the reference
//! `nn.Sequential`s at reduced widths with seeded, non-trivial weights (biases, BatchNorm affine
//! parameters and running statistics all random), saves their `state_dict`s (`.pth`, and two as
//! safetensors) and runs them on 2×3×32×32 (generators) / 2×3×40×48 (discriminators) inputs in
//! `[-1, 1]`. The tests load each `state_dict` through `load_pytorch` (the reference keys, no
//! renaming) and compare whole tensors.
//!
//! BatchNorm is compared in **eval mode** (running statistics; on a non-autodiff device) — the
//! mode translation runs in, and the one where loaded running statistics matter — and in **train
//! mode** (batch statistics; on an autodiff device, as in GAN training).

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use nightgen_gan::{
    GanError, InitConfig, Layer, NLayerDiscriminator, NLayerDiscriminatorConfig, NormKind,
    ResnetGenerator, ResnetGeneratorConfig, translate_images,
};
use nightvision_core::CoreError;
use nightvision_core::testing::{Array, max_rel_err, read_safetensors};

/// f32 convolutions summed in a different order (oneDNN vs burn's flex kernels) through up to 30
/// layers, with instance norms dividing by per-channel standard deviations: a few 1e-6 of the
/// signal scale per layer, so 1e-4 relative to each tensor's largest magnitude.
const REL_TOL: f32 = 1e-4;

/// One running-variance update, `0.9·v + 0.1·var`, where both sides compute the batch variance in
/// f32 over 2048 values: a few f32 ulps.
const RUNNING_VAR_TOL: f32 = 1e-5;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn io() -> BTreeMap<String, Array> {
    read_safetensors(fixture("networks_io.safetensors")).unwrap()
}

fn check(name: &str, got: Tensor<4>, want: &Array) {
    let err = max_rel_err(got, want);
    println!("{name}: max rel err {err:.2e}");
    assert!(err < REL_TOL, "{name}: {err:.3e} ≥ {REL_TOL:e}");
}

fn check_generator(
    case: &str,
    g: &ResnetGenerator,
    layers: &[usize],
    io: &BTreeMap<String, Array>,
) {
    let device = Device::default();
    let x = io[&format!("{case}.x")].tensor::<4>(&device);
    check(
        &format!("{case}.out"),
        g.forward(x.clone()),
        &io[&format!("{case}.out")],
    );
    let feats = g.forward_layers(x.clone(), layers).unwrap();
    assert_eq!(feats.len(), layers.len());
    for (f, i) in feats.into_iter().zip(layers) {
        assert_eq!(f.dims()[1], g.layer_channels[*i], "layer_channels[{i}]");
        check(
            &format!("{case}.layer{i}"),
            f,
            &io[&format!("{case}.layer{i}")],
        );
    }
    // The full forward with features returns the same output and, in the given order, the same
    // features.
    let rev: Vec<usize> = layers.iter().rev().copied().collect();
    let (out, feats) = g.forward_with_layers(x, &rev).unwrap();
    check(
        &format!("{case}.out (with layers)"),
        out,
        &io[&format!("{case}.out")],
    );
    check(
        &format!("{case}.layer{} (reversed order)", rev[0]),
        feats[0].clone(),
        &io[&format!("{case}.layer{}", rev[0])],
    );
}

#[test]
fn instance_norm_generator_matches_pytorch() {
    let device = Device::default();
    let mut g = ResnetGeneratorConfig::new().with_ngf(4).init(&device);
    let report = g.load_pytorch(fixture("networks_gen_inorm.pth")).unwrap();
    // 1 + 2 + 2·9 + 2 + 1 convolutions, each with weight and bias; InstanceNorm has no tensors.
    assert_eq!(report.applied.len(), 2 * 24);
    assert!(report.unused.is_empty() && report.missing.is_empty());
    check_generator("gen_inorm", &g, &[0, 4, 8, 12, 16], &io());
}

#[test]
fn features_before_an_in_place_relu_follow_the_reference() {
    // The reference's `nn.ReLU(True)` overwrites the norm output kept at index 8 when the forward
    // goes on (the fixture's layer8 is post-ReLU and matched above); a list ending at 8 stops
    // before the ReLU and gets the raw norm output.
    let device = Device::default();
    let mut g = ResnetGeneratorConfig::new().with_ngf(4).init(&device);
    g.load_pytorch(fixture("networks_gen_inorm.pth")).unwrap();
    let x = io()["gen_inorm.x"].tensor::<4>(&device);
    let alone = g.forward_layers(x.clone(), &[8]).unwrap().remove(0);
    let with_more = g.forward_layers(x, &[8, 9]).unwrap();
    let min: f32 = alone.clone().min().into_scalar();
    assert!(min < 0.0, "a normalised map has negative values");
    let relu = burn::tensor::activation::relu(alone);
    let d: f32 = (with_more[0].clone() - relu).abs().max().into_scalar();
    assert_eq!(d, 0.0);
    let d: f32 = (with_more[0].clone() - with_more[1].clone())
        .abs()
        .max()
        .into_scalar();
    assert_eq!(d, 0.0);
}

#[test]
fn batch_norm_generator_matches_pytorch_in_eval_mode_from_pth_and_safetensors() {
    let device = Device::default();
    let io = io();
    for file in ["networks_gen_batch.pth", "networks_gen_batch.safetensors"] {
        let mut g = ResnetGeneratorConfig::new()
            .with_ngf(8)
            .with_n_blocks(2)
            .with_norm(NormKind::Batch)
            .init(&device);
        let report = g.load_pytorch(fixture(file)).unwrap();
        // 9 bias-free convolutions + the biased output convolution + 9 BatchNorms × 4 tensors.
        assert_eq!(report.applied.len(), 9 + 2 + 9 * 4, "{file}");
        assert!(
            report
                .unused
                .iter()
                .all(|k| k.ends_with("num_batches_tracked")),
            "{file}: {:?}",
            report.unused
        );
        println!("{file}");
        check_generator("gen_batch", &g, &[4, 8, 10, 12], &io);
    }
}

fn running_var_of_first_bn(layers: &[Layer]) -> Vec<f32> {
    let bn = layers
        .iter()
        .find_map(|l| match l {
            Layer::BatchNorm(bn) => Some(bn),
            _ => None,
        })
        .unwrap();
    bn.running_var
        .value_sync()
        .into_data()
        .try_into_vec_as::<f32>()
        .unwrap()
}

/// The train-mode output, and burn's running-variance update, which uses the biased batch
/// variance where PyTorch uses the unbiased one (a factor n/(n−1) on the batch term, n = B·H·W).
fn check_running_var(case: &str, got: Vec<f32>, io: &BTreeMap<String, Array>, n: usize) {
    let biased = &io[&format!("{case}.bn_running_var_biased")].data;
    let torch = &io[&format!("{case}.bn_running_var_torch")].data;
    let err = got
        .iter()
        .zip(biased)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    println!("{case}: running_var vs biased update {err:.2e}");
    assert!(err < RUNNING_VAR_TOL, "{case}: {err}");
    // Against PyTorch the difference is 0.1·var·(1/(n−1)): bounded by 0.1·max(v)/(n−1)·2.
    let bound = 0.2 * torch.iter().fold(0f32, |m, v| m.max(*v)) / (n - 1) as f32;
    let err = got
        .iter()
        .zip(torch)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    println!("{case}: running_var vs PyTorch (unbiased) {err:.2e} (bound {bound:.2e})");
    assert!(err < bound + RUNNING_VAR_TOL);
}

#[test]
fn batch_norm_generator_matches_pytorch_in_train_mode() {
    let device = Device::default().autodiff();
    let io = io();
    let mut g = ResnetGeneratorConfig::new()
        .with_ngf(8)
        .with_n_blocks(2)
        .with_norm(NormKind::Batch)
        .init(&device);
    g.load_pytorch(fixture("networks_gen_batch.pth")).unwrap();
    let x = io["gen_batch.x"].tensor::<4>(&device);
    check(
        "gen_batch.train_out",
        g.forward(x),
        &io["gen_batch.train_out"],
    );
    // The first BatchNorm sees [2, 8, 32, 32]: n = 2048.
    check_running_var(
        "gen_batch",
        running_var_of_first_bn(&g.model),
        &io,
        2 * 32 * 32,
    );
}

#[test]
fn antialiased_cut_generator_matches_pytorch() {
    let device = Device::default();
    let mut g = ResnetGeneratorConfig::cut()
        .with_ngf(4)
        .with_n_blocks(6)
        .init(&device);
    let report = g.load_pytorch(fixture("networks_gen_cut.pth")).unwrap();
    assert_eq!(report.applied.len(), 2 * (1 + 2 + 12 + 2 + 1));
    // The four blur kernels are constants recomputed in Rust.
    assert_eq!(report.unused.len(), 4, "{:?}", report.unused);
    assert!(report.unused.iter().all(|k| k.ends_with(".filt")));
    check_generator("gen_cut", &g, &[0, 4, 8, 12, 16], &io());
}

fn check_discriminator(case: &str, d: &NLayerDiscriminator, io: &BTreeMap<String, Array>) {
    let device = Device::default();
    let x = io[&format!("{case}.x")].tensor::<4>(&device);
    check(
        &format!("{case}.out"),
        d.forward(x),
        &io[&format!("{case}.out")],
    );
}

#[test]
fn instance_norm_discriminator_matches_pytorch() {
    let device = Device::default();
    let mut d = NLayerDiscriminatorConfig::new().with_ndf(8).init(&device);
    let report = d
        .load_pytorch(fixture("networks_disc_instance.pth"))
        .unwrap();
    assert_eq!(report.applied.len(), 2 * 5);
    check_discriminator("disc_instance", &d, &io());
}

#[test]
fn batch_norm_discriminator_matches_pytorch_in_eval_and_train_mode() {
    let io = io();
    for file in ["networks_disc_batch.pth", "networks_disc_batch.safetensors"] {
        let device = Device::default();
        let config = NLayerDiscriminatorConfig::new()
            .with_ndf(4)
            .with_norm(NormKind::Batch);
        let mut d = config.init(&device);
        let report = d.load_pytorch(fixture(file)).unwrap();
        // First and last convolutions with bias, three without, three BatchNorms.
        assert_eq!(report.applied.len(), 2 * 2 + 3 + 3 * 4, "{file}");
        println!("{file}");
        check_discriminator("disc_batch", &d, &io);

        let device = device.autodiff();
        let mut d = config.init(&device);
        d.load_pytorch(fixture(file)).unwrap();
        let x = io["disc_batch.x"].tensor::<4>(&device);
        check(
            "disc_batch.train_out",
            d.forward(x),
            &io["disc_batch.train_out"],
        );
        // The first BatchNorm sees [2, 8, 10, 12]: n = 240.
        check_running_var(
            "disc_batch",
            running_var_of_first_bn(&d.model),
            &io,
            2 * 10 * 12,
        );
    }
}

#[test]
fn antialiased_cut_discriminator_matches_pytorch() {
    let device = Device::default();
    let mut d = NLayerDiscriminatorConfig::cut().with_ndf(4).init(&device);
    let report = d.load_pytorch(fixture("networks_disc_cut.pth")).unwrap();
    assert_eq!(report.applied.len(), 2 * 5);
    assert_eq!(report.unused.len(), 3);
    check_discriminator("disc_cut", &d, &io());
}

#[test]
fn mismatched_checkpoints_are_errors() {
    let device = Device::default();
    // Batch-norm layout against an instance-norm file: BatchNorm tensors missing.
    let mut g = ResnetGeneratorConfig::new()
        .with_ngf(4)
        .with_norm(NormKind::Batch)
        .init(&device);
    let err = g.load_pytorch(fixture("networks_gen_inorm.pth"));
    assert!(
        matches!(err, Err(GanError::Core(CoreError::WeightsMismatch { .. }))),
        "{err:?}"
    );
    // Wrong width: shape mismatches.
    let mut g = ResnetGeneratorConfig::new().with_ngf(8).init(&device);
    assert!(g.load_pytorch(fixture("networks_gen_inorm.pth")).is_err());
    // Missing file.
    let mut d = NLayerDiscriminatorConfig::new().init(&device);
    assert!(matches!(
        d.load_pytorch(fixture("does_not_exist.pth")),
        Err(GanError::Core(_))
    ));
}

#[test]
fn default_generator_keeps_the_shape_and_the_tanh_range() {
    let device = Device::default();
    let g = ResnetGeneratorConfig::new().init(&device);
    assert_eq!(g.num_layers(), 28);
    let data: Vec<f32> = (0..3 * 64 * 64)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let x = Tensor::<4>::from_data(TensorData::new(data, [1, 3, 64, 64]), &device);
    let y = g.forward(x);
    assert_eq!(y.dims(), [1, 3, 64, 64]);
    let v = y.into_data().try_into_vec_as::<f32>().unwrap();
    assert!(v.iter().all(|a| a.is_finite() && a.abs() < 1.0));
    // Not a constant map.
    let (lo, hi) = v
        .iter()
        .fold((f32::MAX, f32::MIN), |(l, h), a| (l.min(*a), h.max(*a)));
    assert!(hi - lo > 1e-3, "{lo} {hi}");
}

/// Reflect-pads `[b, c, h, w]` host data on the bottom/right to `[b, c, h2, w2]`
/// (`numpy.pad(mode="reflect")`), independently of burn's `pad`.
fn reflect_pad_host(v: &[f32], [b, c, h, w]: [usize; 4], h2: usize, w2: usize) -> Vec<f32> {
    let refl = |i: usize, n: usize| if i < n { i } else { 2 * (n - 1) - i };
    let mut out = Vec::with_capacity(b * c * h2 * w2);
    for bc in 0..b * c {
        for y in 0..h2 {
            for x in 0..w2 {
                out.push(v[bc * h * w + refl(y, h) * w + refl(x, w)]);
            }
        }
    }
    out
}

#[test]
fn translate_images_pads_to_multiples_of_four_and_crops_back() {
    let device = Device::default();
    let mut g = ResnetGeneratorConfig::new().with_ngf(4).init(&device);
    g.load_pytorch(fixture("networks_gen_inorm.pth")).unwrap();
    for (h, w) in [(32, 32), (29, 30), (21, 35)] {
        let data: Vec<f32> = (0..2 * 3 * h * w)
            .map(|i| ((i * 2654435761usize) % 1000) as f32 / 999.0)
            .collect();
        let x = Tensor::<4>::from_data(TensorData::new(data.clone(), [2, 3, h, w]), &device);
        let y = translate_images(&g, x).unwrap();
        assert_eq!(y.dims(), [2, 3, h, w]);
        let got = y.into_data().try_into_vec_as::<f32>().unwrap();
        assert!(got.iter().all(|v| (0.0..=1.0).contains(v)));

        // Reference: pad on the host, map to [-1, 1], run the generator, crop, map back.
        let (h2, w2) = (h.div_ceil(4) * 4, w.div_ceil(4) * 4);
        let padded: Vec<f32> = reflect_pad_host(&data, [2, 3, h, w], h2, w2)
            .iter()
            .map(|v| v * 2.0 - 1.0)
            .collect();
        let xp = Tensor::<4>::from_data(TensorData::new(padded, [2, 3, h2, w2]), &device);
        let full = g.forward(xp).into_data().try_into_vec_as::<f32>().unwrap();
        let mut want = Vec::with_capacity(got.len());
        for bc in 0..6 {
            for yy in 0..h {
                for xx in 0..w {
                    want.push((full[bc * h2 * w2 + yy * w2 + xx] + 1.0) / 2.0);
                }
            }
        }
        let err = got
            .iter()
            .zip(&want)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        // Same kernels on the same values: only the [0,1]↔[-1,1] mapping order differs.
        assert!(err < 1e-6, "{h}×{w}: {err}");
    }
}

/// Sample mean and standard deviation.
fn stats(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[test]
fn init_schemes_apply_to_every_layer_of_both_networks() {
    let device = Device::default();
    // gandtr HEDNGAN: kaiming fan_in for every conv, BatchNorm weights N(1, 0.2).
    let g = ResnetGeneratorConfig::gandtr_hedngan()
        .with_ngf(16)
        .with_n_blocks(2)
        .with_init_seed(11)
        .init(&device);
    let mut convs = 0;
    let mut gammas = Vec::new();
    let visit = |layers: &[Layer], convs: &mut usize, gammas: &mut Vec<f32>| {
        for l in layers {
            match l {
                Layer::Conv(c) => {
                    let [_, cin, k, _] = c.weight.dims();
                    let v = c.weight.val().into_data().try_into_vec_as::<f32>().unwrap();
                    let (_, std) = stats(&v);
                    let want = (2.0 / (cin * k * k) as f64).sqrt();
                    // Relative standard error of a sample std is 1/√(2n); 5 of them.
                    let tol = 5.0 / (2.0 * v.len() as f64).sqrt();
                    assert!((std / want - 1.0).abs() < tol, "conv {std} vs {want}");
                    *convs += 1;
                }
                Layer::ConvTranspose(c) => {
                    let [_, cout, k, _] = c.weight.dims();
                    let v = c.weight.val().into_data().try_into_vec_as::<f32>().unwrap();
                    let (_, std) = stats(&v);
                    let want = (2.0 / (cout * k * k) as f64).sqrt();
                    let tol = 5.0 / (2.0 * v.len() as f64).sqrt();
                    assert!((std / want - 1.0).abs() < tol, "convT {std} vs {want}");
                    *convs += 1;
                }
                Layer::BatchNorm(bn) => {
                    gammas.extend(bn.gamma.val().into_data().try_into_vec_as::<f32>().unwrap());
                    let beta: f32 = bn.beta.val().abs().sum().into_scalar();
                    assert_eq!(beta, 0.0);
                }
                _ => {}
            }
        }
    };
    visit(&g.model, &mut convs, &mut gammas);
    for l in &g.model {
        if let Layer::ResnetBlock(b) = l {
            visit(&b.conv_block, &mut convs, &mut gammas);
        }
    }
    assert_eq!(convs, 1 + 2 + 4 + 2 + 1);
    let (mean, std) = stats(&gammas);
    // 16 + 32 + 64 + 4·64 + 32 + 16 = 416 draws: mean within 5σ/√n, std within 5/√(2n).
    let n = gammas.len() as f64;
    assert!((mean - 1.0).abs() < 5.0 * 0.2 / n.sqrt(), "{mean}");
    assert!((std / 0.2 - 1.0).abs() < 5.0 / (2.0 * n).sqrt(), "{std}");

    // The last conv of the generator keeps a bias, initialised to 0.
    let Some(Layer::Conv(last)) = g.model.get(g.num_layers() - 2) else {
        panic!("no output conv");
    };
    let b: f32 = last.bias.as_ref().unwrap().val().abs().sum().into_scalar();
    assert_eq!(b, 0.0);

    // Same seed, same weights; the seed matters.
    let again = ResnetGeneratorConfig::gandtr_hedngan()
        .with_ngf(16)
        .with_n_blocks(2)
        .with_init_seed(11)
        .init(&device);
    let other = ResnetGeneratorConfig::gandtr_hedngan()
        .with_ngf(16)
        .with_n_blocks(2)
        .with_init_seed(12)
        .init(&device);
    let w = |g: &ResnetGenerator| match &g.model[1] {
        Layer::Conv(c) => c.weight.val().into_data(),
        _ => panic!("model.1 is not a conv"),
    };
    assert_eq!(w(&g), w(&again));
    assert_ne!(w(&g), w(&other));

    // CycleGAN's discriminator: N(0, 0.02) everywhere.
    let d = NLayerDiscriminatorConfig::new()
        .with_ndf(16)
        .with_init_scheme(InitConfig::cyclegan())
        .init(&device);
    for l in &d.model {
        if let Layer::Conv(c) = l {
            let v = c.weight.val().into_data().try_into_vec_as::<f32>().unwrap();
            let (_, std) = stats(&v);
            let tol = 5.0 / (2.0 * v.len() as f64).sqrt();
            assert!((std / 0.02 - 1.0).abs() < tol, "disc conv {std}");
        }
    }
}
