//! What a user reads cites only what a user has: README, docs/, the sources (doc comments and
//! messages), the example config, the service files and the Homebrew formula name no internal
//! design document and no issue number of this project.

use std::fs;
use std::path::{Path, PathBuf};

fn files(root: &Path, out: &mut Vec<PathBuf>) {
    if root.is_file() {
        out.push(root.to_owned());
        return;
    }
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        files(&e.path(), out);
    }
}

/// The internal design document's file name and nickname, built from parts so that this file
/// does not itself read as citing them.
const DESIGN_DOC: &str = concat!("design", ".md");
const DESIGN_NICKNAME: &str = concat!("design", " card");

/// The first internal reference in `text`: the design document by file name or nickname, or an
/// issue number ("issue" then a number, with or without `#`), in any case.
fn internal_reference(text: &str) -> Option<String> {
    let lower = text.to_lowercase();
    for needle in [DESIGN_DOC, DESIGN_NICKNAME] {
        if let Some(i) = lower.find(needle) {
            return Some(lower[i..].chars().take(40).collect());
        }
    }
    let mut from = 0;
    while let Some(i) = lower[from..].find("issue") {
        let at = from + i;
        let before_ok = lower[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric());
        let rest = lower[at + "issue".len()..].trim_start_matches([' ', '#']);
        if before_ok && rest.starts_with(|c: char| c.is_ascii_digit()) {
            return Some(lower[at..].chars().take(40).collect());
        }
        from = at + "issue".len();
    }
    None
}

#[test]
fn user_facing_text_cites_nothing_the_user_lacks() {
    let numbered = format!("see {} #12 here", "Issue");
    assert_eq!(
        internal_reference(&numbered),
        Some(format!("{} #12 here", "issue"))
    );
    assert_eq!(
        internal_reference(&format!("({DESIGN_DOC} section 5)")).as_deref(),
        Some(format!("{DESIGN_DOC} section 5)").as_str())
    );
    assert_eq!(
        internal_reference(concat!("tiss", "ue 5, issues, moby/moby#15793")),
        None
    );

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = Vec::new();
    for p in [
        "README.md",
        "docs",
        "src",
        "config.example.toml",
        "systemd",
        "launchd",
        "packaging",
    ] {
        files(&root.join(p), &mut all);
    }
    assert!(all.len() > 20, "found the files: {all:?}");
    let hits: Vec<String> = all
        .iter()
        .filter_map(|p| {
            let text = fs::read_to_string(p).ok()?;
            text.lines().enumerate().find_map(|(n, line)| {
                internal_reference(line).map(|r| {
                    format!(
                        "{}:{}: {r}",
                        p.strip_prefix(root).unwrap_or(p).display(),
                        n + 1
                    )
                })
            })
        })
        .collect();
    assert!(hits.is_empty(), "internal references:\n{}", hits.join("\n"));
}
