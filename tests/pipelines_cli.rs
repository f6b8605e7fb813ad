//! The pipelines' configurations as command lines: every field is a flag with the configuration's
//! own default, `--help` documents every one, and bad settings are refused before any work.

use burn::config::Config;
use burn::tensor::Device;
use clap::{CommandFactory, Parser};
use nightvision::pipelines::dark_side::{self, DarkSideConfig};
use nightvision::pipelines::nocplace::NocPlaceConfig;
use nightvision::pipelines::similarity_minmax::{self, SimilarityMinMaxConfig};
use nightvision::pipelines::smm_classification::{self, SmmClassificationConfig};

#[derive(Parser)]
struct Cli<C: clap::Args> {
    #[command(flatten)]
    config: C,
}

/// No flags gives the configuration's `new()`, field for field; `--help` names every field.
fn check<C: clap::Args + Config>(default: C) {
    let parsed = Cli::<C>::try_parse_from(["pipeline"]).unwrap().config;
    let (a, b) = (
        serde_json::to_value(&parsed).unwrap(),
        serde_json::to_value(&default).unwrap(),
    );
    assert_eq!(
        a, b,
        "command-line defaults differ from the configuration's"
    );
    let help = Cli::<C>::command().render_long_help().to_string();
    for field in a.as_object().unwrap().keys() {
        // a field that defaults to true is switched off by `--no-<field>`
        let name = field.replace('_', "-");
        let flag = if a[field] == serde_json::Value::Bool(true) {
            format!("--no-{name}")
        } else {
            format!("--{name}")
        };
        assert!(help.contains(&flag), "--help lacks {flag}:\n{help}");
    }
}

#[test]
fn flags_default_to_the_configurations_defaults_and_are_all_documented() {
    check(DarkSideConfig::new());
    check(NocPlaceConfig::new());
    check(SimilarityMinMaxConfig::new());
    check(SmmClassificationConfig::new());
}

#[test]
fn flags_set_the_fields() {
    let c = Cli::<DarkSideConfig>::try_parse_from([
        "x",
        "--gan-iterations",
        "7",
        "--norm",
        "batch",
        "--init",
        "gandtr",
        "--no-baseline",
        "--anchors",
        "random",
        "--translator",
        "cyclegan",
        "--no-anchor-ablation",
        "--d-norm",
        "none",
        "--g-ema",
        "0.995",
        "--out",
        "/tmp/o",
    ])
    .unwrap()
    .config;
    assert_eq!(c.gan_iterations, 7);
    assert_eq!(c.norm, nightvision::gan::NormKind::Batch);
    assert_eq!(c.init, dark_side::GanInit::Gandtr);
    assert!(!c.baseline);
    assert_eq!(c.anchors, dark_side::Anchors::Random);
    assert_eq!(c.translator, dark_side::DsaTranslator::Cyclegan);
    assert!(!c.anchor_ablation);
    assert_eq!(c.d_norm, Some(nightvision::gan::NormKind::None));
    assert_eq!(c.g_ema, 0.995);
    let d = DarkSideConfig::new();
    assert_eq!(
        (d.anchors, d.anchor_ablation),
        (dark_side::Anchors::Diverse, true)
    );
    assert_eq!(c.out, std::path::PathBuf::from("/tmp/o"));
    let n = Cli::<NocPlaceConfig>::try_parse_from([
        "x",
        "--translator",
        "negcut",
        "--d-norm",
        "none",
        "--d-noise",
        "0.1",
        "--ndf",
        "64",
        "--load-size",
        "240",
        "--gan-only",
    ])
    .unwrap()
    .config;
    assert_eq!(n.translator, nightvision::gan::train_cut::CutMode::NegCut);
    assert_eq!(n.d_norm, Some(nightvision::gan::NormKind::None));
    assert_eq!(
        (n.d_noise, n.ndf, n.load_size, n.gan_only),
        (0.1, Some(64), Some(240), true)
    );
}

#[test]
fn bad_flags_are_refused_with_the_accepted_values() {
    let e = Cli::<DarkSideConfig>::try_parse_from(["x", "--norm", "group"])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("instance, batch or none"), "{e}");
    let e = Cli::<NocPlaceConfig>::try_parse_from(["x", "--translator", "cyclegan"])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("cut or negcut"), "{e}");
    assert!(Cli::<SimilarityMinMaxConfig>::try_parse_from(["x", "--d-iterations", "-3"]).is_err());
}

#[test]
fn impossible_settings_fail_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let device = Device::default();
    let cfg = DarkSideConfig::new()
        .with_gan_iterations(0)
        .with_out(dir.path().join("o"));
    let e = dark_side::run(&cfg, &device).unwrap_err().to_string();
    assert!(e.contains("gan_iterations"), "{e}");
    // the generator's moving average is the CycleGAN trainer's alone
    let cfg = DarkSideConfig::new()
        .with_g_ema(0.99)
        .with_out(dir.path().join("o"));
    let e = dark_side::run(&cfg, &device).unwrap_err().to_string();
    assert!(e.contains("g_ema") && e.contains("cyclegan"), "{e}");
    // so is the identity term, which must be a finite non-negative weight
    let cfg = DarkSideConfig::new()
        .with_identity(0.5)
        .with_out(dir.path().join("o"));
    let e = dark_side::run(&cfg, &device).unwrap_err().to_string();
    assert!(e.contains("identity") && e.contains("cyclegan"), "{e}");
    let cfg = DarkSideConfig::new()
        .with_identity_until(Some(100))
        .with_out(dir.path().join("o"));
    let e = dark_side::run(&cfg, &device).unwrap_err().to_string();
    assert!(e.contains("identity") && e.contains("cyclegan"), "{e}");
    // a warm-up of an identity term that is off, or of no iteration, is refused
    let cyclegan = DarkSideConfig::new()
        .with_translator(dark_side::DsaTranslator::Cyclegan)
        .with_out(dir.path().join("o"));
    let e = dark_side::run(&cyclegan.clone().with_identity_until(Some(100)), &device)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("identity_until") && e.contains("--identity"),
        "{e}"
    );
    let e = dark_side::run(
        &cyclegan.with_identity(0.5).with_identity_until(Some(0)),
        &device,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("identity_iterations"), "{e}");
    let cfg = DarkSideConfig::new()
        .with_translator(dark_side::DsaTranslator::Cyclegan)
        .with_identity(-1.0)
        .with_out(dir.path().join("o"));
    let e = dark_side::run(&cfg, &device).unwrap_err().to_string();
    assert!(e.contains("lambda_identity"), "{e}");
    assert!(
        !dir.path().join("o").exists(),
        "nothing is written before the refusal"
    );
    let cfg = SimilarityMinMaxConfig::new()
        .with_d_batch(0)
        .with_out(dir.path().join("o"));
    let e = similarity_minmax::run(&cfg, &device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("d_batch"), "{e}");
    // a darkening network to load and training one are exclusive; a missing file is named
    let cfg = SimilarityMinMaxConfig::new()
        .with_darkening_weights(Some(dir.path().join("d.safetensors")))
        .with_out(dir.path().join("o"));
    let e = similarity_minmax::run(&cfg.clone().with_train_darkening(true), &device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("train_darkening"), "{e}");
    let e = similarity_minmax::run(&cfg, &device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("d.safetensors"), "{e}");
    let cfg = SmmClassificationConfig::new()
        .with_darkening_weights(Some(dir.path().join("d.safetensors")))
        .with_train_darkening(true)
        .with_out(dir.path().join("o"));
    let e = smm_classification::run(&cfg, &device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("train_darkening"), "{e}");
    let cfg = NocPlaceConfig::new()
        .with_validations(0)
        .with_out(dir.path().join("o"));
    let e = nightvision::pipelines::nocplace::run(&cfg, &device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("validations"), "{e}");
    let cfg = SmmClassificationConfig::new()
        .with_batch(0)
        .with_out(dir.path().join("o"));
    let e = smm_classification::run(&cfg, &device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("batch"), "{e}");
    let cfg = SmmClassificationConfig::new()
        .with_hue(0.6)
        .with_out(dir.path().join("o"));
    let e = smm_classification::run(&cfg, &device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("hue"), "{e}");
    // nothing was rendered or written
    assert!(!dir.path().join("o").exists());
}

/// `--quick` is the short schedule CI runs: it sets its fields (and only those), and a flag it
/// sets cannot be given beside it.
#[test]
fn quick_sets_its_schedule_and_refuses_the_flags_it_sets() {
    let c = Cli::<DarkSideConfig>::try_parse_from(["x", "--quick", "--seed", "3"])
        .unwrap()
        .config;
    assert!(c.quick);
    let e = c.effective();
    assert_eq!(
        (
            e.gan_iterations,
            e.tuples,
            e.epochs,
            e.anchor_ablation,
            e.seed
        ),
        (30, 20, 1, false, 3)
    );
    // everything else stays
    let (a, b) = (
        serde_json::to_value(DarkSideConfig::new().with_quick(true).with_seed(3)).unwrap(),
        serde_json::to_value(&e).unwrap(),
    );
    let differing: Vec<&String> = a
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| a[*k] != b[*k])
        .collect();
    assert_eq!(
        differing,
        ["anchor_ablation", "epochs", "gan_iterations", "tuples"]
    );
    // without --quick the configuration is followed as given
    let plain = DarkSideConfig::new().with_tuples(7);
    assert_eq!(plain.effective().tuples, 7);

    let n = Cli::<NocPlaceConfig>::try_parse_from(["x", "--quick"])
        .unwrap()
        .config
        .effective();
    assert_eq!(
        (n.gan_iterations, n.day_iterations, n.night_iterations),
        (100, 20, 20)
    );
    let s = Cli::<SimilarityMinMaxConfig>::try_parse_from(["x", "--quick"])
        .unwrap()
        .config
        .effective();
    assert_eq!((s.tuples, s.epochs), (20, 1));

    for args in [
        &["x", "--quick", "--tuples", "5"][..],
        &["x", "--quick", "--no-anchor-ablation"][..],
        &["x", "--quick", "--gan-iterations", "5"][..],
    ] {
        let e = Cli::<DarkSideConfig>::try_parse_from(args)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("cannot be used with"), "{e}");
    }
    assert!(
        Cli::<NocPlaceConfig>::try_parse_from(["x", "--quick", "--day-iterations", "5"]).is_err()
    );
    assert!(
        Cli::<SimilarityMinMaxConfig>::try_parse_from(["x", "--quick", "--epochs", "5"]).is_err()
    );
}

/// The main job's quick world (CI renders it once for the three pipelines) is the world the
/// pipelines' `--quick` renders on its own.
#[test]
fn main_jobs_quick_world_is_the_pipelines_quick_world() {
    let script = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/main-job.sh"),
    )
    .unwrap();
    let line = script
        .lines()
        .find(|l| l.contains("quick-world.json") && l.contains("echo '{"))
        .unwrap();
    let json = &line[line.find('{').unwrap()..=line.rfind('}').unwrap()];
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let quick = nightvision::pipeline::quick_world_config();
    assert_eq!(v.as_object().unwrap().len(), 3, "{json}");
    assert_eq!(v["places"], quick.places);
    assert_eq!(v["train_places"], quick.train_places);
    assert_eq!(v["gan_images"], quick.gan_images);
}
