//! Parity of every pooling, head, loss, whitening and network with the PyTorch / numpy references
//! of `scripts/gen_fixtures.py` (forward values and gradients).
//!
//! The references are computed in float64 from the upstream formulas (cirtorch, CosPlace, NocPlace);
//! this crate computes in f32.

use std::collections::BTreeMap;
use std::path::PathBuf;

use backbones::{ResNetConfig, Vgg16Config};
use burn::module::Param;
use burn::nn::LinearConfig;
use burn::tensor::{Device, Tensor};
use metric_learning::losses::{
    ContrastiveLossConfig, MarginCosineProduct, NocPlaceLossConfig, TripletLossConfig,
};
use metric_learning::pooling::{self, GemConfig};
use metric_learning::{
    BackboneConfig, CirNetConfig, CosPlaceAggregation, CosPlaceNetConfig, DEFAULT_SCALES,
    Whitening, cross_entropy, ikt_loss, multiscale, resize_scale_factor,
};
use nightvision_core::testing::{Array, max_rel_err, read_safetensors};

/// f32 evaluation of element-wise formulas against a float64 reference: a few ulps of f32
/// (≈ 6e-8 relative) accumulated over sums of ≤ 300 terms and a pow/log pair.
const FWD_TOL: f32 = 1e-5;
/// Gradients pass through pow(x, p) / log(x) chains (GeM) and softmaxes with s = 30 logits,
/// which amplify f32 rounding by up to ~30×.
const GRAD_TOL: f32 = 1e-4;
/// Whole networks: the backbone parity bound of the `backbones` crate (different summation order
/// of f32 convolutions).
const NET_TOL: f32 = 1e-4;
/// Whitening: f64 learning on both sides; the whitened descriptors are compared after an f32
/// matmul on the device.
const WHITEN_TOL: f32 = 1e-5;

fn fixture(name: &str) -> BTreeMap<String, Array> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    read_safetensors(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn ints(a: &Array) -> Vec<i64> {
    a.data.iter().map(|v| *v as i64).collect()
}

fn usizes(a: &Array) -> Vec<usize> {
    a.data.iter().map(|v| *v as usize).collect()
}

fn check<const D: usize>(name: &str, got: Tensor<D>, want: &Array, tol: f32) {
    let e = max_rel_err(got, want);
    println!("{name}: {e:.2e}");
    assert!(e < tol, "{name}: relative error {e} ≥ {tol}");
}

/// A Linear layer holding PyTorch weights `w` `[out, in]` and bias `b`.
fn linear(w: &Array, b: &Array, device: &Device) -> burn::nn::Linear {
    let (out, inp) = (w.shape[0], w.shape[1]);
    let mut lin = LinearConfig::new(inp, out).init(device);
    lin.weight = Param::from_tensor(w.tensor::<2>(device).transpose());
    lin.bias = Some(Param::from_tensor(b.tensor::<1>(device)));
    lin
}

#[test]
fn gem_mac_spoc_l2n_match_cirtorch() {
    let device = Device::default().autodiff();
    let f = fixture("pooling.safetensors");
    for (tag, p0) in [("p3", 3.0), ("p2_3", 2.3)] {
        let x = f["x"].tensor::<4>(&device).require_grad();
        let gem = GemConfig::new().with_p(p0).init(&device);
        let y = gem.forward(x.clone());
        check(
            &format!("gem {tag}"),
            y.clone(),
            &f[&format!("gem_{tag}")],
            FWD_TOL,
        );
        let grads = (y * f["w_gem"].tensor::<2>(&device)).sum().backward();
        check(
            &format!("gem {tag} dx"),
            x.grad(&grads).unwrap(),
            &f[&format!("gem_{tag}_grad_x")],
            GRAD_TOL,
        );
        check(
            &format!("gem {tag} dp"),
            gem.p.val().grad(&grads).unwrap(),
            &f[&format!("gem_{tag}_grad_p")],
            GRAD_TOL,
        );
    }
    let xs = f["xs"].tensor::<4>(&device);
    check("mac", pooling::mac(xs.clone()), &f["mac"], FWD_TOL);
    check("spoc", pooling::spoc(xs.clone()), &f["spoc"], FWD_TOL);
    check(
        "l2n",
        pooling::l2n(f["v"].tensor::<2>(&device), pooling::L2N_EPS),
        &f["l2n"],
        FWD_TOL,
    );
    check(
        "channel l2",
        pooling::channel_l2(xs),
        &f["channel_l2"],
        FWD_TOL,
    );
}

#[test]
fn cirtorch_and_cosplace_heads_match_with_gradients() {
    let device = Device::default().autodiff();
    let h = fixture("heads.safetensors");
    // cirtorch: GeM → L2N → whiten → L2N
    let feat = h["cir_f"].tensor::<4>(&device).require_grad();
    let gem = GemConfig::new()
        .with_p(h["cir_p"].data[0] as f64)
        .init(&device);
    let lin = linear(&h["cir_w"], &h["cir_b"], &device);
    let o = pooling::l2n(gem.forward(feat.clone()), pooling::L2N_EPS);
    let o = pooling::l2n(lin.forward(o), pooling::L2N_EPS);
    check("cirtorch head", o.clone(), &h["cir_out"], FWD_TOL);
    let grads = (o * h["cir_wo"].tensor::<2>(&device)).sum().backward();
    check(
        "cirtorch head df",
        feat.grad(&grads).unwrap(),
        &h["cir_grad_f"],
        GRAD_TOL,
    );
    check(
        "cirtorch head dp",
        gem.p.val().grad(&grads).unwrap(),
        &h["cir_grad_p"],
        GRAD_TOL,
    );
    check(
        "cirtorch head dW",
        lin.weight.val().grad(&grads).unwrap().transpose(),
        &h["cir_grad_w"],
        GRAD_TOL,
    );

    // CosPlace aggregation: channel L2 → GeM → Linear → L2
    let feat = h["cos_f"].tensor::<4>(&device).require_grad();
    let agg = CosPlaceAggregation {
        gem: GemConfig::new()
            .with_p(h["cos_p"].data[0] as f64)
            .init(&device),
        fc: linear(&h["cos_w"], &h["cos_b"], &device),
    };
    let o = agg.forward(feat.clone());
    check("cosplace aggregation", o.clone(), &h["cos_out"], FWD_TOL);
    let grads = (o * h["cos_wo"].tensor::<2>(&device)).sum().backward();
    check(
        "cosplace df",
        feat.grad(&grads).unwrap(),
        &h["cos_grad_f"],
        GRAD_TOL,
    );
    check(
        "cosplace dp",
        agg.gem.p.val().grad(&grads).unwrap(),
        &h["cos_grad_p"],
        GRAD_TOL,
    );
    check(
        "cosplace dW",
        agg.fc.weight.val().grad(&grads).unwrap().transpose(),
        &h["cos_grad_w"],
        GRAD_TOL,
    );
}

#[test]
fn contrastive_and_triplet_match_cirtorch() {
    let device = Device::default().autodiff();
    let l = fixture("losses.safetensors");
    let labels = ints(&l["labels"]);
    for (tag, margin) in [("c07", 0.7), ("c075", 0.75), ("c085", 0.85)] {
        let x = l["x"].tensor::<2>(&device).require_grad();
        let loss = ContrastiveLossConfig::new().with_margin(margin).init();
        let y = loss.forward(x.clone(), &labels).unwrap();
        check(
            &format!("contrastive {tag}"),
            y.clone(),
            &l[&format!("contrastive_{tag}")],
            FWD_TOL,
        );
        let pairs = loss.forward_no_reduction(x.clone(), &labels).unwrap();
        check(
            &format!("contrastive {tag} pairs"),
            pairs,
            &l[&format!("contrastive_{tag}_pairs")],
            FWD_TOL,
        );
        let grads = y.backward();
        check(
            &format!("contrastive {tag} dx"),
            x.grad(&grads).unwrap(),
            &l[&format!("contrastive_{tag}_grad")],
            GRAD_TOL,
        );
    }
    let x = l["x"].tensor::<2>(&device).require_grad();
    let loss = TripletLossConfig::new().init();
    let y = loss.forward(x.clone(), &labels).unwrap();
    check("triplet", y.clone(), &l["triplet"], FWD_TOL);
    check(
        "triplet per triplet",
        loss.forward_no_reduction(x.clone(), &labels).unwrap(),
        &l["triplet_triplets"],
        FWD_TOL,
    );
    let grads = y.backward();
    check(
        "triplet dx",
        x.grad(&grads).unwrap(),
        &l["triplet_grad"],
        GRAD_TOL,
    );
}

fn classifier(w: &Array, device: &Device) -> MarginCosineProduct {
    let mut c = metric_learning::MarginCosineProductConfig::new(w.shape[1], w.shape[0])
        .init(device)
        .unwrap();
    c.weight = Param::from_tensor(w.tensor::<2>(device));
    c
}

#[test]
fn cosface_ikt_and_nocplace_losses_match() {
    let device = Device::default().autodiff();
    let l = fixture("losses.safetensors");
    let y = usizes(&l["cf_y"]);
    // CosFace (LMC) + cross-entropy
    let x = l["cf_x"].tensor::<2>(&device).require_grad();
    let cls = classifier(&l["cf_w"], &device);
    let logits = cls.forward(x.clone(), &y).unwrap();
    check("cosface logits", logits.clone(), &l["cf_logits"], FWD_TOL);
    let ce = cross_entropy(logits, &y).unwrap();
    check("cosface CE", ce.clone(), &l["cf_loss"], FWD_TOL);
    let grads = ce.backward();
    check(
        "cosface dx",
        x.grad(&grads).unwrap(),
        &l["cf_grad_x"],
        GRAD_TOL,
    );
    check(
        "cosface dW",
        cls.weight.val().grad(&grads).unwrap(),
        &l["cf_grad_w"],
        GRAD_TOL,
    );

    // IKT alone: gradients reach both the student and the teacher logits
    let zs = l["ikt_zs"].tensor::<2>(&device).require_grad();
    let zt = l["ikt_zt"].tensor::<2>(&device).require_grad();
    let ikt = ikt_loss(zs.clone(), zt.clone(), 4.0).unwrap();
    check("ikt", ikt.clone(), &l["ikt"], FWD_TOL);
    let grads = ikt.backward();
    check(
        "ikt dzs",
        zs.grad(&grads).unwrap(),
        &l["ikt_grad_zs"],
        GRAD_TOL,
    );
    check(
        "ikt dzt",
        zt.grad(&grads).unwrap(),
        &l["ikt_grad_zt"],
        GRAD_TOL,
    );

    // NocPlace: CE + λ·IKT through one classifier, inherited descriptors constant
    let f = l["noc_f"].tensor::<2>(&device).require_grad();
    let cls = classifier(&l["cf_w"], &device);
    let out = NocPlaceLossConfig::new()
        .init()
        .forward(&cls, f.clone(), Some(l["noc_d"].tensor::<2>(&device)), &y)
        .unwrap();
    check("nocplace loss", out.total.clone(), &l["noc_loss"], FWD_TOL);
    let grads = out.total.backward();
    check(
        "nocplace df",
        f.grad(&grads).unwrap(),
        &l["noc_grad_f"],
        GRAD_TOL,
    );
    check(
        "nocplace dW",
        cls.weight.val().grad(&grads).unwrap(),
        &l["noc_grad_w"],
        GRAD_TOL,
    );
}

/// `Y Yᵀ` of whitened rows: invariant to the arbitrary sign of each eigenvector.
fn gram(y: Tensor<2>) -> Tensor<2> {
    y.clone().matmul(y.transpose())
}

fn gram_array(a: &Array, device: &Device) -> Array {
    let g = gram(a.tensor::<2>(device));
    Array {
        shape: g.dims().to_vec(),
        data: g.into_data().try_into_vec_as::<f32>().unwrap(),
    }
}

/// Rows of `P` with the sign of the reference row (largest-magnitude entry agrees).
fn signed_rows(p: &[f64], want: &Array, d: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(d * d);
    for r in 0..d {
        let row_w = &want.data[r * d..(r + 1) * d];
        let k = (0..d)
            .max_by(|&a, &b| row_w[a].abs().total_cmp(&row_w[b].abs()))
            .unwrap();
        let s = if (p[r * d + k] >= 0.0) == (row_w[k] >= 0.0) {
            1.0
        } else {
            -1.0
        };
        out.extend((0..d).map(|c| (s * p[r * d + c]) as f32));
    }
    out
}

#[test]
fn learned_and_pca_whitening_equal_numpy() {
    let device = Device::default();
    let w = fixture("whitening.safetensors");
    let (q, p) = (usizes(&w["qidxs"]), usizes(&w["pidxs"]));
    let d = w["x"].shape[1];
    let lw = Whitening::learn_lw(w["x"].tensor::<2>(&device), &q, &p).unwrap();
    assert_eq!(lw.jitter, 0.0);
    check(
        "lw mean",
        Tensor::<1>::from_floats(
            lw.mean
                .iter()
                .map(|&v| v as f32)
                .collect::<Vec<_>>()
                .as_slice(),
            &device,
        ),
        &w["lw_m"],
        1e-6,
    );
    check(
        "lw eigenvalues",
        Tensor::<1>::from_floats(
            lw.eigenvalues
                .iter()
                .map(|&v| v as f32)
                .collect::<Vec<_>>()
                .as_slice(),
            &device,
        ),
        &w["lw_eig"],
        1e-6,
    );
    let pr = Tensor::<2>::from_data(
        burn::tensor::TensorData::new(signed_rows(&lw.projection, &w["lw_p"], d), [d, d]),
        &device,
    );
    check("lw P (row signs fixed)", pr, &w["lw_p"], 1e-6);
    let y = lw.apply(w["x"].tensor::<2>(&device), None).unwrap();
    check(
        "lw whitened Gram",
        gram(y),
        &gram_array(&w["lw_y"], &device),
        WHITEN_TOL,
    );
    let y4 = lw.apply(w["x"].tensor::<2>(&device), Some(4)).unwrap();
    check(
        "lw whitened Gram, 4 dims",
        gram(y4),
        &gram_array(&w["lw_y4"], &device),
        WHITEN_TOL,
    );

    // Singular pair covariance: the jitter sequence stops at 1e-10, as numpy's loop does.
    let lws = Whitening::learn_lw(w["xs"].tensor::<2>(&device), &q, &p).unwrap();
    assert_eq!(lws.jitter, 1e-10);
    assert!((lws.jitter / w["lws_alpha"].data[0] as f64 - 1.0).abs() < 1e-6);
    let ys = lws.apply(w["xs"].tensor::<2>(&device), None).unwrap();
    check(
        "lw singular whitened Gram",
        gram(ys),
        &gram_array(&w["lws_y"], &device),
        WHITEN_TOL,
    );

    let pca = Whitening::learn_pca(w["x"].tensor::<2>(&device)).unwrap();
    check(
        "pca eigenvalues",
        Tensor::<1>::from_floats(
            pca.eigenvalues
                .iter()
                .map(|&v| v as f32)
                .collect::<Vec<_>>()
                .as_slice(),
            &device,
        ),
        &w["pca_eig"],
        1e-6,
    );
    let y = pca.apply(w["x"].tensor::<2>(&device), None).unwrap();
    check(
        "pca whitened Gram",
        gram(y),
        &gram_array(&w["pca_y"], &device),
        WHITEN_TOL,
    );
    let y5 = pca.apply(w["x"].tensor::<2>(&device), Some(5)).unwrap();
    check(
        "pca whitened Gram, 5 dims",
        gram(y5),
        &gram_array(&w["pca_y5"], &device),
        WHITEN_TOL,
    );

    // As cirtorch's end-to-end layer: L2(Linear(x)) with weight P, bias −Pm equals the apply().
    let lin = lw.to_linear(&device);
    let via_linear = pooling::l2n(lin.forward(w["x"].tensor::<2>(&device)), 1e-6);
    let direct = lw.apply(w["x"].tensor::<2>(&device), None).unwrap();
    let e: f32 = (via_linear - direct).abs().max().into_scalar();
    assert!(e < 1e-5, "linear form differs by {e}");

    // Save / load round trip.
    let dir = tempfile::tempdir().unwrap();
    lw.save(dir.path().join("lw.safetensors")).unwrap();
    assert_eq!(
        Whitening::load(dir.path().join("lw.safetensors")).unwrap(),
        lw
    );
    pca.save(dir.path().join("pca.safetensors")).unwrap();
    assert_eq!(
        Whitening::load(dir.path().join("pca.safetensors")).unwrap(),
        pca
    );
}

fn tiny_resnet18() -> BackboneConfig {
    BackboneConfig::ResNet(ResNetConfig::resnet18().with_base_width(4))
}

#[test]
fn cirtorch_checkpoint_forward_multiscale_and_gradients_match() {
    let device = Device::default();
    let io = fixture("networks_io.safetensors");
    let mut net = CirNetConfig::new(tiny_resnet18())
        .with_whitening(true)
        .init(&device)
        .unwrap();
    let report = net
        .load_cirtorch(fixture_path("cirtorch_resnet18.pth"), Some("state_dict"))
        .unwrap();
    assert!(report.missing.is_empty());
    assert!((net.gem_p().unwrap() - 2.6).abs() < 1e-6);
    check(
        "cirtorch net",
        net.forward(io["cir_x"].tensor::<4>(&device)),
        &io["cir_out"],
        NET_TOL,
    );

    // The same file into a network without whitening: `whiten.*` is ignored.
    let mut plain = CirNetConfig::new(tiny_resnet18()).init(&device).unwrap();
    plain
        .load_cirtorch(fixture_path("cirtorch_resnet18.pth"), Some("state_dict"))
        .unwrap();
    check(
        "cirtorch net, no whitening",
        plain.forward(io["cir_x"].tensor::<4>(&device)),
        &io["cir_out_nowhiten"],
        NET_TOL,
    );

    // Scale-factor resizing and multi-scale descriptors (msp = GeM p and 1).
    let x = io["ms_x"].tensor::<4>(&device);
    check(
        "resize ×1/√2",
        resize_scale_factor(x.clone(), DEFAULT_SCALES[1]).unwrap(),
        &io["resize_071"],
        FWD_TOL,
    );
    check(
        "resize ×1/2",
        resize_scale_factor(x.clone(), 0.5).unwrap(),
        &io["resize_05"],
        FWD_TOL,
    );
    assert!((plain.multiscale_power() - 2.6).abs() < 1e-6);
    let ms = multiscale(&plain, x.clone(), &DEFAULT_SCALES, plain.multiscale_power()).unwrap();
    check(
        "multiscale (p = 2.6)",
        ms.reshape([-1]),
        &io["ms_out"],
        NET_TOL,
    );
    let ms1 = multiscale(&plain, x, &DEFAULT_SCALES, 1.0).unwrap();
    check(
        "multiscale (p = 1)",
        ms1.reshape([-1]),
        &io["ms_out_p1"],
        NET_TOL,
    );

    // Gradients of the whole network w.r.t. GeM's p and the whitening (frozen BatchNorm).
    let ad = device.autodiff();
    let mut net = CirNetConfig::new(tiny_resnet18())
        .with_whitening(true)
        .init(&ad)
        .unwrap();
    net.load_cirtorch(fixture_path("cirtorch_resnet18.pth"), Some("state_dict"))
        .unwrap();
    let out = net.forward(io["cir_x"].tensor::<4>(&ad));
    let n = out.dims()[0] * out.dims()[1];
    let w = Tensor::<1>::from_floats(
        (0..n)
            .map(|i| -1.0 + 2.0 * i as f32 / (n - 1) as f32)
            .collect::<Vec<_>>()
            .as_slice(),
        &ad,
    )
    .reshape(out.dims());
    let grads = (out * w).sum().backward();
    let gp = net.pool.as_ref().unwrap().p.val().grad(&grads).unwrap();
    check("cirtorch net dp", gp, &io["cir_grad_p"], GRAD_TOL);
    let gw = net
        .whiten
        .as_ref()
        .unwrap()
        .weight
        .val()
        .grad(&grads)
        .unwrap()
        .transpose();
    check(
        "cirtorch net dW_whiten",
        gw,
        &io["cir_grad_whiten_w"],
        GRAD_TOL,
    );
}

#[test]
fn cosplace_checkpoint_forward_matches() {
    let device = Device::default();
    let io = fixture("networks_io.safetensors");
    let cfg = CosPlaceNetConfig::new(
        BackboneConfig::Vgg16(Vgg16Config::new().with_widths([4, 8, 16, 32, 32])),
        12,
    );
    let mut net = cfg.init(&device).unwrap();
    let report = net
        .load_cosplace(fixture_path("cosplace_vgg16.pth"), None)
        .unwrap();
    assert!(
        report.missing.is_empty() && report.unused.is_empty(),
        "{report:?}"
    );
    assert!((net.aggregation.gem.p_value() - 3.3).abs() < 1e-6);
    check(
        "cosplace net",
        net.forward(io["cos_x"].tensor::<4>(&device)),
        &io["cos_out"],
        NET_TOL,
    );
}
