//! One binary that checks a burn device end to end and measures it: parity of every backbone and
//! of the GeM networks with the committed PyTorch fixtures, one short run of each of the six
//! trainers (HEDN-GAN, CycleGAN, CUT, the darkening network, tuple and CosPlace training) with
//! finite losses, exact k-NN on the device engine against the host kernel, and the throughput of
//! the steps the pipelines spend their time in. Prints one JSON object (and writes it to `--json`).
//!
//! ```text
//! cargo run --release --features cuda,wgpu --example gpu_check -- --device cuda [--json OUT.json]
//! cargo run --example gpu_check -- --device flex --quick      # a dry run on the CPU
//! ```
//! `scripts/build-gpu.sh` builds it offline for CUDA and wgpu; docs/GPU.md describes the run.
//! Shapes (full mode): MobileNetV2-GeM training step = one cirtorch tuple of 7 images at 272×362
//! (frozen BatchNorm, contrastive loss, backward, Adam); ResNet-50 forward, batch 8 at 224²; GAN
//! iterations at the papers' sizes (ngf 64, 9 residual blocks, 256² crops, CUT's 256 patches);
//! k-NN top-20 of 100 queries in 1,000,000 × 512 unit vectors. `--quick` shrinks all of them.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Tensor};
use nightvision::backbones::{MobileNetV2Config, ResNetConfig, Vgg16Config};
use nightvision::core::image::Rgb32FImage;
use nightvision::core::testing::{Array, max_rel_err, read_safetensors};
use nightvision::darkening::DarkeningNetConfig;
use nightvision::darkening::train::{DarkeningTrainer, DarkeningTrainerConfig, frozen};
use nightvision::eval::{Descriptors, DeviceDatabase, HostIndex, KnnConfig, KnnEngine, Metric};
use nightvision::gan::data::{ScaleCrop, UnpairedBatches};
use nightvision::gan::schedule::LinearDecay;
use nightvision::gan::{
    CutConfig, CutTrainer, CycleGan, CycleGanConfig, CycleGanTrainer, HedNGan, HedNGanConfig,
    HedNGanTrainer, InitConfig, InitKind, IterationLosses, LambdaP2p, NLayerDiscriminatorConfig,
    ResnetGeneratorConfig, init_weights,
};
use nightvision::hed::HedConfig;
use nightvision::metric::data::{
    AugmentHooks, ClassSampler, ImageSource, MiningConfig, TupleDatabase,
};
use nightvision::metric::train::{
    CosPlaceTrainer, CosPlaceTrainerConfig, TupleTrainer, TupleTrainerConfig, gem_group,
};
use nightvision::metric::{
    BackboneConfig, CirNetConfig, ContrastiveLossConfig, CosPlaceNetConfig, TupleLayout,
};
use serde_json::{Value, json};

const HELP: &str = "\
gpu_check: parity, one run of each trainer, exact k-NN and throughput on one burn device

USAGE:
  gpu_check --device NAME [--root DIR] [--json FILE] [--quick] [--skip LIST]

OPTIONS:
  --device NAME  cuda | wgpu | flex (the devices this binary was built with)
  --root DIR     the repository (fixtures under crates/*/tests/fixtures) [default: .]
  --json FILE    also write the JSON result there
  --quick        small shapes and few repetitions (a dry run on the CPU)
  --skip LIST    comma-separated sections to skip: parity,trainers,knn,throughput
  --only LIST    comma-separated check-name prefixes to run (e.g. trainer/cut,throughput/)
  -h, --help     this text
";

/// Parity bound of f32 networks against the float32/64 PyTorch fixtures (the CPU tests' bound).
const PARITY_TOL: f32 = 1e-4;

/// Parity bound on CUDA, where burn's matmuls and convolutions stage f32 operands as TF32 on
/// tensor cores (10-bit mantissa; burn 0.22 has no switch to keep them in f32). PyTorch's own test
/// suite checks its TF32 paths at this precision (`tf32_on_and_off(0.005)`). The measured error is
/// reported next to both bounds, so a run shows how far from f32 it is.
const TF32_PARITY_TOL: f32 = 5e-3;

/// The parity bound for a device: TF32's on CUDA, f32's elsewhere.
fn parity_tol(device: &str) -> f32 {
    if device == "cuda" {
        TF32_PARITY_TOL
    } else {
        PARITY_TOL
    }
}

struct Args {
    device: String,
    root: PathBuf,
    json: Option<PathBuf>,
    quick: bool,
    skip: Vec<String>,
}

/// Check-name prefixes of `--only` (empty: every check).
static ONLY: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

fn parse() -> Result<Args> {
    let mut a = pico_args::Arguments::from_env();
    if a.contains(["-h", "--help"]) {
        print!("{HELP}");
        std::process::exit(0);
    }
    let args = Args {
        device: a
            .value_from_str("--device")
            .context("--device is required (see --help)")?,
        root: a
            .opt_value_from_str("--root")?
            .unwrap_or_else(|| PathBuf::from(".")),
        json: a.opt_value_from_str("--json")?,
        quick: a.contains("--quick"),
        skip: a
            .opt_value_from_str::<_, String>("--skip")?
            .map(|s| s.split(',').map(str::to_owned).collect())
            .unwrap_or_default(),
    };
    let only: Vec<String> = a
        .opt_value_from_str::<_, String>("--only")?
        .map(|s| s.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let _ = ONLY.set(only);
    let rest = a.finish();
    if !rest.is_empty() {
        bail!("unexpected arguments: {rest:?} (see --help)");
    }
    Ok(args)
}

fn device(name: &str) -> Result<Device> {
    match name {
        #[cfg(feature = "flex")]
        "flex" | "cpu" => Ok(Device::flex()),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(0)),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        other => bail!("--device {other:?}: not one of the devices this binary was built with"),
    }
}

/// Runs one check; a panic (burn reports device failures by panicking) or an error becomes a
/// failed entry instead of ending the run.
fn check(name: &str, f: impl FnOnce() -> Result<Value>) -> Value {
    let only = ONLY.get().map(Vec::as_slice).unwrap_or_default();
    if !only.is_empty() && !only.iter().any(|p| name.starts_with(p.as_str())) {
        return json!({"name": name, "ok": true, "skipped": true});
    }
    let t = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(f));
    let seconds = t.elapsed().as_secs_f64();
    let entry = match outcome {
        Ok(Ok(v)) => {
            let ok = v.get("ok").and_then(Value::as_bool).unwrap_or(true);
            json!({"name": name, "ok": ok, "seconds": seconds, "result": v})
        }
        Ok(Err(e)) => {
            json!({"name": name, "ok": false, "seconds": seconds, "error": format!("{e:#}")})
        }
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            json!({"name": name, "ok": false, "seconds": seconds, "error": format!("panic: {msg}")})
        }
    };
    eprintln!("{}", serde_json::to_string(&entry).unwrap_or_default());
    entry
}

fn fixture(root: &Path, krate: &str, name: &str) -> PathBuf {
    root.join("crates")
        .join(krate)
        .join("tests/fixtures")
        .join(name)
}

fn parity(root: &Path, device: &Device, tol: f32) -> Vec<Value> {
    let mut out = Vec::new();
    let resnets = [
        ("resnet18", ResNetConfig::resnet18()),
        ("resnet50", ResNetConfig::resnet50()),
        ("resnet101", ResNetConfig::resnet101()),
    ];
    for (name, cfg) in resnets {
        out.push(check(&format!("parity/{name}"), || {
            let io = read_safetensors(fixture(
                root,
                "backbones",
                &format!("{name}_io.safetensors"),
            ))?;
            let mut net = cfg
                .with_base_width(4)
                .with_num_classes(Some(10))
                .init(device);
            net.load_torchvision(fixture(root, "backbones", &format!("{name}.pth")))?;
            let x = io["x"].tensor::<4>(device);
            let f = max_rel_err(net.forward(x.clone()), &io["features"]);
            let l = max_rel_err(net.classify(x).context("no classifier")?, &io["logits"]);
            Ok(json!({"ok": f < tol && l < tol, "features": f, "logits": l}))
        }));
    }
    out.push(check("parity/mobilenet_v2", || {
        let io = read_safetensors(fixture(root, "backbones", "mobilenet_v2_io.safetensors"))?;
        let mut net = MobileNetV2Config::new()
            .with_width_mult(0.25)
            .with_num_classes(Some(10))
            .init(device);
        net.load_torchvision(fixture(root, "backbones", "mobilenet_v2.pth"))?;
        let x = io["x"].tensor::<4>(device);
        let f = max_rel_err(net.forward(x.clone()), &io["features"]);
        let l = max_rel_err(net.classify(x).context("no classifier")?, &io["logits"]);
        Ok(json!({"ok": f < tol && l < tol, "features": f, "logits": l}))
    }));
    out.push(check("parity/vgg16", || {
        let io = read_safetensors(fixture(root, "backbones", "vgg16_io.safetensors"))?;
        let mut net = Vgg16Config::new()
            .with_widths([8, 16, 32, 64, 64])
            .with_num_classes(Some(10))
            .with_classifier_hidden(32)
            .init(device);
        net.load_torchvision(fixture(root, "backbones", "vgg16.pth"))?;
        let x = io["x"].tensor::<4>(device);
        let f = max_rel_err(net.forward(x.clone()), &io["features"]);
        let l = max_rel_err(net.classify(x).context("no classifier")?, &io["logits"]);
        Ok(json!({"ok": f < tol && l < tol, "features": f, "logits": l}))
    }));
    out.push(check("parity/cirtorch_gem_whitening", || {
        let io = read_safetensors(fixture(root, "metric-learning", "networks_io.safetensors"))?;
        let backbone = BackboneConfig::ResNet(ResNetConfig::resnet18().with_base_width(4));
        let mut net = CirNetConfig::new(backbone)
            .with_whitening(true)
            .init(device)?;
        net.load_cirtorch(
            fixture(root, "metric-learning", "cirtorch_resnet18.pth"),
            Some("state_dict"),
        )?;
        let e = max_rel_err(net.forward(io["cir_x"].tensor::<4>(device)), &io["cir_out"]);
        Ok(json!({"ok": e < tol, "descriptor": e}))
    }));
    out.push(check("parity/cosplace_gem", || {
        let io = read_safetensors(fixture(root, "metric-learning", "networks_io.safetensors"))?;
        let cfg = CosPlaceNetConfig::new(
            BackboneConfig::Vgg16(Vgg16Config::new().with_widths([4, 8, 16, 32, 32])),
            12,
        );
        let mut net = cfg.init(device)?;
        net.load_cosplace(fixture(root, "metric-learning", "cosplace_vgg16.pth"), None)?;
        let e = max_rel_err(net.forward(io["cos_x"].tensor::<4>(device)), &io["cos_out"]);
        Ok(json!({"ok": e < tol, "descriptor": e}))
    }));
    out.push(check("parity/hed", || {
        let io = read_safetensors(fixture(root, "hed-edges", "hed_io.safetensors"))?;
        let mut hed = HedConfig::new()
            .with_widths([4, 8, 16, 32, 32])
            .init(device);
        hed.load_weights(fixture(root, "hed-edges", "hed_random.pth"))?;
        let out = hed.try_forward_output(io["x"].tensor::<4>(device))?;
        let e = max_rel_err(out.fused, &io["random.fused"]);
        Ok(json!({"ok": e < tol, "fused": e}))
    }));
    with_bounds(out, tol)
}

/// Adds each parity entry's bound and whether it is within the f32 bound.
fn with_bounds(mut entries: Vec<Value>, tol: f32) -> Vec<Value> {
    for entry in &mut entries {
        entry["bound"] = json!(tol);
        entry["within_f32_bound"] = json!(max_error(entry).is_some_and(|e| e < PARITY_TOL));
    }
    entries
}

/// [`max_rel_err`] of two tensors (on any devices).
fn rel_err<const D: usize>(got: Tensor<D>, want: Tensor<D>) -> Result<f32> {
    let want = Array {
        shape: want.dims().to_vec(),
        data: want
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?,
    };
    Ok(max_rel_err(got, &want))
}

/// The GAN networks the trainers use (ResNet generator, PatchGAN discriminator: 4×4 kernels,
/// reflection padding, instance norm, transposed convolutions — none of them in the fixture
/// parity above), initialised once on the CPU (`flex`, itself checked against PyTorch by the
/// tests) and forked to the device: the generator's output, the discriminator's output on it and
/// the gradient of an LSGAN loss with respect to the input image must agree. The trainers alone
/// cannot show this: they initialise on the device, whose random streams differ from the CPU's.
fn gan_parity(s: &Sizes, device: &Device, tol: f32) -> Vec<Value> {
    let entry = check("parity/gan_vs_flex", || {
        let host = Device::flex().autodiff();
        let train = device.clone().autodiff();
        let g = ResnetGeneratorConfig::gandtr_cyclegan()
            .with_ngf(s.ngf)
            .with_n_blocks(s.blocks)
            .init(&host);
        let d = NLayerDiscriminatorConfig::new().with_ndf(s.ngf).init(&host);
        // Noise, not smooth images: on a smooth image a 7×7 convolution's output channels are
        // nearly constant, and instance norm divides the devices' last-bit differences by their
        // small spread (on lavapipe: textures gave 1.3e-5 after the first norm, 3.7e-4 at the
        // output; the convolution before it agreed to 6.5e-7).
        let side = s.gan_side;
        let x = Tensor::<4>::random([2, 3, side, side], Distribution::Uniform(-1.0, 1.0), &host)
            .into_data();
        // with the output after each of the generator's layers, to tell where a discrepancy starts
        let ids: Vec<usize> = (0..g.layer_channels.len()).collect();
        let run = |dev: &Device| -> Result<([Tensor<4>; 3], Vec<Tensor<4>>)> {
            let (g, d) = (g.clone().fork(dev), d.clone().fork(dev));
            let x = Tensor::<4>::from_data(x.clone(), dev).require_grad();
            let (y, layers) = g.forward_with_layers(x.clone(), &ids)?;
            let score = d.forward(y.clone());
            let loss = (score.clone() - 1.0).powf_scalar(2.0).mean();
            let grads = loss.backward();
            let gx = x.grad(&grads).context("no gradient for the input")?;
            Ok(([y, score, gx], layers))
        };
        let ([y0, d0, g0], layers0) = run(&host)?;
        let ([y1, d1, g1], layers1) = run(&train)?;
        let per_layer = layers1
            .into_iter()
            .zip(layers0)
            .map(|(got, want)| rel_err(got, want))
            .collect::<Result<Vec<f32>>>()?;
        let (ey, ed, eg) = (rel_err(y1, y0)?, rel_err(d1, d0)?, rel_err(g1, g0)?);
        Ok(json!({"ok": ey < tol && ed < tol && eg < tol,
                  "generator": ey, "discriminator": ed, "input_gradient": eg,
                  "generator_layers": per_layer}))
    });
    with_bounds(vec![entry], tol)
}

/// The largest relative error a parity entry reports.
fn max_error(entry: &Value) -> Option<f32> {
    let result = entry.get("result")?.as_object()?;
    result
        .iter()
        .filter(|(k, _)| k.as_str() != "ok")
        .filter_map(|(_, v)| v.as_f64())
        .map(|v| v as f32)
        .reduce(f32::max)
}

/// Procedural textures: bright, or dark and bluish (`night`).
fn texture(k: u32, w: u32, h: u32, night: bool) -> Rgb32FImage {
    let (gain, blue) = if night { (0.15, 0.1) } else { (0.9, 0.0) };
    Rgb32FImage::from_fn(w, h, move |x, y| {
        let f = 0.05 + 0.013 * k as f32;
        let v = 0.5 + 0.5 * ((x as f32 * f + k as f32).sin() * (y as f32 * f * 0.7).cos());
        image::Rgb([
            v * gain,
            (v * gain * 0.9).min(1.0),
            (v * gain + blue).min(1.0),
        ])
    })
}

fn domains(n: u32, side: u32) -> (ImageSource, ImageSource) {
    let day = (0..n).map(|k| texture(k, side, side, false)).collect();
    let night = (0..n).map(|k| texture(k + 7, side, side, true)).collect();
    (ImageSource::memory(day), ImageSource::memory(night))
}

/// Six places of three images each (`w`×`h`).
fn tuple_db(w: u32, h: u32) -> Result<TupleDatabase> {
    let (mut images, mut clusters) = (Vec::new(), Vec::new());
    for c in 0..6u32 {
        for k in 0..3u32 {
            images.push(texture(5 * c + k, w + 4 * k, h, c % 2 == 1));
            clusters.push(i64::from(c));
        }
    }
    let qidxs = (0..6).map(|c| 3 * c).collect();
    let pidxs = (0..6).map(|c| 3 * c + 1).collect();
    Ok(TupleDatabase::new(
        ImageSource::memory(images),
        clusters,
        qidxs,
        pidxs,
    )?)
}

/// Finite-loss summary of a GAN run of `timed` iterations that took `seconds`, after a one-iteration
/// warm-up run (kernel compilation, autotuning) that took `warmup` seconds.
fn gan_summary<S: IterationLosses>(
    iterations: &[S],
    seconds: f64,
    timed: usize,
    warmup: f64,
) -> Value {
    let losses: Vec<(&str, f32)> = iterations.iter().flat_map(|s| s.named()).collect();
    let finite = !losses.is_empty() && losses.iter().all(|(_, v)| v.is_finite());
    let last: serde_json::Map<String, Value> = iterations
        .last()
        .map(|s| {
            s.named()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), json!(v)))
                .collect()
        })
        .unwrap_or_default();
    json!({"ok": finite, "iterations": iterations.len(), "last": last,
           "seconds_per_iteration": seconds / timed.max(1) as f64, "warmup_s": warmup})
}

struct Sizes {
    gan_side: usize,
    ngf: usize,
    blocks: usize,
    patches: usize,
    gan_iterations: usize,
    image: [usize; 2],
    reps: usize,
    knn_db: usize,
}

fn trainers(s: &Sizes, device: &Device) -> Vec<Value> {
    let train = device.clone().autodiff();
    let mut out = Vec::new();
    let side = (s.gan_side * 9 / 8) as u32;
    let crop = ScaleCrop {
        size: s.gan_side,
        min_scale: 0.8,
    };
    let its = s.gan_iterations;

    out.push(check("trainer/hedngan", || {
        let (day, night) = domains(4, side);
        let data = UnpairedBatches::new(day, night, crop, 2)?;
        let hed = |seed| {
            init_weights(
                HedConfig::new().init(&train),
                InitConfig::new(InitKind::KaimingNormal, 0.02),
                seed,
            )
        };
        let go = |its: usize| -> Result<(Vec<_>, f64)> {
            let nets = HedNGan {
                generator: ResnetGeneratorConfig::gandtr_hedngan()
                    .with_ngf(s.ngf)
                    .with_n_blocks(s.blocks)
                    .try_init(&train)?,
                discriminator: NLayerDiscriminatorConfig::gandtr_hedngan()
                    .with_ndf(s.ngf)
                    .try_init(&train)?,
                student: hed(4),
            };
            let cfg = HedNGanConfig {
                schedule: LambdaP2p::new().with_epochs(1).with_decay_epochs(0),
                iterations_per_epoch: its,
                checkpoint_every: its,
                ..HedNGanConfig::default()
            };
            let t = Instant::now();
            let log = HedNGanTrainer::new(cfg, &data, hed(3), &train)?
                .train(nets, None)?
                .log;
            Ok((log.iterations, t.elapsed().as_secs_f64()))
        };
        let (_, warmup) = go(1)?;
        let (log, seconds) = go(its)?;
        Ok(gan_summary(&log, seconds, its, warmup))
    }));

    out.push(check("trainer/cyclegan", || {
        let (day, night) = domains(4, side);
        let data = UnpairedBatches::new(day, night, crop, 1)?;
        let go = |its: usize| -> Result<(Vec<_>, f64)> {
            let nets = CycleGan::with_configs(
                ResnetGeneratorConfig::gandtr_cyclegan()
                    .with_ngf(s.ngf)
                    .with_n_blocks(s.blocks),
                NLayerDiscriminatorConfig::new().with_ndf(s.ngf),
                &train,
            );
            let cfg = CycleGanConfig {
                schedule: LinearDecay::new(1, 0),
                iterations_per_epoch: its,
                checkpoint_every: its,
                lambda_identity: 0.5,
                ..CycleGanConfig::gandtr()
            };
            let t = Instant::now();
            let log = CycleGanTrainer::new(cfg, &data, &train)?
                .train(nets, None)?
                .log;
            Ok((log.iterations, t.elapsed().as_secs_f64()))
        };
        let (_, warmup) = go(1)?;
        let (log, seconds) = go(its)?;
        Ok(gan_summary(&log, seconds, its, warmup))
    }));

    for negcut in [false, true] {
        let name = if negcut {
            "trainer/negcut"
        } else {
            "trainer/cut"
        };
        out.push(check(name, || {
            let (day, night) = domains(4, side);
            let data = UnpairedBatches::new(day, night, crop, 1)?;
            let base = if negcut {
                CutConfig::negcut()
            } else {
                CutConfig::cut()
            };
            let go = |its: usize| -> Result<(Vec<_>, f64)> {
                let cfg = CutConfig {
                    num_patches: s.patches,
                    schedule: LinearDecay::new(1, 0),
                    iterations_per_epoch: its,
                    checkpoint_every: its,
                    ..base.clone()
                };
                let nets = cfg.init_nets(
                    ResnetGeneratorConfig::cut()
                        .with_ngf(s.ngf)
                        .with_n_blocks(s.blocks)
                        .try_init(&train)?,
                    NLayerDiscriminatorConfig::cut()
                        .with_ndf(s.ngf)
                        .with_init_seed(1)
                        .try_init(&train)?,
                    &train,
                )?;
                let t = Instant::now();
                let log = CutTrainer::new(cfg, &data, &train)?.train(nets, None)?.log;
                Ok((log.iterations, t.elapsed().as_secs_f64()))
            };
            let (_, warmup) = go(1)?;
            let (log, seconds) = go(its)?;
            Ok(gan_summary(&log, seconds, its, warmup))
        }));
    }

    out.push(check("trainer/darkening", || {
        let trunk = frozen(MobileNetV2Config::new().init(&train));
        let extractor = move |x: Tensor<4>| trunk.forward(x);
        let iterations = its as u64;
        let cfg = DarkeningTrainerConfig {
            iterations,
            checkpoint_every: iterations,
            milestones: vec![iterations],
            ..DarkeningTrainerConfig::new()
        };
        let trainer = DarkeningTrainer::new(
            cfg,
            DarkeningNetConfig::new().init(device),
            extractor,
            device,
        )?;
        let side = s.gan_side / 2;
        let t = Instant::now();
        let trained = trainer.train(
            |_| {
                Some(Tensor::<4>::random(
                    [4, 3, side, side],
                    Distribution::Uniform(0.0, 1.0),
                    device,
                ))
            },
            None,
            |_| {},
        )?;
        let logs: Vec<(f32, f32)> = trained
            .log
            .iter()
            .map(|l| (l.losses.sim, l.losses.total))
            .collect();
        let finite = !logs.is_empty() && logs.iter().all(|(a, b)| a.is_finite() && b.is_finite());
        Ok(
            json!({"ok": finite, "iterations": logs.len(), "losses_sim_total": logs,
                  "seconds_per_iteration": t.elapsed().as_secs_f64() / its.max(1) as f64}),
        )
    }));

    out.push(check("trainer/tuple", || {
        let db = tuple_db(s.image[1] as u32, s.image[0] as u32)?;
        let net = CirNetConfig::new(BackboneConfig::MobileNetV2(MobileNetV2Config::new()))
            .init(device)?;
        let cfg = TupleTrainerConfig {
            epochs: 1,
            lr: 1e-6,
            image_size: s.image[1],
            mining: MiningConfig {
                neg_num: 5,
                query_size: 2,
                pool_size: 18,
            },
            ..TupleTrainerConfig::default()
        };
        let trained =
            TupleTrainer::new(cfg, &db, AugmentHooks::default(), device)?.train(net, None)?;
        let losses: Vec<f32> = trained
            .log
            .epochs
            .iter()
            .flat_map(|e| e.step_losses.clone())
            .collect();
        let ok = !losses.is_empty() && losses.iter().all(|v| v.is_finite());
        Ok(json!({"ok": ok, "step_losses": losses}))
    }));

    out.push(check("trainer/cosplace", || {
        let db = tuple_db(s.image[1] as u32, s.image[0] as u32)?;
        let classes: Vec<Vec<usize>> = (0..6).map(|c| vec![3 * c, 3 * c + 1, 3 * c + 2]).collect();
        let groups = vec![
            ClassSampler::new(classes[..3].to_vec(), 2)?,
            ClassSampler::new(classes[3..].to_vec(), 2)?,
        ];
        let net = CosPlaceNetConfig::new(BackboneConfig::ResNet(ResNetConfig::resnet18()), 128)
            .init(device)?;
        let inherited = Tensor::<2>::random(
            [db.images.len(), 128],
            Distribution::Normal(0.0, 1.0),
            device,
        );
        let cfg = CosPlaceTrainerConfig {
            epochs: 1,
            iterations_per_epoch: 2,
            batch_size: 3,
            image_size: s.image[1].min(224),
            ..Default::default()
        };
        let trained = CosPlaceTrainer::new(
            cfg,
            &db.images,
            groups,
            Some(inherited),
            AugmentHooks::default(),
            device,
        )?
        .train(net, None)?;
        let losses: Vec<f32> = trained
            .log
            .epochs
            .iter()
            .flat_map(|e| e.step_losses.clone())
            .collect();
        let ok = !losses.is_empty() && losses.iter().all(|v| v.is_finite());
        Ok(json!({"ok": ok, "step_losses": losses}))
    }));
    out
}

/// Random unit vectors made on the device, read back to the host.
fn unit_vectors(rows: usize, dim: usize, device: &Device) -> Result<Descriptors> {
    let mut data = Vec::with_capacity(rows * dim);
    for start in (0..rows).step_by(131_072) {
        let n = (rows - start).min(131_072);
        let x = Tensor::<2>::random([n, dim], Distribution::Normal(0.0, 1.0), device);
        let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt();
        let v = x
            .div(norm)
            .try_into_vec_as::<f32>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        data.extend(v);
    }
    Ok(Descriptors::new(data, rows, dim)?)
}

fn knn(s: &Sizes, device: &Device) -> Vec<Value> {
    vec![check("knn/device_equals_host", || {
        let (nq, dim, k) = (100, 512, 20);
        let db = unit_vectors(s.knn_db, dim, device)?;
        let q = unit_vectors(nq, dim, device)?;
        let t = Instant::now();
        let host = HostIndex::new(&db, Metric::InnerProduct)?.search(&q, k)?;
        let host_s = t.elapsed().as_secs_f64();
        let cfg = KnnConfig {
            engine: KnnEngine::Device,
            ..KnnConfig::new(Metric::InnerProduct)
        };
        let t = Instant::now();
        let index = DeviceDatabase::upload(&db, cfg, device)?;
        let _ = index.search(&q.slice_rows(0..1), k)?; // warm-up (kernel compilation, autotune)
        let upload_s = t.elapsed().as_secs_f64();
        let mut times = Vec::new();
        let mut got = None;
        for _ in 0..s.reps.min(5) {
            let t = Instant::now();
            got = Some(index.search(&q, k)?);
            times.push(t.elapsed().as_secs_f64());
        }
        let got = got.context("no search ran")?;
        // Lists equal up to ties: where the indices differ, the scores must agree to 1e-5.
        let (mut differ, mut untied) = (0usize, 0usize);
        for (i, (a, b)) in got.indices.iter().zip(&host.indices).enumerate() {
            if a != b {
                differ += 1;
                if (got.scores[i] - host.scores[i]).abs() > 1e-5 {
                    untied += 1;
                }
            }
        }
        let max_score_err = got
            .scores
            .iter()
            .zip(&host.scores)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        times.sort_by(f64::total_cmp);
        Ok(
            json!({"ok": untied == 0, "db": s.knn_db, "queries": nq, "dim": dim, "k": k,
                  "positions_differing": differ, "positions_differing_beyond_ties": untied,
                  "max_score_abs_err": max_score_err, "device_search_s": times[0],
                  "device_upload_and_warmup_s": upload_s, "host_search_s": host_s}),
        )
    })]
}

fn throughput(s: &Sizes, device: &Device) -> Vec<Value> {
    let train = device.clone().autodiff();
    let mut out = Vec::new();
    out.push(check("throughput/mobilenet_v2_gem_train_step", || {
        let labels = TupleLayout::standard_labels(1, 5);
        let loss = ContrastiveLossConfig::new().init();
        let mut net = CirNetConfig::new(BackboneConfig::MobileNetV2(MobileNetV2Config::new()))
            .init(&train)?;
        let mut optim = AdamConfig::new().with_epsilon(1e-8).init().with_group(
            gem_group(),
            AdamConfig::new().with_epsilon(1e-8).build(),
            None,
        );
        let x = Tensor::<4>::random(
            [7, 3, s.image[0], s.image[1]],
            Distribution::Normal(0.0, 1.0),
            &train,
        );
        let mut times = Vec::new();
        for _ in 0..s.reps + 2 {
            let t = Instant::now();
            let l = loss.forward(net.forward(x.clone()), &labels)?;
            let grads = GradientsParams::from_grads(l.backward(), &net);
            net = optim.step(1e-6, net, grads);
            let _ = net.gem_p();
            train.sync().map_err(|e| anyhow::anyhow!("{e:?}"))?;
            times.push(t.elapsed().as_secs_f64());
        }
        Ok(timing(times, "tuples_per_s", 1.0))
    }));
    out.push(check("throughput/resnet50_forward_b8_224", || {
        let net = ResNetConfig::resnet50().init(device);
        let b = 8;
        let x = Tensor::<4>::random([b, 3, 224, 224], Distribution::Normal(0.0, 1.0), device);
        let mut times = Vec::new();
        for _ in 0..s.reps + 2 {
            let t = Instant::now();
            let _: f32 = net.forward(x.clone()).sum().into_scalar();
            times.push(t.elapsed().as_secs_f64());
        }
        Ok(timing(times, "images_per_s", b as f64))
    }));
    out
}

/// Median of the runs after two warm-ups, and a rate of `per_run` items per run.
fn timing(mut times: Vec<f64>, rate: &str, per_run: f64) -> Value {
    let warm: Vec<f64> = times.iter().take(2).copied().collect();
    let mut runs = times.split_off(2.min(times.len()));
    runs.sort_by(f64::total_cmp);
    let median = runs.get(runs.len() / 2).copied().unwrap_or(f64::NAN);
    json!({"ok": median.is_finite(), "median_s": median, rate: per_run / median,
           "warmup_s": warm, "runs": runs.len()})
}

fn main() -> Result<()> {
    let args = parse()?;
    let device = device(&args.device)?;
    let sizes = if args.quick {
        Sizes {
            gan_side: 32,
            ngf: 8,
            blocks: 2,
            patches: 32,
            gan_iterations: 2,
            image: [68, 90],
            reps: 2,
            knn_db: 20_000,
        }
    } else {
        Sizes {
            gan_side: 256,
            ngf: 64,
            blocks: 9,
            patches: 256,
            gan_iterations: 4,
            image: [272, 362],
            reps: 10,
            knn_db: 1_000_000,
        }
    };
    let t0 = Instant::now();
    let run = |section: &str| !args.skip.iter().any(|s| s == section);
    let mut checks = Vec::new();
    if run("parity") {
        checks.extend(parity(&args.root, &device, parity_tol(&args.device)));
        checks.extend(gan_parity(&sizes, &device, parity_tol(&args.device)));
    }
    // cheapest and most informative first: a run cut short by a time limit keeps them
    if run("knn") {
        checks.extend(knn(&sizes, &device));
    }
    if run("throughput") {
        checks.extend(throughput(&sizes, &device));
    }
    if run("trainers") {
        checks.extend(trainers(&sizes, &device));
    }
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| c["ok"] != json!(true))
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect();
    let result = json!({
        "device": args.device,
        "device_debug": format!("{device:?}"),
        "quick": args.quick,
        "all_ok": failed.is_empty(),
        "failed": failed,
        "seconds": t0.elapsed().as_secs_f64(),
        "checks": checks.into_iter().filter(|c| c.get("skipped").is_none()).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&result)?;
    if let Some(path) = &args.json {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{text}");
    Ok(())
}
