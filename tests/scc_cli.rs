//! `hvmigrate scc check|collect|upload` as an operator runs them against the
//! simulated site, and the HTTP-date form of `Retry-After`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hvmigrate::clients::http::RetryPolicy;
use hvmigrate::clients::scc::SccClient;
use hvmigrate::config::Credentials;
use hvmigrate::scc::{self, HostResult, ResultsFile};
use hvmigrate_lab::{Lab, LabOptions, SshFaultConfig, SshSettings, WorldOptions};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// The real binary, with the site's files; `--allow-root` only when asked.
async fn hvmigrate(dir: &Path, allow_root: bool, args: &[&str]) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_hvmigrate"));
    command
        .current_dir(dir)
        .args(["--hypervisors-file", "hypervisors.txt", "--creds-file", "credentials.yaml", "--log-dir", "logs"])
        .args(args)
        .env_remove("CI");
    if allow_root {
        command.arg("--allow-root");
    }
    let output = command.output().await.expect("the binary runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn lab_with_files(hosts: usize) -> (Lab, tempfile::TempDir, PathBuf) {
    let options = LabOptions {
        world: WorldOptions { hosts, oddities: false, ..WorldOptions::default() },
        ssh: SshSettings { root_key_missing_every: 0, ..SshSettings::default() },
        ..LabOptions::default()
    };
    let lab = Lab::start(options).await.expect("lab starts");
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    lab.write_site_files(&site, "").expect("site files");
    (lab, dir, site)
}

#[tokio::test(flavor = "multi_thread")]
async fn scc_commands_collect_save_and_upload_through_the_results_file() {
    let (lab, _dir, site) = lab_with_files(3).await;
    let check = hvmigrate(&site, true, &["scc", "check"]).await;
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert!(check.stdout.contains("credentials accepted"));

    let collect = hvmigrate(&site, true, &["scc", "collect", "--output-file", "results.yaml"]).await;
    assert_eq!(collect.code, 0, "{}", collect.stderr);
    assert!(collect.stdout.contains("3 hosts, 0 invalid"), "{}", collect.stdout);
    let results = site.join("results.yaml");
    assert_eq!(std::fs::metadata(&results).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(lab.world().lock().scc.uploads, 0, "collect only collects");

    let upload = hvmigrate(&site, true, &["--output", "json", "scc", "upload", "--input", "results.yaml"]).await;
    assert_eq!(upload.code, 0, "{}", upload.stderr);
    let report: serde_json::Value = serde_json::from_str(&upload.stdout).unwrap();
    assert_eq!(report["groups"][0]["group"], "lab");
    assert_eq!(report["groups"][0]["receipt"]["status"], 200);
    let world = lab.world().lock();
    assert_eq!((world.scc.uploads, world.scc.hosts.len()), (1, 3));
}

#[tokio::test(flavor = "multi_thread")]
async fn scc_refusals_loose_results_file_root_failed_host_and_bad_credentials() {
    let (lab, _dir, site) = lab_with_files(2).await;
    let collect = hvmigrate(&site, true, &["scc", "collect", "-o", "results.yaml"]).await;
    assert_eq!(collect.code, 0, "{}", collect.stderr);
    std::fs::set_permissions(site.join("results.yaml"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let upload = hvmigrate(&site, true, &["scc", "upload", "-i", "results.yaml"]).await;
    assert_eq!(upload.code, 2, "{}", upload.stderr);
    assert!(upload.stderr.contains("chmod 600"), "{}", upload.stderr);
    assert_eq!(lab.world().lock().scc.uploads, 0);

    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let refused = hvmigrate(&site, false, &["scc", "check"]).await;
        assert_eq!(refused.code, 2);
        assert!(refused.stderr.contains("--allow-root"), "{}", refused.stderr);
    }

    // One host out of reach: marked invalid, the other uploaded, exit 1.
    let unreachable = lab.world().lock().campaign_hosts().next().unwrap().fqdn.clone();
    lab.ssh_faults().set(&unreachable, SshFaultConfig { refuse_connections: true, ..Default::default() });
    let upload = hvmigrate(&site, true, &["scc", "upload", "--group", "cloud-a"]).await;
    assert_eq!(upload.code, 1, "{}", upload.stderr);
    assert!(upload.stdout.contains("group cloud-a: 1 host uploaded (HTTP 200"), "{}", upload.stdout);
    assert!(upload.stdout.contains(&format!("{unreachable}: not uploaded")), "{}", upload.stdout);

    // Credentials SCC refuses: the upload fails with the status, exit 1; the check exits 2.
    let credentials = site.join("credentials.yaml");
    let text = std::fs::read_to_string(&credentials).unwrap();
    let password = lab.secrets().scc_password.clone();
    hvmigrate::fs_security::write_private_file(&credentials, text.replace(&password, "not-it").as_bytes()).unwrap();
    std::fs::set_permissions(site.join("results.yaml"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let upload = hvmigrate(&site, true, &["scc", "upload", "-i", "results.yaml"]).await;
    assert_eq!(upload.code, 1, "{}", upload.stderr);
    assert!(upload.stdout.contains("401"), "{}", upload.stdout);
    let check = hvmigrate(&site, true, &["scc", "check"]).await;
    assert_eq!(check.code, 2);
    assert!(check.stderr.contains("401") && !check.stderr.contains("not-it"), "{}", check.stderr);
}

/// SCC answers 429 with `Retry-After` as an HTTP date once, then 200.
#[tokio::test(flavor = "multi_thread")]
async fn scc_429_retry_after_as_an_http_date_is_waited_out() {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    let calls = Arc::new(AtomicUsize::new(0));
    let router = axum::Router::new().route(
        "/connect/organizations/virtualization_hosts",
        axum::routing::put({
            let calls = calls.clone();
            move || async move {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    let when = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(2))
                        .to_zoned(jiff::tz::TimeZone::UTC)
                        .strftime("%a, %d %b %Y %H:%M:%S GMT")
                        .to_string();
                    (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, when)], "slow down").into_response()
                } else {
                    StatusCode::OK.into_response()
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let yaml = format!("scc:\n  url: {url}\n  allow_insecure_http: true\n  username: org\n  password: pass\n");
    let credentials = Credentials::parse(Path::new("credentials.yaml"), &yaml).unwrap();
    let policy = RetryPolicy { max_attempts: 3, max_delay: Duration::from_secs(10), ..RetryPolicy::default() };
    let client = SccClient::with_policy(credentials.scc.as_ref().unwrap(), policy).unwrap();
    let results: Vec<HostResult> = ResultsFile::new(Vec::new()).hosts;
    assert!(scc::upload_results(&client, &results, None).await.all_ok(), "nothing to upload is fine");

    let host = sample_host();
    let start = Instant::now();
    let receipt = scc::upload(&client, "lab", &[host]).await.expect("accepted after the wait");
    assert!(start.elapsed() >= Duration::from_secs(1), "waited {:?}", start.elapsed());
    assert_eq!((receipt.status, calls.load(Ordering::SeqCst)), (200, 2));
}

fn sample_host() -> hvmigrate::clients::scc::VirtualizationHost {
    use hvmigrate::clients::scc::{HostProperties, VirtualizationHost};
    VirtualizationHost {
        identifier: "6a1e2b3c-4d5e-4f60-8172-8394a5b6c7d8".into(),
        group_name: String::new(),
        properties: HostProperties {
            name: "hv01.lab.example.org".into(),
            arch: "x86_64".into(),
            cores: 8,
            sockets: 1,
            threads: 16,
            ram_mb: Some(64_000),
            hypervisor_type: "qemu".into(),
        },
        systems: Vec::new(),
    }
}
