//! Benchmark of the simulated site (issue #3): how long a site of 5,000
//! hosts and 50,000 VMs takes to start, and how many simple GETs per second
//! it serves on one core (the lab runs on a single-threaded runtime of its
//! own; the client load runs on another thread). Prints its figures.
//!
//! `cargo bench -p hvmigrate-lab --bench lab_serve` (HOSTS, VMS_PER_HOST and
//! REQUESTS override the sizes).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use hvmigrate_lab::{Lab, LabOptions, WorldOptions};
use serde_json::json;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Target {
    nova: String,
    keystone: String,
    alertmanager: String,
    hosts: Vec<String>,
    username: String,
    password: String,
    project: String,
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let hosts = env_number("HOSTS", 5000);
    let vms_per_host = env_number("VMS_PER_HOST", 10) as u32;
    let requests = env_number("REQUESTS", 20_000);

    // The lab on one core: a current-thread runtime on its own thread.
    let (ready, started) = mpsc::channel();
    let (stop, stopped) = mpsc::channel::<()>();
    let lab_thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let begin = Instant::now();
            let options = LabOptions {
                world: WorldOptions { hosts, vms_per_host: Some(vms_per_host), ..WorldOptions::default() },
                ..LabOptions::default()
            };
            let lab = Lab::start(options).await.expect("lab starts");
            let start_time = begin.elapsed();
            let (host_names, vm_count) = {
                let world = lab.world().lock();
                (world.campaign_hosts().map(|h| h.fqdn.clone()).collect::<Vec<_>>(), world.servers.len())
            };
            let secrets = lab.secrets();
            let target = Target {
                nova: lab.urls().nova.clone(),
                keystone: lab.urls().keystone.clone(),
                alertmanager: lab.urls().alertmanager.clone(),
                hosts: host_names,
                username: secrets.openstack_username.clone(),
                password: secrets.openstack_password.clone(),
                project: secrets.openstack_project.clone(),
            };
            ready.send((target, start_time, vm_count)).unwrap();
            // Serve until the client is done.
            while stopped.try_recv().is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            lab.shutdown().await;
        });
    });
    let (target, start_time, vm_count) = started.recv().unwrap();
    println!("start: {} hosts, {vm_count} VMs in {:.2} s", target.hosts.len(), start_time.as_secs_f64());

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    runtime.block_on(async move {
        let client = reqwest::Client::new();
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {"name": target.username, "domain": {"name": "Default"}, "password": target.password}}},
            "scope": {"project": {"name": target.project, "domain": {"name": "Default"}}},
        }});
        let response = client.post(format!("{}/auth/tokens", target.keystone)).json(&body).send().await.unwrap();
        let token = response.headers()["x-subject-token"].to_str().unwrap().to_owned();
        let nova_urls: Vec<String> = target
            .hosts
            .iter()
            .map(|h| format!("{}/os-services?host={h}&binary=nova-compute", target.nova))
            .collect();
        let silences = vec![format!("{}/api/v2/silences", target.alertmanager)];
        for (name, urls) in [("GET /v2.1/os-services?host=…", nova_urls), ("GET /api/v2/silences", silences)] {
            let begin = Instant::now();
            let tasks = 4;
            let mut handles = Vec::new();
            for task in 0..tasks {
                let client = client.clone();
                let token = token.clone();
                let urls = urls.clone();
                handles.push(tokio::spawn(async move {
                    for n in (task..requests).step_by(tasks) {
                        let response = client
                            .get(&urls[n % urls.len()])
                            .header("x-auth-token", &token)
                            .header("openstack-api-version", "compute 2.53")
                            .send()
                            .await
                            .unwrap();
                        assert!(response.status().is_success());
                        response.bytes().await.unwrap();
                    }
                }));
            }
            for handle in handles {
                handle.await.unwrap();
            }
            let elapsed = begin.elapsed().as_secs_f64();
            println!("{name}: {requests} requests in {elapsed:.2} s = {:.0} requests/s", requests as f64 / elapsed);
        }
    });
    stop.send(()).unwrap();
    lab_thread.join().unwrap();
}
