//! `.npy` files as numpy writes them (`scripts/gen_fixtures.py`): f32/f64, C/Fortran order, big
//! endian, int64/int32 ranks; our writer (npyz's) writes `np.save`'s payload byte for byte under
//! an equivalent header of the same length.

use std::path::PathBuf;

use serde_json::Value;
use vpr_eval::{Descriptors, EvalError, Ranks};

mod common;

fn fixture(name: &str) -> PathBuf {
    common::fixture("npy").join(name)
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("npy_expected.json")).unwrap()).unwrap()
}

fn matrix(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
        .collect()
}

#[test]
fn reads_every_layout_exactly() {
    let exp = expected();
    let want32: Vec<f32> = matrix(&exp["values"]).iter().map(|&x| x as f32).collect();
    for name in ["f32_c.npy", "f32_fortran.npy", "f32_big_endian.npy"] {
        let d = Descriptors::read_npy(fixture(name)).unwrap();
        assert_eq!((d.rows(), d.dim()), (5, 3), "{name}");
        assert_eq!(d.as_slice(), &want32[..], "{name}");
    }
    // f64 is rounded to f32 once
    let want64: Vec<f32> = matrix(&exp["values_f64"])
        .iter()
        .map(|&x| x as f32)
        .collect();
    assert_eq!(
        Descriptors::read_npy(fixture("f64_c.npy"))
            .unwrap()
            .as_slice(),
        &want64[..]
    );
    let want_ranks: Vec<f64> = matrix(&exp["ranks"]);
    for name in ["i64_ranks.npy", "i32_ranks_fortran.npy"] {
        let r = Ranks::read_npy(fixture(name)).unwrap();
        assert_eq!((r.n_rows, r.n_queries), (5, 3));
        for q in 0..3 {
            for row in 0..5 {
                assert_eq!(r.column(q)[row] as f64, want_ranks[row * 3 + q], "{name}");
            }
        }
    }
}

/// The header dictionary (as text, spaces dropped and a trailing tuple comma normalised: the
/// Python literal `(5, 3, )` is `(5, 3)`) and the payload of a version-1 `.npy` file.
fn header_and_payload(bytes: &[u8]) -> (String, Vec<u8>) {
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
    let header: String = header.chars().filter(|c| !c.is_whitespace()).collect();
    (header.replace(",)", ")"), bytes[10 + len..].to_vec())
}

#[test]
fn writer_matches_numpy() {
    let dir = tempfile::tempdir().unwrap();
    let d = Descriptors::read_npy(fixture("f32_c.npy")).unwrap();
    let p = dir.path().join("out.npy");
    d.write_npy(&p).unwrap();
    let r = Ranks::read_npy(fixture("i64_ranks.npy")).unwrap();
    let q = dir.path().join("ranks.npy");
    r.write_npy(&q).unwrap();
    for (ours, numpy) in [(p, "f32_c.npy"), (q, "i64_ranks.npy")] {
        let (ours, numpy) = (
            std::fs::read(ours).unwrap(),
            std::fs::read(fixture(numpy)).unwrap(),
        );
        assert_eq!(ours.len(), numpy.len(), "header padding differs");
        assert_eq!(header_and_payload(&ours), header_and_payload(&numpy));
    }
    // and they read back exactly
    assert_eq!(
        Descriptors::read_npy(dir.path().join("out.npy")).unwrap(),
        d
    );
}

#[test]
fn bad_files_are_typed_errors_naming_the_file() {
    match Descriptors::read_npy(fixture("f32_nan.npy")) {
        Err(EvalError::NonFinite {
            row: 3,
            col: 1,
            path: Some(p),
            ..
        }) => {
            assert_eq!(p, fixture("f32_nan.npy"))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Descriptors::read_npy(fixture("f32_1d.npy")),
        Err(EvalError::ArrayFormat { .. })
    ));
    assert!(matches!(
        Ranks::read_npy(fixture("f32_c.npy")),
        Err(EvalError::ArrayFormat { .. })
    ));
    let bytes = std::fs::read(fixture("f32_c.npy")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for cut in [4, 60, bytes.len() - 3] {
        let p = dir.path().join("cut.npy");
        std::fs::write(&p, &bytes[..cut]).unwrap();
        match Descriptors::read_npy(&p) {
            Err(EvalError::Npy { path, .. }) => assert_eq!(path, p),
            other => panic!("cut {cut}: {other:?}"),
        }
    }
    assert!(matches!(
        Descriptors::read_npy(dir.path().join("absent.npy")),
        Err(EvalError::Io { .. })
    ));
}
