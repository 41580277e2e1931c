//! What docs/architecture.md says of the core crate (crates/core), checked. Its manifest names
//! no crate that does I/O, directly or through another crate. Its source uses none of the
//! standard library's I/O, process, environment or clock names: std is always there, so only a
//! scan can see those. The state machine, its report, the schedule, the token policy, the
//! formats, the planner, the status types and the notification decision live there; what they
//! need comes in as arguments and events. The state machine has one way in that changes it:
//! `apply`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The core crate's directory.
fn core_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/core")
}

/// Crates that do I/O (files, network, processes, an async runtime, the OS's API, AWS), by name
/// or, ending in `-`, name prefix (`aws-` is every SDK crate). None may be a dependency of the
/// core, directly or through another crate.
const IO_CRATES: &[&str] = &[
    "tokio",
    "aws-",
    "notify",
    "hyper",
    "reqwest",
    "rustls",
    "libc",
    "nix",
    "rustix",
    "mio",
    "socket2",
    "inotify",
    "fsevent-sys",
    "kqueue",
    "sd-notify",
    "directories",
    "dirs-sys",
    "tempfile",
    "getrandom",
    "tracing-subscriber",
    "futures-",
];

/// The core's direct dependencies, each with why it does no I/O: a new one must be added here
/// too, where a reviewer sees it.
const ALLOWED: &[(&str, &str)] = &[
    (
        "humantime",
        "formats and parses RFC 3339 times and durations",
    ),
    ("secrecy", "a string whose Debug redacts"),
    ("serde", "derives (de)serialisation"),
    ("serde_json", "the token cache's JSON, from and to bytes"),
    ("thiserror", "derives Error"),
    (
        "tracing",
        "the log facade; the edge installs the subscriber that writes",
    ),
];

fn is_io_crate(name: &str) -> bool {
    IO_CRATES.iter().any(|bad| match bad.strip_suffix('-') {
        Some(prefix) => name.starts_with(prefix) && name[prefix.len()..].starts_with('-'),
        None => name == *bad,
    })
}

/// The names in every dependency table of a manifest: `[dependencies]`, `[build-dependencies]`
/// and their `[target.'cfg(..)'.*]` forms; not `[dev-dependencies]`, which only tests link.
fn manifest_dependencies(doc: &toml::Table) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut take = |table: &toml::Table| {
        for key in ["dependencies", "build-dependencies"] {
            if let Some(deps) = table.get(key).and_then(|d| d.as_table()) {
                names.extend(deps.keys().cloned());
            }
        }
    };
    take(doc);
    if let Some(targets) = doc.get("target").and_then(|t| t.as_table()) {
        for t in targets.values().filter_map(|t| t.as_table()) {
            take(t);
        }
    }
    names
}

/// What is wrong with a core manifest: an I/O crate, a dependency not in [`ALLOWED`], or a build
/// script (which runs at build time with every right the build has).
fn manifest_problems(manifest: &str) -> Vec<String> {
    let doc: toml::Table = manifest.parse().expect("the manifest parses");
    let mut problems = Vec::new();
    for name in manifest_dependencies(&doc) {
        if is_io_crate(&name) {
            problems.push(format!("{name} does I/O"));
        } else if !ALLOWED.iter().any(|(ok, _)| *ok == name) {
            problems.push(format!(
                "{name} is not in tests/architecture.rs's ALLOWED list"
            ));
        }
    }
    let build = doc.get("package").and_then(|p| p.get("build"));
    if build.is_some_and(|b| b.as_bool() != Some(false)) {
        problems.push("a build script".to_owned());
    }
    problems
}

/// Every package that `roots` depend on in `lock` (a Cargo.lock's text), however indirectly,
/// and the roots. Starting from the core's own normal dependencies leaves out what only its tests
/// link (proptest's tempfile), which the lock's graph does not tell apart; the lock holds no
/// dev-dependency of a registry crate.
fn locked_closure(lock: &str, roots: &BTreeSet<String>) -> BTreeSet<String> {
    let doc: toml::Table = lock.parse().expect("Cargo.lock parses");
    let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in doc["package"].as_array().expect("[[package]]") {
        let name = p["name"].as_str().expect("name").to_owned();
        let list = p.get("dependencies").and_then(|d| d.as_array());
        // An entry is `name` or `name version` (when the lock holds two versions of it).
        let names = list.into_iter().flatten().filter_map(|e| e.as_str());
        deps.entry(name)
            .or_default()
            .extend(names.map(|e| e.split(' ').next().unwrap_or(e).to_owned()));
    }
    let mut seen = roots.clone();
    let mut todo: Vec<String> = roots.iter().cloned().collect();
    while let Some(p) = todo.pop() {
        for d in deps.get(&p).into_iter().flatten() {
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn the_core_manifest_names_no_crate_that_does_io() {
    let path = core_dir().join("Cargo.toml");
    let manifest = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let problems = manifest_problems(&manifest);
    assert!(
        problems.is_empty(),
        "crates/core/Cargo.toml (the core does no I/O, see docs/architecture.md):\n{}",
        problems.join("\n")
    );
    assert!(
        !core_dir().join("build.rs").exists(),
        "the core has no build script"
    );
}

#[test]
fn the_core_reaches_no_crate_that_does_io_through_another() {
    let lock = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock"))
        .expect("Cargo.lock");
    let manifest = fs::read_to_string(core_dir().join("Cargo.toml")).expect("the manifest");
    let direct = manifest_dependencies(&manifest.parse().expect("the manifest parses"));
    let closure = locked_closure(&lock, &direct);
    assert!(
        closure.contains("serde"),
        "the lock's graph is read: {closure:?}"
    );
    let bad: Vec<&String> = closure.iter().filter(|n| is_io_crate(n)).collect();
    assert!(
        bad.is_empty(),
        "credsync-core reaches crates that do I/O through its dependencies: {bad:?}"
    );
}

#[test]
fn the_manifest_check_refuses_io_crates_unlisted_crates_and_a_build_script() {
    let good = "[package]\nname = \"c\"\n[dependencies]\nserde = \"1\"\n\
                [dev-dependencies]\ntempfile = \"3\"\n";
    assert_eq!(manifest_problems(good), Vec::<String>::new());
    let bad = "[package]\nname = \"c\"\nbuild = \"build.rs\"\n\
               [dependencies]\ntokio = \"1\"\naws-config = \"1\"\nserde = \"1\"\nleftpad = \"1\"\n\
               [target.'cfg(unix)'.dependencies]\nlibc = \"0.2\"\n\
               [build-dependencies]\nnotify = \"8\"\n";
    assert_eq!(
        manifest_problems(bad),
        [
            "aws-config does I/O",
            "leftpad is not in tests/architecture.rs's ALLOWED list",
            "libc does I/O",
            "notify does I/O",
            "tokio does I/O",
            "a build script",
        ]
    );
    assert!(is_io_crate("aws-smithy-runtime") && is_io_crate("futures-util"));
    assert!(!is_io_crate("awsome") && !is_io_crate("tokio-ish") && !is_io_crate("serde"));
}

#[test]
fn the_closure_follows_dependencies_through_other_crates() {
    let lock = r#"
[[package]]
name = "a"
dependencies = ["b 1.0.0"]
[[package]]
name = "b"
dependencies = ["tokio"]
[[package]]
name = "serde"
[[package]]
name = "tokio"
[[package]]
name = "unrelated"
dependencies = ["hyper"]
"#;
    let roots = BTreeSet::from(["a".to_owned(), "serde".to_owned()]);
    let closure = locked_closure(lock, &roots);
    assert_eq!(
        closure.into_iter().collect::<Vec<_>>(),
        ["a", "b", "serde", "tokio"]
    );
}

/// What doing I/O looks like in Rust source through the standard library (which no manifest can
/// keep out) and the crates the manifest keeps out anyway: a name no core file may use outside
/// its tests.
const IO: &[&str] = &[
    "std::fs",
    "fs::",
    "File::",
    "OpenOptions",
    "std::net",
    "TcpStream",
    "UnixStream",
    "std::process",
    "Command::",
    "std::io::stdin",
    "std::io::stdout",
    "std::io::stderr",
    "println!",
    "eprintln!",
    "std::thread",
    "tokio",
    "aws_sdk_",
    "aws_config::",
    "notify::",
    "user_file::",
    "SystemTime::now",
    "Instant::now",
    "std::env",
    "libc::",
];

/// The lines of `text` before its `#[cfg(test)]` module (tests may build fixtures any way), each
/// with its number, comments left out.
fn code_lines(text: &str) -> Vec<(usize, &str)> {
    let end = text.find("#[cfg(test)]\nmod tests").unwrap_or(text.len());
    text[..end]
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .collect()
}

/// Each use of an I/O name in `text`, as `line: name`.
fn io_uses(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (n, line) in code_lines(text) {
        for name in IO {
            if line.contains(name) {
                found.push(format!("{n}: {name} in `{}`", line.trim()));
            }
        }
    }
    found
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{dir:?}: {e}")) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_core_source_names_no_io() {
    let src = core_dir().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.iter().any(|f| f.ends_with("engine/machine.rs")),
        "the core's files are found: {files:?}"
    );
    let mut bad = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
        let rel = file
            .strip_prefix(&src)
            .unwrap_or(file)
            .display()
            .to_string();
        bad.extend(
            io_uses(&text)
                .into_iter()
                .map(|u| format!("crates/core/src/{rel}:{u}")),
        );
    }
    assert!(
        bad.is_empty(),
        "the core does I/O (docs/architecture.md says it does not):\n{}",
        bad.join("\n")
    );
}

/// Pure modules that live in the edge crate, beside the code that uses them (paths under `src/`):
/// the same scan keeps them pure until they move into the core.
const EDGE_PURE: &[&str] = &["login/page.rs", "markup.rs", "astro_setup.rs"];

#[test]
fn the_pure_modules_of_the_edge_name_no_io() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut bad = Vec::new();
    for module in EDGE_PURE {
        let text = fs::read_to_string(src.join(module)).unwrap_or_else(|e| panic!("{module}: {e}"));
        bad.extend(
            io_uses(&text)
                .into_iter()
                .map(|u| format!("src/{module}:{u}")),
        );
    }
    assert!(
        bad.is_empty(),
        "a pure module does I/O (docs/architecture.md says it does not):\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_scan_finds_io_in_code_and_leaves_comments_and_tests_alone() {
    let text = "use std::time::Duration;\n\
                // std::fs is mentioned in a comment only\n\
                pub fn f() -> u8 { let _ = std::fs::metadata(\"x\"); 1 }\n\
                #[cfg(test)]\nmod tests {\n    fn g() { let _ = std::fs::read(\"x\"); }\n}\n";
    let uses = io_uses(text);
    assert_eq!(uses.len(), 2, "{uses:?}"); // `std::fs` and `fs::` on line 3
    assert!(uses.iter().all(|u| u.starts_with("3: ")), "{uses:?}");
    assert!(
        io_uses("pub fn now() -> std::time::SystemTime { std::time::SystemTime::now() }").len()
            == 1
    );
    assert!(io_uses("pub fn pure(a: u8) -> u8 { a + 1 }").is_empty());
}

/// The names of the functions other modules may call (`pub`, `pub(crate)`, `pub(super)`) that
/// take `&mut self`, in the code of `text` (a function's signature may span lines).
fn mutating_entries(text: &str) -> Vec<String> {
    let code: Vec<&str> = code_lines(text).into_iter().map(|(_, l)| l).collect();
    let code = code.join("\n");
    let mut found = Vec::new();
    for (at, _) in code.match_indices("fn ") {
        let before = code[..at].trim_end();
        let visible = ["pub", "pub(crate)", "pub(super)"]
            .iter()
            .any(|v| before.ends_with(v));
        let signature = &code[at..];
        let signature = &signature[..signature.find('{').unwrap_or(signature.len())];
        if visible && signature.contains("&mut self") {
            let name = signature["fn ".len()..]
                .split(['(', '<'])
                .next()
                .unwrap_or("");
            found.push(name.trim().to_owned());
        }
    }
    found
}

#[test]
fn the_state_machine_changes_only_through_apply() {
    let file = core_dir().join("src/engine/machine.rs");
    let text = fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
    assert_eq!(
        mutating_entries(&text),
        ["apply"],
        "the machine has another way in than `apply` (docs/architecture.md says it has not)"
    );
}

#[test]
fn the_entry_scan_finds_visible_mutating_functions_only() {
    let text = "impl M {\n    pub fn apply(\n        &mut self,\n        e: u8,\n    ) {}\n    \
                pub(crate) fn peek(&self) -> u8 { 0 }\n    fn inner(&mut self) {}\n    \
                pub(super) fn poke<T>(&mut self, t: T) {}\n}\n\
                #[cfg(test)]\nmod tests {\n    pub fn helper(&mut self) {}\n}\n";
    assert_eq!(mutating_entries(text), ["apply", "poke"]);
}
