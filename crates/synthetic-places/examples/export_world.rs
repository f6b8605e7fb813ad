//! Exports a synthetic world without building burn: the quick way to time the default world or to
//! fingerprint an export (`sha256sum` over its files) before and after a renderer change.
//!
//! ```text
//! cargo run -p synthetic-places --example export_world -- OUT [default | tiny | CONFIG.json] [--progress]
//! ```
//! Prints the files per folder, the planned renders and the wall-clock time.

use std::path::PathBuf;

use synthetic_places::{ExportOptions, World, WorldConfig, export};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let progress = args.iter().any(|a| a == "--progress");
    let pos: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let Some(out) = pos.first() else {
        return Err("usage: export_world OUT [default | tiny | CONFIG.json] [--progress]".into());
    };
    let cfg = match pos.get(1).map(|s| s.as_str()) {
        None | Some("default") => WorldConfig::default(),
        Some("tiny") => WorldConfig::tiny(),
        Some(path) => WorldConfig::from_json_file(&PathBuf::from(path))?,
    };
    let world = World::new(&cfg)?;
    let opts = ExportOptions {
        out_dir: PathBuf::from(out),
        overwrite: true,
        progress,
    };
    let s = export(&world, &opts)?;
    for (folder, n) in &s.counts {
        println!("{folder:<45} {n:>7}");
    }
    println!(
        "{} renders, {} files in {:.1} s = {:.1} renders/s ({} rayon threads)",
        s.renders,
        s.files,
        s.seconds,
        s.renders_per_second,
        rayon::current_num_threads()
    );
    Ok(())
}
