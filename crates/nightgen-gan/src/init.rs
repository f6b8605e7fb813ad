//! Weight initialisation of the GAN networks (`init_weights` of CycleGAN / CUT `networks.py`,
//! gandtr `weight_initialization.py::init_weights_p2p`; docs/PAPERS.md A.2, B.1, docs/PAPERS.md protocols 3.1–3.2).
//!
//! For every convolution, transposed convolution and linear layer (PyTorch class names containing
//! `Conv` or `Linear`):
//! - `normal`: weight ~ N(0, gain) — CycleGAN gain 0.02; ⚠ gandtr passes no init parameters, so
//!   mdir's default gain **0.2** applies (docs/PAPERS.md A.2);
//! - `xavier`: `xavier_normal_(weight, gain)`, std = gain·√(2 / (fan_in + fan_out)) — CUT, gain 0.02;
//! - `kaiming`: `kaiming_normal_(weight, a=0, mode='fan_in')`, std = √2 / √fan_in (gain unused) —
//!   gandtr's CUT and HED GANs;
//! - biases 0.
//!
//! For every `BatchNorm2d`: weight ~ N(1, gain), bias 0 (running statistics untouched).
//! Fans follow PyTorch's `_calculate_fan_in_and_fan_out` on the PyTorch weight layout: a
//! `Conv2d` weight `[out, in/groups, k, k]` has fan_in = `in/groups·k²`, a `ConvTranspose2d`
//! weight `[in, out/groups, k, k]` has fan_in = `out/groups·k²` (PyTorch's own convention), a
//! `Linear` has fan_in = `in` (burn stores it as `[in, out]`). `InstanceNorm` affine parameters
//! and anything else are left alone, as in the reference.
//!
//! The draws come from one seeded [`ChaCha8Rng`] stream on the
//! host, in module traversal order (Box–Muller normals), so a seed gives the same weights on every
//! backend. The stream differs from PyTorch's, so only the distribution matches the reference.
//!
//! ```
//! use burn::nn::conv::Conv2dConfig;
//! use burn::tensor::Device;
//! use nightgen_gan::{InitConfig, init_weights};
//!
//! let conv = Conv2dConfig::new([16, 32], [3, 3]).init(&Device::default());
//! let conv = init_weights(conv, InitConfig::cyclegan(), 7);
//! let std: f32 = conv.weight.val().var(0).mean().sqrt().into_scalar();
//! assert!((std - 0.02).abs() < 0.002);
//! ```

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Tensor, TensorData};
use nightvision_core::rng::{ChaCha8Rng, Rng, seeded};
use serde::{Deserialize, Serialize};

use crate::GanError;

/// The initialisation distribution of convolution / linear weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InitKind {
    /// `normal`: N(0, gain).
    Normal,
    /// `xavier`: Xavier/Glorot normal with `gain`.
    XavierNormal,
    /// `kaiming`: He normal, fan_in, a = 0 (the gain only applies to BatchNorm weights).
    KaimingNormal,
}

/// An initialisation scheme: a weight distribution and the `init_gain` (which also sets the
/// spread of BatchNorm weights around 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InitConfig {
    /// The weight distribution.
    pub kind: InitKind,
    /// `init_gain`.
    pub gain: f64,
}

impl InitConfig {
    /// A scheme.
    pub fn new(kind: InitKind, gain: f64) -> Self {
        Self { kind, gain }
    }

    /// CycleGAN: `normal`, gain 0.02 (docs/PAPERS.md protocols 3.1).
    pub fn cyclegan() -> Self {
        Self::new(InitKind::Normal, 0.02)
    }

    /// CUT / NEG-CUT: `xavier`, gain 0.02 (docs/PAPERS.md protocols 3.2, docs/PAPERS.md B.1).
    pub fn cut() -> Self {
        Self::new(InitKind::XavierNormal, 0.02)
    }

    /// gandtr `normal_p2p` with mdir's default gain 0.2 (docs/PAPERS.md A.2, ⚠ not 0.02).
    pub fn gandtr_normal() -> Self {
        Self::new(InitKind::Normal, 0.2)
    }

    /// gandtr `kaiming_p2p` (BatchNorm weights N(1, 0.2)) (docs/PAPERS.md A.2).
    pub fn gandtr_kaiming() -> Self {
        Self::new(InitKind::KaimingNormal, 0.2)
    }

    /// Checks the gain.
    ///
    /// # Errors
    /// [`GanError::Config`] when the gain is not finite and non-negative.
    pub fn validate(&self) -> crate::Result<()> {
        if !(self.gain.is_finite() && self.gain >= 0.0) {
            return Err(GanError::Config {
                name: "init_scheme.gain",
                reason: format!("{} is not a finite non-negative number", self.gain),
            });
        }
        Ok(())
    }

    /// The standard deviation of a weight with PyTorch fans `fan_in`, `fan_out`.
    pub fn weight_std(&self, fan_in: usize, fan_out: usize) -> f64 {
        match self.kind {
            InitKind::Normal => self.gain,
            InitKind::XavierNormal => self.gain * (2.0 / (fan_in + fan_out) as f64).sqrt(),
            InitKind::KaimingNormal => (2.0 / fan_in as f64).sqrt(),
        }
    }
}

/// The burn module types whose weights the reference initialises (class names containing `Conv` or
/// `Linear`).
const WEIGHTED_TYPES: [&str; 7] = [
    "Struct:Conv1d",
    "Struct:Conv2d",
    "Struct:Conv3d",
    "Struct:ConvTranspose1d",
    "Struct:ConvTranspose2d",
    "Struct:ConvTranspose3d",
    "Struct:Linear",
];

/// PyTorch's `(fan_in, fan_out)` of a weight of a burn module type (`"Struct:Conv2d"`, …), from
/// its burn shape; `None` for types the reference does not initialise.
pub fn pytorch_fans(module_type: &str, shape: &[usize]) -> Option<(usize, usize)> {
    let receptive = |s: &[usize]| s[2..].iter().product::<usize>();
    match module_type {
        // [out, in/groups, k…] (Conv) and [in, out/groups, k…] (ConvTranspose): PyTorch takes
        // dim 1 as fan_in and dim 0 as fan_out in both cases.
        "Struct:Conv1d"
        | "Struct:Conv2d"
        | "Struct:Conv3d"
        | "Struct:ConvTranspose1d"
        | "Struct:ConvTranspose2d"
        | "Struct:ConvTranspose3d"
            if shape.len() >= 3 =>
        {
            Some((shape[1] * receptive(shape), shape[0] * receptive(shape)))
        }
        // burn stores Linear weights as [in, out].
        "Struct:Linear" if shape.len() == 2 => Some((shape[0], shape[1])),
        _ => None,
    }
}

/// Re-initialises every convolution, transposed convolution, linear and BatchNorm layer of
/// `module` with `init` (see the [module docs](self)), drawing from a ChaCha8 stream seeded with
/// `seed`. Other parameters are returned unchanged.
pub fn init_weights<M: Module>(module: M, init: InitConfig, seed: u64) -> M {
    let mut mapper = InitMapper {
        init,
        rng: seeded(seed),
        stack: Vec::new(),
    };
    module.map(&mut mapper)
}

struct InitMapper {
    init: InitConfig,
    rng: ChaCha8Rng,
    /// (name, container type) of each entered level.
    stack: Vec<(String, String)>,
}

impl InitMapper {
    /// `n` draws of N(mean, std) by Box–Muller.
    fn normals(&mut self, n: usize, mean: f64, std: f64) -> Vec<f32> {
        let mut out = Vec::with_capacity(n + 1);
        while out.len() < n {
            // u1 in (0, 1] so that ln(u1) is finite.
            let u1: f64 = 1.0 - self.rng.random::<f64>();
            let u2: f64 = self.rng.random::<f64>();
            let r = (-2.0 * u1.ln()).sqrt();
            let t = std::f64::consts::TAU * u2;
            out.push((mean + std * r * t.cos()) as f32);
            out.push((mean + std * r * t.sin()) as f32);
        }
        out.truncate(n);
        out
    }

    /// The new values of the parameter at the top of the stack, or `None` to keep it.
    fn values(&mut self, shape: &[usize]) -> Option<Vec<f32>> {
        let (name, container) = self.stack.last()?;
        let n: usize = shape.iter().product();
        match (container.as_str(), name.as_str()) {
            ("Struct:BatchNorm", "gamma") => Some(self.normals(n, 1.0, self.init.gain)),
            ("Struct:BatchNorm", "beta") => Some(vec![0.0; n]),
            (ty, "bias") if WEIGHTED_TYPES.contains(&ty) => Some(vec![0.0; n]),
            (ty, "weight") => {
                let (fan_in, fan_out) = pytorch_fans(ty, shape)?;
                let std = self.init.weight_std(fan_in, fan_out);
                Some(self.normals(n, 0.0, std))
            }
            _ => None,
        }
    }
}

impl ModuleMapper for InitMapper {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let shape = param.lazy_shape().dims::<D>();
        match self.values(&shape) {
            Some(values) => {
                let device = param.lazy_device();
                let fresh = Tensor::<D>::from_data(TensorData::new(values, shape), &device);
                param.map(|old| fresh.set_require_grad(old.is_require_grad()))
            }
            None => param,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::conv::{Conv2dConfig, ConvTranspose2dConfig};
    use burn::nn::{BatchNormConfig, InstanceNormConfig, LinearConfig};
    use burn::tensor::Device;

    #[test]
    fn fans_match_pytorch() {
        // torch.nn.init._calculate_fan_in_and_fan_out on the PyTorch layouts.
        assert_eq!(
            pytorch_fans("Struct:Conv2d", &[128, 64, 3, 3]),
            Some((576, 1152))
        );
        // ConvTranspose2d(256, 128, 3): weight [256, 128, 3, 3] → fan_in 128·9.
        assert_eq!(
            pytorch_fans("Struct:ConvTranspose2d", &[256, 128, 3, 3]),
            Some((1152, 2304))
        );
        // Linear(64, 256): burn weight [64, 256].
        assert_eq!(pytorch_fans("Struct:Linear", &[64, 256]), Some((64, 256)));
        assert_eq!(pytorch_fans("Struct:BatchNorm", &[8]), None);
    }

    #[test]
    fn same_seed_same_weights_and_biases_zero() {
        let device = Device::default();
        let make = |seed| {
            init_weights(
                Conv2dConfig::new([4, 8], [3, 3]).init(&device),
                InitConfig::cyclegan(),
                seed,
            )
        };
        let a = make(1).weight.val().into_data();
        let b = make(1).weight.val().into_data();
        let c = make(2).weight.val().into_data();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let bias: f32 = make(1).bias.unwrap().val().abs().sum().into_scalar();
        assert_eq!(bias, 0.0);
    }

    fn std_of<const D: usize>(t: Tensor<D>) -> (f64, f64) {
        let v = t.into_data().try_into_vec_as::<f32>().unwrap();
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    /// With n draws the sample std has relative standard error ≈ 1/√(2n); 5 standard errors.
    fn std_tol(n: usize) -> f64 {
        5.0 / (2.0 * n as f64).sqrt()
    }

    #[test]
    fn weight_statistics_follow_each_scheme() {
        let device = Device::default();
        for init in [
            InitConfig::cyclegan(),
            InitConfig::gandtr_normal(),
            InitConfig::cut(),
            InitConfig::gandtr_kaiming(),
        ] {
            let conv = init_weights(Conv2dConfig::new([64, 96], [3, 3]).init(&device), init, 3);
            let n = 64 * 96 * 9;
            let want = init.weight_std(64 * 9, 96 * 9);
            let (mean, std) = std_of(conv.weight.val());
            assert!(
                (std / want - 1.0).abs() < std_tol(n),
                "{init:?}: std {std} vs {want}"
            );
            assert!(
                mean.abs() < 5.0 * want / (n as f64).sqrt(),
                "{init:?}: mean {mean}"
            );

            let convt = init_weights(
                ConvTranspose2dConfig::new([96, 48], [3, 3]).init(&device),
                init,
                4,
            );
            let want = init.weight_std(48 * 9, 96 * 9);
            let (_, std) = std_of(convt.weight.val());
            assert!(
                (std / want - 1.0).abs() < std_tol(96 * 48 * 9),
                "{init:?} convT"
            );

            let lin = init_weights(LinearConfig::new(200, 150).init(&device), init, 5);
            let want = init.weight_std(200, 150);
            let (_, std) = std_of(lin.weight.val());
            assert!(
                (std / want - 1.0).abs() < std_tol(200 * 150),
                "{init:?} linear"
            );
            let b: f32 = lin.bias.unwrap().val().abs().sum().into_scalar();
            assert_eq!(b, 0.0);
        }
    }

    #[test]
    fn batchnorm_weights_around_one_and_instance_norm_untouched() {
        let device = Device::default();
        let bn = init_weights(
            BatchNormConfig::new(20_000).init(&device),
            InitConfig::gandtr_kaiming(),
            9,
        );
        let (mean, std) = std_of(bn.gamma.val());
        assert!((mean - 1.0).abs() < 5.0 * 0.2 / (20_000f64).sqrt());
        assert!((std / 0.2 - 1.0).abs() < std_tol(20_000));
        let beta: f32 = bn.beta.val().abs().sum().into_scalar();
        assert_eq!(beta, 0.0);
        // Running statistics are left as they were (mean 0, var 1).
        let rv: f32 = bn.running_var.value().mean().into_scalar();
        assert_eq!(rv, 1.0);
        let inorm = init_weights(
            InstanceNormConfig::new(4).init(&device),
            InitConfig::gandtr_normal(),
            9,
        );
        let g: f32 = inorm.gamma.unwrap().val().sum().into_scalar();
        assert_eq!(g, 4.0, "affine InstanceNorm keeps gamma = 1");
    }

    #[test]
    fn negative_gain_is_rejected() {
        assert!(matches!(
            InitConfig::new(InitKind::Normal, -1.0).validate(),
            Err(GanError::Config { .. })
        ));
        assert!(
            InitConfig::new(InitKind::Normal, f64::NAN)
                .validate()
                .is_err()
        );
    }
}
