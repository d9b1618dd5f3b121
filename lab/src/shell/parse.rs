//! A small POSIX-shell parser: enough of the language for what an automation
//! tool sends over SSH (lists with `;` `&&` `||`, pipes, `!`, redirections,
//! quoting and escapes, `$1`/`"$@"`/`${VAR}`/`$(...)`, `if`, `{ }` and `( )`).

use std::fmt;

/// One piece of a word, remembering whether it was quoted (quoted text is
/// neither split into fields nor treated as a keyword).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    Text {
        text: String,
        quoted: bool,
    },
    /// `$NAME`, `${NAME}`, `$1`, `$@`, `$#`, `$?`.
    Var {
        name: String,
        quoted: bool,
    },
    /// `$(script)`.
    Command {
        script: String,
        quoted: bool,
    },
    /// `~` at the start of a word.
    Home,
}

pub type Word = Vec<Part>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedirectKind {
    /// `>`
    Write,
    /// `>>`
    Append,
    /// `<`
    Read,
    /// `>&N`
    Duplicate,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    pub fd: u32,
    pub kind: RedirectKind,
    /// A file name, or the fd number for `Duplicate`.
    pub target: Word,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Simple {
        assignments: Vec<(String, Word)>,
        words: Vec<Word>,
        redirects: Vec<Redirect>,
    },
    Pipeline {
        negate: bool,
        commands: Vec<Node>,
    },
    /// `first && a || b ...`: the bool is true for `&&`.
    AndOr {
        first: Box<Node>,
        rest: Vec<(bool, Node)>,
    },
    List(Vec<Node>),
    If {
        branches: Vec<(Node, Node)>,
        otherwise: Option<Box<Node>>,
    },
    Group {
        body: Box<Node>,
        redirects: Vec<Redirect>,
        subshell: bool,
    },
    /// `command &`: runs as a background job of the shell.
    Background(Box<Node>),
}

#[derive(Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Word(Word),
    /// `&&`, `||`, `|`, `;`, `&`, `\n`, `(`, `)`.
    Operator(&'static str),
    Redirect {
        fd: u32,
        kind: RedirectKind,
    },
}

/// Parses a whole script.
pub fn parse(script: &str) -> Result<Node, ParseError> {
    let tokens = lex(script)?;
    let mut parser = Parser { tokens, position: 0 };
    let list = parser.list(&[])?;
    match parser.peek() {
        None => Ok(list),
        Some(token) => Err(ParseError(format!("syntax error near unexpected token `{}'", describe(token)))),
    }
}

fn describe(token: &Token) -> String {
    match token {
        Token::Word(word) => literal(word).unwrap_or_else(|| "word".into()),
        Token::Operator("\n") => "newline".into(),
        Token::Operator(op) => (*op).into(),
        Token::Redirect { .. } => "redirection".into(),
    }
}

/// The text of a word made only of unquoted text (keywords, assignments).
fn literal(word: &Word) -> Option<String> {
    match word.as_slice() {
        [Part::Text { text, quoted: false }] => Some(text.clone()),
        _ => None,
    }
}

fn lex(script: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = script.chars().collect();
    let mut tokens = Vec::new();
    let mut index = 0;
    let mut word: Word = Vec::new();
    let mut in_word = false;
    let flush = |word: &mut Word, in_word: &mut bool, tokens: &mut Vec<Token>| {
        if *in_word {
            tokens.push(Token::Word(std::mem::take(word)));
            *in_word = false;
        }
    };
    while index < chars.len() {
        let c = chars[index];
        match c {
            ' ' | '\t' => {
                flush(&mut word, &mut in_word, &mut tokens);
                index += 1;
            }
            '#' if !in_word => {
                while index < chars.len() && chars[index] != '\n' {
                    index += 1;
                }
            }
            '\\' if chars.get(index + 1) == Some(&'\n') => index += 2,
            '\\' => {
                let escaped = chars.get(index + 1).copied().unwrap_or('\\');
                push_text(&mut word, &escaped.to_string(), true);
                in_word = true;
                index += 2;
            }
            '\'' => {
                let end = find(&chars, index + 1, '\'').ok_or_else(|| unexpected_eof('\''))?;
                push_text(&mut word, &chars[index + 1..end].iter().collect::<String>(), true);
                in_word = true;
                index = end + 1;
            }
            '"' => {
                index = lex_double_quoted(&chars, index + 1, &mut word)?;
                in_word = true;
            }
            '$' => {
                index = lex_dollar(&chars, index, &mut word, false)?;
                in_word = true;
            }
            '~' if !in_word => {
                word.push(Part::Home);
                in_word = true;
                index += 1;
            }
            '&' | '|' | ';' | '\n' | '(' | ')' => {
                flush(&mut word, &mut in_word, &mut tokens);
                let next = chars.get(index + 1).copied();
                let (op, len) = match (c, next) {
                    ('&', Some('&')) => ("&&", 2),
                    ('|', Some('|')) => ("||", 2),
                    ('&', Some('>')) => {
                        // `&>file`: both streams to the file.
                        tokens.push(Token::Redirect { fd: 1, kind: RedirectKind::Write });
                        index += 2;
                        let target = lex_redirect_target(&chars, &mut index)?;
                        tokens.push(Token::Word(target));
                        tokens.push(Token::Redirect { fd: 2, kind: RedirectKind::Duplicate });
                        tokens.push(Token::Word(vec![Part::Text { text: "1".into(), quoted: false }]));
                        continue;
                    }
                    ('&', _) => ("&", 1),
                    ('|', _) => ("|", 1),
                    (';', _) => (";", 1),
                    ('\n', _) => ("\n", 1),
                    ('(', _) => ("(", 1),
                    _ => (")", 1),
                };
                tokens.push(Token::Operator(op));
                index += len;
            }
            '>' | '<' => {
                // A word made only of digits right before is the fd (`2>`).
                let fd = match (&word[..], in_word) {
                    ([Part::Text { text, quoted: false }], true) if text.chars().all(|c| c.is_ascii_digit()) => {
                        let fd = text.parse().unwrap_or(1);
                        word.clear();
                        in_word = false;
                        fd
                    }
                    _ => {
                        flush(&mut word, &mut in_word, &mut tokens);
                        if c == '>' {
                            1
                        } else {
                            0
                        }
                    }
                };
                let next = chars.get(index + 1).copied();
                let kind = match (c, next) {
                    ('>', Some('>')) => {
                        index += 2;
                        RedirectKind::Append
                    }
                    ('>', Some('&')) => {
                        index += 2;
                        RedirectKind::Duplicate
                    }
                    ('>', _) => {
                        index += 1;
                        RedirectKind::Write
                    }
                    _ => {
                        index += 1;
                        RedirectKind::Read
                    }
                };
                tokens.push(Token::Redirect { fd, kind });
                let target = lex_redirect_target(&chars, &mut index)?;
                tokens.push(Token::Word(target));
            }
            _ => {
                push_text(&mut word, &c.to_string(), false);
                in_word = true;
                index += 1;
            }
        }
    }
    flush(&mut word, &mut in_word, &mut tokens);
    Ok(tokens)
}

/// The word after a redirection operator.
fn lex_redirect_target(chars: &[char], index: &mut usize) -> Result<Word, ParseError> {
    while *index < chars.len() && matches!(chars[*index], ' ' | '\t') {
        *index += 1;
    }
    let start = *index;
    let mut end = start;
    // Find where the word ends (outside quotes), then lex just that.
    while end < chars.len() && !matches!(chars[end], ' ' | '\t' | '\n' | ';' | '&' | '|' | '<' | '>' | '(' | ')') {
        match chars[end] {
            '\'' => end = find(chars, end + 1, '\'').ok_or_else(|| unexpected_eof('\''))? + 1,
            '"' => {
                let mut scratch = Vec::new();
                end = lex_double_quoted(chars, end + 1, &mut scratch)?;
            }
            '\\' => end += 2,
            _ => end += 1,
        }
    }
    let end = end.min(chars.len());
    if start == end {
        return Err(ParseError("syntax error near unexpected token `newline'".into()));
    }
    let text: String = chars[start..end].iter().collect();
    *index = end;
    match lex(&text)?.as_slice() {
        [Token::Word(word)] => Ok(word.clone()),
        _ => Err(ParseError(format!("ambiguous redirect `{text}'"))),
    }
}

fn unexpected_eof(quote: char) -> ParseError {
    ParseError(format!("unexpected EOF while looking for matching `{quote}'"))
}

fn find(chars: &[char], from: usize, wanted: char) -> Option<usize> {
    (from..chars.len()).find(|&i| chars[i] == wanted)
}

fn push_text(word: &mut Word, text: &str, quoted: bool) {
    if let Some(Part::Text { text: last, quoted: last_quoted }) = word.last_mut() {
        if *last_quoted == quoted {
            last.push_str(text);
            return;
        }
    }
    word.push(Part::Text { text: text.into(), quoted });
}

/// Lexes the inside of `"..."` starting after the quote; returns the index after the closing quote.
fn lex_double_quoted(chars: &[char], mut index: usize, word: &mut Word) -> Result<usize, ParseError> {
    // An empty "" is still a (quoted, empty) word.
    push_text(word, "", true);
    loop {
        match chars.get(index) {
            None => return Err(unexpected_eof('"')),
            Some('"') => return Ok(index + 1),
            Some('\\') => match chars.get(index + 1) {
                Some(&next) if matches!(next, '$' | '`' | '"' | '\\') => {
                    push_text(word, &next.to_string(), true);
                    index += 2;
                }
                Some('\n') => index += 2,
                _ => {
                    push_text(word, "\\", true);
                    index += 1;
                }
            },
            Some('$') => index = lex_dollar(chars, index, word, true)?,
            Some(&c) => {
                push_text(word, &c.to_string(), true);
                index += 1;
            }
        }
    }
}

/// Lexes `$...` at `index`; returns the index after it.
fn lex_dollar(chars: &[char], index: usize, word: &mut Word, quoted: bool) -> Result<usize, ParseError> {
    match chars.get(index + 1) {
        Some('{') => {
            let end = find(chars, index + 2, '}').ok_or_else(|| unexpected_eof('}'))?;
            word.push(Part::Var { name: chars[index + 2..end].iter().collect(), quoted });
            Ok(end + 1)
        }
        Some('(') => {
            let end = matching_paren(chars, index + 2).ok_or_else(|| unexpected_eof(')'))?;
            word.push(Part::Command { script: chars[index + 2..end].iter().collect(), quoted });
            Ok(end + 1)
        }
        Some(&c) if c.is_ascii_digit() || matches!(c, '@' | '*' | '#' | '?' | '$' | '!') => {
            word.push(Part::Var { name: c.to_string(), quoted });
            Ok(index + 2)
        }
        Some(&c) if c.is_ascii_alphabetic() || c == '_' => {
            let mut end = index + 1;
            while end < chars.len() && (chars[end].is_ascii_alphanumeric() || chars[end] == '_') {
                end += 1;
            }
            word.push(Part::Var { name: chars[index + 1..end].iter().collect(), quoted });
            Ok(end)
        }
        _ => {
            push_text(word, "$", quoted);
            Ok(index + 1)
        }
    }
}

/// The `)` closing a `$(` whose content starts at `from`, skipping quotes.
fn matching_paren(chars: &[char], from: usize) -> Option<usize> {
    let mut depth = 1;
    let mut index = from;
    while index < chars.len() {
        match chars[index] {
            '\'' => index = find(chars, index + 1, '\'')?,
            '"' => {
                index += 1;
                while index < chars.len() && chars[index] != '"' {
                    if chars[index] == '\\' {
                        index += 1;
                    }
                    index += 1;
                }
            }
            '\\' => index += 1,
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(index);
                }
            }
            _ => {}
        }
        index += 1;
    }
    None
}

struct Parser {
    tokens: Vec<Token>,
    position: usize,
}

const KEYWORDS: [&str; 7] = ["then", "elif", "else", "fi", "}", "do", "done"];

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position)
    }

    fn peek_keyword(&self) -> Option<String> {
        match self.peek() {
            Some(Token::Word(word)) => literal(word),
            _ => None,
        }
    }

    fn at_operator(&self, op: &str) -> bool {
        matches!(self.peek(), Some(Token::Operator(found)) if *found == op)
    }

    fn skip_newlines(&mut self) {
        while self.at_operator("\n") {
            self.position += 1;
        }
    }

    fn expect_keyword(&mut self, keyword: &str) -> Result<(), ParseError> {
        self.skip_newlines();
        if self.peek_keyword().as_deref() == Some(keyword) {
            self.position += 1;
            Ok(())
        } else {
            let found = self.peek().map(describe).unwrap_or_else(|| "end of file".into());
            Err(ParseError(format!("syntax error: expected `{keyword}', found `{found}'")))
        }
    }

    /// Commands separated by `;`, `&` or newlines, until a closing keyword or `)`.
    fn list(&mut self, terminators: &[&str]) -> Result<Node, ParseError> {
        let mut items = Vec::new();
        loop {
            self.skip_newlines();
            let closing = self.peek_keyword().is_some_and(|word| terminators.contains(&word.as_str()));
            if self.peek().is_none() || closing || self.at_operator(")") {
                break;
            }
            let item = self.and_or()?;
            if self.at_operator("&") {
                items.push(Node::Background(Box::new(item)));
                self.position += 1;
            } else if self.at_operator(";") || self.at_operator("\n") {
                items.push(item);
                self.position += 1;
            } else {
                items.push(item);
                break;
            }
        }
        Ok(Node::List(items))
    }

    fn and_or(&mut self) -> Result<Node, ParseError> {
        let first = self.pipeline()?;
        let mut rest = Vec::new();
        loop {
            let and = if self.at_operator("&&") {
                true
            } else if self.at_operator("||") {
                false
            } else {
                break;
            };
            self.position += 1;
            self.skip_newlines();
            rest.push((and, self.pipeline()?));
        }
        Ok(if rest.is_empty() { first } else { Node::AndOr { first: Box::new(first), rest } })
    }

    fn pipeline(&mut self) -> Result<Node, ParseError> {
        let negate = self.peek_keyword().as_deref() == Some("!");
        if negate {
            self.position += 1;
        }
        let mut commands = vec![self.command()?];
        while self.at_operator("|") {
            self.position += 1;
            self.skip_newlines();
            commands.push(self.command()?);
        }
        Ok(if commands.len() == 1 && !negate {
            commands.pop().expect("one")
        } else {
            Node::Pipeline { negate, commands }
        })
    }

    fn command(&mut self) -> Result<Node, ParseError> {
        match self.peek_keyword().as_deref() {
            Some("if") => {
                self.position += 1;
                return self.if_clause();
            }
            Some("{") => {
                self.position += 1;
                let body = self.list(&["}"])?;
                self.expect_keyword("}")?;
                let redirects = self.redirects()?;
                return Ok(Node::Group { body: Box::new(body), redirects, subshell: false });
            }
            Some(word) if KEYWORDS.contains(&word) => {
                return Err(ParseError(format!("syntax error near unexpected token `{word}'")));
            }
            _ => {}
        }
        if self.at_operator("(") {
            self.position += 1;
            let body = self.list(&[])?;
            if !self.at_operator(")") {
                return Err(ParseError("syntax error: expected `)'".into()));
            }
            self.position += 1;
            let redirects = self.redirects()?;
            return Ok(Node::Group { body: Box::new(body), redirects, subshell: true });
        }
        let mut assignments = Vec::new();
        let mut words = Vec::new();
        let mut redirects = Vec::new();
        loop {
            match self.peek().cloned() {
                Some(Token::Word(word)) => {
                    self.position += 1;
                    if words.is_empty() {
                        if let Some((name, value)) = assignment(&word) {
                            assignments.push((name, value));
                            continue;
                        }
                    }
                    words.push(word);
                }
                Some(Token::Redirect { fd, kind }) => {
                    self.position += 1;
                    match self.peek().cloned() {
                        Some(Token::Word(target)) => {
                            self.position += 1;
                            redirects.push(Redirect { fd, kind, target });
                        }
                        _ => return Err(ParseError("syntax error near unexpected token `newline'".into())),
                    }
                }
                _ => break,
            }
        }
        if words.is_empty() && assignments.is_empty() && redirects.is_empty() {
            let found = self.peek().map(describe).unwrap_or_else(|| "newline".into());
            return Err(ParseError(format!("syntax error near unexpected token `{found}'")));
        }
        Ok(Node::Simple { assignments, words, redirects })
    }

    fn redirects(&mut self) -> Result<Vec<Redirect>, ParseError> {
        let mut redirects = Vec::new();
        while let Some(Token::Redirect { fd, kind }) = self.peek().cloned() {
            self.position += 1;
            match self.peek().cloned() {
                Some(Token::Word(target)) => {
                    self.position += 1;
                    redirects.push(Redirect { fd, kind, target });
                }
                _ => return Err(ParseError("syntax error near unexpected token `newline'".into())),
            }
        }
        Ok(redirects)
    }

    fn if_clause(&mut self) -> Result<Node, ParseError> {
        let mut branches = Vec::new();
        let mut otherwise = None;
        loop {
            let condition = self.list(&["then"])?;
            self.expect_keyword("then")?;
            let body = self.list(&["elif", "else", "fi"])?;
            branches.push((condition, body));
            match self.peek_keyword().as_deref() {
                Some("elif") => self.position += 1,
                Some("else") => {
                    self.position += 1;
                    otherwise = Some(Box::new(self.list(&["fi"])?));
                    self.expect_keyword("fi")?;
                    break;
                }
                _ => {
                    self.expect_keyword("fi")?;
                    break;
                }
            }
        }
        Ok(Node::If { branches, otherwise })
    }
}

/// `NAME=value` at the start of a command.
fn assignment(word: &Word) -> Option<(String, Word)> {
    let Some(Part::Text { text, quoted: false }) = word.first() else { return None };
    let (name, value) = text.split_once('=')?;
    let valid = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !valid {
        return None;
    }
    let mut rest: Word = Vec::new();
    if !value.is_empty() {
        rest.push(Part::Text { text: value.into(), quoted: false });
    }
    rest.extend(word[1..].iter().cloned());
    Some((name.into(), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str, quoted: bool) -> Part {
        Part::Text { text: s.into(), quoted }
    }

    #[test]
    fn quoting_and_variables() {
        let tokens = lex(r#"printf '%s\n' "$1" >> "$2""#).unwrap();
        assert_eq!(tokens[0], Token::Word(vec![text("printf", false)]));
        assert_eq!(tokens[1], Token::Word(vec![text(r"%s\n", true)]));
        assert_eq!(tokens[2], Token::Word(vec![text("", true), Part::Var { name: "1".into(), quoted: true }]));
        assert_eq!(tokens[3], Token::Redirect { fd: 1, kind: RedirectKind::Append });
    }

    #[test]
    fn escaped_single_quote() {
        let tokens = lex(r"sh -c 'echo '\''hi'\'''").unwrap();
        assert_eq!(tokens[2], Token::Word(vec![text("echo 'hi'", true)]));
    }

    #[test]
    fn lists_and_pipes() {
        let node = parse("grep -qF x /f || echo x >> /f; cat /etc/os-release | grep VERSION_ID").unwrap();
        let Node::List(items) = node else { panic!() };
        assert_eq!(items.len(), 2);
        assert!(matches!(items[0], Node::AndOr { .. }));
        assert!(matches!(items[1], Node::Pipeline { .. }));
    }

    #[test]
    fn stderr_redirects() {
        let node = parse("lspci 2>/dev/null | grep -i nvidia 2>&1").unwrap();
        let Node::List(items) = node else { panic!() };
        let Node::Pipeline { commands, .. } = &items[0] else { panic!() };
        let Node::Simple { redirects, .. } = &commands[1] else { panic!() };
        assert_eq!(redirects[0].fd, 2);
        assert_eq!(redirects[0].kind, RedirectKind::Duplicate);
    }

    #[test]
    fn if_clause() {
        let node = parse("if ! test -d /x; then mkdir -p /x; else echo ok; fi").unwrap();
        let Node::List(items) = node else { panic!() };
        assert!(matches!(items[0], Node::If { .. }));
    }

    #[test]
    fn errors() {
        assert!(parse("echo 'open").is_err());
        assert!(parse("&& x").is_err());
        assert!(parse("echo >").is_err());
    }
}
