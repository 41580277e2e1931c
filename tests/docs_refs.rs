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

/// The first internal reference in `text`: "design.md", "design card", or "issue N" /
/// "issue #N" (any case).
fn internal_reference(text: &str) -> Option<String> {
    let lower = text.to_lowercase();
    for needle in ["design.md", "design card"] {
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
    assert_eq!(
        internal_reference("see Issue #12 here"),
        Some("issue #12 here".into())
    );
    assert_eq!(
        internal_reference("(design.md section 5)").as_deref(),
        Some("design.md section 5)")
    );
    assert_eq!(
        internal_reference("tissue 5, issues, moby/moby#15793"),
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
