//! Contact sheet: day / sunset / night of the same places side by side, for a human to check
//! that the images read as streets and that a place stays recognisable across conditions.

use std::path::Path;

use image::RgbImage;
use rayon::prelude::*;

use crate::error::{Result, SynthError};
use crate::view::{Condition, Role};
use crate::world::World;

/// Gap between tiles (pixels).
const GAP: u32 = 4;

/// The columns of a contact-sheet row: (role, condition).
pub(crate) const SHEET_COLUMNS: [(Role, Condition); 4] = [
    (Role::Database, Condition::Day),
    (Role::Tokyo, Condition::Day),
    (Role::Tokyo, Condition::Sunset),
    (Role::Tokyo, Condition::Night),
];

/// Renders one row per place — database view by day, then the Tokyo-style query station by day,
/// at sunset and at night (same viewpoint) — and writes it as a PNG to `path` (written to a
/// temporary sibling, then renamed). Returns the sheet.
pub fn contact_sheet(world: &World, places: &[usize], path: &Path) -> Result<RgbImage> {
    if places.is_empty() {
        return Err(SynthError::NoPlaces {
            field: "places (contact sheet)",
        });
    }
    for &p in places {
        world.check_place(p)?;
    }
    let (w, h) = (world.cfg.width, world.cfg.height);
    let cols = SHEET_COLUMNS.len() as u32;
    let jobs: Vec<(usize, usize)> = (0..places.len())
        .flat_map(|r| (0..SHEET_COLUMNS.len()).map(move |c| (r, c)))
        .collect();
    let tiles: Vec<RgbImage> = jobs
        .par_iter()
        .map(|&(r, c)| {
            let (role, cond) = SHEET_COLUMNS[c];
            world.render(places[r], role, 0, cond)
        })
        .collect::<Result<_>>()?;
    let sheet_w = cols * w + (cols + 1) * GAP;
    let sheet_h = places.len() as u32 * h + (places.len() as u32 + 1) * GAP;
    let mut sheet = RgbImage::from_pixel(sheet_w, sheet_h, image::Rgb([40, 40, 40]));
    for (&(r, c), tile) in jobs.iter().zip(&tiles) {
        let x0 = GAP + c as u32 * (w + GAP);
        let y0 = GAP + r as u32 * (h + GAP);
        image::imageops::replace(&mut sheet, tile, x0 as i64, y0 as i64);
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sheet.png".into());
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let res = sheet
        .save_with_format(&tmp, image::ImageFormat::Png)
        .map_err(|source| SynthError::Image {
            path: path.to_path_buf(),
            source,
        })
        .and_then(|_| std::fs::rename(&tmp, path).map_err(|e| SynthError::io(path, e)));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.map(|_| sheet)
}
