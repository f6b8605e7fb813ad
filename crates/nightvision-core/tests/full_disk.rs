//! A full disk during a checkpoint: the save fails with an I/O error naming the file, nothing
//! half-written is left behind, and the previous checkpoint stays the newest, intact and
//! resumable.
//!
//! The full disk is a file-size limit set in a child process
//! (`nightvision_core::testing::full_disk`): the test runs itself again with the limit.
#![cfg(unix)]

use std::path::Path;

use nightvision_core::CoreError;
use nightvision_core::checkpoint::{CheckpointDir, save_json};
// The helper is `nightvision_core::testing::full_disk` (feature `testing`, which this crate's own
// tests do not enable); included here from its source.
#[path = "../src/testing/full_disk.rs"]
#[allow(dead_code)]
mod full_disk;
use full_disk::{full_disk_child, run_with_file_size_limit};

/// The largest file the child may write.
const LIMIT: u64 = 64 * 1024;

#[test]
fn a_checkpoint_on_a_full_disk_fails_and_the_previous_one_survives() {
    if let Some(dir) = full_disk_child() {
        // The child: files are limited to LIMIT bytes.
        let ckpt = CheckpointDir::new(Path::new(&dir)).unwrap();
        let big = vec![7u8; 4 * LIMIT as usize];
        let err = ckpt
            .save(2, &[("weights.bin", big)], &2u32)
            .expect_err("a part larger than the disk must fail");
        match &err {
            CoreError::Io { path, source } => {
                assert!(
                    path.to_string_lossy().contains("weights.bin"),
                    "{}",
                    path.display()
                );
                assert_eq!(source.raw_os_error(), Some(libc::EFBIG), "{source}");
            }
            other => panic!("expected an I/O error naming the file, got {other}"),
        }
        assert!(err.to_string().contains("weights.bin"), "{err}");
        // A report written the same way fails the same way and leaves the old one.
        let report = Path::new(&dir).join("report.json");
        let big_report = vec!["x".repeat(1024); 2 * LIMIT as usize / 1024];
        assert!(matches!(
            save_json(&report, &big_report),
            Err(CoreError::Io { .. })
        ));
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    let ckpt = CheckpointDir::new(dir.path()).unwrap();
    ckpt.save(1, &[("weights.bin", vec![1u8; 1024])], &1u32)
        .unwrap();
    save_json(dir.path().join("report.json"), &"old report").unwrap();

    run_with_file_size_limit(
        "a_checkpoint_on_a_full_disk_fails_and_the_previous_one_survives",
        dir.path(),
        LIMIT,
    );

    // The previous checkpoint is the newest, whole, and nothing half-written is left.
    let (step, state, path) = ckpt.latest::<u32>().unwrap().unwrap();
    assert_eq!((step, state), (1, 1));
    assert_eq!(
        std::fs::read(path.join("weights.bin")).unwrap(),
        vec![1u8; 1024]
    );
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["latest.json", "report.json", "step-000001"]);
    let report: String =
        nightvision_core::checkpoint::load_json(dir.path().join("report.json")).unwrap();
    assert_eq!(report, "old report");
    // With space again, training resumes and saves its next checkpoint.
    ckpt.save(2, &[("weights.bin", vec![2u8; 4 * LIMIT as usize])], &2u32)
        .unwrap();
    assert_eq!(ckpt.latest::<u32>().unwrap().unwrap().0, 2);
}
