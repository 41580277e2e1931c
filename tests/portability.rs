//! What keeps the macOS build compiling: a `libc` item that exists only on Linux (or has another
//! signature elsewhere) is used in `src/` and `benches/` only inside an item gated to Linux
//! (`#[cfg(target_os = "linux")]`, or `all(...)` with it), and docs/portability.md, which lists
//! every platform-specific item with its gate and what the other platform does instead, names
//! every file that has one. A source scan, so it runs (and fails) on any platform.

use std::fs;
use std::path::{Path, PathBuf};

/// `libc` items that the libc crate has for Linux and not for Apple's targets, or with another
/// signature there (the xattr calls take a position and options on macOS). An entry ending in
/// `_` or `*` is a prefix.
const LINUX_ONLY: &[&str] = &[
    "RUSAGE_THREAD",
    "inotify_*",
    "IN_*",
    "prctl",
    "PR_*",
    "O_PATH",
    "O_TMPFILE",
    "O_DIRECT",
    "O_NOATIME",
    "malloc_trim",
    "mallinfo*",
    "mallopt",
    "SO_PEERCRED",
    "ucred",
    "epoll_*",
    "EPOLL*",
    "eventfd",
    "timerfd_*",
    "signalfd",
    "memfd_create",
    "pipe2",
    "accept4",
    "SOCK_CLOEXEC",
    "SOCK_NONBLOCK",
    "gettid",
    "sched_getaffinity",
    "sched_setaffinity",
    "unshare",
    "setns",
    "CLONE_*",
    "statx",
    "renameat2",
    "fallocate",
    "posix_fadvise",
    "splice",
    "sendfile",
    "sysinfo",
    "getauxval",
    "getxattr",
    "fgetxattr",
    "lgetxattr",
    "setxattr",
    "fsetxattr",
    "lsetxattr",
    "removexattr",
    "fremovexattr",
    "listxattr",
    "flistxattr",
];

fn is_linux_only(name: &str) -> bool {
    LINUX_ONLY.iter().any(|item| match item.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == *item,
    })
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The text with comments blanked (line comments, doc comments and block comments), string
/// contents kept: a name in a comment is not a use, and offsets stay where they were.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = b.to_vec();
    let mut i = 0;
    let mut in_str = false;
    while i < b.len() {
        if in_str {
            match b[i] {
                b'\\' => i += 1,
                b'"' => in_str = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        match (b[i], b.get(i + 1)) {
            (b'"', _) if i == 0 || b[i - 1] != b'\'' => {
                in_str = true;
                i += 1;
            }
            (b'/', Some(b'/')) => {
                while i < b.len() && b[i] != b'\n' {
                    out[i] = b' ';
                    i += 1;
                }
            }
            (b'/', Some(b'*')) => {
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    if b[i] != b'\n' {
                        out[i] = b' ';
                    }
                    i += 1;
                }
                out[i..(i + 2).min(b.len())].fill(b' ');
                i += 2;
            }
            _ => i += 1,
        }
    }
    String::from_utf8(out).expect("comments are blanked with spaces")
}

/// Whether an attribute (`#[cfg(...)]` or `#![cfg(...)]`, whitespace removed) gates to Linux: a
/// `cfg` that is `target_os = "linux"` or an `all(...)` holding it, with no `not(` or `any(`.
fn is_linux_gate(attr: &str) -> bool {
    let a: String = attr.chars().filter(|c| !c.is_whitespace()).collect();
    let body = a
        .strip_prefix("#[cfg(")
        .or_else(|| a.strip_prefix("#![cfg("));
    body.is_some_and(|b| {
        (b.starts_with("target_os=\"linux\"") || b.starts_with("all("))
            && b.contains("target_os=\"linux\"")
            && !b.contains("not(")
            && !b.contains("any(")
    })
}

/// The end (exclusive) of the item that starts at `from`: past the matching `}` of its first
/// `{`, or past its `;` when that comes first (outside brackets). String and character
/// literals are skipped.
fn item_end(code: &str, from: usize) -> usize {
    let b = code.as_bytes();
    let (mut depth, mut braces) = (0i32, 0i32);
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            // A character literal ('x', '\n', '\''); a lifetime ('a) is left alone.
            b'\'' if b.get(i + 1) == Some(&b'\\') => {
                i += 2;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
            }
            b'\'' if b.get(i + 2) == Some(&b'\'') => i += 2,
            b'(' | b'[' => depth += 1,
            b')' | b']' => depth -= 1,
            b';' if depth == 0 && braces == 0 => return i + 1,
            b'{' => braces += 1,
            b'}' => {
                braces -= 1;
                if braces == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    b.len()
}

/// The byte ranges of `code` inside items gated to Linux: from each gating attribute to the end
/// of the item it is on (the attribute's own brackets skipped), the whole file for an inner
/// `#![cfg(...)]`.
fn linux_spans(code: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("#").map(|i| i + from) {
        from = at + 1;
        let rest = &code[at..];
        if !(rest.starts_with("#[") || rest.starts_with("#![")) {
            continue;
        }
        let close = item_end_of_attr(code, at);
        if !is_linux_gate(&code[at..close]) {
            continue;
        }
        if rest.starts_with("#![") {
            spans.push((0, code.len()));
        } else {
            spans.push((at, item_end(code, close)));
        }
    }
    spans
}

/// The end of the attribute starting at `at` (past its closing `]`).
fn item_end_of_attr(code: &str, at: usize) -> usize {
    let b = code.as_bytes();
    let mut depth = 0;
    for (i, c) in b.iter().enumerate().skip(at) {
        match c {
            b'[' => depth += 1,
            b']' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    b.len()
}

/// Each `libc::NAME` in `code` (and each name of a `libc::{A, B}` import), with its offset.
fn libc_uses(code: &str) -> Vec<(usize, String)> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for (at, _) in code.match_indices("libc::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[at + "libc::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            out.extend(
                inner
                    .split(',')
                    .map(|n| ident(n.trim()))
                    .filter(|n| !n.is_empty())
                    .map(|n| (at, n)),
            );
        } else {
            out.push((at, ident(rest)));
        }
    }
    out
}

/// The files a `#[cfg(target_os = "linux")] mod NAME;` (or `#[path]`-less module in a gated
/// block) leaves out off Linux: gated whole.
fn gated_modules(file: &Path, code: &str) -> Vec<PathBuf> {
    let dir = match file.file_name().and_then(|n| n.to_str()) {
        Some("lib.rs" | "main.rs" | "mod.rs") => file.parent().unwrap().to_owned(),
        _ => file.with_extension(""),
    };
    let mut out = Vec::new();
    for (start, end) in linux_spans(code) {
        let item = &code[start..end];
        let decl = item
            .split(']')
            .next_back()
            .unwrap_or_default()
            .trim()
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub ");
        if let Some(name) = decl.strip_prefix("mod ").and_then(|n| n.strip_suffix(';')) {
            out.push(dir.join(format!("{}.rs", name.trim())));
            out.push(dir.join(name.trim()).join("mod.rs"));
        }
    }
    out
}

fn line_of(text: &str, at: usize) -> usize {
    text[..at].matches('\n').count() + 1
}

/// Every use of a Linux-only `libc` item in `root`'s `src/` and `benches/` that is not inside
/// an item gated to Linux, as `file:line: libc::NAME`.
fn ungated_linux_items(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for dir in ["src", "benches"] {
        rust_files(&root.join(dir), &mut files);
    }
    let texts: Vec<(PathBuf, String)> = files
        .iter()
        .map(|f| (f.clone(), code_only(&fs::read_to_string(f).unwrap())))
        .collect();
    let gated_files: Vec<PathBuf> = texts
        .iter()
        .flat_map(|(f, code)| gated_modules(f, code))
        .collect();
    let mut found = Vec::new();
    for (file, code) in &texts {
        if gated_files.contains(file) {
            continue;
        }
        let spans = linux_spans(code);
        for (at, name) in libc_uses(code) {
            let gated = spans.iter().any(|(s, e)| (*s..*e).contains(&at));
            if is_linux_only(&name) && !gated {
                let rel = file.strip_prefix(root).unwrap_or(file);
                found.push(format!(
                    "{}:{}: libc::{name}",
                    rel.display(),
                    line_of(code, at)
                ));
            }
        }
    }
    found
}

#[test]
fn the_scan_finds_an_ungated_linux_item_and_passes_a_gated_one() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("sys")).unwrap();
    fs::create_dir_all(dir.path().join("benches")).unwrap();
    fs::write(
        src.join("lib.rs"),
        "#[cfg(target_os = \"linux\")]\nmod sys;\npub mod ok;\npub mod bad;\n",
    )
    .unwrap();
    // A module gated where it is declared.
    fs::write(
        src.join("sys/mod.rs"),
        "pub fn f() { unsafe { libc::prctl(1) }; }\n",
    )
    .unwrap();
    fs::write(
        src.join("ok.rs"),
        r#"
// libc::RUSAGE_THREAD in a comment is no use.
/// Nor in a doc comment: libc::inotify_init1.
#[cfg(target_os = "linux")]
fn thread_time() -> i32 { libc::RUSAGE_THREAD }
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() { unsafe { libc::malloc_trim(0); } }
fn anywhere() -> i32 {
    #[cfg(target_os = "linux")]
    let f = libc::O_PATH;
    libc::RUSAGE_CHILDREN + libc::O_NOFOLLOW
}
"#,
    )
    .unwrap();
    fs::write(
        src.join("bad.rs"),
        r#"
fn who() -> i32 { libc::RUSAGE_THREAD }
#[cfg(not(target_os = "linux"))]
fn elsewhere() -> i32 { libc::O_PATH }
#[cfg(any(target_os = "linux", target_os = "macos"))]
fn both() { unsafe { libc::inotify_init1(0) }; }
fn runtime() { if cfg!(target_os = "linux") { unsafe { libc::prctl(1) }; } }
use libc::{c_int, SO_PEERCRED};
"#,
    )
    .unwrap();
    assert_eq!(
        ungated_linux_items(dir.path()),
        [
            "src/bad.rs:2: libc::RUSAGE_THREAD",
            "src/bad.rs:4: libc::O_PATH",
            "src/bad.rs:6: libc::inotify_init1",
            "src/bad.rs:7: libc::prctl",
            "src/bad.rs:8: libc::SO_PEERCRED",
        ]
    );
}

#[test]
fn linux_only_libc_items_are_used_only_behind_a_linux_cfg() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let found = ungated_linux_items(root);
    assert!(
        found.is_empty(),
        "Linux-only libc items outside a #[cfg(target_os = \"linux\")] item (they do not \
         build for macOS; gate the item and say in docs/portability.md what macOS does \
         instead):\n{}",
        found.join("\n")
    );
}

/// The files of `src/` and `benches/` with a platform gate (`target_os` in a `cfg` attribute or
/// `cfg!`), relative to the repository.
fn files_with_gates(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for dir in ["src", "benches"] {
        rust_files(&root.join(dir), &mut files);
    }
    files
        .iter()
        .filter(|f| code_only(&fs::read_to_string(f).unwrap()).contains("target_os"))
        .map(|f| f.strip_prefix(root).unwrap().display().to_string())
        .collect()
}

#[test]
fn the_portability_doc_covers_every_file_with_a_platform_gate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = fs::read_to_string(root.join("docs/portability.md")).expect("docs/portability.md");
    let files = files_with_gates(root);
    assert!(
        files.iter().any(|f| f == "src/acl.rs"),
        "the scan finds the gates: {files:?}"
    );
    let missing: Vec<&String> = files
        .iter()
        .filter(|f| !doc.contains(&format!("`{f}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/portability.md has no entry naming these files with a platform gate: \
         {missing:?}"
    );
}
