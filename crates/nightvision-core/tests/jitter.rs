//! ColorJitter against torchvision 0.14's tensor functions (`scripts/gen_jitter_fixtures.py`):
//! every adjustment at several factors, a full jitter in a fixed order, and properties of the
//! sampling.

use std::path::PathBuf;

use std::collections::HashMap;

use burn::tensor::{Device, Tensor, TensorData};
use nightvision_core::augment::Augmentation;
use nightvision_core::jitter::{
    ColorJitter, ColorJitterConfig, JitterParams, adjust_brightness, adjust_contrast, adjust_hue,
    adjust_saturation, hsv_to_rgb, rgb_to_hsv,
};
use nightvision_core::rng::seeded;

/// An adjustment with its factor.
type Adjust = fn(Tensor<4>, f64) -> Tensor<4>;

/// f32 arithmetic in the same order as torchvision's; the HSV round trip divides by small
/// channel ranges, so a few ulps of difference can grow to ~1e-6.
const TOL: f32 = 1e-5;

/// The fixture's F32 tensors as `[B, 3, H, W]` data (the `testing` feature's reader is not
/// available to this crate's own tests).
fn fixture() -> HashMap<String, TensorData> {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jitter/jitter.safetensors");
    let bytes = std::fs::read(p).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
            let v: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (name, TensorData::new(v, view.shape().to_vec()))
        })
        .collect()
}

fn tensor(f: &HashMap<String, TensorData>, key: &str, device: &Device) -> Tensor<4> {
    Tensor::from_data(f[key].clone(), device)
}

fn max_diff(a: Tensor<4>, b: Tensor<4>) -> f32 {
    (a - b).abs().max().into_scalar()
}

#[test]
fn every_adjustment_matches_torchvision() {
    let device = Device::default();
    let f = fixture();
    let x = tensor(&f, "input", &device);
    let want = |k: &str| tensor(&f, k, &device);
    for factor in [0.4, 1.7] {
        let cases: [(&str, Adjust); 3] = [
            ("brightness", adjust_brightness),
            ("contrast", adjust_contrast),
            ("saturation", adjust_saturation),
        ];
        for (name, op) in cases {
            let d = max_diff(op(x.clone(), factor), want(&format!("{name}_{factor}")));
            assert!(d < TOL, "{name} {factor}: {d}");
        }
    }
    for h in [-0.45, -0.1, 0.25, 0.5] {
        let d = max_diff(adjust_hue(x.clone(), h), want(&format!("hue_{h}")));
        assert!(d < TOL, "hue {h}: {d}");
    }
    let p = JitterParams {
        order: [3, 1, 0, 2],
        brightness: Some(1.2),
        contrast: Some(0.7),
        saturation: Some(1.5),
        hue: Some(-0.2),
    };
    let d = max_diff(p.apply(x), want("jitter_3102"));
    assert!(d < TOL, "full jitter: {d}");
}

#[test]
fn the_hsv_round_trip_is_the_identity() {
    let device = Device::default();
    let x = tensor(&fixture(), "input", &device);
    let [h, s, v] = rgb_to_hsv(x.clone());
    let hmin: f32 = h.clone().min().into_scalar();
    let hmax: f32 = h.clone().max().into_scalar();
    assert!((0.0..1.0).contains(&hmin) && hmax < 1.0, "{hmin} {hmax}");
    assert!(max_diff(hsv_to_rgb(h, s, v), x) < TOL);
}

#[test]
fn sampling_draws_torchvision_ranges_and_a_permutation() {
    let cfg = ColorJitterConfig::cosplace();
    let mut rng = seeded(3);
    let mut seen_orders = std::collections::HashSet::new();
    for _ in 0..500 {
        let p = cfg.sample(&mut rng);
        let mut o = p.order;
        seen_orders.insert(o);
        o.sort_unstable();
        assert_eq!(o, [0, 1, 2, 3]);
        for f in [p.brightness, p.contrast, p.saturation] {
            assert!(f.is_some_and(|f| (0.3..=1.7).contains(&f)), "{f:?}");
        }
        assert!(p.hue.is_some_and(|h| (-0.5..=0.5).contains(&h)));
    }
    assert_eq!(seen_orders.len(), 24, "every order of the four adjustments");
    // a strength of 0 leaves its adjustment out; 1 − b below 0 clamps the lower end at 0
    let p = ColorJitterConfig::new().with_contrast(1.5).sample(&mut rng);
    assert!(p.brightness.is_none() && p.saturation.is_none() && p.hue.is_none());
    assert!(p.contrast.is_some_and(|c| (0.0..=2.5).contains(&c)));
}

#[test]
fn the_augmentation_jitters_each_image_on_its_own_and_checks_its_input() {
    let device = Device::default();
    let jitter = ColorJitter::new(ColorJitterConfig::smm_classification()).unwrap();
    let x = tensor(&fixture(), "input", &device).slice([0..1, 0..3, 0..6, 0..7]);
    let two = Tensor::cat(vec![x.clone(), x], 0);
    let y = jitter.augment(two, &mut seeded(0)).unwrap();
    let a = y.clone().slice([0..1, 0..3, 0..6, 0..7]);
    let b = y.slice([1..2, 0..3, 0..6, 0..7]);
    assert!(max_diff(a, b) > 1e-3, "both images got the same parameters");
    let bad = jitter.augment(Tensor::<4>::zeros([1, 4, 2, 2], &device), &mut seeded(0));
    assert!(bad.unwrap_err().to_string().contains("colour jitter"));
    assert!(ColorJitter::new(ColorJitterConfig::new().with_hue(0.6)).is_err());
    assert!(ColorJitter::new(ColorJitterConfig::new().with_brightness(-1.0)).is_err());
}
