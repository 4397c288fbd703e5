//! Files that hold secrets: created 0600 and never overwritten; refused when group or others
//! can read them.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Writes `contents` to a new file with mode 0600 and syncs it. Fails with
/// `ErrorKind::AlreadyExists` rather than replace a file.
pub fn create_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Why a secret file may not be used.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    /// It cannot be inspected.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// Group or others can read it.
    #[error("readable by group or others (mode {mode:o})")]
    Exposed {
        /// Its permission bits.
        mode: u32,
    },
}

/// Checks that only the owner can read `path`.
pub fn check_private(path: &Path) -> Result<(), PrivacyError> {
    let mode = fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(PrivacyError::Exposed { mode });
    }
    Ok(())
}
