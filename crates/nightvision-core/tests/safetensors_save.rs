//! `save_pytorch_safetensors` writes the same bytes for the same module and metadata, whatever
//! order the metadata comes in (burn-store keeps it in a `HashMap`): a shipped file's sha256 is
//! reproducible. The file stays a valid safetensors file that loads back strictly.

use burn::nn::LinearConfig;
use burn::tensor::Device;
use nightvision_core::weights::{
    WeightsLoader, read_safetensors_metadata, save_pytorch_safetensors,
};

#[test]
fn saving_is_byte_reproducible_and_loads_back() {
    let device = Device::default();
    let fc = LinearConfig::new(5, 3).init(&device);
    let dir = tempfile::tempdir().unwrap();
    let meta: Vec<(String, String)> = (0..12)
        .map(|i| (format!("key{i:02}"), format!("value {i}")))
        .collect();
    let mut reversed = meta.clone();
    reversed.reverse();
    let (a, b) = (
        dir.path().join("a.safetensors"),
        dir.path().join("b.safetensors"),
    );
    save_pytorch_safetensors(&fc, &a, meta.clone()).unwrap();
    save_pytorch_safetensors(&fc, &b, reversed).unwrap();
    let (ba, bb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(ba, bb, "the same module and metadata give the same bytes");
    // the header is padded to 8 bytes and the metadata sorted
    let n = u64::from_le_bytes(ba[..8].try_into().unwrap()) as usize;
    assert_eq!(n % 8, 0);
    let header = std::str::from_utf8(&ba[8..8 + n]).unwrap();
    let positions: Vec<usize> = meta
        .iter()
        .map(|(k, _)| header.find(&format!("\"{k}\"")).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{header}");
    // the metadata and the weights read back
    let read = read_safetensors_metadata(&a).unwrap();
    for (k, v) in &meta {
        assert_eq!(&read[k], v);
    }
    let mut back = LinearConfig::new(5, 3).init(&device);
    WeightsLoader::new().load(&mut back, &a).unwrap();
    assert_eq!(back.weight.val().into_data(), fc.weight.val().into_data());
}
