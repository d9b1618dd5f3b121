//! The clients against a lab as strict as the real services (issue 14): a
//! token without the admin role, revoked tokens, short compute host names,
//! `instance` labels with a port, Jira Cloud.

mod drain_common;
mod support;

use drain_common::{plain_world, DrainSite, FAST_DRAIN};
use hvmigrate::clients::nova::{ALL_FILTERS_POLICY, EXTENDED_ATTRIBUTES_POLICY, MIGRATION_HOSTS_POLICY};
use hvmigrate::workflow::report::HostOutcome;
use hvmigrate_lab::world::Migration;
use hvmigrate_lab::{NovaPolicy, WorldOptions};
use support::lab_site::{action, json, report_of, LabSite};

const SCALE: f64 = 100.0;

/// Placement's rules the capacity check needs (`ADMIN_OR_SERVICE` by default).
const PLACEMENT_READS: [&str; 4] = [
    hvmigrate_lab::placement::LIST_PROVIDERS,
    hvmigrate_lab::placement::LIST_INVENTORIES,
    hvmigrate_lab::placement::PROVIDER_USAGES,
    hvmigrate_lab::placement::LIST_ALLOCATIONS,
];

/// A site whose credentials name Keystone's member user, under `policy`.
fn member_world(hosts: usize, policy: NovaPolicy) -> WorldOptions {
    WorldOptions { openstack_member_user: true, nova_policy: policy, ..plain_world(hosts, 2) }
}

/// Every host of the drain must stop naming `policy`, with no migration started.
async fn drain_stops_naming(site: &DrainSite, policy: &str) {
    let before = site.world().migrations.len();
    let summary = site.drain(false).await;
    for report in &summary.hosts {
        assert!(!report.outcome.is_success(), "{:?}", report.reason);
        let reason = report.reason.clone().unwrap_or_default();
        assert!(reason.contains(policy), "the reason names {policy}: {reason}");
    }
    assert_eq!(site.world().migrations.len(), before, "no migration started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_filter_dropped_by_policy_stops_the_census() {
    // Nova without `servers:allow_all_filters` lists every server of every
    // host: with two hosts, each listing holds the other's VMs.
    let site = DrainSite::start(member_world(2, NovaPolicy::operator_without_host_rules()), FAST_DRAIN, SCALE).await;
    drain_stops_naming(&site, ALL_FILTERS_POLICY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_host_hidden_by_policy_stops_the_census() {
    let policy = NovaPolicy::operator_without_host_rules()
        .granting(&[ALL_FILTERS_POLICY, MIGRATION_HOSTS_POLICY])
        .revoking(&[EXTENDED_ATTRIBUTES_POLICY]);
    let site = DrainSite::start(member_world(1, policy), FAST_DRAIN, SCALE).await;
    drain_stops_naming(&site, EXTENDED_ATTRIBUTES_POLICY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_hosts_hidden_by_policy_stop_the_census() {
    let policy = NovaPolicy::operator_without_host_rules().granting(&[ALL_FILTERS_POLICY]);
    let site = DrainSite::start(member_world(1, policy), FAST_DRAIN, SCALE).await;
    let host = site.campaign_hosts()[0].clone();
    {
        // A live migration of an interrupted run, still running from the host.
        let mut world = site.world();
        let spare = world.hosts.iter().find(|h| !h.in_campaign).expect("a spare").fqdn.clone();
        let server = world.servers.values_mut().find(|s| s.host == host).expect("a VM");
        server.status = "MIGRATING".into();
        server.task_state = Some("migrating".into());
        server.hang_migration = true;
        let server_id = server.id.clone();
        world.migrations.push(Migration {
            id: 9001,
            uuid: "7d1c3a0e-8b4f-4f55-9a1e-2b3c4d5e6f70".into(),
            server_id,
            source_compute: host.clone(),
            dest_compute: spare,
            migration_type: "live-migration".into(),
            status: "running".into(),
            old_instance_type_id: 3,
            new_instance_type_id: 3,
            created_at: "2026-01-05T09:00:00.000000".into(),
            updated_at: "2026-01-05T09:00:00.000000".into(),
            duration_secs: 1e9,
            started_at_sim: 0.0,
            previous_status: "ACTIVE".into(),
        });
    }
    drain_stops_naming(&site, MIGRATION_HOSTS_POLICY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_token_with_every_rule_drains() {
    // The same member user drains once the site grants the two rules (and
    // Placement's reads, admin-only by default, for the capacity check).
    let policy = NovaPolicy::operator_without_host_rules()
        .granting(&[ALL_FILTERS_POLICY, MIGRATION_HOSTS_POLICY])
        .granting(&PLACEMENT_READS);
    let site = DrainSite::start(member_world(1, policy), FAST_DRAIN, SCALE).await;
    // A member's context sees only its own project's servers by id (Nova
    // reads them limited to the project): put the VMs there.
    let project = site.lab.secrets().openstack_project_id.clone();
    for server in site.world().servers.values_mut() {
        server.project_id = project.clone();
    }
    let summary = site.drain(false).await;
    assert_eq!(summary.hosts[0].outcome, HostOutcome::Succeeded, "{:?}", summary.hosts[0].reason);
    assert!(site.servers_on(&site.campaign_hosts()[0]).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_token_is_renewed_once_and_the_call_repeated() {
    use hvmigrate::clients::nova::NovaClient;
    use hvmigrate::clients::openstack::{Keystone, KeystoneSettings};
    use hvmigrate::clients::RetryPolicy;
    use hvmigrate::config::Credentials;
    use hvmigrate_lab::{Lab, LabOptions, Service};

    let world = WorldOptions { hosts: 2, oddities: false, ..WorldOptions::default() };
    let lab = Lab::start(LabOptions { world, ..LabOptions::default() }).await.expect("the lab starts");
    let credentials = Credentials::parse(std::path::Path::new("lab.yaml"), &lab.credentials_yaml()).unwrap();
    let settings = KeystoneSettings::from_config(credentials.openstack.as_ref().unwrap()).unwrap();
    let keystone = std::sync::Arc::new(Keystone::new(settings, RetryPolicy::default()).unwrap());
    let nova = NovaClient::connect(keystone).await.unwrap();
    let fqdn = lab.world().lock().campaign_hosts().next().unwrap().fqdn.clone();
    let logins = |lab: &Lab| {
        lab.requests().all().iter().filter(|r| r.service == Service::Keystone && r.method == "POST").count()
    };
    let refusals = |lab: &Lab| lab.requests().all().iter().filter(|r| r.status == 401).count();
    assert_eq!(logins(&lab), 1);

    // A read after the revocation.
    assert_eq!(lab.revoke_tokens(), 1);
    let service = nova.compute_service(&fqdn).await.expect("read again with a new token").expect("its service");
    assert_eq!((logins(&lab), refusals(&lab)), (2, 1), "one 401, one new token");

    // A write after the next revocation: applied once.
    lab.revoke_tokens();
    let disabled = nova.disable_service(&service, "Migration to Rocky 9 - LAB").await.expect("written");
    assert_eq!(disabled.status, "disabled");
    assert_eq!((logins(&lab), refusals(&lab)), (3, 2));
    let puts = lab.requests().all().iter().filter(|r| r.method == "PUT" && r.status == 200).count();
    assert_eq!(puts, 1);

    // Several calls at once after a revocation share one new token.
    lab.revoke_tokens();
    let (a, b, c) =
        tokio::join!(nova.servers_on_host(&fqdn), nova.migrations(&fqdn, None), nova.compute_service(&fqdn));
    assert!(a.is_ok() && b.is_ok() && c.is_ok());
    assert_eq!(logins(&lab), 4, "one new token for all three");
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_service_hosts_drain_by_the_auto_mapping() {
    // Kolla's default: nova-compute is `hv001`, the hypervisor `hv001.lab.example.org`.
    let world = WorldOptions { short_service_hosts: true, ..plain_world(2, 3) };
    let site = DrainSite::start(world, FAST_DRAIN, SCALE).await;
    let summary = site.drain(false).await;
    for (host, report) in site.campaign_hosts().iter().zip(&summary.hosts) {
        assert_eq!(report.outcome, HostOutcome::Succeeded, "{host}: {:?}", report.reason);
        assert!(site.servers_on(host).is_empty(), "{host} drained");
        for vm in &report.vms {
            let to = vm.to.as_deref().unwrap_or_default();
            assert!(!to.contains('.'), "Nova's short name of the destination: {to}");
            assert!(!site.campaign_hosts().iter().any(|h| h.starts_with(&format!("{to}."))), "not onto a run host");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compute_host_names_are_mapped_exactly_and_said() {
    use hvmigrate::clients::nova::NovaClient;
    use hvmigrate::clients::openstack::{Keystone, KeystoneSettings};
    use hvmigrate::clients::RetryPolicy;
    use hvmigrate::config::credentials::ComputeHostNames;
    use hvmigrate::config::Credentials;
    use hvmigrate_lab::{Lab, LabOptions};

    let world = WorldOptions { short_service_hosts: true, ..plain_world(2, 1) };
    let lab = Lab::start(LabOptions { world, ..LabOptions::default() }).await.expect("the lab starts");
    let credentials = Credentials::parse(std::path::Path::new("lab.yaml"), &lab.credentials_yaml()).unwrap();
    let connect = |mode| {
        let settings = KeystoneSettings::from_config(credentials.openstack.as_ref().unwrap()).unwrap();
        let keystone = std::sync::Arc::new(Keystone::new(settings, RetryPolicy::default()).unwrap());
        async move { NovaClient::connect(keystone).await.unwrap().with_host_names(mode) }
    };
    let fqdn = lab.world().lock().campaign_hosts().next().unwrap().fqdn.clone();
    let short = fqdn.split('.').next().unwrap().to_owned();

    let auto = connect(ComputeHostNames::Auto).await;
    let names = auto.compute_host(&fqdn).await.unwrap();
    assert_eq!(names.service_host, short);
    assert_eq!(names.hypervisor_hostname.as_deref(), Some(fqdn.as_str()));
    assert!(names.mapping.contains("short name"), "{}", names.mapping);
    let service = auto.compute_service(&fqdn).await.unwrap().expect("found by its short name");
    assert_eq!(service.host, short);
    assert_eq!(auto.servers_on_host(&fqdn).await.unwrap().len(), 1);
    assert_eq!(auto.hypervisor_of(&fqdn).await.unwrap().unwrap().hypervisor_hostname, fqdn);
    // A host Nova does not know: no record, not a 404 error.
    assert!(auto.hypervisor_of("hv999.lab.example.org").await.unwrap().is_none());

    let short_mode = connect(ComputeHostNames::Short).await;
    assert!(short_mode.compute_service(&fqdn).await.unwrap().is_some());
    // The explicit FQDN mapping on this site finds no service, and says why.
    let fqdn_mode = connect(ComputeHostNames::Fqdn).await;
    assert_eq!(fqdn_mode.compute_host(&fqdn).await.unwrap().mapping, "fqdn (openstack.compute_host_names)");
    assert!(fqdn_mode.compute_service(&fqdn).await.unwrap().is_none());
    lab.shutdown().await;
}

#[test]
fn default_silences_mute_alerts_whose_instance_has_a_port() {
    // node_exporter's alerts carry only `instance="<fqdn>:9100"`, the IPMI
    // exporter's only `hostname="<fqdn>"`.
    let world =
        WorldOptions { hosts: 1, oddities: false, vms_per_host: Some(0), host_alerts: true, ..WorldOptions::default() };
    let site = LabSite::start(world);
    let host = site.campaign_hosts()[0].clone();
    {
        let mut world = site.world();
        let compute = &mut world.host_mut(&host).unwrap().compute;
        compute.status = "disabled".into();
        compute.disabled_reason = Some("Migration to Rocky 9 - LAB".into());
    }
    site.hvmigrate(&["run", "--step", "setup", "-q"]).expect_code(0);
    site.hvmigrate(&["run", "--step", "drain", "--force", "-q"]).expect_code(0);
    let out = site.hvmigrate(&["run", "--step", "pre-reinstall", "--yes", "--output", "json", "-q"]).run();
    let summary = json(&out);
    let silences = action(report_of(&summary, &host), "silences").to_string();
    assert!(silences.contains("instance=~"), "{silences}\n{}", out.report());
    assert_eq!(silences.matches("mutes 1 of the 1 alerts").count(), 2, "{silences}\n{}", out.report());
    // In the lab's own view: every alert of the host is muted by a silence.
    let world = site.world();
    let now = jiff::Timestamp::now().to_string();
    for alert in &world.alerts {
        let muted = world.silences.iter().any(|silence| {
            silence.ends_at > now && silence.matchers.iter().all(|matcher| matcher.matches(&alert.labels))
        });
        assert!(muted, "{:?} is not muted: {:?}", alert.labels, world.silences);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jira_flavour_follows_the_site_and_a_contradiction_is_refused() {
    use hvmigrate::clients::jira::JiraClient;
    use hvmigrate::config::credentials::JiraFlavour;
    use hvmigrate::config::Credentials;
    use hvmigrate_lab::{Lab, LabOptions};

    for cloud in [true, false] {
        let world = WorldOptions { hosts: 1, oddities: false, jira_cloud: cloud, ..WorldOptions::default() };
        let lab = Lab::start(LabOptions { world, ..LabOptions::default() }).await.expect("the lab starts");
        let yaml = lab.credentials_yaml();
        assert!(yaml.contains("flavour: auto"), "the lab's files use the default");
        let client = |yaml: &str| {
            let credentials = Credentials::parse(std::path::Path::new("lab.yaml"), yaml).unwrap();
            JiraClient::new(credentials.jira.as_ref().unwrap()).unwrap()
        };
        let summary = "hv900.lab.example.org";
        // `auto`: the site's own flavour; search and create work.
        let jira = client(&yaml);
        let wanted = if cloud { JiraFlavour::Cloud } else { JiraFlavour::Server };
        assert_eq!(jira.flavour().await.unwrap(), wanted);
        let (key, _) = jira.create_issue_once("MH", "HyperVisor", summary, None).await.expect("search then create");
        let (again, _) = jira.create_issue_once("MH", "HyperVisor", summary, None).await.unwrap();
        assert_eq!(key, again, "found by the search the site serves");
        // The other flavour, explicitly: refused before anything is written.
        let other = if cloud { "server" } else { "cloud" };
        let wrong = client(&yaml.replace("flavour: auto", &format!("flavour: {other}")));
        let writes = lab.requests().writes().len();
        let err = wrong.create_issue_once("MH", "HyperVisor", "hv901.lab.example.org", None).await.unwrap_err();
        let deployment = if cloud { "Cloud" } else { "Server" };
        let message = err.to_string();
        assert!(message.contains(&format!("jira.flavour is '{other}' but this Jira is {deployment}")), "{message}");
        assert_eq!(lab.requests().writes().len(), writes, "nothing written");
        if cloud {
            // What the old default did: the removed search.
            let gone = lab.requests().all().iter().filter(|r| r.status == 410).count();
            assert_eq!(gone, 0, "no request to the removed search");
        }
        lab.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transition_with_a_screen_sends_its_fields_and_reports_jira_s_field_errors() {
    use hvmigrate::clients::jira::{JiraClient, Written};
    use hvmigrate::config::Credentials;
    use hvmigrate_lab::{Lab, LabOptions};

    // The site's "Draining" transition has a screen that requires a resolution.
    let required = [("Draining".to_owned(), vec!["resolution".to_owned()])].into();
    let world = WorldOptions { hosts: 1, oddities: false, jira_required_fields: required, ..WorldOptions::default() };
    let lab = Lab::start(LabOptions { world, ..LabOptions::default() }).await.expect("the lab starts");
    let key = lab.world().lock().campaign_hosts().next().unwrap().jira_key.clone().unwrap();
    let client = |extra: &str| {
        let yaml =
            lab.credentials_yaml().replace("  issue_type: HyperVisor\n", &format!("  issue_type: HyperVisor\n{extra}"));
        let credentials = Credentials::parse(std::path::Path::new("lab.yaml"), &yaml).unwrap();
        JiraClient::new(credentials.jira.as_ref().unwrap()).unwrap()
    };

    let err = client("").transition_to(&key, "Draining").await.unwrap_err().to_string();
    assert!(err.contains("resolution: Resolution is required."), "Jira's field error: {err}");
    assert!(err.contains("jira.transition_fields.\"Draining\""), "what to set: {err}");
    assert_eq!(lab.world().lock().jira_issue(&key).unwrap().status, "To Do");

    let wrong = client("  transition_fields:\n    Draining: {resolution: {name: Finished}}\n");
    let err = wrong.transition_to(&key, "Draining").await.unwrap_err().to_string();
    assert!(err.contains("Could not find valid 'id' or 'name' in resolution object"), "{err}");

    let set = client("  transition_fields:\n    draining: {resolution: {name: Done}}\n");
    assert_eq!(set.transition_to(&key, "Draining").await.unwrap(), Written::Created);
    assert_eq!(lab.world().lock().jira_issue(&key).unwrap().status, "Draining");
    // The fields go only with their own transition: the next one has no screen.
    assert_eq!(set.transition_to(&key, "Drained").await.unwrap(), Written::Created);
    lab.shutdown().await;
}

/// Fills each spare host so that Placement leaves it `left` VCPU short of
/// nothing: `capacity - used - filler = left`.
fn fill_spares(site: &DrainSite, left: u64) {
    let mut world = site.world();
    let template = world.servers.values().next().expect("a VM").clone();
    let used = hvmigrate_lab::placement::usages(&world)
        .into_iter()
        .map(|(host, used)| (host.to_owned(), used.get("VCPU").copied().unwrap_or(0)))
        .collect::<std::collections::BTreeMap<_, _>>();
    let spares: Vec<_> = world.hosts.iter().filter(|h| !h.in_campaign).cloned().collect();
    for (n, spare) in spares.iter().enumerate() {
        let capacity = hvmigrate_lab::placement::inventories(spare)["VCPU"].capacity() as u64;
        let filler = capacity - used.get(&spare.fqdn).copied().unwrap_or(0) - left;
        let mut server = template.clone();
        server.id = format!("f111e700-0000-4000-8000-{n:012}");
        server.name = format!("filler-{n}");
        server.instance_name = format!("instance-f111{n:04x}");
        server.host = spare.fqdn.clone();
        server.vcpus = u32::try_from(filler).expect("a VM's size");
        server.ram_mb = 1024;
        server.disk_gb = 1;
        world.servers.insert(server.id.clone(), server);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_is_counted_as_placement_counts_it() {
    use hvmigrate_lab::world::HostAllocation;

    // The site's nova.conf: CPU over-commit 2.0, 4 cores and 16 GiB kept for
    // the host. By Nova's default ratio (4.0) the spares would have hundreds
    // of VCPU free; by Placement, less than the smallest VM.
    let world = WorldOptions { allocation: HostAllocation::site_tuned(), ..plain_world(1, 3) };
    let site = DrainSite::start(world, FAST_DRAIN, SCALE).await;
    let host = site.campaign_hosts()[0].clone();
    let smallest = site.world().servers_on(&host).map(|server| u64::from(server.vcpus)).min().expect("VMs");
    fill_spares(&site, smallest - 1);
    let before = site.world().migrations.len();
    let summary = site.drain(false).await;
    let report = &summary.hosts[0];
    let reason = report.reason.clone().unwrap_or_default();
    assert!(!report.outcome.is_success(), "blocked before any migration: {reason}");
    assert!(reason.contains("not enough room") && reason.contains("free in Placement"), "{reason}");
    assert_eq!(site.world().migrations.len(), before, "no migration started");
    assert_eq!(site.servers_on(&host).len(), 3);

    // The operator frees room on one spare (Nova's defaults there): it drains.
    {
        let mut world = site.world();
        let spare = world.hosts.iter_mut().find(|h| !h.in_campaign).expect("a spare");
        spare.allocation = HostAllocation::nova_defaults();
    }
    let summary = site.drain(false).await;
    assert_eq!(summary.hosts[0].outcome, HostOutcome::Succeeded, "{:?}", summary.hosts[0].reason);
    assert!(site.servers_on(&host).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_check_names_the_placement_rule_the_token_lacks() {
    let policy = NovaPolicy::operator_without_host_rules().granting(&[ALL_FILTERS_POLICY, MIGRATION_HOSTS_POLICY]);
    let site = DrainSite::start(member_world(1, policy), FAST_DRAIN, SCALE).await;
    let project = site.lab.secrets().openstack_project_id.clone();
    for server in site.world().servers.values_mut() {
        server.project_id = project.clone();
    }
    drain_stops_naming(&site, hvmigrate_lab::placement::LIST_PROVIDERS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_search_lag_does_not_duplicate_an_issue_just_created() {
    use hvmigrate::clients::jira::{JiraClient, Written};
    use hvmigrate::config::Credentials;
    use hvmigrate_lab::{Lab, LabOptions};

    // Jira Cloud's index shows a new issue only three searches later.
    let world =
        WorldOptions { hosts: 1, oddities: false, jira_cloud: true, jira_search_lag: 3, ..WorldOptions::default() };
    let lab = Lab::start(LabOptions { world, ..LabOptions::default() }).await.expect("the lab starts");
    let client = || {
        let credentials = Credentials::parse(std::path::Path::new("lab.yaml"), &lab.credentials_yaml()).unwrap();
        JiraClient::new(credentials.jira.as_ref().unwrap()).unwrap()
    };
    let jira = client();
    let summary = "hv900.lab.example.org";
    let (key, written) = jira.create_issue_once("MH", "HyperVisor", summary, None).await.unwrap();
    assert_eq!(written, Written::Created);
    // Search, then create, again: the search reconciles the issue just created.
    let (again, written) = jira.create_issue_once("MH", "HyperVisor", summary, None).await.unwrap();
    assert_eq!((again.as_str(), written), (key.as_str(), Written::AlreadyThere));
    let same = lab.world().lock().jira.issues.iter().filter(|issue| issue.summary == summary).count();
    assert_eq!(same, 1, "no duplicate");
    assert!(lab.requests().all().iter().any(|r| r.path.contains("reconcileIssues=")), "asked to reconcile");
    // The lag is real: a client that did not create it does not see it yet.
    assert!(client().find_by_summary("MH", summary).await.unwrap().is_empty());
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_of_the_hypervisors_file_names_the_host_in_nova() {
    // Nova knows the host by its short name, the settings say `fqdn` for the
    // whole site: the host's line says what Nova calls it.
    let world = WorldOptions { short_service_hosts: true, ..plain_world(1, 2) };
    let site = DrainSite::start(world, FAST_DRAIN, SCALE).await;
    let host = site.campaign_hosts()[0].clone();
    let short = host.split('.').next().unwrap().to_owned();
    let creds = std::fs::read_to_string(&site.paths.creds_file).unwrap();
    let creds = creds.replace("  interface: public\n", "  interface: public\n  compute_host_names: fqdn\n");
    std::fs::write(&site.paths.creds_file, creds).unwrap();
    let list = std::fs::read_to_string(&site.paths.hypervisors_file).unwrap();
    let line = list.lines().find(|line| line.starts_with(&host)).unwrap().to_owned();
    let list = list.replace(&line, &format!("{line} nova_host={short} nova_hypervisor={host}"));
    std::fs::write(&site.paths.hypervisors_file, list).unwrap();
    let summary = site.drain(false).await;
    assert_eq!(summary.hosts[0].outcome, HostOutcome::Succeeded, "{:?}", summary.hosts[0].reason);
    assert!(site.servers_on(&host).is_empty());
}
