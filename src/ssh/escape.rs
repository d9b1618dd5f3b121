//! POSIX shell quoting: the remote side runs every command through the
//! user's login shell, so each word must reach the program unchanged.

/// Quotes one word for a POSIX shell. Plain words are left readable.
pub fn quote(word: &str) -> String {
    let plain =
        !word.is_empty() && word.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"_-.,:/@%+=".contains(&byte));
    if plain {
        return word.to_owned();
    }
    // Inside single quotes nothing is special except the quote itself,
    // which is closed, escaped and reopened.
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Joins program and arguments into one command line, each word quoted.
pub fn command_line<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    words.into_iter().map(quote).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_stay_readable() {
        assert_eq!(quote("hv01.example.org"), "hv01.example.org");
        assert_eq!(quote("--hostname=hv01"), "--hostname=hv01");
        assert_eq!(quote("/dev/nvme0n1"), "/dev/nvme0n1");
    }

    #[test]
    fn special_words_are_quoted() {
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("$(reboot)"), "'$(reboot)'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("a;b|c&d>e"), "'a;b|c&d>e'");
        assert_eq!(quote("~root"), "'~root'");
        assert_eq!(quote("*"), "'*'");
        assert_eq!(quote("line\nbreak"), "'line\nbreak'");
    }

    #[test]
    fn joins_a_command_line() {
        assert_eq!(command_line(["grep", "-c", "it's here", "/etc/fstab"]), r"grep -c 'it'\''s here' /etc/fstab");
    }

    #[test]
    fn quoted_words_survive_a_real_shell() {
        let tricky = ["a b", "it's", "$HOME", "`id`", "\\", "\"", "x\ny", "", "*", "--"];
        let line = command_line(std::iter::once("printf").chain(std::iter::once("[%s]")).chain(tricky));
        let output = std::process::Command::new("sh").arg("-c").arg(&line).output().expect("sh runs");
        let expected: String = tricky.iter().map(|word| format!("[{word}]")).collect();
        assert_eq!(String::from_utf8_lossy(&output.stdout), expected);
    }
}
