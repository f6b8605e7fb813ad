//! The real torchvision MobileNetV2 ImageNet weights (real-data cache) load strictly and classify
//! real photographs correctly: the end-to-end proof that loading, preprocessing and the network
//! are right. Skips with a printed reason where the cache is absent.

use backbones::MobileNetV2Config;
use burn::tensor::Device;
use nightvision_core::image::{imagenet_eval_crop, load_rgb, to_tensor};
use nightvision_core::{Normalization, real_data_file};

fn top5(logits: Vec<f32>) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    idx.truncate(5);
    idx
}

#[test]
fn mobilenet_v2_imagenet_classifies_real_photos() {
    let weights = match real_data_file("weights/mobilenet_v2_imagenet.safetensors") {
        Ok(p) => p,
        Err(reason) => {
            println!("skipped: {reason}");
            return;
        }
    };
    let device = Device::default();
    let mut net = MobileNetV2Config::new()
        .with_num_classes(Some(1000))
        .init(&device);
    let report = net.load_torchvision(&weights).unwrap();
    // Strict: nothing missing; only BatchNorm counters unused.
    assert!(report.missing.is_empty());
    assert!(
        report
            .unused
            .iter()
            .all(|k| k.ends_with("num_batches_tracked")),
        "{:?}",
        report.unused
    );
    assert_eq!(report.applied.len(), 52 * 4 + 52 + 2);

    // (photo, acceptable ImageNet classes in the top-5)
    let cases: [(&str, &[usize]); 3] = [
        ("photos/chelsea.png", &[281, 282, 283, 284, 285]),
        ("photos/coffee.png", &[967, 968]),
        ("photos/rocket.jpg", &[657, 744, 812]),
    ];
    let mut images = Vec::new();
    for (photo, _) in cases {
        let path = real_data_file(photo).unwrap();
        images.push(imagenet_eval_crop(&load_rgb(&path).unwrap()).unwrap());
    }
    let x = Normalization::ImageNet.apply(to_tensor(&images, &device).unwrap());
    let logits = net.classify(x).unwrap();
    let [b, c] = logits.dims();
    let v = logits.into_data().try_into_vec_as::<f32>().unwrap();
    for (i, (photo, want)) in cases.iter().enumerate() {
        let t5 = top5(v[i * c..(i + 1) * c].to_vec());
        println!("{photo}: top-5 {t5:?}");
        assert!(
            t5.iter().any(|k| want.contains(k)),
            "{photo}: top-5 {t5:?} lacks {want:?}"
        );
    }
    assert_eq!(b, 3);
}
