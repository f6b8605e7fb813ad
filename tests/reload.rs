//! Trained parts rebuild from their checkpoint folder alone: tiny translators (HEDN-GAN, CycleGAN), a
//! fine-tuned GeM network and a darkening network are trained through the pipelines' library API,
//! dropped, reloaded with `ResnetGenerator::load` / `CirNet::load` / `DarkeningNet::load` from
//! their folders with no other knowledge, and give bit-identical outputs; a resume with other
//! settings is refused naming the fields, and `restart` starts over.

mod common;

use burn::tensor::{Device, Distribution, Tensor};
use nightvision::darkening::DarkeningNet;
use nightvision::gan::{ResnetGenerator, translate_images};
use nightvision::metric::CirNet;
use nightvision::metric::data::AugmentHooks;
use nightvision::pipeline::Translator;
use nightvision::pipelines::dark_side::{self, DarkSideConfig};
use nightvision::pipelines::similarity_minmax::{self, SimilarityMinMaxConfig};

fn bits(t: Tensor<4>) -> Vec<u32> {
    t.into_data()
        .try_to_vec::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

fn bits2(t: Tensor<2>) -> Vec<u32> {
    bits(t.unsqueeze())
}

#[test]
fn trained_parts_reload_from_their_folders_and_refuse_other_settings() {
    for file in [
        "weights/hed_bsds500.safetensors",
        "weights/mobilenet_v2_imagenet.safetensors",
    ] {
        if let Err(reason) = nightvision::core::real_data_file(file) {
            println!("skipped: {reason}");
            return;
        }
    }
    let device = Device::default();
    let dir = tempfile::tempdir().unwrap();
    // 10 training places: 8 train, 2 validation (model selection needs a negative of another place)
    let world = common::tiny_world_with(dir.path(), 10);
    let x = Tensor::<4>::random([2, 3, 48, 64], Distribution::Uniform(0.0, 1.0), &device);

    // the translator
    let cfg = DarkSideConfig::new()
        .with_out(dir.path().join("dark_side"))
        .with_gan_iterations(2)
        .with_gan_batch(1)
        .with_crop(32)
        .with_ngf(4)
        .with_blocks(1)
        .with_epochs(1)
        .with_tuples(2)
        .with_image_size(64);
    let g = dark_side::train_translator(&cfg, &world, &device).unwrap();
    let y = bits(translate_images(&g, x.clone()).unwrap());
    drop(g);
    let gan_dir = cfg.out.join("gan");
    let g = ResnetGenerator::load(&gan_dir, &device).unwrap();
    assert_eq!(bits(translate_images(&g, x.clone()).unwrap()), y);
    let t = Translator::load(&gan_dir, &device).unwrap();
    assert_eq!(bits(t.translate(x.clone()).unwrap()), y);
    // a resume with other settings names them; restart starts over
    let wider = cfg.clone().with_ngf(8).with_gan_lr(1e-3);
    let e = dark_side::train_translator(&wider, &world, &device)
        .err()
        .unwrap()
        .to_string();
    for field in ["generator.ngf", "discriminator.ndf", "stage.lr"] {
        assert!(e.contains(field), "{field} not named: {e}");
    }
    let restarted = dark_side::train_translator(&wider.with_restart(true), &world, &device);
    assert!(restarted.is_ok(), "{:?}", restarted.err());
    // another seed draws other initial weights (seed 0 keeps the presets' init seeds)
    let other_seed = cfg
        .clone()
        .with_seed(1)
        .with_out(dir.path().join("dark_side_seed1"));
    let g1 = dark_side::train_translator(&other_seed, &world, &device).unwrap();
    assert_ne!(bits(translate_images(&g1, x.clone()).unwrap()), y);
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(other_seed.out.join("gan/config.json")).unwrap())
            .unwrap();
    let seed0: serde_json::Value =
        serde_json::from_slice(&std::fs::read(gan_dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        stored["generator"]["init_seed"].as_u64().unwrap(),
        seed0["generator"]["init_seed"].as_u64().unwrap() + 1000
    );

    // the CycleGAN translator: its folder names the day→night part, and a HEDN-GAN run refuses it
    let cyc = cfg
        .clone()
        .with_out(dir.path().join("dark_side_cyclegan"))
        .with_translator(dark_side::DsaTranslator::Cyclegan);
    let g = dark_side::train_translator(&cyc, &world, &device).unwrap();
    let y = bits(translate_images(&g, x.clone()).unwrap());
    drop(g);
    let t = Translator::load(cyc.out.join("gan"), &device).unwrap();
    assert_eq!(bits(t.translate(x.clone()).unwrap()), y);
    // the exported file (PyTorch keys, configuration in the header) gives the same translator,
    // as a file and through --translator-weights, which trains nothing
    let file = cyc.out.join("gan").join(dark_side::TRANSLATOR_FILE);
    let t = Translator::load(&file, &device).unwrap();
    assert_eq!(bits(t.translate(x.clone()).unwrap()), y);
    let given = cyc
        .clone()
        .with_out(dir.path().join("dark_side_given"))
        .with_translator_weights(Some(file))
        .with_gan_only(true)
        .with_data(Some(world.clone()));
    let report = dark_side::run(&given, &device).unwrap();
    assert!(!given.out.join("gan").exists(), "nothing trained");
    assert!(given.out.join("held-out.png").exists());
    assert!(
        report
            .quality
            .to_markdown()
            .contains(dark_side::TRANSLATOR_FILE)
    );
    let hedn = cyc
        .clone()
        .with_translator(dark_side::DsaTranslator::Hedngan);
    let e = dark_side::train_translator(&hedn, &world, &device)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("stage.method"), "method not named: {e}");

    // the fine-tuned network
    let net =
        dark_side::finetune(&cfg, &world, AugmentHooks::default(), "none", "ft", &device).unwrap();
    let d = bits2(net.forward(x.clone()));
    drop(net);
    let net = CirNet::load(cfg.out.join("ft"), &device).unwrap();
    assert_eq!(bits2(net.forward(x.clone())), d);

    // the darkening network
    let smm = SimilarityMinMaxConfig::new()
        .with_out(dir.path().join("smm"))
        .with_d_iterations(2)
        .with_d_batch(1)
        .with_crop(32);
    let dnet = similarity_minmax::train_darkening(&smm, &world, &device).unwrap();
    let exposure = Tensor::<4>::full([2, 1, 1, 1], 0.1, &device);
    let z = bits(dnet.forward(x.clone(), exposure.clone()).image);
    drop(dnet);
    let dnet = DarkeningNet::load(smm.out.join("darkening"), &device).unwrap();
    assert_eq!(bits(dnet.forward(x.clone(), exposure.clone()).image), z);
    let e = similarity_minmax::train_darkening(&smm.clone().with_d_lr(1e-3), &world, &device)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("stage.lr"), "{e}");

    // D alone as safetensors (what --darkening-weights and models/ take), and the source the
    // pipelines record for it
    let file = smm
        .out
        .join("darkening")
        .join(similarity_minmax::DARKENING_FILE);
    let dnet = DarkeningNet::load(&file, &device).unwrap();
    assert_eq!(bits(dnet.forward(x.clone(), exposure.clone()).image), z);
    let sha = nightvision::pipeline::sha256_hex(&std::fs::read(&file).unwrap());
    let no_models = dir.path().join("no-models");
    std::fs::create_dir_all(&no_models).unwrap();
    std::fs::write(no_models.join("manifest.json"), "[]").unwrap();
    let given = smm.clone().with_darkening_weights(Some(file.clone()));
    let (dnet, source) =
        similarity_minmax::darkening_network(&given, &world, &no_models, &device).unwrap();
    assert_eq!(bits(dnet.forward(x.clone(), exposure.clone()).image), z);
    assert_eq!(
        source,
        serde_json::json!({"file": similarity_minmax::DARKENING_FILE, "sha256": sha})
    );
    // without a file and with nothing shipped, D is trained (here: resumed, the same settings)
    let (_, source) =
        similarity_minmax::darkening_network(&smm, &world, &no_models, &device).unwrap();
    assert_eq!(source["trained"]["iterations"], 2);
    // a shipped file is used unless --train-darkening, after its hash is checked
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::copy(&file, models.join("d.safetensors")).unwrap();
    let manifest = |sha: &str| {
        let m = serde_json::json!([{"file": "d.safetensors", "sha256": sha, "kind": "darkening"}]);
        std::fs::write(models.join("manifest.json"), m.to_string()).unwrap();
    };
    manifest(&sha);
    let (dnet, source) =
        similarity_minmax::darkening_network(&smm, &world, &models, &device).unwrap();
    assert_eq!(bits(dnet.forward(x.clone(), exposure.clone()).image), z);
    assert_eq!(source["file"], "d.safetensors");
    let (_, source) = similarity_minmax::darkening_network(
        &smm.clone().with_train_darkening(true),
        &world,
        &models,
        &device,
    )
    .unwrap();
    assert!(source.get("trained").is_some(), "{source}");
    manifest(&"0".repeat(64));
    let e = similarity_minmax::darkening_network(&smm, &world, &models, &device)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("sha256") && e.contains("d.safetensors"), "{e}");
    // both a file and --train-darkening, or a missing file, are refused
    let both = given.clone().with_train_darkening(true);
    let e = similarity_minmax::darkening_network(&both, &world, &models, &device)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("train_darkening"), "{e}");
    let missing = smm
        .clone()
        .with_darkening_weights(Some(dir.path().join("absent.safetensors")));
    let e = similarity_minmax::darkening_network(&missing, &world, &models, &device)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("absent.safetensors"), "{e}");
    // a safetensors file without D's configuration in its header is refused, naming the key
    let bare = dir.path().join("bare.safetensors");
    nightvision::core::weights::save_pytorch_safetensors(&dnet, &bare, [("a", "b")]).unwrap();
    let e = DarkeningNet::load_safetensors(&bare, &device)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("bare.safetensors") && e.contains(nightvision::darkening::DARKENING_METADATA),
        "{e}"
    );

    // a folder with nothing to load says so
    let e = CirNet::load(dir.path().join("nothing"), &device)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("nothing"), "{e}");
}
