//! What `credsync astro setup` changes in an Astro project and in credsync's config, as pure
//! functions from each file's text (`None`: no such file) to an [`Edit`]: the new text, or the
//! lines to paste and why they could not be added.
//!
//! Every edit only appends: the user's bytes are a prefix of the new text, and the result is
//! read back and checked before it is offered (the config parses to what was asked for; the
//! compose file's existing nodes, line numbers included, are what they were). What cannot be
//! added that way is [`Edit::Refused`], never a guess. [`unified_diff`] shows an edit.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::{self, Config, ContainerEngine, Env, toml_string};
use crate::doctor::compose::{self, Node};

/// The view's directory on the host, and where the containers see it, when credsync's config
/// has no `[container]` yet: inside the mounted `~/.aws`.
pub const VIEW_DIR: &str = "~/.aws/credsync";
pub const VIEW_IN_CONTAINER: &str = "/home/astro/.aws/credsync";
/// Where Astro's containers mount `~/.aws`.
pub const AWS_IN_CONTAINER: &str = "/home/astro/.aws";
/// The first line of an override credsync wrote, and of each block it appended.
pub const MARKER: &str = "# added by `credsync astro setup`";

/// One file's edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Nothing to add: the file already has it.
    Unchanged,
    /// The file's new text (its old bytes, then what was appended).
    Change(String),
    /// What could not be added without touching the user's lines: `why`, and the exact
    /// `lines` to add by hand.
    Refused { why: String, lines: String },
}

/// What the project's containers need from credsync's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWant {
    /// The profile to manage: its source in the AWS config and its target.
    pub source: String,
    pub target: String,
    /// Whether credsync's config already manages it (nothing to add for the profile).
    pub managed: bool,
    /// `[container] uid` to write when there is no `[container]` (`None`: Docker Desktop,
    /// where host ownership does not apply).
    pub uid: Option<u32>,
    /// `[container] engine` to write, when it must be said (the project's own Astro config
    /// sets Podman, which credsync's detection does not read).
    pub engine: Option<ContainerEngine>,
}

/// credsync's config with the profile and `[container]` added, when missing. `existing` is
/// the config as it loads now (`None`: no file). The result must parse (`path` and `env` for
/// that) and manage `want.target` with a container view; else [`Edit::Refused`].
pub fn edit_config(
    text: Option<&str>,
    existing: Option<&Config>,
    want: &ConfigWant,
    path: &Path,
    env: &Env,
) -> Edit {
    let mut add = String::new();
    if !want.managed {
        add += &format!("[[profiles]]\nsource = {}\n", toml_string(&want.source));
        if want.target != want.source {
            add += &format!("target = {}\n", toml_string(&want.target));
        }
    }
    if existing.is_none_or(|c| c.container.is_none()) {
        if !add.is_empty() {
            add.push('\n');
        }
        add += &format!(
            "[container]\ndir = {}\npath_in_container = {}\n",
            toml_string(VIEW_DIR),
            toml_string(VIEW_IN_CONTAINER)
        );
        if let Some(uid) = want.uid {
            add += &format!("uid = {uid}\n");
        }
        if let Some(e) = want.engine {
            add += &format!("engine = {}\n", toml_string(e.as_str()));
        }
    }
    if add.is_empty() {
        return Edit::Unchanged;
    }
    let block = format!("\n{MARKER} for an Astro project\n{add}");
    let new = append(text.unwrap_or(""), &block);
    // Read back: the profile and a view there, and everything the user had as it was.
    let kept = |c: &Config| {
        existing.is_none_or(|o| {
            o.aws == c.aws
                && o.write == c.write
                && o.refresh == c.refresh
                && o.control == c.control
                && o.notify == c.notify
                && (o.container.is_none() || o.container == c.container)
        })
    };
    match config::parse(&new, path, env) {
        Ok(c)
            if c.container.is_some()
                && c.profiles.iter().any(|p| p.target == want.target)
                && kept(&c) =>
        {
            Edit::Change(new)
        }
        Ok(_) => Edit::Refused {
            why: format!(
                "{} would not manage {} with a container view after adding these lines",
                path.display(),
                want.target
            ),
            lines: add,
        },
        Err(e) => Edit::Refused {
            why: format!("appending to {} would not parse: {e}", path.display()),
            lines: add,
        },
    }
}

/// The compose override with a read-only `mount` (`SOURCE:TARGET:ro`) in each of `services`
/// that lacks a mount of `TARGET` (or of a directory above it). `None`: no override yet, so a
/// whole new file. A service the user's file already names cannot be given a volume without
/// writing inside the user's lines: refused, with the lines.
pub fn edit_override(text: Option<&str>, services: &[&str], mount: &str, covers: &str) -> Edit {
    let Some(text) = text else {
        return Edit::Change(format!(
            "# Each Airflow service mounts ~/.aws (read-only), where credsync writes the\n\
             # credentials the containers read. `credsync doctor --project .` checks it.\n{}",
            services_block(services, mount, 2, true)
        ));
    };
    let parsed = match compose::services(text) {
        Ok(s) => s,
        Err(e) => {
            return Edit::Refused {
                why: format!("cannot read it ({e})"),
                lines: services_block(services, mount, 2, true),
            };
        }
    };
    let missing: Vec<&str> = services
        .iter()
        .copied()
        .filter(|s| !mounted(&parsed, s, covers))
        .collect();
    if missing.is_empty() {
        return Edit::Unchanged;
    }
    let lines = services_block(&missing, mount, 2, true);
    let named: Vec<&str> = missing
        .iter()
        .copied()
        .filter(|m| parsed.iter().any(|s| s.name == *m))
        .collect();
    if !named.is_empty() {
        let root = compose::parse_yaml(text).ok();
        let at = |name: &str| match root.as_ref().and_then(|r| r.get("services")) {
            Some(Node::Map(entries)) => entries.iter().find(|(k, _, _)| k == name).map_or_else(
                || name.to_owned(),
                |(_, line, _)| format!("{name} (line {line})"),
            ),
            _ => name.to_owned(),
        };
        let named: Vec<String> = named.iter().map(|n| at(n)).collect();
        return Edit::Refused {
            why: format!(
                "it defines {} already, so the mount goes inside your lines (under `volumes:`), \
                 which setup does not change",
                named.join(", ")
            ),
            lines,
        };
    }
    let new = match append_services(text, &missing, mount) {
        Ok(new) => new,
        Err(why) => return Edit::Refused { why, lines },
    };
    // Read back: every node of the user's file as it was (same keys, values and lines), and
    // each added service with its mount.
    let (Ok(old_root), Ok(new_root)) = (compose::parse_yaml(text), compose::parse_yaml(&new))
    else {
        return Edit::Refused {
            why: "the file with the lines added does not read back".to_owned(),
            lines,
        };
    };
    if !keeps(&old_root, &new_root, &missing) || !edit_override_done(&new, &missing, covers) {
        return Edit::Refused {
            why: "adding the lines at the end would change how the file reads".to_owned(),
            lines,
        };
    }
    Edit::Change(new)
}

/// Whether `name` in `parsed` mounts `covers` (or a directory above it).
fn mounted(parsed: &[compose::Service], name: &str, covers: &str) -> bool {
    parsed.iter().any(|s| {
        s.name == name
            && s.mounts
                .iter()
                .any(|m| covers == m.target || covers.starts_with(&format!("{}/", m.target)))
    })
}

/// Whether every one of `services` mounts `covers` in the compose file `new`.
fn edit_override_done(new: &str, services: &[&str], covers: &str) -> bool {
    compose::services(new).is_ok_and(|p| services.iter().all(|s| mounted(&p, s, covers)))
}

/// Whether `new` is `old` with only the `added` services appended under `services:`: every
/// other node, its line included, as it was.
fn keeps(old: &Node, new: &Node, added: &[&str]) -> bool {
    let Node::Map(n) = new else {
        return false;
    };
    let o: &[(String, usize, Node)] = match old {
        Node::Map(o) => o,
        Node::Null => &[],
        _ => return false,
    };
    let old_services: &[(String, usize, Node)] = match old.get("services") {
        Some(Node::Map(s)) => s,
        Some(Node::Null) | None => &[],
        Some(_) => return false,
    };
    let Some(Node::Map(ns)) = new.get("services") else {
        return false;
    };
    let extra: Vec<&str> = ns
        .iter()
        .skip(old_services.len())
        .map(|(k, _, _)| k.as_str())
        .collect();
    let same_services = ns.len() >= old_services.len()
        && ns[..old_services.len()] == *old_services
        && extra == added;
    let others_kept = o.iter().all(|(k, line, v)| {
        n.iter()
            .any(|(nk, nline, nv)| nk == k && nline == line && (k == "services" || nv == v))
    });
    let count_ok = n.len() == o.len() + usize::from(old.get("services").is_none());
    same_services && others_kept && count_ok
}

/// `text` with the services appended: under its `services:` when that is the last top-level
/// key and a block map (or empty), else as a new `services:` when there is none.
fn append_services(text: &str, services: &[&str], mount: &str) -> Result<String, String> {
    let mut top: Vec<(usize, &str)> = Vec::new();
    let mut child_indent = None;
    let mut in_services = false;
    for (i, raw) in text.lines().enumerate() {
        let body = raw.trim_start_matches(' ');
        let t = body.trim_end();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if t == "..." || (t.starts_with("---") && !top.is_empty()) {
            return Err("it holds more than one YAML document".to_owned());
        }
        let indent = raw.len() - body.len();
        if indent == 0 {
            top.push((i, t));
            in_services = t
                .split('#')
                .next()
                .is_some_and(|k| k.trim_end() == "services:");
        } else if in_services && child_indent.is_none() {
            child_indent = Some(indent);
        }
    }
    let services_at = top.iter().position(|(_, t)| t.starts_with("services:"));
    let block = match services_at {
        None => services_block(services, mount, 2, true),
        Some(at) if at + 1 == top.len() => {
            let (_, line) = top[at];
            let rest = line["services:".len()..].trim();
            if !(rest.is_empty() || rest.starts_with('#')) {
                return Err("its `services:` is not a block of one service per line".to_owned());
            }
            services_block(services, mount, child_indent.unwrap_or(2), false)
        }
        Some(_) => {
            return Err(
                "its `services:` is not the last top-level key, so nothing can be added at the end"
                    .to_owned(),
            );
        }
    };
    Ok(append(text, &block))
}

/// The override lines for `services`, each mounting `mount` read-only, indented by `indent`
/// under a `services:` line (written when `header`).
fn services_block(services: &[&str], mount: &str, indent: usize, header: bool) -> String {
    let pad = " ".repeat(indent);
    let mut s = if header {
        format!("{MARKER}\nservices:\n")
    } else {
        format!("{pad}{MARKER}\n")
    };
    for svc in services {
        s += &format!("{pad}{svc}:\n{pad}  volumes:\n{pad}    - {mount}\n");
    }
    s
}

/// `.env` with each of `want` (name, value) added when missing. A name already set to another
/// value is the user's: refused, naming its line, with the lines it needs.
pub fn edit_dotenv(text: Option<&str>, want: &[(&str, String)]) -> Edit {
    let entries = compose::dotenv_entries(text.unwrap_or(""));
    let mut add = String::new();
    let mut clash = Vec::new();
    for (k, v) in want {
        // The last line that sets it wins, as in Compose.
        match entries.iter().rev().find(|(_, name, _)| name == k) {
            Some((_, _, h)) if h == v => {}
            Some((line, _, h)) => {
                clash.push(format!("line {line} sets {k} to {h:?}"));
            }
            None => add += &format!("{k}={v}\n"),
        }
    }
    if !clash.is_empty() {
        let lines: String = want.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        return Edit::Refused {
            why: format!(
                "{}, not what the view needs; setup does not change your lines: remove {}",
                clash.join(", "),
                if clash.len() == 1 { "it" } else { "them" }
            ),
            lines,
        };
    }
    if add.is_empty() {
        return Edit::Unchanged;
    }
    Edit::Change(append(text.unwrap_or(""), &format!("{MARKER}\n{add}")))
}

/// `text`, then `block` (written with `\n`) in `text`'s own line breaks: after a line break
/// when `text` lacks its final one, and after a blank line when `text` is not empty.
fn append(text: &str, block: &str) -> String {
    let nl = line_break(text);
    let block = block.replace('\n', nl);
    let mut out = text.to_owned();
    if !out.is_empty() && !out.ends_with('\n') {
        out += nl;
    }
    let block = if out.is_empty() || out.ends_with(&format!("{nl}{nl}")) {
        block.trim_start_matches(['\r', '\n'])
    } else if block.starts_with(nl) {
        &block
    } else {
        out += nl;
        &block
    };
    out += block;
    out
}

/// The line break `text` ends its lines with: its last one's (`\r\n` or `\n`), so that what
/// is appended matches the lines it follows; `\n` when it has none.
fn line_break(text: &str) -> &'static str {
    match text.rfind('\n') {
        Some(i) if text[..i].ends_with('\r') => "\r\n",
        _ => "\n",
    }
}

/// A unified diff of `before` (`None`: a new file) to `after`, labelled `label`: one hunk from
/// the first changed line to the last, with up to three lines of context. Enough for whole-file
/// edits that append or create; "" when they are equal.
pub fn unified_diff(label: &str, before: Option<&str>, after: &str) -> String {
    let old: Vec<&str> = before.map(split_lines).unwrap_or_default();
    let new: Vec<&str> = split_lines(after);
    if before == Some(after) {
        return String::new();
    }
    let prefix = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let start = prefix.saturating_sub(3);
    let old_end = (old.len() - suffix + 3).min(old.len());
    let new_end = (new.len() - suffix + 3).min(new.len());
    let range = |from: usize, to: usize| {
        let n = to - from;
        let first = if n == 0 { from } else { from + 1 };
        if n == 1 {
            format!("{first}")
        } else {
            format!("{first},{n}")
        }
    };
    // git's a/ and b/ for a path relative to the project; an absolute path as it is.
    let (a, b) = if label.starts_with('/') {
        (label.to_owned(), label.to_owned())
    } else {
        (format!("a/{label}"), format!("b/{label}"))
    };
    let mut out = match before {
        Some(_) => format!("--- {a}\n+++ {b}\n"),
        None => format!("--- /dev/null\n+++ {b}\n"),
    };
    out += &format!(
        "@@ -{} +{} @@\n",
        range(start, old_end),
        range(start, new_end)
    );
    let line = |out: &mut String, sign: char, l: &str| {
        out.push(sign);
        match l.strip_suffix('\n') {
            Some(body) => {
                out.push_str(body);
                out.push('\n');
            }
            None => {
                out.push_str(l);
                out.push_str("\n\\ No newline at end of file\n");
            }
        }
    };
    for l in &old[start..prefix] {
        line(&mut out, ' ', l);
    }
    for l in &old[prefix..old.len() - suffix] {
        line(&mut out, '-', l);
    }
    for l in &new[prefix..new.len() - suffix] {
        line(&mut out, '+', l);
    }
    for l in &new[new.len() - suffix..new_end] {
        line(&mut out, ' ', l);
    }
    out
}

/// Lines with their `\n` (the last may lack it).
fn split_lines(s: &str) -> Vec<&str> {
    s.split_inclusive('\n').collect()
}

/// The `.env` lines that put a container on the view: its config, no credentials file (so
/// botocore goes on to `credential_process`), and the target as the profile.
pub fn dotenv_lines(path_in_container: &str, target: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_CONFIG_FILE", format!("{path_in_container}/config")),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".to_owned()),
        ("AWS_PROFILE", target.to_owned()),
    ]
}

/// The mount that puts the view where the containers read it: `~/.aws` as a whole when the
/// view is inside it at the same place (the Astro way), else the view's directory. Returns the
/// mount (`SOURCE:TARGET:ro`, with `${HOME}` for the home directory, which every Compose
/// expands) and the container path it must cover.
pub fn view_mount(view_dir: &Path, path_in_container: &str, home: &Path) -> (String, String) {
    let aws = home.join(".aws");
    let under_aws = view_dir.strip_prefix(&aws).ok();
    let pic_under = Path::new(path_in_container)
        .strip_prefix(AWS_IN_CONTAINER)
        .ok();
    if under_aws.is_some() && under_aws == pic_under {
        return (
            format!("${{HOME}}/.aws:{AWS_IN_CONTAINER}:ro"),
            path_in_container.to_owned(),
        );
    }
    let source = match view_dir.strip_prefix(home) {
        Ok(rest) => format!("${{HOME}}/{}", rest.display()),
        Err(_) => view_dir.display().to_string(),
    };
    (
        format!("{source}:{path_in_container}:ro"),
        path_in_container.to_owned(),
    )
}

/// Names of `.env` keys and values, as a map (for callers that compare).
pub fn dotenv_map(text: &str) -> BTreeMap<String, String> {
    compose::parse_dotenv(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICES3: &[&str] = &["scheduler", "dag-processor", "api-server", "triggerer"];
    const MOUNT: &str = "${HOME}/.aws:/home/astro/.aws:ro";
    const COVERS: &str = "/home/astro/.aws/credsync";

    fn env() -> Env {
        Env {
            home: "/h".into(),
            vars: BTreeMap::new(),
        }
    }

    fn want(managed: bool) -> ConfigWant {
        ConfigWant {
            source: "dev-admin".into(),
            target: "dev".into(),
            managed,
            uid: Some(50000),
            engine: None,
        }
    }

    fn changed(e: Edit) -> String {
        match e {
            Edit::Change(s) => s,
            other => panic!("expected a change, got {other:?}"),
        }
    }

    #[test]
    fn config_gets_profile_and_container_appended_and_parses() {
        let p = Path::new("/c.toml");
        let old = "# mine\n[[profiles]]\nsource = \"other\"   # keep\n\n[refresh]\nmin_remaining = \"25m\"";
        let cfg = config::parse(old, p, &env()).unwrap();
        let new = changed(edit_config(Some(old), Some(&cfg), &want(false), p, &env()));
        assert!(new.starts_with(old), "{new}");
        let c = config::parse(&new, p, &env()).unwrap();
        let targets: Vec<&str> = c.profiles.iter().map(|p| p.target.as_str()).collect();
        assert_eq!(targets, ["other", "dev"]);
        let v = c.container.unwrap();
        assert_eq!(v.path_in_container, VIEW_IN_CONTAINER);
        assert_eq!(v.uid, Some(50000));
        assert_eq!(v.dir, Path::new("/h/.aws/credsync"));
        // Again, on what it wrote: nothing to add.
        let c = config::parse(&new, p, &env()).unwrap();
        assert_eq!(
            edit_config(Some(&new), Some(&c), &want(true), p, &env()),
            Edit::Unchanged
        );
    }

    #[test]
    fn config_that_cannot_take_the_lines_is_refused_with_them() {
        // An inline `profiles = [...]` cannot be followed by `[[profiles]]`.
        let p = Path::new("/c.toml");
        let old = "profiles = [{ source = \"x\" }]\n";
        let cfg = config::parse(old, p, &env()).unwrap();
        match edit_config(Some(old), Some(&cfg), &want(false), p, &env()) {
            Edit::Refused { why, lines } => {
                assert!(why.contains("would not parse"), "{why}");
                assert!(
                    lines.starts_with("[[profiles]]\nsource = \"dev-admin\"\ntarget = \"dev\"\n"),
                    "{lines}"
                );
                assert!(lines.contains("[container]\n"), "{lines}");
            }
            other => panic!("{other:?}"),
        }
        // No file: the whole config.
        let new = changed(edit_config(None, None, &want(false), p, &env()));
        assert!(new.starts_with(MARKER), "{new}");
        config::parse(&new, p, &env()).unwrap();
    }

    #[test]
    fn new_override_has_the_marker_and_every_service() {
        let new = changed(edit_override(None, SERVICES3, MOUNT, COVERS));
        assert!(
            new.contains(&format!("{MARKER}\nservices:\n  scheduler:\n")),
            "{new}"
        );
        let s = compose::services(&new).unwrap();
        let names: Vec<&str> = s.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, SERVICES3);
        for svc in &s {
            assert_eq!(svc.mounts[0].source, "${HOME}/.aws");
            assert_eq!(svc.mounts[0].target, AWS_IN_CONTAINER);
            assert!(svc.mounts[0].read_only);
        }
        assert_eq!(
            edit_override(Some(&new), SERVICES3, MOUNT, COVERS),
            Edit::Unchanged
        );
    }

    #[test]
    fn override_with_user_services_last_is_appended_to() {
        let old = "# my own\nx-common: &c\n  restart: always\nservices:\n    # my postgres\n    pg:\n        image: postgres   # pinned\n        <<: *c\n    web:\n        image: nginx";
        let new = changed(edit_override(Some(old), SERVICES3, MOUNT, COVERS));
        assert!(new.starts_with(old), "{new}");
        assert!(
            new.contains("\n    scheduler:\n      volumes:\n        - ${HOME}/.aws"),
            "{new}"
        );
        let s = compose::services(&new).unwrap();
        assert_eq!(s.len(), 6);
        assert_eq!(
            edit_override(Some(&new), SERVICES3, MOUNT, COVERS),
            Edit::Unchanged
        );
        // No `services:` at all: one is added.
        let new = changed(edit_override(
            Some("volumes:\n  data: {}\n"),
            &["scheduler"],
            MOUNT,
            COVERS,
        ));
        assert!(
            new.starts_with(&format!("volumes:\n  data: {{}}\n\n{MARKER}\nservices:\n")),
            "{new}"
        );
    }

    #[test]
    fn override_that_needs_a_change_inside_the_users_lines_is_refused() {
        // The user's scheduler: its volume would go inside their lines.
        let old = "# mine\nservices:\n  scheduler:\n    environment:\n      - A=1\n";
        match edit_override(Some(old), SERVICES3, MOUNT, COVERS) {
            Edit::Refused { why, lines } => {
                assert!(why.contains("defines scheduler (line 3) already"), "{why}");
                assert!(
                    lines.contains(
                        "  scheduler:\n    volumes:\n      - ${HOME}/.aws:/home/astro/.aws:ro\n"
                    ),
                    "{lines}"
                );
                assert!(lines.contains("  triggerer:\n"), "{lines}");
            }
            other => panic!("{other:?}"),
        }
        // `services:` followed by another top-level key.
        let old = "services:\n  pg:\n    image: postgres\nvolumes:\n  d: {}\n";
        assert!(
            matches!(edit_override(Some(old), SERVICES3, MOUNT, COVERS), Edit::Refused { why, .. } if why.contains("not the last"))
        );
        // A flow map, and a file the reader refuses.
        let old = "services: {pg: {image: postgres}}\n";
        assert!(matches!(
            edit_override(Some(old), SERVICES3, MOUNT, COVERS),
            Edit::Refused { .. }
        ));
        let old = "services:\n  pg:\n    command: >\n      a\n";
        assert!(
            matches!(edit_override(Some(old), SERVICES3, MOUNT, COVERS), Edit::Refused { why, .. } if why.contains("cannot read"))
        );
        // A last service ending in a literal block: appending would still read the same (the
        // block ends where the less-indented line starts), so it is allowed only if it does.
        let old = "services:\n  pg:\n    command: |\n      a\n";
        let e = edit_override(Some(old), &["scheduler"], MOUNT, COVERS);
        if let Edit::Change(new) = &e {
            assert_eq!(
                compose::parse_yaml(new)
                    .unwrap()
                    .get("services")
                    .unwrap()
                    .get("pg"),
                compose::parse_yaml(old)
                    .unwrap()
                    .get("services")
                    .unwrap()
                    .get("pg")
            );
        }
    }

    #[test]
    fn dotenv_keeps_lines_and_adds_a_final_newline() {
        let want = dotenv_lines(VIEW_IN_CONTAINER, "dev");
        let new = changed(edit_dotenv(Some("# mine\nAIRFLOW__CORE__X=1"), &want));
        assert_eq!(
            new,
            format!(
                "# mine\nAIRFLOW__CORE__X=1\n\n{MARKER}\nAWS_CONFIG_FILE=/home/astro/.aws/credsync/config\nAWS_SHARED_CREDENTIALS_FILE=/dev/null\nAWS_PROFILE=dev\n"
            )
        );
        assert_eq!(edit_dotenv(Some(&new), &want), Edit::Unchanged);
        // Some already there: only the rest.
        let new = changed(edit_dotenv(Some("AWS_PROFILE=dev\n"), &want));
        assert!(new.starts_with("AWS_PROFILE=dev\n\n"), "{new}");
        assert_eq!(new.matches("AWS_PROFILE").count(), 1);
        // Set to something else: the user's.
        match edit_dotenv(
            Some("# mine\nAWS_PROFILE=dev\nexport AWS_PROFILE=prod\n"),
            &want,
        ) {
            Edit::Refused { why, lines } => {
                assert_eq!(
                    why,
                    "line 3 sets AWS_PROFILE to \"prod\", not what the view needs; setup does not \
                     change your lines: remove it"
                );
                assert!(lines.ends_with("AWS_PROFILE=dev\n"));
            }
            other => panic!("{other:?}"),
        }
        assert!(changed(edit_dotenv(None, &want)).starts_with(MARKER));
    }

    /// Whether every line break of `s` is `\r\n`.
    fn all_crlf(s: &str) -> bool {
        s.match_indices('\n').all(|(i, _)| s[..i].ends_with('\r'))
    }

    #[test]
    fn crlf_files_get_crlf_lines_and_a_final_line_break_first() {
        let lines = dotenv_lines(VIEW_IN_CONTAINER, "dev");
        // .env with CRLF: credsync's lines in CRLF after a blank line, and nothing twice.
        let old = "# mine\r\nAIRFLOW__CORE__X=1\r\n";
        let new = changed(edit_dotenv(Some(old), &lines));
        assert_eq!(
            new,
            format!(
                "{old}\r\n{MARKER}\r\nAWS_CONFIG_FILE=/home/astro/.aws/credsync/config\r\nAWS_SHARED_CREDENTIALS_FILE=/dev/null\r\nAWS_PROFILE=dev\r\n"
            )
        );
        assert_eq!(edit_dotenv(Some(&new), &lines), Edit::Unchanged);
        // Without its final line break: a CRLF one first.
        let new = changed(edit_dotenv(Some("A=1\r\nB=2"), &lines));
        assert!(
            new.starts_with(&format!("A=1\r\nB=2\r\n\r\n{MARKER}\r\n")),
            "{new:?}"
        );
        assert!(all_crlf(&new), "{new:?}");
        // A single line with no line break at all: LF, the default.
        let new = changed(edit_dotenv(Some("A=1"), &lines));
        assert!(new.starts_with(&format!("A=1\n\n{MARKER}\n")), "{new:?}");
        // Mixed: the last line's break, which the added lines follow.
        let new = changed(edit_dotenv(Some("A=1\nB=2\r\n"), &lines));
        assert!(
            new.starts_with(&format!("A=1\nB=2\r\n\r\n{MARKER}\r\n")),
            "{new:?}"
        );

        // The override with CRLF, its services last: the services in CRLF under it.
        let old = "# mine\r\nservices:\r\n  pg:\r\n    image: postgres\r\n";
        let new = changed(edit_override(Some(old), SERVICES3, MOUNT, COVERS));
        assert!(new.starts_with(old), "{new:?}");
        assert!(all_crlf(&new), "{new:?}");
        assert!(
            new.contains(
                "\r\n  scheduler:\r\n    volumes:\r\n      - ${HOME}/.aws:/home/astro/.aws:ro\r\n"
            ),
            "{new:?}"
        );
        assert_eq!(
            edit_override(Some(&new), SERVICES3, MOUNT, COVERS),
            Edit::Unchanged
        );
        // ... and without its final line break.
        let old = "services:\r\n  pg:\r\n    image: postgres";
        let new = changed(edit_override(Some(old), &["scheduler"], MOUNT, COVERS));
        assert!(
            new.starts_with(&format!("{old}\r\n\r\n  {MARKER}\r\n")),
            "{new:?}"
        );
        assert!(all_crlf(&new), "{new:?}");

        // credsync's config too.
        let p = Path::new("/c.toml");
        let old = "[refresh]\r\nmin_remaining = \"25m\"";
        let cfg = config::parse(old, p, &env()).unwrap();
        let new = changed(edit_config(Some(old), Some(&cfg), &want(false), p, &env()));
        assert!(
            new.starts_with(&format!("{old}\r\n\r\n{MARKER}")),
            "{new:?}"
        );
        assert!(all_crlf(&new), "{new:?}");
    }

    #[test]
    fn diff_of_an_append_and_of_a_new_file() {
        let d = unified_diff("x", Some("a\nb\nc\nd\ne"), "a\nb\nc\nd\ne\nf\n");
        assert_eq!(
            d,
            "--- a/x\n+++ b/x\n@@ -2,4 +2,5 @@\n b\n c\n d\n-e\n\\ No newline at end of file\n+e\n+f\n"
        );
        assert_eq!(
            unified_diff("y", None, "1\n2\n"),
            "--- /dev/null\n+++ b/y\n@@ -0,0 +1,2 @@\n+1\n+2\n"
        );
        assert_eq!(unified_diff("z", Some("same\n"), "same\n"), "");
    }

    #[test]
    fn the_view_mount() {
        let home = Path::new("/h");
        assert_eq!(
            view_mount(Path::new("/h/.aws/credsync"), VIEW_IN_CONTAINER, home),
            (MOUNT.to_owned(), COVERS.to_owned())
        );
        assert_eq!(
            view_mount(Path::new("/h/view"), "/v", home).0,
            "${HOME}/view:/v:ro"
        );
    }
}
