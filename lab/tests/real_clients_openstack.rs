//! The real `openstack` CLI (python-openstackclient on openstacksdk) works
//! against the lab's Keystone and Nova: it runs `tests/python/test_openstack_cli.sh`
//! and then checks the world changed as the commands asked. Without the
//! `openstack` command the test fails under CI, else skips.

use std::process::Command;

use hvmigrate_lab::{Lab, LabOptions};

fn openstack_available() -> bool {
    Command::new("openstack").arg("--version").output().is_ok_and(|out| out.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_cli_against_the_lab() {
    if !openstack_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "the openstack command is missing (pip install -r tests/python/requirements.txt)"
        );
        eprintln!("skipped: the openstack command is missing (pip install -r tests/python/requirements.txt)");
        return;
    }
    let lab = Lab::start(LabOptions::default()).await.expect("lab starts");
    lab.world().lock().time_scale = 100.0;
    let (host, server) = {
        let world = lab.world().lock();
        let server = world
            .servers
            .values()
            .find(|s| s.status == "ACTIVE" && !s.fail_migration && !s.hang_migration)
            .expect("an active server");
        (server.host.clone(), server.id.clone())
    };
    let secrets = lab.secrets().clone();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/python/test_openstack_cli.sh");
    let auth_url = lab.urls().keystone.clone();
    let (host_env, server_env) = (host.clone(), server.clone());
    let output = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .arg(script)
            .env("OS_AUTH_URL", auth_url)
            .env("OS_IDENTITY_API_VERSION", "3")
            .env("OS_USERNAME", &secrets.openstack_username)
            .env("OS_PASSWORD", &secrets.openstack_password)
            .env("OS_PROJECT_NAME", &secrets.openstack_project)
            .env("OS_USER_DOMAIN_NAME", "Default")
            .env("OS_PROJECT_DOMAIN_NAME", "Default")
            .env("OS_REGION_NAME", "RegionOne")
            .env("OS_INTERFACE", "public")
            .env("LAB_HOST", host_env)
            .env("LAB_SERVER", server_env)
            .output()
            .expect("bash runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the openstack CLI checks failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    eprintln!("{stdout}");
    // openstacksdk found the microversion range, so it used the 2.53 service update.
    let puts: Vec<String> = lab.requests().writes().into_iter().filter(|r| r.method == "PUT").map(|r| r.path).collect();
    assert!(!puts.is_empty() && puts.iter().all(|p| !p.contains("disable-log-reason")), "{puts:?}");
    eprintln!("{stdout}");
    // openstacksdk found the microversion range, so it used the 2.53 service update.
    let puts: Vec<String> = lab.requests().writes().into_iter().filter(|r| r.method == "PUT").map(|r| r.path).collect();
    assert!(!puts.is_empty() && puts.iter().all(|p| !p.contains("disable-log-reason")), "{puts:?}");
    let world = lab.world().lock();
    assert_ne!(world.servers[&server].host, host, "the live migration moved the server");
    assert_eq!(world.host(&host).unwrap().compute.status, "enabled", "re-enabled at the end");
}
