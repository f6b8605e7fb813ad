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
