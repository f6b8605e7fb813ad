//! Image decoding of every colour type, and the typed errors of bad input: missing files,
//! truncated images, checkpoints with missing, unused or wrongly shaped keys.

use std::collections::HashMap;

use burn::nn::{Linear, LinearConfig};
use burn::tensor::Device;
use nightvision_core::CoreError;
use nightvision_core::image::load_rgb;
use nightvision_core::weights::WeightsLoader;
use safetensors::tensor::{Dtype, TensorView};

fn write_st(path: &std::path::Path, tensors: &[(&str, Vec<usize>, Vec<f32>)]) {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(n, s, v)| {
            (
                n.to_string(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                s.clone(),
            )
        })
        .collect();
    let views: HashMap<String, TensorView> = bytes
        .iter()
        .map(|(n, b, s)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

fn linear(device: &Device) -> Linear {
    LinearConfig::new(4, 3).init(device)
}

#[test]
fn every_colour_type_decodes_to_rgb_in_unit_range() {
    let dir = tempfile::tempdir().unwrap();
    let gray16 = image::ImageBuffer::<image::Luma<u16>, _>::from_fn(3, 2, |x, _| {
        image::Luma([x as u16 * 30000])
    });
    gray16.save(dir.path().join("g16.png")).unwrap();
    let rgba = image::RgbaImage::from_pixel(2, 2, image::Rgba([255, 0, 51, 10]));
    rgba.save(dir.path().join("rgba.png")).unwrap();
    let gray8 = image::GrayImage::from_pixel(2, 2, image::Luma([102]));
    gray8.save(dir.path().join("g8.png")).unwrap();

    // The decoder divides in f32: one ulp of slack.
    let close = |a: [f32; 3], b: [f32; 3]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
    let g16 = load_rgb(dir.path().join("g16.png")).unwrap();
    assert!(close(g16.get_pixel(2, 1).0, [60000.0 / 65535.0; 3]));
    let c = load_rgb(dir.path().join("rgba.png")).unwrap();
    assert!(close(c.get_pixel(0, 0).0, [1.0, 0.0, 0.2])); // alpha dropped
    let g8 = load_rgb(dir.path().join("g8.png")).unwrap();
    assert!(close(g8.get_pixel(1, 1).0, [0.4; 3]));
}

#[test]
fn missing_and_truncated_images_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.png");
    let e = load_rgb(&missing).unwrap_err();
    assert!(matches!(e, CoreError::Io { .. }));
    assert!(e.to_string().contains("nope.png"), "{e}");

    let img = image::RgbImage::from_pixel(64, 64, image::Rgb([9, 99, 199]));
    let full = dir.path().join("full.png");
    img.save(&full).unwrap();
    let bytes = std::fs::read(&full).unwrap();
    let cut = dir.path().join("cut.png");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_rgb(&cut).unwrap_err();
    assert!(matches!(e, CoreError::Image { .. }), "{e:?}");
    assert!(e.to_string().contains("cut.png"), "{e}");
}

#[test]
fn weights_that_match_load_exactly() {
    let device = Device::default();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ok.safetensors");
    // PyTorch layout: weight [out, in]; the adapter transposes it.
    let w: Vec<f32> = (0..12).map(|i| i as f32).collect();
    write_st(
        &p,
        &[
            ("weight", vec![3, 4], w),
            ("bias", vec![3], vec![1.0, 2.0, 3.0]),
        ],
    );
    let mut m = linear(&device);
    let r = WeightsLoader::new().load(&mut m, &p).unwrap();
    assert_eq!(r.applied.len(), 2);
    let wt = m.weight.val().into_data().try_into_vec_as::<f32>().unwrap();
    // burn stores [in, out]: element (in=1, out=2) is PyTorch's weight[2][1] = 9.
    assert_eq!(wt[3 + 2], 9.0);
}

#[test]
fn mismatching_weights_name_every_key() {
    let device = Device::default();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.safetensors");
    write_st(
        &p,
        &[
            ("weight", vec![3, 5], vec![0.0; 15]),  // wrong shape
            ("extra.thing", vec![2], vec![0.0; 2]), // unused
        ], // bias missing
    );
    let mut m = linear(&device);
    let e = WeightsLoader::new().load(&mut m, &p).unwrap_err();
    let msg = e.to_string();
    match &e {
        CoreError::WeightsMismatch {
            missing,
            unused,
            mismatched,
            ..
        } => {
            assert_eq!(missing, &["bias".to_string()]);
            assert_eq!(unused, &["extra.thing".to_string()]);
            assert_eq!(mismatched.len(), 1);
            assert_eq!(mismatched[0].0, "weight");
        }
        other => panic!("unexpected {other:?}"),
    }
    for needle in ["bad.safetensors", "bias", "extra.thing", "weight"] {
        assert!(msg.contains(needle), "{needle} not in {msg}");
    }
    // Partial mode still rejects the wrong shape but accepts missing/unused keys.
    let e = WeightsLoader::new().partial().load(&mut m, &p).unwrap_err();
    assert!(matches!(e, CoreError::WeightsMismatch { .. }));
    let p2 = dir.path().join("partial.safetensors");
    write_st(
        &p2,
        &[("bias", vec![3], vec![1.0; 3]), ("zzz", vec![1], vec![0.0])],
    );
    let r = WeightsLoader::new().partial().load(&mut m, &p2).unwrap();
    assert_eq!(r.missing, ["weight".to_string()]);
}

#[test]
fn missing_checkpoint_and_bad_remap_are_errors() {
    let device = Device::default();
    let mut m = linear(&device);
    let e = WeightsLoader::new()
        .load(&mut m, "/nonexistent/w.pth")
        .unwrap_err();
    assert!(matches!(e, CoreError::Io { .. }) && e.to_string().contains("w.pth"));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.safetensors");
    write_st(
        &p,
        &[
            ("weight", vec![3, 4], vec![0.0; 12]),
            ("bias", vec![3], vec![0.0; 3]),
        ],
    );
    let e = WeightsLoader::new()
        .with_remap("(unclosed", "x")
        .load(&mut m, &p)
        .unwrap_err();
    assert!(matches!(e, CoreError::Remap { .. }), "{e:?}");
    // A file that is not a checkpoint at all.
    let junk = dir.path().join("junk.pth");
    std::fs::write(&junk, b"this is not a torch file").unwrap();
    let e = WeightsLoader::new().load(&mut m, &junk).unwrap_err();
    assert!(
        matches!(e, CoreError::WeightsRead { .. }) && e.to_string().contains("junk.pth"),
        "{e}"
    );
}
