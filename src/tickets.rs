//! The two Jira utilities: `create-tickets` (one ticket per hypervisor that
//! lacks one, written back into the list) and `comment` (the same comment on
//! every ticket of the list, once).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::clients::jira::{CommentOptions, Doc, JiraClient, Written};
use crate::config::{HostName, HypervisorList, JiraKey};
use crate::error::{Error, InputProblem, Result};

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
    let mut new_keys: Vec<(HostName, String)> = Vec::new();
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
                        new_keys.push((hypervisor.host.clone(), key.clone()));
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
        let backup = rewrite_with_keys(list, &new_keys)?;
        report.rewritten = Some(list.path.clone());
        report.backup = Some(backup);
    }
    Ok(report)
}

/// Adds each key after its host's name, keeping everything else (comments,
/// blank lines, order, line ends). The file must still hold the bytes read
/// at the start: the network phase is long, and an edit made meanwhile is
/// the operator's, not ours to overwrite (nothing is written; a re-run finds
/// the tickets just made). The backup holds those original bytes; the new
/// file is written under an unpredictable name in the same folder, then
/// moved into place. Returns the backup's path.
pub fn rewrite_with_keys(list: &HypervisorList, keys: &[(HostName, String)]) -> Result<PathBuf> {
    let path = &list.path;
    let now = crate::config::input::read_capped(path, "the hypervisors file").map_err(Error::input)?;
    if now != list.original {
        let hosts: Vec<String> = keys.iter().map(|(host, key)| format!("{host} {key}")).collect();
        return Err(Error::input(InputProblem::new(
            path,
            format!(
                "the file changed while the tickets were being made, so the new keys were not written \
                 (nothing was): {}; run create-tickets again, it finds these tickets",
                hosts.join(", ")
            ),
        )));
    }
    let text =
        std::str::from_utf8(&list.original).map_err(|_| Error::input(InputProblem::new(path, "not valid UTF-8")))?;
    let rewritten = insert_keys(text, keys);
    let permissions = std::fs::metadata(path).map_err(|err| Error::io(path, err))?.permissions();
    let backup = write_backup(path, &list.original, &permissions)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut temp = tempfile::Builder::new().prefix(".hvmigrate-").suffix(".tmp").tempfile_in(dir)?;
        temp.write_all(rewritten.as_bytes())?;
        temp.as_file().set_permissions(permissions.clone())?;
        temp.as_file().sync_all()?;
        temp.persist(path).map_err(|err| err.error)?;
        Ok(())
    };
    write().map_err(|err| Error::io(path, err))?;
    Ok(backup)
}

/// `<file>.bak` (else a timestamped name) holding `bytes`, created new:
/// never through a link planted under that name, never over another file.
fn write_backup(path: &Path, bytes: &[u8], permissions: &std::fs::Permissions) -> Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string();
    let candidates = std::iter::once(format!("{name}.bak"))
        .chain(std::iter::once(format!("{name}.{stamp}.bak")))
        .chain((1..1000).map(|n| format!("{name}.{stamp}-{n}.bak")));
    for candidate in candidates {
        let backup = path.with_file_name(candidate);
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(permissions.mode() & 0o777)
            .open(&backup);
        match opened {
            Ok(mut file) => {
                file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|err| Error::io(&backup, err))?;
                return Ok(backup);
            }
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(Error::io(&backup, err)),
        }
    }
    Err(Error::io(path, std::io::Error::other("no free name for the backup")))
}

/// Adds each key after its host on the line that lists that host alone
/// (matched by name as the list's reader does: first column, any case).
fn insert_keys(text: &str, keys: &[(HostName, String)]) -> String {
    let mut out = String::with_capacity(text.len() + keys.len() * 12);
    for line in text.split_inclusive('\n') {
        // The host is the first word (after a byte-order mark on line 1).
        let start = line.len() - line.trim_start_matches(['\u{feff}', ' ', '\t']).len();
        let content = line[start..].split('#').next().unwrap_or_default();
        let columns: Vec<&str> = content.split_whitespace().collect();
        // Options (`name=value`) may follow the host: the key goes before them.
        let key = match columns.as_slice() {
            [host, options @ ..] if options.iter().all(|word| word.contains('=')) => {
                keys.iter().find(|(name, _)| name.as_str().eq_ignore_ascii_case(host)).map(|(_, key)| key)
            }
            _ => None,
        };
        let Some(key) = key else {
            out.push_str(line);
            continue;
        };
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
        let text = "\u{feff}# fleet\r\nHV01.example.org\r\n\nhv02.example.org MH-2\n  hv03.example.org\t# spare\nhv04.example.org";
        let host = |name: &str| HostName::parse(name).unwrap();
        let keys = [
            (host("hv04.example.org"), "MH-12".to_owned()),
            (host("hv01.example.org"), "MH-10".to_owned()),
            (host("hv03.example.org"), "MH-11".to_owned()),
        ];
        assert_eq!(
            insert_keys(text, &keys),
            "\u{feff}# fleet\r\nHV01.example.org MH-10\r\n\nhv02.example.org MH-2\n  hv03.example.org MH-11\t# spare\nhv04.example.org MH-12"
        );
        // Nova's names on the line stay after the key.
        let keys = [(host("hv05.example.org"), "MH-13".to_owned())];
        assert_eq!(insert_keys("hv05.example.org nova_host=hv05\n", &keys), "hv05.example.org MH-13 nova_host=hv05\n");
    }

    #[test]
    fn marker_is_stable() {
        assert_eq!(comment_marker("hello\n"), comment_marker("hello"));
        assert_ne!(comment_marker("hello"), comment_marker("hello!"));
        assert_eq!(comment_marker("").len(), "comment-".len() + 16);
    }
}
