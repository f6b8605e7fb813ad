//! Unpaired day / night batches for translator training (docs/PAPERS.md A.1).
//!
//! gandtr's `RandomDomainsPair` draws, for every pair, one day image and one night image
//! independently and with replacement; each goes through `RandomScaleCrop` (`scalecrop:256_256:0.8_1`):
//! `lowest = max(size / min_side, 0.8)`, `scale ~ U[lowest, 1]`, a square of side
//! `ceil(size / scale)` at a uniformly random offset, resized bilinearly (OpenCV `INTER_LINEAR`,
//! i.e. half-pixel centres without antialiasing) to `size × size`. [`UnpairedBatches`] does the
//! same on any two [`ImageSource`]s — folders of files (`gan/trainA`, `gan/trainB` of the embedded
//! world, NightCity-style `trainA/trainB`), or decoded images in memory — with a seeded generator,
//! so a run is reproducible and resumable.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor};
use nightvision_core::augment::ImageSource;
use nightvision_core::image::{Rgb32FImage, resize_bilinear, resize_shorter_side, to_tensor};
use rand::Rng;

use crate::error::{GanError, Result};

/// Image file extensions [`image_files`] lists.
pub const IMAGE_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "ppm"];

/// The image files of a folder (not recursive), sorted by name.
///
/// # Errors
/// [`GanError::Core`] (I/O, naming the folder) when it cannot be read; [`GanError::Config`] when it
/// holds no image.
pub fn image_files(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    let dir = dir.as_ref();
    let entries = std::fs::read_dir(dir).map_err(|e| nightvision_core::CoreError::io(dir, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| nightvision_core::CoreError::io(dir, e))?
            .path();
        let is_image = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
        if is_image && path.is_file() {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(GanError::Config {
            name: "image folder",
            reason: format!("{} holds no {IMAGE_EXTENSIONS:?} image", dir.display()),
        });
    }
    files.sort();
    Ok(files)
}

/// gandtr's `RandomScaleCrop` (docs/PAPERS.md A.1).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScaleCrop {
    /// Output side (256).
    pub size: usize,
    /// Smallest scale (0.8): the crop side is at most `size / min_scale`.
    pub min_scale: f64,
}

impl Default for ScaleCrop {
    fn default() -> Self {
        Self {
            size: 256,
            min_scale: 0.8,
        }
    }
}

impl ScaleCrop {
    /// Checks the fields.
    ///
    /// # Errors
    /// [`GanError::Config`] for a zero size or a scale outside `(0, 1]`.
    pub fn validate(&self) -> Result<()> {
        if self.size == 0 {
            return Err(GanError::Config {
                name: "scale crop size",
                reason: "must be at least 1".into(),
            });
        }
        if !(self.min_scale > 0.0 && self.min_scale <= 1.0) {
            return Err(GanError::Config {
                name: "scale crop min_scale",
                reason: format!("{} is not in (0, 1]", self.min_scale),
            });
        }
        Ok(())
    }

    /// Draws `(top, left, side)` of the square crop of a `height × width` image: `lowest =
    /// max(size / min(height, width), min_scale)`, `scale ~ U[lowest, 1]` (numpy's `uniform` with
    /// the bounds in that order, so images smaller than `size` are upscaled), side
    /// `ceil(size / scale)` (never more than the shorter side).
    pub fn draw<R: Rng + ?Sized>(
        &self,
        height: usize,
        width: usize,
        rng: &mut R,
    ) -> (usize, usize, usize) {
        let short = height.min(width).max(1);
        let lowest = (self.size as f64 / short as f64).max(self.min_scale);
        let u: f64 = rng.random();
        let scale = lowest + (1.0 - lowest) * u;
        let side = ((self.size as f64 / scale).ceil() as usize).clamp(1, short);
        let top = rng.random_range(0..=height.saturating_sub(side));
        let left = rng.random_range(0..=width.saturating_sub(side));
        (top, left, side)
    }

    /// Crops `img` at a random scale and offset and resizes it to `size × size`.
    ///
    /// # Shapes
    /// - output: `[1, 3, size, size]`, RGB in `[0, 1]`
    ///
    /// # Errors
    /// [`GanError::Core`] when the image is empty.
    pub fn apply<R: Rng + ?Sized>(
        &self,
        img: &Rgb32FImage,
        rng: &mut R,
        device: &Device,
    ) -> Result<Tensor<4>> {
        let (h, w) = (img.height() as usize, img.width() as usize);
        let (top, left, side) = self.draw(h, w, rng);
        let crop =
            image::imageops::crop_imm(img, left as u32, top as u32, side as u32, side as u32)
                .to_image();
        let x = to_tensor(std::slice::from_ref(&crop), device)?;
        Ok(resize_bilinear(x, [self.size, self.size]))
    }
}

/// Random unpaired (day, night) batches (gandtr `RandomDomainsPair` + `RandomScaleCrop`).
#[derive(Debug, Clone)]
pub struct UnpairedBatches {
    day: ImageSource,
    night: ImageSource,
    crop: ScaleCrop,
    batch_size: usize,
    shorter_side: Option<usize>,
}

impl UnpairedBatches {
    /// Batches of `batch_size` day and `batch_size` night crops.
    ///
    /// # Errors
    /// [`GanError::Config`] when a domain is empty, the batch size is 0 or the crop is invalid.
    pub fn new(
        day: ImageSource,
        night: ImageSource,
        crop: ScaleCrop,
        batch_size: usize,
    ) -> Result<Self> {
        crop.validate()?;
        for (name, source) in [("day images", &day), ("night images", &night)] {
            if source.is_empty() {
                return Err(GanError::Config {
                    name,
                    reason: "no image to train on".into(),
                });
            }
        }
        if batch_size == 0 {
            return Err(GanError::Config {
                name: "batch_size",
                reason: "must be at least 1".into(),
            });
        }
        Ok(Self {
            day,
            night,
            crop,
            batch_size,
            shorter_side: None,
        })
    }

    /// Resizes every image so its shorter side is `side` before cropping (CycleGAN's `load_size`;
    /// gandtr crops the original images: `None`).
    pub fn with_shorter_side(mut self, side: Option<usize>) -> Self {
        self.shorter_side = side;
        self
    }

    /// The crop.
    pub fn crop(&self) -> ScaleCrop {
        self.crop
    }

    /// Images per domain and batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// One batch: day and night crops drawn independently, with replacement.
    ///
    /// # Shapes
    /// - output: two `[batch_size, 3, size, size]` tensors, RGB in `[0, 1]`
    ///
    /// # Errors
    /// Image decoding errors, naming the file.
    pub fn sample<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        device: &Device,
    ) -> Result<(Tensor<4>, Tensor<4>)> {
        let mut day = Vec::with_capacity(self.batch_size);
        let mut night = Vec::with_capacity(self.batch_size);
        for _ in 0..self.batch_size {
            let i = rng.random_range(0..self.day.len());
            let j = rng.random_range(0..self.night.len());
            day.push(self.load_crop(&self.day, i, rng, device)?);
            night.push(self.load_crop(&self.night, j, rng, device)?);
        }
        Ok((Tensor::cat(day, 0), Tensor::cat(night, 0)))
    }

    fn load_crop<R: Rng + ?Sized>(
        &self,
        source: &ImageSource,
        i: usize,
        rng: &mut R,
        device: &Device,
    ) -> Result<Tensor<4>> {
        let img = source.load(i)?;
        let img = match self.shorter_side {
            Some(s) => resize_shorter_side(&img, s),
            None => img,
        };
        self.crop.apply(&img, rng, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nightvision_core::rng::seeded;

    #[test]
    fn crop_sides_follow_the_scale_range() {
        let crop = ScaleCrop::default();
        let mut rng = seeded(1);
        for (h, w) in [(480, 640), (300, 1000), (256, 256), (200, 900), (1024, 768)] {
            let short = h.min(w);
            let lowest = (256.0 / short as f64).max(0.8);
            // side = ceil(256 / scale) with scale between lowest and 1
            let (lo, hi) = if lowest <= 1.0 {
                (256, ((256.0 / lowest).ceil() as usize).min(short))
            } else {
                (short, short)
            };
            for _ in 0..200 {
                let (top, left, side) = crop.draw(h, w, &mut rng);
                assert!(side >= lo.min(short) && side <= hi, "{h}x{w}: side {side}");
                assert!(top + side <= h && left + side <= w);
            }
        }
    }

    #[test]
    fn a_full_image_crop_is_a_plain_resize() {
        let device = Device::default();
        // 64×64 image, crop size 32 with min_scale 0.5: lowest = max(0.5, 0.5) = 0.5; with scale
        // exactly 0.5 the crop is the whole image.
        let img = Rgb32FImage::from_fn(64, 64, |x, y| {
            image::Rgb([x as f32 / 63.0, y as f32 / 63.0, 0.5])
        });
        let crop = ScaleCrop {
            size: 32,
            min_scale: 0.5,
        };
        struct Zero;
        impl rand::RngCore for Zero {
            fn next_u32(&mut self) -> u32 {
                0
            }
            fn next_u64(&mut self) -> u64 {
                0
            }
            fn fill_bytes(&mut self, dst: &mut [u8]) {
                dst.fill(0)
            }
        }
        let got = crop.apply(&img, &mut Zero, &device).unwrap();
        let want = resize_bilinear(to_tensor(&[img], &device).unwrap(), [32, 32]);
        let diff: f32 = (got - want).abs().max().into_scalar();
        assert_eq!(diff, 0.0);
    }

    #[test]
    fn batches_are_seeded_and_shaped() {
        let device = Device::default();
        let mk = |v: f32| {
            ImageSource::memory(
                (0..3)
                    .map(|i| Rgb32FImage::from_pixel(50 + 10 * i, 40, image::Rgb([v, v, v])))
                    .collect(),
            )
        };
        let b = UnpairedBatches::new(
            mk(0.9),
            mk(0.1),
            ScaleCrop {
                size: 24,
                min_scale: 0.8,
            },
            2,
        )
        .unwrap();
        let (d, n) = b.sample(&mut seeded(3), &device).unwrap();
        assert_eq!(d.dims(), [2, 3, 24, 24]);
        assert_eq!(n.dims(), [2, 3, 24, 24]);
        let (d2, _) = b.sample(&mut seeded(3), &device).unwrap();
        assert_eq!(d.to_data(), d2.to_data());
        assert!((d.mean().into_scalar::<f32>() - 0.9).abs() < 1e-5);
        assert!(matches!(
            UnpairedBatches::new(
                mk(0.5),
                ImageSource::memory(vec![]),
                ScaleCrop::default(),
                1
            ),
            Err(GanError::Config { .. })
        ));
    }
}
