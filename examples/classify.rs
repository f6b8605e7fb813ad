//! ImageNet classification with a real torchvision checkpoint: the end-to-end check that weights,
//! preprocessing and network agree.
//!
//! ```text
//! cargo run --example classify -- --weights W.safetensors --image IMG [--arch mobilenet_v2]
//! ```
//! `--arch`: `mobilenet_v2` (default), `resnet18`, `resnet50`, `resnet101`, `vgg16`. Weights are a
//! torchvision ImageNet `state_dict` (`.pth` or `.safetensors`). Prints one JSON object:
//! `{"arch", "image", "top5": [class ids, best first], "probs": [their softmax probabilities]}`.

use anyhow::{Context, Result, bail};
use burn::tensor::{Device, Tensor, activation::softmax};
use nightvision::backbones::{MobileNetV2Config, ResNetConfig, Vgg16Config};
use nightvision::core::Normalization;
use nightvision::core::image::{imagenet_eval_crop, load_rgb, to_tensor};

/// ImageNet classification with a real torchvision checkpoint; prints one JSON object.
#[derive(clap::Parser)]
struct Args {
    /// torchvision ImageNet `state_dict` (`.pth` or `.safetensors`).
    #[arg(long)]
    weights: String,
    /// The image to classify.
    #[arg(long)]
    image: String,
    /// mobilenet_v2, resnet18, resnet50, resnet101 or vgg16.
    #[arg(long, default_value = "mobilenet_v2")]
    arch: String,
}

fn main() -> Result<()> {
    let Args {
        weights,
        image,
        arch,
    } = clap::Parser::parse();

    let device = Device::default();
    let img = imagenet_eval_crop(&load_rgb(&image)?)?;
    let x = Normalization::ImageNet.apply(to_tensor(&[img], &device)?);
    let logits: Tensor<2> = match arch.as_str() {
        "mobilenet_v2" => {
            let mut net = MobileNetV2Config::new()
                .with_num_classes(Some(1000))
                .init(&device);
            net.load_torchvision(&weights)?;
            net.classify(x)
        }
        "resnet18" | "resnet50" | "resnet101" => {
            let cfg = match arch.as_str() {
                "resnet18" => ResNetConfig::resnet18(),
                "resnet50" => ResNetConfig::resnet50(),
                _ => ResNetConfig::resnet101(),
            };
            let mut net = cfg.with_num_classes(Some(1000)).init(&device);
            net.load_torchvision(&weights)?;
            net.classify(x)
        }
        "vgg16" => {
            let mut net = Vgg16Config::new()
                .with_num_classes(Some(1000))
                .init(&device);
            net.load_torchvision(&weights)?;
            net.classify(x)
        }
        other => {
            bail!("unknown --arch {other}: mobilenet_v2, resnet18, resnet50, resnet101, vgg16")
        }
    }
    .context("the network has no classifier head")?;

    let probs = softmax(logits, 1).into_data().try_into_vec_as::<f32>()?;
    let mut idx: Vec<usize> = (0..probs.len()).collect();
    idx.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    idx.truncate(5);
    let out = serde_json::json!({
        "arch": arch,
        "image": image,
        "top5": idx,
        "probs": idx.iter().map(|&i| probs[i]).collect::<Vec<_>>(),
    });
    println!("{out}");
    Ok(())
}
