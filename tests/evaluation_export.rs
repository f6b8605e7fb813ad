//! The descriptors and image lists a pipeline's evaluation exports recompute its report through
//! the `evaluate` example, number for number: on a tiny rendered world, a small random-weight GeM
//! network is evaluated by `pipeline::Evaluator` (the three pipelines' evaluation), then
//! `evaluate recall --db-names … --query-names … --db … --queries … --metric ip --tokyo-splits`
//! runs on the exported files and must print the same Recall@N for every condition.

use std::path::PathBuf;
use std::process::Command;

use burn::tensor::Device;
use nightvision::backbones::ResNetConfig;
use nightvision::eval::Gnd;
use nightvision::metric::multiscale::ExtractConfig;
use nightvision::metric::{BackboneConfig, CirNetConfig};
use nightvision::pipeline::{Evaluator, slug};
use nightvision::places::{ExportOptions, World, WorldConfig, export};
use nightvision::protocol::{GND_FILE, PaperProtocol, tokyo_gnd};

/// The `evaluate` example next to this test's binary (`target/<profile>/examples/evaluate`):
/// `cargo test` builds the examples of the package before running its tests.
fn evaluate_example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let path = profile_dir
        .join("examples")
        .join(format!("evaluate{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing: build the examples first (`cargo build --examples`; `cargo test` does)",
        path.display()
    );
    path
}

/// The JSON an `evaluate` run printed, after checking that it succeeded.
fn json_of(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "evaluate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The tiny world exported into `root/world`.
fn tiny_world(root: &std::path::Path) -> (World, PathBuf) {
    let world_dir = root.join("world");
    let world = World::new(&WorldConfig::tiny()).unwrap();
    export(
        &world,
        &ExportOptions {
            out_dir: world_dir.clone(),
            overwrite: true,
            progress: false,
        },
    )
    .unwrap();
    (world, world_dir)
}

#[test]
fn exported_descriptors_recompute_the_report_through_evaluate() {
    let dir = tempfile::tempdir().unwrap();
    let (world, world_dir) = tiny_world(dir.path());

    let device = Device::default();
    device.seed(3);
    let net = CirNetConfig::new(BackboneConfig::ResNet(
        ResNetConfig::resnet18().with_base_width(4),
    ))
    .init(&device)
    .unwrap();
    let ns = [1, 2, 3];
    let exports = dir.path().join("descriptors");
    let mut eval = Evaluator::new(&world_dir, &ns, Some(&exports));
    let cfg = ExtractConfig {
        max_side: 64,
        ..ExtractConfig::default()
    };
    eval.evaluate(&net, "tiny net", &cfg, &device).unwrap();
    let report = eval.report("tiny world", None).unwrap();

    let d = exports.join(slug("tiny net"));
    let out = Command::new(evaluate_example())
        .arg("recall")
        .arg("--db-names")
        .arg(d.join("database.txt"))
        .arg("--query-names")
        .arg(d.join("queries.txt"))
        .arg("--db")
        .arg(d.join("database.npy"))
        .arg("--queries")
        .arg(d.join("queries.npy"))
        .args(["--metric", "ip", "--n", "1,2,3", "--tokyo-splits"])
        .output()
        .unwrap();
    let v = json_of(&out);
    assert_eq!(report.methods.len(), 3, "day, sunset, night");
    for m in &report.methods {
        let split = ["day", "sunset", "night"]
            .into_iter()
            .find(|s| m.name.ends_with(&format!("{s} queries")))
            .unwrap();
        let recall = m.recall.as_ref().unwrap();
        let ci = m.recall_ci.as_ref().unwrap();
        for (i, n) in recall.n.iter().enumerate() {
            let got = v["splits"][split][n.to_string()].as_f64().unwrap();
            assert_eq!(got, recall.values[i], "{split} R@{n}");
            assert!(ci.lower[i] <= recall.values[i] && recall.values[i] <= ci.upper[i]);
        }
    }
    // the lists are UTM-named image names, one per descriptor row
    let names = std::fs::read_to_string(d.join("queries.txt")).unwrap();
    assert_eq!(names.lines().count(), world.test_places().len() * 3);
}

/// A ResNet-18 GeM network at base width 2 (16-d descriptors) with weights drawn from `seed`.
fn tiny_net(device: &Device, seed: u64) -> nightvision::metric::CirNet {
    device.seed(seed);
    CirNetConfig::new(BackboneConfig::ResNet(
        ResNetConfig::resnet18().with_base_width(2),
    ))
    .init(device)
    .unwrap()
}

/// Extraction at a longer side of 48 pixels.
fn small_frames() -> ExtractConfig {
    ExtractConfig {
        max_side: 48,
        ..ExtractConfig::default()
    }
}

#[test]
fn compare_adds_the_named_reference_to_a_method_only() {
    let dir = tempfile::tempdir().unwrap();
    let (_, world_dir) = tiny_world(dir.path());
    let (device, cfg) = (Device::default(), small_frames());
    let mut eval = Evaluator::new(&world_dir, &[1], None);
    for (seed, label) in [
        (1, "first"),
        (2, "baseline"),
        (3, "ablation"),
        (4, "method"),
    ] {
        eval.evaluate(&tiny_net(&device, seed), label, &cfg, &device)
            .unwrap();
    }
    eval.compare("method", "ablation");
    eval.compare("method", "not evaluated");
    let report = eval.report("tiny world", Some("baseline")).unwrap();
    let against = |name: &str| -> Vec<String> {
        let m = report.methods.iter().find(|m| m.name == name).unwrap();
        m.comparisons.iter().map(|c| c.against.clone()).collect()
    };
    assert_eq!(
        against("method, night queries"),
        [
            "first, night queries",
            "baseline, night queries",
            "ablation, night queries"
        ]
    );
    assert_eq!(
        against("ablation, night queries"),
        ["first, night queries", "baseline, night queries"]
    );
    assert!(against("first, day queries").is_empty());
}

#[test]
fn paper_protocol_exports_recompute_its_map_through_evaluate() {
    // the papers' protocol on the tiny world: the gnd pickle lists the same positives as Recall@N,
    // and `evaluate map --gnd … --db … --queries …` on the exported whitened descriptors gives
    // every query's AP
    let dir = tempfile::tempdir().unwrap();
    let (world, world_dir) = tiny_world(dir.path());
    let (device, cfg) = (Device::default(), small_frames());
    let exports = dir.path().join("descriptors");
    let protocol = PaperProtocol::new(&world_dir, 8, Some(&exports)).unwrap();
    assert!(protocol.describe().contains("top 8 principal directions"));
    let mut eval = Evaluator::new(&world_dir, &[1], None).with_paper_protocol(protocol);
    for (seed, label) in [(1, "first"), (2, "baseline"), (3, "method")] {
        eval.evaluate(&tiny_net(&device, seed), label, &cfg, &device)
            .unwrap();
    }
    let map = eval.map_report(Some("baseline")).unwrap().unwrap();
    assert_eq!(map.rows.len(), 9, "3 networks × 3 conditions");
    let against = |name: &str| -> Vec<String> {
        let r = map.rows.iter().find(|r| r.name == name).unwrap();
        r.comparisons.iter().map(|(a, _)| a.clone()).collect()
    };
    assert!(against("first, night queries").is_empty());
    assert_eq!(
        against("method, night queries"),
        ["first, night queries", "baseline, night queries"]
    );
    let md = map.to_markdown();
    assert!(md.contains("| method, night queries |") && md.contains("| p |"));

    // the ground truth: one query per place and condition, its positives the place's database
    let gnd = Gnd::read(exports.join(GND_FILE)).unwrap();
    let n_places = world.test_places().len();
    assert_eq!(gnd.qimlist.len(), n_places * 3);
    let fresh = tokyo_gnd(&world_dir).unwrap();
    assert_eq!(
        (&gnd.imlist, &gnd.qimlist, &gnd.gnd),
        (&fresh.imlist, &fresh.qimlist, &fresh.gnd)
    );
    for g in gnd.old_protocol().unwrap() {
        assert_eq!(g.ok.len(), gnd.imlist.len() / n_places);
        assert!(g.junk.is_empty());
    }
    let e = &eval.paper_protocol().unwrap().evaluations()[2];
    assert_eq!(e.label, "method");
    let d = exports.join(slug("method")).join("paper-protocol");
    let out = Command::new(evaluate_example())
        .arg("map")
        .arg("--gnd")
        .arg(exports.join(GND_FILE))
        .arg("--db")
        .arg(d.join("database.npy"))
        .arg("--queries")
        .arg(d.join("queries.npy"))
        .output()
        .unwrap();
    let v = json_of(&out);
    let aps: Vec<f64> = v["aps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_f64().unwrap())
        .collect();
    assert_eq!(aps, e.aps);
    let lw = nightvision::metric::whitening::Whitening::load(d.join("lw.safetensors")).unwrap();
    // ResNet-18 at base width 2: 16-d descriptors, Lw in their top 8 principal directions
    assert_eq!((lw.dim, e.lw_dims), (16, 8));
    assert!(lw.projection[8 * 16..].iter().all(|&p| p == 0.0));
}

/// With the papers' protocol, `Evaluator::evaluate` scores Recall@N from the protocol's scale-1
/// pass instead of describing the test set again: the same first hits and the same exported
/// descriptors and names as an evaluator without the protocol.
#[test]
fn recall_from_the_protocols_pass_equals_a_pass_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let (_, world_dir) = tiny_world(dir.path());
    let (device, cfg) = (Device::default(), small_frames());
    let (shared, own) = (dir.path().join("shared"), dir.path().join("own"));
    let protocol = PaperProtocol::new(&world_dir, 8, None).unwrap();
    let mut with = Evaluator::new(&world_dir, &[1, 2], Some(&shared)).with_paper_protocol(protocol);
    let mut without = Evaluator::new(&world_dir, &[1, 2], Some(&own));
    let net = tiny_net(&device, 5);
    let a = with.evaluate(&net, "net", &cfg, &device).unwrap().clone();
    let b = without
        .evaluate(&net, "net", &cfg, &device)
        .unwrap()
        .clone();
    assert_eq!(a.hits.ranks, b.hits.ranks);
    assert_eq!(with.paper_protocol().unwrap().evaluations().len(), 1);
    for file in ["database.npy", "queries.npy", "database.txt", "queries.txt"] {
        let read = |root: &std::path::Path| std::fs::read(root.join("net").join(file)).unwrap();
        assert_eq!(read(&shared), read(&own), "{file}");
    }
}
