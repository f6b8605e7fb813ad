//! The renderer: a ray caster over the 2.5-D street canyon (facade planes, ground plane, end
//! rows) and a few primitives (lamps, trees, signs, awnings, cars, pedestrians), shaded in linear
//! float RGB under a day / sunset / night lighting model, then exposed, degraded like a camera
//! (bloom, blur, noise, veiling glare, white-balance cast) and tone-mapped to 8-bit sRGB.

use image::RgbImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::detmath::{
    cosd, exp64, fbm, floor as floorf, gauss4, hash01, hash3, ln64, powf, seed_of, sind,
    splitmix64, tand, value_noise,
};
use crate::error::Result;
use crate::geom::{V3, hit_box, hit_cyl, hit_sphere, srgb, v3};
use crate::view::{Condition, Role, Viewpoint};
use crate::world::{Building, LampKind, Street, Wall, World};

/// Horizontal field of view at zoom 1 (degrees).
const HFOV_DEG: f32 = 66.0;
/// Objects further than this along the street are not instantiated (m).
const VIEW_RANGE_M: f32 = 220.0;
/// Screen tile size (samples) for object culling.
const TILE: usize = 16;
/// Margin (samples) around an object's projected bounding box inside which its rays are
/// intersected. A ray that hits an object projects into the object's box to within rounding
/// (≪ 0.01 sample), so skipping the rays outside this margin changes no pixel.
const RECT_MARGIN: f32 = 2.0;
/// The screen rectangle of an object tested on every ray.
const FULL_SCREEN: [f32; 4] = [
    f32::NEG_INFINITY,
    f32::NEG_INFINITY,
    f32::INFINITY,
    f32::INFINITY,
];
/// Width (m, along the street) of the buckets that list the lights able to reach a point.
const LIGHT_BUCKET_M: f32 = 2.0;
/// A light is listed in a bucket when it is within its radius plus this margin (m) of the
/// bucket, so a point of the bucket skips only lights whose `d2 > r2` test fails anyway (the
/// margin dwarfs the rounding of the bucket index and of `d2`).
const LIGHT_MARGIN_M: f32 = 1.0;
/// Buckets cover the street from this far behind the camera to `VIEW_RANGE_M` + this far ahead
/// (objects and lights are only instantiated in between); points outside test every light.
const LIGHT_REACH_M: f32 = 110.0;

// ---------------------------------------------------------------------------------------------
// Lighting environment
// ---------------------------------------------------------------------------------------------

/// Everything about the light and the camera response of one capture.
#[derive(Debug, Clone)]
pub(crate) struct Env {
    cond: Condition,
    sun_dir: V3,
    /// `sun_dir` projected on the ground plane and normalised (the sky's horizon tint).
    sun_flat: V3,
    sun: V3,
    zenith: V3,
    horizon: V3,
    /// Horizon colour towards the sun (sunset glow).
    horizon_sun: V3,
    amb: V3,
    cloud_cover: f32,
    cloud_col: V3,
    cloud_seed: u32,
    lamps_on: bool,
    lamp_col: V3,
    lamp_int: f32,
    night_seed: u32,
    window_scale: f32,
    shop_open_p: f32,
    sign_lit_p: f32,
    /// Emission multiplier of lit windows / shops / signs.
    emit: f32,
    key: f32,
    max_gain: f32,
    wb: V3,
    read_noise: f32,
    shot_noise: f32,
    blur: f32,
    veil: f32,
    bloom: f32,
    noise_seed: u64,
}

fn lamp_colour(kind: LampKind) -> V3 {
    match kind {
        LampKind::Sodium => v3(1.0, 0.52, 0.16),
        LampKind::Led => v3(0.9, 0.95, 1.0),
    }
}

impl Env {
    fn new(cond: Condition, street: &Street, seed: u64) -> Env {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let az: f32 = rng.random_range(0.0..360.0);
        let lamp_col = lamp_colour(street.lamp_kind);
        let base = Env {
            cond,
            sun_dir: v3(0.0, 0.0, 1.0),
            sun_flat: V3::default(),
            sun: V3::default(),
            zenith: V3::default(),
            horizon: V3::default(),
            horizon_sun: V3::default(),
            amb: V3::default(),
            cloud_cover: 0.0,
            cloud_col: V3::default(),
            cloud_seed: rng.random(),
            lamps_on: false,
            lamp_col,
            lamp_int: 0.0,
            night_seed: rng.random(),
            window_scale: 0.0,
            shop_open_p: 1.0,
            sign_lit_p: 0.0,
            emit: 0.0,
            key: 0.18,
            max_gain: 50.0,
            wb: v3(1.0, 1.0, 1.0),
            read_noise: 0.002,
            shot_noise: 0.0004,
            blur: 0.0,
            veil: 0.0,
            bloom: 0.02,
            noise_seed: rng.random(),
        };
        let env = match cond {
            Condition::Day => {
                let overcast = rng.random::<f32>() < 0.3;
                let el: f32 = rng.random_range(20.0..65.0);
                let sun_dir = v3(cosd(el) * cosd(az), cosd(el) * sind(az), sind(el));
                let t = rng.random_range(0.95..1.05);
                let wb = v3(
                    rng.random_range(0.96..1.04),
                    1.0,
                    rng.random_range(0.96..1.04),
                );
                if overcast {
                    let g = rng.random_range(1.1..1.5);
                    Env {
                        sun_dir,
                        sun: v3(1.0, 0.98, 0.95) * 0.25,
                        zenith: v3(0.78, 0.8, 0.84) * g,
                        horizon: v3(0.88, 0.89, 0.9) * g,
                        horizon_sun: v3(0.9, 0.9, 0.9) * g,
                        amb: v3(0.8, 0.82, 0.86) * (1.25 * g),
                        cloud_cover: 0.0,
                        cloud_col: v3(0.8, 0.8, 0.82) * g,
                        emit: 0.12,
                        wb,
                        ..base
                    }
                } else {
                    Env {
                        sun_dir,
                        sun: v3(1.0, 0.96, 0.9) * (3.4 * t),
                        zenith: v3(0.16, 0.33, 0.78) * 1.5,
                        horizon: v3(0.62, 0.76, 0.95) * 1.6,
                        horizon_sun: v3(0.8, 0.85, 0.95) * 1.8,
                        amb: v3(0.42, 0.52, 0.75) * 1.15,
                        cloud_cover: rng.random_range(0.0..0.55),
                        cloud_col: v3(1.0, 1.0, 1.0) * 1.9,
                        emit: 0.12,
                        wb,
                        ..base
                    }
                }
            }
            Condition::Sunset => {
                let el: f32 = rng.random_range(1.0..7.0);
                let sun_dir = v3(cosd(el) * cosd(az), cosd(el) * sind(az), sind(el));
                let g = rng.random_range(0.8..1.2);
                Env {
                    sun_dir,
                    sun: v3(1.0, 0.5, 0.22) * (1.5 * g),
                    zenith: v3(0.09, 0.13, 0.34) * g,
                    horizon: v3(0.55, 0.35, 0.38) * g,
                    horizon_sun: v3(1.25, 0.6, 0.25) * g,
                    amb: v3(0.3, 0.28, 0.4) * (0.32 * g),
                    cloud_cover: rng.random_range(0.15..0.6),
                    cloud_col: v3(0.9, 0.45, 0.35) * g,
                    lamps_on: true,
                    lamp_int: 0.55,
                    window_scale: 0.55,
                    shop_open_p: 0.9,
                    sign_lit_p: 0.75,
                    emit: 0.5,
                    key: 0.14,
                    max_gain: 8.0,
                    read_noise: 0.006,
                    shot_noise: 0.0015,
                    blur: 0.35,
                    veil: 0.015,
                    bloom: 0.08,
                    ..base
                }
            }
            Condition::Night => {
                let glow = rng.random_range(0.6..1.4);
                // white balance: the camera only partly corrects the dominant lamp colour
                let wb = match street.lamp_kind {
                    LampKind::Sodium => v3(
                        1.0,
                        rng.random_range(0.9..1.0),
                        rng.random_range(0.78..0.95),
                    ),
                    LampKind::Led => v3(
                        rng.random_range(0.88..0.98),
                        1.0,
                        rng.random_range(1.0..1.1),
                    ),
                };
                Env {
                    sun_dir: v3(0.0, 0.0, -1.0),
                    sun: V3::default(),
                    zenith: v3(0.0025, 0.0035, 0.009),
                    horizon: v3(0.03, 0.022, 0.018) * glow,
                    horizon_sun: v3(0.03, 0.022, 0.018) * glow,
                    amb: v3(0.004, 0.005, 0.008),
                    cloud_cover: rng.random_range(0.0..0.5),
                    cloud_col: v3(0.035, 0.026, 0.022) * glow,
                    lamps_on: true,
                    lamp_int: rng.random_range(0.8..1.2),
                    window_scale: rng.random_range(0.7..1.3),
                    shop_open_p: rng.random_range(0.35..0.8),
                    sign_lit_p: 0.85,
                    emit: 1.0,
                    key: 0.09,
                    max_gain: 12.0,
                    wb,
                    read_noise: 0.02,
                    shot_noise: 0.004,
                    blur: rng.random_range(0.5..0.9),
                    veil: 0.03,
                    bloom: 0.22,
                    ..base
                }
            }
        };
        Env {
            sun_flat: v3(env.sun_dir.x, env.sun_dir.y, 0.0).norm(),
            ..env
        }
    }

    /// Radiance of the sky in direction `d`.
    fn sky(&self, d: V3) -> V3 {
        let e = d.z.max(0.0);
        let se = e.sqrt();
        // horizon colour leans towards the sun's azimuth
        let hs = {
            let hd = v3(d.x, d.y, 0.0).norm();
            let c = (hd.dot(self.sun_flat) * 0.5 + 0.5).max(0.0);
            c * c * c
        };
        let hor = self.horizon.lerp(self.horizon_sun, hs);
        let mut col = hor.lerp(self.zenith, se);
        if self.cloud_cover > 0.0 && e > 0.02 {
            let (px, py) = (d.x / e * 0.35, d.y / e * 0.35);
            let n = fbm(px, py, self.cloud_seed, 4);
            let c = ((n - (1.0 - self.cloud_cover)) * 3.0).clamp(0.0, 1.0);
            // clear sky (c = 0) blends in nothing: col + (cloud − col) · 0 = col
            if c > 0.0 {
                let shade = 0.75 + 0.25 * value_noise(px * 3.0, py * 3.0, self.cloud_seed ^ 99);
                col = col.lerp(self.cloud_col * shade, c * (e * 6.0).min(1.0));
            }
        }
        if self.cond != Condition::Night {
            let c = d.dot(self.sun_dir).min(1.0);
            if c > 0.0 {
                let mut p = c;
                for _ in 0..6 {
                    p *= p; // c^64
                }
                let halo = self.sun * (0.25 * p);
                col = col + halo;
                if c > 0.9995 {
                    col = col + self.sun * 15.0;
                }
            }
        }
        col
    }
}

// ---------------------------------------------------------------------------------------------
// Scene instance (objects and lights of one capture)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Shape {
    Box,
    Cyl { cx: f32, cy: f32, r: f32 },
    Sphere { c: V3, r: f32 },
}

#[derive(Debug, Clone, Copy)]
enum Mat {
    Solid(V3),
    Glossy(V3),
    Foliage(V3, u32),
    LampHead,
    CarGlass,
    HeadLight(bool),
    TailLight(bool),
    Awning(V3, V3),
    Blade {
        colour: V3,
        glyph: V3,
        seed: u32,
        lit: bool,
    },
}

#[derive(Debug, Clone, Copy)]
struct Obj {
    shape: Shape,
    mat: Mat,
    lo: V3,
    hi: V3,
}

fn obj_box(lo: V3, hi: V3, mat: Mat) -> Obj {
    Obj {
        shape: Shape::Box,
        mat,
        lo,
        hi,
    }
}

fn obj_cyl(cx: f32, cy: f32, r: f32, z0: f32, z1: f32, mat: Mat) -> Obj {
    Obj {
        shape: Shape::Cyl { cx, cy, r },
        mat,
        lo: v3(cx - r, cy - r, z0),
        hi: v3(cx + r, cy + r, z1),
    }
}

fn obj_sphere(c: V3, r: f32, mat: Mat) -> Obj {
    Obj {
        shape: Shape::Sphere { c, r },
        mat,
        lo: c - v3(r, r, r),
        hi: c + v3(r, r, r),
    }
}

#[derive(Debug, Clone, Copy)]
struct Light {
    pos: V3,
    col: V3,
    r2: f32,
    dir: V3,
    /// Cone exponent (0 = omnidirectional).
    cone: i32,
}

#[derive(Debug, Clone, Copy)]
struct Glow {
    pos: V3,
    col: V3,
    /// Angular radius (radians) of the halo core.
    size: f32,
}

/// A footprint on the ground darkened by contact shadow (cars, pedestrians).
#[derive(Debug, Clone, Copy)]
struct Blob {
    x0: f32,
    x1: f32,
    y0: f32,
    y1: f32,
}

struct Camera {
    pos: V3,
    fwd: V3,
    right: V3,
    up: V3,
    f_px: f32,
    w: usize,
    h: usize,
}

impl Camera {
    /// Horizontal image-plane coordinate of sample column `ix` (at its centre, `ix + 0.5`).
    fn plane_a(&self, ix: usize) -> f32 {
        (ix as f32 + 0.5 - self.w as f32 * 0.5) / self.f_px
    }

    /// Vertical image-plane coordinate of sample row `iy`.
    fn plane_b(&self, iy: usize) -> f32 {
        (self.h as f32 * 0.5 - (iy as f32 + 0.5)) / self.f_px
    }

    /// Unit ray through image-plane coordinates (a, b).
    fn ray(&self, a: f32, b: f32) -> V3 {
        (self.fwd + self.right * a + self.up * b).norm()
    }
}

/// A halo with its camera-relative quantities (the camera never moves within a capture).
#[derive(Debug, Clone, Copy)]
struct GlowView {
    /// `pos - camera`.
    v: V3,
    /// `v · v`.
    vv: f32,
    /// `size²`.
    size2: f32,
    col: V3,
}

struct Scene<'a> {
    street: &'a Street,
    env: Env,
    cam: Camera,
    objs: Vec<Obj>,
    /// Screen rectangle `[x0, y0, x1, y1]` (samples, with [`RECT_MARGIN`]) of each object.
    rects: Vec<[f32; 4]>,
    tiles: Vec<Vec<u16>>,
    tiles_x: usize,
    tiles_y: usize,
    /// The foliage spheres (centre, radius) among `objs`, in order: the only sun occluders
    /// besides the facades.
    foliage: Vec<(V3, f32)>,
    lights: Vec<Light>,
    /// Per [`LIGHT_BUCKET_M`] of street from `light_x0`: the lights (indices, in order) that
    /// can reach a point there.
    light_buckets: Vec<Vec<u16>>,
    light_x0: f32,
    /// `0..lights.len()`, for points outside the buckets.
    all_lights: Vec<u16>,
    glows: Vec<Glow>,
    glow_views: Vec<GlowView>,
    /// [`Camera::plane_a`] of every sample column, [`Camera::plane_b`] of every sample row.
    plane_a: Vec<f32>,
    plane_b: Vec<f32>,
    blobs: Vec<Blob>,
}

/// Hash deciding whether a given light-emitting element is on during one night.
fn on_tonight(night_seed: u32, a: u32, b: u32, p: f32) -> bool {
    hash01(a as i32, b as i32, night_seed) < p
}

impl<'a> Scene<'a> {
    fn new(
        world: &'a World,
        vp: &Viewpoint,
        cond: Condition,
        capture_seed: u64,
        w: usize,
        h: usize,
    ) -> Scene<'a> {
        let place = &world.places[vp.place];
        let street = &world.streets[place.street];
        let env = Env::new(cond, street, seed_of(&[capture_seed, 1]));
        let (cy, sy) = (cosd(vp.yaw_deg), sind(vp.yaw_deg));
        let (cp, sp) = (cosd(vp.pitch_deg), sind(vp.pitch_deg));
        let fwd = v3(cy * cp, sy * cp, sp);
        let r0 = v3(sy, -cy, 0.0);
        let u0 = r0.cross(fwd);
        let (cr, sr) = (cosd(vp.roll_deg), sind(vp.roll_deg));
        let right = r0 * cr + u0 * sr;
        let up = u0 * cr - r0 * sr;
        let f_px = w as f32 * 0.5 / tand(HFOV_DEG * 0.5) * vp.zoom;
        let cam = Camera {
            pos: v3(vp.x, vp.y, vp.z),
            fwd,
            right,
            up,
            f_px,
            w,
            h,
        };
        let mut scene = Scene {
            street,
            env,
            cam,
            objs: Vec::new(),
            rects: Vec::new(),
            tiles: Vec::new(),
            tiles_x: 0,
            tiles_y: 0,
            foliage: Vec::new(),
            lights: Vec::new(),
            light_buckets: Vec::new(),
            light_x0: 0.0,
            all_lights: Vec::new(),
            glows: Vec::new(),
            glow_views: Vec::new(),
            plane_a: Vec::new(),
            plane_b: Vec::new(),
            blobs: Vec::new(),
        };
        scene.populate(seed_of(&[capture_seed, 2]));
        scene.build_tiles();
        scene.build_light_buckets();
        let o = scene.cam.pos;
        scene.glow_views = scene
            .glows
            .iter()
            .map(|g| {
                let v = g.pos - o;
                GlowView {
                    v,
                    vv: v.dot(v),
                    size2: g.size * g.size,
                    col: g.col,
                }
            })
            .collect();
        scene.plane_a = (0..w).map(|ix| scene.cam.plane_a(ix)).collect();
        scene.plane_b = (0..h).map(|iy| scene.cam.plane_b(iy)).collect();
        scene.foliage = scene
            .objs
            .iter()
            .filter_map(|o| match (o.shape, o.mat) {
                (Shape::Sphere { c, r }, Mat::Foliage(..)) => Some((c, r)),
                _ => None,
            })
            .collect();
        scene
    }

    /// Lists, per bucket of street, the lights whose radius (plus a margin) reaches it.
    fn build_light_buckets(&mut self) {
        let x0 = self.cam.pos.x - 60.0 - LIGHT_REACH_M;
        let x1 = self.cam.pos.x + VIEW_RANGE_M + LIGHT_REACH_M;
        let n = ((x1 - x0) / LIGHT_BUCKET_M).ceil() as usize;
        let mut buckets = vec![Vec::new(); n];
        for (i, l) in self.lights.iter().enumerate() {
            let reach = l.r2.sqrt() + LIGHT_MARGIN_M;
            for (k, b) in buckets.iter_mut().enumerate() {
                let lo = x0 + k as f32 * LIGHT_BUCKET_M;
                if l.pos.x + reach >= lo && l.pos.x - reach <= lo + LIGHT_BUCKET_M {
                    b.push(i as u16);
                }
            }
        }
        self.light_buckets = buckets;
        self.light_x0 = x0;
        self.all_lights = (0..self.lights.len() as u16).collect();
    }

    /// The lights that can reach a point at street coordinate `x` (a superset of those with
    /// `d2 <= r2`, in their original order).
    #[inline]
    fn lights_near(&self, x: f32) -> &[u16] {
        let k = (x - self.light_x0) / LIGHT_BUCKET_M;
        if k >= 0.0 && k < self.light_buckets.len() as f32 {
            &self.light_buckets[k as usize]
        } else {
            &self.all_lights
        }
    }

    fn in_range(&self, x: f32) -> bool {
        x > self.cam.pos.x - 60.0 && x < self.cam.pos.x + VIEW_RANGE_M
    }

    fn populate(&mut self, seed: u64) {
        let st = self.street;
        let env = &self.env;
        let mut objs = Vec::new();
        let mut lights = Vec::new();
        let mut glows = Vec::new();
        let mut blobs = Vec::new();
        let metal = Mat::Glossy(srgb(70, 72, 75));
        for l in &st.lamps {
            if !self.in_range(l.x) {
                continue;
            }
            objs.push(obj_cyl(l.x, l.y, 0.09, 0.0, l.head.z + 0.1, metal));
            let (ya, yb) = if l.head.y < l.y {
                (l.head.y, l.y)
            } else {
                (l.y, l.head.y)
            };
            objs.push(obj_box(
                v3(l.x - 0.05, ya, l.head.z + 0.02),
                v3(l.x + 0.05, yb, l.head.z + 0.12),
                metal,
            ));
            match st.lamp_kind {
                LampKind::Sodium => objs.push(obj_sphere(l.head, 0.24, Mat::LampHead)),
                LampKind::Led => objs.push(obj_box(
                    l.head - v3(0.35, 0.18, 0.06),
                    l.head + v3(0.35, 0.18, 0.06),
                    Mat::LampHead,
                )),
            }
            if env.lamps_on {
                let col = env.lamp_col * (55.0 * env.lamp_int);
                lights.push(Light {
                    pos: l.head - v3(0.0, 0.0, 0.3),
                    col,
                    r2: 45.0 * 45.0,
                    dir: v3(0.0, 0.0, -1.0),
                    cone: 1,
                });
                glows.push(Glow {
                    pos: l.head,
                    col: env.lamp_col * (0.9 * env.lamp_int * env.emit),
                    size: 0.012,
                });
            }
        }
        for t in &st.trees {
            if !self.in_range(t.x) {
                continue;
            }
            objs.push(obj_cyl(
                t.x,
                t.y,
                0.14,
                0.0,
                t.trunk_h + t.crown_r * 0.6,
                Mat::Solid(srgb(75, 60, 48)),
            ));
            objs.push(obj_sphere(
                v3(t.x, t.y, t.trunk_h + t.crown_r * 0.8),
                t.crown_r,
                Mat::Foliage(t.leaf, t.seed),
            ));
        }
        for b in &st.blades {
            if !self.in_range(b.lo.x) {
                continue;
            }
            let lit = env.emit > 0.2 && on_tonight(env.night_seed, b.seed, 7, env.sign_lit_p);
            objs.push(obj_box(
                b.lo,
                b.hi,
                Mat::Blade {
                    colour: b.colour,
                    glyph: b.glyph,
                    seed: b.seed,
                    lit,
                },
            ));
        }
        for a in &st.awnings {
            if a.hi.x < self.cam.pos.x - 60.0 || a.lo.x > self.cam.pos.x + VIEW_RANGE_M {
                continue;
            }
            objs.push(obj_box(a.lo, a.hi, Mat::Awning(a.a, a.b)));
        }
        // shop light spilling onto the pavement
        if env.emit > 0.2 {
            for (row, plane_y, ny) in [(&st.left, st.left_y, -1.0f32), (&st.right, st.right_y, 1.0)]
            {
                for b in &row.buildings {
                    let Some(shop) = &b.shop else { continue };
                    let xc = 0.5 * (b.u0 + b.u1);
                    if !self.in_range(xc) || !on_tonight(env.night_seed, b.id, 3, env.shop_open_p) {
                        continue;
                    }
                    lights.push(Light {
                        pos: v3(xc, plane_y + ny * 0.6, 1.6),
                        col: shop.interior * (4.0 * env.emit),
                        r2: 14.0 * 14.0,
                        dir: v3(0.0, ny, -0.3).norm(),
                        cone: 1,
                    });
                }
            }
        }
        // transient things: parked cars, moving cars, pedestrians
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let cam = self.cam.pos;
        let car_colours = [
            srgb(230, 230, 230),
            srgb(25, 25, 28),
            srgb(150, 150, 155),
            srgb(160, 25, 30),
            srgb(30, 60, 130),
            srgb(200, 200, 190),
            srgb(60, 70, 60),
        ];
        let add_car = |objs: &mut Vec<Obj>,
                       lights: &mut Vec<Light>,
                       glows: &mut Vec<Glow>,
                       blobs: &mut Vec<Blob>,
                       rng: &mut ChaCha8Rng,
                       x: f32,
                       y: f32,
                       facing: f32,
                       moving: bool| {
            let len: f32 = rng.random_range(3.9..4.8);
            let wid: f32 = rng.random_range(1.7..1.9);
            let ht: f32 = rng.random_range(1.35..1.6);
            let (x0, x1, y0, y1) = (x - len / 2.0, x + len / 2.0, y - wid / 2.0, y + wid / 2.0);
            if cam.x > x0 - 1.5 && cam.x < x1 + 1.5 && cam.y > y0 - 1.0 && cam.y < y1 + 1.0 {
                return;
            }
            let col = car_colours[rng.random_range(0..car_colours.len())];
            objs.push(obj_box(
                v3(x0, y0, 0.28),
                v3(x1, y1, ht * 0.62),
                Mat::Glossy(col),
            ));
            objs.push(obj_box(
                v3(x0 + 0.3, y0 + 0.05, 0.05),
                v3(x1 - 0.3, y1 - 0.05, 0.3),
                Mat::Solid(srgb(20, 20, 20)),
            ));
            let (c0, c1) = if facing > 0.0 {
                (x0 + 0.9, x1 - 1.3)
            } else {
                (x0 + 1.3, x1 - 0.9)
            };
            objs.push(obj_box(
                v3(c0, y0 + 0.1, ht * 0.62),
                v3(c1, y1 - 0.1, ht),
                Mat::CarGlass,
            ));
            let (front, back) = if facing > 0.0 { (x1, x0) } else { (x0, x1) };
            let on = moving && env.emit > 0.2;
            for side in [-1.0f32, 1.0] {
                let ly = y + side * (wid / 2.0 - 0.3);
                let hz = ht * 0.45;
                objs.push(obj_box(
                    v3(
                        front.min(front + facing * 0.03) - 0.02,
                        ly - 0.18,
                        hz - 0.07,
                    ),
                    v3(
                        front.max(front + facing * 0.03) + 0.02,
                        ly + 0.18,
                        hz + 0.07,
                    ),
                    Mat::HeadLight(on),
                ));
                objs.push(obj_box(
                    v3(back.min(back - facing * 0.03) - 0.02, ly - 0.15, hz - 0.05),
                    v3(back.max(back - facing * 0.03) + 0.02, ly + 0.15, hz + 0.06),
                    Mat::TailLight(on),
                ));
                if on {
                    let hp = v3(front + facing * 0.1, ly, hz);
                    lights.push(Light {
                        pos: hp,
                        col: v3(1.0, 0.95, 0.85) * 30.0,
                        r2: 40.0 * 40.0,
                        dir: v3(facing, 0.0, -0.12).norm(),
                        cone: 8,
                    });
                    glows.push(Glow {
                        pos: hp,
                        col: v3(1.0, 0.95, 0.85) * 1.3,
                        size: 0.008,
                    });
                    glows.push(Glow {
                        pos: v3(back - facing * 0.1, ly, hz),
                        col: v3(1.0, 0.05, 0.02) * 0.35,
                        size: 0.006,
                    });
                }
            }
            blobs.push(Blob {
                x0: x0 - 0.2,
                x1: x1 + 0.2,
                y0: y0 - 0.15,
                y1: y1 + 0.15,
            });
        };
        // parked cars along both kerbs
        for side in [1.0f32, -1.0] {
            let mut x = cam.x - 12.0 + rng.random_range(0.0..6.0);
            while x < cam.x + 110.0 {
                let near_cross = st.crosswalks.iter().any(|c| (c - x).abs() < 5.0);
                if rng.random::<f32>() < 0.42 && !near_cross {
                    let y = side * (st.road_half - 1.05);
                    let facing = if rng.random::<bool>() { 1.0 } else { -1.0 };
                    add_car(
                        &mut objs,
                        &mut lights,
                        &mut glows,
                        &mut blobs,
                        &mut rng,
                        x,
                        y,
                        facing,
                        false,
                    );
                }
                x += rng.random_range(5.5..9.0);
            }
        }
        // moving cars in the two lanes
        for _ in 0..rng.random_range(0..=3) {
            let oncoming = rng.random::<bool>();
            let y = if oncoming {
                st.road_half * 0.35
            } else {
                -st.road_half * 0.35
            };
            let x = cam.x + rng.random_range(9.0..90.0);
            add_car(
                &mut objs,
                &mut lights,
                &mut glows,
                &mut blobs,
                &mut rng,
                x,
                y,
                if oncoming { -1.0 } else { 1.0 },
                true,
            );
        }
        // pedestrians on the pavements
        let clothes = [
            srgb(30, 30, 35),
            srgb(200, 40, 40),
            srgb(40, 60, 120),
            srgb(220, 220, 215),
            srgb(120, 100, 70),
            srgb(60, 110, 80),
            srgb(230, 180, 40),
        ];
        for _ in 0..rng.random_range(0..=5) {
            let side = if rng.random::<bool>() { 1.0f32 } else { -1.0 };
            let plane = if side > 0.0 { st.left_y } else { -st.right_y };
            let y = side * rng.random_range(st.road_half + 0.6..plane - 0.4);
            let x = cam.x + rng.random_range(3.0..45.0);
            let s: f32 = rng.random_range(0.9..1.1);
            let top = clothes[rng.random_range(0..clothes.len())];
            let legs = clothes[rng.random_range(0..clothes.len())] * 0.6;
            objs.push(obj_cyl(x, y, 0.13 * s, 0.0, 0.85 * s, Mat::Solid(legs)));
            objs.push(obj_cyl(x, y, 0.2 * s, 0.85 * s, 1.5 * s, Mat::Solid(top)));
            objs.push(obj_sphere(
                v3(x, y, 1.63 * s),
                0.11 * s,
                Mat::Solid(srgb(190, 150, 120)),
            ));
            blobs.push(Blob {
                x0: x - 0.3,
                x1: x + 0.3,
                y0: y - 0.3,
                y1: y + 0.3,
            });
        }
        self.objs = objs;
        self.lights = lights;
        self.glows = glows;
        self.blobs = blobs;
    }

    /// Screen rectangle `[x0, y0, x1, y1]` (samples) of the part of an object's bounding box
    /// in front of the plane `zc = near_clip`, grown by [`RECT_MARGIN`]; `None` when no part
    /// of it is in front. Every ray that hits the object passes inside: hits are at `t > 0.05`
    /// m (the primitives' `tmin`) along unit rays whose cosine with the optical axis is at
    /// least `cos_min` (the image corners'), so at `zc > 0.05 · cos_min = 2 · near_clip`; the
    /// clipped box is convex, so its image is the hull of its projected vertices (box corners
    /// in front, edge crossings). A box within [`CLEARANCE_M`] of the camera gets the whole
    /// screen: the far-from-camera vertices that bound an on-screen rectangle then project
    /// with errors far below the margin.
    fn screen_rect(&self, lo: V3, hi: V3, near_clip: f32) -> Option<[f32; 4]> {
        /// Boxes nearer than this to the camera (m) are tested on every ray.
        const CLEARANCE_M: f32 = 0.5;
        let cam = &self.cam;
        let o = cam.pos;
        let near = |v: f32, l: f32, h: f32| v > l - CLEARANCE_M && v < h + CLEARANCE_M;
        if near_clip.is_nan()
            || near_clip <= 0.0
            || near(o.x, lo.x, hi.x) && near(o.y, lo.y, hi.y) && near(o.z, lo.z, hi.z)
        {
            return Some(FULL_SCREEN);
        }
        let corner = |k: usize| {
            v3(
                if k & 1 == 0 { lo.x } else { hi.x },
                if k & 2 == 0 { lo.y } else { hi.y },
                if k & 4 == 0 { lo.z } else { hi.z },
            )
        };
        let depth = |p: V3| (p - cam.pos).dot(cam.fwd);
        let (mut a, mut b, mut c, mut d) = (
            f32::INFINITY,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
        );
        let mut add = |p: V3| {
            let q = p - cam.pos;
            let zc = q.dot(cam.fwd);
            let sx = cam.w as f32 * 0.5 + cam.f_px * q.dot(cam.right) / zc;
            let sy = cam.h as f32 * 0.5 - cam.f_px * q.dot(cam.up) / zc;
            a = a.min(sx);
            b = b.min(sy);
            c = c.max(sx);
            d = d.max(sy);
        };
        let mut any = false;
        for k in 0..8 {
            let p = corner(k);
            let z = depth(p);
            if z >= near_clip {
                add(p);
                any = true;
            }
            // the three edges to the corners with one more coordinate at `hi`
            for bit in [1, 2, 4] {
                if k & bit != 0 {
                    continue;
                }
                let p2 = corner(k | bit);
                let z2 = depth(p2);
                if (z < near_clip) != (z2 < near_clip) {
                    add(p + (p2 - p) * ((near_clip - z) / (z2 - z)));
                }
            }
        }
        (any && a.is_finite() && b.is_finite() && c.is_finite() && d.is_finite()).then_some([
            a - RECT_MARGIN,
            b - RECT_MARGIN,
            c + RECT_MARGIN,
            d + RECT_MARGIN,
        ])
    }

    fn build_tiles(&mut self) {
        let (w, h) = (self.cam.w, self.cam.h);
        let tx = w.div_ceil(TILE);
        let ty = h.div_ceil(TILE);
        let mut tiles = vec![Vec::new(); tx * ty];
        let mut rects = Vec::with_capacity(self.objs.len());
        // the smallest cosine between a sample's ray and the optical axis (image corners)
        let (am, bm) = (
            w as f32 * 0.5 / self.cam.f_px,
            h as f32 * 0.5 / self.cam.f_px,
        );
        let cos_min = 1.0 / (1.0 + am * am + bm * bm).sqrt();
        let near_clip = 0.5 * 0.05 * cos_min;
        for (i, o) in self.objs.iter().enumerate() {
            // an invisible object keeps an empty rectangle (its index stays aligned)
            let r = self
                .screen_rect(o.lo, o.hi, near_clip)
                .unwrap_or([1.0, 1.0, -1.0, -1.0]);
            rects.push(r);
            let [a, b, c, d] = r;
            if c < 0.0 || d < 0.0 || a >= w as f32 || b >= h as f32 || c < a || d < b {
                continue;
            }
            let (x0, y0, x1, y1) = (
                (a.max(0.0) as usize / TILE).min(tx - 1),
                (b.max(0.0) as usize / TILE).min(ty - 1),
                (c.min(w as f32 - 1.0) as usize / TILE).min(tx - 1),
                (d.min(h as f32 - 1.0) as usize / TILE).min(ty - 1),
            );
            for yy in y0..=y1 {
                for xx in x0..=x1 {
                    tiles[yy * tx + xx].push(i as u16);
                }
            }
        }
        self.tiles = tiles;
        self.rects = rects;
        self.tiles_x = tx;
        self.tiles_y = ty;
    }

    // -----------------------------------------------------------------------------------------
    // Tracing
    // -----------------------------------------------------------------------------------------

    /// Radiance along the ray through the centre of sample (ix, iy).
    fn trace(&self, ix: usize, iy: usize) -> V3 {
        let (sx, sy) = (ix as f32 + 0.5, iy as f32 + 0.5);
        let o = self.cam.pos;
        let d = self.cam.ray(self.plane_a[ix], self.plane_b[iy]);
        let st = self.street;
        // planes, processed in order of distance
        let mut best_t = f32::INFINITY;
        // the plane hit; its surface (textures, noise) is shaded only if no object is in front
        let mut best: Option<PlaneHit> = None;
        let mut escaped_t = f32::INFINITY;
        // (t, plane): 0 ground, 1 / 2 left / right facades, 3 / 4 far / near end rows; at
        // most one of each pair is ahead. Visited by distance, ties by plane index.
        const NONE: (f32, u8) = (f32::INFINITY, 5);
        let mut cands = [NONE; 3];
        if d.z < 0.0 {
            cands[0] = (-o.z / d.z, 0);
        }
        if d.y > 0.0 {
            cands[1] = ((st.left_y - o.y) / d.y, 1);
        } else if d.y < 0.0 {
            cands[1] = ((st.right_y - o.y) / d.y, 2);
        }
        if d.x > 0.0 {
            cands[2] = ((st.far_x - o.x) / d.x, 3);
        } else if d.x < 0.0 {
            cands[2] = ((st.near_x - o.x) / d.x, 4);
        }
        let before = |a: (f32, u8), b: (f32, u8)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).is_lt();
        if before(cands[1], cands[0]) {
            cands.swap(0, 1);
        }
        if before(cands[2], cands[1]) {
            cands.swap(1, 2);
            if before(cands[1], cands[0]) {
                cands.swap(0, 1);
            }
        }
        for &(t, k) in &cands {
            if !t.is_finite() {
                break;
            }
            let p = o + d * t;
            match k {
                0 => {
                    best_t = t;
                    best = Some(PlaneHit::Ground(p));
                    break;
                }
                1 | 2 => {
                    let row = if k == 1 { &st.left } else { &st.right };
                    let first = row.buildings.first().map_or(0.0, |b| b.u0);
                    let last = row.buildings.last().map_or(0.0, |b| b.u1);
                    if p.x < first || p.x > last {
                        continue; // through a cross street
                    }
                    match row.at(p.x) {
                        Some(b) if p.z <= b.height => {
                            best_t = t;
                            let n = if k == 1 {
                                v3(0.0, -1.0, 0.0)
                            } else {
                                v3(0.0, 1.0, 0.0)
                            };
                            best = Some(PlaneHit::Facade(b, p.x, p, n));
                        }
                        _ => escaped_t = t,
                    }
                    break;
                }
                _ => {
                    let row = if k == 3 { &st.far } else { &st.near };
                    let u = p.y + 200.0;
                    match row.at(u) {
                        Some(b) if p.z <= b.height => {
                            best_t = t;
                            let n = if k == 3 {
                                v3(-1.0, 0.0, 0.0)
                            } else {
                                v3(1.0, 0.0, 0.0)
                            };
                            best = Some(PlaneHit::Facade(b, u, p, n));
                        }
                        _ => escaped_t = t,
                    }
                    break;
                }
            }
        }
        // objects
        let tile = (sy as usize / TILE).min(self.tiles_y - 1) * self.tiles_x
            + (sx as usize / TILE).min(self.tiles_x - 1);
        let mut obj_hit: Option<(f32, V3, usize)> = None;
        let limit = best_t.min(escaped_t);
        for &i in &self.tiles[tile] {
            let r = &self.rects[i as usize];
            if sx < r[0] || sx > r[2] || sy < r[1] || sy > r[3] {
                continue; // the ray passes outside the object's screen box
            }
            let ob = &self.objs[i as usize];
            let tmax = obj_hit.map_or(limit, |h| h.0);
            let hit = match ob.shape {
                Shape::Box => hit_box(o, d, ob.lo, ob.hi, 0.05),
                Shape::Cyl { cx, cy, r } => hit_cyl(o, d, cx, cy, r, ob.lo.z, ob.hi.z, 0.05),
                Shape::Sphere { c, r } => hit_sphere(o, d, c, r, 0.05),
            };
            if let Some((t, n)) = hit
                && t < tmax
            {
                obj_hit = Some((t, n, i as usize));
            }
        }
        let mut col = if let Some((t, n, i)) = obj_hit {
            let p = o + d * t;
            let s = self.object(&self.objs[i], p, n);
            best_t = t;
            self.shade(&s, d)
        } else if let Some(hit) = best {
            let s = match hit {
                PlaneHit::Ground(p) => self.ground(p),
                PlaneHit::Facade(b, u, p, n) => self.facade(b, u, p.z, p, n),
            };
            self.shade(&s, d)
        } else {
            self.env.sky(d)
        };
        // atmospheric halo around lamps and headlights
        for g in &self.glow_views {
            let tp = g.v.dot(d);
            if tp <= 0.0 || tp > best_t + 0.6 {
                continue;
            }
            let perp2 = (g.vv - tp * tp).max(0.0);
            let a2 = perp2 / (tp * tp) / g.size2;
            let k = 1.0 / (1.0 + a2);
            col = col + g.col * (k * k * 6.0 + k * 0.25);
        }
        col
    }

    fn shade(&self, s: &Surf, d: V3) -> V3 {
        let env = &self.env;
        let mut e = env.amb * s.sky_vis;
        if env.cond != Condition::Night {
            let ndl = s.n.dot(env.sun_dir);
            if ndl > 0.0 && !self.in_shadow(s.p) {
                e = e + env.sun * ndl;
            }
        }
        for &li in self.lights_near(s.p.x) {
            let l = &self.lights[li as usize];
            let v = l.pos - s.p;
            let d2 = v.dot(v);
            if d2 > l.r2 {
                continue;
            }
            let dist = d2.sqrt();
            let ldir = v * (1.0 / dist);
            let ndl = s.n.dot(ldir);
            if ndl <= 0.0 {
                continue;
            }
            let mut cone = 1.0;
            if l.cone > 0 {
                let c = (-ldir.dot(l.dir)).max(0.0);
                cone = c;
                for _ in 1..l.cone {
                    cone *= c;
                }
            }
            // smooth cut-off at the influence radius
            let fade = 1.0 - d2 / l.r2;
            e = e + l.col * (ndl * cone * fade / (d2 + 1.0));
        }
        let mut col = s.albedo.mulv(e) + s.emit;
        if s.spec > 0.0 {
            let r = (d - s.n * (2.0 * d.dot(s.n))).norm();
            col = col + self.env.sky(r) * s.spec;
        }
        col
    }

    fn in_shadow(&self, p: V3) -> bool {
        let st = self.street;
        let sd = self.env.sun_dir;
        if sd.z <= 0.0 {
            return true;
        }
        let (plane, row) = if sd.y > 1e-4 {
            (st.left_y, &st.left)
        } else if sd.y < -1e-4 {
            (st.right_y, &st.right)
        } else {
            return false;
        };
        let t = (plane - p.y) / sd.y;
        if t > 1e-3 {
            let x = p.x + sd.x * t;
            let z = p.z + sd.z * t;
            if let Some(b) = row.at(x)
                && z < b.height
            {
                return true;
            }
        }
        self.foliage.iter().any(|&(c, r)| {
            let v = c - p;
            let tp = v.dot(sd);
            tp > 0.0 && v.dot(v) - tp * tp < r * r * 0.7
        })
    }

    // -----------------------------------------------------------------------------------------
    // Materials
    // -----------------------------------------------------------------------------------------

    fn ground(&self, p: V3) -> Surf {
        let st = self.street;
        let ay = p.y.abs();
        let mut ao = 1.0;
        for b in &self.blobs {
            if p.x > b.x0 && p.x < b.x1 && p.y > b.y0 && p.y < b.y1 {
                let ex = ((p.x - b.x0).min(b.x1 - p.x) / 0.5).min(1.0);
                let ey = ((p.y - b.y0).min(b.y1 - p.y) / 0.5).min(1.0);
                ao *= 1.0 - 0.75 * ex * ey;
            }
        }
        let albedo = if ay < st.road_half {
            let n = fbm(p.x * 0.35, p.y * 0.35, st.seed, 3);
            let fine = hash01((p.x * 40.0) as i32, (p.y * 40.0) as i32, st.seed);
            let mut a = st.asphalt * (0.8 + 0.35 * n + 0.08 * fine);
            // paint wear, looked up only on markings
            let wear = || 0.55 + 0.45 * value_noise(p.x * 2.0, p.y * 2.0, st.seed ^ 5);
            if ay < 0.08 && p.x.rem_euclid(8.0) < 3.5 {
                a = a.lerp(st.centre_line, 0.85 * wear());
            } else if (ay - (st.road_half - 0.35)).abs() < 0.07 {
                a = a.lerp(srgb(230, 230, 228), 0.8 * wear());
            }
            for &c in &st.crosswalks {
                if (p.x - c).abs() < 2.0
                    && ay < st.road_half - 0.5
                    && (p.y + 20.0).rem_euclid(0.9) < 0.45
                {
                    a = a.lerp(srgb(235, 235, 232), 0.85 * wear());
                }
            }
            a
        } else if ay < st.road_half + 0.22 {
            srgb(175, 172, 165) * (0.9 + 0.1 * value_noise(p.x, 0.0, st.seed))
        } else {
            let (tx, ty) = (floorf(p.x / 0.4), floorf(p.y / 0.4));
            let grout = (p.x - tx * 0.4).min(p.y - ty * 0.4) < 0.015;
            let v = hash01(tx as i32, ty as i32, st.seed ^ 77);
            let stain = fbm(p.x * 0.3, p.y * 0.3, st.seed ^ 3, 2);
            let a = st.pavement * (0.86 + 0.14 * v) * (0.8 + 0.3 * stain);
            if grout { a * 0.7 } else { a }
        };
        // ambient occlusion at the foot of the facades
        let plane_d = if p.y > 0.0 {
            st.left_y - p.y
        } else {
            p.y - st.right_y
        };
        let foot = 0.55 + 0.45 * (plane_d / 2.0).min(1.0);
        Surf {
            p,
            n: v3(0.0, 0.0, 1.0),
            albedo: albedo * ao,
            emit: V3::default(),
            spec: 0.0,
            sky_vis: 0.55 * foot * ao,
        }
    }

    fn facade(&self, b: &Building, u: f32, z: f32, p: V3, n: V3) -> Surf {
        let lu = u - b.u0;
        let w = b.u1 - b.u0;
        let vis = 0.4 + 0.3 * (z / 20.0).min(1.0);
        let mut s = Surf {
            p,
            n,
            albedo: b.albedo,
            emit: V3::default(),
            spec: 0.0,
            sky_vis: vis,
        };
        // party-wall seam between buildings
        if lu < 0.12 || w - lu < 0.12 {
            s.albedo = b.albedo * 0.6;
            return s;
        }
        if z > b.height - 0.6 {
            s.albedo = b.trim * (0.9 + 0.1 * value_noise(lu * 2.0, z * 2.0, b.id));
            return s;
        }
        // the textured wall (`wall_texture`) is built only where no window, frame, trim, sign or
        // door covers it
        let cw = w / b.cols as f32;
        let col = (floorf(lu / cw) as u32).min(b.cols - 1);
        let cu = lu - (col as f32 + 0.5) * cw;
        if z < b.ground_h {
            return self.ground_floor(b, lu, z, col, cu, cw, s);
        }
        let zf_total = z - b.ground_h;
        let floor = floorf(zf_total / b.floor_h);
        let zf = zf_total - floor * b.floor_h;
        if floor == 0.0 && zf < 0.25 || b.cornices && zf < 0.16 {
            s.albedo = b.trim;
            return s;
        }
        let floor = floor as u32;
        if b.wall == Wall::Glass {
            // curtain wall: glass everywhere but a mullion grid
            let mu = (lu / (cw * 0.5)).fract() * cw * 0.5;
            if mu < 0.07 || zf < 0.3 {
                s.albedo = b.frame;
                return s;
            }
            return self.window_glass(
                b,
                col * 2 + (lu / (cw * 0.5)) as u32 % 2,
                floor,
                mu / (cw * 0.5),
                (zf - 0.3) / (b.floor_h - 0.3),
                s,
            );
        }
        let hw = cw * b.win_w * 0.5;
        let wz0 = b.floor_h * 0.28;
        let wh = b.floor_h * b.win_h;
        if cu.abs() < hw && zf > wz0 && zf < wz0 + wh {
            let fr = 0.07;
            if hw - cu.abs() < fr || zf - wz0 < fr || wz0 + wh - zf < fr || cu.abs() < 0.035 {
                s.albedo = b.frame;
                return s;
            }
            return self.window_glass(b, col, floor, (cu + hw) / (2.0 * hw), (zf - wz0) / wh, s);
        }
        // sill under the window
        if cu.abs() < hw + 0.08 && zf > wz0 - 0.1 && zf <= wz0 {
            s.albedo = b.trim;
            return s;
        }
        s.albedo = wall_texture(b, lu, z);
        s
    }

    /// Glass of window (`col`, `floor`) at window coordinates (wu, wv) ∈ [0,1]².
    fn window_glass(
        &self,
        b: &Building,
        col: u32,
        floor: u32,
        wu: f32,
        wv: f32,
        mut s: Surf,
    ) -> Surf {
        let env = &self.env;
        let wid = col * 131 + floor;
        let curtain = hash01(wid as i32, b.id as i32, 0xC0FFEE) < b.curtain;
        let curtain_top = 1.0 - 0.6 * hash01(wid as i32, b.id as i32, 0xBEEF);
        let in_curtain = curtain && wv > 1.0 - curtain_top * 0.6;
        if in_curtain {
            s.albedo = srgb(190, 180, 160) * (0.7 + 0.3 * value_noise(wu * 6.0, 0.0, wid));
            s.spec = 0.1;
        } else {
            let interior = 0.5 + 0.5 * value_noise(wu * 3.0, wv * 3.0, wid ^ b.id);
            s.albedo = b.glass * (0.35 * interior);
            s.spec = 0.26;
        }
        if env.emit > 0.2 {
            let p = (b.night_activity * env.window_scale).min(0.95);
            if on_tonight(env.night_seed, b.id, wid, p) {
                let kind = hash01(wid as i32, b.id as i32, env.night_seed ^ 0xA5);
                let tint = if kind < 0.6 {
                    v3(1.0, 0.72, 0.42)
                } else if kind < 0.9 {
                    v3(0.85, 0.92, 1.0)
                } else {
                    v3(0.45, 0.6, 1.0)
                };
                let level = 0.4 + 0.8 * hash01(wid as i32, 3, env.night_seed ^ b.id);
                // furniture silhouettes and a brighter ceiling
                let inner = 0.55 + 0.45 * wv + 0.2 * (value_noise(wu * 4.0, wv * 2.0, wid) - 0.5);
                let k = if in_curtain { 0.55 } else { 1.0 };
                s.emit = tint * (level * inner * k * 1.1 * env.emit);
            }
        }
        s
    }

    #[allow(clippy::too_many_arguments)]
    fn ground_floor(
        &self,
        b: &Building,
        lu: f32,
        z: f32,
        col: u32,
        cu: f32,
        cw: f32,
        mut s: Surf,
    ) -> Surf {
        let env = &self.env;
        let w = b.u1 - b.u0;
        if let Some(shop) = &b.shop {
            let sign_top = b.ground_h - 0.12;
            let sign_bot = sign_top - shop.sign_h;
            let lit = env.emit > 0.2 && on_tonight(env.night_seed, b.id, 11, env.sign_lit_p);
            let open = on_tonight(env.night_seed, b.id, 3, env.shop_open_p);
            if z >= sign_bot && z <= sign_top && lu > 0.25 && lu < w - 0.25 {
                let margin = w * (0.08 + 0.2 * hash01(shop.glyph_seed as i32, 1, 5));
                let v = (z - sign_bot) / shop.sign_h;
                let cell = shop.sign_h * 0.75;
                let is_glyph = lu > margin
                    && lu < w - margin
                    && v > 0.15
                    && v < 0.85
                    && glyph(lu - margin, (v - 0.15) / 0.7, cell, shop.glyph_seed);
                s.albedo = if is_glyph { shop.glyph } else { shop.sign };
                s.spec = 0.05;
                if lit {
                    s.emit = if is_glyph {
                        shop.glyph * 2.2 + v3(0.3, 0.3, 0.3)
                    } else {
                        shop.sign * 1.4
                    } * env.emit;
                }
                return s;
            }
            if z > 0.35 && z < sign_bot - 0.2 && lu > 0.4 && lu < w - 0.4 {
                let m = (lu - 0.4).rem_euclid(shop.mullion_m);
                if m < 0.09 || z < 0.45 || (z - 2.3).abs() < 0.04 {
                    s.albedo = b.frame * 0.8;
                    return s;
                }
                let shelf = value_noise(lu * 1.5, z * 4.0, shop.glyph_seed);
                // glass: almost no diffuse reflection, some sky reflection, the interior shows
                s.albedo = shop.interior * (0.03 + 0.05 * shelf);
                s.spec = 0.12;
                let k = if env.emit > 0.2 {
                    if open {
                        env.emit * 0.55
                    } else {
                        0.02 * env.emit
                    }
                } else {
                    env.emit * 0.4
                };
                s.emit = shop.interior * ((0.3 + 0.7 * shelf) * k);
                return s;
            }
            s.albedo = wall_texture(b, lu, z) * 0.8;
            return s;
        }
        // residential ground floor: a door and windows
        if col == b.door_col && cu.abs() < 0.6 && z < 2.4 {
            if cu.abs() > 0.5 || z > 2.3 {
                s.albedo = b.trim;
            } else {
                s.albedo = srgb(90, 60, 40) * (0.7 + 0.3 * value_noise(cu * 8.0, z, b.id));
                if env.emit > 0.2 && z > 1.9 {
                    s.emit = v3(1.0, 0.75, 0.45) * (0.5 * env.emit);
                }
            }
            return s;
        }
        let hw = cw * b.win_w * 0.5;
        if cu.abs() < hw && z > 1.0 && z < 2.6 {
            if hw - cu.abs() < 0.07 || !(1.07..=2.53).contains(&z) {
                s.albedo = b.frame;
                return s;
            }
            return self.window_glass(b, col, 999, (cu + hw) / (2.0 * hw), (z - 1.0) / 1.6, s);
        }
        s.albedo = wall_texture(b, lu, z);
        if z < 0.5 {
            s.albedo = s.albedo * 0.75;
        }
        s
    }

    fn object(&self, o: &Obj, p: V3, n: V3) -> Surf {
        let env = &self.env;
        let mut s = Surf {
            p,
            n,
            albedo: v3(0.3, 0.3, 0.3),
            emit: V3::default(),
            spec: 0.0,
            sky_vis: 0.7,
        };
        match o.mat {
            Mat::Solid(a) => s.albedo = a,
            Mat::Glossy(a) => {
                s.albedo = a;
                s.spec = 0.08;
            }
            Mat::Foliage(a, seed) => {
                let q = p * 2.2;
                let n1 = fbm(q.x + q.z, q.y - q.z * 0.7, seed, 3);
                let n2 = value_noise(q.x * 2.0 + 11.0, q.z * 2.0, seed ^ 9);
                s.n = (n + v3(n1 - 0.5, n2 - 0.5, n1 - n2) * 1.6).norm();
                s.albedo = a * (0.45 + 0.8 * n1);
                s.sky_vis = 0.45 + 0.35 * n1;
            }
            Mat::LampHead => {
                s.albedo = srgb(220, 220, 215);
                if env.lamps_on {
                    s.emit = env.lamp_col * (14.0 * env.lamp_int * env.emit);
                }
            }
            Mat::CarGlass => {
                s.albedo = srgb(20, 24, 28);
                s.spec = 0.3;
            }
            Mat::HeadLight(on) => {
                s.albedo = srgb(225, 225, 220);
                if on {
                    s.emit = v3(1.0, 0.95, 0.85) * 14.0;
                }
            }
            Mat::TailLight(on) => {
                s.albedo = srgb(150, 20, 20);
                if on {
                    s.emit = v3(1.0, 0.04, 0.02) * 4.0;
                }
            }
            Mat::Awning(a, b) => {
                let stripe = (p.x * 2.0).rem_euclid(2.0) < 1.0;
                s.albedo = if stripe { a } else { b };
                if n.z < -0.5 {
                    s.albedo = s.albedo * 0.5;
                }
            }
            Mat::Blade {
                colour,
                glyph: gcol,
                seed,
                lit,
            } => {
                let (lo, hi) = (o.lo, o.hi);
                let face = n.x.abs() > 0.5;
                let mut a = colour;
                let mut is_glyph = false;
                if face {
                    let v = (p.y - lo.y) / (hi.y - lo.y);
                    let hz = p.z - lo.z;
                    if v > 0.15 && v < 0.85 && hz > 0.2 && hz < hi.z - lo.z - 0.2 {
                        // vertical text: glyph cells stacked along z
                        is_glyph = glyph(hz - 0.2, (v - 0.15) / 0.7, (hi.y - lo.y) * 0.7, seed);
                        if is_glyph {
                            a = gcol;
                        }
                    }
                }
                s.albedo = a;
                if lit {
                    s.emit = if is_glyph {
                        gcol * 2.4 + v3(0.3, 0.3, 0.3)
                    } else {
                        colour * 1.5
                    } * env.emit;
                }
            }
        }
        s
    }
}

/// Where a ray meets the ground or a facade (the surface is built only if it is seen).
#[derive(Clone, Copy)]
enum PlaneHit<'b> {
    Ground(V3),
    /// Building, facade coordinate `u`, point, normal.
    Facade(&'b Building, f32, V3, V3),
}

/// A surface point to shade.
#[derive(Debug, Clone, Copy)]
struct Surf {
    p: V3,
    n: V3,
    albedo: V3,
    emit: V3,
    /// Fraction of mirror reflection of the sky.
    spec: f32,
    /// Fraction of the sky dome seen.
    sky_vis: f32,
}

/// Blocky glyphs on signs: cells of width `cell` along `u`; `v` ∈ [0,1] across the text line.
fn glyph(u: f32, v: f32, cell: f32, seed: u32) -> bool {
    let ci = floorf(u / cell);
    let cu = u / cell - ci;
    let h = hash3(ci as i32, 17, seed);
    if h & 7 == 0 || !(0.12..0.88).contains(&cu) {
        return false; // a space, or the gap between characters
    }
    let gx = floorf(((cu - 0.12) / 0.76) * 3.0) as u32;
    let gy = (floorf(v * 5.0) as u32).min(4);
    (h >> (3 + gy * 3 + gx.min(2))) & 1 == 1
}

/// The bare wall of a building at facade coordinates (lu, z), before windows.
fn wall_texture(b: &Building, lu: f32, z: f32) -> V3 {
    let a = b.albedo;
    match b.wall {
        Wall::Brick => {
            let row = floorf(z / 0.075);
            let off = if row as i32 % 2 == 0 { 0.0 } else { 0.125 };
            let bx = floorf((lu + off) / 0.25);
            let mortar = (z - row * 0.075) < 0.012 || (lu + off - bx * 0.25) < 0.012;
            if mortar {
                srgb(170, 165, 155) * 0.8
            } else {
                let v = hash01(bx as i32, row as i32, b.id);
                a * (0.8 + 0.35 * v) * (0.85 + 0.2 * value_noise(lu * 0.4, z * 0.4, b.id))
            }
        }
        Wall::Plaster => {
            let stain = fbm(lu * 0.35, z * 0.35, b.id, 3);
            let streak = value_noise(lu * 3.0, z * 0.15, b.id ^ 21);
            a * (0.82 + 0.22 * stain) * (1.0 - 0.12 * streak * streak)
        }
        Wall::Concrete => {
            let panel =
                (lu.rem_euclid(1.8) < 0.025) || ((z - b.ground_h).rem_euclid(b.floor_h) < 0.03);
            let n = fbm(lu * 0.8, z * 0.8, b.id, 3);
            let a = a * (0.85 + 0.25 * n);
            if panel { a * 0.65 } else { a }
        }
        Wall::Tile => {
            let (tx, ty) = (floorf(lu / 0.22), floorf(z / 0.11));
            if lu - tx * 0.22 < 0.012 || z - ty * 0.11 < 0.012 {
                srgb(200, 198, 192) * 0.85
            } else {
                a * (0.9 + 0.18 * hash01(tx as i32, ty as i32, b.id))
            }
        }
        Wall::Glass => a * 0.5,
        Wall::Siding => {
            let board = (z / 0.2).fract();
            let n = value_noise(lu * 0.5, z * 0.5, b.id);
            a * (0.85 + 0.15 * n) * if board < 0.12 { 0.7 } else { 1.0 }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Camera response
// ---------------------------------------------------------------------------------------------

/// Separable box blur of radius `r` (edge-clamped), `passes` times.
fn box_blur(img: &mut [V3], w: usize, h: usize, r: usize, passes: usize) {
    if r == 0 {
        return;
    }
    let mut tmp = vec![V3::default(); img.len()];
    let norm = 1.0 / (2 * r + 1) as f32;
    for _ in 0..passes {
        for y in 0..h {
            let row = &img[y * w..(y + 1) * w];
            let mut acc = V3::default();
            for k in 0..=2 * r {
                acc = acc + row[(k as isize - r as isize).clamp(0, w as isize - 1) as usize];
            }
            for x in 0..w {
                tmp[y * w + x] = acc * norm;
                let out = (x as isize - r as isize).clamp(0, w as isize - 1) as usize;
                let inn = (x + r + 1).min(w - 1);
                acc = acc + row[inn] - row[out];
            }
        }
        // vertical pass, row by row with one running sum per column (the same additions in
        // the same order as column by column, but along memory)
        let mut acc = vec![V3::default(); w];
        for k in 0..=2 * r {
            let row = &tmp[(k as isize - r as isize).clamp(0, h as isize - 1) as usize * w..][..w];
            for (a, &v) in acc.iter_mut().zip(row) {
                *a = *a + v;
            }
        }
        for y in 0..h {
            let out = (y as isize - r as isize).clamp(0, h as isize - 1) as usize;
            let inn = (y + r + 1).min(h - 1);
            let (row_in, row_out) = (&tmp[inn * w..][..w], &tmp[out * w..][..w]);
            let dst = &mut img[y * w..(y + 1) * w];
            for x in 0..w {
                dst[x] = acc[x] * norm;
                acc[x] = acc[x] + row_in[x] - row_out[x];
            }
        }
    }
}

/// sRGB encoding table over [0, 1] (4096 steps) for the tone-mapped signal.
fn srgb_lut() -> &'static [u8; 4096] {
    static LUT: std::sync::OnceLock<[u8; 4096]> = std::sync::OnceLock::new();
    LUT.get_or_init(|| {
        let mut t = [0u8; 4096];
        for (i, v) in t.iter_mut().enumerate() {
            let x = i as f32 / 4095.0;
            let s = if x <= 0.003_130_8 {
                12.92 * x
            } else {
                1.055 * powf(x, 1.0 / 2.4) - 0.055
            };
            *v = (s * 255.0 + 0.5).clamp(0.0, 255.0) as u8;
        }
        t
    })
}

/// ACES filmic curve (Narkowicz's fit).
fn aces(x: f32) -> f32 {
    let x = x.max(0.0);
    ((x * (2.51 * x + 0.03)) / (x * (2.43 * x + 0.59) + 0.14)).clamp(0.0, 1.0)
}

fn develop(env: &Env, mut hdr: Vec<V3>, w: usize, h: usize) -> RgbImage {
    // auto-exposure on the log-average luminance, within the camera's gain range
    let mut acc = 0.0f64;
    for c in &hdr {
        acc += ln64(1e-4 + c.luma().max(0.0) as f64);
    }
    let logavg = exp64(acc / hdr.len() as f64) as f32;
    let gain = (env.key / logavg).clamp(0.05, env.max_gain);
    let scale = env.wb * gain;
    for c in hdr.iter_mut() {
        *c = c.mulv(scale);
    }
    // bloom: blurred highlights added back (glow around lamps, signs, headlights)
    if env.bloom > 0.0 {
        let mut bright: Vec<V3> = hdr
            .iter()
            .map(|c| {
                v3(
                    (c.x - 0.9).max(0.0),
                    (c.y - 0.9).max(0.0),
                    (c.z - 0.9).max(0.0),
                )
            })
            .collect();
        let mut wide = bright.clone();
        box_blur(&mut bright, w, h, (w / 80).max(1), 3);
        box_blur(&mut wide, w, h, (w / 25).max(2), 3);
        for ((c, a), b) in hdr.iter_mut().zip(&bright).zip(&wide) {
            *c = *c + (*a * 0.6 + *b * 0.4) * env.bloom;
        }
    }
    // optical / motion blur at low light
    if env.blur > 0.0 {
        let mut bl = hdr.clone();
        box_blur(&mut bl, w, h, 1, 1);
        for (c, b) in hdr.iter_mut().zip(&bl) {
            *c = c.lerp(*b, env.blur);
        }
    }
    // veiling glare lowers contrast
    let mean = hdr.iter().fold(0.0f64, |a, c| a + c.luma().min(4.0) as f64) / hdr.len() as f64;
    let veil = v3(1.0, 1.0, 1.0) * (env.veil * mean as f32 + env.veil * 0.02);
    // sensor noise: shot + read, amplified with the gain
    let gain_k = (gain / 4.0).clamp(0.25, 3.0);
    let read = env.read_noise * gain_k;
    let mut img = RgbImage::new(w as u32, h as u32);
    let lut = srgb_lut();
    let (cx, cy) = (w as f32 * 0.5, h as f32 * 0.5);
    let r2max = cx * cx + cy * cy;
    for (i, px) in img.pixels_mut().enumerate() {
        let (x, y) = ((i % w) as f32, (i / w) as f32);
        let r2 = ((x - cx) * (x - cx) + (y - cy) * (y - cy)) / r2max;
        let vig = 1.0 - 0.28 * r2;
        let c = (hdr[i] + veil) * vig;
        let hsh = splitmix64(env.noise_seed ^ (i as u64).wrapping_mul(0x9E37_79B9));
        let lum_n = gauss4(hsh);
        let mut out = [0u8; 3];
        for (k, v) in [c.x, c.y, c.z].into_iter().enumerate() {
            let sigma = (env.shot_noise * gain_k * v.max(0.0) + read * read).sqrt();
            let chroma = gauss4(splitmix64(hsh.wrapping_add(k as u64 + 1)));
            let noisy = v + sigma * (0.6 * lum_n + 0.8 * chroma);
            let t = aces(noisy);
            out[k] = lut[(t * 4095.0 + 0.5) as usize];
        }
        *px = image::Rgb(out);
    }
    img
}

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

/// Seed of one capture: the viewpoint and the condition (and the role, so that the night of a
/// night query differs from the night of a GAN image of the same place).
pub(crate) fn capture_seed(world: &World, vp: &Viewpoint, cond: Condition) -> u64 {
    seed_of(&[
        world.cfg.seed,
        4,
        vp.place as u64,
        vp.role as u64 + 100,
        vp.index as u64,
        cond.code(),
    ])
}

/// Renders a viewpoint under a condition at the world's resolution.
pub(crate) fn render_viewpoint(world: &World, vp: &Viewpoint, cond: Condition) -> RgbImage {
    let cfg = &world.cfg;
    let (w, h, ss) = (
        cfg.width as usize,
        cfg.height as usize,
        cfg.supersample as usize,
    );
    let scene = Scene::new(
        world,
        vp,
        cond,
        capture_seed(world, vp, cond),
        w * ss,
        h * ss,
    );
    let inv = 1.0 / (ss * ss) as f32;
    let mut hdr = vec![V3::default(); w * h];
    hdr.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for (x, out) in row.iter_mut().enumerate() {
            let mut acc = V3::default();
            for j in 0..ss {
                for i in 0..ss {
                    acc = acc + scene.trace(x * ss + i, y * ss + j);
                }
            }
            let c = acc * inv;
            // a safety net: no sample may poison the blur passes
            let fin = |v: f32| {
                if v.is_finite() {
                    v.clamp(0.0, 1e4)
                } else {
                    0.0
                }
            };
            *out = v3(fin(c.x), fin(c.y), fin(c.z));
        }
    });
    develop(&scene.env, hdr, w, h)
}

impl World {
    /// Renders the `index`-th viewpoint of `place` for `role` under `cond`, as 8-bit sRGB.
    ///
    /// Deterministic: the same world config, place, role, index and condition give the same
    /// bytes on every run and platform (only IEEE-exact arithmetic feeds the pixels).
    pub fn render(
        &self,
        place: usize,
        role: Role,
        index: usize,
        cond: Condition,
    ) -> Result<RgbImage> {
        self.check_place(place)?;
        let vp = self.viewpoint(place, role, index)?;
        Ok(render_viewpoint(self, &vp, cond))
    }

    /// Renders an explicit viewpoint (e.g. one of [`World::viewpoint`], possibly edited).
    pub fn render_viewpoint(&self, vp: &Viewpoint, cond: Condition) -> Result<RgbImage> {
        self.check_place(vp.place)?;
        Ok(render_viewpoint(self, vp, cond))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every sample of a scene, as bits.
    fn trace_all(scene: &Scene) -> Vec<u32> {
        let mut bits = Vec::new();
        for iy in 0..scene.cam.h {
            for ix in 0..scene.cam.w {
                let c = scene.trace(ix, iy);
                bits.extend([c.x.to_bits(), c.y.to_bits(), c.z.to_bits()]);
            }
        }
        bits
    }

    /// The culling (objects by tile and screen box, lights by street bucket) skips only work
    /// whose result is discarded: every sample equals the one of a scene that intersects every
    /// object and tests every light on every ray, bit for bit.
    #[test]
    fn culling_changes_no_sample() {
        let world = World::new(&crate::WorldConfig {
            width: 128,
            height: 96,
            ..crate::WorldConfig::tiny()
        })
        .unwrap();
        let (w, h) = (128, 96);
        let mut lit = 0;
        for place in 0..world.places().len() {
            for (role, cond) in [
                (Role::Database, Condition::Day),
                (Role::Tokyo, Condition::Sunset),
                (Role::NightQuery, Condition::Night),
            ] {
                let vp = world.viewpoint(place, role, 0).unwrap();
                let seed = capture_seed(&world, &vp, cond);
                let culled = Scene::new(&world, &vp, cond, seed, w, h);
                let mut plain = Scene::new(&world, &vp, cond, seed, w, h);
                let n = plain.objs.len();
                plain.rects = vec![FULL_SCREEN; n];
                let all: Vec<u16> = (0..n as u16).collect();
                plain.tiles.iter_mut().for_each(|t| t.clone_from(&all));
                plain.light_buckets.clear(); // every point tests every light
                lit += (!plain.lights.is_empty()) as usize;
                assert_eq!(
                    trace_all(&culled),
                    trace_all(&plain),
                    "place {place}, {role:?}, {cond:?}"
                );
            }
        }
        assert!(lit >= 8, "only {lit} scenes with lights");
    }

    #[test]
    fn box_blur_preserves_a_constant_and_the_mean() {
        let (w, h) = (17, 9);
        let mut img = vec![v3(0.5, 0.25, 1.0); w * h];
        box_blur(&mut img, w, h, 2, 3);
        for c in &img {
            assert!(
                (c.x - 0.5).abs() < 1e-5 && (c.y - 0.25).abs() < 1e-5 && (c.z - 1.0).abs() < 1e-5
            );
        }
    }

    /// The column-by-column box blur this crate used before the row-major vertical pass: the
    /// same additions per column in the same order, so the results must agree bit for bit.
    fn box_blur_by_columns(img: &mut [V3], w: usize, h: usize, r: usize, passes: usize) {
        let mut tmp = vec![V3::default(); img.len()];
        let norm = 1.0 / (2 * r + 1) as f32;
        for _ in 0..passes {
            for y in 0..h {
                let row = &img[y * w..(y + 1) * w];
                let mut acc = V3::default();
                for k in 0..=2 * r {
                    acc = acc + row[(k as isize - r as isize).clamp(0, w as isize - 1) as usize];
                }
                for x in 0..w {
                    tmp[y * w + x] = acc * norm;
                    let out = (x as isize - r as isize).clamp(0, w as isize - 1) as usize;
                    let inn = (x + r + 1).min(w - 1);
                    acc = acc + row[inn] - row[out];
                }
            }
            for x in 0..w {
                let mut acc = V3::default();
                for k in 0..=2 * r {
                    acc = acc
                        + tmp[(k as isize - r as isize).clamp(0, h as isize - 1) as usize * w + x];
                }
                for y in 0..h {
                    img[y * w + x] = acc * norm;
                    let out = (y as isize - r as isize).clamp(0, h as isize - 1) as usize;
                    let inn = (y + r + 1).min(h - 1);
                    acc = acc + tmp[inn * w + x] - tmp[out * w + x];
                }
            }
        }
    }

    #[test]
    fn row_major_box_blur_is_bit_identical_to_the_column_blur() {
        let mut h = 5u64;
        for (w, ht, r, passes) in [
            (17, 9, 2, 3),
            (40, 30, 1, 1),
            (64, 48, 12, 3),
            (5, 31, 4, 2),
        ] {
            let img: Vec<V3> = (0..w * ht)
                .map(|_| {
                    h = splitmix64(h);
                    let u = |k: u32| ((h >> (16 * k)) & 0xFFFF) as f32 / 6553.6;
                    v3(u(0), u(1) * u(1), u(2) - 3.0)
                })
                .collect();
            let (mut a, mut b) = (img.clone(), img);
            box_blur(&mut a, w, ht, r, passes);
            box_blur_by_columns(&mut b, w, ht, r, passes);
            let bits = |v: &[V3]| -> Vec<u32> {
                v.iter()
                    .flat_map(|c| [c.x.to_bits(), c.y.to_bits(), c.z.to_bits()])
                    .collect()
            };
            assert_eq!(bits(&a), bits(&b), "{w}×{ht}, r = {r}, {passes} passes");
        }
    }

    #[test]
    fn aces_and_lut_are_monotone() {
        let lut = srgb_lut();
        assert_eq!((lut[0], lut[4095]), (0, 255));
        assert!(lut.windows(2).all(|p| p[0] <= p[1]));
        let mut prev = -1.0;
        for i in 0..100 {
            let y = aces(i as f32 * 0.1);
            assert!(y >= prev);
            prev = y;
        }
    }
}
