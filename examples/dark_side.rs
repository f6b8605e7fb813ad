//! Dark Side Augmentation (Mohwald, Jenicek, Chum, ICCV 2023) on the embedded world: a HEDN-GAN day→night translator, MobileNetV2-GeM fine-tuned with synthetic-night anchors + CLAHE against a baseline without them, Recall@N of day, sunset and night queries and the translator's night quality.
//!
//! The pipeline is the library call [`nightvision::pipelines::dark_side::run`]; this example maps
//! the command line onto its configuration (every flag: `--help`), runs it on the CPU (or the
//! device `BURN_DEVICE` names) and prints the report. Every stage checkpoints into `--out` and
//! resumes from there; without `--data` the default world is rendered into `OUT/world`.
//!
//! ```text
//! cargo run --release --example dark_side -- --help
//! cargo run --release --example dark_side -- --data out/synthetic-places --out out/dark_side
//! ```

use anyhow::Result;
use burn::tensor::Device;
use clap::Parser;
use nightvision::pipelines::dark_side::{self, DarkSideConfig};

/// Dark Side Augmentation (Mohwald, Jenicek, Chum, ICCV 2023) on the embedded world: a HEDN-GAN day→night translator, MobileNetV2-GeM fine-tuned with synthetic-night anchors + CLAHE against a baseline without them, Recall@N of day, sunset and night queries and the translator's night quality.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    config: DarkSideConfig,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_target(false)
        .init();
    let report = dark_side::run(&cli.config, &Device::default())?;
    println!("{}", report.to_markdown());
    println!(
        "dark_side done in {:.0} s → {}/{{{}}}",
        report.seconds,
        report.out.display(),
        report.files.join(",")
    );
    Ok(())
}
