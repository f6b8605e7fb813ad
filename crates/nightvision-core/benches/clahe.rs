//! CLAHE throughput: the Dark Side Augmentation preset (L of Lab, clip 1.0, 8×8 tiles) on the
//! training size (362×362, longer side 362 as in docs/PAPERS.md A.6) and the evaluation size
//! (1024×768), plus the grayscale kernel alone. Compare with `benches/clahe_cv2.py` (OpenCV).
//!
//! `cargo bench -p nightvision-core --bench clahe`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use image::{GrayImage, RgbImage};
use nightvision_core::clahe::{ClaheConfig, clahe_gray, clahe_lab};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded image with both smooth structure and noise (the same recipe as `clahe_cv2.py`).
fn scene(width: u32, height: u32) -> RgbImage {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    RgbImage::from_fn(width, height, |x, y| {
        let base = [
            (x * 255 / width) as i32,
            (y * 255 / height) as i32,
            ((x + y) * 255 / (width + height)) as i32,
        ];
        image::Rgb(base.map(|b| (b / 2 + rng.random_range(0..64)).clamp(0, 255) as u8))
    })
}

fn bench(c: &mut Criterion) {
    let cfg = ClaheConfig::DARK_SIDE;
    let mut group = c.benchmark_group("clahe");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    for (w, h) in [(362u32, 362u32), (1024, 768)] {
        let rgb = scene(w, h);
        group.bench_function(format!("lab_{w}x{h}"), |b| {
            b.iter(|| clahe_lab(black_box(&rgb), &cfg).unwrap())
        });
        let gray = GrayImage::from_fn(w, h, |x, y| image::Luma([rgb.get_pixel(x, y)[1]]));
        group.bench_function(format!("gray_{w}x{h}"), |b| {
            b.iter(|| clahe_gray(black_box(&gray), &cfg).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
