//! The step's comment within Jira's size limit: Jira refuses a comment over
//! 32,767 characters (its `jira.text.field.character.limit`), so a long
//! command output goes to the ticket as an attached file, and the comment
//! names the file and quotes its last lines. A file of the same name and
//! size already on the ticket is not attached again.

use crate::clients::http::ServiceError;
use crate::clients::jira::{CommentOptions, Doc, JiraClient, Written};

use super::context::HostContext;
use super::report::{HostOutcome, HostReport};
use super::steps::StepPlan;

/// The most characters Jira takes in one comment.
pub const COMMENT_LIMIT: usize = 32_767;
/// An output longer than this is attached rather than quoted whole.
const INLINE_OUTPUT_CHARS: usize = 4_000;
/// How much of an attached output's end the comment quotes.
const QUOTED_LINES: usize = 20;
const QUOTED_CHARS: usize = 2_000;
/// Room for the marker paragraph the comment gets when it is posted.
const MARKER_ROOM: usize = 512;

/// The audit trail of a host's step: one comment (its long outputs
/// attached) and the closing transition; kept in the journal when posting
/// fails, so that the next run posts just this.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Trail {
    doc: Doc,
    marker: String,
    /// Set when the run changed nothing: a comment carrying it already says the same.
    news: Option<String>,
    transition: Option<String>,
    /// Why the long outputs could not be attached (the trail then fails).
    #[serde(skip)]
    unattached: Option<String>,
}

impl Trail {
    pub async fn of(host: &HostContext, plan: &StepPlan, report: &HostReport) -> Self {
        let run = &host.run;
        let target =
            if report.outcome == HostOutcome::Succeeded { &plan.jira.on_success } else { &plan.jira.on_failure };
        let mut unattached = None;
        let doc = match run.jira() {
            Ok(jira) => {
                match comment_with_attachments(jira, host.key.as_str(), report, &run.run_id, &run.initials).await {
                    Ok(doc) => doc,
                    Err(err) => {
                        unattached = Some(format!("the long outputs could not be attached: {err}"));
                        report.jira_comment(&run.run_id, &run.initials)
                    }
                }
            }
            Err(_) => report.jira_comment(&run.run_id, &run.initials),
        };
        Trail {
            doc,
            marker: report.marker(&run.run_id),
            news: report.changed_nothing().then(|| report.news_marker()),
            transition: target.clone().filter(|_| report.outcome != HostOutcome::Interrupted),
            unattached,
        }
    }

    /// Whether the trail can be kept for the next run to post as it is.
    pub fn is_whole(&self) -> bool {
        self.unattached.is_none()
    }

    /// Posts the comment (once: a retry finds it by its marker) and moves the
    /// ticket. `Err` says what is missing from the ticket.
    pub async fn post(&self, host: &HostContext) -> Result<String, String> {
        if let Some(why) = &self.unattached {
            return Err(why.clone());
        }
        // A run refuses to start without Jira (the manager checks); only
        // the engine's own tests run without it.
        let Ok(jira) = host.run.jira() else {
            return Ok("not posted: jira is not configured".into());
        };
        let key = host.key.as_str();
        let posted = async {
            // A re-run that changed nothing and ends as an earlier run did (the
            // same success, or the same block) does not repeat it on the ticket.
            if let Some(news) = &self.news {
                if jira.comments(key).await?.iter().any(|comment| comment.contains(news)) {
                    return Ok::<_, ServiceError>("already on the ticket from an earlier run".into());
                }
            }
            let (_, written) = jira.add_comment_once(key, &self.doc, &self.marker, &CommentOptions::default()).await?;
            Ok(match written {
                Written::Created => "comment posted".to_owned(),
                Written::AlreadyThere => "comment already posted".to_owned(),
            })
        }
        .await;
        let mut notes = vec![posted.map_err(|err| format!("the audit comment could not be posted: {err}"))?];
        if let Some(target) = &self.transition {
            match jira.transition_to(key, target).await {
                Ok(_) => notes.push(format!("ticket in '{target}'")),
                Err(err) => {
                    return Err(format!("{}; the ticket could not move to '{target}': {err}", notes.join("; ")))
                }
            }
        }
        Ok(notes.join("; "))
    }
}

/// The comment of `report`, its long outputs attached to the ticket `key`
/// first. When even then it is too long (a drain of very many VMs), the
/// whole comment is attached and the comment says so.
pub async fn comment_with_attachments(
    jira: &JiraClient,
    key: &str,
    report: &HostReport,
    run_id: &str,
    initials: &str,
) -> Result<Doc, ServiceError> {
    let mut report = report.clone();
    for output in &mut report.outputs {
        if output.text.chars().count() <= INLINE_OUTPUT_CHARS {
            continue;
        }
        let name = attachment_name(&report.step.to_string(), &report.host, &output.title, &output.text);
        jira.attach_once(key, &name, &output.text).await?;
        output.text = quote_end(&output.text, &name);
    }
    let doc = report.jira_comment(run_id, initials);
    if rendered_len(jira, &doc).await? + MARKER_ROOM <= COMMENT_LIMIT {
        return Ok(doc);
    }
    let whole = doc.to_wiki();
    let name = attachment_name(&report.step.to_string(), &report.host, "report", &whole);
    jira.attach_once(key, &name, &whole).await?;
    let first = whole.lines().next().unwrap_or_default().to_owned();
    Ok(Doc::new().paragraph(first).paragraph(format!(
        "The full report ({} characters, over Jira's limit of {COMMENT_LIMIT} per comment) is attached as {name}.",
        whole.chars().count()
    )))
}

/// The length Jira counts: the wiki text, or the ADF document's JSON.
async fn rendered_len(jira: &JiraClient, doc: &Doc) -> Result<usize, ServiceError> {
    Ok(match jira.render(doc).await? {
        serde_json::Value::String(text) => text.chars().count(),
        other => other.to_string().chars().count(),
    })
}

/// `adoption-hv01.example.org-kayobe-fatal-1-1a2b3c4d.txt`: the same output
/// gets the same name, so a re-run finds it.
fn attachment_name(step: &str, host: &str, title: &str, text: &str) -> String {
    let mut slug = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= 40 {
            break;
        }
    }
    let slug = slug.trim_matches('-');
    let digest = crate::digest::fnv1a(text.as_bytes()) as u32;
    format!("{step}-{host}-{slug}-{digest:08x}.txt")
}

/// What the comment shows of an attached output: where it is and its end.
fn quote_end(text: &str, name: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut quoted: Vec<String> = Vec::new();
    let mut room = QUOTED_CHARS;
    for line in lines.iter().rev().take(QUOTED_LINES) {
        let length = line.chars().count();
        if length > room {
            // The end of a line too long to quote whole.
            let tail: String = line.chars().skip(length - room).collect();
            quoted.push(format!("…{tail}"));
            break;
        }
        room -= length;
        quoted.push((*line).to_owned());
    }
    quoted.reverse();
    format!(
        "[attached in full as {name}: {} lines, {} characters; its last {} line(s):]\n{}",
        lines.len(),
        text.chars().count(),
        quoted.len(),
        quoted.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_single_line_is_quoted_by_its_end() {
        let text = format!("{}END", "x".repeat(40_000));
        let quoted = quote_end(&text, "a.txt");
        assert!(quoted.starts_with("[attached in full as a.txt: 1 lines, 40003 characters; its last 1 line(s):]\n…"));
        assert!(quoted.ends_with("xxEND"));
        assert!(quoted.chars().count() < QUOTED_CHARS + 200, "{}", quoted.len());
    }

    #[test]
    fn the_last_lines_are_quoted() {
        let text: String = (1..=100).map(|n| format!("line {n}\n")).collect();
        let quoted = quote_end(&text, "a.txt");
        assert!(quoted.contains("100 lines") && quoted.contains("last 20 line(s)"), "{quoted}");
        assert!(quoted.ends_with("line 81\nline 82\nline 83\nline 84\nline 85\nline 86\nline 87\nline 88\nline 89\nline 90\nline 91\nline 92\nline 93\nline 94\nline 95\nline 96\nline 97\nline 98\nline 99\nline 100"), "{quoted}");
    }

    #[test]
    fn names_are_stable_and_plain() {
        let name = attachment_name("adoption", "hv01.example.org", "Kayobe fatal 1 for hv01.example.org", "text");
        assert_eq!(
            name,
            attachment_name("adoption", "hv01.example.org", "Kayobe fatal 1 for hv01.example.org", "text")
        );
        assert!(name.starts_with("adoption-hv01.example.org-kayobe-fatal-1-for-hv01-example-org-"), "{name}");
        assert_ne!(
            name,
            attachment_name("adoption", "hv01.example.org", "Kayobe fatal 1 for hv01.example.org", "other")
        );
    }
}
