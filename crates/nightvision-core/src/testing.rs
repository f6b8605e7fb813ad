//! Helpers for parity tests against PyTorch / numpy fixtures (feature `testing`).
//!
//! Fixtures are safetensors files written by the seeded scripts in each crate's `scripts/`.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};

use crate::{CoreError, Result};

pub mod full_disk;
pub mod fuzz;

/// A float array read from a fixture: values and shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// Row-major values.
    pub data: Vec<f32>,
    /// Dimensions.
    pub shape: Vec<usize>,
}

impl Array {
    /// The array as a tensor of rank `D` on `device`.
    ///
    /// # Panics
    /// When the rank differs from `D` (a broken fixture in a test).
    pub fn tensor<const D: usize>(&self, device: &Device) -> Tensor<D> {
        assert_eq!(self.shape.len(), D, "fixture rank");
        Tensor::from_data(
            TensorData::new(self.data.clone(), self.shape.clone()),
            device,
        )
    }
}

/// Reads every F32/F64 tensor of a safetensors file (F64 is converted to f32).
pub fn read_safetensors(path: impl AsRef<Path>) -> Result<BTreeMap<String, Array>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| CoreError::io(path, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| CoreError::WeightsRead {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            safetensors::Dtype::F32 => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            safetensors::Dtype::F64 => raw
                .chunks_exact(8)
                .map(|c| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(c);
                    f64::from_le_bytes(b) as f32
                })
                .collect(),
            safetensors::Dtype::I64 => raw
                .chunks_exact(8)
                .map(|c| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(c);
                    i64::from_le_bytes(b) as f32
                })
                .collect(),
            other => {
                return Err(CoreError::WeightsRead {
                    path: path.to_path_buf(),
                    message: format!("tensor {name}: unsupported dtype {other:?}"),
                });
            }
        };
        out.insert(
            name,
            Array {
                data,
                shape: view.shape().to_vec(),
            },
        );
    }
    Ok(out)
}

/// The largest absolute difference between `got` and `want`, divided by `max |want|` (the error
/// relative to the signal's scale, robust to near-zero entries).
///
/// # Panics
/// When the shapes differ (a broken test).
pub fn max_rel_err<const D: usize>(got: Tensor<D>, want: &Array) -> f32 {
    assert_eq!(got.dims().to_vec(), want.shape, "shape mismatch");
    let g = got.into_data().try_into_vec_as::<f32>().unwrap_or_default();
    let scale = want
        .data
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()))
        .max(1e-12);
    g.iter()
        .zip(&want.data)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

/// The largest absolute difference between the float parameters of two modules of the same
/// structure, and the largest absolute parameter value of `a` (for a relative reading): the
/// tolerance check of the data-parallel equality tests.
///
/// # Panics
/// When the modules differ in structure (a broken test).
pub fn max_param_difference<M: burn::module::Module>(a: &M, b: &M) -> (f32, f32) {
    use burn::module::{ModuleVisitor, Param};
    struct Collect(Vec<Vec<f32>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            #[allow(clippy::unwrap_used)]
            self.0
                .push(p.val().into_data().try_into_vec_as::<f32>().unwrap());
        }
    }
    let (mut ca, mut cb) = (Collect(Vec::new()), Collect(Vec::new()));
    a.visit(&mut ca);
    b.visit(&mut cb);
    assert_eq!(ca.0.len(), cb.0.len(), "modules of different structure");
    let mut diff = 0f32;
    let mut scale = 0f32;
    for (x, y) in ca.0.iter().zip(&cb.0) {
        assert_eq!(x.len(), y.len(), "parameters of different sizes");
        for (u, v) in x.iter().zip(y) {
            diff = diff.max((u - v).abs());
            scale = scale.max(u.abs());
        }
    }
    (diff, scale)
}
