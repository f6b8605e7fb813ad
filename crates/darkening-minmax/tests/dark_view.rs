//! The deterministic part of the dark view (docs/PAPERS.md C.3) against PyTorch: given the exposures
//! and the two noise tensors, the exposure map `E + interpolate(patch, bilinear,
//! align_corners=False) + pixel` (`scripts/gen_fixtures.py`), for the VPR (factor 32, sizes not
//! divisible by it) and the classification (factor 16) settings; and a seeded view end to end.

use std::path::PathBuf;

use burn::tensor::Device;
use darkening_minmax::{DarkView, DarkViewConfig, DarkViewNoise, DarkeningNetConfig};
use nightvision_core::rng::seeded;
use nightvision_core::testing::{max_rel_err, read_safetensors};

/// Bilinear interpolation of 0.025-scale noise plus two additions in f32: ~1e-8 absolute on a
/// map of scale ~0.2, i.e. ~1e-7 relative; 1e-6 allows for different weight rounding.
const REL_TOL: f32 = 1e-6;

#[test]
fn exposure_map_matches_pytorch() {
    let device = Device::default();
    let f = read_safetensors(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dark_view.safetensors"),
    )
    .unwrap();
    for (name, factor) in [("vpr", 32), ("cls", 16)] {
        let want = &f[&format!("{name}.map")];
        let size = [want.shape[2], want.shape[3]];
        let patch = f[&format!("{name}.patch")].tensor::<4>(&device);
        // The fixture's patch grid is the configuration's.
        let grid = DarkViewConfig::new()
            .with_patch_factor(factor)
            .patch_grid(size);
        assert_eq!(patch.dims()[2..], grid);
        let noise = DarkViewNoise {
            exposure: f[&format!("{name}.e")].data.clone(),
            patch: Some(patch),
            pixel: Some(f[&format!("{name}.pixel")].tensor(&device)),
        };
        let e = max_rel_err(noise.exposure_map(size, &device), want);
        println!("{name}: {e:.2e}");
        assert!(e < REL_TOL, "{name}: {e}");
    }
}

#[test]
fn dark_view_is_seeded_and_uses_the_drawn_map() {
    let device = Device::default();
    device.seed(5);
    let net = DarkeningNetConfig::new().with_channels(8).init(&device);
    let view = DarkView::new(net, DarkViewConfig::classification()).unwrap();
    let img = burn::tensor::Tensor::<4>::random(
        [2, 3, 32, 48],
        burn::tensor::Distribution::Uniform(0.0, 1.0),
        &device,
    );
    let a = view.try_apply(img.clone(), &mut seeded(1)).unwrap();
    let b = view.apply(img.clone(), &mut seeded(1));
    assert_eq!(a.to_data(), b.to_data());
    // The same draws, made explicitly, give the same image.
    let noise = view.config.sample(2, [32, 48], &mut seeded(1), &device);
    let c = view.apply_with(img.clone(), &noise);
    assert_eq!(a.to_data(), c.to_data());
    let d = view.apply(img.clone(), &mut seeded(2));
    assert_ne!(a.to_data(), d.to_data());
    assert!(
        view.try_apply(
            burn::tensor::Tensor::zeros([2, 1, 8, 8], &device),
            &mut seeded(1)
        )
        .is_err()
    );
}
