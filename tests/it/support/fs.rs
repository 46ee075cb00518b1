//! A small tmpfs for filesystem faults (full, read-only) that `chmod` cannot produce for root.
//! Mounting needs root (CAP_SYS_ADMIN) and mount(8); where that is missing, the tests that need
//! it fail saying so.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs, unmounted (lazily, so open files do not block it) when dropped.
pub(crate) struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `16m`) at `path`, creating the directory; `None` with the
    /// reason printed when this machine does not allow it.
    pub(crate) fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).expect("mount point");
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .status();
        match status {
            Ok(status) if status.success() => Some(Tmpfs {
                path: path.to_path_buf(),
            }),
            other => {
                eprintln!(
                    "cannot mount a tmpfs at {} ({other:?}); needs root and mount(8)",
                    path.display()
                );
                None
            }
        }
    }

    /// Remounts it read-only (fails while a file on it is open for writing).
    pub(crate) fn remount(&self, read_only: bool) {
        let mode = if read_only {
            "remount,ro"
        } else {
            "remount,rw"
        };
        let status = Command::new("mount")
            .args(["-o", mode])
            .arg(&self.path)
            .status()
            .expect("mount runs");
        assert!(status.success(), "mount -o {mode} {}", self.path.display());
    }

    /// Fills it with one file until the device is full; returns that file.
    pub(crate) fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        // Fill the last partial chunk too.
        while file.write_all(&[0u8]).is_ok() {}
        let _ = file.sync_all();
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
