//! OpenStack identity: a Keystone v3 token from a password, an application
//! credential or a `clouds.yaml` entry; the service catalog; renewal of the
//! token before it expires.

use std::time::Duration;

use reqwest::header::HeaderName;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::http::{Auth, Body, HttpService, RetryPolicy, ServiceError};
use crate::config::credentials::{OpenStack as OpenStackConfig, OpenStackAuth, Transport};
use crate::secret::Secret;

/// A token is renewed when it has less than this left.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// A domain by id or by name (the id wins when both are given).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DomainRef {
    pub id: Option<String>,
    pub name: Option<String>,
}

impl DomainRef {
    pub fn named(name: &str) -> Self {
        DomainRef { id: None, name: Some(name.to_owned()) }
    }

    /// Keystone's `domain` object; `Default` by name when none is given.
    fn json(&self) -> serde_json::Value {
        match (&self.id, &self.name) {
            (Some(id), _) => json!({"id": id}),
            (None, Some(name)) => json!({"name": name}),
            (None, None) => json!({"name": "Default"}),
        }
    }
}

/// A user by id, or by name in a domain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserRef {
    pub id: Option<String>,
    pub name: Option<String>,
    pub domain: DomainRef,
}

impl UserRef {
    fn json(&self) -> serde_json::Value {
        match (&self.id, &self.name) {
            (Some(id), _) => json!({"id": id}),
            (None, name) => json!({"name": name, "domain": self.domain.json()}),
        }
    }
}

/// The project a token is scoped to: by id, or by name in a domain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProjectScope {
    pub id: Option<String>,
    pub name: Option<String>,
    pub domain: DomainRef,
}

impl ProjectScope {
    fn json(&self) -> serde_json::Value {
        match (&self.id, &self.name) {
            (Some(id), _) => json!({"project": {"id": id}}),
            (None, name) => json!({"project": {"name": name, "domain": self.domain.json()}}),
        }
    }
}

/// How to ask Keystone for a token, whichever way it was configured.
#[derive(Clone, Debug)]
pub enum Identity {
    Password {
        user: UserRef,
        password: Secret,
        project: ProjectScope,
    },
    /// By id, or by name with its user (an application credential's name is
    /// unique per user only).
    ApplicationCredential {
        id: Option<String>,
        name: Option<String>,
        user: Option<UserRef>,
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
                    user: UserRef {
                        id: None,
                        name: Some(username.to_owned()),
                        domain: DomainRef::named(&config.user_domain_name),
                    },
                    password: password.clone(),
                    project: ProjectScope {
                        id: None,
                        name: Some(project_name.to_owned()),
                        domain: DomainRef::named(&config.project_domain_name),
                    },
                },
                region: config.region_name.clone(),
                interface: config.interface.clone(),
                transport: config.transport.clone(),
            },
            OpenStackAuth::ApplicationCredential { auth_url, id, secret } => KeystoneSettings {
                auth_url: auth_url.as_url().clone(),
                identity: Identity::ApplicationCredential {
                    id: Some(id.to_owned()),
                    name: None,
                    user: None,
                    secret: secret.clone(),
                },
                region: config.region_name.clone(),
                interface: config.interface.clone(),
                transport: config.transport.clone(),
            },
            OpenStackAuth::Cloud(name) => {
                let mut settings = from_clouds_yaml(Some(name), &clouds_yaml_paths())?;
                // The section's transport, with the cloud's `cacert` added.
                let cacerts = std::mem::take(&mut settings.transport.ca_files);
                settings.transport = config.transport.clone();
                settings.transport.ca_files.extend(cacerts);
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

pub use super::clouds_yaml::{clouds_yaml_paths, from_clouds_yaml};

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

    /// Runs `call` on `http` with a current token. A 401 means the token was
    /// revoked before its expiry (keystonemiddleware refused the request before
    /// the service did anything, so even a write is safe to repeat): the token
    /// is renewed once and `call` runs again.
    pub async fn authed<T, F, Fut>(&self, http: &HttpService, call: F) -> Result<T, ServiceError>
    where
        F: Fn(HttpService) -> Fut,
        Fut: std::future::Future<Output = Result<T, ServiceError>>,
    {
        let with_token = |token: &Secret| {
            let mut http = http.clone();
            http.set_auth(token_auth(token));
            http
        };
        let token = self.token(false).await?;
        match call(with_token(&token.value)).await {
            Err(err) if err.status() == Some(401) => {
                let renewed = self.renew_rejected(&token.value).await?;
                call(with_token(&renewed.value)).await
            }
            other => other,
        }
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
            Identity::Password { user, password, project } => {
                let mut user = user.json();
                user["password"] = json!(password.expose());
                json!({
                    "auth": {
                        "identity": {"methods": ["password"], "password": {"user": user}},
                        "scope": project.json()
                    }
                })
            }
            // No scope: an application credential carries its own project.
            Identity::ApplicationCredential { id, name, user, secret } => {
                let mut credential = json!({"secret": secret.expose()});
                match (id, name, user) {
                    (Some(id), _, _) => credential["id"] = json!(id),
                    (None, name, user) => {
                        credential["name"] = json!(name);
                        credential["user"] = user.as_ref().map(UserRef::json).unwrap_or_default();
                    }
                }
                json!({"auth": {"identity": {"methods": ["application_credential"], "application_credential": credential}}})
            }
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

/// The header OpenStack services read the Keystone token from.
pub fn token_auth(token: &Secret) -> Auth {
    Auth::Header { name: HeaderName::from_static("x-auth-token"), token: token.clone() }
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
            matches!(prod.identity, Identity::Password { ref project, .. } if project.domain == DomainRef::default())
        );
        let app = from_clouds_yaml(Some("app"), &paths).unwrap();
        assert!(matches!(app.identity, Identity::ApplicationCredential { ref id, .. } if id.as_deref() == Some("id1")));
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
