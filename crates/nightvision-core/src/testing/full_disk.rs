//! A full disk for tests: a child process with a file-size limit.
//!
//! [`run_with_file_size_limit`] runs one test of the current test binary again in a child
//! process whose files may not grow past a limit (`RLIMIT_FSIZE`, with `SIGXFSZ` ignored so that
//! a write past it fails with `EFBIG` like a full disk instead of killing the process). The child
//! finds its folder with [`full_disk_child`].

use std::path::{Path, PathBuf};
use std::process::Command;

/// The environment variable that tells a test it is the child (its value: the folder to use).
pub const FULL_DISK_CHILD: &str = "NIGHTVISION_FULL_DISK_CHILD";

/// In the child of [`run_with_file_size_limit`]: the folder it was given; `None` in the parent.
pub fn full_disk_child() -> Option<PathBuf> {
    std::env::var_os(FULL_DISK_CHILD).map(PathBuf::from)
}

/// Runs the test `name` (its full path as `cargo test` prints it) of the current test binary in
/// a child process whose files may not grow past `limit` bytes, with [`FULL_DISK_CHILD`] set to
/// `dir`, and panics with the child's output unless exactly that test ran and passed.
///
/// # Panics
/// When the child cannot be started, fails, or did not run `name`.
#[cfg(unix)]
pub fn run_with_file_size_limit(name: &str, dir: &Path, limit: u64) {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(FULL_DISK_CHILD, dir);
    // SAFETY: setrlimit and signal are async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let out = cmd.output().expect("the child test process starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the child running {name} with files limited to {limit} bytes failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether `err`'s chain of sources contains the OS error "file too large" (`EFBIG`), which is
/// what a write past the limit of [`run_with_file_size_limit`] returns.
pub fn is_file_too_large(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut e: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cur) = e {
        if let Some(io) = cur.downcast_ref::<std::io::Error>()
            && io.raw_os_error() == Some(libc::EFBIG)
        {
            return true;
        }
        e = cur.source();
    }
    false
}
