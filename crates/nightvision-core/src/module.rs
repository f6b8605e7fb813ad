//! Module-wide transformations.

use std::collections::HashMap;

use burn::module::{Flag, Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};

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

/// `target ← m·target + (1 − m)·online` for every parameter of two modules of the same
/// architecture (matched by their field paths), keeping the target's parameter ids and gradient
/// settings. BatchNorm running statistics (`running_mean`, `running_var`) are left as they are,
/// like BYOL's loop over `parameters()` (docs/PAPERS.md C.3; [`ema_update_copying_buffers`]
/// copies them instead). `m = 0` copies the online weights.
///
/// Parameters of `target` that `online` does not have (another architecture) are left unchanged.
///
/// ```
/// use burn::nn::LinearConfig;
/// use burn::tensor::{Device, Tensor};
/// use nightvision_core::ema_update;
///
/// let device = Device::default();
/// let online = LinearConfig::new(1, 1).init(&device);
/// let mut target = LinearConfig::new(1, 1).init(&device);
/// target.weight = target.weight.map(|w| w.zeros_like());
/// let w: f32 = online.weight.val().into_scalar();
/// let target = ema_update(target, &online, 0.75);
/// let got: f32 = target.weight.val().into_scalar();
/// assert!((got - 0.25 * w).abs() < 1e-7);
/// ```
pub fn ema_update<M: Module>(target: M, online: &M, momentum: f64) -> M {
    ema(target, online, momentum, false)
}

/// [`ema_update`], with the BatchNorm running statistics copied from `online` instead of left
/// alone: the moving average of a generator evaluated with its running statistics, as GAN code
/// keeps it (`for b_ema, b in zip(G_ema.buffers(), G.buffers()): b_ema.copy_(b)`).
///
/// ```
/// use burn::module::RunningState;
/// use burn::nn::BatchNormConfig;
/// use burn::tensor::{Device, Tensor};
/// use nightvision_core::ema_update_copying_buffers;
///
/// let device = Device::default();
/// let mut online = BatchNormConfig::new(2).init(&device);
/// online.running_mean = RunningState::new(Tensor::full([2], 0.5, &device));
/// let target = ema_update_copying_buffers(BatchNormConfig::new(2).init(&device), &online, 0.9);
/// let mean: Vec<f32> = target.running_mean.value().into_data().to_vec().unwrap();
/// assert_eq!(mean, [0.5, 0.5]);
/// ```
pub fn ema_update_copying_buffers<M: Module>(target: M, online: &M, momentum: f64) -> M {
    ema(target, online, momentum, true)
}

fn ema<M: Module>(target: M, online: &M, momentum: f64, copy_buffers: bool) -> M {
    let mut collect = Collect::default();
    online.visit(&mut collect);
    let mut mapper = Ema {
        path: Vec::new(),
        online: collect.params,
        momentum,
        copy_buffers,
    };
    target.map(&mut mapper)
}

fn is_buffer(path: &[String]) -> bool {
    path.last().is_some_and(|n| n.starts_with("running_"))
}

#[derive(Default)]
struct Collect {
    path: Vec<String>,
    params: HashMap<String, Tensor<1>>,
}

impl ModuleVisitor for Collect {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        // `detach` keeps a leaf's gradient requirement; drop it too.
        let t = param.val().detach().set_require_grad(false);
        let n = t.shape().num_elements();
        self.params.insert(self.path.join("."), t.reshape([n]));
    }
}

struct Ema {
    path: Vec<String>,
    online: HashMap<String, Tensor<1>>,
    momentum: f64,
    copy_buffers: bool,
}

impl ModuleMapper for Ema {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let buffer = is_buffer(&self.path);
        if buffer && !self.copy_buffers {
            return param;
        }
        let Some(online) = self.online.remove(&self.path.join(".")) else {
            return param;
        };
        let m = self.momentum;
        param.map(|t| {
            let require_grad = t.is_require_grad();
            let dims = t.dims();
            if online.shape().num_elements() != t.shape().num_elements() {
                return t;
            }
            let online = online.to_device(&t.device()).reshape(dims);
            // a buffer is copied, not averaged (so a non-finite old value cannot survive as 0·NaN)
            let updated = if buffer {
                online
            } else {
                t.detach().set_require_grad(false).mul_scalar(m) + online.mul_scalar(1.0 - m)
            };
            updated.set_require_grad(require_grad)
        })
    }
}
