//! Edge maps on the host: 8-bit PNG and float `.npy` output.

use std::io::Write;
use std::path::Path;

use burn::tensor::Tensor;
use image::GrayImage;
use nightvision_core::CoreError;
use nightvision_core::checkpoint::write_atomic;

use crate::HedError;

/// One single-channel map (an edge probability map, or logits) on the host, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeMap {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `height × width` values, row-major.
    pub data: Vec<f32>,
}

impl EdgeMap {
    /// Splits a batch of single-channel maps into host maps, one per image.
    ///
    /// # Shapes
    /// - `x`: `[batch, 1, height, width]`
    ///
    /// # Errors
    /// [`HedError::ShapeMismatch`] when `x` has more than one channel; [`HedError::Readback`] when
    /// its data cannot be read as `f32`.
    pub fn from_batch(x: Tensor<4>) -> crate::Result<Vec<EdgeMap>> {
        let [b, c, h, w] = x.dims();
        if c != 1 {
            return Err(HedError::ShapeMismatch {
                what: "edge maps",
                expected: vec![b, 1, h, w],
                got: vec![b, c, h, w],
            });
        }
        let v = x
            .into_data()
            .try_into_vec_as::<f32>()
            .map_err(|e| HedError::Readback {
                what: "edge maps",
                message: format!("{e:?}"),
            })?;
        Ok(v.chunks_exact(h * w.max(1))
            .take(b)
            .map(|d| EdgeMap {
                height: h,
                width: w,
                data: d.to_vec(),
            })
            .collect())
    }

    /// The value at row `y`, column `x`.
    ///
    /// # Panics
    /// When `(y, x)` is outside the map.
    pub fn get(&self, y: usize, x: usize) -> f32 {
        assert!(
            y < self.height && x < self.width,
            "({y}, {x}) outside the map"
        );
        self.data[y * self.width + x]
    }

    /// The map as an 8-bit grayscale image: values clamped to `[0, 1]`, × 255, rounded (white =
    /// edge; the PyTorch port truncates instead of rounding).
    pub fn to_gray8(&self) -> GrayImage {
        GrayImage::from_fn(self.width as u32, self.height as u32, |x, y| {
            let v = self.data[y as usize * self.width + x as usize];
            image::Luma([(v.clamp(0.0, 1.0) * 255.0).round() as u8])
        })
    }

    /// Writes [`EdgeMap::to_gray8`] as a PNG (or another format by extension), atomically.
    ///
    /// # Errors
    /// [`HedError::Core`] with [`CoreError::Image`] (unknown extension, encoding) or
    /// [`CoreError::Io`].
    pub fn save_png(&self, path: impl AsRef<Path>) -> crate::Result<()> {
        let path = path.as_ref();
        let format = image::ImageFormat::from_path(path).map_err(|source| CoreError::Image {
            path: path.to_path_buf(),
            source,
        })?;
        let img = self.to_gray8();
        write_atomic(path, |file| {
            let mut w = std::io::BufWriter::new(file);
            img.write_to(&mut w, format)
                .map_err(|source| CoreError::Image {
                    path: path.to_path_buf(),
                    source,
                })?;
            w.flush().map_err(|e| CoreError::io(path, e))
        })?;
        Ok(())
    }

    /// Writes the map as a NumPy `.npy` file (format 1.0, little-endian `float32`, shape
    /// `(height, width)`, C order), atomically.
    ///
    /// # Errors
    /// [`HedError::Core`] with [`CoreError::Io`].
    pub fn save_npy(&self, path: impl AsRef<Path>) -> crate::Result<()> {
        let path = path.as_ref();
        write_atomic(path, |file| {
            let mut w = std::io::BufWriter::new(file);
            w.write_all(&npy_bytes(self.height, self.width, &self.data))
                .and_then(|_| w.flush())
                .map_err(|e| CoreError::io(path, e))
        })?;
        Ok(())
    }
}

/// The bytes of a version-1.0 `.npy` file holding a `(height, width)` `<f4` array.
fn npy_bytes(height: usize, width: usize, data: &[f32]) -> Vec<u8> {
    let dict =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({height}, {width}), }}");
    // magic (6) + version (2) + header length (2) + dict + padding + '\n', a multiple of 64.
    let unpadded = 10 + dict.len() + 1;
    let pad = (64 - unpadded % 64) % 64;
    let header_len = dict.len() + pad + 1;
    let mut out = Vec::with_capacity(10 + header_len + 4 * data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header_len as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', pad));
    out.push(b'\n');
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn sample() -> EdgeMap {
        EdgeMap {
            height: 3,
            width: 5,
            data: (0..15).map(|i| i as f32 / 14.0 - 0.1).collect(),
        }
    }

    #[test]
    fn npy_round_trips_through_npyz() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.npy");
        let m = sample();
        m.save_npy(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        // The header is padded so the data starts 64-byte aligned, as NumPy writes it.
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
        assert_eq!(npy.shape(), &[3, 5]);
        assert_eq!(npy.order(), npyz::Order::C);
        let back: Vec<f32> = npy.into_vec().unwrap();
        assert_eq!(back, m.data);
    }

    #[test]
    fn png_clamps_and_rounds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.png");
        let m = sample();
        m.save_png(&path).unwrap();
        let img = image::open(&path).unwrap().to_luma8();
        assert_eq!(img.dimensions(), (5, 3));
        for (i, p) in img.pixels().enumerate() {
            let want = (m.data[i].clamp(0.0, 1.0) * 255.0).round() as u8;
            assert_eq!(p.0[0], want, "pixel {i}");
        }
        // Unknown extensions are an image error naming the file.
        let err = m.save_png(dir.path().join("m.unknown")).unwrap_err();
        assert!(err.to_string().contains("m.unknown"), "{err}");
    }

    #[test]
    fn from_batch_splits_images_and_rejects_channels() {
        let device = Device::default();
        let v: Vec<f32> = (0..2 * 4 * 3).map(|i| i as f32).collect();
        let x = Tensor::<4>::from_data(TensorData::new(v.clone(), [2, 1, 4, 3]), &device);
        let maps = EdgeMap::from_batch(x).unwrap();
        assert_eq!(maps.len(), 2);
        assert_eq!(maps[1].data, v[12..].to_vec());
        assert_eq!(maps[1].get(1, 2), 17.0);
        let x3 = Tensor::<4>::zeros([1, 3, 4, 3], &device);
        assert!(matches!(
            EdgeMap::from_batch(x3),
            Err(HedError::ShapeMismatch { .. })
        ));
    }
}
