//! Evaluation tool: cirtorch mAP, VPR Recall@N, positives statistics, and the exact k-NN search.
//!
//! ```text
//! cargo run --release --example evaluate -- map --gnd gnd_roxford5k.pkl --ranks ranks.npy [--protocol old|revisited]
//! cargo run --release --example evaluate -- map --gnd gnd_roxford5k.pkl --db db.npy --queries q.npy [--protocol ...]
//! cargo run --release --example evaluate -- map --gnd gnd_247tokyo1k.pkl --db vecs.npy      # queries = database
//! cargo run --release --example evaluate -- recall --gt tokyo247.npz --db db.npy --queries q.npy [--n 1,5,10,20]
//!        [--radius 25] [--metric l2|ip] [--tokyo-splits] [--report DIR --name METHOD]
//! cargo run --release --example evaluate -- recall --db-names database.txt --query-names queries.txt \
//!        --db database.npy --queries queries.npy ...    # descriptors a pipeline exported (UTM-named lists)
//! cargo run --release --example evaluate -- positives --gt tokyo247.npz [--radius 25]
//! cargo run --release --example evaluate -- knn --db db.npy --queries q.npy --k 20 [--metric ip|l2]
//!        --out neighbours.npy [--engine auto|host|device] [--block-rows 32768] [--repeat 3]
//!        # timing for benches/knn_vs_faiss.py
//! ```
//! Every verb prints one JSON object on stdout (mAP as a fraction, Recall@N in percent).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use nightvision::eval::{
    Bootstrap, Descriptors, FirstHits, Gnd, GndProtocol, GroundTruth, KnnConfig, KnnEngine,
    KnnIndex, MapResult, MethodResult, Metric, Ranks, Report, compute_map, compute_map_revisited,
    rank_all, tokyo_split_recall,
};
use serde_json::{Value, json};

/// The ground truth of `--gt GT.npz`, or of `--db-names` + `--query-names`: the image lists
/// written next to exported descriptors, whose UTM-named file names are the ground truth. Returns
/// it with the file that names the dataset.
fn ground_truth(
    gt: Option<PathBuf>,
    db_names: Option<PathBuf>,
    query_names: Option<PathBuf>,
    verb: &str,
) -> Result<(GroundTruth, PathBuf)> {
    Ok(match (gt, db_names, query_names) {
        (Some(p), None, None) => (GroundTruth::read_npz(&p)?, p),
        (None, Some(d), Some(q)) => (GroundTruth::from_name_lists(&d, &q)?, d),
        _ => bail!("{verb} needs --gt GT.npz, or --db-names and --query-names"),
    })
}

fn list(s: &str) -> Result<Vec<usize>> {
    s.split(',')
        .map(|x| {
            x.trim()
                .parse::<usize>()
                .with_context(|| format!("bad number {x:?} in {s:?}"))
        })
        .collect()
}

fn map_json(m: &MapResult) -> Value {
    json!({ "map": m.map, "aps": m.aps, "mpk": m.mpk, "kappas": m.kappas })
}

/// `--help`: the verbs and their flags.
const USAGE: &str = "evaluate: cirtorch mAP, VPR Recall@N, positives statistics and exact k-NN; one JSON object on stdout

usage:
  evaluate map --gnd GND.pkl (--ranks RANKS.npy | --db DB.npy [--queries Q.npy]) [--protocol old|revisited] [--kappas 1,5,10]
  evaluate recall (--gt GT.npz | --db-names DB.txt --query-names Q.txt) --db DB.npy --queries Q.npy
                  [--n 1,5,10,20] [--radius 25] [--metric l2|ip] [--tokyo-splits] [--report DIR --name METHOD]
  evaluate positives (--gt GT.npz | --db-names DB.txt --query-names Q.txt) [--radius 25]
  evaluate knn --db DB.npy --queries Q.npy --k 20 [--metric ip|l2] --out NEIGHBOURS.npy
               [--engine auto|host|device] [--block-rows 32768] [--repeat 3]

mAP is a fraction, Recall@N in percent (with a 95 % bootstrap interval); --db-names / --query-names are the
UTM-named image lists a pipeline exports beside its descriptors (OUT/descriptors/<network>/).";

fn main() -> Result<()> {
    let mut args = pico_args::Arguments::from_env();
    if args.contains(["-h", "--help"]) {
        println!("{USAGE}");
        return Ok(());
    }
    let verb: String = args
        .free_from_str()
        .context("missing verb: map | recall | positives | knn")?;
    let device = Device::default();
    let out = match verb.as_str() {
        "map" => {
            let gnd_path: PathBuf = args.value_from_str("--gnd")?;
            let ranks_path: Option<PathBuf> = args.opt_value_from_str("--ranks")?;
            let db_path: Option<PathBuf> = args.opt_value_from_str("--db")?;
            let q_path: Option<PathBuf> = args.opt_value_from_str("--queries")?;
            let protocol: Option<String> = args.opt_value_from_str("--protocol")?;
            let kappas = list(
                &args
                    .opt_value_from_str("--kappas")?
                    .unwrap_or("1,5,10".to_string()),
            )?;
            finish(args)?;
            let gnd = Gnd::read(&gnd_path)?;
            let ranks = match (ranks_path, db_path) {
                (Some(r), None) => Ranks::read_npy(r)?,
                (None, Some(db)) => {
                    let db = Descriptors::read_npy(&db)?;
                    // cirtorch 247tokyo1k: every image queries the whole set (qvecs = vecs)
                    let q = match q_path {
                        Some(q) => Descriptors::read_npy(q)?,
                        None => db.clone(),
                    };
                    let cfg = KnnConfig::new(Metric::InnerProduct);
                    rank_all(&db, &q, &cfg, &device)?
                }
                _ => bail!("map needs exactly one of --ranks or --db (with --queries)"),
            };
            let protocol = match protocol.as_deref() {
                None => gnd.protocol(),
                Some("old") => GndProtocol::Old,
                Some("revisited") => GndProtocol::Revisited,
                Some(p) => bail!("--protocol must be old or revisited, not {p:?}"),
            };
            match protocol {
                GndProtocol::Old => {
                    let m = compute_map(&ranks, &gnd.old_protocol()?, &kappas)?;
                    let mut v = map_json(&m);
                    v["protocol"] = json!("old");
                    v
                }
                GndProtocol::Revisited => {
                    let r = compute_map_revisited(&ranks, &gnd.revisited()?, &kappas)?;
                    json!({
                        "protocol": "revisited",
                        "map": r.medium.map,
                        "aps": r.medium.aps,
                        "easy": map_json(&r.easy),
                        "medium": map_json(&r.medium),
                        "hard": map_json(&r.hard),
                    })
                }
            }
        }
        "recall" => {
            let gt_path: Option<PathBuf> = args.opt_value_from_str("--gt")?;
            let db_names: Option<PathBuf> = args.opt_value_from_str("--db-names")?;
            let query_names: Option<PathBuf> = args.opt_value_from_str("--query-names")?;
            let db_path: PathBuf = args.value_from_str("--db")?;
            let q_path: PathBuf = args.value_from_str("--queries")?;
            let ns = list(
                &args
                    .opt_value_from_str("--n")?
                    .unwrap_or("1,5,10,20".to_string()),
            )?;
            let radius: Option<f64> = args.opt_value_from_str("--radius")?;
            let metric: Metric = args.opt_value_from_str("--metric")?.unwrap_or(Metric::L2);
            let splits = args.contains("--tokyo-splits");
            let report_dir: Option<PathBuf> = args.opt_value_from_str("--report")?;
            let name: String = args
                .opt_value_from_str("--name")?
                .unwrap_or("method".into());
            finish(args)?;
            let (gt, gt_path) = ground_truth(gt_path, db_names, query_names, "recall")?;
            let db = Descriptors::read_npy(&db_path)?;
            let q = Descriptors::read_npy(&q_path)?;
            gt.check_counts(db.rows(), q.rows())?;
            let positives = gt.positives(radius.unwrap_or(gt.pos_dist_thr))?;
            let k = ns.iter().copied().max().unwrap_or(1);
            let cfg = KnnConfig {
                progress: db.rows() > 200_000,
                ..KnnConfig::new(metric)
            };
            let nn = KnnIndex::build(&db, &cfg, &device)?.search(&q, k)?;
            let hits = FirstHits::from_neighbours(&nn, &positives)?;
            let recall = hits.recall(&ns, None)?;
            let ci = hits.recall_ci(&ns, &Bootstrap::default())?;
            let split_recall = if splits {
                tokyo_split_recall(&hits, &ns)?
            } else {
                vec![]
            };
            eprintln!("{}", recall.to_line());
            let obj = |r: &nightvision::eval::Recall| -> Value {
                r.n.iter()
                    .zip(&r.values)
                    .map(|(n, v)| (n.to_string(), json!(v)))
                    .collect()
            };
            let mut v = json!({
                "recall": obj(&recall),
                "recall_ci": ci,
                "n_queries": q.rows(),
                "n_db": db.rows(),
                "metric": metric,
                "radius": positives.radius,
            });
            if splits {
                v["splits"] = split_recall
                    .iter()
                    .map(|s| (s.split.clone(), obj(&s.recall)))
                    .collect();
            }
            if let Some(dir) = report_dir {
                std::fs::create_dir_all(&dir)?;
                let dataset = gt_path
                    .file_stem()
                    .map_or("dataset".into(), |s| s.to_string_lossy().to_string());
                let report = Report::new(
                    dataset,
                    vec![MethodResult {
                        name,
                        recall: Some(recall),
                        splits: split_recall,
                        ..Default::default()
                    }],
                );
                report.write_json(dir.join("report.json"))?;
                std::fs::write(dir.join("report.md"), report.to_markdown())?;
                report.plot_recall(dir.join("recall.png"), 800, 500)?;
                eprintln!("report written to {}", dir.display());
            }
            v
        }
        "positives" => {
            let gt_path: Option<PathBuf> = args.opt_value_from_str("--gt")?;
            let db_names: Option<PathBuf> = args.opt_value_from_str("--db-names")?;
            let query_names: Option<PathBuf> = args.opt_value_from_str("--query-names")?;
            let radius: Option<f64> = args.opt_value_from_str("--radius")?;
            finish(args)?;
            let (gt, _) = ground_truth(gt_path, db_names, query_names, "positives")?;
            let s = gt.positives(radius.unwrap_or(gt.pos_dist_thr))?.summary();
            serde_json::to_value(s)?
        }
        "knn" => {
            let db_path: PathBuf = args.value_from_str("--db")?;
            let q_path: PathBuf = args.value_from_str("--queries")?;
            let k: usize = args.opt_value_from_str("--k")?.unwrap_or(20);
            let metric: Metric = args
                .opt_value_from_str("--metric")?
                .unwrap_or(Metric::InnerProduct);
            let out_path: Option<PathBuf> = args.opt_value_from_str("--out")?;
            let block_rows: Option<usize> = args.opt_value_from_str("--block-rows")?;
            let engine: KnnEngine = args
                .opt_value_from_str("--engine")?
                .unwrap_or(KnnEngine::Auto);
            let repeat: usize = args.opt_value_from_str("--repeat")?.unwrap_or(1);
            finish(args)?;
            let t = Instant::now();
            let db = Descriptors::read_npy(&db_path)?;
            let q = Descriptors::read_npy(&q_path)?;
            let load_s = t.elapsed().as_secs_f64();
            let mut cfg = KnnConfig::new(metric);
            cfg.engine = engine;
            if let Some(b) = block_rows {
                cfg.block_rows = b;
            }
            let t = Instant::now();
            let index = KnnIndex::build(&db, &cfg, &device)?;
            let upload_s = t.elapsed().as_secs_f64();
            let mut times = Vec::new();
            let mut nn = None;
            for _ in 0..repeat.max(1) {
                let t = Instant::now();
                nn = Some(index.search(&q, k)?);
                times.push(t.elapsed().as_secs_f64());
            }
            let nn = nn.context("no search ran")?;
            if let Some(p) = out_path {
                let ids: Vec<i64> = nn.indices.iter().map(|&i| i as i64).collect();
                nightvision::eval::npy::write_npy_i64(&p, &[nn.n_queries, nn.k], &ids)?;
            }
            json!({
                "n_db": db.rows(), "n_queries": q.rows(), "dim": db.dim(), "k": nn.k,
                "metric": metric, "engine": index.engine(), "load_s": load_s, "upload_s": upload_s,
                "search_s": times, "best_search_s": times.iter().copied().fold(f64::INFINITY, f64::min),
            })
        }
        other => bail!("unknown verb {other:?}: map | recall | positives | knn"),
    };
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}

fn finish(args: pico_args::Arguments) -> Result<()> {
    let rest = args.finish();
    if !rest.is_empty() {
        bail!("unexpected arguments: {rest:?}");
    }
    Ok(())
}
