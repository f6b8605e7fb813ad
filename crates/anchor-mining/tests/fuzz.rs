//! Fuzzing CosPlace's image lists (issue 15): `read_utm_list` (one UTM-named path per line, the
//! `<folder>_images_paths.txt` caches) and the classes built from them. `NIGHTVISION_FUZZ_CASES`
//! (10,000 by default) seeded mutations (see `nightvision_core::testing::fuzz`); the property:
//! never a panic, an abort or an allocation beyond a small multiple of the input, and every error
//! a typed one naming the file and line.

use anchor_mining::{CosPlaceConfig, build_classes, read_utm_list};
use nightvision_core::testing::fuzz::{Fuzz, TrackingAllocator, names_file, write_case};

#[global_allocator]
static ALLOC: TrackingAllocator = TrackingAllocator;

const NAMES: &[&str] = &[
    "train/@0000105.00@0000203.00@33@T@@@@@000@@@@@@.jpg",
    "train/@0000108.50@0000207.25@33@T@@@@@045@@@@@@.jpg",
    "train/@0583825.50@4477396.44@17@T@40.44@-79.99@JMa0n@01@270@@@@20190310@@.jpg",
    "@-0000012.00@-0000030.00@@@@@@@@359.9@@@@@@.png",
];

#[test]
fn fuzz_cosplace_image_lists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train_images_paths.txt");
    let cfg = CosPlaceConfig {
        min_images_per_class: 1,
        ..CosPlaceConfig::default()
    };
    let seeds = vec![
        NAMES.join("\n").into_bytes(),
        format!("{}\n\n{}\r\n", NAMES[0], NAMES[3]).into_bytes(),
    ];
    Fuzz::new("cosplace-lists", seeds)
        .tokens(&[b"\n", b"@", b"@1e300@-1e300@", b"@nan@", b"/"])
        .run(|input| {
            write_case(&path, input)?;
            match read_utm_list(&path) {
                Ok((names, records)) => {
                    if names.len() != records.len() {
                        return Err("names and records disagree".into());
                    }
                    match build_classes(&records, &cfg) {
                        Ok(c) if c.num_images != records.len() => Err("classes lost images".into()),
                        // an empty list is refused by the class builder, with a typed error
                        _ => Ok(true),
                    }
                }
                Err(e) => names_file(&e, &path).map(|()| false),
            }
        })
        .assert_clean();
}
