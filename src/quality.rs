//! Translation quality (issue 11 item 5): how close a set of generated night images is to the real
//! night renders of a world's held-out test places.
//!
//! - [`mobilenet_features`]: the last convolutional map of torchvision's MobileNetV2 (`features`,
//!   1280 channels) averaged over space, on ImageNet-normalised images at their native size;
//! - [`frechet`]: the Fréchet distance of those features to a reference set's [`FeatureStats`]
//!   (FID's formula on MobileNetV2 features instead of Inception's, via [`vpr_eval`]);
//! - [`mean_luminance`]: the mean Rec. 709 luma;
//! - [`edge_consistency`]: the mean Pearson correlation of the HED fused edge maps of each input
//!   and its translation (structure kept by the translator);
//! - [`hand_darkening`] / [`fit_hand_darkening`]: the hand-made baseline (a gamma curve, a gain,
//!   Gaussian noise) whose gain is solved so that its mean luminance matches the night set's;
//! - [`QualityRow`] / [`quality_table`]: one Markdown row per method.
//!
//! ```
//! use nightvision::core::image::Rgb32FImage;
//! use nightvision::quality::{HandDarkening, fit_hand_darkening, mean_luminance};
//!
//! let day: Vec<Rgb32FImage> = (0..3)
//!     .map(|i| Rgb32FImage::from_fn(8, 6, |x, y| image::Rgb([0.1 * i as f32 + 0.05 * x as f32, 0.5, 0.02 * y as f32])))
//!     .collect();
//! let fit = fit_hand_darkening(&day, 0.1, HandDarkening::DEFAULT_GAMMA, HandDarkening::DEFAULT_SIGMA, 7)?;
//! let dark = fit.apply_set(&day)?;
//! assert!((mean_luminance(&dark)? - 0.1).abs() < 1e-3);
//! # Ok::<(), nightvision::quality::QualityError>(())
//! ```

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor};
use rand::Rng;
use serde::Serialize;

use crate::backbones::{MobileNetV2, MobileNetV2Config};
use crate::core::Normalization;
use crate::core::image::{Rgb32FImage, f32_to_rgb8, load_rgb, to_tensor};
use crate::eval::{Descriptors, FeatureStats};
use crate::hed::Hed;
use crate::pipeline::PipelineError;

/// Rec. 709 luma weights (R, G, B).
pub const REC709: [f32; 3] = [0.2126, 0.7152, 0.0722];

/// Images per forward pass in [`mobilenet_features`] and [`edge_consistency`].
const BATCH: usize = 8;

/// Errors of the quality measures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QualityError {
    /// A measure got no images.
    #[error("{what}: the image set is empty")]
    EmptySet {
        /// What was measured.
        what: &'static str,
    },
    /// A folder holds no image files.
    #[error("{}: no image files (.jpg, .jpeg, .png)", path.display())]
    EmptyFolder {
        /// The folder.
        path: PathBuf,
    },
    /// A Fréchet distance needs at least 2 images per set (unbiased covariance).
    #[error("{what}: {got} image(s), a Fréchet distance needs at least 2")]
    TooFewImages {
        /// Which set.
        what: &'static str,
        /// How many it had.
        got: usize,
    },
    /// Images of a set that must be batched (or of an input/output pair) differ in size.
    #[error("{set}: image {index} is {got:?} (height, width), expected {expected:?}")]
    MixedSizes {
        /// Which set.
        set: &'static str,
        /// Index of the offending image.
        index: usize,
        /// `[height, width]` of the set's first image (or of the paired input).
        expected: [usize; 2],
        /// `[height, width]` of image `index`.
        got: [usize; 2],
    },
    /// Edge consistency pairs inputs and outputs one to one.
    #[error("edge consistency: {inputs} inputs but {outputs} outputs")]
    CountMismatch {
        /// Number of inputs.
        inputs: usize,
        /// Number of outputs.
        outputs: usize,
    },
    /// An edge map without variance has no Pearson correlation.
    #[error("edge consistency: the {which} edge map of pair {index} is constant")]
    ConstantEdgeMap {
        /// `"input"` or `"output"`.
        which: &'static str,
        /// The pair.
        index: usize,
    },
    /// A darkening parameter is out of range.
    #[error("hand darkening: {name} = {value} ({reason})")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// Its value.
        value: f64,
        /// The valid range.
        reason: &'static str,
    },
    /// No gain reaches the target mean luminance.
    #[error(
        "hand darkening: target mean luminance {target} is outside the reachable [{min}, {max}]"
    )]
    UnreachableLuminance {
        /// The target.
        target: f64,
        /// Mean luminance at gain 0 (noise only).
        min: f64,
        /// Mean luminance at the largest gain tried.
        max: f64,
    },
    /// Reading a folder failed.
    #[error("reading {}", path.display())]
    Io {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The pipelines' errors (images, weights, readback, vpr-eval, HED…).
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

impl From<crate::core::CoreError> for QualityError {
    fn from(e: crate::core::CoreError) -> Self {
        Self::Pipeline(e.into())
    }
}

impl From<crate::eval::EvalError> for QualityError {
    fn from(e: crate::eval::EvalError) -> Self {
        Self::Pipeline(e.into())
    }
}

impl From<crate::backbones::BackboneError> for QualityError {
    fn from(e: crate::backbones::BackboneError) -> Self {
        Self::Pipeline(e.into())
    }
}

/// Result with [`QualityError`].
pub type Result<T> = std::result::Result<T, QualityError>;

/// The image files (`.jpg`, `.jpeg`, `.png`, any case) directly in `dir`, sorted by name.
///
/// # Errors
/// [`QualityError::Io`] when the folder cannot be read, [`QualityError::EmptyFolder`] when it
/// holds no image.
///
/// ```
/// use nightvision::quality::{QualityError, image_files};
/// let dir = std::env::temp_dir().join(format!("nv-quality-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// assert!(matches!(image_files(&dir), Err(QualityError::EmptyFolder { .. })));
/// std::fs::remove_dir(&dir).unwrap();
/// ```
pub fn image_files(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    let dir = dir.as_ref();
    let io = |source| QualityError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if path.is_file() && matches!(ext.as_deref(), Some("jpg" | "jpeg" | "png")) {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(QualityError::EmptyFolder {
            path: dir.to_path_buf(),
        });
    }
    files.sort();
    Ok(files)
}

/// The images of [`image_files`]`(dir)`, as RGB in `[0, 1]`.
///
/// # Errors
/// Those of [`image_files`], and decoding errors naming the file.
pub fn load_folder(dir: impl AsRef<Path>) -> Result<Vec<Rgb32FImage>> {
    image_files(dir)?.iter().map(|p| Ok(load_rgb(p)?)).collect()
}

/// `[height, width]` of an image.
fn size_of(img: &Rgb32FImage) -> [usize; 2] {
    [img.height() as usize, img.width() as usize]
}

/// Checks that every image of `set` has the size of the first (a set that must be batched).
///
/// # Errors
/// [`QualityError::EmptySet`], [`QualityError::MixedSizes`].
///
/// ```
/// use nightvision::core::image::Rgb32FImage;
/// use nightvision::quality::{QualityError, check_same_size};
/// let a = Rgb32FImage::new(4, 3);
/// assert_eq!(check_same_size("day", &[a.clone(), a.clone()])?, [3, 4]);
/// assert!(matches!(
///     check_same_size("day", &[a, Rgb32FImage::new(5, 3)]),
///     Err(QualityError::MixedSizes { index: 1, expected: [3, 4], got: [3, 5], .. })
/// ));
/// # Ok::<(), QualityError>(())
/// ```
pub fn check_same_size(set: &'static str, images: &[Rgb32FImage]) -> Result<[usize; 2]> {
    let first = images.first().ok_or(QualityError::EmptySet { what: set })?;
    let expected = size_of(first);
    for (index, img) in images.iter().enumerate() {
        let got = size_of(img);
        if got != expected {
            return Err(QualityError::MixedSizes {
                set,
                index,
                expected,
                got,
            });
        }
    }
    Ok(expected)
}

/// Host values of a tensor.
fn read(x: Tensor<4>, what: &'static str) -> Result<Vec<f32>> {
    x.into_data().try_into_vec_as::<f32>().map_err(|e| {
        PipelineError::Readback {
            what,
            message: format!("{e:?}"),
        }
        .into()
    })
}

/// Torchvision's MobileNetV2 (width 1.0, no classifier) with the real ImageNet weights of the
/// real-data cache (`weights/mobilenet_v2_imagenet.safetensors`).
///
/// # Errors
/// [`PipelineError::MissingWeights`] when the cache lacks them, weight-loading errors.
pub fn mobilenet_v2_imagenet(device: &Device) -> Result<MobileNetV2> {
    let weights = crate::pipeline::real_weights(
        "translation quality (MobileNetV2 features)",
        "weights/mobilenet_v2_imagenet.safetensors",
    )?;
    let mut net = MobileNetV2Config::new().init(device);
    net.load_torchvision(&weights)?;
    Ok(net)
}

/// One 1280-d row per image: MobileNetV2's last convolutional map (torchvision's `features`
/// output) averaged over space, on the ImageNet-normalised image at its native size. Consecutive
/// images of one size are batched; sizes may differ across the set.
///
/// # Errors
/// [`QualityError::EmptySet`], a readback error.
///
/// ```
/// use burn::tensor::Device;
/// use nightvision::backbones::MobileNetV2Config;
/// use nightvision::core::image::Rgb32FImage;
/// use nightvision::quality::mobilenet_features;
/// let device = Device::default();
/// let net = MobileNetV2Config::new().with_width_mult(0.25).init(&device);
/// let images = vec![Rgb32FImage::new(40, 32), Rgb32FImage::new(48, 32)];
/// let d = mobilenet_features(&net, &images, &device)?;
/// assert_eq!((d.rows(), d.dim()), (2, 1280));
/// # Ok::<(), nightvision::quality::QualityError>(())
/// ```
pub fn mobilenet_features(
    net: &MobileNetV2,
    images: &[Rgb32FImage],
    device: &Device,
) -> Result<Descriptors> {
    if images.is_empty() {
        return Err(QualityError::EmptySet {
            what: "MobileNetV2 features",
        });
    }
    let mut data = Vec::new();
    let mut dim = 0;
    let mut start = 0;
    while start < images.len() {
        let size = size_of(&images[start]);
        let mut end = start + 1;
        while end < images.len() && end - start < BATCH && size_of(&images[end]) == size {
            end += 1;
        }
        let x = Normalization::ImageNet.apply(to_tensor(&images[start..end], device)?);
        let f = net.forward(x);
        let [b, c, _, _] = f.dims();
        dim = c;
        let pooled = f.mean_dim(3).mean_dim(2).reshape([b, c, 1, 1]);
        data.extend(read(pooled, "MobileNetV2 features")?);
        start = end;
    }
    Ok(Descriptors::new(data, images.len(), dim)?)
}

/// The feature statistics of a reference set (e.g. the real night renders).
///
/// # Errors
/// [`QualityError::TooFewImages`] for fewer than 2 rows; non-finite features.
pub fn reference_stats(reference: &Descriptors) -> Result<FeatureStats> {
    if reference.rows() < 2 {
        return Err(QualityError::TooFewImages {
            what: "reference set",
            got: reference.rows(),
        });
    }
    Ok(FeatureStats::from_descriptors(reference)?)
}

/// The Fréchet distance between the generated set's features and the reference statistics:
/// `|μg − μr|² + tr Σg + tr Σr − 2 tr((Σg Σr)^½)` with unbiased covariances
/// ([`FeatureStats::frechet_distance`]).
///
/// # Errors
/// [`QualityError::TooFewImages`] for fewer than 2 generated images; different dimensions.
///
/// ```
/// use nightvision::eval::Descriptors;
/// use nightvision::quality::{QualityError, frechet, reference_stats};
/// let a = Descriptors::new(vec![0.0, 0.0, 1.0, 1.0, 2.0, 0.0], 3, 2)?;
/// let b = Descriptors::new(vec![5.0, 0.0, 6.0, 1.0, 7.0, 0.0], 3, 2)?; // a + (5, 0)
/// assert!((frechet(&b, &reference_stats(&a)?)? - 25.0).abs() < 1e-9);
/// let one = Descriptors::new(vec![0.0, 0.0], 1, 2)?;
/// assert!(matches!(frechet(&one, &reference_stats(&a)?), Err(QualityError::TooFewImages { got: 1, .. })));
/// # Ok::<(), QualityError>(())
/// ```
pub fn frechet(generated: &Descriptors, reference: &FeatureStats) -> Result<f64> {
    if generated.rows() < 2 {
        return Err(QualityError::TooFewImages {
            what: "generated set",
            got: generated.rows(),
        });
    }
    Ok(FeatureStats::from_descriptors(generated)?.frechet_distance(reference)?)
}

/// Mean Rec. 709 luma over all pixels of all images:
/// `Y' = 0.2126 R' + 0.7152 G' + 0.0722 B'` on the sRGB-encoded values in `[0, 1]` as stored
/// (no linearisation, i.e. luma, not CIE relative luminance), averaged in f64 over every pixel of
/// every image (larger images weigh more).
///
/// # Errors
/// [`QualityError::EmptySet`] for no images or no pixels.
///
/// ```
/// use nightvision::core::image::Rgb32FImage;
/// use nightvision::quality::mean_luminance;
/// let red = Rgb32FImage::from_pixel(2, 2, image::Rgb([1.0, 0.0, 0.0]));
/// let white = Rgb32FImage::from_pixel(2, 2, image::Rgb([1.0, 1.0, 1.0]));
/// assert!((mean_luminance(&[red, white])? - (0.2126 + 1.0) / 2.0).abs() < 1e-6);
/// # Ok::<(), nightvision::quality::QualityError>(())
/// ```
pub fn mean_luminance(images: &[Rgb32FImage]) -> Result<f64> {
    let mut sum = 0.0f64;
    let mut n = 0usize;
    for img in images {
        for p in img.pixels() {
            sum += luma(p.0) as f64;
        }
        n += img.pixels().len();
    }
    if n == 0 {
        return Err(QualityError::EmptySet {
            what: "mean luminance",
        });
    }
    Ok(sum / n as f64)
}

fn luma(p: [f32; 3]) -> f32 {
    REC709[0] * p[0] + REC709[1] * p[1] + REC709[2] * p[2]
}

/// Pearson correlation of two equal-length maps; `None` when either is constant.
fn pearson(a: &[f32], b: &[f32]) -> (Option<f64>, bool, bool) {
    let n = a.len() as f64;
    let ma = a.iter().map(|&v| v as f64).sum::<f64>() / n;
    let mb = b.iter().map(|&v| v as f64).sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (x as f64 - ma, y as f64 - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    let (ca, cb) = (saa <= 0.0, sbb <= 0.0);
    if ca || cb {
        return (None, ca, cb);
    }
    (Some(sab / (saa.sqrt() * sbb.sqrt())), ca, cb)
}

/// Mean over pairs of the Pearson correlation between the HED fused edge-probability maps
/// ([`Hed::forward`]) of `inputs[i]` and `outputs[i]`: 1 when the translation keeps every edge (up
/// to an affine change of strength), about 0 when unrelated. Use HED with the real BSDS500 weights
/// (`weights/hed_bsds500.safetensors`) for reported numbers.
///
/// # Errors
/// [`QualityError::CountMismatch`], [`QualityError::EmptySet`], [`QualityError::MixedSizes`] when
/// the inputs differ in size or an output differs from its input, [`QualityError::ConstantEdgeMap`],
/// HED's input checks (3 channels, sides ≥ [`crate::hed::MIN_INPUT_SIDE`]).
///
/// ```
/// use burn::tensor::Device;
/// use nightvision::core::image::Rgb32FImage;
/// use nightvision::hed::HedConfig;
/// use nightvision::quality::edge_consistency;
/// let device = Device::default();
/// device.seed(1);
/// let hed = HedConfig::new().with_widths([4, 4, 4, 4, 4]).init(&device);
/// let img = Rgb32FImage::from_fn(20, 20, |x, y| image::Rgb([(x % 5) as f32 / 4.0, (y % 3) as f32 / 2.0, 0.5]));
/// let r = edge_consistency(&hed, &[img.clone()], &[img], &device)?;
/// assert!((r - 1.0).abs() < 1e-6);
/// # Ok::<(), nightvision::quality::QualityError>(())
/// ```
pub fn edge_consistency(
    hed: &Hed,
    inputs: &[Rgb32FImage],
    outputs: &[Rgb32FImage],
    device: &Device,
) -> Result<f64> {
    if inputs.len() != outputs.len() {
        return Err(QualityError::CountMismatch {
            inputs: inputs.len(),
            outputs: outputs.len(),
        });
    }
    let expected = check_same_size("edge consistency inputs", inputs)?;
    for (index, img) in outputs.iter().enumerate() {
        let got = size_of(img);
        if got != expected {
            return Err(QualityError::MixedSizes {
                set: "edge consistency outputs",
                index,
                expected,
                got,
            });
        }
    }
    mean_pearson(
        &hed_maps(hed, inputs, device)?,
        &hed_maps(hed, outputs, device)?,
    )
}

/// HED fused edge maps of equally sized images, one flat map per image.
fn hed_maps(hed: &Hed, images: &[Rgb32FImage], device: &Device) -> Result<Vec<Vec<f32>>> {
    let mut maps = Vec::with_capacity(images.len());
    for chunk in images.chunks(BATCH) {
        let x = to_tensor(chunk, device)?;
        Hed::check_input(&x).map_err(PipelineError::from)?;
        let [_, _, h, w] = x.dims();
        let e = read(hed.forward(x), "HED edge maps")?;
        maps.extend(e.chunks_exact(h * w).map(<[f32]>::to_vec));
    }
    Ok(maps)
}

/// Mean Pearson correlation of paired edge maps.
fn mean_pearson(inputs: &[Vec<f32>], outputs: &[Vec<f32>]) -> Result<f64> {
    let mut sum = 0.0;
    for (index, (a, b)) in inputs.iter().zip(outputs).enumerate() {
        match pearson(a, b) {
            (Some(r), _, _) => sum += r,
            (None, ca, _) => {
                return Err(QualityError::ConstantEdgeMap {
                    which: if ca { "input" } else { "output" },
                    index,
                });
            }
        }
    }
    Ok(sum / inputs.len() as f64)
}

/// The hand-made darkening baseline: `y = clamp(gain · x^gamma + n, 0, 1)` per channel with
/// `n ~ N(0, sigma²)` drawn independently per value from a seeded ChaCha8 stream.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HandDarkening {
    /// Exponent of the gamma curve (> 0; > 1 darkens mid-tones more than highlights).
    pub gamma: f64,
    /// Multiplicative gain (≥ 0).
    pub gain: f64,
    /// Standard deviation of the additive Gaussian noise (≥ 0).
    pub sigma: f64,
    /// Seed of the noise; image `i` of a set uses `rng::derived(seed, i)`.
    pub seed: u64,
}

impl HandDarkening {
    /// The gamma [`fit_hand_darkening`] is usually given: 2.2, the display gamma, which maps
    /// sRGB-encoded values back to roughly linear light (night scenes are dark in linear light
    /// first, with contrast concentrated in the highlights).
    pub const DEFAULT_GAMMA: f64 = 2.2;
    /// The noise level of the brief: σ = 0.02.
    pub const DEFAULT_SIGMA: f64 = 0.02;

    /// Checks the parameters.
    ///
    /// # Errors
    /// [`QualityError::InvalidParameter`].
    pub fn validate(&self) -> Result<()> {
        let bad = |name, value: f64, reason| {
            Err(QualityError::InvalidParameter {
                name,
                value,
                reason,
            })
        };
        if !(self.gamma.is_finite() && self.gamma > 0.0) {
            return bad("gamma", self.gamma, "must be finite and > 0");
        }
        if !(self.gain.is_finite() && self.gain >= 0.0) {
            return bad("gain", self.gain, "must be finite and ≥ 0");
        }
        if !(self.sigma.is_finite() && self.sigma >= 0.0) {
            return bad("sigma", self.sigma, "must be finite and ≥ 0");
        }
        Ok(())
    }

    /// Darkens image `index` of a set (noise stream `rng::derived(seed, index)`).
    ///
    /// # Errors
    /// [`QualityError::InvalidParameter`].
    pub fn apply(&self, image: &Rgb32FImage, index: u64) -> Result<Rgb32FImage> {
        self.validate()?;
        let (pow, noise) = prepare(image, self.gamma, self.sigma, self.seed, index);
        let mut out = image.clone();
        for ((o, p), n) in out.iter_mut().zip(&pow).zip(&noise) {
            *o = (self.gain as f32 * p + n).clamp(0.0, 1.0);
        }
        Ok(out)
    }

    /// Darkens every image of a set, image `i` with noise stream `i`.
    ///
    /// # Errors
    /// [`QualityError::InvalidParameter`].
    pub fn apply_set(&self, images: &[Rgb32FImage]) -> Result<Vec<Rgb32FImage>> {
        images
            .iter()
            .enumerate()
            .map(|(i, img)| self.apply(img, i as u64))
            .collect()
    }
}

/// `x^gamma` and the noise values of one image, in the image's raw (interleaved RGB) order.
fn prepare(
    image: &Rgb32FImage,
    gamma: f64,
    sigma: f64,
    seed: u64,
    index: u64,
) -> (Vec<f32>, Vec<f32>) {
    let mut rng = crate::core::rng::derived(seed, index);
    let pow = image
        .as_raw()
        .iter()
        .map(|&v| (v.clamp(0.0, 1.0) as f64).powf(gamma) as f32)
        .collect();
    let noise = (0..image.as_raw().len())
        .map(|_| (sigma * standard_normal(&mut rng)) as f32)
        .collect();
    (pow, noise)
}

/// One standard normal value (Box–Muller).
fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The hand-made darkening of one image, `clamp(gain · x^gamma + N(0, sigma²), 0, 1)` per channel,
/// the noise seeded by `seed` (the same as [`HandDarkening::apply`] with index 0).
///
/// # Errors
/// [`QualityError::InvalidParameter`].
///
/// ```
/// use nightvision::core::image::Rgb32FImage;
/// use nightvision::quality::hand_darkening;
/// let grey = Rgb32FImage::from_pixel(4, 4, image::Rgb([0.5, 0.5, 0.5]));
/// let dark = hand_darkening(&grey, 2.0, 0.5, 0.0, 1)?; // no noise: 0.5 · 0.5² = 0.125
/// assert!(dark.pixels().all(|p| (p.0[0] - 0.125).abs() < 1e-6));
/// # Ok::<(), nightvision::quality::QualityError>(())
/// ```
pub fn hand_darkening(
    image: &Rgb32FImage,
    gamma: f64,
    gain: f64,
    sigma: f64,
    seed: u64,
) -> Result<Rgb32FImage> {
    HandDarkening {
        gamma,
        gain,
        sigma,
        seed,
    }
    .apply(image, 0)
}

/// The largest gain [`fit_hand_darkening`] tries.
const MAX_GAIN: f64 = 1024.0;

/// Fits the hand-made darkening to a target mean luminance (the night set's
/// [`mean_luminance`]): `gamma` and `sigma` are fixed (usually [`HandDarkening::DEFAULT_GAMMA`]
/// 2.2 and [`HandDarkening::DEFAULT_SIGMA`] 0.02) and the gain is solved by bisection on the mean
/// luminance of the darkened set itself, noise and clipping included (the same seeds as
/// [`HandDarkening::apply_set`]), so the result matches the target to ~1e-9. With the noise fixed,
/// that luminance is non-decreasing in the gain, so the bisection converges.
///
/// Why gamma fixed and gain solved: one equation (the mean luminance) determines one unknown;
/// gamma 2.2 is the encoding gamma, so the curve darkens as a lower exposure of the linear scene
/// would, and the gain then sets the overall level.
///
/// # Errors
/// [`QualityError::EmptySet`], [`QualityError::InvalidParameter`],
/// [`QualityError::UnreachableLuminance`] when the target is below the noise-only luminance (gain
/// 0) or above that at gain 1024.
pub fn fit_hand_darkening(
    day: &[Rgb32FImage],
    target: f64,
    gamma: f64,
    sigma: f64,
    seed: u64,
) -> Result<HandDarkening> {
    let mut fit = HandDarkening {
        gamma,
        gain: 1.0,
        sigma,
        seed,
    };
    fit.validate()?;
    if !target.is_finite() {
        return Err(QualityError::InvalidParameter {
            name: "target mean luminance",
            value: target,
            reason: "must be finite",
        });
    }
    let prepared: Vec<_> = day
        .iter()
        .enumerate()
        .map(|(i, img)| prepare(img, gamma, sigma, seed, i as u64))
        .collect();
    let n: usize = prepared.iter().map(|(p, _)| p.len() / 3).sum();
    if n == 0 {
        return Err(QualityError::EmptySet {
            what: "hand darkening fit",
        });
    }
    let lum = |gain: f64| -> f64 {
        let g = gain as f32;
        let mut sum = 0.0f64;
        for (pow, noise) in &prepared {
            for (p, e) in pow.chunks_exact(3).zip(noise.chunks_exact(3)) {
                let px = [0, 1, 2].map(|c| (g * p[c] + e[c]).clamp(0.0, 1.0));
                sum += luma(px) as f64;
            }
        }
        sum / n as f64
    };
    let (min, max) = (lum(0.0), lum(MAX_GAIN));
    if !(min..=max).contains(&target) {
        return Err(QualityError::UnreachableLuminance { target, min, max });
    }
    let (mut lo, mut hi) = (0.0, 1.0);
    while lum(hi) < target {
        lo = hi;
        hi *= 2.0;
    }
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if lum(mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    fit.gain = if (lum(lo) - target).abs() <= (lum(hi) - target).abs() {
        lo
    } else {
        hi
    };
    Ok(fit)
}

/// One method's translation quality.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QualityRow {
    /// The method (e.g. `"day (as is)"`, `"hand darkening"`, `"CycleGAN"`).
    pub name: String,
    /// Fréchet distance of its MobileNetV2 features to the real night renders' ([`frechet`]).
    pub fid: f64,
    /// [`mean_luminance`] of its images.
    pub mean_luminance: f64,
    /// [`edge_consistency`] with its inputs, where measured.
    pub edge_consistency: Option<f64>,
    /// Number of images scored.
    pub n_images: usize,
}

/// A Markdown table of the rows, in their order (Fréchet distance with 2 decimals, luminance and
/// edge consistency with 3, `–` where not measured).
///
/// ```
/// use nightvision::quality::{QualityRow, quality_table};
/// let t = quality_table(&[QualityRow {
///     name: "hand darkening".into(),
///     fid: 12.345,
///     mean_luminance: 0.0812,
///     edge_consistency: None,
///     n_images: 200,
/// }]);
/// assert!(t.contains("| hand darkening | 12.35 | 0.081 | – | 200 |"));
/// ```
pub fn quality_table(rows: &[QualityRow]) -> String {
    let mut s = String::from(
        "| method | Fréchet distance (MobileNetV2) ↓ | mean luminance | edge consistency ↑ | images |\n\
         |---|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let edge = r
            .edge_consistency
            .map_or_else(|| "–".to_string(), |e| format!("{e:.3}"));
        s.push_str(&format!(
            "| {} | {:.2} | {:.3} | {} | {} |\n",
            r.name, r.fid, r.mean_luminance, edge, r.n_images
        ));
    }
    s
}

/// Where a world keeps the sets of [`TranslationBench`]: the held-out day queries, the real night
/// renders of the same places, and night renders of other (training) places for the floor.
pub mod world_sets {
    /// Held-out day queries of the VPR test set (the translators' inputs).
    pub const DAY: &str = "vpr/images/test/queries";
    /// Real night renders of the same held-out places (the reference set).
    pub const NIGHT: &str = "vpr/images/test/queries_night";
    /// Night renders of the training places (GAN domain B), the floor's sample.
    pub const OTHER_NIGHT: &str = "gan/trainB";
}

/// The translation-quality benchmark of one world (issue 11): MobileNetV2 and HED with their real
/// weights, the held-out day queries, the reference statistics of the real night renders of the
/// same places, and a same-count sample of night renders of *other* places for the floor.
///
/// [`TranslationBench::reference_rows`] gives the rows every table starts with (day as is, the
/// luminance-matched hand-made darkening, the floor); [`TranslationBench::score`] scores a
/// generator's outputs for [`TranslationBench::day`] (same order, same sizes).
pub struct TranslationBench {
    mobilenet: MobileNetV2,
    hed: Hed,
    device: Device,
    day_files: Vec<PathBuf>,
    day: Vec<Rgb32FImage>,
    night: Vec<Rgb32FImage>,
    other_night: Vec<Rgb32FImage>,
    reference: FeatureStats,
    night_luminance: f64,
    /// Indices of the day queries whose edge consistency is measured.
    edge_pairs: Vec<usize>,
    /// Their HED edge maps, computed once.
    day_edges: Vec<Vec<f32>>,
    /// For each day query, the night render of the same place (by the names' place field).
    night_of_day: Vec<Option<usize>>,
}

impl TranslationBench {
    /// At most this many day queries (evenly spaced) enter the edge-consistency mean: HED at
    /// 320×240 costs ~24 GFLOP an image, and the per-pair correlations spread by ~0.1, so the mean over 32 pairs
    /// is stable to ~0.02.
    pub const EDGE_PAIRS: usize = 32;

    /// The edge-consistency pairs of [`TranslationBench::quick`]: HED is most of the bench's
    /// time, and the pipelines' `--quick` mode checks the mechanism, not the value (the mean of
    /// 8 pairs moves by ~0.04).
    pub const QUICK_EDGE_PAIRS: usize = 8;

    /// The benchmark of the exported world in `world` ([`world_sets`]), with MobileNetV2
    /// ([`mobilenet_v2_imagenet`]) and HED (`weights/hed_bsds500.safetensors`) from the real-data
    /// cache.
    ///
    /// # Errors
    /// [`PipelineError::MissingWeights`], and those of [`TranslationBench::with_networks`].
    pub fn new(world: &Path, device: &Device) -> Result<Self> {
        Self::with_pairs(world, Self::EDGE_PAIRS, device)
    }

    /// [`TranslationBench::new`] with [`TranslationBench::QUICK_EDGE_PAIRS`] edge-consistency
    /// pairs instead of [`TranslationBench::EDGE_PAIRS`]: the pipelines' `--quick` mode.
    ///
    /// # Errors
    /// As [`TranslationBench::new`].
    pub fn quick(world: &Path, device: &Device) -> Result<Self> {
        Self::with_pairs(world, Self::QUICK_EDGE_PAIRS, device)
    }

    /// [`TranslationBench::new`] with at most `pairs` edge-consistency pairs.
    fn with_pairs(world: &Path, pairs: usize, device: &Device) -> Result<Self> {
        let mobilenet = mobilenet_v2_imagenet(device)?;
        let weights = crate::pipeline::real_weights(
            "translation quality (HED edges)",
            "weights/hed_bsds500.safetensors",
        )?;
        let mut hed = crate::hed::HedConfig::new().init(device);
        hed.load_weights(&weights).map_err(PipelineError::from)?;
        Self::build(world, mobilenet, hed, pairs, device)
    }

    /// The benchmark of `world` with the given networks (tests use small random ones). The floor
    /// uses the first `n` files (by name) of [`world_sets::OTHER_NIGHT`], `n` the number of
    /// night renders, or all of them when there are fewer.
    ///
    /// # Errors
    /// [`QualityError::EmptyFolder`] / [`QualityError::Io`] for a missing set,
    /// [`QualityError::TooFewImages`] for fewer than 2 night renders or 2 other-place renders,
    /// decoding errors naming the file.
    pub fn with_networks(
        world: &Path,
        mobilenet: MobileNetV2,
        hed: Hed,
        device: &Device,
    ) -> Result<Self> {
        Self::build(world, mobilenet, hed, Self::EDGE_PAIRS, device)
    }

    /// [`TranslationBench::with_networks`] with at most `pairs` edge-consistency pairs.
    fn build(
        world: &Path,
        mobilenet: MobileNetV2,
        hed: Hed,
        pairs: usize,
        device: &Device,
    ) -> Result<Self> {
        let day_files = image_files(world.join(world_sets::DAY))?;
        let day = load_files(&day_files)?;
        let night_files = image_files(world.join(world_sets::NIGHT))?;
        let night = load_files(&night_files)?;
        let mut other = image_files(world.join(world_sets::OTHER_NIGHT))?;
        other.truncate(night.len());
        if other.len() < 2 {
            return Err(QualityError::TooFewImages {
                what: "night renders of other places (floor)",
                got: other.len(),
            });
        }
        let other_night = load_files(&other)?;
        let reference = reference_stats(&mobilenet_features(&mobilenet, &night, device)?)?;
        let night_luminance = mean_luminance(&night)?;
        let step = day.len().div_ceil(pairs.max(1)).max(1);
        let edge_pairs: Vec<usize> = (0..day.len()).step_by(step).collect();
        let subset: Vec<Rgb32FImage> = edge_pairs.iter().map(|&i| day[i].clone()).collect();
        check_same_size("held-out day queries", &subset)?;
        let day_edges = hed_maps(&hed, &subset, device)?;
        let night_places: Vec<Option<String>> = night_files.iter().map(|p| place_of(p)).collect();
        let night_of_day = day_files
            .iter()
            .map(|d| {
                let p = place_of(d)?;
                night_places.iter().position(|n| n.as_ref() == Some(&p))
            })
            .collect();
        Ok(Self {
            mobilenet,
            hed,
            device: device.clone(),
            day_files,
            day,
            night,
            other_night,
            reference,
            night_luminance,
            edge_pairs,
            day_edges,
            night_of_day,
        })
    }

    /// Mean HED edge consistency of `outputs[i]` with day query `i` over the
    /// [`TranslationBench::EDGE_PAIRS`] subset (`outputs` pairs one to one with the day queries).
    fn edges_with_day(&self, outputs: &[Rgb32FImage]) -> Result<f64> {
        if outputs.len() != self.day.len() {
            return Err(QualityError::CountMismatch {
                inputs: self.day.len(),
                outputs: outputs.len(),
            });
        }
        let expected = size_of(&self.day[self.edge_pairs[0]]);
        let subset: Vec<Rgb32FImage> = self
            .edge_pairs
            .iter()
            .map(|&i| outputs[i].clone())
            .collect();
        for (k, img) in subset.iter().enumerate() {
            if size_of(img) != expected {
                return Err(QualityError::MixedSizes {
                    set: "generated images (edge consistency)",
                    index: self.edge_pairs[k],
                    expected,
                    got: size_of(img),
                });
            }
        }
        mean_pearson(
            &self.day_edges,
            &hed_maps(&self.hed, &subset, &self.device)?,
        )
    }

    /// The held-out day queries' files, sorted by name (the order of [`TranslationBench::day`]).
    pub fn day_files(&self) -> &[PathBuf] {
        &self.day_files
    }

    /// The held-out day queries, in `[0, 1]`.
    pub fn day(&self) -> &[Rgb32FImage] {
        &self.day
    }

    /// The real night renders of the held-out places, in `[0, 1]`, sorted by file name.
    pub fn night(&self) -> &[Rgb32FImage] {
        &self.night
    }

    /// Mean luminance of the real night renders ([`mean_luminance`]).
    pub fn night_luminance(&self) -> f64 {
        self.night_luminance
    }

    /// Scores a generated set against the night renders: Fréchet distance, mean luminance and,
    /// when `generated` pairs one to one with [`TranslationBench::day`], HED edge consistency
    /// with those inputs.
    ///
    /// # Errors
    /// [`QualityError::TooFewImages`], [`QualityError::CountMismatch`] /
    /// [`QualityError::MixedSizes`] when `with_edges` and the outputs do not pair with the inputs.
    pub fn score(
        &self,
        name: impl Into<String>,
        generated: &[Rgb32FImage],
        with_edges: bool,
    ) -> Result<QualityRow> {
        let fid = frechet(
            &mobilenet_features(&self.mobilenet, generated, &self.device)?,
            &self.reference,
        )?;
        let edge_consistency = if with_edges {
            Some(self.edges_with_day(generated)?)
        } else {
            None
        };
        Ok(QualityRow {
            name: name.into(),
            fid,
            mean_luminance: mean_luminance(generated)?,
            edge_consistency,
            n_images: generated.len(),
        })
    }

    /// The rows a table starts with: the day queries as they are, the hand-made darkening fitted
    /// to the night renders' mean luminance ([`fit_hand_darkening`], gamma 2.2, σ 0.02, noise
    /// seeded by `seed`, with its edge consistency), and the floor (night renders of other places:
    /// what two samples of the night domain score).
    ///
    /// # Errors
    /// Those of [`TranslationBench::score`] and [`fit_hand_darkening`].
    pub fn reference_rows(&self, seed: u64) -> Result<Vec<QualityRow>> {
        let fit = fit_hand_darkening(
            &self.day,
            self.night_luminance,
            HandDarkening::DEFAULT_GAMMA,
            HandDarkening::DEFAULT_SIGMA,
            seed,
        )?;
        Ok(vec![
            self.score("day (as is)", &self.day, false)?,
            self.score(
                format!("hand darkening (γ 2.2, gain {:.3}, σ 0.02)", fit.gain),
                &fit.apply_set(&self.day)?,
                true,
            )?,
            self.score(
                "floor: night renders of other places",
                &self.other_night,
                false,
            )?,
        ])
    }

    /// HED edge consistency between the day queries of the edge subset and the real night render
    /// of the same place (matched by the place field of the UTM-style names, `…@p00175q000@…` and
    /// `…@p00175qn000@…`): the scale of the edge-consistency column. `None` when some query has no
    /// night render of its place or the sizes differ.
    ///
    /// # Errors
    /// HED and readback errors.
    pub fn day_night_edge_consistency(&self) -> Result<Option<f64>> {
        let mut night = Vec::with_capacity(self.edge_pairs.len());
        for &i in &self.edge_pairs {
            let Some(j) = self.night_of_day[i] else {
                return Ok(None);
            };
            if size_of(&self.night[j]) != size_of(&self.day[i]) {
                return Ok(None);
            }
            night.push(self.night[j].clone());
        }
        Ok(Some(mean_pearson(
            &self.day_edges,
            &hed_maps(&self.hed, &night, &self.device)?,
        )?))
    }

    /// A [`QualityReport`] of `rows` (usually [`TranslationBench::reference_rows`] followed by
    /// the pipeline's generators).
    ///
    /// # Errors
    /// Those of [`TranslationBench::day_night_edge_consistency`].
    pub fn report(&self, rows: Vec<QualityRow>) -> Result<QualityReport> {
        Ok(QualityReport {
            night_luminance: self.night_luminance,
            n_night: self.night.len(),
            edge_pairs: self.edge_pairs.len(),
            day_night_edge_consistency: self.day_night_edge_consistency()?,
            rows,
        })
    }

    /// Runs a generator over the held-out day queries (`generate(i, x)`: image `i` as a
    /// `[1, 3, H, W]` tensor in `[0, 1]` on the bench's device → its output of the same shape),
    /// saves the outputs as PNGs in `out/translated/` under the inputs' names
    /// ([`save_pngs`]), writes `out/held-out.png` ([`TranslationBench::grid`] of 6 places) and
    /// scores them with edge consistency ([`TranslationBench::score`]).
    ///
    /// # Errors
    /// The generator's errors, those of [`TranslationBench::score`], I/O errors.
    pub fn run_generator(
        &self,
        name: impl Into<String>,
        out: &Path,
        mut generate: impl FnMut(usize, Tensor<4>) -> std::result::Result<Tensor<4>, PipelineError>,
    ) -> Result<QualityRow> {
        let mut outputs = Vec::with_capacity(self.day.len());
        for (i, img) in self.day.iter().enumerate() {
            let x = to_tensor(std::slice::from_ref(img), &self.device)?;
            let y = generate(i, x)?.clamp(0.0, 1.0);
            outputs.extend(crate::core::image::to_images(y)?);
        }
        save_pngs(&out.join("translated"), &self.day_files, &outputs)?;
        self.grid(&outputs, 6, &out.join("held-out.png"))?;
        self.score(name, &outputs, true)
    }

    /// Writes a grid of the first `n` held-out places as one PNG: day input | `generated` | the
    /// real night render of the same place, one row each.
    ///
    /// # Errors
    /// [`QualityError::MixedSizes`] when the three sets' images differ in size; I/O errors.
    pub fn grid(&self, generated: &[Rgb32FImage], n: usize, path: &Path) -> Result<()> {
        // the first n day queries with a night render of their place
        let picked: Vec<(usize, usize)> = self
            .night_of_day
            .iter()
            .enumerate()
            .filter_map(|(i, j)| Some((i, (*j)?)))
            .filter(|&(i, _)| i < generated.len())
            .take(n)
            .collect();
        let take = |set: &[Rgb32FImage], night: bool| -> Vec<Rgb32FImage> {
            picked
                .iter()
                .map(|&(i, j)| set[if night { j } else { i }].clone())
                .collect()
        };
        let rows = [
            &take(&self.day, false)[..],
            &take(generated, false)[..],
            &take(&self.night, true)[..],
        ];
        let expected = check_same_size("grid: day inputs", rows[0])?;
        for (set, row) in ["grid: generated", "grid: night renders"]
            .into_iter()
            .zip(&rows[1..])
        {
            let got = check_same_size(set, row)?;
            if got != expected {
                return Err(QualityError::MixedSizes {
                    set,
                    index: 0,
                    expected,
                    got,
                });
            }
        }
        let tensors = rows
            .iter()
            .map(|r| to_tensor(r, &self.device))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        crate::pipeline::image_grid(&tensors, path)?;
        Ok(())
    }
}

/// The place field of a UTM-style name (`…@p00175q000@…` and `…@p00175qn000@…` → `p00175`).
fn place_of(path: &Path) -> Option<String> {
    let field = path.file_name()?.to_str()?.split('@').nth(7)?;
    Some(field.chars().take_while(|c| *c != 'q').collect())
}

/// The images of `files`, decoded in `[0, 1]`.
fn load_files(files: &[PathBuf]) -> Result<Vec<Rgb32FImage>> {
    files.iter().map(|p| Ok(load_rgb(p)?)).collect()
}

/// Saves `images[i]` as PNG under `dir` with the file stem of `names[i]` (the inputs' names, so
/// their UTM fields stay readable), creating `dir`.
///
/// # Errors
/// [`QualityError::CountMismatch`] when the counts differ; I/O errors naming the file.
///
/// ```
/// use std::path::PathBuf;
/// use nightvision::core::image::Rgb32FImage;
/// use nightvision::quality::save_pngs;
/// let dir = std::env::temp_dir().join(format!("nv-save-pngs-{}", std::process::id()));
/// save_pngs(&dir, &[PathBuf::from("a/@0379645.78@3953664.53@x.jpg")], &[Rgb32FImage::new(3, 2)])?;
/// assert!(dir.join("@0379645.78@3953664.53@x.png").is_file());
/// std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), nightvision::quality::QualityError>(())
/// ```
pub fn save_pngs(dir: &Path, names: &[PathBuf], images: &[Rgb32FImage]) -> Result<()> {
    if names.len() != images.len() {
        return Err(QualityError::CountMismatch {
            inputs: names.len(),
            outputs: images.len(),
        });
    }
    std::fs::create_dir_all(dir).map_err(|source| QualityError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for (name, img) in names.iter().zip(images) {
        // names carry dots (UTM fields): append the extension, never replace "after the last dot"
        let mut file = name.file_stem().unwrap_or(name.as_os_str()).to_os_string();
        file.push(".png");
        let path = dir.join(file);
        crate::core::image::save_rgb8(&path, &f32_to_rgb8(img))?;
    }
    Ok(())
}

/// A translation-quality table with its context: the night set's size and luminance, and the
/// day-vs-night edge consistency of the same places for scale.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QualityReport {
    /// Mean luminance of the real night renders.
    pub night_luminance: f64,
    /// Number of real night renders (the reference set).
    pub n_night: usize,
    /// Number of (evenly spaced) input/output pairs in the edge-consistency means.
    pub edge_pairs: usize,
    /// HED edge consistency of day queries with the real night renders of the same places.
    pub day_night_edge_consistency: Option<f64>,
    /// One row per method.
    pub rows: Vec<QualityRow>,
}

impl QualityReport {
    /// The report as a Markdown section (heading, [`quality_table`], the context line).
    pub fn to_markdown(&self) -> String {
        let scale = self
            .day_night_edge_consistency
            .map_or_else(String::new, |e| {
                format!(
                    " Edge consistency of each day query with the real night render of the same place: {e:.3}."
                )
            });
        format!(
            "## Translation quality on the held-out test places\n\n\
             Against the {} real night renders of the held-out places (mean luminance {:.3}): \
             Fréchet distance of MobileNetV2 ImageNet features (1280-d, spatial mean), mean Rec. 709 \
             luma, HED edge consistency with the day input (mean over {} evenly spaced pairs).{scale}\n\n{}",
            self.n_night,
            self.night_luminance,
            self.edge_pairs,
            quality_table(&self.rows)
        )
    }

    /// Writes `translation-quality.json` and `translation-quality.md` into `out`.
    ///
    /// # Errors
    /// I/O errors naming the file.
    pub fn write(&self, out: &Path) -> std::result::Result<(), PipelineError> {
        let json = serde_json::to_string_pretty(self).map_err(|e| PipelineError::Readback {
            what: "translation-quality.json",
            message: e.to_string(),
        })?;
        for (name, body) in [
            ("translation-quality.json", json),
            ("translation-quality.md", self.to_markdown()),
        ] {
            let path = out.join(name);
            std::fs::write(&path, body).map_err(|e| crate::core::CoreError::io(path, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pearson_of_affine_maps_is_one() {
        let a = [0.0, 1.0, 3.0, 2.0];
        let b: Vec<f32> = a.iter().map(|v| 2.0 * v + 1.0).collect();
        assert!((pearson(&a, &b).0.unwrap() - 1.0).abs() < 1e-12);
        assert!(pearson(&a, &[1.0; 4]).0.is_none());
    }

    #[test]
    fn normal_draws_have_unit_variance() {
        let mut rng = crate::core::rng::seeded(0);
        let v: Vec<f64> = (0..20_000).map(|_| standard_normal(&mut rng)).collect();
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64;
        // 20,000 draws: standard error of the mean 0.007, of the variance 0.01
        assert!(m.abs() < 0.03 && (var - 1.0).abs() < 0.05, "{m} {var}");
    }
}
