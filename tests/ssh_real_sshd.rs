//! The SSH layer against a real OpenSSH server on loopback: a private sshd
//! with its own host key, client key, known_hosts and ssh_config, started by
//! each test and stopped when it ends.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hvmigrate::hosts::hypervisor::{ensure_root_access, Hypervisor, RootAccess, Sudo};
use hvmigrate::secret::Secret;
use hvmigrate::ssh::{RemoteCommand, RemoteShell, SshError, SshOptions, SshPool};
use support::sshd::{current_user, key_type_and_body, keygen, Sshd, ALIAS};

fn sh(action: &str, script: &str) -> RemoteCommand {
    RemoteCommand::script(action, script, &[])
}

#[tokio::test]
async fn runs_commands_and_returns_exit_status_and_both_streams() {
    let sshd = Sshd::start();
    let pool = pool_of(&sshd);
    let target = sshd.target();

    let output = pool.run(&target, &sh("streams", "echo out; echo err >&2; exit 3")).await.expect("runs");
    assert_eq!((output.exit_status, output.stdout.as_str(), output.stderr.as_str()), (3, "out\n", "err\n"));
    assert!(!output.success());

    let output = pool.run(&target, &RemoteCommand::new("true", "true")).await.expect("runs");
    assert!(output.success());

    // Not found is a status too (ssh's multiplexer would rather call it an error).
    let output = pool.run(&target, &RemoteCommand::new("missing", "no-such-program-hvmigrate")).await.expect("runs");
    assert_eq!(output.exit_status, 127);

    // Words reach the program unchanged, whatever they hold.
    let tricky = ["a b", "it's", "$HOME", "`id`", "; reboot", "\"q\"", "", "*"];
    let command = RemoteCommand::new("printf", "printf").arg("[%s]").args(tricky);
    let output = pool.run(&target, &command).await.expect("runs");
    let expected: String = tricky.iter().map(|word| format!("[{word}]")).collect();
    assert_eq!(output.stdout, expected);

    // Standard input is fed, then closed.
    let command = RemoteCommand::new("cat", "cat").stdin(Secret::new("secret line\n"));
    let output = pool.run(&target, &command).await.expect("runs");
    assert_eq!(output.stdout, "secret line\n");
    assert!(!output.command.contains("secret"), "{}", output.command);
    pool.close_all().await;
}

#[tokio::test]
async fn one_master_connection_per_host_is_reused_until_closed() {
    let sshd = Sshd::start();
    let pool = Arc::new(pool_of(&sshd));
    let target = sshd.target();

    for round in 0..5 {
        let output = pool.run(&target, &RemoteCommand::new("echo", "echo").arg(round.to_string())).await.expect("runs");
        assert_eq!(output.stdout, format!("{round}\n"));
    }
    // Concurrent commands share it too.
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..8 {
        let (pool, target) = (pool.clone(), target.clone());
        tasks.spawn(async move {
            let command = RemoteCommand::script("concurrent", "sleep 0.2; echo \"$1\"", &[&index.to_string()]);
            pool.run(&target, &command).await.expect("runs").stdout
        });
    }
    while let Some(stdout) = tasks.join_next().await {
        assert!(!stdout.expect("task").is_empty());
    }
    assert_eq!(sshd.accepted_logins(), 1, "one login for 13 commands");
    assert_eq!(pool.open_connections(), 1);

    pool.close(&target).await;
    assert_eq!(pool.open_connections(), 0);
    pool.run(&target, &RemoteCommand::new("true", "true")).await.expect("runs after close");
    assert_eq!(sshd.accepted_logins(), 2, "a closed host gets a new master");
}

#[tokio::test]
async fn dropping_the_pool_stops_its_masters() {
    let sshd = Sshd::start();
    let pool = sshd.pool();
    pool.run(&sshd.target(), &RemoteCommand::new("true", "true")).await.expect("runs");
    let config_path = ssh_config_path(&sshd);
    drop(pool);
    // The master exits once told to; its sshd connection closes with it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while master_running(&config_path) {
        assert!(Instant::now() < deadline, "the master outlived its pool");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `-F <ssh_config>` path identifies this test's master among all ssh processes.
fn ssh_config_path(sshd: &Sshd) -> String {
    sshd.path("ssh_config").display().to_string()
}

fn master_running(config_path: &str) -> bool {
    let output = Command::new("pgrep").args(["-f", &format!("ssh .*-M .*{config_path}")]).output().expect("pgrep runs");
    output.status.success()
}

#[tokio::test]
async fn a_command_past_its_timeout_is_stopped() {
    let sshd = Sshd::start();
    let pool = pool_of(&sshd);
    let target = sshd.target();

    let started = Instant::now();
    let command = RemoteCommand::new("sleep", "sleep").arg("6").timeout(Duration::from_secs(1));
    match pool.run(&target, &command).await {
        Err(SshError::Timeout { target: timed_out, action, after }) => {
            assert_eq!((timed_out, action.as_str(), after), (target.clone(), "sleep", Duration::from_secs(1)));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    // The connection is still good for the next command.
    let output = pool.run(&target, &RemoteCommand::new("echo", "echo").arg("alive")).await.expect("runs");
    assert_eq!(output.stdout, "alive\n");
    pool.close_all().await;
}

#[tokio::test]
async fn a_changed_host_key_is_refused_with_a_clear_message() {
    let sshd = Sshd::start();
    let other_key = sshd.path("other_key");
    keygen(&other_key).expect("a key");
    let other = std::fs::read_to_string(other_key.with_extension("pub")).expect("key");
    let line = format!("[127.0.0.1]:{} {}\n", sshd.port, key_type_and_body(&other));
    std::fs::write(sshd.path("known_hosts"), line).expect("known_hosts");

    let pool = pool_of(&sshd);
    let err = pool.run(&sshd.target(), &RemoteCommand::new("true", "true")).await.expect_err("must be refused");
    assert!(matches!(err, SshError::HostKeyMismatch { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(ALIAS), "{message}");
    assert!(message.contains("host key does not match the known_hosts file"), "{message}");
    assert_eq!(sshd.accepted_logins(), 0);
}

#[tokio::test]
async fn an_unknown_host_and_a_refused_key_are_told_apart() {
    let sshd = Sshd::start();
    std::fs::write(sshd.path("known_hosts"), "").expect("known_hosts");
    let pool = pool_of(&sshd);
    let err = pool.run(&sshd.target(), &RemoteCommand::new("true", "true")).await.expect_err("unknown host");
    assert!(matches!(err, SshError::UnknownHostKey { .. }), "{err:?}");
    assert!(err.to_string().contains("not in the known_hosts file"), "{err}");

    sshd.write_client_files();
    let stranger = sshd.path("stranger_key");
    keygen(&stranger).expect("a key");
    let options = SshOptions { key_path: Some(stranger), ..sshd.options() };
    let pool = SshPool::new(options).expect("pool");
    let err = pool.run(&sshd.target(), &RemoteCommand::new("true", "true")).await.expect_err("refused");
    assert!(matches!(err, SshError::AuthenticationRefused { .. }), "{err:?}");
}

#[tokio::test]
async fn typed_hypervisor_queries_over_a_real_connection() {
    // The hypervisor helpers log in as root, as CI's tests run.
    if current_user() != "root" {
        return;
    }
    let sshd = Sshd::start();
    let shell: Arc<dyn RemoteShell> = Arc::new(sshd.pool());
    let hypervisor = Hypervisor::new(shell.clone(), ALIAS);

    let release = hypervisor.os_release().await.expect("os-release");
    assert!(!release.value.id.is_empty() && release.output.success());
    hypervisor.is_efi().await.expect("a yes or a no");
    assert!(!hypervisor.device_exists("/dev/hvmigrate-no-such-disk").await.expect("a yes or a no"));
    assert_eq!(hypervisor.mounted_at("/hvmigrate-no-such-mount").await.expect("findmnt"), None);
    let access = ensure_root_access(shell.clone(), ALIAS, "nobody", "ssh-ed25519 AAAA test", &Sudo::Disabled)
        .await
        .expect("probed");
    assert!(matches!(access, RootAccess::AlreadyGranted));
    hypervisor.close().await;
    assert_eq!(sshd.accepted_logins(), 1);
}

fn pool_of(sshd: &Sshd) -> SshPool {
    sshd.pool()
}

/// `ssh.reinstalled_host_keys: ssh-ca`: with the site's host CA trusted
/// (`@cert-authority`), a host whose new key the CA signed (as after a
/// reinstall) connects with no change to known_hosts; an unsigned key does not.
#[tokio::test(flavor = "multi_thread")]
async fn a_host_ca_makes_a_reinstalled_hosts_new_key_trusted_without_any_change() {
    let folder = tempfile::tempdir().unwrap();
    let ca = folder.path().join("host_ca");
    support::sshd::keygen(&ca).unwrap();
    let ca_line = std::fs::read_to_string(folder.path().join("host_ca.pub")).unwrap();
    let trusted = folder.path().join("known_hosts");
    std::fs::write(&trusted, format!("@cert-authority * {}\n", support::sshd::key_type_and_body(&ca_line))).unwrap();
    let before = support::sshd::Sshd::start_signed_by(&ca);
    let reinstalled = support::sshd::Sshd::start_signed_by(&ca);
    for sshd in [&before, &reinstalled] {
        let pool = SshPool::new(SshOptions { known_hosts: trusted.clone(), ..sshd.options() }).unwrap();
        let output = pool.run(&sshd.target(), &RemoteCommand::new("probe", "true")).await.unwrap();
        assert!(output.success());
        pool.close_all().await;
    }
    assert_ne!(
        std::fs::read_to_string(before.path("host_key.pub")).unwrap(),
        std::fs::read_to_string(reinstalled.path("host_key.pub")).unwrap(),
        "two different host keys, one CA"
    );
    let unsigned = support::sshd::Sshd::start();
    let pool = SshPool::new(SshOptions { known_hosts: trusted.clone(), ..unsigned.options() }).unwrap();
    let refused = pool.run(&unsigned.target(), &RemoteCommand::new("probe", "true")).await.unwrap_err();
    assert!(matches!(refused, SshError::UnknownHostKey { .. } | SshError::HostKeyMismatch { .. }), "{refused}");
}
