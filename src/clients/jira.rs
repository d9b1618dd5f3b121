//! Jira: Server/Data Center (REST v2, wiki markup) and Cloud (REST v3, ADF),
//! chosen by the `flavour` setting or the site's `serverInfo`.

use std::collections::BTreeMap;

use reqwest::header::{HeaderName, HeaderValue};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::http::{Auth, Body, HttpService, RetryPolicy, ServiceError};
use crate::config::credentials::{Jira as JiraConfig, JiraAuth, JiraFlavour};

/// Rich text for comments and descriptions, rendered as wiki markup (v2) or
/// ADF (v3).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Doc {
    pub blocks: Vec<Block>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
pub enum Block {
    Paragraph(String),
    /// Command output and the like, shown as is.
    Code {
        title: Option<String>,
        text: String,
    },
    Bullets(Vec<String>),
}

impl Doc {
    pub fn new() -> Self {
        Doc::default()
    }

    /// Plain text: one paragraph per blank-line-separated part.
    pub fn text(text: &str) -> Self {
        let mut doc = Doc::new();
        for part in text.split("\n\n").map(str::trim).filter(|part| !part.is_empty()) {
            doc = doc.paragraph(part);
        }
        doc
    }

    pub fn paragraph(mut self, text: impl Into<String>) -> Self {
        self.blocks.push(Block::Paragraph(text.into()));
        self
    }

    pub fn code(mut self, title: Option<&str>, text: impl Into<String>) -> Self {
        self.blocks.push(Block::Code { title: title.map(str::to_owned), text: text.into() });
        self
    }

    pub fn bullets<S: Into<String>>(mut self, items: impl IntoIterator<Item = S>) -> Self {
        self.blocks.push(Block::Bullets(items.into_iter().map(Into::into).collect()));
        self
    }

    /// Jira wiki markup (Server/DC, v2).
    pub fn to_wiki(&self) -> String {
        let blocks: Vec<String> = self
            .blocks
            .iter()
            .map(|block| match block {
                Block::Paragraph(text) => escape_wiki(text),
                Block::Code { title, text } => {
                    // `{code}` (any case) inside the text would end the block early.
                    let text = break_block_macros(&crate::untrusted::visible(text));
                    match title {
                        Some(title) => format!("{{code:title={}}}\n{text}\n{{code}}", wiki_title(title)),
                        None => format!("{{code}}\n{text}\n{{code}}"),
                    }
                }
                Block::Bullets(items) => {
                    items.iter().map(|item| format!("* {}", escape_wiki(item))).collect::<Vec<_>>().join("\n")
                }
            })
            .collect();
        blocks.join("\n\n")
    }

    /// Atlassian Document Format (Cloud, v3).
    pub fn to_adf(&self) -> Value {
        let mut content = Vec::new();
        for block in &self.blocks {
            match block {
                Block::Paragraph(text) => content.push(adf_paragraph(text, false)),
                Block::Code { title, text } => {
                    // ADF code blocks have no title: a bold line before it.
                    if let Some(title) = title {
                        content.push(adf_paragraph(title, true));
                    }
                    content.push(json!({"type": "codeBlock", "attrs": {"language": "text"}, "content": adf_text(text, false)}));
                }
                Block::Bullets(items) => content.push(json!({
                    "type": "bulletList",
                    "content": items.iter().map(|item| json!({"type": "listItem", "content": [adf_paragraph(item, false)]})).collect::<Vec<_>>(),
                })),
            }
        }
        json!({"type": "doc", "version": 1, "content": content})
    }
}

/// ADF refuses empty text nodes.
fn adf_text(text: &str, strong: bool) -> Value {
    let text = crate::untrusted::visible(text);
    if text.is_empty() {
        return json!([]);
    }
    if strong {
        json!([{"type": "text", "text": text, "marks": [{"type": "strong"}]}])
    } else {
        json!([{"type": "text", "text": text}])
    }
}

fn adf_paragraph(text: &str, strong: bool) -> Value {
    json!({"type": "paragraph", "content": adf_text(text, strong)})
}

/// Untrusted text shown literally in wiki markup: every character that can
/// start markup is backslash-escaped (links, images `!url!`, effects `-x-`
/// `+x+` `*x*` `??x??`, emoticons `(/)`, lists `#`, tables, macros), a backslash becomes an
/// entity (`\\` is a line break), and a line that would start a heading,
/// quote or rule (`h1.`, `bq.`, `----`) loses that meaning.
fn escape_wiki(text: &str) -> String {
    // A lone carriage return would start a line too: control characters become visible first.
    let text = crate::untrusted::visible(text);
    let mut out = String::with_capacity(text.len() + 8);
    for (index, line) in text.split('\n').enumerate() {
        if index > 0 {
            out.push('\n');
        }
        let indent = line.len() - line.trim_start().len();
        let (lead, rest) = line.split_at(indent);
        out.push_str(lead);
        // `h1.`–`h6.` and `bq.` only count at the start of a line: escape their dot.
        let block_prefix = ["h1.", "h2.", "h3.", "h4.", "h5.", "h6.", "bq."]
            .iter()
            .find(|prefix| rest.get(..3).is_some_and(|start| start.eq_ignore_ascii_case(prefix)));
        let rest = match block_prefix {
            Some(_) => {
                out.push_str(&rest[..2]);
                out.push_str("\\.");
                &rest[3..]
            }
            None => rest,
        };
        let chars: Vec<char> = rest.chars().collect();
        for (at, &c) in chars.iter().enumerate() {
            let before = at.checked_sub(1).map(|i| chars[i]);
            let after = chars.get(at + 1).copied();
            let inside_word = before.is_some_and(char::is_alphanumeric) && after.is_some_and(char::is_alphanumeric);
            // Between blanks (not at a line start, where `- ` makes a list item) it opens and closes nothing.
            let between_blanks = before.is_some_and(char::is_whitespace) && after.is_none_or(char::is_whitespace);
            let escape = match c {
                '\\' => {
                    out.push_str("&#92;");
                    continue;
                }
                '{' | '}' | '[' | ']' | '|' | '*' | '_' | '^' | '~' | '!' | '#' | '?' => true,
                // `-x-` and `+x+` need a non-word character before and after: `pre-drain` stays.
                '-' | '+' => !inside_word && !between_blanks,
                // Emoticons: `(/)`, `(x)`, `(on)`…
                '(' => emoticon_at(&chars[at..]),
                _ => false,
            };
            if escape {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

/// Jira's emoticons in parentheses: `(y)`, `(/)`, `(x)`, `(on)`, `(flag)`…
fn emoticon_at(chars: &[char]) -> bool {
    const EMOTICONS: [&str; 18] =
        ["y", "n", "i", "/", "x", "!", "+", "-", "?", "on", "off", "*", "*r", "*g", "*b", "*y", "flag", "flagoff"];
    let inner: String = chars[1..].iter().take_while(|c| **c != ')').take(8).collect();
    chars.get(inner.chars().count() + 1) == Some(&')') && EMOTICONS.contains(&inner.to_ascii_lowercase().as_str())
}

/// Text placed inside `{code}`: an opening brace before `code` or
/// `noformat`, in any case, would end the block; a space keeps it text.
fn break_block_macros(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let lower: String = rest.chars().take(8).map(|c| c.to_ascii_lowercase()).collect();
        if lower.starts_with("code") || lower.starts_with("noformat") {
            out.push(' ');
        }
    }
    out.push_str(rest);
    out
}

fn wiki_title(title: &str) -> String {
    title.chars().filter(|c| !matches!(c, '{' | '}' | '|' | '\n')).collect()
}

/// Who may read a comment.
#[derive(Clone, Debug, Default)]
pub struct CommentOptions {
    /// Jira Service Management: an internal note, not shown to customers.
    pub internal: bool,
    /// Restrict to a project role (`visibility`).
    pub role: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Comment {
    pub id: String,
    #[serde(default)]
    pub body: Value,
    #[serde(default)]
    pub created: Option<String>,
}

impl Comment {
    pub fn contains(&self, marker: &str) -> bool {
        match &self.body {
            Value::String(text) => text.contains(marker),
            other => other.to_string().contains(marker),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Written {
    Created,
    /// Found from an earlier run (or an earlier attempt of this one).
    AlreadyThere,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Status {
    pub name: String,
    #[serde(default, rename = "statusCategory")]
    pub category: Option<StatusCategory>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct StatusCategory {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Clone, Debug)]
pub struct Issue {
    pub key: String,
    pub summary: String,
    pub status: Status,
}

#[derive(Deserialize)]
struct IssueJson {
    key: String,
    #[serde(default)]
    fields: IssueFields,
}

#[derive(Default, Deserialize)]
struct IssueFields {
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    status: Option<Status>,
}

/// A file attached to an issue.
#[derive(Clone, Debug, Deserialize)]
pub struct Attachment {
    #[serde(default)]
    pub id: String,
    pub filename: String,
    /// In bytes.
    #[serde(default)]
    pub size: u64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Transition {
    pub id: String,
    pub name: String,
    pub to: Status,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ServerInfo {
    #[serde(default)]
    pub version: String,
    #[serde(default, rename = "deploymentType")]
    pub deployment_type: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct User {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, rename = "accountId")]
    pub account_id: Option<String>,
    #[serde(default, rename = "displayName")]
    pub display_name: String,
}

#[derive(Clone, Debug)]
pub struct JiraClient {
    http: HttpService,
    /// As configured (`auto` by default).
    configured: JiraFlavour,
    /// What the site is, from `serverInfo.deploymentType`, read once.
    resolved: std::sync::Arc<tokio::sync::OnceCell<JiraFlavour>>,
    /// `jira.transition_fields`.
    transition_fields: std::sync::Arc<BTreeMap<String, Map<String, Value>>>,
    /// Ids of the issues this client created, newest last: Cloud's search is
    /// eventually consistent, so each search asks to reconcile them.
    created: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// Jira Cloud reconciles at most this many issue ids per search.
const RECONCILE_MAX: usize = 50;

impl JiraClient {
    pub fn new(config: &JiraConfig) -> Result<Self, ServiceError> {
        Self::with_policy(config, RetryPolicy::default())
    }

    pub fn with_policy(config: &JiraConfig, policy: RetryPolicy) -> Result<Self, ServiceError> {
        let auth = match config.auth() {
            JiraAuth::Basic { username, token } => {
                Auth::Basic { username: username.to_owned(), password: token.clone() }
            }
            JiraAuth::Bearer(token) => Auth::Scheme { scheme: "Bearer", token: token.clone() },
        };
        let http = HttpService::new("jira", config.url.as_url(), auth, policy, &config.transport)?;
        Ok(JiraClient {
            http,
            configured: config.flavour,
            resolved: Default::default(),
            transition_fields: std::sync::Arc::new(config.transition_fields.clone()),
            created: Default::default(),
        })
    }

    /// Server or Cloud, as the site says (`serverInfo.deploymentType`, read
    /// once): Cloud removed `/rest/api/{2,3}/search` (410) and wants ADF,
    /// Data Center has no v3. `auto` takes the site's; an explicit flavour
    /// the site contradicts is refused.
    pub async fn flavour(&self) -> Result<JiraFlavour, ServiceError> {
        self.resolved.get_or_try_init(|| self.detect_flavour()).await.copied()
    }

    async fn detect_flavour(&self) -> Result<JiraFlavour, ServiceError> {
        // v2 serves serverInfo on both (Atlassian's REST v2 reference and Cloud's).
        let path = "rest/api/2/serverInfo";
        let info: ServerInfo = match self.http.get_json(path, &[]).await {
            Ok(info) => info,
            // A site (or proxy) without serverInfo: nothing to compare with.
            Err(err) if err.status() == Some(404) => ServerInfo::default(),
            Err(err) => return Err(err),
        };
        // Cloud always says so; Server and Data Center say `Server` or
        // `DataCenter`, and said nothing before Jira 7.
        if info.deployment_type.is_empty() {
            let flavour = match self.configured {
                JiraFlavour::Auto => JiraFlavour::Server,
                configured => configured,
            };
            tracing::warn!(service = "jira", flavour = flavour.as_str(), "serverInfo names no deploymentType");
            return Ok(flavour);
        }
        let site =
            if info.deployment_type.eq_ignore_ascii_case("cloud") { JiraFlavour::Cloud } else { JiraFlavour::Server };
        let deployment = info.deployment_type.as_str();
        match self.configured {
            JiraFlavour::Auto => {
                tracing::info!(service = "jira", deployment, flavour = site.as_str(), "Jira flavour chosen from serverInfo");
                Ok(site)
            }
            configured if configured == site => Ok(site),
            configured => Err(self.http.unusable(
                &Method::GET,
                path,
                format!(
                    "jira.flavour is '{}' but this Jira is {deployment} (serverInfo.deploymentType): set flavour: {} or auto",
                    configured.as_str(),
                    site.as_str()
                ),
            )),
        }
    }

    async fn api(&self, rest: &str) -> Result<String, ServiceError> {
        let version = match self.flavour().await? {
            JiraFlavour::Cloud => 3,
            _ => 2,
        };
        Ok(format!("rest/api/{version}/{rest}"))
    }

    /// Rich text as this flavour wants it.
    pub async fn render(&self, doc: &Doc) -> Result<Value, ServiceError> {
        Ok(match self.flavour().await? {
            JiraFlavour::Cloud => doc.to_adf(),
            _ => Value::String(doc.to_wiki()),
        })
    }

    pub async fn server_info(&self) -> Result<ServerInfo, ServiceError> {
        self.http.get_json(&self.api("serverInfo").await?, &[]).await
    }

    /// The authenticated user: proves the credentials.
    pub async fn myself(&self) -> Result<User, ServiceError> {
        self.http.get_json(&self.api("myself").await?, &[]).await
    }

    pub async fn issue(&self, key: &str) -> Result<Issue, ServiceError> {
        let path = self.api(&format!("issue/{key}")).await?;
        let issue: IssueJson = self.http.get_json(&path, &[("fields", "status,summary")]).await?;
        issue_from_json(issue).ok_or_else(|| self.http.unusable(&Method::GET, &path, "the issue has no status"))
    }

    /// Every comment of the issue, oldest first.
    pub async fn comments(&self, key: &str) -> Result<Vec<Comment>, ServiceError> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            comments: Vec<Comment>,
            #[serde(default)]
            total: Option<usize>,
        }
        let path = self.api(&format!("issue/{key}/comment")).await?;
        let mut comments = Vec::new();
        loop {
            let start = comments.len().to_string();
            let page: Page = self
                .http
                .get_json(&path, &[("startAt", &start), ("maxResults", "100"), ("orderBy", "created")])
                .await?;
            let got = page.comments.len();
            comments.extend(page.comments);
            if got == 0 || page.total.is_none_or(|total| comments.len() >= total) {
                return Ok(comments);
            }
        }
    }

    /// Adds a comment, once attempt, no retry: see [`Self::add_comment_once`].
    pub async fn add_comment(&self, key: &str, doc: &Doc, options: &CommentOptions) -> Result<Comment, ServiceError> {
        let path = self.api(&format!("issue/{key}/comment")).await?;
        let mut body = json!({"body": self.render(doc).await?});
        if options.internal {
            body["properties"] = json!([{"key": "sd.public.comment", "value": {"internal": true}}]);
        }
        if let Some(role) = &options.role {
            body["visibility"] = json!({"type": "role", "value": role});
        }
        let reply = self.http.write_once(Method::POST, &path, Body::Json(body)).await?;
        self.http.decode(&Method::POST, &path, &reply)
    }

    /// Adds the comment unless one carrying `marker` is already there. The
    /// marker is appended to the text; a retry after a lost answer finds it
    /// and does not post twice.
    pub async fn add_comment_once(
        &self,
        key: &str,
        doc: &Doc,
        marker: &str,
        options: &CommentOptions,
    ) -> Result<(Comment, Written), ServiceError> {
        let doc = &doc.clone().paragraph(marker_text(marker));
        let marker = &marker_text(marker);
        self.http
            .retrying("add comment", || async move {
                if let Some(found) = self.comments(key).await?.into_iter().find(|comment| comment.contains(marker)) {
                    return Ok((found, Written::AlreadyThere));
                }
                Ok((self.add_comment(key, doc, options).await?, Written::Created))
            })
            .await
    }

    /// The files attached to the issue.
    pub async fn attachments(&self, key: &str) -> Result<Vec<Attachment>, ServiceError> {
        #[derive(Deserialize)]
        struct Fields {
            #[serde(default)]
            attachment: Vec<Attachment>,
        }
        #[derive(Deserialize)]
        struct IssueAttachments {
            fields: Fields,
        }
        let path = self.api(&format!("issue/{key}")).await?;
        let issue: IssueAttachments = self.http.get_json(&path, &[("fields", "attachment")]).await?;
        Ok(issue.fields.attachment)
    }

    /// Attaches a text file to the issue, once attempt: see [`Self::attach_once`].
    /// Multipart with the part named `file` and `X-Atlassian-Token: no-check`,
    /// as Jira's XSRF protection requires (pycontribs/jira `add_attachment`).
    pub async fn attach(&self, key: &str, file_name: &str, text: &str) -> Result<Attachment, ServiceError> {
        let path = self.api(&format!("issue/{key}/attachments")).await?;
        let body = Body::File {
            field: "file",
            file_name: file_name.to_owned(),
            mime_type: "text/plain; charset=utf-8",
            bytes: text.as_bytes().to_vec(),
            headers: vec![(HeaderName::from_static("x-atlassian-token"), HeaderValue::from_static("no-check"))],
        };
        let reply = self.http.write_once(Method::POST, &path, body).await?;
        let added: Vec<Attachment> = self.http.decode(&Method::POST, &path, &reply)?;
        added.into_iter().next().ok_or_else(|| self.http.unusable(&Method::POST, &path, "Jira attached nothing"))
    }

    /// Attaches the file unless one of the same name and size is there
    /// already (from an earlier run, or an attempt whose answer was lost).
    pub async fn attach_once(
        &self,
        key: &str,
        file_name: &str,
        text: &str,
    ) -> Result<(Attachment, Written), ServiceError> {
        self.http
            .retrying("add attachment", || async move {
                let existing = self.attachments(key).await?;
                if let Some(found) =
                    existing.into_iter().find(|found| found.filename == file_name && found.size == text.len() as u64)
                {
                    return Ok((found, Written::AlreadyThere));
                }
                Ok((self.attach(key, file_name, text).await?, Written::Created))
            })
            .await
    }

    pub async fn transitions(&self, key: &str) -> Result<Vec<Transition>, ServiceError> {
        #[derive(Deserialize)]
        struct Transitions {
            #[serde(default)]
            transitions: Vec<Transition>,
        }
        let found: Transitions = self.http.get_json(&self.api(&format!("issue/{key}/transitions")).await?, &[]).await?;
        Ok(found.transitions)
    }

    /// Moves the issue to the status named `target` (case-insensitive). Already
    /// there is success; no transition to it is an error that lists the
    /// available ones.
    pub async fn transition_to(&self, key: &str, target: &str) -> Result<Written, ServiceError> {
        let path = &self.api(&format!("issue/{key}/transitions")).await?;
        self.http
            .retrying("transition", || async move {
                let issue = self.issue(key).await?;
                if issue.status.name.eq_ignore_ascii_case(target) {
                    return Ok(Written::AlreadyThere);
                }
                let transitions = self.transitions(key).await?;
                let Some(transition) = transitions
                    .iter()
                    .find(|t| t.to.name.eq_ignore_ascii_case(target))
                    .or_else(|| transitions.iter().find(|t| t.name.eq_ignore_ascii_case(target)))
                else {
                    let available: Vec<String> =
                        transitions.iter().map(|t| format!("'{}' (to '{}')", t.name, t.to.name)).collect();
                    let available = if available.is_empty() { "none".to_owned() } else { available.join(", ") };
                    return Err(self.http.unusable(
                        &Method::POST,
                        path,
                        format!(
                            "{key} cannot move to '{target}' from '{}'; available transitions: {available}",
                            issue.status.name
                        ),
                    ));
                };
                // A transition with a screen needs its required fields (a
                // resolution, typically) or Jira answers 400 with the field errors.
                let fields = self
                    .transition_fields
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(target) || name.eq_ignore_ascii_case(&transition.name))
                    .map(|(_, fields)| fields);
                let mut body = json!({"transition": {"id": transition.id}});
                if let Some(fields) = fields {
                    body["fields"] = Value::Object(fields.clone());
                }
                match self.http.write_once(Method::POST, path, Body::Json(body)).await {
                    Ok(_) => Ok(Written::Created),
                    Err(err) if err.status() == Some(400) => {
                        let said = match &err.kind {
                            super::http::ErrorKind::Status { message, .. } => message.clone(),
                            other => other.to_string(),
                        };
                        let hint = match fields {
                            Some(_) => format!("check jira.transition_fields.\"{target}\""),
                            None => format!(
                                "its screen needs fields: set them in jira.transition_fields.\"{target}\" (for example resolution: {{name: Done}})"
                            ),
                        };
                        Err(self.http.unusable(
                            &Method::POST,
                            path,
                            format!(
                                "Jira refused the transition '{}' of {key} to '{target}': {said}; {hint}",
                                transition.name
                            ),
                        ))
                    }
                    Err(err) => Err(err),
                }
            })
            .await
    }

    /// Creates an issue (one attempt; see [`Self::create_issue_once`]).
    pub async fn create_issue(
        &self,
        project: &str,
        issue_type: &str,
        summary: &str,
        description: Option<&Doc>,
    ) -> Result<String, ServiceError> {
        #[derive(Deserialize)]
        struct Created {
            id: String,
            key: String,
        }
        let path = self.api("issue").await?;
        let mut fields = json!({"project": {"key": project}, "summary": summary, "issuetype": {"name": issue_type}});
        if let Some(description) = description {
            fields["description"] = self.render(description).await?;
        }
        let reply = self.http.write_once(Method::POST, &path, Body::Json(json!({"fields": fields}))).await?;
        let created: Created = self.http.decode(&Method::POST, &path, &reply)?;
        let mut ids = self.created.lock().unwrap_or_else(|poison| poison.into_inner());
        ids.push(created.id);
        let excess = ids.len().saturating_sub(RECONCILE_MAX);
        ids.drain(..excess);
        Ok(created.key)
    }

    /// The issue of `project` whose summary is exactly `summary`, else a new one.
    pub async fn create_issue_once(
        &self,
        project: &str,
        issue_type: &str,
        summary: &str,
        description: Option<&Doc>,
    ) -> Result<(String, Written), ServiceError> {
        self.http
            .retrying("create issue", || async move {
                if let Some(found) = self.find_by_summary(project, summary).await?.into_iter().next() {
                    return Ok((found.key, Written::AlreadyThere));
                }
                Ok((self.create_issue(project, issue_type, summary, description).await?, Written::Created))
            })
            .await
    }

    /// Issues of `project` whose summary equals `summary` exactly (JQL `~` is
    /// a word match: the results are filtered here).
    pub async fn find_by_summary(&self, project: &str, summary: &str) -> Result<Vec<Issue>, ServiceError> {
        let jql = format!(
            "project = {} AND summary ~ {} ORDER BY key ASC",
            jql_string(project),
            jql_string(&format!("\"{summary}\""))
        );
        let issues = self.search(&jql).await?;
        Ok(issues.into_iter().filter(|issue| issue.summary == summary).collect())
    }

    /// Every issue matching `jql`, with summary and status.
    pub async fn search(&self, jql: &str) -> Result<Vec<Issue>, ServiceError> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            issues: Vec<IssueJson>,
            #[serde(default)]
            total: Option<usize>,
            #[serde(default, rename = "nextPageToken")]
            next_page_token: Option<String>,
        }
        let flavour = self.flavour().await?;
        // Cloud: the issues just created, which its index may not show yet.
        let reconcile: Vec<String> = self.created.lock().unwrap_or_else(|poison| poison.into_inner()).clone();
        let mut found = Vec::new();
        let mut next_token: Option<String> = None;
        let mut pages = super::http::Pages::default();
        loop {
            let start = found.len().to_string();
            let mut query = vec![("jql", jql), ("fields", "summary,status"), ("maxResults", "100")];
            let path = match flavour {
                JiraFlavour::Server | JiraFlavour::Auto => {
                    query.push(("startAt", &start));
                    self.api("search").await?
                }
                JiraFlavour::Cloud => {
                    if let Some(token) = &next_token {
                        query.push(("nextPageToken", token));
                    }
                    query.extend(reconcile.iter().map(|id| ("reconcileIssues", id.as_str())));
                    self.api("search/jql").await?
                }
            };
            // Never the same page twice, never more than the cap of pages.
            pages.visit(&self.http, &path, &self.http.url(&path, &query)?)?;
            let page: Page = self.http.get_json(&path, &query).await?;
            let got = page.issues.len();
            found.extend(page.issues.into_iter().filter_map(issue_from_json));
            let more = match flavour {
                JiraFlavour::Server | JiraFlavour::Auto => {
                    got > 0 && page.total.is_some_and(|total| found.len() < total)
                }
                JiraFlavour::Cloud => page.next_page_token.is_some(),
            };
            if !more {
                return Ok(found);
            }
            next_token = page.next_page_token;
        }
    }
}

fn issue_from_json(issue: IssueJson) -> Option<Issue> {
    Some(Issue {
        key: issue.key,
        summary: issue.fields.summary.unwrap_or_default(),
        status: issue.fields.status.unwrap_or(Status { name: String::new(), category: None }),
    })
}

/// A JQL string literal.
fn jql_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// How a marker appears in a comment.
pub fn marker_text(marker: &str) -> String {
    format!("hvmigrate-marker:{marker}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Doc {
        Doc::new().paragraph("Disabled *hv01*").code(Some("virsh list --all"), " Id   Name\n----").bullets(["a", "b_c"])
    }

    #[test]
    fn wiki_rendering() {
        assert_eq!(
            doc().to_wiki(),
            "Disabled \\*hv01\\*\n\n{code:title=virsh list --all}\n Id   Name\n----\n{code}\n\n* a\n* b\\_c"
        );
    }

    #[test]
    fn adf_rendering() {
        let adf = doc().to_adf();
        assert_eq!(adf["type"], "doc");
        assert_eq!(adf["version"], 1);
        let content = adf["content"].as_array().unwrap();
        assert_eq!(content[0]["content"][0]["text"], "Disabled *hv01*");
        assert_eq!(content[1]["content"][0]["marks"][0]["type"], "strong");
        assert_eq!(content[2]["type"], "codeBlock");
        assert_eq!(content[2]["content"][0]["text"], " Id   Name\n----");
        assert_eq!(content[3]["type"], "bulletList");
        assert_eq!(content[3]["content"][1]["content"][0]["content"][0]["text"], "b_c");
        assert_eq!(Doc::new().paragraph("").to_adf()["content"][0]["content"], json!([]));
    }

    #[test]
    fn untrusted_text_cannot_make_markup() {
        let hostile = "!https://attacker.example/px.png! -struck- +ins+ ??cite?? [link|http://x] #1 (/) a\\\\b\nh1. Heading\n----\n bq. quote";
        let wiki = Doc::new().paragraph(hostile).bullets([hostile]).to_wiki();
        assert!(!wiki.contains("\nh1.") && !wiki.contains("\n----") && !wiki.contains("\n bq."), "{wiki}");
        assert!(wiki.contains("\\!https://attacker.example/px.png\\!"), "{wiki}");
        assert!(
            wiki.contains("\\-struck\\- \\+ins\\+ \\?\\?cite\\?\\? \\[link\\|http://x\\] \\#1 \\(/) a&#92;&#92;b"),
            "{wiki}"
        );
        assert_eq!(escape_wiki("(ON) (flag) (3) (run x)"), "\\(ON) \\(flag) (3) (run x)");
        assert_eq!(escape_wiki("Rocky 9 - LAB\n- item -x- a -"), "Rocky 9 - LAB\n\\- item \\-x\\- a -");
        assert!(wiki.contains("\nh1\\. Heading\n\\-\\-\\-\\-\n bq\\. quote"), "{wiki}");
        // Ordinary words keep their hyphens.
        assert_eq!(
            escape_wiki("pre-drain on hv-01 (run 2026-11-29, exit 0)"),
            "pre-drain on hv-01 (run 2026-11-29, exit 0)"
        );
    }

    #[test]
    fn code_blocks_cannot_be_closed_from_inside() {
        let wiki = Doc::new().code(None, "a {CODE} b {noformat} c {Code:java}\x1b[2J").to_wiki();
        assert_eq!(wiki, "{code}\na { CODE} b { noformat} c { Code:java}\\x1b[2J\n{code}");
    }

    #[test]
    fn jql_quoting() {
        assert_eq!(jql_string("a\"b\\"), "\"a\\\"b\\\\\"");
    }
}
