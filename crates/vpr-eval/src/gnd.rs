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

    /// An old-protocol ground truth (`ok` / `junk`, `bbx = None` per query), e.g. of a VPR set
    /// whose positives are the database images within 25 m ([`crate::GroundTruth::positives`]).
    ///
    /// # Errors
    /// [`EvalError::SizeMismatch`] when `ok` and `junk` do not have one entry per query,
    /// [`EvalError::IndexOutOfRange`] for an index past the database.
    ///
    /// ```
    /// use vpr_eval::Gnd;
    /// let gnd = Gnd::old(vec!["db0".into(), "db1".into()], vec!["q0".into()], vec![vec![1]], vec![vec![]])?;
    /// assert_eq!(gnd.old_protocol()?[0].ok, vec![1]);
    /// # Ok::<(), vpr_eval::EvalError>(())
    /// ```
    pub fn old(
        imlist: Vec<String>,
        qimlist: Vec<String>,
        ok: Vec<Vec<u32>>,
        junk: Vec<Vec<u32>>,
    ) -> Result<Self> {
        for (what, lists) in [("ok lists", &ok), ("junk lists", &junk)] {
            if lists.len() != qimlist.len() {
                return Err(EvalError::SizeMismatch {
                    what: format!("{what} vs queries of a gnd"),
                    expected: qimlist.len(),
                    got: lists.len(),
                    path: None,
                });
            }
            if let Some(&bad) = lists
                .iter()
                .flatten()
                .find(|&&i| i as usize >= imlist.len())
            {
                return Err(EvalError::IndexOutOfRange {
                    what: format!("a gnd's {what}"),
                    index: i64::from(bad),
                    len: imlist.len(),
                });
            }
        }
        Ok(Self {
            imlist,
            qimlist,
            gnd: ok
                .into_iter()
                .zip(junk)
                .map(|(ok, junk)| GndEntry {
                    ok: Some(ok),
                    junk,
                    ..GndEntry::default()
                })
                .collect(),
            path: PathBuf::new(),
        })
    }

    /// Writes the ground truth as a cirtorch `gnd_<dataset>.pkl` (pickle protocol 3, atomically):
    /// a dict with `imlist`, `qimlist` and `gnd`, one dict per query with the lists it has
    /// (`ok`, or `easy` and `hard`), `junk` and `bbx` (`None` without a box). Python's
    /// `pickle.load` and [`Gnd::read`] read it back.
    ///
    /// # Errors
    /// I/O errors naming the file.
    ///
    /// ```
    /// use vpr_eval::Gnd;
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("gnd_test.pkl");
    /// let gnd = Gnd::old(vec!["db0".into(), "db1".into()], vec!["q0".into()], vec![vec![1]], vec![vec![0]])?;
    /// gnd.write(&path)?;
    /// let back = Gnd::read(&path)?;
    /// assert_eq!((back.imlist, back.gnd), (gnd.imlist, gnd.gnd));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        use serde_pickle::{HashableValue as K, Value as V};
        use std::collections::BTreeMap;
        use std::io::Write;
        let ints = |v: &[u32]| V::List(v.iter().map(|&i| V::I64(i64::from(i))).collect());
        let strs = |v: &[String]| V::List(v.iter().map(|s| V::String(s.clone())).collect());
        let key = |k: &str| K::String(k.to_string());
        let entries = self
            .gnd
            .iter()
            .map(|g| {
                let mut d = BTreeMap::new();
                for (name, list) in [("ok", &g.ok), ("easy", &g.easy), ("hard", &g.hard)] {
                    if let Some(list) = list {
                        d.insert(key(name), ints(list));
                    }
                }
                d.insert(key("junk"), ints(&g.junk));
                let bbx = g
                    .bbx
                    .as_ref()
                    .map_or(V::None, |b| V::List(b.iter().map(|&x| V::F64(x)).collect()));
                d.insert(key("bbx"), bbx);
                V::Dict(d)
            })
            .collect();
        let mut top = BTreeMap::new();
        top.insert(key("imlist"), strs(&self.imlist));
        top.insert(key("qimlist"), strs(&self.qimlist));
        top.insert(key("gnd"), V::List(entries));
        let path = path.as_ref();
        let bytes = serde_pickle::value_to_vec(&V::Dict(top), serde_pickle::SerOptions::new())
            .map_err(|e| EvalError::InvalidArgument {
                name: "gnd",
                reason: format!("cannot pickle it for {}: {e}", path.display()),
            })?;
        nightvision_core::checkpoint::write_atomic(path, |f| {
            f.write_all(&bytes)
                .map_err(|e| nightvision_core::CoreError::io(path, e))
        })?;
        Ok(())
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
