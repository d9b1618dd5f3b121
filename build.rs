//! Records the commit the binary is built from, for `hvmigrate --version`
//! and `hvmigrate::BUILD_COMMIT`: `git rev-parse --short HEAD` in a clone;
//! outside one (a source tarball), the `HVMIGRATE_BUILD_COMMIT` variable;
//! else "unknown".

use std::path::{Path, PathBuf};
use std::process::Command;

const OVERRIDE: &str = "HVMIGRATE_BUILD_COMMIT";

fn main() {
    println!("cargo:rerun-if-env-changed={OVERRIDE}");
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let commit = match git(&manifest_dir, &["rev-parse", "--short", "HEAD"]) {
        Some(hash) => {
            rerun_when_head_moves(&manifest_dir);
            Some(hash)
        }
        None => std::env::var(OVERRIDE).ok(),
    };
    let commit = commit.map(|text| sanitized(&text)).filter(|text| !text.is_empty());
    println!("cargo:rustc-env={OVERRIDE}={}", commit.as_deref().unwrap_or("unknown"));
}

/// The output of a git command run in `dir`, trimmed; None when git is
/// missing, this is no clone, or the command fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git").current_dir(dir).args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// A new commit or checkout changes HEAD, the branch's ref or the packed
/// refs; only files that exist are named (a missing one would rerun this
/// script on every build).
fn rerun_when_head_moves(dir: &Path) {
    let mut files = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        files.push(branch);
    }
    for file in files {
        let Some(path) = git(dir, &["rev-parse", "--git-path", &file]) else { continue };
        let path = dir.join(path);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// A commit name is short and plain: anything else from the environment is
/// dropped, so that the version line stays one clean line.
fn sanitized(text: &str) -> String {
    text.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+')).take(40).collect()
}
