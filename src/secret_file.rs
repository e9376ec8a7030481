//! A secret held in a file (the Slack token, the HTTP sink's bearer token or password): a
//! small regular file, re-read only when it changes, never blocking the async runtime.
//!
//! Kubernetes mounts a Secret as a chain of symlinks (`token -> ..data/token`,
//! `..data -> ..2026_12_07_08_00_00.123`) and rotates it by swapping `..data`; the path is
//! therefore resolved on every check, and what it leads to must be a regular file of at most
//! [`MAX_SECRET_FILE_BYTES`]. Anything else (`/dev/zero`, a FIFO that would block the open
//! forever, a log file named by mistake) is refused with the file's name and what is wrong,
//! never its content.
//!
//! Each use costs one `stat`; the file is read again only when its identity, size, mtime or
//! ctime changed. The open is non-blocking, so a FIFO swapped in between the `stat` and the
//! open cannot hang a request. When a re-read fails mid-rotation, the last good value stays.

use secrecy::SecretString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Largest secret file accepted: tokens and passwords are far smaller.
pub(crate) const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Flags of the open: non-blocking, so a FIFO swapped in after the `stat` cannot hang it, and
/// no controlling terminal from a tty. (Elsewhere than Unix the `stat` before the open is the
/// guard.)
#[cfg(unix)]
const OPEN_FLAGS: i32 = libc::O_NONBLOCK | libc::O_NOCTTY;
#[cfg(not(unix))]
const OPEN_FLAGS: i32 = 0;

/// Checks a value read from the file; the reason must never quote it.
pub(crate) type Check = fn(&SecretString) -> Result<(), String>;

/// What a file looked like when last read: a change in any of these means it was rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

#[derive(Debug)]
struct State {
    value: SecretString,
    stamp: Stamp,
    /// The stamp of the last failed re-read, so that one bad version is warned about once.
    failed: Option<Stamp>,
}

/// A secret file and the last good value read from it. `Debug` shows the path only.
#[derive(Debug)]
pub struct SecretFile {
    path: PathBuf,
    check: Check,
    state: Mutex<State>,
}

impl SecretFile {
    /// Reads `path` now, so that an unusable file fails at start.
    ///
    /// # Errors
    ///
    /// What is wrong with the file (not a regular file, too large, unreadable, or refused by
    /// `check`), without the path (the caller names it with its flag) and never the content.
    pub(crate) fn open(path: &Path, check: Check) -> Result<SecretFile, String> {
        let (value, stamp) = read(path, check, None)?.ok_or("changed while being read")?;
        Ok(SecretFile {
            path: path.to_path_buf(),
            check,
            state: Mutex::new(State {
                value,
                stamp,
                failed: None,
            }),
        })
    }

    /// The value now: re-read if the file changed, else the value read last. A file that
    /// became unusable is warned about (once per version) and the last good value is kept:
    /// a rotation replaces the file in steps.
    pub(crate) fn current(&self) -> SecretString {
        // A poisoned lock means a panic between two plain assignments; the state is whole.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match read(&self.path, self.check, Some(state.stamp)) {
            Ok(None) => {}
            Ok(Some((value, stamp))) => {
                state.value = value;
                state.stamp = stamp;
                state.failed = None;
            }
            Err(reason) => {
                let now = stamp_of(&self.path).ok();
                if now.is_none() || state.failed != now {
                    tracing::warn!(path = %self.path.display(), %reason, "cannot re-read the secret file; using the last value read");
                }
                state.failed = now;
            }
        }
        state.value.clone()
    }
}

fn stamp_of(path: &Path) -> std::io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt;
    // Follows symlinks: a rotated Kubernetes Secret is a new target.
    let m = std::fs::metadata(path)?;
    Ok(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
    })
}

fn check_kind(m: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_dir() {
        return Err("is a directory, not a file".into());
    }
    if t.is_fifo() {
        return Err("is a FIFO, not a regular file".into());
    }
    if t.is_char_device() || t.is_block_device() {
        return Err("is a device, not a regular file".into());
    }
    if !t.is_file() {
        return Err("is not a regular file".into());
    }
    if m.len() > MAX_SECRET_FILE_BYTES {
        return Err(format!(
            "is {} bytes; a secret file holds at most {MAX_SECRET_FILE_BYTES} bytes (one token or password)",
            m.len()
        ));
    }
    Ok(())
}

/// Reads the file unless its stamp equals `known` (then `Ok(None)`).
fn read(
    path: &Path,
    check: Check,
    known: Option<Stamp>,
) -> Result<Option<(SecretString, Stamp)>, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    check_kind(&meta)?;
    let stamp = stamp_of(path).map_err(|e| e.to_string())?;
    if known == Some(stamp) {
        return Ok(None);
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(OPEN_FLAGS)
        .open(path)
        .map_err(|e| e.to_string())?;
    // What was opened may differ from what was checked (a rotation in between): check again.
    check_kind(&file.metadata().map_err(|e| e.to_string())?)?;
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(format!(
            "grew past {MAX_SECRET_FILE_BYTES} bytes while being read"
        ));
    }
    let text = String::from_utf8(bytes).map_err(|_| "is not UTF-8 text".to_string())?;
    let value = SecretString::from(text.trim().to_string());
    check(&value)?;
    Ok(Some((value, stamp)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn nonempty(s: &SecretString) -> Result<(), String> {
        if s.expose_secret().is_empty() {
            Err("is empty".into())
        } else {
            Ok(())
        }
    }

    #[test]
    fn devices_fifos_directories_and_large_files_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo has no other preconditions.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let large = dir.path().join("large");
        std::fs::write(&large, vec![b'a'; MAX_SECRET_FILE_BYTES as usize + 1]).unwrap();
        for (path, want) in [
            (Path::new("/dev/zero"), "device"),
            (fifo.as_path(), "FIFO"),
            (dir.path(), "directory"),
            (large.as_path(), "at most 65536 bytes"),
            (&dir.path().join("missing"), "No such file"),
        ] {
            let err = SecretFile::open(path, nonempty).unwrap_err();
            assert!(err.contains(want), "{}: {err}", path.display());
        }
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        assert_eq!(SecretFile::open(&empty, nonempty).unwrap_err(), "is empty");
    }

    /// A Kubernetes Secret volume: `token -> ..data/token`, `..data -> ..v1`, rotated by
    /// pointing `..data` at a new directory.
    #[test]
    fn a_rotated_kubernetes_secret_is_followed_and_a_broken_one_keeps_the_last_value() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("..v1")).unwrap();
        std::fs::write(root.join("..v1/token"), "first\n").unwrap();
        symlink("..v1", root.join("..data")).unwrap();
        symlink("..data/token", root.join("token")).unwrap();
        let f = SecretFile::open(&root.join("token"), nonempty).unwrap();
        assert_eq!(f.current().expose_secret(), "first");

        // Rotation the way the kubelet does it: a new directory, then an atomic rename of a
        // new `..data` link over the old one.
        std::fs::create_dir(root.join("..v2")).unwrap();
        std::fs::write(root.join("..v2/token"), "second\n").unwrap();
        symlink("..v2", root.join("..data_tmp")).unwrap();
        std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
        assert_eq!(f.current().expose_secret(), "second");

        // Mid-rotation breakage (the target gone, then a FIFO): the last good value stays,
        // and nothing blocks.
        std::fs::remove_file(root.join("..v2/token")).unwrap();
        assert_eq!(f.current().expose_secret(), "second");
        let c = std::ffi::CString::new(root.join("..v2/token").to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert_eq!(f.current().expose_secret(), "second");
        std::fs::remove_file(root.join("..v2/token")).unwrap();
        std::fs::write(root.join("..v2/token"), "third").unwrap();
        assert_eq!(f.current().expose_secret(), "third");
    }

    #[test]
    fn an_unchanged_file_is_not_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "abc").unwrap();
        let f = SecretFile::open(&p, nonempty).unwrap();
        let stamp = stamp_of(&p).unwrap();
        assert!(read(&p, nonempty, Some(stamp)).unwrap().is_none());
        // Same length, same inode, new content: the mtime tells it apart (set explicitly, as
        // a coarse filesystem clock could give the same one).
        let w = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        std::io::Write::write_all(&mut &w, b"xyz").unwrap();
        w.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
            .unwrap();
        drop(w);
        assert_eq!(f.current().expose_secret(), "xyz");
    }
}
