//! Learned (Lw) and PCA whitening of global descriptors (cirtorch `utils/whiten.py`;
//! docs/PAPERS.md A.8, docs/PAPERS.md protocols 1.4).
//!
//! **Lw** (Radenović et al., after Mikolajczyk & Matas), from matching pairs `(q_i, p_i)`:
//! ```text
//! m  = mean of the query descriptors
//! S  = Σ (q_i − p_i)(q_i − p_i)ᵀ / n                  intra-class covariance
//! P₁ = chol(S + αI)⁻¹,  α = 0, 1e-10, 1e-9, …           first α for which S + αI is PD
//! D  = P₁ (X − m)(X − m)ᵀ P₁ᵀ  over all descriptors X;  E = eigenvectors of D, eigenvalues descending
//! P  = Eᵀ P₁
//! ```
//! **PCA whitening**: `m` = mean, `C = (X − m)(X − m)ᵀ / N`, `P = diag(λ)^{-1/2} Eᵀ`.
//!
//! Both are applied as `x ↦ L2(P[:dims] (x − m))` with cirtorch's eps 1e-6 on the norm. All
//! learning runs in f64 on the host (nalgebra; `D` is symmetric, so its symmetric
//! eigendecomposition replaces `np.linalg.eig`). Eigenvector signs are arbitrary (as in numpy);
//! whitened descriptors are therefore equal up to the sign of each output coordinate, and their
//! dot products — what retrieval ranks by — are equal.

use std::path::Path;

use burn::module::Param;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor, TensorData};
use nalgebra::{DMatrix, DVector, SymmetricEigen};
use serde::{Deserialize, Serialize};

use crate::error::MetricError;

/// How a [`Whitening`] was learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WhiteningKind {
    /// Learned from matching pairs (Lw).
    Learned,
    /// PCA whitening without annotations.
    Pca,
}

/// A whitening `x ↦ L2(P[:dims] (x − m))`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Whitening {
    /// How it was learned.
    pub kind: WhiteningKind,
    /// The mean `m`, length `D`.
    pub mean: Vec<f64>,
    /// The projection `P`, row-major `D × D` (rows sorted by descending eigenvalue).
    pub projection: Vec<f64>,
    /// Input dimension `D`.
    pub dim: usize,
    /// The eigenvalues matching `P`'s rows, descending.
    pub eigenvalues: Vec<f64>,
    /// The diagonal jitter the Cholesky factorisation needed (Lw; 0 for PCA).
    pub jitter: f64,
}

/// cirtorch's `whitenapply` eps on the norm.
pub const WHITEN_EPS: f64 = 1e-6;

/// Descriptors `[N, D]` from a tensor into a `D × N` f64 matrix (cirtorch's column layout).
fn columns(x: Tensor<2>) -> crate::Result<DMatrix<f64>> {
    let [n, d] = x.dims();
    if n == 0 || d == 0 {
        return Err(MetricError::Empty {
            what: "descriptors to learn a whitening from",
        });
    }
    let v = x
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| MetricError::Whitening {
            reason: format!("cannot read the descriptors: {e:?}"),
        })?;
    if v.iter().any(|a| !a.is_finite()) {
        return Err(MetricError::Whitening {
            reason: "descriptors contain NaN or infinite values".into(),
        });
    }
    // Row-major [n, d] is column-major [d, n].
    Ok(DMatrix::from_iterator(d, n, v.into_iter().map(f64::from)))
}

/// Cholesky factor of `s + αI` for the first α in 0, 1e-10, 1e-9, … that makes it positive
/// definite (cirtorch `cholesky`). Returns `(L, α)`.
fn cholesky_jitter(s: &DMatrix<f64>) -> crate::Result<(DMatrix<f64>, f64)> {
    let d = s.nrows();
    let mut alpha = 0.0f64;
    loop {
        let m = s + DMatrix::<f64>::identity(d, d) * alpha;
        if let Some(c) = nalgebra::Cholesky::new(m) {
            return Ok((c.l(), alpha));
        }
        alpha = if alpha == 0.0 { 1e-10 } else { alpha * 10.0 };
        if alpha > 1e10 {
            return Err(MetricError::Whitening {
                reason:
                    "the pair covariance stays non positive-definite even with 1e10 on its diagonal"
                        .into(),
            });
        }
    }
}

/// Symmetric eigendecomposition with eigenvalues sorted in descending order:
/// `(eigenvalues, E)` with eigenvectors as columns of `E`.
fn eig_desc(m: DMatrix<f64>) -> (Vec<f64>, DMatrix<f64>) {
    let sym = (&m + m.transpose()) * 0.5;
    let e = SymmetricEigen::new(sym);
    let mut order: Vec<usize> = (0..e.eigenvalues.len()).collect();
    order.sort_by(|&a, &b| e.eigenvalues[b].total_cmp(&e.eigenvalues[a]));
    let vals = order.iter().map(|&i| e.eigenvalues[i]).collect();
    let vecs = DMatrix::from_fn(m.nrows(), order.len(), |r, c| e.eigenvectors[(r, order[c])]);
    (vals, vecs)
}

impl Whitening {
    /// Learns Lw from descriptors `[N, D]` and matching pairs `(qidxs[i], pidxs[i])` (indices into
    /// the rows), exactly as cirtorch's `whitenlearn`.
    ///
    /// # Errors
    /// [`MetricError::Empty`] without pairs or descriptors, [`MetricError::Shape`] when the pair
    /// lists differ in length, [`MetricError::Index`] for an index past `N`,
    /// [`MetricError::Whitening`] for non-finite descriptors.
    pub fn learn_lw(
        descriptors: Tensor<2>,
        qidxs: &[usize],
        pidxs: &[usize],
    ) -> crate::Result<Self> {
        check_pairs(qidxs, pidxs)?;
        let x = columns(descriptors)?;
        let lw = lw_host(x, qidxs, pidxs)?;
        Ok(Self {
            kind: WhiteningKind::Learned,
            mean: lw.mean.iter().copied().collect(),
            projection: row_major(&lw.projection),
            dim: lw.mean.len(),
            eigenvalues: lw.eigenvalues,
            jitter: lw.jitter,
        })
    }

    /// Learns Lw inside the `dims`-dimensional principal subspace of the descriptors: project
    /// `[N, D]` descriptors onto their top-`dims` principal directions `U` (mean `μ`, covariance
    /// eigenvectors), learn Lw there ([`Whitening::learn_lw`] on `Uᵀ(x − μ)`: `m_z`, `P_z`), and
    /// compose into one whitening of the input space: `m = μ + U m_z`, `P = [P_z Uᵀ; 0]`
    /// (`D × D`, rows past `dims` zero, eigenvalues there 0), so `apply(x, None)` and
    /// `apply(x, Some(dims))` give the same dot products.
    ///
    /// Lw needs an intra-class covariance of full rank: with fewer independent pair differences
    /// than dimensions (e.g. 1,125 differences among 1,250 images of 125 places for a 1,280-d
    /// descriptor) its Cholesky factor only exists with jitter, and the directions no training
    /// pair varies along are amplified by `1/√jitter`, which swamps retrieval. cirtorch learns Lw
    /// from 91,642 SfM-120k pairs, where this does not arise; reducing the dimension first is the
    /// usual remedy (Radenović et al. reduce whitened descriptors the same way, by keeping the
    /// top rows).
    ///
    /// # Errors
    /// As [`Whitening::learn_lw`], and [`MetricError::Config`] for `dims` of 0 or above `D`.
    ///
    /// ```
    /// use burn::tensor::{Device, Tensor};
    /// use metric_learning::whitening::Whitening;
    /// let device = Device::default();
    /// // 6 descriptors of 4 dimensions, pairs (0, 1), (2, 3), (4, 5)
    /// let x = Tensor::<2>::from_floats(
    ///     [[1.0, 0.1, 0.0, 0.3], [0.9, 0.2, 0.1, 0.2], [0.0, 1.0, 0.2, 0.1],
    ///      [0.1, 0.9, 0.1, 0.0], [0.2, 0.1, 1.0, 0.4], [0.1, 0.0, 0.9, 0.3]],
    ///     &device,
    /// );
    /// let w = Whitening::learn_lw_pca(x.clone(), &[0, 2, 4], &[1, 3, 5], 2)?;
    /// assert_eq!(w.dim, 4);
    /// assert!(w.projection[2 * 4..].iter().all(|&v| v == 0.0)); // rows 2 and 3
    /// let y = w.apply(x, None)?; // [6, 4], unit rows
    /// assert_eq!(y.dims(), [6, 4]);
    /// # Ok::<(), metric_learning::MetricError>(())
    /// ```
    pub fn learn_lw_pca(
        descriptors: Tensor<2>,
        qidxs: &[usize],
        pidxs: &[usize],
        dims: usize,
    ) -> crate::Result<Self> {
        check_pairs(qidxs, pidxs)?;
        let x = columns(descriptors)?;
        let (d, n) = x.shape();
        if dims == 0 || dims > d {
            return Err(MetricError::config(
                "whitening dims",
                format!("must lie in 1..={d}, got {dims}"),
            ));
        }
        let mu: DVector<f64> = x.column_sum() / n as f64;
        let mut xc = x;
        for mut col in xc.column_iter_mut() {
            col -= &mu;
        }
        let cov = &xc * xc.transpose() / n as f64;
        let (_, e) = eig_desc(cov);
        let u = e.columns(0, dims).into_owned(); // D × dims
        let z = u.transpose() * xc; // dims × N
        let lw = lw_host(z, qidxs, pidxs)?;
        let mean = &mu + &u * lw.mean;
        let top = lw.projection * u.transpose(); // dims × D
        let (mut eigenvalues, jitter) = (lw.eigenvalues, lw.jitter);
        let mut p = DMatrix::<f64>::zeros(d, d);
        p.rows_mut(0, dims).copy_from(&top);
        eigenvalues.resize(d, 0.0);
        Ok(Self {
            kind: WhiteningKind::Learned,
            mean: mean.iter().copied().collect(),
            projection: row_major(&p),
            dim: d,
            eigenvalues,
            jitter,
        })
    }

    /// Learns PCA whitening from descriptors `[N, D]` (cirtorch `pcawhitenlearn`).
    ///
    /// # Errors
    /// [`MetricError::Empty`] for no descriptors, [`MetricError::Whitening`] when the covariance
    /// has a non-positive eigenvalue (fewer descriptors than dimensions, or duplicated ones):
    /// `diag(λ)^{-1/2}` does not exist then.
    pub fn learn_pca(descriptors: Tensor<2>) -> crate::Result<Self> {
        let x = columns(descriptors)?;
        let (d, n) = x.shape();
        let m: DVector<f64> = x.column_sum() / n as f64;
        let mut xc = x;
        for mut col in xc.column_iter_mut() {
            col -= &m;
        }
        let cov = &xc * xc.transpose();
        let cov = (&cov + cov.transpose()) / (2.0 * n as f64);
        let (eigenvalues, e) = eig_desc(cov);
        if let Some((i, l)) = eigenvalues
            .iter()
            .enumerate()
            .find(|(_, l)| l.is_nan() || **l <= 0.0)
        {
            return Err(MetricError::Whitening {
                reason: format!(
                    "PCA eigenvalue {i} is {l:e}: the {n} descriptors do not span the {d} dimensions"
                ),
            });
        }
        let scale = DMatrix::from_diagonal(&DVector::from_iterator(
            d,
            eigenvalues.iter().map(|l| 1.0 / l.sqrt()),
        ));
        let p = scale * e.transpose();
        Ok(Self {
            kind: WhiteningKind::Pca,
            mean: m.iter().copied().collect(),
            projection: row_major(&p),
            dim: d,
            eigenvalues,
            jitter: 0.0,
        })
    }

    /// The projection as a `D × D` matrix.
    pub fn projection_matrix(&self) -> DMatrix<f64> {
        DMatrix::from_row_slice(self.dim, self.dim, &self.projection)
    }

    /// Whitens descriptors: `L2(P[:dims] (x − m))`; `dims = None` keeps all `D` dimensions.
    ///
    /// # Shapes
    /// - `x`: `[N, D]` → `[N, dims]`
    ///
    /// # Errors
    /// [`MetricError::Shape`] when `x` is not `D`-dimensional or `dims` exceeds `D`.
    pub fn apply(&self, x: Tensor<2>, dims: Option<usize>) -> crate::Result<Tensor<2>> {
        let [_, d] = x.dims();
        if d != self.dim {
            return Err(MetricError::shape("descriptors to whiten", self.dim, d));
        }
        let k = dims.unwrap_or(self.dim);
        if k == 0 || k > self.dim {
            return Err(MetricError::shape(
                "whitening output dimensions",
                format!("1..={}", self.dim),
                k,
            ));
        }
        let device = x.device();
        let m = Tensor::<2>::from_data(
            TensorData::new(
                self.mean.iter().map(|&v| v as f32).collect::<Vec<_>>(),
                [1, d],
            ),
            &device,
        );
        // Pᵀ[:, :k] as a [D, k] matrix.
        let pt: Vec<f32> = (0..d)
            .flat_map(|c| (0..k).map(move |r| (r, c)))
            .map(|(r, c)| self.projection[r * d + c] as f32)
            .collect();
        let pt = Tensor::<2>::from_data(TensorData::new(pt, [d, k]), &device);
        Ok(crate::pooling::l2n((x - m).matmul(pt), WHITEN_EPS))
    }

    /// The whitening as cirtorch's end-to-end layer `Linear(D, D)` with `weight = P`,
    /// `bias = −P m` (cirtorch issue #8), ready for [`crate::CirNet::whiten`].
    pub fn to_linear(&self, device: &Device) -> Linear {
        let d = self.dim;
        let mut lin = LinearConfig::new(d, d).init(device);
        // burn stores the weight as [in, out] = Pᵀ.
        let wt: Vec<f32> = (0..d)
            .flat_map(|i| (0..d).map(move |o| (i, o)))
            .map(|(i, o)| self.projection[o * d + i] as f32)
            .collect();
        let bias: Vec<f32> = (0..d)
            .map(|o| {
                -(0..d)
                    .map(|i| self.projection[o * d + i] * self.mean[i])
                    .sum::<f64>() as f32
            })
            .collect();
        lin.weight = Param::from_tensor(Tensor::from_data(TensorData::new(wt, [d, d]), device));
        lin.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(bias, [d]),
            device,
        )));
        lin
    }

    /// Saves as safetensors (atomically): F64 tensors `mean` `[D]`, `projection` `[D, D]`,
    /// `eigenvalues` `[D]`, `jitter` `[1]`, and `kind` in the header metadata. The values
    /// round-trip bit for bit (numpy: `safetensors.numpy.load_file`).
    pub fn save(&self, path: impl AsRef<Path>) -> crate::Result<()> {
        use safetensors::tensor::{Dtype, TensorView};
        let path = path.as_ref();
        let bytes = |v: &[f64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let (m, p, e, j) = (
            bytes(&self.mean),
            bytes(&self.projection),
            bytes(&self.eigenvalues),
            bytes(&[self.jitter]),
        );
        let d = self.dim;
        let err = |e: safetensors::SafeTensorError| MetricError::Whitening {
            reason: format!("cannot encode {}: {e}", path.display()),
        };
        let views = vec![
            (
                "eigenvalues",
                TensorView::new(Dtype::F64, vec![self.eigenvalues.len()], &e).map_err(err)?,
            ),
            (
                "jitter",
                TensorView::new(Dtype::F64, vec![1], &j).map_err(err)?,
            ),
            (
                "mean",
                TensorView::new(Dtype::F64, vec![d], &m).map_err(err)?,
            ),
            (
                "projection",
                TensorView::new(Dtype::F64, vec![d, d], &p).map_err(err)?,
            ),
        ];
        let kind = match self.kind {
            WhiteningKind::Learned => "learned",
            WhiteningKind::Pca => "pca",
        };
        let meta = std::collections::HashMap::from([("kind".to_string(), kind.to_string())]);
        let out = safetensors::serialize(views, Some(meta)).map_err(err)?;
        Ok(nightvision_core::checkpoint::write_bytes_atomic(
            path, &out,
        )?)
    }

    /// Loads a whitening saved by [`Whitening::save`].
    ///
    /// # Errors
    /// [`MetricError::Core`] for I/O errors, [`MetricError::Whitening`] naming the file for a file
    /// that is not such a safetensors file or holds inconsistent sizes.
    pub fn load(path: impl AsRef<Path>) -> crate::Result<Self> {
        let path = path.as_ref();
        let raw = std::fs::read(path).map_err(|e| nightvision_core::CoreError::io(path, e))?;
        let bad = |reason: String| MetricError::Whitening {
            reason: format!("{}: {reason}", path.display()),
        };
        let (_, meta) =
            safetensors::SafeTensors::read_metadata(&raw).map_err(|e| bad(e.to_string()))?;
        let st = safetensors::SafeTensors::deserialize(&raw).map_err(|e| bad(e.to_string()))?;
        let get = |name: &str| -> crate::Result<(Vec<usize>, Vec<f64>)> {
            let t = st
                .tensor(name)
                .map_err(|e| bad(format!("tensor {name}: {e}")))?;
            if t.dtype() != safetensors::Dtype::F64 {
                return Err(bad(format!(
                    "tensor {name} is {:?}, expected F64",
                    t.dtype()
                )));
            }
            let v = t
                .data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect();
            Ok((t.shape().to_vec(), v))
        };
        let (ms, mean) = get("mean")?;
        let (ps, projection) = get("projection")?;
        let (_, eigenvalues) = get("eigenvalues")?;
        let (_, jitter) = get("jitter")?;
        let dim = mean.len();
        if ms != [dim] || ps != [dim, dim] || eigenvalues.len() != dim {
            // `bad` names the file: a whitening file of inconsistent shapes is a bad file
            return Err(bad(format!(
                "expected mean [{dim}], projection [{dim}, {dim}], eigenvalues [{dim}], found \
                 mean {ms:?}, projection {ps:?}, {} eigenvalues",
                eigenvalues.len()
            )));
        }
        let kind = match meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("kind"))
            .map(String::as_str)
        {
            Some("learned") => WhiteningKind::Learned,
            Some("pca") => WhiteningKind::Pca,
            other => {
                return Err(bad(format!(
                    "metadata kind {other:?}, expected \"learned\" or \"pca\""
                )));
            }
        };
        Ok(Self {
            kind,
            mean,
            projection,
            dim,
            eigenvalues,
            jitter: jitter.first().copied().unwrap_or(0.0),
        })
    }
}

/// The pair lists of Lw: not empty, of one length.
fn check_pairs(qidxs: &[usize], pidxs: &[usize]) -> crate::Result<()> {
    if qidxs.is_empty() {
        return Err(MetricError::Empty {
            what: "whitening pair list",
        });
    }
    if qidxs.len() != pidxs.len() {
        return Err(MetricError::shape(
            "whitening pairs",
            format!("{} positives", qidxs.len()),
            pidxs.len(),
        ));
    }
    Ok(())
}

/// Lw learned on a host matrix: mean, projection, eigenvalues and Cholesky jitter.
struct LwParts {
    mean: DVector<f64>,
    projection: DMatrix<f64>,
    eigenvalues: Vec<f64>,
    jitter: f64,
}

/// Lw on a `D × N` host matrix (see [`Whitening::learn_lw`]).
fn lw_host(x: DMatrix<f64>, qidxs: &[usize], pidxs: &[usize]) -> crate::Result<LwParts> {
    let (d, n) = x.shape();
    if let Some(&bad) = qidxs.iter().chain(pidxs).find(|&&i| i >= n) {
        return Err(MetricError::Index {
            what: "whitening pair",
            index: bad,
            len: n,
        });
    }
    let np = qidxs.len();
    let mut m = DVector::<f64>::zeros(d);
    for &q in qidxs {
        m += x.column(q);
    }
    m /= np as f64;
    let df = DMatrix::from_fn(d, np, |r, c| x[(r, qidxs[c])] - x[(r, pidxs[c])]);
    let s = &df * df.transpose() / np as f64;
    let (l, jitter) = cholesky_jitter(&s)?;
    let p1 = l
        .solve_lower_triangular(&DMatrix::identity(d, d))
        .ok_or_else(|| MetricError::Whitening {
            reason: "singular Cholesky factor".into(),
        })?;
    let mut xc = x;
    for mut col in xc.column_iter_mut() {
        col -= &m;
    }
    let y = &p1 * xc;
    let (eigenvalues, e) = eig_desc(&y * y.transpose());
    let p = e.transpose() * p1;
    Ok(LwParts {
        mean: m,
        projection: p,
        eigenvalues,
        jitter,
    })
}

fn row_major(m: &DMatrix<f64>) -> Vec<f64> {
    (0..m.nrows())
        .flat_map(|r| (0..m.ncols()).map(move |c| (r, c)))
        .map(|(r, c)| m[(r, c)])
        .collect()
}
