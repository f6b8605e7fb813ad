//! The D losses of docs/PAPERS.md C.2 against PyTorch autograd (`scripts/gen_fixtures.py`, a
//! re-implementation of `darkening/loss_func.py`): every term's value and its gradient, and the
//! whole weighted `L_D` back-propagated through the darkening network.

use std::path::PathBuf;

use burn::module::{Module, Param};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use darkening_minmax::{
    DarkeningLossConfig, DarkeningNetConfig, colour_loss, exposure_loss, flex_loss, loose_tv_loss,
    similarity_loss,
};
use nightvision_core::Normalization;
use nightvision_core::testing::{Array, max_rel_err, read_safetensors};

/// Means and sums of a few hundred f32 terms: relative to the value scale, accumulation error is
/// ~1e-6; 1e-5 leaves room for different summation orders.
const REL_TOL: f32 = 1e-5;
/// The similarity loss is a mean of cosines in [-1, 1] whose value here is near 0, so it is
/// compared absolutely: f32 rounding of 16-term dot products and a 24-term mean is ~1e-7.
const COSINE_ABS_TOL: f32 = 1e-6;
/// `L_D` back-propagated through eight convolutions, eight curve iterations and a two-conv
/// extractor: the reference's own f32 error is ~1e-6 relative; 1e-4 bounds the accumulated
/// differences of conv kernels across the whole chain.
const E2E_REL_TOL: f32 = 1e-4;

fn fixtures(name: &str) -> std::collections::BTreeMap<String, Array> {
    read_safetensors(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

fn scalar_err(got: Tensor<1>, want: &Array) -> f32 {
    let g: f32 = got.into_scalar();
    (g - want.data[0]).abs() / want.data[0].abs().max(1e-12)
}

#[test]
fn similarity_loss_matches_pytorch() {
    let device = Device::default().autodiff();
    let f = fixtures("losses.safetensors");
    let f1 = f["sim.f1"].tensor::<4>(&device).require_grad();
    let f2 = f["sim.f2"].tensor::<4>(&device).require_grad();
    let loss = similarity_loss(f1.clone(), f2.clone());
    let grads = loss.backward();
    let e = (loss.into_scalar::<f32>() - f["sim.loss"].data[0]).abs();
    let g1 = max_rel_err(f1.grad(&grads).unwrap(), &f["sim.grad_f1"]);
    let g2 = max_rel_err(f2.grad(&grads).unwrap(), &f["sim.grad_f2"]);
    println!("sim: loss abs {e:.2e}, grads {g1:.2e} {g2:.2e}");
    assert!(e < COSINE_ABS_TOL && g1 < REL_TOL && g2 < REL_TOL);
}

#[test]
fn exposure_loss_matches_pytorch() {
    let device = Device::default().autodiff();
    let f = fixtures("losses.safetensors");
    for p in [1, 4] {
        let img = f["exp.image"].tensor::<4>(&device).require_grad();
        let loss = exposure_loss(img.clone(), f["exp.e"].tensor(&device), p);
        let grads = loss.backward();
        let e = scalar_err(loss, &f[&format!("exp.p{p}.loss")]);
        let g = max_rel_err(img.grad(&grads).unwrap(), &f[&format!("exp.p{p}.grad")]);
        println!("exposure p{p}: loss {e:.2e}, grad {g:.2e}");
        assert!(e < REL_TOL && g < REL_TOL, "patch {p}");
    }
}

#[test]
fn colour_loss_matches_pytorch() {
    let device = Device::default().autodiff();
    let f = fixtures("losses.safetensors");
    let img = f["col.image"].tensor::<4>(&device).require_grad();
    let loss = colour_loss(img.clone());
    let grads = loss.backward();
    let e = scalar_err(loss, &f["col.loss"]);
    let g = max_rel_err(img.grad(&grads).unwrap(), &f["col.grad"]);
    println!("colour: loss {e:.2e}, grad {g:.2e}");
    assert!(e < REL_TOL && g < REL_TOL);
}

#[test]
fn loose_tv_loss_matches_pytorch() {
    let device = Device::default().autodiff();
    let f = fixtures("losses.safetensors");
    let a = f["tv.a"].tensor::<4>(&device).require_grad();
    let loss = loose_tv_loss(a.clone(), 0.02);
    let grads = loss.backward();
    let e = scalar_err(loss, &f["tv.loss"]);
    let g = max_rel_err(a.grad(&grads).unwrap(), &f["tv.grad"]);
    println!("loose tv: loss {e:.2e}, grad {g:.2e}");
    assert!(e < REL_TOL && g < REL_TOL);
}

#[test]
fn flex_loss_matches_pytorch() {
    let device = Device::default().autodiff();
    let f = fixtures("losses.safetensors");
    let b = f["flex.b"].tensor::<4>(&device).require_grad();
    let loss = flex_loss(b.clone());
    let grads = loss.backward();
    let e = scalar_err(loss, &f["flex.loss"]);
    let g = max_rel_err(b.grad(&grads).unwrap(), &f["flex.grad"]);
    println!("flex: loss {e:.2e}, grad {g:.2e}");
    assert!(e < REL_TOL && g < REL_TOL);
}

/// A conv with the fixture's weights (stride 2, padding 1), frozen.
fn conv(f: &std::collections::BTreeMap<String, Array>, name: &str, device: &Device) -> Conv2d {
    let w = &f[&format!("e2e.{name}.weight")];
    let mut c = Conv2dConfig::new([w.shape[1], w.shape[0]], [3, 3])
        .with_stride([2, 2])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device);
    c.weight = Param::from_tensor(w.tensor(device));
    c.bias = Some(Param::from_tensor(
        f[&format!("e2e.{name}.bias")].tensor(device),
    ));
    c.no_grad()
}

#[test]
fn total_loss_through_the_network_matches_pytorch() {
    let device = Device::default().autodiff();
    let f = fixtures("darkening.safetensors");
    let mut net = DarkeningNetConfig::new().init(&device);
    net.load_pytorch(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/darkening.pth"),
    )
    .unwrap();
    let (fx1, fx2) = (conv(&f, "fx1", &device), conv(&f, "fx2", &device));
    let feats = |x: Tensor<4>| fx2.forward(relu(fx1.forward(Normalization::ImageNet.apply(x))));
    let x = f["x"].tensor::<4>(&device);
    let e = f["e2e.e"].tensor::<4>(&device);
    let out = net.forward(x.clone(), e.clone());
    let feat_dark = feats(out.image.clone());
    let loss = DarkeningLossConfig::new()
        .forward(&out, e, feats(x), feat_dark)
        .unwrap();
    let v = loss.values();
    for (name, got) in [
        ("sim", v.sim),
        ("exposure", v.exposure),
        ("colour", v.colour),
        ("tv", v.tv),
        ("flex", v.flex),
        ("total", v.total),
    ] {
        let want = f[&format!("e2e.{name}")].data[0];
        let err = (got - want).abs() / want.abs();
        println!("e2e {name}: {got} vs {want} ({err:.2e})");
        assert!(err < E2E_REL_TOL, "{name}");
    }
    let grads = loss.total.backward();
    let g7 = max_rel_err(
        net.e_conv7.point_conv.weight.grad(&grads).unwrap(),
        &f["e2e.grad.e_conv7.point_conv.weight"],
    );
    let g0 = max_rel_err(
        net.e_conv0.depth_conv.weight.grad(&grads).unwrap(),
        &f["e2e.grad.e_conv0.depth_conv.weight"],
    );
    println!("e2e grads: e_conv7 {g7:.2e}, e_conv0 {g0:.2e}");
    assert!(g7 < E2E_REL_TOL && g0 < E2E_REL_TOL);
}
