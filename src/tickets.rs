//! The two Jira utilities: `create-tickets` (one ticket per hypervisor that
//! lacks one, written back into the list) and `comment` (the same comment on
//! every ticket of the list, once).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::clients::jira::{CommentOptions, Doc, JiraClient, Written};
use crate::config::{HypervisorList, JiraKey};
use crate::error::{Error, Result};

/// What happened for one host.
#[derive(Clone, Debug, Serialize)]
pub struct TicketEntry {
    pub host: String,
    pub line: usize,
    pub key: Option<String>,
    /// `listed`, `found`, `created`, `would create`, `posted`, `already posted`,
    /// `would post`, `failed`.
    pub outcome: &'static str,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TicketReport {
    pub command: &'static str,
    pub dry_run: bool,
    pub entries: Vec<TicketEntry>,
    /// The hypervisors file rewritten with the new keys, and its backup.
    pub rewritten: Option<PathBuf>,
    pub backup: Option<PathBuf>,
}

impl TicketReport {
    pub fn failed(&self) -> usize {
        self.entries.iter().filter(|entry| entry.outcome == "failed").count()
    }
}

/// Where the tickets go.
#[derive(Clone, Debug)]
pub struct CreateTickets {
    pub project: String,
    pub issue_type: String,
    pub dry_run: bool,
}

/// For each hypervisor without a key: the issue whose summary is exactly the
/// host name, else a new one; then the keys are written into the list.
pub async fn create_tickets(
    jira: &JiraClient,
    list: &HypervisorList,
    settings: &CreateTickets,
) -> Result<TicketReport> {
    // Unreachable Jira or bad credentials: stop before anything changes.
    jira.myself().await?;
    let mut entries = Vec::new();
    let mut new_keys: Vec<(usize, String)> = Vec::new();
    for hypervisor in &list.hypervisors {
        let host = hypervisor.host.as_str();
        let mut entry =
            TicketEntry { host: host.to_owned(), line: hypervisor.line, key: None, outcome: "listed", error: None };
        if let Some(key) = &hypervisor.key {
            entry.key = Some(key.to_string());
            entries.push(entry);
            continue;
        }
        let result = if settings.dry_run {
            jira.find_by_summary(&settings.project, host).await.map(|found| match found.into_iter().next() {
                Some(issue) => (Some(issue.key), "found"),
                None => (None, "would create"),
            })
        } else {
            let description = Doc::new().paragraph(format!("OS migration of hypervisor {host}, tracked by hvmigrate."));
            jira.create_issue_once(&settings.project, &settings.issue_type, host, Some(&description))
                .await
                .map(|(key, written)| (Some(key), if written == Written::Created { "created" } else { "found" }))
        };
        match result {
            Ok((key, outcome)) => {
                if let Some(key) = &key {
                    tracing::info!(host, key, outcome, "ticket");
                    if !settings.dry_run {
                        new_keys.push((hypervisor.line, key.clone()));
                    }
                }
                entry.key = key;
                entry.outcome = outcome;
            }
            Err(err) => {
                tracing::error!(host, error = %err, "ticket");
                entry.outcome = "failed";
                entry.error = Some(err.to_string());
            }
        }
        entries.push(entry);
    }
    let mut report =
        TicketReport { command: "create-tickets", dry_run: settings.dry_run, entries, rewritten: None, backup: None };
    if !new_keys.is_empty() {
        let backup = rewrite_with_keys(&list.path, &new_keys)?;
        report.rewritten = Some(list.path.clone());
        report.backup = Some(backup);
    }
    Ok(report)
}

/// Adds `key` after the host name on each given line, keeping everything
/// else (comments, blank lines, order, line ends). Writes a backup first,
/// then replaces the file atomically. Returns the backup's path.
pub fn rewrite_with_keys(path: &Path, keys: &[(usize, String)]) -> Result<PathBuf> {
    let text = std::fs::read_to_string(path).map_err(|err| Error::io(path, err))?;
    let rewritten = insert_keys(&text, keys);
    let backup = backup_path(path);
    std::fs::copy(path, &backup).map_err(|err| Error::io(&backup, err))?;
    let file_name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = path.with_file_name(format!(".{file_name}.tmp{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        std::fs::write(&temp, &rewritten)?;
        let permissions = std::fs::metadata(path)?.permissions();
        std::fs::set_permissions(&temp, permissions)?;
        std::fs::File::open(&temp)?.sync_all()?;
        std::fs::rename(&temp, path)
    };
    write().map_err(|err| {
        let _ = std::fs::remove_file(&temp);
        Error::io(path, err)
    })?;
    Ok(backup)
}

/// `<file>.bak`, or a timestamped name when that exists already.
fn backup_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let plain = path.with_file_name(format!("{name}.bak"));
    if !plain.exists() {
        return plain;
    }
    let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string();
    let mut candidate = path.with_file_name(format!("{name}.{stamp}.bak"));
    let mut n = 1;
    while candidate.exists() {
        candidate = path.with_file_name(format!("{name}.{stamp}-{n}.bak"));
        n += 1;
    }
    candidate
}

fn insert_keys(text: &str, keys: &[(usize, String)]) -> String {
    let mut out = String::with_capacity(text.len() + keys.len() * 12);
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let Some((_, key)) = keys.iter().find(|(number, _)| *number == index + 1) else {
            out.push_str(line);
            continue;
        };
        // The host is the first word (after a byte-order mark on line 1).
        let start = line.len() - line.trim_start_matches(['\u{feff}', ' ', '\t']).len();
        let end = line[start..].find(|c: char| c.is_whitespace() || c == '#').map_or(line.len(), |at| start + at);
        out.push_str(&line[..end]);
        out.push(' ');
        out.push_str(key);
        out.push_str(&line[end..]);
    }
    out
}

/// The marker that makes a comment recognisable on a re-run.
pub fn comment_marker(text: &str) -> String {
    format!("comment-{:016x}", crate::digest::fnv1a(text.trim().as_bytes()))
}

/// The same comment on every ticket of the list, once each.
#[derive(Clone, Debug)]
pub struct CommentAll {
    pub text: String,
    pub options: CommentOptions,
    pub dry_run: bool,
    /// Tickets commented on at once.
    pub parallel: usize,
}

pub async fn comment_all(jira: &JiraClient, list: &HypervisorList, settings: &CommentAll) -> Result<TicketReport> {
    jira.myself().await?;
    let marker = comment_marker(&settings.text);
    let doc = Doc::text(&settings.text);
    let limit = Arc::new(tokio::sync::Semaphore::new(settings.parallel.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, hypervisor) in list.hypervisors.iter().enumerate() {
        let key: JiraKey = match &hypervisor.key {
            Some(key) => key.clone(),
            None => continue,
        };
        let (jira, doc, marker, limit, options) =
            (jira.clone(), doc.clone(), marker.clone(), limit.clone(), settings.options.clone());
        let host = hypervisor.host.to_string();
        let line = hypervisor.line;
        let dry_run = settings.dry_run;
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await.expect("the semaphore is never closed");
            let result = if dry_run {
                jira.comments(key.as_str()).await.map(|comments| {
                    let marker = crate::clients::jira::marker_text(&marker);
                    if comments.iter().any(|comment| comment.contains(&marker)) {
                        "already posted"
                    } else {
                        "would post"
                    }
                })
            } else {
                jira.add_comment_once(key.as_str(), &doc, &marker, &options).await.map(|(_, written)| match written {
                    Written::Created => "posted",
                    Written::AlreadyThere => "already posted",
                })
            };
            let mut entry =
                TicketEntry { host: host.clone(), line, key: Some(key.to_string()), outcome: "failed", error: None };
            match result {
                Ok(outcome) => {
                    tracing::info!(host, key = %key, outcome, "comment");
                    entry.outcome = outcome;
                }
                Err(err) => {
                    tracing::error!(host, key = %key, error = %err, "comment");
                    entry.error = Some(err.to_string());
                }
            }
            (index, entry)
        });
    }
    let mut entries = Vec::new();
    while let Some(done) = tasks.join_next().await {
        entries.push(done.expect("comment tasks do not panic"));
    }
    entries.sort_by_key(|(index, _)| *index);
    Ok(TicketReport {
        command: "comment",
        dry_run: settings.dry_run,
        entries: entries.into_iter().map(|(_, entry)| entry).collect(),
        rewritten: None,
        backup: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_go_after_the_host_and_nothing_else_moves() {
        let text = "\u{feff}# fleet\r\nhv01.example.org\r\n\nhv02.example.org MH-2\n  hv03.example.org\t# spare\nhv04.example.org";
        let keys = [(2, "MH-10".to_owned()), (5, "MH-11".to_owned()), (6, "MH-12".to_owned())];
        assert_eq!(
            insert_keys(text, &keys),
            "\u{feff}# fleet\r\nhv01.example.org MH-10\r\n\nhv02.example.org MH-2\n  hv03.example.org MH-11\t# spare\nhv04.example.org MH-12"
        );
    }

    #[test]
    fn marker_is_stable() {
        assert_eq!(comment_marker("hello\n"), comment_marker("hello"));
        assert_ne!(comment_marker("hello"), comment_marker("hello!"));
        assert_eq!(comment_marker("").len(), "comment-".len() + 16);
    }
}
