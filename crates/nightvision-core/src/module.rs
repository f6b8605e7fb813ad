//! Module-wide transformations.

use burn::module::{Flag, Module, ModuleMapper, Param};
use burn::tensor::Device;

/// Moves `module` to `device` unless it already lives there. burn 0.22's `to_device` onto the
/// autodiff device a module already lives on records a transfer above every parameter, and a later
/// backward through that module panics ("graph tape has already been consumed"); trainers that
/// accept networks built on either the plain or the autodiff device move them with this.
///
/// ```
/// use burn::module::Module;
/// use burn::nn::LinearConfig;
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::default().autodiff();
/// let lin = nightvision_core::on_device(LinearConfig::new(2, 1).init(&device), &device);
/// let x = Tensor::<2>::ones([1, 2], &device);
/// let _grads = lin.forward(x).sum().backward(); // no stale transfer node in the graph
/// ```
pub fn on_device<M: Module>(module: M, device: &Device) -> M {
    if module.devices().iter().all(|d| d == device) {
        module
    } else {
        module.to_device(device)
    }
}

/// Puts every `BatchNorm` inside `module` into inference mode for good: the running statistics are
/// used (and no longer updated) even on an autodiff device, while `gamma`/`beta` stay trainable.
///
/// This is cirtorch's `set_batchnorm_eval` (docs/PAPERS.md A.5, C.3: "BatchNorm frozen in train mode"),
/// which both Dark Side Augmentation and Similarity Min-Max fine-tune with.
///
/// ```
/// use burn::nn::BatchNormConfig;
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::default().autodiff();
/// let bn = nightvision_core::freeze_batchnorm(BatchNormConfig::new(2).init(&device));
/// // Default running statistics (mean 0, var 1): the output equals the input up to eps.
/// let x = Tensor::<4>::ones([2, 2, 1, 1], &device).mul_scalar(3.0);
/// let y: f32 = bn.forward(x).mean().into_scalar();
/// assert!((y - 3.0).abs() < 1e-4);
/// ```
pub fn freeze_batchnorm<M: Module>(module: M) -> M {
    let mut mapper = FreezeBatchNorm { depth: Vec::new() };
    module.map(&mut mapper)
}

struct FreezeBatchNorm {
    depth: Vec<bool>,
}

impl ModuleMapper for FreezeBatchNorm {
    fn enter_module(&mut self, _name: &str, container_type: &str) {
        self.depth.push(container_type == "Struct:BatchNorm");
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.depth.pop();
    }

    fn map_flag(&mut self, flag: Param<Flag>) -> Param<Flag> {
        if self.depth.last().copied().unwrap_or(false) {
            flag.with_value(false)
        } else {
            flag
        }
    }
}
