//! The darkening network against the PyTorch re-implementation of docs/PAPERS.md C.1
//! (`scripts/gen_fixtures.py`): output, `A` and `B` from a reference `state_dict` (`.pth` with the
//! `down_scale` / `curve_round` / `encode_dim` buffers), and the checks on those buffers.

use std::path::PathBuf;

use burn::tensor::Device;
use darkening_minmax::{CHECKPOINT_BUFFERS, DarkeningError, DarkeningNet, DarkeningNetConfig};
use nightvision_core::CoreError;
use nightvision_core::testing::{Array, max_rel_err, read_safetensors};

/// Eight depthwise-separable f32 convolutions plus eight curve iterations: summation order differs
/// between burn's and PyTorch's kernels, ~1e-6 relative per layer; 1e-5 leaves a safety factor.
const REL_TOL: f32 = 1e-5;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn fixtures() -> std::collections::BTreeMap<String, Array> {
    read_safetensors(fixture("darkening.safetensors")).unwrap()
}

fn reference_net(device: &Device) -> DarkeningNet {
    let mut net = DarkeningNetConfig::new().init(device);
    let report = net.load_pytorch(fixture("darkening.pth")).unwrap();
    assert_eq!(
        report.applied.len(),
        32,
        "8 blocks × 2 convs × (weight, bias)"
    );
    assert!(report.missing.is_empty());
    let mut unused = report.unused.clone();
    unused.sort();
    let mut want: Vec<String> = CHECKPOINT_BUFFERS.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(unused, want);
    net
}

#[test]
fn forward_matches_pytorch() {
    let device = Device::default();
    let f = fixtures();
    let net = reference_net(&device);
    let out = net
        .try_forward(f["x"].tensor(&device), f["exposure"].tensor(&device))
        .unwrap();
    let e_out = max_rel_err(out.image, &f["out"]);
    let e_a = max_rel_err(out.alpha, &f["alpha"]);
    let e_b = max_rel_err(out.beta, &f["beta"]);
    println!("output {e_out:.2e}, A {e_a:.2e}, B {e_b:.2e}");
    assert!(e_out < REL_TOL && e_a < REL_TOL && e_b < REL_TOL);
}

#[test]
fn other_width_and_rounds_match_pytorch() {
    let device = Device::default();
    let f = fixtures();
    let mut net = DarkeningNetConfig::new()
        .with_channels(4)
        .with_iterations(6)
        .init(&device);
    net.load_pytorch(fixture("darkening_c4_r6.pth")).unwrap();
    let out = net.darken(f["c4_r6.x"].tensor(&device), &[0.2]).unwrap();
    let e = max_rel_err(out, &f["c4_r6.out"]);
    println!("c4 r6 output {e:.2e}");
    assert!(e < REL_TOL);
}

#[test]
fn buffers_that_disagree_with_the_module_are_errors() {
    let device = Device::default();
    // Saved with curve_round = 6: a module built for 8 rounds refuses it.
    let mut net = DarkeningNetConfig::new().with_channels(4).init(&device);
    match net.load_pytorch(fixture("darkening_c4_r6.pth")) {
        Err(DarkeningError::CheckpointConfig {
            key: "curve_round",
            expected,
            found,
            ..
        }) => assert_eq!((expected, found), (8.0, 6.0)),
        other => panic!("expected a curve_round mismatch, got {other:?}"),
    }
    let mut net = DarkeningNetConfig::new()
        .with_channels(4)
        .with_iterations(6)
        .with_down_scale(0.9)
        .init(&device);
    assert!(matches!(
        net.load_pytorch(fixture("darkening_c4_r6.pth")),
        Err(DarkeningError::CheckpointConfig {
            key: "down_scale",
            ..
        })
    ));
}

#[test]
fn wrong_width_missing_file_are_errors() {
    let device = Device::default();
    let mut net = DarkeningNetConfig::new().with_channels(8).init(&device);
    match net.load_pytorch(fixture("darkening.pth")) {
        Err(DarkeningError::Core(CoreError::WeightsMismatch { mismatched, .. })) => {
            assert!(!mismatched.is_empty())
        }
        other => panic!("expected a shape mismatch, got {other:?}"),
    }
    assert!(matches!(
        net.load_pytorch(fixture("nope.pth")),
        Err(DarkeningError::Core(CoreError::Io { .. }))
    ));
}
