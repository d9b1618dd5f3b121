//! The product's SSH layer and host helpers against the simulated hosts, over
//! the system OpenSSH client: every helper, one connection per host reused,
//! timeouts, and a changed host key refused.

use std::sync::Arc;
use std::time::Duration;

use hvmigrate::config::Credentials;
use hvmigrate::hosts::aquilon::Aquilon;
use hvmigrate::hosts::hypervisor::Hypervisor;
use hvmigrate::hosts::kayobe::{HostOutcome, Kayobe, KayobeTimeouts};
use hvmigrate::hosts::libvirt::Libvirt;
use hvmigrate::hosts::remote_job::JobContext;
use hvmigrate::ssh::{RemoteCommand, RemoteShell, SshError, SshOptions, SshPool, Target};
use hvmigrate_lab::{Lab, LabOptions, SshFaultConfig, WorldOptions};

struct Site {
    lab: Lab,
    credentials: Credentials,
    shell: Arc<SshPool>,
    _dir: tempfile::TempDir,
}

async fn site() -> Site {
    let lab = Lab::start(LabOptions { world: WorldOptions::default(), ..LabOptions::default() }).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = lab.write_site_files(&dir.path().join("site"), "").unwrap();
    let text = std::fs::read_to_string(&files.credentials).unwrap();
    let credentials = Credentials::parse(&files.credentials, &text).unwrap();
    let mut options = SshOptions::from_config(credentials.ssh.as_ref().unwrap());
    options.command_timeout = Duration::from_secs(20);
    let shell = Arc::new(SshPool::new(options).unwrap());
    Site { lab, credentials, shell, _dir: dir }
}

impl Site {
    fn host(&self, index: usize) -> String {
        self.lab.world().lock().campaign_hosts().nth(index).unwrap().fqdn.clone()
    }

    fn connections(&self, machine: &str) -> u64 {
        self.lab.world().lock().ssh_connections.get(machine).copied().unwrap_or(0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hypervisor_helpers_over_one_reused_connection() {
    let site = site().await;
    let gpu_host = site.host(2);
    let hypervisor = Hypervisor::new(site.shell.clone(), &gpu_host);
    let os = hypervisor.os_release().await.unwrap().value;
    assert_eq!((os.id.as_str(), os.version_id.as_str()), ("rocky", "8.10"));
    let domains = hypervisor.virsh_list().await.unwrap().value;
    let servers = site.lab.world().lock().servers_on(&gpu_host).count();
    assert_eq!(domains.len(), servers);
    let disks = hypervisor.block_devices().await.unwrap().value;
    assert!(disks.iter().any(|disk| disk.name.ends_with("sda")), "{disks:?}");
    let pci = hypervisor.pci_devices().await.unwrap().value;
    assert_eq!(pci.nvidia().len(), 1);
    assert!(pci.mellanox().is_empty(), "no match is an answer, not an error");
    assert!(hypervisor.is_efi().await.unwrap());
    let update = hypervisor.update_packages(&["qemu-kvm"]).await.unwrap();
    assert!(update.succeeded(), "{:?}", update.output);
    let details = Libvirt::new(site.shell.clone(), &gpu_host).host_details().await.unwrap();
    assert_eq!(details.domains.len(), servers);
    // Many commands, one TCP connection: the master is reused.
    assert_eq!(site.connections(&gpu_host), 1);
    site.shell.close(&Target::root(gpu_host.as_str())).await;
    hypervisor.os_release().await.unwrap();
    assert_eq!(site.connections(&gpu_host), 2, "closed when the host's work ended, opened again on demand");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aquilon_and_kayobe_helpers() {
    let site = site().await;
    let a100 = site.host(4);
    let aquilon_config = site.credentials.aquilon.as_ref().unwrap();
    let aquilon = Aquilon::new(site.shell.clone(), Target::new(&aquilon_config.username, &aquilon_config.host));
    assert_eq!(aquilon.model(&a100).await.unwrap(), "xma-hv-2022-a100");
    assert!(aquilon.show_host("nothere.lab.example.org").await.unwrap().is_none());

    let (ok, failing) = (site.host(1), site.host(2));
    {
        // Kayobe deploys reinstalled hosts only.
        let mut world = site.lab.world().lock();
        for host in [&ok, &failing] {
            world.host_mut(host).unwrap().os = hvmigrate_lab::world::OsRelease::rocky("9.4");
        }
        world.host_mut(&failing).unwrap().kayobe.fail_with = Some("Timeout waiting for SSH".into());
    }
    let kayobe_config = site.credentials.kayobe.as_ref().unwrap();
    // A detached job on the Kayobe host, looked at until it ends.
    let jobs = JobContext {
        folder: "hvmigrate-jobs".into(),
        poll_interval: Duration::from_millis(50),
        journal: None,
        run_id: "r1".into(),
    };
    let timeouts = KayobeTimeouts { kayobe: Duration::from_secs(60), playbook: Duration::from_secs(60) };
    let kayobe = Kayobe::new(
        site.shell.clone(),
        Target::new(&kayobe_config.username, &kayobe_config.host),
        kayobe_config.environment_path.clone(),
        jobs,
        timeouts,
    );
    let run = kayobe.host_configure(&[ok.as_str(), failing.as_str()], &[]).await.unwrap();
    assert!(!run.output.success());
    assert!(matches!(run.report.outcome(&ok), HostOutcome::Succeeded(_)), "{}", run.output.stdout);
    match run.report.outcome(&failing) {
        HostOutcome::Failed { fatals, .. } => {
            assert!(fatals.iter().any(|f| f.contains("Timeout waiting for SSH")), "{fatals:?}")
        }
        other => panic!("{failing}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_a_changed_host_key() {
    let site = site().await;
    let (slow, changed) = (site.host(1), site.host(2));
    site.lab.ssh_faults().set(&slow, SshFaultConfig { latency_ms: Some((3_000, 3_000)), ..Default::default() });
    let command = RemoteCommand::new("slow", "true").timeout(Duration::from_millis(500));
    let err = site.shell.run(&Target::root(slow.as_str()), &command).await.unwrap_err();
    assert!(matches!(err, SshError::Timeout { .. }), "{err}");

    site.lab.ssh_faults().set(&changed, SshFaultConfig { changed_host_key: true, ..Default::default() });
    let err = site.shell.run(&Target::root(changed.as_str()), &RemoteCommand::new("probe", "true")).await.unwrap_err();
    assert!(matches!(err, SshError::HostKeyMismatch { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains(&changed) && message.contains("known_hosts"), "{message}");
}
