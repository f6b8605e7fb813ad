//! Image files ↔ tensors, and resizing.
//!
//! Images enter the library as [`Rgb32FImage`] (RGB, `f32` in `[0, 1]`): grayscale is replicated to
//! three channels, alpha is dropped, 16-bit samples are scaled by `1/65535`, 8-bit by `1/255`.
//! Batches are `Tensor<4>` `[batch, 3, height, width]` on any device.

use std::path::{Path, PathBuf};

use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor, TensorData};
pub use image::{DynamicImage, Rgb32FImage, RgbImage};

use crate::{CoreError, Result};

/// Decodes an image file (PNG, JPEG) of any colour type into RGB `f32` in `[0, 1]`.
///
/// # Errors
/// [`CoreError::Io`] when the file cannot be read, [`CoreError::Image`] when it cannot be decoded
/// (e.g. truncated), [`CoreError::EmptyImage`] when it has no pixels.
pub fn load_rgb(path: impl AsRef<Path>) -> Result<Rgb32FImage> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| CoreError::io(path, e))?;
    let img = image::load_from_memory(&bytes).map_err(|source| CoreError::Image {
        path: path.to_path_buf(),
        source,
    })?;
    let rgb = img.to_rgb32f();
    check_not_empty(&rgb, path)?;
    Ok(rgb)
}

/// Converts 8-bit RGB to `f32` RGB in `[0, 1]`.
pub fn rgb8_to_f32(img: &RgbImage) -> Rgb32FImage {
    DynamicImage::ImageRgb8(img.clone()).to_rgb32f()
}

/// Converts `f32` RGB to 8-bit RGB, clamping to `[0, 1]` and rounding to the nearest level.
pub fn f32_to_rgb8(img: &Rgb32FImage) -> RgbImage {
    RgbImage::from_fn(img.width(), img.height(), |x, y| {
        image::Rgb(
            img.get_pixel(x, y)
                .0
                .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8),
        )
    })
}

fn check_not_empty(img: &Rgb32FImage, path: &Path) -> Result<()> {
    if img.width() == 0 || img.height() == 0 {
        return Err(CoreError::EmptyImage {
            path: path.to_path_buf(),
            width: img.width(),
            height: img.height(),
        });
    }
    Ok(())
}

/// Stacks images of one size into a batch.
///
/// # Shapes
/// - output: `[images.len(), 3, height, width]`
///
/// # Errors
/// [`CoreError::InvalidArgument`] for an empty list, [`CoreError::EmptyImage`] for an image without
/// pixels, [`CoreError::BatchSize`] when sizes differ.
///
/// ```
/// use burn::tensor::Device;
/// use nightvision_core::image::{to_tensor, Rgb32FImage};
/// let img = Rgb32FImage::from_pixel(4, 2, image::Rgb([0.25, 0.5, 1.0]));
/// let x = to_tensor(&[img.clone(), img], &Device::default()).unwrap();
/// assert_eq!(x.dims(), [2, 3, 2, 4]);
/// ```
pub fn to_tensor(images: &[Rgb32FImage], device: &Device) -> Result<Tensor<4>> {
    let first = images.first().ok_or(CoreError::InvalidArgument {
        name: "images",
        reason: "an empty list cannot form a batch".into(),
    })?;
    let (w, h) = (first.width() as usize, first.height() as usize);
    let mut data: Vec<f32> = Vec::with_capacity(images.len() * 3 * h * w);
    for (index, img) in images.iter().enumerate() {
        check_not_empty(img, Path::new("<memory>"))?;
        let got = [img.height() as usize, img.width() as usize];
        if got != [h, w] {
            return Err(CoreError::BatchSize {
                index,
                expected: [h, w],
                got,
            });
        }
        let raw = img.as_raw();
        for c in 0..3 {
            data.extend(raw.iter().skip(c).step_by(3));
        }
    }
    Ok(Tensor::from_data(
        TensorData::new(data, [images.len(), 3, h, w]),
        device,
    ))
}

/// Loads image files of one size into a batch (see [`load_rgb`], [`to_tensor`]).
pub fn load_batch<P: AsRef<Path>>(paths: &[P], device: &Device) -> Result<Tensor<4>> {
    let images = paths.iter().map(load_rgb).collect::<Result<Vec<_>>>()?;
    to_tensor(&images, device)
}

/// Splits a batch back into images, clamping to `[0, 1]`.
///
/// # Shapes
/// - `x`: `[batch, 3, height, width]`, RGB in `[0, 1]`
///
/// # Errors
/// [`CoreError::InvalidArgument`] when `x` does not have 3 channels or is too large for an image.
pub fn to_images(x: Tensor<4>) -> Result<Vec<Rgb32FImage>> {
    let [b, c, h, w] = x.dims();
    let invalid = |reason: String| CoreError::InvalidArgument {
        name: "to_images input",
        reason,
    };
    if c != 3 {
        return Err(invalid(format!(
            "expected an RGB batch [B, 3, H, W], got {:?}",
            [b, c, h, w]
        )));
    }
    let (Ok(wu), Ok(hu)) = (u32::try_from(w), u32::try_from(h)) else {
        return Err(invalid(format!("{h}×{w} is too large for an image")));
    };
    let v: Vec<f32> = x
        .clamp(0.0, 1.0)
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| invalid(format!("{e:?}")))?;
    let plane = h * w;
    Ok((0..b)
        .map(|i| {
            let base = i * 3 * plane;
            Rgb32FImage::from_fn(wu, hu, |x, y| {
                let p = base + y as usize * w + x as usize;
                image::Rgb([v[p], v[p + plane], v[p + 2 * plane]])
            })
        })
        .collect())
}

/// Writes an image as 8-bit PNG or JPEG (by extension), atomically (temp file + rename).
pub fn save_rgb(path: impl AsRef<Path>, img: &Rgb32FImage) -> Result<()> {
    save_rgb8(path, &f32_to_rgb8(img))
}

/// Writes an 8-bit RGB image as PNG or JPEG (by extension), atomically (temp file + rename).
pub fn save_rgb8(path: impl AsRef<Path>, img: &RgbImage) -> Result<()> {
    let path = path.as_ref();
    let format = image::ImageFormat::from_path(path).map_err(|source| CoreError::Image {
        path: path.to_path_buf(),
        source,
    })?;
    crate::checkpoint::write_atomic(path, |file| {
        let mut w = std::io::BufWriter::new(file);
        img.write_to(&mut w, format)
            .map_err(|source| CoreError::Image {
                path: PathBuf::from(path),
                source,
            })
    })
}

/// Bilinear resize with PyTorch's `F.interpolate(mode="bilinear", align_corners=False)`
/// semantics (no antialiasing), on the tensor's device.
///
/// A tensor that takes part in an autodiff graph ([`Tensor::is_tracked`], e.g. HED's side outputs
/// while HEDN-GAN trains) is resized by [`resize_bilinear_separable`], whose backward every
/// backend has: burn 0.22's GPU backends (burn-cubecl) have no bilinear `interpolate_backward`
/// and fail at run time. Other tensors go through burn's interpolation kernel, which is cheaper
/// for the large downsamplings of image loading.
///
/// # Shapes
/// - `x`: `[batch, channels, height, width]`
/// - output: `[batch, channels, size[0], size[1]]`
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use nightvision_core::image::resize_bilinear;
///
/// let x = Tensor::<1>::from_floats([0.0, 1.0], &Device::default()).reshape([1, 1, 1, 2]);
/// let y: Vec<f32> = resize_bilinear(x, [1, 4]).into_data().to_vec().unwrap();
/// assert_eq!(y, [0.0, 0.25, 0.75, 1.0]);
/// ```
pub fn resize_bilinear(x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    if [h, w] == size {
        return x;
    }
    if x.is_tracked() {
        return resize_bilinear_separable(x, size);
    }
    interpolate(
        x,
        // burn's default is align_corners = true; PyTorch's (and cirtorch's, HED's) is false.
        InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(false)
            .with_output_size(size),
    )
}

/// PyTorch's bilinear weights (`align_corners=False`, no antialiasing) from `input` samples to
/// `output` samples as a dense `[output, input]` matrix, row-major: output `o` reads source
/// coordinate `(o + 0.5) · input / output − 0.5`, clamped at 0, from its two neighbours
/// (`upsample_bilinear2d`'s `area_pixel_compute_source_index`, computed in `f32` as PyTorch does
/// for `f32` tensors).
///
/// ```
/// use nightvision_core::image::bilinear_weights;
/// // 2 → 4: sources −0.25 (clamped to 0), 0.25, 0.75, 1.25 (its right neighbour clamped).
/// assert_eq!(
///     bilinear_weights(2, 4),
///     [1.0, 0.0, 0.75, 0.25, 0.25, 0.75, 0.0, 1.0]
/// );
/// ```
pub fn bilinear_weights(input: usize, output: usize) -> Vec<f32> {
    let mut a = vec![0.0f32; output * input];
    if input == 0 {
        return a;
    }
    let scale = input as f32 / output as f32;
    for o in 0..output {
        let src = (scale * (o as f32 + 0.5) - 0.5).max(0.0);
        let i0 = (src as usize).min(input - 1);
        let i1 = if i0 + 1 < input { i0 + 1 } else { i0 };
        let l1 = src - i0 as f32;
        a[o * input + i0] += 1.0 - l1;
        a[o * input + i1] += l1;
    }
    a
}

/// [`resize_bilinear`] as two matrix products with [`bilinear_weights`], along the width and then
/// along the height: the same values (to `f32` rounding) through operations whose backward every
/// burn backend implements. The cost is that of a dense product, `size · (h · w)`-ish per plane,
/// which is small for HED's side outputs but not for a large downsampling. A tensor already of
/// `size` is returned as it is.
///
/// # Shapes
/// - `x`: `[batch, channels, height, width]`
/// - output: `[batch, channels, size[0], size[1]]`
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use nightvision_core::image::resize_bilinear_separable;
///
/// let x = Tensor::<1>::from_floats([0.0, 1.0], &Device::default()).reshape([1, 1, 2, 1]);
/// let y: Vec<f32> = resize_bilinear_separable(x, [4, 2]).into_data().to_vec().unwrap();
/// assert_eq!(y, [0.0, 0.0, 0.25, 0.25, 0.75, 0.75, 1.0, 1.0]);
/// ```
pub fn resize_bilinear_separable(x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let [oh, ow] = size;
    if [h, w] == size {
        return x;
    }
    let device = x.device();
    let weights = |input: usize, output: usize| {
        Tensor::<2>::from_data(
            TensorData::new(bilinear_weights(input, output), [output, input]),
            &device,
        )
    };
    // along the width: [b·c·h, w] · [w, ow]
    let x = if w == ow {
        x.reshape([b * c * h, w])
    } else {
        x.reshape([b * c * h, w]).matmul(weights(w, ow).transpose())
    };
    // along the height: [b·c, h, ow] → [b·c·ow, h] · [h, oh] → [b, c, oh, ow]
    let x = x
        .reshape([b * c, h, ow])
        .swap_dims(1, 2)
        .reshape([b * c * ow, h]);
    let x = if h == oh {
        x
    } else {
        x.matmul(weights(h, oh).transpose())
    };
    x.reshape([b * c, ow, oh])
        .swap_dims(1, 2)
        .reshape([b, c, oh, ow])
}

/// The size PIL's `img.thumbnail((max_side, max_side))` gives, as cirtorch resizes every image:
/// the longer side becomes `max_side`, the aspect ratio is kept (the shorter side is rounded the way
/// PIL ≥ 7 rounds it), and an image already within `max_side` is left as it is (never upscaled).
///
/// Returns `[height, width]`.
///
/// ```
/// use nightvision_core::image::max_side_size;
/// assert_eq!(max_side_size(480, 640, 362), [272, 362]);
/// assert_eq!(max_side_size(300, 200, 362), [300, 200]);
/// ```
pub fn max_side_size(height: usize, width: usize, max_side: usize) -> [usize; 2] {
    if (height <= max_side && width <= max_side) || height == 0 || width == 0 {
        return [height, width];
    }
    let aspect = width as f64 / height as f64;
    let n = max_side as f64;
    // PIL: round_aspect(number, key) = max(min(floor, ceil, key=key), 1)
    let round = |number: f64, key: &dyn Fn(f64) -> f64| {
        let (f, c) = (number.floor(), number.ceil());
        let best = if key(c) < key(f) { c } else { f };
        best.max(1.0) as usize
    };
    if 1.0 >= aspect {
        // Portrait or square: height = max_side.
        let w = round(n * aspect, &|x| (aspect - x / n).abs());
        [max_side, w]
    } else {
        let h = round(n / aspect, &|y| {
            if y == 0.0 {
                0.0
            } else {
                (aspect - n / y).abs()
            }
        });
        [h, max_side]
    }
}

/// Resizes an image so its longer side is at most `max_side` (see [`max_side_size`]) with a
/// Lanczos-3 filter whose support widens with the downscaling factor, like PIL's `ANTIALIAS` used by
/// cirtorch (close to, not bit-identical with, PIL).
pub fn resize_max_side(img: &Rgb32FImage, max_side: usize) -> Rgb32FImage {
    let [h, w] = max_side_size(img.height() as usize, img.width() as usize, max_side);
    if [h, w] == [img.height() as usize, img.width() as usize] {
        return img.clone();
    }
    image::imageops::resize(
        img,
        w as u32,
        h as u32,
        image::imageops::FilterType::Lanczos3,
    )
}

/// Resizes so the shorter side is `size` (aspect kept), with a bilinear (triangle) filter that
/// widens when downscaling — torchvision's `Resize(size)` on a PIL image.
pub fn resize_shorter_side(img: &Rgb32FImage, size: usize) -> Rgb32FImage {
    let (w, h) = (img.width() as f64, img.height() as f64);
    let (nw, nh) = if w <= h {
        (size, (size as f64 * h / w) as usize)
    } else {
        ((size as f64 * w / h) as usize, size)
    };
    if (nw as u32, nh as u32) == img.dimensions() {
        return img.clone();
    }
    image::imageops::resize(
        img,
        nw as u32,
        nh as u32,
        image::imageops::FilterType::Triangle,
    )
}

/// The central `height × width` crop (torchvision `CenterCrop`: offsets rounded to nearest).
///
/// # Errors
/// [`CoreError::InvalidArgument`] when the crop is larger than the image.
pub fn center_crop(img: &Rgb32FImage, height: usize, width: usize) -> Result<Rgb32FImage> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if height > h || width > w || height == 0 || width == 0 {
        return Err(CoreError::InvalidArgument {
            name: "center_crop",
            reason: format!("cannot crop {height}x{width} out of a {h}x{w} image"),
        });
    }
    let top = ((h - height) as f64 / 2.0).round() as u32;
    let left = ((w - width) as f64 / 2.0).round() as u32;
    Ok(image::imageops::crop_imm(img, left, top, width as u32, height as u32).to_image())
}

/// torchvision's ImageNet evaluation transform before normalisation: `Resize(256)`,
/// `CenterCrop(224)`.
pub fn imagenet_eval_crop(img: &Rgb32FImage) -> Result<Rgb32FImage> {
    center_crop(&resize_shorter_side(img, 256), 224, 224)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_roundtrip_keeps_pixels_and_layout() {
        let device = Device::default();
        let mut img = Rgb32FImage::new(3, 2);
        for (x, y, p) in img.enumerate_pixels_mut() {
            *p = image::Rgb([x as f32 / 4.0, y as f32 / 2.0, 0.125]);
        }
        let t = to_tensor(std::slice::from_ref(&img), &device).unwrap();
        assert_eq!(t.dims(), [1, 3, 2, 3]);
        // Channel 0, row 1, column 2 is x/4 = 0.5.
        let v = t.clone().to_data().try_to_vec::<f32>().unwrap();
        assert_eq!(v[3 + 2], 0.5);
        assert_eq!(v[6 + 3], 0.5); // channel 1, row 1
        assert_eq!(to_images(t).unwrap()[0], img);
    }

    #[test]
    fn to_images_refuses_a_batch_that_is_not_rgb() {
        let device = Device::default();
        for c in [1, 4] {
            let x = Tensor::<4>::zeros([2, c, 4, 5], &device);
            assert!(matches!(
                to_images(x),
                Err(CoreError::InvalidArgument {
                    name: "to_images input",
                    ..
                })
            ));
        }
        let x = Tensor::<4>::ones([2, 3, 4, 5], &device).mul_scalar(2.0);
        let imgs = to_images(x).unwrap();
        assert_eq!((imgs.len(), imgs[1].dimensions()), (2, (5, 4)));
        assert!(
            imgs[1].as_raw().iter().all(|&v| v == 1.0),
            "clamped to [0, 1]"
        );
    }

    #[test]
    fn batch_errors_name_the_problem() {
        let device = Device::default();
        let a = Rgb32FImage::new(4, 4);
        let b = Rgb32FImage::new(5, 4);
        assert!(matches!(
            to_tensor(&[a.clone(), b], &device),
            Err(CoreError::BatchSize {
                index: 1,
                expected: [4, 4],
                got: [4, 5]
            })
        ));
        assert!(matches!(
            to_tensor(&[], &device),
            Err(CoreError::InvalidArgument { .. })
        ));
        assert!(matches!(
            to_tensor(&[Rgb32FImage::new(0, 3)], &device),
            Err(CoreError::EmptyImage {
                width: 0,
                height: 3,
                ..
            })
        ));
    }

    /// Sizes up and down, integer and fractional ratios, one side unchanged, 1-pixel sides.
    const RESIZES: [([usize; 2], [usize; 2]); 7] = [
        ([4, 5], [8, 10]),
        ([16, 16], [256, 256]),
        ([7, 9], [5, 13]),
        ([30, 20], [11, 20]),
        ([3, 3], [3, 7]),
        ([1, 6], [4, 2]),
        ([9, 1], [2, 5]),
    ];

    fn ramp(dims: [usize; 4], device: &Device) -> Tensor<4> {
        let n: usize = dims.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
            .collect();
        Tensor::from_data(TensorData::new(v, dims), device)
    }

    fn values(x: Tensor<4>) -> Vec<f32> {
        x.into_data().try_into_vec_as::<f32>().unwrap()
    }

    #[test]
    fn separable_resize_equals_burns_interpolation() {
        let device = Device::default();
        for ([h, w], size) in RESIZES {
            let x = ramp([2, 3, h, w], &device);
            let want = values(interpolate(
                x.clone(),
                InterpolateOptions::new(InterpolateMode::Bilinear)
                    .with_align_corners(false)
                    .with_output_size(size),
            ));
            let got = values(resize_bilinear_separable(x, size));
            assert_eq!(got.len(), want.len());
            // burn's kernel rounds the source coordinates differently from PyTorch's f32
            // arithmetic used here: they differ by ~1e-6 on values in [-1, 1].
            for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (a - b).abs() < 5e-6,
                    "{h}x{w} -> {size:?} at {k}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn separable_resize_to_the_same_size_is_the_identity() {
        let x = ramp([2, 3, 5, 7], &Device::default());
        assert_eq!(
            values(resize_bilinear_separable(x.clone(), [5, 7])),
            values(x)
        );
    }

    #[test]
    fn bilinear_weights_rows_sum_to_one() {
        for (input, output) in [(2, 4), (7, 3), (1, 5), (16, 256), (13, 13)] {
            let a = bilinear_weights(input, output);
            for row in a.chunks(input) {
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
                assert!(row.iter().all(|&v| v >= 0.0));
            }
        }
    }

    /// The gradient through a tracked resize (the separable path) equals burn's own
    /// `interpolate_backward` on the CPU backend, an independent implementation (the HED tests
    /// check it against PyTorch): for `L = Σ g ⊙ resize(x)`, `∂L/∂x`.
    #[test]
    fn tracked_resize_has_interpolations_gradient() {
        let device = Device::default().autodiff();
        for ([h, w], size) in RESIZES {
            let x = ramp([1, 2, h, w], &device);
            let g = ramp([1, 2, size[0], size[1]], &device)
                .mul_scalar(0.5)
                .add_scalar(0.2);
            let grad_of = |separable: bool| {
                let leaf = x.clone().detach().require_grad();
                let y = if separable {
                    resize_bilinear(leaf.clone(), size)
                } else {
                    interpolate(
                        leaf.clone(),
                        InterpolateOptions::new(InterpolateMode::Bilinear)
                            .with_align_corners(false)
                            .with_output_size(size),
                    )
                };
                let grads = (y * g.clone()).sum().backward();
                values(leaf.grad(&grads).unwrap())
            };
            let (got, want) = (grad_of(true), grad_of(false));
            assert_eq!(got.len(), h * w * 2);
            for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                let tol = 1e-5 * b.abs().max(1.0);
                assert!(
                    (a - b).abs() < tol,
                    "{h}x{w} -> {size:?} at {k}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn bilinear_uses_half_pixel_centres() {
        // F.interpolate(torch.tensor([[[[0., 1.]]]]), size=(1, 4), mode="bilinear",
        //               align_corners=False) -> [0, 0.25, 0.75, 1]
        let device = Device::default();
        let x = Tensor::<1>::from_floats([0.0, 1.0], &device).reshape([1, 1, 1, 2]);
        let y = resize_bilinear(x, [1, 4])
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap();
        let want = [0.0, 0.25, 0.75, 1.0];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{y:?}");
        }
    }

    #[test]
    fn max_side_matches_pil_thumbnail() {
        // Values from PIL 9.4: Image.new("RGB", (w, h)).thumbnail((n, n)); print(img.size)
        assert_eq!(max_side_size(768, 1024, 362), [272, 362]);
        assert_eq!(max_side_size(1024, 768, 362), [362, 271]);
        assert_eq!(max_side_size(480, 640, 362), [272, 362]);
        assert_eq!(max_side_size(2448, 3264, 1024), [768, 1024]);
        assert_eq!(max_side_size(333, 500, 362), [241, 362]);
        assert_eq!(max_side_size(500, 500, 362), [362, 362]);
        assert_eq!(max_side_size(100, 5000, 362), [7, 362]);
        assert_eq!(max_side_size(200, 300, 362), [200, 300]);
    }
}
