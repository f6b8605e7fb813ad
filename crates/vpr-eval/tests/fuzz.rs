//! Fuzzing every reader of user bytes in vpr-eval (issue 15): `.npy` (with the `Descriptors` and
//! `Ranks` built on it), `.npz` ground truth, the pickle VM with cirtorch gnd files on top, UTM
//! file names and the image lists made of them. Each parser runs `NIGHTVISION_FUZZ_CASES`
//! (10,000 by default) seeded mutations of valid inputs (see
//! `nightvision_core::testing::fuzz`); the property: never a panic, an abort or an allocation
//! beyond a small multiple of the input, and every error a typed one that names the file. The
//! `*_declaring_*` tests feed headers and length fields that declare enormous sizes and check a
//! quick typed error.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nightvision_core::testing::fuzz::{Fuzz, TrackingAllocator, measure, names_file, write_case};
use vpr_eval::npy::{self, ArrayData};
use vpr_eval::pickle::unpickle;
use vpr_eval::{Descriptors, EvalError, Gnd, GroundTruth, Ranks, VprFolder, parse_vpr_name};

#[global_allocator]
static ALLOC: TrackingAllocator = TrackingAllocator;

mod common;

/// What a reader of a few hundred bytes may take at most, whatever its header says.
const QUICK: Duration = Duration::from_secs(1);
/// The allocation bound of the huge-size tests: 16 MiB (one 4 MiB read buffer and change).
const SMALL_ALLOC: usize = 16 << 20;

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

// ---- .npy ----------------------------------------------------------------------------------

/// A version-1.0 `.npy` header for `descr` and `shape` (as numpy writes it, padded to 64).
fn npy_header(descr: &str, shape: &str) -> Vec<u8> {
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let pad = (64 - (10 + dict.len() + 1) % 64) % 64;
    let text = format!("{dict}{}\n", " ".repeat(pad));
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(text.len() as u16).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out
}

fn npy_seeds() -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let mut seeds: Vec<Vec<u8>> = [
        "f32_1d.npy",
        "f32_big_endian.npy",
        "f32_c.npy",
        "f32_fortran.npy",
        "f64_c.npy",
        "i32_ranks_fortran.npy",
        "i64_ranks.npy",
    ]
    .iter()
    .map(|n| read(&common::fixture("npy").join(n)))
    .collect();
    // the crate's own writers
    let p = dir.path().join("w.npy");
    npy::write_npy_f32(&p, &[3, 2], &[0.5, -1.0, 2.0, 0.25, 8.0, 1e-3]).unwrap();
    seeds.push(read(&p));
    npy::write_npy_i64(&p, &[2, 3], &[0, 1, 2, 2, 1, 0]).unwrap();
    seeds.push(read(&p));
    // a half-float and a byte array, hand-written as numpy would
    let mut f2 = npy_header("<f2", "(2, 2)");
    f2.extend_from_slice(&[0x00, 0x3c, 0x00, 0xc0, 0x55, 0x35, 0x01, 0x00]);
    seeds.push(f2);
    let mut u1 = npy_header("|u1", "(4,)");
    u1.extend_from_slice(&[1, 2, 3, 255]);
    seeds.push(u1);
    seeds
}

const NPY_TOKENS: &[&[u8]] = &[
    b"(",
    b"[",
    b"{",
    b"'shape': (",
    b"4000000000000, ",
    b"'descr': '<f8', ",
    b"'fortran_order': True, ",
    b"\x93NUMPY\x02\x00",
    b"\x93NUMPY\x03\x00",
];

/// Equal shapes and bit-identical values (NaN included).
fn same_array(a: &npy::Array, b: &npy::Array) -> bool {
    let bits = |x: &npy::Array| -> Vec<u64> {
        match &x.data {
            ArrayData::F32(v) => v.iter().map(|f| f.to_bits() as u64).collect(),
            ArrayData::F64(v) => v.iter().map(|f| f.to_bits()).collect(),
            ArrayData::I64(v) => v.iter().map(|&i| i as u64).collect(),
        }
    };
    a.shape == b.shape
        && std::mem::discriminant(&a.data) == std::mem::discriminant(&b.data)
        && bits(a) == bits(b)
}

/// Reads `path` through every `.npy` entry point and checks they agree; whether it was read.
fn check_npy(path: &Path, bytes: &[u8]) -> Result<bool, String> {
    let from_file = npy::read_npy(path);
    let from_stream = npy::read_npy_from(Cursor::new(bytes), path, "");
    match (&from_file, &from_stream) {
        (Ok(a), Ok(b)) if same_array(a, b) => {}
        (Err(e), Err(f)) => {
            names_file(e, path)?;
            names_file(f, path)?;
        }
        (a, b) => {
            return Err(format!(
                "file and stream readers disagree: {:?} vs {:?}",
                a.as_ref().map(|x| x.describe()),
                b.as_ref().map(|x| x.describe())
            ));
        }
    }
    let accepted = from_file.is_ok();
    if let Ok(a) = from_file {
        let n = if a.shape.contains(&0) {
            Some(0)
        } else {
            a.shape
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        };
        if n != Some(a.len()) {
            return Err(format!("shape {:?} but {} values", a.shape, a.len()));
        }
        if let Err(e) = Descriptors::read_npy(path) {
            names_file(&e, path)?;
        }
        if let Err(e) = Ranks::read_npy(path) {
            names_file(&e, path)?;
        }
    }
    Ok(accepted)
}

#[test]
fn fuzz_npy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.npy");
    Fuzz::new("npy", npy_seeds())
        .tokens(NPY_TOKENS)
        .run(|input| {
            write_case(&path, input)?;
            check_npy(&path, input)
        })
        .assert_clean();
}

#[test]
fn npy_declaring_4e12_rows_is_a_quick_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.npy");
    let cases: Vec<(&str, String)> = vec![
        ("<f4", "(4000000000000, 8)".into()),
        ("<f8", "(4611686018427387904,)".into()),
        ("|i1", "(4000000000000, 4000000000000)".into()), // overflows u64
        ("<f2", "(18446744073709551615,)".into()),
        ("<i8", format!("({}, 0, 5)", u64::MAX)), // empty: accepted
    ];
    for (descr, shape) in cases {
        let mut bytes = npy_header(descr, &shape);
        bytes.extend_from_slice(&[0u8; 64]);
        std::fs::write(&path, &bytes).unwrap();
        let (r, took, grew) = measure(|| npy::read_npy(&path));
        assert!(took < QUICK, "{descr} {shape}: {took:?}");
        assert!(
            grew < SMALL_ALLOC,
            "{descr} {shape}: allocated {grew} bytes"
        );
        if shape.contains(", 0,") {
            assert_eq!(r.unwrap().len(), 0);
            continue;
        }
        let e = r.unwrap_err();
        assert!(matches!(e, EvalError::Npy { .. }), "{e:?}");
        names_file(&e, &path).unwrap();
        // the stream reader (length unknown) fails as quickly, allocating as it reads
        let (r, took, grew) = measure(|| npy::read_npy_from(Cursor::new(&bytes), &path, ""));
        assert!(took < QUICK && grew < SMALL_ALLOC, "{took:?} {grew}");
        names_file(&r.unwrap_err(), &path).unwrap();
    }
    // the message says what was declared and what the file holds
    let mut bytes = npy_header("<f4", "(4000000000000, 8)");
    bytes.extend_from_slice(&[0u8; 64]);
    std::fs::write(&path, &bytes).unwrap();
    let msg = Descriptors::read_npy(&path).unwrap_err().to_string();
    assert!(
        msg.contains("huge.npy") && msg.contains("128000000000000 bytes"),
        "{msg}"
    );
}

/// Finding of the first `fuzz_npy` run: the stream reader (length unknown, as for `.npz`
/// members) reserved the declared element count up to 4 Mi elements (32 MiB as i64) and a 4 MiB
/// read buffer before reading a byte: 37.7 MB for a 150-byte `|u1` array declaring 2^63
/// elements. Streams now reserve 64 KiB pieces and grow with the data actually read.
#[test]
fn npy_stream_allocates_with_the_data_not_the_header() {
    let path = PathBuf::from("stream.npy");
    for descr in ["|u1", "<f2", "<f8"] {
        let mut bytes = npy_header(descr, "(9223372036854775808,)");
        bytes.extend_from_slice(&[1, 2, 3, 255]);
        let (r, took, grew) = measure(|| npy::read_npy_from(Cursor::new(&bytes), &path, ""));
        assert!(took < QUICK, "{took:?}");
        assert!(
            grew < 1 << 20,
            "{descr}: allocated {grew} bytes for {}",
            bytes.len()
        );
        names_file(&r.unwrap_err(), &path).unwrap();
    }
}

#[test]
fn npy_header_lengths_and_nesting_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.npy");
    // version 2.0: a u32 header length of 4 GiB in a 12-byte file
    let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
    v2.extend_from_slice(&u32::MAX.to_le_bytes());
    // a header nesting 30,000 tuples (the Python-literal parser recurses per level)
    let mut deep = b"\x93NUMPY\x01\x00".to_vec();
    let text = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': {}",
        "(".repeat(30_000)
    );
    deep.extend_from_slice(&(text.len() as u16).to_le_bytes());
    deep.extend_from_slice(text.as_bytes());
    for bytes in [v2, deep] {
        std::fs::write(&path, &bytes).unwrap();
        for r in [
            measure(|| npy::read_npy(&path)),
            measure(|| npy::read_npy_from(Cursor::new(&bytes), &path, "")),
        ] {
            let (r, took, grew) = r;
            assert!(took < QUICK && grew < SMALL_ALLOC, "{took:?} {grew}");
            names_file(&r.unwrap_err(), &path).unwrap();
        }
    }
}

// ---- .npz ----------------------------------------------------------------------------------

/// CRC-32 (IEEE), for the hand-written zip archives.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A zip archive of `(name, data)` members, stored, or deflated as one stored deflate block
/// (so the archive reader's inflate path is exercised too).
fn zip(members: &[(&str, Vec<u8>)], deflate: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in members {
        let payload = if deflate {
            let mut p = vec![0x01];
            p.extend_from_slice(&(data.len() as u16).to_le_bytes());
            p.extend_from_slice(&(!(data.len() as u16)).to_le_bytes());
            p.extend_from_slice(data);
            p
        } else {
            data.clone()
        };
        let method: u16 = if deflate { 8 } else { 0 };
        let offset = out.len() as u32;
        let fields = |sig: u32, central: bool| {
            let mut h = sig.to_le_bytes().to_vec();
            if central {
                h.extend_from_slice(&20u16.to_le_bytes()); // made by
            }
            h.extend_from_slice(&20u16.to_le_bytes()); // needed
            h.extend_from_slice(&0u16.to_le_bytes()); // flags
            h.extend_from_slice(&method.to_le_bytes());
            h.extend_from_slice(&[0, 0, 0x21, 0]); // time, date
            h.extend_from_slice(&crc32(data).to_le_bytes());
            h.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&(name.len() as u16).to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes()); // extra
            if central {
                h.extend_from_slice(&[0; 6]); // comment length, disk, internal attributes
                h.extend_from_slice(&0u32.to_le_bytes()); // external attributes
                h.extend_from_slice(&offset.to_le_bytes());
            }
            h.extend_from_slice(name.as_bytes());
            h
        };
        out.extend(fields(0x0403_4b50, false));
        out.extend_from_slice(&payload);
        central.extend(fields(0x0201_4b50, true));
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn f64_npy(shape: &str, values: &[f64]) -> Vec<u8> {
    let mut b = npy_header("<f8", shape);
    for v in values {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b
}

fn npz_seeds() -> Vec<Vec<u8>> {
    let q = f64_npy("(2, 2)", &[100.0, 200.0, 400.0, 200.0]);
    let db = f64_npy("(3, 2)", &[110.0, 200.0, 300.0, 200.0, 410.0, 205.0]);
    let thr = f64_npy("()", &[25.0]);
    let members = vec![("utmQ.npy", q), ("utmDb.npy", db), ("posDistThr.npy", thr)];
    vec![
        zip(&members, false),
        zip(&members, true),
        zip(&members[..2], false),
        read(&common::fixture("recall_case/gt.npz")),
    ]
}

#[test]
fn fuzz_npz_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.npz");
    Fuzz::new("npz-gt", npz_seeds())
        .tokens(&[
            b"PK\x03\x04",
            b"PK\x01\x02",
            b"PK\x05\x06",
            b"\x93NUMPY\x01\x00",
        ])
        .run(|input| {
            write_case(&path, input)?;
            let accepted = match GroundTruth::read_npz(&path) {
                Ok(gt) => {
                    if let Err(e) = gt.positives(25.0) {
                        return Err(format!("positives of a read ground truth: {e}"));
                    }
                    true
                }
                Err(e) => {
                    names_file(&e, &path)?;
                    false
                }
            };
            if let Err(e) = npy::read_npz(&path, "utmDb") {
                names_file(&e, &path)?;
            }
            Ok(accepted)
        })
        .assert_clean();
}

#[test]
fn npz_members_declaring_huge_arrays_are_quick_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.npz");
    let mut huge = npy_header("<f8", "(4000000000000, 2)");
    huge.extend_from_slice(&[0u8; 32]);
    let thr = f64_npy("()", &[25.0]);
    for deflate in [false, true] {
        let bytes = zip(
            &[
                ("utmQ.npy", huge.clone()),
                ("utmDb.npy", huge.clone()),
                ("posDistThr.npy", thr.clone()),
            ],
            deflate,
        );
        std::fs::write(&path, &bytes).unwrap();
        let (r, took, grew) = measure(|| GroundTruth::read_npz(&path));
        assert!(took < QUICK && grew < SMALL_ALLOC, "{took:?} {grew}");
        let e = r.unwrap_err();
        assert!(matches!(e, EvalError::Npy { .. }), "{e:?}");
        names_file(&e, &path).unwrap();
    }
    // a member whose zip entry claims 2^32-1 bytes but holds 32 (the claim sizes nothing)
    let mut bytes = zip(&[("utmQ.npy", huge)], false);
    let at = bytes.windows(4).rposition(|w| w == b"PK\x01\x02").unwrap();
    bytes[at + 24..at + 28].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let (r, took, grew) = measure(|| npy::read_npz(&path, "utmQ"));
    assert!(took < QUICK && grew < SMALL_ALLOC, "{took:?} {grew}");
    names_file(&r.unwrap_err(), &path).unwrap();
}

/// Finding of the fuzz campaign (`npz-gt`, 200,000 cases, seed 0xCA3FA16, cases 80404, 89403,
/// 97550, …): a `posDistThr` of NaN, a negative or an infinite value was refused with an
/// `InvalidArgument` that did not name the `.npz` file. It names it now.
#[test]
fn an_invalid_pos_dist_thr_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("thr.npz");
    let q = f64_npy("(1, 2)", &[100.0, 200.0]);
    for thr in [f64::NAN, -1.0, f64::INFINITY, -0.0 - 1e-300] {
        let members = vec![
            ("utmQ.npy", q.clone()),
            ("utmDb.npy", q.clone()),
            ("posDistThr.npy", f64_npy("()", &[thr])),
        ];
        std::fs::write(&path, zip(&members, false)).unwrap();
        let e = GroundTruth::read_npz(&path).unwrap_err();
        assert!(
            matches!(
                e,
                EvalError::InvalidArgument {
                    name: "posDistThr",
                    ..
                }
            ),
            "{e:?}"
        );
        names_file(&e, &path).unwrap();
    }
}

/// Finding of the fuzz campaign (`npy`, seed 0xCA3FA16, case 166154): a 199-byte header whose
/// shape opens 11 dicts it never closes (`({{{{{{{{{{{5, 3)`) took 2.7 s in npyz's backtracking
/// Python-literal parser, doubling with every further `{`. Headers nesting deeper than 4 or with
/// unbalanced brackets or quotes are refused before that parser sees them.
#[test]
fn unbalanced_npy_headers_are_refused_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("unbalanced.npy");
    for shape in [
        format!("({}5, 3)", "{".repeat(11)),
        format!("({}5, 3)", "{".repeat(40)),
        format!("({}5, 3)", "[".repeat(40)),
        format!("{}5, 3)", "(".repeat(40)),
        "(5, 3".to_string(),
        "(5, 3))".to_string(),
        "(5, 3]".to_string(),
        "('5, 3)".to_string(),
    ] {
        let mut bytes = npy_header("<f4", &shape);
        bytes.extend_from_slice(&[0; 60]);
        std::fs::write(&path, &bytes).unwrap();
        let (r, took, _) = measure(|| npy::read_npy(&path));
        assert!(took < Duration::from_millis(50), "{shape}: {took:?}");
        let e = r.unwrap_err();
        names_file(&e, &path).unwrap();
    }
    // nesting within the limit still parses as numpy writes it
    let mut ok = npy_header("<f4", "(2, 2)");
    ok.extend_from_slice(&[0; 16]);
    std::fs::write(&path, &ok).unwrap();
    assert_eq!(npy::read_npy(&path).unwrap().shape, vec![2, 2]);
}

// ---- pickles (the VM) and cirtorch gnd files ------------------------------------------------

fn pickle_seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = [
        "gnd_old_p2.pkl",
        "gnd_revisited_p2.pkl",
        "gnd_revisited_p3.pkl",
        "gnd_revisited_p4.pkl",
        "gnd_revisited_p5.pkl",
        "gnd_tokyo_like_p4.pkl",
    ]
    .iter()
    .map(|n| read(&common::fixture(n)))
    .collect();
    // protocol 0 (text opcodes), from Python 3.11: pickle.dumps({'a': [1, 'x', 2.5, None]}, 0)
    seeds.push(b"(dp0\nVa\np1\n(lp2\nI1\naVx\np3\naF2.5\naNas.".to_vec());
    seeds
}

const PICKLE_TOKENS: &[&[u8]] = &[
    b"]",
    b")",
    b"}",
    b"(",
    b"a",
    b"e",
    b"l",
    b"t",
    b"s",
    b"u",
    b"2",
    b"0",
    b"h\x00",
    b"q\x00",
    b"\x94",
    b"\x85",
    b"R",
    b"b",
    b"N",
    b"]\x94",
    b"h\x01h\x01\x86\x94",
    b"\x8e\xff\xff\xff\xff\xff\xff\xff\x7f",
    b"B\xff\xff\xff\xff",
    b"\x8d\x00\x00\x00\x00\x00\x00\x00\x40",
    b"cnumpy.core.multiarray\n_reconstruct\n",
    b"\x8c\x05numpy\x8c\x05dtype\x93",
];

#[test]
fn fuzz_pickle_and_gnd() {
    let label = PathBuf::from("gnd_fuzz.pkl");
    Fuzz::new("pickle-gnd", pickle_seeds())
        .tokens(PICKLE_TOKENS)
        // the VM keeps a node (~100 bytes) per opcode byte; copies are bounded separately
        .alloc_limit(16 << 20, 256)
        .run(|input| {
            let value = match unpickle(input) {
                Ok(v) => v,
                Err(_) => return Ok(false), // a typed error with its offset
            };
            // everything a numpy array can hide in a pickle
            walk(&value, &mut |v| {
                let _ = v.to_ndarray();
                let _ = v.as_f64();
            });
            match Gnd::from_value(&value, &label) {
                Ok(g) => {
                    let _ = g.old_protocol();
                    let _ = g.revisited();
                    let _ = g.protocol();
                    Ok(true)
                }
                Err(e) => names_file(&e, &label).map(|()| false),
            }
        })
        .assert_clean();
}

fn walk(v: &vpr_eval::pickle::PyValue, f: &mut dyn FnMut(&vpr_eval::pickle::PyValue)) {
    use vpr_eval::pickle::PyValue;
    f(v);
    match v {
        PyValue::List(xs) | PyValue::Tuple(xs) | PyValue::Set(xs) => {
            xs.iter().for_each(|x| walk(x, f))
        }
        PyValue::Dict(items) => items.iter().for_each(|(k, x)| {
            walk(k, f);
            walk(x, f)
        }),
        PyValue::Object { args, state, .. } => {
            args.iter().for_each(|x| walk(x, f));
            if let Some(s) = state {
                walk(s, f);
            }
        }
        _ => {}
    }
}

#[test]
fn gnd_file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gnd_cut.pkl");
    let bytes = read(&common::fixture("gnd_revisited_p4.pkl"));
    for cut in [0, 1, 2, 10, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let e = Gnd::read(&path).unwrap_err();
        assert!(matches!(e, EvalError::Pickle { .. }), "{e:?}");
        names_file(&e, &path).unwrap();
    }
}

#[test]
fn pickle_length_fields_declaring_huge_sizes_are_quick_errors() {
    let cases: Vec<Vec<u8>> = vec![
        // BINBYTES8 / BINUNICODE8 / BYTEARRAY8 of 2^62 bytes, and 2^64 - 1
        [
            b"\x80\x04\x8e".as_slice(),
            &(1u64 << 62).to_le_bytes(),
            b"ab.",
        ]
        .concat(),
        [b"\x80\x04\x8d".as_slice(), &u64::MAX.to_le_bytes(), b"ab."].concat(),
        [
            b"\x80\x05\x96".as_slice(),
            &(1u64 << 62).to_le_bytes(),
            b".",
        ]
        .concat(),
        // BINSTRING / BINBYTES / BINUNICODE / LONG4 of 4 GiB
        [b"\x80\x02T".as_slice(), &u32::MAX.to_le_bytes(), b"."].concat(),
        [b"\x80\x03B".as_slice(), &u32::MAX.to_le_bytes(), b"."].concat(),
        [b"\x80\x02X".as_slice(), &u32::MAX.to_le_bytes(), b"."].concat(),
        [b"\x80\x02\x8b".as_slice(), &u32::MAX.to_le_bytes(), b"."].concat(),
        // FRAME declaring 2^62 bytes
        [
            b"\x80\x04\x95".as_slice(),
            &(1u64 << 62).to_le_bytes(),
            b"N.",
        ]
        .concat(),
        // a numpy array whose shape declares 4e12 x 2^62 elements over 8 bytes of data
        numpy_array_pickle(&[4_000_000_000_000, 1 << 62], 8),
        numpy_array_pickle(&[4_000_000_000_000], 8),
    ];
    for bytes in cases {
        let (r, took, grew) = measure(|| {
            unpickle(&bytes).map(|v| {
                (
                    v.to_ndarray(),
                    Gnd::from_value(&v, Path::new("g.pkl")).is_ok(),
                )
            })
        });
        assert!(took < QUICK && grew < SMALL_ALLOC, "{took:?} {grew}");
        match r {
            Err(e) => assert!(e.reason.contains("truncated"), "{e:?}"),
            Ok((array, gnd)) => assert!(array.is_none() && !gnd),
        }
    }
}

/// A protocol-2 pickle of `numpy.core.multiarray._reconstruct` + BUILD state with `shape`, dtype
/// `<f8` and `data_len` bytes of data.
fn numpy_array_pickle(shape: &[u64], data_len: usize) -> Vec<u8> {
    let mut p =
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R"
            .to_vec();
    // state = (1, shape, dtype, False, data)
    p.extend_from_slice(b"(K\x01(");
    for &d in shape {
        p.push(0x8a); // LONG1
        p.push(8);
        p.extend_from_slice(&d.to_le_bytes());
    }
    p.extend_from_slice(b"tcnumpy\ndtype\nX\x02\x00\x00\x00f8K\x00K\x01\x87R(K\x03X\x01\x00\x00\x00<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89C");
    p.push(data_len as u8);
    p.extend(std::iter::repeat_n(0u8, data_len));
    p.extend_from_slice(b"tb.");
    p
}

#[test]
fn numpy_array_pickle_helper_builds_an_array() {
    let v = unpickle(&numpy_array_pickle(&[1], 8)).unwrap();
    let a = v.to_ndarray().unwrap();
    assert_eq!(
        (a.shape, a.values, a.descr.as_str()),
        (vec![1], vec![0.0], "<f8")
    );
}

/// Unpickles `bytes` within [`QUICK`] and 16 MiB + 256 bytes per input byte (the VM's node per
/// opcode byte); the error, if any.
fn unpickle_bounded(what: &str, bytes: &[u8]) -> Option<vpr_eval::pickle::PickleError> {
    let (r, took, grew) = measure(|| unpickle(bytes).map(|_| ()));
    assert!(took < QUICK, "{what}: {took:?}");
    assert!(
        grew < SMALL_ALLOC + 256 * bytes.len(),
        "{what}: allocated {grew} for {} bytes",
        bytes.len()
    );
    r.err()
}

/// Finding: 100,000 nested lists (`]` pushed 100,000 times, then APPENDed into each other, a
/// 200 kB file) were refused at depth 200, but dropping the object graph recursed once per level
/// and overflowed the stack (an abort). The graph is now taken apart iteratively.
#[test]
fn pickle_nesting_100000_deep_is_an_error_not_a_stack_overflow() {
    let n = 100_000;
    let mut deep = b"\x80\x02".to_vec();
    deep.extend(std::iter::repeat_n(b']', n));
    deep.extend(std::iter::repeat_n(b'a', n - 1));
    deep.push(b'.');
    let e = unpickle_bounded("deep", &deep).unwrap();
    assert!(e.reason.contains("deeply"), "{e:?}");
    // the same nesting left on the stack without STOP (an error before any conversion)
    let e = unpickle_bounded("deep, truncated", &deep[..deep.len() - 1]).unwrap();
    assert!(e.reason.contains("truncated"), "{e:?}");
}

/// Finding: a "billion laughs" pickle — 60 levels, each a tuple holding the level below twice
/// through memo GETs (496 bytes) — expanded to 2^60 nodes when converted to a tree. Copies of
/// shared objects now have a budget proportional to the input.
#[test]
fn pickle_memo_bomb_is_refused_by_the_copy_budget() {
    let mut laughs = b"\x80\x04]\x94".to_vec(); // memo 0: []
    for i in 0..60u32 {
        laughs.extend_from_slice(b"j");
        laughs.extend_from_slice(&i.to_le_bytes());
        laughs.extend_from_slice(b"j");
        laughs.extend_from_slice(&i.to_le_bytes());
        laughs.extend_from_slice(b"\x86\x94"); // TUPLE2, MEMOIZE as i + 1
    }
    laughs.push(b'.');
    let e = unpickle_bounded("laughs", &laughs).unwrap();
    assert!(e.reason.contains("budget"), "{e:?}");
    // a list appended to itself twice doubles at every level of the walk
    let e = unpickle_bounded("cycle", b"\x80\x02]q\x00h\x00ah\x00a.").unwrap();
    assert!(
        e.reason.contains("deeply") || e.reason.contains("budget"),
        "{e:?}"
    );
}

/// Finding: REDUCE copied its argument tuple into every object, so one 5,000-item tuple reused
/// by 20,000 REDUCEs whose objects stay on the stack held 10^8 references (800 MB from 365 kB).
/// Objects now share the argument tuple.
#[test]
fn pickle_reduce_shares_its_argument_tuple() {
    let mut reduce = b"\x80\x02(".to_vec();
    reduce.extend(std::iter::repeat_n(b'N', 5_000));
    reduce.extend_from_slice(b"tq\x01");
    for _ in 0..20_000 {
        reduce.extend_from_slice(b"cbuiltins\nlist\nh\x01R");
    }
    reduce.extend_from_slice(b"N.");
    assert!(unpickle_bounded("reduce", &reduce).is_none());
}

/// Finding: the element count of a pickled numpy array was `shape.product()` unchecked, so with
/// overflow checks off (this workspace's profile for vpr-eval) a shape of
/// `(2^61 + 1, 2^61 + 1)` wrapped round to one element and 8 bytes of data were accepted as that
/// array. The product is checked now.
#[test]
fn pickled_array_shape_products_are_checked() {
    let big = (1u64 << 61) + 1;
    let v = unpickle(&numpy_array_pickle(&[big, big], 8)).unwrap();
    assert_eq!(v.to_ndarray(), None);
}

// ---- UTM file names and the image lists made of them ---------------------------------------

const NAMES: &[&str] = &[
    "@0381418.23@3946450.43@54@S@35.66@139.70@JHVdm@12@030@@@@@@.jpg",
    "@0000100.00@0000200.00@@@@@@@@@@@@@.jpg",
    "database/@0583825.50@4477396.44@17@T@40.44@-79.99@JMa0n@01@270@@@@20190310@@.png",
    "queries_night/@0381418.23@3946450.43@54@S@@@@@@@@@@@.jpg",
    "@1e3@-2.5@.jpg",
];

#[test]
fn fuzz_vpr_names() {
    let seeds = NAMES.iter().map(|n| n.as_bytes().to_vec()).collect();
    Fuzz::new("vpr-name", seeds)
        .tokens(&[b"@", b"/", b"\\", b".", b"e", b"-", b"nan", b"inf"])
        .run(|input| {
            let name = String::from_utf8_lossy(input);
            match parse_vpr_name(&name) {
                Ok(n) if !(n.east.is_finite() && n.north.is_finite()) => {
                    Err(format!("non-finite UTM accepted: {n:?}"))
                }
                Ok(_) => Ok(true),
                Err(EvalError::BadImageName { .. }) => Ok(false),
                Err(e) => Err(format!("not a BadImageName: {e:?}")),
            }
        })
        .assert_clean();
}

#[test]
fn fuzz_image_lists() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("database.txt");
    let folder = dir.path().join("database");
    std::fs::create_dir_all(&folder).unwrap();
    let paths_file = vpr_eval::images_paths_file(&folder);
    let seeds = vec![
        NAMES.join("\n").into_bytes(),
        format!("{}\n\n{}\n", NAMES[0], NAMES[1]).into_bytes(),
        NAMES[2].as_bytes().to_vec(),
    ];
    Fuzz::new("image-lists", seeds)
        .tokens(&[b"\n", b"\r\n", b"@", b"@1e300@1e300@"])
        .run(|input| {
            write_case(&list, input)?;
            let accepted = match GroundTruth::from_name_lists(&list, &list) {
                Ok(gt) => {
                    if gt.db_names.as_ref().map(Vec::len) != Some(gt.n_db()) {
                        return Err("names and coordinates disagree".into());
                    }
                    gt.positives(25.0).map_err(|e| e.to_string())?;
                    true
                }
                Err(e) => {
                    names_file(&e, &list)?;
                    false
                }
            };
            write_case(&paths_file, input)?;
            if let Err(e) = VprFolder::read(&folder) {
                // a listed file that is absent is named with the list it came from
                let msg = e.to_string();
                if !msg.contains("database_images_paths.txt") && !msg.contains("database") {
                    return Err(format!(
                        "error names neither the list nor the folder: {msg}"
                    ));
                }
            }
            Ok(accepted)
        })
        .assert_clean();
}

#[test]
fn huge_coordinates_in_names_do_not_break_the_positives() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("l.txt");
    std::fs::write(
        &list,
        "@1e308@-1e308@.jpg\n@-1.7e308@1.7e308@.jpg\n@9.2e18@9.2e18@.jpg\n@0@0@.jpg\n",
    )
    .unwrap();
    let gt = GroundTruth::from_name_lists(&list, &list).unwrap();
    let p = gt.positives(25.0).unwrap();
    // every image is its own positive, and only its own
    assert_eq!(p.lists, vec![vec![0], vec![1], vec![2], vec![3]]);
}

// ---- the array data of an accepted `.npy` decode exactly (sanity of the seeds) ------------

#[test]
fn npy_seeds_are_valid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.npy");
    for (i, s) in npy_seeds().iter().enumerate() {
        std::fs::write(&path, s).unwrap();
        let a = npy::read_npy(&path).unwrap_or_else(|e| panic!("seed {i}: {e}"));
        if let ArrayData::F32(v) = &a.data
            && a.shape == [2, 2]
        {
            assert_eq!(v, &[1.0, -2.0, 0.333_251_95, 2f32.powi(-24)]);
        }
    }
    let gt_dir = tempfile::tempdir().unwrap();
    let p = gt_dir.path().join("g.npz");
    for (i, s) in npz_seeds().iter().enumerate() {
        std::fs::write(&p, s).unwrap();
        GroundTruth::read_npz(&p).unwrap_or_else(|e| panic!("npz seed {i}: {e}"));
    }
    for (i, s) in pickle_seeds().iter().enumerate() {
        unpickle(s).unwrap_or_else(|e| panic!("pickle seed {i}: {e:?}"));
    }
}
