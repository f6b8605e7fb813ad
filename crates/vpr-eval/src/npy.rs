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

/// The largest `.npy` header accepted (magic, version, length and the header text). numpy's own
/// reader refuses headers over 10,000 bytes unless told otherwise (`max_header_size`); the header
/// of a numeric array of any rank numpy allows (≤ 64 dimensions) is far below this.
pub const MAX_HEADER_BYTES: usize = 1 << 16;

/// The deepest bracket nesting accepted in a header: a numeric array's header nests 2 deep (the
/// dict and the shape tuple). Checked, with the brackets' balance, before the header text
/// reaches npyz's Python-literal parser, a backtracking parser whose time grows exponentially
/// with unclosed openers (found by the fuzz campaign: 11 unclosed `{` in the shape took 2.7 s).
const MAX_HEADER_NESTING: usize = 4;

/// Reads a `.npy` file.
///
/// The header's shape and dtype are checked against the file's length before anything is
/// allocated for the data: a header that declares more bytes than the file holds (e.g. 4×10¹²
/// rows in a 200-byte file) is an [`EvalError::Npy`] naming the file.
pub fn read_npy(path: &Path) -> Result<Array> {
    let file = File::open(path).map_err(|e| EvalError::io(path, e))?;
    let len = file.metadata().map_err(|e| EvalError::io(path, e))?.len();
    read_npy_checked(BufReader::new(file), Some(len), true, path, "")
}

/// Reads array `key` (without the `.npy` suffix) from an `.npz` archive.
///
/// The array's declared size is checked against the archive member's uncompressed size before
/// anything is allocated for the data.
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
    if !archive.array_names().any(|n| n == key) {
        return Err(EvalError::MissingKey {
            path: path.to_path_buf(),
            key: key.to_string(),
        });
    }
    let member = npyz::npz::file_name_from_array_name(key);
    let file = archive
        .zip_archive()
        .by_name(&member)
        .map_err(|e| npy_err(invalid_data(e.to_string())))?;
    // the member's uncompressed size is what the archive claims: it refuses a header that
    // declares more, but does not size an allocation
    let size = file.size();
    read_npy_checked(file, Some(size), false, path, key)
}

/// Reads a `.npy` stream; `path`/`key` only label errors.
///
/// The stream's length is unknown here, so the data are decoded piece by piece as they arrive:
/// memory grows with the bytes actually read, never with what the header declares.
pub fn read_npy_from<R: Read>(reader: R, path: &Path, key: &str) -> Result<Array> {
    read_npy_checked(reader, None, false, path, key)
}

fn invalid_data(message: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.into())
}

/// Reads the magic string, version and header of a `.npy` stream and checks the header's
/// length against [`MAX_HEADER_BYTES`] and the bytes `available`, and its nesting depth, before
/// allocating it. Returns the bytes read (to be handed to npyz).
fn read_checked_header<R: Read>(
    reader: &mut R,
    available: Option<u64>,
) -> std::io::Result<Vec<u8>> {
    let mut pre = [0u8; 12];
    reader
        .read_exact(&mut pre[..10])
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                invalid_data("not a .npy file: shorter than its magic string")
            }
            _ => e,
        })?;
    if &pre[..6] != b"\x93NUMPY" {
        return Err(invalid_data(
            "not a .npy file: magic string \\x93NUMPY not found",
        ));
    }
    let (prefix_len, header_len) = match (pre[6], pre[7]) {
        (1, 0) => (10usize, u16::from_le_bytes([pre[8], pre[9]]) as usize),
        (2 | 3, 0) => {
            reader
                .read_exact(&mut pre[10..12])
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => {
                        invalid_data("truncated .npy header length")
                    }
                    _ => e,
                })?;
            let len = u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]]);
            (12, usize::try_from(len).unwrap_or(usize::MAX))
        }
        (major, minor) => {
            return Err(invalid_data(format!(
                "unsupported .npy format version {major}.{minor}"
            )));
        }
    };
    let total = prefix_len.saturating_add(header_len);
    if total > MAX_HEADER_BYTES {
        return Err(invalid_data(format!(
            "the header declares {header_len} bytes, more than the {MAX_HEADER_BYTES} accepted"
        )));
    }
    if let Some(avail) = available
        && total as u64 > avail
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("the header declares {header_len} bytes but the file holds {avail} in all"),
        ));
    }
    let mut bytes = Vec::with_capacity(total);
    bytes.extend_from_slice(&pre[..prefix_len]);
    bytes.resize(total, 0);
    reader
        .read_exact(&mut bytes[prefix_len..])
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("truncated header: {header_len} bytes declared"),
            ),
            _ => e,
        })?;
    match nesting_depth(&bytes[prefix_len..]) {
        Some(depth) if depth > MAX_HEADER_NESTING => {
            return Err(invalid_data(format!(
                "the header nests brackets {depth} deep (at most {MAX_HEADER_NESTING} accepted)"
            )));
        }
        Some(_) => {}
        None => {
            return Err(invalid_data(
                "the header's brackets or quotes do not balance",
            ));
        }
    }
    Ok(bytes)
}

/// The deepest nesting of `(`, `[` and `{` outside quoted strings, or `None` when the brackets
/// (of any kind, in order) or the quotes do not balance.
fn nesting_depth(text: &[u8]) -> Option<usize> {
    let mut open: Vec<u8> = Vec::new();
    let (mut max, mut quote, mut escaped) = (0usize, None::<u8>, false);
    for &b in text {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == q {
                quote = None;
            }
            continue;
        }
        match b {
            b'\'' | b'"' => quote = Some(b),
            b'(' | b'[' | b'{' => {
                open.push(b);
                max = max.max(open.len());
            }
            b')' | b']' | b'}' => {
                let opener = match b {
                    b')' => b'(',
                    b']' => b'[',
                    _ => b'{',
                };
                if open.pop() != Some(opener) {
                    return None;
                }
            }
            _ => {}
        }
    }
    (open.is_empty() && quote.is_none()).then_some(max)
}

/// Bytes decoded per piece of the data of a file whose length holds them (4 MiB).
const PIECE_BYTES: usize = 1 << 22;
/// Bytes decoded per piece of a stream of unknown length (64 KiB): what a header declares
/// sizes nothing before the data arrive.
const STREAM_PIECE_BYTES: usize = 1 << 16;

/// Reads a `.npy` stream of `available` bytes (header included), if known; `trusted` when that
/// length is the file's own (not a claim of an archive). Every size the header declares is
/// checked before it sizes an allocation.
fn read_npy_checked<R: Read>(
    mut reader: R,
    available: Option<u64>,
    trusted: bool,
    path: &Path,
    key: &str,
) -> Result<Array> {
    let npy_err = |source: std::io::Error| EvalError::Npy {
        path: path.to_path_buf(),
        key: key.to_string(),
        source,
    };
    let header = read_checked_header(&mut reader, available).map_err(npy_err)?;
    let header_len = header.len() as u64;
    let npy = npyz::NpyFile::new(std::io::Cursor::new(header).chain(reader)).map_err(npy_err)?;
    let format = |found: String| EvalError::ArrayFormat {
        path: path.to_path_buf(),
        key: key.to_string(),
        expected: "a numeric array (bool, int, uint or float dtype)".into(),
        found,
    };
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
    let declared = npy.shape().to_vec();
    // the element count and byte length the header declares, checked for overflow (an empty
    // dimension makes the array empty whatever the others say)
    let n_bytes = if declared.contains(&0) {
        Some(0u64)
    } else {
        declared
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .and_then(|n| n.checked_mul(size as u64))
    };
    let too_big = |what: String| {
        npy_err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the header declares shape {declared:?} of {size}-byte elements: {what}"),
        ))
    };
    let Some(n_bytes) = n_bytes else {
        return Err(too_big("more bytes than 2^64".into()));
    };
    if let Some(avail) = available {
        let data_avail = avail.saturating_sub(header_len);
        if n_bytes > data_avail {
            return Err(npy_err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "the header declares shape {declared:?} of {size}-byte elements ({n_bytes} bytes) \
                     but only {data_avail} bytes follow it"
                ),
            )));
        }
    }
    let (Ok(total), Ok(shape)) = (
        usize::try_from(n_bytes),
        declared
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<std::result::Result<Vec<usize>, _>>(),
    ) else {
        return Err(too_big("more than this machine can address".into()));
    };
    let n = total / size;
    let order = npy.order();
    // Stream the data in 4 MiB pieces: peak memory is the decoded array, not twice its size.
    // The output grows with the pieces actually read (reserved up front only when the length
    // of the input is known to hold them), so a lying header costs no more than the input.
    let mut reader = npy.into_inner();
    let trusted = trusted && available.is_some();
    let piece_bytes = if trusted {
        PIECE_BYTES
    } else {
        STREAM_PIECE_BYTES
    };
    let reserve = if trusted {
        n
    } else {
        n.min(piece_bytes / size)
    };
    let mut data = match (kind, size) {
        (TypeChar::Float, 8) => ArrayData::F64(Vec::with_capacity(reserve)),
        (TypeChar::Float, _) => ArrayData::F32(Vec::with_capacity(reserve)),
        _ => ArrayData::I64(Vec::with_capacity(reserve)),
    };
    let piece = piece_bytes / size * size;
    let mut buf = vec![0u8; piece.min(total)];
    let mut done = 0;
    while done < total {
        let len = piece.min(total - done);
        let chunk = &mut buf[..len];
        let mut filled = 0;
        while filled < len {
            match reader.read(&mut chunk[filled..]) {
                Ok(0) => {
                    return Err(npy_err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!(
                            "truncated data: {} bytes for {n} elements of {size} bytes",
                            done + filled
                        ),
                    )));
                }
                Ok(m) => filled += m,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => return Err(npy_err(source)),
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
