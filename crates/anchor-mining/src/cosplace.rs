//! CosPlace classes and groups (docs/PAPERS.md B.5, docs/PAPERS.md protocols 2.3; gmberton/CosPlace
//! `datasets/train_dataset.py::get__class_id__group_id` and `initialize`).
//!
//! ```text
//! rounded_east    = int(east // M * M)          # M = 10 m
//! rounded_north   = int(north // M * M)
//! rounded_heading = int(heading // alpha * alpha)   # alpha = 30°
//! class_id = (rounded_east, rounded_north, rounded_heading)
//! group_id = (rounded_east % (M*N) // M, rounded_north % (M*N) // M, rounded_heading % (alpha*L) // alpha)
//! ```
//! with `N = 5`, `L = 2`; classes with fewer than `min_images_per_class` (10) images are dropped.
//! `//` and `%` are Python's floor division and modulo: the float `//` is reproduced bit for bit
//! ([`py_floordiv`]), the integer ones are Euclidean for the positive divisors used here.
//!
//! Ordering: groups are numbered in the order their first surviving image appears in the input
//! (CosPlace builds `classes_per_group` as a dict in that order); inside a group, classes are in
//! the order of their first image. CosPlace itself stores a group's classes in a Python `set`, whose
//! iteration order is a CPython hashing detail and is not reproduced.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{AnchorError, Result};

/// Python's float floor division `x // y` (CPython `float_floor_div` / numpy `npy_divmod`):
/// `fmod` first, then a correction, which differs from `floor(x / y)` when `x / y` rounds up to
/// an integer.
pub fn py_floordiv(x: f64, y: f64) -> f64 {
    let m = x % y; // C fmod
    let mut div = (x - m) / y;
    if m != 0.0 && ((y < 0.0) != (m < 0.0)) {
        div -= 1.0;
    }
    if div != 0.0 {
        let mut floordiv = div.floor();
        if div - floordiv > 0.5 {
            floordiv += 1.0;
        }
        floordiv
    } else {
        0.0_f64.copysign(x / y)
    }
}

/// Parameters of CosPlace's partition of the map (defaults of `gmberton/CosPlace` `parser.py`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CosPlaceConfig {
    /// Side of a class cell in metres (`--M`, default 10).
    pub m: u32,
    /// Heading bin width in degrees (`--alpha`, default 30).
    pub alpha: u32,
    /// Cells per group side (`--N`, default 5).
    pub n: u32,
    /// Heading bins per group (`--L`, default 2).
    pub l: u32,
    /// Classes with fewer images are dropped (`--min_images_per_class`, default 10).
    pub min_images_per_class: usize,
}

impl Default for CosPlaceConfig {
    fn default() -> Self {
        Self {
            m: 10,
            alpha: 30,
            n: 5,
            l: 2,
            min_images_per_class: 10,
        }
    }
}

impl CosPlaceConfig {
    /// Check every parameter is positive.
    pub fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("m", self.m),
            ("alpha", self.alpha),
            ("n", self.n),
            ("l", self.l),
        ] {
            if v == 0 {
                return Err(AnchorError::InvalidConfig {
                    field,
                    value: "0".into(),
                    reason: "CosPlace cell sizes and counts must be positive",
                });
            }
        }
        Ok(())
    }

    /// Number of possible groups, `N·N·L` (50 with the defaults).
    pub fn num_possible_groups(&self) -> usize {
        (self.n as usize) * (self.n as usize) * (self.l as usize)
    }
}

/// A CosPlace class: the lower corner of its `M × M` cell in UTM metres and the lower edge of its
/// heading bin in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClassId {
    /// `int(east // M * M)`.
    pub east: i64,
    /// `int(north // M * M)`.
    pub north: i64,
    /// `int(heading // alpha * alpha)`.
    pub heading: i64,
}

/// A CosPlace group: the position of a class in the `N × N × L` lattice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId {
    /// `rounded_east % (M·N) // M`, in `0..N`.
    pub east: i64,
    /// `rounded_north % (M·N) // M`, in `0..N`.
    pub north: i64,
    /// `rounded_heading % (alpha·L) // alpha`, in `0..L`.
    pub heading: i64,
}

impl GroupId {
    /// Flat index `(east·N + north)·L + heading` in `0..N·N·L`.
    pub fn flat(&self, cfg: &CosPlaceConfig) -> usize {
        ((self.east * i64::from(cfg.n) + self.north) * i64::from(cfg.l) + self.heading) as usize
    }
}

/// Python's `int(x)` (truncation) of an already integral float, saturating at the `i64` range.
fn py_int(x: f64) -> i64 {
    x.trunc() as i64
}

/// Class and group of one image (CosPlace `get__class_id__group_id`). Inputs must be finite and
/// the configuration valid (see [`CosPlaceConfig::validate`]); [`build_classes`] checks both.
pub fn class_and_group(
    east: f64,
    north: f64,
    heading: f64,
    cfg: &CosPlaceConfig,
) -> (ClassId, GroupId) {
    let m = f64::from(cfg.m);
    let a = f64::from(cfg.alpha);
    let class = ClassId {
        east: py_int(py_floordiv(east, m) * m),
        north: py_int(py_floordiv(north, m) * m),
        heading: py_int(py_floordiv(heading, a) * a),
    };
    let (mi, ai) = (i64::from(cfg.m), i64::from(cfg.alpha));
    let mn = mi * i64::from(cfg.n);
    let al = ai * i64::from(cfg.l);
    let group = GroupId {
        east: class.east.rem_euclid(mn).div_euclid(mi),
        north: class.north.rem_euclid(mn).div_euclid(mi),
        heading: class.heading.rem_euclid(al).div_euclid(ai),
    };
    (class, group)
}

/// Position and heading of one image, as CosPlace reads them from its file name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UtmRecord {
    /// UTM easting in metres (field 1).
    pub east: f64,
    /// UTM northing in metres (field 2).
    pub north: f64,
    /// Heading in degrees (field 9).
    pub heading: f64,
}

/// The fields of a VPR-format name, read by the project's one parser of UTM-named files
/// ([`vpr_eval::parse_vpr_name`], docs/PAPERS.md protocols 2.1:
/// `@east@north@zone@letter@lat@lon@pano@tile@heading@pitch@roll@height@timestamp@note@.jpg`;
/// only the basename is parsed, so folders containing `@` do no harm).
fn vpr_name(path: &str) -> Result<vpr_eval::VprName> {
    vpr_eval::parse_vpr_name(path).map_err(|e| AnchorError::NoUtmFields {
        name: path.to_string(),
        reason: match e {
            vpr_eval::EvalError::BadImageName { reason, .. } => reason,
            other => other.to_string(),
        },
    })
}

/// UTM easting and northing (fields 1 and 2) of a VPR-format file name.
pub fn parse_utm(path: &str) -> Result<(f64, f64)> {
    let n = vpr_name(path)?;
    Ok((n.east, n.north))
}

/// Easting, northing and heading (fields 1, 2 and 9) of a VPR-format file name, as CosPlace
/// training reads them.
pub fn parse_utm_heading(path: &str) -> Result<UtmRecord> {
    let n = vpr_name(path)?;
    let heading = n.heading.ok_or_else(|| AnchorError::NoHeading {
        name: path.to_string(),
        reason: format!(
            "field 9 (heading) is empty or missing: the name has {} @-fields",
            n.fields.len()
        ),
    })?;
    Ok(UtmRecord {
        east: n.east,
        north: n.north,
        heading,
    })
}

/// One class that survived the `min_images_per_class` filter.
#[derive(Debug, Clone, PartialEq)]
pub struct CosPlaceClass {
    /// The class.
    pub id: ClassId,
    /// Indices (into the input list) of its images, in input order.
    pub images: Vec<usize>,
}

/// One group: the classes sharing a lattice position.
#[derive(Debug, Clone, PartialEq)]
pub struct CosPlaceGroup {
    /// The group.
    pub id: GroupId,
    /// Its classes, in the order of their first image.
    pub classes: Vec<CosPlaceClass>,
}

/// The classes and groups of a training set.
#[derive(Debug, Clone, PartialEq)]
pub struct CosPlaceClasses {
    /// Groups in the order their first surviving image appears (CosPlace's group numbering: the
    /// training of epoch `e` uses `groups[e % groups_num]`).
    pub groups: Vec<CosPlaceGroup>,
    /// Number of input images.
    pub num_images: usize,
    /// Number of classes before the `min_images_per_class` filter.
    pub num_classes_before_filter: usize,
}

impl CosPlaceClasses {
    /// Total number of surviving classes.
    pub fn num_classes(&self) -> usize {
        self.groups.iter().map(|g| g.classes.len()).sum()
    }

    /// The group of a given id, if any class survived in it.
    pub fn group(&self, id: GroupId) -> Option<&CosPlaceGroup> {
        self.groups.iter().find(|g| g.id == id)
    }
}

/// Build CosPlace classes and groups from a list of positions and headings.
pub fn build_classes(records: &[UtmRecord], cfg: &CosPlaceConfig) -> Result<CosPlaceClasses> {
    cfg.validate()?;
    if records.is_empty() {
        return Err(AnchorError::EmptyCandidates {
            what: "no images to build CosPlace classes from",
        });
    }
    let mut keys = Vec::with_capacity(records.len());
    for (index, r) in records.iter().enumerate() {
        for (field, value) in [("east", r.east), ("north", r.north), ("heading", r.heading)] {
            if !value.is_finite() {
                return Err(AnchorError::NonFiniteCoordinate {
                    index,
                    field,
                    value,
                });
            }
        }
        keys.push(class_and_group(r.east, r.north, r.heading, cfg));
    }
    // Classes in order of first appearance, with their images.
    let mut class_pos: HashMap<ClassId, usize> = HashMap::new();
    let mut classes: Vec<(ClassId, GroupId, Vec<usize>)> = Vec::new();
    for (i, &(c, g)) in keys.iter().enumerate() {
        let pos = *class_pos.entry(c).or_insert_with(|| {
            classes.push((c, g, Vec::new()));
            classes.len() - 1
        });
        classes[pos].2.push(i);
    }
    let num_classes_before_filter = classes.len();
    // Groups in order of the first image (of a surviving class) that belongs to them.
    let mut group_pos: HashMap<GroupId, usize> = HashMap::new();
    let mut groups: Vec<CosPlaceGroup> = Vec::new();
    let mut placed = vec![false; classes.len()];
    for &(c, g) in &keys {
        let ci = class_pos[&c];
        if placed[ci] || classes[ci].2.len() < cfg.min_images_per_class {
            continue;
        }
        placed[ci] = true;
        let gi = *group_pos.entry(g).or_insert_with(|| {
            groups.push(CosPlaceGroup {
                id: g,
                classes: Vec::new(),
            });
            groups.len() - 1
        });
        groups[gi].classes.push(CosPlaceClass {
            id: c,
            images: std::mem::take(&mut classes[ci].2),
        });
    }
    Ok(CosPlaceClasses {
        groups,
        num_images: records.len(),
        num_classes_before_filter,
    })
}

/// Build CosPlace classes from VPR-format file names (fields 1, 2 and 9).
pub fn build_classes_from_names<S: AsRef<str>>(
    names: &[S],
    cfg: &CosPlaceConfig,
) -> Result<CosPlaceClasses> {
    let records = names
        .iter()
        .map(|n| parse_utm_heading(n.as_ref()))
        .collect::<Result<Vec<_>>>()?;
    build_classes(&records, cfg)
}

/// Read a list of image paths, one per line (blank lines skipped), such as the
/// `<folder>_images_paths.txt` caches of the VPR datasets, and parse every name's UTM fields and
/// heading. Errors name the file and the 1-based line.
pub fn read_utm_list(path: &Path) -> Result<(Vec<String>, Vec<UtmRecord>)> {
    let text = std::fs::read_to_string(path).map_err(|source| AnchorError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut names = Vec::new();
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let rec = parse_utm_heading(line).map_err(|e| AnchorError::ListLine {
            path: path.to_path_buf(),
            line: i + 1,
            source: Box::new(e),
        })?;
        names.push(line.to_string());
        records.push(rec);
    }
    Ok((names, records))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floordiv_matches_python() {
        // Values checked in CPython 3.11: 7.0 // 2 = 3.0, -7.0 // 2 = -4.0, 0.5 // 0.1 = 4.0
        // (floor(0.5 / 0.1) would be 5), 1.0 // 0.1 = 9.0, -0.0 // 3 = -0.0.
        assert_eq!(py_floordiv(7.0, 2.0), 3.0);
        assert_eq!(py_floordiv(-7.0, 2.0), -4.0);
        assert_eq!(py_floordiv(0.5, 0.1), 4.0);
        assert_eq!(py_floordiv(1.0, 0.1), 9.0);
        assert!(py_floordiv(-0.0, 3.0).is_sign_negative());
    }

    #[test]
    fn class_and_group_by_hand() {
        let cfg = CosPlaceConfig::default();
        let (c, g) = class_and_group(551_237.9, 4_181_245.2, 359.0, &cfg);
        assert_eq!(
            c,
            ClassId {
                east: 551_230,
                north: 4_181_240,
                heading: 330
            }
        );
        // 551230 % 50 = 30 -> 3; 4181240 % 50 = 40 -> 4; 330 % 60 = 30 -> 1.
        assert_eq!(
            g,
            GroupId {
                east: 3,
                north: 4,
                heading: 1
            }
        );
        assert_eq!(g.flat(&cfg), (3 * 5 + 4) * 2 + 1);
    }

    #[test]
    fn parse_vpr_names() {
        let name =
            "train/@0551237.90@4181245.20@10@S@037.77464@-122.43850@abcd@@045@@@@20130101@@.jpg";
        let r = parse_utm_heading(name).unwrap();
        assert_eq!((r.east, r.north, r.heading), (551_237.9, 4_181_245.2, 45.0));
        assert!(matches!(
            parse_utm("plain_name.jpg"),
            Err(AnchorError::NoUtmFields { .. })
        ));
        assert!(matches!(
            parse_utm("@abc@12@.jpg"),
            Err(AnchorError::NoUtmFields { .. })
        ));
        assert!(matches!(
            parse_utm_heading("@1@2@10@S@.jpg"),
            Err(AnchorError::NoHeading { .. })
        ));
        assert!(matches!(
            parse_utm("@nan@2@.jpg"),
            Err(AnchorError::NoUtmFields { .. })
        ));
    }

    #[test]
    fn small_classes_are_dropped_and_groups_ordered() {
        let cfg = CosPlaceConfig {
            min_images_per_class: 2,
            ..Default::default()
        };
        let rec = |e, n, h| UtmRecord {
            east: e,
            north: n,
            heading: h,
        };
        let records = [
            rec(5.0, 5.0, 10.0),  // class (0,0,0) group (0,0,0) — alone: dropped
            rec(15.0, 5.0, 40.0), // class (10,0,30) group (1,0,1)
            rec(60.0, 5.0, 10.0), // class (60,0,0) group (1,0,0)
            rec(19.0, 1.0, 59.0), // class (10,0,30)
            rec(65.0, 9.0, 29.0), // class (60,0,0)
        ];
        let out = build_classes(&records, &cfg).unwrap();
        assert_eq!(out.num_classes_before_filter, 3);
        assert_eq!(out.num_classes(), 2);
        assert_eq!(out.groups.len(), 2);
        assert_eq!(
            out.groups[0].id,
            GroupId {
                east: 1,
                north: 0,
                heading: 1
            }
        );
        assert_eq!(out.groups[0].classes[0].images, vec![1, 3]);
        assert_eq!(
            out.groups[1].id,
            GroupId {
                east: 1,
                north: 0,
                heading: 0
            }
        );
        assert_eq!(out.groups[1].classes[0].images, vec![2, 4]);
        let bad = [rec(f64::NAN, 0.0, 0.0)];
        assert!(matches!(
            build_classes(&bad, &cfg),
            Err(AnchorError::NonFiniteCoordinate {
                index: 0,
                field: "east",
                ..
            })
        ));
        assert!(matches!(
            build_classes(&[], &cfg),
            Err(AnchorError::EmptyCandidates { .. })
        ));
    }
}
