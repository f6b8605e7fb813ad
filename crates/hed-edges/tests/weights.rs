//! Weight loading: the port's, the older port's and gandtr's key names give the same network;
//! wrong, missing or wrongly shaped keys, missing files and bad inputs are clear errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use hed_edges::{Hed, HedConfig, HedError};
use nightvision_core::CoreError;
use nightvision_core::testing::{max_rel_err, read_safetensors};

const WIDTHS: [usize; 5] = [4, 8, 16, 32, 32];

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Tensors by key: shape and values.
type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Missing, unused and wrongly shaped keys of a weights mismatch.
type Mismatch = (Vec<String>, Vec<String>, Vec<(String, String, String)>);

/// The module's parameters under its field paths (`vgg_two.1.weight`) with shape and values.
#[derive(Default)]
struct Collect {
    path: Vec<String>,
    out: Tensors,
}

impl ModuleVisitor for Collect {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        let shape = t.dims().to_vec();
        let v = t.into_data().try_into_vec_as::<f32>().unwrap();
        self.out.insert(self.path.join("."), (shape, v));
    }
}

/// Our field path → the PyTorch port's key, in one of three naming schemes.
fn port_key(path: &str, scheme: &str) -> String {
    let parts: Vec<&str> = path.split('.').collect();
    let block = |field: &str| {
        ["vgg_one", "vgg_two", "vgg_thr", "vgg_fou", "vgg_fiv"]
            .iter()
            .position(|b| *b == field)
    };
    const NAMES: [&str; 5] = ["One", "Two", "Thr", "Fou", "Fiv"];
    if let Some(b) = block(parts[0]) {
        // Sequential indices: block 1 [conv, relu, conv, relu]; others start with the max-pool.
        let i: usize = parts[1].parse().unwrap();
        let seq = if b == 0 { 2 * i } else { 2 * i + 1 };
        return match scheme {
            "gandtr" => format!("vgg{}.{seq}.{}", b + 1, parts[2]),
            prefix => format!("{prefix}Vgg{}.{seq}.{}", NAMES[b], parts[2]),
        };
    }
    if let Some(s) = parts[0].strip_prefix("score_") {
        let b = ["one", "two", "thr", "fou", "fiv"]
            .iter()
            .position(|n| *n == s)
            .unwrap();
        return match scheme {
            "gandtr" => format!("score{}.{}", b + 1, parts[1]),
            prefix => format!("{prefix}Score{}.{}", NAMES[b], parts[1]),
        };
    }
    assert_eq!(parts[0], "combine");
    match scheme {
        "gandtr" => format!("fusion.0.{}", parts[1]),
        prefix => format!("{prefix}Combine.0.{}", parts[1]),
    }
}

fn write_safetensors(path: &Path, tensors: &Tensors) {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(k, (shape, v))| {
            (
                k.clone(),
                shape.clone(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(k, shape, b)| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// The random fixture network's weights re-keyed in `scheme`.
fn reference(device: &Device, scheme: &str) -> (Hed, Tensors) {
    let mut hed = HedConfig::new().with_widths(WIDTHS).init(device);
    hed.load_weights(fixture("hed_random.pth")).unwrap();
    let mut c = Collect::default();
    hed.visit(&mut c);
    let keyed = c
        .out
        .into_iter()
        .map(|(k, v)| (port_key(&k, scheme), v))
        .collect();
    (hed, keyed)
}

fn mismatch(err: HedError) -> Mismatch {
    match err {
        HedError::Core(CoreError::WeightsMismatch {
            missing,
            unused,
            mismatched,
            ..
        }) => (missing, unused, mismatched),
        other => panic!("expected a weights mismatch, got {other:?}"),
    }
}

#[test]
fn the_three_naming_schemes_load_the_same_network() {
    let device = Device::default();
    let io = read_safetensors(fixture("hed_io.safetensors")).unwrap();
    let x = io["x"].tensor::<4>(&device);
    let dir = tempfile::tempdir().unwrap();
    for scheme in ["net", "module", "gandtr"] {
        let (_, keyed) = reference(&device, scheme);
        let path = dir.path().join(format!("{scheme}.safetensors"));
        write_safetensors(&path, &keyed);
        let mut hed = HedConfig::new().with_widths(WIDTHS).init(&device);
        let report = hed.load_weights(&path).unwrap();
        assert_eq!(report.applied.len(), 38, "{scheme}");
        let err = max_rel_err(hed.forward_logits(x.clone()), &io["random.fused"]);
        assert!(err < 1e-4, "{scheme}: {err}");
    }
}

#[test]
fn missing_unused_and_misshaped_keys_are_named() {
    let device = Device::default();
    let dir = tempfile::tempdir().unwrap();
    let (_, keyed) = reference(&device, "net");
    let mut hed = HedConfig::new().with_widths(WIDTHS).init(&device);

    // A missing key.
    let mut m = keyed.clone();
    m.remove("netScoreThr.bias");
    let p = dir.path().join("missing.safetensors");
    write_safetensors(&p, &m);
    let err = hed.load_weights(&p).unwrap_err();
    let text = err.to_string();
    let (missing, unused, bad) = mismatch(err);
    assert_eq!(missing, vec!["score_thr.bias".to_string()]);
    assert!(unused.is_empty() && bad.is_empty());
    assert!(
        text.contains("score_thr.bias") && text.contains("missing.safetensors"),
        "{text}"
    );

    // A wrong (unknown) key, e.g. the port's names misspelt.
    let mut m = keyed.clone();
    let v = m.remove("netCombine.0.weight").unwrap();
    m.insert("netCombined.0.weight".into(), v);
    let p = dir.path().join("wrong.safetensors");
    write_safetensors(&p, &m);
    let (missing, unused, _) = mismatch(hed.load_weights(&p).unwrap_err());
    assert_eq!(missing, vec!["combine.weight".to_string()]);
    assert_eq!(unused, vec!["netCombined.0.weight".to_string()]);

    // A wrongly shaped tensor (full-width HED weights into a narrow network, in miniature).
    let mut m = keyed.clone();
    m.insert("netVggTwo.3.bias".into(), (vec![9], vec![0.0; 9]));
    let p = dir.path().join("shape.safetensors");
    write_safetensors(&p, &m);
    let err = hed.load_weights(&p).unwrap_err();
    let text = err.to_string();
    let (_, _, bad) = mismatch(err);
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].0, "vgg_two.1.bias");
    assert!(
        text.contains("vgg_two.1.bias") && text.contains('9'),
        "{text}"
    );

    // The real (full-width) weights do not fit a narrow network: every conv is named.
    if let Ok(real) = nightvision_core::real_data_file("weights/hed_bsds500.safetensors") {
        let (_, _, bad) = mismatch(hed.load_weights(&real).unwrap_err());
        assert!(bad.len() >= 13, "{bad:?}");
    }
}

#[test]
fn missing_and_unreadable_files_are_errors() {
    let device = Device::default();
    let mut hed = HedConfig::new().with_widths(WIDTHS).init(&device);
    let err = hed
        .load_weights("/nonexistent/hed.safetensors")
        .unwrap_err();
    assert!(
        matches!(err, HedError::Core(CoreError::Io { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("/nonexistent/hed.safetensors"));

    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("garbage.safetensors");
    std::fs::write(&p, b"not a safetensors file").unwrap();
    let err = hed.load_weights(&p).unwrap_err();
    assert!(
        matches!(err, HedError::Core(CoreError::WeightsRead { .. })),
        "{err:?}"
    );
}

#[test]
fn inputs_below_16_pixels_or_without_three_channels_are_errors() {
    let device = Device::default();
    let hed = HedConfig::new().with_widths(WIDTHS).init(&device);
    for (h, w) in [(15, 40), (40, 15), (8, 8)] {
        let err = hed
            .try_forward_output(Tensor::<4>::zeros([1, 3, h, w], &device))
            .unwrap_err();
        assert!(
            matches!(err, HedError::InputTooSmall { height, width, min: 16 } if height == h && width == w),
            "{err:?}"
        );
        assert!(err.to_string().contains(&format!("{h}×{w}")), "{err}");
    }
    let err = hed
        .try_forward(Tensor::<4>::zeros([1, 4, 32, 32], &device))
        .unwrap_err();
    assert!(matches!(err, HedError::InputChannels { channels: 4 }));
    // 16×16 is the smallest input: block 5 sees 1×1.
    let out = hed
        .try_forward_output(Tensor::<4>::zeros([2, 3, 16, 17], &device))
        .unwrap();
    assert_eq!(out.fused.dims(), [2, 1, 16, 17]);
}
