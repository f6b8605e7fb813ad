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

use std::path::Path;

use burn::module::Module;
use burn::store::{
    ApplyError, ApplyResult, KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter, PytorchStore,
    SafetensorsStore,
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
        let is_safetensors = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
        let result: ApplyResult = if is_safetensors {
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
