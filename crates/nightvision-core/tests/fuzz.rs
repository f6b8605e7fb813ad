//! Fuzzing the readers of user bytes in nightvision-core (issue 15): safetensors (and their
//! header metadata, `read_safetensors_metadata`) and PyTorch
//! `.pth` weight files (zip, legacy and checkpoint-dict formats) through [`WeightsLoader`], and a
//! checkpoint folder's `latest.json`, `config.json` and module records (burnpack `.bpk`) through
//! [`CheckpointDir`]. `NIGHTVISION_FUZZ_CASES` (10,000 by default) seeded mutations each; the
//! property: never a panic, an abort or an allocation beyond a small multiple of the input, and
//! every error a typed one naming the file. The fuzz engine is `nightvision_core::testing::fuzz`
//! (feature `testing`), compiled into this test from its source.

use std::collections::HashMap;
use std::path::Path;

use burn::nn::{Linear, LinearConfig};
use burn::tensor::Device;
use nightvision_core::CoreError;
use nightvision_core::checkpoint::{CONFIG_FILE, CheckpointDir, module_to_bytes, save_module};
use nightvision_core::weights::{WeightsLoader, read_safetensors_metadata};
use safetensors::tensor::{Dtype, TensorView};

#[allow(dead_code)]
#[path = "../src/testing/fuzz.rs"]
mod engine;

use engine::{Fuzz, TrackingAllocator, measure, names_file, write_case};

#[global_allocator]
static ALLOC: TrackingAllocator = TrackingAllocator;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/fuzz")
            .join(name),
    )
    .unwrap()
}

fn linear(device: &Device) -> Linear {
    LinearConfig::new(4, 3).init(device)
}

// ---- safetensors ---------------------------------------------------------------------------

fn safetensors_bytes(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views: HashMap<String, TensorView> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize(views, Some(meta)).unwrap()
}

fn f32_bytes(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| (i as f32 * 0.25).to_le_bytes())
        .collect()
}

fn safetensors_seeds() -> Vec<Vec<u8>> {
    vec![
        safetensors_bytes(&[
            ("weight", Dtype::F32, vec![3, 4], f32_bytes(12)),
            ("bias", Dtype::F32, vec![3], f32_bytes(3)),
        ]),
        safetensors_bytes(&[
            ("weight", Dtype::F64, vec![3, 4], vec![0; 96]),
            ("bias", Dtype::F16, vec![3], vec![0, 0x3c, 0, 0x40, 0, 0]),
            (
                "num_batches_tracked",
                Dtype::I64,
                vec![],
                7i64.to_le_bytes().to_vec(),
            ),
        ]),
        safetensors_bytes(&[("weight", Dtype::F32, vec![3, 5], f32_bytes(15))]),
    ]
}

/// Loads `path` into `module` with a plain loader and one reading the `state_dict` key.
fn check_weights(module: &mut Linear, path: &Path) -> Result<bool, String> {
    let mut accepted = false;
    for loader in [
        WeightsLoader::new(),
        WeightsLoader::new().with_top_level_key("state_dict"),
    ] {
        match loader.load(module, path) {
            Ok(r) => {
                if r.applied.len() != 2 {
                    return Err(format!("strict load applied {:?}", r.applied));
                }
                accepted = true;
            }
            Err(e) => names_file(&e, path)?,
        }
    }
    Ok(accepted)
}

#[test]
fn fuzz_safetensors_weights() {
    let device = Device::default();
    let mut module = linear(&device);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.safetensors");
    Fuzz::new("safetensors", safetensors_seeds())
        .tokens(&[
            b"{",
            b"\"data_offsets\":[0,48]",
            b"\"shape\":[4000000000000,8]",
            b"\"dtype\":\"F64\"",
            b"\"__metadata__\":{}",
        ])
        .run(|input| {
            write_case(&path, input)?;
            // the header's metadata, read on its own (a shipped model's configuration)
            if let Err(e) = read_safetensors_metadata(&path) {
                names_file(&e, &path)?;
            }
            check_weights(&mut module, &path)
        })
        .assert_clean();
}

// ---- PyTorch .pth --------------------------------------------------------------------------

fn pth_seeds() -> Vec<Vec<u8>> {
    [
        "linear_zip.pth",
        "linear_legacy.pth",
        "linear_checkpoint.pth",
        "linear_p4.pth",
    ]
    .iter()
    .map(|n| fixture(n))
    .collect()
}

#[test]
fn fuzz_pth_weights() {
    let device = Device::default();
    let mut module = linear(&device);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.pth");
    Fuzz::new("pth", pth_seeds())
        .tokens(&[
            b"PK\x03\x04",
            b"PK\x01\x02",
            b"]",
            b"(",
            b"a",
            b"h\x00",
            b"ctorch._utils\n_rebuild_tensor_v2\n",
            b"ctorch\nFloatStorage\n",
            b"\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x40",
        ])
        .run(|input| {
            write_case(&path, input)?;
            check_weights(&mut module, &path)
        })
        .assert_clean();
}

#[test]
fn weight_files_declaring_huge_sizes_are_quick_typed_errors() {
    let device = Device::default();
    let mut module = linear(&device);
    let dir = tempfile::tempdir().unwrap();
    // a safetensors header length of 2^62, and a header whose tensor claims 4e12 x 8 floats
    let st = dir.path().join("huge.safetensors");
    let mut huge_len = (1u64 << 62).to_le_bytes().to_vec();
    huge_len.extend_from_slice(b"{}");
    let header =
        br#"{"weight":{"dtype":"F32","shape":[4000000000000,8],"data_offsets":[0,128000000000000]}}"#;
    let mut huge_tensor = (header.len() as u64).to_le_bytes().to_vec();
    huge_tensor.extend_from_slice(header);
    huge_tensor.extend_from_slice(&[0; 48]);
    // a .pth whose storage declares 2^62 elements: the zip seed with its numel patched
    let pth = dir.path().join("huge.pth");
    let mut legacy = fixture("linear_legacy.pth");
    // the legacy format writes each storage's element count (u64) before its data: 12 and 3
    let twelve = 12u64.to_le_bytes();
    let at = legacy
        .windows(8)
        .position(|w| w == twelve)
        .expect("the weight storage's count");
    legacy[at..at + 8].copy_from_slice(&(1u64 << 62).to_le_bytes());
    for (path, bytes) in [(&st, huge_len), (&st, huge_tensor), (&pth, legacy)] {
        std::fs::write(path, &bytes).unwrap();
        let (r, took, grew) = measure(|| WeightsLoader::new().load(&mut module, path));
        assert!(took.as_secs_f64() < 1.0, "{took:?}");
        assert!(grew < 16 << 20, "allocated {grew}");
        let e = r.unwrap_err();
        assert!(
            matches!(
                e,
                CoreError::WeightsRead { .. } | CoreError::WeightsMismatch { .. }
            ),
            "{e:?}"
        );
        names_file(&e, path).unwrap();
    }
}

// ---- checkpoint folders --------------------------------------------------------------------

/// The configuration the fuzzed folders are bound to.
fn config() -> serde_json::Value {
    serde_json::to_value(serde_json::json!({
        "network": LinearConfig::new(4, 3),
        "stage": {"lr": 1e-3, "milestones": [1, 2], "name": "fuzz"}
    }))
    .unwrap()
}

/// A checkpoint folder with `config.json` and one checkpoint holding `model.bpk`.
fn checkpoint(root: &Path, device: &Device) -> CheckpointDir {
    let ckpt = CheckpointDir::new(root).unwrap();
    ckpt.bind_config(&config()).unwrap();
    let bytes = module_to_bytes(&linear(device)).unwrap();
    ckpt.save(
        3,
        &[("model.bpk", bytes)],
        &serde_json::json!({"epoch": 3, "loss": 0.5}),
    )
    .unwrap();
    ckpt
}

/// Everything a loader reads from the folder; errors must name a file in it.
fn check_checkpoint(ckpt: &CheckpointDir, device: &Device) -> Result<bool, String> {
    let root = ckpt.root();
    let mut accepted = true;
    let mut expect_named = |r: Result<(), CoreError>| -> Result<(), String> {
        if let Err(e) = r {
            accepted = false;
            let msg = e.to_string();
            if !msg.contains(&*root.to_string_lossy()) {
                return Err(format!("error names no file of the folder: {msg}"));
            }
        }
        Ok(())
    };
    expect_named(ckpt.latest::<serde_json::Value>().map(|_| ()))?;
    expect_named(ckpt.load_latest(linear(device), "model.bpk").map(|_| ()))?;
    expect_named(ckpt.config::<serde_json::Value>().map(|_| ()))?;
    expect_named(ckpt.config_field::<LinearConfig>("network").map(|_| ()))?;
    expect_named(ckpt.bind_config(&config()))?;
    Ok(accepted)
}

#[test]
fn fuzz_checkpoint_latest_json() {
    let device = Device::default();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = checkpoint(dir.path(), &device);
    let latest = dir.path().join("latest.json");
    let seed = std::fs::read(&latest).unwrap();
    Fuzz::new(
        "checkpoint-latest",
        vec![seed, br#"{"step":1,"dir":"step-000003"}"#.to_vec()],
    )
    .tokens(&[
        b"[",
        b"{",
        b"\"dir\":\"../..\",",
        b"\"step\":-1,",
        b"/",
        b"..",
    ])
    .run(|input| {
        write_case(&latest, input)?;
        check_checkpoint(&ckpt, &device)
    })
    .assert_clean();
}

#[test]
fn fuzz_checkpoint_config_json() {
    let device = Device::default();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = checkpoint(dir.path(), &device);
    let config = dir.path().join(CONFIG_FILE);
    let seed = std::fs::read(&config).unwrap();
    Fuzz::new("checkpoint-config", vec![seed])
        .tokens(&[b"[", b"{", b"\"network\":", b"1e999", b"\"\\u0000\""])
        .run(|input| {
            write_case(&config, input)?;
            check_checkpoint(&ckpt, &device)
        })
        .assert_clean();
}

#[test]
fn fuzz_checkpoint_module_record() {
    let device = Device::default();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = checkpoint(dir.path(), &device);
    let (_, _, step) = ckpt.latest::<serde_json::Value>().unwrap().unwrap();
    let record = step.join("model.bpk");
    let seeds = vec![
        std::fs::read(&record).unwrap(),
        // records of other modules: another shape, another parameter set
        module_to_bytes(&LinearConfig::new(3, 4).init(&device)).unwrap(),
        module_to_bytes(&LinearConfig::new(4, 3).with_bias(false).init(&device)).unwrap(),
    ];
    Fuzz::new("checkpoint-record", seeds)
        .run(|input| {
            write_case(&record, input)?;
            match ckpt.load_latest(linear(&device), "model.bpk") {
                Ok(_) => Ok(true),
                Err(e) => names_file(&e, &record).map(|()| false),
            }
        })
        .assert_clean();
}

/// Finding: `module_from_bytes` (every `load_module` / `CheckpointDir::load_latest`) applied a
/// record with burn's `load_record`, which panics ("Failed to load record") when the record
/// belongs to another architecture. It uses `try_load_record` and returns
/// [`CoreError::Record`] naming the file now.
#[test]
fn a_record_of_another_module_is_an_error_not_a_panic() {
    let device = Device::default();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.bpk");
    for other in [
        LinearConfig::new(3, 4).init(&device),
        LinearConfig::new(4, 3).with_bias(false).init(&device),
    ] {
        save_module(&other, &path).unwrap();
        let e = nightvision_core::checkpoint::load_module(linear(&device), &path).unwrap_err();
        assert!(matches!(e, CoreError::Record { .. }), "{e:?}");
        names_file(&e, &path).unwrap();
    }
}

/// Finding of the fuzz campaign (`checkpoint-record`, seed 0xCA3FA16, case 85695): a record
/// whose weight is declared `I32` (one byte of the dtype string changed) panicked inside burn
/// ("Expected float dtype, got I32") when applied to the float parameter, because records were
/// loaded in their own dtype. The module's dtype is used now, so our own records (which hold it)
/// load unchanged and such a record is converted, never a panic.
#[test]
fn a_record_declaring_another_dtype_does_not_panic() {
    let device = Device::default();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("int.bpk");
    let module = linear(&device);
    let good = module_to_bytes(&module).unwrap();
    for (from, to) in [(b"F32", b"I32"), (b"F32", b"I64"), (b"F32", b"U8\0")] {
        let at = good
            .windows(3)
            .position(|w| w == from)
            .expect("a dtype string");
        let mut bad = good.clone();
        bad[at..at + 3].copy_from_slice(to);
        std::fs::write(&path, &bad).unwrap();
        match nightvision_core::checkpoint::load_module(linear(&device), &path) {
            Ok(m) => assert_eq!(m.weight.dims(), [4, 3]),
            Err(e) => names_file(&e, &path).unwrap(),
        }
    }
    // the module's own record loads bit for bit
    std::fs::write(&path, &good).unwrap();
    let back = nightvision_core::checkpoint::load_module(linear(&device), &path).unwrap();
    assert_eq!(back.weight.val().to_data(), module.weight.val().to_data());
}

/// Finding: `latest.json`'s `"dir"` was joined to the folder as it was, so a pointer such as
/// `"../other-run/step-000009"` or `"/etc"` made a loader read (and `save` keep) another
/// folder's files. It must be the name of a folder inside the checkpoint folder now.
#[test]
fn latest_json_cannot_point_outside_its_folder() {
    let device = Device::default();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let ckpt = checkpoint(&run, &device);
    // a complete checkpoint of another run beside it
    let other = checkpoint(&dir.path().join("other"), &device);
    let (_, _, other_step) = other.latest::<serde_json::Value>().unwrap().unwrap();
    let latest = run.join("latest.json");
    for dir_field in [
        format!(
            "../other/{}",
            other_step.file_name().unwrap().to_string_lossy()
        ),
        other_step.to_string_lossy().into_owned(),
        "..".into(),
        ".".into(),
        "".into(),
    ] {
        let text = serde_json::json!({"step": 9, "dir": dir_field}).to_string();
        std::fs::write(&latest, text).unwrap();
        let e = ckpt.latest::<serde_json::Value>().unwrap_err();
        assert!(
            matches!(e, CoreError::Checkpoint { .. }),
            "{dir_field}: {e:?}"
        );
        names_file(&e, &latest).unwrap();
        let e = ckpt.load_latest(linear(&device), "model.bpk").unwrap_err();
        assert!(matches!(e, CoreError::Checkpoint { .. }), "{e:?}");
    }
}
