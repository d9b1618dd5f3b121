//! Secrets out of text that is posted or journaled: Ansible's `fatal:`
//! paragraphs print module arguments and variables, some of them passwords.
//! The value of every key that looks secret is replaced by `***`.

/// Parts of a key name that mark its value as secret (case-insensitive).
const SECRET_WORDS: [&str; 6] = ["password", "passwd", "token", "secret", "key", "credential"];

/// What a secret value becomes.
const MASK: &str = "***";

/// `text` with the values of secret-looking keys masked, in the forms Ansible
/// prints them: `"db_password": "x"` (JSON), `password=x`, `password: x`,
/// `'token': 'x'` (Python repr), and the password of `scheme://user:password@host`.
pub fn secrets(text: &str) -> String {
    let masked_urls = url_passwords(text);
    let bytes = masked_urls.as_bytes();
    let mut out = String::with_capacity(masked_urls.len());
    let mut at = 0;
    while at < bytes.len() {
        if !is_key_byte(bytes[at]) || (at > 0 && is_key_byte(bytes[at - 1])) {
            let next = next_char(&masked_urls, at);
            out.push_str(&masked_urls[at..next]);
            at = next;
            continue;
        }
        let key_end = at + bytes[at..].iter().take_while(|b| is_key_byte(**b)).count();
        let key = &masked_urls[at..key_end];
        out.push_str(key);
        at = key_end;
        if !looks_secret(key) {
            continue;
        }
        if let Some((separator_end, value_start, value_end)) = value_after(bytes, key_end) {
            out.push_str(&masked_urls[key_end..separator_end]);
            out.push_str(&masked_urls[separator_end..value_start]);
            out.push_str(MASK);
            at = value_end;
        }
    }
    out
}

fn is_key_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' || byte == b'.'
}

fn next_char(text: &str, at: usize) -> usize {
    at + text[at..].chars().next().map_or(1, char::len_utf8)
}

fn looks_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|word| key.contains(word))
}

/// After a key at `from`: an optional closing quote, `=` or `:`, blanks, then
/// a value. Returns where the separator ends, where the value's text starts
/// (after an opening quote) and where it ends (before the closing quote).
/// A nested object or list is not a value: its own keys are looked at.
fn value_after(bytes: &[u8], from: usize) -> Option<(usize, usize, usize)> {
    let mut at = from;
    if matches!(bytes.get(at), Some(b'"' | b'\'')) {
        at += 1;
    }
    while bytes.get(at) == Some(&b' ') {
        at += 1;
    }
    match bytes.get(at) {
        Some(b'=') => at += 1,
        // `key: value` but not `scheme://` or `a::b`.
        Some(b':') if !matches!(bytes.get(at + 1), Some(b':' | b'/')) => at += 1,
        _ => return None,
    }
    while bytes.get(at) == Some(&b' ') {
        at += 1;
    }
    let separator_end = at;
    match bytes.get(at)? {
        b'{' | b'[' | b'\n' | b'\r' => None,
        quote @ (b'"' | b'\'') => {
            let start = at + 1;
            let mut end = start;
            while end < bytes.len() && bytes[end] != *quote && bytes[end] != b'\n' {
                end += if bytes[end] == b'\\' { 2 } else { 1 };
            }
            Some((separator_end, start, end.min(bytes.len())))
        }
        _ => {
            let end = at
                + bytes[at..]
                    .iter()
                    .take_while(|b| !b.is_ascii_whitespace() && !matches!(b, b',' | b'}' | b']' | b';' | b')'))
                    .count();
            (end > at).then_some((separator_end, at, end))
        }
    }
}

/// `scheme://user:password@host` → `scheme://user:***@host`.
fn url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(found) = rest.find("://") {
        let (before, after) = rest.split_at(found + 3);
        out.push_str(before);
        let authority_end =
            after.find(|c: char| c.is_whitespace() || matches!(c, '/' | '"' | '\'')).unwrap_or(after.len());
        let authority = &after[..authority_end];
        match authority.rfind('@').and_then(|at| authority[..at].find(':').map(|colon| (colon, at))) {
            Some((colon, at)) => {
                out.push_str(&authority[..=colon]);
                out.push_str(MASK);
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[authority_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_python_and_plain_forms_are_masked() {
        let fatal = r#"fatal: [hv01]: FAILED! => {"changed": false, "msg": "login failed", "invocation": {"module_args": {"login_password": "hunter2", "login_user": "root", "api_token": "tok-123"}}}"#;
        let masked = secrets(fatal);
        assert!(!masked.contains("hunter2") && !masked.contains("tok-123"), "{masked}");
        assert!(masked.contains(r#""login_password": "***""#), "{masked}");
        assert!(masked.contains(r#""login_user": "root""#), "{masked}");
        assert_eq!(secrets("{'vault_secret': 's3cr3t', 'x': 1}"), "{'vault_secret': '***', 'x': 1}");
        assert_eq!(secrets("mysql -u root --password=hunter2 db"), "mysql -u root --password=*** db");
        assert_eq!(secrets("ssh_key: AAAAC3Nza x"), "ssh_key: *** x");
        assert_eq!(secrets(r#""db_password": "a\"b", "n": 2"#), r#""db_password": "***", "n": 2"#);
    }

    #[test]
    fn url_passwords_are_masked_and_plain_text_stays() {
        assert_eq!(
            secrets("GET https://admin:pw@repo.example.org/x failed"),
            "GET https://admin:***@repo.example.org/x failed"
        );
        let plain = "fatal: [hv01]: FAILED! => {\"changed\": false, \"msg\": \"Failed to set SELinux state\"}";
        assert_eq!(secrets(plain), plain);
        assert_eq!(secrets("keys: {\"a\": 1}"), "keys: {\"a\": 1}");
        assert_eq!(secrets("é password=ü x"), "é password=*** x");
    }
}
