//! `clouds.yaml` as openstacksdk reads it (`openstack/config/loader.py`):
//! the first file found of `$OS_CLIENT_CONFIG_FILE`, `./clouds.{yaml,yml,json}`,
//! the user's and the system's `openstack` folders; `secure.yaml` found the
//! same way (`$OS_CLIENT_SECURE_FILE` first) and merged over it; the cloud
//! named, else `$OS_CLOUD`; the cloud `envvars` (`$OS_CLOUD_NAME`) made of
//! the `OS_*` variables. As openstacksdk, the `OS_*` variables do not change a
//! cloud of the file. Keys we do not know are named (file, cloud, key), not
//! ignored: a setting silently dropped would log in somewhere else.

use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};
use url::Url;

use super::openstack::{DomainRef, Identity, KeystoneSettings, ProjectScope, UserRef};
use crate::config::credentials::Transport;
use crate::error::{Error, InputProblem};
use crate::secret::Secret;

const FOLDERS_NOTE: &str = "./, $XDG_CONFIG_HOME/openstack (~/.config/openstack), /etc/openstack";

/// Keys of a cloud that openstacksdk knows and that change nothing here
/// (API versions of services we do not use, timeouts, caching, display).
const HARMLESS_KEYS: [&str; 12] = [
    "identity_api_version",
    "compute_api_version",
    "placement_api_version",
    "image_api_version",
    "volume_api_version",
    "network_api_version",
    "api_timeout",
    "auth_methods",
    "operation_log",
    "display_name",
    "floating_ip_source",
    "networks",
];

/// Auth options of the password and application credential plugins
/// (keystoneauth1 `loading/identity.py`, `loading/_plugins/identity/v3.py`).
const AUTH_KEYS: [&str; 19] = [
    "auth_url",
    "username",
    "user_id",
    "password",
    "project_name",
    "project_id",
    "tenant_name",
    "tenant_id",
    "user_domain_name",
    "user_domain_id",
    "project_domain_name",
    "project_domain_id",
    "domain_name",
    "domain_id",
    "application_credential_id",
    "application_credential_name",
    "application_credential_secret",
    "default_domain_id",
    "default_domain_name",
];

/// Where `clouds.yaml` (`stem` `clouds`) or `secure.yaml` (`secure`) are looked for, in order.
pub fn config_paths(stem: &str, override_var: &str) -> Vec<PathBuf> {
    let mut folders = vec![PathBuf::from(".")];
    match (std::env::var_os("XDG_CONFIG_HOME"), std::env::var_os("HOME")) {
        (Some(config), _) if !config.is_empty() => folders.push(Path::new(&config).join("openstack")),
        (_, Some(home)) => folders.push(Path::new(&home).join(".config/openstack")),
        _ => {}
    }
    folders.push(PathBuf::from("/etc/openstack"));
    let mut paths = Vec::new();
    if let Some(file) = std::env::var_os(override_var).filter(|file| !file.is_empty()) {
        paths.push(PathBuf::from(file));
    }
    for folder in folders {
        for suffix in ["yaml", "yml", "json"] {
            paths.push(folder.join(format!("{stem}.{suffix}")));
        }
    }
    paths
}

/// Where `clouds.yaml` is looked for, in order, as openstacksdk does.
pub fn clouds_yaml_paths() -> Vec<PathBuf> {
    config_paths("clouds", "OS_CLIENT_CONFIG_FILE")
}

pub fn secure_yaml_paths() -> Vec<PathBuf> {
    config_paths("secure", "OS_CLIENT_SECURE_FILE")
}

fn read_yaml(path: &Path, what: &str) -> crate::Result<Mapping> {
    let problem = |message: String| Error::input(InputProblem::new(path, message));
    let bytes = crate::config::input::read_capped(path, what).map_err(Error::input)?;
    let text = String::from_utf8(bytes).map_err(|_| problem("not valid UTF-8".into()))?;
    crate::config::input::check_yaml_expansion(path, what, &text).map_err(Error::input)?;
    let value: Value = serde_yaml_ng::from_str(&text)
        .map_err(|err| problem(crate::config::credentials::yaml_message_without_values(&err)))?;
    match value {
        Value::Mapping(map) => Ok(map),
        Value::Null => Ok(Mapping::new()),
        _ => Err(problem("not a mapping".into())),
    }
}

/// openstacksdk's `merge_clouds`: mappings merged key by key, the second winning.
fn merge(base: &mut Mapping, over: Mapping) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Mapping(inner)), Value::Mapping(value)) => merge(inner, value),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// The `OS_*` variables as openstacksdk's `envvars` cloud: `OS_FOO_BAR` is
/// `foo_bar`; `None` when only selectors (`OS_CLOUD`, `OS_REGION_NAME`, …) are set.
fn environment_cloud(variables: &[(String, String)]) -> Option<Mapping> {
    const SELECTORS: [&str; 5] =
        ["OS_CLOUD", "OS_REGION_NAME", "OS_CLIENT_CONFIG_FILE", "OS_CLIENT_SECURE_FILE", "OS_CLOUD_NAME"];
    let ours: Vec<&(String, String)> = variables
        .iter()
        .filter(|(key, _)| key.starts_with("OS_"))
        .filter(|(key, _)| !["OS_TEST", "OS_STD", "OS_LOG"].iter().any(|prefix| key.starts_with(prefix)))
        .collect();
    if ours.iter().all(|(key, _)| SELECTORS.contains(&key.as_str())) {
        return None;
    }
    let mut cloud = Mapping::new();
    let mut auth = Mapping::new();
    for (key, value) in ours {
        let name = key["OS_".len()..].to_lowercase();
        if SELECTORS.contains(&key.as_str()) && name != "region_name" {
            continue;
        }
        // keystoneauth's loader takes the plugin's options from the top level into `auth`.
        if AUTH_KEYS.contains(&name.as_str()) {
            auth.insert(Value::from(name), Value::from(value.clone()));
        } else {
            cloud.insert(Value::from(name), Value::from(value.clone()));
        }
    }
    cloud.insert(Value::from("auth"), Value::Mapping(auth));
    Some(cloud)
}

/// The cloud `name` (else `$OS_CLOUD`) of the first `clouds.yaml` found in
/// `paths`, with the first `secure.yaml` of `secure_paths` merged over it.
pub fn from_clouds_yaml(name: Option<&str>, paths: &[PathBuf]) -> crate::Result<KeystoneSettings> {
    let environment: Vec<(String, String)> = std::env::vars().collect();
    resolve(name, paths, &secure_yaml_paths(), &environment)
}

/// As [`from_clouds_yaml`], with the secure files and the environment given.
pub fn resolve(
    name: Option<&str>,
    paths: &[PathBuf],
    secure_paths: &[PathBuf],
    environment: &[(String, String)],
) -> crate::Result<KeystoneSettings> {
    let variable = |key: &str| environment.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let envvars_name = variable("OS_CLOUD_NAME").unwrap_or_else(|| "envvars".to_owned());
    let name = match name.map(str::to_owned).or_else(|| variable("OS_CLOUD")).filter(|name| !name.is_empty()) {
        Some(name) => name,
        None if environment_cloud(environment).is_some() => envvars_name.clone(),
        None => {
            return Err(Error::input(InputProblem::new(
                Path::new("clouds.yaml"),
                "no cloud named, OS_CLOUD is not set and no OS_* variables describe one",
            )))
        }
    };
    let found = paths.iter().find(|path| path.is_file());
    if name == envvars_name {
        if let Some(path) = found {
            let file = read_yaml(path, "clouds.yaml")?;
            if file.get("clouds").and_then(Value::as_mapping).is_some_and(|clouds| clouds.contains_key(name.as_str())) {
                return Err(Error::input(InputProblem::new(
                    path,
                    format!("defines a cloud named '{name}', the name of the OS_* variables' cloud (OS_CLOUD_NAME)"),
                )));
            }
        }
        let Some(cloud) = environment_cloud(environment) else {
            return Err(Error::input(InputProblem::new(
                Path::new("OS_* environment"),
                format!("cloud '{name}' asked for, but no OS_* variables describe it"),
            )));
        };
        return settings_of(Path::new("OS_* environment"), &name, cloud);
    }
    let Some(path) = found else {
        let searched: Vec<String> = paths.iter().map(|path| path.display().to_string()).collect();
        return Err(Error::input(InputProblem::new(
            Path::new("clouds.yaml"),
            format!(
                "cloud '{name}' asked for, but no clouds.yaml found (searched {}; folders {FOLDERS_NOTE})",
                searched.join(", ")
            ),
        )));
    };
    let mut file = read_yaml(path, "clouds.yaml")?;
    let mut source = path.display().to_string();
    if let Some(secure) = secure_paths.iter().find(|path| path.is_file()) {
        merge(&mut file, read_yaml(secure, "secure.yaml")?);
        source = format!("{source} + {}", secure.display());
    }
    let problem = |message: String| Error::input(InputProblem::new(path, message));
    let clouds = file.get("clouds").and_then(Value::as_mapping).cloned().unwrap_or_default();
    let Some(Value::Mapping(cloud)) = clouds.get(name.as_str()).cloned() else {
        let mut known: Vec<&str> = clouds.keys().filter_map(Value::as_str).collect();
        known.sort();
        return Err(problem(format!("no cloud '{name}' (clouds here: {})", known.join(", "))));
    };
    settings_of(Path::new(&source), &name, cloud)
}

fn text(map: &Mapping, key: &str) -> Option<String> {
    match map.get(key)? {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// The settings of one cloud's (merged) entry.
fn settings_of(source: &Path, name: &str, mut cloud: Mapping) -> crate::Result<KeystoneSettings> {
    let problem = |message: String| Error::input(InputProblem::new(source, format!("cloud '{name}': {message}")));
    let mut auth = match cloud.remove("auth") {
        Some(Value::Mapping(auth)) => auth,
        None | Some(Value::Null) => Mapping::new(),
        Some(_) => return Err(problem("auth is not a mapping".into())),
    };
    // openstacksdk's `_fix_backwards_auth`: auth options given beside `auth` go into it.
    let top_level: Vec<Value> =
        cloud.keys().filter(|key| key.as_str().is_some_and(|key| AUTH_KEYS.contains(&key))).cloned().collect();
    for key in top_level {
        if let Some(value) = cloud.remove(&key) {
            if !auth.contains_key(&key) {
                auth.insert(key, value);
            }
        }
    }
    let known_top = ["auth_type", "region_name", "regions", "interface", "endpoint_type", "cacert", "verify"];
    let unknown: Vec<String> = cloud
        .keys()
        .filter_map(|key| key.as_str().map(str::to_owned))
        .filter(|key| !known_top.contains(&key.as_str()) && !HARMLESS_KEYS.contains(&key.as_str()))
        .collect();
    if !unknown.is_empty() {
        return Err(problem(format!("unknown or unsupported keys: {} (not ignored)", unknown.join(", "))));
    }
    let unknown_auth: Vec<String> = auth
        .keys()
        .filter_map(|key| key.as_str().map(str::to_owned))
        .filter(|key| !AUTH_KEYS.contains(&key.as_str()))
        .collect();
    if !unknown_auth.is_empty() {
        return Err(problem(format!("unknown or unsupported auth keys: {} (not ignored)", unknown_auth.join(", "))));
    }
    if let Some(version) = text(&cloud, "identity_api_version") {
        if version != "3" && version != "3.0" {
            return Err(problem(format!("identity_api_version {version}: only Keystone v3 is supported")));
        }
    }
    let auth_type = text(&cloud, "auth_type").unwrap_or_else(|| "password".to_owned());
    let auth_url = text(&auth, "auth_url").ok_or_else(|| problem("no auth.auth_url".into()))?;
    let auth_url = Url::parse(&auth_url).map_err(|err| problem(format!("bad auth_url: {err}")))?;
    // `domain_id`/`domain_name` stand for both domains unless given apart (`_handle_domain_id`).
    let domain = |kind: &str| DomainRef {
        id: text(&auth, &format!("{kind}_domain_id")).or_else(|| text(&auth, "domain_id")),
        name: text(&auth, &format!("{kind}_domain_name")).or_else(|| text(&auth, "domain_name")),
    };
    let user = || UserRef { id: text(&auth, "user_id"), name: text(&auth, "username"), domain: domain("user") };
    let secret = |key: &str| -> Option<Secret> {
        auth.get(key).and_then(|value| match value {
            Value::String(text) if !text.is_empty() => Some(Secret::new(text.clone())),
            Value::Number(number) => Some(Secret::new(number.to_string())),
            _ => None,
        })
    };
    let identity = match auth_type.as_str() {
        "password" | "v3password" => {
            let password = secret("password").ok_or_else(|| problem("needs auth.password".into()))?;
            let user = user();
            if user.id.is_none() && user.name.is_none() {
                return Err(problem("needs auth.username or auth.user_id".into()));
            }
            let project = ProjectScope {
                id: text(&auth, "project_id").or_else(|| text(&auth, "tenant_id")),
                name: text(&auth, "project_name").or_else(|| text(&auth, "tenant_name")),
                domain: domain("project"),
            };
            if project.id.is_none() && project.name.is_none() {
                return Err(problem("needs auth.project_name or auth.project_id (a project-scoped token)".into()));
            }
            Identity::Password { user, password, project }
        }
        "v3applicationcredential" | "applicationcredential" => {
            let secret = secret("application_credential_secret")
                .ok_or_else(|| problem("needs auth.application_credential_secret".into()))?;
            let id = text(&auth, "application_credential_id");
            let name = text(&auth, "application_credential_name");
            let user = user();
            match (&id, &name) {
                (None, None) => {
                    return Err(problem(
                        "needs auth.application_credential_id, or its name with the user's username or user_id".into(),
                    ))
                }
                (None, Some(_)) if user.id.is_none() && user.name.is_none() => {
                    return Err(problem("an application credential by name needs auth.username or auth.user_id".into()))
                }
                _ => {}
            }
            let user = id.is_none().then_some(user);
            Identity::ApplicationCredential { id, name, user, secret }
        }
        other => {
            return Err(problem(format!("auth_type '{other}' is not supported (password or v3applicationcredential)")))
        }
    };
    // `regions` (a list) or `region_name`: openstacksdk takes the first when none is asked for.
    let region = match cloud.get("regions") {
        Some(Value::Sequence(regions)) => regions.first().and_then(|region| match region {
            Value::String(name) => Some(name.clone()),
            Value::Mapping(region) => text(region, "name"),
            _ => None,
        }),
        _ => text(&cloud, "region_name").map(|name| name.split(',').next().unwrap_or_default().trim().to_owned()),
    };
    // `publicURL` and `endpoint_type` are the old spellings (`_fix_backwards_interface`).
    let interface = text(&cloud, "interface")
        .or_else(|| text(&cloud, "endpoint_type"))
        .map(|interface| interface.trim_end_matches("URL").to_owned())
        .unwrap_or_else(|| "public".to_owned());
    if !["public", "internal", "admin"].contains(&interface.as_str()) {
        return Err(problem(format!("interface '{interface}' is not public, internal or admin")));
    }
    let mut transport = Transport::for_section("openstack");
    let verify = match cloud.get("verify") {
        None => true,
        Some(Value::Bool(flag)) => *flag,
        Some(Value::String(text)) => !matches!(text.to_lowercase().as_str(), "false" | "no" | "0" | "off"),
        Some(_) => return Err(problem("verify is not true or false".into())),
    };
    if !verify {
        return Err(problem(
            "verify: false would send the credentials to any server that answers; give the CA with cacert instead"
                .into(),
        ));
    }
    if let Some(cacert) = text(&cloud, "cacert") {
        transport.ca_files.push(expand_home(&cacert));
    }
    Ok(KeystoneSettings { auth_url, identity, region, interface, transport })
}

/// `~/…` as openstacksdk's `os.path.expanduser`.
fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(path),
    }
}
