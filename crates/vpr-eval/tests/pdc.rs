//! Partial divide-and-conquer: the database is encoded once and cached; a changed image list,
//! model or setting is detected and recomputed; queries always use the query encoder.

use std::cell::Cell;
use std::path::PathBuf;

use vpr_eval::{
    BoxError, CacheStatus, DescriptorCache, EvalError, FnEncoder, PdcOptions,
    partial_divide_and_conquer, partial_divide_and_conquer_routed,
};

/// A deterministic "model": descriptor = (len of path, model offset, 1).
fn encoder<'a>(
    id: &str,
    offset: f32,
    calls: &'a Cell<usize>,
) -> FnEncoder<impl FnMut(&[PathBuf]) -> Result<Vec<f32>, BoxError> + 'a> {
    FnEncoder::new(id, 3, move |batch: &[PathBuf]| {
        calls.set(calls.get() + batch.len());
        Ok(batch
            .iter()
            .flat_map(|p| [p.to_string_lossy().len() as f32, offset, 1.0])
            .collect())
    })
}

#[test]
fn database_is_encoded_once_and_stale_caches_are_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = DescriptorCache::new(tmp.path().join("cache"));
    let db: Vec<PathBuf> = (0..10)
        .map(|i| PathBuf::from(format!("db/{i}.jpg")))
        .collect();
    let q: Vec<PathBuf> = (0..3)
        .map(|i| PathBuf::from(format!("q/{i}.jpg")))
        .collect();
    let (day_calls, night_calls) = (Cell::new(0), Cell::new(0));
    let opts = PdcOptions {
        db_batch_size: 4,
        ..PdcOptions::default()
    };
    let mut day = encoder("day-r18", 0.0, &day_calls);
    let mut night = encoder("night-r18", 1.0, &night_calls);
    let out = partial_divide_and_conquer(&db, &q, &mut day, &mut night, &cache, &opts).unwrap();
    assert_eq!(out.db_cache, CacheStatus::Miss);
    assert_eq!((day_calls.get(), night_calls.get()), (10, 3));
    assert_eq!(out.database.row(0), &[8.0, 0.0, 1.0]);
    assert_eq!(out.queries.row(0), &[7.0, 1.0, 1.0]);

    // second evaluation: only the queries are encoded
    let out2 = partial_divide_and_conquer(&db, &q, &mut day, &mut night, &cache, &opts).unwrap();
    assert_eq!(out2.db_cache, CacheStatus::Hit);
    assert_eq!((day_calls.get(), night_calls.get()), (10, 6));
    assert_eq!(out2.database, out.database);

    // a different image list: stale, recomputed
    let mut db2 = db.clone();
    db2[3] = PathBuf::from("db/other.jpg");
    let out3 = partial_divide_and_conquer(&db2, &q, &mut day, &mut night, &cache, &opts).unwrap();
    assert_eq!(out3.db_cache, CacheStatus::Stale);
    assert_eq!(day_calls.get(), 20);
    assert_eq!(out3.database.row(3)[0], "db/other.jpg".len() as f32);

    // a different setting: stale again
    let opts2 = PdcOptions {
        extra: "resize=480".into(),
        ..opts.clone()
    };
    let out4 = partial_divide_and_conquer(&db2, &q, &mut day, &mut night, &cache, &opts2).unwrap();
    assert_eq!(out4.db_cache, CacheStatus::Stale);
    // a different model id gets its own entry
    let other_calls = Cell::new(0);
    let mut day_b = encoder("day-r50", 0.0, &other_calls);
    let out5 =
        partial_divide_and_conquer(&db2, &q, &mut day_b, &mut night, &cache, &opts2).unwrap();
    assert_eq!(out5.db_cache, CacheStatus::Miss);
    assert_eq!(other_calls.get(), 10);
}

#[test]
fn encoder_errors_and_dimension_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = DescriptorCache::new(tmp.path());
    let db: Vec<PathBuf> = (0..5).map(|i| PathBuf::from(format!("{i}.jpg"))).collect();
    let calls = Cell::new(0);
    let mut ok = encoder("a", 0.0, &calls);
    let mut failing = FnEncoder::new("broken", 3, |_: &[PathBuf]| -> Result<Vec<f32>, BoxError> {
        Err("cannot decode image".into())
    });
    match partial_divide_and_conquer(
        &db,
        &db,
        &mut failing,
        &mut ok,
        &cache,
        &PdcOptions::default(),
    ) {
        Err(EvalError::Encoder {
            model,
            start: 0,
            end: 5,
            ..
        }) => assert_eq!(model, "broken"),
        other => panic!("{other:?}"),
    }
    let mut wrong_dim = FnEncoder::new("d4", 4, |b: &[PathBuf]| -> Result<Vec<f32>, BoxError> {
        Ok(vec![0.0; b.len() * 4])
    });
    assert!(matches!(
        partial_divide_and_conquer(
            &db,
            &db,
            &mut ok,
            &mut wrong_dim,
            &cache,
            &PdcOptions::default()
        ),
        Err(EvalError::SizeMismatch { .. })
    ));
    let mut short = FnEncoder::new("short", 3, |_: &[PathBuf]| -> Result<Vec<f32>, BoxError> {
        Ok(vec![0.0; 2])
    });
    assert!(matches!(
        partial_divide_and_conquer(
            &db,
            &db,
            &mut short,
            &mut ok,
            &cache,
            &PdcOptions::default()
        ),
        Err(EvalError::SizeMismatch { .. })
    ));
}

#[test]
fn a_corrupt_cache_entry_is_an_error_naming_its_file_not_a_silent_miss() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = DescriptorCache::new(tmp.path().join("cache"));
    let db: Vec<PathBuf> = (0..5).map(|i| PathBuf::from(format!("{i}.jpg"))).collect();
    let calls = Cell::new(0);
    let mut day = encoder("day", 0.0, &calls);
    let mut night = encoder("night", 0.5, &calls);
    let opts = PdcOptions::default();
    partial_divide_and_conquer(&db, &db, &mut day, &mut night, &cache, &opts).unwrap();
    let entry = |ext: &str| {
        std::fs::read_dir(tmp.path().join("cache"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(ext))
            .unwrap()
    };
    // A damaged matrix: the reader's error names the file.
    let npy = entry(".npy");
    let good = std::fs::read(&npy).unwrap();
    std::fs::write(&npy, &good[..good.len() / 2]).unwrap();
    let e = partial_divide_and_conquer(&db, &db, &mut day, &mut night, &cache, &opts).unwrap_err();
    assert!(e.to_string().contains(&*npy.to_string_lossy()), "{e}");
    // A damaged key: a JSON error naming the key file.
    std::fs::write(&npy, &good).unwrap();
    let key = entry(".key.json");
    std::fs::write(&key, "{not json").unwrap();
    match partial_divide_and_conquer(&db, &db, &mut day, &mut night, &cache, &opts) {
        Err(EvalError::Json { path, .. }) => assert_eq!(path, key),
        other => panic!("{other:?}"),
    }
}

#[test]
fn routed_queries_go_to_the_model_of_their_condition_and_keep_their_order() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = DescriptorCache::new(tmp.path().join("cache"));
    let db: Vec<PathBuf> = (0..5)
        .map(|i| PathBuf::from(format!("db/{i}.jpg")))
        .collect();
    // Tokyo order: day, sunset, night, day, sunset, night
    let q: Vec<PathBuf> = (0..6)
        .map(|i| PathBuf::from(format!("q/{i}.jpg")))
        .collect();
    let night: Vec<bool> = (0..6).map(|i| i % 3 != 0).collect();
    let (day_calls, night_calls) = (Cell::new(0), Cell::new(0));
    let mut day = encoder("day", 0.0, &day_calls);
    let mut noc = encoder("noc", 1.0, &night_calls);
    let opts = PdcOptions::default();
    let out = partial_divide_and_conquer_routed(&db, &q, &night, &mut day, &mut noc, &cache, &opts)
        .unwrap();
    assert_eq!(out.db_cache, CacheStatus::Miss);
    // 5 database + 2 day queries by the daytime model, 4 queries by the night model
    assert_eq!((day_calls.get(), night_calls.get()), (7, 4));
    let offsets: Vec<f32> = (0..6).map(|i| out.queries.row(i)[1]).collect();
    assert_eq!(offsets, vec![0.0, 1.0, 1.0, 0.0, 1.0, 1.0]);
    // the plain variant's database (cached) and night rows agree with the routed one's
    let plain = partial_divide_and_conquer(&db, &q, &mut day, &mut noc, &cache, &opts).unwrap();
    assert_eq!(plain.db_cache, CacheStatus::Hit);
    assert_eq!(plain.database, out.database);
    assert_eq!(plain.queries.row(2), out.queries.row(2));
    // all day: no night-model call; flags of the wrong length: an error
    let before = night_calls.get();
    let all_day =
        partial_divide_and_conquer_routed(&db, &q, &[false; 6], &mut day, &mut noc, &cache, &opts)
            .unwrap();
    assert_eq!(night_calls.get(), before);
    assert_eq!(all_day.queries.rows(), 6);
    let err =
        partial_divide_and_conquer_routed(&db, &q, &[true; 5], &mut day, &mut noc, &cache, &opts)
            .unwrap_err();
    assert!(matches!(err, EvalError::SizeMismatch { .. }), "{err}");
}
