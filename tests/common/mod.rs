//! Helpers shared by the integration tests.

use std::path::PathBuf;

/// A tiny exported world (8 test places) for the bench tests.
#[allow(dead_code)] // not every test binary uses both helpers
pub fn tiny_world(dir: &std::path::Path) -> PathBuf {
    tiny_world_with(dir, 4)
}

/// A tiny exported world with 8 test places and `train_places` training places (tuple mining
/// needs ≥ 7: a positive and 5 negatives of other places).
#[allow(dead_code)] // not every test binary uses every helper
pub fn tiny_world_with(dir: &std::path::Path, train_places: usize) -> PathBuf {
    world_with(
        dir,
        &nightvision::places::WorldConfig {
            places: 8,
            train_places,
            ..nightvision::places::WorldConfig::tiny()
        },
    )
}

/// The world of `cfg`, exported into `dir/world`.
#[allow(dead_code)] // not every test binary uses every helper
pub fn world_with(dir: &std::path::Path, cfg: &nightvision::places::WorldConfig) -> PathBuf {
    let world_dir = dir.join("world");
    let world = nightvision::places::World::new(cfg).unwrap();
    nightvision::places::export(
        &world,
        &nightvision::places::ExportOptions {
            out_dir: world_dir.clone(),
            overwrite: true,
            progress: false,
        },
    )
    .unwrap();
    world_dir
}
