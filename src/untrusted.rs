//! Text from outside (service error bodies, remote output, names chosen by
//! tenants) made safe to show: control characters become visible escapes,
//! so an ESC sequence can neither clear the operator's screen nor forge rows.

use std::borrow::Cow;

/// `text` with every control character except newline and tab replaced by a
/// visible escape (`\x1b`, `\r`, `\u{202e}`…). Unchanged text is not copied.
pub fn visible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if needs_escape(c) {
            push_escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// As [`visible`], for a place where one line is expected: newline and tab
/// are escaped too.
pub fn visible_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if needs_escape(c) || c == '\n' || c == '\t' {
            push_escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    out
}

/// At most `limit` bytes of `text`: its first and last halves, with a line
/// in between saying how much was cut. Cuts fall on character boundaries.
pub fn head_and_tail(text: &str, limit: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= limit {
        return Cow::Borrowed(text);
    }
    let half = limit / 2;
    let mut head_end = half;
    while !text.is_char_boundary(head_end) {
        head_end -= 1;
    }
    let mut tail_start = text.len() - half;
    while !text.is_char_boundary(tail_start) {
        tail_start += 1;
    }
    let cut = tail_start - head_end;
    Cow::Owned(format!("{}\n[… {cut} bytes cut here …]\n{}", &text[..head_end], &text[tail_start..]))
}

fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || is_bidi_control(c)
}

/// Direction overrides and isolates reorder what the terminal shows.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

fn push_escape(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
        c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_made_visible() {
        assert_eq!(visible("\x1b[2J\x1b[HOK"), "\\x1b[2J\\x1b[HOK");
        assert_eq!(visible("a\rb\u{7}\u{9b}c"), "a\\rb\\x07\\x9bc");
        assert_eq!(visible("evil\u{202e}txt"), "evil\\u{202e}txt");
    }

    #[test]
    fn long_text_keeps_head_and_tail() {
        assert_eq!(head_and_tail("short", 10), "short");
        assert_eq!(head_and_tail("0123456789abcdefghij", 10), "01234\n[… 10 bytes cut here …]\nfghij");
        assert_eq!(head_and_tail("ééééé", 4), "é\n[… 6 bytes cut here …]\né");
    }

    #[test]
    fn newlines_tabs_and_plain_text_stay() {
        assert!(matches!(visible("line 1\n\tline 2 — é"), Cow::Borrowed("line 1\n\tline 2 — é")));
        assert_eq!(visible_line("a\nb\tc\x1b"), "a\\nb\\tc\\x1b");
    }
}
