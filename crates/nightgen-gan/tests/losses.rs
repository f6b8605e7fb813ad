//! The GAN and L1 losses against PyTorch autograd (`scripts/gen_loss_fixtures.py`:
//! `nn.MSELoss` / `nn.BCEWithLogitsLoss` with the target broadcast to the map, `nn.L1Loss`,
//! computed in float64): values and gradients.

use std::path::PathBuf;

use burn::tensor::{Device, Tensor};
use nightgen_gan::{GanMode, cycle_consistency_l1, edge_consistency_l1, identity_l1, l1_loss};
use nightvision_core::testing::{Array, max_rel_err, read_safetensors};

/// Means of 60–336 f32 terms against a float64 reference: accumulation and `log1p(exp(·))`
/// rounding, measured ≤ 2.1e-7 relative; 1e-5 leaves room for other backends and still catches
/// any wrong target, weight or reduction (those change the values by > 1 %).
const REL_TOL: f32 = 1e-5;

fn fixtures() -> std::collections::BTreeMap<String, Array> {
    read_safetensors(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/losses_gan.safetensors"),
    )
    .unwrap()
}

fn scalar_err(got: Tensor<1>, want: &Array) -> f32 {
    let g: f32 = got.into_scalar();
    (g - want.data[0]).abs() / want.data[0].abs().max(1e-12)
}

#[test]
fn gan_losses_match_pytorch() {
    let device = Device::default().autodiff();
    let f = fixtures();
    for (mode, name) in [(GanMode::Lsgan, "lsgan"), (GanMode::Vanilla, "vanilla")] {
        let fake = f["pred_fake"].tensor::<4>(&device).require_grad();
        let g = mode.generator_loss(fake.clone());
        let grads = g.backward();
        let ge = scalar_err(g, &f[&format!("{name}.g")]);
        let gg = max_rel_err(
            fake.grad(&grads).unwrap(),
            &f[&format!("{name}.g.grad_fake")],
        );

        let real = f["pred_real"].tensor::<4>(&device).require_grad();
        let fake = f["pred_fake"].tensor::<4>(&device).require_grad();
        let d = mode.discriminator_loss(real.clone(), fake.clone());
        let grads = d.backward();
        let de = scalar_err(d, &f[&format!("{name}.d")]);
        let dr = max_rel_err(
            real.grad(&grads).unwrap(),
            &f[&format!("{name}.d.grad_real")],
        );
        let df = max_rel_err(
            fake.grad(&grads).unwrap(),
            &f[&format!("{name}.d.grad_fake")],
        );
        println!("{name}: G {ge:.1e} (grad {gg:.1e}), D {de:.1e} (grads {dr:.1e}, {df:.1e})");
        for (what, e) in [("G", ge), ("G grad", gg), ("D", de), ("D grad real", dr)] {
            assert!(e < REL_TOL, "{name} {what}: {e}");
        }
        assert!(df < REL_TOL, "{name} D grad fake: {df}");
    }
}

#[test]
fn l1_terms_match_pytorch() {
    let device = Device::default().autodiff();
    let f = fixtures();
    let b = f["l1.b"].tensor::<4>(&device);
    type L1 = fn(Tensor<4>, Tensor<4>) -> nightgen_gan::Result<Tensor<1>>;
    let fns: [(&str, L1); 3] = [
        ("l1_loss", l1_loss::<4>),
        ("cycle", cycle_consistency_l1),
        ("identity", identity_l1),
    ];
    for (name, l1) in fns {
        let a = f["l1.a"].tensor::<4>(&device).require_grad();
        let loss = l1(a.clone(), b.clone()).unwrap();
        let grads = loss.backward();
        let e = scalar_err(loss, &f["l1.value"]);
        let g = max_rel_err(a.grad(&grads).unwrap(), &f["l1.grad_a"]);
        println!("{name}: {e:.1e}, grad {g:.1e}");
        assert!(e < REL_TOL && g < REL_TOL, "{name}: {e}, grad {g}");
    }
}

#[test]
fn edge_consistency_matches_pytorch_and_detaches_the_target() {
    let device = Device::default().autodiff();
    let f = fixtures();
    let fake = f["edge.fake"].tensor::<4>(&device).require_grad();
    let real = f["edge.real"].tensor::<4>(&device).require_grad();
    let loss = edge_consistency_l1(fake.clone(), real.clone()).unwrap();
    let grads = loss.backward();
    let e = scalar_err(loss, &f["edge.value"]);
    let g = max_rel_err(fake.grad(&grads).unwrap(), &f["edge.grad_fake"]);
    println!("edge: {e:.1e}, grad {g:.1e}");
    assert!(e < REL_TOL && g < REL_TOL, "edge: {e}, grad {g}");
    // The target edge map comes from a frozen detector: no gradient reaches it.
    assert!(real.grad(&grads).is_none());
}
