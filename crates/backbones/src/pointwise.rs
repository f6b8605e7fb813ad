//! 1×1 convolutions written as matrix products while gradients are tracked.
//!
//! A 1×1 convolution with one group is a matrix product over channels. burn's default backward
//! of `conv2d` computes the weight gradient as a convolution whose kernel is the whole output
//! map (on the CPU backend: one matrix–vector product per input channel) and the input gradient
//! as a transposed convolution; the same gradients as matrix products are single `gemm` calls.
//! Measured on the project's 2-core machine (`[7, 256, 68, 91]` → 64 channels, a ResNet-50
//! `layer1` shape, docs/PERFORMANCE.md): forward + both gradients 218 ms as `conv2d`, 61 ms as
//! `matmul`. Without tracked gradients the backend's own 1×1 convolution is the faster forward,
//! so it is kept there.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::{Tensor, s};

/// `conv.forward(x)`, computed as a matrix product when `conv` is a 1×1, single-group,
/// unpadded convolution and gradients are tracked for `x` or the weight; otherwise exactly
/// `conv.forward(x)`. Both forms give the same values up to float summation order.
///
/// # Shapes
/// - `x`: `[batch, in, h, w]` → `[batch, out, ⌈h/stride⌉, ⌈w/stride⌉]`
///
/// ```
/// use backbones::pointwise_forward;
/// use burn::nn::conv::Conv2dConfig;
/// use burn::tensor::{Device, Distribution, Tensor};
///
/// let device = Device::default().autodiff();
/// let conv = Conv2dConfig::new([8, 4], [1, 1]).with_stride([2, 2]).init(&device);
/// let x = Tensor::<4>::random([2, 8, 5, 7], Distribution::Default, &device);
/// let y = pointwise_forward(&conv, x.clone());
/// assert_eq!(y.dims(), [2, 4, 3, 4]);
/// let diff = (y - conv.forward(x)).abs().max().into_scalar::<f32>();
/// assert!(diff < 1e-5);
/// ```
pub fn pointwise_forward(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let weight = conv.weight.val();
    let [cout, cin, kh, kw] = weight.dims();
    let unpadded = matches!(
        conv.padding,
        PaddingConfig2d::Valid | PaddingConfig2d::Explicit(0, 0, 0, 0)
    );
    let tracked = weight.is_tracked() || x.is_tracked();
    if kh != 1 || kw != 1 || conv.groups != 1 || !unpadded || !tracked || x.dims()[1] != cin {
        return conv.forward(x);
    }
    let [sh, sw] = conv.stride;
    let x = if sh > 1 || sw > 1 {
        x.slice(s![.., .., ..;sh, ..;sw])
    } else {
        x
    };
    let [n, _, h, w] = x.dims();
    let y = weight
        .reshape([1, cout, cin])
        .matmul(x.reshape([n, cin, h * w]))
        .reshape([n, cout, h, w]);
    match &conv.bias {
        Some(b) => y + b.val().reshape([1, cout, 1, 1]),
        None => y,
    }
}
