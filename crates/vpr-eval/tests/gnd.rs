//! cirtorch gnd pickles written by `scripts/gen_fixtures.py` (Python 3.11, numpy 1.24) with pickle
//! protocols 2–5: revisited easy/hard/junk with float64 numpy `bbx`, old ok/junk with int32 numpy
//! `bbx` and numpy index arrays, and the Tokyo 24/7 layout (bbx None, imlist == qimlist).

use serde_json::Value;
use vpr_eval::{EvalError, Gnd, GndProtocol};

mod common;
use common::{fixture, ids, json_fixture};

fn expected() -> Value {
    json_fixture("gnd_expected.json")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

fn check(g: &Gnd, exp: &Value) {
    assert_eq!(g.imlist, strings(&exp["imlist"]));
    assert_eq!(g.qimlist, strings(&exp["qimlist"]));
    let eg = exp["gnd"].as_array().unwrap();
    assert_eq!(g.gnd.len(), eg.len());
    for (a, b) in g.gnd.iter().zip(eg) {
        for (key, got) in [("ok", &a.ok), ("easy", &a.easy), ("hard", &a.hard)] {
            match b.get(key) {
                Some(v) => assert_eq!(got.as_ref().unwrap(), &ids(v), "{key}"),
                None => assert!(got.is_none(), "{key}"),
            }
        }
        assert_eq!(a.junk, ids(&b["junk"]));
        match &b["bbx"] {
            Value::Null => assert!(a.bbx.is_none()),
            v => {
                // exact: the JSON holds the same f64 / int values numpy pickled
                let e: Vec<f64> = v
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect();
                assert_eq!(a.bbx.as_ref().unwrap(), &e);
            }
        }
    }
}

#[test]
fn revisited_gnd_every_protocol() {
    let exp = expected();
    for proto in 2..=5 {
        let g = Gnd::read(fixture(&format!("gnd_revisited_p{proto}.pkl"))).unwrap();
        assert_eq!(g.protocol(), GndProtocol::Revisited);
        check(&g, &exp["revisited"]);
        assert_eq!(g.revisited().unwrap().len(), 6);
        assert!(matches!(
            g.old_protocol(),
            Err(EvalError::MissingKey { .. })
        ));
    }
}

#[test]
fn old_protocol_gnd_with_numpy_arrays() {
    let g = Gnd::read(fixture("gnd_old_p2.pkl")).unwrap();
    assert_eq!(g.protocol(), GndProtocol::Old);
    check(&g, &expected()["old"]);
    assert_eq!(g.old_protocol().unwrap().len(), 6);
}

#[test]
fn tokyo_like_gnd() {
    let g = Gnd::read(fixture("gnd_tokyo_like_p4.pkl")).unwrap();
    assert_eq!(g.protocol(), GndProtocol::Old);
    assert_eq!(g.imlist, g.qimlist);
    check(&g, &expected()["tokyo_like"]);
}

#[test]
fn truncated_pickle_is_a_typed_error() {
    let bytes = std::fs::read(fixture("gnd_revisited_p4.pkl")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for cut in [1, 10, bytes.len() / 2, bytes.len() - 1] {
        let p = dir.path().join("cut.pkl");
        std::fs::write(&p, &bytes[..cut]).unwrap();
        match Gnd::read(&p) {
            Err(EvalError::Pickle { path, offset, .. }) => {
                assert_eq!(path, p);
                assert!(offset <= cut);
            }
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn wrong_structure_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    // {'imlist': ['a'], 'qimlist': ['q'], 'gnd': [{'ok': [3], 'junk': []}]}  (index 3 of 1 image)
    let p = dir.path().join("bad.pkl");
    std::fs::write(
        &p,
        b"\x80\x02}q\x00(X\x06\x00\x00\x00imlistq\x01]q\x02X\x01\x00\x00\x00aq\x03aX\x07\x00\x00\x00qimlistq\x04]q\x05X\x01\x00\x00\x00qq\x06aX\x03\x00\x00\x00gndq\x07]q\x08}q\t(X\x02\x00\x00\x00okq\n]q\x0bK\x03aX\x04\x00\x00\x00junkq\x0c]q\ruau.",
    )
    .unwrap();
    match Gnd::read(&p) {
        Err(EvalError::IndexOutOfRange {
            what,
            index: 3,
            len: 1,
        }) => {
            assert!(what.contains("gnd[0].ok[0]"), "{what}")
        }
        other => panic!("{other:?}"),
    }
    // a pickled list instead of a dict
    std::fs::write(&p, b"\x80\x02]q\x00.").unwrap();
    assert!(matches!(Gnd::read(&p), Err(EvalError::GndFormat { .. })));
    // a dict without gnd
    std::fs::write(
        &p,
        b"\x80\x02}q\x00(X\x06\x00\x00\x00imlistq\x01]q\x02X\x07\x00\x00\x00qimlistq\x03]q\x04u.",
    )
    .unwrap();
    assert!(matches!(Gnd::read(&p), Err(EvalError::MissingKey { key, .. }) if key == "gnd"));
}
