//! Convolutions and frozen BatchNorm with their own CPU kernels, forward and backward.
//!
//! On the CPU backend (burn `flex`) a training step of a convolutional network spent most of its
//! time outside the matrix products: burn's default backward of `conv2d` computes the weight
//! gradient as a convolution whose kernel is the whole output map and the input gradient as a
//! transposed convolution; a grouped convolution runs one such convolution per group; a frozen
//! BatchNorm is four element-wise passes forward and about ten backward, each on one core.
//! This module puts those operations behind burn's `#[backend_extension]` point
//! ([`ConvKernelOps`], implemented for `Flex` and for `Autodiff<B>`), so model code calls
//! [`conv2d`] and [`batch_norm`] and stays backend-neutral:
//!
//! - **dense convolution** (one group): forward as im2col and `gemm`, tiled so that each worker
//!   fills its own tile (at most 1 MiB, in its L2 cache) and multiplies it single-threaded, the
//!   tiles in parallel; weight gradient `Σ grad · im2col(x)ᵀ` over the same tiles (one
//!   accumulator per worker when the weight is small, otherwise a parallel `gemm` per tile);
//!   input gradient of a stride-1 convolution = the forward of the output gradient with the
//!   flipped, transposed filters; of a strided 1×1 convolution the 1×1 product scattered to
//!   the strided pixels; other strided input gradients are burn's;
//! - **depthwise convolution**: forward, input gradient and weight gradient as direct loops over
//!   each plane's rows, split into stride phases so every inner loop is contiguous, in parallel
//!   over planes or channels;
//! - **frozen BatchNorm + activation** ([`batch_norm`]): one per-channel `clamp(x·a + b)` pass
//!   forward, one pass for the input gradient and one for the scale/shift gradient.
//!
//! Every output buffer is written before it is read. A fresh (calloc'd) buffer that is read
//! first maps the shared zero page, and the write that follows takes a copy-on-write fault with
//! a TLB shootdown across cores per page; in this project's 2-core VM that cost 60-70 % of a
//! depthwise layer's training pass (docs/PERFORMANCE.md).
//!
//! Only the CPU backend (`flex`, this crate's `flex` feature) runs the extension; on any other
//! device, on other dtypes, for dilated, asymmetrically padded or other grouped convolutions,
//! for BatchNorm with batch statistics, and without the feature, [`conv2d`] is exactly
//! `Conv2d::forward` and [`batch_norm`] is `act(BatchNorm::forward)`, so GPUs keep their own
//! kernels. Values and gradients match PyTorch to < 1e-6 relative
//! (`crates/backbones/tests/kernels.rs`).

use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::Tensor;
use burn::tensor::activation::relu;

#[cfg(feature = "flex")]
pub use ext::ConvKernelOps;

/// `conv.forward(x)`, computed through the CPU kernels of this module when `x` lives on the CPU
/// backend in f32 and `conv` is a dense (one group) or depthwise convolution with dilation 1
/// and symmetric padding below the kernel size; every other convolution, device and dtype is
/// exactly `conv.forward(x)`. Both give the same values and gradients up to float summation
/// order.
///
/// # Shapes
/// - `x`: `[batch, in, h, w]` → `[batch, out, h_out, w_out]` as `Conv2d`
///
/// ```
/// use burn::nn::{PaddingConfig2d, conv::Conv2dConfig};
/// use burn::tensor::{Device, Distribution, Tensor};
/// use nightvision_core::kernels::conv2d;
///
/// let device = Device::default().autodiff();
/// let conv = Conv2dConfig::new([6, 6], [3, 3])
///     .with_groups(6)
///     .with_stride([2, 2])
///     .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
///     .init(&device);
/// let x = Tensor::<4>::random([2, 6, 9, 8], Distribution::Default, &device).require_grad();
/// let y = conv2d(&conv, x.clone());
/// let reference = conv.forward(x.clone());
/// assert_eq!(y.dims(), [2, 6, 5, 4]);
/// assert!((y.clone() - reference.clone()).abs().max().into_scalar::<f32>() < 1e-5);
/// // Same gradients as burn's own convolution.
/// let g = x.grad(&y.sum().backward()).unwrap();
/// let g_ref = x.grad(&reference.sum().backward()).unwrap();
/// assert!((g - g_ref).abs().max().into_scalar::<f32>() < 1e-5);
/// ```
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    match extension_geometry(conv, &x) {
        Some((Kind::Dense, _, [0, 0]))
            if conv.kernel_size == [1, 1]
                && !(x.is_tracked() || conv.weight.val().is_tracked()) =>
        {
            // Without gradients the backend's own 1×1 forward is as fast (docs/PERFORMANCE.md).
            conv.forward(x)
        }
        #[cfg(feature = "flex")]
        Some((kind, stride, padding)) => {
            use burn::backend::Dispatch;
            let (x, w) = (x.into_dispatch(), conv.weight.val().into_dispatch());
            let y = Tensor::<4>::from_dispatch(match kind {
                Kind::Depthwise => {
                    <Dispatch as ConvKernelOps>::nv_depthwise_conv2d(x, w, stride, padding)
                }
                Kind::Dense => <Dispatch as ConvKernelOps>::nv_conv2d(x, w, stride, padding),
            });
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

/// The activation after a [`batch_norm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// None: the BatchNorm's output as is.
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)` (MobileNetV2).
    Relu6,
}

impl Activation {
    /// The clamp bounds `[lo, hi]` of the activation.
    #[cfg(feature = "flex")]
    fn bounds(self) -> [f32; 2] {
        match self {
            Activation::Identity => [f32::NEG_INFINITY, f32::INFINITY],
            Activation::Relu => [0.0, f32::INFINITY],
            Activation::Relu6 => [0.0, 6.0],
        }
    }

    /// The activation through burn's own operations.
    fn apply(self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Activation::Identity => x,
            Activation::Relu => relu(x),
            Activation::Relu6 => relu6(x),
        }
    }
}

/// `act(bn.forward(x))`: a BatchNorm that uses its running statistics (frozen with
/// [`freeze_batchnorm`](crate::freeze_batchnorm), or on a device without autodiff) and its
/// activation as one per-channel map `clamp(x·a + b)` with `a = γ / √(var + ε)` and
/// `b = β − mean·a` (PyTorch's CPU inference BatchNorm), one pass forward and one pass per
/// gradient on the CPU backend, where burn's BatchNorm runs four element-wise operations forward
/// and more than twice as many backward, each on one core. Gradients reach `x`, `γ` and `β`
/// (through the per-channel `a` and `b`) and are PyTorch's: 0 where the activation clamps,
/// including at exactly `0` and `6`.
///
/// A BatchNorm in training mode on an autodiff device (batch statistics), any other device and
/// dtype, and builds without the `flex` feature get `act(bn.forward(x))` through burn's own
/// operations.
///
/// # Shapes
/// - `x`: `[batch, channels, h, w]` → same
///
/// ```
/// use burn::nn::BatchNormConfig;
/// use burn::tensor::{Device, Distribution, Tensor};
/// use nightvision_core::kernels::{Activation, batch_norm, relu6};
///
/// let device = Device::default().autodiff();
/// let bn = nightvision_core::freeze_batchnorm(BatchNormConfig::new(4).init(&device));
/// let x = Tensor::<4>::random([2, 4, 5, 5], Distribution::Normal(0.0, 4.0), &device);
/// let y = batch_norm(&bn, x.clone(), Activation::Relu6);
/// let reference = relu6(bn.forward(x));
/// assert!((y - reference).abs().max().into_scalar::<f32>() < 1e-5);
/// ```
pub fn batch_norm(bn: &BatchNorm, x: Tensor<4>, act: Activation) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if fuses(bn, &x) {
        use burn::backend::Dispatch;
        let ss = scale_shift(bn, &x);
        return Tensor::<4>::from_dispatch(<Dispatch as ConvKernelOps>::nv_affine_clamp(
            x.into_dispatch(),
            ss.into_dispatch(),
            act.bounds(),
        ));
    }
    act.apply(bn.forward(x))
}

/// `act(bn.forward(x) + residual)`: [`batch_norm`] with a residual added before the activation
/// (the end of a ResNet block, `relu(bn3(conv3(·)) + identity)`, and of a MobileNetV2 inverted
/// residual), as one pass forward on the CPU backend. The gradient reaches `residual` too.
///
/// # Shapes
/// - `x`, `residual`: `[batch, channels, h, w]` → same
///
/// ```
/// use burn::nn::BatchNormConfig;
/// use burn::tensor::{Device, Distribution, Tensor};
/// use burn::tensor::activation::relu;
/// use nightvision_core::kernels::{Activation, batch_norm_add};
///
/// let device = Device::default().autodiff();
/// let bn = nightvision_core::freeze_batchnorm(BatchNormConfig::new(3).init(&device));
/// let x = Tensor::<4>::random([2, 3, 4, 5], Distribution::Normal(0.0, 2.0), &device);
/// let r = Tensor::<4>::random([2, 3, 4, 5], Distribution::Normal(0.0, 2.0), &device);
/// let y = batch_norm_add(&bn, x.clone(), r.clone(), Activation::Relu);
/// let reference = relu(bn.forward(x) + r);
/// assert!((y - reference).abs().max().into_scalar::<f32>() < 1e-5);
/// ```
pub fn batch_norm_add(
    bn: &BatchNorm,
    x: Tensor<4>,
    residual: Tensor<4>,
    act: Activation,
) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if fuses(bn, &x) && on_flex(&residual) && residual.dtype() == x.dtype() {
        use burn::backend::Dispatch;
        let ss = scale_shift(bn, &x);
        return Tensor::<4>::from_dispatch(<Dispatch as ConvKernelOps>::nv_affine_add_clamp(
            x.into_dispatch(),
            ss.into_dispatch(),
            residual.into_dispatch(),
            act.bounds(),
        ));
    }
    act.apply(bn.forward(x) + residual)
}

/// Whether [`batch_norm`] runs `bn` on `x` through the fused kernel: running statistics (frozen,
/// or no autodiff), f32 on the CPU backend.
#[cfg(feature = "flex")]
fn fuses(bn: &BatchNorm, x: &Tensor<4>) -> bool {
    let frozen = !(x.device().is_autodiff() && bn.training.is_enabled());
    frozen && on_flex(x) && x.dtype() == burn::tensor::DType::F32
}

/// The `[2, c]` per-channel scale `γ / √(var + ε)` and shift `β − mean · scale` of a BatchNorm
/// with its running statistics, on `x`'s device (tracked through γ and β).
#[cfg(feature = "flex")]
fn scale_shift(bn: &BatchNorm, x: &Tensor<4>) -> Tensor<2> {
    let device = x.device();
    let mean = bn.running_mean.value().to_device(&device);
    let var = bn.running_var.value().to_device(&device);
    let a = bn.gamma.val() / var.add_scalar(bn.epsilon).sqrt();
    let b = bn.beta.val() - mean * a.clone();
    Tensor::stack::<2>(vec![a, b], 0)
}

/// `ReLU6(x) = min(max(x, 0), 6)` through burn's operations, written as `relu(x) − relu(x − 6)`.
///
/// burn's `clamp` (and its `relu6`) runs as two comparisons and two masked fills, forward and
/// backward; on the CPU backend these are scalar loops on one core and took 14 % of a
/// MobileNetV2-GeM training step (docs/PERFORMANCE.md). Two `relu`s run vectorised, with
/// a fused backward. Values are exact for every `|x| < 2²⁵` (where `x − 6` is exact in f32),
/// which covers any activation of a working network; NaN propagates; `+∞` maps to NaN instead
/// of 6. Gradients are PyTorch's (`hardtanh_backward`: 1 inside `(0, 6)`, 0 outside) except at
/// exactly `x = 6`, where this gives 1 (as burn's `clamp` does) and PyTorch 0.
///
/// # Shapes
/// - `x`: any → same
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use nightvision_core::kernels::relu6;
///
/// let x = Tensor::<4>::from_floats([[[[-1.0, 3.0, 7.0]]]], &Device::default());
/// assert_eq!(relu6(x).into_data().try_to_vec::<f32>().unwrap(), vec![0.0, 3.0, 6.0]);
/// ```
pub fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    relu(x.clone()) - relu(x.sub_scalar(6.0))
}

/// The two kinds of convolution the kernels run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dense,
    Depthwise,
}

/// Whether [`conv2d`] runs `conv` on `x` through this module's CPU kernels (a dense or
/// depthwise convolution of f32 data on the CPU backend with the `flex` feature) rather than
/// `Conv2d::forward`.
///
/// ```
/// use burn::nn::conv::Conv2dConfig;
/// use burn::tensor::{Device, Tensor};
/// use nightvision_core::kernels::runs_on_kernels;
///
/// let device = Device::default();
/// let dilated = Conv2dConfig::new([4, 4], [3, 3]).with_dilation([2, 2]).init(&device);
/// let x = Tensor::<4>::zeros([1, 4, 8, 8], &device);
/// assert!(!runs_on_kernels(&dilated, &x));
/// ```
pub fn runs_on_kernels(conv: &Conv2d, x: &Tensor<4>) -> bool {
    extension_geometry(conv, x).is_some()
}

/// The kind, stride and padding when the extension can run this convolution on `x`.
fn extension_geometry(conv: &Conv2d, x: &Tensor<4>) -> Option<(Kind, [usize; 2], [usize; 2])> {
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
    let kind = if conv.groups == 1 && cin_per_group == channels {
        Kind::Dense
    } else if cin_per_group == 1 && conv.groups == channels && cout == channels {
        Kind::Depthwise
    } else {
        return None;
    };
    if conv.dilation != [1, 1] || ph >= kh || pw >= kw || conv.stride.contains(&0) {
        return None;
    }
    let [h, w] = [x.dims()[2], x.dims()[3]];
    if h + 2 * ph < kh || w + 2 * pw < kw {
        return None;
    }
    Some((kind, conv.stride, [ph, pw]))
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

    /// The convolutions and their gradients as backend operations (see the [module](super)
    /// docs). Call them through [`conv2d`](super::conv2d), which checks the geometry these
    /// operations assume: `x` `[n, c, h, w]`, `weight` `[out, c, kh, kw]` (dense) or
    /// `[c, 1, kh, kw]` (depthwise), dilation 1, padding below the kernel size.
    #[backend_extension(Flex, Autodiff)]
    pub trait ConvKernelOps: Backend {
        /// The dense (one group) forward convolution.
        fn nv_conv2d(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            stride: [usize; 2],
            padding: [usize; 2],
        ) -> FloatTensor<Self>;

        /// The dense convolution's gradient with respect to `x`.
        fn nv_conv2d_x_grad(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            grad: FloatTensor<Self>,
            stride: [usize; 2],
            padding: [usize; 2],
        ) -> FloatTensor<Self>;

        /// The dense convolution's gradient with respect to its `[out, in, kh, kw]` weight.
        fn nv_conv2d_weight_grad(
            x: FloatTensor<Self>,
            grad: FloatTensor<Self>,
            kernel: [usize; 2],
            stride: [usize; 2],
            padding: [usize; 2],
        ) -> FloatTensor<Self>;

        /// The depthwise forward convolution.
        fn nv_depthwise_conv2d(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            stride: [usize; 2],
            padding: [usize; 2],
        ) -> FloatTensor<Self>;

        /// The depthwise convolution's gradient with respect to `x` (of spatial size `input_hw`).
        fn nv_depthwise_conv2d_x_grad(
            weight: FloatTensor<Self>,
            grad: FloatTensor<Self>,
            input_hw: [usize; 2],
            stride: [usize; 2],
            padding: [usize; 2],
        ) -> FloatTensor<Self>;

        /// The depthwise convolution's gradient with respect to its `[c, 1, kh, kw]` weight.
        fn nv_depthwise_conv2d_weight_grad(
            x: FloatTensor<Self>,
            grad: FloatTensor<Self>,
            kernel: [usize; 2],
            stride: [usize; 2],
            padding: [usize; 2],
        ) -> FloatTensor<Self>;

        /// A per-channel affine map and a clamp, in one pass: `y[n, c, …] = clamp(x[n, c, …] ·
        /// ss[0, c] + ss[1, c], lo, hi)` for `bounds = [lo, hi]` (infinite bounds for none).
        fn nv_affine_clamp(
            x: FloatTensor<Self>,
            ss: FloatTensor<Self>,
            bounds: [f32; 2],
        ) -> FloatTensor<Self>;

        /// [`nv_affine_clamp`](Self::nv_affine_clamp)'s gradient with respect to `x`.
        fn nv_affine_clamp_x_grad(
            x: FloatTensor<Self>,
            ss: FloatTensor<Self>,
            grad: FloatTensor<Self>,
            bounds: [f32; 2],
        ) -> FloatTensor<Self>;

        /// [`nv_affine_clamp`](Self::nv_affine_clamp)'s gradient with respect to its `[2, c]`
        /// scale and shift.
        fn nv_affine_clamp_ss_grad(
            x: FloatTensor<Self>,
            ss: FloatTensor<Self>,
            grad: FloatTensor<Self>,
            bounds: [f32; 2],
        ) -> FloatTensor<Self>;

        /// [`nv_affine_clamp`](Self::nv_affine_clamp) with a residual added before the clamp:
        /// `y = clamp(x·ss[0, c] + ss[1, c] + r, lo, hi)`, `r` of `x`'s shape.
        fn nv_affine_add_clamp(
            x: FloatTensor<Self>,
            ss: FloatTensor<Self>,
            r: FloatTensor<Self>,
            bounds: [f32; 2],
        ) -> FloatTensor<Self>;

        /// [`nv_affine_add_clamp`](Self::nv_affine_add_clamp)'s gradient through the clamp (the
        /// gradient with respect to `r`; `x`'s is it times the scale).
        fn nv_affine_add_clamp_grad(
            x: FloatTensor<Self>,
            ss: FloatTensor<Self>,
            r: FloatTensor<Self>,
            grad: FloatTensor<Self>,
            bounds: [f32; 2],
        ) -> FloatTensor<Self>;
    }

    mod flex {
        use std::cell::RefCell;

        use super::ConvKernelOps;
        use burn::backend::Flex;
        use burn::backend::TensorMetadata;
        use burn::backend::ops::ModuleOps;
        use burn::backend::tensor::FloatTensor;
        use burn::tensor::ops::ConvOptions;
        use burn::tensor::{Bytes, DType, Shape};
        use burn_flex::{FlexTensor, Layout};
        use rayon::prelude::*;

        /// Output positions per `gemm` tile of the dense kernels.
        const TILE: usize = 4096;
        /// Largest im2col tile, in values (8 MiB): deep layers get fewer positions per tile.
        const TILE_VALUES: usize = 1 << 21;

        thread_local! {
            /// The im2col tile, kept between calls: a fresh multi-megabyte buffer per call costs
            /// its page faults again (docs/PERFORMANCE.md, "allocation").
            static COLS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
        }

        fn from_vec(v: Vec<f32>, shape: [usize; 4]) -> FlexTensor {
            FlexTensor::new(
                Bytes::from_elems(v),
                Layout::contiguous(Shape::from(shape)),
                DType::F32,
            )
        }

        /// The tensor in row-major order (shared storage when it already is).
        fn contiguous(t: &FlexTensor) -> FlexTensor {
            t.to_contiguous()
        }

        /// The f32 values of a contiguous tensor (the callers checked the dtype).
        fn slice(t: &FlexTensor) -> &[f32] {
            t.as_slice::<f32>().unwrap_or(&[])
        }

        /// The half-open range of output positions `o` whose input index `o·s + k − p` lies in
        /// `[0, size)`.
        fn valid(k: usize, s: usize, p: usize, out: usize, size: usize) -> (usize, usize) {
            let lo = p.saturating_sub(k).div_ceil(s);
            let hi = (size + p).saturating_sub(k).div_ceil(s).min(out);
            (lo, hi.max(lo))
        }

        /// `Σ a·b` over eight lanes (a sequential f32 sum does not vectorise).
        fn dot(a: &[f32], b: &[f32]) -> f32 {
            let mut acc = [0.0f32; 8];
            let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
            let tail: f32 = ac
                .remainder()
                .iter()
                .zip(bc.remainder())
                .map(|(x, y)| x * y)
                .sum();
            for (x, y) in ac.zip(bc) {
                for l in 0..8 {
                    acc[l] += x[l] * y[l];
                }
            }
            acc.iter().sum::<f32>() + tail
        }

        /// `y += a·x`.
        fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
            for (d, v) in y.iter_mut().zip(x) {
                *d += a * v;
            }
        }

        /// The `s` phases of each row of a `[h, w]` plane: `out[(r·s + q)·⌈w/s⌉ + t] =
        /// plane[r·w + t·s + q]`, so that a stride-`s` walk along a row is contiguous.
        fn split_phases(plane: &[f32], out: &mut [f32], [h, w]: [usize; 2], s: usize) {
            let wq = w.div_ceil(s);
            for r in 0..h {
                let row = &plane[r * w..(r + 1) * w];
                for q in 0..s {
                    let dst = &mut out[(r * s + q) * wq..(r * s + q + 1) * wq];
                    for (t, v) in row.iter().skip(q).step_by(s).enumerate() {
                        dst[t] = *v;
                    }
                }
            }
        }

        /// The inverse of [`split_phases`]: `plane[r·w + t·s + q] = phases[(r·s + q)·⌈w/s⌉ + t]`.
        fn merge_phases(phases: &[f32], plane: &mut [f32], [h, w]: [usize; 2], s: usize) {
            let wq = w.div_ceil(s);
            for r in 0..h {
                let row = &mut plane[r * w..(r + 1) * w];
                for q in 0..s {
                    let src = &phases[(r * s + q) * wq..(r * s + q + 1) * wq];
                    for (v, p) in row.iter_mut().skip(q).step_by(s).zip(src) {
                        *v = *p;
                    }
                }
            }
        }

        /// One contiguous run of a depthwise convolution: under filter tap `tap` (`i·kw + j`),
        /// the output positions `out..out + len` of a plane (row-major `[ho, wo]`) read the
        /// input values `src..src + len` of that plane's row phases ([`split_phases`]).
        struct Run {
            tap: usize,
            out: usize,
            src: usize,
            len: usize,
        }

        /// Every run of a depthwise convolution, tap by tap and row by row (the same for every
        /// plane, so computed once per call).
        fn depthwise_runs(
            [h, w]: [usize; 2],
            [ho, wo]: [usize; 2],
            [kh, kw]: [usize; 2],
            [sh, sw]: [usize; 2],
            [ph, pw]: [usize; 2],
        ) -> Vec<Run> {
            let wq = w.div_ceil(sw);
            let mut runs = Vec::new();
            for i in 0..kh {
                let (oh0, oh1) = valid(i, sh, ph, ho, h);
                for j in 0..kw {
                    let (ow0, ow1) = valid(j, sw, pw, wo, w);
                    if ow1 == ow0 {
                        continue;
                    }
                    let base = ow0 * sw + j - pw;
                    let (q, start, len) = (base % sw, base / sw, ow1 - ow0);
                    for oh in oh0..oh1 {
                        let r = oh * sh + i - ph;
                        runs.push(Run {
                            tap: i * kw + j,
                            out: oh * wo + ow0,
                            src: (r * sw + q) * wq + start,
                            len,
                        });
                    }
                }
            }
            runs
        }

        /// One row of an im2col tile: for output positions `l0..l0 + row.len()` (row-major
        /// over `[ho, wo]`), the input value under filter tap `(i, j)` of plane `xp`, or 0 in
        /// the padding.
        #[allow(clippy::too_many_arguments)]
        fn im2col_row(
            row: &mut [f32],
            xp: &[f32],
            l0: usize,
            [h, w]: [usize; 2],
            [ho, wo]: [usize; 2],
            [i, j]: [usize; 2],
            [sh, sw]: [usize; 2],
            [ph, pw]: [usize; 2],
        ) {
            let (oh0, oh1) = valid(i, sh, ph, ho, h);
            let (ow0, ow1) = valid(j, sw, pw, wo, w);
            let (mut t, mut pos) = (0, l0);
            while t < row.len() {
                let (oh, start) = (pos / wo, pos % wo);
                let seg = (wo - start).min(row.len() - t);
                let dst = &mut row[t..t + seg];
                if oh < oh0 || oh >= oh1 {
                    dst.fill(0.0);
                } else {
                    let end = start + seg;
                    let a = ow0.clamp(start, end);
                    let b = ow1.clamp(a, end);
                    dst[..a - start].fill(0.0);
                    dst[b - start..].fill(0.0);
                    let r = (oh * sh + i - ph) * w;
                    let vals = &mut dst[a - start..b - start];
                    if sw == 1 {
                        vals.copy_from_slice(&xp[r + a + j - pw..r + b + j - pw]);
                    } else {
                        for (k, v) in vals.iter_mut().enumerate() {
                            *v = xp[r + (a + k) * sw + j - pw];
                        }
                    }
                }
                t += seg;
                pos += seg;
            }
        }

        /// Whether a dense convolution's im2col matrix is the input itself (a 1×1, stride-1
        /// convolution without padding): its tiles read `x` directly.
        fn reads_input(kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2]) -> bool {
            kernel == [1, 1] && stride == [1, 1] && padding == [0, 0]
        }

        /// Row `r` (input channel `r / (kh·kw)`, tap `r mod (kh·kw)`) of the im2col tile of
        /// image `xb` starting at output position `l0`.
        #[allow(clippy::too_many_arguments)]
        fn tile_row(
            row: &mut [f32],
            r: usize,
            xb: &[f32],
            [h, w]: [usize; 2],
            out_hw: [usize; 2],
            [kh, kw]: [usize; 2],
            l0: usize,
            stride: [usize; 2],
            padding: [usize; 2],
        ) {
            let (ci, i, j) = (r / (kh * kw), (r / kw) % kh, r % kw);
            let xp = &xb[ci * h * w..(ci + 1) * h * w];
            im2col_row(row, xp, l0, [h, w], out_hw, [i, j], stride, padding);
        }

        /// Output positions per tile for `ck` im2col rows.
        fn tile_len(ck: usize, l: usize) -> usize {
            TILE.min((TILE_VALUES / ck.max(1)).max(64)).min(l)
        }

        /// For each image `b` and tile of its `l` output positions: fills the im2col tile of
        /// `xs` (none for a 1×1 stride-1 convolution without padding, which reads `x`
        /// directly) and calls `f(b, l0, lt, cols, column stride)`.
        #[allow(clippy::too_many_arguments)]
        fn for_each_tile(
            xs: &[f32],
            [n, cin, h, w]: [usize; 4],
            [ho, wo]: [usize; 2],
            [kh, kw]: [usize; 2],
            stride: [usize; 2],
            padding: [usize; 2],
            mut f: impl FnMut(usize, usize, usize, *const f32, isize),
        ) {
            let (l, ck) = (ho * wo, cin * kh * kw);
            let direct = reads_input([kh, kw], stride, padding);
            let lt_max = tile_len(ck, l);
            // Taken out of the cell for the duration (a rayon worker that steals another
            // convolution while waiting in `gemm` finds it empty and allocates its own).
            let mut cols = COLS.with(|cell| std::mem::take(&mut *cell.borrow_mut()));
            {
                if !direct && cols.len() < ck * lt_max {
                    cols.resize(ck * lt_max, 0.0);
                }
                for b in 0..n {
                    let xb = &xs[b * cin * h * w..(b + 1) * cin * h * w];
                    for l0 in (0..l).step_by(lt_max) {
                        let lt = lt_max.min(l - l0);
                        if direct {
                            f(b, l0, lt, xb[l0..].as_ptr(), l as isize);
                            continue;
                        }
                        cols[..ck * lt]
                            .par_chunks_mut(lt)
                            .enumerate()
                            .for_each(|(r, row)| {
                                tile_row(
                                    row,
                                    r,
                                    xb,
                                    [h, w],
                                    [ho, wo],
                                    [kh, kw],
                                    l0,
                                    stride,
                                    padding,
                                )
                            });
                        f(b, l0, lt, cols.as_ptr(), lt as isize);
                    }
                }
            }
            COLS.with(|cell| *cell.borrow_mut() = cols);
        }

        /// Largest im2col tile of one worker in [`par_tiles`], in values (1 MiB, half a core's
        /// L2 cache): the worker's `gemm` reads it while it is still in the cache.
        const PAR_TILE_VALUES: usize = 1 << 18;

        /// Parts of [`par_tiles`] when the states are sums: a fixed number, so that which tiles
        /// each part adds up, and in which order, does not depend on the threads' timing.
        const SUM_PARTS: usize = 16;

        /// Like [`for_each_tile`], but the tiles run in parallel, each worker filling its own
        /// (thread-local, reused) im2col tile of at most [`PAR_TILE_VALUES`] values and calling
        /// `f(state, b, l0, lt, cols, column stride)` on it, which must not itself go parallel.
        /// The tiles are split into `parts` runs of consecutive tiles (at most; one per tile when
        /// `parts` is at least the tile count); each run starts from `init()` and visits its
        /// tiles in order, and the runs' final states are returned in order. A fixed `parts`
        /// makes sums over the states the same from run to run (a rayon `fold` would split the
        /// tiles by the threads' timing, and float sums would change with it).
        #[allow(clippy::too_many_arguments)]
        fn par_tiles<T: Send>(
            xs: &[f32],
            [n, cin, h, w]: [usize; 4],
            [ho, wo]: [usize; 2],
            [kh, kw]: [usize; 2],
            stride: [usize; 2],
            padding: [usize; 2],
            parts: usize,
            init: impl Fn() -> T + Sync + Send,
            f: impl Fn(&mut T, usize, usize, usize, *const f32, isize) + Sync + Send,
        ) -> Vec<T> {
            let (l, ck) = (ho * wo, cin * kh * kw);
            let direct = reads_input([kh, kw], stride, padding);
            let lt_max = (PAR_TILE_VALUES / ck.max(1)).clamp(48, TILE).min(l).max(1);
            let tiles: Vec<(usize, usize)> = (0..n)
                .flat_map(|b| (0..l).step_by(lt_max).map(move |l0| (b, l0)))
                .collect();
            let run = tiles.len().div_ceil(parts.max(1)).max(1);
            tiles
                .par_chunks(run)
                .map(|run| {
                    let mut state = init();
                    for &(b, l0) in run {
                        let lt = lt_max.min(l - l0);
                        let xb = &xs[b * cin * h * w..(b + 1) * cin * h * w];
                        if direct {
                            f(&mut state, b, l0, lt, xb[l0..].as_ptr(), l as isize);
                            continue;
                        }
                        let mut cols = COLS.with(|cell| std::mem::take(&mut *cell.borrow_mut()));
                        if cols.len() < ck * lt {
                            cols.resize(ck * lt, 0.0);
                        }
                        for (r, row) in cols[..ck * lt].chunks_mut(lt).enumerate() {
                            tile_row(row, r, xb, [h, w], [ho, wo], [kh, kw], l0, stride, padding);
                        }
                        f(&mut state, b, l0, lt, cols.as_ptr(), lt as isize);
                        COLS.with(|cell| *cell.borrow_mut() = cols);
                    }
                    state
                })
                .collect()
        }

        /// A dense convolution as tiled im2col and `gemm`: `y_b[:, tile] = W · cols`.
        fn dense_forward(
            x: &FlexTensor,
            weight: &FlexTensor,
            stride: [usize; 2],
            padding: [usize; 2],
        ) -> FlexTensor {
            let [n, cin, h, w] = x.shape().dims::<4>();
            let [cout, _, kh, kw] = weight.shape().dims::<4>();
            let ho = (h + 2 * padding[0] - kh) / stride[0] + 1;
            let wo = (w + 2 * padding[1] - kw) / stride[1] + 1;
            let (x, weight) = (contiguous(x), contiguous(weight));
            let (xs, ws) = (slice(&x), slice(&weight));
            let (l, ck) = (ho * wo, cin * kh * kw);
            let mut y = vec![0.0f32; n * cout * l];
            let dims = [n, cin, h, w];
            let yp = y.as_mut_ptr() as usize;
            par_tiles(
                xs,
                dims,
                [ho, wo],
                [kh, kw],
                stride,
                padding,
                // each tile writes its own columns: one part per tile, for the balance
                usize::MAX,
                || (),
                |_, b, l0, lt, rhs, rs| {
                    // SAFETY: the output tile starts at (b·cout)·l + l0 with rows l apart and lt
                    // columns (the tiles' columns are disjoint, `y` outlives the call); the
                    // weight is cout × ck row-major; the right-hand side is ck rows of lt
                    // values, `rs` apart.
                    unsafe {
                        gemm::gemm(
                            cout,
                            lt,
                            ck,
                            (yp as *mut f32).add(b * cout * l + l0),
                            1,
                            l as isize,
                            false,
                            ws.as_ptr(),
                            1,
                            ck as isize,
                            rhs,
                            1,
                            rs,
                            0.0,
                            1.0,
                            false,
                            false,
                            false,
                            gemm::Parallelism::None,
                        );
                    }
                },
            );
            from_vec(y, [n, cout, ho, wo])
        }

        /// `dw[cout, ck] (+)= grad_tile · colsᵀ`, added when `accumulate`, written otherwise:
        /// `grad_tile` is `cout` rows of `lt` values, `l` apart; `cols` is `ck` rows of `lt`
        /// values, `rs` apart, read transposed; `parallel` lets `gemm` use both cores.
        ///
        /// # Safety
        /// `cols` must point at `ck` rows of `lt` readable values `rs` apart; `dw` must hold
        /// `cout·ck` values and `grad_tile` at least `(cout − 1)·l + lt`.
        #[allow(clippy::too_many_arguments)]
        unsafe fn weight_grad_tile(
            dw: &mut [f32],
            [cout, ck]: [usize; 2],
            accumulate: bool,
            grad_tile: &[f32],
            l: usize,
            cols: *const f32,
            rs: isize,
            lt: usize,
            parallel: bool,
        ) {
            let parallelism = if parallel {
                gemm::Parallelism::Rayon(0)
            } else {
                gemm::Parallelism::None
            };
            // SAFETY: the caller's contract; `dw` is cout × ck with row stride ck.
            unsafe {
                gemm::gemm(
                    cout,
                    ck,
                    lt,
                    dw.as_mut_ptr(),
                    1,
                    ck as isize,
                    accumulate,
                    grad_tile.as_ptr(),
                    1,
                    l as isize,
                    cols,
                    rs,
                    1,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    parallelism,
                );
            }
        }

        /// `w'[ci, co, i, j] = w[co, ci, kh−1−i, kw−1−j]` (`transpose` = false keeps `co, ci`).
        /// In parallel over blocks of 16 `ci`, so that each block reads 16 filters' worth of every
        /// `co` row contiguously and writes its own rows of `w'`: a VGG16 layer's 2.4 M values in
        /// cache-sized pieces (a plain gather took 8 % of a HEDN-GAN iteration).
        fn flip(w: &FlexTensor, transpose: bool) -> FlexTensor {
            const BLOCK: usize = 16;
            let [co, ci, kh, kw] = w.shape().dims::<4>();
            let w = contiguous(w);
            let src = slice(&w);
            let k = kh * kw;
            let mut out = vec![0.0f32; src.len()];
            if transpose {
                out.par_chunks_mut((BLOCK * co * k).max(1))
                    .enumerate()
                    .for_each(|(blk, dst)| {
                        let i0 = blk * BLOCK;
                        let ib = dst.len() / (co * k).max(1);
                        for o in 0..co {
                            let s = &src[(o * ci + i0) * k..][..ib * k];
                            for ii in 0..ib {
                                let d = &mut dst[(ii * co + o) * k..][..k];
                                for (t, v) in d.iter_mut().enumerate() {
                                    *v = s[ii * k + k - 1 - t];
                                }
                            }
                        }
                    });
            } else {
                out.par_chunks_mut(k.max(1) * 4096)
                    .zip(src.par_chunks(k.max(1) * 4096))
                    .for_each(|(dst, s)| {
                        for (d, f) in dst.chunks_mut(k).zip(s.chunks(k)) {
                            for (t, v) in d.iter_mut().enumerate() {
                                *v = f[k - 1 - t];
                            }
                        }
                    });
            }
            let shape = if transpose {
                [ci, co, kh, kw]
            } else {
                [co, ci, kh, kw]
            };
            from_vec(out, shape)
        }

        impl ConvKernelOps for Flex {
            fn nv_conv2d(
                x: FloatTensor<Flex>,
                weight: FloatTensor<Flex>,
                stride: [usize; 2],
                padding: [usize; 2],
            ) -> FloatTensor<Flex> {
                dense_forward(&x, &weight, stride, padding)
            }

            fn nv_conv2d_x_grad(
                x: FloatTensor<Flex>,
                weight: FloatTensor<Flex>,
                grad: FloatTensor<Flex>,
                stride: [usize; 2],
                padding: [usize; 2],
            ) -> FloatTensor<Flex> {
                let [n, cin, h, w] = x.shape().dims::<4>();
                let [_, _, kh, kw] = weight.shape().dims::<4>();
                let [_, _, ho, wo] = grad.shape().dims::<4>();
                let [ph, pw] = padding;
                if stride == [1, 1] {
                    // A stride-1 convolution's input gradient is the "full" convolution of the
                    // output gradient with the flipped filters, input and output swapped.
                    return dense_forward(
                        &grad,
                        &flip(&weight, true),
                        [1, 1],
                        [kh - 1 - ph, kw - 1 - pw],
                    );
                }
                if kh == 1 && kw == 1 {
                    // A strided 1×1 convolution reads every stride-th pixel: the 1×1 product
                    // Wᵀ·grad lands on those pixels, zeros elsewhere.
                    let compact = dense_forward(&grad, &flip(&weight, true), [1, 1], [0, 0]);
                    let [sh, sw] = stride;
                    let (oh0, oh1) = valid(0, sh, ph, ho, h);
                    let (ow0, ow1) = valid(0, sw, pw, wo, w);
                    let c = slice(&compact);
                    let mut out = vec![0.0f32; n * cin * h * w];
                    out.par_chunks_mut(h * w)
                        .zip(c.par_chunks(ho * wo))
                        .for_each(|(dst, src)| {
                            for oh in oh0..oh1 {
                                let r = (oh * sh - ph) * w;
                                for ow in ow0..ow1 {
                                    dst[r + ow * sw - pw] = src[oh * wo + ow];
                                }
                            }
                        });
                    return from_vec(out, [n, cin, h, w]);
                }
                Flex::conv2d_x_backward(
                    x,
                    weight,
                    grad,
                    ConvOptions::new(stride, padding, [1, 1], 1),
                )
            }

            fn nv_conv2d_weight_grad(
                x: FloatTensor<Flex>,
                grad: FloatTensor<Flex>,
                kernel: [usize; 2],
                stride: [usize; 2],
                padding: [usize; 2],
            ) -> FloatTensor<Flex> {
                let [n, cin, h, w] = x.shape().dims::<4>();
                let [_, cout, ho, wo] = grad.shape().dims::<4>();
                let [kh, kw] = kernel;
                let (x, grad) = (contiguous(&x), contiguous(&grad));
                let (xs, gs) = (slice(&x), slice(&grad));
                let (l, ck) = (ho * wo, cin * kh * kw);
                let dims = [n, cin, h, w];
                if cout * ck <= PAR_TILE_VALUES {
                    // Small weights: one accumulator per rayon fold, tiles in parallel.
                    let parts = par_tiles(
                        xs,
                        dims,
                        [ho, wo],
                        kernel,
                        stride,
                        padding,
                        SUM_PARTS,
                        || (vec![0.0f32; cout * ck], true),
                        |(dw, first), b, l0, lt, rhs, rs| {
                            let g = &gs[b * cout * l + l0..];
                            // SAFETY: `par_tiles` passes ck rows of lt values `rs` apart; `dw`
                            // is this fold's own cout × ck accumulator.
                            unsafe {
                                weight_grad_tile(dw, [cout, ck], !*first, g, l, rhs, rs, lt, false)
                            };
                            *first = false;
                        },
                    );
                    let mut parts = parts.into_iter().filter(|(_, first)| !first);
                    let mut dw = match parts.next() {
                        Some((dw, _)) => dw,
                        None => vec![0.0f32; cout * ck],
                    };
                    for (part, _) in parts {
                        for (d, v) in dw.iter_mut().zip(&part) {
                            *d += v;
                        }
                    }
                    return from_vec(dw, [cout, cin, kh, kw]);
                }
                let mut dw = vec![0.0f32; cout * ck];
                let mut first = true;
                for_each_tile(
                    xs,
                    dims,
                    [ho, wo],
                    kernel,
                    stride,
                    padding,
                    |b, l0, lt, rhs, rs| {
                        let g = &gs[b * cout * l + l0..];
                        // SAFETY: `for_each_tile` passes ck rows of lt values `rs` apart; `dw`
                        // is cout × ck.
                        unsafe {
                            weight_grad_tile(&mut dw, [cout, ck], !first, g, l, rhs, rs, lt, true)
                        };
                        first = false;
                    },
                );
                from_vec(dw, [cout, cin, kh, kw])
            }

            fn nv_depthwise_conv2d(
                x: FloatTensor<Flex>,
                weight: FloatTensor<Flex>,
                stride: [usize; 2],
                padding: [usize; 2],
            ) -> FloatTensor<Flex> {
                // y[oh, ow] = Σ w[i, j] · x[oh·sh + i − ph, ow·sw + j − pw]: one `axpy` per run,
                // on the stride's row phases of x. (The backend's own depthwise forward
                // accumulates into a calloc'd buffer, which in a training step costs a
                // copy-on-write fault per page, docs/PERFORMANCE.md.)
                let [n, c, h, w] = x.shape().dims::<4>();
                let [_, _, kh, kw] = weight.shape().dims::<4>();
                let [sh, sw] = stride;
                let [ph, pw] = padding;
                let (ho, wo) = ((h + 2 * ph - kh) / sh + 1, (w + 2 * pw - kw) / sw + 1);
                let runs = depthwise_runs([h, w], [ho, wo], [kh, kw], stride, padding);
                let (x, weight) = (contiguous(&x), contiguous(&weight));
                let (xs, ws) = (slice(&x), slice(&weight));
                let wq = w.div_ceil(sw);
                let mut out = vec![0.0f32; n * c * ho * wo];
                out.par_chunks_mut(ho * wo).enumerate().for_each_init(
                    || vec![0.0f32; if sw > 1 { h * sw * wq } else { 0 }],
                    |phases, (plane, dst)| {
                        let taps = &ws[(plane % c) * kh * kw..][..kh * kw];
                        let xp = &xs[plane * h * w..(plane + 1) * h * w];
                        let src: &[f32] = if sw > 1 {
                            split_phases(xp, phases, [h, w], sw);
                            phases
                        } else {
                            xp
                        };
                        dst.fill(0.0);
                        for r in &runs {
                            axpy(
                                &mut dst[r.out..][..r.len],
                                taps[r.tap],
                                &src[r.src..][..r.len],
                            );
                        }
                    },
                );
                from_vec(out, [n, c, ho, wo])
            }

            fn nv_depthwise_conv2d_x_grad(
                weight: FloatTensor<Flex>,
                grad: FloatTensor<Flex>,
                input_hw: [usize; 2],
                stride: [usize; 2],
                padding: [usize; 2],
            ) -> FloatTensor<Flex> {
                // dx[r, col] += w[i, j] · g[oh, ow] for r = oh·sh + i − ph, col = ow·sw + j − pw:
                // one `axpy` per run, into the stride's row phases of dx.
                let [n, c, ho, wo] = grad.shape().dims::<4>();
                let [_, _, kh, kw] = weight.shape().dims::<4>();
                let [h, w] = input_hw;
                let sw = stride[1];
                let runs = depthwise_runs([h, w], [ho, wo], [kh, kw], stride, padding);
                let (weight, grad) = (contiguous(&weight), contiguous(&grad));
                let (ws, gs) = (slice(&weight), slice(&grad));
                let wq = w.div_ceil(sw);
                let mut out = vec![0.0f32; n * c * h * w];
                out.par_chunks_mut(h * w).enumerate().for_each_init(
                    || vec![0.0f32; if sw > 1 { h * sw * wq } else { 0 }],
                    |phases, (plane, dst)| {
                        let taps = &ws[(plane % c) * kh * kw..][..kh * kw];
                        let gp = &gs[plane * ho * wo..(plane + 1) * ho * wo];
                        // Written before it is read: a read of a fresh (calloc'd, untouched)
                        // page maps the shared zero page, and the write after it costs a
                        // copy-on-write fault with a TLB shootdown across cores.
                        let acc: &mut [f32] = if sw > 1 {
                            phases.fill(0.0);
                            phases
                        } else {
                            dst.fill(0.0);
                            dst
                        };
                        for r in &runs {
                            axpy(
                                &mut acc[r.src..][..r.len],
                                taps[r.tap],
                                &gp[r.out..][..r.len],
                            );
                        }
                        if sw > 1 {
                            merge_phases(phases, dst, [h, w], sw);
                        }
                    },
                );
                from_vec(out, [n, c, h, w])
            }

            fn nv_depthwise_conv2d_weight_grad(
                x: FloatTensor<Flex>,
                grad: FloatTensor<Flex>,
                kernel: [usize; 2],
                stride: [usize; 2],
                padding: [usize; 2],
            ) -> FloatTensor<Flex> {
                // dw[ch, i, j] = Σ_{b, oh, ow} g[b, ch, oh, ow] · x[b, ch, oh·sh + i − ph,
                // ow·sw + j − pw]: one dot product per run, on the stride's row phases of x,
                // summed per tap before it is added to the tap.
                let [n, c, h, w] = x.shape().dims::<4>();
                let [_, _, ho, wo] = grad.shape().dims::<4>();
                let [kh, kw] = kernel;
                let sw = stride[1];
                let runs = depthwise_runs([h, w], [ho, wo], kernel, stride, padding);
                let (x, grad) = (contiguous(&x), contiguous(&grad));
                let (xs, gs) = (slice(&x), slice(&grad));
                let wq = w.div_ceil(sw);
                let mut out = vec![0.0f32; c * kh * kw];
                out.par_chunks_mut(kh * kw).enumerate().for_each_init(
                    || vec![0.0f32; if sw > 1 { h * sw * wq } else { 0 }],
                    |phases, (ch, taps)| {
                        for b in 0..n {
                            let plane = b * c + ch;
                            let xp = &xs[plane * h * w..(plane + 1) * h * w];
                            let gp = &gs[plane * ho * wo..(plane + 1) * ho * wo];
                            let src: &[f32] = if sw > 1 {
                                split_phases(xp, phases, [h, w], sw);
                                phases
                            } else {
                                xp
                            };
                            for tap_runs in runs.chunk_by(|a, b| a.tap == b.tap) {
                                let acc = tap_runs.iter().fold(0.0f32, |acc, r| {
                                    acc + dot(&gp[r.out..][..r.len], &src[r.src..][..r.len])
                                });
                                taps[tap_runs[0].tap] += acc;
                            }
                        }
                    },
                );
                from_vec(out, [c, 1, kh, kw])
            }

            fn nv_affine_clamp(
                x: FloatTensor<Flex>,
                ss: FloatTensor<Flex>,
                [lo, hi]: [f32; 2],
            ) -> FloatTensor<Flex> {
                let shape = x.shape().dims::<4>();
                let (x, ss) = (contiguous(&x), contiguous(&ss));
                let (xs, hw) = (slice(&x), shape[2] * shape[3]);
                map_planes(shape, slice(&ss), |plane, a, b, dst| {
                    for (d, v) in dst.iter_mut().zip(&xs[plane * hw..]) {
                        *d = clamp(v * a + b, lo, hi);
                    }
                })
            }

            fn nv_affine_clamp_x_grad(
                x: FloatTensor<Flex>,
                ss: FloatTensor<Flex>,
                grad: FloatTensor<Flex>,
                [lo, hi]: [f32; 2],
            ) -> FloatTensor<Flex> {
                let shape = x.shape().dims::<4>();
                let (x, ss, grad) = (contiguous(&x), contiguous(&ss), contiguous(&grad));
                let (xs, gs, hw) = (slice(&x), slice(&grad), shape[2] * shape[3]);
                map_planes(shape, slice(&ss), |plane, a, b, dst| {
                    let (xp, gp) = (&xs[plane * hw..], &gs[plane * hw..]);
                    for ((d, v), g) in dst.iter_mut().zip(xp).zip(gp) {
                        *d = passed(*g, v * a + b, lo, hi) * a;
                    }
                })
            }

            fn nv_affine_clamp_ss_grad(
                x: FloatTensor<Flex>,
                ss: FloatTensor<Flex>,
                grad: FloatTensor<Flex>,
                [lo, hi]: [f32; 2],
            ) -> FloatTensor<Flex> {
                // Per plane: Σ dz·x and Σ dz (dz the gradient through the clamp) in eight f32
                // lanes per block of 4096 values, blocks and planes summed in f64.
                let [_, c, h, w] = x.shape().dims::<4>();
                let (x, ss, grad) = (contiguous(&x), contiguous(&ss), contiguous(&grad));
                let (xs, p, gs) = (slice(&x), slice(&ss), slice(&grad));
                let hw = h * w;
                let sums: Vec<[f64; 2]> = xs
                    .par_chunks(hw.max(1))
                    .zip(gs.par_chunks(hw.max(1)))
                    .enumerate()
                    .with_min_len(min_planes(hw))
                    .map(|(plane, (xp, gp))| {
                        let (a, b) = (p[plane % c], p[c + plane % c]);
                        let mut total = [0.0f64; 2];
                        for (xb, gb) in xp.chunks(4096).zip(gp.chunks(4096)) {
                            let (mut sx, mut s1) = ([0.0f32; 8], [0.0f32; 8]);
                            let (xc, gc) = (xb.chunks_exact(8), gb.chunks_exact(8));
                            for (v, g) in xc.remainder().iter().zip(gc.remainder()) {
                                let dz = passed(*g, v * a + b, lo, hi);
                                sx[0] += dz * v;
                                s1[0] += dz;
                            }
                            for (v, g) in xc.zip(gc) {
                                for l in 0..8 {
                                    let dz = passed(g[l], v[l] * a + b, lo, hi);
                                    sx[l] += dz * v[l];
                                    s1[l] += dz;
                                }
                            }
                            total[0] += sx.iter().map(|&v| v as f64).sum::<f64>();
                            total[1] += s1.iter().map(|&v| v as f64).sum::<f64>();
                        }
                        total
                    })
                    .collect();
                let mut out = vec![0.0f64; 2 * c];
                for (plane, [sx, s1]) in sums.into_iter().enumerate() {
                    out[plane % c] += sx;
                    out[c + plane % c] += s1;
                }
                let out = out.into_iter().map(|v| v as f32).collect();
                FlexTensor::new(
                    Bytes::from_elems::<f32>(out),
                    Layout::contiguous(Shape::from([2, c])),
                    DType::F32,
                )
            }

            fn nv_affine_add_clamp(
                x: FloatTensor<Flex>,
                ss: FloatTensor<Flex>,
                r: FloatTensor<Flex>,
                [lo, hi]: [f32; 2],
            ) -> FloatTensor<Flex> {
                let shape = x.shape().dims::<4>();
                let (x, ss, r) = (contiguous(&x), contiguous(&ss), contiguous(&r));
                let (xs, rs, hw) = (slice(&x), slice(&r), shape[2] * shape[3]);
                map_planes(shape, slice(&ss), |plane, a, b, dst| {
                    let (xp, rp) = (&xs[plane * hw..], &rs[plane * hw..]);
                    for ((d, v), q) in dst.iter_mut().zip(xp).zip(rp) {
                        *d = clamp(v * a + b + q, lo, hi);
                    }
                })
            }

            fn nv_affine_add_clamp_grad(
                x: FloatTensor<Flex>,
                ss: FloatTensor<Flex>,
                r: FloatTensor<Flex>,
                grad: FloatTensor<Flex>,
                [lo, hi]: [f32; 2],
            ) -> FloatTensor<Flex> {
                let shape = x.shape().dims::<4>();
                let (x, ss) = (contiguous(&x), contiguous(&ss));
                let (r, grad) = (contiguous(&r), contiguous(&grad));
                let (xs, rs, gs) = (slice(&x), slice(&r), slice(&grad));
                let hw = shape[2] * shape[3];
                map_planes(shape, slice(&ss), |plane, a, b, dst| {
                    let (xp, rp, gp) = (&xs[plane * hw..], &rs[plane * hw..], &gs[plane * hw..]);
                    for (((d, v), q), g) in dst.iter_mut().zip(xp).zip(rp).zip(gp) {
                        *d = passed(*g, v * a + b + q, lo, hi);
                    }
                })
            }
        }

        /// A new tensor of `shape` (`[n, c, h, w]`) whose every `(n, c)` plane is written by
        /// `f(plane, a, b, dst)`, with that channel's scale `a = ss[0, c]` and shift
        /// `b = ss[1, c]`; planes in parallel, about 16k values per task.
        fn map_planes(
            shape: [usize; 4],
            ss: &[f32],
            f: impl Fn(usize, f32, f32, &mut [f32]) + Sync + Send,
        ) -> FlexTensor {
            let [n, c, h, w] = shape;
            let hw = h * w;
            let mut out = vec![0.0f32; n * c * hw];
            out.par_chunks_mut(hw.max(1))
                .enumerate()
                .with_min_len(min_planes(hw))
                .for_each(|(plane, dst)| f(plane, ss[plane % c], ss[c + plane % c], dst));
            from_vec(out, shape)
        }

        /// Planes per parallel task of the element-wise kernels: about 16k values.
        fn min_planes(hw: usize) -> usize {
            (16_384 / hw.max(1)).max(1)
        }

        /// `z` clamped to `[lo, hi]`; NaN stays NaN.
        #[inline]
        fn clamp(z: f32, lo: f32, hi: f32) -> f32 {
            if z < lo {
                lo
            } else if z > hi {
                hi
            } else {
                z
            }
        }

        /// The gradient `g` through `clamp(z, lo, hi)`: PyTorch's `hardtanh_backward` and
        /// `threshold_backward` (0 where `z ≤ lo` or `z ≥ hi`).
        #[inline]
        fn passed(g: f32, z: f32, lo: f32, hi: f32) -> f32 {
            if z <= lo || z >= hi { 0.0 } else { g }
        }
    }

    mod autodiff {
        use super::ConvKernelOps;
        use burn::backend::tensor::FloatTensor;
        use burn::backend::{AutodiffBackend, Backend, TensorMetadata};
        use burn_autodiff::Autodiff;
        use burn_autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
        use burn_autodiff::grads::Gradients;
        use burn_autodiff::ops::{Backward, Ops, OpsKind, binary};

        type State<B> = (FloatTensor<B>, FloatTensor<B>, [usize; 2], [usize; 2]);
        /// A forward of the inner backend: `(x, weight, stride, padding) -> y`.
        type Forward<B> =
            fn(FloatTensor<B>, FloatTensor<B>, [usize; 2], [usize; 2]) -> FloatTensor<B>;

        #[derive(Debug)]
        struct DenseBackward;

        impl<B: Backend + ConvKernelOps> Backward<B, 2> for DenseBackward {
            type State = State<B>;

            fn backward(self, ops: Ops<State<B>, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
                let (x, weight, stride, padding) = ops.state;
                let [_, _, kh, kw] = weight.shape().dims::<4>();
                let x2 = x.clone();
                binary::<B, _, _>(
                    ops.parents,
                    ops.node,
                    grads,
                    |g| B::nv_conv2d_x_grad(x2, weight, g, stride, padding),
                    |g| B::nv_conv2d_weight_grad(x, g, [kh, kw], stride, padding),
                );
            }
        }

        #[derive(Debug)]
        struct DepthwiseBackward;

        impl<B: Backend + ConvKernelOps> Backward<B, 2> for DepthwiseBackward {
            type State = State<B>;

            fn backward(self, ops: Ops<State<B>, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
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

        type AffineState<B> = (FloatTensor<B>, FloatTensor<B>, [f32; 2]);

        #[derive(Debug)]
        struct AffineClampBackward;

        impl<B: Backend + ConvKernelOps> Backward<B, 2> for AffineClampBackward {
            type State = AffineState<B>;

            fn backward(
                self,
                ops: Ops<AffineState<B>, 2>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let (x, ss, bounds) = ops.state;
                let (x2, ss2) = (x.clone(), ss.clone());
                binary::<B, _, _>(
                    ops.parents,
                    ops.node,
                    grads,
                    |g| B::nv_affine_clamp_x_grad(x2, ss2, g, bounds),
                    |g| B::nv_affine_clamp_ss_grad(x, ss, g, bounds),
                );
            }
        }

        type AffineAddState<B> = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, [f32; 2]);

        #[derive(Debug)]
        struct AffineAddClampBackward;

        impl<B: Backend + ConvKernelOps> Backward<B, 3> for AffineAddClampBackward {
            type State = AffineAddState<B>;

            fn backward(
                self,
                ops: Ops<AffineAddState<B>, 3>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                // dz = the gradient through the clamp; dx = dz·a, d(a, b) = (Σ dz·x, Σ dz), dr = dz
                // (the first two through the unclamped affine kernels).
                let (x, ss, r, bounds) = ops.state;
                let [px, pss, pr] = ops.parents;
                let g = grads.consume::<B>(&ops.node);
                let dz = B::nv_affine_add_clamp_grad(x.clone(), ss.clone(), r, g, bounds);
                let open = [f32::NEG_INFINITY, f32::INFINITY];
                if let Some(node) = px {
                    let dx = B::nv_affine_clamp_x_grad(x.clone(), ss.clone(), dz.clone(), open);
                    grads.register::<B>(node.id, dx);
                }
                if let Some(node) = pss {
                    let dss = B::nv_affine_clamp_ss_grad(x, ss, dz.clone(), open);
                    grads.register::<B>(node.id, dss);
                }
                if let Some(node) = pr {
                    grads.register::<B>(node.id, dz);
                }
            }
        }

        /// Runs `forward` on the inner backend and records `backward` when either input is
        /// tracked.
        fn record<B, C, K>(
            backward: K,
            x: FloatTensor<Autodiff<B, C>>,
            weight: FloatTensor<Autodiff<B, C>>,
            stride: [usize; 2],
            padding: [usize; 2],
            forward: Forward<B>,
        ) -> FloatTensor<Autodiff<B, C>>
        where
            B: Backend + ConvKernelOps,
            C: CheckpointStrategy,
            K: Backward<B, 2, State = State<B>>,
        {
            let nodes = [x.node(), weight.node()];
            let (x, weight) = (x.into_primitive(), weight.into_primitive());
            match backward.prepare::<C>(nodes).compute_bound().stateful() {
                OpsKind::Tracked(prep) => {
                    let out = forward(x.clone(), weight.clone(), stride, padding);
                    prep.finish((x, weight, stride, padding), out)
                }
                OpsKind::UnTracked(prep) => prep.finish(forward(x, weight, stride, padding)),
            }
        }

        /// An operation of the inner backend on the autodiff backend's untracked primitives: the
        /// gradient kernels, which run inside a backward pass.
        macro_rules! inner {
            ($name:ident($($t:ident),*; $($a:ident: $ty:ty),*)) => {
                fn $name($($t: FloatTensor<Self>,)* $($a: $ty),*) -> FloatTensor<Self> {
                    Self::from_inner(B::$name($(Self::inner($t),)* $($a),*))
                }
            };
        }

        impl<B: Backend + ConvKernelOps, C: CheckpointStrategy> ConvKernelOps for Autodiff<B, C> {
            inner!(nv_affine_add_clamp_grad(x, ss, r, grad; bounds: [f32; 2]));
            inner!(nv_affine_clamp_x_grad(x, ss, grad; bounds: [f32; 2]));
            inner!(nv_affine_clamp_ss_grad(x, ss, grad; bounds: [f32; 2]));
            inner!(nv_conv2d_x_grad(x, weight, grad; stride: [usize; 2], padding: [usize; 2]));
            inner!(nv_conv2d_weight_grad(
                x, grad; kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2]
            ));
            inner!(nv_depthwise_conv2d_x_grad(
                weight, grad; input_hw: [usize; 2], stride: [usize; 2], padding: [usize; 2]
            ));
            inner!(nv_depthwise_conv2d_weight_grad(
                x, grad; kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2]
            ));
            fn nv_affine_clamp(
                x: FloatTensor<Self>,
                ss: FloatTensor<Self>,
                bounds: [f32; 2],
            ) -> FloatTensor<Self> {
                let nodes = [x.node(), ss.node()];
                let (x, ss) = (x.into_primitive(), ss.into_primitive());
                match AffineClampBackward
                    .prepare::<C>(nodes)
                    .compute_bound()
                    .stateful()
                {
                    OpsKind::Tracked(prep) => {
                        let out = B::nv_affine_clamp(x.clone(), ss.clone(), bounds);
                        prep.finish((x, ss, bounds), out)
                    }
                    OpsKind::UnTracked(prep) => prep.finish(B::nv_affine_clamp(x, ss, bounds)),
                }
            }

            fn nv_affine_add_clamp(
                x: FloatTensor<Self>,
                ss: FloatTensor<Self>,
                r: FloatTensor<Self>,
                bounds: [f32; 2],
            ) -> FloatTensor<Self> {
                let nodes = [x.node(), ss.node(), r.node()];
                let (x, ss, r) = (x.into_primitive(), ss.into_primitive(), r.into_primitive());
                match AffineAddClampBackward
                    .prepare::<C>(nodes)
                    .compute_bound()
                    .stateful()
                {
                    OpsKind::Tracked(prep) => {
                        let out = B::nv_affine_add_clamp(x.clone(), ss.clone(), r.clone(), bounds);
                        prep.finish((x, ss, r, bounds), out)
                    }
                    OpsKind::UnTracked(prep) => {
                        prep.finish(B::nv_affine_add_clamp(x, ss, r, bounds))
                    }
                }
            }

            fn nv_conv2d(
                x: FloatTensor<Self>,
                weight: FloatTensor<Self>,
                stride: [usize; 2],
                padding: [usize; 2],
            ) -> FloatTensor<Self> {
                record::<B, C, _>(DenseBackward, x, weight, stride, padding, B::nv_conv2d)
            }

            fn nv_depthwise_conv2d(
                x: FloatTensor<Self>,
                weight: FloatTensor<Self>,
                stride: [usize; 2],
                padding: [usize; 2],
            ) -> FloatTensor<Self> {
                record::<B, C, _>(
                    DepthwiseBackward,
                    x,
                    weight,
                    stride,
                    padding,
                    B::nv_depthwise_conv2d,
                )
            }
        }
    }
}
