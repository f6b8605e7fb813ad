//! Where the real-data cache lives.

use std::path::PathBuf;

/// The real-data cache filled by `scripts/fetch-real-data.sh`:
/// `$NIGHTVISION_DATA`, or `$HOME/.cache/nightvision/real`.
///
/// Returns `Err(reason)` when the folder (or its `MANIFEST.txt`) is absent, so a test can print
/// `skipped: <reason>` and return.
///
/// ```
/// match nightvision_core::real_data_dir() {
///     Ok(dir) => assert!(dir.join("MANIFEST.txt").exists()),
///     Err(reason) => println!("skipped: {reason}"),
/// }
/// ```
pub fn real_data_dir() -> Result<PathBuf, String> {
    let dir = match std::env::var_os("NIGHTVISION_DATA") {
        Some(d) => PathBuf::from(d),
        None => match std::env::var_os("HOME") {
            Some(h) => PathBuf::from(h).join(".cache/nightvision/real"),
            None => return Err("neither NIGHTVISION_DATA nor HOME is set".into()),
        },
    };
    if dir.join("MANIFEST.txt").is_file() {
        Ok(dir)
    } else {
        Err(format!(
            "real-data cache {} is absent: run scripts/fetch-real-data.sh",
            dir.display()
        ))
    }
}

/// A file inside the real-data cache, or `Err(reason)` when the cache or the file is absent.
pub fn real_data_file(relative: &str) -> Result<PathBuf, String> {
    let path = real_data_dir()?.join(relative);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is absent from the real-data cache",
            path.display()
        ))
    }
}
