//! Viewpoints (camera poses with UTM and compass heading) and capture conditions.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::detmath::seed_of;
use crate::error::{Result, SynthError};
use crate::world::World;

/// Time of day of a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Condition {
    /// Daylight: sun at 20–65° elevation, clear or overcast.
    Day,
    /// Dusk / sunset: low warm sun, street lamps and signs turning on.
    Sunset,
    /// Night: lamps, lit windows, signs, headlights; noise and blur of a low-light camera.
    Night,
}

impl Condition {
    /// Lower-case name used in file names and manifests.
    pub fn name(self) -> &'static str {
        match self {
            Condition::Day => "day",
            Condition::Sunset => "sunset",
            Condition::Night => "night",
        }
    }

    pub(crate) fn code(self) -> u64 {
        match self {
            Condition::Day => 0,
            Condition::Sunset => 1,
            Condition::Night => 2,
        }
    }
}

/// Which image set a viewpoint belongs to; each role draws its own viewpoints, so the database
/// and query views of a place never coincide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Day database images.
    Database,
    /// Day queries.
    Query,
    /// Night queries.
    NightQuery,
    /// Tokyo-style queries (one station per place, seen at day, sunset and night).
    Tokyo,
    /// Tuple views (±3 m along, ±1 m across the street). [`crate::export`] no longer uses them:
    /// its cirtorch tuples are the [`Role::CosPlace`] training views.
    Tuple,
    /// Training views, kept inside one 10 m × 10 m × 30° CosPlace class: the day images of
    /// training places in every export (CosPlace training folder, cirtorch tuples, GAN day).
    CosPlace,
    /// Night GAN images (`gan/trainB`; the day folder reuses the [`Role::CosPlace`] views).
    Gan,
    /// Contact sheet.
    Sheet,
}

impl Role {
    fn code(self) -> u64 {
        match self {
            Role::Database => 10,
            Role::Query => 11,
            Role::NightQuery => 12,
            Role::Tokyo => 13,
            Role::Tuple => 14,
            Role::CosPlace => 15,
            Role::Gan => 16,
            Role::Sheet => 17,
        }
    }
}

/// A camera pose in a place's street, with its UTM position and compass heading.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Viewpoint {
    /// Global place index.
    pub place: usize,
    /// Role the viewpoint was drawn for.
    pub role: Role,
    /// Index within the role.
    pub index: usize,
    /// Street-local camera position (m): along the street.
    pub x: f32,
    /// Street-local camera position (m): lateral, left positive.
    pub y: f32,
    /// Camera height above the road (m).
    pub z: f32,
    /// Yaw relative to the street axis (degrees, left positive).
    pub yaw_deg: f32,
    /// Pitch (degrees, up positive).
    pub pitch_deg: f32,
    /// Roll (degrees).
    pub roll_deg: f32,
    /// Zoom: focal length relative to a 66° horizontal field of view.
    pub zoom: f32,
    /// UTM easting of the camera (m, centimetre grid).
    pub east: f64,
    /// UTM northing of the camera (m, centimetre grid).
    pub north: f64,
    /// Compass heading of the optical axis (degrees clockwise from north, `[0, 360)`).
    pub heading_deg: f64,
}

impl World {
    /// The `index`-th viewpoint of `place` for `role`: small translations (±3 m along, ±1 m
    /// across), height 1.8–2.6 m, yaw ±10°, pitch 0–8°, roll ±1.5°, zoom 0.85–1.25. CosPlace
    /// viewpoints stay within the place's 10 m UTM cell and 30° heading bin.
    pub fn viewpoint(&self, place: usize, role: Role, index: usize) -> Result<Viewpoint> {
        let p = self.place(place)?;
        let street = &self.streets[p.street];
        let mut rng = ChaCha8Rng::seed_from_u64(seed_of(&[
            self.cfg.seed,
            3,
            place as u64,
            role.code(),
            index as u64,
        ]));
        let lim = street.road_half - 0.4;
        let (x, y) = if role == Role::CosPlace {
            // jitter in UTM, ±3 m around the station (a cell centre), kept inside the station's
            // 10 m cell; then shrunk towards the station if it would leave the road (the cell
            // is convex and holds the station, so the class is kept)
            let de: f64 = rng.random_range(-3.0..3.0);
            let dn: f64 = rng.random_range(-3.0..3.0);
            let cell = |v: f64, d: f64| {
                let lo = (v / 10.0).floor() * 10.0;
                (v + d).clamp(lo + 0.05, lo + 9.95) - v
            };
            let (de, dn) = (cell(p.east, de), cell(p.north, dn));
            let (sb, cb) = (
                crate::detmath::sind(street.bearing) as f64,
                crate::detmath::cosd(street.bearing) as f64,
            );
            let dx = de * sb + dn * cb;
            let dy = -de * cb + dn * sb;
            let room = (lim as f64 - (p.lateral as f64).abs()).max(0.0);
            let k = if dy.abs() > room {
                room / dy.abs()
            } else {
                1.0
            };
            (p.x + (dx * k) as f32, p.lateral + (dy * k) as f32)
        } else {
            (
                p.x + rng.random_range(-3.0..3.0),
                (p.lateral + rng.random_range(-1.0..1.0)).clamp(-lim, lim),
            )
        };
        let z = rng.random_range(1.8..2.6);
        let yaw_deg = p.yaw_deg + rng.random_range(-10.0..10.0);
        let pitch_deg = rng.random_range(0.0..8.0);
        let roll_deg = rng.random_range(-1.5..1.5);
        let zoom = rng.random_range(0.85..1.25);
        let (east, north) = street.to_utm(x, y);
        let heading_deg = (street.bearing as f64 - yaw_deg as f64).rem_euclid(360.0);
        Ok(Viewpoint {
            place,
            role,
            index,
            x,
            y,
            z,
            yaw_deg,
            pitch_deg,
            roll_deg,
            zoom,
            east,
            north,
            heading_deg,
        })
    }

    /// Checks that `place` exists (used by the public rendering entry points).
    pub(crate) fn check_place(&self, place: usize) -> Result<()> {
        if place < self.places.len() {
            Ok(())
        } else {
            Err(SynthError::IndexOutOfRange {
                what: "place",
                index: place,
                len: self.places.len(),
            })
        }
    }
}
