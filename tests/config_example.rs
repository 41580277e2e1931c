//! `config.example.toml` stays true: it parses, documents every key credsync accepts (each with
//! a one-line comment), and the values it shows as defaults are the built-in defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use credsync::config::{self, ContainerConfig, Env, KEYS, Origin, ProfileEntry};

const EXAMPLE: &str = include_str!("../config.example.toml");

fn env() -> Env {
    Env {
        home: PathBuf::from("/home/u"),
        vars: BTreeMap::new(),
    }
}

/// `# key = value` or `# [section]`: a commented-out setting rather than prose.
fn commented_setting(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('#')?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let is_key = rest.split_once('=').is_some_and(|(k, _)| {
        !k.trim().is_empty() && k.trim().chars().all(|c| c.is_ascii_lowercase() || c == '_')
    });
    (rest.starts_with('[') || is_key).then_some(rest)
}

/// The example with every commented-out setting and section header switched on.
fn uncommented() -> String {
    EXAMPLE
        .lines()
        .map(|l| commented_setting(l).unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

fn without_origin(mut c: config::Config) -> config::Config {
    c.origin = Origin::File(PathBuf::new());
    c
}

#[test]
fn example_as_shipped_is_the_default_configuration() {
    let c = config::parse(EXAMPLE, Path::new("config.example.toml"), &env())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(without_origin(c), without_origin(config::defaults(&env())));
}

#[test]
fn shown_defaults_are_the_built_in_defaults() {
    let text = uncommented();
    let c = config::parse(&text, Path::new("config.example.toml"), &env())
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let d = config::defaults(&env());
    assert_eq!(c.aws, d.aws);
    assert_eq!(c.write, d.write);
    assert_eq!(c.refresh, d.refresh);
    if !cfg!(target_os = "macos") {
        assert_eq!(c.control, d.control);
    }
    // Not defaults: the example profiles, and the container view with its example uid.
    assert_eq!(
        c.profiles,
        vec![
            ProfileEntry {
                source: "dev-admin".into(),
                target: "default".into()
            },
            ProfileEntry {
                source: "data-readonly".into(),
                target: "data-readonly".into()
            },
        ]
    );
    // Not a default either: the example notifier (the default is the desktop's).
    assert_eq!(
        c.notify,
        config::NotifyConfig {
            command: Some(vec!["notify-send".into(), "--urgency=critical".into()]),
            ..d.notify.clone()
        }
    );
    let empty_container = config::parse("[container]\n", Path::new("c.toml"), &env()).unwrap();
    let default_container = empty_container.container.unwrap();
    assert_eq!(
        c.container,
        Some(ContainerConfig {
            uid: Some(50000),
            // Shown with the value detection gives without Podman (the default is detected).
            engine: Some(config::ContainerEngine::Docker),
            ..default_container
        })
    );
}

#[test]
fn every_key_is_documented_with_a_comment() {
    let text = uncommented();
    let table: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    for (section, keys) in KEYS {
        if section.is_empty() {
            for key in *keys {
                assert!(
                    table.contains_key(*key),
                    "section [{key}] is not in the example"
                );
            }
            continue;
        }
        let value = table
            .get(*section)
            .unwrap_or_else(|| panic!("no [{section}]"));
        let tables: Vec<&toml::Table> = match value {
            toml::Value::Array(a) => a.iter().filter_map(toml::Value::as_table).collect(),
            toml::Value::Table(t) => vec![t],
            other => panic!("[{section}] is {other:?}"),
        };
        for key in *keys {
            assert!(
                tables.iter().any(|t| t.contains_key(*key)),
                "key {key} of [{section}] is not documented in config.example.toml"
            );
        }
    }
    // Every setting line carries its own one-line comment.
    for line in EXAMPLE.lines() {
        if let Some(setting) = commented_setting(line).filter(|s| !s.starts_with('[')) {
            let comment = setting.split_once(" # ").map(|(_, c)| c.trim());
            assert!(
                comment.is_some_and(|c| !c.is_empty()),
                "no comment on: {line}"
            );
        }
    }
    // And nothing in the example is set for real except section headers.
    for line in EXAMPLE.lines() {
        let t = line.trim();
        assert!(
            t.is_empty() || t.starts_with('#') || t.starts_with('['),
            "an active setting in the example: {line}"
        );
    }
}
