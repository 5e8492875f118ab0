//! The reduced /etc as one prebuilt folder, bound once per sandbox instead of once per entry
//! (each bind costs bubblewrap about a millisecond at every start).
//!
//! The folder holds copies of the chosen entries (relative links stay links; an entry that is
//! an absolute link is copied from its target, as a bind would follow it; links inside
//! directories stay links, and resolve inside the sandbox). It is built once per process under
//! the temporary folder, named after a hash of what it holds, so a changed host /etc gives a
//! new folder; a folder of that name not owned by us, or writable by others, is not used.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The prebuilt folder for the `entries` (paths under /etc), built on first use.
pub(crate) fn prebuilt(entries: impl FnOnce() -> Vec<PathBuf>) -> Option<PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| build(&entries(), &std::env::temp_dir()).ok())
        .clone()
}

/// Builds (or finds) the folder for `entries` under `parent`.
fn build(entries: &[PathBuf], parent: &Path) -> io::Result<PathBuf> {
    let mut hasher = DefaultHasher::new();
    for entry in entries {
        hash_tree(entry, true, &mut hasher)?;
    }
    let euid = crate::sys::geteuid();
    let dir = parent.join(format!("trajforge-etc-{euid}-{:016x}", hasher.finish()));
    if trusted(&dir, euid) {
        return Ok(dir);
    }
    let staging = parent.join(format!(
        ".trajforge-etc-{euid}-{}-{:016x}",
        std::process::id(),
        hasher.finish()
    ));
    let _ = crate::workspace::remove_tree(&staging);
    fs::create_dir(&staging)?;
    fs::set_permissions(&staging, fs::Permissions::from_mode(0o755))?;
    for entry in entries {
        let Ok(rel) = entry.strip_prefix("/etc") else {
            continue;
        };
        let to = staging.join(rel);
        if let Some(up) = to.parent() {
            fs::create_dir_all(up)?;
        }
        copy_tree(entry, &to, true)?;
    }
    match fs::rename(&staging, &dir) {
        Ok(()) => Ok(dir),
        // Another process built it first.
        Err(_) if trusted(&dir, euid) => {
            let _ = crate::workspace::remove_tree(&staging);
            Ok(dir)
        }
        Err(e) => {
            let _ = crate::workspace::remove_tree(&staging);
            Err(e)
        }
    }
}

/// A folder we made: owned by `euid`, not writable by group or others.
fn trusted(dir: &Path, euid: u32) -> bool {
    fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir() && m.uid() == euid && m.mode() & 0o022 == 0)
}

/// Whether `path` is a link that the copy keeps as a link (relative, or inside a directory).
fn kept_link(path: &Path, top: bool) -> Option<PathBuf> {
    let target = fs::read_link(path).ok()?;
    (!top || target.is_relative()).then_some(target)
}

/// Feeds what a copy of `path` would hold into `hasher`.
fn hash_tree(path: &Path, top: bool, hasher: &mut DefaultHasher) -> io::Result<()> {
    path.hash(hasher);
    if let Some(target) = kept_link(path, top) {
        target.hash(hasher);
        return Ok(());
    }
    let Ok(meta) = fs::metadata(path) else {
        // A dangling absolute link: nothing to copy, as a bind of it would fail.
        return Ok(());
    };
    if meta.is_dir() {
        let mut children: Vec<PathBuf> = fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        children.sort();
        for child in children {
            hash_tree(&child, false, hasher)?;
        }
    } else if meta.is_file() {
        meta.mode().hash(hasher);
        // Unreadable files (mode 0600 of root, read as another user) are left out.
        if let Ok(bytes) = fs::read(path) {
            bytes.hash(hasher);
        }
    }
    Ok(())
}

/// Copies `from` to `to` (see the module documentation for links).
fn copy_tree(from: &Path, to: &Path, top: bool) -> io::Result<()> {
    if let Some(target) = kept_link(from, top) {
        return std::os::unix::fs::symlink(target, to);
    }
    let Ok(meta) = fs::metadata(from) else {
        return Ok(());
    };
    if meta.is_dir() {
        fs::create_dir(to)?;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()), false)?;
        }
        fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o755))
    } else if meta.is_file() {
        match fs::read(from) {
            Ok(bytes) => {
                fs::write(to, bytes)?;
                // Who may read or run it stays as on the host; nobody may write it.
                fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o555))
            }
            Err(_) => Ok(()),
        }
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_files_links_and_folders_once() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let etc = tmp.path().join("etc");
        fs::create_dir_all(etc.join("certs")).expect("mkdir");
        fs::write(etc.join("hosts"), "127.0.0.1 localhost\n").expect("write");
        fs::write(etc.join("certs/a.pem"), "A").expect("write");
        std::os::unix::fs::symlink("/usr/share/x.pem", etc.join("certs/b.pem")).expect("link");
        std::os::unix::fs::symlink("hosts", etc.join("rel")).expect("link");
        std::os::unix::fs::symlink(etc.join("hosts"), etc.join("abs")).expect("link");
        // The copy takes paths under /etc; map the test folder's entries the same way.
        let out = tmp.path().join("out");
        fs::create_dir(&out).expect("mkdir");
        let entries = ["hosts", "certs", "rel", "abs"].map(|e| etc.join(e));
        let staged = out.join("built");
        fs::create_dir(&staged).expect("mkdir");
        for e in &entries {
            let to = staged.join(e.file_name().expect("name"));
            copy_tree(e, &to, true).expect("copy");
        }
        assert_eq!(
            fs::read_to_string(staged.join("hosts")).expect("read"),
            "127.0.0.1 localhost\n"
        );
        assert_eq!(
            fs::read_link(staged.join("rel")).expect("link"),
            Path::new("hosts")
        );
        assert!(
            !fs::symlink_metadata(staged.join("abs"))
                .expect("meta")
                .is_symlink()
        );
        assert_eq!(
            fs::read_link(staged.join("certs/b.pem")).expect("link"),
            Path::new("/usr/share/x.pem")
        );
        // The real /etc: built once, then found by its hash.
        let real = [PathBuf::from("/etc/hosts"), PathBuf::from("/etc/passwd")];
        let first = build(&real, tmp.path()).expect("build");
        let again = build(&real, tmp.path()).expect("build again");
        assert_eq!(first, again);
        assert!(first.join("passwd").is_file());
    }
}
