//! The two descriptor networks of the papers.
//!
//! - [`CirNet`] — cirtorch's `ImageRetrievalNet` (docs/PAPERS.md A.5, C.3; docs/PAPERS.md protocols 1.1):
//!   trunk → pooling (GeM) → L2N → optional whitening `Linear(D, D)` → L2N.
//! - [`CosPlaceNet`] — CosPlace's `GeoLocalizationNet` (docs/PAPERS.md B.2; docs/PAPERS.md protocols 2.3):
//!   trunk → per-location channel L2 → GeM → Flatten → `Linear(C, fc_output_dim)` → L2.

use std::path::Path;

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor, TensorData};
use nightvision_core::weights::{LoadReport, WeightsLoader};

use crate::backbone::{Backbone, BackboneConfig};
use crate::pooling::{self, Gem, GemConfig, Pooling};

/// Configuration of a [`CirNet`].
#[derive(Config, Debug)]
pub struct CirNetConfig {
    /// The trunk.
    pub backbone: BackboneConfig,
    /// Global pooling (cirtorch `--pool`, default GeM).
    #[config(default = "Pooling::Gem")]
    pub pooling: Pooling,
    /// Initial GeM exponent.
    #[config(default = 3.0)]
    pub gem_p: f64,
    /// Append the whitening layer `Linear(D, D)` + L2N (cirtorch `--whitening`).
    #[config(default = false)]
    pub whitening: bool,
    /// Freeze the trunk's BatchNorm statistics (cirtorch trains with `set_batchnorm_eval`).
    #[config(default = true)]
    pub frozen_batchnorm: bool,
}

/// The field of a checkpoint folder's `config.json` that holds the network's configuration
/// ([`CirNet::load`], [`CosPlaceNet::load`]).
pub const NETWORK_FIELD: &str = "network";
/// The checkpoint part that holds a trainer's network weights.
pub const MODEL_PART: &str = "model.bpk";

impl CirNetConfig {
    /// Builds the network with random weights on `device`.
    ///
    /// # Errors
    /// [`crate::MetricError::Backbone`] / [`crate::MetricError::Config`] for an invalid trunk.
    pub fn init(&self, device: &Device) -> crate::Result<CirNet> {
        self.backbone.validate()?;
        let dim = self.backbone.out_channels();
        let mut backbone = self.backbone.init(device);
        if self.frozen_batchnorm {
            backbone = nightvision_core::freeze_batchnorm(backbone);
        }
        Ok(CirNet {
            backbone,
            pool: (self.pooling == Pooling::Gem)
                .then(|| GemConfig::new().with_p(self.gem_p).init(device)),
            whiten: self
                .whitening
                .then(|| LinearConfig::new(dim, dim).init(device)),
            pooling: self.pooling,
        })
    }
}

/// cirtorch's image retrieval network; the parameter names follow its `state_dict`
/// (`pool.p`, `whiten.{weight,bias}`), the trunk is under `backbone.<Variant>.*`.
#[derive(Module, Debug)]
pub struct CirNet {
    /// The convolutional trunk.
    pub backbone: Backbone,
    /// GeM pooling (`None` for MAC / SPoC).
    pub pool: Option<Gem>,
    /// The optional learned whitening (`Linear(D, D)`, bias included).
    pub whiten: Option<Linear>,
    #[module(skip)]
    pooling: Pooling,
}

impl CirNet {
    /// Rebuilds a trained network from its checkpoint folder alone: the configuration in the
    /// folder's `config.json` (field [`NETWORK_FIELD`], a [`CirNetConfig`]) and the weights of its
    /// newest checkpoint ([`MODEL_PART`]), as the trainers and the pipelines write them.
    ///
    /// # Errors
    /// [`crate::MetricError::Core`] for a folder without configuration or checkpoint, or with
    /// weights of another architecture; configuration errors as [`CirNetConfig::init`].
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> crate::Result<Self> {
        let ckpt = nightvision_core::checkpoint::CheckpointDir::open(dir.as_ref())?;
        let cfg: CirNetConfig = ckpt.config_field(NETWORK_FIELD)?;
        Ok(ckpt.load_latest(cfg.init(device)?, MODEL_PART)?)
    }
    /// L2-normalised global descriptors.
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, height, width]` (ImageNet-normalised RGB)
    /// - output: `[batch, dim]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let pooled = self.pool_features(self.backbone.forward(x));
        let o = pooling::l2n(pooled, pooling::L2N_EPS);
        match &self.whiten {
            Some(w) => pooling::l2n(w.forward(o), pooling::L2N_EPS),
            None => o,
        }
    }

    /// Pools a feature map with the network's pooling.
    ///
    /// # Shapes
    /// - `f`: `[batch, channels, h, w]` → `[batch, channels]`
    pub fn pool_features(&self, f: Tensor<4>) -> Tensor<2> {
        match (&self.pool, self.pooling) {
            (Some(g), _) => g.forward(f),
            (None, Pooling::Mac) => pooling::mac(f),
            (None, _) => pooling::spoc(f),
        }
    }

    /// The pooling kind.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// Descriptor dimension.
    pub fn dim(&self) -> usize {
        self.whiten
            .as_ref()
            .map(|w| w.weight.dims()[1])
            .unwrap_or_else(|| self.backbone.out_channels())
    }

    /// The learned GeM exponent (`None` for MAC / SPoC).
    pub fn gem_p(&self) -> Option<f32> {
        self.pool.as_ref().map(Gem::p_value)
    }

    /// The multi-scale power cirtorch uses (`msp`): GeM's `p` for a GeM network without a
    /// whitening layer, 1 otherwise (`test.py`).
    pub fn multiscale_power(&self) -> f32 {
        match (&self.pool, &self.whiten) {
            (Some(g), None) => g.p_value(),
            _ => 1.0,
        }
    }

    /// The key map of cirtorch checkpoints (`train.py` saves `{'epoch', 'meta', 'state_dict',
    /// 'min_loss', 'optimizer'}`): under `state_dict`, the trunk is `features.*` (see
    /// [`Backbone::sequential_remaps`]), GeM's exponent `pool.p`, the whitening `whiten.weight` /
    /// `whiten.bias`. Returns the remaps to pass to a [`WeightsLoader`].
    pub fn cirtorch_remaps(&self) -> Vec<(String, String)> {
        self.backbone.sequential_remaps("features", "backbone")
    }

    /// Loads a cirtorch checkpoint strictly. `top_level_key` is `Some("state_dict")` for the
    /// files cirtorch's `train.py` writes (and its released `retrievalSfM120k-*.pth`), `None` for
    /// a bare `state_dict`. A file's `whiten.*` keys are accepted and ignored when the network
    /// has no whitening layer.
    ///
    /// # Errors
    /// [`crate::MetricError::Core`] naming missing, unused or wrongly shaped keys.
    pub fn load_cirtorch(
        &mut self,
        path: impl AsRef<Path>,
        top_level_key: Option<&str>,
    ) -> crate::Result<LoadReport> {
        let mut loader = WeightsLoader::new().with_remaps(self.cirtorch_remaps());
        if let Some(key) = top_level_key {
            loader = loader.with_top_level_key(key);
        }
        if self.whiten.is_none() {
            loader = loader.allow_unused_prefix("whiten.");
        }
        Ok(loader.load(self, path)?)
    }
}

/// Configuration of a [`CosPlaceNet`].
#[derive(Config, Debug)]
pub struct CosPlaceNetConfig {
    /// The trunk.
    pub backbone: BackboneConfig,
    /// Descriptor dimension (`--fc_output_dim`, 512 or 2048 in the papers).
    pub fc_output_dim: usize,
    /// Initial GeM exponent.
    #[config(default = 3.0)]
    pub gem_p: f64,
    /// Train every trunk layer (`--train_all_layers`); otherwise ResNet's stem, `layer1` and
    /// `layer2` and all but VGG16's last three convolutions are frozen, as CosPlace does.
    #[config(default = false)]
    pub train_all_layers: bool,
}

impl CosPlaceNetConfig {
    /// Builds the network with random weights on `device`.
    ///
    /// # Errors
    /// [`crate::MetricError::Config`] for a zero output dimension or an invalid trunk.
    pub fn init(&self, device: &Device) -> crate::Result<CosPlaceNet> {
        self.backbone.validate()?;
        if self.fc_output_dim == 0 {
            return Err(crate::MetricError::config(
                "fc_output_dim",
                "must be positive",
            ));
        }
        let c = self.backbone.out_channels();
        let mut net = CosPlaceNet {
            backbone: self.backbone.init(device),
            aggregation: CosPlaceAggregation {
                gem: GemConfig::new().with_p(self.gem_p).init(device),
                fc: LinearConfig::new(c, self.fc_output_dim).init(device),
            },
        };
        if !self.train_all_layers {
            net = net.freeze_early_layers();
        }
        Ok(net)
    }

    /// [`CosPlaceNetConfig::init`], with the head (`aggregation.3`, the `Linear` after GeM)
    /// drawn from `rng` with `nn.Linear`'s default distribution (weight and bias
    /// `U(−1/√fan_in, 1/√fan_in)`), so that a run is reproducible across processes; the trunk
    /// comes from the device's generator as in `init` (load its weights).
    ///
    /// # Errors
    /// Those of [`CosPlaceNetConfig::init`].
    pub fn init_with_rng<R: rand::Rng + ?Sized>(
        &self,
        device: &Device,
        rng: &mut R,
    ) -> crate::Result<CosPlaceNet> {
        let mut net = self.init(device)?;
        let c = self.backbone.out_channels();
        let d = self.fc_output_dim;
        let bound = 1.0 / (c.max(1) as f32).sqrt();
        let mut draw =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-bound..bound)).collect() };
        let weight = Tensor::<2>::from_data(TensorData::new(draw(c * d), [c, d]), device);
        let bias = Tensor::<1>::from_data(TensorData::new(draw(d), [d]), device);
        let fc = &mut net.aggregation.fc;
        fc.weight = Param::from_tensor(weight);
        fc.bias = Some(Param::from_tensor(bias));
        Ok(net)
    }
}

/// CosPlace's `aggregation` Sequential: `0` L2Norm, `1` GeM (`p`), `2` Flatten, `3` Linear,
/// `4` L2Norm; only `1` and `3` hold parameters.
#[derive(Module, Debug)]
pub struct CosPlaceAggregation {
    /// `aggregation.1`.
    pub gem: Gem,
    /// `aggregation.3`.
    pub fc: Linear,
}

impl CosPlaceAggregation {
    /// # Shapes
    /// - `f`: `[batch, channels, h, w]` → `[batch, fc_output_dim]`
    pub fn forward(&self, f: Tensor<4>) -> Tensor<2> {
        let g = self.gem.forward(pooling::channel_l2(f));
        pooling::normalize(self.fc.forward(g), 1, pooling::NORMALIZE_EPS)
    }
}

/// CosPlace's geo-localisation network.
#[derive(Module, Debug)]
pub struct CosPlaceNet {
    /// The trunk (`backbone.*` in CosPlace checkpoints).
    pub backbone: Backbone,
    /// GeM + Linear aggregation (`aggregation.*`).
    pub aggregation: CosPlaceAggregation,
}

impl CosPlaceNet {
    /// Rebuilds a trained network from its checkpoint folder alone: the configuration in the
    /// folder's `config.json` (field [`NETWORK_FIELD`], a [`CosPlaceNetConfig`]) and the weights of its
    /// newest checkpoint ([`MODEL_PART`]), as the trainers and the pipelines write them.
    ///
    /// # Errors
    /// [`crate::MetricError::Core`] for a folder without configuration or checkpoint, or with
    /// weights of another architecture; configuration errors as [`CosPlaceNetConfig::init`].
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> crate::Result<Self> {
        let ckpt = nightvision_core::checkpoint::CheckpointDir::open(dir.as_ref())?;
        let cfg: CosPlaceNetConfig = ckpt.config_field(NETWORK_FIELD)?;
        Ok(ckpt.load_latest(cfg.init(device)?, MODEL_PART)?)
    }
    /// L2-normalised descriptors.
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, height, width]` (ImageNet-normalised RGB)
    /// - output: `[batch, fc_output_dim]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.aggregation.forward(self.backbone.forward_cosplace(x))
    }

    /// Descriptor dimension.
    pub fn dim(&self) -> usize {
        self.aggregation.fc.weight.dims()[1]
    }

    /// Freezes (no gradient) the layers CosPlace freezes without `--train_all_layers`: ResNet's
    /// `conv1`, `bn1`, `layer1`, `layer2`; VGG16's first ten convolutions (`layers[:-5]` of
    /// `features[:-2]` keep the last three convolutions trainable). MobileNetV2 is not
    /// supported by CosPlace and is left fully trainable.
    pub fn freeze_early_layers(mut self) -> Self {
        self.backbone = match self.backbone {
            Backbone::ResNet(mut r) => {
                r.conv1 = r.conv1.no_grad();
                r.bn1 = r.bn1.no_grad();
                r.layer1 = r.layer1.into_iter().map(|b| b.no_grad()).collect();
                r.layer2 = r.layer2.into_iter().map(|b| b.no_grad()).collect();
                Backbone::ResNet(r)
            }
            Backbone::Vgg16(mut v) => {
                let n = v.features.len();
                v.features = v
                    .features
                    .into_iter()
                    .enumerate()
                    .map(|(i, c)| if i + 3 < n { c.no_grad() } else { c })
                    .collect();
                Backbone::Vgg16(v)
            }
            other => other,
        };
        self
    }

    /// The key map of CosPlace checkpoints (`torch.save(model.state_dict())`; the training
    /// checkpoint `last_checkpoint.pth` holds it under `model_state_dict`): the trunk is
    /// `backbone.*` (see [`Backbone::sequential_remaps`]), GeM's exponent `aggregation.1.p`, the
    /// Linear `aggregation.3.{weight,bias}`.
    pub fn cosplace_remaps(&self) -> Vec<(String, String)> {
        let mut r = self.backbone.sequential_remaps("backbone", "backbone");
        r.push((r"^aggregation\.1\.p$".into(), "aggregation.gem.p".into()));
        r.push((
            r"^aggregation\.3\.(weight|bias)$".into(),
            "aggregation.fc.$1".into(),
        ));
        r
    }

    /// Loads a CosPlace (or NocPlace CosPlace-backbone) checkpoint strictly; `top_level_key`
    /// is `Some("model_state_dict")` for a training checkpoint, `None` for a bare `state_dict`.
    ///
    /// # Errors
    /// [`crate::MetricError::Core`] naming missing, unused or wrongly shaped keys.
    pub fn load_cosplace(
        &mut self,
        path: impl AsRef<Path>,
        top_level_key: Option<&str>,
    ) -> crate::Result<LoadReport> {
        let mut loader = WeightsLoader::new().with_remaps(self.cosplace_remaps());
        if let Some(key) = top_level_key {
            loader = loader.with_top_level_key(key);
        }
        Ok(loader.load(self, path)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nightvision_core::rng::seeded;

    #[test]
    fn a_seeded_head_is_reproducible_and_within_the_linear_default_bound() {
        let device = Device::default();
        let cfg = CosPlaceNetConfig::new(
            BackboneConfig::ResNet(backbones::ResNetConfig::resnet18().with_base_width(4)),
            16,
        );
        let head = |seed| {
            let net = cfg.init_with_rng(&device, &mut seeded(seed)).unwrap();
            let w: Vec<f32> = net
                .aggregation
                .fc
                .weight
                .val()
                .into_data()
                .try_into_vec_as::<f32>()
                .unwrap();
            let b: Vec<f32> = net
                .aggregation
                .fc
                .bias
                .unwrap()
                .val()
                .into_data()
                .try_into_vec_as::<f32>()
                .unwrap();
            (w, b)
        };
        let (a, b) = (head(7), head(7));
        assert_eq!(a, b, "the same seed draws the same head");
        assert_ne!(a, head(8), "another seed draws another head");
        let c = cfg.backbone.out_channels();
        assert_eq!((a.0.len(), a.1.len()), (c * 16, 16));
        let bound = 1.0 / (c as f32).sqrt();
        assert!(a.0.iter().chain(&a.1).all(|v| v.abs() <= bound));
        // Uniform on [−bound, bound]: variance bound² / 3.
        let var = a.0.iter().map(|v| v * v).sum::<f32>() / a.0.len() as f32;
        assert!((var / (bound * bound / 3.0) - 1.0).abs() < 0.15, "{var}");
    }
}
