//! The real BSDS500 weights find edges on real photos: edge responses concentrate on strong image
//! gradients. A broken network (wrong channel order, wrong normalisation, misaligned side outputs,
//! random weights) fails this.

use burn::tensor::Device;
use hed_edges::{EdgeMap, HedConfig};
use nightvision_core::image::{Rgb32FImage, load_rgb, to_tensor};
use nightvision_core::testing::read_safetensors;

/// The property: mean edge response on the 10 % of pixels with the strongest image gradient is at
/// least this multiple of that on the weakest 50 %. An independent PyTorch forward of the same
/// weights gives 1.93 on the Tokyo day image at 320×240 and 2.21 on the brick photo at 256×256
/// (scripts/gen_fixtures.py).
const MIN_RATIO: f64 = 1.5;

/// Agreement of the ratio with the PyTorch script's on the same image: edge maps agree to ~1e-4,
/// and the ranking by gradient is the same computation, so only ties and f32 sums differ.
const RATIO_TOL: f64 = 0.01;

/// 2×2 box downscaling (OpenCV's INTER_AREA at exactly half size, as the fixture script does).
fn half(img: &Rgb32FImage) -> Rgb32FImage {
    let (w, h) = (img.width() / 2, img.height() / 2);
    Rgb32FImage::from_fn(w, h, |x, y| {
        let mut p = [0f32; 3];
        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            let q = img.get_pixel(2 * x + dx, 2 * y + dy);
            for (acc, v) in p.iter_mut().zip(q.0) {
                *acc += v / 4.0;
            }
        }
        image::Rgb(p)
    })
}

/// Mean edge response on the top-10 % gradient pixels over that on the bottom 50 % (gradient:
/// central differences of the luma, zero on the border — as the fixture script computes it).
fn gradient_ratio(img: &Rgb32FImage, edges: &EdgeMap) -> f64 {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let gray: Vec<f32> = img
        .pixels()
        .map(|p| 0.299 * p.0[0] + 0.587 * p.0[1] + 0.114 * p.0[2])
        .collect();
    let mut mag: Vec<(f32, usize)> = (0..h * w)
        .map(|i| {
            let (y, x) = (i / w, i % w);
            let gy = if y > 0 && y + 1 < h {
                (gray[i + w] - gray[i - w]) / 2.0
            } else {
                0.0
            };
            let gx = if x > 0 && x + 1 < w {
                (gray[i + 1] - gray[i - 1]) / 2.0
            } else {
                0.0
            };
            (gx.hypot(gy), i)
        })
        .collect();
    mag.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = mag.len();
    let mean = |s: &[(f32, usize)]| {
        s.iter().map(|(_, i)| edges.data[*i] as f64).sum::<f64>() / s.len() as f64
    };
    mean(&mag[n - n / 10..]) / mean(&mag[..n / 2])
}

#[test]
fn real_edges_concentrate_on_image_gradients() {
    let (weights, dir) = match (
        nightvision_core::real_data_file("weights/hed_bsds500.safetensors"),
        nightvision_core::real_data_dir(),
    ) {
        (Ok(w), Ok(d)) => (w, d),
        (Err(reason), _) | (_, Err(reason)) => {
            println!("skipped: {reason}");
            return;
        }
    };
    let device = Device::default();
    let mut hed = HedConfig::new().init(&device);
    hed.load_weights(&weights).unwrap();
    let io = read_safetensors(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/hed_io.safetensors"),
    )
    .unwrap();
    for (file, key) in [
        ("pairs/tokyo_db_day.png", "tokyo"),
        ("photos/brick.png", "brick"),
    ] {
        let img = half(&load_rgb(dir.join(file)).unwrap());
        let x = to_tensor(std::slice::from_ref(&img), &device).unwrap();
        let edges = EdgeMap::from_batch(hed.try_forward(x).unwrap()).unwrap();
        let ratio = gradient_ratio(&img, &edges[0]);
        println!(
            "{file} at {}x{}: ratio {ratio:.3}",
            img.width(),
            img.height()
        );
        assert!(ratio >= MIN_RATIO, "{file}: {ratio}");
        // Same image, same weights, same statistic as the PyTorch script (decoding and the box
        // filter are exact; only f32 summation order differs).
        let want = io[&format!("real.{key}_ratio")].data[0] as f64;
        assert!(
            (ratio - want).abs() < RATIO_TOL,
            "{file}: {ratio} vs PyTorch {want}"
        );
    }
}
