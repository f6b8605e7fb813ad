//! Small 3-vector and ray–primitive intersections (street-local frame: x along the street,
//! y to the left, z up, metres).

use std::ops::{Add, Mul, Neg, Sub};

/// A 3-vector of f32.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct V3 {
    pub x: f32,
    pub y: f32,
    pub z: f32,
}

pub(crate) const fn v3(x: f32, y: f32, z: f32) -> V3 {
    V3 { x, y, z }
}

impl V3 {
    pub fn dot(self, o: V3) -> f32 {
        self.x * o.x + self.y * o.y + self.z * o.z
    }
    pub fn cross(self, o: V3) -> V3 {
        v3(
            self.y * o.z - self.z * o.y,
            self.z * o.x - self.x * o.z,
            self.x * o.y - self.y * o.x,
        )
    }
    pub fn len(self) -> f32 {
        self.dot(self).sqrt()
    }
    pub fn norm(self) -> V3 {
        let l = self.len();
        if l > 0.0 { self * (1.0 / l) } else { self }
    }
    pub fn mulv(self, o: V3) -> V3 {
        v3(self.x * o.x, self.y * o.y, self.z * o.z)
    }
    pub fn lerp(self, o: V3, t: f32) -> V3 {
        self + (o - self) * t
    }
    pub fn luma(self) -> f32 {
        0.2126 * self.x + 0.7152 * self.y + 0.0722 * self.z
    }
}

impl Add for V3 {
    type Output = V3;
    fn add(self, o: V3) -> V3 {
        v3(self.x + o.x, self.y + o.y, self.z + o.z)
    }
}
impl Sub for V3 {
    type Output = V3;
    fn sub(self, o: V3) -> V3 {
        v3(self.x - o.x, self.y - o.y, self.z - o.z)
    }
}
impl Mul<f32> for V3 {
    type Output = V3;
    fn mul(self, s: f32) -> V3 {
        v3(self.x * s, self.y * s, self.z * s)
    }
}
impl Neg for V3 {
    type Output = V3;
    fn neg(self) -> V3 {
        v3(-self.x, -self.y, -self.z)
    }
}

/// sRGB 8-bit colour → linear RGB (exact sRGB transfer, tabulated once with the portable `powf`).
pub(crate) fn srgb(r: u8, g: u8, b: u8) -> V3 {
    static LUT: std::sync::OnceLock<[f32; 256]> = std::sync::OnceLock::new();
    let t = LUT.get_or_init(|| {
        let mut t = [0.0f32; 256];
        for (i, v) in t.iter_mut().enumerate() {
            let c = i as f32 / 255.0;
            *v = if c <= 0.04045 {
                c / 12.92
            } else {
                crate::detmath::powf((c + 0.055) / 1.055, 2.4)
            };
        }
        t
    });
    v3(t[r as usize], t[g as usize], t[b as usize])
}

/// Ray / axis-aligned box, returning (t, outward normal) of the first hit with t > tmin.
pub(crate) fn hit_box(o: V3, d: V3, lo: V3, hi: V3, tmin: f32) -> Option<(f32, V3)> {
    let mut t0 = tmin;
    let mut t1 = f32::INFINITY;
    let mut n = V3::default();
    let axes = [
        (o.x, d.x, lo.x, hi.x),
        (o.y, d.y, lo.y, hi.y),
        (o.z, d.z, lo.z, hi.z),
    ];
    for (i, &(oo, dd, l, h)) in axes.iter().enumerate() {
        if dd.abs() < 1e-12 {
            if oo < l || oo > h {
                return None;
            }
            continue;
        }
        let inv = 1.0 / dd;
        let (mut ta, mut tb) = ((l - oo) * inv, (h - oo) * inv);
        let mut sign = -1.0;
        if ta > tb {
            std::mem::swap(&mut ta, &mut tb);
            sign = 1.0;
        }
        if ta > t0 {
            t0 = ta;
            n = match i {
                0 => v3(sign, 0.0, 0.0),
                1 => v3(0.0, sign, 0.0),
                _ => v3(0.0, 0.0, sign),
            };
        }
        t1 = t1.min(tb);
        if t0 > t1 {
            return None;
        }
    }
    if n == V3::default() {
        return None; // origin inside the box
    }
    Some((t0, n))
}

/// Ray / vertical cylinder (axis along z through (cx, cy), radius r, z0..z1), side surface only.
#[allow(clippy::too_many_arguments)]
pub(crate) fn hit_cyl(
    o: V3,
    d: V3,
    cx: f32,
    cy: f32,
    r: f32,
    z0: f32,
    z1: f32,
    tmin: f32,
) -> Option<(f32, V3)> {
    let (ox, oy) = (o.x - cx, o.y - cy);
    let a = d.x * d.x + d.y * d.y;
    if a < 1e-12 {
        return None;
    }
    // closest approach first (numerically stable far from the axis)
    let tc = -(ox * d.x + oy * d.y) / a;
    let (px, py) = (ox + tc * d.x, oy + tc * d.y);
    let h2 = r * r - (px * px + py * py);
    if h2 < 0.0 {
        return None;
    }
    let t = tc - (h2 / a).sqrt();
    if t <= tmin {
        return None;
    }
    let z = o.z + t * d.z;
    if z < z0 || z > z1 {
        return None;
    }
    let n = v3(ox + t * d.x, oy + t * d.y, 0.0).norm();
    Some((t, n))
}

/// Ray / sphere, first hit with t > tmin.
pub(crate) fn hit_sphere(o: V3, d: V3, c: V3, r: f32, tmin: f32) -> Option<(f32, V3)> {
    let oc = o - c;
    let tc = -oc.dot(d);
    let q = oc + d * tc;
    let h2 = r * r - q.dot(q);
    if h2 < 0.0 {
        return None;
    }
    let t = tc - h2.sqrt();
    if t <= tmin {
        return None;
    }
    Some((t, (oc + d * t).norm()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_hit_where_closed_form_says() {
        let o = v3(0.0, 0.0, 1.0);
        let d = v3(1.0, 0.0, 0.0);
        let (t, n) = hit_box(o, d, v3(5.0, -1.0, 0.0), v3(6.0, 1.0, 2.0), 0.0).unwrap();
        assert_eq!((t, n), (5.0, v3(-1.0, 0.0, 0.0)));
        let (t, n) = hit_cyl(o, d, 10.0, 0.0, 0.5, 0.0, 3.0, 0.0).unwrap();
        assert_eq!((t, n), (9.5, v3(-1.0, 0.0, 0.0)));
        let (t, _) = hit_sphere(o, d, v3(4.0, 0.0, 1.0), 1.0, 0.0).unwrap();
        assert_eq!(t, 3.0);
        assert!(hit_sphere(o, d, v3(4.0, 3.0, 1.0), 1.0, 0.0).is_none());
        assert!(hit_cyl(o, d, 10.0, 0.0, 0.5, 2.0, 3.0, 0.0).is_none());
    }
}
