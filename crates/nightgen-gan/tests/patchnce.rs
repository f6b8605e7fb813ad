//! PatchSampleF, PatchNCE and the NEG-CUT pieces against PyTorch autograd
//! (`scripts/gen_loss_fixtures.py`, float64): the reference state dicts (PyTorch keys
//! `mlp_<i>.0/.2`) are loaded through the documented remap, features are sampled at the
//! fixture's patch ids and noise, and values and gradients are compared.

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::module::Param;
use burn::tensor::Gradients;
use burn::tensor::{Device, Tensor};
use nightgen_gan::patchnce::NEGCUT_EMA_DECAY;
use nightgen_gan::{
    GanError, NegativeGenerator, NegativeGeneratorConfig, PatchIds, PatchMlp, PatchNceLoss,
    PatchNceLossConfig, PatchSampleF, PatchSampleFConfig, negative_diversity_loss,
    negative_diversity_loss_layers,
};
use nightvision_core::testing::{Array, max_rel_err, read_safetensors};

/// Direct losses on given unit vectors: a softmax over ≤ 21 logits of magnitude ≤ 1/τ ≈ 14 in
/// f32 against a float64 reference; measured ≤ 1.5e-7 relative, 1e-5 leaves room for other
/// backends' reduction orders (BURN_DEVICE) and still catches any wrong mask, sign or mean.
const LOSS_TOL: f32 = 1e-5;
/// Values and gradients through the MLPs, the L2 norm and the NCE softmax (two 16-wide f32
/// matmuls, a norm and a 1/τ amplification): measured ≤ 7e-7 relative to each tensor's scale
/// on the CPU; 1e-5 keeps the same margin as above (a wrong transpose, mask or detach is ≥ 1e-2).
const CHAIN_TOL: f32 = 1e-5;

const B: usize = 2;
const P: usize = 10;
const K: usize = 10;
const NC: usize = 16;
const CHANNELS: [usize; 3] = [3, 8, 16];

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn read(name: &str) -> BTreeMap<String, Array> {
    read_safetensors(fixture(name)).unwrap()
}

fn scalar_err(got: Tensor<1>, want: &Array) -> f32 {
    let g: f32 = got.into_scalar();
    (g - want.data[0]).abs() / want.data[0].abs().max(1e-12)
}

fn ids(f: &BTreeMap<String, Array>) -> PatchIds {
    PatchIds {
        layers: (0..3)
            .map(|i| {
                f[&format!("ids.{i}")]
                    .data
                    .iter()
                    .map(|&v| v as usize)
                    .collect()
            })
            .collect(),
    }
}

fn feats(f: &BTreeMap<String, Array>, side: &str, device: &Device) -> Vec<Tensor<4>> {
    (0..3)
        .map(|i| {
            f[&format!("feat_{side}.{i}")]
                .tensor::<4>(device)
                .require_grad()
        })
        .collect()
}

fn load_f(name: &str, device: &Device) -> PatchSampleF {
    let mut f = PatchSampleFConfig::new(CHANNELS.to_vec())
        .with_nc(NC)
        .init(device);
    let report = f.load_pytorch(fixture(name)).unwrap();
    assert_eq!(report.applied.len(), 12, "{report:?}");
    assert!(report.missing.is_empty() && report.unused.is_empty());
    f
}

fn load_n(device: &Device) -> NegativeGenerator {
    let mut n = NegativeGeneratorConfig::new(3)
        .with_nc(NC)
        .with_num_negatives(K)
        .init(device);
    let report = n
        .load_pytorch(fixture("losses_negative_generator.safetensors"))
        .unwrap();
    assert_eq!(report.applied.len(), 12, "{report:?}");
    n
}

/// `[B, P, C]` as the reference's `[B·P, C]`.
fn rows(t: Tensor<3>) -> Tensor<2> {
    let [b, p, c] = t.dims();
    t.reshape([b * p, c])
}

/// The parameter of `mlps` named by a PyTorch key (`mlp_<i>.<0|2>.<weight|bias>`), with its
/// gradient in PyTorch's layout (Linear weights `[out, in]`).
fn param_grad(mlps: &[PatchMlp], key: &str, grads: &Gradients) -> Tensor<2> {
    let parts: Vec<&str> = key.split('.').collect();
    let layer: usize = parts[0].trim_start_matches("mlp_").parse().unwrap();
    let lin = if parts[1] == "0" {
        &mlps[layer].fc1
    } else {
        &mlps[layer].fc2
    };
    match parts[2] {
        "weight" => lin.weight.grad(grads).unwrap().transpose(),
        _ => {
            let b: &Param<Tensor<1>> = lin.bias.as_ref().unwrap();
            b.grad(grads).unwrap().unsqueeze::<2>()
        }
    }
}

fn param_value(mlps: &[PatchMlp], key: &str) -> Tensor<2> {
    let parts: Vec<&str> = key.split('.').collect();
    let layer: usize = parts[0].trim_start_matches("mlp_").parse().unwrap();
    let lin = if parts[1] == "0" {
        &mlps[layer].fc1
    } else {
        &mlps[layer].fc2
    };
    match parts[2] {
        "weight" => lin.weight.val().transpose(),
        _ => lin.bias.as_ref().unwrap().val().unsqueeze::<2>(),
    }
}

fn as_2d(a: &Array) -> Array {
    if a.shape.len() == 1 {
        Array {
            data: a.data.clone(),
            shape: vec![1, a.shape[0]],
        }
    } else {
        a.clone()
    }
}

fn nce() -> PatchNceLoss {
    PatchNceLossConfig::new().init().unwrap()
}

#[test]
fn patch_sample_f_and_patchnce_match_cut() {
    let device = Device::default().autodiff();
    let f = read("losses_patchnce.safetensors");
    let net = load_f("losses_patch_f.safetensors", &device);
    let ids = ids(&f);
    let fk = feats(&f, "k", &device);
    let fq = feats(&f, "q", &device);
    let k = net.forward(&fk, &ids).unwrap();
    let q = net.forward(&fq, &ids).unwrap();
    let loss = nce();
    let mut worst = 0f32;
    for i in 0..3 {
        assert_eq!(k[i].dims(), [B, P, NC]);
        let ek = max_rel_err(rows(k[i].clone()), &f[&format!("k_pool.{i}")]);
        let eq = max_rel_err(rows(q[i].clone()), &f[&format!("q_pool.{i}")]);
        let per = loss
            .forward_no_reduction(q[i].clone(), k[i].clone())
            .unwrap();
        let el = max_rel_err(per, &f[&format!("loss.{i}")]);
        println!("layer {i}: k {ek:.1e}, q {eq:.1e}, per-patch loss {el:.1e}");
        worst = worst.max(ek).max(eq).max(el);
    }
    let total = loss.forward_layers(&q, &k).unwrap();
    let grads = total.backward();
    let et = scalar_err(total, &f["total"]);
    println!("total {et:.1e}");
    assert!(worst < CHAIN_TOL && et < CHAIN_TOL, "{worst}, {et}");
    for (i, x) in fq.iter().enumerate() {
        let e = max_rel_err(
            x.grad(&grads).unwrap(),
            &f[&format!("total.grad_feat_q.{i}")],
        );
        println!("grad feat_q.{i}: {e:.1e}");
        assert!(e < CHAIN_TOL, "grad feat_q.{i}: {e}");
    }
    // Keys are detached inside the loss.
    assert!(fk.iter().all(|x| x.grad(&grads).is_none()));
    for key in ["mlp_0.0.weight", "mlp_2.2.bias", "mlp_1.2.weight"] {
        let want = as_2d(&f[&format!("total.grad.{key}")]);
        let e = max_rel_err(param_grad(&net.mlps, key, &grads), &want);
        println!("grad {key}: {e:.1e}");
        assert!(e < CHAIN_TOL, "grad {key}: {e}");
    }
}

#[test]
fn negatives_from_the_whole_batch_match_cut() {
    let device = Device::default().autodiff();
    let f = read("losses_patchnce.safetensors");
    let net = load_f("losses_patch_f.safetensors", &device);
    let ids = PatchIds {
        layers: vec![ids(&f).layers[0].clone()],
    };
    let fq0 = f["feat_q.0"].tensor::<4>(&device).require_grad();
    let fk0 = f["feat_k.0"].tensor::<4>(&device);
    let one = PatchSampleF {
        mlps: vec![net.mlps[0].clone()],
    };
    let q = one.forward(std::slice::from_ref(&fq0), &ids).unwrap();
    let k = one.forward(&[fk0], &ids).unwrap();
    let loss = PatchNceLossConfig::new()
        .with_include_all_negatives_from_minibatch(true)
        .init()
        .unwrap();
    let per = loss
        .forward_no_reduction(q[0].clone(), k[0].clone())
        .unwrap();
    let grads = per.clone().mean().backward();
    let e = max_rel_err(per, &f["all_negatives.loss.0"]);
    let g = max_rel_err(fq0.grad(&grads).unwrap(), &f["all_negatives.grad_feat_q.0"]);
    println!("all negatives: loss {e:.1e}, grad {g:.1e}");
    assert!(e < CHAIN_TOL && g < CHAIN_TOL, "{e}, {g}");
}

#[test]
fn all_positions_match_negcut() {
    let device = Device::default();
    let f = read("losses_patchnce.safetensors");
    let net = load_f("losses_patch_f.safetensors", &device);
    let fk: Vec<Tensor<4>> = (0..3)
        .map(|i| f[&format!("feat_k.{i}")].tensor::<4>(&device))
        .collect();
    for (i, m) in net.forward_all(&fk).unwrap().into_iter().enumerate() {
        let e = max_rel_err(m, &f[&format!("all_positions.{i}")]);
        println!("all positions {i}: {e:.1e}");
        assert!(e < CHAIN_TOL, "layer {i}: {e}");
    }
}

#[test]
fn learned_nce_and_diversity_match_negcut_on_given_vectors() {
    let device = Device::default().autodiff();
    let f = read("losses_negcut.safetensors");
    let q = f["leaf.q"].tensor::<3>(&device).require_grad();
    let k = f["leaf.k"].tensor::<3>(&device);
    let n = f["leaf.n"].tensor::<3>(&device).require_grad();
    let per = nce()
        .forward_learned_no_reduction(q.clone(), k.clone(), n.clone())
        .unwrap();
    let grads = per.clone().mean().backward();
    let e = max_rel_err(per, &f["leaf.loss"]);
    let gq = max_rel_err(q.grad(&grads).unwrap(), &f["leaf.grad_q"]);
    let gn = max_rel_err(n.grad(&grads).unwrap(), &f["leaf.grad_n"]);
    println!("learned NCE: {e:.1e}, grad q {gq:.1e}, grad n {gn:.1e}");
    assert!(
        e < LOSS_TOL && gq < LOSS_TOL && gn < LOSS_TOL,
        "{e} {gq} {gn}"
    );

    let all = PatchNceLossConfig::new()
        .with_include_all_negatives_from_minibatch(true)
        .init()
        .unwrap()
        .forward_learned_no_reduction(q.clone(), k, n.clone())
        .unwrap();
    let ea = max_rel_err(all, &f["leaf.all_negatives.loss"]);
    println!("learned NCE, all negatives: {ea:.1e}");
    assert!(ea < LOSS_TOL, "{ea}");

    let d = negative_diversity_loss(n.clone()).unwrap();
    let grads = d.clone().backward();
    let ed = scalar_err(d, &f["leaf.diversity"]);
    let gd = max_rel_err(n.grad(&grads).unwrap(), &f["leaf.diversity.grad_n"]);
    println!("diversity: {ed:.1e}, grad {gd:.1e}");
    assert!(ed < LOSS_TOL && gd < LOSS_TOL, "{ed} {gd}");
}

#[test]
fn negative_generator_and_negcut_steps_match_pytorch() {
    let device = Device::default().autodiff();
    let pf = read("losses_patchnce.safetensors");
    let f = read("losses_negcut.safetensors");
    let net_f = load_f("losses_patch_f.safetensors", &device);
    let net_fm = load_f("losses_patch_fm.safetensors", &device);
    let net_n = load_n(&device);
    let ids = ids(&pf);
    let noise: Vec<Tensor<3>> = (0..3)
        .map(|i| f[&format!("noise.{i}")].tensor::<3>(&device))
        .collect();

    // Generated negatives from F′'s all-position maps.
    let fk = feats(&pf, "k", &device);
    let fq = feats(&pf, "q", &device);
    let maps = net_fm.forward_all(&fk).unwrap();
    let negs = net_n.forward_with_noise(&maps, &noise).unwrap();
    for i in 0..3 {
        let em = max_rel_err(maps[i].clone(), &f[&format!("fm_all.{i}")]);
        assert_eq!(negs[i].dims(), [B, K, NC]);
        let en = max_rel_err(rows(negs[i].clone()), &f[&format!("negatives.{i}")]);
        println!("layer {i}: F′ maps {em:.1e}, negatives {en:.1e}");
        assert!(em < CHAIN_TOL && en < CHAIN_TOL, "layer {i}: {em}, {en}");
    }

    // G step: the negatives are not detached, so feat_k gets a gradient through F′ and N.
    let k = net_f.forward(&fk, &ids).unwrap();
    let q = net_f.forward(&fq, &ids).unwrap();
    let loss = nce();
    for i in 0..3 {
        let per = loss
            .forward_learned_no_reduction(q[i].clone(), k[i].clone(), negs[i].clone())
            .unwrap();
        let e = max_rel_err(per, &f[&format!("learned.loss.{i}")]);
        assert!(e < CHAIN_TOL, "learned loss {i}: {e}");
    }
    let total = loss.forward_learned_layers(&q, &k, &negs).unwrap();
    let grads = total.backward();
    let et = scalar_err(total, &f["g_step.total"]);
    println!("G step total {et:.1e}");
    assert!(et < CHAIN_TOL, "{et}");
    for i in 0..3 {
        let eq = max_rel_err(
            fq[i].grad(&grads).unwrap(),
            &f[&format!("g_step.grad_feat_q.{i}")],
        );
        let ek = max_rel_err(
            fk[i].grad(&grads).unwrap(),
            &f[&format!("g_step.grad_feat_k.{i}")],
        );
        println!("G step grads layer {i}: feat_q {eq:.1e}, feat_k {ek:.1e}");
        assert!(eq < CHAIN_TOL && ek < CHAIN_TOL, "layer {i}: {eq}, {ek}");
    }

    // N step: −NCE(q.detach(), k.detach(), n) + 1·diversity, gradients w.r.t. N.
    let fk: Vec<Tensor<4>> = fk.into_iter().map(|x| x.detach()).collect();
    let negs = net_n
        .forward_with_noise(&net_fm.forward_all(&fk).unwrap(), &noise)
        .unwrap();
    let qd: Vec<Tensor<3>> = q.iter().map(|x| x.clone().detach()).collect();
    let kd: Vec<Tensor<3>> = k.iter().map(|x| x.clone().detach()).collect();
    let nce_n = loss.forward_learned_layers(&qd, &kd, &negs).unwrap();
    let div = negative_diversity_loss_layers(&negs).unwrap();
    for (i, n) in negs.iter().enumerate() {
        let e = scalar_err(
            negative_diversity_loss(n.clone()).unwrap(),
            &f[&format!("diversity.{i}")],
        );
        assert!(e < CHAIN_TOL, "diversity {i}: {e}");
    }
    let loss_n = nce_n.clone().neg() + div.clone();
    let grads = loss_n.clone().backward();
    let (e1, e2, e3) = (
        scalar_err(nce_n, &f["n_step.nce"]),
        scalar_err(div, &f["n_step.diversity"]),
        scalar_err(loss_n, &f["n_step.total"]),
    );
    println!("N step: nce {e1:.1e}, diversity {e2:.1e}, total {e3:.1e}");
    assert!(e1 < CHAIN_TOL && e2 < CHAIN_TOL && e3 < CHAIN_TOL);
    let mut checked = 0;
    for (name, want) in f
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("n_step.grad.").map(|n| (n, v)))
    {
        let e = max_rel_err(param_grad(&net_n.mlps, name, &grads), &as_2d(want));
        println!("N grad {name}: {e:.1e}");
        assert!(e < CHAIN_TOL, "N grad {name}: {e}");
        checked += 1;
    }
    assert_eq!(checked, 12);
}

#[test]
fn ema_update_matches_accumulate() {
    let device = Device::default();
    let f = read("losses_negcut.safetensors");
    let online = load_f("losses_patch_f.safetensors", &device);
    let momentum = load_f("losses_patch_fm.safetensors", &device);
    let updated = momentum.ema_update(&online, NEGCUT_EMA_DECAY).unwrap();
    let mut checked = 0;
    for (name, want) in f
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("ema.").map(|n| (n, v)))
    {
        // Two f32 multiply-adds: rounding ~1e-7 relative.
        let e = max_rel_err(param_value(&updated.mlps, name), &as_2d(want));
        assert!(e < 1e-6, "EMA {name}: {e}");
        checked += 1;
    }
    assert_eq!(checked, 12);
}

#[test]
fn loading_a_mismatched_state_dict_fails() {
    let device = Device::default();
    // F's state dict has input widths 3/8/16, N expects 16 + 64.
    let mut n = NegativeGeneratorConfig::new(3).with_nc(NC).init(&device);
    assert!(matches!(
        n.load_pytorch(fixture("losses_patch_f.safetensors")),
        Err(GanError::Core(_))
    ));
    // Two layers where the file has three.
    let mut f = PatchSampleFConfig::new(vec![3, 8])
        .with_nc(NC)
        .init(&device);
    assert!(
        f.load_pytorch(fixture("losses_patch_f.safetensors"))
            .is_err()
    );
}
