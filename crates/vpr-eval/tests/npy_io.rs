//! `.npy` files as numpy writes them (`scripts/gen_fixtures.py`): f32/f64, C/Fortran order, big
//! endian, int64/int32 ranks; our writer is byte-identical to `np.save`.

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

#[test]
fn writer_is_byte_identical_to_numpy() {
    let d = Descriptors::read_npy(fixture("f32_c.npy")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("out.npy");
    d.write_npy(&p).unwrap();
    assert_eq!(
        std::fs::read(&p).unwrap(),
        std::fs::read(fixture("f32_c.npy")).unwrap()
    );
    let r = Ranks::read_npy(fixture("i64_ranks.npy")).unwrap();
    let p = dir.path().join("ranks.npy");
    r.write_npy(&p).unwrap();
    assert_eq!(
        std::fs::read(&p).unwrap(),
        std::fs::read(fixture("i64_ranks.npy")).unwrap()
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
