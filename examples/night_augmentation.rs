//! Night augmentation in your own training step: a trained translator (a pipeline's `gan/` or
//! `translator/` folder) or darkening network (`darkening/`) reloads from its folder alone and
//! darkens a batch as an `Augmentation`. `cargo run --example night_augmentation -- --help`

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::Device;
use clap::Parser;
use nightvision::darkening::{DarkView, DarkViewConfig, DarkeningNet};
use nightvision::metric::data::Augmentation;
use nightvision::pipeline::{Darkening, Translator, image_grid, load_square};

/// Darkens images with a trained translator or darkening network; writes day | night rows.
#[derive(Parser)]
struct Args {
    /// A trained part's checkpoint folder (with its config.json).
    #[arg(long)]
    net: PathBuf,
    /// A folder of day images (the first 6 are used).
    #[arg(long)]
    images: PathBuf,
    /// The picture to write.
    #[arg(long, default_value = "night.png")]
    out: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let device = Device::default();
    let night: Box<dyn Augmentation> = match DarkeningNet::load(&args.net, &device) {
        Ok(d) => Box::new(Darkening::new(
            DarkView::new(d, DarkViewConfig::vpr())?,
            &device,
        )),
        Err(_) => Box::new(Translator::load(&args.net, &device)?),
    };
    let files = nightvision::gan::data::image_files(&args.images)?;
    let day = load_square(&files[..files.len().min(6)], 128, &device)?;
    let dark = night.augment(day.clone(), &mut nightvision::core::rng::seeded(0))?;
    image_grid(&[day, dark], &args.out)?;
    Ok(())
}
