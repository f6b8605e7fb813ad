//! The hashed translation subset against Python's hashlib on 1,000 real Tokyo 24/7 names
//! (`scripts/make_fixtures.py`), and against the real-data cache when it is present.

mod common;

use anchor_mining::{ImageRole, TranslationSubset, hash_fraction, image_stem};

/// Allowed deviation of the translated fraction from the 25 % ratio (issue 6: 25 % ± 2 %).
const FRACTION_TOLERANCE: f64 = 0.02;

#[test]
fn md5_subset_matches_hashlib() {
    let fx = common::json("md5_names.json");
    let names = fx["names"].as_array().unwrap();
    let hex = fx["hex_last4"].as_array().unwrap();
    let expected = fx["translated"].as_array().unwrap();
    assert_eq!(names.len(), 1000);
    let subset = TranslationSubset::default();
    let mut count = 0;
    for ((n, h), e) in names.iter().zip(hex).zip(expected) {
        let n = n.as_str().unwrap();
        assert_eq!(
            hash_fraction(image_stem(n)) * 65536.0,
            h.as_f64().unwrap(),
            "{n}"
        );
        let t = subset.is_translated(ImageRole::Anchor, n);
        assert_eq!(t, e.as_bool().unwrap(), "{n}");
        assert!(!subset.is_translated(ImageRole::Positive, n));
        count += usize::from(t);
    }
    let frac = count as f64 / 1000.0;
    println!("translated fraction of the fixture names: {frac}");
    assert!((frac - 0.25).abs() <= FRACTION_TOLERANCE, "{frac}");
}

#[test]
fn md5_subset_on_the_real_name_list() {
    let path = match nightvision_core::real_data_file("gt/tokyo247_imageNames_index.txt") {
        Ok(p) => p,
        Err(reason) => {
            println!("skipped: {reason}");
            return;
        }
    };
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    // The fixture names are every 75th line of this list.
    let fx = common::json("md5_names.json");
    let names = fx["names"].as_array().unwrap();
    let expected = fx["translated"].as_array().unwrap();
    let subset = TranslationSubset::default();
    for (k, (n, e)) in names.iter().zip(expected).enumerate() {
        assert_eq!(lines[k * 75], n.as_str().unwrap());
        assert_eq!(subset.contains(lines[k * 75]), e.as_bool().unwrap());
    }
    let count = lines.iter().filter(|l| subset.contains(l)).count();
    let frac = count as f64 / lines.len() as f64;
    println!(
        "translated fraction of all {} Tokyo 24/7 database names: {frac:.4}",
        lines.len()
    );
    assert!((frac - 0.25).abs() <= FRACTION_TOLERANCE);
}
