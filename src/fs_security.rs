//! The rules that keep secrets private: who may run the tool, and who may read
//! or change the files that hold secrets.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::{Error, Result};

/// Refuses to run as root unless the operator said so.
pub fn check_not_root(allow_root: bool) -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 && !allow_root {
        return Err(Error::Refused(
            "refusing to run as root: the tool reaches every hypervisor with your key and holds your service \
             credentials, so run it as your own user (or pass --allow-root if you really mean it)"
                .into(),
        ));
    }
    Ok(())
}

/// A file holding secrets must be the user's own, readable by no one else,
/// and no one else may be able to replace it: not through its folder nor
/// any folder above, for the path as given (a symbolic link can be swapped)
/// and for the file it resolves to.
pub fn check_secret_file(path: &Path) -> Result<()> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        // A missing file is reported by whoever reads it, with the file name.
        Err(_) => return Ok(()),
    };
    check_owner_and_mode(path, &meta, "secrets")?;
    let resolved = std::fs::canonicalize(path).map_err(|err| Error::io(path, err))?;
    let given = std::path::absolute(path).map_err(|err| Error::io(path, err))?;
    for file in [&given, &resolved] {
        for dir in file.ancestors().skip(1) {
            check_folder_above(path, dir)?;
        }
    }
    Ok(())
}

/// A folder above a secret file: owned by the user or root, and writable by
/// no one else unless sticky (as `/tmp` is: others cannot rename our entries).
fn check_folder_above(file: &Path, dir: &Path) -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let meta = std::fs::metadata(dir).map_err(|err| Error::io(dir, err))?;
    let (shown, folder) = (file.display(), dir.display());
    if meta.uid() != euid && meta.uid() != 0 {
        return Err(Error::Refused(format!(
            "{folder}: a folder above {shown} is owned by uid {}, who could replace the file; keep the file in \
             folders of your own",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o7777;
    let sticky = mode & 0o1000 != 0;
    if mode & 0o022 != 0 && !sticky {
        return Err(Error::Refused(format!(
            "{folder}: a folder above {shown} is writable by group or others (mode {:04o}), so anyone could \
             replace the file; run: chmod go-w '{folder}'",
            mode & 0o777
        )));
    }
    Ok(())
}

/// A file that only its owner may read: the running user's, mode 0600 (or
/// the stricter 0400). `holds` says what is in it, for the message.
pub fn check_private_file(path: &Path, holds: &str) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|err| Error::io(path, err))?;
    check_owner_and_mode(path, &meta, holds)
}

fn check_owner_and_mode(path: &Path, meta: &std::fs::Metadata, holds: &str) -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let shown = path.display();
    if meta.uid() != euid {
        return Err(Error::Refused(format!(
            "{shown}: owned by uid {}, not by you (uid {euid}); run: chown {euid} '{shown}'",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o777;
    if mode != 0o600 && mode != 0o400 {
        return Err(Error::Refused(format!(
            "{shown}: holds {holds} but has mode {mode:04o}; it must be 0600 (or 0400); run: chmod 600 '{shown}'"
        )));
    }
    Ok(())
}

/// Writes a file readable only by the user (mode 0600), replacing any old
/// one: written under an unpredictable name in the same folder, then moved
/// into place, so a symbolic link planted at `path` is replaced, never
/// followed, and a reader never sees half a file.
pub fn write_private_file(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let write = || -> std::io::Result<()> {
        // tempfile creates with O_EXCL and mode 0600.
        let mut temp = tempfile::Builder::new().prefix(".hvmigrate-").suffix(".tmp").tempfile_in(dir)?;
        temp.write_all(contents)?;
        temp.as_file().sync_all()?;
        temp.persist(path).map_err(|err| err.error)?;
        Ok(())
    };
    write().map_err(|err| Error::io(path, err))
}

/// Creates a private folder (0700, with any missing parents), or checks an
/// existing one: the user's, and no one else may write to it.
pub fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|err| Error::io(dir, err))?;
    }
    let meta = std::fs::metadata(dir).map_err(|err| Error::io(dir, err))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let shown = dir.display();
    if meta.uid() != euid {
        return Err(Error::Refused(format!("{shown}: owned by uid {}, not by you (uid {euid})", meta.uid())));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(Error::Refused(format!(
            "{shown}: writable by group or others (mode {:04o}), so anyone could plant files there; run: chmod 700 \
             '{shown}'",
            meta.mode() & 0o777
        )));
    }
    Ok(())
}

/// Opens a private file (0600) to append to, creating it if missing; never
/// through a symbolic link, and an existing file must be the user's own.
pub fn open_private_append(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|err| Error::io(path, err))?;
    let meta = file.metadata().map_err(|err| Error::io(path, err))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if !meta.is_file() || meta.uid() != euid {
        return Err(Error::Refused(format!("{}: not a file of your own; refusing to write to it", path.display())));
    }
    if meta.mode() & 0o077 != 0 {
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|err| Error::io(path, err))?;
    }
    Ok(file)
}

/// Refuses a path that is a symbolic link: a file we write must be where it is named.
pub fn refuse_symlink(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(Error::Refused(format!(
            "{}: is a symbolic link; refusing to write through it (give the real path)",
            path.display()
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn modes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let file = dir.path().join("c.yaml");
        write_private_file(&file, b"x").unwrap();
        check_secret_file(&file).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400)).unwrap();
        check_secret_file(&file).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = check_secret_file(&file).unwrap_err().to_string();
        assert!(err.contains("mode 0644") && err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o770)).unwrap();
        let err = check_secret_file(&file).unwrap_err().to_string();
        assert!(err.contains("chmod go-w"), "{err}");
    }
}
