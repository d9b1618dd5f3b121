//! The Jira emulator: Data Center REST v2 (wiki strings) and Cloud REST v3
//! (Atlassian Document Format) served side by side, on the site's one project
//! and its workflow.
//!
//! Status ids and transition ids come from the workflow's sorted status names,
//! so they are stable for a given workflow: status `10000 + n`, and the
//! transition into that status `n * 10 + 11`, named after its target status.

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::world::{jira_time, JiraAttachment, JiraComment, JiraIssue, WorldState};
use crate::LabState;

const SERVER_VERSION: [u64; 3] = [9, 12, 2];
const DISPLAY_NAME: &str = "Lab Operator";
const ISSUE_TYPE_ID: &str = "10100";
const INTERNAL_PROPERTY: &str = "sd.public.comment";

pub fn router(state: LabState) -> Router {
    Router::new()
        .route("/rest/api/{version}/serverInfo", get(server_info))
        .route("/rest/api/{version}/myself", get(myself))
        .route("/rest/api/{version}/field", get(fields))
        .route("/rest/api/{version}/project/{key}", get(project))
        .route("/rest/api/{version}/issue", post(create_issue))
        .route("/rest/api/{version}/issue/{key}", get(get_issue))
        .route("/rest/api/{version}/issue/{key}/comment", get(list_comments).post(add_comment))
        .route("/rest/api/{version}/issue/{key}/attachments", post(add_attachments))
        .route("/rest/api/{version}/issue/{key}/transitions", get(get_transitions).post(do_transition))
        .route("/rest/api/{version}/search", get(search_get).post(search_post))
        .route("/rest/api/{version}/search/jql", get(search_jql_get).post(search_jql_post))
        .fallback(unknown_resource)
        .layer(axum::middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

/// The REST flavour a path asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Api {
    /// `/rest/api/2` (and `latest`): rich text as wiki strings, users by name.
    V2,
    /// `/rest/api/3`: rich text as ADF documents, users by accountId.
    V3,
}

impl Api {
    fn parse(version: &str) -> Option<Api> {
        match version {
            "2" | "latest" => Some(Api::V2),
            "3" => Some(Api::V3),
            _ => None,
        }
    }

    fn number(self) -> u8 {
        match self {
            Api::V2 => 2,
            Api::V3 => 3,
        }
    }
}

#[derive(Deserialize)]
struct IssuePath {
    version: String,
    key: String,
}

/// A refusal in Jira's `ErrorCollection` shape.
fn error_collection(status: StatusCode, messages: &[&str], fields: &[(&str, &str)]) -> Response {
    let errors: Map<String, Value> = fields.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    (status, Json(json!({"errorMessages": messages, "errors": errors}))).into_response()
}

fn bad_request(message: &str) -> Response {
    error_collection(StatusCode::BAD_REQUEST, &[message], &[])
}

/// A refusal small enough to return in a `Result` (a `Response` is large).
struct Refusal(StatusCode, Value);

impl Refusal {
    fn bad_request(message: &str) -> Refusal {
        Refusal(StatusCode::BAD_REQUEST, json!({"errorMessages": [message], "errors": {}}))
    }

    fn field(field: &str, message: &str) -> Refusal {
        Refusal(StatusCode::BAD_REQUEST, json!({"errorMessages": [], "errors": {field: message}}))
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

fn issue_not_found() -> Response {
    error_collection(StatusCode::NOT_FOUND, &["Issue does not exist or you do not have permission to see it."], &[])
}

/// Jersey's answer for a path no resource serves.
async fn unknown_resource(State(state): State<LabState>, uri: Uri) -> Response {
    let body = json!({"message": format!("null for uri: {}{uri}", state.urls.jira), "status-code": 404});
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

fn not_found_version(state: &LabState, version: &str) -> Response {
    let body = json!({"message": format!("null for uri: {}/rest/api/{version}", state.urls.jira), "status-code": 404});
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

/// Basic (user + API token) or Bearer (personal access token). Only
/// serverInfo answers anonymous callers; bad credentials fail everywhere.
async fn authenticate(State(state): State<LabState>, request: Request, next: Next) -> Response {
    let header = request.headers().get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    let Some(header) = header else {
        if request.uri().path().ends_with("/serverInfo") {
            return next.run(request).await;
        }
        return unauthenticated(false);
    };
    if credentials_valid(&state, header) {
        next.run(request).await
    } else {
        unauthenticated(true)
    }
}

fn credentials_valid(state: &LabState, header: &str) -> bool {
    let secrets = &state.secrets;
    if let Some(token) = strip_scheme(header, "Bearer") {
        return token == secrets.jira_personal_access_token;
    }
    let Some((user, password)) = strip_scheme(header, "Basic").and_then(decode_basic) else { return false };
    user == secrets.jira_username && password == secrets.jira_api_token
}

/// `Scheme value` with the scheme matched case-insensitively.
pub(crate) fn strip_scheme<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, value) = header.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then(|| value.trim())
}

/// `base64(user:password)` into its two parts.
pub(crate) fn decode_basic(encoded: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// 401; a failed login also says so in `X-Seraph-LoginReason`, as Jira DC does.
fn unauthenticated(login_failed: bool) -> Response {
    let mut response = error_collection(
        StatusCode::UNAUTHORIZED,
        &["You are not authenticated. Authentication required to perform this operation."],
        &[],
    );
    if login_failed {
        response.headers_mut().insert("x-seraph-loginreason", header::HeaderValue::from_static("AUTHENTICATED_FAILED"));
    }
    response
}

fn now() -> String {
    jira_time(&jiff::Timestamp::now())
}

/// Parses a JSON request body, answering Jira's 400 for malformed JSON.
fn parse_body(body: &Bytes) -> Result<Value, Refusal> {
    if body.is_empty() {
        return Err(Refusal::bad_request("No content to map due to end-of-input"));
    }
    serde_json::from_slice(body).map_err(|err| Refusal::bad_request(&format!("Unexpected character in JSON: {err}")))
}

// ---------------------------------------------------------------------------
// Rich text: wiki strings (v2) and ADF documents (v3).

/// A valid ADF document: `{"type":"doc","version":1,"content":[...]}`.
fn is_adf(value: &Value) -> bool {
    value.get("type").and_then(Value::as_str) == Some("doc")
        && value.get("version").and_then(Value::as_u64) == Some(1)
        && value.get("content").is_some_and(Value::is_array)
}

/// The plain text of an ADF document: its blocks' text, one line each.
fn adf_to_text(value: &Value) -> String {
    fn inline_text(node: &Value, out: &mut String) {
        if let Some(text) = node.get("text").and_then(Value::as_str) {
            out.push_str(text);
        }
        if node.get("type").and_then(Value::as_str) == Some("hardBreak") {
            out.push('\n');
        }
        for child in node.get("content").and_then(Value::as_array).into_iter().flatten() {
            inline_text(child, out);
        }
    }
    let blocks = value.get("content").and_then(Value::as_array).cloned().unwrap_or_default();
    blocks
        .iter()
        .map(|block| {
            let mut text = String::new();
            inline_text(block, &mut text);
            text
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A wiki string as an ADF document: one paragraph per line.
fn text_to_adf(text: &str) -> Value {
    let paragraphs: Vec<Value> = text
        .lines()
        .map(|line| {
            if line.is_empty() {
                json!({"type": "paragraph", "content": []})
            } else {
                json!({"type": "paragraph", "content": [{"type": "text", "text": line}]})
            }
        })
        .collect();
    json!({"type": "doc", "version": 1, "content": paragraphs})
}

/// Rich text as the given flavour shows it, whichever flavour stored it.
fn render_text(value: &Value, api: Api) -> Value {
    match (api, value) {
        (Api::V2, Value::String(_)) | (Api::V3, Value::Object(_)) => value.clone(),
        (Api::V2, other) => Value::String(adf_to_text(other)),
        (Api::V3, Value::String(text)) => text_to_adf(text),
        (Api::V3, other) => other.clone(),
    }
}

// ---------------------------------------------------------------------------
// Statuses, transitions and users.

fn status_names(world: &WorldState) -> Vec<&str> {
    let mut names: Vec<&str> = world.jira.workflow.keys().map(String::as_str).collect();
    for targets in world.jira.workflow.values() {
        names.extend(targets.iter().map(String::as_str));
    }
    names.sort_unstable();
    names.dedup();
    names
}

fn status_index(world: &WorldState, name: &str) -> usize {
    status_names(world).iter().position(|status| *status == name).unwrap_or(0)
}

fn status_id(world: &WorldState, name: &str) -> String {
    (10_000 + status_index(world, name)).to_string()
}

fn transition_id(world: &WorldState, target: &str) -> String {
    (status_index(world, target) * 10 + 11).to_string()
}

fn status_json(world: &WorldState, base: &str, api: Api, name: &str) -> Value {
    let (category_id, key, color, category_name) = if name == world.jira.initial_status {
        (2, "new", "blue-gray", "To Do")
    } else if world.jira.workflow.get(name).is_some_and(Vec::is_empty) {
        (3, "done", "green", "Done")
    } else {
        (4, "indeterminate", "yellow", "In Progress")
    };
    let id = status_id(world, name);
    let v = api.number();
    json!({
        "self": format!("{base}/rest/api/{v}/status/{id}"),
        "description": "",
        "iconUrl": format!("{base}/images/icons/statuses/generic.png"),
        "name": name,
        "id": id,
        "statusCategory": {
            "self": format!("{base}/rest/api/{v}/statuscategory/{category_id}"),
            "id": category_id,
            "key": key,
            "colorName": color,
            "name": category_name,
        },
    })
}

/// A stable Cloud-style account id for a user name.
fn account_id(name: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("5b10a2844c20165700ede{:03x}{:016x}", hash >> 52, hash)
}

fn user_json(state: &LabState, api: Api, name: &str) -> Value {
    let base = &state.urls.jira;
    let display_name = if name == state.secrets.jira_username { DISPLAY_NAME } else { name };
    let avatar = format!("{base}/secure/useravatar?avatarId=10122");
    let avatars = json!({"48x48": avatar, "24x24": avatar, "16x16": avatar, "32x32": avatar});
    match api {
        Api::V2 => json!({
            "self": format!("{base}/rest/api/2/user?username={name}"),
            "name": name,
            "key": name,
            "emailAddress": name,
            "avatarUrls": avatars,
            "displayName": display_name,
            "active": true,
            "timeZone": "Etc/UTC",
        }),
        Api::V3 => {
            let id = account_id(name);
            json!({
                "self": format!("{base}/rest/api/3/user?accountId={id}"),
                "accountId": id,
                "emailAddress": name,
                "avatarUrls": avatars,
                "displayName": display_name,
                "active": true,
                "timeZone": "Etc/UTC",
                "accountType": "atlassian",
            })
        }
    }
}

fn comment_json(state: &LabState, api: Api, issue: &JiraIssue, comment: &JiraComment, properties: bool) -> Value {
    let author = user_json(state, api, &comment.author);
    let mut value = json!({
        "self": format!("{}/rest/api/{}/issue/{}/comment/{}", state.urls.jira, api.number(), issue.id, comment.id),
        "id": comment.id,
        "author": author,
        "body": render_text(&comment.body, api),
        "updateAuthor": author,
        "created": comment.created,
        "updated": comment.created,
    });
    if comment.internal {
        value["jsdPublic"] = json!(false);
    }
    if properties {
        value["properties"] =
            if comment.internal { json!([{"key": INTERNAL_PROPERTY, "value": {"internal": true}}]) } else { json!([]) };
    }
    value
}

fn project_json(world: &WorldState, base: &str, api: Api) -> Value {
    let jira = &world.jira;
    json!({
        "self": format!("{base}/rest/api/{}/project/{}", api.number(), jira.project_id),
        "id": jira.project_id,
        "key": jira.project_key,
        "name": format!("{} hypervisor migration", jira.project_key),
        "projectTypeKey": "software",
        "simplified": false,
    })
}

fn issue_type_json(world: &WorldState, base: &str, api: Api) -> Value {
    json!({
        "self": format!("{base}/rest/api/{}/issuetype/{ISSUE_TYPE_ID}", api.number()),
        "id": ISSUE_TYPE_ID,
        "description": "A hypervisor to migrate",
        "iconUrl": format!("{base}/images/icons/issuetypes/task.svg"),
        "name": world.jira.issue_type,
        "subtask": false,
    })
}

/// Which fields a `fields` parameter asks for; `None` means all of them.
fn requested_fields(fields: Option<&Value>, default_all: bool) -> Option<Vec<String>> {
    let names: Vec<String> = match fields {
        Some(Value::String(text)) => text.split(',').map(|f| f.trim().to_owned()).filter(|f| !f.is_empty()).collect(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => return if default_all { None } else { Some(vec!["id".into()]) },
    };
    if names.is_empty() || names.iter().any(|name| name == "*all" || name == "*navigable") {
        None
    } else {
        Some(names)
    }
}

fn issue_json(state: &LabState, world: &WorldState, api: Api, issue: &JiraIssue, fields: Option<&[String]>) -> Value {
    let base = state.urls.jira.as_str();
    let comments: Vec<Value> = issue.comments.iter().map(|c| comment_json(state, api, issue, c, false)).collect();
    let total = comments.len();
    let all = json!({
        "summary": issue.summary,
        "status": status_json(world, base, api, &issue.status),
        "description": issue.description.as_ref().map(|d| render_text(d, api)),
        "issuetype": issue_type_json(world, base, api),
        "project": project_json(world, base, api),
        "labels": [],
        "created": issue.created,
        "updated": issue.updated,
        "resolution": null,
        "comment": {"comments": comments, "maxResults": total, "total": total, "startAt": 0},
        "attachment": issue.attachments.iter().map(|a| attachment_json(state, api, a)).collect::<Vec<_>>(),
    });
    let mut selected = Map::new();
    for (name, value) in all.as_object().expect("an object") {
        let wanted = match fields {
            None => true,
            Some(names) => names.iter().any(|n| n == name) && !names.iter().any(|n| n == &format!("-{name}")),
        };
        if wanted {
            selected.insert(name.clone(), value.clone());
        }
    }
    json!({
        "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
        "id": issue.id,
        "self": format!("{base}/rest/api/{}/issue/{}", api.number(), issue.id),
        "key": issue.key,
        "fields": selected,
    })
}

// ---------------------------------------------------------------------------
// Handlers.

async fn server_info(State(state): State<LabState>, Path(version): Path<String>) -> Response {
    if Api::parse(&version).is_none() {
        return not_found_version(&state, &version);
    }
    if state.world.lock().jira.cloud {
        // As Jira Cloud answers (developer.atlassian.com, "Get Jira instance info").
        return Json(json!({
            "baseUrl": state.urls.jira,
            "displayUrl": state.urls.jira,
            "version": "1001.0.0-SNAPSHOT",
            "versionNumbers": [1001, 0, 0],
            "deploymentType": "Cloud",
            "buildNumber": 100_289,
            "buildDate": "2025-06-01T00:00:00.000+0000",
            "serverTime": now(),
            "scmInfo": "lab",
            "serverTitle": "Jira",
            "defaultLocale": {"locale": "en_US"},
            "serverTimeZone": "Etc/UTC",
        }))
        .into_response();
    }
    let [major, minor, patch] = SERVER_VERSION;
    Json(json!({
        "baseUrl": state.urls.jira,
        "version": format!("{major}.{minor}.{patch}"),
        "versionNumbers": SERVER_VERSION,
        "deploymentType": "Server",
        "buildNumber": major * 100_000 + minor * 100 + patch,
        "buildDate": "2024-02-20T00:00:00.000+0000",
        "serverTime": now(),
        "scmInfo": "lab",
        "serverTitle": "Lab Jira",
    }))
    .into_response()
}

async fn myself(State(state): State<LabState>, Path(version): Path<String>) -> Response {
    let Some(api) = Api::parse(&version) else { return not_found_version(&state, &version) };
    let mut user = user_json(&state, api, &state.secrets.jira_username);
    user["locale"] = json!("en_GB");
    user["groups"] = json!({"size": 1, "items": []});
    user["applicationRoles"] = json!({"size": 1, "items": []});
    user["expand"] = json!("groups,applicationRoles");
    Json(user).into_response()
}

async fn fields(State(state): State<LabState>, Path(version): Path<String>) -> Response {
    if Api::parse(&version).is_none() {
        return not_found_version(&state, &version);
    }
    let field = |id: &str, name: &str, kind: &str| {
        json!({"id": id, "key": id, "name": name, "custom": false, "orderable": true, "navigable": true,
               "searchable": true, "clauseNames": [id], "schema": {"type": kind, "system": id}})
    };
    Json(json!([
        field("summary", "Summary", "string"),
        field("status", "Status", "status"),
        field("description", "Description", "string"),
        field("issuetype", "Issue Type", "issuetype"),
        field("project", "Project", "project"),
        field("labels", "Labels", "array"),
        field("created", "Created", "datetime"),
        field("updated", "Updated", "datetime"),
        field("resolution", "Resolution", "resolution"),
        field("comment", "Comment", "comments-page"),
    ]))
    .into_response()
}

async fn project(State(state): State<LabState>, Path(path): Path<IssuePath>) -> Response {
    let Some(api) = Api::parse(&path.version) else { return not_found_version(&state, &path.version) };
    let world = state.world.lock();
    if path.key != world.jira.project_key && path.key != world.jira.project_id {
        let message = format!("No project could be found with key '{}'.", path.key);
        return error_collection(StatusCode::NOT_FOUND, &[&message], &[]);
    }
    let mut value = project_json(&world, &state.urls.jira, api);
    value["issueTypes"] = json!([issue_type_json(&world, &state.urls.jira, api)]);
    Json(value).into_response()
}

async fn create_issue(State(state): State<LabState>, Path(version): Path<String>, body: Bytes) -> Response {
    let Some(api) = Api::parse(&version) else { return not_found_version(&state, &version) };
    let body = match parse_body(&body) {
        Ok(body) => body,
        Err(refusal) => return refusal.into_response(),
    };
    let fields = body.get("fields").cloned().unwrap_or(Value::Null);
    let mut world = state.world.lock();
    let mut errors: Vec<(&str, &str)> = Vec::new();
    let project = &fields["project"];
    let project_given = project.get("key").or_else(|| project.get("id")).and_then(Value::as_str);
    match project_given {
        None => errors.push(("project", "project is required")),
        Some(p) if p != world.jira.project_key && p != world.jira.project_id => {
            errors.push(("project", "valid project is required"))
        }
        Some(_) => {}
    }
    let issue_type = &fields["issuetype"];
    match (issue_type.get("name").and_then(Value::as_str), issue_type.get("id").and_then(Value::as_str)) {
        (None, None) => errors.push(("issuetype", "issue type is required")),
        (Some(name), _) if name != world.jira.issue_type => errors.push(("issuetype", "valid issue type is required")),
        (None, Some(id)) if id != ISSUE_TYPE_ID => errors.push(("issuetype", "valid issue type is required")),
        _ => {}
    }
    let summary = fields["summary"].as_str().unwrap_or_default().trim().to_owned();
    if summary.is_empty() {
        errors.push(("summary", "You must specify a summary of the issue."));
    }
    let description = fields.get("description").filter(|d| !d.is_null()).cloned();
    match (&description, api) {
        (Some(d), Api::V2) if !d.is_string() => errors.push(("description", "Operation value must be a string")),
        (Some(d), Api::V3) if !is_adf(d) => errors
            .push(("description", "Operation value must be an Atlassian Document (see the Atlassian Document Format)")),
        _ => {}
    }
    if !errors.is_empty() {
        return error_collection(StatusCode::BAD_REQUEST, &[], &errors);
    }
    let issue = world.create_jira_issue(&summary, description, jiff::Timestamp::now());
    let created = json!({
        "id": issue.id,
        "key": issue.key,
        "self": format!("{}/rest/api/{}/issue/{}", state.urls.jira, api.number(), issue.id),
    });
    tracing::debug!(key = %issue.key, "jira: issue created");
    (StatusCode::CREATED, Json(created)).into_response()
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct IssueQuery {
    fields: Option<String>,
    start_at: Option<String>,
    max_results: Option<String>,
    expand: Option<String>,
    transition_id: Option<String>,
}

fn query(uri: &Uri) -> IssueQuery {
    axum::extract::Query::<IssueQuery>::try_from_uri(uri).map(|q| q.0).unwrap_or_default()
}

async fn get_issue(State(state): State<LabState>, Path(path): Path<IssuePath>, uri: Uri) -> Response {
    let Some(api) = Api::parse(&path.version) else { return not_found_version(&state, &path.version) };
    let params = query(&uri);
    let fields = requested_fields(params.fields.map(Value::String).as_ref(), true);
    let world = state.world.lock();
    match world.jira_issue(&path.key) {
        Some(issue) => Json(issue_json(&state, &world, api, issue, fields.as_deref())).into_response(),
        None => issue_not_found(),
    }
}

/// A non-negative integer parameter, or the default.
fn number_param(text: Option<&str>, default: usize) -> usize {
    text.and_then(|t| t.trim().parse::<i64>().ok()).map_or(default, |n| n.max(0) as usize)
}

async fn list_comments(State(state): State<LabState>, Path(path): Path<IssuePath>, uri: Uri) -> Response {
    let Some(api) = Api::parse(&path.version) else { return not_found_version(&state, &path.version) };
    let params = query(&uri);
    let properties = params.expand.as_deref().is_some_and(|e| e.split(',').any(|x| x.trim() == "properties"));
    let world = state.world.lock();
    let Some(issue) = world.jira_issue(&path.key) else { return issue_not_found() };
    let total = issue.comments.len();
    let start_at = number_param(params.start_at.as_deref(), 0);
    // Data Center returns every comment by default; Cloud pages by 100.
    let default_max = if api == Api::V2 { total.max(1) } else { 100 };
    let max_results = number_param(params.max_results.as_deref(), default_max).min(5000);
    let comments: Vec<Value> = issue
        .comments
        .iter()
        .skip(start_at)
        .take(max_results)
        .map(|comment| comment_json(&state, api, issue, comment, properties))
        .collect();
    Json(json!({"startAt": start_at, "maxResults": max_results, "total": total, "comments": comments})).into_response()
}

/// Checks a comment body against the flavour's rich-text rules.
fn comment_body(api: Api, body: Option<&Value>) -> Result<Value, Refusal> {
    match (api, body) {
        (_, None | Some(Value::Null)) => Err(Refusal::field("comment", "Comment body can not be empty!")),
        (Api::V2, Some(Value::String(text))) if text.trim().is_empty() => {
            Err(Refusal::field("comment", "Comment body can not be empty!"))
        }
        (Api::V2, Some(Value::String(text))) => Ok(Value::String(text.clone())),
        (Api::V2, Some(_)) => {
            Err(Refusal::bad_request("Can not deserialize instance of java.lang.String out of START_OBJECT token"))
        }
        (Api::V3, Some(doc)) if is_adf(doc) => Ok(doc.clone()),
        (Api::V3, Some(_)) => Err(Refusal::field("comment", "Comment body is not valid!")),
    }
}

/// Whether the `properties` of a comment mark it internal (Service Management).
fn is_internal(properties: Option<&Value>) -> bool {
    properties.and_then(Value::as_array).into_iter().flatten().any(|property| {
        property["key"] == INTERNAL_PROPERTY && property["value"]["internal"].as_bool().unwrap_or(false)
    })
}

fn push_comment(world: &mut WorldState, key: &str, author: &str, body: Value, internal: bool) -> Option<String> {
    let id = (10_000 + world.next_id()).to_string();
    let now = now();
    let issue = world.jira_issue_mut(key)?;
    issue.comments.push(JiraComment {
        id: id.clone(),
        body,
        internal,
        author: author.to_owned(),
        created: now.clone(),
    });
    issue.updated = now;
    Some(id)
}

async fn add_comment(State(state): State<LabState>, Path(path): Path<IssuePath>, body: Bytes) -> Response {
    let Some(api) = Api::parse(&path.version) else { return not_found_version(&state, &path.version) };
    let request = match parse_body(&body) {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(),
    };
    let text = match comment_body(api, request.get("body")) {
        Ok(text) => text,
        Err(refusal) => return refusal.into_response(),
    };
    let internal = is_internal(request.get("properties"));
    let mut world = state.world.lock();
    if world.jira_issue(&path.key).is_none() {
        return issue_not_found();
    }
    if let Some(limit) = world.jira.comment_limit {
        // A wiki string counts its characters; an ADF document, its JSON.
        let length = match &text {
            Value::String(text) => text.chars().count(),
            doc => doc.to_string().chars().count(),
        };
        if length > limit {
            let message = format!(
                "The entered text is too long. It exceeds the allowed limit of {} characters.",
                thousands(limit)
            );
            return Refusal::field("comment", &message).into_response();
        }
    }
    let author = state.secrets.jira_username.clone();
    let Some(id) = push_comment(&mut world, &path.key, &author, text, internal) else { return issue_not_found() };
    let issue = world.jira_issue(&path.key).expect("just found");
    let comment = issue.comments.iter().find(|c| c.id == id).expect("just added");
    let mut value = comment_json(&state, api, issue, comment, false);
    if let Some(visibility) = request.get("visibility") {
        value["visibility"] = visibility.clone();
    }
    (StatusCode::CREATED, Json(value)).into_response()
}

/// `32767` as Jira writes it in messages: `32,767`.
fn thousands(value: usize) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn attachment_json(state: &LabState, api: Api, attachment: &JiraAttachment) -> Value {
    let base = state.urls.jira.as_str();
    json!({
        "self": format!("{base}/rest/api/{}/attachment/{}", api.number(), attachment.id),
        "id": attachment.id,
        "filename": attachment.filename,
        "author": user_json(state, api, &attachment.author),
        "created": attachment.created,
        "size": attachment.size,
        "mimeType": attachment.mime_type,
        "content": format!("{base}/secure/attachment/{}/{}", attachment.id, attachment.filename),
    })
}

/// `POST …/issue/{key}/attachments`: multipart/form-data, every part named
/// `file`, and the `X-Atlassian-Token: no-check` header, without which Jira's
/// XSRF protection answers 403 (Atlassian REST docs, "Add attachment"; the
/// same in pycontribs/jira's `add_attachment`). Answers the new attachments.
async fn add_attachments(State(state): State<LabState>, Path(path): Path<IssuePath>, request: Request) -> Response {
    use axum::extract::FromRequest;
    let Some(api) = Api::parse(&path.version) else { return not_found_version(&state, &path.version) };
    let token = request.headers().get("x-atlassian-token").and_then(|value| value.to_str().ok());
    if !token.is_some_and(|token| token.eq_ignore_ascii_case("no-check")) {
        return (StatusCode::FORBIDDEN, "XSRF check failed").into_response();
    }
    if state.world.lock().jira_issue(&path.key).is_none() {
        return issue_not_found();
    }
    let mut multipart = match axum::extract::Multipart::from_request(request, &()).await {
        Ok(multipart) => multipart,
        Err(_) => return bad_request("the request is not multipart/form-data"),
    };
    let mut files = Vec::new();
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) => {
                if field.name() != Some("file") {
                    continue;
                }
                let filename = field.file_name().unwrap_or("attachment").to_owned();
                let mime_type = field.content_type().unwrap_or("application/octet-stream").to_owned();
                match field.bytes().await {
                    Ok(bytes) => files.push((filename, mime_type, bytes)),
                    Err(err) => return bad_request(&format!("cannot read the upload: {err}")),
                }
            }
            Ok(None) => break,
            Err(err) => return bad_request(&format!("cannot read the upload: {err}")),
        }
    }
    if files.is_empty() {
        return bad_request("No attachments were supplied: the multipart part must be named 'file'");
    }
    let author = state.secrets.jira_username.clone();
    let mut world = state.world.lock();
    let mut added = Vec::new();
    for (filename, mime_type, bytes) in files {
        let id = (10_000 + world.next_id()).to_string();
        let attachment = JiraAttachment {
            id,
            filename,
            size: bytes.len(),
            mime_type,
            author: author.clone(),
            created: now(),
            content: String::from_utf8_lossy(&bytes).into_owned(),
        };
        added.push(attachment_json(&state, api, &attachment));
        let Some(issue) = world.jira_issue_mut(&path.key) else { return issue_not_found() };
        issue.updated = attachment.created.clone();
        issue.attachments.push(attachment);
    }
    Json(Value::Array(added)).into_response()
}

fn transitions_json(world: &WorldState, base: &str, api: Api, status: &str, with_fields: bool) -> Vec<Value> {
    let targets = world.jira.workflow.get(status).cloned().unwrap_or_default();
    targets
        .iter()
        .map(|target| {
            let mut transition = json!({
                "id": transition_id(world, target),
                "name": target,
                "to": status_json(world, base, api, target),
                "hasScreen": false,
                "isGlobal": false,
                "isInitial": false,
                "isConditional": false,
            });
            if with_fields {
                transition["fields"] = json!({});
            }
            transition
        })
        .collect()
}

async fn get_transitions(State(state): State<LabState>, Path(path): Path<IssuePath>, uri: Uri) -> Response {
    let Some(api) = Api::parse(&path.version) else { return not_found_version(&state, &path.version) };
    let params = query(&uri);
    let with_fields = params.expand.as_deref().is_some_and(|e| e.contains("transitions.fields"));
    let world = state.world.lock();
    let Some(issue) = world.jira_issue(&path.key) else { return issue_not_found() };
    let mut transitions = transitions_json(&world, &state.urls.jira, api, &issue.status, with_fields);
    if let Some(wanted) = params.transition_id {
        transitions.retain(|t| t["id"] == wanted.as_str());
    }
    Json(json!({"expand": "transitions", "transitions": transitions})).into_response()
}

async fn do_transition(State(state): State<LabState>, Path(path): Path<IssuePath>, body: Bytes) -> Response {
    let Some(api) = Api::parse(&path.version) else { return not_found_version(&state, &path.version) };
    let request = match parse_body(&body) {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(),
    };
    // Python's jira sends the id as a number, others as a string.
    let wanted = match &request["transition"]["id"] {
        Value::String(id) => id.clone(),
        Value::Number(id) => id.to_string(),
        _ => return bad_request("Missing 'transition' identifier"),
    };
    let mut comments = Vec::new();
    for change in request["update"]["comment"].as_array().into_iter().flatten() {
        match comment_body(api, change["add"].get("body")) {
            Ok(text) => comments.push((text, is_internal(change["add"].get("properties")))),
            Err(refusal) => return refusal.into_response(),
        }
    }
    let mut world = state.world.lock();
    let Some(issue) = world.jira_issue(&path.key) else { return issue_not_found() };
    let current = issue.status.clone();
    let targets = world.jira.workflow.get(&current).cloned().unwrap_or_default();
    let Some(target) = targets.into_iter().find(|target| transition_id(&world, target) == wanted) else {
        return bad_request(&format!("Transition id '{wanted}' is not valid for this issue."));
    };
    let screen = world.jira.required_fields.get(&target).cloned().unwrap_or_default();
    if let Some(errors) = screen_errors(&screen, &request["fields"]) {
        let errors: Vec<(&str, &str)> = errors.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        return error_collection(StatusCode::BAD_REQUEST, &[], &errors);
    }
    let author = state.secrets.jira_username.clone();
    for (text, internal) in comments {
        push_comment(&mut world, &path.key, &author, text, internal);
    }
    let issue = world.jira_issue_mut(&path.key).expect("just found");
    tracing::debug!(key = %issue.key, from = %current, to = %target, "jira: transition");
    issue.status = target;
    issue.updated = now();
    StatusCode::NO_CONTENT.into_response()
}

/// The resolutions of a default Jira site.
const RESOLUTIONS: [&str; 4] = ["Done", "Won't Do", "Duplicate", "Cannot Reproduce"];

/// What Jira answers when a transition's screen is not filled in: a
/// required field missing, a field not on the screen, an unknown resolution
/// (Jira's `IssueService.validateTransition`; field errors by field id).
fn screen_errors(screen: &[String], fields: &Value) -> Option<Vec<(String, String)>> {
    let given = fields.as_object().cloned().unwrap_or_default();
    let mut errors = Vec::new();
    for (field, _) in given.iter().filter(|(field, _)| !screen.contains(field)) {
        errors.push((
            field.clone(),
            format!("Field '{field}' cannot be set. It is not on the appropriate screen, or unknown."),
        ));
    }
    for field in screen {
        match given.get(field) {
            None | Some(Value::Null) => {
                let mut name = field.clone();
                if let Some(first) = name.get_mut(..1) {
                    first.make_ascii_uppercase();
                }
                errors.push((field.clone(), format!("{name} is required.")));
            }
            Some(value) if field == "resolution" => {
                let known = value["name"].as_str().is_some_and(|name| RESOLUTIONS.contains(&name))
                    || value["id"].as_str().is_some_and(|id| ["10000", "10001", "10002", "10003"].contains(&id));
                if !known {
                    errors.push((field.clone(), "Could not find valid 'id' or 'name' in resolution object.".into()));
                }
            }
            Some(_) => {}
        }
    }
    (!errors.is_empty()).then_some(errors)
}

// ---------------------------------------------------------------------------
// Search and the JQL subset the tools use.

#[derive(Debug, PartialEq)]
enum Clause {
    Project(String),
    SummaryContains(String),
    SummaryEquals(String),
    Key(String),
    Status(String),
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Operator(String),
}

fn tokenize(jql: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = jql.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' || c == '\'' {
            chars.next();
            let mut text = String::new();
            loop {
                match chars.next() {
                    None => return Err("Error in the JQL Query: The quoted string has not been completed.".into()),
                    Some('\\') => text.extend(chars.next()),
                    Some(q) if q == c => break,
                    Some(other) => text.push(other),
                }
            }
            tokens.push(Token::Quoted(text));
        } else if "=!~<>".contains(c) {
            let mut op = String::new();
            while let Some(&o) = chars.peek().filter(|o| "=!~<>".contains(**o)) {
                op.push(o);
                chars.next();
            }
            tokens.push(Token::Operator(op));
        } else if c == ',' || c == '(' || c == ')' {
            return Err(format!("Error in the JQL Query: The character '{c}' is not supported here."));
        } else {
            let mut word = String::new();
            while let Some(&w) = chars.peek().filter(|w| !w.is_whitespace() && !"=!~<>\"'(),".contains(**w)) {
                word.push(w);
                chars.next();
            }
            tokens.push(Token::Word(word));
        }
    }
    Ok(tokens)
}

/// Parses `field op value [AND ...] [ORDER BY ...]`; ordering is ignored
/// (results come in creation order).
fn parse_jql(jql: &str) -> Result<Vec<Clause>, String> {
    let tokens = tokenize(jql)?;
    let mut clauses = Vec::new();
    let mut index = 0;
    while index < tokens.len() {
        if let Token::Word(word) = &tokens[index] {
            if word.eq_ignore_ascii_case("order") {
                break;
            }
        }
        let field = match &tokens[index] {
            Token::Word(field) | Token::Quoted(field) => field.to_ascii_lowercase(),
            Token::Operator(op) => {
                return Err(format!("Error in the JQL Query: Expecting a field name but got '{op}'."))
            }
        };
        let op = match tokens.get(index + 1) {
            Some(Token::Operator(op)) => op.as_str(),
            _ => return Err(format!("Error in the JQL Query: Expecting operator after the field '{field}'.")),
        };
        let value = match tokens.get(index + 2) {
            Some(Token::Word(value) | Token::Quoted(value)) => value.clone(),
            _ => return Err(format!("Error in the JQL Query: Expecting a value after the operator '{op}'.")),
        };
        let clause = match (field.as_str(), op) {
            ("project", "=") => Clause::Project(value),
            // `summary ~ "\"a b\""` is Jira's phrase search: the inner quotes only mark the phrase.
            ("summary", "~") => {
                let phrase = value.strip_prefix('"').and_then(|rest| rest.strip_suffix('"'));
                Clause::SummaryContains(phrase.map_or(value.clone(), str::to_owned))
            }
            ("summary", "=") => Clause::SummaryEquals(value),
            ("key" | "issuekey" | "id", "=") => Clause::Key(value),
            ("status", "=") => Clause::Status(value),
            ("project" | "summary" | "key" | "issuekey" | "id" | "status", _) => {
                return Err(format!("The operator '{op}' is not supported by the '{field}' field."))
            }
            _ => return Err(format!("Field '{field}' does not exist or you do not have permission to view it.")),
        };
        clauses.push(clause);
        index += 3;
        match tokens.get(index) {
            Some(Token::Word(word)) if word.eq_ignore_ascii_case("and") => index += 1,
            Some(Token::Word(word)) if word.eq_ignore_ascii_case("order") => break,
            None => {}
            Some(_) => return Err("Error in the JQL Query: Expecting either 'OR' or 'AND' or 'ORDER BY'.".into()),
        }
    }
    Ok(clauses)
}

/// Checks the values a query names exist, as Jira does, then finds the issues.
fn run_jql<'a>(world: &'a WorldState, clauses: &[Clause]) -> Result<Vec<&'a JiraIssue>, String> {
    for clause in clauses {
        match clause {
            Clause::Project(p) if p != &world.jira.project_key && p != &world.jira.project_id => {
                return Err(format!("The value '{p}' does not exist for the field 'project'."))
            }
            Clause::Key(k) if world.jira_issue(k).is_none() => {
                return Err(format!("An issue with key '{k}' does not exist for field 'key'."))
            }
            Clause::Status(s) if !status_names(world).contains(&s.as_str()) => {
                return Err(format!("The value '{s}' does not exist for the field 'status'."))
            }
            _ => {}
        }
    }
    let matches = |issue: &JiraIssue| {
        clauses.iter().all(|clause| match clause {
            Clause::Project(_) => true,
            Clause::SummaryContains(text) => issue.summary.to_lowercase().contains(&text.to_lowercase()),
            Clause::SummaryEquals(text) => issue.summary == *text,
            Clause::Key(key) => issue.key.eq_ignore_ascii_case(key) || issue.id == *key,
            Clause::Status(status) => issue.status.eq_ignore_ascii_case(status),
        })
    };
    Ok(world.jira.issues.iter().filter(|issue| matches(issue)).collect())
}

/// The parameters of a search, from the query string (GET) or the body (POST).
struct SearchRequest {
    jql: String,
    start_at: Option<String>,
    next_page_token: Option<String>,
    max_results: Option<String>,
    fields: Option<Value>,
    /// Issue ids whose latest state the search must reflect (`search/jql` only).
    reconcile: Vec<String>,
}

fn search_from_query(uri: &Uri) -> SearchRequest {
    let pairs = crate::netbox::query_pairs(uri);
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let fields: Vec<String> = pairs.iter().filter(|(k, _)| k == "fields").map(|(_, v)| v.clone()).collect();
    SearchRequest {
        jql: get("jql").unwrap_or_default(),
        start_at: get("startAt"),
        next_page_token: get("nextPageToken"),
        max_results: get("maxResults"),
        fields: (!fields.is_empty()).then(|| Value::String(fields.join(","))),
        reconcile: pairs
            .iter()
            .filter(|(k, _)| k == "reconcileIssues")
            .flat_map(|(_, v)| v.split(',').map(|id| id.trim().to_owned()).collect::<Vec<_>>())
            .collect(),
    }
}

fn search_from_body(body: &Bytes) -> Result<SearchRequest, Refusal> {
    let body = parse_body(body)?;
    let text = |name: &str| match &body[name] {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    Ok(SearchRequest {
        jql: text("jql").unwrap_or_default(),
        start_at: text("startAt"),
        next_page_token: text("nextPageToken"),
        max_results: text("maxResults"),
        fields: body.get("fields").cloned(),
        reconcile: body["reconcileIssues"]
            .as_array()
            .map(|ids| ids.iter().map(|id| id.as_u64().map(|n| n.to_string()).unwrap_or_default()).collect())
            .unwrap_or_default(),
    })
}

async fn search_get(State(state): State<LabState>, Path(version): Path<String>, uri: Uri) -> Response {
    search(&state, &version, search_from_query(&uri))
}

async fn search_post(State(state): State<LabState>, Path(version): Path<String>, body: Bytes) -> Response {
    match search_from_body(&body) {
        Ok(request) => search(&state, &version, request),
        Err(refusal) => refusal.into_response(),
    }
}

/// The Data Center search (`startAt`/`maxResults`/`total`). Cloud removed it
/// from v3, and on a Cloud site from v2 too, where it answers 410
/// (developer.atlassian.com changelog CHANGE-2046).
fn search(state: &LabState, version: &str, request: SearchRequest) -> Response {
    let Some(api) = Api::parse(version) else { return not_found_version(state, version) };
    if api == Api::V3 || state.world.lock().jira.cloud {
        return error_collection(
            StatusCode::GONE,
            &["The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"],
            &[],
        );
    }
    let clauses = match parse_jql(&request.jql) {
        Ok(clauses) => clauses,
        Err(message) => return bad_request(&message),
    };
    let fields = requested_fields(request.fields.as_ref(), true);
    let start_at = number_param(request.start_at.as_deref(), 0);
    let max_results = number_param(request.max_results.as_deref(), 50).min(1000);
    let world = state.world.lock();
    let found = match run_jql(&world, &clauses) {
        Ok(found) => found,
        Err(message) => return bad_request(&message),
    };
    let issues: Vec<Value> = found
        .iter()
        .skip(start_at)
        .take(max_results)
        .map(|issue| issue_json(state, &world, api, issue, fields.as_deref()))
        .collect();
    Json(json!({
        "expand": "schema,names",
        "startAt": start_at,
        "maxResults": max_results,
        "total": found.len(),
        "issues": issues,
    }))
    .into_response()
}

async fn search_jql_get(State(state): State<LabState>, Path(version): Path<String>, uri: Uri) -> Response {
    search_jql(&state, &version, search_from_query(&uri))
}

async fn search_jql_post(State(state): State<LabState>, Path(version): Path<String>, body: Bytes) -> Response {
    match search_from_body(&body) {
        Ok(request) => search_jql(&state, &version, request),
        Err(refusal) => refusal.into_response(),
    }
}

/// The Cloud search (`nextPageToken`/`isLast`, no total; `fields` defaults to
/// `id`; the query must be bounded).
fn search_jql(state: &LabState, version: &str, request: SearchRequest) -> Response {
    let Some(api) = Api::parse(version) else { return not_found_version(state, version) };
    let clauses = match parse_jql(&request.jql) {
        Ok(clauses) => clauses,
        Err(message) => return bad_request(&message),
    };
    if clauses.is_empty() {
        return bad_request(
            "Unbounded JQL queries are not allowed here. Please add a search restriction to your query.",
        );
    }
    let offset = match request.next_page_token.as_deref() {
        None => 0,
        Some(token) => match decode_page_token(token) {
            Some(offset) => offset,
            None => return bad_request("The provided next page token is invalid or expired."),
        },
    };
    let fields = requested_fields(request.fields.as_ref(), false);
    let only_ids = fields.as_ref().is_some_and(|names| names.iter().all(|n| n == "id" || n == "key"));
    let cap = if only_ids { 5000 } else { 100 };
    let max_results = number_param(request.max_results.as_deref(), 50).clamp(1, cap);
    if request.reconcile.len() > 50 {
        return bad_request("reconcileIssues accepts at most 50 issue ids.");
    }
    let mut world = state.world.lock();
    // The index catches up one search at a time; reconciled issues are read as they are.
    let lagging: Vec<String> = world
        .jira
        .issues
        .iter()
        .filter(|issue| issue.unindexed_searches > 0 && !request.reconcile.contains(&issue.id))
        .map(|issue| issue.id.clone())
        .collect();
    for issue in world.jira.issues.iter_mut().filter(|issue| issue.unindexed_searches > 0) {
        issue.unindexed_searches -= 1;
    }
    let world = world;
    let found = match run_jql(&world, &clauses) {
        Ok(found) => found.into_iter().filter(|issue| !lagging.contains(&issue.id)).collect::<Vec<_>>(),
        Err(message) => return bad_request(&message),
    };
    let issues: Vec<Value> = found
        .iter()
        .skip(offset)
        .take(max_results)
        .map(|issue| issue_json(state, &world, api, issue, fields.as_deref()))
        .collect();
    let next = offset + issues.len();
    let mut page = json!({"issues": issues, "isLast": next >= found.len()});
    if next < found.len() {
        page["nextPageToken"] = json!(encode_page_token(next));
    }
    Json(page).into_response()
}

/// An opaque-looking token for an offset into the results.
fn encode_page_token(offset: usize) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("lab-offset:{offset}"))
}

fn decode_page_token(token: &str) -> Option<usize> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).ok()?;
    String::from_utf8(bytes).ok()?.strip_prefix("lab-offset:")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jql_subset() {
        assert_eq!(
            parse_jql(r#"project = MH AND summary ~ "hv001.lab" ORDER BY created DESC"#).unwrap(),
            vec![Clause::Project("MH".into()), Clause::SummaryContains("hv001.lab".into())]
        );
        assert_eq!(parse_jql("key=MH-101").unwrap(), vec![Clause::Key("MH-101".into())]);
        assert_eq!(parse_jql(r#"summary = "a \"b\"""#).unwrap(), vec![Clause::SummaryEquals("a \"b\"".into())]);
        assert!(parse_jql("assignee = me").unwrap_err().contains("does not exist"));
        assert!(parse_jql("project = MH OR key = X").is_err());
        assert!(parse_jql("ORDER BY created").unwrap().is_empty());
    }

    #[test]
    fn rich_text_round_trip() {
        let adf = text_to_adf("one\ntwo");
        assert!(is_adf(&adf));
        assert_eq!(adf_to_text(&adf), "one\ntwo");
        assert_eq!(render_text(&json!("x"), Api::V2), json!("x"));
        assert_eq!(render_text(&adf, Api::V2), json!("one\ntwo"));
    }

    #[test]
    fn page_tokens() {
        assert_eq!(decode_page_token(&encode_page_token(150)), Some(150));
        assert_eq!(decode_page_token("nope"), None);
    }
}
