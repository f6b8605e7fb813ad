//! The trained weights shipped in `models/` (issue 13): every file is listed in
//! `models/manifest.json` with its sha256, which it must match byte for byte, and loads strictly
//! into the network its header describes; every listed file exists.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use nightvision::gan::ResnetGenerator;
use sha2::{Digest, Sha256};

#[derive(serde::Deserialize)]
struct Entry {
    file: String,
    sha256: String,
    kind: String,
}

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

fn manifest() -> Vec<Entry> {
    let text = std::fs::read_to_string(models().join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_shipped_file_is_listed_hashed_and_loads_strictly() {
    let entries = manifest();
    let mut listed: Vec<&str> = entries.iter().map(|e| e.file.as_str()).collect();
    listed.sort_unstable();
    let mut present: Vec<String> = std::fs::read_dir(models())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".safetensors"))
        .collect();
    present.sort_unstable();
    assert_eq!(present, listed, "models/ and models/manifest.json disagree");
    let mut total = 0;
    for e in &entries {
        let bytes = std::fs::read(models().join(&e.file)).unwrap();
        total += bytes.len();
        let digest = Sha256::digest(&bytes);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, e.sha256, "{}: sha256", e.file);
        match e.kind.as_str() {
            "translator" => {
                ResnetGenerator::load_safetensors(models().join(&e.file), &Device::default())
                    .unwrap_or_else(|err| panic!("{}: {err}", e.file));
            }
            other => panic!("{}: unknown kind {other}", e.file),
        }
    }
    assert!(
        total <= 20 << 20,
        "models/ holds {total} bytes (at most 20 MB)"
    );
}
