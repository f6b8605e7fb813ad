//! Descriptor extraction: single- and multi-scale, with cirtorch's "longer side ≤ N" resizing
//! (cirtorch `extract_vectors` / `extract_ms`; docs/PAPERS.md A.8; docs/PAPERS.md protocols 1.5).
//!
//! Multi-scale descriptors average the network's descriptors at scales `[1, 1/√2, 1/2]` with the
//! GeM power mean and L2-normalise: `v = (mean_s f_s^p)^{1/p}`, `v / ‖v‖`, where `p` is the learned
//! GeM exponent of a network without a whitening layer and 1 otherwise
//! ([`DescriptorNet::multiscale_power`]).
//!
//! The rescaled inputs follow PyTorch's `F.interpolate(x, scale_factor=s, mode='bilinear',
//! align_corners=False)` exactly: the output is `⌊H·s⌋ × ⌊W·s⌋` and source coordinates are
//! `max((dst + ½)/s − ½, 0)` — the *given* scale, not `H/⌊H·s⌋` as a resize to a size would use
//! ([`resize_scale_factor`]).

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use nightvision_core::Normalization;
use nightvision_core::clahe::{ClaheConfig, clahe_lab_f32};
use nightvision_core::image::{Rgb32FImage, load_rgb, resize_max_side, to_tensor};

use crate::error::MetricError;
use crate::nets::{CirNet, CosPlaceNet};

/// cirtorch's standard multi-scale set `[1, 1/√2, 1/2]`.
pub const DEFAULT_SCALES: [f64; 3] = [1.0, std::f64::consts::FRAC_1_SQRT_2, 0.5];

/// A network that maps an image batch to L2-normalised descriptors.
pub trait DescriptorNet {
    /// # Shapes
    /// - `x`: `[batch, 3, height, width]` (normalised) → `[batch, dim]`
    fn describe(&self, x: Tensor<4>) -> Tensor<2>;
    /// The descriptor dimension.
    fn descriptor_dim(&self) -> usize;
    /// The power used to average scales (cirtorch `msp`).
    fn multiscale_power(&self) -> f32 {
        1.0
    }
}

impl DescriptorNet for CirNet {
    fn describe(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward(x)
    }
    fn descriptor_dim(&self) -> usize {
        self.dim()
    }
    fn multiscale_power(&self) -> f32 {
        CirNet::multiscale_power(self)
    }
}

impl DescriptorNet for CosPlaceNet {
    fn describe(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward(x)
    }
    fn descriptor_dim(&self) -> usize {
        self.dim()
    }
}

/// The 1-D linear interpolation matrix `[out, in]` of PyTorch's bilinear kernel
/// (`align_corners=False`) for a given source-per-destination `ratio`.
fn interp_matrix(input: usize, output: usize, ratio: f64) -> Vec<f32> {
    let mut m = vec![0f32; output * input];
    for dst in 0..output {
        let src = (ratio * (dst as f64 + 0.5) - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(input - 1);
        let i1 = if i0 < input - 1 { i0 + 1 } else { i0 };
        let l1 = src - i0 as f64;
        m[dst * input + i0] += (1.0 - l1) as f32;
        m[dst * input + i1] += l1 as f32;
    }
    m
}

/// Bilinear rescaling by a factor with PyTorch's `scale_factor` semantics (see the module
/// docs); differentiable, on the tensor's device. Returns `x` for `s = 1`.
///
/// # Shapes
/// - `x`: `[batch, channels, H, W]` → `[batch, channels, ⌊H·s⌋, ⌊W·s⌋]`
///
/// # Errors
/// [`MetricError::Config`] for a non-positive or non-finite `s`, or one that leaves no pixel.
pub fn resize_scale_factor(x: Tensor<4>, s: f64) -> crate::Result<Tensor<4>> {
    if !(s.is_finite() && s > 0.0) {
        return Err(MetricError::config(
            "scale",
            format!("must be positive, got {s}"),
        ));
    }
    if s == 1.0 {
        return Ok(x);
    }
    let [b, c, h, w] = x.dims();
    let (oh, ow) = (
        ((h as f64) * s).floor() as usize,
        ((w as f64) * s).floor() as usize,
    );
    if oh == 0 || ow == 0 {
        return Err(MetricError::config(
            "scale",
            format!("{s} leaves no pixel of a {h}×{w} input"),
        ));
    }
    let device = x.device();
    let ry = Tensor::<2>::from_data(
        TensorData::new(interp_matrix(h, oh, 1.0 / s), [oh, h]),
        &device,
    );
    let rx = Tensor::<2>::from_data(
        TensorData::new(interp_matrix(w, ow, 1.0 / s), [ow, w]),
        &device,
    );
    let rxt = rx.transpose().unsqueeze::<4>().expand([b, c, w, ow]);
    let ry = ry.unsqueeze::<4>().expand([b, c, oh, h]);
    Ok(ry.matmul(x.matmul(rxt)))
}

/// Multi-scale descriptors of a batch (cirtorch `extract_ms`): `(mean_s f_s^p)^{1/p}`, then
/// divided by its norm.
///
/// # Shapes
/// - `x`: `[batch, 3, H, W]` (normalised) → `[batch, dim]`
///
/// # Errors
/// [`MetricError::Empty`] without scales, [`MetricError::Config`] for a bad scale or `p ≤ 0`.
pub fn multiscale<N: DescriptorNet + ?Sized>(
    net: &N,
    x: Tensor<4>,
    scales: &[f64],
    p: f32,
) -> crate::Result<Tensor<2>> {
    if scales.is_empty() {
        return Err(MetricError::Empty { what: "scale list" });
    }
    if !(p.is_finite() && p > 0.0) {
        return Err(MetricError::config(
            "multiscale power",
            format!("must be positive, got {p}"),
        ));
    }
    let per_scale = scales
        .iter()
        .map(|&s| Ok(net.describe(resize_scale_factor(x.clone(), s)?)))
        .collect::<crate::Result<Vec<_>>>()?;
    combine_scales(per_scale, p)
}

/// Combines descriptors of the same images at several scales as [`multiscale`] does:
/// `(mean_s f_s^p)^{1/p}`, divided by its norm. [`multiscale`] is `combine_scales` of the
/// network's descriptors at each scale, so descriptors kept per scale
/// ([`extract_files_per_scale`]) give the multi-scale ones without a second pass.
///
/// # Shapes
/// - `per_scale`: one `[batch, dim]` per scale → `[batch, dim]`
///
/// # Errors
/// [`MetricError::Empty`] without scales, [`MetricError::Config`] for `p ≤ 0` or scales whose
/// shapes differ.
///
/// # Example
/// ```
/// use burn::tensor::{Device, Tensor};
/// use metric_learning::multiscale::combine_scales;
///
/// let device = Device::default();
/// let a = Tensor::<2>::from_floats([[1.0, 0.0]], &device);
/// let b = Tensor::<2>::from_floats([[0.0, 1.0]], &device);
/// // p = 1: the mean (0.5, 0.5), normalised
/// let v: Vec<f32> = combine_scales(vec![a, b], 1.0)?.into_data().try_into_vec_as().unwrap();
/// assert!((v[0] - 0.5f32.sqrt()).abs() < 1e-6 && (v[1] - 0.5f32.sqrt()).abs() < 1e-6);
/// # Ok::<(), metric_learning::MetricError>(())
/// ```
pub fn combine_scales(per_scale: Vec<Tensor<2>>, p: f32) -> crate::Result<Tensor<2>> {
    if !(p.is_finite() && p > 0.0) {
        return Err(MetricError::config(
            "multiscale power",
            format!("must be positive, got {p}"),
        ));
    }
    let n = per_scale.len();
    let mut acc: Option<Tensor<2>> = None;
    for f in per_scale {
        let f = f.powf_scalar(p as f64);
        acc = Some(match acc {
            Some(a) => {
                if a.dims() != f.dims() {
                    return Err(MetricError::config(
                        "scales",
                        format!("descriptor shapes differ: {:?} vs {:?}", a.dims(), f.dims()),
                    ));
                }
                a + f
            }
            None => f,
        });
    }
    let v = acc
        .ok_or(MetricError::Empty { what: "scale list" })?
        .div_scalar(n as f64)
        .powf_scalar(1.0 / p as f64);
    let norm = v.clone().powf_scalar(2.0).sum_dim(1).sqrt();
    Ok(v.div(norm))
}

/// How images are turned into descriptors.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractConfig {
    /// Longer side ≤ this many pixels (PIL `thumbnail`; cirtorch trains at 362, tests at 1024).
    pub max_side: usize,
    /// Scales (`[1.0]` for single-scale, [`DEFAULT_SCALES`] for multi-scale).
    pub scales: Vec<f64>,
    /// Input normalisation after resizing.
    pub normalization: Normalization,
    /// CLAHE on every image after resizing, before normalisation (Dark Side Augmentation's
    /// released models take CLAHE input, docs/PAPERS.md A.8).
    pub clahe: Option<ClaheConfig>,
    /// Same-size images go through the network together, up to this many pixels per batch
    /// (at least one image). Descriptors do not depend on it beyond float rounding (on the CPU
    /// backend they came out bit-identical for batches of 1 to 16 frames); multi-scale extraction
    /// of 320×240 frames runs ~20 % faster in batches of four, larger batches gain nothing
    /// (docs/PERFORMANCE.md). The default, [`DEFAULT_BATCH_PIXELS`], batches four such frames and
    /// leaves a 640² or larger image on its own, so peak memory stays that of one large image.
    pub batch_pixels: usize,
    /// Show a progress bar.
    pub progress: bool,
}

/// [`ExtractConfig::batch_pixels`]'s default: four 320×240 frames.
pub const DEFAULT_BATCH_PIXELS: usize = 4 * 320 * 240;

impl Default for ExtractConfig {
    fn default() -> Self {
        Self {
            max_side: 1024,
            scales: vec![1.0],
            normalization: Normalization::ImageNet,
            clahe: None,
            batch_pixels: DEFAULT_BATCH_PIXELS,
            progress: false,
        }
    }
}

/// Prepares one image as cirtorch does: longer side ≤ `max_side`, normalised, batch of one.
///
/// # Shapes
/// - output: `[1, 3, h, w]`
pub fn prepare_image(
    img: &Rgb32FImage,
    max_side: usize,
    normalization: Normalization,
    device: &Device,
) -> crate::Result<Tensor<4>> {
    let img = resize_max_side(img, max_side);
    Ok(normalization.apply(to_tensor(std::slice::from_ref(&img), device)?))
}

/// Descriptors of image files as rows `[N, dim]`: [`ExtractConfig::scales`] `[1.0]` gives the
/// network's descriptors, other scale lists the multi-scale ones ([`multiscale`]). Same-size
/// images go through the network in batches ([`ExtractConfig::batch_pixels`]).
///
/// # Errors
/// Image I/O errors (naming the file), [`MetricError::Empty`] for an empty list, and the
/// errors of [`multiscale`].
pub fn extract_files<N: DescriptorNet + ?Sized, P: AsRef<Path> + Sync>(
    net: &N,
    paths: &[P],
    cfg: &ExtractConfig,
    device: &Device,
) -> crate::Result<Tensor<2>> {
    let per_scale = extract_files_per_scale(net, paths, cfg, device)?;
    finish(net, per_scale, cfg)
}

/// The descriptors of image files at each of [`ExtractConfig::scales`] separately, one
/// `[N, dim]` per scale in the order given (each the network's L2-normalised descriptor of the
/// rescaled image). [`combine_scales`] of them is what [`extract_files`] returns for several
/// scales, and the entry of scale 1 is what it returns for `[1.0]`: one pass gives both the
/// multi-scale and the single-scale descriptors.
///
/// # Shapes
/// - output: `scales.len()` × `[paths.len(), dim]`
///
/// # Errors
/// As [`extract_files`].
///
/// # Example
/// ```
/// use burn::tensor::Device;
/// use metric_learning::multiscale::{ExtractConfig, combine_scales, extract_files_per_scale};
/// use metric_learning::multiscale::DescriptorNet;
/// use metric_learning::{BackboneConfig, CirNet, CirNetConfig};
/// use backbones::ResNetConfig;
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("a.png");
/// # image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([(x * 6) as u8, (y * 8) as u8, 90])).save(&path).unwrap();
///
/// let device = Device::default();
/// let net: CirNet =
///     CirNetConfig::new(BackboneConfig::ResNet(ResNetConfig::resnet18().with_base_width(4)))
///         .init(&device)?;
/// let cfg = ExtractConfig { scales: vec![1.0, 0.5], ..ExtractConfig::default() };
/// let per_scale = extract_files_per_scale(&net, &[&path], &cfg, &device)?;
/// assert_eq!(per_scale.len(), 2);
/// let ms = combine_scales(per_scale, net.multiscale_power())?;
/// assert_eq!(ms.dims(), [1, net.descriptor_dim()]);
/// # Ok::<(), metric_learning::MetricError>(())
/// ```
pub fn extract_files_per_scale<N: DescriptorNet + ?Sized, P: AsRef<Path> + Sync>(
    net: &N,
    paths: &[P],
    cfg: &ExtractConfig,
    device: &Device,
) -> crate::Result<Vec<Tensor<2>>> {
    let images = paths.iter().map(load_rgb);
    extract_iter(
        net,
        images.map(|r| r.map_err(MetricError::from)),
        paths.len(),
        cfg,
        device,
    )
}

/// Descriptors of in-memory images (RGB in `[0, 1]`), as rows `[N, dim]`.
///
/// # Errors
/// As [`extract_files`].
pub fn extract_images<N: DescriptorNet + ?Sized>(
    net: &N,
    images: &[Rgb32FImage],
    cfg: &ExtractConfig,
    device: &Device,
) -> crate::Result<Tensor<2>> {
    let per_scale = extract_iter(
        net,
        images.iter().cloned().map(Ok),
        images.len(),
        cfg,
        device,
    )?;
    finish(net, per_scale, cfg)
}

/// The descriptors [`extract_files`] returns, from the per-scale ones.
fn finish<N: DescriptorNet + ?Sized>(
    net: &N,
    mut per_scale: Vec<Tensor<2>>,
    cfg: &ExtractConfig,
) -> crate::Result<Tensor<2>> {
    if cfg.scales == [1.0] {
        return per_scale
            .pop()
            .ok_or(MetricError::Empty { what: "scale list" });
    }
    combine_scales(per_scale, net.multiscale_power())
}

/// Images prepared ahead of the network by [`extract_iter`]'s loading thread.
const PREFETCH: usize = 8;

/// Per-scale descriptors of `images`, batched by size.
fn extract_iter<N: DescriptorNet + ?Sized>(
    net: &N,
    images: impl Iterator<Item = crate::Result<Rgb32FImage>> + Send,
    len: usize,
    cfg: &ExtractConfig,
    device: &Device,
) -> crate::Result<Vec<Tensor<2>>> {
    if len == 0 {
        return Err(MetricError::Empty { what: "image list" });
    }
    if cfg.scales.is_empty() {
        return Err(MetricError::Empty { what: "scale list" });
    }
    let bar = progress_bar(len as u64, "descriptors", cfg.progress);
    // per scale, the descriptors of every batch so far
    let mut out: Vec<Vec<Tensor<2>>> = vec![Vec::new(); cfg.scales.len()];
    // resized (and CLAHE'd) images of one size, waiting to go through the network together
    let mut pending: Vec<Rgb32FImage> = Vec::new();
    let mut flush = |pending: &mut Vec<Rgb32FImage>| -> crate::Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let x = cfg.normalization.apply(to_tensor(pending, device)?);
        for (&s, rows) in cfg.scales.iter().zip(out.iter_mut()) {
            rows.push(net.describe(resize_scale_factor(x.clone(), s)?));
        }
        bar.inc(pending.len() as u64);
        pending.clear();
        Ok(())
    };
    // decoding, resizing and CLAHE run on a thread of their own, a few images ahead of the
    // network
    let prepare = |img: crate::Result<Rgb32FImage>| -> crate::Result<Rgb32FImage> {
        let img = resize_max_side(&img?, cfg.max_side);
        Ok(match &cfg.clahe {
            Some(c) => clahe_lab_f32(&img, c)?,
            None => img,
        })
    };
    std::thread::scope(|scope| -> crate::Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel(PREFETCH);
        scope.spawn(move || {
            for img in images {
                // a closed channel: the consumer stopped at an error
                if tx.send(prepare(img)).is_err() {
                    break;
                }
            }
        });
        for img in rx {
            let img = img?;
            if let Some(first) = pending.first() {
                let pixels = (img.width() * img.height()) as usize;
                if first.dimensions() != img.dimensions()
                    || (pending.len() + 1) * pixels > cfg.batch_pixels
                {
                    flush(&mut pending)?;
                }
            }
            pending.push(img);
        }
        flush(&mut pending)
    })?;
    bar.finish_and_clear();
    Ok(out.into_iter().map(|rows| Tensor::cat(rows, 0)).collect())
}

/// An indicatif bar (hidden when `show` is false).
pub(crate) fn progress_bar(len: u64, what: &str, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}
