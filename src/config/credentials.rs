//! The credentials file: one section per service, plus `general` and `workflow`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use url::Url;

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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct General {
    /// The operator's initials, used in disable reasons and silence comments.
    pub initials: String,
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
    pub token: Secret,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenStack {
    pub auth_url: Option<HttpUrl>,
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
    pub username: String,
    pub password: Secret,
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
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let url = Url::parse(&text).map_err(|err| serde::de::Error::custom(format!("invalid URL '{text}': {err}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(serde::de::Error::custom(format!("invalid URL '{text}': the scheme must be http or https")));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(serde::de::Error::custom(
                "a URL must not carry a user name or password; use the section's own keys",
            ));
        }
        Ok(HttpUrl(url))
    }
}

impl Credentials {
    /// Reads and validates the file. Permissions are checked separately
    /// ([`crate::fs_security`]) before this is called.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|err| {
            let reason = if err.kind() == std::io::ErrorKind::InvalidData {
                "not valid UTF-8".to_owned()
            } else {
                crate::config::hypervisors::io_reason(&err)
            };
            Error::input(InputProblem::new(path, format!("cannot read the credentials file: {reason}")))
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if text.trim().is_empty() {
            return Err(Error::input(InputProblem::new(path, "the credentials file is empty")));
        }
        let credentials: Credentials =
            serde_yaml_ng::from_str(text).map_err(|err| Error::input(yaml_problem(path, &err)))?;
        let problems = credentials.validate(path);
        if problems.is_empty() {
            Ok(credentials)
        } else {
            Err(Error::Input(problems))
        }
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

/// Turns a YAML or schema error into a located problem, with a suggestion
/// for a misspelt key.
fn yaml_problem(path: &Path, err: &serde_yaml_ng::Error) -> InputProblem {
    let mut message = err.to_string();
    // The location is reported separately; drop serde_yaml's own suffix.
    if let Some(at) = message.rfind(" at line ") {
        message.truncate(at);
    }
    if let Some(suggestion) = suggest_key(&message) {
        message.push_str(&suggestion);
    }
    let message = message.replace("unknown field", "unknown key").replace("missing field", "missing key");
    let (line, column) = match err.location() {
        Some(location) => (Some(location.line()), Some(location.column())),
        None => (None, None),
    };
    InputProblem { file: path.to_owned(), line, column, message }
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
    fn jira_auth_rules() {
        let base = "jira:\n  url: https://jira.example.org\n  project: MH\n";
        assert!(problems(&format!("{base}  api_token: t\n"))[0].contains("api_token needs a username"));
        let creds = Credentials::parse(Path::new("c.yaml"), &format!("{base}  personal_access_token: p\n")).unwrap();
        assert!(matches!(creds.jira.unwrap().auth(), JiraAuth::Bearer(_)));
    }
}
