//! cirtorch / revisitop ground-truth pickles `gnd_<dataset>.pkl` (docs/PAPERS.md protocols 1.7, docs/PAPERS.md A.8/A.9).
//!
//! A dict with `imlist` (database names without extension), `qimlist` (query names) and `gnd`
//! (one dict per query): `ok`/`junk` (old Oxford5k/Paris6k protocol and `gnd_247tokyo1k.pkl`) or
//! `easy`/`hard`/`junk` (ROxford5k / RParis6k), and `bbx` (`None`, a list, or a numpy array).
//! Index lists may be Python lists/tuples of ints, numpy integer scalars, or numpy arrays
//! (old `.mat`-derived files hold float or uint arrays of integral values).

use std::path::{Path, PathBuf};

use crate::error::{EvalError, Result};
use crate::metrics::{QueryGnd, RevisitedGnd};
use crate::pickle::{PyValue, unpickle};

/// Which evaluation protocol a gnd file supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GndProtocol {
    /// `ok` / `junk` lists: one mAP.
    Old,
    /// `easy` / `hard` / `junk` lists: Easy / Medium / Hard.
    Revisited,
}

/// Ground truth of one query.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GndEntry {
    /// `ok` (old protocol), if present.
    pub ok: Option<Vec<u32>>,
    /// `easy` (revisited), if present.
    pub easy: Option<Vec<u32>>,
    /// `hard` (revisited), if present.
    pub hard: Option<Vec<u32>>,
    /// `junk` (empty if absent).
    pub junk: Vec<u32>,
    /// The query's bounding box `[x1, y1, x2, y2]`, if any.
    pub bbx: Option<Vec<f64>>,
}

/// A parsed `gnd_<dataset>.pkl`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gnd {
    /// Database image names (no extension).
    pub imlist: Vec<String>,
    /// Query image names (no extension).
    pub qimlist: Vec<String>,
    /// One entry per query.
    pub gnd: Vec<GndEntry>,
    /// The file it was read from.
    pub path: PathBuf,
}

impl Gnd {
    /// Reads and validates a gnd pickle (any protocol 0–5).
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| EvalError::io(path, e))?;
        let value = unpickle(&bytes).map_err(|e| EvalError::Pickle {
            path: path.to_path_buf(),
            offset: e.offset,
            reason: e.reason,
        })?;
        Self::from_value(&value, path)
    }

    /// Builds from an unpickled value (`path` labels errors).
    pub fn from_value(value: &PyValue, path: &Path) -> Result<Self> {
        let bad = |key: String, expected: &str| EvalError::GndFormat {
            path: path.to_path_buf(),
            key,
            expected: expected.into(),
        };
        if !matches!(value, PyValue::Dict(_)) {
            return Err(bad(
                "<top level>".into(),
                "a dict with imlist, qimlist, gnd",
            ));
        }
        let field = |key: &str| {
            value.get(key).ok_or_else(|| EvalError::MissingKey {
                path: path.to_path_buf(),
                key: key.into(),
            })
        };
        let names = |key: &str| -> Result<Vec<String>> {
            let seq = field(key)?
                .as_seq()
                .ok_or_else(|| bad(key.into(), "a list of names"))?;
            seq.iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str()
                        .map(String::from)
                        .ok_or_else(|| bad(format!("{key}[{i}]"), "a string"))
                })
                .collect()
        };
        let imlist = names("imlist")?;
        let qimlist = names("qimlist")?;
        let entries = field("gnd")?
            .as_seq()
            .ok_or_else(|| bad("gnd".into(), "a list of per-query dicts"))?;
        if entries.len() != qimlist.len() {
            return Err(EvalError::SizeMismatch {
                what: "gnd entries vs qimlist".into(),
                expected: qimlist.len(),
                got: entries.len(),
                path: Some(path.to_path_buf()),
            });
        }
        let n_db = imlist.len();
        let mut gnd = Vec::with_capacity(entries.len());
        for (qi, e) in entries.iter().enumerate() {
            if !matches!(e, PyValue::Dict(_)) {
                return Err(bad(format!("gnd[{qi}]"), "a dict"));
            }
            let list = |key: &str| -> Result<Option<Vec<u32>>> {
                match e.get(key) {
                    None => Ok(None),
                    Some(v) => index_list(v, path, &format!("gnd[{qi}].{key}"), n_db).map(Some),
                }
            };
            let bbx = match e.get("bbx") {
                None | Some(PyValue::None) => None,
                Some(v) => Some(numbers(v).ok_or_else(|| {
                    bad(
                        format!("gnd[{qi}].bbx"),
                        "None, a list of numbers or a numeric numpy array",
                    )
                })?),
            };
            let entry = GndEntry {
                ok: list("ok")?,
                easy: list("easy")?,
                hard: list("hard")?,
                junk: list("junk")?.unwrap_or_default(),
                bbx,
            };
            if entry.ok.is_none() && (entry.easy.is_none() || entry.hard.is_none()) {
                return Err(EvalError::MissingKey {
                    path: path.to_path_buf(),
                    key: format!("gnd[{qi}].ok (or easy and hard)"),
                });
            }
            gnd.push(entry);
        }
        Ok(Self {
            imlist,
            qimlist,
            gnd,
            path: path.to_path_buf(),
        })
    }

    /// The protocol, decided as cirtorch-family code does: `ok` in `gnd[0]` means the old one.
    pub fn protocol(&self) -> GndProtocol {
        match self.gnd.first() {
            Some(g) if g.ok.is_some() => GndProtocol::Old,
            Some(_) => GndProtocol::Revisited,
            None => GndProtocol::Old,
        }
    }

    /// Per-query ok/junk for the old protocol (requires `ok` in every entry).
    pub fn old_protocol(&self) -> Result<Vec<QueryGnd>> {
        self.gnd
            .iter()
            .enumerate()
            .map(|(i, g)| match &g.ok {
                Some(ok) => Ok(QueryGnd {
                    ok: ok.clone(),
                    junk: g.junk.clone(),
                }),
                None => Err(EvalError::MissingKey {
                    path: self.path.clone(),
                    key: format!("gnd[{i}].ok"),
                }),
            })
            .collect()
    }

    /// Per-query easy/hard/junk for the revisited protocols (requires `easy` and `hard`).
    pub fn revisited(&self) -> Result<Vec<RevisitedGnd>> {
        self.gnd
            .iter()
            .enumerate()
            .map(|(i, g)| match (&g.easy, &g.hard) {
                (Some(easy), Some(hard)) => Ok(RevisitedGnd {
                    easy: easy.clone(),
                    hard: hard.clone(),
                    junk: g.junk.clone(),
                }),
                _ => Err(EvalError::MissingKey {
                    path: self.path.clone(),
                    key: format!("gnd[{i}].easy / gnd[{i}].hard"),
                }),
            })
            .collect()
    }
}

/// Numbers of a list/tuple/numpy array (flattened), or `None`.
fn numbers(v: &PyValue) -> Option<Vec<f64>> {
    if let Some(seq) = v.as_seq() {
        return seq.iter().map(PyValue::as_f64).collect();
    }
    v.to_ndarray().map(|a| a.values)
}

fn index_list(v: &PyValue, path: &Path, key: &str, n_db: usize) -> Result<Vec<u32>> {
    let vals = numbers(v).ok_or_else(|| EvalError::GndFormat {
        path: path.to_path_buf(),
        key: key.into(),
        expected: "a list or numpy array of database indices".into(),
    })?;
    vals.iter()
        .enumerate()
        .map(|(i, &x)| {
            if x.fract() != 0.0 || !x.is_finite() {
                return Err(EvalError::GndFormat {
                    path: path.to_path_buf(),
                    key: format!("{key}[{i}]"),
                    expected: format!("an integer index, found {x}"),
                });
            }
            if x < 0.0 || x >= n_db as f64 {
                return Err(EvalError::IndexOutOfRange {
                    what: format!("{key}[{i}] of {}", path.display()),
                    index: x as i64,
                    len: n_db,
                });
            }
            Ok(x as u32)
        })
        .collect()
}
