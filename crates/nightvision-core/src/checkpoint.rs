//! Atomic checkpoints: nothing is lost when a run is killed half-way through a save.
//!
//! - [`write_atomic`] writes a file through a temporary sibling and renames it into place (a rename
//!   within one folder is atomic on POSIX), so readers see the old or the new file, never a torn one.
//! - [`save_module`] / [`load_module`] store a module's parameters in burn's record format
//!   (burnpack), which keeps parameter ids, so an optimiser state saved next to it resumes exactly.
//! - [`CheckpointDir`] keeps numbered training checkpoints (`step-000003/` holding any named parts
//!   plus `state.json`) and a `latest.json` pointer that is switched only after a checkpoint is
//!   complete; [`CheckpointDir::latest`] finds where to resume.
//!
//! ```
//! use nightvision_core::checkpoint::CheckpointDir;
//!
//! let root = tempfile::tempdir().unwrap();
//! let ckpt = CheckpointDir::new(root.path().join("run")).unwrap();
//! assert!(ckpt.latest::<u32>().unwrap().is_none());
//! ckpt.save(1, &[("weights.bin", b"abc".to_vec())], &7u32).unwrap();
//! let (epoch, state, dir) = ckpt.latest::<u32>().unwrap().unwrap();
//! assert_eq!((epoch, state), (1, 7));
//! assert_eq!(std::fs::read(dir.join("weights.bin")).unwrap(), b"abc");
//! ```

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::{DTypePolicy, ModuleRecord};
use serde::{Serialize, de::DeserializeOwned};

use crate::{CoreError, Result};

fn tmp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    path.with_file_name(format!(".{name}.{}.part", std::process::id()))
}

/// The environment variable that slows every atomic write by that many milliseconds (between
/// the written, synced temporary file and its rename), so that `scripts/kill-test.sh` can land
/// SIGKILLs inside checkpoint and report writes. For tests only; unset in normal runs.
pub const SLOW_WRITE_ENV: &str = "NIGHTVISION_SLOW_CHECKPOINT_MS";

fn slow_write_for_tests() {
    if let Some(ms) = std::env::var_os(SLOW_WRITE_ENV)
        .and_then(|v| v.to_str().and_then(|v| v.parse::<u64>().ok()))
        .filter(|&ms| ms > 0)
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// Writes `path` atomically: `write` fills a temporary sibling file, which is flushed, synced and
/// renamed over `path`. On any error the temporary file is removed and `path` is untouched.
pub fn write_atomic(
    path: impl AsRef<Path>,
    write: impl FnOnce(&mut File) -> Result<()>,
) -> Result<()> {
    let path = path.as_ref();
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| CoreError::io(parent, e))?;
    }
    let tmp = tmp_sibling(path);
    let result = (|| {
        let mut file = File::create(&tmp).map_err(|e| CoreError::io(&tmp, e))?;
        write(&mut file)?;
        file.flush().map_err(|e| CoreError::io(&tmp, e))?;
        file.sync_all().map_err(|e| CoreError::io(&tmp, e))?;
        slow_write_for_tests();
        std::fs::rename(&tmp, path).map_err(|e| CoreError::io(path, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes bytes atomically (see [`write_atomic`]).
pub fn write_bytes_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let path = path.as_ref();
    write_atomic(path, |f| {
        f.write_all(bytes).map_err(|e| CoreError::io(path, e))
    })
}

/// Writes a value as pretty JSON, atomically.
pub fn save_json<T: Serialize + ?Sized>(path: impl AsRef<Path>, value: &T) -> Result<()> {
    let path = path.as_ref();
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| CoreError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    write_bytes_atomic(path, &bytes)
}

/// Reads a JSON value.
pub fn load_json<T: DeserializeOwned>(path: impl AsRef<Path>) -> Result<T> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| CoreError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|source| CoreError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// A module's parameters as bytes (burnpack record, parameter ids kept).
///
/// BatchNorm running statistics are synchronised first: a record reads them without
/// synchronising, so the update of the last training forward (held per thread until the next
/// read) would be missing from the bytes and a resumed run would drift from an uninterrupted one.
pub fn module_to_bytes<M: Module>(module: &M) -> Result<Vec<u8>> {
    // `valid` synchronises every running state in place (clones share them); its snapshot is
    // dropped.
    let _ = module.valid();
    module
        .clone()
        .into_record()
        .into_bytes()
        .map(|b| b.to_vec())
        .map_err(|e| CoreError::Record {
            path: PathBuf::from("<memory>"),
            message: format!("{e:?}"),
        })
}

/// Loads parameters produced by [`module_to_bytes`] into `module` (same architecture).
///
/// # Errors
/// [`CoreError::Record`] naming `origin` when the bytes are not a record, or a record of another
/// architecture (a missing parameter or a wrong shape).
pub fn module_from_bytes<M: Module>(module: M, bytes: Vec<u8>, origin: &Path) -> Result<M> {
    let record_err = |message: String| CoreError::Record {
        path: origin.to_path_buf(),
        message,
    };
    let record = ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
        .map_err(|e| record_err(e.to_string()))?
        // the module decides each parameter's dtype: with the default (the record's dtype), a
        // record holding an integer tensor for a float parameter panics inside burn (a finding
        // of the fuzz campaign); our own records hold the module's dtypes, so this casts nothing
        .with_dtype_policy(DTypePolicy::CastToModule);
    // `try_load_record`, not `load_record`: the latter panics on a record of another module
    module
        .try_load_record(record)
        .map_err(|e| record_err(e.to_string()))
}

/// Saves a module's parameters to `path` atomically.
pub fn save_module<M: Module>(module: &M, path: impl AsRef<Path>) -> Result<()> {
    write_bytes_atomic(path, &module_to_bytes(module)?)
}

/// Loads a module saved by [`save_module`] into `module` (same architecture).
pub fn load_module<M: Module>(module: M, path: impl AsRef<Path>) -> Result<M> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| CoreError::io(path, e))?;
    module_from_bytes(module, bytes, path)
}

/// An optimiser's state (moments, step counts, keyed by parameter id) as bytes.
pub fn optimizer_to_bytes(optim: &ModuleOptimizer) -> Result<Vec<u8>> {
    optim
        .into_bytes()
        .map(|b| b.to_vec())
        .map_err(|e| CoreError::Record {
            path: PathBuf::from("<optimizer>"),
            message: format!("{e:?}"),
        })
}

/// Restores an optimiser state saved by [`optimizer_to_bytes`] from the file `path` (the
/// optimiser must have been built with the same configuration and groups).
pub fn load_optimizer(optim: ModuleOptimizer, path: impl AsRef<Path>) -> Result<ModuleOptimizer> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| CoreError::io(path, e))?;
    optim
        .from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
        .map_err(|e| CoreError::Record {
            path: path.to_path_buf(),
            message: format!("{e:?}"),
        })
}

/// What every trainer of the workspace returns: the trained network (or the bundle of networks a
/// trainer updates together, e.g. a GAN's generators and discriminators) and the log of the whole
/// run, resumed parts included.
///
/// The trainers share one shape: a configuration → `XTrainer::new(config, data, …, &device)` →
/// `train(networks, Option<&CheckpointDir>) -> Result<Trained<…>>`.
///
/// ```
/// use nightvision_core::checkpoint::Trained;
///
/// let t = Trained { net: "weights", log: vec![0.9_f32, 0.5] };
/// assert_eq!(t.log.last(), Some(&0.5));
/// ```
#[derive(Debug, Clone)]
pub struct Trained<M, L> {
    /// The trained network(s), on the training device.
    pub net: M,
    /// The log of all steps or epochs, resumed ones included.
    pub log: L,
}

/// The file in a [`CheckpointDir`] that holds the configuration of what it trains.
pub const CONFIG_FILE: &str = "config.json";

/// Pushes `(path, a, b)` for every leaf where the JSON values `a` and `b` differ.
fn json_diff(
    a: &serde_json::Value,
    b: &serde_json::Value,
    path: &str,
    out: &mut Vec<(String, String, String)>,
) {
    use serde_json::Value;
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                json_diff(va, vb, &join(k), out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                json_diff(va, vb, &format!("{path}[{i}]"), out);
            }
        }
        _ if a != b => out.push((
            if path.is_empty() {
                "(root)".into()
            } else {
                path.to_string()
            },
            a.to_string(),
            b.to_string(),
        )),
        _ => {}
    }
}

/// Numbered training checkpoints with an atomically switched `latest.json` pointer.
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    root: PathBuf,
}

#[derive(Serialize, serde::Deserialize)]
struct Latest {
    step: u64,
    dir: String,
}

impl CheckpointDir {
    /// Opens (creating if needed) the checkpoint folder `root`.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|e| CoreError::io(&root, e))?;
        Ok(Self { root })
    }

    /// Opens an existing checkpoint folder for reading (a loader's entry: nothing is created).
    ///
    /// # Errors
    /// [`CoreError::NoCheckpoint`] when `root` is not a folder.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        if !root.is_dir() {
            return Err(CoreError::NoCheckpoint {
                path: root,
                what: "the checkpoint folder".into(),
            });
        }
        Ok(Self { root })
    }

    /// The checkpoint folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Saves checkpoint `step` (an epoch or iteration number): every `(file name, bytes)` part
    /// plus `state.json`, into `step-NNNNNN/` (built in a temporary folder and renamed), then
    /// points `latest.json` at it and removes older checkpoints except the previous one.
    pub fn save<S: Serialize>(
        &self,
        step: u64,
        parts: &[(&str, Vec<u8>)],
        state: &S,
    ) -> Result<PathBuf> {
        let name = format!("step-{step:06}");
        let final_dir = self.root.join(&name);
        let tmp = self
            .root
            .join(format!(".{name}.{}.part", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| CoreError::io(&tmp, e))?;
        let filled = (|| {
            for (file, bytes) in parts {
                write_bytes_atomic(tmp.join(file), bytes)?;
            }
            save_json(tmp.join("state.json"), state)?;
            slow_write_for_tests();
            if final_dir.exists() {
                std::fs::remove_dir_all(&final_dir).map_err(|e| CoreError::io(&final_dir, e))?;
            }
            std::fs::rename(&tmp, &final_dir).map_err(|e| CoreError::io(&final_dir, e))
        })();
        if let Err(e) = filled {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        let previous = self.latest_pointer()?;
        save_json(
            self.root.join("latest.json"),
            &Latest {
                step,
                dir: name.clone(),
            },
        )?;
        // Keep the new checkpoint and the one before it; drop older ones.
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            for entry in entries.flatten() {
                let n = entry.file_name().to_string_lossy().into_owned();
                let keep = n == name || previous.as_ref().is_some_and(|p| p.dir == n);
                if n.starts_with("step-") && !keep {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        Ok(final_dir)
    }

    fn latest_pointer(&self) -> Result<Option<Latest>> {
        let p = self.root.join("latest.json");
        if !p.exists() {
            return Ok(None);
        }
        let latest: Latest = load_json(&p)?;
        // the pointer names a folder of this checkpoint folder, nothing else: not a path that
        // leads out of it (`../other-run`, `/etc`), not the folder itself
        let mut parts = Path::new(&latest.dir).components();
        if !matches!(
            (parts.next(), parts.next()),
            (Some(std::path::Component::Normal(_)), None)
        ) {
            return Err(CoreError::Checkpoint {
                path: p,
                reason: format!(
                    "\"dir\" is {:?}, not the name of a checkpoint folder inside {}",
                    latest.dir,
                    self.root.display()
                ),
            });
        }
        Ok(Some(latest))
    }

    /// Binds the folder to the configuration that builds and trains what it holds (the
    /// networks' configurations and the stage's settings): a folder without `config.json` gets
    /// it (written atomically); a folder with one accepts an equal configuration and refuses any
    /// other with [`CoreError::ConfigMismatch`] naming every differing field, so that a resumed
    /// run never continues another run's weights. [`CheckpointDir::clear`] starts over.
    ///
    /// ```
    /// use nightvision_core::checkpoint::CheckpointDir;
    /// use serde_json::json;
    ///
    /// let root = tempfile::tempdir().unwrap();
    /// let ckpt = CheckpointDir::new(root.path()).unwrap();
    /// ckpt.bind_config(&json!({"network": {"ngf": 16}, "lr": 1e-4})).unwrap();
    /// ckpt.bind_config(&json!({"network": {"ngf": 16}, "lr": 1e-4})).unwrap(); // same: resumes
    /// let e = ckpt.bind_config(&json!({"network": {"ngf": 32}, "lr": 1e-4})).unwrap_err();
    /// assert!(e.to_string().contains("network.ngf"), "{e}");
    /// ckpt.clear().unwrap();
    /// ckpt.bind_config(&json!({"network": {"ngf": 32}, "lr": 1e-4})).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`CoreError::ConfigMismatch`]; I/O and JSON errors naming the file.
    pub fn bind_config<C: Serialize + ?Sized>(&self, config: &C) -> Result<()> {
        let path = self.root.join(CONFIG_FILE);
        let requested = serde_json::to_value(config).map_err(|source| CoreError::Json {
            path: path.clone(),
            source,
        })?;
        if !path.exists() {
            return save_json(&path, &requested);
        }
        let stored: serde_json::Value = load_json(&path)?;
        let mut diffs = Vec::new();
        json_diff(&stored, &requested, "", &mut diffs);
        if diffs.is_empty() {
            return Ok(());
        }
        Err(CoreError::ConfigMismatch {
            path,
            fields: diffs.iter().map(|(f, _, _)| f.clone()).collect(),
            details: diffs
                .iter()
                .map(|(f, a, b)| format!("{f}: {a} → {b}"))
                .collect::<Vec<_>>()
                .join("; "),
        })
    }

    /// The stored configuration (`config.json`) read as `C`.
    ///
    /// # Errors
    /// [`CoreError::NoCheckpoint`] when the folder has none; JSON errors naming the file.
    pub fn config<C: DeserializeOwned>(&self) -> Result<C> {
        let path = self.root.join(CONFIG_FILE);
        if !path.is_file() {
            return Err(CoreError::NoCheckpoint {
                path: self.root.clone(),
                what: CONFIG_FILE.into(),
            });
        }
        load_json(path)
    }

    /// Field `key` of the stored configuration read as `C` (e.g. the `"network"` configuration
    /// a loader rebuilds the network from).
    ///
    /// # Errors
    /// [`CoreError::NoCheckpoint`] when the folder has no `config.json` or it lacks `key`; JSON
    /// errors naming the file.
    pub fn config_field<C: DeserializeOwned>(&self, key: &str) -> Result<C> {
        let path = self.root.join(CONFIG_FILE);
        let value: serde_json::Value = self.config()?;
        let field = value
            .get(key)
            .cloned()
            .ok_or_else(|| CoreError::NoCheckpoint {
                path: path.clone(),
                what: format!("the field {key:?} of {CONFIG_FILE}"),
            })?;
        serde_json::from_value(field).map_err(|source| CoreError::Json { path, source })
    }

    /// Loads part `file` of the newest checkpoint into `module` (same architecture): how a
    /// trained network is rebuilt from its folder alone, with [`CheckpointDir::config`].
    ///
    /// # Errors
    /// [`CoreError::NoCheckpoint`] when the folder has no complete checkpoint; I/O and record
    /// errors naming the file.
    pub fn load_latest<M: Module>(&self, module: M, file: &str) -> Result<M> {
        let Some(latest) = self.latest_pointer()? else {
            return Err(CoreError::NoCheckpoint {
                path: self.root.clone(),
                what: "latest.json (a complete checkpoint)".into(),
            });
        };
        load_module(module, self.root.join(latest.dir).join(file))
    }

    /// Removes every checkpoint, `latest.json`, `config.json` and `log.json` of the folder (the
    /// folder itself stays): the next run starts over.
    ///
    /// # Errors
    /// I/O errors naming the file.
    pub fn clear(&self) -> Result<()> {
        let entries = std::fs::read_dir(&self.root).map_err(|e| CoreError::io(&self.root, e))?;
        // the pointer first: a kill half-way leaves a folder that starts over, never a torn resume
        for name in ["latest.json", CONFIG_FILE, "log.json"] {
            let p = self.root.join(name);
            if p.exists() {
                std::fs::remove_file(&p).map_err(|e| CoreError::io(&p, e))?;
            }
        }
        for entry in entries.flatten() {
            let n = entry.file_name().to_string_lossy().into_owned();
            if n.starts_with("step-") || (n.starts_with('.') && n.ends_with(".part")) {
                let p = entry.path();
                let r = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
                r.map_err(|e| CoreError::io(&p, e))?;
            }
        }
        Ok(())
    }

    /// The newest complete checkpoint: `(step, state, folder)`, or `None` for a fresh run.
    pub fn latest<S: DeserializeOwned>(&self) -> Result<Option<(u64, S, PathBuf)>> {
        let Some(latest) = self.latest_pointer()? else {
            return Ok(None);
        };
        let dir = self.root.join(&latest.dir);
        let state = load_json(dir.join("state.json"))?;
        Ok(Some((latest.step, state, dir)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.bin");
        write_bytes_atomic(&p, b"old").unwrap();
        let r = write_atomic(&p, |f| {
            f.write_all(b"half").unwrap();
            Err(CoreError::InvalidArgument {
                name: "test",
                reason: "killed".into(),
            })
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "temporary file left behind");
    }

    #[test]
    fn a_changed_configuration_is_refused_with_every_differing_field() {
        let dir = tempfile::tempdir().unwrap();
        let c = CheckpointDir::new(dir.path()).unwrap();
        let a = serde_json::json!({"g": {"ngf": 16, "norm": "instance"}, "lr": 0.1, "ms": [1, 2]});
        c.bind_config(&a).unwrap();
        c.save(1, &[("m.bin", vec![1])], &1u8).unwrap();
        c.bind_config(&a).unwrap();
        let b = serde_json::json!({"g": {"ngf": 32, "norm": "instance"}, "lr": 0.1, "ms": [1, 3], "new": true});
        match c.bind_config(&b).unwrap_err() {
            CoreError::ConfigMismatch {
                fields,
                details,
                path,
            } => {
                assert_eq!(fields, ["g.ngf", "ms[1]", "new"]);
                assert!(details.contains("g.ngf: 16 → 32"), "{details}");
                assert_eq!(path, dir.path().join(CONFIG_FILE));
            }
            e => panic!("{e}"),
        }
        // the stored configuration and the checkpoint are untouched by the refusal
        assert_eq!(c.config::<serde_json::Value>().unwrap(), a);
        assert!(c.latest::<u8>().unwrap().is_some());
        c.clear().unwrap();
        assert!(c.latest::<u8>().unwrap().is_none());
        assert!(matches!(
            c.config::<serde_json::Value>(),
            Err(CoreError::NoCheckpoint { .. })
        ));
        c.bind_config(&b).unwrap();
    }

    #[test]
    fn checkpoints_rotate_and_latest_points_to_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let c = CheckpointDir::new(dir.path()).unwrap();
        for step in 1..=4u64 {
            c.save(step, &[("m.bin", vec![step as u8])], &(step * 10))
                .unwrap();
        }
        let (step, state, d) = c.latest::<u64>().unwrap().unwrap();
        assert_eq!((step, state), (4, 40));
        assert_eq!(std::fs::read(d.join("m.bin")).unwrap(), vec![4]);
        let mut kept: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("step-"))
            .collect();
        kept.sort();
        assert_eq!(kept, ["step-000003", "step-000004"]);
    }

    #[test]
    fn module_roundtrip_is_exact() {
        use burn::nn::LinearConfig;
        use burn::tensor::Device;
        let device = Device::default();
        device.seed(3);
        let a = LinearConfig::new(4, 3).init(&device);
        let b = LinearConfig::new(4, 3).init(&device);
        let dir = tempfile::tempdir().unwrap();
        save_module(&a, dir.path().join("a.bpk")).unwrap();
        let b = load_module(b, dir.path().join("a.bpk")).unwrap();
        assert_eq!(a.weight.val().to_data(), b.weight.val().to_data());
    }

    #[test]
    fn a_record_holds_the_last_batchnorm_update() {
        use burn::nn::BatchNormConfig;
        use burn::tensor::{Device, Tensor, TensorData};
        let device = Device::default().autodiff();
        let bn = BatchNormConfig::new(2).init(&device);
        let x = |v: f32| {
            Tensor::<4>::from_data(
                TensorData::new(vec![v, 1.0, -v, 3.0, 0.5, v, 2.0, -1.0], [2, 2, 1, 2]),
                &device,
            )
        };
        // two training forwards: the second update is held per thread until the next read
        let _ = bn.forward(x(4.0));
        let _ = bn.forward(x(-2.0));
        let bytes = module_to_bytes(&bn).unwrap();
        let fresh = BatchNormConfig::new(2).init(&device);
        let loaded = module_from_bytes(fresh, bytes, Path::new("<test>")).unwrap();
        // running mean of channel 0 with momentum 0.1 after batches whose channel-0 values are
        // (4, 1, 0.5, 4) and (−2, 1, 0.5, −2): means 2.375 and −0.625
        let want = 0.9 * (0.1 * 2.375) + 0.1 * -0.625;
        let got: Vec<f32> = loaded
            .running_mean
            .value()
            .into_data()
            .iter::<f32>()
            .collect();
        assert!((f64::from(got[0]) - want).abs() < 1e-6, "{got:?} vs {want}");
        assert_eq!(
            bn.running_mean.value_sync().into_data(),
            loaded.running_mean.value().into_data()
        );
    }
}
