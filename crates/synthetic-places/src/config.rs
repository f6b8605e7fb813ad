//! The world and export configuration (serde, validated).

use std::path::Path;

use crate::error::{Result, SynthError};

/// Image file format of the exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// Baseline JPEG (`.jpg`), as the real datasets ship.
    Jpeg,
    /// Lossless PNG (`.png`).
    Png,
}

impl ImageFormat {
    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "jpg",
            ImageFormat::Png => "png",
        }
    }
}

/// Which datasets [`crate::export`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct DatasetSelection {
    /// `vpr/images/test/{database,queries,queries_night}` (UTM names).
    pub vpr: bool,
    /// `tokyo/images/test/{database,queries}` with day / sunset / night queries (index mod 3).
    pub tokyo: bool,
    /// `gan/{trainA,trainB}` unpaired day / night images of different places, with list files.
    pub gan: bool,
    /// `cirtorch/train/synthetic-places/{synthetic-places.pkl, ims/…}` tuple training set.
    pub cirtorch: bool,
    /// `cosplace/{train, val/database, val/queries, val/queries_night}` (UTM + heading names).
    pub cosplace: bool,
}

impl Default for DatasetSelection {
    fn default() -> Self {
        Self {
            vpr: true,
            tokyo: true,
            gan: true,
            cirtorch: true,
            cosplace: true,
        }
    }
}

/// Everything that defines a synthetic world and its exports. Same config ⇒ same bytes.
///
/// Places are split into *test* places (the VPR and Tokyo-style sets) and *train* places (GAN,
/// cirtorch, CosPlace sets), on different streets so that train and test never share geography.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorldConfig {
    /// Master seed: every street, facade, viewpoint and night is derived from it.
    pub seed: u64,
    /// Output image width in pixels.
    pub width: u32,
    /// Output image height in pixels.
    pub height: u32,
    /// Supersampling factor per axis (1 = none; 2 = 4 rays per pixel).
    pub supersample: u32,
    /// Number of test places (VPR and Tokyo-style sets).
    pub places: usize,
    /// Number of training places (GAN, cirtorch, CosPlace sets).
    pub train_places: usize,
    /// Places on one straight street (streets are 1 km apart in UTM).
    pub places_per_street: usize,
    /// Distance between consecutive places on a street (m). Must exceed 2 × 25 m + jitter so that
    /// each query has exactly one place within the standard 25 m positive radius.
    pub place_spacing_m: f32,
    /// Day database views per test place.
    pub db_views: usize,
    /// Day query views per test place (`queries/`).
    pub query_views: usize,
    /// Night query views per test place (`queries_night/`).
    pub night_query_views: usize,
    /// Day views per training place in the cirtorch tuple set (the first `tuple_views` of the
    /// place's training views, shared with the CosPlace folder).
    pub tuple_views: usize,
    /// Views per training place in the CosPlace training folder (CosPlace drops classes with fewer
    /// than `min_images_per_class` = 10 images by default).
    pub cosplace_views: usize,
    /// Images per domain (day, night) in the unpaired GAN folders (day: training views of the
    /// even training places, shared with the other training sets; night: own views of the odd
    /// ones).
    pub gan_images: usize,
    /// Image format of all exported images.
    pub format: ImageFormat,
    /// JPEG quality (1–100).
    pub jpeg_quality: u8,
    /// Which datasets to write.
    pub datasets: DatasetSelection,
}

/// The default world, sized to measure methods on (issue 11): 200 test places on 25 streets and
/// 125 training places (100 train + 25 val) on 16 others, 320 × 240 pixels.
///
/// | set | images |
/// |---|---|
/// | VPR test | 600 day database, 200 day queries, 200 night queries |
/// | Tokyo-style test | the same 600 database images; 200 day, 200 sunset, 200 night queries |
/// | GAN | 500 day (`trainA`), 500 night (`trainB`), unpaired |
/// | cirtorch tuples | 1,000 train (100 places × 10) + 250 val (25 × 10) |
/// | CosPlace | 1,000 train (100 classes × 10), val 75 database + 25 day + 25 night queries |
///
/// 3,475 distinct renders (database images and training views are rendered once and shared by
/// the sets that use them): about 100 s on two idle cores (≈ 34 renders/s).
impl Default for WorldConfig {
    fn default() -> Self {
        Self {
            seed: 7,
            width: 320,
            height: 240,
            supersample: 2,
            places: 200,
            train_places: 125,
            places_per_street: 8,
            place_spacing_m: 60.0,
            db_views: 3,
            query_views: 1,
            night_query_views: 1,
            tuple_views: 10,
            cosplace_views: 10,
            gan_images: 500,
            format: ImageFormat::Jpeg,
            jpeg_quality: 92,
            datasets: DatasetSelection::default(),
        }
    }
}

impl WorldConfig {
    /// A tiny world for tests and doctests: 4 + 4 places, 96×72 pixels, no supersampling.
    pub fn tiny() -> Self {
        Self {
            width: 96,
            height: 72,
            supersample: 1,
            places: 4,
            train_places: 4,
            places_per_street: 4,
            db_views: 2,
            query_views: 1,
            night_query_views: 1,
            tuple_views: 2,
            cosplace_views: 2,
            gan_images: 4,
            ..Self::default()
        }
    }

    /// Reads a JSON config (missing fields take their defaults) and validates it.
    pub fn from_json_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| SynthError::io(path, e))?;
        let cfg: Self = serde_json::from_str(&text).map_err(|source| SynthError::ConfigParse {
            path: path.to_path_buf(),
            source,
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every field; the first problem is returned as a typed error.
    pub fn validate(&self) -> Result<()> {
        if self.places == 0 {
            return Err(SynthError::NoPlaces { field: "places" });
        }
        if self.places_per_street == 0 {
            return Err(SynthError::NoPlaces {
                field: "places_per_street",
            });
        }
        if self.db_views == 0 {
            return Err(SynthError::NoViewpoints { field: "db_views" });
        }
        if self.query_views == 0 {
            return Err(SynthError::NoViewpoints {
                field: "query_views",
            });
        }
        if self.night_query_views == 0 {
            return Err(SynthError::NoViewpoints {
                field: "night_query_views",
            });
        }
        let train_sets = self.datasets.gan || self.datasets.cirtorch || self.datasets.cosplace;
        if train_sets && self.train_places < 2 {
            return Err(if self.train_places == 0 {
                SynthError::NoPlaces {
                    field: "train_places",
                }
            } else {
                invalid(
                    "train_places",
                    self.train_places,
                    "≥ 2 (train and val / day and night places are disjoint)",
                )
            });
        }
        if self.datasets.cirtorch && self.tuple_views < 2 {
            return Err(if self.tuple_views == 0 {
                SynthError::NoViewpoints {
                    field: "tuple_views",
                }
            } else {
                invalid(
                    "tuple_views",
                    self.tuple_views,
                    "≥ 2 (a query and a positive)",
                )
            });
        }
        if self.datasets.cosplace && self.cosplace_views == 0 {
            return Err(SynthError::NoViewpoints {
                field: "cosplace_views",
            });
        }
        if self.datasets.gan && self.gan_images == 0 {
            return Err(SynthError::NoViewpoints {
                field: "gan_images",
            });
        }
        if !(16..=4096).contains(&self.width) {
            return Err(invalid("width", self.width, "16 ..= 4096 pixels"));
        }
        if !(16..=4096).contains(&self.height) {
            return Err(invalid("height", self.height, "16 ..= 4096 pixels"));
        }
        if !(1..=4).contains(&self.supersample) {
            return Err(invalid("supersample", self.supersample, "1 ..= 4"));
        }
        if !(self.place_spacing_m.is_finite() && (55.0..=500.0).contains(&self.place_spacing_m)) {
            return Err(invalid(
                "place_spacing_m",
                self.place_spacing_m,
                "55 ..= 500 m (2 × the 25 m positive radius + viewpoint jitter)",
            ));
        }
        if self.places_per_street > 64 {
            return Err(invalid(
                "places_per_street",
                self.places_per_street,
                "1 ..= 64",
            ));
        }
        // checked: with `usize::MAX` places the plain sum wraps round to a small number
        match self.places.checked_add(self.train_places) {
            Some(total) if total <= 100_000 => {}
            _ => {
                return Err(invalid(
                    "places + train_places",
                    format!("{} + {}", self.places, self.train_places),
                    "≤ 100000",
                ));
            }
        }
        if !(1..=100).contains(&self.jpeg_quality) {
            return Err(invalid("jpeg_quality", self.jpeg_quality, "1 ..= 100"));
        }
        Ok(())
    }
}

fn invalid(
    field: &'static str,
    value: impl std::fmt::Display,
    expected: &'static str,
) -> SynthError {
    SynthError::InvalidConfig {
        field,
        value: value.to_string(),
        expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_tiny_validate() {
        WorldConfig::default().validate().unwrap();
        WorldConfig::tiny().validate().unwrap();
    }

    #[test]
    fn zero_places_and_zero_views_are_typed_errors() {
        let cfg = WorldConfig {
            places: 0,
            ..WorldConfig::tiny()
        };
        assert!(matches!(
            cfg.validate(),
            Err(SynthError::NoPlaces { field: "places" })
        ));
        let cfg = WorldConfig {
            db_views: 0,
            ..WorldConfig::tiny()
        };
        assert!(matches!(
            cfg.validate(),
            Err(SynthError::NoViewpoints { field: "db_views" })
        ));
        let cfg = WorldConfig {
            night_query_views: 0,
            ..WorldConfig::tiny()
        };
        assert!(matches!(
            cfg.validate(),
            Err(SynthError::NoViewpoints {
                field: "night_query_views"
            })
        ));
        let cfg = WorldConfig {
            place_spacing_m: 10.0,
            ..WorldConfig::tiny()
        };
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("place_spacing_m"), "{err}");
    }

    #[test]
    fn json_with_unknown_field_names_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cfg.json");
        std::fs::write(&p, "{\n  \"places\": 3,\n  \"plcaes\": 4\n}\n").unwrap();
        let err = WorldConfig::from_json_file(&p).unwrap_err();
        assert!(matches!(err, SynthError::ConfigParse { .. }));
        assert!(err.to_string().contains("line 3"), "{err}");
        std::fs::write(&p, "{\"places\": 5, \"width\": 64, \"height\": 48}").unwrap();
        let cfg = WorldConfig::from_json_file(&p).unwrap();
        assert_eq!((cfg.places, cfg.width, cfg.train_places), (5, 64, 125));
    }
}
