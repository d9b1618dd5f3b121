//! `hvmigrate serve` and its tokens: every endpoint without a token, with a
//! wrong one, with a read token and with an operate token; the login page and
//! its session cookie; a token removed while the server runs; the tokens file
//! readable by others refused; `/health` before the ledger exists; SIGTERM.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use support::serve::{add_token, lab_ledger, Answer, Served};
use support::Workspace;

/// Who may see an endpoint.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Needs {
    Nothing,
    Read,
    Operate,
    /// A dashboard page: without a session, to the login page.
    Session,
}

fn endpoints(host: &str) -> Vec<(String, Needs)> {
    let api = |path: &str, needs| (path.to_owned(), needs);
    vec![
        api("/health", Needs::Nothing),
        api("/version", Needs::Nothing),
        api("/metrics", Needs::Nothing),
        api("/login", Needs::Nothing),
        api("/api/v1/hosts", Needs::Read),
        api("/api/v1/hosts?outcome=succeeded&per_page=2&page=1", Needs::Read),
        (format!("/api/v1/hosts/{host}"), Needs::Read),
        api("/api/v1/runs", Needs::Read),
        api("/api/v1/runs/under-way", Needs::Read),
        api("/api/v1/report", Needs::Read),
        api("/api/v1/inventory", Needs::Read),
        api("/api/v1/openapi.json", Needs::Read),
        api("/api/v1/docs", Needs::Read),
        (format!("/api/v1/hosts/{host}/outputs"), Needs::Operate),
        api("/", Needs::Session),
        (format!("/hosts/{host}"), Needs::Session),
    ]
}

fn expect_error(answer: &Answer, status: u16, code: &str, what: &str, served: &Served) {
    assert_eq!(answer.status, status, "{what}: {answer:?}\n{}", served.stderr());
    let json = answer.json();
    assert_eq!(json["error"]["code"], code, "{what}: {json}");
    assert_eq!(json["error"]["status"], status, "{what}: {json}");
    assert!(json["error"]["message"].as_str().is_some_and(|text| !text.is_empty()), "{what}: {json}");
}

#[test]
fn every_endpoint_without_a_token_with_a_wrong_one_a_read_one_and_an_operate_one() {
    let ws = Workspace::empty();
    let state = lab_ledger(&ws, 6);
    let read = add_token(&ws, "tokens", "ann", "read");
    let operate = add_token(&ws, "tokens", "bob", "operate");
    let tokens_text = std::fs::read_to_string(ws.file("tokens")).unwrap();
    assert!(!tokens_text.contains(&read) && !tokens_text.contains(&operate), "only hashes:\n{tokens_text}");
    let served = ws.serve(&["--state", state, "--tokens-file", "tokens"]);

    let hosts = served.get_with("/api/v1/hosts", &read).json();
    assert_eq!(hosts["total"], 6, "{hosts}");
    let host = hosts["hosts"][0]["host"].as_str().unwrap().to_owned();

    for (path, needs) in endpoints(&host) {
        let none = served.get(&path, &[]);
        let wrong = served.get_with(&path, "hvm_not-a-token-of-this-file-0123456789");
        let with_read = served.get_with(&path, &read);
        let with_operate = served.get_with(&path, &operate);
        match needs {
            Needs::Nothing => {
                for answer in [&none, &wrong, &with_read, &with_operate] {
                    assert_eq!(answer.status, 200, "{path}: {answer:?}");
                }
            }
            Needs::Read | Needs::Operate => {
                expect_error(&none, 401, "unauthorized", &format!("{path} without a token"), &served);
                assert_eq!(none.header("www-authenticate"), Some("Bearer"), "{path}");
                expect_error(&wrong, 401, "unauthorized", &format!("{path} with a wrong token"), &served);
                if needs == Needs::Operate {
                    expect_error(&with_read, 403, "forbidden", &format!("{path} with a read token"), &served);
                } else {
                    assert_eq!(with_read.status, 200, "{path} with a read token: {with_read:?}");
                }
                assert_eq!(with_operate.status, 200, "{path} with an operate token: {with_operate:?}");
            }
            Needs::Session => {
                assert_eq!(none.status, 303, "{path}: {none:?}");
                assert_eq!(none.header("location"), Some("/login"), "{path}");
                expect_error(&wrong, 401, "unauthorized", &format!("{path} with a wrong token"), &served);
                assert_eq!(with_read.status, 200, "{path}: {with_read:?}");
                assert!(with_read.body.contains(&host), "{path} shows the host");
            }
        }
    }

    // The document names every API route this test reaches.
    let doc = served.get_with("/api/v1/openapi.json", &read).json();
    for (path, _) in endpoints("{host}") {
        let path = path.split('?').next().unwrap();
        if path.starts_with("/api/v1/") && !path.ends_with("openapi.json") && !path.ends_with("/docs") {
            assert!(doc["paths"][path].is_object(), "{path} is not in the OpenAPI document");
        }
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");

    // Version: the commit this binary was built from.
    let version = served.get("/version", &[]).json();
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned());
    match head {
        // (A build of an older commit would say so: the test binary and the server are built together.)
        Some(head) => assert_eq!(version["commit"].as_str().unwrap().len(), head.len(), "{version}"),
        None => assert!(!version["commit"].as_str().unwrap().is_empty()),
    }

    // The dashboard's login: a session cookie, HttpOnly and SameSite=Strict.
    let refused = served.post_form("/login", "token=hvm_wrong");
    assert_eq!(refused.status, 401);
    assert!(refused.header("set-cookie").is_none());
    let login = served.post_form("/login", &format!("token={read}"));
    assert_eq!(login.status, 303, "{login:?}");
    let cookie = login.header("set-cookie").expect("a session cookie").to_owned();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(!cookie.contains(&read), "the cookie is not the token");
    let session = cookie.split(';').next().unwrap().to_owned();
    let page = served.get("/", &[("Cookie", &session)]);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"hosts\"") && page.body.contains(&host));
    assert!(page.header("content-security-policy").is_some_and(|csp| csp.contains("default-src 'none'")));
    // The session reads the API too (the API page in a browser).
    assert_eq!(served.get("/api/v1/docs", &[("Cookie", &session)]).status, 200);

    // Removed while the server runs: the token and its sessions stop working.
    ws.hvmigrate(&["serve", "remove-token", "--tokens-file", "tokens", "--name", "ann"]).expect_code(0);
    expect_error(&served.get_with("/api/v1/hosts", &read), 401, "unauthorized", "a removed token", &served);
    assert_eq!(served.get("/", &[("Cookie", &session)]).status, 303, "a removed token's session");
    assert_eq!(served.get_with("/api/v1/hosts", &operate).status, 200);

    let (code, stderr) = served.stop();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("stopping on SIGTERM"), "{stderr}");
    assert!(stderr.contains("/api/v1/hosts") && stderr.contains("status=401"), "one log line per request:\n{stderr}");
    for secret in [&read, &operate] {
        assert!(!stderr.contains(secret.as_str()), "a token reached the log:\n{stderr}");
    }
}

#[test]
fn a_tokens_file_others_may_read_is_refused_and_nothing_starts() {
    let ws = Workspace::empty();
    add_token(&ws, "tokens", "ann", "read");
    std::fs::set_permissions(ws.file("tokens"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = ws.hvmigrate(&["serve", "--listen", "127.0.0.1:0", "--tokens-file", "tokens"]).expect_code(2);
    out.stderr_has("tokens").stderr_has("0644");
    assert!(!out.stdout.contains("Serving"), "{}", out.report());
    // Adding to it is refused too, and it is left as it was.
    let before = std::fs::read(ws.file("tokens")).unwrap();
    ws.hvmigrate(&["serve", "add-token", "--tokens-file", "tokens", "--name", "bob", "--role", "read"])
        .expect_code(2)
        .stderr_has("0644");
    assert_eq!(std::fs::read(ws.file("tokens")).unwrap(), before);

    // No tokens file: said, nothing starts.
    ws.hvmigrate(&["serve", "--listen", "127.0.0.1:0", "--tokens-file", "missing"])
        .expect_code(2)
        .stderr_has("missing");
    // A given token too short, an unknown name to remove: usage errors.
    std::fs::set_permissions(ws.file("tokens"), std::fs::Permissions::from_mode(0o600)).unwrap();
    ws.hvmigrate(&[
        "serve",
        "add-token",
        "--tokens-file",
        "tokens",
        "--name",
        "carl",
        "--role",
        "read",
        "--token",
        "short",
    ])
    .expect_code(2)
    .stderr_has("32 characters");
    ws.hvmigrate(&["serve", "remove-token", "--tokens-file", "tokens", "--name", "nobody"])
        .expect_code(2)
        .stderr_has("no token named nobody");
}

#[test]
fn health_is_503_until_the_ledger_exists_and_metrics_can_be_protected() {
    let ws = Workspace::empty();
    let read = add_token(&ws, "tokens", "ann", "read");
    let served = ws.serve(&["--state", "state/later.db", "--tokens-file", "tokens", "--protect-metrics"]);
    let health = served.get("/health", &[]);
    assert_eq!(health.status, 503, "{health:?}");
    assert_eq!(health.json()["status"], "unavailable");
    expect_error(&served.get_with("/api/v1/hosts", &read), 503, "unavailable", "no ledger yet", &served);
    expect_error(&served.get("/metrics", &[]), 401, "unauthorized", "protected metrics", &served);

    // The first run makes the ledger: the server answers from then on.
    std::fs::create_dir_all(ws.file("state")).unwrap();
    hvmigrate::journal::Journal::open(&ws.file("state/later.db")).unwrap();
    assert_eq!(served.get("/health", &[]).json()["status"], "ok");
    let hosts = served.get_with("/api/v1/hosts", &read).json();
    assert_eq!(hosts["total"], 0, "{hosts}");
    let metrics = served.get_with("/metrics", &read);
    assert_eq!(metrics.status, 200);
    assert!(metrics.body.contains("hvmigrate_runs_under_way 0"), "{}", metrics.body);
    assert!(metrics.header("content-type").is_some_and(|kind| kind.starts_with("application/openmetrics-text")));
}

#[test]
fn tls_with_the_given_certificate_and_key() {
    // `openssl version` (it has no --version), `curl --version`.
    let tools = [("openssl", "version"), ("curl", "--version")]
        .iter()
        .all(|(tool, arg)| Command::new(tool).arg(arg).output().is_ok_and(|out| out.status.success()));
    if !tools {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "openssl and curl are needed in CI");
        eprintln!("SKIPPED: openssl or curl is not installed here");
        return;
    }
    let ws = Workspace::empty();
    let read = add_token(&ws, "tokens", "ann", "read");
    let made = Command::new("openssl")
        .current_dir(ws.path())
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-keyout", "key.pem", "-out", "cert.pem", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    std::fs::set_permissions(ws.file("key.pem"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let served =
        ws.serve(&["--state", "none.db", "--tokens-file", "tokens", "--tls-cert", "cert.pem", "--tls-key", "key.pem"]);
    assert!(served.url.starts_with("https://127.0.0.1:"), "{}", served.url);
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .current_dir(ws.path())
            .args(["-sS", "--cacert", "cert.pem"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, body, _) = curl(&[&format!("{}/version", served.url)]);
    assert_eq!(code, Some(0));
    assert!(body.contains("\"commit\""), "{body}");
    // The login cookie is Secure over TLS.
    let (_, headers, _) =
        curl(&["-D", "-", "-o", "/dev/null", "--data", &format!("token={read}"), &format!("{}/login", served.url)]);
    assert!(headers.to_lowercase().contains("set-cookie:") && headers.contains("; Secure"), "{headers}");
    // Plain HTTP on the TLS port gets no answer.
    let (code, _, _) = curl(&[&format!("http://{}/version", served.address)]);
    assert_ne!(code, Some(0));
    // A key others may read is refused, naming it.
    std::fs::set_permissions(ws.file("key.pem"), std::fs::Permissions::from_mode(0o644)).unwrap();
    ws.hvmigrate(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tokens-file",
        "tokens",
        "--tls-cert",
        "cert.pem",
        "--tls-key",
        "key.pem",
    ])
    .expect_code(2)
    .stderr_has("key.pem");
}
