//! A private OpenSSH server on loopback for the tests and the SSH benchmark:
//! its own host key, client key, known_hosts and ssh_config; killed on drop.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hvmigrate::ssh::{SshOptions, SshPool, Target};

pub const SSHD: &str = "/usr/sbin/sshd";
/// The ssh_config alias to connect to.
pub const ALIAS: &str = "hv-test";

/// A running sshd; killed on drop.
pub struct Sshd {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Sshd {
    /// Starts one, or fails the test saying how to install sshd.
    pub fn start() -> Sshd {
        Self::try_start().unwrap_or_else(|why| panic!("{why}"))
    }

    /// Starts one; the error says why it could not.
    pub fn try_start() -> Result<Sshd, String> {
        Self::try_start_signed(None)
    }

    /// Starts one whose host key is certified by the host CA at `ca`
    /// (`ssh-keygen -s CA -h`), presented with `HostCertificate`.
    pub fn start_signed_by(ca: &Path) -> Sshd {
        Self::try_start_signed(Some(ca)).unwrap_or_else(|why| panic!("{why}"))
    }

    fn try_start_signed(ca: Option<&Path>) -> Result<Sshd, String> {
        if !Path::new(SSHD).exists() {
            return Err(format!(
                "{SSHD} is missing: install the Debian package openssh-server (listed in scripts/ci-packages.txt)"
            ));
        }
        // sshd insists on its privilege-separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let dir = tempfile::tempdir().map_err(|err| format!("temp dir: {err}"))?;
        keygen(&dir.path().join("host_key"))?;
        if let Some(ca) = ca {
            let status = Command::new("ssh-keygen")
                .args(["-q", "-s"])
                .arg(ca)
                .args(["-h", "-I", "hvmigrate-test-host", "-n", &format!("127.0.0.1,{ALIAS}")])
                .arg(dir.path().join("host_key.pub"))
                .stdin(Stdio::null())
                .status()
                .map_err(|err| format!("ssh-keygen -s: {err}"))?;
            if !status.success() {
                return Err("ssh-keygen could not sign the host key".into());
            }
        }
        keygen(&dir.path().join("client_key"))?;
        std::fs::copy(dir.path().join("client_key.pub"), dir.path().join("authorized_keys"))
            .map_err(|err| format!("authorized_keys: {err}"))?;
        for _attempt in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .map_err(|err| format!("a free port: {err}"))?
                .port();
            let config = dir.path().join("sshd_config");
            let mut text = sshd_config(dir.path(), port);
            if ca.is_some() {
                text.push_str(&format!("HostCertificate {}/host_key-cert.pub\n", dir.path().display()));
            }
            std::fs::write(&config, text).map_err(|err| format!("sshd_config: {err}"))?;
            let mut child = Command::new(SSHD)
                .arg("-D")
                .arg("-f")
                .arg(&config)
                .arg("-E")
                .arg(dir.path().join("sshd.log"))
                // Its session processes can outlive it; they must not hold the caller's output.
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|err| format!("start sshd: {err}"))?;
            if wait_until_listening(&mut child, port) {
                let sshd = Sshd { child, dir, port };
                sshd.write_client_files();
                return Ok(sshd);
            }
            // Lost the port to another process: try another one.
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(dir.path().join("sshd.log")).unwrap_or_default();
        Err(format!("sshd did not start: {log}"))
    }

    /// known_hosts with the server's key, and an ssh_config with the alias.
    pub fn write_client_files(&self) {
        let host_key = std::fs::read_to_string(self.path("host_key.pub")).expect("host key");
        let known = format!("[127.0.0.1]:{} {}", self.port, key_type_and_body(&host_key));
        std::fs::write(self.path("known_hosts"), known + "\n").expect("known_hosts");
        let config = format!(
            "Host {ALIAS}\n  HostName 127.0.0.1\n  Port {port}\n\nHost *\n  LogLevel ERROR\n",
            port = self.port
        );
        std::fs::write(self.path("ssh_config"), config).expect("ssh_config");
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn options(&self) -> SshOptions {
        SshOptions {
            key_path: Some(self.path("client_key")),
            known_hosts: self.path("known_hosts"),
            config_file: Some(self.path("ssh_config")),
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(20),
            keep_alive_interval: Duration::from_secs(5),
            pinned_known_hosts: None,
            accept_new_host_keys: false,
        }
    }

    pub fn pool(&self) -> SshPool {
        SshPool::new(self.options()).expect("pool")
    }

    pub fn target(&self) -> Target {
        Target::new(current_user(), ALIAS)
    }

    /// How many SSH connections sshd has accepted so far.
    pub fn accepted_logins(&self) -> usize {
        let log = std::fs::read_to_string(self.path("sshd.log")).unwrap_or_default();
        log.lines().filter(|line| line.contains("Accepted publickey")).count()
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
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nLogLevel VERBOSE\nMaxSessions 50\n"
    )
}

/// A new ed25519 key pair at `path` (and `path.pub`).
pub fn keygen(path: &Path) -> Result<(), String> {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "hvmigrate-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .map_err(|err| format!("ssh-keygen: {err}"))?;
    status.success().then_some(()).ok_or_else(|| "ssh-keygen failed".to_owned())
}

/// `ssh-ed25519 AAAA…` from a public key line, without its comment.
pub fn key_type_and_body(public_key: &str) -> String {
    public_key.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

pub fn current_user() -> String {
    let output = Command::new("id").arg("-un").output().expect("id runs");
    String::from_utf8(output.stdout).expect("utf-8").trim().to_owned()
}
