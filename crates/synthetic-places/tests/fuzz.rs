//! Fuzzing the world's configuration reader, `WorldConfig::from_json_file` (issue 15):
//! `NIGHTVISION_FUZZ_CASES` (10,000 by default) seeded mutations of valid configuration files
//! (see `nightvision_core::testing::fuzz`). The property: never a panic, and either a
//! configuration every field of which is within its documented range, or a typed error naming
//! the file.

use nightvision_core::testing::fuzz::{Fuzz, TrackingAllocator, names_file, write_case};
use synthetic_places::{SynthError, WorldConfig};

#[global_allocator]
static ALLOC: TrackingAllocator = TrackingAllocator;

fn seeds() -> Vec<Vec<u8>> {
    vec![
        serde_json::to_vec_pretty(&WorldConfig::default()).unwrap(),
        serde_json::to_vec(&WorldConfig::tiny()).unwrap(),
        br#"{"places": 5, "width": 64, "height": 48, "datasets": {"gan": false}}"#.to_vec(),
    ]
}

#[test]
fn fuzz_world_config_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("world.json");
    Fuzz::new("world-config", seeds())
        .tokens(&[
            b"[",
            b"{",
            b"\"places\": ",
            b"\"train_places\": ",
            b"-",
            b"1e40",
            b"null",
        ])
        .run(|input| {
            write_case(&path, input)?;
            match WorldConfig::from_json_file(&path) {
                Ok(cfg) => {
                    // what the world is built from must be sane: the validation is the gate
                    let total = cfg.places.checked_add(cfg.train_places);
                    if total.is_none_or(|t| t > 100_000) {
                        return Err(format!(
                            "accepted places {} + train_places {}",
                            cfg.places, cfg.train_places
                        ));
                    }
                    if cfg.width > 4096 || cfg.height > 4096 || cfg.places_per_street > 64 {
                        return Err(format!("accepted an out-of-range config: {cfg:?}"));
                    }
                    Ok(true)
                }
                Err(e) => names_or_field(&e, &path).map(|()| false),
            }
        })
        .assert_clean();
}

/// Parse and I/O errors name the file; validation errors name the field.
fn names_or_field(e: &SynthError, path: &std::path::Path) -> Result<(), String> {
    match e {
        SynthError::InvalidConfig { .. }
        | SynthError::NoPlaces { .. }
        | SynthError::NoViewpoints { .. } => Ok(()),
        other => names_file(other, path),
    }
}

/// Finding: `places + train_places` was summed unchecked (and the workspace's dev profile has
/// no overflow checks for this crate), so `"places": 18446744073709551615` with 125 training
/// places wrapped round to 124 ≤ 100,000 and passed validation; `World::new` then reserved
/// `usize::MAX / places_per_street` streets and aborted. The sum is checked now.
#[test]
fn places_that_overflow_the_total_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("world.json");
    for (places, train) in [(u64::MAX, 125u64), (u64::MAX - 10, 12), (1 << 63, 1 << 63)] {
        std::fs::write(
            &path,
            format!(r#"{{"places": {places}, "train_places": {train}}}"#),
        )
        .unwrap();
        let e = WorldConfig::from_json_file(&path).unwrap_err();
        assert!(
            matches!(
                e,
                SynthError::InvalidConfig {
                    field: "places + train_places",
                    ..
                }
            ),
            "{e:?}"
        );
        let cfg = WorldConfig {
            places: places as usize,
            train_places: train as usize,
            ..WorldConfig::tiny()
        };
        assert!(synthetic_places::World::new(&cfg).is_err());
    }
}
