//! What can go wrong reaching a host. A command that runs and exits non-zero
//! is not here: its status is data in [`super::CommandOutput`].

use std::path::PathBuf;
use std::time::Duration;

use super::Target;

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The host presented a key that differs from the one recorded for it.
    #[error(
        "{target}: the host key does not match the known_hosts file {}; refusing to connect \
         (check the host, then fix the entry)",
        known_hosts.display()
    )]
    HostKeyMismatch { target: Target, known_hosts: PathBuf },
    /// Strict checking is on and the host has no entry at all.
    #[error("{target}: the host is not in the known_hosts file {}; refusing to connect", known_hosts.display())]
    UnknownHostKey { target: Target, known_hosts: PathBuf },
    /// The server refused every key offered for this user.
    #[error("{target}: authentication refused: {detail}")]
    AuthenticationRefused { target: Target, detail: String },
    /// No connection could be made (DNS, refused, unreachable, connect timeout…).
    #[error("{target}: cannot connect: {detail}")]
    Connect { target: Target, detail: String },
    /// The command did not finish in time; its channel was closed.
    #[error("{target}: {action} did not finish within {}s", after.as_secs())]
    Timeout { target: Target, action: String, after: Duration },
    /// The connection broke, or the remote process was killed by a signal
    /// (the ssh multiplexing protocol cannot tell the two apart).
    #[error("{target}: {action}: the connection was lost or the remote process was killed")]
    Disconnected { target: Target, action: String },
    /// A local failure around the command (pipes, the control socket).
    #[error("{target}: {action}: {detail}")]
    Local { target: Target, action: String, detail: String },
    /// The work's fence refused the command (see [`crate::fence`]); nothing ran.
    #[error("{target}: {action} not run: {why}")]
    Fenced { target: Target, action: String, why: String },
}

impl SshError {
    pub fn target(&self) -> &Target {
        match self {
            SshError::HostKeyMismatch { target, .. }
            | SshError::UnknownHostKey { target, .. }
            | SshError::AuthenticationRefused { target, .. }
            | SshError::Connect { target, .. }
            | SshError::Timeout { target, .. }
            | SshError::Disconnected { target, .. }
            | SshError::Local { target, .. }
            | SshError::Fenced { target, .. } => target,
        }
    }

    /// Turns the text ssh wrote when the master connection failed into a typed error.
    pub(crate) fn from_connect_log(target: &Target, known_hosts: PathBuf, log: &str) -> Self {
        let target = target.clone();
        if log.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") || log.contains("Host key for ") {
            return SshError::HostKeyMismatch { target, known_hosts };
        }
        if log.contains("host key is known for") || log.contains("Host key verification failed") {
            return SshError::UnknownHostKey { target, known_hosts };
        }
        let detail = last_meaningful_line(log);
        if log.contains("Permission denied") {
            return SshError::AuthenticationRefused { target, detail };
        }
        SshError::Connect { target, detail }
    }
}

/// The last line of ssh's log that says something, without the warning banners.
fn last_meaningful_line(log: &str) -> String {
    log.lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty() && !line.starts_with('@') && !line.starts_with("Warning: Permanently added"))
        .map(|line| line.strip_prefix("ssh: ").unwrap_or(line).to_owned())
        .unwrap_or_else(|| "ssh exited without saying why".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(log: &str) -> SshError {
        SshError::from_connect_log(&Target::new("root", "hv01.example.org"), "/tmp/kh".into(), log)
    }

    #[test]
    fn changed_host_key_names_host_and_file() {
        let log = "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n\
            @    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n\
            @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n\
            IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\r\n\
            Offending ED25519 key in /tmp/kh:1\r\n\
            Host key for [127.0.0.1]:2222 has changed and you have requested strict checking.\r\n\
            Host key verification failed.\r\n";
        let err = classify(log);
        assert!(matches!(err, SshError::HostKeyMismatch { .. }));
        let message = err.to_string();
        assert!(message.contains("root@hv01.example.org"), "{message}");
        assert!(message.contains("does not match the known_hosts file /tmp/kh"), "{message}");
    }

    #[test]
    fn unknown_host_and_refused_key() {
        let unknown = "No ED25519 host key is known for hv01.example.org and you have requested strict checking.\r\n\
            Host key verification failed.\r\n";
        assert!(matches!(classify(unknown), SshError::UnknownHostKey { .. }));
        let refused = "root@hv01.example.org: Permission denied (publickey,gssapi-keyex).\r\n";
        match classify(refused) {
            SshError::AuthenticationRefused { detail, .. } => assert!(detail.contains("Permission denied")),
            other => panic!("{other:?}"),
        }
        let refused_conn = "ssh: connect to host hv01.example.org port 22: Connection refused\r\n";
        match classify(refused_conn) {
            SshError::Connect { detail, .. } => {
                assert_eq!(detail, "connect to host hv01.example.org port 22: Connection refused")
            }
            other => panic!("{other:?}"),
        }
    }
}
