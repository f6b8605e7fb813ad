//! Probe behind docs/PERFORMANCE.md's "Descriptor extraction in the pipelines": seconds to
//! describe the first 200 database frames of an exported world with the off-the-shelf
//! MobileNetV2-GeM at `max_side` 320, multi-scale without and with CLAHE, for a given
//! `ExtractConfig::batch_pixels` (76800 = one 320×240 frame per batch). Writes the descriptors to
//! `OUT-{ms,ms+clahe}.f32` so that runs can be compared bit for bit. Not built with the
//! workspace; to run it:
//!
//! ```text
//! cp scripts/probes/extract_probe.rs examples/ && cargo build --example extract_probe
//! target/debug/examples/extract_probe WORLD OUT [BATCH_PIXELS]; rm examples/extract_probe.rs
//! ```
use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::Device;
use nightvision::core::clahe::ClaheConfig;
use nightvision::metric::multiscale::{DEFAULT_SCALES, ExtractConfig, extract_files};

fn main() {
    let world = PathBuf::from(std::env::args().nth(1).unwrap());
    let out = std::env::args().nth(2).unwrap();
    let batch_pixels: usize = std::env::args()
        .nth(3)
        .map(|s| s.parse().unwrap())
        .unwrap_or(nightvision::metric::DEFAULT_BATCH_PIXELS);
    let device = Device::default();
    let net = nightvision::pipeline::mobilenet_v2_gem(&device).unwrap();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(world.join("tokyo/images/test/database"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths.truncate(200);
    let ms = ExtractConfig {
        max_side: 320,
        scales: DEFAULT_SCALES.to_vec(),
        batch_pixels,
        ..ExtractConfig::default()
    };
    let clahe = ExtractConfig {
        clahe: Some(ClaheConfig::default()),
        ..ms.clone()
    };
    for (name, cfg) in [("ms", ms), ("ms+clahe", clahe)] {
        let t = Instant::now();
        let x = extract_files(&net, &paths, &cfg, &device).unwrap();
        let v: Vec<f32> = x.into_data().try_into_vec_as().unwrap();
        println!("{name}: {:.2} s for {} images", t.elapsed().as_secs_f64(), paths.len());
        let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
        std::fs::write(format!("{out}-{name}.f32"), bytes).unwrap();
    }
}
