//! Input formats and bad input: cirtorch's training pickle, malformed tuples, mismatched
//! descriptor sizes, impossible whitening, checkpoints of another architecture.

use std::path::PathBuf;

use backbones::ResNetConfig;
use burn::tensor::{Device, Tensor};
use metric_learning::data::{ImageSource, TupleDatabase, cid2filename};
use metric_learning::{
    BackboneConfig, CirNetConfig, ContrastiveLossConfig, MarginCosineProductConfig, MetricError,
    NocPlaceLossConfig, TripletLossConfig, Whitening, ikt_loss, multiscale,
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn cirtorch_pickle_reads_like_python() {
    // sfm_mini.json is `json.dump(pickle.load(...))` of the same file, written by the script.
    let want: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("sfm_mini.json")).unwrap()).unwrap();
    for split in ["train", "val"] {
        let db = TupleDatabase::from_cirtorch_pickle(fixture("sfm_mini.pkl"), split, "/data/ims")
            .unwrap();
        let w = &want[split];
        let ints = |k: &str| {
            w[k].as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(db.clusters, ints("cluster"));
        assert_eq!(
            db.qidxs.iter().map(|&v| v as i64).collect::<Vec<_>>(),
            ints("qidxs")
        );
        assert_eq!(
            db.pidxs.iter().map(|&v| v as i64).collect::<Vec<_>>(),
            ints("pidxs")
        );
        let cids = w["cids"].as_array().unwrap();
        assert_eq!(db.images.len(), cids.len());
        for (i, c) in cids.iter().enumerate() {
            let c = c.as_str().unwrap();
            assert_eq!(
                db.images.name(i).unwrap(),
                cid2filename(c, std::path::Path::new("/data/ims")).to_string_lossy()
            );
        }
    }
    let e = TupleDatabase::from_cirtorch_pickle(fixture("sfm_mini.pkl"), "test", "/x").unwrap_err();
    assert!(
        matches!(&e, MetricError::Pickle { reason, .. } if reason.contains("\"test\"")),
        "{e}"
    );
    let e =
        TupleDatabase::from_cirtorch_pickle(fixture("versions.json"), "train", "/x").unwrap_err();
    assert!(matches!(e, MetricError::Pickle { .. }), "{e}");
    let e = TupleDatabase::from_cirtorch_pickle(fixture("missing.pkl"), "train", "/x").unwrap_err();
    assert!(matches!(e, MetricError::Core(_)), "{e}");
}

#[test]
fn malformed_tuples_are_rejected() {
    let device = Device::default();
    let x = Tensor::<2>::zeros([7, 4], &device);
    let c = ContrastiveLossConfig::new().init();
    // Label count differs from the descriptors.
    assert!(matches!(
        c.forward(x.clone(), &[-1, 1, 0]),
        Err(MetricError::Shape { .. })
    ));
    // No query.
    assert!(matches!(
        c.forward(x.clone(), &[1, 1, 0, 0, 0, 0, 0]),
        Err(MetricError::Labels { .. })
    ));
    // A tuple that does not start with its query.
    let x8 = Tensor::<2>::zeros([8, 4], &device);
    assert!(matches!(
        c.forward(x8.clone(), &[-1, 1, 0, 0, 1, -1, 0, 0]),
        Err(MetricError::Labels { .. })
    ));
    // A tuple without negatives is a contrastive tuple but not a triplet one.
    let x2 = Tensor::<2>::zeros([2, 4], &device);
    assert!(c.forward(x2.clone(), &[-1, 1]).is_ok());
    assert!(matches!(
        TripletLossConfig::new().init().forward(x2, &[-1, 1]),
        Err(MetricError::Labels { .. })
    ));
    // Labels other than -1/0/1.
    assert!(matches!(
        c.forward(x, &[-1, 1, 0, 2, 0, 0, 0]),
        Err(MetricError::Labels { .. })
    ));
}

#[test]
fn mismatched_descriptor_sizes_are_typed_errors() {
    let device = Device::default();
    let cls = MarginCosineProductConfig::new(8, 3).init(&device).unwrap();
    let e = cls
        .forward(Tensor::<2>::zeros([2, 6], &device), &[0, 1])
        .unwrap_err();
    assert!(matches!(e, MetricError::Shape { .. }), "{e}");
    let e = cls
        .forward(Tensor::<2>::ones([2, 8], &device), &[0, 3])
        .unwrap_err();
    assert!(
        matches!(
            e,
            MetricError::Index {
                index: 3,
                len: 3,
                ..
            }
        ),
        "{e}"
    );
    let e = ikt_loss(
        Tensor::<2>::zeros([2, 3], &device),
        Tensor::<2>::zeros([2, 4], &device),
        4.0,
    )
    .unwrap_err();
    assert!(matches!(e, MetricError::Shape { .. }), "{e}");
    let e = NocPlaceLossConfig::new()
        .init()
        .forward(
            &cls,
            Tensor::<2>::ones([2, 8], &device),
            Some(Tensor::<2>::ones([2, 7], &device)),
            &[0, 1],
        )
        .unwrap_err();
    assert!(matches!(e, MetricError::Shape { .. }), "{e}");
    assert!(MarginCosineProductConfig::new(0, 3).init(&device).is_err());

    // Whitening learned on 8-d descriptors applied to 6-d ones.
    let x = Tensor::<2>::random(
        [40, 8],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let w = Whitening::learn_pca(x).unwrap();
    assert!(matches!(
        w.apply(Tensor::<2>::zeros([3, 6], &device), None),
        Err(MetricError::Shape { .. })
    ));
    assert!(matches!(
        w.apply(Tensor::<2>::zeros([3, 8], &device), Some(9)),
        Err(MetricError::Shape { .. })
    ));
}

#[test]
fn impossible_whitening_is_reported() {
    let device = Device::default();
    // Fewer descriptors than dimensions: PCA has zero eigenvalues.
    let x = Tensor::<2>::random(
        [3, 8],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    assert!(matches!(
        Whitening::learn_pca(x.clone()),
        Err(MetricError::Whitening { .. })
    ));
    // Lw: no pairs, unequal lists, index out of range, NaN descriptors.
    assert!(matches!(
        Whitening::learn_lw(x.clone(), &[], &[]),
        Err(MetricError::Empty { .. })
    ));
    assert!(matches!(
        Whitening::learn_lw(x.clone(), &[0], &[1, 2]),
        Err(MetricError::Shape { .. })
    ));
    assert!(matches!(
        Whitening::learn_lw(x.clone(), &[0], &[3]),
        Err(MetricError::Index { index: 3, .. })
    ));
    let nan = x.mul_scalar(f32::NAN);
    assert!(matches!(
        Whitening::learn_lw(nan, &[0], &[1]),
        Err(MetricError::Whitening { .. })
    ));
    // Lw with fewer pairs than dimensions still succeeds through the diagonal jitter.
    let y = Tensor::<2>::random(
        [20, 8],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let lw = Whitening::learn_lw(y, &[0, 1, 2], &[3, 4, 5]).unwrap();
    assert!(lw.jitter > 0.0);
}

#[test]
fn checkpoint_of_another_architecture_names_its_keys() {
    let device = Device::default();
    // The fixture is a ResNet-18 at 1/16 width; a 1/8-width network has other shapes.
    let mut net = CirNetConfig::new(BackboneConfig::ResNet(
        ResNetConfig::resnet18().with_base_width(8),
    ))
    .init(&device)
    .unwrap();
    let e = net
        .load_cirtorch(fixture("cirtorch_resnet18.pth"), Some("state_dict"))
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("backbone.conv1.weight"), "{msg}");
}

#[test]
fn bad_scales_and_images_are_rejected() {
    let device = Device::default();
    let net = CirNetConfig::new(BackboneConfig::ResNet(
        ResNetConfig::resnet18().with_base_width(4),
    ))
    .init(&device)
    .unwrap();
    let x = Tensor::<4>::ones([1, 3, 32, 32], &device);
    assert!(matches!(
        multiscale(&net, x.clone(), &[], 3.0),
        Err(MetricError::Empty { .. })
    ));
    assert!(matches!(
        multiscale(&net, x.clone(), &[1.0, -0.5], 3.0),
        Err(MetricError::Config { .. })
    ));
    assert!(matches!(
        multiscale(&net, x, &[1.0, 0.01], 3.0),
        Err(MetricError::Config { .. })
    ));
    let src = ImageSource::Files(vec![fixture("no-such-image.png")]);
    assert!(matches!(
        src.load(0),
        Err(nightvision_core::CoreError::Image { .. } | nightvision_core::CoreError::Io { .. })
    ));
    assert!(matches!(
        src.load(1),
        Err(nightvision_core::CoreError::Index {
            index: 1,
            len: 1,
            ..
        })
    ));
}

/// `ExtractConfig::clahe` describes the CLAHE'd image: the same descriptors as extracting images
/// that were passed through CLAHE beforehand (sizes within `max_side`, so no resize in between).
#[test]
fn extraction_with_clahe_equals_clahe_then_extraction() {
    use metric_learning::multiscale::{ExtractConfig, extract_images};
    use nightvision_core::clahe::{ClaheConfig, clahe_lab_f32};
    use nightvision_core::image::Rgb32FImage;
    let device = Device::default();
    let net = CirNetConfig::new(BackboneConfig::ResNet(
        ResNetConfig::resnet18().with_base_width(4),
    ))
    .init(&device)
    .unwrap();
    let img = Rgb32FImage::from_fn(40, 32, |x, y| {
        let v = 0.05 + 0.1 * ((x as f32 * 0.3).sin() * (y as f32 * 0.2).cos()).abs();
        image::Rgb([v, v * 0.8, v * 1.2])
    });
    let cfg = ExtractConfig {
        clahe: Some(ClaheConfig::default()),
        ..ExtractConfig::default()
    };
    let a = extract_images(&net, std::slice::from_ref(&img), &cfg, &device).unwrap();
    let pre = clahe_lab_f32(&img, &ClaheConfig::default()).unwrap();
    let b = extract_images(&net, &[pre], &ExtractConfig::default(), &device).unwrap();
    let c = extract_images(&net, &[img], &ExtractConfig::default(), &device).unwrap();
    assert_eq!(a.to_data(), b.to_data());
    // and CLAHE changed the descriptor of this dark image
    let diff: f32 = (a - c).abs().max().into_scalar();
    assert!(diff > 1e-4, "{diff}");
}
