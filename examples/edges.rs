//! HED edge maps of an image with real weights (docs/PAPERS.md A.3): the edge detector behind Dark Side
//! Augmentation's HEDN-GAN.
//!
//! ```text
//! cargo run --release --example edges -- --weights W.safetensors --input IMG --output EDGES.png \
//!     [--npy EDGES.npy] [--sides] [--max-side N]
//! ```
//! `--weights`: HED in the PyTorch port's layout (`weights/hed_bsds500.safetensors` of the real-data
//! cache, the port's `.pth`/`.pytorch`, or a gandtr HED state dict). Writes the fused edge map
//! (white = edge) as an 8-bit PNG; `--sides` also writes the five side outputs (sigmoid) as
//! `EDGES_side1.png` … `EDGES_side5.png`; `--npy` writes the fused map as float32 `.npy` of shape
//! (H, W). `--max-side N` first shrinks the image so its longer side is at most N. Any size from
//! 16×16 up works. Prints a JSON summary.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use burn::tensor::Device;
use nightvision::core::image::{load_rgb, resize_max_side, to_tensor};
use nightvision::hed::{EdgeMap, HedConfig};

fn side_path(output: &Path, i: usize) -> PathBuf {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "edges".into());
    let ext = output
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_else(|| "png".into());
    output.with_file_name(format!("{stem}_side{i}.{ext}"))
}

/// HED edge maps of an image with real weights; prints a JSON summary.
#[derive(clap::Parser)]
struct Args {
    /// HED weights in the PyTorch port's layout (safetensors, `.pth`, or a gandtr HED state dict).
    #[arg(long)]
    weights: PathBuf,
    /// The input image.
    #[arg(long)]
    input: PathBuf,
    /// The fused edge map (white = edge), an 8-bit PNG.
    #[arg(long)]
    output: PathBuf,
    /// Also write the fused map as float32 `.npy` of shape (H, W).
    #[arg(long)]
    npy: Option<PathBuf>,
    /// First shrink the image so its longer side is at most this.
    #[arg(long)]
    max_side: Option<usize>,
    /// Also write the five side outputs as OUTPUT_side1.png … OUTPUT_side5.png.
    #[arg(long)]
    sides: bool,
}

fn main() -> Result<()> {
    let Args {
        weights,
        input,
        output,
        npy,
        max_side,
        sides,
    } = clap::Parser::parse();

    let device = Device::default();
    let mut img = load_rgb(&input)?;
    if let Some(n) = max_side {
        img = resize_max_side(&img, n);
    }
    let mut hed = HedConfig::new().init(&device);
    hed.load_weights(&weights)
        .with_context(|| format!("loading HED weights {}", weights.display()))?;

    let start = Instant::now();
    let x = to_tensor(&[img.clone()], &device)?;
    let out = hed
        .try_forward_output(x)
        .with_context(|| format!("running HED on {}", input.display()))?
        .sigmoid();
    let fused = EdgeMap::from_batch(out.fused)?.remove(0);
    let seconds = start.elapsed().as_secs_f64();

    fused.save_png(&output)?;
    let mut written = vec![output.display().to_string()];
    if sides {
        for (i, side) in out.sides.into_iter().enumerate() {
            let path = side_path(&output, i + 1);
            EdgeMap::from_batch(side)?.remove(0).save_png(&path)?;
            written.push(path.display().to_string());
        }
    }
    if let Some(path) = &npy {
        fused.save_npy(path)?;
        written.push(path.display().to_string());
    }
    let n = fused.data.len() as f64;
    let mean = fused.data.iter().map(|v| *v as f64).sum::<f64>() / n;
    let above = fused.data.iter().filter(|v| **v > 0.5).count() as f64 / n;
    let summary = serde_json::json!({
        "input": input.display().to_string(),
        "height": fused.height,
        "width": fused.width,
        "seconds": seconds,
        "mean_edge": mean,
        "fraction_above_0.5": above,
        "written": written,
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
