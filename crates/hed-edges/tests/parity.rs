//! Parity of HED with an independent PyTorch forward of the port (sniklaus/pytorch-hed `run.py`).
//!
//! Fixtures: `scripts/gen_fixtures.py` (Debian's torch 1.13) builds the port's network, runs it on
//! two real photo crops (61×83, odd on both sides: floor-mode pooling gives 30×41, 15×20, 7×10,
//! 3×5) and stores the five upsampled side logits and the fused logits — for seeded random
//! weights at widths 4-8-16-32-32 (`hed_random.pth`, committed, so CI checks parity without the
//! cache) and for the real BSDS500 weights of the real-data cache.

use std::path::PathBuf;

use burn::tensor::Device;
use hed_edges::{HedConfig, HedOutput, upsample_bilinear};
use nightvision_core::testing::{Array, max_rel_err, read_safetensors};
use std::collections::BTreeMap;

/// f32 convolutions summed in a different order (oneDNN vs burn's flex kernels) through 13
/// layers with inputs on the 0–255 scale: the usual f32 parity bound, relative to each map's scale.
const REL_TOL: f32 = 1e-4;

/// Bilinear resampling is a two-tap-per-axis weighted sum: a few f32 ulps of the value scale.
const UPSAMPLE_TOL: f32 = 1e-6;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn check(out: HedOutput, io: &BTreeMap<String, Array>, prefix: &str) {
    for (i, side) in out.sides.into_iter().enumerate() {
        let err = max_rel_err(side, &io[&format!("{prefix}.side{}", i + 1)]);
        println!("{prefix} side {}: {err:.2e}", i + 1);
        assert!(err < REL_TOL, "{prefix} side {}: {err}", i + 1);
    }
    let err = max_rel_err(out.fused, &io[&format!("{prefix}.fused")]);
    println!("{prefix} fused: {err:.2e}");
    assert!(err < REL_TOL, "{prefix} fused: {err}");
}

#[test]
fn random_weights_match_the_pytorch_port() {
    let device = Device::default();
    let io = read_safetensors(fixture("hed_io.safetensors")).unwrap();
    let mut hed = HedConfig::new()
        .with_widths([4, 8, 16, 32, 32])
        .init(&device);
    let report = hed.load_weights(fixture("hed_random.pth")).unwrap();
    assert_eq!(report.applied.len(), 2 * (13 + 5 + 1));
    let x = io["x"].tensor::<4>(&device);
    check(hed.try_forward_output(x).unwrap(), &io, "random");
}

#[test]
fn real_weights_match_the_pytorch_port() {
    let path = match nightvision_core::real_data_file("weights/hed_bsds500.safetensors") {
        Ok(p) => p,
        Err(reason) => {
            println!("skipped: {reason}");
            return;
        }
    };
    let device = Device::default();
    let io = read_safetensors(fixture("hed_io.safetensors")).unwrap();
    let mut hed = HedConfig::new().init(&device);
    hed.load_weights(&path).unwrap();
    let x = io["x"].tensor::<4>(&device);
    let out = hed.forward_output(x.clone());
    check(out, &io, "real");
    // `forward` is the sigmoid of the fused logits.
    let probs = hed.forward(x);
    let want = io["real.fused"]
        .data
        .iter()
        .map(|v| 1.0 / (1.0 + (-v).exp()))
        .collect();
    let want = Array {
        data: want,
        shape: io["real.fused"].shape.clone(),
    };
    assert!(max_rel_err(probs, &want) < REL_TOL);
}

#[test]
fn bilinear_upsampling_matches_pytorch_align_corners_false() {
    let device = Device::default();
    let up = read_safetensors(fixture("upsample.safetensors")).unwrap();
    for case in ["a", "b", "c", "d", "e"] {
        let input = &up[&format!("{case}.in")];
        let want = &up[&format!("{case}.out")];
        let size = [want.shape[2], want.shape[3]];
        let err = max_rel_err(upsample_bilinear(input.tensor::<4>(&device), size), want);
        println!("upsample {case}: {:?} -> {size:?}: {err:.2e}", input.shape);
        assert!(err < UPSAMPLE_TOL, "case {case}: {err}");
    }
}
