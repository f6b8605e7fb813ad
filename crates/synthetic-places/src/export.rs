//! Atomic export of the world into the real datasets' folder layouts and file names.
//!
//! ```text
//! OUT/manifest.json
//! OUT/vpr/images/test/{database,queries,queries_night}/@east@north@54@S@lat@lon@pano@tile@heading@pitch@@@timestamp@note@.jpg
//! OUT/tokyo/images/test/{database,queries}/…        sorted queries: index % 3 = day, sunset, night
//! OUT/gan/{trainA,trainB}/… + trainA.txt, trainB.txt  unpaired day / night, disjoint places
//! OUT/cirtorch/train/synthetic-places/synthetic-places.pkl + ims/<cid[-2:]>/<cid[-4:-2]>/<cid[-6:-4]>/<cid>
//! OUT/cosplace/{train, val/database, val/queries, val/queries_night}/…
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use crate::config::ImageFormat;
use crate::detmath::{hash3, seed_of};
use crate::error::{Result, SynthError};
use crate::render::render_viewpoint;
use crate::utm::{ImageName, utm_to_latlon};
use crate::view::{Condition, Role, Viewpoint};
use crate::world::{Split, UTM_LETTER, UTM_ZONE, World};

/// Where and how to export.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExportOptions {
    /// The output folder. It must not exist, or be empty, unless `overwrite` is set.
    pub out_dir: PathBuf,
    /// Replace an existing non-empty output folder (atomically, after the new one is complete).
    pub overwrite: bool,
    /// Show an indicatif progress bar on stderr.
    pub progress: bool,
}

impl ExportOptions {
    /// Options for `out_dir`, no overwrite, no progress bar.
    pub fn new(out_dir: impl Into<PathBuf>) -> Self {
        Self {
            out_dir: out_dir.into(),
            overwrite: false,
            progress: false,
        }
    }
}

/// What an export wrote, and how fast.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ExportSummary {
    /// The output folder.
    pub out_dir: PathBuf,
    /// Distinct renders (an image shared by two datasets is rendered once).
    pub renders: usize,
    /// Image files written.
    pub files: usize,
    /// Files per folder (relative path → count), sorted.
    pub counts: BTreeMap<String, usize>,
    /// Wall-clock seconds of the whole export.
    pub seconds: f64,
    /// Renders per second (rendering + encoding + writing).
    pub renders_per_second: f64,
}

/// One image to render: a viewpoint under a condition, and where it goes.
#[derive(Debug, Clone)]
struct Job {
    vp: Viewpoint,
    cond: Condition,
    outputs: Vec<PathBuf>,
}

type JobKey = (usize, u8, usize, u8);

fn role_tag(role: Role) -> (&'static str, u8) {
    match role {
        Role::Database => ("db", 0),
        Role::Query => ("q", 1),
        Role::NightQuery => ("qn", 2),
        Role::Tokyo => ("tk", 3),
        Role::Tuple => ("tp", 4),
        Role::CosPlace => ("cp", 5),
        Role::Gan => ("gan", 6),
        Role::Sheet => ("sh", 7),
    }
}

fn cond_tag(cond: Condition) -> u8 {
    cond.code() as u8
}

/// The UTM file name of a capture.
fn image_name(
    world: &World,
    vp: &Viewpoint,
    cond: Condition,
    tile: u32,
    pano_id: String,
) -> ImageName {
    let (lat, lon) = utm_to_latlon(vp.east, vp.north, UTM_ZONE, true);
    let h = hash3(
        vp.place as i32,
        (vp.index * 16 + role_tag(vp.role).1 as usize) as i32,
        world.cfg.seed as u32 ^ cond.code() as u32,
    );
    let (hour, minute) = match cond {
        Condition::Day => (9 + h % 8, (h >> 8) % 60),
        Condition::Sunset => (18, (h >> 8) % 40),
        Condition::Night => (21 + h % 3, (h >> 8) % 60),
    };
    let month = 1 + (h >> 16) % 12;
    let day = 1 + (h >> 20) % 28;
    ImageName {
        east: vp.east,
        north: vp.north,
        zone: UTM_ZONE,
        letter: UTM_LETTER,
        lat,
        lon,
        pano_id,
        tile: Some(tile),
        heading: Some(vp.heading_deg),
        pitch: Some(vp.pitch_deg as f64),
        timestamp: format!(
            "2024{month:02}{day:02}_{hour:02}{minute:02}{:02}",
            (h >> 24) % 60
        ),
        note: cond.name().to_string(),
    }
}

/// A cirtorch-style image id: 32 hex digits derived from the capture.
fn cid_of(world: &World, vp: &Viewpoint) -> String {
    let a = seed_of(&[world.cfg.seed, 9, vp.place as u64, vp.index as u64]);
    let b = seed_of(&[a, 10]);
    format!("{a:016x}{b:016x}")
}

#[derive(serde::Serialize)]
struct CirSplit {
    cids: Vec<String>,
    cluster: Vec<i64>,
    qidxs: Vec<i64>,
    pidxs: Vec<i64>,
}

#[derive(serde::Serialize)]
struct CirDb {
    train: CirSplit,
    val: CirSplit,
}

#[derive(serde::Serialize)]
struct Manifest<'a> {
    generator: &'static str,
    version: &'static str,
    config: &'a crate::config::WorldConfig,
    counts: &'a BTreeMap<String, usize>,
    places: Vec<ManifestPlace>,
}

#[derive(serde::Serialize)]
struct ManifestPlace {
    id: usize,
    split: Split,
    street: usize,
    east: f64,
    north: f64,
    role: &'static str,
}

/// Collects jobs; identical captures share one render.
struct Plan<'w> {
    world: &'w World,
    ext: &'static str,
    jobs: BTreeMap<JobKey, Job>,
    files: BTreeMap<String, usize>,
    pickles: Vec<(PathBuf, Vec<u8>)>,
    texts: Vec<(PathBuf, String)>,
}

impl<'w> Plan<'w> {
    fn add(
        &mut self,
        place: usize,
        role: Role,
        index: usize,
        cond: Condition,
        folder: &str,
        name: Option<String>,
    ) -> Result<String> {
        let vp = self.world.viewpoint(place, role, index)?;
        let (tag, code) = role_tag(role);
        let name = match name {
            Some(n) => n,
            None => image_name(
                self.world,
                &vp,
                cond,
                index as u32,
                format!("p{place:05}{tag}{index:03}"),
            )
            .file_name(self.ext),
        };
        let key = (place, code, index, cond_tag(cond));
        let job = self.jobs.entry(key).or_insert_with(|| Job {
            vp: vp.clone(),
            cond,
            outputs: Vec::new(),
        });
        job.outputs.push(Path::new(folder).join(&name));
        *self.files.entry(folder.to_string()).or_default() += 1;
        Ok(name)
    }
}

/// The viewpoints of the day images of training places (CosPlace, cirtorch, GAN day): one set of
/// renders serves all three training sets.
const TRAIN_VIEW: Role = Role::CosPlace;

/// Splits the training places into (train, val) for the tuple and CosPlace sets: every fifth
/// place (at least one) is a validation place.
fn train_val(world: &World) -> (Vec<usize>, Vec<usize>) {
    let all: Vec<usize> = world.train_places().collect();
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (k, &p) in all.iter().enumerate() {
        if k % 5 == 4 || (k == all.len() - 1 && val.is_empty()) {
            val.push(p);
        } else {
            train.push(p);
        }
    }
    (train, val)
}

fn plan(world: &World) -> Result<Plan<'_>> {
    let cfg = &world.cfg;
    let mut plan = Plan {
        world,
        ext: cfg.format.extension(),
        jobs: BTreeMap::new(),
        files: BTreeMap::new(),
        pickles: Vec::new(),
        texts: Vec::new(),
    };
    let ds = cfg.datasets;
    let test: Vec<usize> = world.test_places().collect();
    if ds.vpr || ds.tokyo {
        for &p in &test {
            for v in 0..cfg.db_views {
                if ds.vpr {
                    plan.add(
                        p,
                        Role::Database,
                        v,
                        Condition::Day,
                        "vpr/images/test/database",
                        None,
                    )?;
                }
                if ds.tokyo {
                    plan.add(
                        p,
                        Role::Database,
                        v,
                        Condition::Day,
                        "tokyo/images/test/database",
                        None,
                    )?;
                }
            }
        }
    }
    if ds.vpr {
        for &p in &test {
            for v in 0..cfg.query_views {
                plan.add(
                    p,
                    Role::Query,
                    v,
                    Condition::Day,
                    "vpr/images/test/queries",
                    None,
                )?;
            }
            for v in 0..cfg.night_query_views {
                plan.add(
                    p,
                    Role::NightQuery,
                    v,
                    Condition::Night,
                    "vpr/images/test/queries_night",
                    None,
                )?;
            }
        }
    }
    if ds.tokyo {
        // One station per place seen at day / sunset / night; identical name prefix and
        // tile = 0, 1, 2, so that sorted file names give query_index % 3 = day, sunset, night.
        for &p in &test {
            for (tile, cond) in [Condition::Day, Condition::Sunset, Condition::Night]
                .into_iter()
                .enumerate()
            {
                let vp = world.viewpoint(p, Role::Tokyo, 0)?;
                let name = image_name(world, &vp, cond, tile as u32, format!("p{p:05}tk"))
                    .file_name(plan.ext);
                plan.add(
                    p,
                    Role::Tokyo,
                    0,
                    cond,
                    "tokyo/images/test/queries",
                    Some(name),
                )?;
            }
        }
    }
    let (train, val) = train_val(world);
    // Day images of training places are the places' training views (`TRAIN_VIEW`, kept inside
    // the CosPlace class cell): the CosPlace training folder, the cirtorch tuples and the GAN
    // day folder draw from the same renders. Night GAN images have their own viewpoints.
    if ds.gan {
        let all: Vec<usize> = world.train_places().collect();
        let day: Vec<usize> = all.iter().copied().step_by(2).collect();
        let night: Vec<usize> = all.iter().copied().skip(1).step_by(2).collect();
        for (places, cond, role, folder) in [
            (&day, Condition::Day, TRAIN_VIEW, "trainA"),
            (&night, Condition::Night, Role::Gan, "trainB"),
        ] {
            let mut list = String::new();
            for i in 0..cfg.gan_images {
                let p = places[i % places.len()];
                let name = plan.add(
                    p,
                    role,
                    i / places.len(),
                    cond,
                    &format!("gan/{folder}"),
                    None,
                )?;
                list.push_str(&format!("{folder}/{name}\n"));
            }
            plan.texts
                .push((PathBuf::from(format!("gan/{folder}.txt")), list));
        }
    }
    if ds.cirtorch {
        let root = "cirtorch/train/synthetic-places";
        let make_split = |places: &[usize], plan: &mut Plan| -> Result<CirSplit> {
            let mut split = CirSplit {
                cids: Vec::new(),
                cluster: Vec::new(),
                qidxs: Vec::new(),
                pidxs: Vec::new(),
            };
            for (cluster, &p) in places.iter().enumerate() {
                let first = split.cids.len();
                for v in 0..cfg.tuple_views {
                    let vp = world.viewpoint(p, TRAIN_VIEW, v)?;
                    let cid = cid_of(world, &vp);
                    let folder = format!(
                        "{root}/ims/{}/{}/{}",
                        &cid[30..32],
                        &cid[28..30],
                        &cid[26..28]
                    );
                    plan.add(p, TRAIN_VIEW, v, Condition::Day, &folder, Some(cid.clone()))?;
                    split.cids.push(cid);
                    split.cluster.push(cluster as i64);
                }
                // each view is the query once, its positive the next view of the same place
                for v in 0..cfg.tuple_views {
                    split.qidxs.push((first + v) as i64);
                    split.pidxs.push((first + (v + 1) % cfg.tuple_views) as i64);
                }
            }
            Ok(split)
        };
        let db = CirDb {
            train: make_split(&train, &mut plan)?,
            val: make_split(&val, &mut plan)?,
        };
        let path = PathBuf::from(format!("{root}/synthetic-places.pkl"));
        let bytes =
            serde_pickle::to_vec(&db, serde_pickle::SerOptions::new()).map_err(|source| {
                SynthError::Pickle {
                    path: path.clone(),
                    source,
                }
            })?;
        plan.pickles.push((path, bytes));
    }
    if ds.cosplace {
        for &p in &train {
            for v in 0..cfg.cosplace_views {
                plan.add(p, TRAIN_VIEW, v, Condition::Day, "cosplace/train", None)?;
            }
        }
        for &p in &val {
            for v in 0..cfg.db_views {
                plan.add(
                    p,
                    Role::Database,
                    v,
                    Condition::Day,
                    "cosplace/val/database",
                    None,
                )?;
            }
            for v in 0..cfg.query_views {
                plan.add(
                    p,
                    Role::Query,
                    v,
                    Condition::Day,
                    "cosplace/val/queries",
                    None,
                )?;
            }
            for v in 0..cfg.night_query_views {
                plan.add(
                    p,
                    Role::NightQuery,
                    v,
                    Condition::Night,
                    "cosplace/val/queries_night",
                    None,
                )?;
            }
        }
    }
    // collapse the many cirtorch `ims/..` folders into one count
    let mut files = BTreeMap::new();
    for (k, n) in std::mem::take(&mut plan.files) {
        let key = if let Some(i) = k.find("/ims/") {
            format!("{}/ims", &k[..i])
        } else {
            k
        };
        *files.entry(key).or_default() += n;
    }
    plan.files = files;
    Ok(plan)
}

fn encode(img: &image::RgbImage, format: ImageFormat, quality: u8, path: &Path) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    let res = match format {
        ImageFormat::Jpeg => {
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, quality).encode_image(img)
        }
        ImageFormat::Png => img.write_with_encoder(image::codecs::png::PngEncoder::new(&mut buf)),
    };
    res.map_err(|source| SynthError::Image {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(buf)
}

/// Renders and writes every selected dataset of `world` into `opts.out_dir`, atomically.
///
/// The export is written into a hidden sibling folder (`.NAME.partial-PID-N`) and renamed into
/// place only when complete; on any error the partial folder is removed and the previous
/// content of `out_dir` (if any) is untouched. An existing non-empty `out_dir` is refused with
/// [`SynthError::OutputNotEmpty`] unless `opts.overwrite` is set; a folder that cannot be created
/// gives [`SynthError::OutputNotWritable`]. Same world config ⇒ byte-identical files.
pub fn export(world: &World, opts: &ExportOptions) -> Result<ExportSummary> {
    export_inner(world, opts, None)
}

static PARTIAL_COUNTER: AtomicUsize = AtomicUsize::new(0);

fn export_inner(
    world: &World,
    opts: &ExportOptions,
    fail_after: Option<usize>,
) -> Result<ExportSummary> {
    let start = std::time::Instant::now();
    world.cfg.validate()?;
    let out = &opts.out_dir;
    let mut existing = false;
    match std::fs::metadata(out) {
        Ok(m) if !m.is_dir() => return Err(SynthError::OutputNotADirectory { path: out.clone() }),
        Ok(_) => {
            existing = true;
            let entries = std::fs::read_dir(out)
                .map_err(|e| SynthError::io(out, e))?
                .count();
            if entries > 0 && !opts.overwrite {
                return Err(SynthError::OutputNotEmpty {
                    path: out.clone(),
                    entries,
                });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        // e.g. a file where a parent folder should be, or no permission to look
        Err(source) => {
            return Err(SynthError::OutputNotWritable {
                path: out.clone(),
                source,
            });
        }
    }
    let plan = plan(world)?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|source| SynthError::OutputNotWritable {
        path: parent.clone(),
        source,
    })?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".into());
    let tag = format!(
        "{}-{}",
        std::process::id(),
        PARTIAL_COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let tmp = parent.join(format!(".{name}.partial-{tag}"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| SynthError::io(&tmp, e))?;
    }
    std::fs::create_dir(&tmp).map_err(|source| SynthError::OutputNotWritable {
        path: tmp.clone(),
        source,
    })?;
    let written = write_all(world, &plan, &tmp, opts.progress, fail_after);
    let files = match written {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    // swap into place
    let old = parent.join(format!(".{name}.old-{tag}"));
    if existing && let Err(e) = std::fs::rename(out, &old) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(SynthError::io(out, e));
    }
    if let Err(e) = std::fs::rename(&tmp, out) {
        if existing {
            let _ = std::fs::rename(&old, out);
        }
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(SynthError::io(out, e));
    }
    if existing {
        std::fs::remove_dir_all(&old).map_err(|e| SynthError::io(&old, e))?;
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(ExportSummary {
        out_dir: out.clone(),
        renders: plan.jobs.len(),
        files,
        counts: plan.files.clone(),
        seconds,
        renders_per_second: plan.jobs.len() as f64 / seconds.max(1e-9),
    })
}

fn write_all(
    world: &World,
    plan: &Plan,
    root: &Path,
    progress: bool,
    fail_after: Option<usize>,
) -> Result<usize> {
    let cfg = &world.cfg;
    let dirs: BTreeSet<PathBuf> = plan
        .jobs
        .values()
        .flat_map(|j| {
            j.outputs
                .iter()
                .filter_map(|o| o.parent().map(Path::to_path_buf))
        })
        .chain(
            plan.pickles
                .iter()
                .filter_map(|(p, _)| p.parent().map(Path::to_path_buf)),
        )
        .chain(
            plan.texts
                .iter()
                .filter_map(|(p, _)| p.parent().map(Path::to_path_buf)),
        )
        .collect();
    for d in &dirs {
        let full = root.join(d);
        std::fs::create_dir_all(&full).map_err(|e| SynthError::io(&full, e))?;
    }
    let pb = if progress {
        let pb = ProgressBar::new(plan.jobs.len() as u64);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} images ({per_sec}, eta {eta})",
        ) {
            pb.set_style(style.progress_chars("=> "));
        }
        pb.set_message("rendering");
        pb
    } else {
        ProgressBar::hidden()
    };
    let done = AtomicUsize::new(0);
    let jobs: Vec<&Job> = plan.jobs.values().collect();
    let files = AtomicUsize::new(0);
    jobs.par_iter().try_for_each(|job| -> Result<()> {
        if let Some(n) = fail_after
            && done.fetch_add(1, Ordering::SeqCst) >= n
        {
            return Err(SynthError::io(
                root,
                std::io::Error::other("injected failure"),
            ));
        }
        let img = render_viewpoint(world, &job.vp, job.cond);
        let first = root.join(&job.outputs[0]);
        let bytes = encode(&img, cfg.format, cfg.jpeg_quality, &first)?;
        for o in &job.outputs {
            let path = root.join(o);
            std::fs::write(&path, &bytes).map_err(|e| SynthError::io(&path, e))?;
            files.fetch_add(1, Ordering::Relaxed);
        }
        pb.inc(1);
        Ok(())
    })?;
    pb.finish_and_clear();
    for (rel, bytes) in &plan.pickles {
        let path = root.join(rel);
        std::fs::write(&path, bytes).map_err(|e| SynthError::io(&path, e))?;
    }
    for (rel, text) in &plan.texts {
        let path = root.join(rel);
        std::fs::write(&path, text).map_err(|e| SynthError::io(&path, e))?;
    }
    let (train, val) = train_val(world);
    let manifest = Manifest {
        generator: "synthetic-places",
        version: env!("CARGO_PKG_VERSION"),
        config: cfg,
        counts: &plan.files,
        places: world
            .places
            .iter()
            .map(|p| ManifestPlace {
                id: p.id,
                split: p.split,
                street: p.street,
                east: p.east,
                north: p.north,
                role: match p.split {
                    Split::Test => "test",
                    Split::Train if val.contains(&p.id) => "val",
                    Split::Train if train.contains(&p.id) => "train",
                    Split::Train => "train",
                },
            })
            .collect(),
    };
    let path = root.join("manifest.json");
    let text = serde_json::to_string_pretty(&manifest).map_err(|source| SynthError::Json {
        path: path.clone(),
        source,
    })?;
    std::fs::write(&path, text + "\n").map_err(|e| SynthError::io(&path, e))?;
    Ok(files.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DatasetSelection, WorldConfig};

    fn small() -> WorldConfig {
        WorldConfig {
            width: 48,
            height: 36,
            places: 2,
            train_places: 2,
            places_per_street: 2,
            db_views: 1,
            tuple_views: 2,
            cosplace_views: 1,
            gan_images: 1,
            datasets: DatasetSelection {
                cosplace: false,
                ..DatasetSelection::default()
            },
            ..WorldConfig::tiny()
        }
    }

    fn siblings(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// Issue 11's minimum sizes of the default world: test places (and day / sunset / night
    /// queries of each set), unpaired GAN images per domain, images of each training set.
    const MIN_TEST_PLACES: usize = 200;
    const MIN_GAN_IMAGES: usize = 500;
    const MIN_TRAIN_IMAGES: usize = 1_000;
    /// The default world must render in ≤ 2 minutes on two cores: at the ≈ 34 renders/s measured
    /// with the crate's `export_world` example (two idle cores, 3,475 renders in 102 s), 120 s
    /// hold ≈ 4,000 renders; this bound keeps some room for a slower machine.
    const MAX_DEFAULT_RENDERS: usize = 3_600;

    /// Counts the default world's planned files and renders (nothing is rendered): issue 11's
    /// minimums, the render budget, and exactly one test place within 25 m of every query.
    #[test]
    fn default_world_plan_meets_the_minimum_sizes() {
        let cfg = WorldConfig::default();
        let world = World::new(&cfg).unwrap();
        let plan = plan(&world).unwrap();
        let n = |folder: &str| plan.files.get(folder).copied().unwrap_or(0);
        assert!(cfg.places >= MIN_TEST_PLACES);
        for folder in [
            "vpr/images/test/database",
            "vpr/images/test/queries",
            "vpr/images/test/queries_night",
            "tokyo/images/test/database",
        ] {
            assert!(n(folder) >= MIN_TEST_PLACES, "{folder}: {}", n(folder));
        }
        // Tokyo-style queries per condition
        let mut tokyo = [0usize; 3];
        for job in plan.jobs.values() {
            for o in &job.outputs {
                if o.starts_with("tokyo/images/test/queries") {
                    tokyo[job.cond.code() as usize] += 1;
                }
            }
        }
        assert!(
            tokyo.iter().all(|&k| k >= MIN_TEST_PLACES),
            "day / sunset / night {tokyo:?}"
        );
        assert!(n("gan/trainA") >= MIN_GAN_IMAGES && n("gan/trainB") >= MIN_GAN_IMAGES);
        assert!(
            n("cosplace/train") >= MIN_TRAIN_IMAGES,
            "{}",
            n("cosplace/train")
        );
        // the cirtorch training split alone (the pickle's 'train' cids)
        let (_, bytes) = &plan.pickles[0];
        let v: serde_pickle::Value = serde_pickle::from_slice(bytes, Default::default()).unwrap();
        let key = |s: &str| serde_pickle::HashableValue::String(s.into());
        let serde_pickle::Value::Dict(top) = v else {
            panic!("pickle top level is not a dict")
        };
        let serde_pickle::Value::Dict(train) = &top[&key("train")] else {
            panic!("no train split")
        };
        let serde_pickle::Value::List(cids) = &train[&key("cids")] else {
            panic!("no train cids")
        };
        assert!(
            cids.len() >= MIN_TRAIN_IMAGES,
            "{} cirtorch train images",
            cids.len()
        );
        assert_eq!(
            n("cirtorch/train/synthetic-places/ims"),
            cfg.train_places * cfg.tuple_views
        );
        assert!(
            plan.jobs.len() <= MAX_DEFAULT_RENDERS,
            "{} renders",
            plan.jobs.len()
        );
        // every VPR / Tokyo query has exactly its own place within 25 m of it among all
        // database views (test and CosPlace val): place spacing and view jitter keep it unique
        let db: Vec<&Viewpoint> = plan
            .jobs
            .values()
            .filter(|j| j.vp.role == Role::Database)
            .map(|j| &j.vp)
            .collect();
        let mut queries = 0;
        for q in plan.jobs.values().map(|j| &j.vp).filter(|vp| {
            vp.place < cfg.places && matches!(vp.role, Role::Query | Role::NightQuery | Role::Tokyo)
        }) {
            let near: BTreeSet<usize> = db
                .iter()
                .filter(|d| (d.east - q.east).hypot(d.north - q.north) <= 25.0)
                .map(|d| d.place)
                .collect();
            assert_eq!(near, BTreeSet::from([q.place]), "{q:?}");
            queries += 1;
        }
        assert_eq!(
            queries,
            cfg.places * (cfg.query_views + cfg.night_query_views + 3) // Tokyo: one per condition
        );
    }

    #[test]
    fn failure_midway_leaves_nothing_and_keeps_the_old_folder() {
        let world = World::new(&small()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        // fresh folder: the failure leaves no trace
        let err = export_inner(&world, &ExportOptions::new(&out), Some(3)).unwrap_err();
        assert!(err.to_string().contains("injected failure"), "{err}");
        assert!(
            siblings(dir.path()).is_empty(),
            "{:?}",
            siblings(dir.path())
        );
        // existing content survives a failed overwrite
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("keep.txt"), "old").unwrap();
        let opts = ExportOptions {
            overwrite: true,
            ..ExportOptions::new(&out)
        };
        export_inner(&world, &opts, Some(2)).unwrap_err();
        assert_eq!(siblings(dir.path()), vec!["out".to_string()]);
        assert_eq!(
            std::fs::read_to_string(out.join("keep.txt")).unwrap(),
            "old"
        );
        // and a successful overwrite replaces it
        let summary = export(&world, &opts).unwrap();
        assert!(!out.join("keep.txt").exists());
        assert!(summary.files > 0);
        assert_eq!(siblings(dir.path()), vec!["out".to_string()]);
    }
}
