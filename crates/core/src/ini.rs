//! The INI dialect botocore reads (Python's `RawConfigParser` in strict mode, as
//! `botocore.configloader.raw_config_parse` builds it): lines split the way Python reads them and
//! each classified as configparser does. Every reader of an AWS file uses it:
//! [`crate::aws_profile`] (a parse), [`crate::ini_edit`] (a byte-preserving edit) and
//! `credsync::view` (the container view's `config`), so they cannot disagree about what a line is.
//!
//! - Lines end at `\n`, `\r\n` or a lone `\r` (Python's universal newlines).
//! - Whole-line `#` and `;` comments only, leading whitespace allowed (`region = x # y` has the
//!   value `x # y`).
//! - A blank (empty or whitespace-only) line.
//! - A line indented deeper than the last option or header line, while an option is open,
//!   continues that option's value (blank and comment lines in between change nothing).
//! - Otherwise `[name]`: a header, the name everything between the first `[` and the last `]`
//!   of the trimmed line (at least one character), anything after the last `]` ignored.
//! - Otherwise `key = value` or `key: value`, split at the first `=` or `:`; key trimmed and
//!   lower-cased, value trimmed.
//! - Otherwise a line configparser cannot read.

/// One line of a text: `content` without its line ending, `full` with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    pub content: &'a str,
    pub(crate) full: &'a str,
}

/// Splits at `\n`, `\r\n` and lone `\r`, keeping each line's ending in `full`. A text that ends
/// with a line break has no empty last line.
pub fn split_lines(text: &str) -> Vec<Line<'_>> {
    let bytes = text.as_bytes();
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let end = match bytes[i] {
            b'\n' => i + 1,
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => i + 2,
            b'\r' => i + 1,
            _ => {
                i += 1;
                continue;
            }
        };
        // `\r` and `\n` are ASCII, so these are char boundaries.
        lines.push(Line {
            content: &text[start..i],
            full: &text[start..end],
        });
        start = end;
        i = end;
    }
    if start < bytes.len() {
        lines.push(Line {
            content: &text[start..],
            full: &text[start..],
        });
    }
    lines
}

/// What configparser makes of one line, given the lines before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token<'a> {
    /// Empty or whitespace only.
    Blank,
    /// A whole-line `#` or `;` comment.
    Comment,
    /// More of the open option's value: the line, trimmed.
    Continuation(&'a str),
    /// `[name]`: the name as configparser takes it (not trimmed).
    Header(&'a str),
    /// `key = value`: the key trimmed and lower-cased (possibly empty, which botocore refuses),
    /// the value trimmed.
    Option { key: String, value: &'a str },
    /// Neither a header nor `key = value`: configparser records an error and keeps the open
    /// option open.
    Invalid,
}

/// configparser's reading state: whether a section and an option are open, and the indent of
/// the last line that was not a continuation.
#[derive(Debug, Clone, Default)]
pub struct Lexer {
    section: bool,
    option: bool,
    indent_level: usize,
}

impl Lexer {
    /// At the start of a file.
    pub fn new() -> Self {
        Lexer {
            section: false,
            option: false,
            indent_level: 0,
        }
    }

    /// Right after an unindented section header.
    pub(crate) fn after_header() -> Self {
        Lexer {
            section: true,
            option: false,
            indent_level: 0,
        }
    }

    /// Classifies `line` (without its line ending) and moves on past it.
    pub fn next<'a>(&mut self, line: &'a str) -> Token<'a> {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            return Token::Blank;
        }
        if is_comment(line) {
            return Token::Comment;
        }
        let indent = indent(line);
        if self.section && self.option && indent > self.indent_level {
            return Token::Continuation(trimmed);
        }
        self.indent_level = indent;
        if let Some(name) = header(trimmed) {
            self.section = true;
            self.option = false;
            return Token::Header(name);
        }
        match split_option(trimmed) {
            Some((key, value)) => {
                self.option = true;
                Token::Option { key, value }
            }
            None => Token::Invalid,
        }
    }
}

/// Whether `line` starts with whitespace.
pub(crate) fn is_indented(line: &str) -> bool {
    line.starts_with(char::is_whitespace)
}

/// How many whitespace characters `line` starts with.
fn indent(line: &str) -> usize {
    line.chars().take_while(|c| c.is_whitespace()).count()
}

/// A whole-line comment (leading whitespace allowed).
pub(crate) fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with(['#', ';'])
}

/// The name of a `[name]` line: between the first `[` and the last `]` of the trimmed line, at
/// least one character, not trimmed further.
pub(crate) fn header(line: &str) -> Option<&str> {
    let inner = line.trim().strip_prefix('[')?;
    let end = inner.rfind(']')?;
    (end > 0).then(|| &inner[..end])
}

/// `key = value` or `key: value` (first `=` or `:`), key trimmed and lower-cased, value trimmed.
pub(crate) fn split_option(line: &str) -> Option<(String, &str)> {
    let at = line.find(['=', ':'])?;
    let key = line[..at].trim().to_lowercase();
    Some((key, line[at + 1..].trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(text: &str) -> Vec<&str> {
        split_lines(text).iter().map(|l| l.content).collect()
    }

    fn tokens(text: &str) -> Vec<Token<'_>> {
        let mut lexer = Lexer::new();
        split_lines(text)
            .iter()
            .map(|l| lexer.next(l.content))
            .collect()
    }

    fn opt<'a>(key: &str, value: &'a str) -> Token<'a> {
        Token::Option {
            key: key.to_owned(),
            value,
        }
    }

    #[test]
    fn lines_end_like_python_universal_newlines() {
        assert_eq!(contents(""), Vec::<&str>::new());
        assert_eq!(contents("a\nb\r\nc\rd"), ["a", "b", "c", "d"]);
        assert_eq!(contents("a\n\n"), ["a", ""]);
        let lines = split_lines("a\r\nb");
        assert_eq!(lines[0].full, "a\r\n");
        assert_eq!(lines[1].full, "b");
    }

    #[test]
    fn each_kind_of_line() {
        let text = "[ dev ]x\n# c\n  ; c\n\nRegion : eu # not a comment\n  more\nnonsense\n";
        assert_eq!(
            tokens(text),
            [
                Token::Header(" dev "),
                Token::Comment,
                Token::Comment,
                Token::Blank,
                opt("region", "eu # not a comment"),
                Token::Continuation("more"),
                Token::Invalid,
            ]
        );
        assert_eq!(header("[]"), None);
        assert_eq!(header("[a]b]"), Some("a]b"));
    }

    #[test]
    fn continuation_needs_an_open_option_and_a_deeper_indent() {
        // Before any section, and right after a header, an indented line is not a continuation.
        assert_eq!(tokens("  a = 1\n   b"), [opt("a", "1"), Token::Invalid]);
        assert_eq!(
            tokens("[s]\n  a = 1\n  b = 2\n    c\n\n# x\n    d\ne = 3"),
            [
                Token::Header("s"),
                opt("a", "1"),
                opt("b", "2"),
                Token::Continuation("c"),
                Token::Blank,
                Token::Comment,
                Token::Continuation("d"),
                opt("e", "3"),
            ]
        );
        // An invalid line keeps the option open; a header closes it.
        assert_eq!(
            tokens("[s]\na = 1\nbad\n  more\n[t]\n  x"),
            [
                Token::Header("s"),
                opt("a", "1"),
                Token::Invalid,
                Token::Continuation("more"),
                Token::Header("t"),
                Token::Invalid,
            ]
        );
        // An indented header that continues nothing is a header.
        assert_eq!(
            tokens("[s]\n  [t]\n"),
            [Token::Header("s"), Token::Header("t")]
        );
    }
}
