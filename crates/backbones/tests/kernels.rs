//! The CPU convolution kernels (`nightvision_core::kernels`: dense and depthwise, each with its
//! own backward) against burn's own `Conv2d` (whose forward and backward match PyTorch in this
//! crate's parity tests): values and both gradients, over strides, paddings, kernel sizes and odd
//! spatial sizes, plus closed forms.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Device, Distribution, Tensor};
use nightvision_core::kernels::{conv2d, runs_on_kernels};

fn max_abs(a: Tensor<4>, b: Tensor<4>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
}

/// Forward, input gradient and weight gradient of `ours` and of `conv.forward` under the same
/// random upstream gradient; returns the three largest absolute differences.
fn compare(
    conv: &Conv2d,
    x: Tensor<4>,
    ours: impl Fn(&Conv2d, Tensor<4>) -> Tensor<4>,
) -> [f32; 3] {
    let device = x.device();
    let x = x.require_grad();
    let y_ref = conv.forward(x.clone());
    let up = Tensor::<4>::random(y_ref.dims(), Distribution::Normal(0.0, 1.0), &device);
    let y = ours(conv, x.clone());
    assert_eq!(y.dims(), y_ref.dims());
    let fwd = max_abs(y.clone(), y_ref.clone());
    let g = (y * up.clone()).sum().backward();
    let g_ref = (y_ref * up).sum().backward();
    let dx = max_abs(x.grad(&g).unwrap(), x.grad(&g_ref).unwrap());
    let w = &conv.weight;
    let dw = max_abs(w.val().grad(&g).unwrap(), w.val().grad(&g_ref).unwrap());
    [fwd, dx, dw]
}

#[test]
fn depthwise_kernels_match_burn_conv2d_with_gradients() {
    let device = Device::default().autodiff();
    device.seed(7);
    // (channels, kernel, stride, padding, h, w, bias)
    let cases = [
        (5, 3, 1, 1, 9, 7, false),
        (4, 3, 2, 1, 9, 8, false),
        (4, 3, 2, 1, 10, 11, true),
        (3, 3, 1, 0, 6, 9, false),
        (3, 5, 2, 2, 13, 12, false),
        (2, 5, 1, 2, 7, 7, true),
        (6, 3, 3, 1, 11, 10, false),
        (2, 3, 2, 0, 7, 8, false),
    ];
    for (c, k, s, p, h, w, bias) in cases {
        let conv = Conv2dConfig::new([c, c], [k, k])
            .with_groups(c)
            .with_stride([s, s])
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .with_bias(bias)
            .init(&device);
        let x = Tensor::<4>::random([3, c, h, w], Distribution::Normal(0.0, 1.0), &device);
        assert!(
            runs_on_kernels(&conv, &x),
            "c{c} k{k} s{s} p{p}: not on the kernels"
        );
        let [fwd, dx, dw] = compare(&conv, x, conv2d);
        let case = format!("c{c} k{k} s{s} p{p} {h}x{w}");
        assert!(fwd < 1e-5, "{case}: forward differs by {fwd}");
        assert!(dx < 1e-5, "{case}: input gradient differs by {dx}");
        assert!(dw < 1e-4, "{case}: weight gradient differs by {dw}");
    }
}

#[test]
fn depthwise_weight_gradient_is_the_closed_form() {
    // One channel, 1×1 spatial output of a 3×3 valid convolution: dL/dw = upstream · x.
    let device = Device::default().autodiff();
    let conv = Conv2dConfig::new([1, 1], [3, 3])
        .with_groups(1)
        .with_bias(false)
        .init(&device);
    // groups == channels == 1 is depthwise too.
    let x = Tensor::<4>::from_floats(
        [[[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]]],
        &device,
    );
    let y = conv2d(&conv, x.clone());
    let g = (y * 2.0).sum().backward();
    let dw = conv.weight.val().grad(&g).unwrap();
    let expected = x.inner() * 2.0;
    let diff = (dw - expected).abs().max().into_scalar::<f32>();
    assert!(diff < 1e-6, "{diff}");
}

#[test]
fn other_convolutions_are_conv2d_forward() {
    let device = Device::default().autodiff();
    device.seed(3);
    // A grouped (not depthwise), a dilated depthwise and a dilated dense convolution take
    // burn's own path.
    for conv in [
        Conv2dConfig::new([3, 2], [3, 3])
            .with_dilation([2, 2])
            .init(&device),
        Conv2dConfig::new([4, 4], [3, 3])
            .with_groups(2)
            .init(&device),
        Conv2dConfig::new([3, 3], [3, 3])
            .with_groups(3)
            .with_dilation([2, 2])
            .init(&device),
    ] {
        let x = Tensor::<4>::random(
            [2, conv.weight.dims()[1] * conv.groups, 8, 8],
            Distribution::Default,
            &device,
        );
        assert!(!runs_on_kernels(&conv, &x));
        let [fwd, dx, dw] = compare(&conv, x, conv2d);
        assert_eq!([fwd, dx, dw], [0.0, 0.0, 0.0]);
    }
}

#[test]
fn dense_kernels_match_burn_conv2d_with_gradients() {
    let device = Device::default().autodiff();
    device.seed(11);
    // (in, out, kernel, stride, padding, h, w, bias): 1×1 (direct and strided), 3×3 with and
    // without stride, ResNet's 7×7 stem, GAN-style 4×4 stride 2, and sizes that leave rows
    // outside every window.
    let cases = [
        (6, 4, 1, 1, 0, 7, 5, false),
        (5, 8, 1, 2, 0, 9, 8, true),
        (3, 3, 1, 2, 0, 6, 7, false),
        (4, 5, 3, 1, 1, 9, 7, true),
        (4, 6, 3, 1, 0, 8, 9, false),
        (5, 4, 3, 2, 1, 11, 10, false),
        (3, 4, 7, 2, 3, 17, 15, false),
        (4, 3, 4, 2, 1, 12, 9, true),
        (2, 3, 5, 1, 2, 6, 6, false),
    ];
    for (cin, cout, k, s, p, h, w, bias) in cases {
        let conv = Conv2dConfig::new([cin, cout], [k, k])
            .with_stride([s, s])
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .with_bias(bias)
            .init(&device);
        let x = Tensor::<4>::random([3, cin, h, w], Distribution::Normal(0.0, 1.0), &device);
        let case = format!("{cin}->{cout} k{k} s{s} p{p} {h}x{w}");
        assert!(runs_on_kernels(&conv, &x), "{case}: not on the kernels");
        let [fwd, dx, dw] = compare(&conv, x, conv2d);
        assert!(fwd < 1e-5, "{case}: forward differs by {fwd}");
        assert!(dx < 1e-5, "{case}: input gradient differs by {dx}");
        assert!(dw < 1e-4, "{case}: weight gradient differs by {dw}");
    }
}

#[test]
fn dense_gradients_span_several_gemm_tiles() {
    // 70×70 = 4,900 output positions: several im2col tiles per image, folded in parallel.
    let device = Device::default().autodiff();
    device.seed(5);
    let conv = Conv2dConfig::new([3, 4], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&device);
    let x = Tensor::<4>::random([2, 3, 70, 70], Distribution::Normal(0.0, 1.0), &device);
    let [fwd, dx, dw] = compare(&conv, x, conv2d);
    assert!(fwd < 1e-5 && dx < 1e-5 && dw < 1e-3, "{fwd} {dx} {dw}");
    // A weight of 256 × 128 × 3 × 3 values, above the per-worker accumulator size: the weight
    // gradient takes the serial tile loop with a parallel gemm.
    let conv = Conv2dConfig::new([128, 256], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&device);
    let x = Tensor::<4>::random([2, 128, 6, 5], Distribution::Normal(0.0, 1.0), &device);
    let [fwd, dx, dw] = compare(&conv, x, conv2d);
    assert!(fwd < 1e-4 && dx < 1e-4 && dw < 1e-3, "{fwd} {dx} {dw}");
}

/// The weight gradient over many tiles is summed in a fixed partition of the tiles: the same
/// bits with 1, 2 or 3 worker threads, and so on every call whatever the threads' timing (a rayon
/// `fold` split the tiles by the workers available, so seeded trainings drifted apart in the
/// last bits and then further).
#[test]
fn dense_weight_gradient_is_the_same_bits_with_any_thread_count() {
    let device = Device::default().autodiff();
    device.seed(8);
    let conv = Conv2dConfig::new([8, 16], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&device);
    // 4 images of 64×64: 4,096 positions each, dozens of tiles
    let x = Tensor::<4>::random([4, 8, 64, 64], Distribution::Normal(0.0, 1.0), &device);
    let up = Tensor::<4>::random([4, 16, 64, 64], Distribution::Normal(0.0, 1.0), &device);
    assert!(runs_on_kernels(&conv, &x));
    let grad = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let g = (conv2d(&conv, x.clone()) * up.clone()).sum().backward();
            conv.weight.val().grad(&g).unwrap().into_data()
        })
    };
    let one = grad(1);
    for threads in [2, 3, 1, 2] {
        assert_eq!(grad(threads), one, "{threads} threads");
    }
}

#[test]
fn untracked_and_plain_devices_give_the_same_forward() {
    let device = Device::default();
    device.seed(2);
    let conv = Conv2dConfig::new([4, 6], [3, 3])
        .with_stride([2, 2])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&device);
    let x = Tensor::<4>::random([2, 4, 9, 9], Distribution::Default, &device);
    assert!(runs_on_kernels(&conv, &x));
    let diff = max_abs(conv2d(&conv, x.clone()), conv.forward(x));
    assert!(diff < 1e-6, "{diff}");
}

/// Values and both gradients against PyTorch (`scripts/gen_conv_grad_fixtures.py`: Debian's
/// torch 1.13, computed in float64, stored as float32), for the dense and depthwise kernels at
/// the shapes the backbones and GANs use (1×1 plain and strided, 3×3, the 7×7 stem, 4×4 stride 2,
/// a case over several im2col tiles, depthwise 3×3 and 5×5 strided).
#[test]
fn kernels_match_pytorch_values_and_gradients() {
    use burn::module::Param;
    use nightvision_core::testing::{max_rel_err, read_safetensors};
    let device = Device::default().autodiff();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/conv_grads.safetensors");
    let fx = read_safetensors(path).unwrap();
    // (case, stride, padding), as in the script's CASES.
    let cases = [
        ("dense_1x1", 1, 0),
        ("dense_1x1_s2", 2, 0),
        ("dense_3x3", 1, 1),
        ("dense_3x3_s2", 2, 1),
        ("dense_7x7_s2_stem", 2, 3),
        ("dense_4x4_s2_gan", 2, 1),
        ("dense_3x3_tiles", 1, 1),
        ("depthwise_3x3", 1, 1),
        ("depthwise_3x3_s2", 2, 1),
        ("depthwise_5x5_s2", 2, 2),
    ];
    assert_eq!(fx.len(), 7 * cases.len(), "arrays in the fixture");
    for (case, s, p) in cases {
        let get = |key: &str| &fx[&format!("{case}/{key}")];
        let (w, x) = (get("w"), get("x"));
        let (cout, cin_g, k) = (w.shape[0], w.shape[1], w.shape[2]);
        let cin = x.shape[1];
        let groups = cin / cin_g;
        let has_bias = get("b").data.iter().any(|v| *v != 0.0);
        let mut conv = Conv2dConfig::new([cin, cout], [k, k])
            .with_groups(groups)
            .with_stride([s, s])
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .with_bias(has_bias)
            .init(&device);
        conv.weight = Param::from_tensor(w.tensor::<4>(&device).require_grad());
        if has_bias {
            conv.bias = Some(Param::from_tensor(get("b").tensor::<1>(&device)));
        }
        let x = x.tensor::<4>(&device).require_grad();
        assert!(
            runs_on_kernels(&conv, &x),
            "{case} should run on the kernels"
        );
        let y = conv2d(&conv, x.clone());
        let ey = max_rel_err(y.clone(), get("y"));
        let g = (y * get("up").tensor::<4>(&device)).sum().backward();
        let edx = max_rel_err(x.grad(&g).unwrap(), get("dx"));
        let edw = max_rel_err(conv.weight.val().grad(&g).unwrap(), get("dw"));
        println!(
            "{case} (k {k}, s {s}, p {p}, groups {groups}): y {ey:.1e}, dx {edx:.1e}, dw {edw:.1e}"
        );
        // f32 sums of at most a few thousand terms against a float64 reference.
        for (what, e) in [("y", ey), ("dx", edx), ("dw", edw)] {
            assert!(e < 1e-5, "{case}: {what} relative error {e:.2e}");
        }
    }
}

/// Test data from a local seeded stream rather than the device's generator, which the tests of
/// this binary share and draw from in whatever order they are scheduled: the BatchNorm tests
/// compare two formulas of `z` near the clamp's bounds, so their data must be the same in every
/// run.
struct Draws(nightvision_core::rng::ChaCha8Rng);

impl Draws {
    fn new(seed: u64) -> Self {
        Draws(nightvision_core::rng::seeded(seed))
    }

    /// Values uniform in `[lo, hi)`.
    fn uniform<const D: usize>(
        &mut self,
        shape: [usize; D],
        lo: f32,
        hi: f32,
        device: &Device,
    ) -> Tensor<D> {
        use nightvision_core::rng::Rng;
        let v: Vec<f32> = (0..shape.iter().product())
            .map(|_| lo + (hi - lo) * self.0.random::<f32>())
            .collect();
        Tensor::<D>::from_data(burn::tensor::TensorData::new(v, shape), device)
    }

    /// Values from N(0, std²).
    fn normal<const D: usize>(
        &mut self,
        shape: [usize; D],
        std: f64,
        device: &Device,
    ) -> Tensor<D> {
        let v = nightvision_core::rng::normals(&mut self.0, shape.iter().product(), std);
        Tensor::<D>::from_data(burn::tensor::TensorData::new(v, shape), device)
    }
}

/// A frozen BatchNorm with non-trivial running statistics and affine parameters.
fn frozen_bn(c: usize, draws: &mut Draws, device: &Device) -> burn::nn::BatchNorm {
    use burn::module::{Param, RunningState};
    let mut bn = burn::nn::BatchNormConfig::new(c).init(device);
    bn.running_mean = RunningState::new(draws.uniform([c], -1.0, 1.0, device));
    bn.running_var = RunningState::new(draws.uniform([c], 0.2, 3.0, device));
    bn.gamma = Param::from_tensor(draws.uniform([c], -2.0, 2.0, device));
    bn.beta = Param::from_tensor(draws.uniform([c], -1.0, 1.0, device));
    nightvision_core::freeze_batchnorm(bn)
}

#[test]
fn fused_batch_norm_matches_burn_with_gradients() {
    use nightvision_core::kernels::{Activation, batch_norm, relu6};
    let device = Device::default().autodiff();
    let mut draws = Draws::new(11);
    // Spatial sizes below and above one task's worth of planes, one channel, odd shapes.
    for (n, c, h, w) in [(2, 3, 5, 7), (3, 8, 1, 1), (1, 1, 9, 4), (2, 4, 130, 129)] {
        let bn = frozen_bn(c, &mut draws, &device);
        for act in [Activation::Identity, Activation::Relu, Activation::Relu6] {
            let x = draws.normal([n, c, h, w], 3.0, &device).require_grad();
            let reference = |x: Tensor<4>| {
                let y = bn.forward(x);
                match act {
                    Activation::Identity => y,
                    Activation::Relu => burn::tensor::activation::relu(y),
                    Activation::Relu6 => relu6(y),
                }
            };
            let y = batch_norm(&bn, x.clone(), act);
            let y_ref = reference(x.clone());
            let up = draws.normal([n, c, h, w], 1.0, &device);
            let scale = y_ref.clone().abs().max().into_scalar::<f32>().max(1.0);
            assert!(
                max_abs(y.clone(), y_ref.clone()) < 1e-5 * scale,
                "{act:?} values"
            );
            let g = (y * up.clone()).sum().backward();
            let g_ref = (y_ref * up).sum().backward();
            let dx = max_abs(x.grad(&g).unwrap(), x.grad(&g_ref).unwrap());
            assert!(dx < 1e-5, "{act:?} [{n}, {c}, {h}, {w}] dx {dx}");
            for (name, p) in [("gamma", &bn.gamma), ("beta", &bn.beta)] {
                let (ours, theirs) = (p.val().grad(&g).unwrap(), p.val().grad(&g_ref).unwrap());
                let tol = 1e-4 * theirs.clone().abs().max().into_scalar::<f32>().max(1.0);
                let d = (ours - theirs).abs().max().into_scalar::<f32>();
                assert!(d < tol, "{act:?} [{n}, {c}, {h}, {w}] d{name} {d}");
            }
        }
    }
}

/// At the clamp's bounds the gradient is PyTorch's (`threshold_backward`, `hardtanh_backward`):
/// zero at exactly 0 and 6, one strictly inside; and the running statistics stay as they were.
#[test]
fn fused_batch_norm_kinks_are_pytorch_and_statistics_stay() {
    use burn::module::{Param, RunningState};
    use nightvision_core::kernels::{Activation, batch_norm};
    let device = Device::default().autodiff();
    // a = γ / √(var + ε) = 1 and b = 0 exactly, so z = x hits the bounds exactly.
    let mut bn = burn::nn::BatchNormConfig::new(1)
        .with_epsilon(1.0)
        .init(&device);
    bn.running_var = RunningState::new(Tensor::<1>::zeros([1], &device));
    bn.gamma = Param::from_tensor(Tensor::<1>::ones([1], &device));
    let bn = nightvision_core::freeze_batchnorm(bn);
    let xs = [-1.0f32, 0.0, 1e-7, 3.0, 5.9999995, 6.0, 7.0];
    let x = Tensor::<1>::from_floats(xs, &device)
        .reshape([1, 1, 1, xs.len()])
        .require_grad();
    for (act, inside) in [
        (Activation::Relu6, [0.0f32, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]),
        (Activation::Relu, [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
        (Activation::Identity, [1.0; 7]),
    ] {
        let y = batch_norm(&bn, x.clone(), act);
        let ys: Vec<f32> = y.clone().into_data().try_to_vec::<f32>().unwrap();
        let hi = if act == Activation::Relu6 {
            6.0
        } else {
            f32::INFINITY
        };
        let lo = if act == Activation::Identity {
            f32::NEG_INFINITY
        } else {
            0.0
        };
        let expected: Vec<f32> = xs.iter().map(|v| v.clamp(lo, hi)).collect();
        assert_eq!(ys, expected, "{act:?}");
        let g: Vec<f32> = x
            .grad(&y.sum().backward())
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(g, inside, "{act:?}");
    }
    let mean: Vec<f32> = bn
        .running_mean
        .value_sync()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert_eq!(mean, vec![0.0]);
}

/// A BatchNorm in training mode on an autodiff device keeps burn's path: batch statistics,
/// running statistics updated.
#[test]
fn training_batch_norm_uses_batch_statistics() {
    use nightvision_core::kernels::{Activation, batch_norm};
    let device = Device::default().autodiff();
    let bn = burn::nn::BatchNormConfig::new(2).init(&device);
    let x = Tensor::<4>::random([4, 2, 3, 3], Distribution::Normal(5.0, 2.0), &device);
    let y = batch_norm(&bn, x, Activation::Identity);
    let mean = y.mean().into_scalar::<f32>();
    assert!(mean.abs() < 1e-4, "batch-normalised output has mean {mean}");
    let running: Vec<f32> = bn
        .running_mean
        .value_sync()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert!(
        running.iter().all(|&m| m > 0.2),
        "running mean {running:?} not updated"
    );
}

/// The fused frozen BatchNorm and its activation against PyTorch (`scripts/gen_batchnorm_
/// fixtures.py`: `act(batch_norm(x, mean, var, γ, β, training=False))` in float64, with the
/// gradients of `sum(y · up)` for x, γ and β).
#[test]
fn fused_batch_norm_matches_pytorch_values_and_gradients() {
    use burn::module::{Param, RunningState};
    use nightvision_core::kernels::{Activation, batch_norm};
    use nightvision_core::testing::{max_rel_err, read_safetensors};
    let device = Device::default().autodiff();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/frozen_bn.safetensors");
    let fx = read_safetensors(path).unwrap();
    let cases = [
        ("identity", Activation::Identity),
        ("relu", Activation::Relu),
        ("relu6", Activation::Relu6),
    ];
    assert_eq!(fx.len(), 10 * cases.len(), "arrays in the fixture");
    for (case, act) in cases {
        let get = |key: &str| &fx[&format!("{case}/{key}")];
        let c = get("gamma").shape[0];
        let mut bn = burn::nn::BatchNormConfig::new(c).init(&device);
        bn.running_mean = RunningState::new(get("mean").tensor::<1>(&device));
        bn.running_var = RunningState::new(get("var").tensor::<1>(&device));
        bn.gamma = Param::from_tensor(get("gamma").tensor::<1>(&device).require_grad());
        bn.beta = Param::from_tensor(get("beta").tensor::<1>(&device).require_grad());
        let bn = nightvision_core::freeze_batchnorm(bn);
        let x = get("x").tensor::<4>(&device).require_grad();
        let y = batch_norm(&bn, x.clone(), act);
        let ey = max_rel_err(y.clone(), get("y"));
        let g = (y * get("up").tensor::<4>(&device)).sum().backward();
        let edx = max_rel_err(x.grad(&g).unwrap(), get("dx"));
        let edg = max_rel_err(bn.gamma.val().grad(&g).unwrap(), get("dgamma"));
        let edb = max_rel_err(bn.beta.val().grad(&g).unwrap(), get("dbeta"));
        println!("{case}: y {ey:.1e}, dx {edx:.1e}, dgamma {edg:.1e}, dbeta {edb:.1e}");
        for (what, e) in [("y", ey), ("dx", edx), ("dgamma", edg), ("dbeta", edb)] {
            assert!(e < 1e-5, "{case}: {what} relative error {e:.2e}");
        }
    }
}

/// `act(bn(x) + r)` in one kernel against burn's BatchNorm, add and activation: values and the
/// gradients of x, r, γ and β.
#[test]
fn fused_batch_norm_add_matches_burn_with_gradients() {
    use nightvision_core::kernels::{Activation, batch_norm_add, relu6};
    let device = Device::default().autodiff();
    let mut draws = Draws::new(13);
    for (n, c, h, w) in [(2, 3, 5, 7), (1, 4, 130, 129), (3, 2, 1, 1)] {
        let bn = frozen_bn(c, &mut draws, &device);
        for act in [Activation::Identity, Activation::Relu, Activation::Relu6] {
            let shape = [n, c, h, w];
            let x = draws.normal(shape, 3.0, &device).require_grad();
            let r = draws.normal(shape, 3.0, &device).require_grad();
            let y = batch_norm_add(&bn, x.clone(), r.clone(), act);
            let z = bn.forward(x.clone()) + r.clone();
            let y_ref = match act {
                Activation::Identity => z,
                Activation::Relu => burn::tensor::activation::relu(z),
                Activation::Relu6 => relu6(z),
            };
            assert!(max_abs(y.clone(), y_ref.clone()) < 1e-4, "{act:?} values");
            let up = draws.normal(shape, 1.0, &device);
            let g = (y * up.clone()).sum().backward();
            let g_ref = (y_ref * up).sum().backward();
            for (name, t) in [("x", &x), ("r", &r)] {
                let d = max_abs(t.grad(&g).unwrap(), t.grad(&g_ref).unwrap());
                assert!(d < 1e-5, "{act:?} {shape:?} d{name} {d}");
            }
            for (name, p) in [("gamma", &bn.gamma), ("beta", &bn.beta)] {
                let (ours, theirs) = (p.val().grad(&g).unwrap(), p.val().grad(&g_ref).unwrap());
                let tol = 1e-4 * theirs.clone().abs().max().into_scalar::<f32>().max(1.0);
                let d = (ours - theirs).abs().max().into_scalar::<f32>();
                assert!(d < tol, "{act:?} {shape:?} d{name} {d}");
            }
        }
    }
}
