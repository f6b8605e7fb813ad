//! The BYOL classification trainer (docs/PAPERS.md C.3, `classification/train.py`): the
//! cross-entropy and its gradient in closed form, the momentum encoder's update with the
//! pre-step online weights, a plain step that leaves the BYOL heads alone, a resume that continues
//! bit for bit, learning on a fixed batch, and the errors.

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use darkening_minmax::ByolConfig;
use darkening_minmax::DarkeningError;
use darkening_minmax::classify::{ByolTrainer, ByolTrainerConfig, Encoder, cross_entropy};
use nightvision_core::checkpoint::CheckpointDir;

/// A small encoder: 1×1 convolution (3 → 8), BatchNorm, ReLU, global average pooling.
#[derive(Module, Debug)]
struct Tiny {
    conv: Conv2d,
    bn: BatchNorm,
}

impl Encoder for Tiny {
    fn encode(&self, x: Tensor<4>) -> Tensor<2> {
        relu(self.bn.forward(self.conv.forward(x)))
            .mean_dim(3)
            .mean_dim(2)
            .flatten::<2>(1, 3)
    }
}

/// Deterministic weights `sin(1 + i·offset)`, so that two encoders can be built alike.
fn tiny(device: &Device, offset: f32) -> Tiny {
    let mut conv = Conv2dConfig::new([3, 8], [1, 1]).init(device);
    let w: Vec<f32> = (0..24).map(|i| (1.0 + i as f32 * offset).sin()).collect();
    conv.weight = Param::from_tensor(Tensor::from_data(TensorData::new(w, [8, 3, 1, 1]), device));
    Tiny {
        conv,
        bn: BatchNormConfig::new(8).init(device),
    }
}

fn config(momentum: f64) -> ByolTrainerConfig {
    ByolTrainerConfig::new(
        ByolConfig::new()
            .with_feat_dim(8)
            .with_proj_dim(4)
            .with_momentum(momentum),
    )
}

/// A fixed batch: 6 images of 4×4 whose class (0, 1, 2, 0, 1, 2) is the brighter channel, over a
/// deterministic texture; their "dark views" scaled by 0.3.
fn batch(device: &Device) -> (Tensor<4>, Tensor<4>, Vec<usize>) {
    let v: Vec<f32> = (0..6 * 3 * 16)
        .map(|i| {
            let (image, channel) = (i / 48, i / 16 % 3);
            let texture = ((i * 37 % 101) as f32 / 50.0) - 1.0;
            texture * 0.3 + if channel == image % 3 { 1.0 } else { 0.0 }
        })
        .collect();
    let x = Tensor::<4>::from_data(TensorData::new(v, [6, 3, 4, 4]), device);
    (x.clone(), x.mul_scalar(0.3), vec![0, 1, 2, 0, 1, 2])
}

/// Every float parameter of a module, flattened, in visiting order; with `buffers`, BatchNorm's
/// running statistics too (after synchronising them: a visit reads them as of the last sync).
fn values<M: Module>(m: &M, buffers: bool) -> Vec<f32> {
    struct V(Vec<f32>, Vec<String>, bool);
    impl ModuleVisitor for V {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.1.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.1.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let buffer = self.1.last().is_some_and(|n| n.starts_with("running_"));
            if self.2 || !buffer {
                self.0.extend(p.val().into_data().iter::<f32>());
            }
        }
    }
    let _ = m.valid();
    let mut v = V(Vec::new(), Vec::new(), buffers);
    m.visit(&mut v);
    v.0
}

/// The trainable parameters (no BatchNorm running statistics).
fn params<M: Module>(m: &M) -> Vec<f32> {
    values(m, false)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn cross_entropy_and_its_gradient_are_the_closed_form() {
    let device = Device::default().autodiff();
    let raw = [0.3f32, -1.2, 2.0, 0.5, 0.1, 0.0, -0.7, 1.1];
    let logits =
        Tensor::<2>::from_data(TensorData::new(raw.to_vec(), [2, 4]), &device).require_grad();
    let labels = [2usize, 3];
    let loss = cross_entropy(logits.clone(), &labels).unwrap();
    let got: f32 = loss.clone().into_scalar();
    let grads = loss.backward();
    let g: Vec<f32> = logits
        .grad(&grads)
        .unwrap()
        .into_data()
        .iter::<f32>()
        .collect();
    // −(1/B) Σ log softmax[label];  ∂/∂z = (softmax − onehot) / B
    let mut want = 0.0f64;
    for r in 0..2 {
        let row: Vec<f64> = raw[r * 4..r * 4 + 4]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
        want -= (row[labels[r]] - lse) / 2.0;
        for c in 0..4 {
            let p = (row[c] - lse).exp();
            let onehot = if c == labels[r] { 1.0 } else { 0.0 };
            let expected = (p - onehot) / 2.0;
            assert!(
                (f64::from(g[r * 4 + c]) - expected).abs() < 1e-6,
                "grad[{r},{c}]"
            );
        }
    }
    assert!((f64::from(got) - want).abs() < 1e-6, "{got} vs {want}");

    let bad = cross_entropy(Tensor::<2>::zeros([2, 4], &device), &[0, 4]).unwrap_err();
    assert!(bad.to_string().contains("label 4"), "{bad}");
    assert!(cross_entropy(Tensor::<2>::zeros([2, 4], &device), &[0]).is_err());
}

#[test]
fn the_momentum_encoder_follows_the_online_weights_before_each_step() {
    let device = Device::default();
    let m = 0.75;
    let mut t = ByolTrainer::new(
        config(m),
        tiny(&device, 0.7),
        tiny(&device, 0.2),
        3,
        &device,
    )
    .unwrap();
    let (x, dark, y) = batch(&device);
    let theta0 = params(&t.model().encoder);
    // the momentum encoder starts as an exact copy of the online one (not its own weights)
    assert_eq!(params(t.momentum_encoder()), theta0);
    t.step(x.clone(), Some(dark.clone()), &y).unwrap();
    let theta1 = params(&t.model().encoder);
    assert!(
        max_abs_diff(&theta0, &theta1) > 1e-5,
        "the step changed nothing"
    );
    // m·θ0 + (1 − m)·θ0 = θ0
    assert!(max_abs_diff(params(t.momentum_encoder()).as_slice(), &theta0) < 1e-7);
    t.step(x, Some(dark), &y).unwrap();
    let want: Vec<f32> = theta0
        .iter()
        .zip(&theta1)
        .map(|(a, b)| (m * f64::from(*a) + (1.0 - m) * f64::from(*b)) as f32)
        .collect();
    assert!(max_abs_diff(&params(t.momentum_encoder()), &want) < 1e-6);
    // the momentum head follows the online projection head the same way
    assert_eq!(t.log().len(), 2);
    assert!(
        t.log()
            .iter()
            .all(|l| l.byol.is_some() && l.ce_dark.is_some())
    );
}

#[test]
fn a_plain_step_is_the_cross_entropy_and_leaves_the_byol_heads_alone() {
    let device = Device::default();
    let mut t = ByolTrainer::new(
        config(0.99),
        tiny(&device, 0.7),
        tiny(&device, 0.7),
        3,
        &device,
    )
    .unwrap();
    let (x, _, y) = batch(&device);
    let logits = t.model().classify(x.clone().to_device(t.device()));
    let want: f32 = cross_entropy(logits, &y).unwrap().into_scalar();
    let heads = params(&t.model().heads);
    let encoder = params(&t.model().encoder);
    let log = t.step(x, None, &y).unwrap();
    assert!((log.ce_day - want).abs() < 1e-6 && log.loss == log.ce_day);
    assert!(log.byol.is_none() && log.ce_dark.is_none());
    assert_eq!(
        params(&t.model().heads),
        heads,
        "heads moved in a plain step"
    );
    assert!(max_abs_diff(&params(&t.model().encoder), &encoder) > 1e-5);
}

#[test]
fn training_on_a_fixed_batch_lowers_the_loss() {
    let device = Device::default();
    let mut t = ByolTrainer::new(
        config(0.99).with_lr(1e-2),
        tiny(&device, 0.7),
        tiny(&device, 0.7),
        3,
        &device,
    )
    .unwrap();
    let (x, dark, y) = batch(&device);
    let first = t.step(x.clone(), Some(dark.clone()), &y).unwrap();
    let mut last = first;
    for _ in 0..40 {
        last = t.step(x.clone(), Some(dark.clone()), &y).unwrap();
    }
    assert!(
        last.ce_day < 0.7 * first.ce_day,
        "{} → {}",
        first.ce_day,
        last.ce_day
    );
    assert!(last.ce_dark.unwrap() < 0.7 * first.ce_dark.unwrap());
}

#[test]
fn a_resumed_run_continues_bit_for_bit() {
    let device = Device::default();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = CheckpointDir::new(dir.path()).unwrap();
    let (x, dark, y) = batch(&device);
    let new = || {
        ByolTrainer::new(
            config(0.9),
            tiny(&device, 0.7),
            tiny(&device, 0.7),
            3,
            &device,
        )
        .unwrap()
    };
    let mut a = new();
    for _ in 0..2 {
        a.step(x.clone(), Some(dark.clone()), &y).unwrap();
    }
    a.save_checkpoint(&ckpt).unwrap();
    a.step(x.clone(), Some(dark.clone()), &y).unwrap();

    // a fresh trainer (new random heads and classifier) resumed from step 2
    let mut b = new();
    assert!(b.resume(&ckpt).unwrap());
    assert_eq!(b.steps_done(), 2);
    b.step(x, Some(dark), &y).unwrap();
    assert_eq!(values(a.model(), true), values(b.model(), true));
    assert_eq!(
        values(a.momentum_encoder(), true),
        values(b.momentum_encoder(), true)
    );
    assert_eq!(a.log(), b.log());
}

#[test]
fn bad_inputs_are_errors() {
    let device = Device::default();
    let mut t = ByolTrainer::new(
        config(0.99),
        tiny(&device, 0.7),
        tiny(&device, 0.7),
        3,
        &device,
    )
    .unwrap();
    let (x, dark, y) = batch(&device);
    let e = t.step(x.clone(), None, &[0, 1, 2, 0, 1, 3]).unwrap_err();
    assert!(e.to_string().contains("label 3"), "{e}");
    let e = t.step(x.clone(), None, &y[..5]).unwrap_err();
    assert!(matches!(e, DarkeningError::Shape { .. }), "{e}");
    let e = t
        .step(x.clone(), Some(dark.narrow(0, 0, 5)), &y)
        .unwrap_err();
    assert!(e.to_string().contains("dark views"), "{e}");
    // a feature size other than the configured one
    let mut wrong = ByolTrainer::new(
        ByolTrainerConfig::new(ByolConfig::new().with_feat_dim(16).with_proj_dim(4)),
        tiny(&device, 0.7),
        tiny(&device, 0.7),
        3,
        &device,
    )
    .unwrap();
    let e = wrong.step(x, None, &y).unwrap_err();
    assert!(e.to_string().contains("encoder features"), "{e}");
    assert_eq!(t.steps_done(), 0, "a failed step must not count");
    assert!(
        ByolTrainer::new(
            config(0.99),
            tiny(&device, 0.7),
            tiny(&device, 0.7),
            0,
            &device
        )
        .is_err()
    );
    assert!(
        ByolTrainer::new(
            config(0.99).with_lr(0.0),
            tiny(&device, 0.7),
            tiny(&device, 0.7),
            3,
            &device
        )
        .is_err()
    );
}
