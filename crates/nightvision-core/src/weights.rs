//! Loading PyTorch weights (`.pth` / `.pt` zip or legacy pickle, and safetensors) into burn modules.
//!
//! A [`WeightsLoader`] wraps burn-store's `PytorchStore` / `SafetensorsStore` (with the PyTorch
//! adapter: `Linear` weights transposed, BatchNorm `weight`/`bias` → `gamma`/`beta`), applies regex
//! key remaps, and is **strict by default**: a file whose keys do not cover the module exactly fails
//! with [`CoreError::WeightsMismatch`], which names every missing, unused and wrongly shaped key.
//! Only keys ending in an allowed suffix (by default `num_batches_tracked`, a PyTorch BatchNorm
//! counter burn has no use for) may stay unused.
//!
//! ```no_run
//! use burn::nn::LinearConfig;
//! use burn::tensor::Device;
//! use nightvision_core::weights::WeightsLoader;
//!
//! let mut fc = LinearConfig::new(512, 10).init(&Device::default());
//! let report = WeightsLoader::new()
//!     .with_remap(r"^classifier\.1\.(.+)$", "$1")
//!     .load(&mut fc, "mobilenet_v2.safetensors")?;
//! println!("{} tensors loaded", report.applied.len());
//! # Ok::<(), nightvision_core::CoreError>(())
//! ```

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use burn::module::Module;
use burn::store::{
    ApplyError, ApplyResult, BurnToPyTorchAdapter, KeyRemapper, ModuleSnapshot,
    PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};

use crate::{CoreError, Result};

/// What a successful load applied.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Module parameters that received a tensor.
    pub applied: Vec<String>,
    /// File keys that were not used (only allowed ones in strict mode).
    pub unused: Vec<String>,
    /// Module parameters left at their initial value (empty in strict mode).
    pub missing: Vec<String>,
}

/// Builder for loading a PyTorch checkpoint into a module; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct WeightsLoader {
    remaps: Vec<(String, String)>,
    strict: bool,
    allowed_unused_suffixes: Vec<String>,
    allowed_unused_prefixes: Vec<String>,
    top_level_key: Option<String>,
    contiguous_indices: bool,
}

impl Default for WeightsLoader {
    fn default() -> Self {
        Self::new()
    }
}

impl WeightsLoader {
    /// A strict loader with no remaps that tolerates unused `num_batches_tracked` keys.
    pub fn new() -> Self {
        Self {
            remaps: Vec::new(),
            strict: true,
            allowed_unused_suffixes: vec!["num_batches_tracked".into()],
            allowed_unused_prefixes: Vec::new(),
            top_level_key: None,
            contiguous_indices: false,
        }
    }

    /// Renames file keys matching the regex `from` to `to` (`$1`-style groups), before matching
    /// them against the module. Remaps apply in the order given.
    pub fn with_remap(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.remaps.push((from.into(), to.into()));
        self
    }

    /// Adds several remaps (see [`WeightsLoader::with_remap`]).
    pub fn with_remaps<I, A, B>(mut self, remaps: I) -> Self
    where
        I: IntoIterator<Item = (A, B)>,
        A: Into<String>,
        B: Into<String>,
    {
        self.remaps
            .extend(remaps.into_iter().map(|(a, b)| (a.into(), b.into())));
        self
    }

    /// Lets file keys ending in `suffix` stay unused in strict mode.
    pub fn allow_unused_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.allowed_unused_suffixes.push(suffix.into());
        self
    }

    /// Lets file keys starting with `prefix` stay unused in strict mode (e.g. a classifier head
    /// the module does not have).
    pub fn allow_unused_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.allowed_unused_prefixes.push(prefix.into());
        self
    }

    /// Accepts a partial match: missing and unused keys are reported, not errors. Wrongly shaped
    /// tensors are still errors.
    pub fn partial(mut self) -> Self {
        self.strict = false;
        self
    }

    /// Reads the state dict under this key of a `.pth` checkpoint dictionary (e.g. `state_dict`
    /// in cirtorch and CosPlace checkpoints, `model_state` in mdir ones).
    pub fn with_top_level_key(mut self, key: impl Into<String>) -> Self {
        self.top_level_key = Some(key.into());
        self
    }

    /// Renumbers sequence indices to be contiguous (`features.0`, `features.2`, `features.5` →
    /// `features.0`, `features.1`, `features.2`), for `nn.Sequential`s whose ReLU/pool entries
    /// hold no parameters. Applied before the remaps. Off by default.
    pub fn with_contiguous_indices(mut self, on: bool) -> Self {
        self.contiguous_indices = on;
        self
    }

    fn remapper(&self) -> Result<KeyRemapper> {
        let mut r = KeyRemapper::new();
        for (from, to) in &self.remaps {
            r = r
                .add_pattern(from.as_str(), to.as_str())
                .map_err(|e| CoreError::Remap {
                    pattern: from.clone(),
                    message: e.to_string(),
                })?;
        }
        Ok(r)
    }

    /// Loads the file at `path` into `module` (in place). The format follows the extension:
    /// `.safetensors`, otherwise PyTorch (`.pth`, `.pt`, `.bin`, `.tar`).
    ///
    /// # Errors
    /// [`CoreError::Io`] for a missing file, [`CoreError::WeightsRead`] when the store cannot parse
    /// it, [`CoreError::Remap`] for a bad pattern, [`CoreError::WeightsMismatch`] when keys or
    /// shapes do not match (always for shapes, in strict mode for missing/unused keys).
    pub fn load<M: Module>(&self, module: &mut M, path: impl AsRef<Path>) -> Result<LoadReport> {
        let path = path.as_ref();
        std::fs::metadata(path).map_err(|e| CoreError::io(path, e))?;
        let remapper = self.remapper()?;
        let read_err = |message: String| CoreError::WeightsRead {
            path: path.to_path_buf(),
            message,
        };
        let result: ApplyResult = if is_safetensors(path) {
            let mut store = SafetensorsStore::from_file(path)
                .with_from_adapter(PyTorchToBurnAdapter)
                .map_indices_contiguous(self.contiguous_indices)
                .remap(remapper)
                .allow_partial(true)
                .validate(false);
            module
                .load_from(&mut store)
                .map_err(|e| read_err(e.to_string()))?
        } else {
            let mut store = PytorchStore::from_file(path)
                .map_indices_contiguous(self.contiguous_indices)
                .remap(remapper)
                .allow_partial(true)
                .validate(false);
            if let Some(key) = &self.top_level_key {
                store = store.with_top_level_key(key.clone());
            }
            module
                .load_from(&mut store)
                .map_err(|e| read_err(e.to_string()))?
        };
        self.check(path, result)
    }

    fn check(&self, path: &Path, result: ApplyResult) -> Result<LoadReport> {
        let missing: Vec<String> = result.missing.iter().map(|(p, _)| p.clone()).collect();
        let (allowed, unused): (Vec<String>, Vec<String>) =
            result.unused.iter().cloned().partition(|k| {
                self.allowed_unused_suffixes
                    .iter()
                    .any(|s| k.ends_with(s.as_str()))
                    || self
                        .allowed_unused_prefixes
                        .iter()
                        .any(|p| k.starts_with(p.as_str()))
            });
        let mismatched: Vec<(String, String, String)> = result
            .errors
            .iter()
            .map(|e| match e {
                ApplyError::ShapeMismatch {
                    path,
                    expected,
                    found,
                } => (
                    path.clone(),
                    format!("shape {expected:?}"),
                    format!("shape {found:?}"),
                ),
                ApplyError::DTypeMismatch {
                    path,
                    expected,
                    found,
                } => (
                    path.clone(),
                    format!("dtype {expected:?}"),
                    format!("dtype {found:?}"),
                ),
                ApplyError::AdapterError { path, message }
                | ApplyError::LoadError { path, message } => {
                    (path.clone(), "a loadable tensor".into(), message.clone())
                }
            })
            .collect();
        let fails =
            !mismatched.is_empty() || (self.strict && !(missing.is_empty() && unused.is_empty()));
        if fails {
            return Err(CoreError::WeightsMismatch {
                path: path.to_path_buf(),
                missing,
                unused,
                mismatched,
            });
        }
        let mut all_unused = unused;
        all_unused.extend(allowed);
        Ok(LoadReport {
            applied: result.applied,
            unused: all_unused,
            missing,
        })
    }
}

/// Whether `path` names a safetensors file (extension `.safetensors`, any case): the format
/// [`WeightsLoader::load`] and the networks' loaders pick by.
///
/// ```
/// use nightvision_core::weights::is_safetensors;
/// assert!(is_safetensors("models/g.SafeTensors".as_ref()));
/// assert!(!is_safetensors("latest_net_G_A.pth".as_ref()));
/// ```
pub fn is_safetensors(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
}

/// Writes `module` as a safetensors file with PyTorch's key names and layouts (enum variant names
/// left out, `Linear` weights transposed, BatchNorm `gamma`/`beta` as `weight`/`bias`), so that
/// PyTorch's `load_state_dict` and [`WeightsLoader`] both read it; `metadata` goes into the
/// header's `__metadata__` (strings; [`read_safetensors_metadata`] returns it). Written
/// atomically (temporary file, then rename): an interrupted write leaves no partial file.
///
/// ```
/// use burn::nn::LinearConfig;
/// use burn::tensor::Device;
/// use nightvision_core::weights::{WeightsLoader, read_safetensors_metadata, save_pytorch_safetensors};
///
/// let device = Device::default();
/// let fc = LinearConfig::new(3, 2).init(&device);
/// let dir = std::env::temp_dir().join(format!("nv-save-doc-{}", std::process::id()));
/// let path = dir.join("fc.safetensors");
/// save_pytorch_safetensors(&fc, &path, [("arch", "linear 3→2")])?;
/// let mut back = LinearConfig::new(3, 2).init(&device);
/// WeightsLoader::new().load(&mut back, &path)?; // strict: every key used, every shape right
/// assert_eq!(back.weight.val().into_data(), fc.weight.val().into_data());
/// assert_eq!(read_safetensors_metadata(&path)?["arch"], "linear 3→2");
/// # std::fs::remove_dir_all(dir).ok();
/// # Ok::<(), nightvision_core::CoreError>(())
/// ```
///
/// # Errors
/// [`CoreError::WeightsRead`] when burn-store cannot serialise the module, [`CoreError::Io`] for
/// the file.
pub fn save_pytorch_safetensors<M: Module, K: Into<String>, V: Into<String>>(
    module: &M,
    path: impl AsRef<Path>,
    metadata: impl IntoIterator<Item = (K, V)>,
) -> Result<()> {
    let path = path.as_ref();
    let store_err = |message: String| CoreError::WeightsRead {
        path: path.to_path_buf(),
        message,
    };
    let mut store = SafetensorsStore::from_bytes(None)
        .with_to_adapter(BurnToPyTorchAdapter)
        .skip_enum_variants(true);
    for (k, v) in metadata {
        store = store.metadata(k, v);
    }
    module
        .save_into(&mut store)
        .map_err(|e| store_err(e.to_string()))?;
    let bytes = store.get_bytes().map_err(|e| store_err(e.to_string()))?;
    let bytes = canonical_safetensors(bytes).map_err(store_err)?;
    crate::checkpoint::write_atomic(path, |f| {
        f.write_all(&bytes).map_err(|e| CoreError::io(path, e))
    })
}

/// `bytes` (a safetensors file) with its header's `__metadata__` in sorted key order, so that
/// saving the same module with the same metadata gives the same bytes (burn-store keeps the
/// metadata in a `HashMap`, whose order changes from process to process): a shipped file's
/// sha256 is then reproducible. The tensors' entries keep their offsets; the header is padded
/// with spaces to a multiple of 8 bytes, as the safetensors writer does.
fn canonical_safetensors(bytes: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
    let prefix: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or("the serialised file is shorter than its header length")?;
    let n = usize::try_from(u64::from_le_bytes(prefix)).map_err(|e| e.to_string())?;
    let header = bytes
        .get(8..8 + n)
        .ok_or("the serialised header length exceeds the file")?;
    let mut value: serde_json::Value = serde_json::from_slice(header)
        .map_err(|e| format!("the serialised header is not JSON: {e}"))?;
    if let Some(serde_json::Value::Object(meta)) = value.get_mut("__metadata__") {
        let mut entries: Vec<_> = std::mem::take(meta).into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        meta.extend(entries);
    }
    let mut header = serde_json::to_vec(&value).map_err(|e| e.to_string())?;
    header.resize(header.len().div_ceil(8) * 8, b' ');
    let mut out = Vec::with_capacity(8 + header.len() + bytes.len() - 8 - n);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&bytes[8 + n..]);
    Ok(out)
}

/// [`save_pytorch_safetensors`] with `config` serialised as JSON under the header key `key`
/// (then `metadata`): the file of a network that [`read_safetensors_config`] and its
/// configuration rebuild from the file alone.
///
/// ```
/// use burn::nn::{LinearConfig, Linear};
/// use burn::tensor::Device;
/// use nightvision_core::weights::{WeightsLoader, read_safetensors_config, save_with_config};
///
/// let device = Device::default();
/// let cfg = LinearConfig::new(3, 2);
/// let fc = cfg.init(&device);
/// let dir = std::env::temp_dir().join(format!("nv-cfg-doc-{}", std::process::id()));
/// let path = dir.join("fc.safetensors");
/// save_with_config(&fc, &path, "linear", &(3, 2), &[("trained_by", "doctest")])?;
/// let (i, o): (usize, usize) = read_safetensors_config(&path, "linear")?;
/// let mut back: Linear = LinearConfig::new(i, o).init(&device);
/// WeightsLoader::new().load(&mut back, &path)?;
/// assert_eq!(back.weight.val().into_data(), fc.weight.val().into_data());
/// assert!(read_safetensors_config::<(usize, usize)>(&path, "other").is_err());
/// # std::fs::remove_dir_all(dir).ok();
/// # Ok::<(), nightvision_core::CoreError>(())
/// ```
///
/// # Errors
/// [`CoreError::WeightsRead`] when `config` does not serialise or burn-store cannot serialise
/// the module, [`CoreError::Io`] for the file.
pub fn save_with_config<M: Module, C: serde::Serialize + ?Sized>(
    module: &M,
    path: impl AsRef<Path>,
    key: &str,
    config: &C,
    metadata: &[(&str, &str)],
) -> Result<()> {
    let path = path.as_ref();
    let json = serde_json::to_string(config).map_err(|e| CoreError::WeightsRead {
        path: path.to_path_buf(),
        message: format!("the configuration {key} does not serialise: {e}"),
    })?;
    let mut all = vec![(key.to_string(), json)];
    all.extend(metadata.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    save_pytorch_safetensors(module, path, all)
}

/// The configuration a [`save_with_config`] file holds under the header key `key`.
///
/// # Errors
/// [`CoreError::Io`] for the file, [`CoreError::WeightsRead`] when the header has no `key` (the
/// file was not written by `save_with_config`) or its value does not parse as a `C`.
pub fn read_safetensors_config<C: serde::de::DeserializeOwned>(
    path: impl AsRef<Path>,
    key: &str,
) -> Result<C> {
    let path = path.as_ref();
    let bad = |message: String| CoreError::WeightsRead {
        path: path.to_path_buf(),
        message,
    };
    let meta = read_safetensors_metadata(path)?;
    let json = meta.get(key).ok_or_else(|| {
        bad(format!(
            "no {key} configuration in the header (not written by save_safetensors)"
        ))
    })?;
    serde_json::from_str(json).map_err(|e| bad(format!("the configuration {key}: {e}")))
}

/// The `__metadata__` of a safetensors file's header (empty when it has none).
///
/// # Errors
/// [`CoreError::Io`] for the file, [`CoreError::WeightsRead`] when its header is not a
/// safetensors header (length prefix, JSON object, string metadata values).
pub fn read_safetensors_metadata(path: impl AsRef<Path>) -> Result<BTreeMap<String, String>> {
    let path = path.as_ref();
    let bad = |message: String| CoreError::WeightsRead {
        path: path.to_path_buf(),
        message,
    };
    let mut file = std::fs::File::open(path).map_err(|e| CoreError::io(path, e))?;
    let size = file.metadata().map_err(|e| CoreError::io(path, e))?.len();
    let mut prefix = [0u8; 8];
    file.read_exact(&mut prefix)
        .map_err(|_| bad("shorter than the 8-byte header length".into()))?;
    let n = u64::from_le_bytes(prefix);
    if n > size - 8 {
        return Err(bad(format!(
            "header length {n} exceeds the file ({size} bytes)"
        )));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header)
        .map_err(|e| CoreError::io(path, e))?;
    let value: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| bad(format!("header: {e}")))?;
    let Some(meta) = value.get("__metadata__") else {
        return Ok(BTreeMap::new());
    };
    serde_json::from_value(meta.clone()).map_err(|e| bad(format!("__metadata__: {e}")))
}

/// Formats the key lists of [`CoreError::WeightsMismatch`].
pub(crate) fn describe_mismatch(
    missing: &[String],
    unused: &[String],
    mismatched: &[(String, String, String)],
) -> String {
    const SHOW: usize = 12;
    let mut s = String::new();
    let list = |s: &mut String, what: &str, keys: Vec<String>| {
        if keys.is_empty() {
            return;
        }
        s.push_str(&format!("\n  {} {what}: ", keys.len()));
        s.push_str(
            &keys
                .iter()
                .take(SHOW)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        );
        if keys.len() > SHOW {
            s.push_str(&format!(", … ({} more)", keys.len() - SHOW));
        }
    };
    list(&mut s, "missing from the file", missing.to_vec());
    list(&mut s, "unused keys in the file", unused.to_vec());
    list(
        &mut s,
        "wrongly shaped",
        mismatched
            .iter()
            .map(|(k, e, f)| format!("{k} (module wants {e}, file has {f})"))
            .collect(),
    );
    s
}
