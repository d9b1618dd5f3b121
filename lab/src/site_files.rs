//! The files an operator points hvmigrate at: a ready `credentials.yaml`
//! (mode 0600) and `hypervisors.txt` for the running lab.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::Lab;

/// Paths of the files written for a lab.
#[derive(Clone, Debug)]
pub struct SiteFiles {
    pub credentials: PathBuf,
    pub hypervisors: PathBuf,
    /// `ssh_config`, `known_hosts` and the key pair, when the SSH hosts run.
    pub ssh: Option<crate::ssh::SshFiles>,
}

impl Lab {
    /// Writes `credentials.yaml` and `hypervisors.txt` into `dir` (created, mode 0700),
    /// and, when the SSH hosts run, the SSH files into `dir/ssh` with the
    /// `ssh`, `aquilon` and `kayobe` sections pointing at them.
    /// `extra_credentials` is appended to the YAML.
    pub fn write_site_files(&self, dir: &Path, extra_credentials: &str) -> std::io::Result<SiteFiles> {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let hypervisors = dir.join("hypervisors.txt");
        let mut list = String::from("# The campaign hosts of the simulated site, with their Jira tickets.\n");
        for host in self.world().lock().campaign_hosts() {
            list.push_str(&format!("{} {}\n", host.fqdn, host.jira_key.as_deref().unwrap_or_default()));
        }
        std::fs::write(&hypervisors, list)?;
        let credentials = dir.join("credentials.yaml");
        let mut ssh_files = None;
        let mut ssh_sections = String::new();
        if let Some(ssh) = self.ssh() {
            let files = ssh.write_files(&dir.join("ssh"))?;
            let (aquilon, kayobe) = {
                let world = self.world().lock();
                (world.aquilon_host_name(), world.kayobe_host_name())
            };
            ssh_sections = ssh.credentials_yaml(&files, &aquilon, &kayobe);
            ssh_files = Some(files);
        }
        let text = format!("{}{ssh_sections}{extra_credentials}", self.credentials_yaml());
        let mut file =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&credentials)?;
        file.write_all(text.as_bytes())?;
        Ok(SiteFiles { credentials, hypervisors, ssh: ssh_files })
    }

    /// The service sections of a credentials file for this lab.
    pub fn credentials_yaml(&self) -> String {
        let urls = self.urls();
        let secrets = self.secrets();
        let (project, member) = {
            let world = self.world().lock();
            (world.jira.project_key.clone(), world.openstack_member_user)
        };
        let (os_user, os_password) = if member {
            (&secrets.openstack_member_username, &secrets.openstack_member_password)
        } else {
            (&secrets.openstack_username, &secrets.openstack_password)
        };
        format!(
            "# Written by the simulated site; every service is on 127.0.0.1, over plain http\n\
             # (allow_insecure_http: true), which a real site must not need.\n\
             general:\n  initials: LAB\n\
             jira:\n  url: {jira}\n  allow_insecure_http: true\n  flavour: auto\n  username: {jira_user}\n  api_token: {jira_token}\n  project: {project}\n  issue_type: HyperVisor\n\
             netbox:\n  url: {netbox}\n  allow_insecure_http: true\n  token: {netbox_token}\n\
             openstack:\n  auth_url: {keystone}\n  allow_insecure_http: true\n  username: {os_user}\n  password: {os_password}\n  project_name: {os_project}\n  user_domain_name: Default\n  project_domain_name: Default\n  region_name: RegionOne\n  interface: public\n\
             alertmanager:\n  url: {alertmanager}\n  allow_insecure_http: true\n\
             scc:\n  url: {scc}\n  allow_insecure_http: true\n  username: {scc_user}\n  password: {scc_password}\n",
            jira = urls.jira,
            jira_user = secrets.jira_username,
            jira_token = secrets.jira_api_token,
            netbox = urls.netbox,
            netbox_token = secrets.netbox_token,
            keystone = urls.keystone,
            os_project = secrets.openstack_project,
            alertmanager = urls.alertmanager,
            scc = urls.scc,
            scc_user = secrets.scc_username,
            scc_password = secrets.scc_password,
        )
    }
}
