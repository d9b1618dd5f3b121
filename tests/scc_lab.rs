//! SCC reporting against the simulated site: collection over real SSH from
//! the lab's hosts (`virsh`), uploads to its SCC emulator, and the refusals.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hvmigrate::clients::http::RetryPolicy;
use hvmigrate::clients::scc::SccClient;
use hvmigrate::config::credentials::SccTopology;
use hvmigrate::config::Credentials;
use hvmigrate::scc::{self, HostResult};
use hvmigrate::ssh::{RemoteShell, SshOptions, SshPool};
use hvmigrate_lab::world::CpuTopology;
use hvmigrate_lab::{Fault, Lab, LabOptions, Service, SshFaultConfig, SshSettings, WorldOptions};

struct Site {
    lab: Lab,
    _dir: tempfile::TempDir,
    credentials: Credentials,
    creds_file: std::path::PathBuf,
    hosts: Vec<String>,
}

async fn site(hosts: usize) -> Site {
    let options = LabOptions {
        world: WorldOptions { hosts, vms_per_host: Some(3), oddities: false, ..WorldOptions::default() },
        ssh: SshSettings { root_key_missing_every: 0, ..SshSettings::default() },
        ..LabOptions::default()
    };
    let lab = Lab::start(options).await.expect("lab starts");
    let dir = tempfile::tempdir().unwrap();
    let files = lab.write_site_files(dir.path(), "").expect("site files");
    let credentials = Credentials::load(&files.credentials).expect("credentials load");
    let hosts = lab.world().lock().campaign_hosts().map(|host| host.fqdn.clone()).collect();
    Site { lab, _dir: dir, credentials, creds_file: files.credentials, hosts }
}

impl Site {
    fn shell(&self) -> Arc<dyn RemoteShell> {
        Arc::new(SshPool::new(SshOptions::from_config(self.credentials.ssh.as_ref().unwrap())).unwrap())
    }

    fn client(&self, policy: RetryPolicy) -> SccClient {
        SccClient::with_policy(self.credentials.scc.as_ref().unwrap(), policy).unwrap()
    }

    async fn collect(&self) -> Vec<HostResult> {
        self.collect_as(SccTopology::NumaTotals).await
    }

    async fn collect_as(&self, topology: SccTopology) -> Vec<HostResult> {
        scc::collect_all(self.shell(), &self.hosts, |host| scc::site_of(host).to_owned(), 4, topology).await
    }

    fn set_topology(&self, host: usize, numa_cells: u32, sockets: u32, cores_per_socket: u32, threads_per_core: u32) {
        let mut world = self.lab.world().lock();
        let host = world.host_mut(&self.hosts[host]).unwrap();
        host.cpu = CpuTopology { numa_cells, sockets, cores_per_socket, threads_per_core, ..host.cpu.clone() };
    }
}

fn quick_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        max_total: Duration::from_secs(30),
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
        ..RetryPolicy::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn scc_collection_of_several_host_shapes_and_vm_states() {
    let site = site(4).await;
    site.set_topology(0, 1, 1, 8, 2); // one cell
    site.set_topology(1, 2, 2, 16, 2); // one socket per cell, as most two-socket servers
    site.set_topology(2, 2, 2, 8, 1); // hyper-threading off
    site.set_topology(3, 4, 2, 12, 2); // sub-NUMA clustering: two cells per socket
    let states: Vec<(String, &str)> = {
        let mut world = site.lab.world().lock();
        let ids: Vec<String> = world.servers_on(&site.hosts[0]).map(|server| server.id.clone()).collect();
        assert_eq!(ids.len(), 3);
        let wanted = [("ACTIVE", "running"), ("SHUTOFF", "shut off"), ("PAUSED", "paused")];
        ids.iter()
            .zip(wanted)
            .map(|(id, (status, state))| {
                world.servers.get_mut(id).unwrap().status = status.to_owned();
                (id.clone(), state)
            })
            .collect()
    };
    let results = site.collect().await;
    let expected = [(1, 8, 16), (2, 32, 64), (2, 16, 16), (2, 24, 48)];
    for ((result, host), (sockets, cores, threads)) in results.iter().zip(&site.hosts).zip(expected) {
        assert!(result.valid, "{result:?}");
        let details = result.details.as_ref().unwrap();
        let world = site.lab.world().lock();
        let truth = world.host(host).unwrap();
        assert_eq!(details.identifier, truth.host_uuid);
        assert_eq!(details.group_name, "lab");
        let p = &details.properties;
        assert_eq!((p.name.as_str(), p.arch.as_str(), p.hypervisor_type.as_str()), (host.as_str(), "x86_64", "qemu"));
        assert_eq!((p.sockets, p.cores, p.threads), (sockets, cores, threads), "{host}");
        // The lab keeps 2 GiB for the host itself, as `virsh nodememstats` shows.
        assert_eq!(p.ram_mb, Some(truth.memory_mib - 2048));
        assert_eq!(details.systems.len(), world.servers_on(host).count());
    }
    let first = results[0].details.as_ref().unwrap();
    for (id, state) in states {
        let system = first.systems.iter().find(|system| system.uuid == id).expect("every domain is listed");
        assert_eq!(system.properties.vm_state, state);
        assert!(system.properties.vm_name.starts_with("instance-"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn scc_upload_is_accepted_per_group_and_visible_in_the_registry() {
    let site = site(3).await;
    let mut results = site.collect().await;
    results[2].details.as_mut().unwrap().group_name = "other".into();
    let report = scc::upload_results(&site.client(quick_policy()), &results, None).await;
    assert!(report.all_ok(), "{report:?}");
    assert_eq!(report.groups.iter().map(|group| group.group.as_str()).collect::<Vec<_>>(), ["lab", "other"]);
    let receipt = report.groups[0].receipt.as_ref().unwrap();
    assert_eq!((receipt.status, receipt.hosts.len()), (200, 2));
    let world = site.lab.world().lock();
    assert_eq!(world.scc.uploads, 2, "one request per group");
    // The headers scc-hypervisor-collector sends (`uploader.py`), credentials not kept.
    let headers = &world.scc.last_headers;
    assert_eq!(headers.get("x-scc-hypervisor-collector-version").map(String::as_str), Some("0.1.0"), "{headers:?}");
    assert_eq!(headers.get("x-gatherer-version").map(String::as_str), Some("1.0.29"), "{headers:?}");
    assert_eq!(headers.get("content-encoding").map(String::as_str), Some("gzip"));
    assert!(!headers.contains_key("authorization"));
    for result in &results {
        let details = result.details.as_ref().unwrap();
        let stored = &world.scc.hosts[&details.identifier];
        assert_eq!(stored["group_name"], details.group_name);
        assert_eq!(stored["properties"]["cores"], details.properties.cores);
        assert_eq!(stored["systems"].as_array().unwrap().len(), details.systems.len());
        assert!(stored["systems"][0]["properties"]["vmState"].is_string());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn scc_unreachable_host_is_invalid_and_the_others_are_uploaded() {
    let site = site(3).await;
    site.lab.ssh_faults().set(&site.hosts[1], SshFaultConfig { refuse_connections: true, ..Default::default() });
    let results = site.collect().await;
    assert!(results[0].valid && results[2].valid);
    assert!(!results[1].valid);
    assert!(results[1].reason.as_deref().unwrap().contains(&site.hosts[1]), "{:?}", results[1].reason);
    let report = scc::upload_results(&site.client(quick_policy()), &results, None).await;
    assert!(!report.all_ok());
    assert_eq!(report.not_uploaded.len(), 1);
    assert_eq!(report.groups[0].hosts, [site.hosts[0].clone(), site.hosts[2].clone()]);
    assert_eq!(site.lab.world().lock().scc.hosts.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn scc_refusals_401_422_and_429_are_failures_with_status_and_body() {
    let site = site(1).await;
    let results = site.collect().await;
    let mut credentials = Credentials::load(&site.creds_file).unwrap();
    credentials.scc.as_mut().unwrap().password = hvmigrate::secret::Secret::new("wrong");
    let wrong = SccClient::with_policy(credentials.scc.as_ref().unwrap(), quick_policy()).unwrap();
    let report = scc::upload_results(&wrong, &results, None).await;
    let group = &report.groups[0];
    assert_eq!(group.status, Some(401));
    let error = group.error.as_deref().unwrap();
    assert!(error.contains("Access denied") && !error.contains("wrong"), "{error}");
    assert!(wrong.check_credentials().await.is_err());

    let mut bad = results.clone();
    bad[0].details.as_mut().unwrap().identifier = String::new();
    let report = scc::upload_results(&site.client(quick_policy()), &bad, None).await;
    assert_eq!(report.groups[0].status, Some(422));
    assert!(report.groups[0].error.as_deref().unwrap().contains("identifier"), "{report:?}");

    // Rate limited at every attempt: bounded, then reported.
    for _ in 0..3 {
        site.lab.faults().push(Service::Scc, Fault::RateLimited { retry_after_secs: 1 });
    }
    let report = scc::upload_results(&site.client(quick_policy()), &results, None).await;
    assert_eq!(report.groups[0].status, Some(429));
    assert_eq!(site.lab.world().lock().scc.uploads, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn scc_429_retry_after_in_seconds_is_waited_out() {
    let site = site(1).await;
    let results = site.collect().await;
    site.lab.faults().push(Service::Scc, Fault::RateLimited { retry_after_secs: 1 });
    let start = Instant::now();
    let report = scc::upload_results(&site.client(quick_policy()), &results, None).await;
    assert!(report.all_ok(), "{report:?}");
    assert!(start.elapsed() >= Duration::from_secs(1), "waited {:?}", start.elapsed());
    assert_eq!(site.lab.world().lock().scc.uploads, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn scc_counts_are_the_gatherer_s_by_default() {
    // virtual-host-gatherer reads `host/cpu/topology` (per NUMA cell in
    // libvirt): sockets, cores × sockets, threads × cores.
    let site = site(2).await;
    site.set_topology(0, 1, 1, 8, 2); // one cell: the whole host either way
    site.set_topology(1, 2, 2, 16, 2); // two sockets in two cells: the gatherer sees one
    let results = site.collect_as(SccTopology::default()).await;
    let counts: Vec<(u32, u32, u32)> = results
        .iter()
        .map(|result| {
            let p = &result.details.as_ref().unwrap().properties;
            (p.sockets, p.cores, p.threads)
        })
        .collect();
    assert_eq!(counts, [(1, 8, 16), (1, 16, 32)]);
}
