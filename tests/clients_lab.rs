//! Each service client against the simulated site's emulators, with faults
//! injected there: 429 with Retry-After, 503, a hanging reply, and a reply
//! lost after the write was committed (no duplicate comment or silence).

use std::sync::Arc;
use std::time::Duration;

use hvmigrate::clients::alertmanager::{AlertmanagerClient, Matcher, NewSilence};
use hvmigrate::clients::jira::{CommentOptions, Doc, JiraClient, Written};
use hvmigrate::clients::netbox::{DeviceChange, NetBoxClient};
use hvmigrate::clients::nova::NovaClient;
use hvmigrate::clients::openstack::{Keystone, KeystoneSettings};
use hvmigrate::clients::RetryPolicy;
use hvmigrate::config::Credentials;
use hvmigrate_lab::{Fault, FaultConfig, Lab, LabOptions, Service, WorldOptions};

/// Quick retries, and a short bound on one attempt so a hang is cut.
fn policy() -> RetryPolicy {
    RetryPolicy {
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_secs(2),
        request_timeout: Duration::from_millis(800),
        ..RetryPolicy::default()
    }
}

async fn lab(hosts: usize) -> (Lab, Credentials) {
    let world = WorldOptions { hosts, oddities: false, ..WorldOptions::default() };
    let lab = Lab::start(LabOptions { world, ..LabOptions::default() }).await.expect("the lab starts");
    let credentials =
        Credentials::parse(std::path::Path::new("lab.yaml"), &lab.credentials_yaml()).expect("the lab's credentials");
    (lab, credentials)
}

fn host(lab: &Lab, index: usize) -> (String, String) {
    let world = lab.world().lock();
    let host = world.campaign_hosts().nth(index).expect("a campaign host");
    (host.fqdn.clone(), host.jira_key.clone().expect("a ticket"))
}

fn writes(lab: &Lab, service: Service) -> usize {
    lab.requests().writes().iter().filter(|record| record.service == service).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jira_comment_survives_a_lost_reply_and_a_rate_limit() {
    let (lab, credentials) = lab(2).await;
    let jira = JiraClient::with_policy(credentials.jira.as_ref().unwrap(), policy()).unwrap();
    let (_, key) = host(&lab, 0);
    lab.faults().push(Service::Jira, Fault::RateLimited { retry_after_secs: 1 });
    let issue = jira.issue(&key).await.expect("a 429 is waited out");
    assert_eq!(issue.status.name, "To Do");

    lab.faults().set(
        Service::Jira,
        FaultConfig { method: Some("POST".into()), next: [Fault::DropAfterCommit].into(), ..Default::default() },
    );
    let doc = Doc::new().paragraph("pre-drain done").code(Some("virsh list --all"), " Id   Name   State");
    let (_, written) = jira.add_comment_once(&key, &doc, "test-marker-1", &CommentOptions::default()).await.unwrap();
    assert_eq!(written, Written::AlreadyThere, "the retry found the committed comment");
    let (_, again) = jira.add_comment_once(&key, &doc, "test-marker-1", &CommentOptions::default()).await.unwrap();
    assert_eq!(again, Written::AlreadyThere);
    assert_eq!(lab.world().lock().jira_issue(&key).unwrap().comments.len(), 1, "one comment, not two");

    let moved = jira.transition_to(&key, "Working On Pre Bios").await.unwrap();
    assert_eq!(moved, Written::Created);
    assert_eq!(jira.transition_to(&key, "Working On Pre Bios").await.unwrap(), Written::AlreadyThere);
    let refused = jira.transition_to(&key, "Ready For Test").await.unwrap_err().to_string();
    assert!(refused.contains("available transitions") && refused.contains("Ready For Reinstall"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jira_refuses_a_long_comment_and_takes_an_attachment_once() {
    let (lab, credentials) = lab(1).await;
    let jira = JiraClient::with_policy(credentials.jira.as_ref().unwrap(), policy()).unwrap();
    let (_, key) = host(&lab, 0);
    let long = Doc::new().paragraph("y".repeat(32_768));
    let refused = jira.add_comment(&key, &long, &CommentOptions::default()).await.unwrap_err().to_string();
    assert!(refused.contains("exceeds the allowed limit of 32,767 characters"), "{refused}");
    assert!(lab.world().lock().jira_issue(&key).unwrap().comments.is_empty());

    // The answer to the upload is lost after Jira stored it: the retry finds it.
    lab.faults().set(
        Service::Jira,
        FaultConfig { method: Some("POST".into()), next: [Fault::DropAfterCommit].into(), ..Default::default() },
    );
    let text = "z".repeat(40_000);
    let (attachment, written) = jira.attach_once(&key, "output.txt", &text).await.unwrap();
    assert_eq!((attachment.filename.as_str(), attachment.size, written), ("output.txt", 40_000, Written::AlreadyThere));
    let (_, again) = jira.attach_once(&key, "output.txt", &text).await.unwrap();
    assert_eq!(again, Written::AlreadyThere);
    let world = lab.world().lock();
    let attachments = &world.jira_issue(&key).unwrap().attachments;
    assert_eq!(attachments.len(), 1, "attached once");
    assert_eq!(attachments[0].content, text, "whole");
    assert!(attachments[0].mime_type.starts_with("text/plain"), "{}", attachments[0].mime_type);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jira_search_and_create_once() {
    let (lab, credentials) = lab(3).await;
    let jira = JiraClient::with_policy(credentials.jira.as_ref().unwrap(), policy()).unwrap();
    let (fqdn, key) = host(&lab, 1);
    let found = jira.find_by_summary("MH", &fqdn).await.unwrap();
    assert_eq!(found.iter().map(|issue| issue.key.as_str()).collect::<Vec<_>>(), [key.as_str()]);
    let prefix = fqdn.split('.').next().unwrap();
    assert!(jira.find_by_summary("MH", prefix).await.unwrap().is_empty(), "a prefix is not an exact match");

    lab.faults().set(
        Service::Jira,
        FaultConfig { method: Some("POST".into()), next: [Fault::DropAfterCommit].into(), ..Default::default() },
    );
    let (created, _) = jira.create_issue_once("MH", "HyperVisor", "hv900.lab.example.org", None).await.unwrap();
    let world = lab.world().lock();
    let matching: Vec<_> = world.jira.issues.iter().filter(|issue| issue.summary == "hv900.lab.example.org").collect();
    assert_eq!(matching.len(), 1, "the lost reply did not create a second issue");
    assert_eq!(matching[0].key, created);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netbox_patches_only_what_changed_through_faults() {
    let (lab, credentials) = lab(2).await;
    let netbox = NetBoxClient::with_policy(credentials.netbox.as_ref().unwrap(), policy()).unwrap();
    let (fqdn, _) = host(&lab, 1);
    lab.faults().push(Service::NetBox, Fault::Status(503));
    lab.faults().push(Service::NetBox, Fault::Hang);
    let device = netbox.device(&fqdn).await.expect("a 503 and a hang are retried");
    assert_eq!(device.status.value, "active");
    let bmc = netbox.oob_address(&device, "bmc0").await.unwrap();
    assert!(bmc.is_some_and(|ip| ip.starts_with("10.")));

    let role = netbox.role_by_name("Openstack Prod Maintenance").await.unwrap();
    assert!(netbox.role_by_name("No Such Role").await.is_err(), "a missing role is an error");
    lab.requests().clear();
    let change = DeviceChange { status: Some("planned".into()), role: Some(role) };
    let (updated, changed) = netbox.update_device(&device, &change).await.unwrap();
    assert!(changed);
    assert_eq!(updated.status.value, "planned");
    let (_, changed_again) = netbox.update_device(&updated, &change).await.unwrap();
    assert!(!changed_again, "nothing to change: no PATCH");
    assert_eq!(writes(&lab, Service::NetBox), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nova_disables_and_enables_through_faults() {
    let (lab, credentials) = lab(2).await;
    let settings = KeystoneSettings::from_config(credentials.openstack.as_ref().unwrap()).unwrap();
    let keystone = Arc::new(Keystone::new(settings, policy()).unwrap());
    let nova = NovaClient::connect(keystone).await.unwrap();
    let (fqdn, _) = host(&lab, 0);
    lab.faults().push(Service::Nova, Fault::RateLimited { retry_after_secs: 1 });
    let service = nova.compute_service(&fqdn).await.unwrap().expect("the host's service");
    assert_eq!(service.status, "enabled");
    lab.faults().set(
        Service::Nova,
        FaultConfig { method: Some("PUT".into()), next: [Fault::DropAfterCommit].into(), ..Default::default() },
    );
    let disabled = nova.disable_service(&service, "Migration to Rocky 9 - LAB").await.unwrap();
    assert_eq!(disabled.status, "disabled");
    assert_eq!(
        lab.world().lock().host(&fqdn).unwrap().compute.disabled_reason.as_deref(),
        Some("Migration to Rocky 9 - LAB")
    );
    let enabled = nova.enable_service(&disabled).await.unwrap();
    assert_eq!(enabled.status, "enabled");
    let servers = nova.servers_on_host(&fqdn).await.unwrap();
    assert_eq!(servers.len(), lab.world().lock().servers_on(&fqdn).count());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_silence_is_made_once_despite_a_lost_reply() {
    let (lab, credentials) = lab(1).await;
    let alertmanager = AlertmanagerClient::with_policy(credentials.alertmanager.as_ref().unwrap(), policy()).unwrap();
    let (fqdn, _) = host(&lab, 0);
    let now = jiff::Timestamp::now();
    let silence = NewSilence {
        matchers: vec![Matcher::equal("hostname", &fqdn)],
        starts_at: now,
        ends_at: now + jiff::SignedDuration::from_hours(24 * 28),
        created_by: "hvmigrate".into(),
        comment: "RL9 Reinstall - LAB".into(),
    };
    lab.faults().set(
        Service::Alertmanager,
        FaultConfig { method: Some("POST".into()), next: [Fault::DropAfterCommit].into(), ..Default::default() },
    );
    let (id, _) = alertmanager.ensure_silence(&silence).await.expect("the retry finds the committed silence");
    let (again, written) = alertmanager.ensure_silence(&silence).await.unwrap();
    assert_eq!((again.as_str(), written), (id.as_str(), Written::AlreadyThere));
    assert_eq!(lab.world().lock().silences.len(), 1, "one silence, not two");
    alertmanager.expire(&id).await.unwrap();
    assert!(alertmanager.active_silences_with(&silence.matchers).await.unwrap().is_empty());
}
