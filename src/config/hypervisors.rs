//! The hypervisors file: one `<fqdn> <JIRA-KEY>` per line, optionally
//! followed by `nova_host=<name>` and `nova_hypervisor=<name>`: Nova's
//! names of that host when `openstack.compute_host_names` cannot tell them.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, InputProblem, Result};

/// A host name valid under RFC 1123, stored in lower case.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct HostName(String);

impl HostName {
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let why = if text.len() > 253 {
            Some("is longer than 253 characters".to_owned())
        } else {
            text.split('.').find_map(|label| {
                if label.is_empty() {
                    Some("has an empty label".to_owned())
                } else if label.len() > 63 {
                    Some(format!("has a label longer than 63 characters ({label})"))
                } else if label.starts_with('-') || label.ends_with('-') {
                    Some(format!("has a label that starts or ends with '-' ({label})"))
                } else {
                    label
                        .chars()
                        .find(|c| !c.is_ascii_alphanumeric() && *c != '-')
                        .map(|bad| format!("contains '{bad}'"))
                }
            })
        };
        match why {
            Some(why) => Err(format!("invalid host name '{text}': it {why} (RFC 1123)")),
            None => Ok(HostName(text.to_ascii_lowercase())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first label, as operators say it ("hv01").
    pub fn short(&self) -> &str {
        self.0.split('.').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Jira issue key such as `MH-182`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct JiraKey(String);

impl JiraKey {
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let valid = text.split_once('-').is_some_and(|(project, number)| {
            let mut chars = project.chars();
            chars.next().is_some_and(|c| c.is_ascii_uppercase())
                && project.len() >= 2
                && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                && !number.is_empty()
                && !number.starts_with('0')
                && number.chars().all(|c| c.is_ascii_digit())
        });
        if valid {
            Ok(JiraKey(text.to_owned()))
        } else {
            Err(format!("invalid Jira key '{text}': expected a project key and a number, like PROJ-123"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn project(&self) -> &str {
        self.0.split('-').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for JiraKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One hypervisor of the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hypervisor {
    pub host: HostName,
    pub key: Option<JiraKey>,
    /// 1-based line in the file.
    pub line: usize,
    /// Nova's names of the host, when the line gives them.
    pub nova: NovaNames,
}

/// Nova's names of a host, given on its line (`nova_host=`, `nova_hypervisor=`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NovaNames {
    /// Its compute service host (`service.host`, `OS-EXT-SRV-ATTR:host`).
    pub service_host: Option<String>,
    /// Its `hypervisor_hostname`.
    pub hypervisor_hostname: Option<String>,
}

impl NovaNames {
    pub fn is_empty(&self) -> bool {
        self.service_host.is_none() && self.hypervisor_hostname.is_none()
    }
}

/// The options a line may carry after the host and key.
const LINE_OPTIONS: [&str; 2] = ["nova_host", "nova_hypervisor"];

/// Whether every line must carry a Jira key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyMode {
    Required,
    /// `create-tickets` fills in the keys that are missing.
    Optional,
}

/// The parsed list, in file order.
#[derive(Clone, Debug)]
pub struct HypervisorList {
    pub path: PathBuf,
    pub hypervisors: Vec<Hypervisor>,
    /// The file's bytes as read: `create-tickets` writes its keys only if the
    /// file still holds exactly these, and backs them up.
    pub original: Vec<u8>,
}

impl HypervisorList {
    pub fn load(path: &Path, mode: KeyMode) -> Result<Self> {
        let bytes = crate::config::input::read_capped(path, "the hypervisors file").map_err(Error::input)?;
        Self::parse(path, &bytes, mode)
    }

    pub fn parse(path: &Path, bytes: &[u8], mode: KeyMode) -> Result<Self> {
        let text = std::str::from_utf8(bytes).map_err(|err| {
            let line = 1 + bytes[..err.valid_up_to()].iter().filter(|b| **b == b'\n').count();
            Error::input(InputProblem::at_line(path, line, "not valid UTF-8"))
        })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);

        let mut problems = Vec::new();
        let mut hypervisors: Vec<Hypervisor> = Vec::new();
        let mut host_lines: HashMap<HostName, usize> = HashMap::new();
        let mut key_lines: HashMap<JiraKey, (usize, HostName)> = HashMap::new();

        for (index, raw) in text.split('\n').enumerate() {
            let line = index + 1;
            let content = raw.strip_suffix('\r').unwrap_or(raw);
            let content = content.split_once('#').map_or(content, |(before, _)| before);
            let words: Vec<&str> = content.split_whitespace().collect();
            // `name=value` words are options; the others are the columns.
            let (options, columns): (Vec<&str>, Vec<&str>) = words.iter().partition(|word| word.contains('='));
            let mut nova = NovaNames::default();
            let mut bad_option = false;
            for option in options {
                let (name, value) = option.split_once('=').unwrap_or_default();
                let slot = match name {
                    "nova_host" => &mut nova.service_host,
                    "nova_hypervisor" => &mut nova.hypervisor_hostname,
                    _ => {
                        problems.push(InputProblem::at_line(
                            path,
                            line,
                            format!("unknown option '{name}' (options: {})", LINE_OPTIONS.join(", ")),
                        ));
                        bad_option = true;
                        continue;
                    }
                };
                if slot.is_some() {
                    problems.push(InputProblem::at_line(path, line, format!("option '{name}' given twice")));
                    bad_option = true;
                    continue;
                }
                match HostName::parse(value) {
                    Ok(value) => *slot = Some(value.as_str().to_owned()),
                    Err(why) => {
                        problems.push(InputProblem::at_line(path, line, format!("{name}: {why}")));
                        bad_option = true;
                    }
                }
            }
            if bad_option {
                continue;
            }
            let (host, key) = match (columns.as_slice(), mode) {
                ([], _) => continue,
                ([host, key], _) => (*host, Some(*key)),
                ([host], KeyMode::Optional) => (*host, None),
                _ => {
                    let expected = match mode {
                        KeyMode::Required => "2 columns '<fqdn> <JIRA-KEY>' (then options name=value)",
                        KeyMode::Optional => "1 or 2 columns '<fqdn> [JIRA-KEY]' (then options name=value)",
                    };
                    problems.push(InputProblem::at_line(
                        path,
                        line,
                        format!("expected {expected}, found {}", columns.len()),
                    ));
                    continue;
                }
            };
            let host = match HostName::parse(host) {
                Ok(host) => host,
                Err(why) => {
                    problems.push(InputProblem::at_line(path, line, why));
                    continue;
                }
            };
            let key = match key.map(JiraKey::parse).transpose() {
                Ok(key) => key,
                Err(why) => {
                    problems.push(InputProblem::at_line(path, line, why));
                    continue;
                }
            };
            if let Some(first) = host_lines.get(&host) {
                problems.push(InputProblem::at_line(
                    path,
                    line,
                    format!("host {host} is listed twice (lines {first} and {line})"),
                ));
                continue;
            }
            if let Some(key) = &key {
                if let Some((first, other)) = key_lines.get(key) {
                    problems.push(InputProblem::at_line(
                        path,
                        line,
                        format!(
                            "Jira key {key} is used for two hosts: {other} (line {first}) and {host} (line {line})"
                        ),
                    ));
                    continue;
                }
                key_lines.insert(key.clone(), (line, host.clone()));
            }
            host_lines.insert(host.clone(), line);
            hypervisors.push(Hypervisor { host, key, line, nova });
        }

        if !problems.is_empty() {
            return Err(Error::Input(problems));
        }
        if hypervisors.is_empty() {
            return Err(Error::input(InputProblem::new(
                path,
                "no hypervisors listed (every line is blank or a comment)",
            )));
        }
        Ok(HypervisorList { path: path.to_owned(), hypervisors, original: bytes.to_vec() })
    }

    pub fn len(&self) -> usize {
        self.hypervisors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hypervisors.is_empty()
    }
}

/// "No such file or directory" without the "(os error 2)" noise.
pub(crate) fn io_reason(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HypervisorList> {
        HypervisorList::parse(Path::new("hv.txt"), text.as_bytes(), KeyMode::Required)
    }

    fn problems(text: &str) -> Vec<String> {
        match parse(text) {
            Err(Error::Input(problems)) => problems.iter().map(ToString::to_string).collect(),
            other => panic!("expected input problems, got {other:?}"),
        }
    }

    #[test]
    fn comments_blank_lines_crlf_and_bom() {
        let list =
            parse("\u{feff}# fleet\r\n\r\nHV01.example.org MH-1 # first\r\n  hv02.example.org\tMH-22\r\n").unwrap();
        let hosts: Vec<_> =
            list.hypervisors.iter().map(|h| (h.host.as_str(), h.key.as_ref().unwrap().as_str(), h.line)).collect();
        assert_eq!(hosts, [("hv01.example.org", "MH-1", 3), ("hv02.example.org", "MH-22", 4)]);
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let found = problems("a.example.org MH-1\nb.example.org\nc_d.example.org MH-3\ne.example.org mh-4\na.example.org MH-5\nf.example.org MH-1\n");
        assert_eq!(
            found,
            [
                "hv.txt:2: expected 2 columns '<fqdn> <JIRA-KEY>' (then options name=value), found 1",
                "hv.txt:3: invalid host name 'c_d.example.org': it contains '_' (RFC 1123)",
                "hv.txt:4: invalid Jira key 'mh-4': expected a project key and a number, like PROJ-123",
                "hv.txt:5: host a.example.org is listed twice (lines 1 and 5)",
                "hv.txt:6: Jira key MH-1 is used for two hosts: a.example.org (line 1) and f.example.org (line 6)",
            ]
        );
    }

    #[test]
    fn nova_names_per_line() {
        let list =
            parse("a.example.org MH-1 nova_host=compute-a nova_hypervisor=a-bmc.example.org\nb.example.org MH-2\n")
                .unwrap();
        let a = &list.hypervisors[0].nova;
        assert_eq!(a.service_host.as_deref(), Some("compute-a"));
        assert_eq!(a.hypervisor_hostname.as_deref(), Some("a-bmc.example.org"));
        assert!(list.hypervisors[1].nova.is_empty(), "old lines stay valid");
        let found = problems("a.example.org MH-1 nova=x\nb.example.org MH-2 nova_host=bad_name\nc.example.org MH-3 nova_host=c nova_host=d\n");
        assert_eq!(
            found,
            [
                "hv.txt:1: unknown option 'nova' (options: nova_host, nova_hypervisor)",
                "hv.txt:2: nova_host: invalid host name 'bad_name': it contains '_' (RFC 1123)",
                "hv.txt:3: option 'nova_host' given twice",
            ]
        );
        let optional =
            HypervisorList::parse(Path::new("hv.txt"), b"a.example.org nova_host=a\n", KeyMode::Optional).unwrap();
        assert_eq!(
            (optional.hypervisors[0].key.as_ref(), optional.hypervisors[0].nova.service_host.as_deref()),
            (None, Some("a"))
        );
    }

    #[test]
    fn host_names() {
        assert!(HostName::parse("hv-rtx4000-26.nubes.rl.ac.uk").is_ok());
        assert!(HostName::parse("hv01").is_ok());
        for bad in ["-hv.example.org", "hv-.example.org", "hv..example.org", "hv.example.org.", &"a".repeat(64)] {
            assert!(HostName::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn jira_keys() {
        for good in ["MH-1", "OPS-24", "A1_B-999"] {
            assert!(JiraKey::parse(good).is_ok(), "{good} refused");
        }
        for bad in ["MH", "M-1", "MH-0", "MH-01", "1MH-2", "MH-1a", "-1"] {
            assert!(JiraKey::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn optional_keys_and_empty_list() {
        let list = HypervisorList::parse(Path::new("hv.txt"), b"hv01.example.org\n", KeyMode::Optional).unwrap();
        assert_eq!(list.hypervisors[0].key, None);
        assert_eq!(problems("# nothing\n\n"), ["hv.txt: no hypervisors listed (every line is blank or a comment)"]);
    }

    #[test]
    fn not_utf8_names_the_line() {
        let err = HypervisorList::parse(Path::new("hv.txt"), b"a.example.org MH-1\nb\xff MH-2\n", KeyMode::Required)
            .unwrap_err();
        assert_eq!(err.to_string(), "hv.txt:2: not valid UTF-8");
    }
}
