//! Which host uid a container uid is: the engine (`[container] engine`, or detected), the
//! rootless Podman mapping through `/etc/subuid`, and host account lookups (`getpwuid`).
//!
//! - **Docker** (and rootful Podman): the container's uid N is host uid N.
//! - **Rootless Podman**: the user namespace maps container uid 0 to the user, and container uid
//!   N >= 1 to the Nth uid of the user's subordinate ranges (`/etc/subuid` lines
//!   `name-or-uid:start:count`, in file order): with one range, `start + N - 1`.
//!
//! The mapping is a pure function ([`map_rootless`]) fed the file's text; [`resolve`] is the edge
//! that reads `/etc/subuid`, the password database and Astro CLI's config.

use std::ffi::CStr;
use std::path::{Path, PathBuf};

use crate::config::{ContainerConfig, ContainerEngine, Env};
use crate::user_file::Kind;

/// The file rootless Podman (through `newuidmap`) takes subordinate uids from.
pub(crate) const SUBUID: &str = "/etc/subuid";

/// The host uid credsync grants access to, and why it is that one (for `doctor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostUid {
    pub uid: u32,
    pub engine: ContainerEngine,
    /// How the engine was chosen and the uid computed, in words.
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error(
        "{path} has no subordinate uid range for user {user}, so rootless Podman cannot map \
         container uid {container_uid}; add one (usermod --add-subuids 100000-165535 {user}) or \
         set [container] engine = \"docker\" if the containers run under Docker or rootful Podman"
    )]
    NoRange {
        path: PathBuf,
        user: String,
        container_uid: u32,
    },
    #[error(
        "container uid {container_uid} is outside user {user}'s subordinate uids in {path} \
         ({count} uids), so rootless Podman cannot run it; widen the range in {path}"
    )]
    OutOfRange {
        path: PathBuf,
        user: String,
        container_uid: u32,
        count: u64,
    },
}

/// The host uid of `container_uid` under rootless Podman run by `user` (uid `user_uid`), given
/// the text of `/etc/subuid` (`path` is only for messages). Lines name the user or its uid;
/// blank lines and `#` comments are skipped; ranges are used in file order, as `newuidmap` does.
pub(crate) fn map_rootless(
    subuid: &str,
    path: &Path,
    user: &str,
    user_uid: u32,
    container_uid: u32,
) -> Result<u32, MapError> {
    if container_uid == 0 {
        return Ok(user_uid);
    }
    let ranges: Vec<(u64, u64)> = subuid
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut parts = l.split(':');
            let (who, start, count) = (parts.next()?, parts.next()?, parts.next()?);
            let matches = who == user || who.parse::<u32>().ok() == Some(user_uid);
            let start = start.trim().parse::<u64>().ok()?;
            let count = count.trim().parse::<u64>().ok()?;
            (matches && count > 0).then_some((start, count))
        })
        .collect();
    if ranges.is_empty() {
        return Err(MapError::NoRange {
            path: path.to_path_buf(),
            user: user.to_owned(),
            container_uid,
        });
    }
    let mut index = u64::from(container_uid) - 1;
    for (start, count) in &ranges {
        if index < *count {
            return u32::try_from(start + index).map_err(|_| MapError::OutOfRange {
                path: path.to_path_buf(),
                user: user.to_owned(),
                container_uid,
                count: ranges.iter().map(|r| r.1).sum(),
            });
        }
        index -= count;
    }
    Err(MapError::OutOfRange {
        path: path.to_path_buf(),
        user: user.to_owned(),
        container_uid,
        count: ranges.iter().map(|r| r.1).sum(),
    })
}

/// Whether Astro CLI's config (`~/.astro/config.yaml`, or a project's `.astro/config.yaml`)
/// says `container: binary: podman`.
pub fn astro_uses_podman(config_yaml: &str) -> bool {
    astro_config_value(config_yaml, "container", "binary").as_deref() == Some("podman")
}

/// The value of `key` under the top-level `section:` of an Astro CLI config, unquoted. A line
/// scan, not a YAML parser: Astro's config is two levels of plain `key: value` lines.
pub fn astro_config_value(config_yaml: &str, section: &str, key: &str) -> Option<String> {
    let mut inside = false;
    for line in config_yaml.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if !line.starts_with([' ', '\t']) {
            inside = line.trim_end().strip_suffix(':') == Some(section);
            continue;
        }
        if inside
            && let Some(v) = line
                .trim()
                .strip_prefix(key)
                .and_then(|r| r.strip_prefix(':'))
        {
            return Some(v.trim().trim_matches(['"', '\'']).to_owned());
        }
    }
    None
}

/// The engine: `[container] engine` when set, else rootless Podman when Astro CLI is set to use
/// Podman and credsync does not run as root, else Docker. The second value says why.
pub fn detect_engine(
    container: &ContainerConfig,
    env: &Env,
    euid: u32,
) -> (ContainerEngine, String) {
    if let Some(e) = container.engine {
        return (e, format!("[container] engine = \"{}\"", e.as_str()));
    }
    let astro = env.home.join(".astro/config.yaml");
    let text = crate::user_file::read_text_or_empty(&astro, Kind::AstroConfig);
    if astro_uses_podman(&text) {
        if euid == 0 {
            return (
                ContainerEngine::Docker,
                format!(
                    "{} sets Podman, run as root (rootful: uids are not remapped)",
                    astro.display()
                ),
            );
        }
        return (
            ContainerEngine::PodmanRootless,
            format!(
                "{} sets container.binary = podman, run as your user (rootless)",
                astro.display()
            ),
        );
    }
    (
        ContainerEngine::Docker,
        "detected: no Podman setting (set [container] engine = \"podman-rootless\" if Astro runs on rootless Podman)".to_owned(),
    )
}

/// The host uid of `[container] uid` (`None` without one), reading `/etc/subuid` and the
/// password database when the engine is rootless Podman.
pub fn resolve(container: &ContainerConfig, env: &Env) -> Result<Option<HostUid>, MapError> {
    let Some(cuid) = container.uid else {
        return Ok(None);
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let (engine, how) = detect_engine(container, env, euid);
    match engine {
        ContainerEngine::Docker => Ok(Some(HostUid {
            uid: cuid,
            engine,
            why: format!("{how}; Docker runs container uid {cuid} as host uid {cuid}"),
        })),
        ContainerEngine::PodmanRootless => {
            let user = user_name(euid).unwrap_or_else(|| euid.to_string());
            let path = Path::new(SUBUID);
            let text = crate::user_file::read_text_or_empty(path, Kind::SubordinateIds);
            let uid = map_rootless(&text, path, &user, euid, cuid)?;
            let rule = if cuid == 0 {
                "container uid 0 is your own user".to_owned()
            } else {
                format!(
                    "container uid {cuid} is subordinate uid number {cuid} - 1 of {user}'s \
                     ranges in {SUBUID}"
                )
            };
            Ok(Some(HostUid {
                uid,
                engine,
                why: format!("{how}; {rule}: host uid {uid}"),
            }))
        }
    }
}

/// The name of host account `uid`, when the password database has one (`getpwuid_r`).
pub fn user_name(uid: u32) -> Option<String> {
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` outlives the use of `pwd`'s strings.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded, so pw_name points to a NUL-terminated string in `buf`.
    let name = unsafe { CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBUID: &str =
        "# comment\nalice:100000:65536\n1001:165536:65536\nbob:231072:10\nbob:300000:65536\n";

    fn map(user: &str, uid: u32, cuid: u32) -> Result<u32, MapError> {
        map_rootless(SUBUID, Path::new("/etc/subuid"), user, uid, cuid)
    }

    #[test]
    fn rootless_podman_maps_into_the_subuid_range() {
        // 0 is the user; N >= 1 is start + N - 1.
        assert_eq!(map("alice", 1000, 0), Ok(1000));
        assert_eq!(map("alice", 1000, 1), Ok(100000));
        assert_eq!(map("alice", 1000, 50000), Ok(149999));
        assert_eq!(map("alice", 1000, 65536), Ok(165535));
        // A line naming the user by uid.
        assert_eq!(map("carol", 1001, 50000), Ok(215535));
        // Ranges in file order: bob's first 10, then the next range.
        assert_eq!(map("bob", 1002, 10), Ok(231081));
        assert_eq!(map("bob", 1002, 11), Ok(300000));
        assert_eq!(map("bob", 1002, 50000), Ok(349989));
    }

    #[test]
    fn unmapped_uids_are_errors_that_say_what_to_do() {
        let e = map("alice", 1000, 65537).unwrap_err();
        assert!(
            matches!(e, MapError::OutOfRange { count: 65536, .. }),
            "{e:?}"
        );
        let e = map("dave", 1003, 50000).unwrap_err();
        assert!(e.to_string().contains("usermod --add-subuids"), "{e}");
        // uid 0 needs no range.
        assert_eq!(map("dave", 1003, 0), Ok(1003));
    }

    #[test]
    fn astro_config_podman_is_found_under_container() {
        assert!(astro_uses_podman(
            "context: local\ncontainer:\n  binary: podman\n"
        ));
        assert!(astro_uses_podman("container:\n    binary: \"podman\"\n"));
        assert!(!astro_uses_podman("container:\n  binary: docker\n"));
        assert!(!astro_uses_podman(
            "other:\n  binary: podman\ncontainer:\n  x: 1\n"
        ));
        assert!(!astro_uses_podman(""));
    }

    #[test]
    fn engine_setting_wins_over_detection() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join(".astro")).unwrap();
        std::fs::write(
            tmp.path().join(".astro/config.yaml"),
            "container:\n  binary: podman\n",
        )
        .unwrap();
        let env = Env {
            home: tmp.path().to_path_buf(),
            vars: Default::default(),
        };
        let mut c = ContainerConfig {
            dir: tmp.path().join("v"),
            path_in_container: "/v".into(),
            uid: Some(50000),
            share_credentials_file: false,
            engine: None,
            home: tmp.path().to_path_buf(),
        };
        assert_eq!(
            detect_engine(&c, &env, 1000).0,
            ContainerEngine::PodmanRootless
        );
        assert_eq!(detect_engine(&c, &env, 0).0, ContainerEngine::Docker);
        c.engine = Some(ContainerEngine::Docker);
        let (e, why) = detect_engine(&c, &env, 1000);
        assert_eq!(e, ContainerEngine::Docker);
        assert!(why.contains("[container] engine"), "{why}");
    }

    #[test]
    fn user_name_of_root_and_of_nobody_known() {
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert_eq!(user_name(4_000_000_000), None);
    }
}
