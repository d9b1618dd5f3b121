//! Reading input files that may be hostile or broken: a size cap (a list
//! pointed at `/dev/zero` must end, not fill the memory) and, for YAML, a cap
//! on how many values the document expands to (an alias bomb of a few
//! hundred KB would otherwise expand to gigabytes). Nesting depth is capped
//! by the YAML reader itself (128 levels).

use std::cell::Cell;
use std::fmt;
use std::io::Read;
use std::path::Path;

use serde::de::{DeserializeSeed, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};
use serde::Deserializer;

use crate::error::InputProblem;

/// The largest input file read: far more than any real list or credentials file.
pub const MAX_INPUT_BYTES: u64 = 1 << 20;

/// The most values (scalars, lists, maps) a YAML input may expand to,
/// counting each alias as the values it repeats. The credentials example
/// holds a few hundred.
pub const MAX_YAML_VALUES: usize = 100_000;

/// The deepest nesting of `[` and `{` in a YAML input.
pub const MAX_YAML_DEPTH: usize = 64;

/// The bytes of `path`, at most [`MAX_INPUT_BYTES`]: a device or a huge file
/// is refused after reading just past the cap. `what` names the file for
/// the message ("the hypervisors file").
pub fn read_capped(path: &Path, what: &str) -> Result<Vec<u8>, InputProblem> {
    read_capped_at(path, what, MAX_INPUT_BYTES)
}

/// As [`read_capped`], with a cap of `cap` bytes (a whole MiB).
pub fn read_capped_at(path: &Path, what: &str, cap: u64) -> Result<Vec<u8>, InputProblem> {
    let mut bytes = Vec::new();
    std::fs::File::open(path).and_then(|file| file.take(cap + 1).read_to_end(&mut bytes)).map_err(|err| {
        let reason = crate::config::hypervisors::io_reason(&err);
        InputProblem::new(path, format!("cannot read {what}: {reason}"))
    })?;
    if bytes.len() as u64 > cap {
        return Err(InputProblem::new(
            path,
            format!("{what} is larger than {} MiB; is this the right file?", cap >> 20),
        ));
    }
    Ok(bytes)
}

/// Refuses a YAML document that expands to more than [`MAX_YAML_VALUES`]
/// values, before anything is built from it: the walk stops at the cap, so
/// its cost is bounded too. Syntax errors are left to the real reader, which
/// locates them.
pub fn check_yaml_expansion(path: &Path, what: &str, text: &str) -> Result<(), InputProblem> {
    check_yaml_expansion_at(path, what, text, MAX_YAML_VALUES)
}

/// As [`check_yaml_expansion`], with a cap of `max_values`.
pub fn check_yaml_expansion_at(path: &Path, what: &str, text: &str, max_values: usize) -> Result<(), InputProblem> {
    check_flow_depth(path, what, text)?;
    let left = Cell::new(max_values);
    let walked = Walk { left: &left }.deserialize(serde_yaml_ng::Deserializer::from_str(text));
    // The YAML reader has a limit of its own on alias jumps (100 per event),
    // which a small bomb reaches first.
    let repeated = walked.as_ref().is_err_and(|err| err.to_string().contains("repetition limit exceeded"));
    if left.get() == 0 || repeated {
        return Err(InputProblem::new(
            path,
            format!("{what} expands to more than {max_values} values (YAML aliases repeating aliases?); refused"),
        ));
    }
    Ok(())
}

/// Refuses `[` and `{` nested deeper than [`MAX_YAML_DEPTH`], before the YAML
/// reader sees them: it takes minutes over 100,000 of them, and refuses past
/// 128 levels anyway. Quoted text and comments are skipped; a bracket inside
/// a plain value counts, which only makes the check stricter.
fn check_flow_depth(path: &Path, what: &str, text: &str) -> Result<(), InputProblem> {
    let (mut depth, mut line) = (0usize, 1usize);
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut previous = '\n';
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' {
            line += 1;
            comment = false;
            // Plain scalars end at the line; quoted ones may go on.
        }
        match quote {
            Some('\'') if c == '\'' => {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                } else {
                    quote = None;
                }
            }
            Some('"') if c == '\\' => {
                chars.next();
            }
            Some('"') if c == '"' => quote = None,
            Some(_) => {}
            None if comment => {}
            None => match c {
                '#' if previous.is_whitespace() => comment = true,
                '\'' | '"' if previous.is_whitespace() || "[{,:".contains(previous) => quote = Some(c),
                '[' | '{' => {
                    depth += 1;
                    if depth > MAX_YAML_DEPTH {
                        return Err(InputProblem::at_line(
                            path,
                            line,
                            format!("{what} nests lists or maps more than {MAX_YAML_DEPTH} deep; refused"),
                        ));
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        previous = c;
    }
    Ok(())
}

/// Visits every value of a document, counting down `left`.
#[derive(Clone, Copy)]
struct Walk<'a> {
    left: &'a Cell<usize>,
}

impl Walk<'_> {
    fn count<E: serde::de::Error>(self) -> Result<(), E> {
        match self.left.get() {
            0 => Err(E::custom("too many values")),
            left => {
                self.left.set(left - 1);
                Ok(())
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.count()
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        self.count()
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        self.count()
    }

    fn visit_i128<E: serde::de::Error>(self, _: i128) -> Result<(), E> {
        self.count()
    }

    fn visit_u128<E: serde::de::Error>(self, _: u128) -> Result<(), E> {
        self.count()
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.count()
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        self.count()
    }

    fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<(), E> {
        self.count()
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.count()
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        self.count()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        self.count()?;
        self.deserialize(deserializer)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        self.count()?;
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.count()?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.count()?;
        while map.next_key_seed(self)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }

    /// A tagged value (`!tag value`).
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        self.count()?;
        let ((), variant) = data.variant_seed(self)?;
        variant.newtype_variant_seed(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten levels of ten aliases each: 10^10 values once expanded.
    fn alias_bomb() -> String {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..10 {
            let previous = format!("*a{}", level - 1);
            let items = [previous.as_str(); 10].join(", ");
            text.push_str(&format!("a{level}: &a{level} [{items}]\n"));
        }
        text
    }

    #[test]
    fn an_alias_bomb_is_refused_quickly() {
        let err = check_yaml_expansion(Path::new("c.yaml"), "the credentials file", &alias_bomb()).unwrap_err();
        assert!(err.to_string().starts_with("c.yaml: the credentials file expands to more than"), "{err}");
    }

    /// Few events, so the YAML reader allows many alias jumps; each jump
    /// repeats 10,000 values.
    #[test]
    fn a_wide_alias_bomb_is_refused_at_the_value_cap() {
        let items = vec!["x"; 10_000].join(", ");
        let aliases = vec!["*a"; 10_000].join(", ");
        let text = format!("a: &a [{items}]\nb: [{aliases}]\n");
        let err = check_yaml_expansion(Path::new("c.yaml"), "the file", &text).unwrap_err();
        assert!(err.to_string().contains("expands to more than 100000 values"), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused_before_reading() {
        let text = format!("general:\n  initials: {}\n", "[".repeat(100_000));
        let err = check_yaml_expansion(Path::new("c.yaml"), "the file", &text).unwrap_err();
        assert_eq!(err.to_string(), "c.yaml:2: the file nests lists or maps more than 64 deep; refused");
        // Brackets inside quotes and comments do not count.
        let quoted = format!("a: '{0}'\nb: \"{0}\"\n# {0}\nc: [[1]]\n", "[".repeat(100));
        check_yaml_expansion(Path::new("c.yaml"), "the file", &quoted).unwrap();
    }

    #[test]
    fn ordinary_documents_and_a_few_aliases_pass() {
        let text = "base: &base {a: 1, b: [x, y]}\none: *base\ntwo: *base\n";
        check_yaml_expansion(Path::new("c.yaml"), "the file", text).unwrap();
        // Syntax errors are for the real reader to locate.
        check_yaml_expansion(Path::new("c.yaml"), "the file", "a: [unclosed\n").unwrap();
    }

    #[test]
    fn files_past_the_cap_are_refused() {
        let err = read_capped(Path::new("/dev/zero"), "the hypervisors file").unwrap_err();
        assert_eq!(err.to_string(), "/dev/zero: the hypervisors file is larger than 1 MiB; is this the right file?");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small");
        std::fs::write(&path, "hv01\n").unwrap();
        assert_eq!(read_capped(&path, "the file").unwrap(), b"hv01\n");
    }
}
