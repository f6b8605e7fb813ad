//! Export layouts, names, pickles, atomicity and bad input.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The evaluation side's parser of UTM-named files (the project's one parser) reads what the
/// writer wrote: `(east, north, heading)`.
fn parse_utm_heading(name: &str) -> Result<(f64, f64, Option<f64>), vpr_eval::EvalError> {
    let n = vpr_eval::parse_vpr_name(name)?;
    Ok((n.east, n.north, n.heading))
}

use synthetic_places::{ExportOptions, ImageName, SynthError, World, WorldConfig, export};

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>, root: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out, root);
        } else {
            out.insert(
                p.strip_prefix(root).unwrap().to_path_buf(),
                std::fs::read(&p).unwrap(),
            );
        }
    }
}

/// UTM (east, north) of a file, as the VPR readers parse it.
fn utm(name: &str) -> (f64, f64) {
    let (e, n, _) = parse_utm_heading(name).unwrap_or_else(|e| panic!("bad name {name}: {e}"));
    (e, n)
}

#[test]
fn names_match_the_python_reference_formatter() {
    // fixture from scripts/make_name_fixture.py (a Python re-implementation of the downloader's
    // format_coord / get_dst_image_name); string equality, no tolerance needed
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/names.json"
    ))
    .unwrap();
    let cases: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(cases.len(), 40);
    for c in cases {
        let name = ImageName {
            east: c["east"].as_f64().unwrap(),
            north: c["north"].as_f64().unwrap(),
            zone: c["zone"].as_u64().unwrap() as u8,
            letter: c["letter"].as_str().unwrap().chars().next().unwrap(),
            lat: c["lat"].as_f64().unwrap(),
            lon: c["lon"].as_f64().unwrap(),
            pano_id: c["pano_id"].as_str().unwrap().into(),
            tile: Some(c["tile"].as_u64().unwrap() as u32),
            heading: Some(c["heading"].as_f64().unwrap()),
            pitch: Some(c["pitch"].as_f64().unwrap()),
            timestamp: c["timestamp"].as_str().unwrap().into(),
            note: c["note"].as_str().unwrap().into(),
        };
        assert_eq!(name.file_name("jpg"), c["expected"].as_str().unwrap());
    }
}

#[test]
fn export_writes_every_dataset_in_its_real_format() {
    let cfg = WorldConfig::tiny();
    let world = World::new(&cfg).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("world");
    let summary = export(&world, &ExportOptions::new(&out)).unwrap();
    let test = out.join("vpr/images/test");

    // --- VPR test set: counts, and exactly one place within 25 m of each query
    let db = files_in(&test.join("database"));
    let q = files_in(&test.join("queries"));
    let qn = files_in(&test.join("queries_night"));
    assert_eq!(
        (db.len(), q.len(), qn.len()),
        (cfg.places * cfg.db_views, cfg.places, cfg.places)
    );
    assert!(
        db.iter()
            .all(|n| n.ends_with("@day@.jpg") && n.starts_with("@0"))
    );
    assert!(qn.iter().all(|n| n.ends_with("@night@.jpg")));
    let place_of = |n: &str| n.split('@').nth(7).unwrap()[1..6].to_string();
    for query in q.iter().chain(&qn) {
        let (qe, qnn) = utm(query);
        let pos: BTreeSet<String> = db
            .iter()
            .filter(|d| {
                let (e, n) = utm(d);
                ((e - qe).powi(2) + (n - qnn).powi(2)).sqrt() <= 25.0
            })
            .map(|d| place_of(d))
            .collect();
        assert_eq!(
            pos,
            BTreeSet::from([place_of(query)]),
            "positives of {query}"
        );
    }
    // every file decodes at the configured size
    let img = image::open(test.join("queries_night").join(&qn[0])).unwrap();
    assert_eq!((img.width(), img.height()), (cfg.width, cfg.height));

    // --- Tokyo-style: sorted queries cycle day / sunset / night, same station per triple
    let tq = files_in(&out.join("tokyo/images/test/queries"));
    assert_eq!(tq.len(), 3 * cfg.places);
    for (i, n) in tq.iter().enumerate() {
        let note = n.split('@').nth(14).unwrap();
        assert_eq!(note, ["day", "sunset", "night"][i % 3], "{n}");
        assert_eq!(utm(n), utm(&tq[i - i % 3]));
    }
    assert_eq!(files_in(&out.join("tokyo/images/test/database")), db);
    // shared images are byte-identical copies
    assert_eq!(
        std::fs::read(test.join("database").join(&db[0])).unwrap(),
        std::fs::read(out.join("tokyo/images/test/database").join(&db[0])).unwrap()
    );

    // --- GAN: unpaired, disjoint places, list files
    let a = files_in(&out.join("gan/trainA"));
    let b = files_in(&out.join("gan/trainB"));
    assert_eq!((a.len(), b.len()), (cfg.gan_images, cfg.gan_images));
    let pa: BTreeSet<String> = a.iter().map(|n| place_of(n)).collect();
    let pb: BTreeSet<String> = b.iter().map(|n| place_of(n)).collect();
    assert!(pa.is_disjoint(&pb), "{pa:?} vs {pb:?}");
    let list = std::fs::read_to_string(out.join("gan/trainA.txt")).unwrap();
    assert_eq!(list.lines().count(), a.len());
    for line in list.lines() {
        assert!(out.join("gan").join(line).is_file(), "{line}");
    }

    // --- cirtorch pickle: {'train','val'} × {'cids','cluster','qidxs','pidxs'}, files at cid2filename
    let root = out.join("cirtorch/train/synthetic-places");
    let bytes = std::fs::read(root.join("synthetic-places.pkl")).unwrap();
    let v: serde_pickle::Value = serde_pickle::from_slice(&bytes, Default::default()).unwrap();
    let serde_pickle::Value::Dict(top) = v else {
        panic!("top level is not a dict")
    };
    let key = |s: &str| serde_pickle::HashableValue::String(s.into());
    let mut total = 0;
    for split in ["train", "val"] {
        let serde_pickle::Value::Dict(d) = &top[&key(split)] else {
            panic!("{split} is not a dict")
        };
        let list = |k: &str| match &d[&key(k)] {
            serde_pickle::Value::List(l) => l.clone(),
            other => panic!("{split}/{k}: {other:?}"),
        };
        let (cids, cluster, qidxs, pidxs) =
            (list("cids"), list("cluster"), list("qidxs"), list("pidxs"));
        assert_eq!(cids.len(), cluster.len());
        assert_eq!(qidxs.len(), pidxs.len());
        assert!(!qidxs.is_empty());
        let int = |v: &serde_pickle::Value| match v {
            serde_pickle::Value::I64(i) => *i as usize,
            other => panic!("not an int: {other:?}"),
        };
        for (qv, pv) in qidxs.iter().zip(&pidxs) {
            let (qi, pi) = (int(qv), int(pv));
            assert_ne!(qi, pi);
            assert_eq!(
                int(&cluster[qi]),
                int(&cluster[pi]),
                "a positive pair spans two clusters"
            );
        }
        for c in &cids {
            let serde_pickle::Value::String(cid) = c else {
                panic!("cid is not a str")
            };
            assert_eq!(cid.len(), 32);
            let path = root
                .join("ims")
                .join(&cid[30..32])
                .join(&cid[28..30])
                .join(&cid[26..28])
                .join(cid);
            // no extension (as in retrieval-SfM-120k): readers sniff the content, as PIL does
            let decoded = image::ImageReader::open(&path)
                .and_then(|r| r.with_guessed_format())
                .map(|r| r.decode());
            assert!(matches!(decoded, Ok(Ok(_))), "{}", path.display());
        }
        total += cids.len();
    }
    assert_eq!(total, cfg.train_places * cfg.tuple_views);

    // --- CosPlace: every place's views stay in one (10 m, 10 m, 30°) class
    let train = files_in(&out.join("cosplace/train"));
    let mut classes: BTreeMap<String, BTreeSet<(i64, i64, i64)>> = BTreeMap::new();
    for n in &train {
        let (e, no, h) = parse_utm_heading(n).unwrap();
        let h = h.unwrap();
        classes.entry(place_of(n)).or_default().insert((
            (e / 10.0).floor() as i64,
            (no / 10.0).floor() as i64,
            (h / 30.0).floor() as i64,
        ));
    }
    assert!(!classes.is_empty());
    for (p, c) in &classes {
        assert_eq!(c.len(), 1, "place {p} spreads over classes {c:?}");
    }
    assert!(out.join("cosplace/val/queries_night").is_dir());

    // --- training views are rendered once and shared: every CosPlace training image and every
    // GAN day image is also a cirtorch tuple image, byte for byte
    let mut cir = BTreeMap::new();
    walk(&root.join("ims"), &mut cir, &root);
    let cir: BTreeSet<Vec<u8>> = cir.into_values().collect();
    for (folder, names) in [("cosplace/train", &train), ("gan/trainA", &a)] {
        for n in names {
            let bytes = std::fs::read(out.join(folder).join(n)).unwrap();
            assert!(cir.contains(&bytes), "{folder}/{n} is not a cirtorch image");
        }
    }
    // night GAN images are their own renders
    for n in &b {
        let bytes = std::fs::read(out.join("gan/trainB").join(n)).unwrap();
        assert!(!cir.contains(&bytes), "gan/trainB/{n}");
    }

    // --- manifest and summary agree with the tree
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["config"]["seed"], 7);
    assert_eq!(summary.counts["vpr/images/test/database"], db.len());
    assert!(
        summary.renders < summary.files,
        "shared images are rendered once"
    );
}

#[test]
fn two_exports_are_byte_identical() {
    let cfg = WorldConfig {
        width: 64,
        height: 48,
        ..WorldConfig::tiny()
    };
    let world = World::new(&cfg).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    export(&world, &ExportOptions::new(&a)).unwrap();
    export(&World::new(&cfg).unwrap(), &ExportOptions::new(&b)).unwrap();
    let (mut ta, mut tb) = (BTreeMap::new(), BTreeMap::new());
    walk(&a, &mut ta, &a);
    walk(&b, &mut tb, &b);
    assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
    for (k, v) in &ta {
        assert!(v == &tb[k], "{} differs", k.display());
    }
}

#[test]
fn bad_input_gives_typed_errors_and_leaves_nothing_behind() {
    // zero places / zero viewpoints
    let e = World::new(&WorldConfig {
        places: 0,
        ..WorldConfig::tiny()
    })
    .unwrap_err();
    assert!(matches!(e, SynthError::NoPlaces { field: "places" }), "{e}");
    let e = World::new(&WorldConfig {
        query_views: 0,
        ..WorldConfig::tiny()
    })
    .unwrap_err();
    assert!(
        matches!(
            e,
            SynthError::NoViewpoints {
                field: "query_views"
            }
        ),
        "{e}"
    );
    let world = World::new(&WorldConfig {
        width: 32,
        height: 24,
        ..WorldConfig::tiny()
    })
    .unwrap();
    assert!(matches!(
        world.render(
            99,
            synthetic_places::Role::Query,
            0,
            synthetic_places::Condition::Day
        ),
        Err(SynthError::IndexOutOfRange { .. })
    ));

    let dir = tempfile::tempdir().unwrap();
    // an existing folder with other content is refused and untouched
    let out = dir.path().join("busy");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let e = export(&world, &ExportOptions::new(&out)).unwrap_err();
    assert!(
        matches!(e, SynthError::OutputNotEmpty { entries: 1, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("busy"));
    assert_eq!(files_in(&out), vec!["notes.txt"]);
    // an existing empty folder is fine
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    export(&world, &ExportOptions::new(&empty)).unwrap();
    assert!(empty.join("manifest.json").is_file());
    // a file where the folder should be
    let file = dir.path().join("file.txt");
    std::fs::write(&file, "x").unwrap();
    let e = export(&world, &ExportOptions::new(&file)).unwrap_err();
    assert!(matches!(e, SynthError::OutputNotADirectory { .. }), "{e}");
    // an unwritable location: the parent is a file
    let e = export(&world, &ExportOptions::new(file.join("sub/out"))).unwrap_err();
    assert!(matches!(e, SynthError::OutputNotWritable { .. }), "{e}");
    // a read-only parent (only meaningful when not running as root)
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let ro = dir.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        if std::fs::write(ro.join("probe"), "x").is_err() {
            let e = export(&world, &ExportOptions::new(ro.join("out"))).unwrap_err();
            assert!(matches!(e, SynthError::OutputNotWritable { .. }), "{e}");
        } else {
            println!("skipped: read-only folder check (running as root)");
            std::fs::remove_file(ro.join("probe")).unwrap();
        }
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(files_in(&ro).is_empty());
    }
    // nothing half-written next to the outputs
    assert_eq!(
        files_in(dir.path()),
        vec!["busy", "empty", "file.txt", "ro"]
    );
}
