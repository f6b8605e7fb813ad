//! Seeded, portable random streams.
//!
//! Every random choice the library makes on the host (sampling tuples, picking anchors, rendering
//! the synthetic world) goes through a [`ChaCha8Rng`]: its output for a seed is specified and
//! identical on every platform and across `rand` versions, unlike `StdRng`. Device-side randomness
//! (weight init, noise tensors) is seeded through `Device::seed`.

pub use rand::{Rng, RngCore, SeedableRng};
pub use rand_chacha::ChaCha8Rng;

/// A generator seeded with `seed`.
///
/// ```
/// use nightvision_core::rng::{seeded, Rng};
/// let a: u64 = seeded(7).random();
/// let b: u64 = seeded(7).random();
/// assert_eq!(a, b);
/// ```
pub fn seeded(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// An independent generator for item `index` of stream `seed`, so that parallel or resumed work
/// draws the same numbers as a sequential run (e.g. one stream per image or per epoch).
///
/// ```
/// use nightvision_core::rng::{derived, Rng};
/// let x: u32 = derived(1, 5).random();
/// let y: u32 = derived(1, 6).random();
/// assert_ne!(x, y);
/// ```
pub fn derived(seed: u64, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index);
    rng
}

/// `n` draws of N(0, `std`²) by the Box-Muller transform (pairs from two uniforms, the first
/// kept in (0, 1] so its logarithm is finite): host-side Gaussian noise that follows the
/// generator's stream, so a resumed run draws what an uninterrupted one does.
///
/// ```
/// use nightvision_core::rng::{normals, seeded};
/// let v = normals(&mut seeded(0), 20_000, 0.5);
/// let mean = v.iter().sum::<f32>() / v.len() as f32;
/// let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32;
/// assert!(mean.abs() < 0.02 && (var.sqrt() - 0.5).abs() < 0.02);
/// ```
pub fn normals<R: RngCore + ?Sized>(rng: &mut R, n: usize, std: f64) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1 = 1.0 - rng.random::<f64>();
        let u2 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt() * std;
        let t = std::f64::consts::TAU * u2;
        out.push((r * t.cos()) as f32);
        out.push((r * t.sin()) as f32);
    }
    out.truncate(n);
    out
}
