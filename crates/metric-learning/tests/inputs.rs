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

/// Descriptors `[n, d]` from a seeded SplitMix-free LCG (no dependency on burn's generator).
fn lcg_matrix(n: usize, d: usize, seed: u64) -> Vec<f64> {
    let mut state = seed;
    (0..n * d)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        })
        .collect()
}

fn tensor(v: &[f64], n: usize, d: usize, device: &Device) -> Tensor<2> {
    let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    Tensor::from_data(burn::tensor::TensorData::new(v, [n, d]), device)
}

fn gram(x: Tensor<2>) -> Vec<f32> {
    x.clone()
        .matmul(x.transpose())
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

#[test]
fn lw_in_the_full_principal_subspace_ranks_as_plain_lw() {
    // 40 descriptors of 6 dimensions, 20 pairs: S has full rank, so reducing to all 6 principal
    // directions is a rotation, under which Lw's whitened dot products are invariant
    let device = Device::default();
    let (n, d) = (40, 6);
    let x = tensor(&lcg_matrix(n, d, 3), n, d, &device);
    let q: Vec<usize> = (0..20).map(|i| 2 * i).collect();
    let p: Vec<usize> = (0..20).map(|i| 2 * i + 1).collect();
    let plain = Whitening::learn_lw(x.clone(), &q, &p).unwrap();
    let reduced = Whitening::learn_lw_pca(x.clone(), &q, &p, d).unwrap();
    assert_eq!((plain.jitter, reduced.jitter), (0.0, 0.0));
    let held_out = tensor(&lcg_matrix(10, d, 99), 10, d, &device);
    let a = gram(plain.apply(held_out.clone(), None).unwrap());
    let b = gram(reduced.apply(held_out, None).unwrap());
    for (i, (a, b)) in a.iter().zip(&b).enumerate() {
        assert!((a - b).abs() < 1e-4, "gram[{i}]: {a} vs {b}");
    }
    for (a, b) in plain.eigenvalues.iter().zip(&reduced.eigenvalues) {
        assert!((a - b).abs() <= 1e-8 * a.abs().max(1.0), "{a} vs {b}");
    }
}

#[test]
fn lw_in_a_principal_subspace_whitens_the_pairs_without_jitter() {
    // 12 dimensions but 5 pairs: plain Lw needs jitter; in the top 4 principal directions the
    // intra-pair covariance is whitened exactly: P S Pᵀ = I on the kept rows, 0 elsewhere
    let device = Device::default();
    let (n, d, k) = (10, 12, 4);
    let v = lcg_matrix(n, d, 11);
    let x = tensor(&v, n, d, &device);
    let q = [0, 2, 4, 6, 8];
    let p = [1, 3, 5, 7, 9];
    assert!(Whitening::learn_lw(x.clone(), &q, &p).unwrap().jitter > 0.0);
    let w = Whitening::learn_lw_pca(x, &q, &p, k).unwrap();
    assert_eq!(w.jitter, 0.0);
    assert!(w.eigenvalues[k..].iter().all(|&e| e == 0.0));
    // S from the f32-rounded descriptors, as the whitening saw them
    let xf = |r: usize, c: usize| f64::from(v[r * d + c] as f32);
    let mut s = vec![0.0; d * d];
    for (&a, &b) in q.iter().zip(&p) {
        for i in 0..d {
            for j in 0..d {
                s[i * d + j] += (xf(a, i) - xf(b, i)) * (xf(a, j) - xf(b, j)) / q.len() as f64;
            }
        }
    }
    let pm = &w.projection;
    for r in 0..d {
        for c in 0..d {
            let mut v = 0.0;
            for i in 0..d {
                for j in 0..d {
                    v += pm[r * d + i] * s[i * d + j] * pm[c * d + j];
                }
            }
            let want = if r == c && r < k { 1.0 } else { 0.0 };
            assert!((v - want).abs() < 1e-8, "(P S Pᵀ)[{r}, {c}] = {v}");
        }
    }
    assert!(matches!(
        Whitening::learn_lw_pca(tensor(&v, n, d, &device), &q, &p, 0),
        Err(MetricError::Config { .. })
    ));
    assert!(matches!(
        Whitening::learn_lw_pca(tensor(&v, n, d, &device), &q, &p, 13),
        Err(MetricError::Config { .. })
    ));
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

/// Batched extraction (same-size images together, `batch_pixels`) gives every image the
/// descriptor it gets alone through [`multiscale`]; the per-scale pass combined is the
/// multi-scale result, and its scale-1 entry the single-scale one. Sizes change mid-list, so a
/// batch is cut at a size change as well as at the pixel budget.
#[test]
fn batched_and_per_scale_extraction_equal_one_image_at_a_time() {
    use metric_learning::multiscale::{
        DEFAULT_SCALES, ExtractConfig, combine_scales, extract_files, extract_files_per_scale,
        prepare_image,
    };
    use nightvision_core::Normalization;
    use nightvision_core::image::load_rgb;
    let device = Device::default();
    let net = CirNetConfig::new(BackboneConfig::ResNet(
        ResNetConfig::resnet18().with_base_width(4),
    ))
    .init(&device)
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // five 40×30 frames, two 36×36, three 40×30 again
    let sizes = [(40, 30); 5]
        .into_iter()
        .chain([(36, 36); 2])
        .chain([(40, 30); 3]);
    let paths: Vec<PathBuf> = sizes
        .enumerate()
        .map(|(i, (w, h))| {
            let path = dir.path().join(format!("{i}.png"));
            image::RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([
                    (x * 6 + i as u32 * 20) as u8,
                    (y * 7) as u8,
                    (90 + i * 10) as u8,
                ])
            })
            .save(&path)
            .unwrap();
            path
        })
        .collect();
    let p = net.multiscale_power();
    let alone: Vec<Tensor<2>> = paths
        .iter()
        .map(|f| {
            let x = prepare_image(
                &load_rgb(f).unwrap(),
                1024,
                Normalization::ImageNet,
                &device,
            )
            .unwrap();
            multiscale(&net, x, &DEFAULT_SCALES, p).unwrap()
        })
        .collect();
    let alone = Tensor::cat(alone, 0);
    let ms = ExtractConfig {
        scales: DEFAULT_SCALES.to_vec(),
        // three 40×30 frames per batch
        batch_pixels: 3 * 40 * 30,
        ..ExtractConfig::default()
    };
    let batched = extract_files(&net, &paths, &ms, &device).unwrap();
    let max_diff = |a: Tensor<2>, b: Tensor<2>| -> f32 { (a - b).abs().max().into_scalar() };
    assert_eq!(batched.dims(), [10, net.dim()]);
    assert!(max_diff(batched.clone(), alone) < 1e-6);
    let one_at_a_time = ExtractConfig {
        batch_pixels: 0,
        ..ms.clone()
    };
    let single = extract_files(&net, &paths, &one_at_a_time, &device).unwrap();
    assert!(max_diff(batched.clone(), single) < 1e-6);

    let per_scale = extract_files_per_scale(&net, &paths, &ms, &device).unwrap();
    assert_eq!(per_scale.len(), 3);
    let scale_one = ExtractConfig {
        scales: vec![1.0],
        ..ms.clone()
    };
    let plain = extract_files(&net, &paths, &scale_one, &device).unwrap();
    assert_eq!(per_scale[0].to_data(), plain.to_data());
    let combined = combine_scales(per_scale, p).unwrap();
    assert_eq!(combined.to_data(), batched.to_data());

    // bad inputs of the combination
    let a = Tensor::<2>::ones([2, 4], &device);
    assert!(matches!(
        combine_scales(vec![a.clone(), Tensor::ones([3, 4], &device)], 1.0),
        Err(MetricError::Config { .. })
    ));
    assert!(matches!(
        combine_scales(vec![a], 0.0),
        Err(MetricError::Config { .. })
    ));
    assert!(matches!(
        combine_scales(Vec::new(), 1.0),
        Err(MetricError::Empty { .. })
    ));
}
