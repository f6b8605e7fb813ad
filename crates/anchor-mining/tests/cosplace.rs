//! CosPlace classes and groups against CosPlace's own Python code run on numpy float64
//! (`scripts/make_fixtures.py`). Integer ids: compared exactly.

mod common;

use anchor_mining::{
    AnchorError, ClassId, CosPlaceConfig, GroupId, build_classes_from_names, class_and_group,
    read_utm_list,
};

#[test]
fn class_and_group_ids_match_cosplace() {
    let (shape, tuples) = common::npy::<f64>("cosplace_tuples.npy");
    let (ishape, ids) = common::npy::<i64>("cosplace_ids.npy");
    assert_eq!(shape, vec![1000, 3]);
    assert_eq!(ishape, vec![1000, 6]);
    let cfg = CosPlaceConfig::default();
    for i in 0..1000 {
        let (c, g) = class_and_group(tuples[3 * i], tuples[3 * i + 1], tuples[3 * i + 2], &cfg);
        let e = &ids[6 * i..6 * i + 6];
        assert_eq!(
            c,
            ClassId {
                east: e[0],
                north: e[1],
                heading: e[2]
            },
            "tuple {i}: {:?}",
            &tuples[3 * i..3 * i + 3]
        );
        assert_eq!(
            g,
            GroupId {
                east: e[3],
                north: e[4],
                heading: e[5]
            },
            "tuple {i}"
        );
        assert!(g.flat(&cfg) < cfg.num_possible_groups());
    }
}

fn ids3(v: &serde_json::Value) -> [i64; 3] {
    let a = v.as_array().unwrap();
    [
        a[0].as_i64().unwrap(),
        a[1].as_i64().unwrap(),
        a[2].as_i64().unwrap(),
    ]
}

#[test]
fn classes_from_names_match_cosplace_initialize() {
    let fx = common::json("cosplace_names.json");
    let names: Vec<String> = fx["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    let out = build_classes_from_names(&names, &CosPlaceConfig::default()).unwrap();
    assert_eq!(out.num_images, names.len());
    assert_eq!(
        out.num_classes_before_filter as u64,
        fx["num_classes_before_filter"].as_u64().unwrap()
    );
    let groups = fx["groups"].as_array().unwrap();
    assert_eq!(out.groups.len(), groups.len());
    for (got, exp) in out.groups.iter().zip(groups) {
        let g = ids3(&exp["group"]);
        assert_eq!([got.id.east, got.id.north, got.id.heading], g);
        let classes = exp["classes"].as_array().unwrap();
        assert_eq!(got.classes.len(), classes.len());
        for (gc, ec) in got.classes.iter().zip(classes) {
            assert_eq!([gc.id.east, gc.id.north, gc.id.heading], ids3(&ec["class"]));
            let imgs: Vec<usize> = ec["images"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(gc.images, imgs);
            assert!(gc.images.len() >= 10);
        }
    }
    // Same through a list file; a bad line is reported with its number.
    let dir = tempfile_dir();
    let list = dir.join("list.txt");
    std::fs::write(&list, names.join("\n")).unwrap();
    let (read_names, records) = read_utm_list(&list).unwrap();
    assert_eq!(read_names, names);
    assert_eq!(records.len(), names.len());
    std::fs::write(&list, format!("{}\n\nno_utm_here.jpg\n", names[0])).unwrap();
    let err = read_utm_list(&list).unwrap_err();
    assert!(
        matches!(err, AnchorError::ListLine { line: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("list.txt:3"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("anchor-mining-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
