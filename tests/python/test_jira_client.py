"""The Python `jira` library, unmodified, against the lab's Jira emulator.

Run by lab/tests/real_clients_jira_netbox.rs with LAB_JIRA_URL, LAB_JIRA_USER,
LAB_JIRA_TOKEN and LAB_JIRA_PAT in the environment.
"""

import os
import sys

from jira import JIRA, JIRAError

url = os.environ["LAB_JIRA_URL"]
user = os.environ["LAB_JIRA_USER"]
token = os.environ["LAB_JIRA_TOKEN"]
pat = os.environ["LAB_JIRA_PAT"]
checks = 0


def check(condition, what):
    global checks
    if not condition:
        sys.exit(f"FAILED: {what}")
    checks += 1


jira = JIRA(server=url, basic_auth=(user, token), max_retries=0)
check(jira.server_info()["versionNumbers"] == [9, 12, 2], "server_info()")
check(jira.current_user() == user, f"current_user(): {jira.current_user()!r}")

# Create an issue (fields as dicts, so no extra look-ups), read it back.
issue = jira.create_issue(
    fields={
        "project": {"key": "MH"},
        "summary": "hv-python.lab.example.org",
        "issuetype": {"name": "HyperVisor"},
        "description": "Created by the *jira* client",
    }
)
check(issue.key.startswith("MH-"), f"create_issue(): {issue.key}")
check(issue.fields.status.name == "To Do", "a new issue is in the initial status")
check(issue.fields.status.statusCategory.key == "new", "statusCategory")
check(issue.fields.summary == "hv-python.lab.example.org", "summary")

# Comments.
comment = jira.add_comment(issue, "drain started on *hv-python*")
check(comment.body == "drain started on *hv-python*", "add_comment()")
check(comment.author.name == user, "comment author")
jira.add_comment(issue, "second")
bodies = [c.body for c in jira.comments(issue)]
check(bodies == ["drain started on *hv-python*", "second"], f"comments(): {bodies}")

# Transitions by name, with a comment on the way.
names = [t["name"] for t in jira.transitions(issue)]
check(names == ["Draining", "Working On Pre Bios"], f"transitions(): {names}")
check(jira.find_transitionid_by_name(issue, "Draining") is not None, "find_transitionid_by_name()")
jira.transition_issue(issue, "Draining", comment="draining now")
issue = jira.issue(issue.key)
check(issue.fields.status.name == "Draining", "transition_issue() by name")
check(issue.fields.comment.comments[-1].body == "draining now", "the transition's comment")
jira.transition_issue(issue, "Drained")
check(jira.issue(issue.key, fields="status").fields.status.name == "Drained", "transition_issue() again")
try:
    jira.transition_issue(issue, "99999")
    check(False, "an unavailable transition raises")
except JIRAError as err:
    check(err.status_code == 400, f"an unavailable transition is 400: {err.status_code}")

# Search: the JQL the tools use, and paging through a whole project.
found = jira.search_issues('project = MH AND summary ~ "hv-python"')
check([i.key for i in found] == [issue.key], "search_issues() with summary ~")
exact = jira.search_issues('project = MH AND summary = "hv-python.lab.example.org" ORDER BY created DESC')
check(len(exact) == 1 and exact[0].fields.status.name == "Drained", "search_issues() with summary =")
check(jira.search_issues(f"key = {issue.key}")[0].key == issue.key, "search_issues() by key")
everything = jira.search_issues("project = MH", maxResults=False)
total = int(os.environ["LAB_JIRA_ISSUES"]) + 1
check(len(everything) == total, f"search_issues(maxResults=False) pages through all: {len(everything)} of {total}")
check(everything.total == total, "the total")
few = jira.search_issues("project = MH", startAt=2, maxResults=3)
check(len(few) == 3 and few.startAt == 2, "one page")
try:
    jira.search_issues("project = NOPE")
    check(False, "an unknown project raises")
except JIRAError as err:
    check(err.status_code == 400, "an unknown project is 400")

# A personal access token as Bearer; bad credentials are 401.
check(JIRA(server=url, token_auth=pat, max_retries=0).myself()["name"] == user, "token_auth")
try:
    JIRA(server=url, basic_auth=(user, "wrong"), max_retries=0).myself()
    check(False, "a bad token raises")
except JIRAError as err:
    check(err.status_code == 401, f"a bad token is 401: {err.status_code}")

print(f"jira: {checks} checks passed")
