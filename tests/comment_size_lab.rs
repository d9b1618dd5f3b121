//! Jira's comment size limit through the real binary against the simulated
//! site (which refuses comments over 32,767 characters, as Jira does): a
//! 40,000-character command output goes to the ticket as an attachment, and
//! the comment names it and quotes its end.

mod post_reinstall_common;
mod support;

use post_reinstall_common::*;

#[test]
fn a_40000_character_output_is_attached_and_the_comment_is_accepted() {
    let (site, hosts) = reinstalled_site("workflow:\n  remote_jobs:\n    poll_interval_ms: 100\n", |index| index == 1);
    post_reinstall(&site, &[]);
    // Kayobe fails the host with a 40,000-character message: its `fatal:` paragraph goes to the ticket.
    let message: String = (0..40_000).map(|n| char::from(b'a' + (n % 26) as u8)).collect::<String>() + " END-OF-OUTPUT";
    assert!(site.world().jira.comment_limit == Some(32_767), "the lab enforces Jira's limit");
    site.world().host_mut(&hosts[1]).unwrap().kayobe.fail_with = Some(message.clone());

    let out = adoption(&site, &["--only", &hosts[1]]);
    let summary = json(&out);
    let report = report_of(&summary, &hosts[1]);
    assert_eq!(report["outcome"], "failed", "{}", out.report());
    assert_eq!(action(report, "kayobe-deploy")["outcome"], "failed", "{report}");
    assert!(report["jira"].as_str().unwrap_or_default().contains("comment posted"), "{report}");

    let comment = site.comments(&hosts[1]).into_iter().find(|c| c.contains("hvmigrate adoption")).expect("posted");
    assert!(comment.chars().count() <= 32_767, "{} characters", comment.chars().count());
    let world = site.world();
    let key = world.host(&hosts[1]).unwrap().jira_key.clone().unwrap();
    let attachments = &world.jira_issue(&key).unwrap().attachments;
    assert_eq!(attachments.len(), 1, "{attachments:#?}");
    let attachment = &attachments[0];
    assert!(attachment.content.contains(&message), "the attachment holds the output whole");
    assert!(comment.contains(&format!("attached in full as {}", attachment.filename)), "{comment}");
    assert!(comment.contains("END-OF-OUTPUT"), "the comment quotes the end: {comment}");
}
