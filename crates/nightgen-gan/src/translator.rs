//! A trained day→night generator as an [`Augmentation`] (Dark Side Augmentation, docs/PAPERS.md
//! A.6: the translator in eval mode, images mapped to `[-1, 1]` and back), on its own device.
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use nightgen_gan::{ResnetGeneratorConfig, Translator};
//! use nightvision_core::augment::Augmentation;
//!
//! let device = Device::default();
//! let g = ResnetGeneratorConfig::new().with_ngf(4).with_n_blocks(1).try_init(&device)?;
//! let night = Translator::new(g, &device);
//! let x = Tensor::<4>::ones([2, 3, 32, 48], &device).mul_scalar(0.5);
//! let y = night.augment(x, &mut nightvision_core::rng::seeded(0))?;
//! assert_eq!(y.dims(), [2, 3, 32, 48]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use nightvision_core::CoreError;
use nightvision_core::augment::{Augmentation, detached};
use nightvision_core::image::{Rgb32FImage, load_rgb, to_images, to_tensor};
use rand::RngCore;

use crate::{ResnetGenerator, translate_images};

/// A frozen day→night generator as an [`Augmentation`], running on its own device.
pub struct Translator {
    generator: Mutex<ResnetGenerator>,
    device: Device,
}

impl std::fmt::Debug for Translator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Translator")
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl Translator {
    /// Wraps a generator (put in inference mode with `valid()`), running on `device`.
    pub fn new(generator: ResnetGenerator, device: &Device) -> Self {
        Self {
            generator: Mutex::new(generator.valid().fork(device)),
            device: device.clone(),
        }
    }

    /// A trained translator rebuilt from its checkpoint folder alone (`config.json` and the
    /// newest checkpoint; see [`ResnetGenerator::load`]), running on `device`.
    ///
    /// # Errors
    /// As [`ResnetGenerator::load`].
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> crate::Result<Self> {
        Ok(Self::new(ResnetGenerator::load(dir, device)?, device))
    }

    /// Translates image files into memory (NocPlace translates a whole day dataset once, B.1),
    /// in their order.
    ///
    /// # Errors
    /// Image decoding errors naming the file; [`crate::GanError`] for images below 5 px.
    pub fn translate_files(&self, paths: &[PathBuf]) -> crate::Result<Vec<Rgb32FImage>> {
        let mut out = Vec::with_capacity(paths.len());
        for p in paths {
            let img = load_rgb(p)?;
            let x = to_tensor(std::slice::from_ref(&img), &self.device)?;
            out.extend(to_images(self.translate(x)?)?);
        }
        Ok(out)
    }

    /// Translates `[B, 3, H, W]` images in `[0, 1]` (any size ≥ 5 px) on the translator's device;
    /// the result is on `x`'s device.
    ///
    /// # Errors
    /// [`crate::GanError`] for bad shapes, or when an earlier translation panicked.
    pub fn translate(&self, x: Tensor<4>) -> crate::Result<Tensor<4>> {
        let origin = x.device();
        let g = self.generator.lock().map_err(|_| CoreError::Augmentation {
            what: "translator",
            message: "a previous translation panicked".into(),
        })?;
        let y = translate_images(&g, detached(x, &self.device))?;
        Ok(detached(y, &origin))
    }
}

impl Augmentation for Translator {
    fn augment(&self, x: Tensor<4>, _rng: &mut dyn RngCore) -> nightvision_core::Result<Tensor<4>> {
        self.translate(x).map_err(|e| match e {
            crate::GanError::Core(c) => c,
            other => CoreError::Augmentation {
                what: "translator",
                message: other.to_string(),
            },
        })
    }
}
