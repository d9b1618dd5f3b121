//! Prometheus Alertmanager API v2: silences, and the alerts they mute.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::http::{Auth, Body, HttpService, RetryPolicy, ServiceError};
use super::jira::Written;
use crate::config::credentials::Alertmanager as AlertmanagerConfig;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Matcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    #[serde(default = "default_true")]
    pub is_equal: bool,
}

fn default_true() -> bool {
    true
}

impl Matcher {
    /// `name="value"`.
    pub fn equal(name: &str, value: &str) -> Self {
        Matcher { name: name.to_owned(), value: value.to_owned(), is_regex: false, is_equal: true }
    }

    /// `name=~"regex"` (Alertmanager anchors it).
    pub fn regex(name: &str, regex: &str) -> Self {
        Matcher { name: name.to_owned(), value: regex.to_owned(), is_regex: true, is_equal: true }
    }

    /// `name="value"` or `name=~"value"`, as a person reads it.
    pub fn describe(&self) -> String {
        let op = if self.is_regex { "=~" } else { "=" };
        format!("{}{op}{}", self.name, self.value)
    }

    /// As the `filter` query parameter writes it.
    fn filter(&self) -> String {
        let op = match (self.is_equal, self.is_regex) {
            (true, false) => "=",
            (true, true) => "=~",
            (false, false) => "!=",
            (false, true) => "!~",
        };
        format!("{}{op}{}", self.name, serde_json::to_string(&self.value).expect("strings serialize"))
    }
}

/// A silence to create.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSilence {
    pub matchers: Vec<Matcher>,
    pub starts_at: jiff::Timestamp,
    pub ends_at: jiff::Timestamp,
    pub created_by: String,
    pub comment: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    pub id: String,
    pub status: SilenceStatus,
    pub matchers: Vec<Matcher>,
    #[serde(default)]
    pub starts_at: Option<jiff::Timestamp>,
    #[serde(default)]
    pub ends_at: Option<jiff::Timestamp>,
    #[serde(default)]
    pub created_by: String,
    #[serde(default)]
    pub comment: String,
}

/// An alert as `GET /api/v2/alerts` shows it (`gettableAlert`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    pub status: AlertStatus,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertStatus {
    /// `active`, `suppressed` or `unprocessed`.
    pub state: String,
    #[serde(default)]
    pub silenced_by: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct SilenceStatus {
    /// `active`, `pending` or `expired`.
    pub state: String,
}

impl Silence {
    pub fn is_active(&self) -> bool {
        self.status.state == "active"
    }

    /// Same matchers, in any order.
    pub fn has_matchers(&self, matchers: &[Matcher]) -> bool {
        self.matchers.len() == matchers.len() && matchers.iter().all(|wanted| self.matchers.contains(wanted))
    }
}

#[derive(Clone, Debug)]
pub struct AlertmanagerClient {
    http: HttpService,
}

impl AlertmanagerClient {
    pub fn new(config: &AlertmanagerConfig) -> Result<Self, ServiceError> {
        Self::with_policy(config, RetryPolicy::default())
    }

    pub fn with_policy(config: &AlertmanagerConfig, policy: RetryPolicy) -> Result<Self, ServiceError> {
        let auth = match (&config.username, &config.password) {
            (Some(username), Some(password)) => Auth::Basic { username: username.clone(), password: password.clone() },
            _ => Auth::None,
        };
        Ok(AlertmanagerClient {
            http: HttpService::new("alertmanager", config.url.as_url(), auth, policy, &config.transport)?,
        })
    }

    /// `GET /api/v2/status`: the Alertmanager version.
    pub async fn version(&self) -> Result<String, ServiceError> {
        let status: Value = self.http.get_json("api/v2/status", &[]).await?;
        Ok(status["versionInfo"]["version"].as_str().unwrap_or("unknown").to_owned())
    }

    /// Silences that carry every one of `matchers` (Alertmanager's filter),
    /// in any state.
    pub async fn silences(&self, matchers: &[Matcher]) -> Result<Vec<Silence>, ServiceError> {
        let filters: Vec<String> = matchers.iter().map(Matcher::filter).collect();
        let query: Vec<(&str, &str)> = filters.iter().map(|filter| ("filter", filter.as_str())).collect();
        self.http.get_json("api/v2/silences", &query).await
    }

    /// Active silences whose matchers are exactly `matchers`.
    pub async fn active_silences_with(&self, matchers: &[Matcher]) -> Result<Vec<Silence>, ServiceError> {
        let found = self.silences(matchers).await?;
        Ok(found.into_iter().filter(|silence| silence.is_active() && silence.has_matchers(matchers)).collect())
    }

    /// The alerts whose labels match every one of `matchers`, silenced or
    /// not (`GET /api/v2/alerts?filter=…`; `silenced`, `inhibited` and
    /// `active` default to true). Alertmanager works out `silencedBy` when
    /// it answers, so a silence just made shows at once.
    pub async fn alerts(&self, matchers: &[Matcher]) -> Result<Vec<Alert>, ServiceError> {
        let filters: Vec<String> = matchers.iter().map(Matcher::filter).collect();
        let query: Vec<(&str, &str)> = filters.iter().map(|filter| ("filter", filter.as_str())).collect();
        self.http.get_json("api/v2/alerts", &query).await
    }

    /// How many alerts `matchers` select, and how many of them the silence `id` mutes.
    pub async fn muted_by(&self, id: &str, matchers: &[Matcher]) -> Result<(usize, usize), ServiceError> {
        let alerts = self.alerts(matchers).await?;
        let muted = alerts.iter().filter(|alert| alert.status.silenced_by.iter().any(|by| by == id)).count();
        Ok((alerts.len(), muted))
    }

    /// Creates a silence, one attempt: see [`Self::ensure_silence`].
    pub async fn create_silence(&self, silence: &NewSilence) -> Result<String, ServiceError> {
        // Alertmanager spells it `silenceID`.
        #[derive(Deserialize)]
        struct Created {
            #[serde(rename = "silenceID")]
            silence_id: String,
        }
        let path = "api/v2/silences";
        let reply = self.http.write_once(Method::POST, path, Body::json(silence)).await?;
        Ok(self.http.decode::<Created>(&Method::POST, path, &reply)?.silence_id)
    }

    /// An active silence with exactly these matchers, by the same author and
    /// lasting at least as long: an existing one is reused, else one is
    /// created. A retry after a lost answer finds the one it made.
    pub async fn ensure_silence(&self, silence: &NewSilence) -> Result<(String, Written), ServiceError> {
        self.http
            .retrying("ensure silence", || async move {
                let reusable = self.active_silences_with(&silence.matchers).await?.into_iter().find(|found| {
                    found.created_by == silence.created_by
                        && found.ends_at.is_some_and(|end| lasts_until(end, silence.ends_at))
                });
                if let Some(found) = reusable {
                    return Ok((found.id, Written::AlreadyThere));
                }
                Ok((self.create_silence(silence).await?, Written::Created))
            })
            .await
    }

    /// Expires a silence; expiring an expired one is fine. Idempotent: retried.
    pub async fn expire(&self, id: &str) -> Result<(), ServiceError> {
        self.http.idempotent(Method::DELETE, &format!("api/v2/silence/{id}"), Body::Empty).await?;
        Ok(())
    }
}

/// Whether a silence ending at `end` lasts until `wanted`, to the day: the
/// window of a re-run ends as many seconds later as the re-run started, and
/// a silence of the same day still covers the maintenance.
pub fn lasts_until(end: jiff::Timestamp, wanted: jiff::Timestamp) -> bool {
    let day = |at: jiff::Timestamp| at.to_zoned(jiff::tz::TimeZone::UTC).date();
    day(end) >= day(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        assert_eq!(Matcher::equal("instance", "hv01.example.org").filter(), "instance=\"hv01.example.org\"");
        let regex = Matcher { name: "a".into(), value: "b.*".into(), is_regex: true, is_equal: false };
        assert_eq!(regex.filter(), "a!~\"b.*\"");
    }
}
