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

/// A file holding secrets must be the user's own, readable by no one else, in
/// a folder no one else can write to.
pub fn check_secret_file(path: &Path) -> Result<()> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        // A missing file is reported by whoever reads it, with the file name.
        Err(_) => return Ok(()),
    };
    check_owner_and_mode(path, &meta, "secrets")?;
    let shown = path.display();
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let dir_meta = std::fs::metadata(dir).map_err(|err| Error::io(dir, err))?;
    let dir_mode = dir_meta.mode() & 0o777;
    if dir_mode & 0o022 != 0 {
        return Err(Error::Refused(format!(
            "{}: the folder of {shown} is writable by group or others (mode {dir_mode:04o}), so anyone could \
             replace the file; run: chmod go-w '{}'",
            dir.display(),
            dir.display()
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

/// Creates a file readable only by the user (mode 0600), replacing any old one.
pub fn write_private_file(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|err| Error::io(path, err))?;
    // The mode given to open() only applies to new files.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|err| Error::io(path, err))?;
    file.write_all(contents).map_err(|err| Error::io(path, err))
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
