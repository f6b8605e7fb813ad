//! Similarity Min-Max's classification form (Luo et al., ICCV 2023; docs/PAPERS.md C.3) on the embedded world, zero-shot: place classes trained by day, tested at night; a classifier trained on day images and their darkened views with cross-entropy and BYOL, against the day-trained classifier and a day-only continuation with the same schedule.
//!
//! The pipeline is the library call [`nightvision::pipelines::smm_classification::run`]; this
//! example maps the command line onto its configuration (every flag: `--help`), runs it on the
//! CPU (or the device `BURN_DEVICE` names) and prints the report. Every stage checkpoints into
//! `--out` and resumes from there; without `--data` the default world is rendered into `OUT/world`.
//!
//! ```text
//! cargo run --release --example smm_classification -- --help
//! cargo run --release --example smm_classification -- --data out/synthetic-places --out out/smm_classification
//! ```

use anyhow::Result;
use burn::tensor::Device;
use clap::Parser;
use nightvision::pipelines::smm_classification::{self, SmmClassificationConfig};

/// Similarity Min-Max's classification form (Luo et al., ICCV 2023) on the embedded world, zero-shot: place classes trained by day, tested at night; a classifier trained on day images and their darkened views with cross-entropy and BYOL, against the day-trained classifier and a day-only continuation with the same schedule.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    config: SmmClassificationConfig,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_target(false)
        .init();
    let report = smm_classification::run(&cli.config, &Device::default())?;
    println!("{}", report.to_markdown());
    println!(
        "smm_classification done in {:.0} s → {}/{{{}}}",
        report.seconds,
        report.out.display(),
        report.files.join(",")
    );
    Ok(())
}
