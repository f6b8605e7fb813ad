//! Similarity Min-Max (Luo et al., ICCV 2023) on the embedded world, zero-shot: a darkening network learns to minimise feature similarity, then MobileNetV2-GeM is fine-tuned to maximise it with a darkened query copy as an extra positive, against a baseline without it.
//!
//! The pipeline is the library call [`nightvision::pipelines::similarity_minmax::run`]; this example maps
//! the command line onto its configuration (every flag: `--help`), runs it on the CPU (or the
//! device `BURN_DEVICE` names) and prints the report. Every stage checkpoints into `--out` and
//! resumes from there; without `--data` the default world is rendered into `OUT/world`.
//!
//! ```text
//! cargo run --release --example similarity_minmax -- --help
//! cargo run --release --example similarity_minmax -- --data out/synthetic-places --out out/similarity_minmax
//! ```

use anyhow::Result;
use burn::tensor::Device;
use clap::Parser;
use nightvision::pipelines::similarity_minmax::{self, SimilarityMinMaxConfig};

/// Similarity Min-Max (Luo et al., ICCV 2023) on the embedded world, zero-shot: a darkening network learns to minimise feature similarity, then MobileNetV2-GeM is fine-tuned to maximise it with a darkened query copy as an extra positive, against a baseline without it.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    config: SimilarityMinMaxConfig,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_target(false)
        .init();
    let report = similarity_minmax::run(&cli.config, &Device::default())?;
    println!("{}", report.to_markdown());
    println!(
        "similarity_minmax done in {:.0} s → {}/{{{}}}",
        report.seconds,
        report.out.display(),
        report.files.join(",")
    );
    Ok(())
}
