//! # vpr-eval
//!
//! The evaluation of visual place recognition and image retrieval, exactly as the reference code
//! computes it, on the file formats users already have:
//!
//! * **Readers** — the UTM-named VPR folder format ([`VprDataset`], [`parse_vpr_name`];
//!   docs/PAPERS.md protocols 2.1, docs/PAPERS.md B.7), the npz ground truth of Tokyo 24/7 / Pitts30k
//!   ([`GroundTruth::read_npz`]), cirtorch `gnd_*.pkl` pickles with numpy `bbx` arrays ([`Gnd`];
//!   docs/PAPERS.md protocols 1.7, docs/PAPERS.md A.8/A.9), descriptors and ranks as `.npy` ([`Descriptors`],
//!   [`Ranks`]).
//! * **Positives** within a radius (25 m, boundary included) through an exact grid index
//!   ([`GroundTruth::positives`]).
//! * **Exact k-NN** (inner product / L2) with index-ordered tie breaking ([`exact_knn`],
//!   [`KnnIndex`], [`rank_all`]): in blocks on any burn device with a two-stage top-k
//!   ([`DeviceDatabase`]), or on the CPU with a packed index and a fused score + top-k kernel
//!   ([`HostIndex`]).
//! * **Metrics** — Recall@N with queries without positives counted as misses (VPR-methods-evaluation,
//!   docs/PAPERS.md protocols 2.2), cirtorch trapezoid mAP / mP@k with junk on the old protocol and the revisited
//!   Easy / Medium / Hard protocols (docs/PAPERS.md protocols 1.6), Tokyo 24/7 day / sunset / night splits.
//! * **Partial divide-and-conquer** (NocPlace, docs/PAPERS.md B.6): a database encoded once by one model
//!   and cached under a key that detects staleness, queries encoded by another ([`pdc`]).
//! * **Reports** — JSON, Markdown and a PNG of Recall@N curves ([`Report`]).
//! * **Statistics** ([`stats`]) — Recall@N with 95 % bootstrap intervals over queries
//!   ([`bootstrap_recall`]), the paired bootstrap of the difference between two methods with an
//!   exact McNemar test ([`paired_bootstrap`]), both reproducible bit for bit from a documented
//!   generator ([`SplitMix64`]); the Fréchet distance between feature sets ([`frechet_distance`],
//!   [`FeatureStats`]).
//!
//! ```
//! use burn::tensor::Device;
//! use vpr_eval::{exact_knn, Descriptors, FirstHits, GroundTruth, KnnConfig, Metric};
//!
//! // three database images 10 m apart on a line, two queries
//! let gt = GroundTruth::new(
//!     vec![[0.0, 0.0], [10.0, 0.0], [40.0, 0.0]],
//!     vec![[1.0, 0.0], [100.0, 0.0]],
//!     25.0,
//! )?;
//! let positives = gt.positives(25.0)?;
//! assert_eq!(positives.lists, vec![vec![0, 1], vec![]]);
//!
//! let db = Descriptors::new(vec![1.0, 0.0, 0.0, 1.0, 0.6, 0.8], 3, 2)?;
//! let queries = Descriptors::new(vec![0.0, 1.0, 1.0, 0.0], 2, 2)?;
//! let nn = exact_knn(&db, &queries, 2, &KnnConfig::new(Metric::L2), &Device::default())?;
//! assert_eq!(nn.indices_of(0), &[1, 2]);
//!
//! let recall = FirstHits::from_neighbours(&nn, &positives)?.recall(&[1, 2], None)?;
//! // the second query has no positive within 25 m: it counts as a miss
//! assert_eq!(recall.values, vec![50.0, 50.0]);
//! # Ok::<(), vpr_eval::EvalError>(())
//! ```
#![warn(missing_docs)]
#![warn(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod descriptors;
mod error;
mod folder;
mod gnd;
mod gt;
mod host_knn;
mod knn;
mod metrics;
pub mod npy;
pub mod pdc;
pub mod pickle;
mod report;
pub mod stats;

pub use descriptors::Descriptors;
pub use error::{BoxError, EvalError, Result};
pub use folder::{VprDataset, VprFolder, VprImage, VprName, images_paths_file, parse_vpr_name};
pub use gnd::{Gnd, GndEntry, GndProtocol};
pub use gt::{DEFAULT_RADIUS, GroundTruth, Positives, PositivesSummary};
pub use host_knn::{DEFAULT_QUERY_BLOCK_BYTES, HostIndex, MR, NR};
pub use knn::{
    DeviceDatabase, KnnConfig, KnnEngine, KnnIndex, Metric, Neighbours, Ranks, exact_knn,
    exact_knn_streaming, rank_all,
};
pub use metrics::{
    Difficulty, FirstHits, MapResult, QueryGnd, Recall, RevisitedGnd, RevisitedResult, SplitRecall,
    TokyoSplit, compute_ap, compute_map, compute_map_revisited, recall_at_n, tokyo_split_recall,
};
pub use pdc::{
    CacheKey, CacheStatus, DescriptorCache, FnEncoder, ImageEncoder, PdcOptions, PdcOutput,
    partial_divide_and_conquer, partial_divide_and_conquer_routed, weights_model_id,
};
pub use report::{Comparison, MethodResult, Report};
pub use stats::{
    Bootstrap, DEFAULT_RESAMPLES, DEFAULT_SEED, FeatureStats, MapCi, McNemar, PairedComparison,
    PairedMap, RecallCi, SplitMix64, bootstrap_map, bootstrap_recall, frechet_distance,
    mcnemar_exact, paired_bootstrap, paired_map,
};
