//! The credentials file: one section per service, plus `general` and `workflow`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use url::Url;

use crate::config::input::{check_yaml_expansion, read_capped};
use crate::config::workflow::Workflow;
use crate::error::{Error, InputProblem, Result};
use crate::secret::Secret;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub general: Option<General>,
    pub jira: Option<Jira>,
    pub netbox: Option<NetBox>,
    pub openstack: Option<OpenStack>,
    pub alertmanager: Option<Alertmanager>,
    pub ssh: Option<Ssh>,
    pub aquilon: Option<Aquilon>,
    pub kayobe: Option<Kayobe>,
    pub scc: Option<Scc>,
    #[serde(default)]
    pub workflow: Workflow,
    /// The team's PostgreSQL ledger (`--state postgres://…`).
    pub state: Option<StateLedger>,
}

/// `state:`: what a PostgreSQL `--state` needs beyond its URL.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateLedger {
    /// Used when neither PGPASSWORD nor ~/.pgpass has one.
    pub password: Option<Secret>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct General {
    /// The operator's initials, used in disable reasons and silence comments.
    pub initials: String,
    /// A PEM bundle of private CAs trusted by every service, on top of the system's roots.
    pub ca_file: Option<PathBuf>,
}

/// How a service's section says it is reached, beyond its URL.
#[derive(Clone, Debug, Default)]
pub struct Transport {
    /// The section, for messages.
    pub section: &'static str,
    /// `allow_insecure_http: true`: credentials may go over plain `http://`.
    pub allow_insecure_http: bool,
    /// PEM bundles added to the system's roots: `general.ca_file`, then the section's.
    pub ca_files: Vec<PathBuf>,
}

impl Transport {
    /// https only, the system's roots only.
    pub fn for_section(section: &'static str) -> Self {
        Transport { section, ..Transport::default() }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JiraFlavour {
    /// Jira Server / Data Center: REST v2, wiki-markup text.
    Server,
    /// Jira Cloud: REST v3, Atlassian Document Format.
    Cloud,
    /// Whichever the site's `serverInfo.deploymentType` says.
    #[default]
    Auto,
}

impl JiraFlavour {
    pub fn as_str(self) -> &'static str {
        match self {
            JiraFlavour::Server => "server",
            JiraFlavour::Cloud => "cloud",
            JiraFlavour::Auto => "auto",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jira {
    pub url: HttpUrl,
    #[serde(default)]
    pub flavour: JiraFlavour,
    #[serde(default)]
    pub allow_insecure_http: bool,
    pub ca_file: Option<PathBuf>,
    /// Resolved from the keys above and `general.ca_file` when the file is loaded.
    #[serde(skip)]
    pub transport: Transport,
    pub username: Option<String>,
    pub api_token: Option<Secret>,
    pub personal_access_token: Option<Secret>,
    pub project: String,
    #[serde(default = "default_issue_type")]
    pub issue_type: String,
    /// Fields the site's transition screens require, by target status (or
    /// transition name), sent with the transition: `Done: {resolution: {name: Done}}`.
    #[serde(default)]
    pub transition_fields: std::collections::BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
}

/// How to authenticate to Jira, decided once from the file.
#[derive(Debug)]
pub enum JiraAuth<'a> {
    Basic { username: &'a str, token: &'a Secret },
    Bearer(&'a Secret),
}

impl Jira {
    pub fn auth(&self) -> JiraAuth<'_> {
        match (&self.username, &self.api_token, &self.personal_access_token) {
            (Some(username), Some(token), None) => JiraAuth::Basic { username, token },
            (_, None, Some(token)) => JiraAuth::Bearer(token),
            _ => unreachable!("validated when the file was loaded"),
        }
    }
}

fn default_issue_type() -> String {
    "HyperVisor".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetBox {
    pub url: HttpUrl,
    #[serde(default)]
    pub allow_insecure_http: bool,
    pub ca_file: Option<PathBuf>,
    /// Resolved from the keys above and `general.ca_file` when the file is loaded.
    #[serde(skip)]
    pub transport: Transport,
    pub token: Secret,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenStack {
    pub auth_url: Option<HttpUrl>,
    #[serde(default)]
    pub allow_insecure_http: bool,
    pub ca_file: Option<PathBuf>,
    /// Resolved from the keys above and `general.ca_file` when the file is loaded.
    #[serde(skip)]
    pub transport: Transport,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub project_name: Option<String>,
    #[serde(default = "default_domain")]
    pub user_domain_name: String,
    #[serde(default = "default_domain")]
    pub project_domain_name: String,
    pub application_credential_id: Option<String>,
    pub application_credential_secret: Option<Secret>,
    /// An entry of the user's `clouds.yaml` instead of the fields above.
    pub cloud: Option<String>,
    pub region_name: Option<String>,
    #[serde(default = "default_interface")]
    pub interface: String,
    /// How a host of the hypervisors file is named in Nova.
    #[serde(default)]
    pub compute_host_names: ComputeHostNames,
}

/// How the hypervisors file's FQDNs map to Nova's compute host names
/// (`service.host`, `OS-EXT-SRV-ATTR:host`, migrations, aggregates). Kolla
/// registers nova-compute under the short name by default, while libvirt's
/// `hypervisor_hostname` is the FQDN.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ComputeHostNames {
    /// Nova's service host is the FQDN.
    Fqdn,
    /// Nova's service host is the first label of the FQDN.
    Short,
    /// Whichever Nova's hypervisor record of the host says.
    #[default]
    Auto,
}

/// The one way of authenticating to Keystone that the section describes.
#[derive(Debug)]
pub enum OpenStackAuth<'a> {
    Password { auth_url: &'a HttpUrl, username: &'a str, password: &'a Secret, project_name: &'a str },
    ApplicationCredential { auth_url: &'a HttpUrl, id: &'a str, secret: &'a Secret },
    Cloud(&'a str),
}

impl OpenStack {
    pub fn auth(&self) -> OpenStackAuth<'_> {
        if let Some(cloud) = &self.cloud {
            return OpenStackAuth::Cloud(cloud);
        }
        let auth_url = self.auth_url.as_ref().expect("validated when the file was loaded");
        match (&self.application_credential_id, &self.application_credential_secret) {
            (Some(id), Some(secret)) => OpenStackAuth::ApplicationCredential { auth_url, id, secret },
            _ => OpenStackAuth::Password {
                auth_url,
                username: self.username.as_deref().expect("validated"),
                password: self.password.as_ref().expect("validated"),
                project_name: self.project_name.as_deref().expect("validated"),
            },
        }
    }
}

fn default_domain() -> String {
    "Default".to_owned()
}

fn default_interface() -> String {
    "public".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alertmanager {
    pub url: HttpUrl,
    #[serde(default)]
    pub allow_insecure_http: bool,
    pub ca_file: Option<PathBuf>,
    /// Resolved from the keys above and `general.ca_file` when the file is loaded.
    #[serde(skip)]
    pub transport: Transport,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ssh {
    /// The unprivileged account used by `setup` to grant root access.
    pub username: String,
    pub key_path: PathBuf,
    pub known_hosts: PathBuf,
    /// An `ssh_config` file to use instead of the user's own.
    pub config_file: Option<PathBuf>,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    #[serde(default = "default_command_timeout")]
    pub command_timeout_secs: u64,
    #[serde(default)]
    pub sudo: Sudo,
    /// What to do when a host comes back from its reinstall with new SSH host keys.
    #[serde(default)]
    pub reinstalled_host_keys: ReinstalledHostKeys,
    /// The tool's own known-hosts file, where it pins a reinstalled host's
    /// new key once its identity is checked (default: `hvmigrate_known_hosts`
    /// beside `known_hosts`). Set it to `known_hosts` to pin in the operator's file.
    #[serde(default)]
    pub pinned_known_hosts: Option<PathBuf>,
}

/// `ssh.reinstalled_host_keys`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReinstalledHostKeys {
    /// Accept a changed key on first contact, only for a host expected back
    /// from its reinstall, check its canonical facts at once, and only then pin it.
    #[default]
    VerifyIdentity,
    /// Hosts present certificates of a host CA (`@cert-authority` in
    /// known_hosts): a new key signed by it needs no change; any other is refused.
    SshCa,
    /// Refuse every changed key; the operator checks and replaces it.
    Strict,
}

impl ReinstalledHostKeys {
    pub fn name(self) -> &'static str {
        match self {
            ReinstalledHostKeys::VerifyIdentity => "verify-identity",
            ReinstalledHostKeys::SshCa => "ssh-ca",
            ReinstalledHostKeys::Strict => "strict",
        }
    }
}

fn default_connect_timeout() -> u64 {
    10
}

fn default_command_timeout() -> u64 {
    600
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sudo {
    /// Run `sudo -n`; with a password it is fed on standard input (`sudo -S`).
    #[serde(default = "default_true")]
    pub enabled: bool,
    pub password: Option<Secret>,
}

impl Default for Sudo {
    fn default() -> Self {
        Sudo { enabled: true, password: None }
    }
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aquilon {
    pub host: String,
    pub username: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kayobe {
    pub host: String,
    pub username: String,
    /// The script that sets up the Kayobe environment (`env-vars.sh`).
    pub environment_path: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scc {
    pub url: HttpUrl,
    #[serde(default)]
    pub allow_insecure_http: bool,
    pub ca_file: Option<PathBuf>,
    /// Resolved from the keys above and `general.ca_file` when the file is loaded.
    #[serde(skip)]
    pub transport: Transport,
    pub username: String,
    pub password: Secret,
    /// Where sockets, cores and threads come from.
    #[serde(default)]
    pub topology: SccTopology,
}

/// How a host's CPU counts are reported to SCC.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SccTopology {
    /// As virtual-host-gatherer reports them (what the SUSE collector sends):
    /// libvirt's `host/cpu/topology` — `sockets`, `cores × sockets`,
    /// `threads × cores` — which counts one NUMA cell on most multi-socket hosts.
    #[default]
    Libvirt,
    /// The whole host: distinct sockets, cores and CPUs over every NUMA cell.
    NumaTotals,
}

/// An absolute `http` or `https` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl(Url);

impl HttpUrl {
    pub fn as_url(&self) -> &Url {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl std::fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for HttpUrl {
    /// The URL's text is never quoted back: it may hold a password.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let url = Url::parse(&text).map_err(|err| serde::de::Error::custom(format!("not a valid URL ({err})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(serde::de::Error::custom("not a valid URL: the scheme must be http or https"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(serde::de::Error::custom(
                "a URL must not carry a user name or password; use the section's own keys",
            ));
        }
        // A query or fragment would be dropped or mangled when paths are joined to the URL.
        if url.query().is_some() || url.fragment().is_some() {
            return Err(serde::de::Error::custom(
                "a service URL must not have a query (?…) or fragment (#…); give the base URL only",
            ));
        }
        Ok(HttpUrl(url))
    }
}

impl Credentials {
    /// Reads and validates the file. Permissions are checked separately
    /// ([`crate::fs_security`]) before this is called.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = read_capped(path, "the credentials file").map_err(Error::input)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::input(InputProblem::new(path, "cannot read the credentials file: not valid UTF-8")))?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if text.trim().is_empty() {
            return Err(Error::input(InputProblem::new(path, "the credentials file is empty")));
        }
        check_yaml_expansion(path, "the credentials file", text).map_err(Error::input)?;
        let mut credentials: Credentials =
            serde_yaml_ng::from_str(text).map_err(|err| Error::input(yaml_problem(path, text, &err)))?;
        credentials.resolve_transports();
        let problems = credentials.validate(path);
        if problems.is_empty() {
            Ok(credentials)
        } else {
            Err(Error::Input(problems))
        }
    }

    /// Each service's [`Transport`] from its own keys and `general.ca_file`.
    fn resolve_transports(&mut self) {
        let global = self.general.as_ref().and_then(|general| general.ca_file.clone());
        let resolve = |section: &'static str, allow_insecure_http: bool, own: &Option<PathBuf>| Transport {
            section,
            allow_insecure_http,
            ca_files: global.iter().chain(own).map(|file| expand_home(file)).collect(),
        };
        if let Some(jira) = &mut self.jira {
            jira.transport = resolve("jira", jira.allow_insecure_http, &jira.ca_file);
        }
        if let Some(netbox) = &mut self.netbox {
            netbox.transport = resolve("netbox", netbox.allow_insecure_http, &netbox.ca_file);
        }
        if let Some(openstack) = &mut self.openstack {
            openstack.transport = resolve("openstack", openstack.allow_insecure_http, &openstack.ca_file);
        }
        if let Some(alertmanager) = &mut self.alertmanager {
            alertmanager.transport = resolve("alertmanager", alertmanager.allow_insecure_http, &alertmanager.ca_file);
        }
        if let Some(scc) = &mut self.scc {
            scc.transport = resolve("scc", scc.allow_insecure_http, &scc.ca_file);
        }
    }

    /// The URL key, URL and transport of each service section present.
    fn service_urls(&self) -> Vec<(&'static str, &HttpUrl, &Transport)> {
        let mut urls = Vec::new();
        if let Some(jira) = &self.jira {
            urls.push(("url", &jira.url, &jira.transport));
        }
        if let Some(netbox) = &self.netbox {
            urls.push(("url", &netbox.url, &netbox.transport));
        }
        if let Some(openstack) = &self.openstack {
            if let Some(url) = &openstack.auth_url {
                urls.push(("auth_url", url, &openstack.transport));
            }
        }
        if let Some(alertmanager) = &self.alertmanager {
            urls.push(("url", &alertmanager.url, &alertmanager.transport));
        }
        if let Some(scc) = &self.scc {
            urls.push(("url", &scc.url, &scc.transport));
        }
        urls
    }

    /// Every `ca_file` key given, with its section.
    fn ca_files(&self) -> Vec<(&'static str, &PathBuf)> {
        let keys = [
            ("general", self.general.as_ref().and_then(|general| general.ca_file.as_ref())),
            ("jira", self.jira.as_ref().and_then(|jira| jira.ca_file.as_ref())),
            ("netbox", self.netbox.as_ref().and_then(|netbox| netbox.ca_file.as_ref())),
            ("openstack", self.openstack.as_ref().and_then(|openstack| openstack.ca_file.as_ref())),
            ("alertmanager", self.alertmanager.as_ref().and_then(|alertmanager| alertmanager.ca_file.as_ref())),
            ("scc", self.scc.as_ref().and_then(|scc| scc.ca_file.as_ref())),
        ];
        keys.into_iter().filter_map(|(section, file)| Some((section, file?))).collect()
    }

    /// Rules that span several keys, which serde cannot express.
    fn validate(&self, path: &Path) -> Vec<InputProblem> {
        let mut problems = Vec::new();
        let mut problem = |message: String| problems.push(InputProblem::new(path, message));
        if let Some(general) = &self.general {
            if general.initials.trim().is_empty() {
                problem("general.initials must not be empty".into());
            }
        }
        if let Some(jira) = &self.jira {
            match (&jira.username, &jira.api_token, &jira.personal_access_token) {
                (Some(_), Some(_), None) | (None, None, Some(_)) => {}
                (_, Some(_), Some(_)) => {
                    problem("jira: give either api_token or personal_access_token, not both".into())
                }
                (None, Some(_), None) => problem("jira: api_token needs a username".into()),
                (Some(_), None, Some(_)) => {
                    problem("jira: a personal_access_token is used without a username; remove username".into())
                }
                (_, None, None) => problem("jira: missing api_token (with username) or personal_access_token".into()),
            }
            if jira.project.is_empty() {
                problem("jira.project must not be empty".into());
            }
        }
        if let Some(openstack) = &self.openstack {
            if let Some(message) = openstack_problem(openstack) {
                problem(format!("openstack: {message}"));
            }
        }
        if let Some(alertmanager) = &self.alertmanager {
            if alertmanager.username.is_some() != alertmanager.password.is_some() {
                problem("alertmanager: basic auth needs both username and password".into());
            }
        }
        if let Some(ssh) = &self.ssh {
            if ssh.connect_timeout_secs == 0 || ssh.command_timeout_secs == 0 {
                problem("ssh: timeouts must be at least 1 second".into());
            }
        }
        // These reach the ssh command line: a name like `-oProxyCommand=…` must not become an option.
        let remote_hosts = [
            self.aquilon.as_ref().map(|a| ("aquilon", a.host.as_str(), a.username.as_str())),
            self.kayobe.as_ref().map(|k| ("kayobe", k.host.as_str(), k.username.as_str())),
        ];
        for (section, host, username) in remote_hosts.into_iter().flatten() {
            if let Err(why) = super::HostName::parse(host) {
                problem(format!("{section}.host: {why}"));
            }
            if let Some(why) = login_name_problem(username) {
                problem(format!("{section}.username: {why}"));
            }
        }
        if let Some(kayobe) = &self.kayobe {
            if let Some(why) = remote_path_problem(&kayobe.environment_path) {
                problem(format!("kayobe.environment_path: {why}"));
            }
        }
        for (key, url, transport) in self.service_urls() {
            let section = transport.section;
            if url.as_url().scheme() == "http" && !transport.allow_insecure_http {
                problem(format!(
                    "{section}.{key}: plain http:// would send the credentials unencrypted; use https://, or set \
                     'allow_insecure_http: true' in the '{section}' section if this network is trusted"
                ));
            }
        }
        for (section, file) in self.ca_files() {
            if let Err(message) = crate::clients::http::load_ca_file(&expand_home(file)) {
                problem(format!("{section}.{message}"));
            }
        }
        problems.extend(self.workflow.validate(path));
        problems
    }

    /// Names of the service sections present, in file order of the schema.
    pub fn configured_services(&self) -> Vec<(&'static str, bool)> {
        vec![
            ("jira", self.jira.is_some()),
            ("netbox", self.netbox.is_some()),
            ("openstack", self.openstack.is_some()),
            ("alertmanager", self.alertmanager.is_some()),
            ("ssh", self.ssh.is_some()),
            ("aquilon", self.aquilon.is_some()),
            ("kayobe", self.kayobe.is_some()),
            ("scc", self.scc.is_some()),
        ]
    }
}

/// A login name as `useradd` accepts it (letters, digits, `.`, `_`, `-`, not first `-`).
fn login_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.starts_with('-') {
        return Some(format!("invalid login name '{name}': it must not start with '-'"));
    }
    name.chars()
        .find(|c| !c.is_ascii_alphanumeric() && !matches!(c, '.' | '_' | '-'))
        .map(|bad| format!("invalid login name '{name}': it contains '{bad}'"))
}

/// A path on a remote host: absolute, relative to the login's home, or `~/…`
/// (expanded there as `$HOME`). `~user` is not expanded; `-…` would be an option.
fn remote_path_problem(path: &str) -> Option<String> {
    if path.is_empty() {
        return Some("must not be empty".into());
    }
    if path.starts_with('~') && path != "~" && !path.starts_with("~/") {
        return Some(format!("'{path}': only '~/' (the login's own home) is expanded; give an absolute path"));
    }
    if path.starts_with('-') {
        return Some(format!("'{path}' must not start with '-'"));
    }
    None
}

fn openstack_problem(os: &OpenStack) -> Option<String> {
    let password = os.username.is_some() || os.password.is_some() || os.project_name.is_some();
    let app_credential = os.application_credential_id.is_some() || os.application_credential_secret.is_some();
    let ways = [password, app_credential, os.cloud.is_some()].iter().filter(|way| **way).count();
    if ways != 1 {
        return Some(
            "give exactly one of: auth_url with username/password/project_name; auth_url with \
             application_credential_id/application_credential_secret; or cloud (a clouds.yaml entry)"
                .into(),
        );
    }
    if os.cloud.is_some() {
        return os.auth_url.as_ref().map(|_| "auth_url comes from clouds.yaml when cloud is given; remove it".into());
    }
    if os.auth_url.is_none() {
        return Some("missing auth_url".into());
    }
    if password && (os.username.is_none() || os.password.is_none() || os.project_name.is_none()) {
        return Some("password authentication needs username, password and project_name".into());
    }
    if app_credential && (os.application_credential_id.is_none() || os.application_credential_secret.is_none()) {
        return Some(
            "application credentials need both application_credential_id and application_credential_secret".into(),
        );
    }
    None
}

/// `~/…` under the user's home folder, as a shell would.
fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => Path::new(&home).join(rest),
        _ => path.to_owned(),
    }
}

/// A YAML or schema error without the values it quotes: serde's messages
/// quote the offending value (`invalid type: string "<the token>"`), and in
/// this file any value may be a secret. What stays: the key's path, what was
/// found (a string, a number…) and what was wanted.
pub fn yaml_message_without_values(err: &serde_yaml_ng::Error) -> String {
    let mut message = err.to_string();
    // The location is reported separately; drop serde_yaml's own suffix.
    if let Some(at) = message.rfind(" at line ") {
        message.truncate(at);
    }
    without_values(&message)
}

fn without_values(message: &str) -> String {
    for marker in ["invalid type: ", "invalid value: "] {
        let Some(start) = message.find(marker).map(|at| at + marker.len()) else { continue };
        // What comes after the value is serde's own text: the last ", expected".
        let Some(end) = message.rfind(", expected ").filter(|end| *end >= start) else {
            return format!("{}a value that does not fit", &message[..start]);
        };
        let found = &message[start..end];
        let kind = [
            ("string", "a string"),
            ("integer", "an integer"),
            ("floating point", "a number"),
            ("boolean", "a boolean"),
            ("char", "a character"),
        ]
        .iter()
        .find(|(prefix, _)| found.starts_with(prefix))
        .map_or(if found.contains(['"', '`', '\'']) { "a value" } else { found }, |(_, kind)| kind);
        return format!("{}{kind}{}", &message[..start], &message[end..]);
    }
    if let Some(start) = message.find("unknown variant `").map(|at| at + "unknown variant ".len()) {
        if let Some(end) = message.rfind("`, expected ").filter(|end| *end >= start) {
            return format!("{}value{}", &message[..start], &message[end + 1..]);
        }
    }
    message.to_owned()
}

/// Turns a YAML or schema error into a located problem, with a suggestion
/// for a misspelt key; the key's full path is named (`jira.url`), never its value.
fn yaml_problem(path: &Path, text: &str, err: &serde_yaml_ng::Error) -> InputProblem {
    let mut message = yaml_message_without_values(err);
    if let Some(suggestion) = suggest_key(&message) {
        message.push_str(&suggestion);
    }
    let mut message = message
        .replace("unknown field", "unknown key")
        .replace("missing field", "missing key")
        .replace("duplicate field", "duplicate key")
        .replace("expected struct ", "expected a map of keys: ")
        .replace("expected u64", "expected a whole number")
        .replace("expected f64", "expected a number");
    let (line, column) = match err.location() {
        Some(location) => (Some(location.line()), Some(location.column())),
        None => (None, None),
    };
    // A check of a value (a URL) is reported at its key, under the section's path: add the key.
    if let Some(key) = line.and_then(|line| key_on_line(text, line)) {
        if let Some((key_path, rest)) = message.split_once(": ") {
            let is_path =
                !key_path.is_empty() && key_path.chars().all(|c| c.is_ascii_alphanumeric() || "._".contains(c));
            let named = key_path == key || key_path.ends_with(&format!(".{key}")) || rest.contains(&format!("`{key}`"));
            if is_path && !named {
                message = format!("{key_path}.{key}: {rest}");
            }
        }
    }
    InputProblem { file: path.to_owned(), line, column, message }
}

/// The key at the start of a line (`  url: …` gives `url`).
fn key_on_line(text: &str, line: usize) -> Option<&str> {
    let content = text.lines().nth(line.checked_sub(1)?)?.trim_start();
    let key = content.split_once(':')?.0;
    (!key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).then_some(key)
}

/// From "unknown field `x`, expected one of `a`, `b`", the closest valid key.
fn suggest_key(message: &str) -> Option<String> {
    let rest = &message[message.find("unknown field `")? + "unknown field `".len()..];
    let unknown = &rest[..rest.find('`')?];
    let expected = &rest[rest.find("expected")?..];
    let candidates = expected.split('`').skip(1).step_by(2);
    let (best, score) = candidates
        .map(|candidate| (candidate, strsim::jaro_winkler(unknown, candidate)))
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    (score > 0.7).then(|| format!(" (did you mean `{best}`?)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match Credentials::parse(Path::new("c.yaml"), text) {
            Err(Error::Input(problems)) => problems.iter().map(ToString::to_string).collect(),
            other => panic!("expected input problems, got {other:?}"),
        }
    }

    #[test]
    fn unknown_key_names_line_and_suggests() {
        let found = problems("jira:\n  url: https://jira.example.org\n  usernme: ops\n  api_token: t\n  project: MH\n");
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("c.yaml:3:3: "), "{}", found[0]);
        assert!(found[0].contains("unknown key `usernme`"), "{}", found[0]);
        assert!(found[0].contains("(did you mean `username`?)"), "{}", found[0]);
    }

    #[test]
    fn bad_url_and_bad_type() {
        let found = problems("netbox:\n  url: ftp://netbox\n  token: abc\n");
        assert!(found[0].contains("c.yaml:2:") && found[0].contains("scheme must be http or https"), "{}", found[0]);
        let found = problems("ssh:\n  username: ops\n  key_path: k\n  known_hosts: kh\n  connect_timeout_secs: soon\n");
        assert!(found[0].contains("c.yaml:5:") && found[0].contains("invalid type"), "{}", found[0]);
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let found = problems("jira:\n  url: [unclosed\n");
        assert!(found[0].starts_with("c.yaml:"), "{}", found[0]);
        assert!(found[0].split(':').nth(1).unwrap().parse::<usize>().is_ok(), "{}", found[0]);
    }

    #[test]
    fn openstack_needs_exactly_one_way() {
        let found = problems("openstack:\n  auth_url: https://ks/v3\n  username: u\n  cloud: prod\n");
        assert!(found[0].contains("give exactly one of"), "{}", found[0]);
        let creds = Credentials::parse(Path::new("c.yaml"), "openstack:\n  cloud: prod\n").unwrap();
        assert!(matches!(creds.openstack.unwrap().auth(), OpenStackAuth::Cloud("prod")));
    }

    #[test]
    fn errors_name_the_key_and_never_quote_a_value() {
        let cases = [
            (
                "ssh:\n  username: ops\n  key_path: k\n  known_hosts: kh\n  sudo: SECRET1\n",
                "c.yaml:5:9: ssh.sudo: invalid type: a string, expected a map of keys: Sudo",
            ),
            (
                "jira:\n  url: https://ops:SECRET2@jira.example.org:99999\n  project: MH\n",
                "c.yaml:2:3: jira.url: not a valid URL (invalid port number)",
            ),
            (
                "jira:\n  url: https://ops:SECRET3@jira.example.org\n  project: MH\n",
                "c.yaml:2:3: jira.url: a URL must not carry a user name or password",
            ),
            (
                "netbox:\n  url: https://n\n  token: [SECRET4]\n",
                "c.yaml:3:10: netbox.token: invalid type: sequence, expected a string",
            ),
            (
                "jira:\n  url: https://j\n  flavour: SECRET5\n",
                "c.yaml:3:12: jira.flavour: unknown variant value, expected one of `server`, `cloud`, `auto`",
            ),
            (
                "ssh:\n  username: ops\n  key_path: k\n  known_hosts: kh\n  connect_timeout_secs: SECRET6\n",
                "ssh.connect_timeout_secs: invalid type: a string, expected a whole number",
            ),
            (
                "netbox:\n  url: ftp://SECRET7@x\n  token: t\n",
                "netbox.url: not a valid URL: the scheme must be http or https",
            ),
            (
                "netbox:\n  url: https://n/api?token=SECRET8\n  token: t\n",
                "netbox.url: a service URL must not have a query",
            ),
            ("netbox:\n  url: https://n/#SECRET9\n  token: t\n", "netbox.url: a service URL must not have a query"),
            ("netbox: SECRET10\n", "c.yaml:1:9: netbox: invalid type: a string, expected a map of keys: NetBox"),
            (
                "netbox:\n  url: https://n\n  token: {SECRET11: 1}\n",
                "netbox.token: invalid type: map, expected a string",
            ),
            ("netbox:\n  url: https://n\n  token: \"SECRET12\n", "c.yaml:4:1: found unexpected end of stream"),
        ];
        for (text, expected) in cases {
            let found = problems(text).join("\n");
            assert!(found.contains(expected), "{text:?}: {found}");
            assert!(!found.contains("SECRET"), "{text:?}: {found}");
        }
        assert_eq!(
            without_values(r#"x: invalid value: string "a, expected b", expected c"#),
            "x: invalid value: a string, expected c"
        );
        assert_eq!(
            without_values("x: invalid type: integer `123`, expected a string"),
            "x: invalid type: an integer, expected a string"
        );
    }

    #[test]
    fn plain_http_needs_the_section_to_allow_it() {
        let found = problems("netbox:\n  url: http://netbox.example.org\n  token: t\n");
        assert!(found[0].contains("netbox.url: plain http:// would send the credentials unencrypted"), "{}", found[0]);
        assert!(found[0].contains("'allow_insecure_http: true' in the 'netbox' section"), "{}", found[0]);
        let creds = Credentials::parse(
            Path::new("c.yaml"),
            "netbox:\n  url: http://netbox.example.org\n  allow_insecure_http: true\n  token: t\n",
        )
        .unwrap();
        assert!(creds.netbox.unwrap().transport.allow_insecure_http);
    }

    #[test]
    fn ca_files_are_checked_and_merged_with_the_global_one() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let text = format!(
            "general:\n  initials: AB\n  ca_file: {}\nnetbox:\n  url: https://n\n  token: t\n",
            missing.display()
        );
        let found = problems(&text);
        assert!(found[0].starts_with(&format!("c.yaml: general.ca_file {}:", missing.display())), "{}", found[0]);
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let text = format!("netbox:\n  url: https://n\n  token: t\n  ca_file: {}\n", empty.display());
        assert!(problems(&text)[0].contains("holds no PEM certificate"), "{:?}", problems(&text));
    }

    #[test]
    fn jira_auth_rules() {
        let base = "jira:\n  url: https://jira.example.org\n  project: MH\n";
        assert!(problems(&format!("{base}  api_token: t\n"))[0].contains("api_token needs a username"));
        let creds = Credentials::parse(Path::new("c.yaml"), &format!("{base}  personal_access_token: p\n")).unwrap();
        assert!(matches!(creds.jira.unwrap().auth(), JiraAuth::Bearer(_)));
    }
}
