//! The papers' losses.
//!
//! | loss | source | formula |
//! |---|---|---|
//! | [`ContrastiveLoss`] | cirtorch `contrastive_loss` (docs/PAPERS.md A.6, C.3; docs/PAPERS.md protocols 1.2) | `Σ ½·y·D² + ½·(1−y)·max(m − D, 0)²`, `D = ‖q − x + ε‖₂` (ε = 1e-6 on every coordinate), **sum** |
//! | [`TripletLoss`] | cirtorch `triplet_loss` | `Σ max(‖a − p‖² − ‖a − n‖² + m, 0)`, sum, m = 0.1 |
//! | [`MarginCosineProduct`] + [`cross_entropy`] | CosPlace / NocPlace `cosface_loss.py` (B.3) | `logits = s·(cos(x, W_j) − m·[j = y])`, s = 30, m = 0.4 |
//! | [`ikt_loss`] | NocPlace `ikt_loss.py::SoftTarget` (B.4) | `T²·KL(softmax(z_t/T) ‖ softmax(z_s/T))`, batchmean, T = 4 |
//! | [`NocPlaceLoss`] | NocPlace `train.py` (B.4) | `CE(z_s, y) + λ·IKT(z_s, z_t)`, `z_s = CosFace(f(x_night), y)`, `z_t = CosFace(d_day, y)` |
//!
//! Tuple losses take descriptors as rows `[N, D]` packed per tuple `[q, p, n1 … nk]` with labels
//! `-1` (query), `1` (positive), `0` (negative) — cirtorch's layout, transposed.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};

use crate::backbone::BackboneKind;
use crate::error::MetricError;

/// cirtorch's contrastive-loss eps.
pub const CONTRASTIVE_EPS: f64 = 1e-6;

/// The layout of a packed batch of tuples.
#[derive(Debug, Clone, PartialEq)]
pub struct TupleLayout {
    /// Number of tuples.
    pub tuples: usize,
    /// Images per tuple, query included.
    pub size: usize,
    /// Row of each pair's query (one entry per non-query row).
    pub query_rows: Vec<i64>,
    /// Row of each pair's other image.
    pub other_rows: Vec<i64>,
    /// Each pair's label (1 positive, 0 negative).
    pub pair_labels: Vec<f32>,
}

impl TupleLayout {
    /// Checks cirtorch's tuple labels for `n` descriptors: every tuple has the same size `S ≥
    /// min_size` and starts with its query (`-1`), followed by `1`s and `0`s.
    ///
    /// # Errors
    /// [`MetricError::Shape`] when `labels.len() != n`, [`MetricError::Labels`] otherwise.
    pub fn from_labels(labels: &[i64], n: usize, min_size: usize) -> crate::Result<Self> {
        if labels.len() != n {
            return Err(MetricError::shape(
                "tuple labels",
                format!("{n} labels (one per descriptor)"),
                labels.len(),
            ));
        }
        let tuples = labels.iter().filter(|&&l| l == -1).count();
        if tuples == 0 {
            return Err(MetricError::Labels {
                reason: "no query (label -1)".into(),
            });
        }
        if !n.is_multiple_of(tuples) {
            return Err(MetricError::Labels {
                reason: format!("{n} descriptors cannot be split into {tuples} equal tuples"),
            });
        }
        let size = n / tuples;
        if size < min_size {
            return Err(MetricError::Labels {
                reason: format!("tuples of {size} images; at least {min_size} are needed"),
            });
        }
        let mut layout = Self {
            tuples,
            size,
            query_rows: Vec::with_capacity(n - tuples),
            other_rows: Vec::with_capacity(n - tuples),
            pair_labels: Vec::with_capacity(n - tuples),
        };
        for t in 0..tuples {
            let start = t * size;
            if labels[start] != -1 {
                return Err(MetricError::Labels {
                    reason: format!(
                        "tuple {t} does not start with its query (label at row {start} is {})",
                        labels[start]
                    ),
                });
            }
            for (j, &l) in labels.iter().enumerate().take(start + size).skip(start + 1) {
                if l != 0 && l != 1 {
                    return Err(MetricError::Labels {
                        reason: format!(
                            "label {l} at row {j}: only -1 (first of a tuple), 1 and 0 are allowed"
                        ),
                    });
                }
                layout.query_rows.push(start as i64);
                layout.other_rows.push(j as i64);
                layout.pair_labels.push(l as f32);
            }
        }
        Ok(layout)
    }

    /// cirtorch's labels for `tuples` tuples of one query, one positive and `negatives`
    /// negatives: `[-1, 1, 0, …, 0]` repeated.
    pub fn standard_labels(tuples: usize, negatives: usize) -> Vec<i64> {
        (0..tuples)
            .flat_map(|_| [-1, 1].into_iter().chain(std::iter::repeat_n(0, negatives)))
            .collect()
    }
}

fn rows(x: &Tensor<2>, idx: &[i64]) -> Tensor<2> {
    let device = x.device();
    x.clone().select(
        0,
        Tensor::<1, Int>::from_data(TensorData::new(idx.to_vec(), [idx.len()]), &device),
    )
}

/// Configuration of [`ContrastiveLoss`].
#[derive(Config, Debug)]
pub struct ContrastiveLossConfig {
    /// The margin (cirtorch default 0.7; 0.75 for VGG16, 0.85 for ResNet-101 in the papers).
    #[config(default = 0.7)]
    pub margin: f64,
    /// Added to every coordinate of `q − x` before the norm.
    #[config(default = 1e-6)]
    pub eps: f64,
}

impl ContrastiveLossConfig {
    /// The papers' margin for a trunk: 0.75 for VGG16 (Dark Side Augmentation), 0.85 for
    /// bottleneck ResNets (ResNet-101 in DSA and Similarity Min-Max), cirtorch's default 0.7
    /// otherwise.
    pub fn for_backbone(kind: BackboneKind) -> Self {
        let margin = match kind {
            BackboneKind::Vgg16 => 0.75,
            BackboneKind::ResNetBottleneck => 0.85,
            _ => 0.7,
        };
        Self::new().with_margin(margin)
    }

    /// Builds the loss.
    pub fn init(&self) -> ContrastiveLoss {
        ContrastiveLoss {
            margin: self.margin,
            eps: self.eps,
        }
    }
}

/// cirtorch's contrastive loss (sum over the (query, other) pairs of every tuple).
#[derive(Debug, Clone, PartialEq)]
pub struct ContrastiveLoss {
    /// Margin for negatives.
    pub margin: f64,
    /// Per-coordinate eps inside the distance.
    pub eps: f64,
}

impl ContrastiveLoss {
    /// The summed loss.
    ///
    /// # Shapes
    /// - `x`: `[N, D]` descriptors packed per tuple; `labels`: `N` values
    /// - output: `[1]`
    ///
    /// # Errors
    /// [`MetricError::Shape`] / [`MetricError::Labels`] for labels that do not describe tuples.
    pub fn forward(&self, x: Tensor<2>, labels: &[i64]) -> crate::Result<Tensor<1>> {
        Ok(self.forward_no_reduction(x, labels)?.sum())
    }

    /// The loss of every (query, other) pair, in tuple order.
    ///
    /// # Shapes
    /// - `x`: `[N, D]`; output: `[N − tuples]`
    ///
    /// # Errors
    /// As [`ContrastiveLoss::forward`].
    pub fn forward_no_reduction(&self, x: Tensor<2>, labels: &[i64]) -> crate::Result<Tensor<1>> {
        let [n, _] = x.dims();
        let layout = TupleLayout::from_labels(labels, n, 2)?;
        let device = x.device();
        let q = rows(&x, &layout.query_rows);
        let o = rows(&x, &layout.other_rows);
        let p = layout.pair_labels.len();
        let lbl = Tensor::<1>::from_data(TensorData::new(layout.pair_labels, [p]), &device);
        let d2 = (q - o)
            .add_scalar(self.eps)
            .powf_scalar(2.0)
            .sum_dim(1)
            .reshape([p]);
        let d = d2.clone().sqrt();
        let pos = lbl.clone().mul(d2).mul_scalar(0.5);
        let hinge = d
            .neg()
            .add_scalar(self.margin)
            .clamp_min(0.0)
            .powf_scalar(2.0);
        let neg = lbl.neg().add_scalar(1.0).mul(hinge).mul_scalar(0.5);
        Ok(pos + neg)
    }
}

/// Configuration of [`TripletLoss`].
#[derive(Config, Debug)]
pub struct TripletLossConfig {
    /// The margin (cirtorch default 0.1).
    #[config(default = 0.1)]
    pub margin: f64,
}

impl TripletLossConfig {
    /// Builds the loss.
    pub fn init(&self) -> TripletLoss {
        TripletLoss {
            margin: self.margin,
        }
    }
}

/// cirtorch's triplet loss on squared distances (sum over the negatives of every tuple).
#[derive(Debug, Clone, PartialEq)]
pub struct TripletLoss {
    /// The margin.
    pub margin: f64,
}

impl TripletLoss {
    /// The summed loss.
    ///
    /// # Shapes
    /// - `x`: `[N, D]` packed `[q, p, n1 … nk]` per tuple; output `[1]`
    ///
    /// # Errors
    /// [`MetricError::Labels`] unless every tuple is `[-1, 1, 0, …, 0]` with at least one
    /// negative; [`MetricError::Shape`] for a label count that differs from `N`.
    pub fn forward(&self, x: Tensor<2>, labels: &[i64]) -> crate::Result<Tensor<1>> {
        Ok(self.forward_no_reduction(x, labels)?.sum())
    }

    /// The hinge of every (anchor, positive, negative) triplet, in tuple order.
    ///
    /// # Shapes
    /// - `x`: `[N, D]`; output: `[tuples · (S − 2)]`
    ///
    /// # Errors
    /// As [`TripletLoss::forward`].
    pub fn forward_no_reduction(&self, x: Tensor<2>, labels: &[i64]) -> crate::Result<Tensor<1>> {
        let [n, _] = x.dims();
        let layout = TupleLayout::from_labels(labels, n, 3)?;
        let s = layout.size;
        let (mut a, mut p, mut ng) = (Vec::new(), Vec::new(), Vec::new());
        for t in 0..layout.tuples {
            let start = t * s;
            if labels[start + 1] != 1 || labels[start + 2..start + s].iter().any(|&l| l != 0) {
                return Err(MetricError::Labels {
                    reason: format!(
                        "triplet tuples are [-1, 1, 0, …, 0]; tuple {t} is {:?}",
                        &labels[start..start + s]
                    ),
                });
            }
            for j in 2..s {
                a.push(start as i64);
                p.push(start as i64 + 1);
                ng.push((start + j) as i64);
            }
        }
        let m = a.len();
        let xa = rows(&x, &a);
        let dp = (xa.clone() - rows(&x, &p))
            .powf_scalar(2.0)
            .sum_dim(1)
            .reshape([m]);
        let dn = (xa - rows(&x, &ng))
            .powf_scalar(2.0)
            .sum_dim(1)
            .reshape([m]);
        Ok((dp - dn).add_scalar(self.margin).clamp_min(0.0))
    }
}

/// Configuration of [`MarginCosineProduct`] (CosFace / LMC).
#[derive(Config, Debug)]
pub struct MarginCosineProductConfig {
    /// Descriptor dimension.
    pub in_features: usize,
    /// Number of classes.
    pub out_features: usize,
    /// Scale (CosPlace 30).
    #[config(default = 30.0)]
    pub s: f64,
    /// Additive cosine margin (CosPlace 0.4).
    #[config(default = 0.4)]
    pub m: f64,
}

impl MarginCosineProductConfig {
    /// Builds the classifier with Xavier-uniform weights (`nn.init.xavier_uniform_`).
    ///
    /// # Errors
    /// [`MetricError::Config`] for zero sizes.
    pub fn init(&self, device: &Device) -> crate::Result<MarginCosineProduct> {
        if self.in_features == 0 || self.out_features == 0 {
            return Err(MetricError::config(
                "MarginCosineProduct",
                "in_features and out_features must be positive",
            ));
        }
        let bound = (6.0 / (self.in_features + self.out_features) as f64).sqrt();
        let weight = Tensor::<2>::random(
            [self.out_features, self.in_features],
            Distribution::Uniform(-bound, bound),
            device,
        );
        self.build(weight)
    }

    /// As [`MarginCosineProductConfig::init`], drawing the Xavier-uniform weights on the host from
    /// `rng` (reproducible independently of the device's random state).
    ///
    /// # Errors
    /// [`MetricError::Config`] for zero sizes.
    pub fn init_with_rng<R: rand::Rng + ?Sized>(
        &self,
        device: &Device,
        rng: &mut R,
    ) -> crate::Result<MarginCosineProduct> {
        let bound = (6.0 / (self.in_features + self.out_features).max(1) as f64).sqrt() as f32;
        let v: Vec<f32> = (0..self.out_features * self.in_features)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let weight = Tensor::<2>::from_data(
            TensorData::new(v, [self.out_features, self.in_features]),
            device,
        );
        self.build(weight)
    }

    fn build(&self, weight: Tensor<2>) -> crate::Result<MarginCosineProduct> {
        if self.in_features == 0 || self.out_features == 0 {
            return Err(MetricError::config(
                "MarginCosineProduct",
                "in_features and out_features must be positive",
            ));
        }
        Ok(MarginCosineProduct {
            weight: Param::from_tensor(weight),
            s: self.s,
            m: self.m,
        })
    }
}

/// CosPlace's large-margin cosine classifier (one per CosPlace group).
#[derive(Module, Debug)]
pub struct MarginCosineProduct {
    /// Class weights `[classes, in_features]` (PyTorch layout, key `weight`).
    pub weight: Param<Tensor<2>>,
    /// Scale.
    pub s: f64,
    /// Margin.
    pub m: f64,
}

impl MarginCosineProduct {
    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.weight.dims()[0]
    }

    /// The margin logits `s·(cos − m·onehot(y))`, with `cos = x Wᵀ / max(‖x‖·‖w‖, 1e-8)`.
    ///
    /// # Shapes
    /// - `x`: `[batch, in_features]`; `labels`: `batch` class indices
    /// - output: `[batch, classes]`
    ///
    /// # Errors
    /// [`MetricError::Shape`] for a wrong descriptor size or label count,
    /// [`MetricError::Index`] for a label outside the classes.
    pub fn forward(&self, x: Tensor<2>, labels: &[usize]) -> crate::Result<Tensor<2>> {
        let [b, d] = x.dims();
        let [c, wd] = self.weight.dims();
        if d != wd {
            return Err(MetricError::shape("CosFace descriptor dimension", wd, d));
        }
        if labels.len() != b {
            return Err(MetricError::shape("CosFace labels", b, labels.len()));
        }
        if let Some(&bad) = labels.iter().find(|&&l| l >= c) {
            return Err(MetricError::Index {
                what: "CosFace class label",
                index: bad,
                len: c,
            });
        }
        let w = self.weight.val();
        let ip = x.clone().matmul(w.clone().transpose());
        let nx = x.powf_scalar(2.0).sum_dim(1).sqrt(); // [b, 1]
        let nw = w.powf_scalar(2.0).sum_dim(1).sqrt().transpose(); // [1, c]
        let cos = ip.div(nx.matmul(nw).clamp_min(1e-8));
        let onehot = one_hot(labels, c, &cos.device());
        Ok(cos.sub(onehot.mul_scalar(self.m)).mul_scalar(self.s))
    }
}

fn one_hot(labels: &[usize], classes: usize, device: &Device) -> Tensor<2> {
    let mut v = vec![0f32; labels.len() * classes];
    for (i, &l) in labels.iter().enumerate() {
        v[i * classes + l] = 1.0;
    }
    Tensor::from_data(TensorData::new(v, [labels.len(), classes]), device)
}

/// Mean cross-entropy of logits against class labels (`nn.CrossEntropyLoss()`).
///
/// # Shapes
/// - `logits`: `[batch, classes]`; `labels`: `batch` indices; output `[1]`
///
/// # Errors
/// [`MetricError::Shape`] / [`MetricError::Index`] for labels that do not fit the logits,
/// [`MetricError::Empty`] for an empty batch.
pub fn cross_entropy(logits: Tensor<2>, labels: &[usize]) -> crate::Result<Tensor<1>> {
    let [b, c] = logits.dims();
    if b == 0 {
        return Err(MetricError::Empty {
            what: "cross-entropy batch",
        });
    }
    if labels.len() != b {
        return Err(MetricError::shape("cross-entropy labels", b, labels.len()));
    }
    if let Some(&bad) = labels.iter().find(|&&l| l >= c) {
        return Err(MetricError::Index {
            what: "cross-entropy label",
            index: bad,
            len: c,
        });
    }
    let onehot = one_hot(labels, c, &logits.device());
    Ok(log_softmax(logits, 1)
        .mul(onehot)
        .sum()
        .neg()
        .div_scalar(b as f64))
}

/// Inherited knowledge transfer (NocPlace `SoftTarget`): `T²·KL(softmax(z_t/T) ‖ softmax(z_s/T))`
/// with `reduction='batchmean'` (sum over classes and batch, divided by the batch size). Both
/// inputs keep their gradients, as in NocPlace (the teacher logits come from the same, trained
/// classifier).
///
/// # Shapes
/// - `student`, `teacher`: `[batch, classes]`; output `[1]`
///
/// # Errors
/// [`MetricError::Shape`] when the shapes differ, [`MetricError::Config`] for `T ≤ 0`.
pub fn ikt_loss(
    student: Tensor<2>,
    teacher: Tensor<2>,
    temperature: f64,
) -> crate::Result<Tensor<1>> {
    if student.dims() != teacher.dims() {
        return Err(MetricError::shape(
            "IKT logits",
            format!("{:?}", student.dims()),
            format!("{:?}", teacher.dims()),
        ));
    }
    if !(temperature > 0.0 && temperature.is_finite()) {
        return Err(MetricError::config(
            "IKT temperature",
            format!("must be positive, got {temperature}"),
        ));
    }
    let b = student.dims()[0].max(1);
    let ls = log_softmax(student.div_scalar(temperature), 1);
    let zt = teacher.div_scalar(temperature);
    let pt = softmax(zt.clone(), 1);
    let lt = log_softmax(zt, 1);
    Ok(pt
        .mul(lt - ls)
        .sum()
        .div_scalar(b as f64)
        .mul_scalar(temperature * temperature))
}

/// Configuration of [`NocPlaceLoss`] (docs/PAPERS.md B.4, B.5).
#[derive(Config, Debug)]
pub struct NocPlaceLossConfig {
    /// IKT temperature (`--T`, 4).
    #[config(default = 4.0)]
    pub temperature: f64,
    /// IKT weight (`--lambda_kd`, 1).
    #[config(default = 1.0)]
    pub lambda_ikt: f64,
}

impl NocPlaceLossConfig {
    /// Builds the loss.
    pub fn init(&self) -> NocPlaceLoss {
        NocPlaceLoss {
            temperature: self.temperature,
            lambda_ikt: self.lambda_ikt,
        }
    }
}

/// The parts of a NocPlace loss evaluation.
#[derive(Debug, Clone)]
pub struct NocPlaceLossOutput {
    /// `ce + λ·ikt`, shape `[1]`.
    pub total: Tensor<1>,
    /// The CosFace cross-entropy, shape `[1]`.
    pub ce: Tensor<1>,
    /// The (unweighted) IKT term, shape `[1]`, when inherited descriptors were given.
    pub ikt: Option<Tensor<1>>,
}

/// NocPlace's training loss: CosFace cross-entropy on the (night) descriptors plus, when the
/// day model's inherited descriptors are given, λ·IKT between the classifier's margin logits of
/// both.
#[derive(Debug, Clone, PartialEq)]
pub struct NocPlaceLoss {
    /// IKT temperature.
    pub temperature: f64,
    /// IKT weight.
    pub lambda_ikt: f64,
}

impl NocPlaceLoss {
    /// Evaluates the loss.
    ///
    /// # Shapes
    /// - `descriptors`, `inherited`: `[batch, dim]`; `labels`: `batch` class indices
    ///
    /// # Errors
    /// [`MetricError::Shape`] when `inherited` differs in shape from `descriptors`, and the
    /// errors of [`MarginCosineProduct::forward`].
    pub fn forward(
        &self,
        classifier: &MarginCosineProduct,
        descriptors: Tensor<2>,
        inherited: Option<Tensor<2>>,
        labels: &[usize],
    ) -> crate::Result<NocPlaceLossOutput> {
        let out = classifier.forward(descriptors.clone(), labels)?;
        let ce = cross_entropy(out.clone(), labels)?;
        let Some(inh) = inherited else {
            return Ok(NocPlaceLossOutput {
                total: ce.clone(),
                ce,
                ikt: None,
            });
        };
        if inh.dims() != descriptors.dims() {
            return Err(MetricError::shape(
                "inherited descriptors",
                format!("{:?}", descriptors.dims()),
                format!("{:?}", inh.dims()),
            ));
        }
        let teacher = classifier.forward(inh, labels)?;
        let ikt = ikt_loss(out, teacher, self.temperature)?;
        Ok(NocPlaceLossOutput {
            total: ce.clone() + ikt.clone().mul_scalar(self.lambda_ikt),
            ce,
            ikt: Some(ikt),
        })
    }
}
