//! The CPU depthwise-convolution kernels (`nightvision_core::kernels`) and the 1×1 matmul path
//! (`backbones::pointwise_forward`) against burn's own `Conv2d` (whose forward and backward
//! match PyTorch in this crate's parity tests): values and both gradients, over strides,
//! paddings, kernel sizes and odd spatial sizes.

use backbones::pointwise_forward;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Device, Distribution, Tensor};
use nightvision_core::kernels::{depthwise_conv2d, runs_on_kernels};

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
        let [fwd, dx, dw] = compare(&conv, x, depthwise_conv2d);
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
    let y = depthwise_conv2d(&conv, x.clone());
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
    // A grouped (not depthwise) and a dilated convolution take burn's own path.
    for conv in [
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
        let [fwd, dx, dw] = compare(&conv, x, depthwise_conv2d);
        assert_eq!([fwd, dx, dw], [0.0, 0.0, 0.0]);
    }
}

#[test]
fn pointwise_matmul_matches_burn_conv2d_with_gradients() {
    let device = Device::default().autodiff();
    device.seed(11);
    for (cin, cout, s, h, w, bias) in [
        (6, 4, 1, 7, 5, false),
        (5, 8, 2, 9, 8, true),
        (3, 3, 2, 6, 7, false),
    ] {
        let conv = Conv2dConfig::new([cin, cout], [1, 1])
            .with_stride([s, s])
            .with_bias(bias)
            .init(&device);
        let x = Tensor::<4>::random([2, cin, h, w], Distribution::Normal(0.0, 1.0), &device);
        let [fwd, dx, dw] = compare(&conv, x, pointwise_forward);
        let case = format!("{cin}->{cout} s{s} {h}x{w}");
        assert!(
            fwd < 1e-5 && dx < 1e-5 && dw < 1e-4,
            "{case}: {fwd} {dx} {dw}"
        );
    }
}
