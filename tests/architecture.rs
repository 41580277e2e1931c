//! What docs/architecture.md says of the pure modules, checked against their source: the state
//! machine, its report, the schedule, the token policy, the formats, the planner and the status
//! types read no file, open no socket, start no program, call no AWS SDK, run no async runtime
//! and look at no clock; what they need comes in as arguments and events. A source scan: it
//! fails when such a module starts naming one of those, whatever the platform.

use std::fs;
use std::path::Path;

/// The modules that must stay pure (paths under `src/`).
const PURE: &[&str] = &[
    "engine/machine.rs",
    "engine/report.rs",
    "schedule.rs",
    "token_policy.rs",
    "ini.rs",
    "ini_edit.rs",
    "chain.rs",
    "state.rs",
    "timefmt.rs",
    "secret.rs",
    "login/page.rs",
    "markup.rs",
    "astro_setup.rs",
];

/// What doing I/O looks like in Rust source: a name each pure module must not use outside its
/// tests.
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
    "tokio",
    "aws_sdk_",
    "aws_config::",
    "notify::",
    "user_file::",
    "SystemTime::now",
    "Instant::now",
    "std::env::var",
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

#[test]
fn the_pure_modules_name_no_io() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut bad = Vec::new();
    for module in PURE {
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
