//! NetBox 3.x and 4.x: devices, their status and role, device types,
//! interfaces and IP addresses.

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::http::{Auth, Body, HttpService, Pages, RetryPolicy, ServiceError};
use crate::config::credentials::NetBox as NetBoxConfig;

#[derive(Clone, Debug, Deserialize)]
pub struct Choice {
    pub value: String,
    #[serde(default)]
    pub label: String,
}

/// A nested reference (role, device type, site…).
#[derive(Clone, Debug, Deserialize)]
pub struct Nested {
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub slug: Option<String>,
    #[serde(default)]
    pub display: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
}

impl Nested {
    pub fn label(&self) -> &str {
        self.name.as_deref().or(self.model.as_deref()).or(self.display.as_deref()).unwrap_or("")
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct NestedIp {
    pub id: u64,
    /// With its prefix length, `10.0.0.5/24`.
    pub address: String,
}

impl NestedIp {
    /// The host address, without the prefix length.
    pub fn host(&self) -> &str {
        self.address.split('/').next().unwrap_or(&self.address)
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct Device {
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    pub status: Choice,
    /// 3.6+ and 4.x.
    #[serde(default)]
    pub role: Option<Nested>,
    /// Up to 3.7 (read-only from 3.6).
    #[serde(default)]
    pub device_role: Option<Nested>,
    #[serde(default)]
    pub device_type: Option<Nested>,
    #[serde(default)]
    pub oob_ip: Option<NestedIp>,
    #[serde(default)]
    pub primary_ip: Option<NestedIp>,
    #[serde(default)]
    pub custom_fields: Map<String, Value>,
    /// The serial number (empty when NetBox has none).
    #[serde(default)]
    pub serial: Option<String>,
    /// Which role key this NetBox writes (`role` from 3.6, else `device_role`).
    #[serde(skip)]
    pub role_field: &'static str,
}

impl Device {
    pub fn role(&self) -> Option<&Nested> {
        self.role.as_ref().or(self.device_role.as_ref())
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct Role {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub slug: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct DeviceType {
    pub id: u64,
    pub model: String,
    #[serde(default)]
    pub slug: String,
    #[serde(default)]
    pub manufacturer: Option<Nested>,
    /// Free text; a site may say "GPU" here (pre-reinstall checks for the card).
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub custom_fields: Map<String, Value>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Interface {
    pub id: u64,
    pub name: String,
    /// Read-only from NetBox 4.2 (the primary MAC address of the interface).
    #[serde(default)]
    pub mac_address: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct IpAddress {
    pub id: u64,
    pub address: String,
}

impl IpAddress {
    pub fn host(&self) -> &str {
        self.address.split('/').next().unwrap_or(&self.address)
    }
}

/// The fields to change on a device; `None` leaves a field alone.
#[derive(Clone, Debug, Default)]
pub struct DeviceChange {
    pub status: Option<String>,
    pub role: Option<Role>,
}

#[derive(Clone, Debug)]
pub struct NetBoxClient {
    http: HttpService,
}

impl NetBoxClient {
    pub fn new(config: &NetBoxConfig) -> Result<Self, ServiceError> {
        Self::with_policy(config, RetryPolicy::default())
    }

    pub fn with_policy(config: &NetBoxConfig, policy: RetryPolicy) -> Result<Self, ServiceError> {
        // v2 tokens (4.5+) are `nbt_…` and go as Bearer.
        let scheme = if config.token.expose().starts_with("nbt_") { "Bearer" } else { "Token" };
        let auth = Auth::Scheme { scheme, token: config.token.clone() };
        Ok(NetBoxClient { http: HttpService::new("netbox", config.url.as_url(), auth, policy, &config.transport)? })
    }

    /// `GET /api/status/`: the NetBox version.
    pub async fn version(&self) -> Result<String, ServiceError> {
        let status: Value = self.http.get_json("api/status/", &[]).await?;
        Ok(status.get("netbox-version").and_then(Value::as_str).unwrap_or("unknown").to_owned())
    }

    /// Reads one device: proves the token (the status page may be open to all).
    pub async fn check_token(&self) -> Result<(), ServiceError> {
        self.http.get("api/dcim/devices/", &[("limit", "1"), ("brief", "1")]).await?;
        Ok(())
    }

    /// Every result of a list endpoint, following `next`.
    async fn list<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<Vec<T>, ServiceError> {
        #[derive(Deserialize)]
        struct Page<T> {
            results: Vec<T>,
            #[serde(default)]
            next: Option<String>,
        }
        let mut query = query.to_vec();
        query.push(("limit", "1000"));
        let mut url = self.http.url(path, &query)?;
        let mut pages = Pages::default();
        let mut found = Vec::new();
        loop {
            pages.visit(&self.http, path, &url)?;
            let reply = self.http.get_url(url.clone()).await?;
            let page: Page<T> = self.http.decode(&Method::GET, path, &reply)?;
            found.extend(page.results);
            match page.next {
                // The token goes with the next request: only to our own NetBox.
                Some(next) => url = self.http.follow_link(path, &next)?,
                None => return Ok(found),
            }
        }
    }

    /// The device with exactly this name, if any; two or more is an error.
    pub async fn find_device(&self, name: &str) -> Result<Option<Device>, ServiceError> {
        let path = "api/dcim/devices/";
        let found: Vec<Value> = self.list(path, &[("name", name)]).await?;
        // The filter is exact, but an old NetBox ignores unknown filters: check.
        let mut found: Vec<Value> =
            found.into_iter().filter(|d| d.get("name").and_then(Value::as_str) == Some(name)).collect();
        match found.len() {
            0 => Ok(None),
            1 => Ok(Some(self.device_from(&Method::GET, path, found.remove(0))?)),
            n => Err(self.http.unusable(&Method::GET, path, format!("{n} devices are named '{name}'; expected one"))),
        }
    }

    /// Like [`Self::find_device`], missing is an error.
    pub async fn device(&self, name: &str) -> Result<Device, ServiceError> {
        self.find_device(name)
            .await?
            .ok_or_else(|| self.http.unusable(&Method::GET, "api/dcim/devices/", format!("no device named '{name}'")))
    }

    fn device_from(&self, method: &Method, path: &str, value: Value) -> Result<Device, ServiceError> {
        let role_field = if value.get("role").is_some() { "role" } else { "device_role" };
        let mut device: Device = serde_json::from_value(value)
            .map_err(|err| self.http.unusable(method, path, format!("unexpected device: {err}")))?;
        device.role_field = role_field;
        Ok(device)
    }

    /// The role with this exact name; missing is an error.
    pub async fn role_by_name(&self, name: &str) -> Result<Role, ServiceError> {
        let path = "api/dcim/device-roles/";
        let roles: Vec<Role> = self.list(path, &[("name", name)]).await?;
        roles
            .into_iter()
            .find(|role| role.name == name)
            .ok_or_else(|| self.http.unusable(&Method::GET, path, format!("no device role named '{name}'")))
    }

    pub async fn device_type(&self, id: u64) -> Result<DeviceType, ServiceError> {
        self.http.get_json(&format!("api/dcim/device-types/{id}/"), &[]).await
    }

    pub async fn interfaces(&self, device_id: u64) -> Result<Vec<Interface>, ServiceError> {
        self.list("api/dcim/interfaces/", &[("device_id", &device_id.to_string())]).await
    }

    pub async fn interface_ips(&self, interface_id: u64) -> Result<Vec<IpAddress>, ServiceError> {
        self.list("api/ipam/ip-addresses/", &[("interface_id", &interface_id.to_string())]).await
    }

    /// The out-of-band (IPMI) address: `oob_ip`, else the first address of
    /// the interface named `bmc_interface`.
    pub async fn oob_address(&self, device: &Device, bmc_interface: &str) -> Result<Option<String>, ServiceError> {
        if let Some(ip) = &device.oob_ip {
            return Ok(Some(ip.host().to_owned()));
        }
        let Some(bmc) = self.interfaces(device.id).await?.into_iter().find(|i| i.name == bmc_interface) else {
            return Ok(None);
        };
        Ok(self.interface_ips(bmc.id).await?.first().map(|ip| ip.host().to_owned()))
    }

    /// PATCHes only the fields that differ from `device`; returns the device
    /// as NetBox has it now, and whether anything was sent.
    pub async fn update_device(&self, device: &Device, change: &DeviceChange) -> Result<(Device, bool), ServiceError> {
        let mut patch = Map::new();
        if let Some(status) = &change.status {
            if &device.status.value != status {
                patch.insert("status".into(), json!(status));
            }
        }
        if let Some(role) = &change.role {
            if device.role().map(|current| current.id) != Some(role.id) {
                let field = if device.role_field.is_empty() { "role" } else { device.role_field };
                patch.insert(field.into(), json!(role.id));
            }
        }
        if patch.is_empty() {
            return Ok((device.clone(), false));
        }
        let path = format!("api/dcim/devices/{}/", device.id);
        // A PATCH of fields to values is idempotent: retried as a whole.
        let reply = self.http.idempotent(Method::PATCH, &path, Body::Json(Value::Object(patch))).await?;
        let value: Value = self.http.decode(&Method::PATCH, &path, &reply)?;
        Ok((self.device_from(&Method::PATCH, &path, value)?, true))
    }
}
