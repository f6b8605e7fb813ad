//! Descriptor matrices (one row per image) and their `.npy` files.

use std::path::{Path, PathBuf};

use crate::error::{EvalError, Result};
use crate::npy;

/// A row-major `rows × dim` matrix of finite `f32` descriptors, one row per image.
///
/// Every constructor checks the values are finite, so the search and the metrics never see NaN.
#[derive(Debug, Clone, PartialEq)]
pub struct Descriptors {
    data: Vec<f32>,
    rows: usize,
    dim: usize,
}

impl Descriptors {
    /// Wraps `data` (row-major, `rows × dim`). Fails on a length mismatch, `dim == 0`, or a
    /// non-finite value (`what` names the matrix in the error).
    pub fn new(data: Vec<f32>, rows: usize, dim: usize) -> Result<Self> {
        Self::with_label(data, rows, dim, "descriptors", None)
    }

    fn with_label(
        data: Vec<f32>,
        rows: usize,
        dim: usize,
        what: &str,
        path: Option<&Path>,
    ) -> Result<Self> {
        if dim == 0 {
            return Err(EvalError::InvalidArgument {
                name: "descriptor dimension",
                reason: format!("{what} have dimension 0"),
            });
        }
        let Some(expected) = rows.checked_mul(dim) else {
            return Err(EvalError::InvalidArgument {
                name: "descriptor shape",
                reason: format!("{what}: {rows} rows of dimension {dim} overflow a length"),
            });
        };
        if data.len() != expected {
            return Err(EvalError::SizeMismatch {
                what: format!("{what}: number of values for {rows} rows of dimension {dim}"),
                expected,
                got: data.len(),
                path: path.map(Path::to_path_buf),
            });
        }
        if let Some(i) = data.iter().position(|x| !x.is_finite()) {
            return Err(EvalError::NonFinite {
                what: what.to_string(),
                row: i / dim,
                col: i % dim,
                value: data[i] as f64,
                path: path.map(Path::to_path_buf),
            });
        }
        Ok(Self { data, rows, dim })
    }

    /// Builds from rows of equal length.
    pub fn from_rows(rows: &[Vec<f32>]) -> Result<Self> {
        let dim = rows.first().map_or(0, Vec::len);
        if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != dim) {
            return Err(EvalError::SizeMismatch {
                what: format!("descriptor dimension of row {i}"),
                expected: dim,
                got: r.len(),
                path: None,
            });
        }
        Self::new(rows.concat(), rows.len(), dim)
    }

    /// Reads a 2-D `.npy` file (`(n, D)`, any float or int dtype, C or Fortran order).
    pub fn read_npy(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let arr = npy::read_npy(path)?;
        if arr.shape.len() != 2 {
            return Err(EvalError::ArrayFormat {
                path: path.to_path_buf(),
                key: String::new(),
                expected: "a 2-D descriptor matrix (n, D)".into(),
                found: arr.describe(),
            });
        }
        let (rows, dim) = (arr.shape[0], arr.shape[1]);
        let label = path
            .file_name()
            .map_or("descriptors".into(), |n| n.to_string_lossy().to_string());
        Self::with_label(arr.into_f32(), rows, dim, &label, Some(path))
    }

    /// Writes a `<f4` C-order `.npy` file (what `np.save` writes for a float32 matrix).
    pub fn write_npy(&self, path: impl AsRef<Path>) -> Result<()> {
        npy::write_npy_f32(path.as_ref(), &[self.rows, self.dim], &self.data)
    }

    /// Number of rows (images).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Descriptor dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The row-major values.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// Consumes into the row-major values.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// Row `i`.
    ///
    /// # Panics
    /// If `i >= rows()`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Rows `range` as a new matrix.
    ///
    /// # Panics
    /// If the range is out of bounds.
    pub fn slice_rows(&self, range: std::ops::Range<usize>) -> Descriptors {
        Descriptors {
            data: self.data[range.start * self.dim..range.end * self.dim].to_vec(),
            rows: range.len(),
            dim: self.dim,
        }
    }

    /// Divides each row by its L2 norm (rows of norm 0 stay 0), as `F.normalize` does with
    /// `eps = 1e-12`.
    pub fn l2_normalised(mut self) -> Self {
        for row in self.data.chunks_exact_mut(self.dim) {
            let n = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            row.iter_mut().for_each(|x| *x /= n);
        }
        self
    }

    /// Checks `other` has the same dimension (`what` labels the error).
    pub fn check_same_dim(&self, other: &Descriptors, what: &str) -> Result<()> {
        if self.dim != other.dim {
            return Err(EvalError::SizeMismatch {
                what: format!("descriptor dimension of {what}"),
                expected: self.dim,
                got: other.dim,
                path: None::<PathBuf>,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_nan_and_names_row_and_column() {
        let err = Descriptors::new(vec![0.0, 1.0, f32::NAN, 2.0], 2, 2).unwrap_err();
        assert!(
            matches!(err, EvalError::NonFinite { row: 1, col: 0, .. }),
            "{err}"
        );
        let err = Descriptors::new(vec![0.0, f32::INFINITY], 1, 2).unwrap_err();
        assert!(matches!(err, EvalError::NonFinite { row: 0, col: 1, .. }));
    }

    #[test]
    fn rejects_length_mismatch_and_ragged_rows() {
        assert!(matches!(
            Descriptors::new(vec![0.0; 5], 2, 3),
            Err(EvalError::SizeMismatch { .. })
        ));
        assert!(matches!(
            Descriptors::from_rows(&[vec![1.0, 2.0], vec![1.0]]),
            Err(EvalError::SizeMismatch { .. })
        ));
    }

    #[test]
    fn l2_normalisation_gives_unit_rows() {
        let d = Descriptors::new(vec![3.0, 4.0, 0.0, 0.0], 2, 2)
            .unwrap()
            .l2_normalised();
        assert_eq!(d.row(0), &[0.6, 0.8]);
        assert_eq!(d.row(1), &[0.0, 0.0]);
    }
}
