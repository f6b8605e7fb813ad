//! NocPlace's partial divide-and-conquer retrieval (docs/PAPERS.md B.6) with a keyed descriptor cache.
//!
//! NocPlace encodes the database once with the original **daytime** model and caches it
//! (`database_{backbone}_{dim}.npy`); later evaluations encode only the (night) queries with the
//! fine-tuned model. Its cache is keyed by file name only, so a changed image list or model silently
//! reuses stale descriptors. Here the cache entry carries a [`CacheKey`] (model id, descriptor
//! dimension, image count, MD5 of the image list, and a free-form `extra` such as the input size);
//! any difference recomputes and overwrites it.
//!
//! Models plug in through [`ImageEncoder`] (or a closure wrapped in [`FnEncoder`]), so this crate
//! does not depend on the model crates.

use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::descriptors::Descriptors;
use crate::error::{BoxError, EvalError, Result};

/// Something that turns images into descriptors.
pub trait ImageEncoder {
    /// A stable identity of the model and its preprocessing (e.g. `"cosplace-r18-512@<weights md5>"`).
    fn model_id(&self) -> &str;
    /// Descriptor dimension.
    fn dim(&self) -> usize;
    /// Descriptors of a batch of images, row-major `images.len() × dim()`.
    fn encode(&mut self, images: &[PathBuf]) -> std::result::Result<Vec<f32>, BoxError>;
}

/// A model id that names the weights, not only the architecture: `"{name}@{MD5 of weights}"`
/// (hex), for [`ImageEncoder::model_id`] / [`FnEncoder::new`], so that a cache entry written by
/// other weights of the same model is recomputed instead of reused. `weights` are the model's
/// serialised parameters (any stable byte form, e.g. its burn record bytes).
///
/// ```
/// use vpr_eval::weights_model_id;
/// let a = weights_model_id("daytime-cosplace", &[1, 2, 3]);
/// assert_eq!(a, "daytime-cosplace@5289df737df57326fcdd22597afb1fac");
/// assert_ne!(a, weights_model_id("daytime-cosplace", &[1, 2, 4]));
/// ```
pub fn weights_model_id(name: &str, weights: &[u8]) -> String {
    let digest = Md5::digest(weights);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{name}@{hex}")
}

/// An [`ImageEncoder`] from a closure.
pub struct FnEncoder<F> {
    id: String,
    dim: usize,
    f: F,
}

impl<F> FnEncoder<F>
where
    F: FnMut(&[PathBuf]) -> std::result::Result<Vec<f32>, BoxError>,
{
    /// Wraps `f` with the model id and descriptor dimension.
    pub fn new(model_id: impl Into<String>, dim: usize, f: F) -> Self {
        Self {
            id: model_id.into(),
            dim,
            f,
        }
    }
}

impl<F> ImageEncoder for FnEncoder<F>
where
    F: FnMut(&[PathBuf]) -> std::result::Result<Vec<f32>, BoxError>,
{
    fn model_id(&self) -> &str {
        &self.id
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn encode(&mut self, images: &[PathBuf]) -> std::result::Result<Vec<f32>, BoxError> {
        (self.f)(images)
    }
}

/// Encodes `images` in batches of `batch_size`, with a progress bar if `progress`.
pub fn encode_all(
    encoder: &mut dyn ImageEncoder,
    images: &[PathBuf],
    batch_size: usize,
    progress: bool,
) -> Result<Descriptors> {
    if batch_size == 0 {
        return Err(EvalError::InvalidArgument {
            name: "batch_size",
            reason: "must be at least 1".into(),
        });
    }
    if images.is_empty() {
        return Err(EvalError::Empty {
            what: "image list to encode".into(),
            path: None,
        });
    }
    let dim = encoder.dim();
    let bar = if progress {
        let b = indicatif::ProgressBar::new(images.len() as u64);
        b.set_message(encoder.model_id().to_string());
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut data = Vec::with_capacity(images.len() * dim);
    for start in (0..images.len()).step_by(batch_size) {
        let end = (start + batch_size).min(images.len());
        let out = encoder
            .encode(&images[start..end])
            .map_err(|source| EvalError::Encoder {
                model: encoder.model_id().to_string(),
                start,
                end,
                source,
            })?;
        if out.len() != (end - start) * dim {
            return Err(EvalError::SizeMismatch {
                what: format!(
                    "values returned by encoder {:?} for images {start}..{end}",
                    encoder.model_id()
                ),
                expected: (end - start) * dim,
                got: out.len(),
                path: None,
            });
        }
        data.extend(out);
        bar.inc((end - start) as u64);
    }
    bar.finish_and_clear();
    Descriptors::new(data, images.len(), dim)
}

/// What a cached descriptor matrix was computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheKey {
    /// Cache format version.
    pub format: u32,
    /// The encoder's model id.
    pub model_id: String,
    /// Descriptor dimension.
    pub dim: usize,
    /// Number of images.
    pub n_images: usize,
    /// MD5 (hex) of the image paths, each followed by `\n`.
    pub image_list_md5: String,
    /// Anything else that changes the descriptors (input size, multi-scale, whitening, ...).
    pub extra: String,
}

const CACHE_FORMAT: u32 = 1;

impl CacheKey {
    /// The key of `images` encoded by `encoder` with `extra` settings.
    pub fn new(encoder: &dyn ImageEncoder, images: &[PathBuf], extra: &str) -> Self {
        let mut h = Md5::new();
        for p in images {
            h.update(p.to_string_lossy().as_bytes());
            h.update(b"\n");
        }
        let digest = h.finalize();
        Self {
            format: CACHE_FORMAT,
            model_id: encoder.model_id().to_string(),
            dim: encoder.dim(),
            n_images: images.len(),
            image_list_md5: digest.iter().map(|b| format!("{b:02x}")).collect(),
            extra: extra.to_string(),
        }
    }
}

/// How a cache lookup went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheStatus {
    /// Loaded from the cache.
    Hit,
    /// No entry: computed and stored.
    Miss,
    /// An entry with a different key (or unreadable): recomputed and overwritten.
    Stale,
}

/// A folder of cached descriptor matrices: `<name>.npy` plus `<name>.key.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct DescriptorCache {
    dir: PathBuf,
}

impl DescriptorCache {
    /// A cache in `dir` (created on first store).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The cache folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn paths(&self, name: &str) -> (PathBuf, PathBuf) {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        (
            self.dir.join(format!("{safe}.npy")),
            self.dir.join(format!("{safe}.key.json")),
        )
    }

    /// Loads entry `name`: `None` when there is no entry or its key differs from `key` (a miss),
    /// the descriptors when the key is `key`.
    ///
    /// # Errors
    /// A corrupt entry is an error naming its file, never a silent miss: a key file that is not a
    /// key ([`EvalError::Json`]), a matrix that cannot be read, or one whose shape is not the one
    /// its key records ([`EvalError::SizeMismatch`]). Stores are atomic, so only an outside
    /// change makes an entry corrupt; delete the entry (or the cache folder) to recompute it.
    pub fn load(&self, name: &str, key: &CacheKey) -> Result<Option<Descriptors>> {
        let (npy, json) = self.paths(name);
        if !npy.is_file() || !json.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&json).map_err(|e| EvalError::io(&json, e))?;
        let stored: CacheKey = serde_json::from_str(&text).map_err(|source| EvalError::Json {
            path: json.clone(),
            source,
        })?;
        if &stored != key {
            return Ok(None);
        }
        let d = Descriptors::read_npy(&npy)?;
        for (what, expected, got) in [
            ("cached descriptors: rows", key.n_images, d.rows()),
            ("cached descriptors: dimension", key.dim, d.dim()),
        ] {
            if expected != got {
                return Err(EvalError::SizeMismatch {
                    what: what.into(),
                    expected,
                    got,
                    path: Some(npy.clone()),
                });
            }
        }
        Ok(Some(d))
    }

    /// Stores `d` under `name` with `key` (the key file is written last, so an interrupted store
    /// never leaves a valid-looking entry).
    pub fn store(&self, name: &str, key: &CacheKey, d: &Descriptors) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| EvalError::io(&self.dir, e))?;
        let (npy, json) = self.paths(name);
        if json.exists() {
            std::fs::remove_file(&json).map_err(|e| EvalError::io(&json, e))?;
        }
        d.write_npy(&npy)?;
        let text = serde_json::to_string_pretty(key).map_err(|source| EvalError::Json {
            path: json.clone(),
            source,
        })?;
        std::fs::write(&json, text).map_err(|e| EvalError::io(&json, e))
    }

    /// The cached entry for `key`, or `compute()` stored under `name`.
    pub fn get_or_compute(
        &self,
        name: &str,
        key: &CacheKey,
        compute: impl FnOnce() -> Result<Descriptors>,
    ) -> Result<(Descriptors, CacheStatus)> {
        if let Some(d) = self.load(name, key)? {
            return Ok((d, CacheStatus::Hit));
        }
        let existed = self.paths(name).0.exists();
        let d = compute()?;
        self.store(name, key, &d)?;
        Ok((
            d,
            if existed {
                CacheStatus::Stale
            } else {
                CacheStatus::Miss
            },
        ))
    }
}

/// Settings of [`partial_divide_and_conquer`].
#[derive(Debug, Clone, PartialEq)]
pub struct PdcOptions {
    /// Images per encoder call for the database (NocPlace: 16); queries go one at a time, as in
    /// the reference (variable image sizes).
    pub db_batch_size: usize,
    /// Extra cache-key text (input size, multi-scale, ...).
    pub extra: String,
    /// Show progress bars.
    pub progress: bool,
}

impl Default for PdcOptions {
    fn default() -> Self {
        Self {
            db_batch_size: 16,
            extra: String::new(),
            progress: false,
        }
    }
}

/// Descriptors for partial divide-and-conquer retrieval.
#[derive(Debug, Clone, PartialEq)]
pub struct PdcOutput {
    /// Database descriptors (by the database encoder; possibly from the cache).
    pub database: Descriptors,
    /// Query descriptors (by the query encoder, always recomputed).
    pub queries: Descriptors,
    /// Whether the database came from the cache.
    pub db_cache: CacheStatus,
}

/// Database descriptors from `db_encoder` (cached under `database_<model id>_<dim>`), query
/// descriptors from `query_encoder`; both must have the same dimension.
pub fn partial_divide_and_conquer(
    db_images: &[PathBuf],
    query_images: &[PathBuf],
    db_encoder: &mut dyn ImageEncoder,
    query_encoder: &mut dyn ImageEncoder,
    cache: &DescriptorCache,
    options: &PdcOptions,
) -> Result<PdcOutput> {
    same_dim(db_encoder, query_encoder)?;
    let (database, status) = cached_database(db_images, db_encoder, cache, options)?;
    let queries = encode_all(query_encoder, query_images, 1, options.progress)?;
    Ok(PdcOutput {
        database,
        queries,
        db_cache: status,
    })
}

/// Both encoders give descriptors of one dimension.
fn same_dim(db_encoder: &dyn ImageEncoder, query_encoder: &dyn ImageEncoder) -> Result<()> {
    if db_encoder.dim() != query_encoder.dim() {
        return Err(EvalError::SizeMismatch {
            what: format!(
                "descriptor dimension of query encoder {:?} vs database encoder {:?}",
                query_encoder.model_id(),
                db_encoder.model_id()
            ),
            expected: db_encoder.dim(),
            got: query_encoder.dim(),
            path: None,
        });
    }
    Ok(())
}

/// The database descriptors of `db_encoder`, from the cache (`database_<model id>_<dim>`) or
/// computed and stored.
fn cached_database(
    db_images: &[PathBuf],
    db_encoder: &mut dyn ImageEncoder,
    cache: &DescriptorCache,
    options: &PdcOptions,
) -> Result<(Descriptors, CacheStatus)> {
    let key = CacheKey::new(db_encoder, db_images, &options.extra);
    let name = format!("database_{}_{}", db_encoder.model_id(), db_encoder.dim());
    cache.get_or_compute(&name, &key, || {
        encode_all(
            db_encoder,
            db_images,
            options.db_batch_size,
            options.progress,
        )
    })
}

/// Partial divide-and-conquer with the queries routed by their condition: the database and the
/// queries not flagged in `night` are described by `db_encoder` (the daytime model), the
/// flagged ones by `query_encoder` (the night model). NocPlace's own evaluation (docs/PAPERS.md
/// B.6) sends every query to the night model; with day queries known as such (Tokyo 24/7's
/// splits), this keeps the daytime model's day results while night queries get the night
/// model. Query rows come back in `query_images` order; the database is cached as in
/// [`partial_divide_and_conquer`].
///
/// ```
/// use std::path::PathBuf;
/// use vpr_eval::{DescriptorCache, FnEncoder, PdcOptions, partial_divide_and_conquer_routed};
/// let dir = tempfile::tempdir()?;
/// let mut day = FnEncoder::new("day", 1, |p: &[PathBuf]| Ok(vec![1.0; p.len()]));
/// let mut night = FnEncoder::new("night", 1, |p: &[PathBuf]| Ok(vec![2.0; p.len()]));
/// let q: Vec<PathBuf> = ["a", "b", "c"].iter().map(PathBuf::from).collect();
/// let out = partial_divide_and_conquer_routed(
///     &q[..1], &q, &[false, true, false], &mut day, &mut night,
///     &DescriptorCache::new(dir.path()), &PdcOptions::default(),
/// )?;
/// assert_eq!(out.queries.as_slice(), &[1.0, 2.0, 1.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`partial_divide_and_conquer`], and [`EvalError::SizeMismatch`] when `night` does not
/// flag every query.
pub fn partial_divide_and_conquer_routed(
    db_images: &[PathBuf],
    query_images: &[PathBuf],
    night: &[bool],
    db_encoder: &mut dyn ImageEncoder,
    query_encoder: &mut dyn ImageEncoder,
    cache: &DescriptorCache,
    options: &PdcOptions,
) -> Result<PdcOutput> {
    if night.len() != query_images.len() {
        return Err(EvalError::SizeMismatch {
            what: "night flags of the queries".into(),
            expected: query_images.len(),
            got: night.len(),
            path: None,
        });
    }
    let split = |want: bool| -> Vec<PathBuf> {
        query_images
            .iter()
            .zip(night)
            .filter(|&(_, &n)| n == want)
            .map(|(p, _)| p.clone())
            .collect()
    };
    let (night_images, day_images) = (split(true), split(false));
    same_dim(db_encoder, query_encoder)?;
    let (database, db_cache) = cached_database(db_images, db_encoder, cache, options)?;
    let encode = |enc: &mut dyn ImageEncoder, images: &[PathBuf]| -> Result<Option<Descriptors>> {
        if images.is_empty() {
            return Ok(None);
        }
        encode_all(enc, images, 1, options.progress).map(Some)
    };
    let night_rows = encode(query_encoder, &night_images)?;
    let day_rows = encode(db_encoder, &day_images)?;
    let dim = database.dim();
    let (mut di, mut ni) = (0, 0);
    let mut rows = Vec::with_capacity(query_images.len());
    for &n in night {
        let (src, i) = if n {
            (&night_rows, &mut ni)
        } else {
            (&day_rows, &mut di)
        };
        if let Some(d) = src {
            rows.push(d.row(*i).to_vec());
        }
        *i += 1;
    }
    let queries = if rows.is_empty() {
        Descriptors::new(Vec::new(), 0, dim)?
    } else {
        Descriptors::from_rows(&rows)?
    };
    Ok(PdcOutput {
        database,
        queries,
        db_cache,
    })
}
