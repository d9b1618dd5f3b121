//! The tool's own known-hosts file: the host keys it pinned after a
//! reinstalled host proved to be the same machine. Each host's lines follow
//! a `# hvmigrate pinned HOST` comment (OpenSSH ignores comments), so the
//! tool finds them whatever form the key lines take; pinning a host again
//! replaces its lines. A host pinned here is checked against this file only.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::config::credentials::Ssh;

const MARKER: &str = "# hvmigrate pinned ";

/// Pins are read, changed and written one at a time in this process.
static PINNING: Mutex<()> = Mutex::new(());

/// The configured file, or `hvmigrate_known_hosts` beside `known_hosts`.
pub fn pinned_file(ssh: &Ssh) -> PathBuf {
    match &ssh.pinned_known_hosts {
        Some(path) => super::pool::expand_home(path),
        None => {
            let known = super::pool::expand_home(&ssh.known_hosts);
            known.with_file_name("hvmigrate_known_hosts")
        }
    }
}

fn marker(host: &str) -> String {
    format!("{MARKER}{host}")
}

/// Whether `host` has keys pinned in `file`.
pub fn is_pinned(file: &Path, host: &str) -> bool {
    let wanted = marker(host);
    std::fs::read_to_string(file).is_ok_and(|text| text.lines().any(|line| line.trim_end() == wanted))
}

/// Pins `key_lines` (known_hosts lines) for `host` in `file`, replacing
/// what was pinned for it; the file is private (0600) and replaced whole.
/// When `file` is the operator's own known_hosts, the host's earlier
/// unmarked lines there stay (the operator's to clean).
pub fn pin(file: &Path, host: &str, key_lines: &[String]) -> std::io::Result<()> {
    let _one_at_a_time = PINNING.lock().unwrap_or_else(|poison| poison.into_inner());
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(err) => return Err(err),
    };
    let wanted = marker(host);
    let mut kept = Vec::new();
    let mut skipping = false;
    for line in text.lines() {
        if line.starts_with(MARKER) {
            skipping = line.trim_end() == wanted;
            if skipping {
                continue;
            }
        } else if skipping && (line.trim().is_empty() || line.starts_with('#')) {
            skipping = false;
        }
        if !skipping {
            kept.push(line.to_owned());
        }
    }
    kept.push(wanted);
    kept.extend(key_lines.iter().map(|line| line.trim().to_owned()).filter(|line| !line.is_empty()));
    let mut out = kept.join("\n");
    out.push('\n');
    if let Some(dir) = file.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let dir = file.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut temp, out.as_bytes())?;
    temp.as_file().sync_all()?;
    std::fs::set_permissions(temp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    temp.persist(file).map_err(|err| err.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinning_again_replaces_only_that_hosts_lines() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pinned");
        assert!(!is_pinned(&file, "hv01"));
        pin(&file, "hv01", &["hv01 ssh-ed25519 AAAA1".into()]).unwrap();
        pin(&file, "hv02", &["hv02 ssh-ed25519 AAAA2".into()]).unwrap();
        pin(&file, "hv01", &["hv01 ssh-ed25519 AAAA3".into()]).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(
            text,
            "# hvmigrate pinned hv02\nhv02 ssh-ed25519 AAAA2\n# hvmigrate pinned hv01\nhv01 ssh-ed25519 AAAA3\n"
        );
        assert!(is_pinned(&file, "hv01") && is_pinned(&file, "hv02") && !is_pinned(&file, "hv0"));
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
    }
}
