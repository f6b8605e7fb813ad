//! Data-parallel training on several devices: burn's multi-device strategy (burn-train's
//! `MultiDeviceOptim::OptimMainDevice`) inside the project's own training loops.
//!
//! One optimiser step with a [`DataParallel`] set of `N` devices:
//! 1. the step's work items (tuples, images) are split into `N` contiguous shards
//!    ([`DataParallel::split`]: sizes differ by at most one, earlier shards are larger);
//! 2. shard `k` runs on device `k` in its own thread, on a replica of the model
//!    (`Module::fork`: same parameter ids, fresh autodiff leaves; shard 0 uses the model itself),
//!    and returns its gradients (`GradientsParams`) and whatever it measured;
//! 3. each shard's gradients move to the main device (`GradientsParams::to_device`) and are
//!    summed there in shard order (`GradientsAccumulator`), so the result does not depend on
//!    which thread finished first;
//! 4. the caller applies its optimiser step on the main device; the next step forks the updated
//!    model again.
//!
//! With one device nothing is spawned or moved: the work runs on the calling thread exactly as a
//! single-device loop does. A loss that is a mean over the global batch must be weighted by its
//! shard's share ([`Shard::weight`]) so that the summed gradients equal the global batch's.
//!
//! Backend notes: the reduction uses only tensor transfers, so it runs on every backend
//! (several CUDA or wgpu devices, or several replicas of the CPU device for tests). burn 0.22's
//! collective all-reduce (`burn::tensor::distributed`, burn-train's DDP strategy) is implemented
//! by the CUDA runtime only and panics on the CPU backends; docs/SCALING.md says what that means
//! for several GPUs and several nodes.
//!
//! ```
//! use burn::module::Module;
//! use burn::nn::{Linear, LinearConfig};
//! use burn::optim::GradientsParams;
//! use burn::tensor::{Device, Tensor, TensorData};
//! use nightvision_core::parallel::DataParallel;
//!
//! let device = Device::default().autodiff();
//! let model: Linear = LinearConfig::new(3, 1).init(&device);
//! let xs: Vec<[f32; 3]> = vec![[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
//! // Σ over the items of the model's output: the same gradients on one device or on two.
//! let grads = |dp: &DataParallel| {
//!     let (g, _) = dp
//!         .gradients(&model, xs.len(), |shard| {
//!             let rows: Vec<f32> = shard.items.clone().flat_map(|i| xs[i]).collect();
//!             let x = Tensor::<2>::from_data(TensorData::new(rows, [shard.items.len(), 3]), shard.device);
//!             let loss = shard.model.forward(x).sum();
//!             Ok::<_, nightvision_core::CoreError>((GradientsParams::from_grads(loss.backward(), shard.model), ()))
//!         })
//!         .unwrap();
//!     g.get::<2>(model.weight.id).unwrap().into_data()
//! };
//! let one = grads(&DataParallel::single(&device));
//! let two = grads(&DataParallel::replicas(&device, 2).unwrap());
//! one.assert_approx_eq::<f32>(&two, burn::tensor::Tolerance::absolute(1e-6));
//! ```

use std::ops::Range;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor};

use crate::CoreError;

/// The devices of data-parallel training; the first is the main device (the optimiser, the
/// checkpoints and the logs live there).
#[derive(Debug, Clone, PartialEq)]
pub struct DataParallel {
    devices: Vec<Device>,
}

/// One device's part of an optimiser step (see the [module docs](self)).
#[derive(Debug)]
pub struct Shard<'a, M> {
    /// Index of the device (0 = main).
    pub index: usize,
    /// The device (autodiff).
    pub device: &'a Device,
    /// The model on `device`.
    pub model: &'a M,
    /// The work items of this shard (indices into the step's items).
    pub items: Range<usize>,
    /// `items.len() / total items`: the weight of a shard's mean loss in the global mean.
    pub weight: f64,
}

impl DataParallel {
    /// Data parallelism over `devices` (each made an autodiff device).
    ///
    /// # Errors
    /// [`CoreError::InvalidArgument`] for an empty list.
    pub fn new(devices: Vec<Device>) -> crate::Result<Self> {
        if devices.is_empty() {
            return Err(CoreError::InvalidArgument {
                name: "devices",
                reason: "data parallelism needs at least one device".into(),
            });
        }
        Ok(Self {
            devices: devices.into_iter().map(Device::autodiff).collect(),
        })
    }

    /// One device: training as without data parallelism.
    pub fn single(device: &Device) -> Self {
        Self {
            devices: vec![device.clone().autodiff()],
        }
    }

    /// `n` replicas of `device`: `n` worker threads that share it. On the CPU this is how the
    /// multi-device code paths are tested; it does not make training faster there (the
    /// backend already uses every core).
    ///
    /// # Errors
    /// [`CoreError::InvalidArgument`] for `n = 0`.
    pub fn replicas(device: &Device, n: usize) -> crate::Result<Self> {
        Self::new(vec![device.clone(); n])
    }

    /// The devices, main first.
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// The main device.
    pub fn main(&self) -> &Device {
        &self.devices[0]
    }

    /// The number of devices.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Always false (there is at least one device).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Splits `n` items into one contiguous range per device: sizes differ by at most one,
    /// earlier ranges are the larger; devices beyond `n` get no range.
    ///
    /// ```
    /// use burn::tensor::{Device, Tensor};
    /// use nightvision_core::parallel::DataParallel;
    /// let dp = DataParallel::replicas(&Device::default(), 3).unwrap();
    /// assert_eq!(dp.split(5), vec![0..2, 2..4, 4..5]);
    /// assert_eq!(dp.split(2), vec![0..1, 1..2]);
    /// ```
    pub fn split(&self, n: usize) -> Vec<Range<usize>> {
        let k = self.devices.len().min(n);
        let mut out = Vec::with_capacity(k);
        let mut start = 0;
        for i in 0..k {
            let len = n / k + usize::from(i < n % k);
            out.push(start..start + len);
            start += len;
        }
        out
    }

    /// Runs `work` on every shard of `n_items` items (one thread per device beyond the main
    /// one), sums the shards' gradients on the main device in shard order and returns them with
    /// every shard's result, in shard order. With `n_items = 0` nothing runs and the gradients
    /// are empty.
    ///
    /// `model` lives on the main device; the other shards get `model.clone().fork(device)`.
    ///
    /// # Errors
    /// The first error of a shard, in shard order. A panic in a shard is resumed on the caller.
    pub fn gradients<M, R, E, F>(
        &self,
        model: &M,
        n_items: usize,
        work: F,
    ) -> Result<(GradientsParams, Vec<R>), E>
    where
        M: Module + Send + Sync,
        R: Send,
        E: Send,
        F: Fn(Shard<'_, M>) -> Result<(GradientsParams, R), E> + Sync,
    {
        let ranges = self.split(n_items);
        let total = n_items.max(1) as f64;
        let mut results: Vec<Result<(GradientsParams, R), E>> = Vec::with_capacity(ranges.len());
        let main_shard = |items: Range<usize>| {
            let weight = items.len() as f64 / total;
            work(Shard {
                index: 0,
                device: self.main(),
                model,
                items,
                weight,
            })
        };
        if ranges.len() <= 1 {
            results.extend(ranges.iter().cloned().map(main_shard));
        } else {
            // `train()` first: burn's `RunningState` (BatchNorm statistics) is shared between a
            // module and its clones and forks, and averages the updates of every thread in an
            // unspecified order; a fresh copy keeps the replicas' updates out of the model's.
            let replicas: Vec<M> = self.devices[1..ranges.len()]
                .iter()
                .map(|d| model.clone().train().fork(d))
                .collect();
            let work = &work;
            std::thread::scope(|scope| {
                let handles: Vec<_> = replicas
                    .iter()
                    .zip(&self.devices[1..])
                    .zip(ranges[1..].iter().cloned())
                    .enumerate()
                    .map(|(i, ((replica, device), items))| {
                        let weight = items.len() as f64 / total;
                        scope.spawn(move || {
                            work(Shard {
                                index: i + 1,
                                device,
                                model: replica,
                                items,
                                weight,
                            })
                        })
                    })
                    .collect();
                results.push(main_shard(ranges[0].clone()));
                for h in handles {
                    match h.join() {
                        Ok(r) => results.push(r),
                        Err(payload) => std::panic::resume_unwind(payload),
                    }
                }
            });
        }
        let mut outs = Vec::with_capacity(results.len());
        let mut acc = GradientsAccumulator::<M>::new();
        let mut single: Option<GradientsParams> = None;
        let n = results.len();
        for (k, r) in results.into_iter().enumerate() {
            let (g, out) = r?;
            outs.push(out);
            if n == 1 {
                single = Some(g);
            } else {
                let g = if k == 0 {
                    g
                } else {
                    g.to_device(self.main(), model)
                };
                acc.accumulate(model, g);
            }
        }
        let grads = match single {
            Some(g) => g,
            None if n == 0 => GradientsParams::new(),
            None => acc.grads(),
        };
        Ok((grads, outs))
    }
}

/// Moves the gradients of `module`'s parameters out of `grads` into a new set (for a step whose
/// gradients cover several modules with their own optimisers).
///
/// ```
/// use burn::nn::LinearConfig;
/// use burn::optim::GradientsParams;
/// use burn::tensor::{Device, Tensor};
/// use nightvision_core::parallel::take_grads;
///
/// let device = Device::default().autodiff();
/// let a = LinearConfig::new(2, 1).init(&device);
/// let b = LinearConfig::new(1, 1).init(&device);
/// let loss = b.forward(a.forward(Tensor::<2>::ones([1, 2], &device))).sum();
/// let mut grads = GradientsParams::from_grads(loss.backward(), &(a.clone(), b.clone()));
/// let ga = take_grads(&mut grads, &a);
/// assert_eq!((ga.len(), grads.len()), (2, 2));
/// ```
pub fn take_grads<M: Module>(grads: &mut GradientsParams, module: &M) -> GradientsParams {
    struct Take<'a> {
        from: &'a mut GradientsParams,
        to: GradientsParams,
    }
    impl ModuleVisitor for Take<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.from.remove::<D>(param.id) {
                self.to.register(param.id, g);
            }
        }
    }
    let mut v = Take {
        from: grads,
        to: GradientsParams::new(),
    };
    module.visit(&mut v);
    v.to
}

#[cfg(test)]
mod tests {
    use burn::nn::{BatchNorm, BatchNormConfig};
    use burn::tensor::TensorData;

    use super::*;

    /// BatchNorm in training mode on two replicas: the model's running mean is the main shard's
    /// update alone, the same in every repetition (burn shares running statistics between a
    /// module and its forks and averages them over threads in an unspecified order; the
    /// replicas must not write into the model's).
    #[test]
    fn replicas_keep_their_batchnorm_statistics_to_themselves() {
        let device = Device::default().autodiff();
        let dp = DataParallel::replicas(&device, 2).unwrap();
        let rows: Vec<f32> = vec![1.0, 3.0, 100.0, 300.0];
        for _ in 0..20 {
            let mut bn: BatchNorm = BatchNormConfig::new(1).init(&device);
            for _ in 0..3 {
                let (g, _) = dp
                    .gradients(&bn, rows.len(), |shard| {
                        let v: Vec<f32> = rows[shard.items.clone()].to_vec();
                        let n = v.len();
                        let x =
                            Tensor::<4>::from_data(TensorData::new(v, [n, 1, 1, 1]), shard.device);
                        let loss = shard.model.forward(x).sum();
                        Ok::<_, CoreError>((
                            GradientsParams::from_grads(loss.backward(), shard.model),
                            (),
                        ))
                    })
                    .unwrap();
                assert!(!g.is_empty());
                bn = bn.train();
            }
            // Three momentum-0.1 updates towards the main shard's mean, 2.
            let expected = 2.0 * (1.0 - 0.9f32.powi(3));
            let mean: f32 = bn.running_mean.value().into_scalar();
            assert!((mean - expected).abs() < 1e-6, "{mean} ≠ {expected}");
        }
    }
}
