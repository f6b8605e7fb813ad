//! Tuple and CosPlace training: exact resume, the GeM learning-rate group, typed failures (NaN
//! loss, no negatives), and a short run on real images that lowers the contrastive loss.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anchor_mining::AnchorStrategy;
use backbones::{MobileNetV2Config, ResNetConfig};
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use metric_learning::data::{
    AnchorSelection, AugmentHooks, ClassSampler, ImageSource, MiningConfig, TupleDatabase,
};
use metric_learning::train::{
    CosPlaceTrainer, CosPlaceTrainerConfig, Goal, Selection, TupleLoss, TupleTrainer,
    TupleTrainerConfig,
};
use metric_learning::{
    BackboneConfig, CirNet, CirNetConfig, ContrastiveLossConfig, CosPlaceNet, CosPlaceNetConfig,
    MetricError, TrainLog, TupleLayout,
};
use nightvision_core::checkpoint::{CheckpointDir, module_to_bytes};
use nightvision_core::image::Rgb32FImage;
use nightvision_core::parallel::DataParallel;

/// Six "places" (clusters) of three images each: a stripe pattern per place, a per-image shift
/// and brightness; two image sizes so tuples mix sizes.
fn synthetic_db() -> TupleDatabase {
    let mut images = Vec::new();
    let mut clusters = Vec::new();
    for c in 0..6u32 {
        for k in 0..3u32 {
            let (w, h) = if k == 1 { (40, 48) } else { (48, 40) };
            let img = Rgb32FImage::from_fn(w, h, |x, y| {
                let f = 0.15 + 0.12 * c as f32;
                let v = ((x as f32 * f + y as f32 * 0.07 * c as f32 + k as f32).sin() * 0.5 + 0.5)
                    * (0.7 + 0.1 * k as f32);
                image::Rgb([v, (v * 0.8 + 0.1 * c as f32 / 6.0).min(1.0), 1.0 - v])
            });
            images.push(img);
            clusters.push(i64::from(c));
        }
    }
    let qidxs = (0..6).map(|c| 3 * c).collect();
    let pidxs = (0..6).map(|c| 3 * c + 1).collect();
    TupleDatabase::new(ImageSource::memory(images), clusters, qidxs, pidxs).unwrap()
}

fn tiny_net(device: &Device) -> CirNet {
    device.seed(11);
    CirNetConfig::new(BackboneConfig::ResNet(
        ResNetConfig::resnet18().with_base_width(4),
    ))
    .init(device)
    .unwrap()
}

/// The log without wall-clock times.
fn timeless(log: &metric_learning::TrainLog) -> metric_learning::TrainLog {
    let mut l = log.clone();
    l.epochs.iter_mut().for_each(|e| e.seconds = 0.0);
    l
}

fn cfg(epochs: usize) -> TupleTrainerConfig {
    TupleTrainerConfig {
        epochs,
        lr: 1e-3,
        weight_decay: 1e-4,
        batch_size: 2,
        image_size: 48,
        mining: MiningConfig {
            neg_num: 3,
            query_size: 4,
            pool_size: 18,
        },
        seed: 5,
        ..TupleTrainerConfig::default()
    }
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let device = Device::default();
    let db = synthetic_db();
    let init = tiny_net(&device);
    let hooks = AugmentHooks::anchors_and_positives(|x: Tensor<4>| x.mul_scalar(0.6));

    let straight_dir = tempfile::tempdir().unwrap();
    let straight = TupleTrainer::new(cfg(2), &db, hooks.clone(), &device)
        .unwrap()
        .train(
            init.clone(),
            Some(&CheckpointDir::new(straight_dir.path()).unwrap()),
        )
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let ckpt = CheckpointDir::new(dir.path()).unwrap();
    let first = TupleTrainer::new(cfg(1), &db, hooks.clone(), &device)
        .unwrap()
        .train(init.clone(), Some(&ckpt))
        .unwrap();
    assert_eq!(first.log.epochs.len(), 1);
    // A fresh process would start from a freshly built network: the checkpoint restores it.
    let resumed = TupleTrainer::new(cfg(2), &db, hooks, &device)
        .unwrap()
        .train(init, Some(&ckpt))
        .unwrap();

    assert_eq!(
        timeless(&resumed.log),
        timeless(&straight.log),
        "logs differ"
    );
    let a = module_to_bytes(&straight.net.valid()).unwrap();
    let b = module_to_bytes(&resumed.net.valid()).unwrap();
    assert!(a == b, "weights differ after resuming");
    // Training moved GeM's p and the log has one entry per optimiser step.
    let p = straight.net.gem_p().unwrap();
    assert!((p - 3.0).abs() > 1e-4, "p did not move: {p}");
    assert_eq!(straight.log.epochs[1].step_losses.len(), 2);
    assert!(dir.path().join("log.json").is_file());
}

#[test]
fn gem_p_steps_ten_times_faster_without_weight_decay() {
    let device = Device::default();
    let db = synthetic_db();
    let init = tiny_net(&device);
    let mut c = cfg(1);
    c.lr = 1e-4;
    c.weight_decay = 0.5; // large, to show p is exempt
    c.mining.query_size = 2; // one optimiser step
    let out = TupleTrainer::new(c, &db, AugmentHooks::default(), &device)
        .unwrap()
        .train(init.clone(), None)
        .unwrap();
    // Adam's first step moves every parameter by lr·m̂/(√v̂ + ε) = ±lr (|g| ≫ ε = 1e-8).
    let dp = (out.net.gem_p().unwrap() - init.gem_p().unwrap()).abs();
    assert!(
        (dp / 1e-3 - 1.0).abs() < 0.01,
        "Δp = {dp}, expected 10·lr = 1e-3"
    );
    let w0 = init.backbone.clone();
    let w1 = out.net.valid().backbone;
    let (metric_learning::Backbone::ResNet(r0), metric_learning::Backbone::ResNet(r1)) = (w0, w1)
    else {
        unreachable!()
    };
    let dw: f32 = (r1.conv1.weight.val() - r0.conv1.weight.val())
        .abs()
        .max()
        .into_scalar();
    assert!(
        (dw / 1e-4 - 1.0).abs() < 0.01,
        "max |Δw| = {dw}, expected lr = 1e-4"
    );
}

#[test]
fn nan_loss_stops_with_the_last_good_checkpoint_kept() {
    let device = Device::default();
    let db = synthetic_db();
    let poison = Arc::new(AtomicBool::new(false));
    let flag = poison.clone();
    let hooks = AugmentHooks {
        augmentation: Some(Arc::new(move |x: Tensor<4>| {
            if flag.load(Ordering::SeqCst) {
                x.mul_scalar(f32::NAN)
            } else {
                x
            }
        })),
        anchors: Some(AnchorSelection::All),
        positives: false,
        query_copy: false,
        post: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let ckpt = CheckpointDir::new(dir.path()).unwrap();
    let net = tiny_net(&device);
    TupleTrainer::new(cfg(1), &db, hooks.clone(), &device)
        .unwrap()
        .train(net.clone(), Some(&ckpt))
        .unwrap();
    poison.store(true, Ordering::SeqCst);
    let err = TupleTrainer::new(cfg(2), &db, hooks, &device)
        .unwrap()
        .train(net, Some(&ckpt))
        .unwrap_err();
    assert_stopped_after_epoch_1(err, &ckpt);
}

/// Asserts that `err` is [`MetricError::NonFinite`] in epoch 1 naming checkpoint 1 as the last
/// good one, and that checkpoint 1 is still `ckpt`'s newest.
fn assert_stopped_after_epoch_1(err: MetricError, ckpt: &CheckpointDir) {
    match err {
        MetricError::NonFinite {
            epoch,
            checkpoint: Some(path),
            ..
        } => {
            assert_eq!(epoch, 1);
            assert!(path.ends_with("step-000001"), "{}", path.display());
        }
        other => panic!("expected NonFinite, got {other}"),
    }
    let (step, _, _) = ckpt.latest::<serde_json::Value>().unwrap().unwrap();
    assert_eq!(step, 1, "the last good checkpoint is still the newest");
}

#[test]
fn too_few_clusters_for_the_negatives_is_a_typed_error() {
    let device = Device::default();
    let db = synthetic_db();
    let mut c = cfg(1);
    c.mining.neg_num = 6; // only 5 clusters differ from a query's
    let err = TupleTrainer::new(c, &db, AugmentHooks::default(), &device)
        .unwrap()
        .train(tiny_net(&device), None)
        .unwrap_err();
    assert!(
        matches!(
            err,
            MetricError::NoNegatives {
                needed: 6,
                found: 5,
                ..
            }
        ),
        "{err}"
    );
}

/// A CosPlace network of `dim`-d descriptors on `backbone` (every layer trained) and random
/// inherited descriptors for every image of `db`.
fn net_and_inherited(
    backbone: BackboneConfig,
    dim: usize,
    db: &TupleDatabase,
    device: &Device,
) -> (CosPlaceNet, Tensor<2>) {
    device.seed(3);
    let net = CosPlaceNetConfig::new(backbone, dim)
        .with_train_all_layers(true)
        .init(device)
        .unwrap();
    let inherited = Tensor::<2>::random(
        [db.images.len(), dim],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        device,
    );
    (net, inherited)
}

#[test]
fn cosplace_training_resumes_exactly_and_checks_inherited_sizes() {
    let device = Device::default();
    let db = synthetic_db();
    let classes: Vec<Vec<usize>> = (0..6).map(|c| vec![3 * c, 3 * c + 1, 3 * c + 2]).collect();
    let groups = vec![
        ClassSampler::new(classes[..3].to_vec(), 2).unwrap(),
        ClassSampler::new(classes[3..].to_vec(), 2).unwrap(),
    ];
    let (net, inherited) = net_and_inherited(
        BackboneConfig::ResNet(ResNetConfig::resnet18().with_base_width(4)),
        16,
        &db,
        &device,
    );
    let cfg = |epochs| CosPlaceTrainerConfig {
        epochs,
        iterations_per_epoch: 2,
        batch_size: 3,
        image_size: 32,
        seed: 9,
        ..Default::default()
    };
    let hooks = AugmentHooks::anchors_and_positives(|x: Tensor<4>| x.mul_scalar(0.5));
    let make = |epochs| {
        CosPlaceTrainer::new(
            cfg(epochs),
            &db.images,
            groups.clone(),
            Some(inherited.clone()),
            hooks.clone(),
            &device,
        )
        .unwrap()
    };

    let straight = make(3).train(net.clone(), None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = CheckpointDir::new(dir.path()).unwrap();
    make(2).train(net.clone(), Some(&ckpt)).unwrap();
    let resumed = make(3).train(net.clone(), Some(&ckpt)).unwrap();
    assert_eq!(timeless(&resumed.log), timeless(&straight.log));
    // BatchNorm runs in training mode here (CosPlace): its running statistics must resume too.
    let (ra, sa) = (
        module_to_bytes(&resumed.net.valid()).unwrap(),
        module_to_bytes(&straight.net.valid()).unwrap(),
    );
    assert!(
        ra == sa,
        "weights or BatchNorm statistics differ after resuming"
    );
    assert_eq!(straight.classifiers.len(), 2);
    assert!(
        straight
            .log
            .epochs
            .iter()
            .all(|e| e.mean_loss.is_finite() && e.mean_loss > 0.0)
    );

    // Inherited descriptors of the wrong dimension, a batch larger than the classes.
    let bad = Tensor::<2>::zeros([db.images.len(), 8], &device);
    let t = CosPlaceTrainer::new(
        cfg(1),
        &db.images,
        groups.clone(),
        Some(bad),
        AugmentHooks::default(),
        &device,
    )
    .unwrap();
    assert!(matches!(
        t.train(net.clone(), None),
        Err(MetricError::Shape { .. })
    ));
    let big = CosPlaceTrainerConfig {
        batch_size: 4,
        ..cfg(1)
    };
    assert!(matches!(
        CosPlaceTrainer::new(
            big,
            &db.images,
            groups,
            None,
            AugmentHooks::default(),
            &device
        ),
        Err(MetricError::Config { .. })
    ));
}

/// The real-data run: photos of the cache (each its own place) and the Tokyo 24/7 night query /
/// day database pair; positives are augmented copies of the query (flip + darkening), the Tokyo
/// pair is a real day/night positive. MobileNetV2 with its real ImageNet weights, GeM, 128 px.
#[test]
fn short_real_image_run_lowers_the_contrastive_loss() {
    let dir = match nightvision_core::real_data_dir() {
        Ok(d) => d,
        Err(reason) => {
            println!("skipped: {reason}");
            return;
        }
    };
    let device = Device::default();
    let mut paths: Vec<_> = std::fs::read_dir(dir.join("photos"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    paths.sort();
    let night = dir.join("pairs/tokyo_query_night.jpg");
    let day = dir.join("pairs/tokyo_db_day.png");
    let n_photos = paths.len();
    paths.push(night);
    paths.push(day);
    // Clusters: every photo its own, the Tokyo pair shares one.
    let mut clusters: Vec<i64> = (0..n_photos as i64).collect();
    clusters.extend([n_photos as i64, n_photos as i64]);
    // Pairs: every photo with itself (its positive is augmented), the Tokyo night query with its day image.
    let mut qidxs: Vec<usize> = (0..n_photos).collect();
    let mut pidxs: Vec<usize> = (0..n_photos).collect();
    qidxs.push(n_photos);
    pidxs.push(n_photos + 1);
    let db = TupleDatabase::new(ImageSource::Files(paths), clusters, qidxs, pidxs).unwrap();
    // Positives: horizontally flipped and darkened (a stand-in for a day→night translator).
    let hooks = AugmentHooks {
        augmentation: Some(Arc::new(|x: Tensor<4>| {
            x.flip([3]).powf_scalar(1.8).mul_scalar(0.6)
        })),
        anchors: None,
        positives: true,
        query_copy: false,
        post: None,
    };

    let mut net = CirNetConfig::new(BackboneConfig::MobileNetV2(MobileNetV2Config::new()))
        .init(&device)
        .unwrap();
    if let metric_learning::Backbone::MobileNetV2(m) = &mut net.backbone {
        m.load_torchvision(dir.join("weights/mobilenet_v2_imagenet.safetensors"))
            .unwrap();
    }
    let c = TupleTrainerConfig {
        epochs: 3,
        lr: 1e-5,
        weight_decay: 1e-6,
        batch_size: 5,
        image_size: 128,
        mining: MiningConfig {
            neg_num: 5,
            query_size: 10,
            pool_size: 1000,
        },
        anchors: AnchorStrategy::Random,
        loss: TupleLoss::Contrastive(ContrastiveLossConfig::new().with_margin(0.7)),
        seed: 1,
        ..TupleTrainerConfig::default()
    };
    let trainer = TupleTrainer::new(c.clone(), &db, hooks.clone(), &device).unwrap();
    // Fixed evaluation tuples: all pairs with negatives mined by the initial network.
    let eval_cfg = TupleTrainerConfig {
        mining: MiningConfig {
            query_size: db.qidxs.len(),
            ..c.mining.clone()
        },
        ..c.clone()
    };
    let eval = TupleTrainer::new(eval_cfg, &db, hooks.clone(), &device).unwrap();
    let mut rng = nightvision_core::rng::seeded(99);
    let (tuples, _) = eval.epoch_tuples(&net, &mut rng).unwrap();
    let loss_of = |net: &CirNet| -> f32 {
        let plain = device.clone();
        let net = net.valid();
        let mut total = 0.0;
        let mut r = nightvision_core::rng::seeded(7);
        for t in &tuples {
            let rows: Vec<Tensor<2>> = t
                .images()
                .into_iter()
                .map(|(i, role)| {
                    let img =
                        nightvision_core::image::resize_max_side(&db.images.load(i).unwrap(), 128);
                    let x = nightvision_core::image::to_tensor(&[img], &plain).unwrap();
                    let x = hooks
                        .apply(x, role, &db.images.name(i).unwrap(), &mut r)
                        .unwrap();
                    net.forward(nightvision_core::Normalization::ImageNet.apply(x))
                })
                .collect();
            let labels = TupleLayout::standard_labels(1, t.negatives.len());
            total += ContrastiveLossConfig::new()
                .init()
                .forward(Tensor::cat(rows, 0), &labels)
                .unwrap()
                .into_scalar::<f32>();
        }
        total / tuples.len() as f32
    };
    let before = loss_of(&net);
    let trained = trainer.train(net, None).unwrap();
    let after = loss_of(&trained.net);
    println!(
        "real-image contrastive loss per tuple: before {before:.4}, after {after:.4}; epochs {:?}",
        trained
            .log
            .epochs
            .iter()
            .map(|e| e.mean_loss)
            .collect::<Vec<_>>()
    );
    assert!(after < 0.9 * before, "loss {before} → {after}");
}

#[test]
fn diverse_anchor_strategy_picks_distinct_anchors_with_the_network() {
    let device = Device::default();
    let db = synthetic_db();
    let mut c = cfg(1);
    c.anchors = AnchorStrategy::Diverse(anchor_mining::DiverseConfig::default().with_qpool_size(6));
    c.mining.query_size = 3;
    let trainer = TupleTrainer::new(c, &db, AugmentHooks::default(), &device).unwrap();
    let mut rng = nightvision_core::rng::seeded(4);
    let (tuples, _) = trainer.epoch_tuples(&tiny_net(&device), &mut rng).unwrap();
    assert_eq!(tuples.len(), 3);
    let mut queries: Vec<usize> = tuples.iter().map(|t| t.query).collect();
    queries.sort_unstable();
    queries.dedup();
    assert_eq!(queries.len(), 3, "anchors are distinct");
    for t in &tuples {
        // Positive from the database, negatives from other clusters, one per cluster.
        assert_eq!(t.positive, t.query + 1);
        let mut cl: Vec<i64> = t.negatives.iter().map(|&n| db.clusters[n]).collect();
        assert!(!cl.contains(&db.clusters[t.query]));
        cl.sort_unstable();
        cl.dedup();
        assert_eq!(cl.len(), t.negatives.len());
    }
}

#[test]
fn cosplace_classes_from_utm_names_feed_the_sampler() {
    // Two 10 m cells × one heading bin, 3 and 1 images; min_images_per_class 2 drops the second.
    let names = [
        "@0000005.00@0000005.00@54@S@0@0@p@0@010@@@@@@.jpg",
        "@0000006.00@0000007.00@54@S@0@0@p@0@020@@@@@@.jpg",
        "@0000009.00@0000001.00@54@S@0@0@p@0@005@@@@@@.jpg",
        "@0000015.00@0000005.00@54@S@0@0@p@0@010@@@@@@.jpg",
    ];
    let cfg = anchor_mining::CosPlaceConfig {
        min_images_per_class: 2,
        ..Default::default()
    };
    let classes = anchor_mining::build_classes_from_names(&names, &cfg).unwrap();
    assert_eq!(classes.num_classes(), 1);
    let s = ClassSampler::from_cosplace_group(&classes.groups[0], 2).unwrap();
    assert_eq!(s.classes(), &[vec![0, 1, 2]]);
    // Asking for more images per class than a class holds is a typed error.
    let e = ClassSampler::from_cosplace_group(&classes.groups[0], 4).unwrap_err();
    assert!(
        matches!(
            e,
            MetricError::SmallClass {
                images: 3,
                min: 4,
                ..
            }
        ),
        "{e}"
    );
}

/// Similarity Min-Max's extra positive (docs/PAPERS.md C.3): an identity "darkening" adds a positive
/// pair at distance 0, which the contrastive loss scores 0 — the epoch's losses equal those of a
/// run without the copy; a real darkening adds a positive pair at a positive distance, so every
/// step's loss grows.
#[test]
fn query_copy_is_an_extra_positive() {
    let device = Device::default();
    let db = synthetic_db();
    let init = tiny_net(&device);
    let mut c = cfg(1);
    c.lr = 1e-20; // Adam moves weights by ±lr: below f32 resolution, the same network throughout
    let run = |hooks: AugmentHooks| {
        TupleTrainer::new(c.clone(), &db, hooks, &device)
            .unwrap()
            .train(init.clone(), None)
            .unwrap()
            .log
            .epochs[0]
            .step_losses
            .clone()
    };
    let plain = run(AugmentHooks::default());
    let identity = run(AugmentHooks::query_copy(|x: Tensor<4>| x));
    let dark = run(AugmentHooks::query_copy(|x: Tensor<4>| {
        x.powf_scalar(2.0).mul_scalar(0.3)
    }));
    // same images through the same frozen-BN network, summed in a different batch layout
    const SUM_ORDER_TOL: f32 = 1e-5;
    for ((p, i), d) in plain.iter().zip(&identity).zip(&dark) {
        assert!(
            (p - i).abs() <= SUM_ORDER_TOL * p.abs().max(1.0),
            "{p} vs {i}"
        );
        assert!(*d > p + 1e-4, "darkened copy must add loss: {d} vs {p}");
    }
}

/// `post` runs on every image (A.6's CLAHE): a post that poisons everything with NaN must stop
/// training even when no image is otherwise augmented.
#[test]
fn post_applies_to_every_image() {
    let device = Device::default();
    let db = synthetic_db();
    let init = tiny_net(&device);
    let hooks = AugmentHooks::default().with_post(|x: Tensor<4>| x.mul_scalar(f32::NAN));
    let err = TupleTrainer::new(cfg(1), &db, hooks, &device)
        .unwrap()
        .train(init.clone(), None);
    assert!(err.is_err(), "a NaN post must reach the loss");
    // and an identity post changes nothing
    let plain = TupleTrainer::new(cfg(1), &db, AugmentHooks::default(), &device)
        .unwrap()
        .train(init.clone(), None)
        .unwrap();
    let ident = TupleTrainer::new(
        cfg(1),
        &db,
        AugmentHooks::default().with_post(|x: Tensor<4>| x),
        &device,
    )
    .unwrap()
    .train(init.clone(), None)
    .unwrap();
    assert_eq!(
        timeless(&plain.log).epochs[0].step_losses,
        timeless(&ident.log).epochs[0].step_losses
    );
}

/// A tiny CosPlace set-up: the synthetic database, one group of its 6 classes, a ResNet-18 of
/// base width 4 with 16-d descriptors.
fn tiny_cosplace(device: &Device) -> (TupleDatabase, Vec<ClassSampler>, CosPlaceNet) {
    let db = synthetic_db();
    let classes: Vec<Vec<usize>> = (0..6).map(|c| vec![3 * c, 3 * c + 1, 3 * c + 2]).collect();
    let groups = vec![ClassSampler::new(classes, 2).unwrap()];
    device.seed(3);
    let net = CosPlaceNetConfig::new(
        BackboneConfig::ResNet(ResNetConfig::resnet18().with_base_width(4)),
        16,
    )
    .init(device)
    .unwrap();
    (db, groups, net)
}

/// `epochs` of 2 iterations of 3 images at 32 px.
fn tiny_cosplace_cfg(epochs: usize) -> CosPlaceTrainerConfig {
    CosPlaceTrainerConfig {
        epochs,
        iterations_per_epoch: 2,
        batch_size: 3,
        image_size: 32,
        seed: 9,
        ..Default::default()
    }
}

#[test]
fn cosplace_nan_loss_stops_with_the_last_good_checkpoint_kept() {
    let device = Device::default();
    let (db, groups, net) = tiny_cosplace(&device);
    let poison = Arc::new(AtomicBool::new(false));
    let flag = poison.clone();
    let hooks = AugmentHooks::anchors_and_positives(move |x: Tensor<4>| {
        if flag.load(Ordering::SeqCst) {
            x.mul_scalar(f32::NAN)
        } else {
            x
        }
    });
    let make = |epochs| {
        CosPlaceTrainer::new(
            tiny_cosplace_cfg(epochs),
            &db.images,
            groups.clone(),
            None,
            hooks.clone(),
            &device,
        )
        .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let ckpt = CheckpointDir::new(dir.path()).unwrap();
    make(1).train(net.clone(), Some(&ckpt)).unwrap();
    poison.store(true, Ordering::SeqCst);
    assert_stopped_after_epoch_1(make(2).train(net, Some(&ckpt)).unwrap_err(), &ckpt);
}

/// Asserts that `err` is a full disk during a checkpoint and that `ckpt`'s newest checkpoint is
/// still `step`.
fn assert_full_disk(err: MetricError, step: u64, ckpt: &CheckpointDir) {
    assert!(
        nightvision_core::testing::full_disk::is_file_too_large(&err),
        "expected a full-disk I/O error, got {err}"
    );
    assert!(matches!(err, MetricError::Core(_)), "{err}");
    let (latest, _, _) = ckpt.latest::<serde_json::Value>().unwrap().unwrap();
    assert_eq!(latest, step, "the previous checkpoint stays the newest");
}

/// The full-disk test of a trainer: `train(epochs, ckpt)` trains (resuming from `ckpt`) and
/// returns the run's log and the trained network's bytes. In a child process whose files may
/// not grow past 2 KiB, a run resumed after epoch 1 must fail at the checkpoint of epoch 2 with
/// the full-disk error and leave checkpoint 1 the newest; with space again it must resume and
/// equal an uninterrupted run. `name` is the calling test's name.
fn full_disk_case(
    name: &str,
    train: impl Fn(usize, Option<&CheckpointDir>) -> metric_learning::Result<(TrainLog, Vec<u8>)>,
) {
    use nightvision_core::testing::full_disk::{full_disk_child, run_with_file_size_limit};
    if let Some(dir) = full_disk_child() {
        let ckpt = CheckpointDir::new(dir).unwrap();
        assert_full_disk(train(2, Some(&ckpt)).unwrap_err(), 1, &ckpt);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ckpt = CheckpointDir::new(dir.path()).unwrap();
    train(1, Some(&ckpt)).unwrap();
    run_with_file_size_limit(name, dir.path(), 2048);
    let (resumed_log, resumed) = train(2, Some(&ckpt)).unwrap();
    let (straight_log, straight) = train(2, None).unwrap();
    assert_eq!(timeless(&resumed_log), timeless(&straight_log));
    assert!(resumed == straight, "weights differ after resuming");
}

#[test]
fn tuple_training_on_a_full_disk_stops_with_an_io_error_and_resumes() {
    let device = Device::default();
    let db = synthetic_db();
    let net = tiny_net(&device);
    full_disk_case(
        "tuple_training_on_a_full_disk_stops_with_an_io_error_and_resumes",
        |epochs, ckpt| {
            let t = TupleTrainer::new(cfg(epochs), &db, AugmentHooks::default(), &device)?
                .train(net.clone(), ckpt)?;
            Ok((t.log, module_to_bytes(&t.net)?))
        },
    );
}

#[test]
fn cosplace_training_on_a_full_disk_stops_with_an_io_error_and_resumes() {
    let device = Device::default();
    let (db, groups, net) = tiny_cosplace(&device);
    full_disk_case(
        "cosplace_training_on_a_full_disk_stops_with_an_io_error_and_resumes",
        |epochs, ckpt| {
            let t = CosPlaceTrainer::new(
                tiny_cosplace_cfg(epochs),
                &db.images,
                groups.clone(),
                None,
                AugmentHooks::default(),
                &device,
            )?
            .train(net.clone(), ckpt)?;
            Ok((t.log, module_to_bytes(&t.net.valid())?))
        },
    );
}

/// Data-parallel training on two replicas of the CPU device against one device, same global
/// batch: the weights agree within `TOL` (only the order of floating-point sums differs), and a
/// two-device run resumed from its checkpoint equals its uninterrupted run bit for bit.
const DATA_PARALLEL_TOL: f32 = 1e-5;

fn assert_close_weights<M: Module>(one: &M, two: &M, what: &str) {
    let (diff, scale) = nightvision_core::testing::max_param_difference(one, two);
    println!("{what}: max |w(1 device) − w(2 devices)| = {diff:e} (largest |w| {scale:.3})");
    assert!(
        diff <= DATA_PARALLEL_TOL,
        "{what}: {diff:e} > {DATA_PARALLEL_TOL:e}"
    );
}

/// Step losses of two runs agree within 1e-4 (relative, absolute below 1).
fn assert_close_step_losses(a: &TrainLog, b: &TrainLog) {
    for (a, b) in a.epochs.iter().zip(&b.epochs) {
        for (x, y) in a.step_losses.iter().zip(&b.step_losses) {
            assert!((x - y).abs() <= 1e-4 * x.abs().max(1.0), "{x} vs {y}");
        }
    }
}

/// A resumed two-device run equals the uninterrupted one: the log (without wall-clock times)
/// and the weights, bit for bit.
fn assert_resumed_equal<M: Module>(
    resumed_log: &TrainLog,
    resumed: &M,
    straight_log: &TrainLog,
    straight: &M,
) {
    assert_eq!(timeless(resumed_log), timeless(straight_log));
    assert!(
        module_to_bytes(&resumed.valid()).unwrap() == module_to_bytes(&straight.valid()).unwrap(),
        "two-device weights differ after resuming"
    );
}

#[test]
fn tuple_training_on_two_devices_equals_one_device_and_resumes_exactly() {
    let device = Device::default();
    let db = synthetic_db();
    let init = tiny_net(&device);
    let hooks = AugmentHooks::anchors_and_positives(|x: Tensor<4>| x.mul_scalar(0.6));
    let two = DataParallel::replicas(&device, 2).unwrap();
    // 5 tuples per epoch, steps of 4 (shards of 2 and 2) and 1 (device 1 idle).
    let cfg = |epochs| {
        let c = cfg(epochs);
        TupleTrainerConfig {
            batch_size: 4,
            mining: MiningConfig {
                query_size: 5,
                ..c.mining
            },
            ..c
        }
    };
    let one_dev = TupleTrainer::new(cfg(2), &db, hooks.clone(), &device)
        .unwrap()
        .train(init.clone(), None)
        .unwrap();
    let trainer = |epochs| {
        TupleTrainer::new(cfg(epochs), &db, hooks.clone(), &device)
            .unwrap()
            .with_data_parallel(two.clone())
    };
    let two_dev = trainer(2).train(init.clone(), None).unwrap();
    assert_close_weights(&one_dev.net.valid(), &two_dev.net.valid(), "tuple training");
    assert_close_step_losses(&one_dev.log, &two_dev.log);
    assert_eq!(two_dev.log.epochs[0].step_losses.len(), 2);

    let dir = tempfile::tempdir().unwrap();
    let ckpt = CheckpointDir::new(dir.path()).unwrap();
    trainer(1).train(init.clone(), Some(&ckpt)).unwrap();
    let resumed = trainer(2).train(init, Some(&ckpt)).unwrap();
    assert_resumed_equal(&resumed.log, &resumed.net, &two_dev.log, &two_dev.net);
}

#[test]
fn cosplace_training_on_two_devices_equals_one_device_and_resumes_exactly() {
    let device = Device::default();
    let db = synthetic_db();
    let classes: Vec<Vec<usize>> = (0..6).map(|c| vec![3 * c, 3 * c + 1, 3 * c + 2]).collect();
    let groups = vec![ClassSampler::new(classes, 2).unwrap()];
    // A trunk without BatchNorm: with BatchNorm on batch statistics each device would
    // normalise its own shard (PyTorch DDP without SyncBatchNorm), which is not one device.
    let (net, inherited) = net_and_inherited(
        BackboneConfig::Vgg16(backbones::Vgg16Config::new().with_widths([4, 8, 8, 16, 16])),
        8,
        &db,
        &device,
    );
    let cfg = |epochs| CosPlaceTrainerConfig {
        epochs,
        iterations_per_epoch: 2,
        batch_size: 5,
        image_size: 32,
        lr: 1e-3,
        seed: 4,
        ..Default::default()
    };
    let hooks = AugmentHooks::anchors_and_positives(|x: Tensor<4>| x.mul_scalar(0.5));
    let make = |epochs, dp: Option<&DataParallel>| {
        let t = CosPlaceTrainer::new(
            cfg(epochs),
            &db.images,
            groups.clone(),
            Some(inherited.clone()),
            hooks.clone(),
            &device,
        )
        .unwrap();
        match dp {
            Some(dp) => t.with_data_parallel(dp.clone()),
            None => t,
        }
    };
    let two = DataParallel::replicas(&device, 2).unwrap();
    let one_dev = make(2, None).train(net.clone(), None).unwrap();
    let two_dev = make(2, Some(&two)).train(net.clone(), None).unwrap();
    assert_close_weights(
        &one_dev.net.valid(),
        &two_dev.net.valid(),
        "CosPlace network",
    );
    assert_close_weights(
        &one_dev.classifiers[0].valid(),
        &two_dev.classifiers[0].valid(),
        "CosPlace classifier",
    );
    assert_close_step_losses(&one_dev.log, &two_dev.log);

    let dir = tempfile::tempdir().unwrap();
    let ckpt = CheckpointDir::new(dir.path()).unwrap();
    make(1, Some(&two)).train(net.clone(), Some(&ckpt)).unwrap();
    let resumed = make(2, Some(&two)).train(net, Some(&ckpt)).unwrap();
    assert_resumed_equal(&resumed.log, &resumed.net, &two_dev.log, &two_dev.net);
}

/// A run killed between writing its last checkpoint and its `log.json` left the previous log
/// behind; resuming it (with nothing left to train) rewrites the log from the checkpoint.
#[test]
fn resuming_a_finished_run_rewrites_a_stale_log() {
    let device = Device::default();
    let db = synthetic_db();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = CheckpointDir::new(dir.path()).unwrap();
    let trained = TupleTrainer::new(cfg(1), &db, AugmentHooks::default(), &device)
        .unwrap()
        .train(tiny_net(&device), Some(&ckpt))
        .unwrap();
    let log_file = dir.path().join("log.json");
    std::fs::write(&log_file, r#"{"seed": 5, "epochs": []}"#).unwrap();
    TupleTrainer::new(cfg(1), &db, AugmentHooks::default(), &device)
        .unwrap()
        .train(tiny_net(&device), Some(&ckpt))
        .unwrap();
    let log: TrainLog = serde_json::from_slice(&std::fs::read(&log_file).unwrap()).unwrap();
    assert_eq!(log, trained.log);
}

#[test]
fn inherited_descriptors_see_the_training_geometry() {
    use metric_learning::train::training_view_descriptors;
    use nightvision_core::image::{resize_bilinear, to_tensor};
    let device = Device::default();
    let (db, _, net) = tiny_cosplace(&device);
    let cfg = tiny_cosplace_cfg(1);
    let got = training_view_descriptors(&net, &db.images, &cfg, 4, &device).unwrap();
    let one_by_one = training_view_descriptors(&net, &db.images, &cfg, 1, &device).unwrap();
    assert_eq!(got.dims(), [db.images.len(), 16]);
    let net = net.valid();
    let mut worst = 0f32;
    for i in 0..db.images.len() {
        // what the trainer feeds the student: the whole image squashed to a square, normalised
        let img = db.images.load(i).unwrap();
        let x = resize_bilinear(to_tensor(&[img], &device).unwrap(), [32, 32]);
        let want = net.forward(cfg.normalization.apply(x));
        let row = got.clone().slice([i..i + 1, 0..16]);
        let alone = one_by_one.clone().slice([i..i + 1, 0..16]);
        worst = worst
            .max((row.clone() - want).abs().max().into_scalar())
            .max((row - alone).abs().max().into_scalar());
    }
    assert!(worst < 1e-5, "max |Δ| {worst}");
    let bad = CosPlaceTrainerConfig {
        image_size: 0,
        ..cfg
    };
    assert!(matches!(
        training_view_descriptors(&net, &db.images, &bad, 4, &device),
        Err(MetricError::Config { .. })
    ));
}

#[test]
fn random_resized_crop_boxes_follow_torchvision_ranges() {
    use metric_learning::train::random_resized_crop_box;
    let mut rng = nightvision_core::rng::seeded(5);
    let (mut smallest, mut largest) = (f64::MAX, 0f64);
    for _ in 0..2000 {
        let (t, l, h, w) = random_resized_crop_box(96, 96, 0.5, &mut rng);
        assert!(t + h <= 96 && l + w <= 96 && h > 0 && w > 0);
        let area = (h * w) as f64 / (96.0 * 96.0);
        let ratio = w as f64 / h as f64;
        // rounding each side to a pixel moves area and ratio by a little
        assert!((0.48..=1.0).contains(&area), "area {area}");
        assert!((0.73..=1.37).contains(&ratio), "ratio {ratio}");
        smallest = smallest.min(area);
        largest = largest.max(area);
    }
    assert!(smallest < 0.52 && largest > 0.95, "{smallest} .. {largest}");
    // no draw fits a 1-pixel-high strip at these ratios: the centre crop, ratio clamped to 4/3
    assert_eq!(random_resized_crop_box(1, 40, 0.5, &mut rng), (0, 19, 1, 1));
    // a whole image is always allowed
    let (_, _, h, w) = random_resized_crop_box(30, 40, 1.0, &mut rng);
    assert!(h * w <= 1200 && h * w >= 1000, "{h}×{w}");
}

#[test]
fn cosplace_training_with_random_resized_crops_runs_and_checks_the_scale() {
    let device = Device::default();
    let (db, groups, net) = tiny_cosplace(&device);
    let cfg = CosPlaceTrainerConfig {
        random_resized_crop: Some(0.5),
        ..tiny_cosplace_cfg(1)
    };
    let trainer = |cfg: CosPlaceTrainerConfig| {
        CosPlaceTrainer::new(
            cfg,
            &db.images,
            groups.clone(),
            None,
            AugmentHooks::default(),
            &device,
        )
    };
    let first_loss = |cfg: CosPlaceTrainerConfig| {
        let trained = trainer(cfg).unwrap().train(net.clone(), None).unwrap();
        trained.log.epochs[0].mean_loss
    };
    let (la, lp) = (first_loss(cfg), first_loss(tiny_cosplace_cfg(1)));
    assert!(
        la.is_finite() && la != lp,
        "crops change the batches: {la} vs {lp}"
    );
    for bad in [0.0, 1.5, f64::NAN] {
        let cfg = CosPlaceTrainerConfig {
            random_resized_crop: Some(bad),
            ..tiny_cosplace_cfg(1)
        };
        let e = trainer(cfg);
        assert!(matches!(e, Err(MetricError::Config { .. })), "{bad}");
    }
}

/// A score that replays `scores` in order, one per call.
fn scripted(
    scores: &[f64],
) -> impl FnMut(&CirNet) -> Result<f64, metric_learning::train::ScoreError> + '_ {
    let mut i = 0;
    move |_| {
        i += 1;
        Ok(scores[i - 1])
    }
}

#[test]
fn selection_returns_the_best_epoch_and_keeps_it_across_a_resume() {
    let device = Device::default();
    let db = synthetic_db();
    let init = tiny_net(&device);
    let hooks = AugmentHooks::default();
    let trainer = |epochs| TupleTrainer::new(cfg(epochs), &db, hooks.clone(), &device).unwrap();
    // the network after two plain epochs is what a selection that prefers epoch 1 returns
    let two = trainer(2).train(init.clone(), None).unwrap();

    let scores = [0.3, 0.9, 0.5];
    let mut sel = Selection::new(1, Goal::Maximize, scripted(&scores)).unwrap();
    let picked = trainer(3)
        .train_selecting(init.clone(), None, &mut sel)
        .unwrap();
    let got: Vec<Option<f64>> = picked.log.epochs.iter().map(|e| e.val_score).collect();
    assert_eq!(got, vec![Some(0.3), Some(0.9), Some(0.5)]);
    assert_eq!(picked.log.best.map(|b| b.epoch), Some(1));
    assert!(
        module_to_bytes(&picked.net.valid()).unwrap() == module_to_bytes(&two.net.valid()).unwrap(),
        "the selected network is not epoch 1's"
    );

    // killed after two epochs, resumed for the third: epoch 1 is still the best
    let dir = tempfile::tempdir().unwrap();
    let ckpt = CheckpointDir::new(dir.path()).unwrap();
    let mut first = Selection::new(1, Goal::Maximize, scripted(&scores[..2])).unwrap();
    trainer(2)
        .train_selecting(init.clone(), Some(&ckpt), &mut first)
        .unwrap();
    let mut rest = Selection::new(1, Goal::Maximize, scripted(&scores[2..])).unwrap();
    let resumed = trainer(3)
        .train_selecting(init.clone(), Some(&ckpt), &mut rest)
        .unwrap();
    assert_eq!(timeless(&resumed.log), timeless(&picked.log));
    assert!(
        module_to_bytes(&resumed.net.valid()).unwrap()
            == module_to_bytes(&two.net.valid()).unwrap(),
        "the resumed run lost epoch 1's network"
    );

    // every 2 epochs (and the last): epochs 1 and 2 are scored; minimising keeps the lower
    let mut sparse = Selection::new(2, Goal::Minimize, scripted(&[0.4, 0.2])).unwrap();
    let s = trainer(3)
        .train_selecting(init.clone(), None, &mut sparse)
        .unwrap();
    let got: Vec<Option<f64>> = s.log.epochs.iter().map(|e| e.val_score).collect();
    assert_eq!(got, vec![None, Some(0.4), Some(0.2)]);
    assert_eq!(s.log.best.map(|b| b.epoch), Some(2));

    // a non-finite score is an error naming the epoch
    let mut bad = Selection::new(1, Goal::Minimize, |_: &CirNet| Ok(f64::NAN)).unwrap();
    let err = trainer(1)
        .train_selecting(init, None, &mut bad)
        .unwrap_err();
    assert!(err.to_string().contains("epoch 0"), "{err}");
}

#[test]
fn validation_loss_is_the_mean_tuple_loss_before_an_update() {
    // one optimiser step per epoch (batch = the epoch's 4 tuples): the first epoch's mean loss
    // is the loss of the initial network on the tuples `loss` mines with the same draws
    let device = Device::default();
    let db = synthetic_db();
    let init = tiny_net(&device);
    let c = TupleTrainerConfig {
        batch_size: 4,
        ..cfg(1)
    };
    let trainer = TupleTrainer::new(c, &db, AugmentHooks::default(), &device).unwrap();
    let trained = trainer.train(init.clone(), None).unwrap();
    let want = f64::from(trained.log.epochs[0].mean_loss);
    let got = trainer.loss(&init, 0).unwrap();
    assert!(
        (got - want).abs() <= 1e-5 * want.abs().max(1.0),
        "{got} vs {want}"
    );
    // another epoch's draws give another value; the same epoch the same one
    assert_eq!(trainer.loss(&init, 0).unwrap(), got);
    assert_ne!(trainer.loss(&init, 1).unwrap(), got);
}

#[test]
fn cosplace_selection_returns_the_best_epoch() {
    let device = Device::default();
    let (db, groups, net) = tiny_cosplace(&device);
    let trainer = |epochs| {
        CosPlaceTrainer::new(
            tiny_cosplace_cfg(epochs),
            &db.images,
            groups.clone(),
            None,
            AugmentHooks::default(),
            &device,
        )
        .unwrap()
    };
    let one = trainer(1).train(net.clone(), None).unwrap();
    let mut calls = 0;
    let mut sel = Selection::new(1, Goal::Minimize, |_: &CosPlaceNet| {
        calls += 1;
        Ok(if calls == 1 { 0.1 } else { 0.7 })
    })
    .unwrap();
    let picked = trainer(3).train_selecting(net, None, &mut sel).unwrap();
    assert_eq!(picked.log.best.map(|b| b.epoch), Some(0));
    assert!(
        module_to_bytes(&picked.net.valid()).unwrap() == module_to_bytes(&one.net.valid()).unwrap(),
        "the selected network is not epoch 0's"
    );
}
