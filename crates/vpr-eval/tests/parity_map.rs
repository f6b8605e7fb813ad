//! mAP / AP / mP@k parity with the numpy re-implementation of cirtorch `compute_map`
//! (`scripts/gen_fixtures.py`, written from docs/PAPERS.md protocols 1.6) on 24 seeded random cases
//! per protocol (old ok/junk, revisited Easy/Medium/Hard): truncated rankings, empty queries, ids
//! that are both positive and junk.

use serde_json::Value;
use vpr_eval::{QueryGnd, Ranks, RevisitedGnd, compute_map, compute_map_revisited};

mod common;
use common::{ids, json_fixture};

/// Both sides evaluate the same f64 expressions in the same order (trapezoid terms summed per
/// query, APs summed over queries), so they agree to rounding; the issue asks for 1e-6.
const TOL: f64 = 1e-12;

fn cases() -> Value {
    json_fixture("map_cases.json")
}

fn ranks(v: &Value) -> Ranks {
    let rows: Vec<Vec<u32>> = v.as_array().unwrap().iter().map(ids).collect();
    let (n_rows, n_q) = (rows.len(), rows[0].len());
    let mut data = vec![0; n_rows * n_q];
    for (r, row) in rows.iter().enumerate() {
        for (q, &x) in row.iter().enumerate() {
            data[q * n_rows + r] = x;
        }
    }
    Ranks {
        n_rows,
        n_queries: n_q,
        data,
    }
}

fn close(a: f64, b: &Value, what: &str) {
    match b.as_f64() {
        Some(b) => assert!((a - b).abs() <= TOL, "{what}: {a} vs {b}"),
        None => assert!(a.is_nan(), "{what}: {a} vs NaN"),
    }
}

fn check(res: &vpr_eval::MapResult, exp: &Value, what: &str) {
    close(res.map, &exp["map"], &format!("{what} map"));
    let aps = exp["aps"].as_array().unwrap();
    assert_eq!(res.aps.len(), aps.len());
    for (i, (a, b)) in res.aps.iter().zip(aps).enumerate() {
        close(*a, b, &format!("{what} ap[{i}]"));
    }
    for (j, b) in exp["mpk"].as_array().unwrap().iter().enumerate() {
        close(res.mpk[j], b, &format!("{what} mP@{}", res.kappas[j]));
    }
    for (i, row) in exp["prs"].as_array().unwrap().iter().enumerate() {
        for (j, b) in row.as_array().unwrap().iter().enumerate() {
            close(res.prs[i][j], b, &format!("{what} prs[{i}][{j}]"));
        }
    }
}

#[test]
fn old_protocol_matches_numpy_cirtorch() {
    let all = cases();
    let kappas: Vec<usize> = ids(&all["kappas"]).iter().map(|&k| k as usize).collect();
    let cases = all["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    let mut with_empty = 0;
    for (c, case) in cases.iter().enumerate() {
        let r = ranks(&case["ranks"]);
        let gnd: Vec<QueryGnd> = case["old"]["gnd"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| QueryGnd {
                ok: ids(&g["ok"]),
                junk: ids(&g["junk"]),
            })
            .collect();
        let res = compute_map(&r, &gnd, &kappas).unwrap();
        with_empty += res.n_empty;
        check(&res, &case["old"], &format!("case {c} old"));
    }
    assert!(
        with_empty > 0,
        "the cases must include a query without positives"
    );
}

#[test]
fn revisited_protocols_match_numpy_cirtorch() {
    let all = cases();
    let kappas: Vec<usize> = ids(&all["kappas"]).iter().map(|&k| k as usize).collect();
    for (c, case) in all["cases"].as_array().unwrap().iter().enumerate() {
        let r = ranks(&case["ranks"]);
        let rev = &case["revisited"];
        let gnd: Vec<RevisitedGnd> = rev["gnd"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| RevisitedGnd {
                easy: ids(&g["easy"]),
                hard: ids(&g["hard"]),
                junk: ids(&g["junk"]),
            })
            .collect();
        let res = compute_map_revisited(&r, &gnd, &kappas).unwrap();
        check(&res.easy, &rev["easy"], &format!("case {c} easy"));
        check(&res.medium, &rev["medium"], &format!("case {c} medium"));
        check(&res.hard, &rev["hard"], &format!("case {c} hard"));
    }
}
