//! Depthwise convolution with a fast backward on the CPU backend.
//!
//! burn's default backward of a grouped convolution runs one convolution per group for the
//! weight gradient and a grouped transposed convolution (one small matrix product per group)
//! for the input gradient. For a depthwise convolution (one filter per channel, MobileNetV2's
//! 3×3 blocks) both are far slower than the forward: on the project's 2 cores, a
//! `[7, 144, 68, 91]` 3×3 depthwise convolution takes 15 ms forward, 54 ms for the weight
//! gradient and 128 ms for the input gradient (docs/PERFORMANCE.md).
//!
//! [`depthwise_conv2d`] is the same convolution as a backend extension (burn's
//! `#[backend_extension]`) with its own backward:
//! - the input gradient is itself a depthwise convolution: of the output gradient (zeros
//!   inserted between rows and columns for a stride above 1) with the flipped filters, which
//!   the CPU backend runs on its direct depthwise path;
//! - the weight gradient is one pass per channel that accumulates, for each filter tap, the dot
//!   product of the output gradient with the shifted input.
//!
//! Only the CPU backend (`flex`, this crate's `flex` feature) runs the extension; on any other
//! device, on other dtypes, and without the feature, [`depthwise_conv2d`] is exactly
//! `Conv2d::forward`, so GPUs keep their own kernels.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;

#[cfg(feature = "flex")]
pub use ext::DepthwiseConvOps;

/// `conv.forward(x)` for a depthwise convolution (groups = input channels = output channels,
/// dilation 1, symmetric padding below the kernel size), computed through the CPU kernels of
/// this module when `x` lives on the CPU backend in f32; every other convolution, device and
/// dtype is exactly `conv.forward(x)`.
///
/// # Shapes
/// - `x`: `[batch, channels, h, w]` → `[batch, channels, h_out, w_out]` as `Conv2d`
///
/// ```
/// use burn::nn::{PaddingConfig2d, conv::Conv2dConfig};
/// use burn::tensor::{Device, Distribution, Tensor};
/// use nightvision_core::kernels::depthwise_conv2d;
///
/// let device = Device::default().autodiff();
/// let conv = Conv2dConfig::new([6, 6], [3, 3])
///     .with_groups(6)
///     .with_stride([2, 2])
///     .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
///     .init(&device);
/// let x = Tensor::<4>::random([2, 6, 9, 8], Distribution::Default, &device).require_grad();
/// let y = depthwise_conv2d(&conv, x.clone());
/// let reference = conv.forward(x.clone());
/// assert_eq!(y.dims(), [2, 6, 5, 4]);
/// assert!((y.clone() - reference.clone()).abs().max().into_scalar::<f32>() < 1e-5);
/// // Same gradients as burn's own convolution.
/// let g = x.grad(&y.sum().backward()).unwrap();
/// let g_ref = x.grad(&reference.sum().backward()).unwrap();
/// assert!((g - g_ref).abs().max().into_scalar::<f32>() < 1e-5);
/// ```
pub fn depthwise_conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    match extension_geometry(conv, &x) {
        #[cfg(feature = "flex")]
        Some((stride, padding)) => {
            use burn::backend::Dispatch;
            let y =
                Tensor::<4>::from_dispatch(<Dispatch as DepthwiseConvOps>::nv_depthwise_conv2d(
                    x.into_dispatch(),
                    conv.weight.val().into_dispatch(),
                    stride,
                    padding,
                ));
            match &conv.bias {
                Some(b) => {
                    let c = b.dims()[0];
                    y + b.val().reshape([1, c, 1, 1])
                }
                None => y,
            }
        }
        _ => conv.forward(x),
    }
}

/// Whether [`depthwise_conv2d`] runs `conv` on `x` through this module's CPU kernels (a
/// depthwise convolution of f32 data on the CPU backend with the `flex` feature) rather than
/// `Conv2d::forward`.
///
/// ```
/// use burn::nn::conv::Conv2dConfig;
/// use burn::tensor::{Device, Tensor};
/// use nightvision_core::kernels::runs_on_kernels;
///
/// let device = Device::default();
/// let dense = Conv2dConfig::new([4, 4], [3, 3]).init(&device);
/// let x = Tensor::<4>::zeros([1, 4, 8, 8], &device);
/// assert!(!runs_on_kernels(&dense, &x)); // not depthwise
/// ```
pub fn runs_on_kernels(conv: &Conv2d, x: &Tensor<4>) -> bool {
    extension_geometry(conv, x).is_some()
}

/// The stride and padding when the extension can run this convolution on `x`.
fn extension_geometry(conv: &Conv2d, x: &Tensor<4>) -> Option<([usize; 2], [usize; 2])> {
    let f32 = burn::tensor::DType::F32;
    if !cfg!(feature = "flex")
        || !on_flex(x)
        || x.dtype() != f32
        || conv.weight.val().dtype() != f32
    {
        return None;
    }
    let [cout, cin_per_group, kh, kw] = conv.weight.dims();
    let channels = x.dims()[1];
    let (ph, pw) = match conv.padding {
        PaddingConfig2d::Valid => (0, 0),
        PaddingConfig2d::Explicit(t, l, b, r) if t == b && l == r => (t, l),
        _ => return None,
    };
    let depthwise = cin_per_group == 1 && conv.groups == channels && cout == channels;
    if !depthwise || conv.dilation != [1, 1] || ph >= kh || pw >= kw {
        return None;
    }
    let [h, w] = [x.dims()[2], x.dims()[3]];
    if h + 2 * ph < kh || w + 2 * pw < kw {
        return None;
    }
    Some((conv.stride, [ph, pw]))
}

#[cfg(feature = "flex")]
fn on_flex(x: &Tensor<4>) -> bool {
    use burn::backend::DispatchDevice;
    matches!(x.device().inner().as_dispatch(), DispatchDevice::Flex(_))
}

#[cfg(not(feature = "flex"))]
fn on_flex(_x: &Tensor<4>) -> bool {
    false
}

#[cfg(feature = "flex")]
mod ext {
    use burn::backend::{Backend, backend_extension, tensor::FloatTensor};

    /// The depthwise convolution and its two gradients as backend operations (see the
    /// [module](super) docs). Call it through [`depthwise_conv2d`](super::depthwise_conv2d),
    /// which checks the geometry these operations assume: `x` `[n, c, h, w]`, `weight`
    /// `[c, 1, kh, kw]`, dilation 1, padding below the kernel size.
    #[backend_extension(Flex, Autodiff)]
    pub trait DepthwiseConvOps: Backend {
        /// The forward convolution.
        fn nv_depthwise_conv2d(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            stride: [usize; 2],
            padding: [usize; 2],
        ) -> FloatTensor<Self>;

        /// The gradient with respect to `x` (of spatial size `input_hw`).
        fn nv_depthwise_conv2d_x_grad(
            weight: FloatTensor<Self>,
            grad: FloatTensor<Self>,
            input_hw: [usize; 2],
            stride: [usize; 2],
            padding: [usize; 2],
        ) -> FloatTensor<Self>;

        /// The gradient with respect to the `[c, 1, kh, kw]` weight.
        fn nv_depthwise_conv2d_weight_grad(
            x: FloatTensor<Self>,
            grad: FloatTensor<Self>,
            kernel: [usize; 2],
            stride: [usize; 2],
            padding: [usize; 2],
        ) -> FloatTensor<Self>;
    }

    mod flex {
        use super::DepthwiseConvOps;
        use burn::backend::Flex;
        use burn::backend::TensorMetadata;
        use burn::backend::ops::ModuleOps;
        use burn::backend::tensor::FloatTensor;
        use burn::tensor::ops::ConvOptions;
        use burn::tensor::{Bytes, DType, Shape};
        use burn_flex::{FlexTensor, Layout};
        use rayon::prelude::*;

        fn f32_data(t: &FlexTensor) -> FlexTensor {
            t.to_contiguous()
        }

        fn from_vec(v: Vec<f32>, shape: [usize; 4]) -> FlexTensor {
            FlexTensor::new(
                Bytes::from_elems(v),
                Layout::contiguous(Shape::from(shape)),
                DType::F32,
            )
        }

        impl DepthwiseConvOps for Flex {
            fn nv_depthwise_conv2d(
                x: FloatTensor<Flex>,
                weight: FloatTensor<Flex>,
                stride: [usize; 2],
                padding: [usize; 2],
            ) -> FloatTensor<Flex> {
                let c = x.shape()[1];
                Flex::conv2d(
                    x,
                    weight,
                    None,
                    ConvOptions::new(stride, padding, [1, 1], c),
                )
            }

            fn nv_depthwise_conv2d_x_grad(
                weight: FloatTensor<Flex>,
                grad: FloatTensor<Flex>,
                input_hw: [usize; 2],
                stride: [usize; 2],
                padding: [usize; 2],
            ) -> FloatTensor<Flex> {
                let [n, c, ho, wo] = grad.shape().dims::<4>();
                let [_, _, kh, kw] = weight.shape().dims::<4>();
                let [h, w] = input_hw;
                let [sh, sw] = stride;
                let [ph, pw] = padding;
                // The output gradient with (stride − 1) zeros between rows and columns, and
                // enough zero rows / columns at the end that a stride-1 convolution with
                // padding k − 1 − p returns the input's size.
                let hd = h + 2 * ph + 1 - kh;
                let wd = w + 2 * pw + 1 - kw;
                let grad = f32_data(&grad);
                let dilated = if sh == 1 && sw == 1 && hd == ho && wd == wo {
                    grad
                } else {
                    let g = grad.as_slice::<f32>().unwrap_or(&[]);
                    let mut out = vec![0.0f32; n * c * hd * wd];
                    out.par_chunks_mut(hd * wd)
                        .zip(g.par_chunks(ho * wo))
                        .for_each(|(dst, src)| {
                            for i in 0..ho {
                                let row = &src[i * wo..(i + 1) * wo];
                                let d = &mut dst[i * sh * wd..];
                                for (j, v) in row.iter().enumerate() {
                                    d[j * sw] = *v;
                                }
                            }
                        });
                    from_vec(out, [n, c, hd, wd])
                };
                let flipped = {
                    let wt = f32_data(&weight);
                    let src = wt.as_slice::<f32>().unwrap_or(&[]);
                    let mut out = vec![0.0f32; src.len()];
                    for (dst, s) in out.chunks_mut(kh * kw).zip(src.chunks(kh * kw)) {
                        for (i, d) in dst.iter_mut().enumerate() {
                            *d = s[kh * kw - 1 - i];
                        }
                    }
                    from_vec(out, [c, 1, kh, kw])
                };
                Flex::conv2d(
                    dilated,
                    flipped,
                    None,
                    ConvOptions::new([1, 1], [kh - 1 - ph, kw - 1 - pw], [1, 1], c),
                )
            }

            fn nv_depthwise_conv2d_weight_grad(
                x: FloatTensor<Flex>,
                grad: FloatTensor<Flex>,
                kernel: [usize; 2],
                stride: [usize; 2],
                padding: [usize; 2],
            ) -> FloatTensor<Flex> {
                let [n, c, h, w] = x.shape().dims::<4>();
                let [_, _, ho, wo] = grad.shape().dims::<4>();
                let [kh, kw] = kernel;
                let [sh, sw] = stride;
                let [ph, pw] = padding;
                let x = f32_data(&x);
                let grad = f32_data(&grad);
                let xs = x.as_slice::<f32>().unwrap_or(&[]);
                let gs = grad.as_slice::<f32>().unwrap_or(&[]);
                // Output positions o whose input index o·s + k − p lies inside [0, size).
                let valid = |k: usize, s: usize, p: usize, out: usize, size: usize| {
                    let lo = p.saturating_sub(k).div_ceil(s);
                    let hi = (size + p).saturating_sub(k).div_ceil(s).min(out);
                    (lo, hi.max(lo))
                };
                let mut out = vec![0.0f32; c * kh * kw];
                out.par_chunks_mut(kh * kw)
                    .enumerate()
                    .for_each(|(ch, taps)| {
                        for b in 0..n {
                            let plane = (b * c + ch) * h * w;
                            let xp = &xs[plane..plane + h * w];
                            let gplane = (b * c + ch) * ho * wo;
                            let gp = &gs[gplane..gplane + ho * wo];
                            for i in 0..kh {
                                let (oh0, oh1) = valid(i, sh, ph, ho, h);
                                for j in 0..kw {
                                    let (ow0, ow1) = valid(j, sw, pw, wo, w);
                                    let mut acc = 0.0f32;
                                    for oh in oh0..oh1 {
                                        let xr = (oh * sh + i - ph) * w;
                                        let g = &gp[oh * wo + ow0..oh * wo + ow1];
                                        if sw == 1 {
                                            let xrow = &xp[xr + ow0 + j - pw..xr + ow1 + j - pw];
                                            acc +=
                                                g.iter().zip(xrow).map(|(a, b)| a * b).sum::<f32>();
                                        } else {
                                            for (k, gv) in g.iter().enumerate() {
                                                acc += gv * xp[xr + (ow0 + k) * sw + j - pw];
                                            }
                                        }
                                    }
                                    taps[i * kw + j] += acc;
                                }
                            }
                        }
                    });
                from_vec(out, [c, 1, kh, kw])
            }
        }
    }

    mod autodiff {
        use super::DepthwiseConvOps;
        use burn::backend::tensor::FloatTensor;
        use burn::backend::{AutodiffBackend, Backend, TensorMetadata};
        use burn_autodiff::Autodiff;
        use burn_autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
        use burn_autodiff::grads::Gradients;
        use burn_autodiff::ops::{Backward, Ops, OpsKind, binary};

        #[derive(Debug)]
        struct DepthwiseBackward;

        impl<B: Backend + DepthwiseConvOps> Backward<B, 2> for DepthwiseBackward {
            type State = (
                B::FloatTensorPrimitive,
                B::FloatTensorPrimitive,
                [usize; 2],
                [usize; 2],
            );

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let (x, weight, stride, padding) = ops.state;
                let [_, _, h, w] = x.shape().dims::<4>();
                let [_, _, kh, kw] = weight.shape().dims::<4>();
                binary::<B, _, _>(
                    ops.parents,
                    ops.node,
                    grads,
                    |g| B::nv_depthwise_conv2d_x_grad(weight, g, [h, w], stride, padding),
                    |g| B::nv_depthwise_conv2d_weight_grad(x, g, [kh, kw], stride, padding),
                );
            }
        }

        impl<B: Backend + DepthwiseConvOps, C: CheckpointStrategy> DepthwiseConvOps for Autodiff<B, C> {
            fn nv_depthwise_conv2d(
                x: FloatTensor<Self>,
                weight: FloatTensor<Self>,
                stride: [usize; 2],
                padding: [usize; 2],
            ) -> FloatTensor<Self> {
                let nodes = [x.node(), weight.node()];
                let (x, weight) = (x.into_primitive(), weight.into_primitive());
                match DepthwiseBackward
                    .prepare::<C>(nodes)
                    .compute_bound()
                    .stateful()
                {
                    OpsKind::Tracked(prep) => {
                        let out =
                            B::nv_depthwise_conv2d(x.clone(), weight.clone(), stride, padding);
                        prep.finish((x, weight, stride, padding), out)
                    }
                    OpsKind::UnTracked(prep) => {
                        prep.finish(B::nv_depthwise_conv2d(x, weight, stride, padding))
                    }
                }
            }

            fn nv_depthwise_conv2d_x_grad(
                weight: FloatTensor<Self>,
                grad: FloatTensor<Self>,
                input_hw: [usize; 2],
                stride: [usize; 2],
                padding: [usize; 2],
            ) -> FloatTensor<Self> {
                Self::from_inner(B::nv_depthwise_conv2d_x_grad(
                    Self::inner(weight),
                    Self::inner(grad),
                    input_hw,
                    stride,
                    padding,
                ))
            }

            fn nv_depthwise_conv2d_weight_grad(
                x: FloatTensor<Self>,
                grad: FloatTensor<Self>,
                kernel: [usize; 2],
                stride: [usize; 2],
                padding: [usize; 2],
            ) -> FloatTensor<Self> {
                Self::from_inner(B::nv_depthwise_conv2d_weight_grad(
                    Self::inner(x),
                    Self::inner(grad),
                    kernel,
                    stride,
                    padding,
                ))
            }
        }
    }
}
