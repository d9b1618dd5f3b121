//! What the package is made of, through the real binary: `completions`
//! (each script parsed by its shell, and bash asked to complete), `man`
//! (hvmigrate(1) on stdout; one page per command into --dir, each rendered
//! by man(1)), and `--version` naming the commit it was built from.

mod support;

use std::path::Path;
use std::process::Command;

use support::Workspace;

/// A tool a test needs: present, or skipped with a visible reason; never skipped in CI.
fn tool_or_skip(tool: &str, what: &str) -> bool {
    let found =
        Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success());
    if found {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{tool} is needed in CI (scripts/ci-packages.txt)");
    eprintln!("SKIPPED: {what}: {tool} is not installed here");
    false
}

/// Runs a checker on a generated file; its failure shows the command, its output and the file.
fn check_with(program: &str, args: &[&str], file: &Path) -> String {
    let output = Command::new(program).args(args).arg(file).output().expect("the checker runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let text = std::fs::read_to_string(file).unwrap_or_default();
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "{program} {} {} failed ({})\n--- stdout\n{stdout}--- stderr\n{stderr}--- {}\n{}",
        args.join(" "),
        file.display(),
        output.status,
        file.display(),
        text.lines().take(60).collect::<Vec<_>>().join("\n")
    );
    stdout
}

#[test]
fn version_names_the_commit_the_binary_was_built_from() {
    let ws = Workspace::empty();
    let out = ws.command(&["--version"]).expect_code(0);
    let expected = format!("hvmigrate {} (commit {})\n", env!("CARGO_PKG_VERSION"), hvmigrate::BUILD_COMMIT);
    assert_eq!(out.stdout, expected, "{}", out.report());

    let head = Command::new("git")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned());
    match head {
        Some(head) => assert_eq!(hvmigrate::BUILD_COMMIT, head, "built in a clone: the commit is HEAD's"),
        None => {
            let given = std::env::var("HVMIGRATE_BUILD_COMMIT").unwrap_or_else(|_| "unknown".into());
            assert_eq!(hvmigrate::BUILD_COMMIT, given, "built outside a clone: the variable, else unknown");
        }
    }
}

#[test]
fn bash_completion_parses_and_completes_commands_and_flags() {
    let ws = Workspace::empty();
    let out = ws.command(&["completions", "bash"]).expect_code(0);
    let script = ws.write("hvmigrate.bash", &out.stdout);
    check_with("bash", &["-n"], &script);

    // Asked as bash asks it: the function with the words typed so far.
    let complete = |words: &[&str]| -> Vec<String> {
        let current = words.len() - 1;
        let program = format!(
            "source '{}'; COMP_WORDS=({}); COMP_CWORD={current}; _hvmigrate hvmigrate '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display(),
            words.iter().map(|word| format!("'{word}'")).collect::<Vec<_>>().join(" "),
            words[current],
            words[current - 1],
        );
        let output = Command::new("bash").args(["-c", &program]).output().expect("bash runs");
        assert!(output.status.success(), "{program}\n{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect()
    };
    assert_eq!(complete(&["hvmigrate", "ru"]), ["run"], "{}", out.report());
    assert_eq!(complete(&["hvmigrate", "lab", "se"]), ["serve"]);
    assert_eq!(complete(&["hvmigrate", "run", "--st"]), ["--step", "--state"]);
    assert_eq!(complete(&["hvmigrate", "completions", "z"]), ["zsh"]);
}

#[test]
fn zsh_and_fish_completions_parse_in_their_shells() {
    let ws = Workspace::empty();
    let zsh = ws.command(&["completions", "zsh"]).expect_code(0);
    assert!(zsh.stdout.starts_with("#compdef hvmigrate"), "{}", zsh.report());
    let fish = ws.command(&["completions", "fish"]).expect_code(0);
    assert!(fish.stdout.contains("complete -c hvmigrate"), "{}", fish.report());
    if tool_or_skip("zsh", "the zsh completion's syntax check") {
        check_with("zsh", &["-n"], &ws.write("_hvmigrate", &zsh.stdout));
    }
    if tool_or_skip("fish", "the fish completion's syntax check") {
        check_with("fish", &["--no-execute"], &ws.write("hvmigrate.fish", &fish.stdout));
    }
}

#[test]
fn an_unknown_shell_is_refused_with_the_choices() {
    let ws = Workspace::empty();
    let out = ws.command(&["completions", "powershell"]).expect_code(2);
    out.stderr_has("possible values: bash, zsh, fish");
    assert!(out.stdout.is_empty(), "{}", out.report());
}

#[test]
fn man_prints_hvmigrate_1_with_every_command() {
    let ws = Workspace::empty();
    let out = ws.command(&["man"]).expect_code(0);
    out.stdout_has(".TH hvmigrate 1").stdout_has(&format!("commit {}", hvmigrate::BUILD_COMMIT));
    let page = ws.write("hvmigrate.1", &out.stdout);
    if tool_or_skip("man", "rendering hvmigrate(1)") {
        let rendered = render(&page);
        for command in ["check-config", "run", "completions", "man", "hypervisors-file"] {
            assert!(rendered.contains(command), "hvmigrate(1) lacks {command}:\n{rendered}");
        }
        assert!(rendered.contains("pre-reinstall"), "the steps of --help are in the page:\n{rendered}");
    }
}

#[test]
fn man_dir_writes_one_page_per_command_that_man_renders() {
    let ws = Workspace::empty();
    let out = ws.command(&["man", "--dir", "pages/man1"]).expect_code(0);
    let files: Vec<String> = ws.files().into_iter().filter(|file| file.starts_with("pages/man1/")).collect();
    for page in [
        "hvmigrate.1",
        "hvmigrate-check-config.1",
        "hvmigrate-run.1",
        "hvmigrate-lab.1",
        "hvmigrate-lab-serve.1",
        "hvmigrate-scc-upload.1",
        "hvmigrate-vm-exec.1",
        "hvmigrate-completions.1",
        "hvmigrate-man.1",
    ] {
        assert!(files.contains(&format!("pages/man1/{page}")), "{page} missing: {files:?}\n{}", out.report());
    }
    assert!(!files.iter().any(|file| file.contains("help")), "no page for clap's help command: {files:?}");
    // One line per page written, naming it.
    assert_eq!(out.stdout.lines().count(), files.len(), "{}", out.report());
    out.stdout_has("pages/man1/hvmigrate-run.1");

    if tool_or_skip("man", "rendering the pages") {
        let run = render(&ws.file("pages/man1/hvmigrate-run.1"));
        assert!(run.contains("--step") && run.contains("--dry-run"), "hvmigrate-run(1):\n{run}");
        let serve = render(&ws.file("pages/man1/hvmigrate-lab-serve.1"));
        assert!(serve.contains("--port-base"), "hvmigrate-lab-serve(1):\n{serve}");
    }

    // Again: the same pages, replaced; JSON names them too.
    let again = ws.command(&["--output", "json", "man", "--dir", "pages/man1"]).expect_code(0);
    let json: serde_json::Value =
        serde_json::from_str(&again.stdout).unwrap_or_else(|err| panic!("{err}\n{}", again.report()));
    assert_eq!(json["written"].as_array().map(Vec::len), Some(files.len()), "{}", again.report());
}

#[test]
fn man_dir_that_is_a_file_is_refused_and_left_alone() {
    let ws = Workspace::empty();
    ws.write("pages", "not a folder");
    let out = ws.command(&["man", "--dir", "pages"]).expect_code(2);
    out.stderr_has("pages: --dir must be a folder");
    assert_eq!(std::fs::read_to_string(ws.file("pages")).unwrap(), "not a folder", "{}", out.report());
    assert_eq!(ws.files(), ["pages"], "{}", out.report());
}

/// The page as man(1) shows it, with groff's warnings turned on: any warning fails.
fn render(page: &Path) -> String {
    let output = Command::new("man")
        .env("MANWIDTH", "100")
        .env("LC_ALL", "C")
        .args(["--warnings", "-P", "cat", "-l"])
        .arg(page)
        .output()
        .expect("man runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "man -l {} ({})\n--- stderr\n{stderr}--- rendered\n{stdout}",
        page.display(),
        output.status
    );
    stdout
}
