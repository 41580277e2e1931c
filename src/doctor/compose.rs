//! A small reader for what `doctor --project` needs from a Compose file: each service's
//! `volumes:` (short `src:dst[:ro|rw]` and long `type`/`source`/`target`/`read_only` syntax)
//! and `environment:` (list `K=V` or map `K: V`), plus the project's `.env`.
//!
//! Why not a YAML crate: the tree has none, `serde_yaml` is deprecated, `serde_yml` is archived,
//! and `saphyr`/`yaml-rust2` bring `encoding_rs` and a full YAML 1.2 model for the two keys read
//! here. This reader handles the block YAML that Compose files are written in: block maps and
//! sequences (a sequence may sit at its key's indentation), `- key: v` items that open a map,
//! flow sequences and maps of scalars, single- and double-quoted scalars, `|` literal blocks
//! (lines joined with `\n`), comments, anchors, aliases and `<<` merge keys. Anything else is an
//! error with its line, and `doctor` says it could not read the file instead of guessing. That
//! includes `>` folded blocks and tags (Compose's `!reset` and `!override`, or any other `!tag`),
//! which this reader cannot read the way Compose does.

use std::collections::BTreeMap;

/// A parsed YAML node: just enough of YAML for Compose files.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Null,
    Scalar(String),
    Seq(Vec<(usize, Node)>),
    /// Keys in file order, each with its 1-based line.
    Map(Vec<(String, usize, Node)>),
}

impl Node {
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => entries.iter().find(|(k, _, _)| k == key).map(|(_, _, n)| n),
            _ => None,
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Node::Scalar(s) => Some(s),
            _ => None,
        }
    }
}

/// Why the file could not be read, at which 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub(crate) struct YamlError {
    pub(crate) line: usize,
    pub(crate) message: String,
}

#[derive(Debug, Clone)]
struct Line {
    no: usize,
    indent: usize,
    text: String,
}

/// Parses a YAML document into a [`Node`].
pub(crate) fn parse_yaml(text: &str) -> Result<Node, YamlError> {
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let no = i + 1;
        let body = raw.trim_start_matches(' ');
        if body.starts_with('\t') {
            return Err(YamlError {
                line: no,
                message: "a tab in the indentation; YAML indents with spaces".to_owned(),
            });
        }
        let indent = raw.len() - body.len();
        let text = strip_comment(body).trim_end().to_owned();
        if text.is_empty() || text == "---" {
            continue;
        }
        if text == "..." {
            break;
        }
        if text.starts_with('%') {
            continue; // a directive
        }
        lines.push(Line { no, indent, text });
    }
    let mut p = Parser {
        lines,
        i: 0,
        anchors: BTreeMap::new(),
    };
    if p.lines.is_empty() {
        return Ok(Node::Null);
    }
    let indent = p.lines[0].indent;
    let node = p.node(indent)?;
    if let Some(l) = p.lines.get(p.i) {
        return Err(YamlError {
            line: l.no,
            message: "unexpected indentation".to_owned(),
        });
    }
    Ok(node)
}

/// The text before a `#` comment (a `#` at the start or after a space, outside quotes).
fn strip_comment(s: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut prev = ' ';
    let mut escaped = false;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match quote {
            Some('"') if escaped => escaped = false,
            Some('"') if c == '\\' => escaped = true,
            Some('\'') if c == '\'' && chars.peek().is_some_and(|(_, n)| *n == '\'') => {
                chars.next();
            }
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if (c == '"' || c == '\'')
                && (prev == ' ' || i == 0 || "[{,:-".contains(prev)) =>
            {
                quote = Some(c)
            }
            None if c == '#' && (i == 0 || prev == ' ' || prev == '\t') => return &s[..i],
            None => {}
        }
        prev = c;
    }
    s
}

struct Parser {
    lines: Vec<Line>,
    i: usize,
    anchors: BTreeMap<String, Node>,
}

fn is_seq_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

/// Splits `key: value` at the first `:` followed by a space or the end, outside quotes.
fn split_key(text: &str) -> Option<(String, &str)> {
    let (key_end, rest_start) =
        if let Some(q) = text.chars().next().filter(|c| *c == '"' || *c == '\'') {
            let close = closing_quote(text, q)?;
            let after = &text[close + 1..];
            let after_trim = after.trim_start();
            if !after_trim.starts_with(':') {
                return None;
            }
            let colon = close + 1 + (after.len() - after_trim.len());
            (colon, colon + 1)
        } else {
            let bytes = text.as_bytes();
            let mut found = None;
            for (i, b) in bytes.iter().enumerate() {
                if *b == b':' && (i + 1 == bytes.len() || bytes[i + 1] == b' ') {
                    found = Some(i);
                    break;
                }
            }
            let colon = found?;
            (colon, colon + 1)
        };
    let key = unquote(text[..key_end].trim());
    Some((key, text[rest_start..].trim()))
}

/// Byte index of the quote closing the one at index 0.
fn closing_quote(text: &str, q: char) -> Option<usize> {
    let mut escaped = false;
    let mut chars = text.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        if q == '"' {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                return Some(i);
            }
        } else if c == '\'' {
            if chars.peek().is_some_and(|(_, n)| *n == '\'') {
                chars.next();
            } else {
                return Some(i);
            }
        }
    }
    None
}

/// A scalar as written: quotes removed, escapes in double quotes applied.
fn unquote(s: &str) -> String {
    let s = s.trim();
    if s.len() >= 2 && s.starts_with('\'') && s.ends_with('\'') {
        return s[1..s.len() - 1].replace("''", "'");
    }
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        let mut out = String::new();
        let mut chars = s[1..s.len() - 1].chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(o) => out.push(o),
                    None => {}
                }
            } else {
                out.push(c);
            }
        }
        return out;
    }
    s.to_owned()
}

/// Splits a flow collection's inside at top-level commas.
fn split_flow(inner: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' => quote = Some(c),
                '[' | '{' => depth += 1,
                ']' | '}' => depth -= 1,
                ',' if depth == 0 => {
                    out.push(inner[start..i].trim());
                    start = i + 1;
                }
                _ => {}
            },
        }
    }
    let last = inner[start..].trim();
    if !last.is_empty() {
        out.push(last);
    }
    out
}

impl Parser {
    fn err(&self, line: usize, message: &str) -> YamlError {
        YamlError {
            line,
            message: message.to_owned(),
        }
    }

    /// The node starting at the current line, which must be indented at least `min`.
    fn node(&mut self, min: usize) -> Result<Node, YamlError> {
        let Some(l) = self.lines.get(self.i) else {
            return Ok(Node::Null);
        };
        if l.indent < min {
            return Ok(Node::Null);
        }
        let indent = l.indent;
        if is_seq_item(&l.text) {
            self.seq(indent)
        } else if split_key(&l.text).is_some() {
            self.map(indent)
        } else {
            let (no, text) = (l.no, l.text.clone());
            self.i += 1;
            self.inline(&text, no)
        }
    }

    fn seq(&mut self, indent: usize) -> Result<Node, YamlError> {
        let mut items = Vec::new();
        while let Some(l) = self.lines.get(self.i) {
            if l.indent != indent || !is_seq_item(&l.text) {
                break;
            }
            let no = l.no;
            let rest = l.text[1..].trim_start().to_owned();
            let offset = l.text.len() - rest.len();
            if rest.is_empty() {
                self.i += 1;
                items.push((no, self.node(indent + 1)?));
            } else if is_seq_item(&rest)
                || split_key(&rest).is_some() && !rest.starts_with(['[', '{'])
            {
                // `- key: v` opens a map (or `- - x` a sequence) at the item's column.
                self.lines[self.i] = Line {
                    no,
                    indent: indent + offset,
                    text: rest,
                };
                items.push((no, self.node(indent + offset)?));
            } else {
                self.i += 1;
                items.push((no, self.inline(&rest, no)?));
            }
        }
        Ok(Node::Seq(items))
    }

    fn map(&mut self, indent: usize) -> Result<Node, YamlError> {
        let mut entries: Vec<(String, usize, Node)> = Vec::new();
        while let Some(l) = self.lines.get(self.i) {
            if l.indent != indent || is_seq_item(&l.text) {
                if l.indent > indent {
                    return Err(self.err(l.no, "unexpected indentation"));
                }
                break;
            }
            let no = l.no;
            let text = l.text.clone();
            let Some((key, rest)) = split_key(&text) else {
                return Err(self.err(no, "expected `key: value`"));
            };
            self.i += 1;
            let mut rest = rest.to_owned();
            let mut anchor = None;
            if let Some(a) = rest.strip_prefix('&') {
                let (name, after) = a.split_once(' ').unwrap_or((a, ""));
                anchor = Some(name.to_owned());
                rest = after.trim().to_owned();
            }
            let value = if rest.is_empty() {
                match self.lines.get(self.i) {
                    Some(n) if n.indent > indent => self.node(indent + 1)?,
                    Some(n) if n.indent == indent && is_seq_item(&n.text) => self.seq(indent)?,
                    _ => Node::Null,
                }
            } else if rest.starts_with('!') {
                return Err(self.tag_error(no, &rest));
            } else if rest.starts_with('>') {
                return Err(self.err(
                    no,
                    "a `>` folded block is not supported here; write the value on one line or as \
                     a `|` block",
                ));
            } else if rest.starts_with('|') {
                let mut block = Vec::new();
                while let Some(n) = self.lines.get(self.i).filter(|n| n.indent > indent) {
                    block.push(n.text.clone());
                    self.i += 1;
                }
                Node::Scalar(block.join("\n"))
            } else {
                let mut value = rest.clone();
                // A plain scalar continued on more-indented lines.
                while let Some(n) = self.lines.get(self.i).filter(|n| n.indent > indent) {
                    value.push(' ');
                    value.push_str(&n.text);
                    self.i += 1;
                }
                self.inline(&value, no)?
            };
            if let Some(name) = anchor {
                self.anchors.insert(name, value.clone());
            }
            if key == "<<" {
                let merged: Vec<Node> = match value {
                    Node::Seq(items) => items.into_iter().map(|(_, n)| n).collect(),
                    other => vec![other],
                };
                for m in merged {
                    let Node::Map(more) = m else {
                        return Err(self.err(no, "`<<` merges a map; this is not one"));
                    };
                    for e in more {
                        if !entries.iter().any(|(k, _, _)| *k == e.0) {
                            entries.push(e);
                        }
                    }
                }
                continue;
            }
            // A later key wins, as Compose's YAML loader does; merged keys never win.
            entries.retain(|(k, _, _)| *k != key);
            entries.push((key, no, value));
        }
        Ok(Node::Map(entries))
    }

    /// A YAML tag (`!reset`, `!override`, ...): Compose gives them meanings this reader does
    /// not know, so it refuses rather than read the tag as text.
    fn tag_error(&self, no: usize, text: &str) -> YamlError {
        let tag = text.split_whitespace().next().unwrap_or(text);
        self.err(
            no,
            &format!(
                "the YAML tag `{tag}` is not supported here; doctor cannot read this file the \
                 way Compose does"
            ),
        )
    }

    /// A value written on one line: alias, flow collection, or scalar.
    fn inline(&self, text: &str, no: usize) -> Result<Node, YamlError> {
        let text = text.trim();
        if text.starts_with('!') {
            return Err(self.tag_error(no, text));
        }
        if text.starts_with(['|', '>']) {
            return Err(self.err(
                no,
                "a `|` or `>` block is only supported as the value of a `key:`",
            ));
        }
        if let Some(name) = text.strip_prefix('*') {
            return self
                .anchors
                .get(name)
                .cloned()
                .ok_or_else(|| self.err(no, &format!("alias *{name} names no anchor above it")));
        }
        if let Some(inner) = text.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| self.err(no, "a `[` flow sequence must close on the same line"))?;
            let items = split_flow(inner)
                .into_iter()
                .map(|s| self.inline(s, no).map(|n| (no, n)))
                .collect::<Result<_, _>>()?;
            return Ok(Node::Seq(items));
        }
        if let Some(inner) = text.strip_prefix('{') {
            let inner = inner
                .strip_suffix('}')
                .ok_or_else(|| self.err(no, "a `{` flow map must close on the same line"))?;
            let mut entries = Vec::new();
            for item in split_flow(inner) {
                let (k, v) = split_key(item)
                    .or_else(|| item.strip_suffix(':').map(|k| (unquote(k), "")))
                    .ok_or_else(|| self.err(no, "expected `key: value` in a flow map"))?;
                let v = if v.is_empty() {
                    Node::Null
                } else {
                    self.inline(v, no)?
                };
                entries.push((k, no, v));
            }
            return Ok(Node::Map(entries));
        }
        if text == "~" || text == "null" {
            return Ok(Node::Null);
        }
        Ok(Node::Scalar(unquote(text)))
    }
}

/// One bind mount of a service, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    pub(crate) service: String,
    /// 1-based line in the compose file.
    pub(crate) line: usize,
    /// The host side, as written (before `~` and `$HOME` expansion).
    pub(crate) source: String,
    /// The path in the container, without a trailing `/`.
    pub(crate) target: String,
    pub(crate) read_only: bool,
    /// Long syntax (`type: bind ...`) rather than `src:dst[:mode]`.
    pub(crate) long: bool,
}

/// One service: its bind mounts and its `environment:`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Service {
    pub(crate) name: String,
    pub(crate) mounts: Vec<Mount>,
    pub(crate) environment: BTreeMap<String, String>,
}

/// The services of a compose file, in file order, with their bind mounts (named and anonymous
/// volumes are left out: they are not host files).
pub(crate) fn services(text: &str) -> Result<Vec<Service>, YamlError> {
    let root = parse_yaml(text)?;
    let Some(Node::Map(services)) = root.get("services") else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (name, _, svc) in services {
        let mut s = Service {
            name: name.clone(),
            ..Default::default()
        };
        if let Some(Node::Seq(vols)) = svc.get("volumes") {
            for (line, v) in vols {
                if let Some(m) = mount(name, *line, v) {
                    s.mounts.push(m);
                }
            }
        }
        match svc.get("environment") {
            Some(Node::Seq(items)) => {
                for (_, item) in items {
                    if let Some(kv) = item.as_str() {
                        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                        s.environment.insert(k.trim().to_owned(), v.to_owned());
                    }
                }
            }
            Some(Node::Map(entries)) => {
                for (k, _, v) in entries {
                    s.environment
                        .insert(k.clone(), v.as_str().unwrap_or_default().to_owned());
                }
            }
            _ => {}
        }
        out.push(s);
    }
    Ok(out)
}

/// Whether a mount source names a host path (not a named volume).
fn is_host_path(source: &str) -> bool {
    source.starts_with(['/', '.', '~', '$'])
}

fn mount(service: &str, line: usize, v: &Node) -> Option<Mount> {
    let trim = |t: &str| {
        let t = t.trim_end_matches('/');
        if t.is_empty() {
            "/".to_owned()
        } else {
            t.to_owned()
        }
    };
    match v {
        Node::Scalar(s) => {
            let parts: Vec<&str> = s.split(':').collect();
            let (source, target, opts) = match parts.as_slice() {
                [src, dst] => (*src, *dst, ""),
                [src, dst, opts] => (*src, *dst, *opts),
                _ => return None,
            };
            if !is_host_path(source) {
                return None;
            }
            Some(Mount {
                service: service.to_owned(),
                line,
                source: source.to_owned(),
                target: trim(target),
                read_only: opts.split(',').any(|o| o == "ro"),
                long: false,
            })
        }
        Node::Map(_) => {
            let ty = v.get("type").and_then(Node::as_str).unwrap_or("volume");
            let source = v.get("source").and_then(Node::as_str)?;
            let target = v.get("target").and_then(Node::as_str)?;
            if ty != "bind" && !(ty == "volume" && is_host_path(source)) {
                return None;
            }
            let ro = v
                .get("read_only")
                .and_then(Node::as_str)
                .is_some_and(|b| matches!(b, "true" | "True" | "TRUE" | "yes"));
            Some(Mount {
                service: service.to_owned(),
                line,
                source: source.to_owned(),
                target: trim(target),
                read_only: ro,
                long: true,
            })
        }
        _ => None,
    }
}

/// A `.env` file as Compose reads it: `KEY=VALUE` lines, `#` comments, optional `export `,
/// values optionally quoted.
pub(crate) fn parse_dotenv(text: &str) -> BTreeMap<String, String> {
    dotenv_entries(text)
        .into_iter()
        .map(|(_, k, v)| (k, v))
        .collect()
}

/// Each `KEY=value` line of a `.env`, in order, with its 1-based line number (a later line
/// for the same key wins, as in [`parse_dotenv`]).
pub(crate) fn dotenv_entries(text: &str) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let v = if v.starts_with(['"', '\'']) {
            unquote(v)
        } else {
            // An unquoted value ends at ` #`.
            v.split(" #").next().unwrap_or("").trim().to_owned()
        };
        out.push((i + 1, k.trim().to_owned(), v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn astro_override_short_and_long_syntax() {
        let text = b"# astro override\nversion: \"3.1\"\nservices:\n  scheduler:\n    volumes:\n      - ~/.aws:/home/astro/.aws:ro\n      - airflow_logs:/usr/local/airflow/logs\n    environment:\n      - AWS_PROFILE=dev\n  webserver:\n    volumes:\n    - type: bind\n      source: ${HOME}/.aws/credentials   # one file\n      target: /home/astro/.aws/credentials\n      read_only: false\n    environment:\n      AWS_CONFIG_FILE: \"/home/astro/.aws/credsync/config\"\n";
        let s = services(std::str::from_utf8(text).unwrap()).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "scheduler");
        assert_eq!(
            s[0].mounts,
            vec![Mount {
                service: "scheduler".into(),
                line: 6,
                source: "~/.aws".into(),
                target: "/home/astro/.aws".into(),
                read_only: true,
                long: false,
            }]
        );
        assert_eq!(s[0].environment["AWS_PROFILE"], "dev");
        let m = &s[1].mounts[0];
        assert_eq!(m.source, "${HOME}/.aws/credentials");
        assert_eq!(m.target, "/home/astro/.aws/credentials");
        assert!(!m.read_only && m.long);
        assert_eq!(m.line, 12);
        assert_eq!(
            s[1].environment["AWS_CONFIG_FILE"],
            "/home/astro/.aws/credsync/config"
        );
    }

    #[test]
    fn anchors_merge_and_flow() {
        let text = "x-aws: &aws\n  volumes: ['$HOME/.aws:/home/astro/.aws:rw,z']\nservices:\n  scheduler:\n    <<: *aws\n  triggerer:\n    <<: *aws\n    volumes: [\"/abs/.aws:/home/astro/.aws\"]\n";
        let s = services(text).unwrap();
        assert_eq!(s[0].mounts[0].source, "$HOME/.aws");
        assert!(!s[0].mounts[0].read_only);
        assert_eq!(s[1].mounts.len(), 1);
        assert_eq!(s[1].mounts[0].source, "/abs/.aws");
    }

    #[test]
    fn yaml_details() {
        let n = parse_yaml(
            "a: 'it''s # not a comment'\nb: |\n  line1\n  line2\nc:\n- 1\n- {k: v, q: \"w\"}\n",
        )
        .unwrap();
        assert_eq!(n.get("a").unwrap().as_str(), Some("it's # not a comment"));
        assert_eq!(n.get("b").unwrap().as_str(), Some("line1\nline2"));
        match n.get("c").unwrap() {
            Node::Seq(items) => {
                assert_eq!(items.len(), 2);
                assert_eq!(items[1].1.get("q").unwrap().as_str(), Some("w"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parse_yaml("a:\n\tb: 1\n").unwrap_err().line, 2);
        assert_eq!(parse_yaml("a:\n  b: 1\n c: 2\n").unwrap_err().line, 3);
        assert!(
            parse_yaml("a: *nope\n")
                .unwrap_err()
                .message
                .contains("no anchor")
        );
        assert_eq!(parse_yaml("").unwrap(), Node::Null);
    }

    #[test]
    fn refuses_what_it_cannot_read_as_compose_does() {
        // `>` folds lines into one (joining them with `\n` would be a guess); Compose's `!reset`
        // and `!override` change what a merge does (never read as text); any other tag, and a
        // block where only a `key:` may open one, are refused too. Each names its line.
        let refused = [
            ("a: 1\nb: >\n  line1\n  line2\n", 2, "`>` folded block"),
            (
                "x:\n  environment: !override\n    - A=1\n",
                2,
                "`!override`",
            ),
            ("v:\n  - a\n  - !custom b\n", 3, "`!custom`"),
            ("v: [a, !t b]\n", 1, "`!t`"),
            ("v:\n  - |\n    text\n", 2, "`|` or `>` block"),
        ];
        for (text, line, says) in refused {
            let e = parse_yaml(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}");
            assert!(e.message.contains(says), "{text:?}: {e}");
        }
        let e =
            services("services:\n  web:\n    volumes: !reset []\n    environment:\n      - A=1\n")
                .unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("`!reset`"), "{e}");
        // Quoted, a `!` or `>` is text.
        let n = parse_yaml(
            "a: '!reset'
b: \"> x\"\n",
        )
        .unwrap();
        assert_eq!(n.get("a").unwrap().as_str(), Some("!reset"));
        assert_eq!(n.get("b").unwrap().as_str(), Some("> x"));
    }

    #[test]
    fn dotenv() {
        let env = parse_dotenv("# c\nexport A=1\nB = \"two words\"\nC=x # note\nD='y'\nbad line\n");
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "two words");
        assert_eq!(env["C"], "x");
        assert_eq!(env["D"], "y");
        assert_eq!(env.len(), 4);
    }
}
