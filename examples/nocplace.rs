//! NocPlace (Liu et al., 2024) on the embedded world: a CUT / NEG-CUT translator makes a night copy of the CosPlace training set, a daytime CosPlace model is fine-tuned on it with CosFace + inherited knowledge transfer, evaluated alone and with partial divide-and-conquer retrieval.
//!
//! The pipeline is the library call [`nightvision::pipelines::nocplace::run`]; this example maps
//! the command line onto its configuration (every flag: `--help`), runs it on the CPU (or the
//! device `BURN_DEVICE` names) and prints the report. Every stage checkpoints into `--out` and
//! resumes from there; without `--data` the default world is rendered into `OUT/world`.
//!
//! ```text
//! cargo run --release --example nocplace -- --help
//! cargo run --release --example nocplace -- --data out/synthetic-places --out out/nocplace
//! ```

use anyhow::Result;
use burn::tensor::Device;
use clap::Parser;
use nightvision::pipelines::nocplace::{self, NocPlaceConfig};

/// NocPlace (Liu et al., 2024) on the embedded world: a CUT / NEG-CUT translator makes a night copy of the CosPlace training set, a daytime CosPlace model is fine-tuned on it with CosFace + inherited knowledge transfer, evaluated alone and with partial divide-and-conquer retrieval.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    config: NocPlaceConfig,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_target(false)
        .init();
    let report = nocplace::run(&cli.config, &Device::default())?;
    println!("{}", report.to_markdown());
    println!(
        "nocplace done in {:.0} s → {}/{{{}}}",
        report.seconds,
        report.out.display(),
        report.files.join(",")
    );
    Ok(())
}
