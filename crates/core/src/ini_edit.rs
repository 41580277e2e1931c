//! The byte-preserving editor of the AWS credentials file: a pure function from the old text and
//! the sections credsync manages to the new text.
//!
//! # What credsync owns
//!
//! A section is *managed* when the line directly above its `[name]` header is credsync's marker
//! (`# managed by credsync; expires <RFC 3339>`, at the very start of the line). Inside a managed
//! section credsync owns exactly: the marker line, the header, and the `aws_access_key_id`,
//! `aws_secret_access_key`, `aws_session_token` and `aws_account_id` lines (matched the way
//! botocore reads them: any case, `=` or `:`, plus any indented continuation lines of those
//! values). The account id belongs to the keys (botocore reads it beside them): credsync writes it
//! when it knows the account of the keys, and leaves none behind when it does not, so that keys
//! are never paired with another account's id. Static keys get theirs from `aws_account_id`
//! beside them in their own section. Every other byte
//! of the file — comments, blank lines, a user's `region = ...` inside a managed section, other
//! sections, CRLF or lone CR line endings, a missing final newline — is copied unchanged.
//!
//! # How the file is read
//!
//! Lines are split and classified by the `ini` lexer, exactly as botocore's `RawConfigParser`
//! reads them (the same lexer [`crate::aws_profile`] parses with). A section starts at a header
//! line that does not start with whitespace and whose trimmed text is `[`, a name, `]` (up to
//! the last `]`, like `RawConfigParser`); the name is trimmed, so `[ dev ]` is `dev` (the Rust
//! SDK trims, botocore does not; treating them as the same name is the safe side for conflicts).
//! An *indented* line that looks like `[dev]` does not start a section here, but it still counts
//! as "someone else's `dev`" for conflicts, because botocore reads it as a header in some
//! positions.
//!
//! # What [`apply`] does, per name
//!
//! - Managed section exists: rewrite the marker and the key lines in place (the key block goes
//!   where the first key line was, or after the section's last non-blank line if the user
//!   deleted all of them or indented the first one). Later managed duplicates of the same name
//!   are deleted: marker, header and all their key lines; their comments and blank lines stay
//!   (botocore refuses a file with a duplicate section, and credsync only ever writes one).
//! - A section with that name exists without the marker (alone or next to a managed one): a
//!   [`Conflict`]; nothing of that name is touched.
//! - No such section: a new block is appended at the end, after a newline if the file lacks a
//!   final one and after one blank line if the file does not already end with a blank line
//!   (that blank line then belongs to the file and is never removed).
//! - A name that cannot be written as a header (empty, surrounding whitespace, `[`, `]`, or a
//!   line break) is reported as a [`Conflict`] with `line == 0`.
//! - Listed in `remove`: every managed copy loses its marker and key lines; its header goes too
//!   unless user lines (comments, other keys) remain in the section, in which case the header
//!   stays and the section becomes the user's (a later write of that name is a conflict). Blank
//!   lines are always kept. Sections without the marker are never removed. A name both written
//!   and removed is written.
//!
//! New lines use the file's line ending: CRLF if the first line ending among the user's lines
//! (every line credsync did not write) is `\r\n`, LF otherwise; in a file with only credsync's
//! lines, the first line ending of the file decides. Written values have any line break
//! characters dropped, so a value can never inject a line. The output is plain `key = value`,
//! unindented, without inline comments, which both botocore and the Rust SDK read.
//!
//! One reader difference credsync cannot fix without moving user lines: the Rust SDK reads an
//! *indented* comment (`  # note`) as a continuation of the value above it, botocore as a
//! comment. A user's indented comment right under credsync's keys is kept, and the SDK then
//! sees a spoiled session token (or, once the keys are removed, a file it refuses); unindented
//! comments are fine for both.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::time::SystemTime;

use crate::ini::{self, Line, Token, is_comment, is_indented, split_lines, split_option};
use crate::secret::{Credentials, ExposeSecret, SecretString};
use crate::timefmt;

/// Every managed section has this comment line directly above its header.
pub const MARKER_PREFIX: &str = "# managed by credsync";

const ACCESS_KEY_ID: &str = "aws_access_key_id";
const SECRET_ACCESS_KEY: &str = "aws_secret_access_key";
const SESSION_TOKEN: &str = "aws_session_token";
const ACCOUNT_ID: &str = "aws_account_id";
/// The keys credsync writes in a managed section, lower-case (botocore lower-cases keys).
const OWN_KEYS: [&str; 4] = [ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN, ACCOUNT_ID];

/// One section credsync wants in the file.
#[derive(Debug, Clone)]
pub struct ManagedSection<'a> {
    /// Section name as written between the brackets (`default`, `dev`), no `profile ` prefix.
    pub name: &'a str,
    pub credentials: &'a Credentials,
}

/// A section the user (or another tool) owns, which credsync was asked to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub section: String,
    /// 1-based line of the section's header in the old text; `0` when the name itself cannot be
    /// written as a section header (see [`is_writable_name`]).
    pub(crate) line: usize,
}

/// The result of an edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub text: String,
    /// Sections that were asked for but belong to someone else; left untouched.
    pub conflicts: Vec<Conflict>,
}

/// Upserts `sections` and removes the managed sections named in `remove`, keeping every byte
/// credsync did not write. See the module documentation for the exact rules.
pub fn apply(old: &str, sections: &[ManagedSection<'_>], remove: &[&str]) -> Edit {
    let doc = Doc::parse(old, sections.len() + remove.len());
    let eol = doc.line_ending();
    let mut plan = LineEdits::new(doc.lines.len());
    let mut conflicts = Vec::new();
    let mut appends = Vec::new();
    let mut written: HashSet<&str> = HashSet::new();

    for section in sections {
        let name = section.name;
        if !written.insert(name) {
            continue; // the first entry for a name wins
        }
        if !is_writable_name(name) {
            conflicts.push(Conflict {
                section: name.to_owned(),
                line: 0,
            });
            continue;
        }
        if let Some(line) = doc.foreign_header(name) {
            conflicts.push(Conflict {
                section: name.to_owned(),
                line: line + 1,
            });
            continue;
        }
        let marker = marker_line(section.credentials.expiration, eol);
        let keys = key_block(section.credentials, eol);
        let mut copies = doc.managed(name);
        match copies.next() {
            None => appends.push(format!("{marker}[{name}]{eol}{keys}")),
            Some(first) => {
                plan.rewrite(&doc, first, marker, keys, eol);
                for duplicate in copies {
                    plan.drop_duplicate(&doc, duplicate);
                }
            }
        }
    }

    for name in remove {
        if written.contains(name) {
            continue;
        }
        for copy in doc.managed(name) {
            plan.remove(&doc, copy, eol);
        }
    }

    let mut text = plan.emit(&doc, eol);
    for block in appends {
        if !text.is_empty() {
            if !ends_with_line_break(&text) {
                text.push_str(eol);
            }
            if !ends_with_blank_line(&text) {
                // After a lone CR, a LF would merge with it into one line ending.
                text.push_str(if text.ends_with('\r') { "\r\n" } else { eol });
            }
        }
        text.push_str(&block);
    }
    Edit { text, conflicts }
}

/// Why a text is not a credentials file as botocore reads it: the first line it cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "line {line} {what}, so this is not an AWS credentials file as botocore reads it; credsync \
     will not write to it. Check [aws] credentials_file in credsync's config (and where a \
     symlink at that path points), or fix or move the file"
)]
pub struct NotIni {
    /// 1-based.
    pub line: usize,
    what: &'static str,
}

/// Checks that `text` reads as INI the way botocore reads it: every line a `[section]` header,
/// `key = value` under a header, a continuation, a comment or blank. Anything else is a file
/// credsync must not edit (a symlink or path pointing at someone else's file). Empty is fine.
pub fn check_ini(text: &str) -> Result<(), NotIni> {
    let mut lexer = ini::Lexer::new();
    let mut section = false;
    for (i, line) in split_lines(text).iter().enumerate() {
        let what = match lexer.next(line.content) {
            Token::Header(_) => {
                section = true;
                continue;
            }
            Token::Invalid => "is neither a [section] header nor `key = value`",
            Token::Option { .. } if !section => "comes before the first [section] header",
            Token::Option { key, .. } if key.is_empty() => "has a value but no key",
            _ => continue,
        };
        return Err(NotIni { line: i + 1, what });
    }
    Ok(())
}

/// Names of the sections in `text` that carry credsync's marker, in file order, each once.
pub fn managed_names(text: &str) -> Vec<String> {
    Parsed::new(text).managed_names()
}

/// The credentials file's sections that can be sources of other profiles (the map
/// `chain::plan` takes): all of them except the ones credsync manages. `path` is for errors.
pub fn source_credentials(
    text: &str,
    path: &std::path::Path,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, crate::aws_profile::ProfileError> {
    let mut credentials = crate::aws_profile::parse_credentials(text, path)?;
    for name in managed_names(text) {
        credentials.remove(&name);
    }
    Ok(credentials)
}

/// The credentials and expiry written in the managed section `name`, if it is there and whole.
/// To ask about many names of one text, parse it once with [`Parsed::new`].
///
/// `None` unless the first managed `name` section has a marker with a parsable expiry and
/// exactly one non-empty, single-line value for each of the three keys, at most one
/// `aws_account_id` (its value, when not empty, is the credentials' `account_id`), and no
/// unmarked section of that name exists (credsync would not write there, so what is on disk is
/// not credsync's).
pub fn read_managed(text: &str, name: &str) -> Option<(Credentials, SystemTime)> {
    Parsed {
        doc: Doc::parse(text, 1),
    }
    .read_managed(name)
}

/// A credentials file's text split into sections once, for reading the managed sections of many
/// names: each look-up costs a search among the section names, not a pass over the file.
pub struct Parsed<'a> {
    doc: Doc<'a>,
}

impl<'a> Parsed<'a> {
    pub fn new(text: &'a str) -> Parsed<'a> {
        Parsed {
            doc: Doc::parse(text, usize::MAX),
        }
    }

    /// [`managed_names`] of the text.
    pub fn managed_names(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        self.doc
            .sections
            .iter()
            .filter(|s| s.marker.is_some() && seen.insert(s.name))
            .map(|s| s.name.to_owned())
            .collect()
    }

    /// [`read_managed`] of the text.
    pub fn read_managed(&self, name: &str) -> Option<(Credentials, SystemTime)> {
        let doc = &self.doc;
        if doc.foreign_header(name).is_some() {
            return None;
        }
        let section = doc.managed(name).next()?;
        let marker = doc.lines[section.marker?].content;
        let expires = marker[MARKER_PREFIX.len()..]
            .trim_start()
            .strip_prefix(';')?
            .trim()
            .strip_prefix("expires")?;
        let expires = timefmt::parse(expires)?;

        let mut values: [Option<&str>; 4] = [None; 4];
        let roles = doc.roles(section);
        for (i, role) in section.body.clone().zip(roles) {
            match role {
                Role::User => {}
                Role::OwnContinuation => return None,
                Role::OwnKey => {
                    let (key, value) = split_option(doc.lines[i].content)?;
                    let slot = OWN_KEYS.iter().position(|k| *k == key)?;
                    if values[slot].replace(value).is_some() {
                        return None; // a duplicate key: botocore would refuse the file
                    }
                }
            }
        }
        let [Some(id), Some(secret), Some(token), account] = values else {
            return None;
        };
        if id.is_empty() || secret.is_empty() || token.is_empty() {
            return None;
        }
        let credentials = Credentials {
            access_key_id: SecretString::from(id.to_owned()),
            secret_access_key: SecretString::from(secret.to_owned()),
            session_token: Some(SecretString::from(token.to_owned())),
            expiration: Some(expires),
            account_id: account.filter(|a| !a.is_empty()).map(str::to_owned),
        };
        Some((credentials, expires))
    }
}

/// Whether `name` can be written as `[name]` and read back as the same name by botocore and the
/// Rust SDK: non-empty, no surrounding whitespace, no brackets, no line break.
///
/// Note: the Rust SDK (aws-config 1.x) also silently ignores a profile whose name is not made of
/// ASCII letters, digits and `_-/.%@:+` (`[ünï]` is fine for botocore, invisible to the SDK).
/// Such names are still written (the configuration accepts them: botocore, which the containers
/// use, reads them).
pub(crate) fn is_writable_name(name: &str) -> bool {
    !name.is_empty() && name.trim() == name && !name.contains(['[', ']', '\r', '\n'])
}

/// A section: its header line, the marker line above it if managed, and its body lines (up to
/// the next header, or up to the next header's marker).
#[derive(Debug, Clone)]
struct Section<'a> {
    name: &'a str,
    header: usize,
    marker: Option<usize>,
    body: Range<usize>,
}

/// What a line in a managed section's body is, as botocore would read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    User,
    /// A `aws_access_key_id`/`aws_secret_access_key`/`aws_session_token`/`aws_account_id`
    /// option line.
    OwnKey,
    /// An indented line continuing the value of an [`Role::OwnKey`] line.
    OwnContinuation,
}

/// The file split into lines and sections.
struct Doc<'a> {
    lines: Vec<Line<'a>>,
    sections: Vec<Section<'a>>,
    /// Indented lines that look like a header: not a section start, but a name someone uses.
    indented_headers: Vec<(usize, &'a str)>,
    /// For a caller that looks up many names: the sections by name. Without it, each look-up
    /// scans every section.
    by_name: Option<ByName<'a>>,
}

/// Below this many names to look up, scanning the sections costs less than sorting them.
const SORT_FROM: usize = 16;

/// The sections ordered by name, searched by [`Doc::managed`] and [`Doc::foreign_header`]: an
/// edit of every managed section of a large file costs a search per name, not a scan per name.
struct ByName<'a> {
    /// The indices in `sections` of the managed sections, ordered by name, then by position.
    managed: Vec<usize>,
    /// The headers credsync does not own (unmarked sections, indented headers) as (name,
    /// 0-based line), ordered by name, then by line.
    foreign: Vec<(&'a str, usize)>,
}

impl<'a> Doc<'a> {
    /// Splits `text`; sorts the sections by name when `lookups` names will be looked up and
    /// that is at least [`SORT_FROM`].
    fn parse(text: &'a str, lookups: usize) -> Self {
        let lines = split_lines(text);
        let mut starts = Vec::new();
        let mut indented_headers = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            if let Some(name) = header_name(line.content) {
                if is_indented(line.content) {
                    indented_headers.push((i, name));
                } else {
                    starts.push((i, name));
                }
            }
        }
        let marker_of = |header: usize| {
            let above = header.checked_sub(1)?;
            is_marker(lines.get(above)?.content).then_some(above)
        };
        let sections: Vec<Section<'a>> = starts
            .iter()
            .enumerate()
            .map(|(k, &(header, name))| {
                let end = match starts.get(k + 1) {
                    Some(&(next, _)) => marker_of(next).unwrap_or(next),
                    None => lines.len(),
                };
                Section {
                    name,
                    header,
                    marker: marker_of(header),
                    body: header + 1..end,
                }
            })
            .collect();
        let by_name = (lookups >= SORT_FROM).then(|| ByName::of(&sections, &indented_headers));
        Doc {
            lines,
            sections,
            indented_headers,
            by_name,
        }
    }

    /// The managed sections called `name`, in file order.
    fn managed<'d>(&'d self, name: &'d str) -> impl Iterator<Item = &'d Section<'a>> + 'd {
        let searched = self.by_name.as_ref().map(|by| {
            let from = by
                .managed
                .partition_point(|&k| self.sections[k].name < name);
            by.managed[from..]
                .iter()
                .map(|&k| &self.sections[k])
                .take_while(move |s| s.name == name)
        });
        let scanned = self.by_name.is_none().then(|| {
            self.sections
                .iter()
                .filter(move |s| s.marker.is_some() && s.name == name)
        });
        let searched = searched.into_iter().flatten();
        searched.chain(scanned.into_iter().flatten())
    }

    /// The 0-based line of the first header called `name` that credsync does not own.
    fn foreign_header(&self, name: &str) -> Option<usize> {
        if let Some(by) = &self.by_name {
            let at = by.foreign.partition_point(|&(n, _)| n < name);
            let &(found, line) = by.foreign.get(at)?;
            return (found == name).then_some(line);
        }
        let unmarked = self
            .sections
            .iter()
            .filter(|s| s.marker.is_none() && s.name == name)
            .map(|s| s.header);
        let indented = self
            .indented_headers
            .iter()
            .filter(|(_, n)| *n == name)
            .map(|(i, _)| *i);
        unmarked.chain(indented).min()
    }

    /// The line ending new lines get: `\r\n` if the first line ending of the user's lines is
    /// one, else `\n`. credsync's own lines only count in a file that has no user lines, so
    /// removing a managed block cannot change the choice for the next edit.
    fn line_ending(&self) -> &'static str {
        fn ending<'l>(line: &Line<'l>) -> &'l str {
            &line.full[line.content.len()..]
        }
        // Lines are looked at in order and the first user line with an ending decides, so the
        // roles of a managed section are worked out only when such a line could be in it (and
        // once): in most files the very first line decides.
        let mut cached: Option<(usize, Vec<Role>)> = None;
        let mut first_user = None;
        for (i, line) in self.lines.iter().enumerate() {
            if ending(line).is_empty() {
                continue;
            }
            let k = self
                .sections
                .partition_point(|s| s.marker.unwrap_or(s.header) <= i);
            let owned = match k.checked_sub(1).map(|k| (k, &self.sections[k])) {
                Some((k, s)) if s.marker.is_some() && i < s.body.end => {
                    if i == s.header || Some(i) == s.marker {
                        true
                    } else {
                        if cached.as_ref().is_none_or(|(c, _)| *c != k) {
                            cached = Some((k, self.roles(s)));
                        }
                        let roles = cached.as_ref().map(|(_, r)| r.as_slice()).unwrap_or(&[]);
                        roles
                            .get(i - s.body.start)
                            .is_some_and(|r| *r != Role::User)
                    }
                }
                _ => false,
            };
            if !owned {
                first_user = Some(line);
                break;
            }
        }
        let first = first_user.or_else(|| self.lines.iter().find(|l| !ending(l).is_empty()));
        match first {
            Some(line) if ending(line) == "\r\n" => "\r\n",
            _ => "\n",
        }
    }

    /// The role of each body line of `section`, following `RawConfigParser`: comments and blank
    /// lines never change which option an indented line continues; an indented line right after
    /// the header (no option yet) is itself an option line.
    fn roles(&self, section: &Section<'_>) -> Vec<Role> {
        let mut lexer = ini::Lexer::after_header();
        let mut own = false;
        self.lines[section.body.clone()]
            .iter()
            .map(|line| match lexer.next(line.content) {
                Token::Continuation(_) if own => Role::OwnContinuation,
                Token::Option { key, .. } => {
                    own = OWN_KEYS.contains(&key.as_str());
                    if own { Role::OwnKey } else { Role::User }
                }
                // An indented header that continues nothing: botocore reads it as a header
                // (`foreign_header` counts its name), and it closes the open option.
                Token::Header(_) => {
                    own = false;
                    Role::User
                }
                // Not an option: botocore records an error and keeps the current option.
                Token::Blank | Token::Comment | Token::Continuation(_) | Token::Invalid => {
                    Role::User
                }
            })
            .collect()
    }
}

impl<'a> ByName<'a> {
    fn of(sections: &[Section<'a>], indented_headers: &[(usize, &'a str)]) -> ByName<'a> {
        let mut managed = Vec::new();
        let mut foreign: Vec<(&str, usize)> =
            indented_headers.iter().map(|&(i, n)| (n, i)).collect();
        for (k, s) in sections.iter().enumerate() {
            match s.marker {
                Some(_) => managed.push(k),
                None => foreign.push((s.name, s.header)),
            }
        }
        managed.sort_unstable_by_key(|&k| (sections[k].name, k));
        foreign.sort_unstable();
        ByName { managed, foreign }
    }
}

/// What happens to each old line, and what is inserted after it.
#[derive(Debug, Clone)]
enum Action {
    Keep,
    Drop,
    Replace(String),
}

struct LineEdits {
    actions: Vec<Action>,
    after: Vec<String>,
}

impl LineEdits {
    fn new(lines: usize) -> Self {
        LineEdits {
            actions: vec![Action::Keep; lines],
            after: vec![String::new(); lines],
        }
    }

    /// New marker and key lines in `section`, everything else kept. The header keeps its text
    /// (`[ dev ]` stays spaced) but gets the file's line ending, like the rest of the block.
    fn rewrite(
        &mut self,
        doc: &Doc<'_>,
        section: &Section<'_>,
        marker: String,
        keys: String,
        eol: &str,
    ) {
        if let Some(m) = section.marker {
            self.actions[m] = Action::Replace(marker);
        }
        self.actions[section.header] =
            Action::Replace(format!("{}{eol}", doc.lines[section.header].content));
        let mut first_key = None;
        for (i, role) in section.body.clone().zip(doc.roles(section)) {
            if role != Role::User {
                self.actions[i] = Action::Drop;
            }
            if role == Role::OwnKey && first_key.is_none() {
                first_key = Some(i);
            }
        }
        // An indented key line may have indented user lines after it that are options of their
        // own; under our unindented lines they would continue our last value. Such a block goes
        // to the end instead.
        match first_key.filter(|&i| !ini::is_indented(doc.lines[i].content)) {
            Some(i) => self.actions[i] = Action::Replace(keys),
            None => {
                // After the last non-blank line, so no user line becomes a continuation of ours.
                let at = section
                    .body
                    .clone()
                    .rev()
                    .find(|&i| !doc.lines[i].content.trim().is_empty())
                    .unwrap_or(section.header);
                self.after[at].push_str(&keys);
            }
        }
    }

    /// Marker and key lines go; the header too unless user lines other than blank ones remain,
    /// in which case it stays (with the file's line ending) and the section is the user's.
    fn remove(&mut self, doc: &Doc<'_>, section: &Section<'_>, eol: &str) {
        if let Some(m) = section.marker {
            self.actions[m] = Action::Drop;
        }
        let mut user_lines = false;
        for (i, role) in section.body.clone().zip(doc.roles(section)) {
            if role == Role::User {
                user_lines |= !doc.lines[i].content.trim().is_empty();
            } else {
                self.actions[i] = Action::Drop;
            }
        }
        self.actions[section.header] = if user_lines {
            Action::Replace(format!("{}{eol}", doc.lines[section.header].content))
        } else {
            Action::Drop
        };
    }

    /// A later managed copy of a section: everything but its comments and blank lines goes.
    fn drop_duplicate(&mut self, doc: &Doc<'_>, section: &Section<'_>) {
        if let Some(m) = section.marker {
            self.actions[m] = Action::Drop;
        }
        self.actions[section.header] = Action::Drop;
        for i in section.body.clone() {
            let c = doc.lines[i].content;
            if !(c.trim().is_empty() || is_comment(c)) {
                self.actions[i] = Action::Drop;
            }
        }
    }

    fn emit(&self, doc: &Doc<'_>, eol: &str) -> String {
        let extra: usize = self.after.iter().map(String::len).sum();
        let mut out =
            String::with_capacity(doc.lines.iter().map(|l| l.full.len()).sum::<usize>() + extra);
        for (i, line) in doc.lines.iter().enumerate() {
            match &self.actions[i] {
                Action::Keep => out.push_str(line.full),
                Action::Drop => {}
                Action::Replace(text) => out.push_str(text),
            }
            if !self.after[i].is_empty() {
                if !out.is_empty() && !ends_with_line_break(&out) {
                    out.push_str(eol);
                }
                out.push_str(&self.after[i]);
            }
        }
        out
    }
}

fn ends_with_line_break(text: &str) -> bool {
    text.ends_with(['\n', '\r'])
}

/// Whether the last (terminated) line of `text` is empty or whitespace only.
fn ends_with_blank_line(text: &str) -> bool {
    let Some(body) = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .or_else(|| text.strip_suffix('\r'))
    else {
        return false;
    };
    let last = body.rfind(['\n', '\r']).map_or(body, |i| &body[i + 1..]);
    last.trim().is_empty()
}

/// The trimmed name of a `[name]` line (indented or not), up to the last `]`.
fn header_name(line: &str) -> Option<&str> {
    ini::header(line).map(str::trim)
}

/// Credsync's marker: the prefix at the very start of the line, then the end or `;`.
fn is_marker(line: &str) -> bool {
    line.strip_prefix(MARKER_PREFIX)
        .is_some_and(|rest| rest.trim().is_empty() || rest.trim_start().starts_with(';'))
}

fn marker_line(expiration: Option<SystemTime>, eol: &str) -> String {
    match expiration {
        Some(t) => format!("{MARKER_PREFIX}; expires {}{eol}", timefmt::rfc3339(t)),
        None => format!("{MARKER_PREFIX}{eol}"),
    }
}

/// The key lines for `credentials`, each ending in `eol`.
fn key_block(credentials: &Credentials, eol: &str) -> String {
    let mut out = String::new();
    let mut line = |key: &str, value: &str| {
        out.push_str(key);
        out.push_str(" = ");
        out.extend(value.chars().filter(|c| !matches!(c, '\r' | '\n')));
        out.push_str(eol);
    };
    line(ACCESS_KEY_ID, credentials.access_key_id.expose_secret());
    line(
        SECRET_ACCESS_KEY,
        credentials.secret_access_key.expose_secret(),
    );
    if let Some(token) = &credentials.session_token {
        line(SESSION_TOKEN, token.expose_secret());
    }
    if let Some(account) = &credentials.account_id {
        line(ACCOUNT_ID, account);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// 2026-11-29T15:00:00Z
    const T1: u64 = 1_795_964_400;

    fn creds(id: &str, secret: &str, token: Option<&str>, exp: Option<u64>) -> Credentials {
        Credentials {
            access_key_id: id.into(),
            secret_access_key: secret.into(),
            session_token: token.map(Into::into),
            expiration: exp.map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s)),
            account_id: None,
        }
    }

    fn one() -> Credentials {
        creds("AKID1", "SECRET1", Some("TOKEN1"), Some(T1))
    }

    fn two() -> Credentials {
        creds("AKID2", "SECRET2", Some("TOKEN2"), Some(T1 + 3600))
    }

    fn write(old: &str, name: &str, c: &Credentials) -> Edit {
        apply(
            old,
            &[ManagedSection {
                name,
                credentials: c,
            }],
            &[],
        )
    }

    const BLOCK1_DEV: &str = "# managed by credsync; expires 2026-11-29T15:00:00Z\n[dev]\n\
        aws_access_key_id = AKID1\naws_secret_access_key = SECRET1\naws_session_token = TOKEN1\n";

    #[test]
    fn the_account_id_is_written_beside_the_keys_and_read_back() {
        let with_account = Credentials {
            account_id: Some("123456789012".into()),
            ..one()
        };
        let user = "[user]\naws_account_id = 999999999999\n";
        let new = write(user, "dev", &with_account).text;
        assert_eq!(
            new,
            format!("{user}\n{BLOCK1_DEV}aws_account_id = 123456789012\n")
        );
        let (read, _) = read_managed(&new, "dev").unwrap();
        assert_eq!(read.account_id.as_deref(), Some("123456789012"));
        // The account id is credsync's line: an edited one is replaced where it stood, and keys
        // whose account credsync does not know leave none behind. The user's other sections
        // keep theirs.
        let edited = new.replace(
            "aws_account_id = 123456789012",
            "AWS_Account_Id: 1\nregion = eu-west-1",
        );
        let again = write(&edited, "dev", &with_account).text;
        assert_eq!(
            again,
            format!("{user}\n{BLOCK1_DEV}aws_account_id = 123456789012\nregion = eu-west-1\n")
        );
        let without = write(&again, "dev", &one()).text;
        assert_eq!(without, format!("{user}\n{BLOCK1_DEV}region = eu-west-1\n"));
        assert_eq!(read_managed(&without, "dev").unwrap().0.account_id, None);
        let removed = apply(&again, &[], &["dev"]).text;
        assert_eq!(removed, format!("{user}\n[dev]\nregion = eu-west-1\n"));
        // Two account ids: botocore refuses the section, so it is not credsync's whole section.
        let twice = new.replace(
            "aws_account_id = 123456789012",
            "aws_account_id = 1\naws_account_id = 2",
        );
        assert!(read_managed(&twice, "dev").is_none());
        // A line break in the value cannot add a line.
        let injected = Credentials {
            account_id: Some("1234\n[evil]".into()),
            ..one()
        };
        let text = write("", "dev", &injected).text;
        assert_eq!(text, format!("{BLOCK1_DEV}aws_account_id = 1234[evil]\n"));
    }

    #[test]
    fn the_source_credentials_are_the_users_sections_not_credsyncs() {
        let user = "[base]\naws_access_key_id = AKIAUSER\naws_secret_access_key = user-secret\n";
        let text = write(user, "dev", &one()).text;
        let path = std::path::Path::new("credentials");
        let sources = source_credentials(&text, path).expect("parses");
        assert_eq!(sources.keys().collect::<Vec<_>>(), ["base"]);
        assert_eq!(sources["base"]["aws_access_key_id"], "AKIAUSER");
        assert_eq!(sources["base"]["aws_secret_access_key"], "user-secret");
        assert!(source_credentials("[base\n", path).is_err());
    }

    #[test]
    fn a_credentials_file_reads_as_ini_and_other_files_do_not() {
        for ok in [
            "",
            "\n\n",
            "# only a comment\r\n; another\r\n",
            "[default]\r\naws_access_key_id = A\r\n\r\n[tool]\r\nx: 1\r\n  more\r\n",
            "  # indented comment\n[a]\n  key = v\nregion = eu # not a comment\n[b]",
            "[a]\rk = v\r",
        ] {
            assert_eq!(check_ini(ok), Ok(()), "{ok:?}");
        }
        for (bad, line) in [
            ("root:x:0:0:root:/root:/bin/bash\n", 1),
            ("{\"Version\": 1}\n", 1),
            ("# c\n\nexport AWS_PROFILE=dev\n[a]\n", 3),
            ("[a]\nk = v\n#!/bin/sh\necho hi\n", 4),
            ("[a]\n= v\n", 2),
            ("\u{feff}[default]\n", 1),
        ] {
            let e = check_ini(bad).unwrap_err();
            assert_eq!(e.line, line, "{bad:?}");
            let msg = e.to_string();
            assert!(msg.starts_with(&format!("line {line} ")), "{msg}");
            assert!(msg.contains("not an AWS credentials file"), "{msg}");
            assert!(msg.contains("credentials_file"), "{msg}");
        }
    }

    /// The text `write` gives for a new section `new` in `old`, and the line ending it used.
    fn new_section_ending(old: &str) -> &'static str {
        let text = write(old, "new", &one()).text;
        let at = text.find("[new]").expect("the new section");
        let first_line = text[at..].split_inclusive('\n').next().unwrap_or_default();
        if first_line.ends_with("\r\n") {
            "\r\n"
        } else {
            "\n"
        }
    }

    #[test]
    fn new_lines_end_like_the_users_lines_not_credsyncs() {
        let managed_lf = BLOCK1_DEV;
        let managed_crlf = BLOCK1_DEV.replace('\n', "\r\n");
        // The user's section decides, wherever it is, whatever credsync's own lines use.
        let user_crlf = "[user]\r\nregion = eu-west-1\r\n";
        assert_eq!(
            new_section_ending(&format!("{managed_lf}{user_crlf}")),
            "\r\n"
        );
        assert_eq!(
            new_section_ending(&format!("{user_crlf}{managed_lf}")),
            "\r\n"
        );
        let user_lf = "[user]\nregion = eu-west-1\n";
        assert_eq!(
            new_section_ending(&format!("{managed_crlf}{user_lf}")),
            "\n"
        );
        // A line the user added inside a managed section is the user's (in the second managed
        // section too: each section's lines are judged by its own roles).
        let two = format!("{BLOCK1_DEV}{}", write("", "prod", &two()).text);
        let with_note = two.replace("[prod]\n", "[prod]\nnote = mine\r\n");
        assert_eq!(new_section_ending(&with_note), "\r\n");
        // A section of the user's that happens to hold the same keys credsync writes is still
        // the user's.
        let lookalike = "[user]\r\naws_access_key_id = AKIAUSER\r\naws_secret_access_key = s\r\n";
        assert_eq!(
            new_section_ending(&format!("{managed_lf}{lookalike}")),
            "\r\n"
        );
        // Nothing of the user's: credsync's own first line says it.
        assert_eq!(new_section_ending(&managed_crlf), "\r\n");
        assert_eq!(new_section_ending(managed_lf), "\n");
        assert_eq!(new_section_ending(""), "\n");
    }

    #[test]
    fn a_file_of_only_a_removed_section_and_a_new_one_starts_with_the_new_one() {
        let e = apply(
            BLOCK1_DEV,
            &[ManagedSection {
                name: "prod",
                credentials: &two(),
            }],
            &["dev"],
        );
        assert!(e.text.starts_with("# managed by credsync"), "{:?}", e.text);
        assert!(read_managed(&e.text, "dev").is_none());
        assert!(read_managed(&e.text, "prod").is_some());
    }

    #[test]
    fn keys_moved_after_a_last_line_without_a_break_start_on_a_line_of_their_own() {
        // Indented keys (an editor's doing) go after the section's last line, here the user's
        // `region` with no line break at the end of the file.
        let old = "# managed by credsync; expires 2026-11-29T15:00:00Z\n[dev]\n  aws_access_key_id = AKID1\n  \
                   aws_secret_access_key = SECRET1\n  aws_session_token = TOKEN1\nregion = eu-west-1";
        let e = write(old, "dev", &two());
        let (read, _) = read_managed(&e.text, "dev").expect("the section reads");
        assert_eq!(read.access_key_id.expose_secret(), "AKID2", "{:?}", e.text);
        let parsed =
            crate::aws_profile::parse_credentials(&e.text, std::path::Path::new("c")).unwrap();
        assert_eq!(parsed["dev"]["region"], "eu-west-1", "{:?}", e.text);
    }

    #[test]
    fn a_managed_section_with_an_empty_key_is_not_read() {
        for key in [
            "aws_access_key_id",
            "aws_secret_access_key",
            "aws_session_token",
        ] {
            let emptied: String = BLOCK1_DEV
                .lines()
                .map(|l| {
                    if l.starts_with(key) {
                        format!("{key} =\n")
                    } else {
                        format!("{l}\n")
                    }
                })
                .collect();
            assert!(
                read_managed(&emptied, "dev").is_none(),
                "{key} empty: {emptied}"
            );
        }
        assert!(read_managed(BLOCK1_DEV, "dev").is_some());
    }

    #[test]
    fn text_inserted_after_a_last_line_without_a_break_starts_on_a_new_line() {
        // The user's last line has no line break and credsync appends after it.
        let e = write("[user]\r\nregion = eu-west-1", "dev", &one());
        assert!(
            e.text.starts_with("[user]\r\nregion = eu-west-1\r\n"),
            "{:?}",
            e.text
        );
        assert!(read_managed(&e.text, "dev").is_some());
        assert_eq!(
            crate::aws_profile::parse_credentials(&e.text, std::path::Path::new("c")).unwrap()["user"]
                ["region"],
            "eu-west-1"
        );
    }

    #[test]
    fn new_file_gets_one_block() {
        let e = write("", "dev", &one());
        assert_eq!(e.text, BLOCK1_DEV);
        assert!(e.conflicts.is_empty());
    }

    #[test]
    fn appends_after_a_blank_line_and_adds_a_missing_final_newline() {
        let with_nl = write("[user]\nregion = eu-west-1\n", "dev", &one()).text;
        assert_eq!(
            with_nl,
            format!("[user]\nregion = eu-west-1\n\n{BLOCK1_DEV}")
        );
        let without_nl = write("[user]\nregion = eu-west-1", "dev", &one()).text;
        assert_eq!(without_nl, with_nl);
        // Already ends in a blank line: no second one.
        let blank = write("[user]\nx = 1\n\n", "dev", &one()).text;
        assert_eq!(blank, format!("[user]\nx = 1\n\n{BLOCK1_DEV}"));
    }

    #[test]
    fn static_keys_have_a_bare_marker_and_no_token() {
        let c = creds("AKIDS", "S", None, None);
        let e = write("", "base", &c);
        assert_eq!(
            e.text,
            "# managed by credsync\n[base]\naws_access_key_id = AKIDS\naws_secret_access_key = S\n"
        );
        assert_eq!(managed_names(&e.text), ["base"]);
        // Rewriting with temporary credentials adds the token line and the expiry.
        let again = write(&e.text, "base", &one()).text;
        assert_eq!(again, BLOCK1_DEV.replace("[dev]", "[base]"));
    }

    #[test]
    fn crlf_file_stays_crlf() {
        let old = "[user]\r\nregion = x\r\n";
        let new = write(old, "dev", &one()).text;
        assert_eq!(
            new,
            format!("{old}\r\n{}", BLOCK1_DEV.replace('\n', "\r\n"))
        );
        // Without the final CRLF, the missing one is a CRLF too.
        assert_eq!(write("[user]\r\nregion = x", "dev", &one()).text, new);
        // And a rewrite keeps it CRLF.
        let rewritten = write(&new, "dev", &two()).text;
        assert!(
            !rewritten.replace("\r\n", "").contains('\n'),
            "{rewritten:?}"
        );
        assert_eq!(
            read_managed(&rewritten, "dev").map(|(_, t)| t),
            two().expiration
        );
    }

    #[test]
    fn rewrite_in_place_keeps_position_and_surroundings() {
        let old = format!(
            "# top comment\n[a]\nx = 1\n\n{BLOCK1_DEV}; after\n\n[b]\ny = 2 ; not a comment\n"
        );
        let new = write(&old, "dev", &two()).text;
        let want = "# top comment\n[a]\nx = 1\n\n\
            # managed by credsync; expires 2026-11-29T16:00:00Z\n[dev]\n\
            aws_access_key_id = AKID2\naws_secret_access_key = SECRET2\naws_session_token = TOKEN2\n\
            ; after\n\n[b]\ny = 2 ; not a comment\n";
        assert_eq!(new, want);
    }

    #[test]
    fn user_lines_inside_a_managed_section_are_kept() {
        let old = "# managed by credsync; expires 2026-11-29T15:00:00Z\n[dev]\nregion = eu-west-1\n\
            AWS_ACCESS_KEY_ID=old\n# my note\naws_secret_access_key : old\n  continued-old\n\
            output = json\naws_session_token = old\n";
        let new = write(old, "dev", &one()).text;
        let want = "# managed by credsync; expires 2026-11-29T15:00:00Z\n[dev]\nregion = eu-west-1\n\
            aws_access_key_id = AKID1\naws_secret_access_key = SECRET1\naws_session_token = TOKEN1\n\
            # my note\noutput = json\n";
        assert_eq!(new, want);
        assert_eq!(write(&new, "dev", &one()).text, new);
    }

    #[test]
    fn keys_deleted_by_the_user_are_added_after_the_last_user_line() {
        let old = "# managed by credsync\n[dev]\nregion = x\n  more\n\n[b]\n";
        let new = write(old, "dev", &one()).text;
        let want = "# managed by credsync; expires 2026-11-29T15:00:00Z\n[dev]\nregion = x\n  more\n\
            aws_access_key_id = AKID1\naws_secret_access_key = SECRET1\naws_session_token = TOKEN1\n\n[b]\n";
        assert_eq!(new, want);
        // A header on the last line, without a newline.
        let bare = write("# managed by credsync\n[dev]", "dev", &one()).text;
        assert_eq!(bare, BLOCK1_DEV);
    }

    #[test]
    fn unmarked_section_is_a_conflict_and_untouched() {
        let old = "[a]\nx = 1\n[dev]\naws_access_key_id = mine\n";
        let e = apply(
            old,
            &[
                ManagedSection {
                    name: "dev",
                    credentials: &one(),
                },
                ManagedSection {
                    name: "ci",
                    credentials: &one(),
                },
            ],
            &["dev"],
        );
        assert_eq!(
            e.conflicts,
            [Conflict {
                section: "dev".into(),
                line: 3
            }]
        );
        assert!(e.text.starts_with(old), "{:?}", e.text);
        assert_eq!(managed_names(&e.text), ["ci"]);
        // Spacing inside the brackets does not make it a different name.
        let spaced = write("[ dev ]\nk = v", "dev", &one());
        assert_eq!(spaced.text, "[ dev ]\nk = v");
        assert_eq!(
            spaced.conflicts,
            [Conflict {
                section: "dev".into(),
                line: 1
            }]
        );
        // `[profile dev]` is another name in the credentials file.
        assert!(write("[profile dev]\n", "dev", &one()).conflicts.is_empty());
    }

    #[test]
    fn marked_and_unmarked_copies_are_a_conflict() {
        let old = format!("{BLOCK1_DEV}\n# user\n[dev]\nregion = x\n");
        let e = write(&old, "dev", &two());
        assert_eq!(e.text, old);
        assert_eq!(
            e.conflicts,
            [Conflict {
                section: "dev".into(),
                line: 8
            }]
        );
        assert!(read_managed(&old, "dev").is_none());
        // An indented header-like line counts too.
        let e = write("[a]\n  [dev]\n", "dev", &one());
        assert_eq!(
            e.conflicts,
            [Conflict {
                section: "dev".into(),
                line: 2
            }]
        );
    }

    #[test]
    fn unwritable_names_are_conflicts_at_line_zero() {
        for name in ["", " dev", "a]b", "a\nb", "[x"] {
            let e = write("[a]\n", name, &one());
            assert_eq!(e.text, "[a]\n");
            assert_eq!(
                e.conflicts,
                [Conflict {
                    section: name.into(),
                    line: 0
                }]
            );
        }
    }

    #[test]
    fn values_cannot_inject_lines() {
        let c = creds("AK\nID", "S\r\n[evil]", Some("T"), Some(T1));
        let e = write("", "dev", &c);
        assert!(!e.text.contains("\n[evil]"), "{:?}", e.text);
        assert_eq!(managed_names(&e.text), ["dev"]);
    }

    #[test]
    fn removal_drops_the_whole_block() {
        let old = format!("[a]\nx = 1\n\n{BLOCK1_DEV}\n[b]\ny = 2\n");
        let e = apply(&old, &[], &["dev", "absent"]);
        assert_eq!(e.text, "[a]\nx = 1\n\n\n[b]\ny = 2\n");
        assert!(e.conflicts.is_empty());
        // Appending to the leftover blank line adds no second separator, removal restores it.
        let added = write("[a]\n\n", "dev", &one()).text;
        assert_eq!(added, format!("[a]\n\n{BLOCK1_DEV}"));
        assert_eq!(apply(&added, &[], &["dev"]).text, "[a]\n\n");
    }

    #[test]
    fn removal_with_user_lines_left_keeps_the_header() {
        let old = format!("{BLOCK1_DEV}region = x\n# note\n");
        let new = apply(&old, &[], &["dev"]).text;
        assert_eq!(new, "[dev]\nregion = x\n# note\n");
        assert!(managed_names(&new).is_empty());
        // The section is now the user's.
        assert_eq!(
            write(&new, "dev", &one()).conflicts,
            [Conflict {
                section: "dev".into(),
                line: 1
            }]
        );
    }

    #[test]
    fn removal_never_touches_unmarked_sections() {
        let old = "[dev]\naws_access_key_id = mine\n";
        assert_eq!(apply(old, &[], &["dev"]).text, old);
    }

    #[test]
    fn duplicate_managed_sections_collapse_into_the_first() {
        let old = format!("{BLOCK1_DEV}\n[a]\nx = 1\n\n{BLOCK1_DEV}# kept\nregion = dup\n\n[b]\n");
        let new = write(&old, "dev", &two()).text;
        let want = format!(
            "{}\n[a]\nx = 1\n\n# kept\n\n[b]\n",
            write("", "dev", &two()).text
        );
        assert_eq!(new, want);
        assert_eq!(managed_names(&old), ["dev"]);
        // Removal removes every copy.
        assert_eq!(
            apply(&old, &[], &["dev"]).text,
            "\n[a]\nx = 1\n\n[dev]\n# kept\nregion = dup\n\n[b]\n"
        );
    }

    #[test]
    fn spaced_header_is_the_same_managed_name() {
        let old = "# managed by credsync; expires 2026-11-29T15:00:00Z\n[ dev\t]\naws_access_key_id = a\n";
        let new = write(old, "dev", &one()).text;
        assert_eq!(new, BLOCK1_DEV.replace("[dev]", "[ dev\t]"));
        assert_eq!(managed_names(&new), ["dev"]);
    }

    #[test]
    fn marker_must_start_the_line_and_sit_directly_above() {
        for old in [
            " # managed by credsync\n[dev]\n",
            "# managed by credsync\n\n[dev]\n",
            "# managed by credsyncX\n[dev]\n",
        ] {
            assert!(managed_names(old).is_empty(), "{old:?}");
            assert_eq!(write(old, "dev", &one()).text, old);
        }
        assert_eq!(
            managed_names("# managed by credsync ; whatever\n[dev]\n"),
            ["dev"]
        );
    }

    #[test]
    fn applying_twice_is_idempotent() {
        let old = "\u{feff}# ünïcode ✓\r\n[user]\r\nk=v\r\n";
        let sections = [
            ManagedSection {
                name: "dev",
                credentials: &one(),
            },
            ManagedSection {
                name: "ci",
                credentials: &two(),
            },
        ];
        let once = apply(old, &sections, &[]).text;
        let twice = apply(&once, &sections, &[]).text;
        assert_eq!(once, twice);
        assert_eq!(managed_names(&once), ["dev", "ci"]);
    }

    #[test]
    fn read_managed_round_trip() {
        let text = write("[user]\n", "dev", &one()).text;
        let (c, t) = read_managed(&text, "dev").expect("dev is managed");
        assert_eq!(t, SystemTime::UNIX_EPOCH + Duration::from_secs(T1));
        assert_eq!(c.expiration, Some(t));
        assert_eq!(c.access_key_id.expose_secret(), "AKID1");
        assert_eq!(c.secret_access_key.expose_secret(), "SECRET1");
        assert_eq!(
            c.session_token.as_ref().map(|s| s.expose_secret()),
            Some("TOKEN1")
        );
        assert!(read_managed(&text, "user").is_none());
        assert!(read_managed(&text, "other").is_none());
        // Incomplete: no token, no expiry, or a key deleted.
        assert!(
            read_managed(&write("", "s", &creds("A", "B", None, Some(T1))).text, "s").is_none()
        );
        assert!(
            read_managed(&write("", "s", &creds("A", "B", Some("C"), None)).text, "s").is_none()
        );
        assert!(
            read_managed(
                &text.replace("aws_secret_access_key = SECRET1\n", ""),
                "dev"
            )
            .is_none()
        );
        assert!(read_managed(&text.replace("TOKEN1\n", "TOKEN1\n  more\n"), "dev").is_none());
    }

    #[test]
    fn indented_keys_at_one_level_are_keys_as_botocore_reads_them() {
        // An indented line continues a value only when it is indented deeper than its key line.
        let text = write("", "dev", &one()).text.replace("\naws_", "\n  aws_");
        let (c, _) = read_managed(&text, "dev").expect("three keys, as botocore reads them");
        assert_eq!(c.secret_access_key.expose_secret(), "SECRET1");
        let e = write(&text, "dev", &two());
        assert_eq!(e.text, write("", "dev", &two()).text);
        // Indented user options after an indented key stay options: the keys go to the end.
        let old = "# managed by credsync\n[dev]\n  region = x\n  aws_session_token = t\n  \
                   output = json\n\n[b]\n";
        let new = write(old, "dev", &one()).text;
        assert_eq!(
            new,
            "# managed by credsync; expires 2026-11-29T15:00:00Z\n[dev]\n  region = x\n  \
             output = json\naws_access_key_id = AKID1\naws_secret_access_key = SECRET1\n\
             aws_session_token = TOKEN1\n\n[b]\n"
        );
        let read = crate::aws_profile::parse_credentials(&new, std::path::Path::new("c")).unwrap();
        assert_eq!(read["dev"]["output"], "json");
        assert_eq!(read["dev"]["aws_session_token"], "TOKEN1");
        assert_eq!(write(&new, "dev", &one()).text, new);
        // Deeper: a continuation of the key above, which read_managed refuses.
        let deeper = text.replace("  aws_secret", "    aws_secret");
        assert!(read_managed(&deeper, "dev").is_none());
    }

    #[test]
    fn line_ending_follows_the_users_lines_not_credsyncs() {
        // A block written into an empty file (LF), then the user adds CRLF lines below it.
        let old = format!("{BLOCK1_DEV}\r\n[a]\r\nx = 1\r\n");
        let removed = apply(&old, &[], &["dev"]).text;
        assert_eq!(removed, "\r\n[a]\r\nx = 1\r\n");
        let rewritten = write(&old, "dev", &two()).text;
        assert!(
            !rewritten.replace("\r\n", "").contains('\n'),
            "{rewritten:?}"
        );
        assert_eq!(write(&rewritten, "dev", &two()).text, rewritten);
        // A header left to the user gets the file's line ending too.
        let kept = apply(&format!("{BLOCK1_DEV}region = x\r\n"), &[], &["dev"]).text;
        assert_eq!(kept, "[dev]\r\nregion = x\r\n");
    }

    #[test]
    fn separator_after_a_final_lone_cr_does_not_merge_with_it() {
        let new = write("[a]\nregion=\r", "dev", &one()).text;
        assert_eq!(new, format!("[a]\nregion=\r\r\n{BLOCK1_DEV}"));
        assert_eq!(write(&new, "dev", &one()).text, new);
    }

    #[test]
    fn lone_cr_is_a_line_break_like_python_reads_it() {
        let old = "[a]\rx = 1\r[dev]\ry = 2";
        let e = write(old, "dev", &one());
        assert_eq!(
            e.conflicts,
            [Conflict {
                section: "dev".into(),
                line: 3
            }]
        );
        assert_eq!(e.text, old);
    }

    /// Pieces of a credentials file for the look-up test: managed and unmarked sections,
    /// indented headers, markers without an expiry, comments, of a few names (a spaced one
    /// among them, which is the same name once trimmed).
    fn piece() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let name = prop::sample::select(vec!["a", "b", "dev", " dev ", "c d", "ü"]);
        prop_oneof![
            name.clone().prop_map(|n| format!(
                "{MARKER_PREFIX}; expires 2026-11-29T15:00:00Z\n[{n}]\naws_access_key_id = A\n\
                 aws_secret_access_key = S\naws_session_token = T\n"
            )),
            name.clone().prop_map(|n| format!("[{n}]\nregion = x\n")),
            name.clone().prop_map(|n| format!("  [{n}]\n")),
            name.prop_map(|n| format!("{MARKER_PREFIX}\n[{n}]\n")),
            Just("# comment\n\n".to_owned()),
        ]
    }

    proptest::proptest! {
        #![proptest_config(crate::test_support::proptest_config())]

        /// An edit of many sections looks them up by name in sorted lists (one search per
        /// name, so an edit of every section of a large file stays linear); the searches must
        /// find exactly what the scans of every section (kept for a few names) find.
        #[test]
        fn searches_by_name_find_what_scans_of_the_file_find(
            pieces in proptest::collection::vec(piece(), 0..40)
        ) {
            let text = pieces.concat();
            let scanning = Doc::parse(&text, 1);
            let searching = Doc::parse(&text, SORT_FROM);
            proptest::prop_assert!(scanning.by_name.is_none() && searching.by_name.is_some());
            for name in ["a", "b", "dev", "c d", "ü", "zz", ""] {
                let headers = |d: &Doc<'_>| d.managed(name).map(|s| s.header).collect::<Vec<_>>();
                proptest::prop_assert_eq!(
                    headers(&searching),
                    headers(&scanning),
                    "{:?} in {:?}",
                    name,
                    &text
                );
                proptest::prop_assert_eq!(
                    searching.foreign_header(name),
                    scanning.foreign_header(name),
                    "{:?} in {:?}",
                    name,
                    &text
                );
            }
        }
    }
}
