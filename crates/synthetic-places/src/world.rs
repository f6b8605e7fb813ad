//! The procedural city: straight streets ("canyons") with facades on both sides, street furniture,
//! and places (camera stations) along them, each with a UTM position.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::WorldConfig;
use crate::detmath::{cosd, seed_of, sind};
use crate::error::{Result, SynthError};
use crate::geom::{V3, srgb, v3};

/// UTM zone of the synthetic city (Tokyo's zone, 54S).
pub const UTM_ZONE: u8 = 54;
/// UTM latitude band letter of the synthetic city.
pub const UTM_LETTER: char = 'S';
/// Easting of the city's south-west corner (m).
const BASE_EAST: f64 = 380_000.0;
/// Northing of the city's south-west corner (m).
const BASE_NORTH: f64 = 3_950_000.0;
/// Smallest distance between street origins (m); the grid step is also at least twice a street's
/// length plus 200 m, so streets never come within the 25 m positive radius of one another.
const STREET_GRID_M: f64 = 1_000.0;
/// Facades extend this far beyond the first / last place.
const MARGIN_M: f32 = 45.0;

/// Wall material of a building.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wall {
    Brick,
    Plaster,
    Concrete,
    Tile,
    Glass,
    Siding,
}

/// The shop on a building's ground floor.
#[derive(Debug, Clone)]
pub(crate) struct Shop {
    pub sign: V3,
    pub glyph: V3,
    pub sign_h: f32,
    pub glyph_seed: u32,
    pub mullion_m: f32,
    pub interior: V3,
    pub awning: Option<(V3, V3)>,
}

/// One building on a facade row.
#[derive(Debug, Clone)]
pub(crate) struct Building {
    pub id: u32,
    pub u0: f32,
    pub u1: f32,
    pub height: f32,
    pub ground_h: f32,
    pub floor_h: f32,
    pub cols: u32,
    pub win_w: f32,
    pub win_h: f32,
    pub wall: Wall,
    pub albedo: V3,
    pub trim: V3,
    pub frame: V3,
    pub glass: V3,
    pub curtain: f32,
    pub cornices: bool,
    pub shop: Option<Shop>,
    pub door_col: u32,
    /// Fraction of this building's windows lit on an average night.
    pub night_activity: f32,
}

impl Building {
    /// Number of upper floors (above the ground floor).
    pub fn upper_floors(&self) -> u32 {
        ((self.height - self.ground_h - 0.6) / self.floor_h)
            .floor()
            .max(0.0) as u32
    }
}

/// A row of contiguous buildings on one plane, sorted by `u0`.
#[derive(Debug, Clone)]
pub(crate) struct FacadeRow {
    pub buildings: Vec<Building>,
    /// `buildings[i].u1`, packed (4-byte keys stay in cache where 176-byte buildings do not).
    ends: Vec<f32>,
    /// `grid[k]`: the index [`FacadeRow::at`] returns for `u = u0 + k · ROW_GRID_M`, where the
    /// search for any `u` of that cell starts: buildings are wider than a cell, so it moves
    /// at most a step or two. [`FacadeRow::at`] runs for nearly every ray and every sunlit
    /// point, where a binary search stalled the renderer.
    grid: Vec<u32>,
    grid_u0: f32,
}

/// Cell size (m) of [`FacadeRow`]'s lookup grid.
const ROW_GRID_M: f32 = 2.0;

impl FacadeRow {
    /// A row of `buildings` (sorted, contiguous).
    pub fn new(buildings: Vec<Building>) -> FacadeRow {
        let ends: Vec<f32> = buildings.iter().map(|b| b.u1).collect();
        let grid_u0 = buildings.first().map_or(0.0, |b| b.u0);
        let len = ends.last().map_or(0.0, |&e| e - grid_u0);
        let cells = (len / ROW_GRID_M) as usize + 2;
        let grid = (0..cells)
            .map(|k| {
                let u = grid_u0 + k as f32 * ROW_GRID_M;
                ends.partition_point(|&e| e <= u) as u32
            })
            .collect();
        FacadeRow {
            buildings,
            ends,
            grid,
            grid_u0,
        }
    }

    /// The building covering coordinate `u`, if any.
    #[inline]
    pub fn at(&self, u: f32) -> Option<&Building> {
        // the index of the first building with u1 > u (`ends.partition_point(|&e| e <= u)`),
        // found by walking from the grid cell's entry; the walk checks both neighbours, so it
        // is exact whatever the rounding of the cell index
        let k = (u - self.grid_u0) / ROW_GRID_M;
        let i = if k >= 0.0 && k < self.grid.len() as f32 {
            let mut i = self.grid[k as usize] as usize;
            while i < self.ends.len() && self.ends[i] <= u {
                i += 1;
            }
            while i > 0 && self.ends[i - 1] > u {
                i -= 1;
            }
            i
        } else {
            self.ends.partition_point(|&e| e <= u)
        };
        self.buildings.get(i).filter(|b| b.u0 <= u)
    }
}

/// Colour temperature family of the street lamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LampKind {
    /// Low-pressure-like sodium: deep orange.
    Sodium,
    /// White LED, slightly cool.
    Led,
}

/// A street lamp: post at (x, y), head at `head`.
#[derive(Debug, Clone)]
pub(crate) struct Lamp {
    pub x: f32,
    pub y: f32,
    pub head: V3,
}

/// A street tree.
#[derive(Debug, Clone)]
pub(crate) struct Tree {
    pub x: f32,
    pub y: f32,
    pub trunk_h: f32,
    pub crown_r: f32,
    pub leaf: V3,
    pub seed: u32,
}

/// A projecting vertical shop sign (blade sign).
#[derive(Debug, Clone)]
pub(crate) struct BladeSign {
    pub lo: V3,
    pub hi: V3,
    pub colour: V3,
    pub glyph: V3,
    pub seed: u32,
}

/// A canopy over a shop window.
#[derive(Debug, Clone)]
pub(crate) struct Awning {
    pub lo: V3,
    pub hi: V3,
    pub a: V3,
    pub b: V3,
}

/// One straight street.
#[derive(Debug, Clone)]
pub(crate) struct Street {
    /// UTM of the street's x = 0, y = 0.
    pub origin: (f64, f64),
    /// Compass bearing of the +x axis (degrees clockwise from north).
    pub bearing: f32,
    pub road_half: f32,
    pub left_y: f32,
    pub right_y: f32,
    pub left: FacadeRow,
    pub right: FacadeRow,
    /// Row across the far end (plane x = `far_x`, u = y + 200).
    pub far: FacadeRow,
    pub far_x: f32,
    /// Row across the near end (plane x = `near_x`, u = y + 200).
    pub near: FacadeRow,
    pub near_x: f32,
    pub lamps: Vec<Lamp>,
    pub lamp_kind: LampKind,
    pub trees: Vec<Tree>,
    pub blades: Vec<BladeSign>,
    pub awnings: Vec<Awning>,
    pub crosswalks: Vec<f32>,
    pub asphalt: V3,
    pub pavement: V3,
    pub centre_line: V3,
    pub seed: u32,
}

/// Whether a place belongs to the test sets or the training sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// VPR and Tokyo-style test sets.
    Test,
    /// GAN, cirtorch and CosPlace training sets.
    Train,
}

/// A place: a camera station on a street, seen from several viewpoints.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Place {
    /// Global index of the place in the world.
    pub id: usize,
    /// Index of its street.
    pub street: usize,
    /// Test or train.
    pub split: Split,
    /// Position along the street (m).
    pub x: f32,
    /// Lateral camera position (m, left positive).
    pub lateral: f32,
    /// Base yaw relative to the street axis (degrees, left positive).
    pub yaw_deg: f32,
    /// UTM easting of the station (m).
    pub east: f64,
    /// UTM northing of the station (m).
    pub north: f64,
}

/// The whole procedural world: streets and places. Build it with [`World::new`].
#[derive(Debug, Clone)]
pub struct World {
    pub(crate) cfg: WorldConfig,
    pub(crate) streets: Vec<Street>,
    pub(crate) places: Vec<Place>,
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

fn jitter(rng: &mut ChaCha8Rng, c: V3, amount: f32) -> V3 {
    let k = 1.0 + rng.random_range(-amount..amount);
    v3(
        (c.x * k * (1.0 + rng.random_range(-amount..amount) * 0.5)).min(0.95),
        (c.y * k * (1.0 + rng.random_range(-amount..amount) * 0.5)).min(0.95),
        (c.z * k * (1.0 + rng.random_range(-amount..amount) * 0.5)).min(0.95),
    )
}

#[derive(Clone, Copy)]
enum District {
    Downtown,
    OldTown,
    Residential,
}

fn vivid(rng: &mut ChaCha8Rng) -> V3 {
    pick(
        rng,
        &[
            srgb(200, 30, 35),
            srgb(20, 70, 170),
            srgb(20, 130, 60),
            srgb(240, 190, 20),
            srgb(235, 110, 20),
            srgb(240, 240, 235),
            srgb(25, 25, 30),
            srgb(120, 40, 140),
            srgb(0, 150, 170),
            srgb(230, 60, 120),
        ],
    )
}

fn make_building(
    rng: &mut ChaCha8Rng,
    id: u32,
    u0: f32,
    district: District,
    end_row: bool,
) -> Building {
    let (wmin, wmax, fmin, fmax, shop_p) = match district {
        District::Downtown => (10.0, 26.0, 4, 11, 0.75),
        District::OldTown => (6.0, 15.0, 2, 6, 0.8),
        District::Residential => (7.0, 16.0, 2, 4, 0.35),
    };
    let width: f32 = rng.random_range(wmin..wmax);
    let floors: u32 = rng.random_range(fmin..=fmax);
    let floor_h: f32 = rng.random_range(2.9..3.6);
    let ground_h: f32 = rng.random_range(3.6..4.6);
    let height = ground_h + (floors - 1) as f32 * floor_h + 0.6 + if end_row { 6.0 } else { 0.0 };
    let wall = match district {
        District::Downtown => pick(
            rng,
            &[
                Wall::Concrete,
                Wall::Glass,
                Wall::Tile,
                Wall::Concrete,
                Wall::Glass,
                Wall::Brick,
            ],
        ),
        District::OldTown => pick(
            rng,
            &[
                Wall::Brick,
                Wall::Plaster,
                Wall::Plaster,
                Wall::Tile,
                Wall::Brick,
            ],
        ),
        District::Residential => pick(
            rng,
            &[
                Wall::Plaster,
                Wall::Siding,
                Wall::Brick,
                Wall::Plaster,
                Wall::Tile,
            ],
        ),
    };
    let base = match wall {
        Wall::Brick => pick(
            rng,
            &[
                srgb(150, 68, 48),
                srgb(172, 100, 70),
                srgb(190, 158, 110),
                srgb(112, 58, 44),
                srgb(120, 110, 105),
            ],
        ),
        Wall::Plaster => pick(
            rng,
            &[
                srgb(232, 220, 190),
                srgb(240, 200, 150),
                srgb(226, 170, 160),
                srgb(170, 200, 215),
                srgb(180, 210, 180),
                srgb(245, 243, 235),
                srgb(200, 110, 70),
                srgb(215, 170, 80),
            ],
        ),
        Wall::Concrete => pick(
            rng,
            &[
                srgb(175, 175, 170),
                srgb(140, 142, 145),
                srgb(205, 200, 190),
                srgb(110, 112, 118),
            ],
        ),
        Wall::Tile => pick(
            rng,
            &[
                srgb(230, 228, 220),
                srgb(190, 160, 130),
                srgb(120, 95, 80),
                srgb(160, 165, 170),
                srgb(110, 140, 120),
            ],
        ),
        Wall::Glass => pick(
            rng,
            &[
                srgb(60, 90, 110),
                srgb(70, 100, 90),
                srgb(80, 80, 90),
                srgb(50, 70, 100),
            ],
        ),
        Wall::Siding => pick(
            rng,
            &[
                srgb(200, 205, 210),
                srgb(150, 170, 190),
                srgb(210, 190, 150),
                srgb(130, 150, 120),
            ],
        ),
    };
    let albedo = jitter(rng, base, 0.12);
    let trim = pick(
        rng,
        &[
            srgb(240, 238, 230),
            srgb(60, 60, 62),
            srgb(150, 140, 120),
            srgb(200, 195, 185),
        ],
    );
    let frame = pick(
        rng,
        &[
            srgb(235, 235, 230),
            srgb(40, 40, 42),
            srgb(110, 75, 50),
            srgb(160, 160, 160),
        ],
    );
    let glass = pick(
        rng,
        &[
            srgb(40, 55, 70),
            srgb(50, 60, 60),
            srgb(30, 35, 45),
            srgb(70, 85, 95),
        ],
    );
    let cols = ((width / rng.random_range(2.2f32..3.6)).round() as u32).max(1);
    let shop = if !end_row && rng.random::<f32>() < shop_p {
        let sign = vivid(rng);
        let glyph = if sign.luma() > 0.35 {
            srgb(20, 20, 25)
        } else {
            pick(rng, &[srgb(250, 250, 245), srgb(250, 220, 60)])
        };
        let awning = if rng.random::<f32>() < 0.4 {
            let a = vivid(rng);
            let b = if rng.random::<f32>() < 0.5 {
                srgb(240, 240, 235)
            } else {
                a
            };
            Some((a, b))
        } else {
            None
        };
        Some(Shop {
            sign,
            glyph,
            sign_h: rng.random_range(0.7..1.1),
            glyph_seed: rng.random(),
            mullion_m: rng.random_range(1.4..2.6),
            interior: pick(
                rng,
                &[
                    srgb(255, 214, 160),
                    srgb(240, 245, 255),
                    srgb(255, 235, 200),
                ],
            ),
            awning,
        })
    } else {
        None
    };
    Building {
        id,
        u0,
        u1: u0 + width,
        height,
        ground_h,
        floor_h,
        cols,
        win_w: rng.random_range(0.4..0.7),
        win_h: rng.random_range(0.45..0.65),
        wall,
        albedo,
        trim,
        frame,
        glass,
        curtain: rng.random_range(0.0..0.7),
        cornices: rng.random::<f32>() < 0.5,
        shop,
        door_col: rng.random_range(0..cols),
        night_activity: rng.random_range(0.08..0.6),
    }
}

fn make_row(
    rng: &mut ChaCha8Rng,
    next_id: &mut u32,
    u_from: f32,
    u_to: f32,
    district: District,
    end_row: bool,
) -> FacadeRow {
    let mut buildings = Vec::new();
    let mut u = u_from;
    while u < u_to {
        let mut b = make_building(rng, *next_id, u, district, end_row);
        b.u1 = b.u1.min(u_to);
        *next_id += 1;
        u = b.u1;
        buildings.push(b);
    }
    FacadeRow::new(buildings)
}

impl World {
    /// Builds the world described by `cfg` (validated first). Deterministic in `cfg.seed`.
    pub fn new(cfg: &WorldConfig) -> Result<World> {
        cfg.validate()?;
        let pps = cfg.places_per_street;
        let test_streets = cfg.places.div_ceil(pps);
        let train_streets = cfg.train_places.div_ceil(pps);
        let mut streets = Vec::with_capacity(test_streets + train_streets);
        let mut places = Vec::with_capacity(cfg.places + cfg.train_places);
        let grid = ((test_streets + train_streets) as f64)
            .sqrt()
            .ceil()
            .max(1.0) as usize;
        let street_len = 2.0 * MARGIN_M as f64 + pps as f64 * cfg.place_spacing_m as f64;
        let step = STREET_GRID_M.max(2.0 * street_len + 200.0);
        for s in 0..test_streets + train_streets {
            let (split, first, count) = if s < test_streets {
                (Split::Test, s * pps, pps.min(cfg.places - s * pps))
            } else {
                let k = s - test_streets;
                (
                    Split::Train,
                    cfg.places + k * pps,
                    pps.min(cfg.train_places - k * pps),
                )
            };
            let origin = (
                BASE_EAST + (s % grid) as f64 * step,
                BASE_NORTH + (s / grid) as f64 * step,
            );
            let street = make_street(cfg, s, origin, pps);
            let mut rng = ChaCha8Rng::seed_from_u64(seed_of(&[cfg.seed, 2, s as u64]));
            for i in 0..count {
                let x = MARGIN_M + (i as f32 + 0.5) * cfg.place_spacing_m;
                let lateral = rng.random_range(-street.road_half + 1.2..street.road_half - 1.2);
                let yaw_deg = if rng.random::<f32>() < 0.25 {
                    rng.random_range(-8.0..8.0)
                } else {
                    let side = if rng.random::<bool>() { 1.0 } else { -1.0 };
                    side * rng.random_range(18.0..42.0)
                };
                let (x, lateral) = snap_to_cell(&street, x, lateral);
                let yaw_deg = snap_to_heading_bin(street.bearing, yaw_deg);
                let (east, north) = street.to_utm(x, lateral);
                places.push(Place {
                    id: first + i,
                    street: s,
                    split,
                    x,
                    lateral,
                    yaw_deg,
                    east,
                    north,
                });
            }
            streets.push(street);
        }
        Ok(World {
            cfg: cfg.clone(),
            streets,
            places,
        })
    }

    /// The configuration the world was built from.
    pub fn config(&self) -> &WorldConfig {
        &self.cfg
    }

    /// All places: test places first (`0..config().places`), then training places.
    pub fn places(&self) -> &[Place] {
        &self.places
    }

    /// Indices of the test places.
    pub fn test_places(&self) -> std::ops::Range<usize> {
        0..self.cfg.places
    }

    /// Indices of the training places.
    pub fn train_places(&self) -> std::ops::Range<usize> {
        self.cfg.places..self.cfg.places + self.cfg.train_places
    }

    /// The place with global index `i`.
    pub fn place(&self, i: usize) -> Result<&Place> {
        self.places.get(i).ok_or(SynthError::IndexOutOfRange {
            what: "place",
            index: i,
            len: self.places.len(),
        })
    }
}

/// CosPlace's class cell size (m) and heading bin (degrees), docs/PAPERS.md protocols §2.3.
const COSPLACE_M: f64 = 10.0;
const COSPLACE_ALPHA: f64 = 30.0;

/// Largest move along the street of [`snap_to_cell`] (m): 5√2, the farthest the nearest cell
/// centre can be, so consecutive stations stay ≥ spacing − 2 × 5√2 apart (and each query has
/// one place within 25 m). Without it a narrow street askew to the UTM grid could send a
/// station to a centre 15 m along the street.
const MAX_SNAP_ALONG_M: f64 = 7.072;

/// Moves a station to the centre of a 10 m UTM cell (the nearest one that keeps the camera on
/// the road and moves it at most [`MAX_SNAP_ALONG_M`] along the street; if there is none the
/// station stays), so that CosPlace-style views jittered by ±3 m stay in one class.
fn snap_to_cell(street: &Street, x: f32, lateral: f32) -> (f32, f32) {
    let (e, n) = street.to_utm(x, lateral);
    let (sb, cb) = (sind(street.bearing) as f64, cosd(street.bearing) as f64);
    let lim = (street.road_half - 1.0) as f64;
    let mut best: Option<(f64, f32, f32)> = None;
    for di in -1..=1 {
        for dj in -1..=1 {
            let ce = ((e / COSPLACE_M).floor() + di as f64) * COSPLACE_M + COSPLACE_M / 2.0;
            let cn = ((n / COSPLACE_M).floor() + dj as f64) * COSPLACE_M + COSPLACE_M / 2.0;
            let (de, dn) = (ce - e, cn - n);
            let dx = de * sb + dn * cb;
            let dy = -de * cb + dn * sb;
            let ny = lateral as f64 + dy;
            let d2 = de * de + dn * dn;
            if ny.abs() <= lim && dx.abs() <= MAX_SNAP_ALONG_M && best.is_none_or(|b| d2 < b.0) {
                best = Some((d2, x + dx as f32, ny as f32));
            }
        }
    }
    best.map_or((x, lateral), |b| (b.1, b.2))
}

/// Moves a yaw so that the compass heading is the centre of its 30° bin.
fn snap_to_heading_bin(bearing: f32, yaw_deg: f32) -> f32 {
    let h = (bearing as f64 - yaw_deg as f64).rem_euclid(360.0);
    let centre = (h / COSPLACE_ALPHA).floor() * COSPLACE_ALPHA + COSPLACE_ALPHA / 2.0;
    (yaw_deg as f64 - (centre - h)) as f32
}

impl Street {
    /// Street-local (x, y) → UTM (east, north).
    pub fn to_utm(&self, x: f32, y: f32) -> (f64, f64) {
        let (sb, cb) = (sind(self.bearing) as f64, cosd(self.bearing) as f64);
        // +x = (sin b, cos b) in (east, north); +y (left) = (-cos b, sin b)
        let e = self.origin.0 + x as f64 * sb - y as f64 * cb;
        let n = self.origin.1 + x as f64 * cb + y as f64 * sb;
        // centimetre grid, so names carry exact decimals
        ((e * 100.0).round() / 100.0, (n * 100.0).round() / 100.0)
    }
}

fn make_street(cfg: &WorldConfig, s: usize, origin: (f64, f64), pps: usize) -> Street {
    let mut rng = ChaCha8Rng::seed_from_u64(seed_of(&[cfg.seed, 1, s as u64]));
    let district = pick(
        &mut rng,
        &[
            District::Downtown,
            District::OldTown,
            District::Residential,
            District::OldTown,
        ],
    );
    let road_half: f32 = match district {
        District::Downtown => rng.random_range(4.5..7.0),
        District::OldTown => rng.random_range(3.2..5.0),
        District::Residential => rng.random_range(3.0..4.5),
    };
    let left_y = road_half + rng.random_range(2.2f32..4.5);
    let right_y = -(road_half + rng.random_range(2.2f32..4.5));
    let length = 2.0 * MARGIN_M + pps as f32 * cfg.place_spacing_m;
    let bearing = rng.random_range(0.0f32..360.0);
    let mut next_id = (s as u32) * 10_000;
    // side rows stop 20 m short of the end rows: cross streets
    let left = make_row(
        &mut rng,
        &mut next_id,
        -50.0,
        length + 50.0,
        district,
        false,
    );
    let right = make_row(
        &mut rng,
        &mut next_id,
        -50.0,
        length + 50.0,
        district,
        false,
    );
    let far = make_row(&mut rng, &mut next_id, 0.0, 400.0, district, true);
    let near = make_row(&mut rng, &mut next_id, 0.0, 400.0, district, true);
    let lamp_kind = if rng.random::<f32>() < 0.5 {
        LampKind::Sodium
    } else {
        LampKind::Led
    };
    let lamp_spacing: f32 = rng.random_range(22.0..32.0);
    let both_sides = rng.random::<f32>() < 0.5;
    let lamp_h: f32 = rng.random_range(6.0..8.0);
    let mut lamps = Vec::new();
    let mut x = rng.random_range(-20.0..-5.0);
    let mut k = 0;
    while x < length + 40.0 {
        let left_side = if both_sides { k % 2 == 0 } else { true };
        let y = if left_side {
            road_half + 0.5
        } else {
            -road_half - 0.5
        };
        let arm = if left_side { -1.4 } else { 1.4 };
        lamps.push(Lamp {
            x,
            y,
            head: v3(x, y + arm, lamp_h),
        });
        x += lamp_spacing;
        k += 1;
    }
    let mut trees = Vec::new();
    let tree_p = match district {
        District::Downtown => 0.3,
        District::OldTown => 0.5,
        District::Residential => 0.85,
    };
    for side in [1.0f32, -1.0] {
        if rng.random::<f32>() < tree_p {
            let leaf = pick(
                &mut rng,
                &[
                    srgb(70, 110, 45),
                    srgb(90, 120, 50),
                    srgb(55, 95, 50),
                    srgb(120, 120, 50),
                ],
            );
            let spacing: f32 = rng.random_range(8.0..14.0);
            let y = side * (road_half + rng.random_range(1.0..1.6));
            let mut x = rng.random_range(-30.0..-20.0);
            while x < length + 40.0 {
                if lamps
                    .iter()
                    .all(|l| (l.x - x).abs() > 3.0 || (l.y - y).abs() > 2.5)
                {
                    trees.push(Tree {
                        x: x + rng.random_range(-1.0..1.0),
                        y,
                        trunk_h: rng.random_range(2.8..3.8),
                        crown_r: rng.random_range(1.2..2.0),
                        leaf: jitter(&mut rng, leaf, 0.15),
                        seed: rng.random(),
                    });
                }
                x += spacing;
            }
        }
    }
    let mut blades = Vec::new();
    let mut awnings = Vec::new();
    for (row, plane_y, dir) in [(&left, left_y, -1.0f32), (&right, right_y, 1.0)] {
        for b in &row.buildings {
            let Some(shop) = &b.shop else { continue };
            if let Some((a, c)) = shop.awning {
                let depth = rng.random_range(1.0..1.6);
                let (y0, y1) = if dir < 0.0 {
                    (plane_y - depth, plane_y)
                } else {
                    (plane_y, plane_y + depth)
                };
                let z = b.ground_h - shop.sign_h - 0.15;
                awnings.push(Awning {
                    lo: v3(b.u0 + 0.4, y0, z - 0.35),
                    hi: v3(b.u1 - 0.4, y1, z),
                    a,
                    b: c,
                });
            }
            if b.upper_floors() >= 2 && rng.random::<f32>() < 0.4 {
                let u = if rng.random::<bool>() {
                    b.u0 + 0.6
                } else {
                    b.u1 - 0.6
                };
                let z0 = b.ground_h + 0.3;
                let z1 = (z0 + rng.random_range(2.5..6.0)).min(b.height - 0.5);
                let depth = rng.random_range(0.8..1.2);
                let (y0, y1) = if dir < 0.0 {
                    (plane_y - depth, plane_y)
                } else {
                    (plane_y, plane_y + depth)
                };
                let colour = vivid(&mut rng);
                let glyph = if colour.luma() > 0.35 {
                    srgb(20, 20, 25)
                } else {
                    srgb(250, 250, 245)
                };
                blades.push(BladeSign {
                    lo: v3(u - 0.1, y0, z0),
                    hi: v3(u + 0.1, y1, z1),
                    colour,
                    glyph,
                    seed: rng.random(),
                });
            }
        }
    }
    let mut crosswalks = Vec::new();
    for _ in 0..rng.random_range(0..3) {
        crosswalks.push(rng.random_range(0.0..length));
    }
    Street {
        origin,
        bearing,
        road_half,
        left_y,
        right_y,
        left,
        right,
        far,
        far_x: length + 70.0,
        near,
        near_x: -70.0,
        lamps,
        lamp_kind,
        trees,
        blades,
        awnings,
        crosswalks,
        asphalt: jitter(&mut rng, srgb(78, 78, 82), 0.15),
        pavement: pick(
            &mut rng,
            &[
                srgb(165, 160, 150),
                srgb(150, 150, 152),
                srgb(175, 150, 130),
                srgb(140, 135, 125),
            ],
        ),
        centre_line: if rng.random::<bool>() {
            srgb(230, 180, 40)
        } else {
            srgb(235, 235, 230)
        },
        seed: rng.random(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_far_apart_and_streets_disjoint() {
        let cfg = WorldConfig::default();
        let world = World::new(&cfg).unwrap();
        let p = world.places();
        assert_eq!(p.len(), cfg.places + cfg.train_places);
        for i in 0..p.len() {
            for j in 0..i {
                let d =
                    ((p[i].east - p[j].east).powi(2) + (p[i].north - p[j].north).powi(2)).sqrt();
                // 60 m spacing, minus at most 2 × 5√2 m of snapping to CosPlace cell centres;
                // views move ≤ 4.25 m from their station, so positives (25 m) stay unique
                assert!(
                    d > 60.0 - 2.0 * 50f64.sqrt(),
                    "places {i} and {j} are {d} m apart"
                );
            }
        }
        let (test, train) = p.split_at(cfg.places);
        assert!(test.iter().all(|q| q.split == Split::Test));
        assert!(train.iter().all(|q| q.split == Split::Train));
        let test_streets: Vec<usize> = test.iter().map(|q| q.street).collect();
        assert!(train.iter().all(|q| !test_streets.contains(&q.street)));
    }

    #[test]
    fn facade_rows_are_contiguous() {
        let world = World::new(&WorldConfig::tiny()).unwrap();
        for s in &world.streets {
            for row in [&s.left, &s.right, &s.far, &s.near] {
                for w in row.buildings.windows(2) {
                    assert_eq!(w[0].u1, w[1].u0);
                }
                let b = &row.buildings[1];
                assert_eq!(row.at(b.u0 + 0.01).map(|x| x.id), Some(b.id));
                // the grid lookup is the binary search, everywhere (boundaries, outside, NaN)
                let first = row.buildings[0].u0;
                let last = row.buildings.last().unwrap().u1;
                let mut us = vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, first - 1.0];
                for b in &row.buildings {
                    for u in [b.u0, b.u1] {
                        us.extend([u, u.next_down(), u.next_up()]);
                    }
                }
                us.extend(
                    (0..20_000).map(|k| first - 3.0 + (last - first + 6.0) * k as f32 / 20_000.0),
                );
                for u in us {
                    let i = row.buildings.partition_point(|b| b.u1 <= u);
                    let want = row.buildings.get(i).filter(|b| b.u0 <= u).map(|b| b.id);
                    assert_eq!(row.at(u).map(|b| b.id), want, "u = {u}");
                }
            }
        }
    }
}
