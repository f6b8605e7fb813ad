//! Recall@N (VPR) and cirtorch mAP / mP@k (retrieval), exactly as the reference code computes them.
//!
//! * Recall@N (VPR-methods-evaluation, docs/PAPERS.md protocols 2.2): a query is a hit at N if any of its first N
//!   predictions is a positive; `R@N = hits / n_queries × 100`, so **queries without positives
//!   count as misses**.
//! * mAP (cirtorch `utils/evaluate.py`, docs/PAPERS.md protocols 1.6): trapezoid AP over the positions of the
//!   positives after removing junk ranked before them; queries with no positive get AP = NaN and are
//!   excluded from the mean; mP@k uses cirtorch's `kq = min(max(pos), k)` denominator.
//! * The revisited Easy / Medium / Hard protocols of ROxford5k / RParis6k.

use serde::Serialize;

use crate::error::{EvalError, Result};
use crate::gt::Positives;
use crate::knn::{Neighbours, Ranks};

// --------------------------------------------------------------------------------------------
// Recall@N
// --------------------------------------------------------------------------------------------

/// For every query, the 0-based rank of its first correct prediction (None: no positive found).
#[derive(Debug, Clone, PartialEq)]
pub struct FirstHits {
    /// One entry per query.
    pub ranks: Vec<Option<usize>>,
    /// Number of predictions per query that were inspected.
    pub depth: usize,
}

impl FirstHits {
    /// First-hit ranks of `predictions` (one list per query, best first) against `positives`.
    pub fn new(predictions: &[Vec<u32>], positives: &Positives) -> Result<Self> {
        if predictions.len() != positives.n_queries() {
            return Err(EvalError::SizeMismatch {
                what: "queries with predictions vs queries in the ground truth".into(),
                expected: positives.n_queries(),
                got: predictions.len(),
                path: None,
            });
        }
        let depth = predictions.iter().map(Vec::len).max().unwrap_or(0);
        let ranks = predictions
            .iter()
            .zip(&positives.lists)
            .map(|(p, pos)| p.iter().position(|i| pos.binary_search(i).is_ok()))
            .collect();
        Ok(Self { ranks, depth })
    }

    /// From the result of a k-NN search.
    pub fn from_neighbours(nn: &Neighbours, positives: &Positives) -> Result<Self> {
        Self::new(&nn.to_rows(), positives)
    }

    /// Recall@N (percent) over the queries in `subset` (all queries when `None`).
    pub fn recall(&self, ns: &[usize], subset: Option<&[usize]>) -> Result<Recall> {
        validate_ns(ns)?;
        let all: Vec<usize>;
        let ids: &[usize] = match subset {
            Some(s) => s,
            None => {
                all = (0..self.ranks.len()).collect();
                &all
            }
        };
        if ids.is_empty() {
            return Err(EvalError::Empty {
                what: "query set for Recall@N".into(),
                path: None,
            });
        }
        let mut values = Vec::with_capacity(ns.len());
        for &n in ns {
            let mut hits = 0usize;
            for &q in ids {
                let r = self.ranks.get(q).ok_or(EvalError::IndexOutOfRange {
                    what: "query subset".into(),
                    index: q as i64,
                    len: self.ranks.len(),
                })?;
                if r.is_some_and(|r| r < n) {
                    hits += 1;
                }
            }
            values.push(hits as f64 / ids.len() as f64 * 100.0);
        }
        Ok(Recall {
            n: ns.to_vec(),
            values,
            n_queries: ids.len(),
        })
    }
}

pub(crate) fn validate_ns(ns: &[usize]) -> Result<()> {
    if ns.is_empty() || ns.contains(&0) {
        return Err(EvalError::InvalidArgument {
            name: "N list",
            reason: format!("{ns:?}: needs at least one N, each >= 1"),
        });
    }
    Ok(())
}

/// Recall@N values in percent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recall {
    /// The N values.
    pub n: Vec<usize>,
    /// Recall@N in percent, one per N.
    pub values: Vec<f64>,
    /// Number of queries in the denominator.
    pub n_queries: usize,
}

impl Recall {
    /// `R@1: x.x, R@5: y.y, ...` (1 decimal, as VPR-methods-evaluation prints it).
    pub fn to_line(&self) -> String {
        self.n
            .iter()
            .zip(&self.values)
            .map(|(n, v)| format!("R@{n}: {v:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Recall@N of `predictions` against `positives` (percent).
///
/// ```
/// use vpr_eval::{recall_at_n, Positives};
/// let pos = Positives { radius: 25.0, n_db: 4, lists: vec![vec![2], vec![], vec![0, 3]] };
/// let preds = vec![vec![1, 2], vec![0, 1], vec![3, 0]];
/// let r = recall_at_n(&preds, &pos, &[1, 2]).unwrap();
/// assert_eq!(r.values, vec![1.0 / 3.0 * 100.0, 2.0 / 3.0 * 100.0]); // no positives: a miss
/// ```
pub fn recall_at_n(
    predictions: &[Vec<u32>],
    positives: &Positives,
    ns: &[usize],
) -> Result<Recall> {
    FirstHits::new(predictions, positives)?.recall(ns, None)
}

/// The three query splits of Tokyo 24/7 (queries sorted so that `index % 3` is 0 day, 1 sunset,
/// 2 night; docs/PAPERS.md B.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokyoSplit {
    /// `index % 3 == 0`.
    Day,
    /// `index % 3 == 1`.
    Sunset,
    /// `index % 3 == 2`.
    Night,
}

impl TokyoSplit {
    /// All three, in index order.
    pub const ALL: [TokyoSplit; 3] = [TokyoSplit::Day, TokyoSplit::Sunset, TokyoSplit::Night];

    /// The split of query `index`.
    pub fn of(index: usize) -> Self {
        Self::ALL[index % 3]
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            TokyoSplit::Day => "day",
            TokyoSplit::Sunset => "sunset",
            TokyoSplit::Night => "night",
        }
    }

    /// Query indices of this split among `n_queries`.
    pub fn indices(self, n_queries: usize) -> Vec<usize> {
        (0..n_queries).filter(|&i| Self::of(i) == self).collect()
    }
}

/// Recall@N of one named query subset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitRecall {
    /// Split name.
    pub split: String,
    /// Its Recall@N.
    pub recall: Recall,
}

/// Recall@N per Tokyo 24/7 split (day / sunset / night).
pub fn tokyo_split_recall(hits: &FirstHits, ns: &[usize]) -> Result<Vec<SplitRecall>> {
    TokyoSplit::ALL
        .iter()
        .map(|s| {
            Ok(SplitRecall {
                split: s.name().into(),
                recall: hits.recall(ns, Some(&s.indices(hits.ranks.len())))?,
            })
        })
        .collect()
}

// --------------------------------------------------------------------------------------------
// cirtorch mAP
// --------------------------------------------------------------------------------------------

/// Positives (`ok`) and junk of one query, as database indices.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryGnd {
    /// Positive database indices (duplicates count in the AP denominator, as in cirtorch).
    pub ok: Vec<u32>,
    /// Junk database indices (ignored when ranked).
    pub junk: Vec<u32>,
}

/// Trapezoid AP of cirtorch `compute_ap`: `ranks` are the 0-based positions of the positives
/// (junk removed, ascending), `nres` the number of positives.
pub fn compute_ap(ranks: &[usize], nres: usize) -> f64 {
    let recall_step = 1.0 / nres as f64;
    let mut ap = 0.0;
    for (j, &rank) in ranks.iter().enumerate() {
        let precision_0 = if rank == 0 {
            1.0
        } else {
            j as f64 / rank as f64
        };
        let precision_1 = (j + 1) as f64 / (rank + 1) as f64;
        ap += (precision_0 + precision_1) * recall_step / 2.0;
    }
    ap
}

/// mAP and mP@k of one protocol.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MapResult {
    /// Mean AP over queries with at least one positive (fraction, not percent).
    pub map: f64,
    /// AP per query (NaN for queries without positives; serialised as `null`).
    pub aps: Vec<f64>,
    /// The k values of mP@k.
    pub kappas: Vec<usize>,
    /// mP@k per k (fraction).
    pub mpk: Vec<f64>,
    /// P@k per query and k (NaN rows for queries without positives).
    pub prs: Vec<Vec<f64>>,
    /// Number of queries without positives (excluded from the means).
    pub n_empty: usize,
}

/// cirtorch `compute_map(ranks, gnd, kappas)`.
///
/// `ranks` holds one ranking per query (it may be truncated); `gnd` must have exactly one entry
/// per query. One documented difference: where cirtorch raises on `max(pos)` because no positive
/// of a query occurs in its (truncated) ranking, P@k is 0 here (the AP is 0 in both).
pub fn compute_map(ranks: &Ranks, gnd: &[QueryGnd], kappas: &[usize]) -> Result<MapResult> {
    if gnd.len() != ranks.n_queries {
        return Err(EvalError::SizeMismatch {
            what: "queries in the ranking vs queries in the ground truth".into(),
            expected: gnd.len(),
            got: ranks.n_queries,
            path: None,
        });
    }
    if kappas.contains(&0) {
        return Err(EvalError::InvalidArgument {
            name: "kappas",
            reason: format!("{kappas:?}: each k must be >= 1"),
        });
    }
    let nq = gnd.len();
    let mut aps = vec![f64::NAN; nq];
    let mut prs = vec![vec![f64::NAN; kappas.len()]; nq];
    let mut map = 0.0;
    let mut pr = vec![0.0; kappas.len()];
    let mut nempty = 0;
    let mut ok_mark: Vec<bool> = Vec::new();
    let mut junk_mark: Vec<bool> = Vec::new();
    for (i, g) in gnd.iter().enumerate() {
        if g.ok.is_empty() {
            nempty += 1;
            continue;
        }
        let col = ranks.column(i);
        let max_id = col.iter().copied().max().unwrap_or(0) as usize + 1;
        ok_mark.clear();
        ok_mark.resize(max_id, false);
        junk_mark.clear();
        junk_mark.resize(max_id, false);
        for &o in &g.ok {
            if (o as usize) < max_id {
                ok_mark[o as usize] = true;
            }
        }
        for &o in &g.junk {
            if (o as usize) < max_id {
                junk_mark[o as usize] = true;
            }
        }
        let mut pos: Vec<usize> = Vec::new();
        let mut junk: Vec<usize> = Vec::new();
        for (r, &id) in col.iter().enumerate() {
            if ok_mark[id as usize] {
                pos.push(r);
            }
            if junk_mark[id as usize] {
                junk.push(r);
            }
        }
        // shift each positive by the number of junk items ranked strictly before it
        let mut k = 0;
        let mut ij = 0;
        for p in pos.iter_mut() {
            while ij < junk.len() && *p > junk[ij] {
                k += 1;
                ij += 1;
            }
            *p -= k;
        }
        let ap = compute_ap(&pos, g.ok.len());
        map += ap;
        aps[i] = ap;
        let pos1: Vec<usize> = pos.iter().map(|p| p + 1).collect();
        let max_pos = pos1.iter().copied().max();
        for (j, &kap) in kappas.iter().enumerate() {
            prs[i][j] = match max_pos {
                Some(m) => {
                    let kq = m.min(kap);
                    pos1.iter().filter(|&&p| p <= kq).count() as f64 / kq as f64
                }
                None => 0.0,
            };
            pr[j] += prs[i][j];
        }
    }
    let valid = nq - nempty;
    if valid == 0 {
        return Err(EvalError::Empty {
            what: "set of queries with at least one positive (mAP is undefined)".into(),
            path: None,
        });
    }
    Ok(MapResult {
        map: map / valid as f64,
        aps,
        kappas: kappas.to_vec(),
        mpk: pr.into_iter().map(|p| p / valid as f64).collect(),
        prs,
        n_empty: nempty,
    })
}

/// Easy / hard / junk lists of one query of the revisited ground truth.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RevisitedGnd {
    /// Easy positives.
    pub easy: Vec<u32>,
    /// Hard positives.
    pub hard: Vec<u32>,
    /// Junk.
    pub junk: Vec<u32>,
}

/// The revisited protocols (Radenović et al. 2018).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Difficulty {
    /// ok = easy, junk = junk + hard.
    Easy,
    /// ok = easy + hard, junk = junk.
    Medium,
    /// ok = hard, junk = junk + easy.
    Hard,
}

impl RevisitedGnd {
    /// The (ok, junk) lists of `difficulty`, concatenated in cirtorch's order.
    pub fn protocol(&self, difficulty: Difficulty) -> QueryGnd {
        let cat = |a: &[u32], b: &[u32]| [a, b].concat();
        match difficulty {
            Difficulty::Easy => QueryGnd {
                ok: self.easy.clone(),
                junk: cat(&self.junk, &self.hard),
            },
            Difficulty::Medium => QueryGnd {
                ok: cat(&self.easy, &self.hard),
                junk: self.junk.clone(),
            },
            Difficulty::Hard => QueryGnd {
                ok: self.hard.clone(),
                junk: cat(&self.junk, &self.easy),
            },
        }
    }
}

/// Results of the three revisited protocols.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RevisitedResult {
    /// Easy.
    pub easy: MapResult,
    /// Medium (the one papers report as ROxf/RPar (M)).
    pub medium: MapResult,
    /// Hard.
    pub hard: MapResult,
}

/// cirtorch `compute_map_and_print` for `roxford5k` / `rparis6k`: mAP, APs and mP@`kappas`
/// (cirtorch uses `[1, 5, 10]`) under Easy, Medium and Hard.
pub fn compute_map_revisited(
    ranks: &Ranks,
    gnd: &[RevisitedGnd],
    kappas: &[usize],
) -> Result<RevisitedResult> {
    let run = |d: Difficulty| {
        let g: Vec<QueryGnd> = gnd.iter().map(|q| q.protocol(d)).collect();
        compute_map(ranks, &g, kappas)
    };
    Ok(RevisitedResult {
        easy: run(Difficulty::Easy)?,
        medium: run(Difficulty::Medium)?,
        hard: run(Difficulty::Hard)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranks(cols: &[&[u32]]) -> Ranks {
        Ranks {
            n_rows: cols[0].len(),
            n_queries: cols.len(),
            data: cols.concat(),
        }
    }

    /* closed form: positives at ranks 0 and 2 of 2 positives:
    j=0: (1 + 1/1)/2 * 1/2 = 0.5 ; j=1: (1/2 + 2/3)/2 * 1/2 = 0.291666...  => 0.791666... */
    #[test]
    fn trapezoid_ap_closed_form() {
        assert!((compute_ap(&[0, 2], 2) - (0.5 + (0.5 + 2.0 / 3.0) / 4.0)).abs() < 1e-15);
        assert_eq!(compute_ap(&[0, 1, 2], 3), 1.0);
    }

    #[test]
    fn junk_before_a_positive_is_removed() {
        // ranking 7, 3, 5: 7 is junk, 5 and 3 positives -> positions 0, 1 after junk removal -> AP 1
        let r = ranks(&[&[7, 3, 5]]);
        let g = QueryGnd {
            ok: vec![5, 3],
            junk: vec![7],
        };
        let m = compute_map(&r, &[g], &[1, 5]).unwrap();
        assert_eq!(m.map, 1.0);
        // cirtorch's mP@k quirk: kq = min(max(pos), k) = 2 for k = 5 -> 2/2 = 1
        assert_eq!(m.mpk, vec![1.0, 1.0]);
    }

    #[test]
    fn empty_queries_are_nan_and_excluded() {
        let r = ranks(&[&[0, 1], &[1, 0]]);
        let g = vec![
            QueryGnd::default(),
            QueryGnd {
                ok: vec![0],
                junk: vec![],
            },
        ];
        let m = compute_map(&r, &g, &[1]).unwrap();
        assert!(m.aps[0].is_nan());
        assert_eq!(m.map, 0.5 * (0.0 + 1.0 / 2.0) + 0.0); // positive at rank 1: (0/1 + 1/2)/2
        assert_eq!(m.n_empty, 1);
        assert!(matches!(
            compute_map(&r, &g[..1], &[1]),
            Err(EvalError::SizeMismatch { .. })
        ));
    }

    #[test]
    fn tokyo_split_is_index_mod_3() {
        assert_eq!(TokyoSplit::of(0), TokyoSplit::Day);
        assert_eq!(TokyoSplit::of(4), TokyoSplit::Sunset);
        assert_eq!(TokyoSplit::of(314), TokyoSplit::Night);
        assert_eq!(TokyoSplit::Night.indices(315).len(), 105);
    }
}
