//! A private OpenSSH server on loopback, as `tests/ssh_real_sshd.rs` starts
//! one: its own host key, client key, known_hosts and ssh_config; killed on drop.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hvmigrate::ssh::{SshOptions, Target};

pub const SSHD: &str = "/usr/sbin/sshd";
const ALIAS: &str = "bench-sshd";

pub struct Sshd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Sshd {
    /// `None` when sshd is not installed or does not start.
    pub fn start() -> Option<Sshd> {
        if !Path::new(SSHD).exists() {
            return None;
        }
        // sshd insists on its privilege-separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let dir = tempfile::tempdir().ok()?;
        keygen(&dir.path().join("host_key"))?;
        keygen(&dir.path().join("client_key"))?;
        std::fs::copy(dir.path().join("client_key.pub"), dir.path().join("authorized_keys")).ok()?;
        for _attempt in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
            let config = dir.path().join("sshd_config");
            std::fs::write(&config, sshd_config(dir.path(), port)).ok()?;
            let mut child = Command::new(SSHD)
                .arg("-D")
                .arg("-f")
                .arg(&config)
                .arg("-E")
                .arg(dir.path().join("sshd.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()?;
            if wait_until_listening(&mut child, port) {
                let sshd = Sshd { child, dir };
                sshd.write_client_files(port)?;
                return Some(sshd);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        None
    }

    fn write_client_files(&self, port: u16) -> Option<()> {
        let host_key = std::fs::read_to_string(self.path("host_key.pub")).ok()?;
        let key: Vec<&str> = host_key.split_whitespace().take(2).collect();
        std::fs::write(self.path("known_hosts"), format!("[127.0.0.1]:{port} {}\n", key.join(" "))).ok()?;
        let config = format!("Host {ALIAS}\n  HostName 127.0.0.1\n  Port {port}\n\nHost *\n  LogLevel ERROR\n");
        std::fs::write(self.path("ssh_config"), config).ok()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn options(&self) -> SshOptions {
        SshOptions {
            key_path: Some(self.path("client_key")),
            known_hosts: self.path("known_hosts"),
            config_file: Some(self.path("ssh_config")),
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(30),
            keep_alive_interval: Duration::from_secs(15),
        }
    }

    pub fn target(&self) -> Target {
        let output = Command::new("id").arg("-un").output().ok();
        let user = output.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default();
        Target::new(user, ALIAS)
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_until_listening(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_exited)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn sshd_config(dir: &Path, port: u16) -> String {
    let dir = dir.display();
    format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/host_key\nPidFile none\nUsePAM no\nStrictModes no\n\
         AuthorizedKeysFile {dir}/authorized_keys\nPermitRootLogin yes\nPubkeyAuthentication yes\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nLogLevel ERROR\nMaxSessions 50\n"
    )
}

fn keygen(path: &Path) -> Option<()> {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "hvmigrate-bench", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .ok()?;
    status.success().then_some(())
}
