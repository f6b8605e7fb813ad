//! HED's Caffe learning-rate and weight-decay multipliers as burn parameter groups.

use std::path::PathBuf;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor};
use hed_edges::{CaffeGroup, Hed, HedConfig, caffe_lr_scheduler, caffe_optimizer, hed_loss};
use nightvision_core::testing::read_safetensors;

/// Every float parameter of a module with its burn module path, as the optimiser sees it.
#[derive(Default)]
struct Params {
    path: Vec<String>,
    found: Vec<(String, ParamId, Vec<f32>)>,
}

impl ModuleVisitor for Params {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let v = param.val().into_data().try_into_vec_as::<f32>().unwrap();
        self.found.push((self.path.join("."), param.id, v));
    }
}

fn params(hed: &Hed) -> Vec<(String, ParamId, Vec<f32>)> {
    let mut p = Params::default();
    hed.visit(&mut p);
    p.found
}

#[test]
fn every_parameter_falls_in_exactly_one_group() {
    let hed = HedConfig::new()
        .with_widths([4, 8, 16, 32, 32])
        .init(&Device::default());
    let groups: Vec<_> = CaffeGroup::ALL
        .iter()
        .map(|g| (*g, g.param_group().unwrap()))
        .collect();
    let mut counts = std::collections::HashMap::new();
    let all = params(&hed);
    assert_eq!(all.len(), 2 * (13 + 5 + 1));
    for (path, id, _) in &all {
        let hits: Vec<CaffeGroup> = groups
            .iter()
            .filter(|(_, pg)| pg.matches(id, Some(path)))
            .map(|(g, _)| *g)
            .collect();
        assert_eq!(hits.len(), 1, "{path}: {hits:?}");
        assert_eq!(CaffeGroup::of_path(path), Some(hits[0]), "{path}");
        *counts.entry(hits[0]).or_insert(0) += 1;
    }
    // 10 convolutions in blocks 1-4, 3 in block 5, 5 score layers, 1 fusion.
    for (g, n) in [
        (CaffeGroup::ConvWeight, 10),
        (CaffeGroup::ConvBias, 10),
        (CaffeGroup::Conv5Weight, 3),
        (CaffeGroup::Conv5Bias, 3),
        (CaffeGroup::ScoreWeight, 5),
        (CaffeGroup::ScoreBias, 5),
        (CaffeGroup::FusionWeight, 1),
        (CaffeGroup::FusionBias, 1),
    ] {
        assert_eq!(counts[&g], n, "{g:?}");
    }
    // A HED nested in a larger module keeps its groups; other parameters have none.
    assert_eq!(
        CaffeGroup::of_path("student.vgg_fiv.2.bias"),
        Some(CaffeGroup::Conv5Bias)
    );
    assert!(
        groups[3]
            .1
            .matches(&ParamId::new(), Some("student.vgg_fiv.2.bias"))
    );
    assert_eq!(CaffeGroup::of_path("generator.conv.weight"), None);
}

#[test]
fn multipliers_follow_the_caffe_table_on_a_pure_decay_step() {
    // With a zero loss gradient, Adam's first step moves each parameter by
    // lr·lr_mult·g/(|g| + eps) with g = wd·decay_mult·w — weights by about lr·lr_mult·sign(w),
    // biases (decay 0, gradient 0) not at all. This isolates both multipliers of every group.
    let device = Device::default().autodiff();
    device.seed(1);
    let hed = HedConfig::new()
        .with_widths([4, 8, 16, 32, 32])
        .init(&device);
    let before = params(&hed);
    let base_lr = 1e-3;
    let mut optim = caffe_optimizer(&AdamConfig::new().with_epsilon(1e-8), 0.1).unwrap();
    let mut lr = caffe_lr_scheduler(base_lr).unwrap();
    let x = Tensor::<4>::ones([1, 3, 16, 16], &device).mul_scalar(0.5);
    let loss = hed.forward_logits(x).sum().mul_scalar(0.0);
    let grads = GradientsParams::from_grads(loss.backward(), &hed);
    let hed = optim.step(lr.step(), hed, grads);
    let after = params(&hed);
    for ((path, _, w0), (_, _, w1)) in before.iter().zip(&after) {
        let g = CaffeGroup::of_path(path).unwrap();
        let step = base_lr * g.lr_mult();
        for (a, b) in w0.iter().zip(w1) {
            let delta = (*b as f64) - (*a as f64);
            if g.decay_mult() == 0.0 {
                assert_eq!(delta, 0.0, "{path}: a bias moved");
            } else {
                // Adam's first step: m̂ / (√v̂ + eps) = g / (|g| + eps), g = wd·w.
                let g = 0.1 * (*a as f64);
                let want = -step * g / (g.abs() + 1e-8);
                // f32 arithmetic on the update and rounding of the parameter (|w| < 1.5: ulp ≤
                // 1.2e-7, twice).
                let tol = 1e-5 * step + 2.4e-7;
                assert!((delta - want).abs() < tol, "{path}: {delta} vs {want}");
            }
        }
    }
}

#[test]
fn two_adam_steps_match_pytorch_parameter_groups() {
    // gandtr's HedInterpolation.parameter_groups with torch.optim.Adam (float64), base lr 1e-3,
    // weight decay 2e-4, eps 1e-8, two steps on the HED loss (scripts/gen_fixtures.py).
    let device = Device::default().autodiff();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let f = read_safetensors(dir.join("optim.safetensors")).unwrap();
    let mut hed = HedConfig::new()
        .with_widths([4, 8, 16, 32, 32])
        .init(&device);
    hed.load_weights(dir.join("hed_random.pth")).unwrap();
    let before = params(&hed);
    let mut optim = caffe_optimizer(&AdamConfig::new().with_epsilon(1e-8), 2e-4).unwrap();
    let mut lr = caffe_lr_scheduler(1e-3).unwrap();
    let x = f["x"].tensor::<4>(&device);
    let labels = f["labels"].tensor::<4>(&device);
    for _ in 0..2 {
        let loss = hed_loss(&hed.forward_output(x.clone()), labels.clone()).unwrap();
        let grads = GradientsParams::from_grads(loss.backward(), &hed);
        hed = optim.step(lr.step(), hed, grads);
    }
    let after = params(&hed);
    let checked = [
        ("vgg_one.0", "netVggOne.0"),
        ("vgg_thr.1", "netVggThr.3"),
        ("vgg_fiv.2", "netVggFiv.5"),
        ("score_two", "netScoreTwo"),
        ("combine", "netCombine.0"),
    ];
    for (ours, theirs) in checked {
        for kind in ["weight", "bias"] {
            let path = format!("{ours}.{kind}");
            let i = before.iter().position(|p| p.0 == path).unwrap();
            let want = &f[&format!("delta.{theirs}.{kind}")];
            let scale = want.data.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
            let mut worst = 0f64;
            for ((a, b), w) in before[i].2.iter().zip(&after[i].2).zip(&want.data) {
                let delta = (*b as f64) - (*a as f64);
                worst = worst.max((delta - *w as f64).abs());
            }
            // Adam normalises the f32-vs-f64 gradient differences (~1e-5 relative) away; what
            // remains is f32 rounding of the parameters (|w| < 1.5: ulp ≤ 1.2e-7, twice).
            let tol = 1e-3 * scale + 2.4e-7;
            println!("{path}: |delta| {scale:.2e}, worst error {worst:.2e}");
            assert!(worst < tol, "{path}: {worst} (scale {scale})");
        }
    }
}
