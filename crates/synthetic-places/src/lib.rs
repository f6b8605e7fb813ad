//! # synthetic-places
//!
//! The embedded default data of `nightvision`: a procedural city of street places, rendered on
//! the CPU by day, at sunset and at night, and written in the same formats as the real datasets
//! (issue 7), so the readers, trainers and evaluation run unchanged with no download.
//!
//! * **World** ([`World`], [`WorldConfig`]): straight streets ("canyons") with facades on both
//!   sides (brick, plaster, concrete, tile, glass, siding; windows, doors, shop fronts with signs,
//!   awnings, blade signs), road markings, crossings, pavements, street lamps and trees. Places are
//!   camera stations 60 m apart with UTM coordinates (zone 54S).
//! * **Views** ([`World::viewpoint`]): every place is seen from several viewpoints (±3 m, ±10°
//!   yaw, pitch, roll, zoom 0.85–1.25) with transient occluders (parked and moving cars,
//!   pedestrians), so retrieval is a real task.
//! * **Conditions** ([`Condition`]): day (sun direction, clear / overcast, clouds), sunset (low
//!   warm sun, lamps and signs turning on) and night (street lamps — sodium or LED — with light
//!   pools and halos, lit or dark windows drawn per night, lit signs and shops, headlights and
//!   tail lights, white-balance cast, lower contrast, gain noise and blur). Geometry, colours and
//!   signs are the same by day and by night, so a place stays recognisable.
//! * **Exports** ([`export`]): the VPR test layout of gmberton's benchmark (`database/`,
//!   `queries/`, `queries_night/`, `@`-separated UTM names — docs/PAPERS.md protocols §2.1, docs/PAPERS.md B.7),
//!   a Tokyo 24/7-style set whose sorted queries cycle day / sunset / night (B.7), unpaired
//!   `trainA`/`trainB` GAN folders (docs/PAPERS.md A, 3.1), the cirtorch tuple pickle with
//!   `cids, cluster, qidxs, pidxs` and `ims/<cid[-2:]>/<cid[-4:-2]>/<cid[-6:-4]>/<cid>`
//!   (docs/PAPERS.md A.9, docs/PAPERS.md protocols §1.3) and a CosPlace training folder (docs/PAPERS.md protocols §2.3).
//!   Exports are atomic: written into a hidden sibling folder, then renamed.
//!
//! * **Default world** ([`WorldConfig::default`], issue 11): 200 test places (600 database
//!   images; 200 day, 200 sunset and 200 night queries), 125 training places (1,000 CosPlace and
//!   1,000 + 250 cirtorch training images, 500 + 500 unpaired GAN images): 3,475 renders, since
//!   an image used by several sets (the test database; the training views, which serve the
//!   CosPlace, cirtorch and GAN-day sets) is rendered once: about 100 s on two idle cores.
//!
//! Everything is deterministic in the seed: per-image RNGs are seeded from
//! `(seed, place, role, view, condition)`, rendering is parallel over images and rows without
//! shared state, and only IEEE-exact arithmetic (with our own `sin`, `exp`, `ln`) feeds the
//! pixels, so images are byte-identical on every run.
//!
//! ```
//! use synthetic_places::{Condition, Role, World, WorldConfig};
//!
//! let world = World::new(&WorldConfig::tiny())?;
//! let day = world.render(0, Role::Query, 0, Condition::Day)?;
//! let night = world.render(0, Role::Query, 0, Condition::Night)?;
//! assert_eq!(day.dimensions(), (96, 72));
//! let mean = |im: &image::RgbImage| im.as_raw().iter().map(|&v| v as f64).sum::<f64>() / im.as_raw().len() as f64;
//! assert!(mean(&night) < mean(&day));
//! // same seed, same bytes
//! assert_eq!(night, world.render(0, Role::Query, 0, Condition::Night)?);
//! # Ok::<(), synthetic_places::SynthError>(())
//! ```

#![warn(missing_docs)]
#![warn(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod config;
mod contact;
mod detmath;
mod error;
mod export;
mod geom;
mod render;
mod utm;
mod view;
mod world;

pub use config::{DatasetSelection, ImageFormat, WorldConfig};
pub use contact::contact_sheet;
pub use error::{Result, SynthError};
pub use export::{ExportOptions, ExportSummary, export};
pub use utm::{ImageName, format_coord, latlon_to_utm, utm_to_latlon, zone_letter};
pub use view::{Condition, Role, Viewpoint};
pub use world::{Place, Split, UTM_LETTER, UTM_ZONE, World};

/// FNV-1a 64-bit hash of a byte slice (used by the determinism tests and available to callers
/// who want to fingerprint an export).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
