//! The class-balanced BCE, the HED total loss and the HED^N losses against PyTorch autograd
//! (`scripts/gen_fixtures.py`: the Caffe formula written with `F.logsigmoid`, gandtr's L1 terms),
//! values and gradients.

use std::path::PathBuf;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use hed_edges::{HedConfig, HedError, HedNLossConfig, HedOutput, class_balanced_bce, hed_loss};
use nightvision_core::testing::{Array, max_rel_err, read_safetensors};

/// Sums of a few hundred f32 terms (log-sigmoids, absolute values): relative to the value scale,
/// f32 accumulation error is ~1e-6; 1e-5 leaves room for libm differences in `log1p(exp(·))`.
const REL_TOL: f32 = 1e-5;

fn fixtures() -> std::collections::BTreeMap<String, Array> {
    read_safetensors(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/losses.safetensors"),
    )
    .unwrap()
}

fn scalar_err(got: Tensor<1>, want: &Array) -> f32 {
    let g: f32 = got.into_scalar();
    (g - want.data[0]).abs() / want.data[0].abs().max(1e-12)
}

#[test]
fn class_balanced_bce_matches_pytorch() {
    let device = Device::default().autodiff();
    let f = fixtures();
    let logits = f["bce.logits"].tensor::<4>(&device).require_grad();
    let labels = f["bce.labels"].tensor::<4>(&device);
    let loss = class_balanced_bce(logits.clone(), labels).unwrap();
    let grads = loss.backward();
    let e = scalar_err(loss, &f["bce.loss"]);
    let g = max_rel_err(logits.grad(&grads).unwrap(), &f["bce.grad"]);
    println!("bce: loss {e:.2e}, grad {g:.2e}");
    assert!(e < REL_TOL && g < REL_TOL, "loss {e}, grad {g}");
}

#[test]
fn class_balanced_bce_closed_form() {
    // One image, 1 positive and 3 negatives, logits 0: every term is ln 2; the positive weighs
    // 3/4, each negative 1/4, so the loss is (3/4 + 3·1/4)·ln 2 = 1.5 ln 2. A pixel labelled 0.5
    // is ignored, and an image without positives contributes 0.
    let device = Device::default();
    let logits = Tensor::<4>::zeros([2, 1, 1, 5], &device);
    let labels = Tensor::<4>::from_floats(
        [[[[1.0, 0.0, 0.0, 0.0, 0.5]]], [[[0.0, 0.0, 0.0, 0.0, 0.0]]]],
        &device,
    );
    let loss: f32 = class_balanced_bce(logits, labels).unwrap().into_scalar();
    // Averaged over the two images.
    let want = 1.5 * std::f32::consts::LN_2 / 2.0;
    assert!((loss - want).abs() < 1e-6, "{loss} vs {want}");
}

#[test]
fn hed_loss_sums_sides_and_fusion_like_pytorch() {
    let device = Device::default().autodiff();
    let f = fixtures();
    let names = ["side1", "side2", "side3", "side4", "side5", "fused"];
    let maps: Vec<Tensor<4>> = names
        .iter()
        .map(|n| f[&format!("hed.{n}")].tensor::<4>(&device).require_grad())
        .collect();
    let out = HedOutput {
        sides: [0, 1, 2, 3, 4].map(|i| maps[i].clone()),
        fused: maps[5].clone(),
    };
    let loss = hed_loss(&out, f["hed.labels"].tensor::<4>(&device)).unwrap();
    let grads = loss.backward();
    let e = scalar_err(loss, &f["hed.loss"]);
    println!("hed loss: {e:.2e}");
    assert!(e < REL_TOL, "loss {e}");
    for (n, m) in names.iter().zip(&maps) {
        let g = max_rel_err(m.grad(&grads).unwrap(), &f[&format!("hed.grad.{n}")]);
        assert!(g < REL_TOL, "grad {n}: {g}");
    }
}

#[test]
fn hedn_losses_match_pytorch() {
    let device = Device::default().autodiff();
    let f = fixtures();
    let t = |k: &str| f[&format!("hedn.{k}")].tensor::<4>(&device);
    let cfg = HedNLossConfig::new();

    let (s_day, s_night) = (t("s_day").require_grad(), t("s_night").require_grad());
    let teacher = t("t_day").require_grad();
    let loss = cfg
        .detector_loss_from_logits(s_day.clone(), s_night.clone(), teacher.clone())
        .unwrap();
    let grads = loss.backward();
    let e = scalar_err(loss, &f["hedn.student_loss"]);
    let gd = max_rel_err(s_day.grad(&grads).unwrap(), &f["hedn.grad_s_day"]);
    let gn = max_rel_err(s_night.grad(&grads).unwrap(), &f["hedn.grad_s_night"]);
    println!("hedn detector: loss {e:.2e}, grads {gd:.2e} {gn:.2e}");
    assert!(e < REL_TOL && gd < REL_TOL && gn < REL_TOL);
    // The teacher is frozen: no gradient flows into its logits.
    assert!(teacher.grad(&grads).is_none());

    let s_fake = t("s_fake").require_grad();
    let loss = cfg
        .edge_loss_from_logits(s_fake.clone(), teacher.clone())
        .unwrap();
    let grads = loss.backward();
    let e = scalar_err(loss, &f["hedn.edge_loss"]);
    let g = max_rel_err(s_fake.grad(&grads).unwrap(), &f["hedn.grad_s_fake"]);
    println!("hedn edge: loss {e:.2e}, grad {g:.2e}");
    assert!(e < REL_TOL && g < REL_TOL);
    assert!(teacher.grad(&grads).is_none());
}

#[test]
fn hedn_model_losses_route_gradients_as_gandtr() {
    // Student initialised from the teacher's weights (HEDN-GAN): on the day image the distillation
    // term is exactly 0; the detector loss trains the student only and never reaches the
    // generator's output; the edge loss reaches the generator's output.
    let device = Device::default().autodiff();
    device.seed(3);
    // Both from the same weights file, as HEDN-GAN initialises them. (Cloning a freshly
    // initialised module would share burn's lazy parameter state, and `no_grad` on the clone
    // would freeze the original too.)
    let weights = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hed_random.pth");
    let mut student = HedConfig::new()
        .with_widths([4, 8, 16, 32, 32])
        .init(&device);
    student.load_weights(&weights).unwrap();
    let teacher = student.clone().no_grad();
    let day = Tensor::<4>::random([1, 3, 20, 18], burn::tensor::Distribution::Default, &device);
    let fake = Tensor::<4>::random([1, 3, 20, 18], burn::tensor::Distribution::Default, &device)
        .require_grad();
    let cfg = HedNLossConfig::new();

    let day_only = cfg
        .detector_loss_from_logits(
            student.forward_logits(day.clone()),
            student.forward_logits(day.clone()),
            teacher.forward_logits(day.clone()),
        )
        .unwrap();
    assert!(day_only.into_scalar::<f32>().abs() < 1e-6);

    let loss = cfg
        .detector_loss(&student, &teacher, day.clone(), fake.clone())
        .unwrap();
    let grads = loss.backward();
    assert!(
        fake.grad(&grads).is_none(),
        "the detector step detaches G(x)"
    );
    let sg = student
        .combine
        .weight
        .grad(&grads)
        .expect("student gradient");
    assert!(sg.abs().sum().into_scalar::<f32>() > 0.0);
    assert!(teacher.combine.weight.grad(&grads).is_none());

    let loss = cfg
        .generator_edge_loss(&student, &teacher, day.clone(), fake.clone())
        .unwrap();
    let grads = loss.backward();
    let fg = fake.grad(&grads).expect("generator gradient");
    assert!(fg.abs().sum().into_scalar::<f32>() > 0.0);

    // Bad input is an error, not a panic.
    let small = Tensor::<4>::zeros([1, 3, 12, 18], &device);
    assert!(matches!(
        cfg.detector_loss(&student, &teacher, small, fake),
        Err(HedError::InputTooSmall { height: 12, .. })
    ));
}

#[test]
fn mismatched_label_shapes_are_errors() {
    let device = Device::default();
    let logits = Tensor::<4>::zeros([1, 1, 4, 5], &device);
    let labels = Tensor::<4>::zeros([1, 1, 5, 4], &device);
    let err = class_balanced_bce(logits, labels).unwrap_err();
    assert!(matches!(
        err,
        HedError::ShapeMismatch { what: "labels", .. }
    ));
    assert!(err.to_string().contains("[1, 1, 5, 4]"), "{err}");
}
