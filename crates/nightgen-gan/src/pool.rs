//! CycleGAN's history of generated images for the discriminator updates (docs/PAPERS.md protocols 3.1,
//! `util/image_pool.py`; docs/PAPERS.md A.4: gandtr's CycleGAN uses a pool of 50, CUT/NEG-CUT none).
//!
//! [`ImagePool::query`] takes a batch of generated images and returns a batch of the same size,
//! image by image in order:
//! - pool size 0: the batch is returned unchanged (not even detached);
//! - while fewer than `pool_size` images are stored, the (detached) image is stored and returned;
//! - afterwards, with probability ½ (`p = U(0, 1) > 0.5`) a uniformly chosen stored image is
//!   returned and replaced by the current one, otherwise the current image is returned and the
//!   pool is unchanged.
//!
//! The draws come from a seeded [`ChaCha8Rng`], so a run is reproducible.
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use nightgen_gan::ImagePool;
//!
//! let device = Device::default();
//! let mut pool = ImagePool::new(2, 0);
//! let a = Tensor::<4>::zeros([1, 3, 4, 4], &device);
//! // The first `pool_size` images are stored and returned as they are.
//! let out = pool.query(a.clone())?;
//! assert_eq!(out.dims(), [1, 3, 4, 4]);
//! assert_eq!(pool.len(), 1);
//! // Images of another size cannot join the pool.
//! assert!(pool.query(Tensor::<4>::zeros([1, 3, 8, 8], &device)).is_err());
//! # Ok::<(), nightgen_gan::GanError>(())
//! ```

use burn::tensor::Tensor;
use nightvision_core::rng::{ChaCha8Rng, Rng, seeded};

use crate::{GanError, Result};

/// CycleGAN's image buffer; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct ImagePool {
    pool_size: usize,
    images: Vec<Tensor<4>>,
    rng: ChaCha8Rng,
}

impl ImagePool {
    /// CycleGAN's default pool size.
    pub const DEFAULT_SIZE: usize = 50;

    /// An empty pool holding up to `pool_size` images (0 = pass-through), drawing from a
    /// generator seeded with `seed`.
    pub fn new(pool_size: usize, seed: u64) -> Self {
        Self::with_rng(pool_size, seeded(seed))
    }

    /// An empty pool drawing from `rng`.
    pub fn with_rng(pool_size: usize, rng: ChaCha8Rng) -> Self {
        Self {
            pool_size,
            images: Vec::with_capacity(pool_size),
            rng,
        }
    }

    /// The capacity.
    pub fn pool_size(&self) -> usize {
        self.pool_size
    }

    /// The number of stored images.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Whether no image is stored.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// The stored images, each `[1, C, H, W]`, in slot order.
    pub fn images(&self) -> &[Tensor<4>] {
        &self.images
    }

    /// Returns a batch for the discriminator: per image, the image itself or a stored one (see
    /// the [module docs](self)). Returned and stored images are detached (except with pool size
    /// 0, which returns `images` unchanged).
    ///
    /// # Shapes
    /// - `images`: `[batch, C, H, W]`; output: `[batch, C, H, W]`
    ///
    /// # Errors
    /// [`GanError::ShapeMismatch`] when the images' `[C, H, W]` differs from that of the stored
    /// ones (a pool is meant for one generator's fixed-size outputs); the pool is then unchanged.
    pub fn query(&mut self, images: Tensor<4>) -> Result<Tensor<4>> {
        if self.pool_size == 0 {
            return Ok(images);
        }
        let dims = images.dims();
        if let Some(stored) = self.images.first() {
            let s = stored.dims();
            if s[1..] != dims[1..] {
                return Err(GanError::ShapeMismatch {
                    what: "pooled image",
                    expected: vec![dims[0], s[1], s[2], s[3]],
                    got: dims.to_vec(),
                });
            }
        }
        let batch = dims[0];
        let mut out = Vec::with_capacity(batch);
        for i in 0..batch {
            let image = images.clone().narrow(0, i, 1).detach();
            if self.images.len() < self.pool_size {
                self.images.push(image.clone());
                out.push(image);
            } else {
                let p: f64 = self.rng.random();
                if p > 0.5 {
                    let slot = self.rng.random_range(0..self.pool_size);
                    let stored = std::mem::replace(&mut self.images[slot], image);
                    out.push(stored);
                } else {
                    out.push(image);
                }
            }
        }
        if out.is_empty() {
            return Ok(images);
        }
        Ok(Tensor::cat(out, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
    use std::collections::BTreeSet;

    /// A 1×1×1×1 image whose single value is its id.
    fn image(id: usize, device: &Device) -> Tensor<4> {
        Tensor::from_data(TensorData::new(vec![id as f32], [1, 1, 1, 1]), device)
    }

    fn ids(t: Tensor<4>) -> Vec<usize> {
        t.into_data()
            .try_into_vec_as::<f32>()
            .unwrap()
            .into_iter()
            .map(|v| v as usize)
            .collect()
    }

    fn pool_ids(pool: &ImagePool) -> BTreeSet<usize> {
        pool.images().iter().flat_map(|t| ids(t.clone())).collect()
    }

    /// Feeds images 0, 1, 2, … one at a time and checks the pool invariants on every draw;
    /// returns the number of swaps after the pool was full.
    fn run(pool: &mut ImagePool, draws: usize) -> (usize, Vec<usize>) {
        let device = Device::default();
        let size = pool.pool_size();
        let mut tracked = BTreeSet::new();
        let mut swaps = 0;
        let mut returned = Vec::with_capacity(draws);
        for id in 0..draws {
            let out = ids(pool.query(image(id, &device)).unwrap());
            assert_eq!(out.len(), 1);
            let r = out[0];
            returned.push(r);
            if id < size {
                // The first `pool_size` images come back as they are and are stored.
                assert_eq!(r, id);
                tracked.insert(id);
            } else if r != id {
                // Otherwise a returned image is a previously stored one, now replaced.
                assert!(tracked.remove(&r), "draw {id}: {r} was not in the pool");
                tracked.insert(id);
                swaps += 1;
            }
            assert_eq!(pool_ids(pool), tracked, "draw {id}");
            assert_eq!(pool.len(), id.min(size - 1) + 1);
        }
        (swaps, returned)
    }

    #[test]
    fn first_images_pass_and_later_ones_come_from_pool_or_current() {
        let mut pool = ImagePool::new(ImagePool::DEFAULT_SIZE, 11);
        let draws = 10_050;
        let (swaps, _) = run(&mut pool, draws);
        // Binomial(10 000, ½): standard deviation of the fraction 0.005; 0.02 is four of them.
        let fraction = swaps as f64 / (draws - ImagePool::DEFAULT_SIZE) as f64;
        assert!((fraction - 0.5).abs() < 0.02, "swap fraction {fraction}");
    }

    #[test]
    fn seeded_pools_are_reproducible() {
        let (_, a) = run(&mut ImagePool::new(5, 1), 300);
        let (_, b) = run(&mut ImagePool::new(5, 1), 300);
        let (_, c) = run(&mut ImagePool::new(5, 2), 300);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn batches_are_processed_image_by_image() {
        let device = Device::default();
        let mut pool = ImagePool::new(3, 4);
        let mut tracked: BTreeSet<usize> = BTreeSet::new();
        let mut next = 0;
        for _ in 0..50 {
            let batch: Vec<usize> = (next..next + 4).collect();
            next += 4;
            let input = Tensor::cat(batch.iter().map(|&i| image(i, &device)).collect(), 0);
            let out = ids(pool.query(input).unwrap());
            assert_eq!(out.len(), 4);
            for (&cur, &r) in batch.iter().zip(&out) {
                if tracked.len() < 3 {
                    assert_eq!(r, cur);
                    tracked.insert(cur);
                } else if r != cur {
                    assert!(tracked.remove(&r));
                    tracked.insert(cur);
                }
            }
            assert_eq!(pool_ids(&pool), tracked);
        }
    }

    #[test]
    fn size_zero_passes_through() {
        let device = Device::default();
        let mut pool = ImagePool::new(0, 0);
        for id in 0..10 {
            assert_eq!(ids(pool.query(image(id, &device)).unwrap()), [id]);
        }
        assert!(pool.is_empty());
    }

    #[test]
    fn other_sizes_are_rejected() {
        let device = Device::default();
        let mut pool = ImagePool::new(2, 0);
        pool.query(image(0, &device)).unwrap();
        let wrong = Tensor::<4>::zeros([1, 1, 2, 1], &device);
        assert!(matches!(
            pool.query(wrong),
            Err(GanError::ShapeMismatch { .. })
        ));
        assert_eq!(pool.len(), 1);
    }
}
