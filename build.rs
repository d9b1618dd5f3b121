//! The build commit `hvmigrate serve` reports on `/version`: `git rev-parse`
//! of the source tree, else `HVMIGRATE_BUILD_COMMIT` (a build from a source
//! archive, where packaging knows the commit), else `unknown`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=HVMIGRATE_BUILD_COMMIT");
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .map(|text| text.trim().to_owned())
            .filter(|text| !text.is_empty())
    };
    let commit = git(&["rev-parse", "HEAD"])
        .or_else(|| std::env::var("HVMIGRATE_BUILD_COMMIT").ok().filter(|value| !value.trim().is_empty()))
        .unwrap_or_else(|| "unknown".to_owned());
    // Built again when the checked-out commit moves.
    if let Some(head) = git(&["rev-parse", "--path-format=absolute", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={head}");
    }
    if let Some(refs) = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]) {
        println!("cargo:rerun-if-changed={refs}/refs/heads");
        println!("cargo:rerun-if-changed={refs}/packed-refs");
    }
    println!("cargo:rustc-env=HVMIGRATE_BUILD_COMMIT={commit}");
}
