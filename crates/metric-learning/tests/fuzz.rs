//! Fuzzing the readers of user bytes in metric-learning (issue 15): cirtorch's training pickle
//! (`TupleDatabase::from_cirtorch_pickle`) and saved whitenings (`Whitening::load`, safetensors).
//! `NIGHTVISION_FUZZ_CASES` (10,000 by default) seeded mutations each (see
//! `nightvision_core::testing::fuzz`); the property: never a panic, an abort or an allocation
//! beyond a small multiple of the input, and every error a typed one naming the file.

use std::path::Path;
use std::time::Duration;

use burn::tensor::{Device, Tensor, TensorData};
use metric_learning::data::TupleDatabase;
use metric_learning::whitening::Whitening;
use nightvision_core::testing::fuzz::{Fuzz, TrackingAllocator, measure, names_file, write_case};

#[global_allocator]
static ALLOC: TrackingAllocator = TrackingAllocator;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

/// `{"train": {...}, "val": {...}}` in protocol 0 (text opcodes): two clusters of two images.
const TRAIN_P0: &[u8] = b"(dp0\nVtrain\np1\n(dp2\nVcids\np3\n(lp4\nVaa01\np5\naVbb02\np6\naVcc03\np7\naVdd04\np8\nasVcluster\np9\n(lp10\nI0\naI0\naI1\naI1\nasVqidxs\np11\n(lp12\nI0\naI2\nasVpidxs\np13\n(lp14\nI1\naI3\nassVval\np15\ng2\ns.";

#[derive(serde::Serialize)]
struct Split {
    cids: Vec<String>,
    cluster: Vec<i64>,
    qidxs: Vec<i64>,
    pidxs: Vec<i64>,
}

#[derive(serde::Serialize)]
struct Db {
    train: Split,
    val: Split,
}

/// The training pickle as synthetic-places exports it (serde-pickle, protocols 3 and 2).
fn serde_pickle_seeds() -> Vec<Vec<u8>> {
    let split = || Split {
        cids: (0..6).map(|i| format!("{i:032x}")).collect(),
        cluster: vec![0, 0, 0, 1, 1, 1],
        qidxs: vec![0, 1, 3, 4],
        pidxs: vec![1, 2, 4, 5],
    };
    let db = Db {
        train: split(),
        val: split(),
    };
    vec![
        serde_pickle::to_vec(&db, serde_pickle::SerOptions::new()).unwrap(),
        serde_pickle::to_vec(&db, serde_pickle::SerOptions::new().proto_v2()).unwrap(),
    ]
}

fn train_seeds() -> Vec<Vec<u8>> {
    let mut seeds = vec![fixture("sfm_mini.pkl"), TRAIN_P0.to_vec()];
    seeds.extend(serde_pickle_seeds());
    seeds
}

#[test]
fn fuzz_cirtorch_train_pickle() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train.pkl");
    Fuzz::new("train-pickle", train_seeds())
        .tokens(&[
            b"]", b"(", b"a", b"e", b"l", b"t", b"h\x00", b"q\x00", b"\x94", b"s", b"u", b"2", b"N",
        ])
        // serde-pickle keeps a `Value` per opcode, as ours does
        .alloc_limit(16 << 20, 256)
        .run(|input| {
            write_case(&path, input)?;
            match TupleDatabase::from_cirtorch_pickle(&path, "train", "ims") {
                Ok(db) => {
                    if db.qidxs.len() != db.pidxs.len() || db.clusters.len() != db.images.len() {
                        return Err("an inconsistent database was accepted".into());
                    }
                    Ok(true)
                }
                Err(e) => names_file(&e, &path).map(|()| false),
            }
        })
        .assert_clean();
}

/// Reads `bytes` as a training pickle within a second and 16 MiB + 256 bytes per input byte.
fn read_bounded(dir: &Path, bytes: &[u8]) -> metric_learning::Result<TupleDatabase> {
    let path = dir.join("t.pkl");
    std::fs::write(&path, bytes).unwrap();
    let (r, took, grew) = measure(|| TupleDatabase::from_cirtorch_pickle(&path, "train", "ims"));
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert!(grew < (16 << 20) + 256 * bytes.len(), "allocated {grew}");
    if let Err(e) = &r {
        names_file(e, &path).unwrap();
    }
    r
}

/// Finding: serde-pickle builds and drops nested values recursively, so 100,000 nested lists
/// (a 200 kB file of `]` … `a`) overflowed the stack and aborted. The training pickle is read
/// with vpr-eval's pickle VM now, which refuses nesting deeper than 200 and takes the object
/// graph apart without recursion.
#[test]
fn deeply_nested_train_pickle_is_an_error_not_a_stack_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let n = 100_000;
    let mut deep = b"\x80\x02".to_vec();
    deep.extend(std::iter::repeat_n(b']', n));
    deep.extend(std::iter::repeat_n(b'a', n - 1));
    deep.push(b'.');
    assert!(read_bounded(dir.path(), &deep).is_err());
    // the same nesting under the "train" key
    let mut keyed = b"\x80\x02}X\x05\x00\x00\x00train".to_vec();
    keyed.extend(std::iter::repeat_n(b']', n));
    keyed.extend(std::iter::repeat_n(b'a', n - 1));
    keyed.extend_from_slice(b"s.");
    assert!(read_bounded(dir.path(), &keyed).is_err());
}

#[test]
fn train_pickle_length_fields_declaring_huge_sizes_are_quick_errors() {
    let dir = tempfile::tempdir().unwrap();
    for bytes in [
        [
            b"\x80\x04\x8e".as_slice(),
            &(1u64 << 62).to_le_bytes(),
            b"ab.",
        ]
        .concat(),
        [b"\x80\x04\x8d".as_slice(), &u64::MAX.to_le_bytes(), b"ab."].concat(),
        [b"\x80\x02X".as_slice(), &u32::MAX.to_le_bytes(), b"."].concat(),
        [b"\x80\x02\x8b".as_slice(), &u32::MAX.to_le_bytes(), b"."].concat(),
        [
            b"\x80\x04\x95".as_slice(),
            &(1u64 << 62).to_le_bytes(),
            b"N.",
        ]
        .concat(),
    ] {
        assert!(read_bounded(dir.path(), &bytes).is_err());
    }
}

#[test]
fn train_pickle_seeds_are_read() {
    let dir = tempfile::tempdir().unwrap();
    for s in train_seeds() {
        let db = read_bounded(dir.path(), &s).unwrap();
        assert!(!db.qidxs.is_empty());
    }
    let db = read_bounded(dir.path(), TRAIN_P0).unwrap();
    assert_eq!(
        (db.clusters, db.qidxs, db.pidxs),
        (vec![0, 0, 1, 1], vec![0, 2], vec![1, 3])
    );
}

// ---- whitening files -----------------------------------------------------------------------

/// Finding (by reading the loader while writing its fuzz test; the mutations did not reach it):
/// a whitening file whose tensors disagree in size was refused with `MetricError::Shape`, which
/// does not name the file. It is a `MetricError::Whitening` naming the file now.
#[test]
fn inconsistent_whitening_files_are_named() {
    use safetensors::tensor::{Dtype, TensorView};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.safetensors");
    let f64s = |n: usize| -> Vec<u8> { (0..n).flat_map(|i| (i as f64).to_le_bytes()).collect() };
    let (mean, proj, eig, jit) = (f64s(3), f64s(4), f64s(3), f64s(1));
    let views = vec![
        ("mean", TensorView::new(Dtype::F64, vec![3], &mean).unwrap()),
        (
            "projection",
            TensorView::new(Dtype::F64, vec![2, 2], &proj).unwrap(),
        ),
        (
            "eigenvalues",
            TensorView::new(Dtype::F64, vec![3], &eig).unwrap(),
        ),
        (
            "jitter",
            TensorView::new(Dtype::F64, vec![1], &jit).unwrap(),
        ),
    ];
    let meta = std::collections::HashMap::from([("kind".to_string(), "pca".to_string())]);
    std::fs::write(&path, safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
    let e = Whitening::load(&path).unwrap_err();
    assert!(
        matches!(e, metric_learning::MetricError::Whitening { .. }),
        "{e:?}"
    );
    names_file(&e, &path).unwrap();
}

/// Finding: errors of the consistency checks (`TupleDatabase::new`: a cluster per image, a
/// positive per query, pair indices in range) of a database read from a pickle did not name
/// the file. They are `MetricError::Pickle` naming it now.
#[test]
fn inconsistent_train_pickles_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.pkl");
    // four images, three clusters
    let text =
        String::from_utf8(TRAIN_P0.to_vec())
            .unwrap()
            .replacen("aI1\nasVqidxs", "asVqidxs", 1);
    std::fs::write(&path, text).unwrap();
    let e = TupleDatabase::from_cirtorch_pickle(&path, "train", "ims").unwrap_err();
    assert!(
        matches!(e, metric_learning::MetricError::Pickle { .. }),
        "{e:?}"
    );
    names_file(&e, &path).unwrap();
    assert!(e.to_string().contains("clusters"), "{e}");
}

fn whitening_seeds() -> Vec<Vec<u8>> {
    let device = Device::default();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let (n, d) = (12, 3);
    let data: Vec<f32> = (0..n * d)
        .map(|i| ((i * 7919) % 23) as f32 / 23.0 - 0.5)
        .collect();
    let x = Tensor::<2>::from_data(TensorData::new(data, [n, d]), &device);
    Whitening::learn_pca(x).unwrap().save(&path).unwrap();
    vec![std::fs::read(&path).unwrap()]
}

#[test]
fn fuzz_whitening_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.safetensors");
    Fuzz::new("whitening", whitening_seeds())
        .tokens(&[
            b"{",
            b"\"shape\":[4000000000000]",
            b"\"dtype\":\"F32\"",
            b"\"kind\":\"pca\"",
        ])
        .run(|input| {
            write_case(&path, input)?;
            match Whitening::load(&path) {
                Ok(w) => {
                    let dim = w.projection_matrix().nrows();
                    let _ = w.to_linear(&Device::default());
                    if dim != w.projection_matrix().ncols() {
                        return Err("a non-square projection was accepted".into());
                    }
                    Ok(true)
                }
                Err(e) => names_file(&e, &path).map(|()| false),
            }
        })
        .assert_clean();
}

/// Finding of the first `fuzz_cirtorch_train_pickle` run: serde-pickle gives every MARK (`(`) a
/// fresh stack with room for 128 values, so 6,000 MARKs (a 6 kB file) took 24 MB — 4 kB per
/// input byte. Read with vpr-eval's VM, a MARK costs one index.
#[test]
fn a_flood_of_marks_does_not_amplify_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut flood = b"\x80\x02".to_vec();
    flood.extend(std::iter::repeat_n(b'(', 100_000));
    flood.push(b'.');
    assert!(read_bounded(dir.path(), &flood).is_err());
    // and the same after a valid start (the fuzz case's shape)
    let mut flood = TRAIN_P0[..TRAIN_P0.len() / 2].to_vec();
    flood.extend(std::iter::repeat_n(b'(', 100_000));
    assert!(read_bounded(dir.path(), &flood).is_err());
}
