//! Similarity Min-Max's classification pipeline end to end on a tiny world: the task is built from
//! the CosPlace classes and the night renders, every stage trains and checkpoints, a second run
//! resumes to the same report without training, another setting is refused naming it, and a world
//! without classes is an error that says why.

mod common;

use burn::tensor::Device;
use nightvision::pipelines::smm_classification::{self, PlaceTask, SmmClassificationConfig};

/// A tiny world whose CosPlace set has classes of 10 images and whose night renders fall into
/// some of them.
fn world(dir: &std::path::Path) -> std::path::PathBuf {
    common::world_with(
        dir,
        &nightvision::places::WorldConfig {
            places: 4,
            train_places: 6,
            cosplace_views: 10,
            gan_images: 40,
            ..nightvision::places::WorldConfig::tiny()
        },
    )
}

#[test]
fn the_pipeline_trains_resumes_and_refuses_other_settings() {
    if let Err(reason) =
        nightvision::core::real_data_file("weights/mobilenet_v2_imagenet.safetensors")
    {
        println!("skipped: {reason}");
        return;
    }
    let device = Device::default();
    let dir = tempfile::tempdir().unwrap();
    let data = world(dir.path());
    let task = PlaceTask::from_world(&data, 5).unwrap();
    assert!(task.classes > 0 && !task.night_test.is_empty(), "{task:?}");
    assert_eq!(task.train.len() + task.day_test.len(), task.classes * 10);
    assert_eq!(task.day_test.len(), task.classes * 2);

    let cfg = SmmClassificationConfig::new()
        .with_data(Some(data.clone()))
        .with_out(dir.path().join("out"))
        .with_d_iterations(2)
        .with_crop(32)
        .with_day_epochs(1)
        .with_epochs(1)
        .with_batch(16)
        .with_image_size(32);
    let report = smm_classification::run(&cfg, &device).unwrap();
    assert_eq!(report.accuracy.len(), 3);
    for a in &report.accuracy {
        for ci in [&a.day, &a.night] {
            assert!(ci.lower[0] <= ci.values[0] && ci.values[0] <= ci.upper[0]);
            assert!((0.0..=100.0).contains(&ci.values[0]));
        }
    }
    for f in [
        "report.json",
        "report.md",
        "views.png",
        "classifier-smm/log.json",
    ] {
        assert!(dir.path().join("out").join(f).exists(), "{f}");
    }
    // every stage logged its steps: ⌈train / batch⌉ per epoch
    let steps = task.train.len().div_ceil(16);
    assert!(
        report
            .last_steps
            .iter()
            .all(|(_, l)| l.is_some_and(|l| l.step as usize == steps - 1))
    );

    // a second run resumes every stage to the same classifiers
    let again = smm_classification::run(&cfg, &device).unwrap();
    assert_eq!(again.accuracy, report.accuracy);

    // another learning rate is refused, naming it
    let e = smm_classification::run(&cfg.clone().with_lr(1e-4), &device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("lr"), "{e}");

    // the plain tiny world has no class of 10 images
    let plain = common::tiny_world(&dir.path().join("plain"));
    let e = PlaceTask::from_world(&plain, 5).unwrap_err().to_string();
    assert!(e.contains("no CosPlace class"), "{e}");
}
