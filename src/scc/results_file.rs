//! The results file: what `scc collect` found, saved so that another machine
//! (one that can reach SCC) can upload it. It names every host and its VMs,
//! so it is kept private like the collector's: the user's own, mode 0600.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::collect::HostResult;
use crate::config::input::{check_yaml_expansion_at, read_capped_at};
use crate::error::{Error, InputProblem, Result};
use crate::fs_security;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultsFile {
    /// When the collection ended (UTC, RFC 3339).
    pub collected_at: String,
    pub hosts: Vec<HostResult>,
}

/// Thousands of hosts with dozens of VMs each fit well within these.
const MAX_RESULTS_BYTES: u64 = 64 << 20;
const MAX_RESULTS_VALUES: usize = 5_000_000;

const HEADER: &str =
    "# SCC hypervisor details collected by hvmigrate; upload with: hvmigrate scc upload --input <this file>\n";

impl ResultsFile {
    pub fn new(hosts: Vec<HostResult>) -> Self {
        ResultsFile {
            collected_at: jiff::Timestamp::now().round(jiff::Unit::Second).unwrap_or_default().to_string(),
            hosts,
        }
    }

    /// Writes the file with mode 0600; an existing file must be the user's.
    pub fn save(&self, path: &Path) -> Result<()> {
        // Saving through a planted link would replace the file it points to.
        fs_security::refuse_symlink(path)?;
        if path.exists() {
            check_private_file(path).or_else(|err| if is_mode_problem(path) { Ok(()) } else { Err(err) })?;
        }
        let yaml = serde_yaml_ng::to_string(self).expect("results serialize");
        fs_security::write_private_file(path, format!("{HEADER}{yaml}").as_bytes())?;
        check_private_file(path)
    }

    /// Reads a file written by [`Self::save`], refusing one that others can read or change.
    pub fn load(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(Error::input(InputProblem::new(path, "no such results file")));
        }
        check_private_file(path)?;
        let bytes = read_capped_at(path, "the results file", MAX_RESULTS_BYTES).map_err(Error::input)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::input(InputProblem::new(path, "the results file is not valid UTF-8")))?;
        check_yaml_expansion_at(path, "the results file", &text, MAX_RESULTS_VALUES).map_err(Error::input)?;
        let results: ResultsFile = serde_yaml_ng::from_str(&text).map_err(|err| {
            let mut problem = InputProblem::new(path, format!("not a results file: {err}"));
            if let Some(location) = err.location() {
                problem.line = Some(location.line());
                problem.column = Some(location.column());
            }
            Error::input(problem)
        })?;
        let problems: Vec<InputProblem> = results
            .hosts
            .iter()
            .filter(|host| host.valid && host.details.is_none())
            .map(|host| InputProblem::new(path, format!("{}: marked valid but has no details", host.host)))
            .collect();
        if !problems.is_empty() {
            return Err(Error::Input(problems));
        }
        Ok(results)
    }
}

/// The collector's rule for its results: owned by the user, mode 0600 (or
/// the stricter 0400).
pub fn check_private_file(path: &Path) -> Result<()> {
    fs_security::check_private_file(path, "the hosts' details")
}

/// An existing file of ours with a loose mode is fixed by saving over it.
fn is_mode_problem(path: &Path) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    std::fs::metadata(path).is_ok_and(|meta| meta.uid() == unsafe { libc::geteuid() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::scc::{GuestProperties, GuestSystem, HostProperties, VirtualizationHost};
    use std::os::unix::fs::PermissionsExt;

    fn sample() -> ResultsFile {
        let details = VirtualizationHost {
            identifier: "6a1e2b3c-4d5e-4f60-8172-8394a5b6c7d8".into(),
            group_name: "lab".into(),
            properties: HostProperties {
                name: "hv01.lab.example.org".into(),
                arch: "x86_64".into(),
                cores: 32,
                sockets: 2,
                threads: 64,
                ram_mb: Some(515_000),
                hypervisor_type: "qemu".into(),
            },
            systems: vec![GuestSystem {
                uuid: "2f0c6f3e-8d4b-4a0e-9d6e-1a2b3c4d5e6f".into(),
                properties: GuestProperties { vm_name: "vm: one".into(), vm_state: "shut off".into() },
            }],
        };
        ResultsFile::new(vec![
            HostResult::valid("hv01.lab.example.org", details),
            HostResult::invalid("hv02.lab.example.org", "root@hv02.lab.example.org: connection refused"),
        ])
    }

    #[test]
    fn scc_results_round_trip_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.yaml");
        let results = sample();
        results.save(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(ResultsFile::load(&path).unwrap(), results);
        // A loose file of ours is tightened by saving over it.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        results.save(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn scc_results_refused_when_others_can_read_or_own_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.yaml");
        sample().save(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = ResultsFile::load(&path).unwrap_err();
        assert!(matches!(err, Error::Refused(_)) && err.to_string().contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        // SAFETY: no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
            let err = ResultsFile::load(&path).unwrap_err();
            assert!(err.to_string().contains("not by you"), "{err}");
            let err = sample().save(&path).unwrap_err();
            assert!(err.to_string().contains("not by you"), "{err}");
        }
    }

    #[test]
    fn scc_results_bad_content_is_an_input_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.yaml");
        let write = |text: &str| fs_security::write_private_file(&path, text.as_bytes()).unwrap();
        write("collected_at: x\nhosts:\n  - host: hv01\n    valid: true\n");
        let err = ResultsFile::load(&path).unwrap_err().to_string();
        assert!(err.contains("hv01: marked valid but has no details"), "{err}");
        write("hosts: [\n");
        assert!(matches!(ResultsFile::load(&path), Err(Error::Input(_))));
        assert!(matches!(ResultsFile::load(&dir.path().join("missing.yaml")), Err(Error::Input(_))));
    }
}
