//! Training images and augmentations shared by every trainer: [`ImageSource`] (files decoded on
//! demand, or decoded images with names) and the [`Augmentation`] trait through which a
//! day→night translator, the darkening network or CLAHE plugs into the GAN and metric-learning
//! trainers without those crates depending on each other. [`Clahe`] is DSA's CLAHE as an
//! augmentation.
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use nightvision_core::augment::{Augmentation, Clahe};
//!
//! let device = Device::default();
//! // Dark Side Augmentation's CLAHE (clip 1.0, 8×8 tiles) on a dark gradient.
//! let x = Tensor::<4>::ones([1, 3, 32, 32], &device).mul_scalar(0.1);
//! let y = Clahe::dsa().augment(x, &mut nightvision_core::rng::seeded(0)).unwrap();
//! assert_eq!(y.dims(), [1, 3, 32, 32]);
//! // any closure on batches is an augmentation too
//! let half = |x: Tensor<4>| x.mul_scalar(0.5);
//! let z = half.augment(y, &mut nightvision_core::rng::seeded(0)).unwrap();
//! assert_eq!(z.dims(), [1, 3, 32, 32]);
//! ```

use std::path::PathBuf;

use burn::tensor::{Device, Tensor};
use rand::RngCore;

use crate::clahe::{ClaheConfig, clahe_lab_f32};
use crate::image::{Rgb32FImage, load_rgb, to_images, to_tensor};
use crate::{CoreError, Result};

/// Where training images come from.
#[derive(Debug, Clone)]
pub enum ImageSource {
    /// Image files, decoded on demand.
    Files(Vec<PathBuf>),
    /// Decoded images with a name each (the name feeds DSA's hashed translation subset).
    Memory {
        /// RGB images in `[0, 1]`.
        images: Vec<Rgb32FImage>,
        /// One name per image.
        names: Vec<String>,
    },
}

impl ImageSource {
    /// In-memory images named `image-0`, `image-1`, ….
    pub fn memory(images: Vec<Rgb32FImage>) -> Self {
        let names = (0..images.len()).map(|i| format!("image-{i}")).collect();
        Self::Memory { images, names }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        match self {
            Self::Files(p) => p.len(),
            Self::Memory { images, .. } => images.len(),
        }
    }

    /// Whether there is no image.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Image `i` (decoded).
    ///
    /// # Errors
    /// [`CoreError::Index`] past the end; image I/O errors naming the file.
    pub fn load(&self, i: usize) -> Result<Rgb32FImage> {
        let len = self.len();
        let past_end = || CoreError::Index {
            what: "image",
            index: i,
            len,
        };
        match self {
            Self::Files(p) => load_rgb(p.get(i).ok_or_else(past_end)?),
            Self::Memory { images, .. } => images.get(i).cloned().ok_or_else(past_end),
        }
    }

    /// The name of image `i` (its path for files).
    ///
    /// # Errors
    /// [`CoreError::Index`] past the end.
    pub fn name(&self, i: usize) -> Result<String> {
        let past_end = || CoreError::Index {
            what: "image name",
            index: i,
            len: self.len(),
        };
        match self {
            Self::Files(p) => p
                .get(i)
                .map(|p| p.to_string_lossy().into_owned())
                .ok_or_else(past_end),
            Self::Memory { names, .. } => names.get(i).cloned().ok_or_else(past_end),
        }
    }
}

/// A transformation of RGB batches in `[0, 1]` used as augmentation (a day→night generator, the
/// darkening network, CLAHE, a photometric jitter). `rng` is the trainer's seeded stream, so
/// random augmentations stay reproducible and resumable.
pub trait Augmentation: Send + Sync {
    /// # Shapes
    /// - `x`: `[batch, 3, height, width]` in `[0, 1]` → the same shape, in `[0, 1]`
    ///
    /// # Errors
    /// Whatever keeps the transformation from running (a bad shape, non-finite values, a
    /// network that failed before), as [`CoreError::Augmentation`] or the error it came from;
    /// the trainers stop and name the step.
    fn augment(&self, x: Tensor<4>, rng: &mut dyn RngCore) -> Result<Tensor<4>>;
}

impl<F> Augmentation for F
where
    F: Fn(Tensor<4>) -> Tensor<4> + Send + Sync,
{
    fn augment(&self, x: Tensor<4>, _rng: &mut dyn RngCore) -> Result<Tensor<4>> {
        Ok(self(x))
    }
}

/// `x`'s values as a tensor on `device`, detached from any autodiff graph (a host round trip): how
/// an augmentation runs its own frozen network on its own device, off the trainer's graph.
pub fn detached(x: Tensor<4>, device: &Device) -> Tensor<4> {
    Tensor::from_data(x.into_data(), device)
}

/// CLAHE on the L channel of every image (OpenCV-exact, mdir's float-Lab path) as an
/// [`Augmentation`]: Dark Side Augmentation applies it to every training image after the
/// translator (docs/PAPERS.md A.6, `clahepost`, clip 1.0, 8×8 tiles).
#[derive(Debug, Clone)]
pub struct Clahe {
    cfg: ClaheConfig,
}

impl Clahe {
    /// CLAHE with `cfg`.
    pub fn new(cfg: ClaheConfig) -> Self {
        Self { cfg }
    }

    /// DSA's setting: clip limit 1.0, 8×8 tiles.
    pub fn dsa() -> Self {
        Self {
            cfg: ClaheConfig::default(),
        }
    }
}

impl Augmentation for Clahe {
    fn augment(&self, x: Tensor<4>, _rng: &mut dyn RngCore) -> Result<Tensor<4>> {
        let device = x.device();
        let images = to_images(x)?;
        let out = images
            .iter()
            .map(|i| clahe_lab_f32(i, &self.cfg))
            .collect::<Result<Vec<_>>>()?;
        to_tensor(&out, &device)
    }
}
