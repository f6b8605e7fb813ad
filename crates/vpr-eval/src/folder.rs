//! The UTM-named folder format of the VPR benchmarks (docs/PAPERS.md protocols 2.1, docs/PAPERS.md B.7).
//!
//! File names are `@east@north@zone@letter@lat@lon@pano@tile@heading@pitch@roll@height@timestamp@note@.jpg`;
//! only east and north are required. A split folder (`database/`, `queries/`, `queries_night/`, …) is
//! listed from `<folder>_images_paths.txt` next to it when that file exists (paths relative to the
//! folder, one per line), else by a sorted recursive walk keeping `.jpg`/`.jpeg`/`.png` files, as
//! VPR-methods-evaluation's `read_images_paths` does.

use std::path::{Path, PathBuf};

use crate::error::{EvalError, Result};

/// The fields of one VPR image name.
#[derive(Debug, Clone, PartialEq)]
pub struct VprName {
    /// UTM easting in metres (field 1).
    pub east: f64,
    /// UTM northing in metres (field 2).
    pub north: f64,
    /// UTM zone number (field 3), if present.
    pub zone: Option<u32>,
    /// UTM zone letter (field 4), if present.
    pub zone_letter: Option<String>,
    /// Latitude (field 5), if present.
    pub lat: Option<f64>,
    /// Longitude (field 6), if present.
    pub lon: Option<f64>,
    /// Panorama id (field 7), if present.
    pub pano_id: Option<String>,
    /// Tile number (field 8), if present.
    pub tile: Option<u32>,
    /// Heading in degrees (field 9), if present; CosPlace training needs it.
    pub heading: Option<f64>,
    /// All `@`-separated fields between the leading `@` and the extension (may be empty strings).
    pub fields: Vec<String>,
}

/// Parses the file name (not the path) of a VPR image.
///
/// ```
/// let n = vpr_eval::parse_vpr_name("@0381418.23@3946450.43@54@S@35.66@139.70@JHVdm@12@030@@@@@@.jpg").unwrap();
/// assert_eq!((n.east, n.north, n.zone, n.heading), (381418.23, 3946450.43, Some(54), Some(30.0)));
/// ```
pub fn parse_vpr_name(name: &str) -> Result<VprName> {
    parse_with_location(name, None, None)
}

pub(crate) fn parse_with_location(
    name: &str,
    path: Option<&Path>,
    line: Option<usize>,
) -> Result<VprName> {
    let bad = |reason: String| EvalError::BadImageName {
        name: name.to_string(),
        path: path.map(Path::to_path_buf),
        line,
        reason,
    };
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    if !base.starts_with('@') {
        return Err(bad("does not start with '@'".into()));
    }
    let parts: Vec<&str> = base.split('@').collect();
    // ["", east, north, ..., ext]
    if parts.len() < 4 {
        return Err(bad(format!(
            "needs at least '@east@north@' followed by the extension, found {} field(s)",
            parts.len().saturating_sub(2)
        )));
    }
    let fields: Vec<String> = parts[1..parts.len() - 1]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let num = |i: usize, what: &str| -> Result<Option<f64>> {
        match fields.get(i).map(|s| s.trim()) {
            None | Some("") => Ok(None),
            Some(s) => match s.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(Some(v)),
                _ => Err(bad(format!(
                    "field {} ({what}) {s:?} is not a finite number",
                    i + 1
                ))),
            },
        }
    };
    let int = |i: usize, what: &str| -> Result<Option<u32>> {
        match fields.get(i).map(|s| s.trim()) {
            None | Some("") => Ok(None),
            Some(s) => s
                .parse::<u32>()
                .map(Some)
                .map_err(|_| bad(format!("field {} ({what}) {s:?} is not an integer", i + 1))),
        }
    };
    let text = |i: usize| fields.get(i).filter(|s| !s.is_empty()).cloned();
    let east = num(0, "UTM east")?.ok_or_else(|| bad("field 1 (UTM east) is empty".into()))?;
    let north = num(1, "UTM north")?.ok_or_else(|| bad("field 2 (UTM north) is empty".into()))?;
    Ok(VprName {
        east,
        north,
        zone: int(2, "UTM zone")?,
        zone_letter: text(3),
        lat: num(4, "latitude")?,
        lon: num(5, "longitude")?,
        pano_id: text(6),
        tile: int(7, "tile number")?,
        heading: num(8, "heading")?,
        fields,
    })
}

/// One image of a split folder.
#[derive(Debug, Clone, PartialEq)]
pub struct VprImage {
    /// Full path (the folder joined with the listed relative path).
    pub path: PathBuf,
    /// The parsed name.
    pub name: VprName,
}

/// A split folder: `database/`, `queries/`, `queries_night/`, `gallery/`, …
#[derive(Debug, Clone, PartialEq)]
pub struct VprFolder {
    /// The folder.
    pub dir: PathBuf,
    /// Its images in the reference order.
    pub images: Vec<VprImage>,
}

impl VprFolder {
    /// Lists and parses a split folder (see the module docs for the order).
    pub fn read(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let list = images_paths_file(&dir);
        let images = if list.is_file() {
            let text = std::fs::read_to_string(&list).map_err(|e| EvalError::io(&list, e))?;
            let mut images = Vec::new();
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let name = parse_with_location(line.trim(), Some(&list), Some(i + 1))?;
                images.push(VprImage {
                    path: dir.join(line.trim()),
                    name,
                });
            }
            if let Some(first) = images.first()
                && !first.path.exists()
            {
                return Err(EvalError::io(
                    &first.path,
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("listed in {} but absent", list.display()),
                    ),
                ));
            }
            images
        } else {
            let mut paths = Vec::new();
            walk(&dir, &mut paths)?;
            paths.sort();
            paths
                .into_iter()
                .map(|p| {
                    let name = parse_with_location(&p.to_string_lossy(), None, None)?;
                    Ok(VprImage { path: p, name })
                })
                .collect::<Result<Vec<_>>>()?
        };
        if images.is_empty() {
            return Err(EvalError::Empty {
                what: "image folder".into(),
                path: Some(dir),
            });
        }
        Ok(Self { dir, images })
    }

    /// UTM (east, north) of every image.
    pub fn utm(&self) -> Vec<[f64; 2]> {
        self.images
            .iter()
            .map(|i| [i.name.east, i.name.north])
            .collect()
    }

    /// Image paths relative to the folder, as strings (for ground-truth name lists and cache keys).
    pub fn relative_names(&self) -> Vec<String> {
        self.images
            .iter()
            .map(|i| {
                i.path
                    .strip_prefix(&self.dir)
                    .unwrap_or(&i.path)
                    .to_string_lossy()
                    .to_string()
            })
            .collect()
    }
}

/// `<folder>_images_paths.txt`, next to `<folder>`.
pub fn images_paths_file(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().to_string());
    dir.with_file_name(format!("{name}_images_paths.txt"))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| EvalError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| EvalError::io(dir, e))?;
        let path = entry.path();
        let ft = entry.file_type().map_err(|e| EvalError::io(&path, e))?;
        if ft.is_dir() {
            walk(&path, out)?;
        } else if path
            .extension()
            .map(|e| e.to_string_lossy().to_lowercase())
            .is_some_and(|e| e == "jpg" || e == "jpeg" || e == "png")
        {
            out.push(path);
        }
    }
    Ok(())
}

/// A VPR test set: a database folder and one query folder under a common root.
#[derive(Debug, Clone, PartialEq)]
pub struct VprDataset {
    /// The database images (`<root>/database`, or `<root>/gallery` for SVOX).
    pub database: VprFolder,
    /// The query images (`<root>/<queries>`).
    pub queries: VprFolder,
}

impl VprDataset {
    /// Opens `<root>/database` (or `<root>/gallery`) and `<root>/<queries_folder>`
    /// (e.g. `"queries"`, `"queries_night"`).
    pub fn open(root: impl AsRef<Path>, queries_folder: &str) -> Result<Self> {
        let root = root.as_ref();
        let db_dir = if root.join("database").is_dir() || !root.join("gallery").is_dir() {
            root.join("database")
        } else {
            root.join("gallery")
        };
        Ok(Self {
            database: VprFolder::read(db_dir)?,
            queries: VprFolder::read(root.join(queries_folder))?,
        })
    }

    /// The query folders present under `root` (names starting with `queries`), sorted.
    pub fn query_folders(root: impl AsRef<Path>) -> Result<Vec<String>> {
        let root = root.as_ref();
        let mut out = Vec::new();
        for entry in std::fs::read_dir(root).map_err(|e| EvalError::io(root, e))? {
            let entry = entry.map_err(|e| EvalError::io(root, e))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with("queries") && entry.path().is_dir() {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_full_cosplace_name() {
        let n = parse_vpr_name(
            "database/@0543256.96@4178906.12@10@S@37.75033@-122.50960@ZCYbGbITHyIARvPzcBCskA@@045@@@@201311_@@.jpg",
        )
        .unwrap();
        assert_eq!(n.east, 543256.96);
        assert_eq!(n.north, 4178906.12);
        assert_eq!(n.zone, Some(10));
        assert_eq!(n.zone_letter.as_deref(), Some("S"));
        assert_eq!(n.lon, Some(-122.5096));
        assert_eq!(n.pano_id.as_deref(), Some("ZCYbGbITHyIARvPzcBCskA"));
        assert_eq!(n.tile, None);
        assert_eq!(n.heading, Some(45.0));
        assert_eq!(n.fields.len(), 14);
    }

    #[test]
    fn minimal_name_has_only_utm() {
        let n = parse_vpr_name("@10.5@20@.png").unwrap();
        assert_eq!(
            (n.east, n.north, n.zone, n.heading),
            (10.5, 20.0, None, None)
        );
    }

    #[test]
    fn malformed_names_are_typed_errors() {
        for bad in [
            "image.jpg",
            "@12@.jpg",
            "@abc@20@.jpg",
            "@1@@.jpg",
            "@1@2@x@.jpg",
            "@inf@2@.jpg",
        ] {
            let err = parse_vpr_name(bad).unwrap_err();
            assert!(
                matches!(err, EvalError::BadImageName { .. }),
                "{bad}: {err}"
            );
        }
    }
}
