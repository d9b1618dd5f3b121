//! create-tickets and comment through the real binary against the simulated
//! site: keys found or created once, comments posted once.

mod support;

use hvmigrate_lab::WorldOptions;
use support::lab_site::LabSite;

#[test]
fn create_tickets_finds_or_creates_once_and_comment_posts_once() {
    let site = LabSite::start(WorldOptions { hosts: 3, oddities: false, ..WorldOptions::default() });
    let hosts = site.campaign_hosts();
    let key0 = site.world().host(&hosts[0]).unwrap().jira_key.clone().unwrap();
    let key1 = site.world().host(&hosts[1]).unwrap().jira_key.clone().unwrap();
    let list = format!("# the fleet\n{} {key0}\n{}   # a key to find\n\nhv900.lab.example.org\n", hosts[0], hosts[1]);
    site.workspace.write("site/hypervisors.txt", &list);
    let issues_before = site.world().jira.issues.len();

    site.hvmigrate(&["create-tickets", "--dry-run"]).expect_code(0);
    assert_eq!(
        std::fs::read_to_string(site.workspace.file("site/hypervisors.txt")).unwrap(),
        list,
        "a dry run rewrites nothing"
    );
    assert_eq!(site.world().jira.issues.len(), issues_before, "a dry run creates nothing");

    site.hvmigrate(&["create-tickets"]).expect_code(0);
    let written = std::fs::read_to_string(site.workspace.file("site/hypervisors.txt")).unwrap();
    let new_key = {
        let world = site.world();
        assert_eq!(world.jira.issues.len(), issues_before + 1, "one issue created, the existing one found");
        world.jira.issues.iter().find(|issue| issue.summary == "hv900.lab.example.org").unwrap().key.clone()
    };
    assert_eq!(
        written,
        format!(
            "# the fleet\n{} {key0}\n{} {key1}   # a key to find\n\nhv900.lab.example.org {new_key}\n",
            hosts[0], hosts[1]
        )
    );
    assert!(site.workspace.file("site/hypervisors.txt.bak").exists(), "the old list is kept");

    site.hvmigrate(&["create-tickets"]).expect_code(0);
    assert_eq!(site.world().jira.issues.len(), issues_before + 1, "a re-run creates nothing");
    assert_eq!(std::fs::read_to_string(site.workspace.file("site/hypervisors.txt")).unwrap(), written);

    for _ in 0..2 {
        site.hvmigrate(&["comment", "--text", "Maintenance starts on Monday."]).expect_code(0);
    }
    for key in [&key0, &key1, &new_key] {
        let world = site.world();
        let comments = &world.jira_issue(key).unwrap().comments;
        let matching = comments.iter().filter(|c| c.body.to_string().contains("Maintenance starts on Monday.")).count();
        assert_eq!(matching, 1, "{key}: the comment is posted once");
    }
}
