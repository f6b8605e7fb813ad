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
/// # Shapes
/// - `x`: `[batch, channels, height, width]`
/// - output: `[batch, channels, size[0], size[1]]`
pub fn resize_bilinear(x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    if [h, w] == size {
        return x;
    }
    interpolate(
        x,
        // burn's default is align_corners = true; PyTorch's (and cirtorch's, HED's) is false.
        InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(false)
            .with_output_size(size),
    )
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
