//! VPR ground truth: UTM coordinates of database and queries, and positives within a radius.
//!
//! Positives are the database images within `radius` metres (Euclidean in UTM, **boundary
//! included**), as `NearestNeighbors().radius_neighbors(q_utm, radius=25)` gives them in
//! VPR-methods-evaluation and CosPlace (docs/PAPERS.md protocols 2.2). They are found through an exact uniform
//! grid index (cell = radius): only the 3×3 cells around a query are visited, and each candidate is
//! tested with `dx² + dy² <= r²` in `f64` (the kd-tree's reduced-distance test).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{EvalError, Result};
use crate::folder::VprDataset;
use crate::npy;

/// UTM coordinates of a database and its queries, the positive radius, and optionally the image
/// names in the same order.
#[derive(Debug, Clone, PartialEq)]
pub struct GroundTruth {
    /// (east, north) of each database image.
    pub utm_db: Vec<[f64; 2]>,
    /// (east, north) of each query.
    pub utm_queries: Vec<[f64; 2]>,
    /// The positive distance threshold in metres stored with the data (`posDistThr`), or 25.
    pub pos_dist_thr: f64,
    /// Database image names, if known.
    pub db_names: Option<Vec<String>>,
    /// Query image names, if known.
    pub query_names: Option<Vec<String>>,
    /// The file or folder it was read from.
    pub source: Option<PathBuf>,
}

/// The default positive radius (metres).
pub const DEFAULT_RADIUS: f64 = 25.0;

impl GroundTruth {
    /// Builds from coordinates; checks they are finite and the database is not empty.
    pub fn new(
        utm_db: Vec<[f64; 2]>,
        utm_queries: Vec<[f64; 2]>,
        pos_dist_thr: f64,
    ) -> Result<Self> {
        let gt = Self {
            utm_db,
            utm_queries,
            pos_dist_thr,
            db_names: None,
            query_names: None,
            source: None,
        };
        gt.validate()?;
        Ok(gt)
    }

    fn validate(&self) -> Result<()> {
        if self.utm_db.is_empty() {
            return Err(EvalError::Empty {
                what: "ground-truth database (utmDb)".into(),
                path: self.source.clone(),
            });
        }
        for (what, pts) in [("utmDb", &self.utm_db), ("utmQ", &self.utm_queries)] {
            if let Some((row, col, v)) = pts
                .iter()
                .enumerate()
                .find_map(|(i, p)| p.iter().position(|x| !x.is_finite()).map(|c| (i, c, p[c])))
            {
                return Err(EvalError::NonFinite {
                    what: what.into(),
                    row,
                    col,
                    value: v,
                    path: self.source.clone(),
                });
            }
        }
        if !(self.pos_dist_thr.is_finite() && self.pos_dist_thr >= 0.0) {
            return Err(EvalError::InvalidArgument {
                name: "posDistThr",
                reason: format!(
                    "{} is not a finite non-negative distance{}",
                    self.pos_dist_thr,
                    // read from a file: the file is named (a finding of the fuzz campaign)
                    self.source
                        .as_ref()
                        .map(|p| format!(" (in {})", p.display()))
                        .unwrap_or_default()
                ),
            });
        }
        Ok(())
    }

    /// Reads the npz format of `gt/tokyo247.npz` / `gt/pitts30k_test.npz` (keys `utmQ` (nq, 2),
    /// `utmDb` (ndb, 2), optional scalar `posDistThr`). Image names are read from
    /// `<stem>_imageNames_{index,query}.txt` next to it when present (for `pitts30k_test.npz` also
    /// `pitts30k_imageNames_*.txt`), and must then match the coordinate counts.
    pub fn read_npz(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let utm = |key: &str| -> Result<Vec<[f64; 2]>> {
            let a = npy::read_npz(path, key)?;
            if a.shape.len() != 2 || a.shape[1] != 2 {
                return Err(EvalError::ArrayFormat {
                    path: path.to_path_buf(),
                    key: key.into(),
                    expected: "an (n, 2) array of UTM east/north".into(),
                    found: a.describe(),
                });
            }
            Ok(a.to_f64().chunks_exact(2).map(|c| [c[0], c[1]]).collect())
        };
        let utm_queries = utm("utmQ")?;
        let utm_db = utm("utmDb")?;
        let pos_dist_thr = match npy::read_npz(path, "posDistThr") {
            Ok(a) if a.len() == 1 => a.to_f64()[0],
            Ok(a) => {
                return Err(EvalError::ArrayFormat {
                    path: path.to_path_buf(),
                    key: "posDistThr".into(),
                    expected: "a scalar".into(),
                    found: a.describe(),
                });
            }
            Err(EvalError::MissingKey { .. }) => DEFAULT_RADIUS,
            Err(e) => return Err(e),
        };
        let mut gt = Self {
            utm_db,
            utm_queries,
            pos_dist_thr,
            db_names: None,
            query_names: None,
            source: Some(path.to_path_buf()),
        };
        gt.validate()?;
        if let Some((index, query)) = name_lists(path) {
            let db_names = read_lines(&index)?;
            let query_names = read_lines(&query)?;
            for (file, names, n) in [
                (&index, &db_names, gt.utm_db.len()),
                (&query, &query_names, gt.utm_queries.len()),
            ] {
                if names.len() != n {
                    return Err(EvalError::SizeMismatch {
                        what: format!("image names vs coordinates of {}", path.display()),
                        expected: n,
                        got: names.len(),
                        path: Some(file.clone()),
                    });
                }
            }
            gt.db_names = Some(db_names);
            gt.query_names = Some(query_names);
        }
        Ok(gt)
    }

    /// Ground truth from two image lists, one UTM-named file name (or relative path) per line —
    /// the lists written next to exported descriptors: the database's and the queries'. The
    /// positive radius is the standard 25 m.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let (db, q) = (dir.path().join("database.txt"), dir.path().join("queries.txt"));
    /// std::fs::write(&db, "@0000100.00@0000200.00@@@@@@@@@@@@@.jpg\n@0000300.00@0000200.00@@@@@@@@@@@@@.jpg\n")?;
    /// std::fs::write(&q, "@0000110.00@0000200.00@@@@@@@@@@@@@.jpg\n")?;
    /// let gt = vpr_eval::GroundTruth::from_name_lists(&db, &q)?;
    /// assert_eq!(gt.positives(25.0)?.lists, vec![vec![0]]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// I/O errors, and [`EvalError::BadImageName`] naming the file and line of a name without
    /// UTM fields.
    pub fn from_name_lists(
        db_list: impl AsRef<Path>,
        query_list: impl AsRef<Path>,
    ) -> Result<Self> {
        let read = |path: &Path| -> Result<(Vec<[f64; 2]>, Vec<String>)> {
            let names = read_lines(path)?;
            let utm = names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    crate::folder::parse_with_location(n, Some(path), Some(i + 1))
                        .map(|v| [v.east, v.north])
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((utm, names))
        };
        let (utm_db, db_names) = read(db_list.as_ref())?;
        let (utm_queries, query_names) = read(query_list.as_ref())?;
        let gt = Self {
            utm_db,
            utm_queries,
            pos_dist_thr: DEFAULT_RADIUS,
            db_names: Some(db_names),
            query_names: Some(query_names),
            source: Some(db_list.as_ref().to_path_buf()),
        };
        gt.validate()?;
        Ok(gt)
    }

    /// Ground truth from the UTM fields of a folder dataset's file names (names = relative paths).
    pub fn from_dataset(ds: &VprDataset) -> Result<Self> {
        let gt = Self {
            utm_db: ds.database.utm(),
            utm_queries: ds.queries.utm(),
            pos_dist_thr: DEFAULT_RADIUS,
            db_names: Some(ds.database.relative_names()),
            query_names: Some(ds.queries.relative_names()),
            source: Some(ds.database.dir.clone()),
        };
        gt.validate()?;
        Ok(gt)
    }

    /// Number of database images.
    pub fn n_db(&self) -> usize {
        self.utm_db.len()
    }

    /// Number of queries.
    pub fn n_queries(&self) -> usize {
        self.utm_queries.len()
    }

    /// Positives of every query within `radius` metres (boundary included), ascending indices.
    pub fn positives(&self, radius: f64) -> Result<Positives> {
        if !(radius.is_finite() && radius >= 0.0) {
            return Err(EvalError::InvalidArgument {
                name: "radius",
                reason: format!("{radius} is not a finite non-negative distance"),
            });
        }
        let grid = Grid::new(&self.utm_db, radius);
        let lists = self
            .utm_queries
            .iter()
            .map(|q| grid.within(&self.utm_db, *q, radius))
            .collect();
        Ok(Positives {
            radius,
            n_db: self.utm_db.len(),
            lists,
        })
    }

    /// Checks a (database, queries) descriptor pair matches this ground truth in counts.
    pub fn check_counts(&self, n_db: usize, n_queries: usize) -> Result<()> {
        for (what, expected, got) in [
            ("database descriptors vs ground truth", self.n_db(), n_db),
            (
                "query descriptors vs ground truth",
                self.n_queries(),
                n_queries,
            ),
        ] {
            if expected != got {
                return Err(EvalError::SizeMismatch {
                    what: what.into(),
                    expected,
                    got,
                    path: self.source.clone(),
                });
            }
        }
        Ok(())
    }
}

fn name_lists(npz: &Path) -> Option<(PathBuf, PathBuf)> {
    let stem = npz.file_stem()?.to_string_lossy().to_string();
    let mut stems = vec![stem.clone()];
    for suffix in ["_test", "_val", "_train"] {
        if let Some(s) = stem.strip_suffix(suffix) {
            stems.push(s.to_string());
        }
    }
    stems.into_iter().find_map(|s| {
        let index = npz.with_file_name(format!("{s}_imageNames_index.txt"));
        let query = npz.with_file_name(format!("{s}_imageNames_query.txt"));
        (index.is_file() && query.is_file()).then_some((index, query))
    })
}

fn read_lines(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// Exact uniform grid over 2-D points.
struct Grid {
    cell: f64,
    cells: HashMap<(i64, i64), Vec<u32>>,
}

impl Grid {
    fn new(points: &[[f64; 2]], radius: f64) -> Self {
        // Slightly wider than the radius so that rounding in `p / cell` can never move a point at
        // distance <= radius two cells away (relative rounding ~1e-16 vs a 1e-6 margin); a zero
        // radius still needs a positive cell size.
        let cell = if radius > 0.0 {
            radius * (1.0 + 1e-6)
        } else {
            1.0
        };
        let mut cells: HashMap<(i64, i64), Vec<u32>> = HashMap::new();
        for (i, p) in points.iter().enumerate() {
            cells.entry(Self::key(cell, p)).or_default().push(i as u32);
        }
        Self { cell, cells }
    }

    fn key(cell: f64, p: &[f64; 2]) -> (i64, i64) {
        ((p[0] / cell).floor() as i64, (p[1] / cell).floor() as i64)
    }

    fn within(&self, points: &[[f64; 2]], q: [f64; 2], radius: f64) -> Vec<u32> {
        let (cx, cy) = Self::key(self.cell, &q);
        // cells of width `cell > radius`: the 3x3 neighbourhood covers the disc
        let mut out = Vec::new();
        let r2 = radius * radius;
        for dx in -1..=1i64 {
            for dy in -1..=1i64 {
                // cells past the ends of i64 (coordinates near ±1.8e308 saturate the cell index)
                // do not exist: checked, so no overflow and no cell is visited twice
                let (Some(x), Some(y)) = (cx.checked_add(dx), cy.checked_add(dy)) else {
                    continue;
                };
                if let Some(ids) = self.cells.get(&(x, y)) {
                    for &i in ids {
                        let p = points[i as usize];
                        let (ex, ey) = (p[0] - q[0], p[1] - q[1]);
                        if ex * ex + ey * ey <= r2 {
                            out.push(i);
                        }
                    }
                }
            }
        }
        out.sort_unstable();
        out
    }
}

/// Positives of every query: ascending database indices within the radius.
#[derive(Debug, Clone, PartialEq)]
pub struct Positives {
    /// The radius used (metres).
    pub radius: f64,
    /// Number of database images.
    pub n_db: usize,
    /// One ascending list per query.
    pub lists: Vec<Vec<u32>>,
}

/// Summary statistics of [`Positives`] (what `evaluate positives` prints).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PositivesSummary {
    /// Number of queries.
    pub n_queries: usize,
    /// Number of database images.
    pub n_db: usize,
    /// The radius in metres.
    pub radius: f64,
    /// Mean number of positives per query.
    pub mean: f64,
    /// Minimum number of positives of a query.
    pub min: usize,
    /// Maximum number of positives of a query.
    pub max: usize,
    /// Queries without any positive (they count as misses in Recall@N).
    pub without_positive: usize,
}

impl Positives {
    /// Number of queries.
    pub fn n_queries(&self) -> usize {
        self.lists.len()
    }

    /// Summary statistics.
    pub fn summary(&self) -> PositivesSummary {
        let counts: Vec<usize> = self.lists.iter().map(Vec::len).collect();
        let n = counts.len();
        PositivesSummary {
            n_queries: n,
            n_db: self.n_db,
            radius: self.radius,
            mean: if n == 0 {
                0.0
            } else {
                counts.iter().sum::<usize>() as f64 / n as f64
            },
            min: counts.iter().copied().min().unwrap_or(0),
            max: counts.iter().copied().max().unwrap_or(0),
            without_positive: counts.iter().filter(|&&c| c == 0).count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force over all pairs, the definition.
    fn brute(db: &[[f64; 2]], q: [f64; 2], r: f64) -> Vec<u32> {
        (0..db.len() as u32)
            .filter(|&i| {
                let p = db[i as usize];
                (p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) <= r * r
            })
            .collect()
    }

    #[test]
    fn grid_equals_brute_force_including_the_boundary() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let db: Vec<[f64; 2]> = (0..2000)
            .map(|_| {
                [
                    380_000.0 + rng.random_range(0.0..500.0f64).round(),
                    3_946_000.0 + rng.random_range(0.0..500.0f64).round(),
                ]
            })
            .collect();
        // integer coordinates: many points exactly at 25 m (e.g. offsets (15, 20), (25, 0))
        let queries: Vec<[f64; 2]> = db.iter().take(300).map(|p| [p[0] + 7.0, p[1]]).collect();
        let gt = GroundTruth::new(db.clone(), queries.clone(), 25.0).unwrap();
        let pos = gt.positives(25.0).unwrap();
        let mut on_boundary = 0;
        for (qi, q) in queries.iter().enumerate() {
            assert_eq!(pos.lists[qi], brute(&db, *q, 25.0), "query {qi}");
            on_boundary += db
                .iter()
                .filter(|p| (p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) == 625.0)
                .count();
        }
        assert!(on_boundary > 0, "the test must exercise the boundary");
    }

    #[test]
    fn zero_radius_finds_identical_points_only() {
        let gt = GroundTruth::new(
            vec![[0.0, 0.0], [0.0, 0.0], [0.5, 0.0]],
            vec![[0.0, 0.0]],
            25.0,
        )
        .unwrap();
        assert_eq!(gt.positives(0.0).unwrap().lists, vec![vec![0, 1]]);
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        assert!(matches!(
            GroundTruth::new(vec![], vec![[0.0, 0.0]], 25.0),
            Err(EvalError::Empty { .. })
        ));
        assert!(matches!(
            GroundTruth::new(vec![[f64::NAN, 0.0]], vec![], 25.0),
            Err(EvalError::NonFinite { .. })
        ));
        let gt = GroundTruth::new(vec![[0.0, 0.0]], vec![[0.0, 0.0]], 25.0).unwrap();
        assert!(matches!(
            gt.positives(-1.0),
            Err(EvalError::InvalidArgument { .. })
        ));
        assert!(matches!(
            gt.check_counts(1, 2),
            Err(EvalError::SizeMismatch { .. })
        ));
    }
}
