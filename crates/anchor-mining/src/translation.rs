//! The hashed translation subset (docs/PAPERS.md A.6, gandtr `components/data/wrapper.py::CirRatioPassThrough`).
//!
//! Dark Side Augmentation translates an image to synthetic night only when it is an *anchor*
//! (tuple label matching `anc`, also `anc-pool-mine` while mining) **and**
//! `int(md5(stem).hexdigest()[-4:], 16) / 65536 < ratio` (ratio 0.25), where `stem` is the
//! basename without extension. The last four hex digits are the last two digest bytes read
//! big-endian, so the subset is a fixed, deterministic quarter of the query images on every
//! machine and in every run.

use md5::{Digest, Md5};

use crate::error::{AnchorError, Result};

/// The ratio of DSA's recipe (`cir_ratio_pass_through:0.25:anc`).
pub const DEFAULT_TRANSLATION_RATIO: f64 = 0.25;

/// The role an image plays in a training tuple. Only anchors are ever translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageRole {
    /// The query / anchor of a tuple (also the anchor pool during hard-negative mining).
    Anchor,
    /// The positive of a tuple.
    Positive,
    /// A negative of a tuple (or a negative-pool image).
    Negative,
}

/// Python's `os.path.splitext(os.path.basename(path))[0]` for POSIX paths.
///
/// The basename is everything after the last `/`; the extension starts at the last `.` of the
/// basename unless the basename is only dots up to there (`.bashrc` has no extension), exactly as
/// `posixpath.splitext` does.
pub fn image_stem(path: &str) -> &str {
    let base = match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    };
    match base.rfind('.') {
        Some(dot) if base[..dot].bytes().any(|b| b != b'.') => &base[..dot],
        _ => base,
    }
}

/// `int(md5(stem).hexdigest()[-4:], 16) / 65536` for the UTF-8 bytes of `stem`: a number in
/// `[0, 1)` on a grid of 1/65536.
pub fn hash_fraction(stem: &str) -> f64 {
    let digest = Md5::digest(stem.as_bytes());
    let last = u16::from_be_bytes([digest[14], digest[15]]);
    f64::from(last) / 65536.0
}

/// The deterministic subset of images that DSA shows to the network as synthetic night.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TranslationSubset {
    ratio: f64,
}

impl Default for TranslationSubset {
    fn default() -> Self {
        Self {
            ratio: DEFAULT_TRANSLATION_RATIO,
        }
    }
}

impl TranslationSubset {
    /// A subset holding the fraction `ratio` of all names (`0 ≤ ratio ≤ 1`).
    pub fn new(ratio: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&ratio) {
            return Err(AnchorError::InvalidConfig {
                field: "ratio",
                value: ratio.to_string(),
                reason: "the translated fraction must lie in [0, 1]",
            });
        }
        Ok(Self { ratio })
    }

    /// The translated fraction.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// Whether the image at `path` (any path; only its stem is hashed) is in the subset,
    /// regardless of its role.
    pub fn contains(&self, path: &str) -> bool {
        hash_fraction(image_stem(path)) < self.ratio
    }

    /// Whether the image is translated in a tuple: it must be an [`ImageRole::Anchor`] and in the
    /// subset. Positives and negatives are never translated.
    pub fn is_translated(&self, role: ImageRole, path: &str) -> bool {
        role == ImageRole::Anchor && self.contains(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stem_follows_posixpath() {
        assert_eq!(image_stem("a/b/JHV_012_000.png"), "JHV_012_000");
        assert_eq!(image_stem("./x.tar.gz"), "x.tar");
        assert_eq!(image_stem("dir.d/noext"), "noext");
        assert_eq!(image_stem(".bashrc"), ".bashrc");
        assert_eq!(image_stem("..x"), "..x");
        assert_eq!(image_stem("a/..x.jpg"), "..x");
        assert_eq!(image_stem("a/"), "");
    }

    #[test]
    fn hash_of_known_strings() {
        // md5("") = d41d8cd98f00b204e9800998ecf8427e -> 0x427e / 65536 (RFC 1321 test suite).
        assert_eq!(hash_fraction(""), f64::from(0x427e_u16) / 65536.0);
        // md5("abc") = 900150983cd24fb0d6963f7d28e17f72 (RFC 1321).
        assert_eq!(hash_fraction("abc"), f64::from(0x7f72_u16) / 65536.0);
    }

    #[test]
    fn only_anchors_are_translated() {
        let all = TranslationSubset::new(1.0).unwrap();
        assert!(all.is_translated(ImageRole::Anchor, "x.jpg"));
        assert!(!all.is_translated(ImageRole::Positive, "x.jpg"));
        assert!(!all.is_translated(ImageRole::Negative, "x.jpg"));
        let none = TranslationSubset::new(0.0).unwrap();
        assert!(!none.is_translated(ImageRole::Anchor, "x.jpg"));
        assert!(TranslationSubset::new(1.5).is_err());
        assert!(TranslationSubset::new(f64::NAN).is_err());
    }
}
