//! Recall@N and positives against the brute-force numpy computation of `scripts/gen_fixtures.py`
//! (random L2-normalised descriptors, UTM points with exact 25 m boundary cases and a query with
//! no positive), read from the same `.npy` / `.npz` files Python wrote.

use std::path::PathBuf;

use burn::tensor::Device;
use serde_json::Value;
use vpr_eval::{
    Descriptors, EvalError, FirstHits, GroundTruth, KnnConfig, Metric, exact_knn, recall_at_n,
};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/recall_case")
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("expected.json")).unwrap()).unwrap()
}

fn rows(v: &Value) -> Vec<Vec<u32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        })
        .collect()
}

/// f32 scores on the device vs f64 scores in numpy: their difference is below ~1e-6 for unit
/// vectors of dimension 24; if numpy's smallest gap between consecutive top-21 scores exceeds this
/// margin the neighbour lists must be identical.
const SCORE_MARGIN: f64 = 1e-5;

#[test]
fn positives_match_brute_force_with_boundary() {
    let exp = expected();
    let gt = GroundTruth::read_npz(dir().join("gt.npz")).unwrap();
    assert_eq!(gt.pos_dist_thr, 25.0);
    let pos = gt.positives(25.0).unwrap();
    assert_eq!(pos.lists, rows(&exp["positives"]));
    // the fixture's boundary queries: exactly 25 m away are positives
    assert!(pos.lists[0].contains(&5) && pos.lists[1].contains(&6));
    assert!(pos.lists[2].is_empty());
}

#[test]
fn neighbours_and_recall_match_numpy() {
    let exp = expected();
    let db = Descriptors::read_npy(dir().join("db.npy")).unwrap();
    let q = Descriptors::read_npy(dir().join("queries.npy")).unwrap();
    let gt = GroundTruth::read_npz(dir().join("gt.npz")).unwrap();
    gt.check_counts(db.rows(), q.rows()).unwrap();
    let pos = gt.positives(25.0).unwrap();
    let ns: Vec<usize> = exp["n"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    for (name, metric) in [("l2", Metric::L2), ("ip", Metric::InnerProduct)] {
        let e = &exp[name];
        assert!(
            e["min_gap"].as_f64().unwrap() > SCORE_MARGIN,
            "fixture too tight for {name}"
        );
        // small blocks and chunks so that several blocks, padding and merging are exercised
        let cfg = KnnConfig {
            block_rows: 96,
            chunk: 8,
            ..KnnConfig::new(metric)
        };
        let nn = exact_knn(&db, &q, 20, &cfg, &Device::default()).unwrap();
        assert_eq!(nn.to_rows(), rows(&e["preds"]), "{name}");
        let r = recall_at_n(&nn.to_rows(), &pos, &ns).unwrap();
        let want: Vec<f64> = e["recall"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        for (a, b) in r.values.iter().zip(&want) {
            // hits / n * 100 in both: identical f64 expression
            assert!((a - b).abs() < 1e-12, "{name}: {:?} vs {want:?}", r.values);
        }
        assert!(
            r.values[0] > 0.0 && r.values[3] < 100.0,
            "recall must be informative"
        );
    }
}

#[test]
fn bad_inputs_are_typed_errors() {
    let gt = GroundTruth::read_npz(dir().join("gt.npz")).unwrap();
    let pos = gt.positives(25.0).unwrap();
    // a query list longer than the ground truth
    let preds = vec![vec![0u32]; gt.n_queries() + 1];
    assert!(matches!(
        FirstHits::new(&preds, &pos),
        Err(EvalError::SizeMismatch { .. })
    ));
    assert!(matches!(
        gt.check_counts(gt.n_db(), gt.n_queries() + 1),
        Err(EvalError::SizeMismatch { .. })
    ));
    // N = 0
    let preds = vec![vec![0u32]; gt.n_queries()];
    assert!(matches!(
        recall_at_n(&preds, &pos, &[0, 1]),
        Err(EvalError::InvalidArgument { .. })
    ));
    // truncated npz
    let bytes = std::fs::read(dir().join("gt.npz")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("gt.npz");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    match GroundTruth::read_npz(&p) {
        Err(EvalError::Npy { path, .. }) => assert_eq!(path, p),
        other => panic!("{other:?}"),
    }
    // npz without utmDb
    std::fs::copy(dir().join("../npy/f32_c.npy"), tmp.path().join("x.npy")).unwrap();
    let z = tmp.path().join("nokey.npz");
    {
        let mut w = npyz::npz::NpzWriter::create(&z).unwrap();
        use npyz::WriterBuilder;
        let mut a = w
            .array::<f64>("utmQ", Default::default())
            .unwrap()
            .default_dtype()
            .shape(&[1, 2])
            .begin_nd()
            .unwrap();
        a.extend([1.0, 2.0]).unwrap();
        a.finish().unwrap();
    }
    assert!(
        matches!(GroundTruth::read_npz(&z), Err(EvalError::MissingKey { key, .. }) if key == "utmDb")
    );
}
