//! Input normalisation presets with exact inverses.

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// ImageNet channel means (RGB), as torchvision and cirtorch use them.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// The Caffe BSDS/VGG pixel means in **BGR** order on the 0–255 scale, as HED subtracts them.
pub const CAFFE_BGR_MEAN: [f32; 3] = [104.006_99, 116.668_77, 122.678_92];

/// How an RGB image in `[0, 1]` is turned into a network input, and back.
///
/// Every variant has an exact inverse ([`Normalization::invert`]), so a translated image can be
/// brought back to `[0, 1]` and re-normalised for another network — which is what Dark Side
/// Augmentation does between its generator (`[-1, 1]`) and its descriptor network (ImageNet),
/// docs/PAPERS.md A.6.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Normalization {
    /// `(x − mean) / std` with the ImageNet statistics (descriptor networks, darkening F).
    ImageNet,
    /// `2x − 1`, i.e. mean 0.5 and std 0.5 (the GAN generators and discriminators).
    MinusOneOne,
    /// RGB→BGR, `×255`, minus [`CAFFE_BGR_MEAN`] (HED, the Caffe-converted VGG).
    CaffeBgr,
    /// `(x − mean) / std` with custom RGB statistics.
    MeanStd {
        /// Per-channel means (RGB).
        mean: [f32; 3],
        /// Per-channel standard deviations (RGB).
        std: [f32; 3],
    },
    /// The identity (`[0, 1]` in, `[0, 1]` out), e.g. the darkening network's input.
    Identity,
}

impl Normalization {
    /// `(scale, shift)` per channel so that `y = x · scale + shift` (in the output channel order).
    fn affine(&self) -> ([f32; 3], [f32; 3]) {
        match *self {
            Self::ImageNet => mean_std(IMAGENET_MEAN, IMAGENET_STD),
            Self::MinusOneOne => ([2.0; 3], [-1.0; 3]),
            Self::CaffeBgr => ([255.0; 3], CAFFE_BGR_MEAN.map(|m| -m)),
            Self::MeanStd { mean, std } => mean_std(mean, std),
            Self::Identity => ([1.0; 3], [0.0; 3]),
        }
    }

    fn swaps_channels(&self) -> bool {
        matches!(self, Self::CaffeBgr)
    }

    /// Normalises an RGB batch in `[0, 1]`.
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, height, width]`, RGB in `[0, 1]`
    /// - output: `[batch, 3, height, width]` (BGR for [`Normalization::CaffeBgr`])
    pub fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let x = if self.swaps_channels() {
            x.flip([1])
        } else {
            x
        };
        let (scale, shift) = self.affine();
        let device = x.device();
        x.mul(channel(scale, &device)).add(channel(shift, &device))
    }

    /// The exact inverse of [`Normalization::apply`].
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, height, width]` as [`Normalization::apply`] produced it
    /// - output: `[batch, 3, height, width]`, RGB in `[0, 1]` (not clamped)
    pub fn invert(&self, x: Tensor<4>) -> Tensor<4> {
        let (scale, shift) = self.affine();
        let device = x.device();
        let y = x.sub(channel(shift, &device)).div(channel(scale, &device));
        if self.swaps_channels() {
            y.flip([1])
        } else {
            y
        }
    }
}

fn mean_std(mean: [f32; 3], std: [f32; 3]) -> ([f32; 3], [f32; 3]) {
    let scale = [1.0 / std[0], 1.0 / std[1], 1.0 / std[2]];
    (
        scale,
        [
            -mean[0] * scale[0],
            -mean[1] * scale[1],
            -mean[2] * scale[2],
        ],
    )
}

fn channel(v: [f32; 3], device: &Device) -> Tensor<4> {
    Tensor::<1>::from_floats(v, device).reshape([1, 3, 1, 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// f32 affine round trip: a few ulps of values up to 255.
    const ROUNDTRIP_TOL: f32 = 1e-5;

    fn sample(device: &Device) -> Tensor<4> {
        let v: Vec<f32> = (0..2 * 3 * 2 * 2)
            .map(|i| (i as f32 * 0.37) % 1.0)
            .collect();
        Tensor::<1>::from_floats(v.as_slice(), device).reshape([2, 3, 2, 2])
    }

    #[test]
    fn presets_match_their_formulas() {
        let device = Device::default();
        let x = sample(&device);
        let xv = x.to_data().try_to_vec::<f32>().unwrap();
        let at = |v: &[f32], b: usize, c: usize, i: usize| v[((b * 3 + c) * 2 * 2) + i];
        let imagenet = Normalization::ImageNet
            .apply(x.clone())
            .to_data()
            .try_to_vec::<f32>()
            .unwrap();
        let caffe = Normalization::CaffeBgr
            .apply(x.clone())
            .to_data()
            .try_to_vec::<f32>()
            .unwrap();
        let pm1 = Normalization::MinusOneOne
            .apply(x.clone())
            .to_data()
            .try_to_vec::<f32>()
            .unwrap();
        for b in 0..2 {
            for c in 0..3 {
                for i in 0..4 {
                    let v = at(&xv, b, c, i);
                    let e = (v - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
                    assert!((at(&imagenet, b, c, i) - e).abs() < 1e-5);
                    assert!((at(&pm1, b, c, i) - (2.0 * v - 1.0)).abs() < 1e-6);
                    // Output channel c of Caffe is input channel 2 − c (BGR), scaled to 0–255.
                    let e = at(&xv, b, 2 - c, i) * 255.0 - CAFFE_BGR_MEAN[c];
                    assert!((at(&caffe, b, c, i) - e).abs() < 1e-3);
                }
            }
        }
    }

    #[test]
    fn every_preset_inverts_exactly() {
        let device = Device::default();
        let x = sample(&device);
        for n in [
            Normalization::ImageNet,
            Normalization::MinusOneOne,
            Normalization::CaffeBgr,
            Normalization::Identity,
            Normalization::MeanStd {
                mean: [0.1, 0.2, 0.3],
                std: [0.5, 0.25, 2.0],
            },
        ] {
            let err: f32 = (n.invert(n.apply(x.clone())) - x.clone())
                .abs()
                .max()
                .into_scalar();
            assert!(err < ROUNDTRIP_TOL, "{n:?}: {err}");
        }
    }
}
