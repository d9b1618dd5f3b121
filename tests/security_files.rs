//! Hostile or broken files: secrets in credentials errors, files that never
//! end, YAML bombs, symbolic links planted where we read or write, the modes
//! of what we create, and a hypervisors list edited while `create-tickets` runs.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;
use support::{Outcome, Workspace};

const HYPERVISORS: &str = "hv01.example.org MH-1\n";

fn check_config(ws: &Workspace, hypervisors: &str, credentials: &str) -> support::Run {
    ws.hvmigrate(&["--hypervisors-file", hypervisors, "--creds-file", credentials, "check-config"])
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o777
}

/// Every kind of error in the credentials file names the key and its line,
/// never the value: the secret is nowhere in the output.
#[test]
fn credentials_errors_never_show_a_secret() {
    let ssh = "ssh:\n  username: ops\n  key_path: k\n  known_hosts: kh\n";
    let cases = [
        (
            format!("{ssh}  sudo: S3cret-sudo\n"),
            "S3cret-sudo",
            "credentials.yaml:5:9: ssh.sudo: invalid type: a string",
        ),
        (
            format!("{ssh}  sudo:\n    password: [S3cret-list]\n"),
            "S3cret-list",
            "ssh.sudo.password: invalid type: sequence",
        ),
        (format!("{ssh}  connect_timeout_secs: S3cret-n\n"), "S3cret-n", "expected a whole number"),
        (
            "jira:\n  url: https://ops:S3cret-url@jira.example.org:99999\n  project: MH\n".into(),
            "S3cret-url",
            "credentials.yaml:2:3: jira.url: not a valid URL (invalid port number)",
        ),
        (
            "netbox:\n  url: https://ops:S3cret-user@netbox.example.org\n  token: t\n".into(),
            "S3cret-user",
            "netbox.url: a URL must not carry a user name or password",
        ),
        (
            "netbox:\n  url: https://netbox.example.org/?token=S3cret-query\n  token: t\n".into(),
            "S3cret-query",
            "netbox.url: a service URL must not have a query",
        ),
        (
            "jira:\n  url: https://j\n  flavour: S3cret-variant\n".into(),
            "S3cret-variant",
            "jira.flavour: unknown variant",
        ),
        ("netbox: S3cret-section\n".into(), "S3cret-section", "credentials.yaml:1:9: netbox: invalid type: a string"),
        ("S3cret-document\n".into(), "S3cret-document", "invalid type: a string, expected a map of keys"),
        (
            "netbox:\n  url: https://n\n  token: {S3cret-map: 1}\n".into(),
            "S3cret-map",
            "netbox.token: invalid type: map",
        ),
        (
            "netbox:\n  url: https://n\n  token: \"S3cret-unclosed\n".into(),
            "S3cret-unclosed",
            "found unexpected end of stream",
        ),
        ("alertmanager:\n  url: https://a\n  password: S3cret-alone\n".into(), "S3cret-alone", "basic auth needs both"),
    ];
    for (text, secret, expected) in cases {
        let ws = Workspace::empty();
        ws.write("hypervisors.txt", HYPERVISORS);
        ws.write_secret("credentials.yaml", &text);
        let out = check_config(&ws, "hypervisors.txt", "credentials.yaml").expect_code(2);
        out.stderr_has(expected);
        assert!(!out.stderr.contains(secret) && !out.stdout.contains(secret), "{secret} shown\n{}", out.report());
        assert_eq!(ws.files(), ["credentials.yaml", "hypervisors.txt"], "{}", out.report());
    }
}

#[test]
fn dev_zero_as_an_input_file_ends_with_a_clear_error() {
    let ws = Workspace::with_examples();
    let out = check_config(&ws, "/dev/zero", "credentials.yaml").expect_code(2);
    out.stderr_has("/dev/zero: the hypervisors file is larger than 1 MiB; is this the right file?");
    assert_eq!(ws.files(), ["credentials.yaml", "hypervisors.txt"], "{}", out.report());
    let out = ws.hvmigrate(&["comment", "--file", "/dev/zero"]).expect_code(2);
    out.stderr_has("/dev/zero: the comment file is larger than 1 MiB; is this the right file?");
    assert_eq!(ws.files(), ["credentials.yaml", "hypervisors.txt"], "{}", out.report());
}

#[test]
fn yaml_bombs_are_refused() {
    // Few events, so the YAML reader's own limit allows millions of alias
    // jumps, each repeating 10,000 values.
    let items = vec!["pkg"; 10_000].join(", ");
    let aliases = vec!["*p"; 10_000].join(", ");
    let bomb = format!("workflow:\n  packages_to_update: &p [{items}]\n  drain:\n    skip_servers: [{aliases}]\n");
    let deep = format!("general:\n  initials: {}\n", "[".repeat(100_000));
    let cases = [
        (bomb, "credentials.yaml: the credentials file expands to more than 100000 values"),
        (deep, "credentials.yaml:2: the credentials file nests lists or maps more than 64 deep"),
    ];
    for (text, expected) in cases {
        let ws = Workspace::empty();
        ws.write("hypervisors.txt", HYPERVISORS);
        ws.write_secret("credentials.yaml", &text);
        check_config(&ws, "hypervisors.txt", "credentials.yaml").expect_code(2).stderr_has(expected);
    }
}

/// A credentials file is refused when anyone else could replace it: through
/// any folder above the path given or above the file a link resolves to.
#[test]
fn credentials_reached_through_links_or_open_folders_are_refused() {
    let ws = Workspace::empty();
    ws.write("hypervisors.txt", HYPERVISORS);
    for dir in ["private", "shared", "open", "open/inner"] {
        std::fs::create_dir(ws.file(dir)).unwrap();
    }
    ws.chmod("private", 0o700);
    ws.chmod("shared", 0o777);
    ws.chmod("open", 0o777);
    ws.chmod("open/inner", 0o700);
    let text = "general:\n  initials: AB\n";
    for file in ["private/credentials.yaml", "shared/credentials.yaml", "open/inner/credentials.yaml"] {
        ws.write_secret(file, text);
    }
    std::os::unix::fs::symlink(ws.file("shared/credentials.yaml"), ws.file("private/to-shared.yaml")).unwrap();
    std::os::unix::fs::symlink(ws.file("private/credentials.yaml"), ws.file("shared/to-private.yaml")).unwrap();
    std::os::unix::fs::symlink(ws.file("private/credentials.yaml"), ws.file("private/link.yaml")).unwrap();

    let refused = [
        ("private/to-shared.yaml", "shared: a folder above private/to-shared.yaml is writable by group or others"),
        ("shared/to-private.yaml", "shared: a folder above shared/to-private.yaml is writable by group or others"),
        (
            "open/inner/credentials.yaml",
            "open: a folder above open/inner/credentials.yaml is writable by group or others",
        ),
    ];
    for (file, expected) in refused {
        let out = check_config(&ws, "hypervisors.txt", file).expect_code(2);
        out.stderr_has(expected).stderr_has("chmod go-w");
        assert!(!ws.file("logs").exists(), "nothing is written when refused\n{}", out.report());
    }
    check_config(&ws, "hypervisors.txt", "private/link.yaml").expect_code(0);
    check_config(&ws, "hypervisors.txt", "private/credentials.yaml").expect_code(0);
}

/// The run log and its folder are private; so are the journal, its folder
/// and SQLite's side files.
#[test]
fn logs_and_journal_are_created_private() {
    let ws = Workspace::with_examples();
    let out = check_config(&ws, "hypervisors.txt", "credentials.yaml").arg("--log-dir").arg("run/logs").expect_code(0);
    assert_eq!(mode(&ws.file("run/logs")), 0o700, "{}", out.report());
    let logs: Vec<_> = std::fs::read_dir(ws.file("run/logs")).unwrap().map(|entry| entry.unwrap().path()).collect();
    assert_eq!(logs.len(), 1, "{}", out.report());
    assert_eq!(mode(&logs[0]), 0o600, "{}", out.report());

    let journal = hvmigrate::journal::Journal::open(&ws.file("state/hvmigrate.db")).unwrap();
    journal.host_statuses().unwrap();
    assert_eq!(mode(&ws.file("state")), 0o700);
    for file in std::fs::read_dir(ws.file("state")).unwrap() {
        let file = file.unwrap().path();
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}

/// A link planted where the run log will be (its name is predictable) is
/// refused, and the file it points to stays as it was.
#[test]
fn a_planted_run_log_link_is_not_followed() {
    let ws = Workspace::with_examples();
    let victim = ws.write("victim.txt", "precious\n");
    std::fs::create_dir(ws.file("logs")).unwrap();
    ws.chmod("logs", 0o700);
    // This minute and the next: the run cannot slip past both.
    let now = jiff::Timestamp::now();
    for at in [now, now + jiff::SignedDuration::from_secs(60)] {
        let name = format!("hypervisors.txt.{}", at.strftime("%Y_%m_%d_%H_%M"));
        std::os::unix::fs::symlink(&victim, ws.file("logs").join(name)).unwrap();
    }
    let out = check_config(&ws, "hypervisors.txt", "credentials.yaml").expect_code(2);
    out.stderr_has("logs/hypervisors.txt.");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n", "{}", out.report());
}

/// Saving SCC results where a link was planted refuses, leaving its target alone.
#[test]
fn scc_results_are_never_written_through_a_link() {
    let ws = Workspace::empty();
    let victim = ws.write("victim.txt", "precious\n");
    ws.chmod("victim.txt", 0o644);
    std::os::unix::fs::symlink(&victim, ws.file("results.yaml")).unwrap();
    let err = hvmigrate::scc::ResultsFile::new(Vec::new()).save(&ws.file("results.yaml")).unwrap_err();
    assert!(err.to_string().contains("is a symbolic link; refusing to write through it"), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert_eq!(mode(&victim), 0o644);
    // A plain save leaves no temporary file behind.
    hvmigrate::scc::ResultsFile::new(Vec::new()).save(&ws.file("saved.yaml")).unwrap();
    assert_eq!(mode(&ws.file("saved.yaml")), 0o600);
    assert_eq!(ws.files(), ["results.yaml", "saved.yaml", "victim.txt"]);
}

/// `scc collect --output-file` at a planted link: refused before the hosts
/// are read; the link's target keeps its content and mode.
#[test]
fn scc_collect_refuses_an_output_file_that_is_a_link() {
    let site = support::lab_site::LabSite::start(hvmigrate_lab::WorldOptions {
        hosts: 1,
        oddities: false,
        ..hvmigrate_lab::WorldOptions::default()
    });
    let victim = site.workspace.write("victim.txt", "precious\n");
    site.workspace.chmod("victim.txt", 0o644);
    std::os::unix::fs::symlink(&victim, site.workspace.file("results.yaml")).unwrap();
    let out = site.hvmigrate(&["scc", "collect", "--output-file", "results.yaml"]).expect_code(2);
    out.stderr_has("results.yaml: is a symbolic link; refusing to write through it");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n", "{}", out.report());
    assert_eq!(mode(&victim), 0o644);
    assert!(site.lab.requests().all().is_empty(), "no HTTP service was asked anything\n{}", out.report());
}

/// A Jira for `create-tickets` that, while the ticket is being created, runs
/// `during_create` (an operator editing the list).
fn ticket_jira(runtime: &tokio::runtime::Runtime, during_create: impl Fn() + Send + Sync + 'static) -> String {
    let during_create = Arc::new(during_create);
    let created = Arc::new(Mutex::new(0));
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handler = move |request: Request| {
            let (during_create, created) = (during_create.clone(), created.clone());
            async move {
                let (method, path) = (request.method().to_string(), request.uri().path().to_owned());
                match (method.as_str(), path.as_str()) {
                    ("GET", "/rest/api/2/myself") => Json(json!({"name": "ops"})).into_response(),
                    ("GET", "/rest/api/2/serverInfo") => {
                        Json(json!({"deploymentType": "Server", "version": "9.12.0"})).into_response()
                    }
                    ("GET", "/rest/api/2/search") => {
                        Json(json!({"startAt": 0, "total": 0, "issues": []})).into_response()
                    }
                    ("POST", "/rest/api/2/issue") => {
                        during_create();
                        let mut created = created.lock().unwrap();
                        *created += 1;
                        let key = format!("MH-{}", 100 + *created);
                        (axum::http::StatusCode::CREATED, Json(json!({"id": "1", "key": key}))).into_response()
                    }
                    _ => (axum::http::StatusCode::NOT_FOUND, Json(json!({"errorMessages": ["no"]}))).into_response(),
                }
            }
        };
        tokio::spawn(async move { axum::serve(listener, axum::Router::new().fallback(handler)).await.unwrap() });
        url
    })
}

fn tickets_workspace(jira: &str, list: &str) -> Workspace {
    let ws = Workspace::empty();
    ws.write("hypervisors.txt", list);
    ws.write_secret(
        "credentials.yaml",
        format!(
            "jira:\n  url: {jira}\n  allow_insecure_http: true\n  username: ops\n  api_token: tok\n  project: MH\n"
        ),
    );
    ws
}

fn create_tickets(ws: &Workspace) -> support::Run {
    ws.hvmigrate(&["--hypervisors-file", "hypervisors.txt", "--creds-file", "credentials.yaml", "create-tickets"])
}

fn leftovers(ws: &Workspace) -> Vec<String> {
    ws.files().into_iter().filter(|file| file.contains(".tmp") || file.contains(".hvmigrate-")).collect()
}

/// A line added to the list while the tickets are being made: nothing is
/// written, the operator's edit stays, exit 2.
#[test]
fn a_list_edited_during_create_tickets_is_left_alone() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let list = "# fleet\nhv01.example.org\nhv02.example.org MH-2\n";
    let edited = "# fleet\nhv00.example.org\nhv01.example.org\nhv02.example.org MH-2\n";
    let path = Arc::new(Mutex::new(None::<std::path::PathBuf>));
    let jira = ticket_jira(&runtime, {
        let path = path.clone();
        move || {
            if let Some(path) = path.lock().unwrap().as_ref() {
                std::fs::write(path, edited).unwrap();
            }
        }
    });
    let ws = tickets_workspace(&jira, list);
    *path.lock().unwrap() = Some(ws.file("hypervisors.txt"));
    let out: Outcome = create_tickets(&ws).expect_code(2);
    out.stderr_has("hypervisors.txt: the file changed while the tickets were being made")
        .stderr_has("hv01.example.org MH-101");
    assert_eq!(std::fs::read_to_string(ws.file("hypervisors.txt")).unwrap(), edited, "{}", out.report());
    assert!(!ws.file("hypervisors.txt.bak").exists(), "{}", out.report());
    assert!(leftovers(&ws).is_empty(), "{}", out.report());
}

/// Unchanged: keys land on their hosts' lines, the backup holds the bytes
/// as they were, no temporary file is left.
#[test]
fn create_tickets_writes_keys_by_host_and_backs_up_the_original() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let jira = ticket_jira(&runtime, || {});
    let list = "\u{feff}# fleet\r\nhv01.example.org\r\nhv02.example.org MH-2\r\n  HV03.example.org  # spare\r\n";
    let ws = tickets_workspace(&jira, list);
    ws.chmod("hypervisors.txt", 0o640);
    let out = create_tickets(&ws).expect_code(0);
    assert_eq!(
        std::fs::read_to_string(ws.file("hypervisors.txt")).unwrap(),
        "\u{feff}# fleet\r\nhv01.example.org MH-101\r\nhv02.example.org MH-2\r\n  HV03.example.org MH-102  # spare\r\n",
        "{}",
        out.report()
    );
    assert_eq!(std::fs::read_to_string(ws.file("hypervisors.txt.bak")).unwrap(), list);
    assert_eq!(mode(&ws.file("hypervisors.txt")), 0o640);
    assert_eq!(mode(&ws.file("hypervisors.txt.bak")), 0o640);
    assert!(leftovers(&ws).is_empty(), "{}", out.report());
}
