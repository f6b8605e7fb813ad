//! Generates the embedded synthetic day/night world (issue 7) in the real datasets' formats, and
//! optionally a contact sheet of day / sunset / night views of the same places.
//!
//! ```text
//! cargo run --release --example synthetic_places -- --out DIR [--places N] [--seed S]
//!     [--contact-sheet PNG] [--config JSON] [--overwrite] [--no-progress]
//! ```
//! `--config` reads a `WorldConfig` JSON (missing fields take defaults); `--places` and `--seed`
//! override it. Prints a readable table and one JSON summary line (counts, seconds, images/s).
//!
//! `--report` then measures how hard the night gap is with a real pretrained backbone: MobileNetV2
//! (the real torchvision ImageNet weights of the real-data cache) + GeM (p = 3) + L2, exact k-NN
//! against the day database, Recall@1/5/10 at 25 m for day queries and for night queries. It writes
//! `report.json`, `report.md` and `recall.png` into `--out` and prints the table.

use std::path::PathBuf;

use anyhow::Result;
use nightvision::places::{ExportOptions, World, WorldConfig, contact_sheet, export};

/// Renders the embedded synthetic day/sunset/night world in the real datasets' formats (and, with
/// --report, measures its night gap with MobileNetV2-GeM).
#[derive(clap::Parser)]
struct Args {
    /// Output folder of the exported world.
    #[arg(long)]
    out: PathBuf,
    /// Test places (overrides the configuration).
    #[arg(long)]
    places: Option<usize>,
    /// World seed (overrides the configuration).
    #[arg(long)]
    seed: Option<u64>,
    /// Write a contact sheet (day / sunset / night of the same places) to this PNG.
    #[arg(long)]
    contact_sheet: Option<PathBuf>,
    /// A `WorldConfig` JSON (missing fields take their defaults).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Replace an existing export in --out.
    #[arg(long)]
    overwrite: bool,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Measure the night gap with MobileNetV2-GeM (needs the real-data cache).
    #[arg(long)]
    report: bool,
}

fn main() -> Result<()> {
    let Args {
        out,
        places,
        seed,
        contact_sheet: sheet,
        config,
        overwrite,
        no_progress,
        report,
    } = clap::Parser::parse();

    let mut cfg = match &config {
        Some(path) => WorldConfig::from_json_file(path)?,
        None => WorldConfig::default(),
    };
    if let Some(n) = places {
        cfg.places = n;
    }
    if let Some(s) = seed {
        cfg.seed = s;
    }
    let world = World::new(&cfg)?;
    let opts = ExportOptions {
        out_dir: out.clone(),
        overwrite,
        progress: !no_progress,
    };
    let summary = export(&world, &opts)?;

    println!("synthetic-places: seed {} → {}", cfg.seed, out.display());
    println!("{:<45} {:>7}", "folder", "images");
    for (folder, n) in &summary.counts {
        println!("{folder:<45} {n:>7}");
    }
    println!(
        "{} renders, {} files in {:.1} s = {:.1} images/s ({}×{}, supersample {}, {} rayon threads)",
        summary.renders,
        summary.files,
        summary.seconds,
        summary.renders_per_second,
        cfg.width,
        cfg.height,
        cfg.supersample,
        rayon_threads(),
    );

    if let Some(path) = &sheet {
        let n = cfg.places.min(8);
        let step = (cfg.places / n).max(1);
        let rows: Vec<usize> = (0..n).map(|i| i * step).collect();
        let t = std::time::Instant::now();
        contact_sheet(&world, &rows, path)?;
        println!(
            "contact sheet ({} places × database day | day | sunset | night) → {} in {:.1} s",
            rows.len(),
            path.display(),
            t.elapsed().as_secs_f64()
        );
    }
    println!("{}", serde_json::to_string(&summary)?);
    if report {
        calibration_report(&out)?;
    }
    Ok(())
}

/// Recall@N of day and night queries against the day database with the real MobileNetV2-GeM.
fn calibration_report(out: &std::path::Path) -> Result<()> {
    use burn::tensor::Device;
    use nightvision::metric::multiscale::ExtractConfig;
    use nightvision::pipeline;

    let device = Device::default();
    // cirtorch's network: MobileNetV2 trunk → GeM (p = 3) → L2N.
    let net = pipeline::mobilenet_v2_gem(&device)?;
    // Images are 320×240: no resizing, single scale, ImageNet normalisation.
    let cfg = ExtractConfig {
        max_side: usize::MAX,
        ..ExtractConfig::default()
    };
    let t = std::time::Instant::now();
    let mut eval = pipeline::Evaluator::new(out, &[1, 5, 10], Some(&out.join("descriptors")));
    eval.evaluate(&net, "MobileNetV2-GeM", &cfg, &device)?;
    let report = eval.report("synthetic-places, Tokyo-style set (day database)", None)?;
    println!("{}", pipeline::write_report(&report, None, None, out)?);
    println!(
        "calibration in {:.1} s → {}/report.{{json,md}}, recall.png",
        t.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
