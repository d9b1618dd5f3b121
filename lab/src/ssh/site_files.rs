//! The files the system OpenSSH client needs to reach the simulated hosts as
//! it would real ones: an `ssh_config` mapping each host name to its port on
//! 127.0.0.1 (with `HostKeyAlias`, so `known_hosts` names the real host), the
//! `known_hosts`, and the operator's key pair.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{kayobe_environment_path, keys, SshHosts};

/// Paths of the SSH files written for a lab.
#[derive(Clone, Debug)]
pub struct SshFiles {
    pub config: PathBuf,
    pub known_hosts: PathBuf,
    pub private_key: PathBuf,
    pub public_key: PathBuf,
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    // An existing file keeps its mode on open: make sure it is private.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(text.as_bytes())
}

/// A path as an `ssh_config` value (quoted when it has spaces).
fn config_path(path: &Path) -> String {
    let text = path.display().to_string();
    if text.contains(' ') {
        format!("\"{text}\"")
    } else {
        text
    }
}

impl SshHosts {
    /// Writes `ssh_config`, `known_hosts`, `id_ed25519` and `id_ed25519.pub` into `dir` (created, mode 0700).
    pub fn write_files(&self, dir: &Path) -> std::io::Result<SshFiles> {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let dir = std::fs::canonicalize(dir)?;
        let files = SshFiles {
            config: dir.join("ssh_config"),
            known_hosts: dir.join("known_hosts"),
            private_key: dir.join("id_ed25519"),
            public_key: dir.join("id_ed25519.pub"),
        };
        write_private(&files.private_key, &keys::private_pem(&self.client_key))?;
        std::fs::write(&files.public_key, format!("{}\n", keys::public_line(self.client_key.public_key())))?;
        let mut known_hosts = String::new();
        let mut config = String::from(
            "# The simulated site's hosts: each listens on 127.0.0.1 on its own port.\n\
             # Use it with `ssh -F <this file> HOST 'command'`.\n\n",
        );
        for (name, address) in &self.addresses {
            let host_key = keys::host_key(self.seed, name);
            let public = keys::public_line(host_key.public_key());
            let without_comment: Vec<&str> = public.split_whitespace().take(2).collect();
            known_hosts.push_str(&format!("{name} {}\n", without_comment.join(" ")));
            config.push_str(&format!(
                "Host {name}\n  HostName {}\n  Port {}\n  HostKeyAlias {name}\n\n",
                address.ip(),
                address.port()
            ));
        }
        config.push_str(&format!(
            "Host *\n  User root\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n  PasswordAuthentication no\n  KbdInteractiveAuthentication no\n  GSSAPIAuthentication no\n  LogLevel ERROR\n",
            config_path(&files.private_key),
            config_path(&files.known_hosts),
        ));
        std::fs::write(&files.known_hosts, known_hosts)?;
        std::fs::write(&files.config, config)?;
        Ok(files)
    }

    /// The `ssh`, `aquilon` and `kayobe` sections of a credentials file for these files.
    pub fn credentials_yaml(&self, files: &SshFiles, aquilon_host: &str, kayobe_host: &str) -> String {
        let settings = &self.settings;
        let quoted = |path: &Path| serde_json::Value::String(path.display().to_string()).to_string();
        let mut yaml = format!(
            "ssh:\n  username: {user}\n  key_path: {key}\n  known_hosts: {known}\n  config_file: {config}\n",
            user = settings.username,
            key = quoted(&files.private_key),
            known = quoted(&files.known_hosts),
            config = quoted(&files.config),
        );
        if let Some(password) = &settings.sudo_password {
            yaml.push_str(&format!("  sudo:\n    password: {}\n", serde_json::Value::String(password.clone())));
        }
        yaml.push_str(&format!(
            "aquilon:\n  host: {aquilon_host}\n  username: {user}\nkayobe:\n  host: {kayobe_host}\n  username: {user}\n  environment_path: {env}\n",
            user = settings.username,
            env = kayobe_environment_path(settings),
        ));
        yaml
    }
}
