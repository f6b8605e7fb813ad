//! Parity of every backbone with torchvision's own forward.
//!
//! Fixtures: `scripts/gen_fixtures.py` (Debian's torch 1.13 / torchvision 0.14) builds each
//! torchvision model (widths reduced: ResNets ÷16 by swapping in smaller layers, MobileNetV2 with
//! torchvision's `width_mult=0.25`, VGG16 through torchvision's `make_layers` with widths ÷8),
//! seeds weights and non-trivial BatchNorm statistics, saves the `state_dict` with `torch.save`
//! (so the `.pth` reader is exercised) and the input and outputs as safetensors.

use std::path::PathBuf;

use backbones::{MobileNetV2Config, ResNetConfig, Vgg16Config};
use burn::tensor::Device;
use nightvision_core::testing::{max_rel_err, read_safetensors};

/// f32 convolutions summed in a different order (oneDNN vs burn's flex kernels) through up to 104
/// layers: observed ≤ 2e-6 relative to the output scale; 1e-4 is the usual f32 parity bound.
const REL_TOL: f32 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn check_resnet(name: &str, cfg: ResNetConfig) {
    let device = Device::default();
    let io = read_safetensors(fixture(&format!("{name}_io.safetensors"))).unwrap();
    let mut net = cfg
        .with_base_width(4)
        .with_num_classes(Some(10))
        .init(&device);
    let report = net
        .load_torchvision(fixture(&format!("{name}.pth")))
        .unwrap();
    assert!(report.missing.is_empty());
    let x = io["x"].tensor::<4>(&device);
    let f = max_rel_err(net.forward(x.clone()), &io["features"]);
    let l = max_rel_err(net.classify(x).unwrap(), &io["logits"]);
    println!("{name}: features {f:.2e}, logits {l:.2e}");
    assert!(
        f < REL_TOL && l < REL_TOL,
        "{name}: features {f}, logits {l}"
    );
}

#[test]
fn resnet18_matches_torchvision() {
    check_resnet("resnet18", ResNetConfig::resnet18());
}

#[test]
fn resnet50_matches_torchvision() {
    check_resnet("resnet50", ResNetConfig::resnet50());
}

#[test]
fn resnet101_matches_torchvision() {
    check_resnet("resnet101", ResNetConfig::resnet101());
}

#[test]
fn mobilenet_v2_matches_torchvision() {
    let device = Device::default();
    let io = read_safetensors(fixture("mobilenet_v2_io.safetensors")).unwrap();
    let mut net = MobileNetV2Config::new()
        .with_width_mult(0.25)
        .with_num_classes(Some(10))
        .init(&device);
    net.load_torchvision(fixture("mobilenet_v2.pth")).unwrap();
    let x = io["x"].tensor::<4>(&device);
    let f = max_rel_err(net.forward(x.clone()), &io["features"]);
    let l = max_rel_err(net.classify(x).unwrap(), &io["logits"]);
    println!("mobilenet_v2: features {f:.2e}, logits {l:.2e}");
    assert!(f < REL_TOL && l < REL_TOL, "features {f}, logits {l}");
}

#[test]
fn vgg16_matches_torchvision() {
    let device = Device::default();
    let io = read_safetensors(fixture("vgg16_io.safetensors")).unwrap();
    let mut net = Vgg16Config::new()
        .with_widths([8, 16, 32, 64, 64])
        .with_num_classes(Some(10))
        .with_classifier_hidden(32)
        .init(&device);
    net.load_torchvision(fixture("vgg16.pth")).unwrap();
    let x = io["x"].tensor::<4>(&device);
    let f = max_rel_err(net.forward(x.clone()), &io["features"]);
    let l = max_rel_err(net.classify(x).unwrap(), &io["logits"]);
    println!("vgg16: features {f:.2e}, logits {l:.2e}");
    assert!(f < REL_TOL && l < REL_TOL, "features {f}, logits {l}");
}

#[test]
fn frozen_batchnorm_uses_running_statistics_in_training() {
    // With frozen BatchNorm a training-mode (autodiff) forward equals the inference forward;
    // without it, batch statistics are used and the outputs differ.
    let device = Device::default().autodiff();
    let io = read_safetensors(fixture("resnet18_io.safetensors")).unwrap();
    let x = io["x"].tensor::<4>(&device);
    for frozen in [true, false] {
        let mut net = ResNetConfig::resnet18()
            .with_base_width(4)
            .with_num_classes(Some(10))
            .with_frozen_batchnorm(frozen)
            .init(&device);
        net.load_torchvision(fixture("resnet18.pth")).unwrap();
        let err = max_rel_err(net.forward(x.clone()), &io["features"]);
        assert_eq!(err < REL_TOL, frozen, "frozen={frozen}: {err}");
    }
}
