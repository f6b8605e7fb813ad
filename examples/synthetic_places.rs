//! Generates the embedded synthetic day/night world (issue 7) in the real datasets' formats, and
//! optionally a contact sheet of day / sunset / night views of the same places.
//!
//! ```text
//! cargo run --release --example synthetic_places -- --out DIR [--places N] [--seed S]
//!     [--contact-sheet PNG] [--config JSON] [--overwrite] [--no-progress]
//! ```
//! `--config` reads a `WorldConfig` JSON (missing fields take defaults); `--places` and `--seed`
//! override it. Prints a readable table and one JSON summary line (counts, seconds, images/s).
//! (The `--report` calibration with MobileNetV2-GeM is added once the backbones and GeM land.)

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use nightvision::places::{ExportOptions, World, WorldConfig, contact_sheet, export};

fn main() -> Result<()> {
    let mut args = pico_args::Arguments::from_env();
    let out: PathBuf = args
        .value_from_str("--out")
        .context("--out DIR is required")?;
    let places: Option<usize> = args.opt_value_from_str("--places")?;
    let seed: Option<u64> = args.opt_value_from_str("--seed")?;
    let sheet: Option<PathBuf> = args.opt_value_from_str("--contact-sheet")?;
    let config: Option<PathBuf> = args.opt_value_from_str("--config")?;
    let overwrite = args.contains("--overwrite");
    let no_progress = args.contains("--no-progress");
    let rest = args.finish();
    if !rest.is_empty() {
        bail!("unexpected arguments: {rest:?}");
    }

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
    Ok(())
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
