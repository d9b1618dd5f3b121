//! Text helpers of the simulated tools: a small regular-expression matcher
//! (the basic syntax `grep` and `awk` patterns use: `^ $ . * [...] \`),
//! `printf` formatting and human sizes.

/// A compiled pattern: a sequence of atoms, each maybe repeated with `*`.
#[derive(Debug)]
pub struct Pattern {
    atoms: Vec<(Atom, bool)>,
    anchored_start: bool,
    anchored_end: bool,
    ignore_case: bool,
}

#[derive(Debug)]
enum Atom {
    Char(char),
    Any,
    Class { negated: bool, items: Vec<(char, char)> },
}

impl Atom {
    fn matches(&self, c: char, ignore_case: bool) -> bool {
        let fold = |c: char| if ignore_case { c.to_ascii_lowercase() } else { c };
        match self {
            Atom::Char(wanted) => fold(*wanted) == fold(c),
            Atom::Any => true,
            Atom::Class { negated, items } => {
                let c = fold(c);
                items.iter().any(|(low, high)| (fold(*low)..=fold(*high)).contains(&c)) != *negated
            }
        }
    }
}

impl Pattern {
    /// Compiles a basic or extended regular expression (`+` and `?` are taken
    /// as repetitions too, which covers the common extended uses).
    pub fn new(pattern: &str, ignore_case: bool) -> Pattern {
        let mut chars: Vec<char> = pattern.chars().collect();
        let anchored_start = chars.first() == Some(&'^');
        if anchored_start {
            chars.remove(0);
        }
        let anchored_end = chars.last() == Some(&'$') && !(chars.len() >= 2 && chars[chars.len() - 2] == '\\');
        if anchored_end {
            chars.pop();
        }
        let mut atoms: Vec<(Atom, bool)> = Vec::new();
        let mut index = 0;
        while index < chars.len() {
            let atom = match chars[index] {
                '.' => Atom::Any,
                '\\' if index + 1 < chars.len() => {
                    index += 1;
                    Atom::Char(chars[index])
                }
                '[' => {
                    let mut items = Vec::new();
                    let mut cursor = index + 1;
                    let negated = chars.get(cursor) == Some(&'^');
                    if negated {
                        cursor += 1;
                    }
                    let mut first = true;
                    while cursor < chars.len() && (chars[cursor] != ']' || first) {
                        let low = chars[cursor];
                        if chars.get(cursor + 1) == Some(&'-') && chars.get(cursor + 2).is_some_and(|c| *c != ']') {
                            items.push((low, chars[cursor + 2]));
                            cursor += 3;
                        } else {
                            items.push((low, low));
                            cursor += 1;
                        }
                        first = false;
                    }
                    index = cursor;
                    Atom::Class { negated, items }
                }
                c => Atom::Char(c),
            };
            index += 1;
            let repeat = matches!(chars.get(index), Some('*'));
            if repeat {
                index += 1;
            }
            // `x+` is `xx*`, `x?` is close enough to `x*` for the patterns tools use.
            if matches!(chars.get(index), Some('+')) {
                index += 1;
                let again = match &atom {
                    Atom::Char(c) => Atom::Char(*c),
                    Atom::Any => Atom::Any,
                    Atom::Class { negated, items } => Atom::Class { negated: *negated, items: items.clone() },
                };
                atoms.push((atom, false));
                atoms.push((again, true));
                continue;
            }
            if matches!(chars.get(index), Some('?')) {
                index += 1;
                atoms.push((atom, true));
                continue;
            }
            atoms.push((atom, repeat));
        }
        Pattern { atoms, anchored_start, anchored_end, ignore_case }
    }

    pub fn is_match(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        if self.anchored_start {
            return self.match_here(0, &chars, 0);
        }
        (0..=chars.len()).any(|start| self.match_here(0, &chars, start))
    }

    fn match_here(&self, atom: usize, text: &[char], position: usize) -> bool {
        let Some((current, repeat)) = self.atoms.get(atom) else {
            return !self.anchored_end || position == text.len();
        };
        if *repeat {
            let mut end = position;
            while end < text.len() && current.matches(text[end], self.ignore_case) {
                end += 1;
            }
            return (position..=end).rev().any(|next| self.match_here(atom + 1, text, next));
        }
        position < text.len()
            && current.matches(text[position], self.ignore_case)
            && self.match_here(atom + 1, text, position + 1)
    }
}

/// Backslash escapes of `printf` formats and `echo -e`.
pub fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some('0') => {}
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// `printf FORMAT ARGS...`: the format is reused until the arguments run out.
pub fn printf(format: &str, args: &[String]) -> String {
    let format = unescape(format);
    let mut out = String::new();
    let mut args = args.iter();
    let uses_args = format.contains("%s") || format.contains("%d") || format.contains("%b");
    loop {
        let mut chars = format.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            // Flags and width are read and ignored, except the width of `%-Ns`/`%Ns`.
            let mut spec = String::new();
            while let Some(&next) = chars.peek() {
                if next.is_ascii_digit() || next == '-' || next == '.' {
                    spec.push(next);
                    chars.next();
                } else {
                    break;
                }
            }
            match chars.next() {
                Some('%') => out.push('%'),
                Some(kind @ ('s' | 'd' | 'b')) => {
                    let value = args.next().cloned().unwrap_or_default();
                    let value = match kind {
                        'b' => unescape(&value),
                        'd' => value.trim().parse::<i64>().unwrap_or(0).to_string(),
                        _ => value,
                    };
                    let width: usize =
                        spec.trim_start_matches('-').split('.').next().unwrap_or("").parse().unwrap_or(0);
                    if spec.starts_with('-') {
                        out.push_str(&format!("{value:<width$}"));
                    } else {
                        out.push_str(&format!("{value:>width$}"));
                    }
                }
                Some(other) => {
                    out.push('%');
                    out.push(other);
                }
                None => out.push('%'),
            }
        }
        if !uses_args || args.len() == 0 {
            break;
        }
    }
    out
}

/// Sizes as `lsblk` prints them: binary units, one decimal unless whole.
pub fn human_size(bytes: u64) -> String {
    let units = ["B", "K", "M", "G", "T", "P"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    let rounded = (value * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 {
        format!("{}{}", rounded as u64, units[unit])
    } else {
        format!("{rounded:.1}{}", units[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(Pattern::new("nvidia", true).is_match("3b:00.0 VGA: NVIDIA Corporation"));
        assert!(!Pattern::new("nvidia", false).is_match("NVIDIA"));
        assert!(Pattern::new("^VERSION_ID=", false).is_match("VERSION_ID=\"8.10\""));
        assert!(!Pattern::new("^VERSION_ID=", false).is_match("X VERSION_ID="));
        assert!(Pattern::new("efi$", false).is_match("efi"));
        assert!(Pattern::new("a.*c", false).is_match("xxabbbcxx"));
        assert!(Pattern::new("md[0-9]", false).is_match("/dev/md0"));
        assert!(Pattern::new("v[0-9]+$", false).is_match("v12"));
    }

    #[test]
    fn printf_reuses_the_format() {
        assert_eq!(printf(r"%s\n", &["a".into(), "b".into()]), "a\nb\n");
        assert_eq!(printf("plain", &[]), "plain");
        assert_eq!(printf("%-4s|", &["ab".into()]), "ab  |");
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(480 << 30), "480G");
        assert_eq!(human_size(1 << 30), "1G");
        assert_eq!(human_size(3_840_000_000_000), "3.5T");
        assert_eq!(human_size(512), "512B");
    }
}
