//! The BYOL heads and loss of docs/PAPERS.md C.3 against PyTorch autograd (`scripts/gen_fixtures.py`,
//! a re-implementation of `resnet_BYOL.py` + the loss of `classification/train.py`): heads loaded
//! from a PyTorch-named state dict, BatchNorm on batch statistics (train mode), the loss value
//! and the gradients w.r.t. the online features and head parameters.

use std::path::PathBuf;

use burn::module::Module;
use burn::tensor::Device;
use darkening_minmax::ByolConfig;
use nightvision_core::testing::{Array, max_rel_err, read_safetensors};
use nightvision_core::weights::WeightsLoader;

/// Two small MLPs with batch-statistic BatchNorm and a normalised dot product: f32 error
/// ~1e-6 relative; 1e-5 leaves room for different summation orders in the batch statistics.
const REL_TOL: f32 = 1e-5;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A PyTorch `[out, in]` Linear weight as burn's `[in, out]`.
fn transposed(a: &Array) -> Array {
    let (o, i) = (a.shape[0], a.shape[1]);
    let mut data = vec![0f32; o * i];
    for r in 0..o {
        for c in 0..i {
            data[c * o + r] = a.data[r * i + c];
        }
    }
    Array {
        data,
        shape: vec![i, o],
    }
}

#[test]
fn byol_loss_and_gradients_match_pytorch() {
    let device = Device::default().autodiff();
    let f = read_safetensors(fixture("byol.safetensors")).unwrap();
    let mut heads = ByolConfig::new()
        .with_feat_dim(32)
        .with_proj_dim(16)
        .init(&device);
    let report = WeightsLoader::new()
        .with_remap(r"^heads\.(.+)$", "$1")
        .partial() // the file also holds the inputs and expected values
        .load(&mut heads, fixture("byol.safetensors"))
        .unwrap_or_else(|e| panic!("{e}"));
    // 3 heads × (2 linears × 2 + BatchNorm gamma, beta, running mean, running var).
    assert_eq!(report.applied.len(), 24, "{:?}", report.applied);
    assert!(report.missing.is_empty(), "{:?}", report.missing);
    heads.head_k = heads.head_k.no_grad();

    let fd = f["feat_day"].tensor::<2>(&device).require_grad();
    let fn_ = f["feat_dark"].tensor::<2>(&device).require_grad();
    let loss = heads.forward(
        fd.clone(),
        fn_.clone(),
        f["feat_day_k"].tensor(&device),
        f["feat_dark_k"].tensor(&device),
    );
    let grads = loss.backward();
    let got: f32 = loss.into_scalar();
    let want = f["loss"].data[0];
    let e = (got - want).abs() / want.abs();
    let g_day = max_rel_err(fd.grad(&grads).unwrap(), &f["grad_feat_day"]);
    let g_dark = max_rel_err(fn_.grad(&grads).unwrap(), &f["grad_feat_dark"]);
    let g_q = max_rel_err(
        heads.head_q.fc1.weight.grad(&grads).unwrap(),
        &transposed(&f["grad.head_q.fc1.weight"]),
    );
    let g_p = max_rel_err(
        heads.pred.fc2.weight.grad(&grads).unwrap(),
        &transposed(&f["grad.pred.fc2.weight"]),
    );
    let g_bn = max_rel_err(
        heads.pred.bn1.gamma.grad(&grads).unwrap(),
        &f["grad.pred.bn1.weight"],
    );
    println!(
        "byol: loss {got} vs {want} ({e:.2e}); grads day {g_day:.2e}, dark {g_dark:.2e}, \
         head_q.fc1 {g_q:.2e}, pred.fc2 {g_p:.2e}, pred.bn1 {g_bn:.2e}"
    );
    assert!(e < REL_TOL);
    for g in [g_day, g_dark, g_q, g_p, g_bn] {
        assert!(g < REL_TOL, "{g}");
    }
    // The momentum head takes no gradient.
    assert!(heads.head_k.fc1.weight.grad(&grads).is_none());
}

#[test]
fn momentum_update_of_the_heads() {
    let device = Device::default().autodiff();
    device.seed(2);
    let heads = ByolConfig::new()
        .with_feat_dim(6)
        .with_proj_dim(4)
        .init(&device);
    // Move the online head away from the copy, then average: k' = 0.99 k + 0.01 q.
    let mut heads = heads;
    heads.head_q = darkening_minmax::ema_update(
        heads.head_q,
        &ByolConfig::new()
            .with_feat_dim(6)
            .with_proj_dim(4)
            .init(&device)
            .pred,
        0.5,
    );
    let vals =
        |t: burn::tensor::Tensor<2>| -> Vec<f32> { t.into_data().try_into_vec_as().unwrap() };
    let k0 = vals(heads.head_k.fc2.weight.val());
    let q = vals(heads.head_q.fc2.weight.val());
    let heads = heads.momentum_update();
    let k1 = vals(heads.head_k.fc2.weight.val());
    for ((a, b), c) in k1.iter().zip(&k0).zip(&q) {
        assert!((a - (0.99 * b + 0.01 * c)).abs() < 1e-7);
    }
    assert!(!heads.head_k.fc2.weight.val().is_require_grad());
}
