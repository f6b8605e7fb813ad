//! The toy day/night task the trainer tests share.
#![allow(dead_code)]

use burn::tensor::Device;
use nightgen_gan::data::{ScaleCrop, UnpairedBatches};
use nightgen_gan::{ResnetGenerator, translate_images};
use nightvision_core::augment::ImageSource;
use nightvision_core::image::Rgb32FImage;

/// Day: bright textured images; night: the same kind of textures, dark and bluish.
pub fn domains() -> (ImageSource, ImageSource) {
    let tex = |k: u32, gain: f32, blue: f32| {
        Rgb32FImage::from_fn(40, 36, move |x, y| {
            let v = 0.5 + 0.5 * ((x as f32 * 0.4 + k as f32).sin() * (y as f32 * 0.3).cos());
            image::Rgb([v * gain, v * gain, (v * gain + blue).min(1.0)])
        })
    };
    let day = (0..4).map(|k| tex(k, 0.9, 0.0)).collect();
    let night = (0..4).map(|k| tex(k + 7, 0.15, 0.1)).collect();
    (ImageSource::memory(day), ImageSource::memory(night))
}

/// Unpaired 32×32 batches of the toy domains.
pub fn data(batch: usize) -> UnpairedBatches {
    let (day, night) = domains();
    UnpairedBatches::new(
        day,
        night,
        ScaleCrop {
            size: 32,
            min_scale: 0.8,
        },
        batch,
    )
    .unwrap()
}

/// Mean output of `g` on a bright day-like probe (0.9 × a texture in [0, 1]).
pub fn brightness(g: &ResnetGenerator) -> f32 {
    let probe = nightvision_core::image::to_tensor(
        &[Rgb32FImage::from_fn(32, 32, |x, y| {
            let v = 0.5 + 0.5 * ((x as f32 * 0.4).sin() * (y as f32 * 0.3).cos());
            image::Rgb([0.9 * v, 0.9 * v, 0.9 * v])
        })],
        &Device::default(),
    )
    .unwrap();
    translate_images(g, probe).unwrap().mean().into_scalar()
}

/// The toy task's batches with every pixel NaN (a corrupt data set), to check that a trainer
/// stops with [`nightgen_gan::GanError::NonFinite`] and keeps its last good checkpoint.
pub fn poisoned_data(batch: usize) -> UnpairedBatches {
    let nan = || {
        (0..4)
            .map(|_| Rgb32FImage::from_pixel(40, 36, image::Rgb([f32::NAN; 3])))
            .collect()
    };
    UnpairedBatches::new(
        ImageSource::memory(nan()),
        ImageSource::memory(nan()),
        ScaleCrop {
            size: 32,
            min_scale: 0.8,
        },
        batch,
    )
    .unwrap()
}

/// Asserts that `err` is [`nightgen_gan::GanError::NonFinite`] at `iteration`, naming the
/// checkpoint `step-{iteration:06}` as the last good one, and that `ckpt`'s newest checkpoint is
/// still that one.
pub fn assert_stopped_at(
    err: nightgen_gan::GanError,
    iteration: usize,
    ckpt: &nightvision_core::checkpoint::CheckpointDir,
) {
    match err {
        nightgen_gan::GanError::NonFinite {
            what,
            value,
            iteration: at,
            checkpoint: Some(path),
        } => {
            assert!(!value.is_finite(), "{what} = {value}");
            assert_eq!(at, iteration, "{what}");
            let want = format!("step-{iteration:06}");
            assert!(path.ends_with(&want), "{}", path.display());
        }
        other => panic!("expected NonFinite with a checkpoint, got {other}"),
    }
    let (step, _, _) = ckpt.latest::<serde_json::Value>().unwrap().unwrap();
    assert_eq!(
        step as usize, iteration,
        "the last good checkpoint stays the newest"
    );
}

/// The file-size limit of the full-disk tests: larger than `state.json`, smaller than the tiny
/// networks' checkpoint parts.
pub const FULL_DISK_LIMIT: u64 = 2048;

/// Asserts that `err` is the full-disk error of a checkpoint (`EFBIG` under
/// [`nightvision_core::testing::full_disk::run_with_file_size_limit`]) and that the newest
/// checkpoint of `ckpt` is still `step`.
pub fn assert_full_disk(
    err: nightgen_gan::GanError,
    step: u64,
    ckpt: &nightvision_core::checkpoint::CheckpointDir,
) {
    assert!(
        nightvision_core::testing::full_disk::is_file_too_large(&err),
        "expected a full-disk I/O error, got {err}"
    );
    assert!(matches!(err, nightgen_gan::GanError::Core(_)), "{err}");
    let (latest, _, _) = ckpt.latest::<serde_json::Value>().unwrap().unwrap();
    assert_eq!(latest, step, "the previous checkpoint stays the newest");
}

/// The full-disk test of a GAN trainer, shared by the three trainers' test files: `first(ckpt)`
/// trains one clean epoch of 2 iterations with checkpoints; `resumed(ckpt)` resumes a 2-epoch run
/// and returns its log's iteration count. In a child process with files limited to
/// [`FULL_DISK_LIMIT`] bytes, `resumed` must fail at the checkpoint of iteration 4 with the
/// full-disk error and leave checkpoint 2 the newest; then, with space again, it must finish.
/// `name` is the calling test's name.
pub fn full_disk_case(
    name: &str,
    first: impl Fn(&nightvision_core::checkpoint::CheckpointDir),
    resumed: impl Fn(&nightvision_core::checkpoint::CheckpointDir) -> nightgen_gan::Result<usize>,
) {
    use nightvision_core::checkpoint::CheckpointDir;
    use nightvision_core::testing::full_disk::{full_disk_child, run_with_file_size_limit};
    if let Some(dir) = full_disk_child() {
        let ckpt = CheckpointDir::new(dir).unwrap();
        assert_full_disk(resumed(&ckpt).unwrap_err(), 2, &ckpt);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ckpt = CheckpointDir::new(dir.path()).unwrap();
    first(&ckpt);
    run_with_file_size_limit(name, dir.path(), FULL_DISK_LIMIT);
    // With space again, the run resumes from iteration 2 and finishes.
    assert_eq!(resumed(&ckpt).unwrap(), 4);
    assert_eq!(ckpt.latest::<serde_json::Value>().unwrap().unwrap().0, 4);
}
