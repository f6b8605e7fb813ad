//! The toy day/night task the trainer tests share.
#![allow(dead_code)]

use burn::tensor::Device;
use nightgen_gan::data::{ScaleCrop, UnpairedBatches};
use nightgen_gan::{ResnetGenerator, translate_images};
use nightvision_core::augment::ImageSource;
use nightvision_core::image::Rgb32FImage;

/// Day: bright textured images; night: the same kind of textures, dark and bluish.
pub fn domains() -> (ImageSource, ImageSource) {
    let tex = |k: u32, gain: f32, blue: f32| {
        Rgb32FImage::from_fn(40, 36, move |x, y| {
            let v = 0.5 + 0.5 * ((x as f32 * 0.4 + k as f32).sin() * (y as f32 * 0.3).cos());
            image::Rgb([v * gain, v * gain, (v * gain + blue).min(1.0)])
        })
    };
    let day = (0..4).map(|k| tex(k, 0.9, 0.0)).collect();
    let night = (0..4).map(|k| tex(k + 7, 0.15, 0.1)).collect();
    (ImageSource::memory(day), ImageSource::memory(night))
}

/// Unpaired 32×32 batches of the toy domains.
pub fn data(batch: usize) -> UnpairedBatches {
    let (day, night) = domains();
    UnpairedBatches::new(
        day,
        night,
        ScaleCrop {
            size: 32,
            min_scale: 0.8,
        },
        batch,
    )
    .unwrap()
}

/// Mean output of `g` on a bright day-like probe (0.9 × a texture in [0, 1]).
pub fn brightness(g: &ResnetGenerator) -> f32 {
    let probe = nightvision_core::image::to_tensor(
        &[Rgb32FImage::from_fn(32, 32, |x, y| {
            let v = 0.5 + 0.5 * ((x as f32 * 0.4).sin() * (y as f32 * 0.3).cos());
            image::Rgb([0.9 * v, 0.9 * v, 0.9 * v])
        })],
        &Device::default(),
    )
    .unwrap();
    translate_images(g, probe).unwrap().mean().into_scalar()
}
