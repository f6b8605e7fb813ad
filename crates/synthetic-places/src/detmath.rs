//! Portable, deterministic arithmetic: hashing, value noise and the few transcendental functions
//! the renderer needs, written with `+ - * /`, `floor` and `sqrt` only (all exactly rounded by
//! IEEE 754), so images are byte-identical on every platform and libm.

use std::f64::consts::{LN_2, PI};

/// SplitMix64 finaliser: a bijective 64-bit mixer.
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Folds a list of integers into one seed (order matters).
pub(crate) fn seed_of(parts: &[u64]) -> u64 {
    parts.iter().fold(0x005E_ED0F_5EA5_u64, |acc, &p| {
        splitmix64(acc ^ splitmix64(p))
    })
}

const HASH_X: u32 = 0x8DA6_B343;
const HASH_Y: u32 = 0xD816_3841;
const HASH_S: u32 = 0xCB1A_B31F;

/// A 32-bit integer hash of a lattice point and a seed.
#[inline]
pub(crate) fn hash3(x: i32, y: i32, s: u32) -> u32 {
    hash_mix(
        (x as u32).wrapping_mul(HASH_X) ^ (y as u32).wrapping_mul(HASH_Y) ^ s.wrapping_mul(HASH_S),
    )
}

/// The finaliser of [`hash3`].
#[inline(always)]
fn hash_mix(mut h: u32) -> u32 {
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^= h >> 12;
    h = h.wrapping_mul(0x297A_2D39);
    h ^= h >> 15;
    h
}

/// [`hash3`] mapped to `[0, 1)`.
#[inline]
pub(crate) fn hash01(x: i32, y: i32, s: u32) -> f32 {
    unit(hash3(x, y, s))
}

#[inline(always)]
fn unit(h: u32) -> f32 {
    (h >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// `x.floor()`, bit for bit (sign of zero, NaN and huge values included), but inlined: on
/// baseline x86-64 `f32::floor` is a call into libm, and the noise functions floor twice per
/// lookup.
#[inline]
pub(crate) fn floor(x: f32) -> f32 {
    if x.abs() < 8_388_608.0 {
        // |x| < 2^23: the truncation fits an i32 and t - 1 is exact
        let t = x as i32 as f32;
        (if t > x { t - 1.0 } else { t }).copysign(x)
    } else {
        x.floor() // already an integer, or NaN
    }
}

/// Smooth 2-D value noise in `[0, 1]`.
#[inline]
pub(crate) fn value_noise(x: f32, y: f32, s: u32) -> f32 {
    let xf = floor(x);
    let yf = floor(y);
    let (ix, iy) = (xf as i32, yf as i32);
    let (fx, fy) = (x - xf, y - yf);
    let ux = fx * fx * (3.0 - 2.0 * fx);
    let uy = fy * fy * (3.0 - 2.0 * fy);
    // hash01 of the four corners, sharing the products ((ix + 1)·X = ix·X + X, wrapping)
    let hs = s.wrapping_mul(HASH_S);
    let x0 = (ix as u32).wrapping_mul(HASH_X);
    let x1 = x0.wrapping_add(HASH_X);
    let y0 = (iy as u32).wrapping_mul(HASH_Y) ^ hs;
    let y1 = (iy as u32).wrapping_add(1).wrapping_mul(HASH_Y) ^ hs;
    let a = unit(hash_mix(x0 ^ y0));
    let b = unit(hash_mix(x1 ^ y0));
    let c = unit(hash_mix(x0 ^ y1));
    let d = unit(hash_mix(x1 ^ y1));
    let top = a + (b - a) * ux;
    let bottom = c + (d - c) * ux;
    top + (bottom - top) * uy
}

/// Fractal sum of `octaves` value-noise layers, normalised to `[0, 1]`.
#[inline]
pub(crate) fn fbm(x: f32, y: f32, s: u32, octaves: u32) -> f32 {
    let (mut sum, mut amp, mut norm, mut f) = (0.0, 0.5, 0.0, 1.0);
    for o in 0..octaves {
        sum += amp * value_noise(x * f, y * f, s.wrapping_add(o * 1013));
        norm += amp;
        amp *= 0.5;
        f *= 2.03;
    }
    sum / norm
}

/// `sin(x)` by range reduction and a degree-13 Taylor polynomial (|error| < 1e-9 in f64).
pub(crate) fn sin64(x: f64) -> f64 {
    let k = (x / (2.0 * PI)).round();
    let mut r = x - k * 2.0 * PI;
    if r > PI / 2.0 {
        r = PI - r;
    } else if r < -PI / 2.0 {
        r = -PI - r;
    }
    let r2 = r * r;
    let mut term = r;
    let mut sum = r;
    for n in 1..8 {
        term *= -r2 / ((2 * n) as f64 * (2 * n + 1) as f64);
        sum += term;
    }
    sum
}

/// `cos(x)`.
pub(crate) fn cos64(x: f64) -> f64 {
    sin64(x + PI / 2.0)
}

/// `sin` of an angle in degrees, as f32.
pub(crate) fn sind(deg: f32) -> f32 {
    sin64(deg as f64 * PI / 180.0) as f32
}

/// `cos` of an angle in degrees, as f32.
pub(crate) fn cosd(deg: f32) -> f32 {
    cos64(deg as f64 * PI / 180.0) as f32
}

/// `tan` of an angle in degrees (|deg| < 90), as f32.
pub(crate) fn tand(deg: f32) -> f32 {
    let r = deg as f64 * PI / 180.0;
    (sin64(r) / cos64(r)) as f32
}

/// `exp(x)`: `2^k · exp(r)` with |r| ≤ ln2/2 and a Taylor series.
pub(crate) fn exp64(x: f64) -> f64 {
    if x < -700.0 {
        return 0.0;
    }
    let x = x.min(700.0);
    let k = (x / LN_2).round();
    let r = x - k * LN_2;
    let mut term = 1.0;
    let mut sum = 1.0;
    for n in 1..14 {
        term *= r / n as f64;
        sum += term;
    }
    sum * f64::from_bits(((k as i64 + 1023) as u64) << 52)
}

/// `ln(x)` for `x > 0` (returns -inf-like -745 for `x <= 0`).
pub(crate) fn ln64(x: f64) -> f64 {
    if x <= 0.0 || !x.is_finite() {
        return if x > 0.0 { f64::MAX } else { -745.0 };
    }
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7FF) as i64 - 1023;
    let mut m = f64::from_bits((bits & 0x000F_FFFF_FFFF_FFFF) | (1023u64 << 52));
    if e == -1023 {
        // subnormal: normalise through a multiplication by 2^54
        return ln64(x * f64::from_bits((1023u64 + 54) << 52)) - 54.0 * LN_2;
    }
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut term = s;
    let mut sum = s;
    for n in 1..12 {
        term *= s2;
        sum += term / (2 * n + 1) as f64;
    }
    2.0 * sum + e as f64 * LN_2
}

/// `x^y` for `x >= 0`.
pub(crate) fn powf(x: f32, y: f32) -> f32 {
    if x <= 0.0 {
        return 0.0;
    }
    exp64(y as f64 * ln64(x as f64)) as f32
}

/// Sum of four uniforms, centred and scaled to unit variance (a cheap, bounded normal deviate).
pub(crate) fn gauss4(h: u64) -> f32 {
    let u = |k: u32| ((h >> (16 * k)) & 0xFFFF) as f32 * (1.0 / 65_536.0);
    (u(0) + u(1) + u(2) + u(3) - 2.0) * 1.732_050_8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our polynomial approximations agree with the platform's libm to this relative error;
    /// far below the 1/255 quantisation of the output images.
    const REL_TOL: f64 = 1e-9;

    #[test]
    fn transcendental_functions_match_libm() {
        for i in -200..200 {
            let x = i as f64 * 0.173;
            assert!((sin64(x) - x.sin()).abs() < REL_TOL, "sin({x})");
            assert!((cos64(x) - x.cos()).abs() < REL_TOL, "cos({x})");
            let e = x * 0.3;
            assert!((exp64(e) - e.exp()).abs() <= REL_TOL * e.exp(), "exp({e})");
        }
        for i in 1..400 {
            let x = i as f64 * 0.37 * 1.07f64.powi(i % 50);
            assert!(
                (ln64(x) - x.ln()).abs() < REL_TOL * x.ln().abs().max(1.0),
                "ln({x})"
            );
        }
        let p = powf(0.5, 1.0 / 2.4) as f64;
        assert!((p - 0.5f64.powf(1.0 / 2.4)).abs() < 1e-6);
        assert_eq!(powf(0.0, 2.0), 0.0);
    }

    #[test]
    fn value_noise_is_the_bilinear_blend_of_hash01() {
        // the shared-product corner hashes are hash01 of the four lattice corners, exactly
        let reference = |x: f32, y: f32, s: u32| {
            let (xf, yf) = (x.floor(), y.floor());
            let (ix, iy) = (xf as i32, yf as i32);
            let (fx, fy) = (x - xf, y - yf);
            let ux = fx * fx * (3.0 - 2.0 * fx);
            let uy = fy * fy * (3.0 - 2.0 * fy);
            let a = hash01(ix, iy, s);
            let b = hash01(ix.wrapping_add(1), iy, s);
            let c = hash01(ix, iy.wrapping_add(1), s);
            let d = hash01(ix.wrapping_add(1), iy.wrapping_add(1), s);
            let top = a + (b - a) * ux;
            let bottom = c + (d - c) * ux;
            top + (bottom - top) * uy
        };
        let mut h = 99u64;
        for i in 0..100_000 {
            h = splitmix64(h);
            let x = (h as u32 as f32 / u32::MAX as f32 - 0.5) * 2e3 + i as f32 * 1e-3;
            let y = ((h >> 32) as u32 as f32 / u32::MAX as f32 - 0.5) * 2e3;
            let s = (h >> 13) as u32;
            assert_eq!(value_noise(x, y, s).to_bits(), reference(x, y, s).to_bits());
        }
    }

    #[test]
    fn floor_is_bit_identical_to_std() {
        let mut xs = vec![
            0.0f32,
            -0.0,
            0.5,
            -0.5,
            1.0,
            -1.0,
            -1e-40,
            1e-40,
            8_388_607.5,
            -8_388_607.5,
            8_388_608.0,
            -8_388_609.0,
            3e9,
            -3e9,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::EPSILON,
            -f32::EPSILON,
            1.0 - f32::EPSILON,
            -(1.0 - f32::EPSILON),
        ];
        let mut h = 0x1234_5678_9abc_def0u64;
        for i in 0..200_000 {
            h = splitmix64(h);
            xs.push(f32::from_bits(h as u32)); // every exponent, NaN payloads
            xs.push((i as f32 - 100_000.0) * 0.013_7);
        }
        for x in xs {
            assert_eq!(floor(x).to_bits(), x.floor().to_bits(), "floor({x:e})");
        }
    }

    #[test]
    fn noise_is_bounded_and_gauss4_has_unit_variance() {
        let mut s = 0.0f64;
        let mut s2 = 0.0f64;
        let n = 20_000;
        for i in 0..n {
            let v = value_noise(i as f32 * 0.37, i as f32 * 0.11, 7);
            assert!((0.0..=1.0).contains(&v));
            let g = gauss4(splitmix64(i as u64)) as f64;
            s += g;
            s2 += g * g;
        }
        let mean = s / n as f64;
        let var = s2 / n as f64 - mean * mean;
        // 20k samples: standard error of the mean ≈ 0.007, of the variance ≈ 0.01
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "var {var}");
    }
}
