//! CLAHE parity with OpenCV (fixtures from `scripts/gen_clahe_fixtures.py`, cv2 4.6) and
//! properties of the algorithm.
//!
//! Every comparison with OpenCV is exact: the grayscale CLAHE is integer/float arithmetic
//! reproduced operation by operation, and the float32 Lab conversions are reproduced with the
//! same IEEE operations in the same order (OpenCV's SIMD body and scalar tail included).

use std::path::{Path, PathBuf};

use image::{GrayImage, Rgb32FImage, RgbImage};
use nightvision_core::clahe::{
    ClaheConfig, clahe_gray, clahe_lab, clahe_lab_f32, lab_to_rgb, rgb_to_lab,
};
use serde_json::Value;

/// Allowed |ours − OpenCV| on 8-bit outputs (gray CLAHE, the CLAHE'd L plane): none, as
/// an `i32` so a future relaxation stays a one-line change.
const GRAY_TOL: i32 = 0;
/// Allowed |ours − OpenCV| on the float32 outputs (Lab, RGB): none — bit-identical.
const FLOAT_TOL: f32 = 0.0;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clahe")
}

fn manifest() -> Value {
    let text = std::fs::read_to_string(dir().join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn cases(kind: &str) -> Vec<(String, ClaheConfig, u32, u32)> {
    let m = manifest();
    m["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == kind)
        .map(|c| {
            let t = c["tiles"].as_array().unwrap();
            let cfg = ClaheConfig::new(
                c["clip_limit"].as_f64().unwrap(),
                (
                    t[0].as_u64().unwrap() as usize,
                    t[1].as_u64().unwrap() as usize,
                ),
            )
            .unwrap();
            (
                c["name"].as_str().unwrap().to_string(),
                cfg,
                c["width"].as_u64().unwrap() as u32,
                c["height"].as_u64().unwrap() as u32,
            )
        })
        .collect()
}

fn gray(name: &str) -> GrayImage {
    image::open(dir().join(name)).unwrap().into_luma8()
}

fn read_f32(name: &str, w: u32, h: u32) -> Rgb32FImage {
    let bytes = std::fs::read(dir().join(name)).unwrap();
    let data: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Rgb32FImage::from_raw(w, h, data).unwrap()
}

fn to_f32(rgb: &RgbImage) -> Rgb32FImage {
    let data = rgb.as_raw().iter().map(|&v| v as f32 / 255.0).collect();
    Rgb32FImage::from_raw(rgb.width(), rgb.height(), data).unwrap()
}

/// (max |a − b|, number of differing values).
fn diff_f32(a: &[f32], b: &[f32]) -> (f32, usize) {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold((0f32, 0usize), |(m, n), (x, y)| {
        let d = (x - y).abs();
        (m.max(d), n + usize::from(x.to_bits() != y.to_bits()))
    })
}

fn diff_u8(a: &[u8], b: &[u8]) -> (u8, usize) {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold((0u8, 0usize), |(m, n), (x, y)| {
        (m.max(x.abs_diff(*y)), n + usize::from(x != y))
    })
}

#[test]
fn fixtures_record_their_opencv_version() {
    let m = manifest();
    assert!(m["cv2_version"].as_str().unwrap().starts_with('4'));
    assert!(cases("gray").len() >= 5 && cases("rgb").len() >= 3);
}

#[test]
fn gray_clahe_equals_opencv() {
    for (name, cfg, w, h) in cases("gray") {
        let input = gray(&format!("gray_{name}_in.png"));
        let want = gray(&format!("gray_{name}_out.png"));
        assert_eq!(input.dimensions(), (w, h));
        let got = clahe_gray(&input, &cfg).unwrap();
        let (max, n) = diff_u8(got.as_raw(), want.as_raw());
        println!(
            "gray {name}: max |diff| {max}, {n} of {} pixels differ",
            w * h
        );
        assert!(
            i32::from(max) <= GRAY_TOL,
            "gray {name}: max diff {max} ({n} pixels)"
        );
    }
}

#[test]
fn float_rgb_to_lab_equals_opencv() {
    for (name, _, w, h) in cases("rgb") {
        let input = image::open(dir().join(format!("rgb_{name}_in.png")))
            .unwrap()
            .into_rgb8();
        let lab16 = image::open(dir().join(format!("rgb_{name}_lab16.png")))
            .unwrap()
            .into_rgb16();
        let want: Vec<f32> = lab16
            .pixels()
            .flat_map(|p| {
                [
                    p[0] as f32 * (100.0 / 16384.0),
                    p[1] as f32 * (256.0 / 16384.0) - 128.0,
                    p[2] as f32 * (256.0 / 16384.0) - 128.0,
                ]
            })
            .collect();
        let got = rgb_to_lab(&to_f32(&input)).unwrap();
        assert_eq!(got.dimensions(), (w, h));
        let (max, n) = diff_f32(got.as_raw(), &want);
        println!("rgb->lab {name}: max |diff| {max}, {n} values differ");
        assert!(
            max <= FLOAT_TOL,
            "rgb->lab {name}: max diff {max} ({n} values)"
        );
    }
}

#[test]
fn clahe_of_the_l_plane_equals_opencv() {
    // The pipeline's intermediate: L8 = trunc(L / 100 * 255), then cv2 CLAHE.
    for (name, cfg, w, h) in cases("rgb") {
        let input = image::open(dir().join(format!("rgb_{name}_in.png")))
            .unwrap()
            .into_rgb8();
        let lab = rgb_to_lab(&to_f32(&input)).unwrap();
        let l8 = GrayImage::from_fn(w, h, |x, y| {
            image::Luma([((lab.get_pixel(x, y)[0] / 100.0) * 255.0) as u8])
        });
        let want = gray(&format!("rgb_{name}_L.png"));
        let got = clahe_gray(&l8, &cfg).unwrap();
        let (max, n) = diff_u8(got.as_raw(), want.as_raw());
        println!("L plane {name}: max |diff| {max}, {n} pixels differ");
        assert!(
            i32::from(max) <= GRAY_TOL,
            "L plane {name}: max diff {max} ({n} pixels)"
        );
    }
}

#[test]
fn lab_clahe_pipeline_equals_mdir_on_opencv() {
    for (name, cfg, w, h) in cases("rgb") {
        let input = image::open(dir().join(format!("rgb_{name}_in.png")))
            .unwrap()
            .into_rgb8();
        let want = read_f32(&format!("rgb_{name}_out.f32"), w, h);
        let got = clahe_lab(&input, &cfg).unwrap();
        let (max, n) = diff_f32(got.as_raw(), want.as_raw());
        println!(
            "clahe_lab {name}: max |diff| {max:e}, {n} of {} values differ",
            3 * w * h
        );
        assert!(
            max <= FLOAT_TOL,
            "clahe_lab {name}: max diff {max:e} ({n} values)"
        );
    }
}

#[test]
fn lab_clahe_pipeline_on_float_input_equals_mdir_on_opencv() {
    for (name, cfg, w, h) in cases("f32") {
        let input = read_f32(&format!("f32_{name}_in.f32"), w, h);
        let want = read_f32(&format!("f32_{name}_out.f32"), w, h);
        let got = clahe_lab_f32(&input, &cfg).unwrap();
        let (max, n) = diff_f32(got.as_raw(), want.as_raw());
        println!("clahe_lab_f32 {name}: max |diff| {max:e}, {n} values differ");
        assert!(
            max <= FLOAT_TOL,
            "clahe_lab_f32 {name}: max diff {max:e} ({n} values)"
        );
    }
}

#[test]
fn lab_round_trip_is_close_to_identity() {
    // Closed-form property of the two conversions: Lab→RGB(RGB→Lab(x)) ≈ x. The forward table
    // has 14-bit outputs and 33 nodes per axis, so the error is small but not zero.
    let rgb = RgbImage::from_fn(61, 17, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 15) as u8, ((x * 7 + y * 3) % 256) as u8])
    });
    let f = to_f32(&rgb);
    let back = lab_to_rgb(&rgb_to_lab(&f).unwrap()).unwrap();
    let (max, _) = diff_f32(back.as_raw(), f.as_raw());
    assert!(max < 0.01, "round trip error {max}");
}

#[test]
fn constant_images_stay_constant() {
    for v in [0u8, 1, 37, 128, 254, 255] {
        let img = GrayImage::from_pixel(50, 37, image::Luma([v]));
        let out = clahe_gray(&img, &ClaheConfig::DARK_SIDE).unwrap();
        let first = out.as_raw()[0];
        assert!(out.as_raw().iter().all(|&p| p == first), "gray level {v}");
    }
    // OpenCV's float Lab→RGB uses one operation order for blocks of 8 pixels of a row and
    // another for the remaining width % 8 pixels, so a constant colour is exactly constant over
    // the first 40 columns of a 45-wide image and equal to within float rounding on the rest.
    for v in [[0u8, 0, 0], [10, 20, 30], [200, 100, 50], [255, 255, 255]] {
        let img = RgbImage::from_pixel(45, 29, image::Rgb(v));
        let out = clahe_lab(&img, &ClaheConfig::DARK_SIDE).unwrap();
        let first = *out.get_pixel(0, 0);
        for (x, _, p) in out.enumerate_pixels() {
            if x < 40 {
                assert_eq!(*p, first, "colour {v:?}, column {x}");
            } else {
                let (max, _) = diff_f32(&p.0, &first.0);
                assert!(max <= 1e-6, "colour {v:?}, column {x}: {p:?} vs {first:?}");
            }
        }
    }
}

/// Plain histogram equalisation as OpenCV's LUT defines it: round(cdf(v) · 255 / n).
fn equalise(values: &[u8]) -> [u8; 256] {
    let mut hist = [0u32; 256];
    for &v in values {
        hist[v as usize] += 1;
    }
    let scale = 255.0f32 / values.len() as f32;
    let mut sum = 0u32;
    std::array::from_fn(|i| {
        sum += hist[i];
        (sum as f32 * scale).round_ties_even() as u8
    })
}

#[test]
fn huge_clip_limit_is_plain_equalisation() {
    let mut state = 12345u32;
    let img = GrayImage::from_fn(64, 64, |x, y| {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        image::Luma([(x + 2 * y + (state >> 27)).min(255) as u8])
    });
    // One tile: the whole image is equalised with one LUT.
    let cfg = ClaheConfig::new(1e6, (1, 1)).unwrap();
    let out = clahe_gray(&img, &cfg).unwrap();
    let lut = equalise(img.as_raw());
    for (o, i) in out.as_raw().iter().zip(img.as_raw()) {
        assert_eq!(*o, lut[*i as usize]);
    }
    // 4×4 tiles of 16×16: at tile centres the bilinear weights vanish, so the output is that
    // tile's own equalisation.
    let cfg = ClaheConfig::new(1e6, (4, 4)).unwrap();
    let out = clahe_gray(&img, &cfg).unwrap();
    for ty in 0..4u32 {
        for tx in 0..4u32 {
            let tile: Vec<u8> = (0..16)
                .flat_map(|y| (0..16).map(move |x| (tx * 16 + x, ty * 16 + y)))
                .map(|(x, y)| img.get_pixel(x, y)[0])
                .collect();
            let lut = equalise(&tile);
            let (cx, cy) = (tx * 16 + 8, ty * 16 + 8);
            assert_eq!(
                out.get_pixel(cx, cy)[0],
                lut[img.get_pixel(cx, cy)[0] as usize]
            );
        }
    }
}

#[test]
fn clahe_limits_contrast_more_than_equalisation() {
    // With clip limit 1.0 the mapping of a low-contrast ramp is stretched less than by plain
    // equalisation (the point of the contrast limit).
    let img = GrayImage::from_fn(64, 64, |x, _| image::Luma([100 + (x / 4) as u8]));
    let spread = |g: &GrayImage| {
        let (lo, hi) = g
            .as_raw()
            .iter()
            .fold((255u8, 0u8), |(l, h), &v| (l.min(v), h.max(v)));
        hi - lo
    };
    let limited = clahe_gray(&img, &ClaheConfig::new(1.0, (1, 1)).unwrap()).unwrap();
    let full = clahe_gray(&img, &ClaheConfig::new(1e6, (1, 1)).unwrap()).unwrap();
    assert!(spread(&limited) > spread(&img));
    assert!(spread(&limited) < spread(&full));
}

#[test]
fn bad_inputs_are_errors() {
    let cfg = ClaheConfig::DARK_SIDE;
    assert!(clahe_gray(&GrayImage::new(0, 0), &cfg).is_err());
    assert!(clahe_lab(&RgbImage::new(3, 0), &cfg).is_err());
    let bad = ClaheConfig {
        clip_limit: -1.0,
        tiles: (8, 8),
    };
    assert!(clahe_lab(&RgbImage::new(3, 3), &bad).is_err());
    let mut inf = Rgb32FImage::new(3, 3);
    inf.as_mut()[0] = f32::INFINITY;
    assert!(rgb_to_lab(&inf).is_err());
    assert!(lab_to_rgb(&inf).is_err());
}
