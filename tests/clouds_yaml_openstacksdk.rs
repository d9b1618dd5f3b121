//! Our reading of `clouds.yaml` + `secure.yaml` + `OS_*` against what the
//! real openstacksdk (`openstack.config`, pinned in tests/python) resolves
//! from the same files and environment. Without openstacksdk the test fails
//! under CI, else skips.

use std::path::{Path, PathBuf};
use std::process::Command;

use hvmigrate::clients::clouds_yaml::resolve;
use hvmigrate::clients::openstack::{Identity, KeystoneSettings};
use serde_json::{json, Value};

const RESOLVE: &str = r#"
import json, sys, openstack.config
name = sys.argv[1] or None
cloud = openstack.config.OpenStackConfig().get_one(cloud=name)
config = cloud.config
print(json.dumps({"auth_type": config.get("auth_type"), "auth": config["auth"],
    "region_name": config.get("region_name") or None, "interface": config.get("interface"),
    "cacert": config.get("cacert")}))
"#;

fn openstacksdk_available() -> bool {
    Command::new("python3").args(["-c", "import openstack.config"]).output().is_ok_and(|out| out.status.success())
}

/// What openstacksdk resolves, in a clean environment holding only `env`.
fn openstacksdk(dir: &Path, cloud: &str, env: &[(&str, &str)]) -> Value {
    let mut command = Command::new("python3");
    command.args(["-c", RESOLVE, cloud]).current_dir(dir).env_clear().env("HOME", dir);
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    let out = command.output().expect("python3 runs");
    assert!(
        out.status.success(),
        "python3 -c <resolve> {cloud} with {env:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// Ours, in openstacksdk's terms.
fn ours(settings: &KeystoneSettings) -> Value {
    let auth_url = settings.auth_url.as_str().trim_end_matches('/').to_owned();
    let (auth_type, mut auth) = match &settings.identity {
        Identity::Password { user, password, project } => (
            "password",
            json!({
                "auth_url": auth_url, "username": user.name, "user_id": user.id, "password": password.expose(),
                "user_domain_id": user.domain.id, "user_domain_name": user.domain.name,
                "project_id": project.id, "project_name": project.name,
                "project_domain_id": project.domain.id, "project_domain_name": project.domain.name,
            }),
        ),
        Identity::ApplicationCredential { id, name, user, secret } => (
            "v3applicationcredential",
            json!({
                "auth_url": auth_url, "application_credential_id": id, "application_credential_name": name,
                "application_credential_secret": secret.expose(),
                "username": user.as_ref().and_then(|u| u.name.clone()), "user_id": user.as_ref().and_then(|u| u.id.clone()),
                "user_domain_id": user.as_ref().and_then(|u| u.domain.id.clone()),
                "user_domain_name": user.as_ref().and_then(|u| u.domain.name.clone()),
            }),
        ),
    };
    auth.as_object_mut().unwrap().retain(|_, value| !value.is_null());
    let cacert = settings.transport.ca_files.first().map(|path| path.display().to_string());
    json!({"auth_type": auth_type, "auth": auth, "region_name": settings.region,
           "interface": settings.interface, "cacert": cacert})
}

/// openstacksdk's answer, keeping only what both sides describe.
fn theirs(mut value: Value) -> Value {
    let auth = value["auth"].as_object_mut().unwrap();
    auth.retain(|_, value| !value.is_null());
    if let Some(url) = auth.get("auth_url").and_then(Value::as_str) {
        let url = url.trim_end_matches('/').to_owned();
        auth.insert("auth_url".into(), json!(url));
    }
    value
}

struct Case {
    name: &'static str,
    clouds: &'static str,
    secure: Option<&'static str>,
    cloud: &'static str,
    env: Vec<(&'static str, &'static str)>,
}

#[test]
fn our_reading_matches_openstacksdk() {
    if !openstacksdk_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "openstacksdk is missing (pip install -r tests/python/requirements.txt)"
        );
        eprintln!("skipped: openstacksdk is missing (pip install -r tests/python/requirements.txt)");
        return;
    }
    let prod = "clouds:\n  prod:\n    auth:\n      auth_url: https://keystone.example.org:5000/v3\n      username: ops\n      project_id: 0123456789abcdef0123456789abcdef\n      user_domain_id: d0main\n    region_name: RegionTwo\n    interface: internal\n    cacert: /etc/pki/site-ca.pem\n    identity_api_version: 3\n";
    let cases = [
        Case {
            name: "password by project id, its secret in secure.yaml",
            clouds: prod,
            secure: Some("clouds:\n  prod:\n    auth:\n      password: s3cret-from-secure\n"),
            cloud: "prod",
            env: vec![],
        },
        Case {
            name: "the OS_* variables do not change a cloud of the file",
            clouds: prod,
            secure: Some("clouds:\n  prod:\n    auth:\n      password: s3cret-from-secure\n"),
            cloud: "",
            env: vec![("OS_CLOUD", "prod"), ("OS_USERNAME", "someone-else"), ("OS_INTERFACE", "admin")],
        },
        Case {
            name: "application credential by name, with its user",
            clouds: "clouds:\n  app:\n    auth_type: v3applicationcredential\n    auth:\n      auth_url: https://keystone.example.org:5000\n      application_credential_name: hvmigrate\n      username: ops\n      user_domain_name: Site\n    regions:\n      - RegionOne\n      - RegionTwo\n",
            secure: Some("clouds:\n  app:\n    auth:\n      application_credential_secret: app-s3cret\n"),
            cloud: "app",
            env: vec![],
        },
        Case {
            name: "domain_name stands for both domains",
            clouds: "clouds:\n  d:\n    auth:\n      auth_url: https://keystone.example.org:5000/v3\n      username: ops\n      password: pw\n      project_name: admin\n      domain_name: Site\n",
            secure: None,
            cloud: "d",
            env: vec![],
        },
        Case {
            name: "the envvars cloud from OS_*",
            clouds: "clouds:\n  other:\n    auth:\n      auth_url: https://elsewhere.example.org:5000/v3\n",
            secure: None,
            cloud: "",
            env: vec![
                ("OS_AUTH_URL", "https://keystone.example.org:5000/v3"),
                ("OS_USERNAME", "ops"),
                ("OS_PASSWORD", "env-pw"),
                ("OS_PROJECT_NAME", "admin"),
                ("OS_USER_DOMAIN_NAME", "Default"),
                ("OS_PROJECT_DOMAIN_ID", "default"),
                ("OS_REGION_NAME", "RegionOne"),
                ("OS_INTERFACE", "internal"),
                ("OS_IDENTITY_API_VERSION", "3"),
            ],
        },
    ];
    for case in cases {
        let dir = tempfile::tempdir().unwrap();
        let clouds = dir.path().join("clouds.yaml");
        std::fs::write(&clouds, case.clouds).unwrap();
        let secure_path = dir.path().join("secure.yaml");
        if let Some(secure) = case.secure {
            std::fs::write(&secure_path, secure).unwrap();
        }
        let clouds_text = clouds.display().to_string();
        let secure_text = secure_path.display().to_string();
        let mut env = case.env.clone();
        env.push(("OS_CLIENT_CONFIG_FILE", &clouds_text));
        env.push(("OS_CLIENT_SECURE_FILE", &secure_text));
        let theirs = theirs(openstacksdk(dir.path(), case.cloud, &env));
        let environment: Vec<(String, String)> =
            env.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect();
        let name = (!case.cloud.is_empty()).then_some(case.cloud);
        let paths: Vec<PathBuf> = vec![clouds.clone()];
        let settings = resolve(name, &paths, std::slice::from_ref(&secure_path), &environment)
            .unwrap_or_else(|err| panic!("{}: {err}", case.name));
        assert_eq!(ours(&settings), theirs, "{}: ours (left) and openstacksdk's (right)", case.name);
    }
}

#[test]
fn unknown_keys_and_verify_off_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let clouds = dir.path().join("clouds.yaml");
    let base = "clouds:\n  prod:\n    auth:\n      auth_url: https://keystone.example.org:5000/v3\n      username: ops\n      password: hunter2-secret\n      project_name: admin\n";
    for (extra, named) in [
        ("    regoin_name: RegionOne\n", "regoin_name"),
        ("    auth_type: token\n", "auth_type 'token'"),
        ("    verify: false\n", "verify: false"),
    ] {
        std::fs::write(&clouds, format!("{base}{extra}")).unwrap();
        let err = resolve(Some("prod"), std::slice::from_ref(&clouds), &[], &[]).unwrap_err().to_string();
        assert!(err.contains(&clouds.display().to_string()) && err.contains("cloud 'prod'"), "{err}");
        assert!(err.contains(named), "{err}");
        assert!(!err.contains("hunter2"), "no secret in the message: {err}");
    }
    std::fs::write(&clouds, format!("{base}      passwrd: typo\n")).unwrap();
    let err = resolve(Some("prod"), std::slice::from_ref(&clouds), &[], &[]).unwrap_err().to_string();
    assert!(err.contains("unknown or unsupported auth keys: passwrd"), "{err}");
    // An OS_* variable we do not know is named too.
    let env = [("OS_AUTH_URL", "https://k:5000/v3"), ("OS_TOKEN_TYPO", "x")].map(|(k, v)| (k.to_owned(), v.to_owned()));
    let err = resolve(None, &[], &[], &env).unwrap_err().to_string();
    assert!(err.contains("OS_* environment") && err.contains("token_typo"), "{err}");
}
