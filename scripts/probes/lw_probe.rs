//! Probe behind docs/PAPERS.md's "Lw from training images only": mAP of the off-the-shelf
//! MobileNetV2-GeM under the papers' protocol with no whitening, plain Lw (Cholesky jitter) and
//! Lw in principal subspaces of 64 … 1,024 dimensions, on an exported world. Not built with the
//! workspace; to run it:
//!
//! ```text
//! cp scripts/probes/lw_probe.rs examples/ && cargo run --example lw_probe -- WORLD; rm examples/lw_probe.rs
//! ```
use std::path::PathBuf;

use burn::tensor::{Device, Tensor};
use nightvision::eval::{Descriptors, KnnConfig, Metric, TokyoSplit, VprDataset, compute_map, rank_all};
use nightvision::metric::multiscale::{DEFAULT_SCALES, ExtractConfig, extract_files};
use nightvision::metric::whitening::Whitening;
use nightvision::protocol::tokyo_gnd;

fn desc(x: Tensor<2>) -> Descriptors {
    let [n, d] = x.dims();
    Descriptors::new(x.into_data().try_into_vec_as::<f32>().unwrap(), n, d).unwrap()
}

fn main() {
    let world = PathBuf::from(std::env::args().nth(1).unwrap());
    let device = Device::default();
    let net = nightvision::pipeline::mobilenet_v2_gem(&device).unwrap();
    let ms = ExtractConfig { max_side: 320, scales: DEFAULT_SCALES.to_vec(), ..ExtractConfig::default() };
    let gnd = tokyo_gnd(&world).unwrap();
    let ds = VprDataset::open(world.join("tokyo/images/test"), "queries").unwrap();
    let paths = |f: &nightvision::eval::VprFolder| -> Vec<PathBuf> { f.images.iter().map(|i| i.path.clone()).collect() };
    let pkl = world.join("cirtorch/train/synthetic-places/synthetic-places.pkl");
    let ims = world.join("cirtorch/train/synthetic-places/ims");
    let (mut train, mut clusters) = (Vec::new(), Vec::new());
    for split in ["train", "val"] {
        let db = nightvision::metric::data::TupleDatabase::from_cirtorch_pickle(&pkl, split, &ims).unwrap();
        let nightvision::core::augment::ImageSource::Files(files) = db.images else { panic!() };
        let offset = clusters.iter().copied().max().map_or(0, |m: i64| m + 1);
        clusters.extend(db.clusters.iter().map(|c| c + offset));
        train.extend(files);
    }
    let (mut q, mut p) = (Vec::new(), Vec::new());
    for i in 0..train.len() { for j in i + 1..train.len() { if clusters[i] == clusters[j] { q.push(i); p.push(j); } } }
    let t = std::time::Instant::now();
    let xt = extract_files(&net, &train, &ms, &device).unwrap();
    let xd = extract_files(&net, &paths(&ds.database), &ms, &device).unwrap();
    let xq = extract_files(&net, &paths(&ds.queries), &ms, &device).unwrap();
    eprintln!("extraction {:.0} s", t.elapsed().as_secs_f64());
    let report = |name: &str, d: Tensor<2>, qq: Tensor<2>| {
        let ranks = rank_all(&desc(d), &desc(qq), &KnnConfig::new(Metric::InnerProduct), &device).unwrap();
        let m = compute_map(&ranks, &gnd.old_protocol().unwrap(), &[1]).unwrap();
        let per: Vec<String> = TokyoSplit::ALL.iter().map(|s| {
            let idx = s.indices(m.aps.len());
            format!("{} {:.1}", s.name(), idx.iter().map(|&i| m.aps[i]).sum::<f64>() / idx.len() as f64 * 100.0)
        }).collect();
        println!("{name:<28} all {:.1}  {}", m.map * 100.0, per.join("  "));
    };
    report("no whitening", xd.clone(), xq.clone());
    let t = std::time::Instant::now();
    let plain = Whitening::learn_lw(xt.clone(), &q, &p).unwrap();
    eprintln!("plain Lw {:.1} s, jitter {:e}", t.elapsed().as_secs_f64(), plain.jitter);
    report("plain Lw (jitter)", plain.apply(xd.clone(), None).unwrap(), plain.apply(xq.clone(), None).unwrap());
    for k in [64, 128, 256, 512, 1024] {
        let t = std::time::Instant::now();
        let w = Whitening::learn_lw_pca(xt.clone(), &q, &p, k).unwrap();
        eprintln!("Lw-PCA {k}: {:.1} s, jitter {:e}", t.elapsed().as_secs_f64(), w.jitter);
        report(&format!("Lw in top {k}"), w.apply(xd.clone(), Some(k)).unwrap(), w.apply(xq.clone(), Some(k)).unwrap());
    }
}
