//! The simulated hosts through the system OpenSSH client, exactly as the
//! product (or a person) reaches them: `ssh -F <lab>/ssh/ssh_config HOST 'cmd'`.

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use hvmigrate_lab::{Lab, LabOptions, SshFaultConfig};

struct Site {
    lab: Lab,
    config: PathBuf,
    dir: tempfile::TempDir,
}

async fn site() -> Site {
    let lab = Lab::start(LabOptions::default()).await.expect("lab starts");
    let dir = tempfile::tempdir().unwrap();
    let files = lab.write_site_files(dir.path(), "").unwrap();
    let config = files.ssh.expect("SSH hosts run").config;
    Site { lab, config, dir }
}

impl Site {
    /// Runs the system `ssh` with the lab's config (blocking, on a worker thread).
    async fn ssh(&self, args: &[&str]) -> Output {
        self.ssh_with_stdin(args, None).await
    }

    async fn ssh_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = std::process::Command::new("ssh");
        command.arg("-F").arg(&self.config).args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]).args(args);
        let stdin = stdin.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            command.stdin(if stdin.is_some() { std::process::Stdio::piped() } else { std::process::Stdio::null() });
            command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
            let mut child = command.spawn().expect("ssh runs");
            if let Some(text) = stdin {
                child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
            }
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap()
    }

    /// Runs `command` as root on `host`: (status, stdout, stderr).
    async fn run(&self, host: &str, command: &str) -> (i32, String, String) {
        let output = self.ssh(&[host, command]).await;
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    fn host(&self, index: usize) -> String {
        self.lab.world().lock().hosts[index].fqdn.clone()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn os_release_exit_codes_and_stderr() {
    let site = site().await;
    let host = site.host(0);
    let (status, out, err) = site.run(&host, "cat /etc/os-release").await;
    assert_eq!(status, 0, "stderr: {err}");
    assert!(out.contains("ID=\"rocky\"") && out.contains("VERSION_ID=\"8.10\""), "{out}");
    let (status, out, _) = site.run(&host, "cat /etc/os-release | grep VERSION_ID | awk -F= '{print $2}'").await;
    assert_eq!((status, out.as_str()), (0, "\"8.10\"\n"));
    let (status, out, err) = site.run(&host, "frobnicate --now").await;
    assert_eq!((status, out.as_str(), err.as_str()), (127, "", "bash: frobnicate: command not found\n"));
    let (status, out, err) = site.run(&host, "echo out; echo err >&2; exit 3").await;
    assert_eq!((status, out.as_str(), err.as_str()), (3, "out\n", "err\n"));
    let (status, _, _) = site.run(&host, "test -d /sys/firmware/efi && ls /sys/firmware | grep -q efi").await;
    assert_eq!(status, 0);
    let history = site.lab.world().lock().hosts[0].shell.history.clone();
    assert!(history.contains(&"frobnicate --now".to_owned()), "{history:?}");
    drop(site.dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn virsh_follows_nova() {
    let site = site().await;
    let last = site.lab.world().lock().hosts.len() - 1;
    let (source, destination) = (site.host(0), site.host(last));
    let (moved, name) = {
        let world = site.lab.world().lock();
        let server = world.servers_on(&source).find(|s| s.status == "ACTIVE").expect("an active VM").clone();
        (server.id, server.instance_name)
    };
    let (status, out, _) = site.run(&source, "virsh list --all").await;
    assert_eq!(status, 0);
    assert!(out.starts_with(" Id   Name") && out.contains(&name) && out.contains("running"), "{out}");
    site.lab.world().lock().servers.get_mut(&moved).unwrap().host = destination.clone();
    let (_, out, _) = site.run(&source, "virsh list --all --uuid").await;
    assert!(!out.contains(&moved), "{out}");
    let (_, out, _) = site.run(&destination, "virsh list --all --uuid").await;
    assert_eq!(out, format!("{moved}\n\n"));
    let (status, out, _) = site.run(&destination, "virsh capabilities").await;
    assert_eq!(status, 0);
    let uuid = site.lab.world().lock().host(&destination).unwrap().host_uuid.clone();
    assert!(out.contains(&format!("<uuid>{uuid}</uuid>")) && out.contains("<cells num='2'>"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn lsblk_json_parses() {
    let site = site().await;
    let host = site.host(0);
    let (status, out, err) = site.run(&host, "lsblk -J -b -o NAME,TYPE,SIZE,FSTYPE,MOUNTPOINT").await;
    assert_eq!(status, 0, "{err}");
    let parsed: serde_json::Value = serde_json::from_str(&out).expect("lsblk JSON");
    let devices = parsed["blockdevices"].as_array().unwrap();
    assert_eq!(devices[0]["name"], "sda");
    assert_eq!(devices[0]["children"][1]["mountpoint"], "/");
}

#[tokio::test(flavor = "multi_thread")]
async fn root_login_needs_the_key_and_ops_may_sudo() {
    let site = site().await;
    let without_key = {
        let world = site.lab.world().lock();
        let host =
            world.campaign_hosts().find(|h| h.shell.root_authorized_keys.is_empty()).expect("a host without root key");
        host.fqdn.clone()
    };
    let output = site.ssh(&[&without_key, "true"]).await;
    assert_eq!(output.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&output.stderr).contains("Permission denied"), "{output:?}");
    // The operator's account may log in and append the key with sudo.
    let key = std::fs::read_to_string(site.dir.path().join("ssh/id_ed25519.pub")).unwrap();
    let key = key.trim();
    let script = format!(
        "sudo -n sh -c 'mkdir -p /root/.ssh && chmod 700 /root/.ssh && (grep -qF \"{key}\" /root/.ssh/authorized_keys 2>/dev/null || echo \"{key}\" >> /root/.ssh/authorized_keys) && chmod 600 /root/.ssh/authorized_keys'"
    );
    let output = site.ssh(&["-l", "ops", &without_key, &script]).await;
    assert!(output.status.success(), "{output:?}");
    let output = site.ssh(&["-l", "ops", &without_key, &script]).await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        site.lab.world().lock().host(&without_key).unwrap().shell.root_authorized_keys.lines().count(),
        1,
        "appended once"
    );
    let (status, out, _) = site.run(&without_key, "whoami").await;
    assert_eq!((status, out.as_str()), (0, "root\n"));
    // Without sudo, the operator cannot write root's files.
    let output = site.ssh(&["-l", "ops", &without_key, "echo x >> /etc/fstab"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("Permission denied"));
}

#[tokio::test(flavor = "multi_thread")]
async fn control_master_runs_several_commands_over_one_connection() {
    let site = site().await;
    let host = site.host(1);
    let control = site.dir.path().join("cm-%C");
    let control = control.to_str().unwrap();
    let options = ["-o", "ControlMaster=auto", "-o", &format!("ControlPath={control}"), "-o", "ControlPersist=30"];
    let started = Instant::now();
    let first = site.ssh(&[&options[..], &[host.as_str(), "hostname"]].concat()).await;
    let first_time = started.elapsed();
    assert_eq!(String::from_utf8_lossy(&first.stdout), format!("{host}\n"));
    let check = site.ssh(&[&options[..], &["-O", "check", host.as_str()]].concat()).await;
    assert!(check.status.success(), "master is running: {check:?}");
    let started = Instant::now();
    let second = site.ssh(&[&options[..], &[host.as_str(), "virsh list --name"]].concat()).await;
    let second_time = started.elapsed();
    assert!(second.status.success(), "{second:?}");
    eprintln!("first command (handshake + run): {first_time:?}, second over the master: {second_time:?}");
    let _ = site.ssh(&[&options[..], &["-O", "exit", host.as_str()]].concat()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_changed_key_refused_connection_dropped_command_and_latency() {
    let site = site().await;
    let host = site.host(2);
    site.lab.ssh_faults().set(&host, SshFaultConfig { changed_host_key: true, ..Default::default() });
    let output = site.ssh(&[&host, "true"]).await;
    assert_eq!(output.status.code(), Some(255));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") || stderr.contains("Host key verification failed"),
        "{stderr}"
    );

    site.lab.ssh_faults().set(&host, SshFaultConfig { refuse_connections: true, ..Default::default() });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let output = site.ssh(&[&host, "true"]).await;
    assert_eq!(output.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&output.stderr).contains("Connection refused"), "{output:?}");

    site.lab.ssh_faults().set(&host, SshFaultConfig { drop_next_commands: 1, ..Default::default() });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let output = site.ssh(&[&host, "mkdir -p /srv/dropped"]).await;
    assert_eq!(output.status.code(), Some(255), "{output:?}");
    assert!(site.lab.world().lock().host(&host).unwrap().shell.directories.contains("/srv/dropped"), "the command ran");
    let (status, _, _) = site.run(&host, "test -d /srv/dropped").await;
    assert_eq!(status, 0, "the next command goes through");

    site.lab.ssh_faults().set(&host, SshFaultConfig { latency_ms: Some((300, 300)), ..Default::default() });
    let started = Instant::now();
    let (status, _, _) = site.run(&host, "true").await;
    assert_eq!(status, 0);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test(flavor = "multi_thread")]
async fn reinstall_through_the_control_server() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let site = site().await;
    let last = site.lab.world().lock().hosts.len() - 1;
    let host = site.host(last);
    let url = format!("{}/_lab/reinstall/{host}", site.lab.urls().control);
    let refused = reqwest::Client::new().post(&url).send().await.unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::CONFLICT, "not switched to PXE install yet");
    let aquilon = site.lab.world().lock().aquilon_host_name();
    let (status, _, err) = site.run(&aquilon, &format!("aq pxeswitch --hostname {host} --install")).await.clone();
    assert_eq!(status, 255, "root may not log in to the Aquilon host: {err}");
    let output = site.ssh(&["-l", "ops", &aquilon, &format!("aq pxeswitch --hostname {host} --install")]).await;
    assert!(output.status.success(), "{output:?}");
    let done = reqwest::Client::new().post(&url).send().await.unwrap();
    assert_eq!(done.status(), reqwest::StatusCode::NO_CONTENT);
    // Same host key (known_hosts still valid), new OS, and root's key is gone.
    let output = site.ssh(&["-l", "ops", &host, "grep VERSION_ID /etc/os-release"]).await;
    assert_eq!(String::from_utf8_lossy(&output.stdout), "VERSION_ID=\"9.4\"\n", "{output:?}");
    let output = site.ssh(&[&host, "true"]).await;
    assert_eq!(output.status.code(), Some(255), "root's key went with the reinstall");
}

/// A measurement, not a check: `cargo nextest run -p hvmigrate-lab --run-ignored only -E 'test(large_site)' --no-capture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn large_site_start_and_commands() {
    let world = hvmigrate_lab::WorldOptions { hosts: 5000, ..Default::default() };
    for ssh in [false, true] {
        let started = Instant::now();
        let options = LabOptions {
            world: world.clone(),
            ssh: hvmigrate_lab::SshSettings { enabled: ssh, ..Default::default() },
            ..Default::default()
        };
        let lab = Lab::start(options).await.unwrap();
        eprintln!("5000-host lab start, SSH hosts {ssh}: {:?}", started.elapsed());
        lab.shutdown().await;
    }
    let site = site().await;
    let host = site.host(0);
    let started = Instant::now();
    for _ in 0..10 {
        site.run(&host, "virsh list --all").await;
    }
    eprintln!("ssh connect + handshake + command, without ControlMaster: {:?} each", started.elapsed() / 10);
}
