//! HED's class-balanced cross-entropy and the HED^N teacher/student losses.
//!
//! - [`class_balanced_bce`], [`hed_loss`]: the HED paper's deep supervision (docs/PAPERS.md protocols 3.3,
//!   s9xie/hed's modified `SigmoidCrossEntropyLossLayer`): per image, a pixel labelled 1 is
//!   weighted by the share of pixels labelled 0, a pixel labelled 0 by the share labelled 1, other
//!   label values are ignored; the weighted sigmoid cross-entropies are summed over pixels and
//!   averaged over images; the total is the sum over the five side outputs and the fusion.
//! - [`HedNLossConfig`]: HEDN-GAN (docs/PAPERS.md A.4, gandtr `SupervisedHedNGanEpoch`). A trainable
//!   student detector `H_s` (initialised from the same weights as the teacher) learns to give the
//!   *day* edge map of the frozen teacher `H_t` both for the day image and for its translated night
//!   version, on logits: `L_E = hed · [L1(H_s(x), H_t(x)) + L1(H_s(G(x)), H_t(x))]`; the
//!   generator's edge-consistency term compares sigmoid maps: `edge · L1(σ(H_s(G(x))), σ(H_t(x)))`
//!   (`hed = 1`, `edge = 5`; L1 with mean reduction). With `H_s = H_t` the second term is
//!   HEDGAN's `5 · L1(H(G(x)), H(x))`.

use burn::config::Config;
use burn::tensor::Tensor;
use burn::tensor::activation::{log_sigmoid, sigmoid};

use crate::{Hed, HedError, HedOutput};

fn same_shape(what: &'static str, got: &Tensor<4>, expected: &Tensor<4>) -> crate::Result<()> {
    if got.dims() != expected.dims() {
        return Err(HedError::ShapeMismatch {
            what,
            expected: expected.dims().to_vec(),
            got: got.dims().to_vec(),
        });
    }
    Ok(())
}

/// HED's class-balanced sigmoid cross-entropy of one map (see the [module docs](self)):
///
/// `loss = 1/B · Σ_b [ Σ_{y=1} −log σ(x)·|Y−|/(|Y+|+|Y−|) + Σ_{y=0} −log(1−σ(x))·|Y+|/(|Y+|+|Y−|) ]`
///
/// with `|Y+|`, `|Y−|` the numbers of pixels of image `b` labelled exactly 1 and 0; pixels with
/// any other label (e.g. BSDS's uncertain 0.5) are ignored. Computed from logits with
/// `log_sigmoid`, stable for any logit.
///
/// # Shapes
/// - `logits`, `labels`: `[batch, 1, height, width]` (any equal 4-D shapes)
/// - output: `[1]`
///
/// # Errors
/// [`HedError::ShapeMismatch`] when the shapes differ.
pub fn class_balanced_bce(logits: Tensor<4>, labels: Tensor<4>) -> crate::Result<Tensor<1>> {
    same_shape("labels", &labels, &logits)?;
    let batch = logits.dims()[0];
    let x = logits.flatten::<2>(1, 3);
    let y = labels.flatten::<2>(1, 3);
    let pos = y.clone().equal_elem(1.0).float();
    let neg = y.equal_elem(0.0).float();
    let n_pos = pos.clone().sum_dim(1);
    let n_neg = neg.clone().sum_dim(1);
    let total = (n_pos.clone() + n_neg.clone()).clamp_min(1.0);
    let w_pos = n_neg / total.clone();
    let w_neg = n_pos / total;
    let loss_pos = log_sigmoid(x.clone()).neg() * pos * w_pos;
    let loss_neg = log_sigmoid(x.neg()).neg() * neg * w_neg;
    Ok((loss_pos + loss_neg).sum().div_scalar(batch.max(1) as f64))
}

/// HED's deep-supervision loss: [`class_balanced_bce`] of each side output plus that of the
/// fusion, all against the same labels (Caffe `loss_weight` 1 each).
///
/// # Shapes
/// - `output`: logits from [`Hed::forward_output`], six maps `[batch, 1, height, width]`
/// - `labels`: `[batch, 1, height, width]`, 1 = edge, 0 = no edge, anything else ignored
/// - output: `[1]`
///
/// # Errors
/// [`HedError::ShapeMismatch`] when the labels do not have the maps' shape.
pub fn hed_loss(output: &HedOutput, labels: Tensor<4>) -> crate::Result<Tensor<1>> {
    let mut total: Option<Tensor<1>> = None;
    for map in output.maps() {
        let l = class_balanced_bce(map.clone(), labels.clone())?;
        total = Some(match total {
            Some(t) => t + l,
            None => l,
        });
    }
    // `maps()` always yields six maps.
    Ok(total.unwrap_or_else(|| Tensor::zeros([1], &labels.device())))
}

/// Mean absolute difference between the student's logits and the teacher's (detached) logits.
///
/// # Shapes
/// - `student`, `teacher`: equal shapes `[batch, 1, height, width]`
/// - output: `[1]`
///
/// # Errors
/// [`HedError::ShapeMismatch`] when the shapes differ.
pub fn distillation_l1(student: Tensor<4>, teacher: Tensor<4>) -> crate::Result<Tensor<1>> {
    same_shape("teacher logits", &teacher, &student)?;
    Ok((student - teacher.detach()).abs().mean())
}

/// Mean absolute difference of the edge probabilities `σ(logits)` and `σ(target_logits)`, the
/// target detached: the edge-consistency term of HEDGAN / HEDN-GAN before its weight.
///
/// # Shapes
/// - `logits`, `target_logits`: equal shapes `[batch, 1, height, width]`
/// - output: `[1]`
///
/// # Errors
/// [`HedError::ShapeMismatch`] when the shapes differ.
pub fn edge_consistency_l1(
    logits: Tensor<4>,
    target_logits: Tensor<4>,
) -> crate::Result<Tensor<1>> {
    same_shape("target logits", &target_logits, &logits)?;
    Ok((sigmoid(logits) - sigmoid(target_logits.detach()))
        .abs()
        .mean())
}

/// Weights of the HED^N losses (gandtr `train_hedngan.yml`: `hed: 1`, edge consistency 5).
///
/// Build the teacher and the student from the same weights file (two [`Hed::load_weights`] calls,
/// or load once and clone): freeze the teacher with `Module::no_grad`. Do not clone a freshly
/// initialised, never-loaded `Hed`: burn shares lazily initialised parameters between clones, and
/// `no_grad` on the clone would freeze the original as well.
#[derive(Config, Debug)]
pub struct HedNLossConfig {
    /// Weight of each of the two student distillation terms (`hed`).
    #[config(default = 1.0)]
    pub hed: f64,
    /// Weight of the generator's edge-consistency term.
    #[config(default = 5.0)]
    pub edge: f64,
}

impl HedNLossConfig {
    /// The detector (student) loss from logits: `hed · [L1(s_day, t_day) + L1(s_night, t_day)]`,
    /// the teacher's logits detached.
    ///
    /// # Shapes
    /// - all three: `[batch, 1, height, width]`; output `[1]`
    ///
    /// # Errors
    /// [`HedError::ShapeMismatch`] when the shapes differ.
    pub fn detector_loss_from_logits(
        &self,
        student_day: Tensor<4>,
        student_night: Tensor<4>,
        teacher_day: Tensor<4>,
    ) -> crate::Result<Tensor<1>> {
        let day = distillation_l1(student_day, teacher_day.clone())?;
        let night = distillation_l1(student_night, teacher_day)?;
        Ok((day + night).mul_scalar(self.hed))
    }

    /// The generator's edge-consistency term from logits: `edge · L1(σ(s_fake), σ(t_day))`, the
    /// teacher's logits detached (the gradient reaches the student's input, i.e. the generator).
    ///
    /// # Shapes
    /// - both: `[batch, 1, height, width]`; output `[1]`
    ///
    /// # Errors
    /// [`HedError::ShapeMismatch`] when the shapes differ.
    pub fn edge_loss_from_logits(
        &self,
        student_fake: Tensor<4>,
        teacher_day: Tensor<4>,
    ) -> crate::Result<Tensor<1>> {
        Ok(edge_consistency_l1(student_fake, teacher_day)?.mul_scalar(self.edge))
    }

    /// The detector step of HEDN-GAN (docs/PAPERS.md A.4, step 2): runs the frozen teacher on the day
    /// image (detached) and the student on the day image and on the translated night image, which
    /// is detached so that no gradient reaches the generator.
    ///
    /// # Shapes
    /// - `day`, `fake_night`: `[batch, 3, height, width]`, RGB in `[0, 1]` (bring a generator's
    ///   `[-1, 1]` output back with `Normalization::MinusOneOne.invert`); output `[1]`
    ///
    /// # Errors
    /// [`HedError::InputChannels`], [`HedError::InputTooSmall`], [`HedError::ShapeMismatch`].
    pub fn detector_loss(
        &self,
        student: &Hed,
        teacher: &Hed,
        day: Tensor<4>,
        fake_night: Tensor<4>,
    ) -> crate::Result<Tensor<1>> {
        Hed::check_input(&day)?;
        Hed::check_input(&fake_night)?;
        let teacher_day = teacher.forward_logits(day.clone()).detach();
        let student_day = student.forward_logits(day);
        let student_night = student.forward_logits(fake_night.detach());
        self.detector_loss_from_logits(student_day, student_night, teacher_day)
    }

    /// The generator's edge-consistency term of HEDN-GAN (docs/PAPERS.md A.4, step 3): the student on
    /// the translated image against the teacher's (detached) day map, as sigmoid maps. Only the
    /// generator is stepped with it; the student's parameters receive gradients that its optimiser
    /// must not apply (pass the student as `student.clone().no_grad()` to avoid computing them).
    ///
    /// # Shapes
    /// - `day`, `fake_night`: `[batch, 3, height, width]`, RGB in `[0, 1]`; output `[1]`
    ///
    /// # Errors
    /// [`HedError::InputChannels`], [`HedError::InputTooSmall`], [`HedError::ShapeMismatch`].
    pub fn generator_edge_loss(
        &self,
        student: &Hed,
        teacher: &Hed,
        day: Tensor<4>,
        fake_night: Tensor<4>,
    ) -> crate::Result<Tensor<1>> {
        Hed::check_input(&day)?;
        Hed::check_input(&fake_night)?;
        let teacher_day = teacher.forward_logits(day).detach();
        let student_fake = student.forward_logits(fake_night);
        self.edge_loss_from_logits(student_fake, teacher_day)
    }
}
