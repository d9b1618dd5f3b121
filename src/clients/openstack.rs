//! OpenStack identity: a Keystone v3 token from a password, an application
//! credential or a `clouds.yaml` entry; the service catalog; renewal of the
//! token before it expires.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::http::{Auth, Body, HttpService, RetryPolicy, ServiceError};
use crate::config::credentials::{OpenStack as OpenStackConfig, OpenStackAuth, Transport};
use crate::error::{Error, InputProblem};
use crate::secret::Secret;

/// A token is renewed when it has less than this left.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// How to ask Keystone for a token, whichever way it was configured.
#[derive(Clone, Debug)]
pub enum Identity {
    Password {
        username: String,
        password: Secret,
        user_domain_name: String,
        project_name: String,
        project_domain_name: String,
    },
    ApplicationCredential {
        id: String,
        secret: Secret,
    },
}

/// Where Keystone is, how to log in, which endpoints to use.
#[derive(Clone, Debug)]
pub struct KeystoneSettings {
    pub auth_url: Url,
    pub identity: Identity,
    pub region: Option<String>,
    pub interface: String,
    /// The `openstack` section's `allow_insecure_http` and `ca_file`.
    pub transport: Transport,
}

impl KeystoneSettings {
    /// From the `openstack` section, reading `clouds.yaml` when it names a cloud.
    pub fn from_config(config: &OpenStackConfig) -> crate::Result<Self> {
        let settings = match config.auth() {
            OpenStackAuth::Password { auth_url, username, password, project_name } => KeystoneSettings {
                auth_url: auth_url.as_url().clone(),
                identity: Identity::Password {
                    username: username.to_owned(),
                    password: password.clone(),
                    user_domain_name: config.user_domain_name.clone(),
                    project_name: project_name.to_owned(),
                    project_domain_name: config.project_domain_name.clone(),
                },
                region: config.region_name.clone(),
                interface: config.interface.clone(),
                transport: config.transport.clone(),
            },
            OpenStackAuth::ApplicationCredential { auth_url, id, secret } => KeystoneSettings {
                auth_url: auth_url.as_url().clone(),
                identity: Identity::ApplicationCredential { id: id.to_owned(), secret: secret.clone() },
                region: config.region_name.clone(),
                interface: config.interface.clone(),
                transport: config.transport.clone(),
            },
            OpenStackAuth::Cloud(name) => {
                let mut settings = from_clouds_yaml(Some(name), &clouds_yaml_paths())?;
                settings.transport = config.transport.clone();
                // The section's own region and interface win over the file's.
                if config.region_name.is_some() {
                    settings.region = config.region_name.clone();
                }
                settings
            }
        };
        Ok(settings)
    }
}

/// Where `clouds.yaml` is looked for, in order, as the OpenStack CLI does.
pub fn clouds_yaml_paths() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(file) = std::env::var_os("OS_CLIENT_CONFIG_FILE") {
        paths.push(PathBuf::from(file));
    }
    paths.push(PathBuf::from("clouds.yaml"));
    match (std::env::var_os("XDG_CONFIG_HOME"), std::env::var_os("HOME")) {
        (Some(config), _) if !config.is_empty() => paths.push(Path::new(&config).join("openstack/clouds.yaml")),
        (_, Some(home)) => paths.push(Path::new(&home).join(".config/openstack/clouds.yaml")),
        _ => {}
    }
    paths.push(PathBuf::from("/etc/openstack/clouds.yaml"));
    paths
}

#[derive(Deserialize)]
struct CloudsFile {
    #[serde(default)]
    clouds: BTreeMap<String, CloudEntry>,
}

#[derive(Deserialize)]
struct CloudEntry {
    #[serde(default)]
    auth: CloudAuth,
    #[serde(default)]
    auth_type: Option<String>,
    #[serde(default)]
    region_name: Option<String>,
    #[serde(default)]
    interface: Option<String>,
}

#[derive(Default, Deserialize)]
struct CloudAuth {
    auth_url: Option<String>,
    username: Option<String>,
    password: Option<Secret>,
    project_name: Option<String>,
    user_domain_name: Option<String>,
    project_domain_name: Option<String>,
    application_credential_id: Option<String>,
    application_credential_secret: Option<Secret>,
}

/// The entry `name` (else `$OS_CLOUD`) of the first `clouds.yaml` found in `paths`.
pub fn from_clouds_yaml(name: Option<&str>, paths: &[PathBuf]) -> crate::Result<KeystoneSettings> {
    let name = match name {
        Some(name) => name.to_owned(),
        None => std::env::var("OS_CLOUD").map_err(|_| {
            Error::input(InputProblem::new(Path::new("clouds.yaml"), "no cloud named and OS_CLOUD is not set"))
        })?,
    };
    let Some(path) = paths.iter().find(|path| path.is_file()) else {
        let searched: Vec<String> = paths.iter().map(|path| path.display().to_string()).collect();
        return Err(Error::input(InputProblem::new(
            Path::new("clouds.yaml"),
            format!("cloud '{name}' asked for, but no clouds.yaml found (searched {})", searched.join(", ")),
        )));
    };
    let problem = |message: String| Error::input(InputProblem::new(path, message));
    let bytes = crate::config::input::read_capped(path, "clouds.yaml").map_err(Error::input)?;
    let text = String::from_utf8(bytes).map_err(|_| problem("not valid UTF-8".into()))?;
    crate::config::input::check_yaml_expansion(path, "clouds.yaml", &text).map_err(Error::input)?;
    let file: CloudsFile = serde_yaml_ng::from_str(&text)
        .map_err(|err| problem(crate::config::credentials::yaml_message_without_values(&err)))?;
    let Some(entry) = file.clouds.get(&name) else {
        let known: Vec<&str> = file.clouds.keys().map(String::as_str).collect();
        return Err(problem(format!("no cloud '{name}' (clouds here: {})", known.join(", "))));
    };
    let auth = &entry.auth;
    let auth_url = auth.auth_url.as_deref().ok_or_else(|| problem(format!("cloud '{name}' has no auth.auth_url")))?;
    let auth_url = Url::parse(auth_url).map_err(|err| problem(format!("cloud '{name}': bad auth_url: {err}")))?;
    let app_credential = entry.auth_type.as_deref().is_some_and(|kind| kind.contains("applicationcredential"))
        || auth.application_credential_id.is_some();
    let identity = if app_credential {
        match (&auth.application_credential_id, &auth.application_credential_secret) {
            (Some(id), Some(secret)) => Identity::ApplicationCredential { id: id.clone(), secret: secret.clone() },
            _ => return Err(problem(format!("cloud '{name}': application credentials need an id and a secret"))),
        }
    } else {
        match (&auth.username, &auth.password, &auth.project_name) {
            (Some(username), Some(password), Some(project_name)) => Identity::Password {
                username: username.clone(),
                password: password.clone(),
                user_domain_name: auth.user_domain_name.clone().unwrap_or_else(|| "Default".into()),
                project_name: project_name.clone(),
                project_domain_name: auth.project_domain_name.clone().unwrap_or_else(|| "Default".into()),
            },
            _ => return Err(problem(format!("cloud '{name}': needs username, password and project_name"))),
        }
    };
    Ok(KeystoneSettings {
        auth_url,
        identity,
        region: entry.region_name.clone(),
        interface: entry.interface.clone().unwrap_or_else(|| "public".into()),
        transport: Transport::for_section("openstack"),
    })
}

#[derive(Clone, Debug, Deserialize)]
pub struct CatalogEntry {
    #[serde(rename = "type")]
    pub service_type: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Endpoint {
    pub interface: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub region_id: Option<String>,
    pub url: String,
}

/// A token and what came with it.
#[derive(Clone, Debug)]
pub struct Token {
    pub value: Secret,
    pub expires_at: jiff::Timestamp,
    pub catalog: Vec<CatalogEntry>,
}

impl Token {
    /// The URL of `service_type` for `interface`, in `region` when given.
    pub fn endpoint(&self, service_type: &str, interface: &str, region: Option<&str>) -> Option<Url> {
        self.catalog.iter().filter(|entry| entry.service_type == service_type).find_map(|entry| {
            entry.endpoints.iter().find_map(|endpoint| {
                let in_region = region.is_none_or(|region| {
                    endpoint.region_id.as_deref() == Some(region) || endpoint.region.as_deref() == Some(region)
                });
                (endpoint.interface == interface && in_region).then(|| Url::parse(&endpoint.url).ok()).flatten()
            })
        })
    }
}

/// A Keystone session: one token, renewed before it expires, shared by the
/// OpenStack service clients.
#[derive(Debug)]
pub struct Keystone {
    http: HttpService,
    settings: KeystoneSettings,
    token: tokio::sync::Mutex<Option<Token>>,
}

impl Keystone {
    pub fn new(settings: KeystoneSettings, policy: RetryPolicy) -> Result<Self, ServiceError> {
        // `…/v3` whether or not clouds.yaml said so.
        let mut base = settings.auth_url.clone();
        let trimmed = base.path().trim_end_matches('/').to_owned();
        if !trimmed.ends_with("/v3") {
            base.set_path(&format!("{trimmed}/v3"));
        }
        let http = HttpService::new("keystone", &base, Auth::None, policy, &settings.transport)?;
        Ok(Keystone { http, settings, token: tokio::sync::Mutex::new(None) })
    }

    pub fn settings(&self) -> &KeystoneSettings {
        &self.settings
    }

    pub fn policy(&self) -> RetryPolicy {
        self.http.policy()
    }

    /// How the OpenStack services are reached (`allow_insecure_http`, `ca_file`).
    pub fn transport(&self) -> &Transport {
        &self.settings.transport
    }

    /// A valid token: the current one, or a new one when it is close to expiry
    /// (or `renew` asks for one, after a 401).
    pub async fn token(&self, renew: bool) -> Result<Token, ServiceError> {
        let mut current = self.token.lock().await;
        if let Some(token) = current.as_ref() {
            let left = token.expires_at.duration_since(jiff::Timestamp::now());
            if !renew && left > jiff::SignedDuration::try_from(RENEW_BEFORE).unwrap_or_default() {
                return Ok(token.clone());
            }
            tracing::debug!(service = "keystone", "renewing the token");
        }
        let token = self.issue_token().await?;
        *current = Some(token.clone());
        Ok(token)
    }

    /// A new token after a service refused `rejected` with 401 (revoked,
    /// or Keystone's keys rotated): issued once however many requests saw
    /// the refusal at the same time.
    pub async fn renew_rejected(&self, rejected: &Secret) -> Result<Token, ServiceError> {
        let mut current = self.token.lock().await;
        if let Some(token) = current.as_ref() {
            if token.value.expose() != rejected.expose() {
                return Ok(token.clone());
            }
        }
        tracing::info!(service = "keystone", "the token was refused (401): getting a new one");
        let token = self.issue_token().await?;
        *current = Some(token.clone());
        Ok(token)
    }

    /// The URL of a service from the catalog, for the configured interface and region.
    pub async fn endpoint(&self, service_type: &str) -> Result<Url, ServiceError> {
        let token = self.token(false).await?;
        let region = self.settings.region.as_deref();
        token.endpoint(service_type, &self.settings.interface, region).ok_or_else(|| {
            let region = region.map(|region| format!(" in region {region}")).unwrap_or_default();
            self.http.unusable(
                &Method::POST,
                "auth/tokens",
                format!("the catalog has no {} endpoint of type '{service_type}'{region}", self.settings.interface),
            )
        })
    }

    async fn issue_token(&self) -> Result<Token, ServiceError> {
        #[derive(Deserialize)]
        struct Reply {
            token: TokenBody,
        }
        #[derive(Deserialize)]
        struct TokenBody {
            expires_at: String,
            #[serde(default)]
            catalog: Vec<CatalogEntry>,
        }
        let path = "auth/tokens";
        let body = match &self.settings.identity {
            Identity::Password { username, password, user_domain_name, project_name, project_domain_name } => json!({
                "auth": {
                    "identity": {"methods": ["password"], "password": {"user": {
                        "name": username, "domain": {"name": user_domain_name}, "password": password.expose()}}},
                    "scope": {"project": {"name": project_name, "domain": {"name": project_domain_name}}}
                }
            }),
            // No scope: an application credential carries its own project.
            Identity::ApplicationCredential { id, secret } => json!({
                "auth": {"identity": {"methods": ["application_credential"],
                    "application_credential": {"id": id, "secret": secret.expose()}}}
            }),
        };
        // Asking for a token changes nothing: retried freely.
        let reply = self.http.idempotent(Method::POST, path, Body::Json(body)).await?;
        let value = reply
            .header("x-subject-token")
            .ok_or_else(|| self.http.unusable(&Method::POST, path, "no X-Subject-Token in the answer"))?;
        let value = Secret::new(value);
        let parsed: Reply = self.http.decode(&Method::POST, path, &reply)?;
        let expires_at = parsed
            .token
            .expires_at
            .parse::<jiff::Timestamp>()
            .map_err(|err| self.http.unusable(&Method::POST, path, format!("bad expires_at: {err}")))?;
        tracing::debug!(service = "keystone", %expires_at, "got a token");
        Ok(Token { value, expires_at, catalog: parsed.token.catalog })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clouds_yaml_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clouds.yaml");
        std::fs::write(
            &path,
            "clouds:\n  prod:\n    auth:\n      auth_url: https://ks:5000\n      username: u\n      password: p\n      project_name: admin\n    region_name: R1\n  app:\n    auth_type: v3applicationcredential\n    auth:\n      auth_url: https://ks:5000/v3\n      application_credential_id: id1\n      application_credential_secret: s\n",
        )
        .unwrap();
        let paths = [dir.path().join("missing.yaml"), path.clone()];
        let prod = from_clouds_yaml(Some("prod"), &paths).unwrap();
        assert_eq!(prod.region.as_deref(), Some("R1"));
        assert!(
            matches!(prod.identity, Identity::Password { ref project_domain_name, .. } if project_domain_name == "Default")
        );
        let app = from_clouds_yaml(Some("app"), &paths).unwrap();
        assert!(matches!(app.identity, Identity::ApplicationCredential { ref id, .. } if id == "id1"));
        let err = from_clouds_yaml(Some("nope"), &paths).unwrap_err().to_string();
        assert!(err.contains("no cloud 'nope'") && err.contains("app, prod"), "{err}");
        let err = from_clouds_yaml(Some("prod"), &paths[..1]).unwrap_err().to_string();
        assert!(err.contains("no clouds.yaml found"), "{err}");
    }

    #[test]
    fn catalog_lookup() {
        let catalog: Vec<CatalogEntry> = serde_json::from_value(json!([
            {"type": "compute", "name": "nova", "endpoints": [
                {"interface": "internal", "region_id": "R1", "url": "http://internal:8774/v2.1"},
                {"interface": "public", "region_id": "R2", "url": "http://r2:8774/v2.1"},
                {"interface": "public", "region_id": "R1", "url": "http://r1:8774/v2.1"}]}
        ]))
        .unwrap();
        let token = Token { value: Secret::new("t"), expires_at: jiff::Timestamp::now(), catalog };
        assert_eq!(token.endpoint("compute", "public", Some("R1")).unwrap().host_str(), Some("r1"));
        assert_eq!(token.endpoint("compute", "internal", None).unwrap().host_str(), Some("internal"));
        assert!(token.endpoint("identity", "public", None).is_none());
    }
}
