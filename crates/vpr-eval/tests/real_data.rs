//! The real Tokyo 24/7 and Pitts30k-test ground truth of the real-data cache
//! (`scripts/fetch-real-data.sh`; from patchnetvlad 0.1.8): every Tokyo query has a positive
//! within 25 m and the mean is 118.3 per query; Pitts30k-test 142.1. Skipped when the cache is absent.

use vpr_eval::{GroundTruth, TokyoSplit};

fn load(name: &str) -> Option<GroundTruth> {
    match nightvision_core::real_data_file(name) {
        Ok(p) => Some(GroundTruth::read_npz(p).unwrap()),
        Err(reason) => {
            println!("skipped: {reason}");
            None
        }
    }
}

#[test]
fn tokyo247_positives() {
    let Some(gt) = load("gt/tokyo247.npz") else {
        return;
    };
    assert_eq!((gt.n_queries(), gt.n_db()), (315, 75_984));
    assert_eq!(gt.pos_dist_thr, 25.0);
    let names = gt.query_names.as_ref().expect("name lists next to the npz");
    assert!(names[0].ends_with(".jpg"));
    assert_eq!(gt.db_names.as_ref().unwrap().len(), 75_984);
    let s = gt.positives(25.0).unwrap().summary();
    assert_eq!(s.without_positive, 0);
    assert!(s.min >= 1);
    assert_eq!(format!("{:.1}", s.mean), "118.3");
    assert_eq!(TokyoSplit::Night.indices(gt.n_queries()).len(), 105);
}

#[test]
fn pitts30k_test_positives() {
    let Some(gt) = load("gt/pitts30k_test.npz") else {
        return;
    };
    assert_eq!((gt.n_queries(), gt.n_db()), (6_816, 10_000));
    assert_eq!(gt.db_names.as_ref().unwrap().len(), 10_000);
    let s = gt.positives(25.0).unwrap().summary();
    assert_eq!(format!("{:.1}", s.mean), "142.1");
}
