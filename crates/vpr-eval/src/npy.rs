//! `.npy` / `.npz` arrays: reading any numeric dtype and layout numpy writes, writing `<f4`/`<i8`.
//!
//! Reading goes through `npyz` for the header and decodes the raw bytes here (fast for the
//! multi-GB descriptor files of a 1M database): little and big endian, C and Fortran order,
//! `f4`/`f8`/`f2` and all integer widths.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use npyz::{Endianness, Order, TypeChar};

use crate::error::{EvalError, Result};

/// The element values of an array, widened to one of three Rust types.
#[derive(Debug, Clone, PartialEq)]
pub enum ArrayData {
    /// `f4` (and `f2`, widened).
    F32(Vec<f32>),
    /// `f8`.
    F64(Vec<f64>),
    /// Any signed or unsigned integer or bool dtype.
    I64(Vec<i64>),
}

/// An n-dimensional numeric array in C (row-major) order.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// The shape (`[]` for a scalar).
    pub shape: Vec<usize>,
    /// The values in C order.
    pub data: ArrayData,
}

impl Array {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            ArrayData::F32(v) => v.len(),
            ArrayData::F64(v) => v.len(),
            ArrayData::I64(v) => v.len(),
        }
    }

    /// Whether the array has no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as `f64` (integers converted exactly up to 2^53).
    pub fn to_f64(&self) -> Vec<f64> {
        match &self.data {
            ArrayData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            ArrayData::F64(v) => v.clone(),
            ArrayData::I64(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }

    /// The values as `f32`.
    pub fn into_f32(self) -> Vec<f32> {
        match self.data {
            ArrayData::F32(v) => v,
            ArrayData::F64(v) => v.into_iter().map(|x| x as f32).collect(),
            ArrayData::I64(v) => v.into_iter().map(|x| x as f32).collect(),
        }
    }

    /// The values as integers, or `None` for a floating-point array.
    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            ArrayData::I64(v) => Some(v),
            _ => None,
        }
    }

    /// A short description of dtype and shape for error messages.
    pub fn describe(&self) -> String {
        let t = match self.data {
            ArrayData::F32(_) => "float32",
            ArrayData::F64(_) => "float64",
            ArrayData::I64(_) => "integer",
        };
        format!("{t} array of shape {:?}", self.shape)
    }
}

/// Reads a `.npy` file.
pub fn read_npy(path: &Path) -> Result<Array> {
    let file = File::open(path).map_err(|e| EvalError::io(path, e))?;
    read_npy_from(BufReader::new(file), path, "")
}

/// Reads array `key` (without the `.npy` suffix) from an `.npz` archive.
pub fn read_npz(path: &Path, key: &str) -> Result<Array> {
    let npy_err = |source: std::io::Error| EvalError::Npy {
        path: path.to_path_buf(),
        key: key.to_string(),
        source,
    };
    if !path.exists() {
        return Err(EvalError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        ));
    }
    let mut archive = npyz::npz::NpzArchive::open(path).map_err(npy_err)?;
    match archive.by_name(key).map_err(npy_err)? {
        Some(npy) => read_npy_file(npy, path, key),
        None => Err(EvalError::MissingKey {
            path: path.to_path_buf(),
            key: key.to_string(),
        }),
    }
}

/// Reads a `.npy` stream; `path`/`key` only label errors.
pub fn read_npy_from<R: Read>(reader: R, path: &Path, key: &str) -> Result<Array> {
    let npy = npyz::NpyFile::new(reader).map_err(|source| EvalError::Npy {
        path: path.to_path_buf(),
        key: key.to_string(),
        source,
    })?;
    read_npy_file(npy, path, key)
}

fn read_npy_file<R: Read>(npy: npyz::NpyFile<R>, path: &Path, key: &str) -> Result<Array> {
    let format = |found: String| EvalError::ArrayFormat {
        path: path.to_path_buf(),
        key: key.to_string(),
        expected: "a numeric array (bool, int, uint or float dtype)".into(),
        found,
    };
    let shape: Vec<usize> = npy.shape().iter().map(|&s| s as usize).collect();
    let order = npy.order();
    let ts = match npy.dtype() {
        npyz::DType::Plain(ts) => ts,
        other => return Err(format(format!("dtype {}", other.descr()))),
    };
    let size = ts.size_field() as usize;
    let big = matches!(ts.endianness(), Endianness::Big);
    let kind = ts.type_char();
    let ok = matches!(
        (kind, size),
        (TypeChar::Float, 2 | 4 | 8)
            | (TypeChar::Int | TypeChar::Uint, 1 | 2 | 4 | 8)
            | (TypeChar::Bool, 1)
    );
    if !ok {
        return Err(format(format!("dtype {ts}")));
    }
    let n: usize = shape.iter().product();
    // stream the data in 4 MiB pieces: peak memory is the decoded array, not twice its size
    let mut reader = npy.into_inner();
    let mut data = match (kind, size) {
        (TypeChar::Float, 8) => ArrayData::F64(Vec::with_capacity(n)),
        (TypeChar::Float, _) => ArrayData::F32(Vec::with_capacity(n)),
        _ => ArrayData::I64(Vec::with_capacity(n)),
    };
    let total = n * size;
    let piece = (1usize << 22) / size * size;
    let mut buf = vec![0u8; piece.min(total)];
    let mut done = 0;
    while done < total {
        let len = piece.min(total - done);
        let chunk = &mut buf[..len];
        let mut filled = 0;
        while filled < len {
            match reader.read(&mut chunk[filled..]) {
                Ok(0) => {
                    return Err(EvalError::Npy {
                        path: path.to_path_buf(),
                        key: key.to_string(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!(
                                "truncated data: {} bytes for {n} elements of {size} bytes",
                                done + filled
                            ),
                        ),
                    });
                }
                Ok(m) => filled += m,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(EvalError::Npy {
                        path: path.to_path_buf(),
                        key: key.to_string(),
                        source,
                    });
                }
            }
        }
        decode_into(&mut data, chunk, kind, size, big);
        done += len;
    }
    let data = if order == Order::Fortran && shape.len() > 1 {
        fortran_to_c(data, &shape)
    } else {
        data
    };
    Ok(Array { shape, data })
}

macro_rules! words {
    ($raw:expr, $n:literal, $big:expr, $t:ty) => {
        $raw.chunks_exact($n).map(|c| {
            let b: [u8; $n] = c.try_into().unwrap_or([0; $n]);
            if $big {
                <$t>::from_be_bytes(b)
            } else {
                <$t>::from_le_bytes(b)
            }
        })
    };
}

fn decode_into(out: &mut ArrayData, raw: &[u8], kind: TypeChar, size: usize, big: bool) {
    match out {
        ArrayData::F32(v) => {
            if size == 4 {
                v.extend(words!(raw, 4, big, f32));
            } else {
                v.extend(words!(raw, 2, big, u16).map(half_to_f32));
            }
        }
        ArrayData::F64(v) => v.extend(words!(raw, 8, big, f64)),
        ArrayData::I64(v) => match (kind, size) {
            (TypeChar::Int, 1) => v.extend(raw.iter().map(|&b| b as i8 as i64)),
            (TypeChar::Int, 2) => v.extend(words!(raw, 2, big, i16).map(i64::from)),
            (TypeChar::Int, 4) => v.extend(words!(raw, 4, big, i32).map(i64::from)),
            (TypeChar::Int, _) => v.extend(words!(raw, 8, big, i64)),
            (_, 1) => v.extend(raw.iter().map(|&b| b as i64)),
            (_, 2) => v.extend(words!(raw, 2, big, u16).map(i64::from)),
            (_, 4) => v.extend(words!(raw, 4, big, u32).map(i64::from)),
            _ => v.extend(words!(raw, 8, big, u64).map(|x| x as i64)),
        },
    }
}

/// IEEE half to f32 (exact; the `half` crate's conversion).
fn half_to_f32(h: u16) -> f32 {
    half::f16::from_bits(h).to_f32()
}

/// Reorders a Fortran-order (column-major) buffer of `shape` into C order (row-major).
pub(crate) fn fortran_to_c_order<T: Copy>(v: Vec<T>, shape: &[usize]) -> Vec<T> {
    let n = v.len();
    if n == 0 || shape.len() < 2 {
        return v;
    }
    // Fortran strides.
    let mut fstrides = vec![1usize; shape.len()];
    for d in 1..shape.len() {
        fstrides[d] = fstrides[d - 1] * shape[d - 1];
    }
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..n {
        let off: usize = idx.iter().zip(&fstrides).map(|(i, s)| i * s).sum();
        out.push(v[off]);
        // increment the C-order multi-index
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

fn fortran_to_c(data: ArrayData, shape: &[usize]) -> ArrayData {
    match data {
        ArrayData::F32(v) => ArrayData::F32(fortran_to_c_order(v, shape)),
        ArrayData::F64(v) => ArrayData::F64(fortran_to_c_order(v, shape)),
        ArrayData::I64(v) => ArrayData::I64(fortran_to_c_order(v, shape)),
    }
}

/// Writes a little-endian `f4` C-order `.npy` file, byte-identical to `np.save` of a float32 array.
pub fn write_npy_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    write_npy_words(path, shape, data)
}

/// Writes a little-endian `i8` C-order `.npy` file, byte-identical to `np.save` of an int64 array.
pub fn write_npy_i64(path: &Path, shape: &[usize], data: &[i64]) -> Result<()> {
    write_npy_words(path, shape, data)
}

fn write_npy_words<T: npyz::Serialize + npyz::AutoSerialize + Copy>(
    path: &Path,
    shape: &[usize],
    data: &[T],
) -> Result<()> {
    let expected: usize = shape.iter().product();
    if expected != data.len() {
        return Err(EvalError::SizeMismatch {
            what: format!("elements for shape {shape:?}"),
            expected,
            got: data.len(),
            path: Some(PathBuf::from(path)),
        });
    }
    let file = File::create(path).map_err(|e| EvalError::io(path, e))?;
    let mut w = BufWriter::new(file);
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    use npyz::WriterBuilder;
    let written = (|| -> std::io::Result<()> {
        let mut npy = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&shape)
            .writer(&mut w)
            .begin_nd()?;
        npy.extend(data.iter().copied())?;
        npy.finish()?;
        w.flush()
    })();
    written.map_err(|e| EvalError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_floats_decode_exactly() {
        assert_eq!(half_to_f32(0x3c00), 1.0);
        assert_eq!(half_to_f32(0xc000), -2.0);
        assert_eq!(half_to_f32(0x3555), 0.333_251_95);
        assert_eq!(half_to_f32(0x0001), 2f32.powi(-24));
        assert!(half_to_f32(0x7c00).is_infinite());
    }

    #[test]
    fn fortran_order_is_transposed_to_c() {
        // a 2x3 array [[0,1,2],[3,4,5]] stored column-major
        let f = ArrayData::I64(vec![0, 3, 1, 4, 2, 5]);
        assert_eq!(
            fortran_to_c(f, &[2, 3]),
            ArrayData::I64(vec![0, 1, 2, 3, 4, 5])
        );
    }
}
