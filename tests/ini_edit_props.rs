//! Property tests of the credentials-file editor: user bytes survive, edits are idempotent, what
//! is written reads back, and the output stays a file botocore can read.
//!
//! Files are built from pieces: user chunks (comments, blank lines, user sections with odd
//! spacing, unicode values, stray CRs, `:` separators, continuation lines) and managed sections
//! placed before, between and after them by calling `apply` on the text built so far. The test
//! then checks `apply` against an independent, deliberately simple reading of the result (see
//! [`user_bytes`]), which only has to be right for files built this way.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use credsync::ini_edit::{ManagedSection, apply, managed_names, read_managed};
use credsync::secret::{Credentials, ExposeSecret};
use credsync::timefmt::rfc3339;
use proptest::prelude::*;

/// The names credsync manages in these tests. User section names always end in a digit or are
/// `profile <managed>`, so they never equal one of these once trimmed.
const MANAGED: [&str; 4] = ["default", "dev", "ops-admin", "ünï_ro"];
const OWN_KEYS: [&str; 4] = [
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_account_id",
];

#[derive(Debug, Clone)]
struct Creds {
    id: String,
    secret: String,
    token: String,
    expires: u64,
    account: Option<String>,
}

impl Creds {
    fn to_credentials(&self) -> Credentials {
        Credentials {
            access_key_id: self.id.clone().into(),
            secret_access_key: self.secret.clone().into(),
            session_token: Some(self.token.clone().into()),
            expiration: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(self.expires)),
            account_id: self.account.clone(),
        }
    }
}

fn creds() -> impl Strategy<Value = Creds> {
    (
        "(AKIA|ASIA)[A-Z0-9]{16}",
        "[A-Za-z0-9/+]{40}",
        "[A-Za-z0-9/+=]{20,120}",
        1_600_000_000u64..2_200_000_000,
        prop::option::of("[0-9]{12}"),
    )
        .prop_map(|(id, secret, token, expires, account)| Creds {
            id,
            secret,
            token,
            expires,
            account,
        })
}

/// A line of a user chunk, without its line ending.
fn pad() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", " ", "  ", "\t"])
}

fn comment() -> impl Strategy<Value = String> {
    indentable_comment(&["", " ", "\t"])
}

/// A comment, indented by one of `leads`.
fn indentable_comment(leads: &[&'static str]) -> impl Strategy<Value = String> {
    (
        prop::sample::select(leads.to_vec()),
        prop::sample::select(vec!["#", ";"]),
        "[a-zA-Z0-9 =:\\[\\]é漢✓#;-]{0,20}",
    )
        .prop_map(|(lead, c, text)| format!("{lead}{c}{text}"))
}

fn blank() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", " ", "\t", "  \t"]).prop_map(str::to_owned)
}

/// Values may hold a lone CR (a line break for botocore), but no `[`.
fn value(allow_cr: bool) -> BoxedStrategy<String> {
    if allow_cr {
        "[a-zA-Z0-9 =:/+é漢✓\u{feff}\r-]{0,24}".boxed()
    } else {
        "[a-zA-Z0-9 =:/+é漢✓\u{feff}-]{0,24}".boxed()
    }
}

/// A key line inside a user section: any key, including credsync's own, any spacing.
fn user_section_key() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "region",
            "output",
            "aws_access_key_id",
            "AWS_Secret_Access_Key",
            "aws_session_token",
            "aws_account_id",
            "clé",
        ]),
        pad(),
        prop::sample::select(vec!["=", ":"]),
        pad(),
        value(true),
    )
        .prop_map(|(k, a, sep, b, v)| format!("{k}{a}{sep}{b}{v}"))
}

fn section_line() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => user_section_key(),
        2 => comment(),
        1 => blank(),
        // A continuation line (or a stray indented line).
        1 => ("[ \t]{1,3}", value(false)).prop_map(|(i, v)| format!("{i}x{v}")),
    ]
}

/// A line before a chunk's first header. It may end up inside the managed section above it, so
/// it is what a user would add there: comments, blanks and keys that are not credsync's, never
/// indented (an indented line would continue credsync's last value; the Rust SDK even reads an
/// indented comment that way, see the module docs of `ini_edit`).
fn preamble_line() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => indentable_comment(&[""]),
        2 => blank(),
        2 => (
            prop::sample::select(vec!["region", "output", "cli_pager", "Region"]),
            pad(),
            prop::sample::select(vec!["=", ":"]),
            pad(),
            value(false),
        )
            .prop_map(|(k, a, sep, b, v)| format!("{k}{a}{sep}{b}{v}")),
    ]
}

#[derive(Debug, Clone)]
struct UserSection {
    /// Index into a name generator; made unique when the file is built.
    base: String,
    pad_in: (&'static str, &'static str),
    trail: &'static str,
    lines: Vec<String>,
}

fn user_section() -> impl Strategy<Value = UserSection> {
    (
        prop_oneof![
            3 => "[a-zA-Z_.é漢 -]{0,6}[a-z][0-9]",
            1 => prop::sample::select(MANAGED.to_vec()).prop_map(|m| format!("profile {m}")),
        ],
        (pad(), pad()),
        prop::sample::select(vec!["", " ", "\t"]),
        prop::collection::vec(section_line(), 0..6),
    )
        .prop_map(|(base, pad_in, trail, lines)| UserSection {
            base,
            pad_in,
            trail,
            lines,
        })
}

#[derive(Debug, Clone)]
struct UserChunk {
    preamble: Vec<String>,
    sections: Vec<UserSection>,
    /// Drop the chunk's last line ending (only honoured where that cannot merge two lines).
    no_final_newline: bool,
}

fn user_chunk() -> impl Strategy<Value = UserChunk> {
    (
        prop::collection::vec(preamble_line(), 0..4),
        prop::collection::vec(user_section(), 0..3),
        any::<bool>(),
    )
        .prop_map(|(preamble, sections, no_final_newline)| UserChunk {
            preamble,
            sections,
            no_final_newline,
        })
}

/// What the generated old file is made of, and what the edit asks for.
#[derive(Debug, Clone)]
struct Case {
    crlf: bool,
    /// User chunks; managed section `i` (if placed) follows chunk `slot[i]` (`0` = before all).
    chunks: Vec<UserChunk>,
    /// For each managed name: `None` = absent from the old file, `Some(k)` = placed after k chunks.
    slots: Vec<Option<usize>>,
    old_creds: Vec<Creds>,
    new_creds: Vec<Creds>,
    /// Per managed name: 0 = not mentioned, 1 = written with new credentials, 2 = removed.
    actions: Vec<u8>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        any::<bool>(),
        prop::collection::vec(user_chunk(), 0..5),
        prop::collection::vec(prop::option::weighted(0.7, 0usize..6), MANAGED.len()),
        prop::collection::vec(creds(), MANAGED.len()),
        prop::collection::vec(creds(), MANAGED.len()),
        prop::collection::vec(0u8..3, MANAGED.len()),
    )
        .prop_map(|(crlf, chunks, slots, old_creds, new_creds, actions)| {
            let n = chunks.len();
            let slots = slots.into_iter().map(|s| s.map(|k| k.min(n))).collect();
            Case {
                crlf,
                chunks,
                slots,
                old_creds,
                new_creds,
                actions,
            }
        })
}

/// Builds the old file. Returns it and the managed names in file order.
fn build(case: &Case) -> (String, Vec<&'static str>) {
    let eol = if case.crlf { "\r\n" } else { "\n" };
    let mut text = String::new();
    let mut order = Vec::new();
    let mut used_names = HashSet::new();
    let mut place_managed = |text: &mut String, after: usize| {
        for (m, slot) in case.slots.iter().enumerate() {
            if *slot == Some(after) {
                let c = case.old_creds[m].to_credentials();
                let sections = [ManagedSection {
                    name: MANAGED[m],
                    credentials: &c,
                }];
                let edit = apply(text, &sections, &[]);
                assert!(edit.conflicts.is_empty(), "{:?}", edit.conflicts);
                *text = edit.text;
                order.push(MANAGED[m]);
            }
        }
    };
    place_managed(&mut text, 0);
    for (k, chunk) in case.chunks.iter().enumerate() {
        let mut lines: Vec<String> = chunk.preamble.clone();
        for s in &chunk.sections {
            let mut name = s.base.clone();
            while !used_names.insert(name.trim().to_owned()) {
                name.push('9');
            }
            lines.push(format!("[{}{}{}]{}", s.pad_in.0, name, s.pad_in.1, s.trail));
            lines.extend(s.lines.iter().cloned());
        }
        for line in &lines {
            text.push_str(line);
            text.push_str(eol);
        }
        let next_is_managed = case.slots.contains(&Some(k + 1));
        let last = k + 1 == case.chunks.len();
        if chunk.no_final_newline && !lines.is_empty() && (next_is_managed || last) {
            text.truncate(text.len() - eol.len());
        }
        place_managed(&mut text, k + 1);
    }
    (text, order)
}

/// Splits at `\n`, `\r\n` and lone `\r`, keeping the endings.
fn lines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let end = match b[i] {
            b'\n' => i + 1,
            b'\r' if b.get(i + 1) == Some(&b'\n') => i + 2,
            b'\r' => i + 1,
            _ => {
                i += 1;
                continue;
            }
        };
        out.push(&text[start..end]);
        start = end;
        i = end;
    }
    if start < b.len() {
        out.push(&text[start..]);
    }
    out
}

fn content(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

/// The section name of an unindented `[name]` line, trimmed.
fn header(line: &str) -> Option<&str> {
    let c = content(line);
    if c.starts_with(char::is_whitespace) {
        return None;
    }
    let rest = c.trim().strip_prefix('[')?;
    let close = rest.rfind(']')?;
    (close > 0).then(|| rest[..close].trim())
}

fn own_key(line: &str) -> bool {
    let c = content(line);
    c.find(['=', ':'])
        .is_some_and(|at| OWN_KEYS.contains(&c[..at].trim().to_lowercase().as_str()))
}

/// The file's lines minus everything credsync writes: in sections named like a managed name,
/// the header, the marker line right above it and the credsync key lines. What is left is the
/// user's lines, in order, with their endings.
fn user_lines(text: &str) -> Vec<&str> {
    let all = lines(text);
    let mut keep = vec![true; all.len()];
    let mut in_managed = false;
    for (i, line) in all.iter().enumerate() {
        if let Some(name) = header(line) {
            in_managed = MANAGED.contains(&name);
            if in_managed {
                keep[i] = false;
                if i > 0 && content(all[i - 1]).starts_with("# managed by credsync") {
                    keep[i - 1] = false;
                }
            }
        } else if in_managed && own_key(line) {
            keep[i] = false;
        }
    }
    all.iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(l, _)| *l)
        .collect()
}

fn user_bytes(text: &str) -> String {
    user_lines(text).concat()
}

/// The line ending credsync must use: the user's first one, else the file's first one.
fn expected_eol(text: &str) -> &'static str {
    fn ending<'l>(l: &&'l str) -> &'l str {
        &l[content(l).len()..]
    }
    let user = user_lines(text);
    let all = lines(text);
    let first = user
        .iter()
        .find(|l| !ending(l).is_empty())
        .or_else(|| all.iter().find(|l| !ending(l).is_empty()));
    match first {
        Some(l) if ending(l) == "\r\n" => "\r\n",
        _ => "\n",
    }
}

/// The file as the Rust SDK reads a credentials file, or `None` if it refuses it.
#[allow(deprecated)] // the aliases are the only path to these types without naming aws-runtime
fn sdk_parse(text: &str) -> Option<aws_config::profile::ProfileSet> {
    use aws_config::profile::profile_file::{ProfileFileKind, ProfileFiles};
    let files = ProfileFiles::builder()
        .with_contents(ProfileFileKind::Credentials, text)
        .build();
    let rt = tokio::runtime::Builder::new_current_thread().build().ok()?;
    rt.block_on(aws_config::profile::load(
        &Default::default(),
        &Default::default(),
        &files,
        None,
    ))
    .ok()
}

fn same_creds(got: &Credentials, want: &Creds) -> bool {
    got.access_key_id.expose_secret() == want.id
        && got.secret_access_key.expose_secret() == want.secret
        && got.session_token.as_ref().map(|t| t.expose_secret()) == Some(want.token.as_str())
        && got.expiration == Some(SystemTime::UNIX_EPOCH + Duration::from_secs(want.expires))
        && got.account_id == want.account
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn edits_keep_user_bytes_and_read_back(case in case()) {
        let (old, old_order) = build(&case);
        prop_assert_eq!(managed_names(&old), old_order.iter().map(|s| s.to_string()).collect::<Vec<_>>());

        // The construction itself kept every user byte: the old file minus the managed lines is
        // the user chunks (with the line endings `apply` added before its blocks).
        for (m, slot) in case.slots.iter().enumerate() {
            if slot.is_some() {
                let (c, _) = read_managed(&old, MANAGED[m]).expect("placed section reads back");
                prop_assert!(same_creds(&c, &case.old_creds[m]));
            }
        }

        let new_creds: Vec<Credentials> = case.new_creds.iter().map(Creds::to_credentials).collect();
        let sections: Vec<ManagedSection<'_>> = (0..MANAGED.len())
            .filter(|&m| case.actions[m] == 1)
            .map(|m| ManagedSection { name: MANAGED[m], credentials: &new_creds[m] })
            .collect();
        let remove: Vec<&str> = (0..MANAGED.len()).filter(|&m| case.actions[m] == 2).map(|m| MANAGED[m]).collect();

        let edit = apply(&old, &sections, &remove);
        prop_assert!(edit.conflicts.is_empty(), "{:?}", edit.conflicts);
        let new = edit.text;

        // (a) User bytes survive, in order, byte-exact; appending may only add the missing final
        // line ending and one blank separator line at the end.
        let eol = expected_eol(&old);
        let appended = sections.iter().filter(|s| !old_order.contains(&s.name)).count();
        let (old_user, new_user) = (user_bytes(&old), user_bytes(&new));
        if appended > 0 {
            // A missing final line ending, a blank line before the first block unless the file
            // already ends with one (or is empty), and a blank line between appended blocks.
            let fix = if !old.is_empty() && !old.ends_with(['\r', '\n']) { eol } else { "" };
            let between = eol.repeat(appended - 1);
            let bare = format!("{old_user}{fix}{between}");
            let with_sep = format!("{old_user}{fix}{eol}{between}");
            // After a lone CR the separator is a CRLF, so it cannot merge with the CR.
            let after_cr = format!("{old_user}{fix}\r\n{between}");
            let after_cr_ok = format!("{old_user}{fix}").ends_with('\r') && new_user == after_cr;
            prop_assert!(
                new_user == bare || new_user == with_sep || after_cr_ok,
                "user bytes changed:\nold {:?}\nnew {:?}", old_user, new_user
            );
        } else {
            prop_assert_eq!(&new_user, &old_user);
        }
        // (a') Exactly: the result is the in-place edit, then each new block appended after the
        // missing line ending and a blank line (unless the text already ends with one).
        let in_place: Vec<ManagedSection<'_>> =
            sections.iter().filter(|s| old_order.contains(&s.name)).cloned().collect();
        let mut want = apply(&old, &in_place, &remove).text;
        for (m, name) in MANAGED.iter().enumerate() {
            if case.actions[m] != 1 || old_order.contains(name) {
                continue;
            }
            if !want.is_empty() {
                if !want.ends_with(['\r', '\n']) {
                    want.push_str(eol);
                }
                let last = lines(&want).last().map_or("", |l| content(l));
                if !last.trim().is_empty() {
                    want.push_str(if want.ends_with('\r') { "\r\n" } else { eol });
                }
            }
            let c = &case.new_creds[m];
            let expires = rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(c.expires));
            want.push_str(&format!(
                "# managed by credsync; expires {expires}{eol}[{name}]{eol}aws_access_key_id = {}{eol}\
                 aws_secret_access_key = {}{eol}aws_session_token = {}{eol}",
                c.id, c.secret, c.token
            ));
            if let Some(account) = &c.account {
                want.push_str(&format!("aws_account_id = {account}{eol}"));
            }
        }
        prop_assert_eq!(&new, &want);

        // Without any edit, nothing at all changes.
        if sections.is_empty() && remove.iter().all(|r| !old_order.contains(r)) {
            prop_assert_eq!(&new, &old);
        }

        // (b) Idempotent: the same edit again changes nothing.
        let again = apply(&new, &sections, &remove);
        prop_assert!(again.conflicts.is_empty());
        prop_assert_eq!(&again.text, &new);

        // (c) What was written reads back; untouched sections keep their credentials; removed
        // ones are gone.
        let mut want_order: Vec<&str> = old_order
            .iter()
            .copied()
            .filter(|n| !remove.contains(n))
            .collect();
        for s in &sections {
            if !want_order.contains(&s.name) {
                want_order.push(s.name);
            }
        }
        prop_assert_eq!(managed_names(&new), want_order.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        for (m, name) in MANAGED.iter().enumerate() {
            let got = read_managed(&new, name);
            match case.actions[m] {
                1 => prop_assert!(got.is_some_and(|(c, _)| same_creds(&c, &case.new_creds[m])), "{}", name),
                2 => prop_assert!(got.is_none(), "{}", name),
                _ if old_order.contains(name) => {
                    prop_assert!(got.is_some_and(|(c, _)| same_creds(&c, &case.old_creds[m])), "{}", name)
                }
                _ => prop_assert!(got.is_none(), "{}", name),
            }
        }

        // (c') The Rust SDK reads what was written, whenever it read the old file's managed
        // sections right (it takes an indented comment under a key as part of the value, so a
        // user's indented comment there spoils the old file already). It ignores profiles whose
        // name is not an ASCII identifier (`ünï_ro`).
        let sdk_name = |n: &str| n.chars().all(|c| c.is_ascii_alphanumeric() || "_-/.%@:+".contains(c));
        let sdk_reads = |text: &str, names: &[&str], pick: &dyn Fn(usize) -> Creds| -> bool {
            let Some(profiles) = sdk_parse(text) else { return false };
            names.iter().filter(|n| sdk_name(n)).all(|name| {
                let m = MANAGED.iter().position(|n| n == name).expect("managed name");
                let c = pick(m);
                profiles.get_profile(name).is_some_and(|p| {
                    p.get("aws_access_key_id") == Some(c.id.as_str())
                        && p.get("aws_secret_access_key") == Some(c.secret.as_str())
                        && p.get("aws_session_token") == Some(c.token.as_str())
                })
            })
        };
        if sdk_reads(&old, &old_order, &|m| case.old_creds[m].clone()) {
            let pick = |m: usize| if case.actions[m] == 1 { case.new_creds[m].clone() } else { case.old_creds[m].clone() };
            prop_assert!(sdk_reads(&new, &want_order, &pick), "the SDK misreads {:?}", new);
        }

        // (d) botocore can read it: unique section names, and in each managed section each
        // credsync key exactly once, written plainly.
        let mut names = HashSet::new();
        let mut current: Option<&str> = None;
        let mut counts = [0usize; 4];
        let all = lines(&new);
        let check_counts = |current: Option<&str>, counts: &mut [usize; 4]| -> Result<(), TestCaseError> {
            if let Some(name) = current
                && want_order.contains(&name)
            {
                prop_assert_eq!(&counts[..3], [1, 1, 1], "keys in [{}]", name);
                prop_assert!(counts[3] <= 1, "account ids in [{}]", name);
            }
            *counts = [0; 4];
            Ok(())
        };
        for line in &all {
            if let Some(name) = header(line) {
                prop_assert!(names.insert(name.to_owned()), "duplicate section [{}] in {:?}", name, new);
                check_counts(current, &mut counts)?;
                current = Some(name);
            } else if current.is_some_and(|n| want_order.contains(&n)) && own_key(line) {
                let c = content(line);
                let key = &c[..c.find(" = ").expect("plain key = value")];
                let k = OWN_KEYS.iter().position(|k| *k == key).expect("lower-case key");
                counts[k] += 1;
            }
        }
        check_counts(current, &mut counts)?;
    }

    /// Arbitrary junk never panics, and the edit is still idempotent and reads back.
    #[test]
    fn junk_never_panics_and_is_idempotent(
        parts in prop::collection::vec(prop::sample::select(vec![
            "[", "]", "dev", "ci", " ", "\t", "#", ";", "=", ":", "\r", "\n", "\r\n", "x",
            "aws_access_key_id", "AWS_SESSION_TOKEN", "# managed by credsync",
            "; expires 2026-11-29T15:00:00Z", "é", "漢", "[dev]", "[ ci ]", "\n  ", "\u{feff}",
        ]), 0..40),
        write_dev in any::<bool>(),
        remove_ci in any::<bool>(),
        c in creds(),
    ) {
        let old: String = parts.concat();
        let credentials = c.to_credentials();
        let sections: Vec<ManagedSection<'_>> = if write_dev {
            vec![ManagedSection { name: "dev", credentials: &credentials }]
        } else {
            vec![]
        };
        let remove: Vec<&str> = if remove_ci { vec!["ci"] } else { vec![] };
        let once = apply(&old, &sections, &remove);
        let twice = apply(&once.text, &sections, &remove);
        prop_assert_eq!(&twice.text, &once.text);
        if write_dev {
            if once.conflicts.is_empty() {
                let got = read_managed(&once.text, "dev");
                prop_assert!(got.is_some_and(|(got, _)| same_creds(&got, &c)), "{:?}", once.text);
            } else {
                // A conflict leaves `dev` alone: the result is what the removal alone gives.
                prop_assert_eq!(&once.text, &apply(&old, &[], &remove).text);
            }
        }
        let _ = managed_names(&old);
        let _ = read_managed(&old, "dev");
    }
}
