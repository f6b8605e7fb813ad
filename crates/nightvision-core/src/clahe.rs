//! CLAHE (contrast-limited adaptive histogram equalisation) on the L channel of Lab, as OpenCV computes it.
//!
//! Dark Side Augmentation feeds every image — day images, real night images and synthetic
//! night images alike — through CLAHE before the descriptor network (docs/PAPERS.md A.5/A.6:
//! `pil2np | apply_clahe:1.0 | totensor | normalize`, and `clahepost` after the generator).
//! The reference code (`mdir`, `ApplyClahe(clip_limit=1.0, grid_size=8, colorspace=lab)`) does,
//! on a float32 RGB image in `[0, 1]`:
//!
//! 1. `cv2.cvtColor(img, COLOR_RGB2LAB)` — OpenCV's **float32** conversion (not the 8-bit one),
//!    which for sRGB is a 33³-node, 14-bit trilinear look-up table;
//! 2. `L8 = (L / 100 * 255).astype(uint8)` — quantisation by *truncation*;
//! 3. `cv2.createCLAHE(clipLimit=1.0, tileGridSize=(8, 8)).apply(L8)`;
//! 4. `L = L8' / 255 * 100`, `a`, `b` round-tripped through `/255*255` in float32;
//! 5. `cv2.cvtColor(lab, COLOR_LAB2RGB)` — OpenCV's float32 inverse (cube, clip, inverse sRGB
//!    gamma by a cubic spline), returning float32 RGB in `[0, 1]`.
//!
//! This module reproduces each step bit for bit: the look-up tables are built with the same
//! IEEE single/double operations (OpenCV builds them with its `softfloat`; its cube root is
//! ported here), CLAHE uses OpenCV's histogram clipping, residual redistribution, float LUT
//! scaling and float bilinear weights, and the image is padded with `BORDER_REFLECT_101` when
//! its size is not a multiple of the tile grid. OpenCV evaluates the float Lab→RGB conversion
//! with two different operation orders (a SIMD body for blocks of 8 pixels and a scalar tail per
//! row); both are reproduced, so the results equal OpenCV 4.6's exactly (see
//! `tests/clahe.rs` and `scripts/gen_clahe_fixtures.py`).
//!
//! ```
//! use image::{GrayImage, RgbImage};
//! use nightvision_core::clahe::{clahe_gray, clahe_lab, ClaheConfig};
//!
//! let cfg = ClaheConfig::DARK_SIDE; // clip limit 1.0, 8×8 tiles
//! let gray = GrayImage::from_fn(40, 30, |x, y| image::Luma([(x * 3 + y) as u8]));
//! let eq = clahe_gray(&gray, &cfg)?;
//! assert_eq!(eq.dimensions(), (40, 30));
//!
//! let rgb = RgbImage::from_fn(40, 30, |x, y| image::Rgb([(x * 6) as u8, (y * 8) as u8, 60]));
//! let out = clahe_lab(&rgb, &cfg)?; // float32 RGB in [0, 1], as mdir hands it to ToTensor
//! assert!(out.pixels().all(|p| p.0.iter().all(|v| (0.0..=1.0 + 1e-6).contains(v))));
//!
//! // Invalid settings are errors, not panics.
//! assert!(clahe_gray(&gray, &ClaheConfig { clip_limit: f64::NAN, tiles: (8, 8) }).is_err());
//! # Ok::<(), nightvision_core::CoreError>(())
//! ```

use std::sync::OnceLock;

use image::{GrayImage, Rgb32FImage, RgbImage};

use crate::{CoreError, Result};

/// CLAHE settings, named as `cv2.createCLAHE(clipLimit, tileGridSize)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClaheConfig {
    /// Contrast limit: a tile's histogram bins are clipped at
    /// `max(⌊clip_limit · tile_area / 256⌋, 1)` and the excess redistributed. Must be finite and > 0.
    pub clip_limit: f64,
    /// Tile grid `(columns, rows)`, i.e. OpenCV's `tileGridSize = (width, height)`. Both ≥ 1.
    pub tiles: (usize, usize),
}

impl ClaheConfig {
    /// The Dark Side Augmentation preset: clip limit 1.0, 8×8 tiles (docs/PAPERS.md A.5).
    pub const DARK_SIDE: ClaheConfig = ClaheConfig {
        clip_limit: 1.0,
        tiles: (8, 8),
    };

    /// A validated configuration.
    pub fn new(clip_limit: f64, tiles: (usize, usize)) -> Result<Self> {
        let cfg = Self { clip_limit, tiles };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks `clip_limit` (finite, > 0) and `tiles` (both ≥ 1, at most 4096).
    pub fn validate(&self) -> Result<()> {
        if !(self.clip_limit.is_finite() && self.clip_limit > 0.0) {
            return Err(CoreError::InvalidArgument {
                name: "clip_limit",
                reason: format!("must be finite and > 0, got {}", self.clip_limit),
            });
        }
        let (tx, ty) = self.tiles;
        if tx == 0 || ty == 0 || tx > 4096 || ty > 4096 {
            return Err(CoreError::InvalidArgument {
                name: "tiles",
                reason: format!("both tile counts must be in 1..=4096, got {tx}x{ty}"),
            });
        }
        Ok(())
    }
}

impl Default for ClaheConfig {
    /// [`ClaheConfig::DARK_SIDE`].
    fn default() -> Self {
        Self::DARK_SIDE
    }
}

fn check_size(width: u32, height: u32) -> Result<(usize, usize)> {
    if width == 0 || height == 0 {
        return Err(CoreError::InvalidArgument {
            name: "image",
            reason: format!("empty {width}x{height} image"),
        });
    }
    Ok((width as usize, height as usize))
}

fn check_finite(data: &[f32], name: &'static str) -> Result<()> {
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(CoreError::InvalidArgument {
            name,
            reason: format!("non-finite value {} at flat index {i}", data[i]),
        });
    }
    Ok(())
}

/// Round half to even (`cvRound`, i.e. `lrintf`) for `|v| < 2^22`, without a libm call:
/// adding 1.5·2²³ leaves the rounded integer in the low mantissa bits.
#[inline]
fn round_even(v: f32) -> i32 {
    debug_assert!(v.abs() < 4_194_304.0, "{v}");
    (v + 12_582_912.0).to_bits() as i32 - 0x4B40_0000
}

/// `cv::saturate_cast<uchar>(float)`: round half to even, then clamp (arguments here are in
/// `[0, 255]` up to rounding).
#[inline]
fn sat_u8(v: f32) -> u8 {
    round_even(v).clamp(0, 255) as u8
}

/// `cv::borderInterpolate(p, len, BORDER_REFLECT_101)` for `p >= 0`.
fn reflect101(mut p: isize, len: isize) -> usize {
    if len == 1 {
        return 0;
    }
    while p < 0 || p >= len {
        if p < 0 {
            p = -p;
        } else {
            p = 2 * (len - 1) - p;
        }
    }
    p as usize
}

// ------------------------------------------------------------------------------------------
// CLAHE on one 8-bit plane (modules/imgproc/src/clahe.cpp, CPU path).
// ------------------------------------------------------------------------------------------

/// Buffers of one CLAHE run (allocated once per image, never per pixel).
struct ClaheWork {
    padded: Vec<u8>,
    /// One 256-entry LUT per tile, row-major over the tile grid.
    luts: Vec<[u8; 256]>,
    /// Column runs sharing the same pair of tile columns: `(start, end, left tile, right tile)`.
    spans: Vec<(usize, usize, usize, usize)>,
    xa: Vec<f32>,
    xa1: Vec<f32>,
}

fn clahe_plane(src: &[u8], w: usize, h: usize, cfg: &ClaheConfig, dst: &mut [u8]) {
    let (tiles_x, tiles_y) = cfg.tiles;
    let mut work = ClaheWork {
        padded: Vec::new(),
        luts: vec![[0u8; 256]; tiles_x * tiles_y],
        spans: Vec::new(),
        xa: Vec::with_capacity(w),
        xa1: Vec::with_capacity(w),
    };

    // Not divisible: OpenCV pads right by tilesX - w % tilesX and bottom by tilesY - h % tilesY
    // (a full extra tile row/column when only the other side is not divisible), REFLECT_101.
    let (for_lut, ew): (&[u8], usize) = if w.is_multiple_of(tiles_x) && h.is_multiple_of(tiles_y) {
        (src, w)
    } else {
        let ew = w + tiles_x - w % tiles_x;
        let eh = h + tiles_y - h % tiles_y;
        let cols: Vec<usize> = (0..ew)
            .map(|x| reflect101(x as isize, w as isize))
            .collect();
        work.padded.reserve_exact(ew * eh);
        for y in 0..eh {
            let row = &src[reflect101(y as isize, h as isize) * w..][..w];
            work.padded.extend(cols.iter().map(|&c| row[c]));
        }
        (&work.padded, ew)
    };
    let tile_w = ew / tiles_x;
    let tile_h = for_lut.len() / ew / tiles_y;
    let area = tile_w * tile_h;
    let lut_scale = 255.0f32 / area as f32;
    // static_cast<int>(clipLimit_ * tileSizeTotal / histSize), at least 1.
    let clip = ((cfg.clip_limit * area as f64 / 256.0) as i64).max(1);

    for ty in 0..tiles_y {
        for tx in 0..tiles_x {
            let mut hist = [0i64; 256];
            for y in ty * tile_h..(ty + 1) * tile_h {
                for &v in &for_lut[y * ew + tx * tile_w..][..tile_w] {
                    hist[v as usize] += 1;
                }
            }
            let mut clipped = 0i64;
            for bin in hist.iter_mut() {
                if *bin > clip {
                    clipped += *bin - clip;
                    *bin = clip;
                }
            }
            let batch = clipped / 256;
            let mut residual = clipped - batch * 256;
            for bin in hist.iter_mut() {
                *bin += batch;
            }
            if residual != 0 {
                let step = (256 / residual).max(1) as usize;
                let mut i = 0;
                while i < 256 && residual > 0 {
                    hist[i] += 1;
                    i += step;
                    residual -= 1;
                }
            }
            let lut = &mut work.luts[ty * tiles_x + tx];
            let mut sum = 0i64;
            for (l, &bin) in lut.iter_mut().zip(hist.iter()) {
                sum += bin;
                *l = sat_u8(sum as f32 * lut_scale);
            }
        }
    }

    // Bilinear interpolation between the four nearest tile LUTs, OpenCV's float arithmetic.
    let inv_tw = 1.0f32 / tile_w as f32;
    for x in 0..w {
        let txf = x as f32 * inv_tw - 0.5;
        let tx1 = txf.floor() as isize;
        let tx2 = tx1 + 1;
        let xa = txf - tx1 as f32;
        work.xa.push(xa);
        work.xa1.push(1.0 - xa);
        let (t1, t2) = (tx1.max(0) as usize, tx2.min(tiles_x as isize - 1) as usize);
        match work.spans.last_mut() {
            Some(last) if last.2 == t1 && last.3 == t2 => last.1 = x + 1,
            _ => work.spans.push((x, x + 1, t1, t2)),
        }
    }
    let inv_th = 1.0f32 / tile_h as f32;
    for y in 0..h {
        let tyf = y as f32 * inv_th - 0.5;
        let ty1 = tyf.floor() as isize;
        let ty2 = ty1 + 1;
        let ya = tyf - ty1 as f32;
        let ya1 = 1.0 - ya;
        let r1 = ty1.max(0) as usize * tiles_x;
        let r2 = ty2.min(tiles_y as isize - 1) as usize * tiles_x;
        let srow = &src[y * w..][..w];
        let drow = &mut dst[y * w..][..w];
        for &(x0, x1, t1, t2) in &work.spans {
            let (l11, l12) = (&work.luts[r1 + t1], &work.luts[r1 + t2]);
            let (l21, l22) = (&work.luts[r2 + t1], &work.luts[r2 + t2]);
            for (((d, &s), &xa), &xa1) in drow[x0..x1]
                .iter_mut()
                .zip(&srow[x0..x1])
                .zip(&work.xa[x0..x1])
                .zip(&work.xa1[x0..x1])
            {
                let v = s as usize;
                let res = (l11[v] as f32 * xa1 + l12[v] as f32 * xa) * ya1
                    + (l21[v] as f32 * xa1 + l22[v] as f32 * xa) * ya;
                *d = sat_u8(res);
            }
        }
    }
}

/// CLAHE of an 8-bit grayscale image, equal to
/// `cv2.createCLAHE(clipLimit=cfg.clip_limit, tileGridSize=cfg.tiles).apply(gray)`.
///
/// Errors: an invalid `cfg` (see [`ClaheConfig::validate`]) or an empty image.
pub fn clahe_gray(gray: &GrayImage, cfg: &ClaheConfig) -> Result<GrayImage> {
    cfg.validate()?;
    let (w, h) = check_size(gray.width(), gray.height())?;
    let mut out = GrayImage::new(gray.width(), gray.height());
    clahe_plane(gray.as_raw(), w, h, cfg, &mut out);
    Ok(out)
}

// ------------------------------------------------------------------------------------------
// OpenCV's float32 sRGB <-> Lab (modules/imgproc/src/color_lab.cpp).
// ------------------------------------------------------------------------------------------

/// sRGB→XYZ (D65) as OpenCV stores it (`sRGB2XYZ_D65`, bit patterns of the doubles).
const SRGB2XYZ: [u64; 9] = [
    0x3fda65a14488c60d,
    0x3fd6e297396d0918,
    0x3fc71819d2391d58, //
    0x3fcb38cda6e75ff6,
    0x3fe6e297396d0918,
    0x3fb279aae6c8f755, //
    0x3f93cc4ac6cdaf4b,
    0x3fbe836eb4e98138,
    0x3fee68427418d691,
];
/// XYZ→sRGB (D65), `XYZ2sRGB_D65`.
const XYZ2SRGB: [u64; 9] = [
    0x4009ec804102ff8f,
    0xbff8982a9930be0e,
    0xbfdfe7ff583a53b9, //
    0xbfef042528ae74f3,
    0x3ffe040f23897204,
    0x3fa546d3f9e7b80b, //
    0x3fac7de5082cf52c,
    0xbfca1e14bdfd2631,
    0x3ff0eabef06b3786,
];
/// The D65 white point `(0.950456, 1, 1.088754)`.
const D65: [u64; 3] = [0x3fee6a22b3892ee8, 0x3ff0000000000000, 0x3ff16b8950763a19];

/// Nodes per axis of the RGB→Lab look-up table.
const LUT_DIM: usize = 33;
/// Padded nodes per axis (a duplicate last node keeps `index + 1` in range).
const LUT_PAD: usize = LUT_DIM + 1;
/// Inverse-gamma spline size (`GAMMA_TAB_SIZE`).
const GAMMA_TAB_SIZE: usize = 1024;

struct LabTables {
    /// `[blue][green][red]` nodes (padded to 34³): 14-bit `L·16384/100`, `(a+128)·64`, `(b+128)·64`.
    lut: Vec<[i16; 4]>,
    /// Cubic spline of the inverse sRGB gamma, 4 coefficients per interval.
    inv_gamma: Vec<f32>,
    /// Lab→RGB matrix (rows R, G, B; columns x, y, z), white point folded in.
    xyz2rgb: [f32; 9],
}

fn lab_tables() -> &'static LabTables {
    static TABLES: OnceLock<LabTables> = OnceLock::new();
    TABLES.get_or_init(build_lab_tables)
}

/// OpenCV's `applyGamma` (sRGB → linear) in double precision, rounded to float.
fn apply_gamma(x: f32) -> f32 {
    let xd = x as f64;
    if xd <= 809.0 / 20000.0 {
        (xd / (323.0 / 25.0)) as f32
    } else {
        ((xd + 11.0 / 200.0) / (1.0 + 11.0 / 200.0)).powf(12.0 / 5.0) as f32
    }
}

/// OpenCV's `applyInvGamma` (linear → sRGB).
fn apply_inv_gamma(x: f32) -> f32 {
    let xd = x as f64;
    if xd <= 7827.0 / 2_500_000.0 {
        (xd * (323.0 / 25.0)) as f32
    } else {
        (xd.powf(1.0 / (12.0 / 5.0)) * (1.0 + 11.0 / 200.0) - 11.0 / 200.0) as f32
    }
}

/// OpenCV's `softfloat` cube root (`f32_cbrt`, Turkowski's rational approximation evaluated
/// in double, mantissa truncated to float), for the finite non-negative values used here.
fn cv_cbrt(x: f32) -> f32 {
    let bits = x.to_bits();
    if bits & 0x7fff_ffff == 0 {
        return 0.0;
    }
    let sign = bits >> 31;
    let mut ex = ((bits >> 23) & 0xff) as i32 - 127;
    let mut shx = ex % 3;
    if shx >= 0 {
        shx -= 3;
    }
    ex = (ex - shx) / 3 - 1;
    let frac = (bits & 0x007f_ffff) as u64;
    let fr = f64::from_bits((((shx + 1023) as u64) << 52) | (frac << 29));
    let a = |raw: u64| f64::from_bits(raw);
    let num = (((a(0x4046a09e6653ba70) * fr + a(0x406808f46c6116e0)) * fr + a(0x405dca97439cae14))
        * fr
        + a(0x402add70d2827500))
        * fr
        + a(0x3fc4f15f83f55d2d);
    let den = (((a(0x402d9e20660edb21) * fr + a(0x4062ff15c0285815)) * fr + a(0x406510d06a8112ce))
        * fr
        + a(0x4040fecbc9e2c375))
        * fr
        + 1.0;
    let r = num / den;
    let mant = ((r.to_bits() & 0x000f_ffff_ffff_ffff) >> 29) as u32;
    f32::from_bits((sign << 31) | (((ex + 127) as u32) << 23) | mant)
}

/// OpenCV's `splineBuild` (natural cubic spline through `f[0..=n]`), in float.
fn spline_build(f: &[f32], n: usize) -> Vec<f32> {
    let mut tab = vec![0f32; n * 4];
    for i in 1..n {
        let t = (f[i + 1] - f[i] * 2.0 + f[i - 1]) * 3.0;
        let l = 1.0 / (4.0 - tab[(i - 1) * 4]);
        tab[i * 4] = l;
        tab[i * 4 + 1] = (t - tab[(i - 1) * 4 + 1]) * l;
    }
    let mut cn = 0f32;
    for j in 0..n {
        let i = n - j - 1;
        let c = tab[i * 4 + 1] - tab[i * 4] * cn;
        let b = f[i + 1] - f[i] - (cn + c * 2.0) / 3.0;
        let d = (cn - c) / 3.0;
        tab[i * 4] = f[i];
        tab[i * 4 + 1] = b;
        tab[i * 4 + 2] = c;
        tab[i * 4 + 3] = d;
        cn = c;
    }
    tab
}

/// OpenCV's scalar `splineInterpolate(x, tab, n)`.
#[inline]
fn spline_interpolate(x: f32, tab: &[f32]) -> f32 {
    let ix = (x as i32).clamp(0, GAMMA_TAB_SIZE as i32 - 1) as usize;
    let x = x - ix as f32;
    let t = &tab[ix * 4..ix * 4 + 4];
    ((t[3] * x + t[2]) * x + t[1]) * x + t[0]
}

fn build_lab_tables() -> LabTables {
    let m = |i: usize| f64::from_bits(SRGB2XYZ[i]);
    let d65 = D65.map(f64::from_bits);
    let scale_white = [1.0 / d65[0], 1.0, 1.0 / d65[2]];
    // initLUTforLABLUVs16: the first LUT axis carries the *blue* value (OpenCV's BGR order), so
    // the coefficients are reversed within each row.
    let mut s = [0f32; 9];
    for i in 0..3 {
        s[i * 3] = (m(i * 3 + 2) * scale_white[i]) as f32;
        s[i * 3 + 1] = (m(i * 3 + 1) * scale_white[i]) as f32;
        s[i * 3 + 2] = (m(i * 3) * scale_white[i]) as f32;
    }
    let lthresh = 216.0f32 / 24389.0;
    let lscale = 841.0f32 / 108.0;
    let lbias = 16.0f32 / 116.0;
    let f9033 = 24389.0f32 / 27.0;
    let lbase = 16384.0f32;
    let gamma: Vec<f32> = (0..LUT_DIM)
        .map(|p| apply_gamma(p as f32 / (LUT_DIM - 1) as f32))
        .collect();
    let f = |v: f32| {
        if v > lthresh {
            cv_cbrt(v)
        } else {
            v.mul_add(lscale, lbias)
        }
    };
    let round = |v: f32| v.round_ties_even() as i16;
    let mut lut = vec![[0i16; 4]; LUT_PAD * LUT_PAD * LUT_PAD];
    for p in 0..LUT_PAD {
        for q in 0..LUT_PAD {
            for r in 0..LUT_PAD {
                let (gp, gq, gr) = (
                    gamma[p.min(LUT_DIM - 1)],
                    gamma[q.min(LUT_DIM - 1)],
                    gamma[r.min(LUT_DIM - 1)],
                );
                let x = gp * s[0] + gq * s[1] + gr * s[2];
                let y = gp * s[3] + gq * s[4] + gr * s[5];
                let z = gp * s[6] + gq * s[7] + gr * s[8];
                let (fx, fy, fz) = (f(x), f(y), f(z));
                let l = if y > lthresh {
                    116.0 * fy - 16.0
                } else {
                    f9033 * y
                };
                let a = 500.0 * (fx - fy);
                let b = 200.0 * (fy - fz);
                lut[(p * LUT_PAD + q) * LUT_PAD + r] = [
                    round(lbase * l / 100.0),
                    round(lbase * (a + 128.0) / 256.0),
                    round(lbase * (b + 128.0) / 256.0),
                    0,
                ];
            }
        }
    }
    let ig: Vec<f32> = (0..=GAMMA_TAB_SIZE)
        .map(|i| apply_inv_gamma((1.0 / GAMMA_TAB_SIZE as f32) * i as f32))
        .collect();
    let inv_gamma = spline_build(&ig, GAMMA_TAB_SIZE);
    // Lab2RGBfloat with blueIdx = 2 (RGB output): row k = XYZ2sRGB row k times the white point.
    let mut xyz2rgb = [0f32; 9];
    for k in 0..3 {
        for i in 0..3 {
            xyz2rgb[k * 3 + i] = (f64::from_bits(XYZ2SRGB[k * 3 + i]) * d65[i]) as f32;
        }
    }
    LabTables {
        lut,
        inv_gamma,
        xyz2rgb,
    }
}

/// 14-bit Lab of one RGB pixel: `cvRound(clip(c) · 16384)` per channel, trilinear interpolation
/// with 4-bit weights, `CV_DESCALE(·, 12)`. Returns `(iL, ia, ib)`.
#[inline]
fn lab14(t: &LabTables, ib: i32, ig: i32, ir: i32) -> [i32; 3] {
    let (tx, ty, tz) = ((ib >> 9) as usize, (ig >> 9) as usize, (ir >> 9) as usize);
    let (fx, fy, fz) = ((ib >> 5) & 15, (ig >> 5) & 15, (ir >> 5) & 15);
    let wx = [16 - fx, fx];
    let wy = [16 - fy, fy];
    let wz = [16 - fz, fz];
    let base = (tx * LUT_PAD + ty) * LUT_PAD + tz;
    let mut acc = [0i32; 3];
    for (dp, &wp) in wx.iter().enumerate() {
        for (dq, &wq) in wy.iter().enumerate() {
            let row = base + (dp * LUT_PAD + dq) * LUT_PAD;
            let w0 = wp * wq * wz[0];
            let w1 = wp * wq * wz[1];
            let n0 = &t.lut[row];
            let n1 = &t.lut[row + 1];
            for c in 0..3 {
                acc[c] += i32::from(n0[c]) * w0 + i32::from(n1[c]) * w1;
            }
        }
    }
    acc.map(|v| (v + 2048) >> 12)
}

/// `cvRound(clip(v) · 16384)`.
#[inline]
fn to14(v: f32) -> i32 {
    // OpenCV's `clip`: v < 0 ? 0 : v > 1 ? 1 : v (inputs are finite here).
    round_even(v.clamp(0.0, 1.0) * 16384.0)
}

/// Float Lab from the 14-bit integers, as `RGB2Lab_f` writes it.
#[inline]
fn lab_from14(v: [i32; 3]) -> [f32; 3] {
    [
        v[0] as f32 * (100.0 / 16384.0),
        v[1] as f32 * (256.0 / 16384.0) - 128.0,
        v[2] as f32 * (256.0 / 16384.0) - 128.0,
    ]
}

/// One Lab→RGB pixel, before the inverse gamma. `simd` selects the operation order of OpenCV's
/// vectorised body (blocks of 8 pixels) instead of its scalar tail.
#[inline]
fn lab_to_linear(c: &[f32; 9], li: f32, ai: f32, bi: f32, simd: bool) -> [f32; 3] {
    const L_THRESH: f32 = 8.0;
    let f_thresh = 6.0f32 / 29.0;
    let k16_116 = 16.0f32 / 116.0;
    let (x, y, z);
    if simd {
        let ylo = li * (1.0f32 / 903.3);
        let fylo = 7.787f32 * ylo + k16_116;
        let fyhi = (li + 16.0) * (1.0f32 / 116.0);
        let yhi = fyhi * fyhi * fyhi;
        let (yy, fy) = if li <= L_THRESH {
            (ylo, fylo)
        } else {
            (yhi, fyhi)
        };
        let inv = |f: f32| {
            if f <= f_thresh {
                (f - k16_116) * (1.0f32 / 7.787)
            } else {
                f * f * f
            }
        };
        x = inv(ai * (1.0f32 / 500.0) + fy);
        z = inv(bi * (-1.0f32 / 200.0) + fy);
        y = yy;
        [
            c[0] * x + (c[1] * y + c[2] * z),
            c[3] * x + (c[4] * y + c[5] * z),
            c[6] * x + (c[7] * y + c[8] * z),
        ]
    } else {
        let fy;
        if li <= L_THRESH {
            y = li / 903.3;
            fy = 7.787f32 * y + k16_116;
        } else {
            fy = (li + 16.0) / 116.0;
            y = fy * fy * fy;
        }
        let inv = |f: f32| {
            if f <= f_thresh {
                (f - k16_116) / 7.787
            } else {
                f * f * f
            }
        };
        x = inv(ai / 500.0 + fy);
        z = inv(fy - bi / 200.0);
        [
            c[0] * x + c[1] * y + c[2] * z,
            c[3] * x + c[4] * y + c[5] * z,
            c[6] * x + c[7] * y + c[8] * z,
        ]
    }
}

/// Clip to `[0, 1]` and apply the inverse sRGB gamma spline (same in both OpenCV code paths).
#[inline]
fn linear_to_srgb(tab: &[f32], v: f32) -> f32 {
    let v = v.clamp(0.0, 1.0);
    spline_interpolate(v * GAMMA_TAB_SIZE as f32, tab)
}

/// Converts one row of Lab to RGB into `out` (both interleaved, `3 · width` floats).
fn lab_row_to_rgb(t: &LabTables, lab: &[f32], out: &mut [f32]) {
    let n = lab.len() / 3;
    let simd_end = n - n % 8;
    for (i, (src, dst)) in lab.chunks_exact(3).zip(out.chunks_exact_mut(3)).enumerate() {
        let lin = lab_to_linear(&t.xyz2rgb, src[0], src[1], src[2], i < simd_end);
        for k in 0..3 {
            dst[k] = linear_to_srgb(&t.inv_gamma, lin[k]);
        }
    }
}

/// `cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)` for a float32 image: `L ∈ [0, 100]`, `a`, `b` centred
/// on 0. Inputs are clipped to `[0, 1]` as OpenCV does.
///
/// Errors: an empty image or a non-finite value.
pub fn rgb_to_lab(rgb: &Rgb32FImage) -> Result<Rgb32FImage> {
    check_size(rgb.width(), rgb.height())?;
    check_finite(rgb.as_raw(), "rgb")?;
    let t = lab_tables();
    let mut out = Rgb32FImage::new(rgb.width(), rgb.height());
    for (src, dst) in rgb.as_raw().chunks_exact(3).zip(out.chunks_exact_mut(3)) {
        let v = lab14(t, to14(src[2]), to14(src[1]), to14(src[0]));
        dst.copy_from_slice(&lab_from14(v));
    }
    Ok(out)
}

/// `cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)` for a float32 image; the result is in `[0, 1]`.
///
/// Errors: an empty image or a non-finite value.
pub fn lab_to_rgb(lab: &Rgb32FImage) -> Result<Rgb32FImage> {
    let (w, _) = check_size(lab.width(), lab.height())?;
    check_finite(lab.as_raw(), "lab")?;
    let t = lab_tables();
    let mut out = Rgb32FImage::new(lab.width(), lab.height());
    for (src, dst) in lab
        .as_raw()
        .chunks_exact(3 * w)
        .zip(out.chunks_exact_mut(3 * w))
    {
        lab_row_to_rgb(t, src, dst);
    }
    Ok(out)
}

/// The mdir pipeline, given the 14-bit Lab of every pixel (`lab_of(i)`, row-major index).
fn clahe_lab_core(
    w: usize,
    h: usize,
    cfg: &ClaheConfig,
    lab_of: impl Fn(usize) -> [i32; 3],
) -> Rgb32FImage {
    let t = lab_tables();
    let mut l8 = vec![0u8; w * h];
    // a and b after mdir's `(v + 128) / 255 * 255 - 128` float32 round trip.
    let mut ab = vec![[0f32; 2]; w * h];
    for (i, (l, ab)) in l8.iter_mut().zip(ab.iter_mut()).enumerate() {
        let [l_f, a_f, b_f] = lab_from14(lab_of(i));
        *l = ((l_f / 100.0) * 255.0) as u8;
        *ab = [
            (a_f + 128.0) / 255.0 * 255.0 - 128.0,
            (b_f + 128.0) / 255.0 * 255.0 - 128.0,
        ];
    }
    let mut l_eq = vec![0u8; w * h];
    clahe_plane(&l8, w, h, cfg, &mut l_eq);
    let mut out = Rgb32FImage::new(w as u32, h as u32);
    let mut row = vec![0f32; 3 * w];
    for (y, dst) in out.chunks_exact_mut(3 * w).enumerate() {
        for x in 0..w {
            let i = y * w + x;
            row[3 * x] = l_eq[i] as f32 / 255.0 * 100.0;
            row[3 * x + 1] = ab[i][0];
            row[3 * x + 2] = ab[i][1];
        }
        lab_row_to_rgb(t, &row, dst);
    }
    out
}

/// CLAHE on the L channel of Lab of an 8-bit RGB image, exactly as Dark Side Augmentation's
/// `ApplyClahe(clip_limit, grid_size, colorspace="lab")` computes it after `Pil2Numpy`
/// (`rgb / 255` in float32). Returns float32 RGB in `[0, 1]` — the values mdir hands to
/// `ToTensor` (it never rounds them back to 8 bits).
///
/// Errors: an invalid `cfg` or an empty image.
pub fn clahe_lab(rgb: &RgbImage, cfg: &ClaheConfig) -> Result<Rgb32FImage> {
    cfg.validate()?;
    let (w, h) = check_size(rgb.width(), rgb.height())?;
    let t = lab_tables();
    // Per 8-bit level: cvRound((v / 255f) · 16384).
    let q: [i32; 256] = std::array::from_fn(|v| to14(v as f32 / 255.0));
    let px = rgb.as_raw();
    Ok(clahe_lab_core(w, h, cfg, |i| {
        let p = &px[3 * i..3 * i + 3];
        lab14(t, q[p[2] as usize], q[p[1] as usize], q[p[0] as usize])
    }))
}

/// [`clahe_lab`] for a float32 RGB input (mdir's `ClahePost` after the generator, whose output
/// is un-normalised to `[0, 1]`); values outside `[0, 1]` are clipped by the Lab conversion, as
/// OpenCV does.
///
/// Errors: an invalid `cfg`, an empty image or a non-finite value.
pub fn clahe_lab_f32(rgb: &Rgb32FImage, cfg: &ClaheConfig) -> Result<Rgb32FImage> {
    cfg.validate()?;
    let (w, h) = check_size(rgb.width(), rgb.height())?;
    check_finite(rgb.as_raw(), "rgb")?;
    let t = lab_tables();
    let px = rgb.as_raw();
    Ok(clahe_lab_core(w, h, cfg, |i| {
        let p = &px[3 * i..3 * i + 3];
        lab14(t, to14(p[2]), to14(p[1]), to14(p[0]))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_even_is_round_half_to_even() {
        for i in -40000..40000 {
            let v = i as f32 * 0.25 + 0.001 * (i % 7) as f32;
            assert_eq!(round_even(v), v.round_ties_even() as i32, "{v}");
        }
        assert_eq!(round_even(2.5), 2);
        assert_eq!(round_even(3.5), 4);
        assert_eq!(round_even(-0.5), 0);
    }

    #[test]
    fn reflect101_matches_opencv_border_interpolate() {
        // len 5: ... 3 2 1 | 0 1 2 3 4 | 3 2 1 0 1 ...
        let got: Vec<usize> = (5..11).map(|p| reflect101(p, 5)).collect();
        assert_eq!(got, vec![3, 2, 1, 0, 1, 2]);
        assert_eq!(reflect101(7, 1), 0);
        // len 2 bounces: 0 1 | 0 1 0 1
        let got: Vec<usize> = (2..6).map(|p| reflect101(p, 2)).collect();
        assert_eq!(got, vec![0, 1, 0, 1]);
    }

    #[test]
    fn cube_root_is_within_one_ulp_of_the_true_cube_root() {
        for i in 1..2000 {
            let x = i as f32 * 0.001;
            let got = cv_cbrt(x);
            let want = (x as f64).cbrt();
            let ulp = (want as f32).to_bits().abs_diff(got.to_bits());
            assert!(ulp <= 1, "cbrt({x}) = {got}, true {want}");
        }
    }

    #[test]
    fn lab_of_black_and_white_is_the_closed_form() {
        let t = lab_tables();
        assert_eq!(lab14(t, 0, 0, 0)[0], 0);
        let white = lab_from14(lab14(t, 16384, 16384, 16384));
        assert!((white[0] - 100.0).abs() < 0.01, "{white:?}");
        assert!(white[1].abs() < 0.05 && white[2].abs() < 0.05, "{white:?}");
    }

    #[test]
    fn invalid_configs_are_rejected() {
        for clip in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(ClaheConfig::new(clip, (8, 8)).is_err(), "{clip}");
        }
        assert!(ClaheConfig::new(1.0, (0, 8)).is_err());
        assert!(ClaheConfig::new(1.0, (8, 0)).is_err());
        let empty = GrayImage::new(0, 4);
        assert!(matches!(
            clahe_gray(&empty, &ClaheConfig::DARK_SIDE),
            Err(CoreError::InvalidArgument { name: "image", .. })
        ));
        let mut nan = Rgb32FImage::new(2, 2);
        nan.as_mut()[3] = f32::NAN;
        assert!(clahe_lab_f32(&nan, &ClaheConfig::DARK_SIDE).is_err());
    }
}
