//! The Alertmanager API v2 emulator, pinned to the behaviour of Alertmanager
//! 0.25.0 (the Debian bookworm build): silences (create, update, list with
//! filters, get, expire), health and status. A differential test runs the
//! same operations against the real binary.
// Refusals travel as ready replies; one per request, so their size does not matter.
#![allow(clippy::result_large_err)]

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use jiff::Timestamp;
use rand::SeedableRng;
use serde_json::{json, Map, Value};

use crate::world::{Silence, SilenceMatcher};
use crate::LabState;

pub const VERSION: &str = "0.25.0";

pub fn router(state: LabState) -> Router {
    Router::new()
        .route("/api/v2/silences", get(list_silences).post(post_silence))
        .route("/api/v2/silence/{id}", get(get_silence).delete(delete_silence))
        .route("/api/v2/status", get(status))
        .route("/api/v2/alerts", get(list_alerts))
        .route("/api/v2/alerts/groups", get(empty_list))
        .route("/api/v2/receivers", get(receivers))
        .route("/-/ready", get(ok_text))
        .route("/-/healthy", get(ok_text))
        .fallback(not_found)
        .layer(axum::middleware::map_response(|mut response: Response| async move {
            response.headers_mut().insert(header::VARY, HeaderValue::from_static("Origin"));
            response
        }))
        .with_state(state)
}

/// A JSON reply (Alertmanager's error payloads are bare JSON strings).
fn reply(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// go-swagger's validation error shape.
fn swagger_error(status: StatusCode, code: u16, message: &str) -> Response {
    reply(status, json!({"code": code, "message": message}))
}

/// An empty reply: go-swagger drops the content type when there is no body.
fn empty(status: StatusCode) -> Response {
    status.into_response()
}

async fn not_found(uri: axum::http::Uri) -> Response {
    swagger_error(StatusCode::NOT_FOUND, 404, &format!("path {} was not found", uri.path()))
}

async fn ok_text() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "OK").into_response()
}

async fn empty_list() -> Response {
    reply(StatusCode::OK, json!([]))
}

async fn receivers() -> Response {
    reply(StatusCode::OK, json!([{"name": "null"}]))
}

async fn status() -> Response {
    reply(
        StatusCode::OK,
        json!({
            "cluster": {"peers": [], "status": "disabled"},
            "config": {"original": "global:\n  resolve_timeout: 5m\nroute:\n  receiver: \"null\"\nreceivers:\n- name: \"null\"\ntemplates: []\n"},
            "uptime": format_time(Timestamp::now()),
            "versionInfo": {"branch": "debian/sid", "buildDate": "20230505-14:40:12", "buildUser": "team+pkg-go@tracker.debian.org",
                            "goVersion": "go1.19.8", "revision": "0.25.0-1+b4", "version": VERSION},
        }),
    )
}

/// RFC 3339 in UTC with milliseconds, as go-swagger's `strfmt.DateTime` writes it.
pub fn format_time(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Full precision, as stored (the real store keeps nanoseconds).
fn store_time(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

fn parse_time(text: &str) -> Timestamp {
    text.parse().unwrap_or(Timestamp::UNIX_EPOCH)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SilenceState {
    Active,
    Pending,
    Expired,
}

impl SilenceState {
    fn name(self) -> &'static str {
        match self {
            SilenceState::Active => "active",
            SilenceState::Pending => "pending",
            SilenceState::Expired => "expired",
        }
    }

    /// Listing order: active, then pending, then expired.
    fn rank(self) -> u8 {
        match self {
            SilenceState::Active => 0,
            SilenceState::Pending => 1,
            SilenceState::Expired => 2,
        }
    }
}

/// Pending before its start, expired strictly after its end, else active.
pub fn silence_state(silence: &Silence, now: Timestamp) -> SilenceState {
    if now < parse_time(&silence.starts_at) {
        SilenceState::Pending
    } else if now > parse_time(&silence.ends_at) {
        SilenceState::Expired
    } else {
        SilenceState::Active
    }
}

fn silence_json(silence: &Silence, now: Timestamp) -> Value {
    let matchers: Vec<Value> = silence
        .matchers
        .iter()
        .map(|m| json!({"isEqual": m.is_equal, "isRegex": m.is_regex, "name": m.name, "value": m.value}))
        .collect();
    json!({
        "id": silence.id,
        "status": {"state": silence_state(silence, now).name()},
        "updatedAt": format_time(parse_time(&silence.updated_at)),
        "comment": silence.comment,
        "createdBy": silence.created_by,
        "endsAt": format_time(parse_time(&silence.ends_at)),
        "matchers": matchers,
        "startsAt": format_time(parse_time(&silence.starts_at)),
    })
}

// ------------------------------------------------------------------ filters

/// The four matcher operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operator {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl Operator {
    fn of(matcher: &SilenceMatcher) -> Operator {
        match (matcher.is_regex, matcher.is_equal) {
            (false, true) => Operator::Equal,
            (false, false) => Operator::NotEqual,
            (true, true) => Operator::Regex,
            (true, false) => Operator::NotRegex,
        }
    }
}

/// Parses a filter like `name="value"`, `name=~re`, `name!=v` (Alertmanager
/// 0.25's `labels.ParseMatcher`; braces are not accepted).
fn parse_filter(text: &str) -> Result<(String, Operator, String), String> {
    let bad_format = || format!("bad matcher format: {text}");
    let rest = text.trim_start();
    let name_len = rest
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_alphabetic() || *c == '_' || *c == ':' || (*i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if name_len == 0 {
        return Err(bad_format());
    }
    let (name, rest) = rest.split_at(name_len);
    let rest = rest.trim_start();
    let (operator, rest) = if let Some(rest) = rest.strip_prefix("=~") {
        (Operator::Regex, rest)
    } else if let Some(rest) = rest.strip_prefix("!=") {
        (Operator::NotEqual, rest)
    } else if let Some(rest) = rest.strip_prefix("!~") {
        (Operator::NotRegex, rest)
    } else if let Some(rest) = rest.strip_prefix('=') {
        (Operator::Equal, rest)
    } else {
        return Err(bad_format());
    };
    let raw = rest.trim();
    let unescaped_quote = || format!("matcher value contains unescaped double quote: {raw}");
    let (body, mut expect_trailing_quote) = match raw.strip_prefix('"') {
        Some(body) => (body, true),
        None => (raw, false),
    };
    let mut value = String::new();
    let mut chars = body.char_indices().peekable();
    while let Some((index, c)) = chars.next() {
        match c {
            '\\' if chars.peek().is_some() => {
                let (_, next) = chars.next().expect("peeked");
                match next {
                    'n' => value.push('\n'),
                    '"' | '\\' => value.push(next),
                    other => {
                        value.push('\\');
                        value.push(other);
                    }
                }
            }
            '"' => {
                if !expect_trailing_quote || index + 1 < body.len() {
                    return Err(unescaped_quote());
                }
                expect_trailing_quote = false;
            }
            other => value.push(other),
        }
    }
    if expect_trailing_quote {
        return Err(unescaped_quote());
    }
    if matches!(operator, Operator::Regex | Operator::NotRegex) {
        regex_lite::Regex::new(&format!("^(?:{value})$")).map_err(|err| format!("error parsing regexp: {err}"))?;
    }
    Ok((name.to_owned(), operator, value))
}

/// For every filter, the silence has a matcher with the same name, operator and
/// value string (0.25's `CheckSilenceMatchesFilterLabels`: not label matching).
fn matches_filters(silence: &Silence, filters: &[(String, Operator, String)]) -> bool {
    filters.iter().all(|(name, operator, value)| {
        silence.matchers.iter().any(|m| m.name == *name && Operator::of(m) == *operator && m.value == *value)
    })
}

/// `GET /api/v2/alerts`: alerts whose labels match every `filter` (label
/// matching, unlike silences' filters), each with the silences that mute it
/// now; `silenced`, `inhibited`, `active` and `unprocessed` (default true)
/// leave out the alerts in that state (alertmanager `api/v2/api.go`,
/// `getAlertsHandler`).
async fn list_alerts(State(state): State<LabState>, RawQuery(query): RawQuery) -> Response {
    let mut filters = Vec::new();
    let mut show_silenced = true;
    let mut show_active = true;
    for (key, value) in form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "filter" => match parse_filter(&value) {
                Ok((name, operator, value)) => filters.push(SilenceMatcher {
                    name,
                    value,
                    is_regex: matches!(operator, Operator::Regex | Operator::NotRegex),
                    is_equal: matches!(operator, Operator::Equal | Operator::Regex),
                }),
                Err(message) => return reply(StatusCode::BAD_REQUEST, json!(message)),
            },
            "silenced" | "active" => match value.as_ref() {
                "true" | "false" => {
                    let show = value == "true";
                    if key == "silenced" {
                        show_silenced = show;
                    } else {
                        show_active = show;
                    }
                }
                _ => return reply(StatusCode::BAD_REQUEST, json!(format!("{key} in query should be a boolean"))),
            },
            _ => {}
        }
    }
    let now = Timestamp::now();
    let world = state.world.lock();
    let alerts: Vec<Value> = world
        .alerts
        .iter()
        .filter(|alert| filters.iter().all(|filter| filter.matches(&alert.labels)))
        .filter_map(|alert| {
            let silenced_by: Vec<&str> = world
                .silences
                .iter()
                .filter(|silence| matches!(silence_state(silence, now), SilenceState::Active))
                .filter(|silence| silence.matchers.iter().all(|m| m.matches(&alert.labels)))
                .map(|silence| silence.id.as_str())
                .collect();
            let suppressed = !silenced_by.is_empty();
            if (suppressed && !show_silenced) || (!suppressed && !show_active) {
                return None;
            }
            let fingerprint = format!("{:016x}", fnv(alert.labels.iter().flat_map(|(k, v)| [k, v])));
            Some(json!({
                "annotations": {},
                "endsAt": format_time(now + jiff::SignedDuration::from_mins(4)),
                "fingerprint": fingerprint,
                "receivers": [{"name": "null"}],
                "startsAt": format_time(parse_time(&alert.starts_at)),
                "status": {
                    "inhibitedBy": [],
                    "silencedBy": silenced_by,
                    "state": if suppressed { "suppressed" } else { "active" },
                },
                "updatedAt": format_time(now),
                "generatorURL": "http://prometheus.lab.example.org:9090/graph",
                "labels": alert.labels,
            }))
        })
        .collect();
    reply(StatusCode::OK, Value::Array(alerts))
}

/// A stable 64-bit digest (Alertmanager's fingerprints are FNV-1a of the labels).
fn fnv<'a>(parts: impl Iterator<Item = &'a String>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0xff]) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3);
        }
    }
    hash
}

async fn list_silences(State(state): State<LabState>, RawQuery(query): RawQuery) -> Response {
    let mut filters = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes()) {
        if key == "filter" {
            match parse_filter(&value) {
                Ok(filter) => filters.push(filter),
                Err(message) => return reply(StatusCode::BAD_REQUEST, json!(message)),
            }
        }
    }
    let now = Timestamp::now();
    let world = state.world.lock();
    let mut listed: Vec<(&Silence, SilenceState)> =
        world.silences.iter().filter(|s| matches_filters(s, &filters)).map(|s| (s, silence_state(s, now))).collect();
    // Active soonest-ending first, pending soonest-starting first, expired most recent first.
    listed.sort_by(|(a, state_a), (b, state_b)| {
        state_a.rank().cmp(&state_b.rank()).then_with(|| match state_a {
            SilenceState::Active => parse_time(&a.ends_at).cmp(&parse_time(&b.ends_at)),
            SilenceState::Pending => parse_time(&a.starts_at).cmp(&parse_time(&b.starts_at)),
            SilenceState::Expired => parse_time(&b.ends_at).cmp(&parse_time(&a.ends_at)),
        })
    });
    let body: Vec<Value> = listed.into_iter().map(|(s, _)| silence_json(s, now)).collect();
    reply(StatusCode::OK, Value::Array(body))
}

/// go-swagger's check of a path parameter declared `format: uuid`.
fn path_uuid(id: &str) -> Result<(), Response> {
    let hex: Vec<char> = id.chars().collect();
    let hyphenated = id.len() == 36
        && hex
            .iter()
            .enumerate()
            .all(|(i, c)| if [8, 13, 18, 23].contains(&i) { *c == '-' } else { c.is_ascii_hexdigit() });
    let plain = id.len() == 32 && hex.iter().all(char::is_ascii_hexdigit);
    if hyphenated || plain {
        Ok(())
    } else {
        Err(swagger_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            601,
            &format!("silenceID in path must be of type uuid: {}", json!(id)),
        ))
    }
}

async fn get_silence(State(state): State<LabState>, Path(id): Path<String>) -> Response {
    if let Err(refusal) = path_uuid(&id) {
        return refusal;
    }
    let world = state.world.lock();
    match world.silences.iter().find(|s| s.id == id) {
        Some(silence) => reply(StatusCode::OK, silence_json(silence, Timestamp::now())),
        None => empty(StatusCode::NOT_FOUND),
    }
}

async fn delete_silence(State(state): State<LabState>, Path(id): Path<String>) -> Response {
    if let Err(refusal) = path_uuid(&id) {
        return refusal;
    }
    let mut world = state.world.lock();
    match expire(&mut world.silences, &id, Timestamp::now()) {
        Ok(()) => empty(StatusCode::OK),
        // 0.25 answers 500 for an unknown id (0.26+ answers 404).
        Err(message) => reply(StatusCode::INTERNAL_SERVER_ERROR, json!(message)),
    }
}

/// Ends a silence now: an active one ends now, a pending one starts and ends now.
fn expire(silences: &mut [Silence], id: &str, now: Timestamp) -> Result<(), String> {
    let Some(silence) = silences.iter_mut().find(|s| s.id == id) else {
        return Err("silence not found".into());
    };
    match silence_state(silence, now) {
        SilenceState::Expired => return Ok(()),
        SilenceState::Active => silence.ends_at = store_time(now),
        SilenceState::Pending => {
            silence.starts_at = store_time(now);
            silence.ends_at = store_time(now);
        }
    }
    silence.updated_at = store_time(now);
    Ok(())
}

// ------------------------------------------------------------------ create

/// A silence as posted, checked like go-swagger checks `postableSilence`.
struct Posted {
    id: Option<String>,
    matchers: Vec<SilenceMatcher>,
    starts_at: Timestamp,
    ends_at: Timestamp,
    created_by: String,
    comment: String,
}

fn parse_failure(reason: &str) -> Response {
    swagger_error(StatusCode::BAD_REQUEST, 400, &format!("parsing silence body from \"\" failed, because {reason}"))
}

fn required(path: &str) -> Response {
    swagger_error(StatusCode::UNPROCESSABLE_ENTITY, 602, &format!("{path} in body is required"))
}

/// Decodes and validates the body. Type errors are decoding failures (400);
/// missing fields are reported one at a time, in go-swagger's order (422).
fn parse_posted(body: &[u8]) -> Result<Posted, Response> {
    let value: Value = serde_json::from_slice(body).map_err(|err| parse_failure(&err.to_string()))?;
    let Value::Object(object) = value else {
        return Err(parse_failure("json: cannot unmarshal into Go value of type models.PostableSilence"));
    };
    let string = |object: &Map<String, Value>, key: &str| -> Result<Option<String>, Response> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(parse_failure(&format!("json: cannot unmarshal into field {key} of type string"))),
        }
    };
    let time = |key: &str| -> Result<Option<Timestamp>, Response> {
        match string(&object, key)? {
            None => Ok(None),
            Some(text) => text.parse::<Timestamp>().map(Some).map_err(|_| {
                parse_failure(&format!(
                    "parsing time {} as \"2006-01-02T15:04:05.000Z07:00\": cannot parse",
                    json!(text)
                ))
            }),
        }
    };
    let id = string(&object, "id")?.filter(|id| !id.is_empty());
    let comment = string(&object, "comment")?;
    let created_by = string(&object, "createdBy")?;
    let ends_at = time("endsAt")?;
    let starts_at = time("startsAt")?;
    let raw_matchers = match object.get("matchers") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(items.clone()),
        Some(_) => return Err(parse_failure("json: cannot unmarshal into field matchers of type []*models.Matcher")),
    };
    let mut matchers = Vec::new();
    let mut matcher_fields = Vec::new();
    for item in raw_matchers.iter().flatten() {
        let Value::Object(matcher) = item else {
            return Err(parse_failure("json: cannot unmarshal into Go struct field of type models.Matcher"));
        };
        let flag = |key: &str| -> Result<Option<bool>, Response> {
            match matcher.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Bool(flag)) => Ok(Some(*flag)),
                Some(_) => Err(parse_failure(&format!("json: cannot unmarshal into field {key} of type bool"))),
            }
        };
        matcher_fields.push((flag("isRegex")?, string(matcher, "name")?, string(matcher, "value")?, flag("isEqual")?));
    }
    // Validation, in the order go-swagger generates it.
    let comment = comment.ok_or_else(|| required("comment"))?;
    let created_by = created_by.ok_or_else(|| required("createdBy"))?;
    let ends_at = ends_at.ok_or_else(|| required("endsAt"))?;
    let Some(raw_matchers) = raw_matchers else { return Err(required("matchers")) };
    if raw_matchers.is_empty() {
        return Err(swagger_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            612,
            "matchers in body should have at least 1 items",
        ));
    }
    for (index, (is_regex, name, value, is_equal)) in matcher_fields.into_iter().enumerate() {
        let is_regex = is_regex.ok_or_else(|| required(&format!("matchers.{index}.isRegex")))?;
        let name = name.ok_or_else(|| required(&format!("matchers.{index}.name")))?;
        let value = value.ok_or_else(|| required(&format!("matchers.{index}.value")))?;
        matchers.push(SilenceMatcher { name, value, is_regex, is_equal: is_equal.unwrap_or(true) });
    }
    let starts_at = starts_at.ok_or_else(|| required("startsAt"))?;
    Ok(Posted { id, matchers, starts_at, ends_at, created_by, comment })
}

fn bad_request(message: &str) -> Response {
    reply(StatusCode::BAD_REQUEST, json!(message))
}

/// The store's own checks (`validateSilence`), reported as "silence invalid: ...".
fn validate_matchers(matchers: &[SilenceMatcher]) -> Result<(), String> {
    let mut all_match_empty = true;
    for (index, matcher) in matchers.iter().enumerate() {
        let valid_name = matcher
            .name
            .chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || (i > 0 && c.is_ascii_digit()))
            && !matcher.name.is_empty();
        if !valid_name {
            return Err(format!("invalid label matcher {index}: invalid label name {}", json!(matcher.name)));
        }
        let regex = if matcher.is_regex {
            match regex_lite::Regex::new(&format!("^(?:{})$", matcher.value)) {
                Ok(regex) => Some(regex),
                Err(err) => {
                    return Err(format!(
                        "invalid label matcher {index}: invalid regular expression {}: {err}",
                        json!(matcher.value)
                    ))
                }
            }
        } else {
            None
        };
        let matches_empty = match (Operator::of(matcher), regex) {
            (Operator::Equal, _) => matcher.value.is_empty(),
            (Operator::Regex, Some(regex)) => regex.is_match(""),
            _ => false,
        };
        all_match_empty &= matches_empty;
    }
    if all_match_empty {
        return Err("at least one matcher must not match the empty string".into());
    }
    Ok(())
}

/// Whether a silence may be changed in place (0.25's `canUpdate`).
fn can_update(existing: &Silence, posted: &Posted, now: Timestamp) -> bool {
    if existing.matchers != posted.matchers {
        return false;
    }
    match silence_state(existing, now) {
        // The start is compared to the second, so a client may send back the start it read.
        SilenceState::Active => {
            posted.starts_at.as_second() == parse_time(&existing.starts_at).as_second() && posted.ends_at >= now
        }
        SilenceState::Pending => posted.starts_at >= now,
        SilenceState::Expired => false,
    }
}

async fn post_silence(State(state): State<LabState>, body: Bytes) -> Response {
    let posted = match parse_posted(&body) {
        Ok(posted) => posted,
        Err(refusal) => return refusal,
    };
    let now = Timestamp::now();
    if posted.starts_at >= posted.ends_at {
        return bad_request("Failed to create silence: start time must be before end time");
    }
    if posted.ends_at < now {
        return bad_request("Failed to create silence: end time can't be in the past");
    }
    let mut world = state.world.lock();
    let existing = match &posted.id {
        Some(id) => match world.silences.iter().position(|s| s.id == *id) {
            Some(index) => Some(index),
            None => return reply(StatusCode::NOT_FOUND, json!("silence not found")),
        },
        None => None,
    };
    if let Some(index) = existing {
        if can_update(&world.silences[index], &posted, now) {
            if let Err(message) = validate_matchers(&posted.matchers) {
                return bad_request(&format!("silence invalid: {message}"));
            }
            let silence = &mut world.silences[index];
            silence.starts_at = store_time(posted.starts_at);
            silence.ends_at = store_time(posted.ends_at);
            silence.comment = posted.comment;
            silence.created_by = posted.created_by;
            silence.updated_at = store_time(now);
            return reply(StatusCode::OK, json!({"silenceID": silence.id}));
        }
        // The old one ends and a new one replaces it.
        let old_id = world.silences[index].id.clone();
        let _ = expire(&mut world.silences, &old_id, now);
    }
    if let Err(message) = validate_matchers(&posted.matchers) {
        return bad_request(&format!("silence invalid: {message}"));
    }
    let counter = world.next_id();
    let mut rng = rand::rngs::StdRng::seed_from_u64(world.seed ^ counter.rotate_left(29) ^ 0xa1e7);
    let id = crate::world::uuid(&mut rng);
    let starts_at = posted.starts_at.max(now);
    world.silences.push(Silence {
        id: id.clone(),
        matchers: posted.matchers,
        starts_at: store_time(starts_at),
        ends_at: store_time(posted.ends_at),
        updated_at: store_time(now),
        created_by: posted.created_by,
        comment: posted.comment,
    });
    reply(StatusCode::OK, json!({"silenceID": id}))
}
