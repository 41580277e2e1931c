//! The text `doctor --project` shows: the lines to paste into the compose override and `.env`,
//! and the checks whose findings and fixes are built from the project's mounts, services and
//! permissions. Where a path leads is `route`'s; this module only says it.

use std::path::Path;

use super::{AIRFLOW2_SERVICES, AIRFLOW3_SERVICES, COMPOSE_FILE, CONTAINER_HOME, Ctx, PathKind};
use crate::acl::{self, Perms};
use crate::doctor::Check;
use crate::doctor::compose::Mount;

impl Ctx<'_> {
    /// `~/x` when under the home directory, else the path.
    pub(super) fn tilde(&self, path: &Path) -> String {
        match path.strip_prefix(self.p.home) {
            Ok(rest) if rest.as_os_str().is_empty() => "~".to_owned(),
            Ok(rest) => format!("~/{}", rest.display()),
            Err(_) => path.display().to_string(),
        }
    }

    /// The line to paste that mounts `~/.aws` (read-only).
    pub(super) fn aws_mount_line(&self) -> String {
        format!("- ~/.aws:{CONTAINER_HOME}/.aws:ro")
    }

    /// `services:` with the `~/.aws` mount for each of `names`.
    pub(super) fn services_block(&self, names: &[&str]) -> String {
        let mut s = String::from("services:\n");
        for svc in names {
            s += &format!("  {svc}:\n    volumes:\n      {}\n", self.aws_mount_line());
        }
        s
    }

    /// The whole override to paste, for the project's Airflow (both versions when unknown),
    /// and with the view, its `.env` lines.
    pub(super) fn compose_snippet(&self) -> String {
        let mut s = match &self.airflow {
            Some(a) => self.services_block(a.services()),
            None => format!(
                "for Airflow 3 (FROM …/runtime:3.x-N):\n{}for Airflow 2 (FROM \
                 …/astro-runtime:X.Y.Z, e.g. 12.1.0):\n{}",
                self.services_block(AIRFLOW3_SERVICES),
                self.services_block(AIRFLOW2_SERVICES)
            ),
        };
        if let Some(env) = self.view_env() {
            s += &format!("and to .env:\n{env}");
        }
        s.trim_end().to_owned()
    }

    /// The `.env` lines that put a container on the view (row 3): its config, no credentials
    /// file (`/dev/null` defines no profile, so botocore goes on to `credential_process`), and
    /// a target as the profile.
    pub(super) fn view_env(&self) -> Option<String> {
        let v = self.cfg.container.as_ref()?;
        let profile = self
            .cfg
            .profiles
            .first()
            .map_or("default", |p| p.target.as_str());
        Some(format!(
            "AWS_CONFIG_FILE={}/config\nAWS_SHARED_CREDENTIALS_FILE=/dev/null\nAWS_PROFILE={profile}",
            v.path_in_container
        ))
    }

    /// Which of the project's Airflow services lack the `~/.aws` mount. `mounted`: the
    /// services that mount `~/.aws` or a file credsync writes.
    pub(super) fn services_check(&self, mounted: &[&str]) -> Check {
        let Some(a) = &self.airflow else {
            let why = match self.p.dockerfile {
                None => "the project has no Dockerfile".to_owned(),
                Some(_) => {
                    "its Dockerfile's FROM names no Astro Runtime or Airflow image credsync \
                            recognises"
                        .to_owned()
                }
            };
            return Check::ok(format!(
                "Airflow version unknown ({why}): not checked which Airflow services lack the \
                 ~/.aws mount"
            ));
        };
        let missing: Vec<&str> = a
            .services()
            .iter()
            .copied()
            .filter(|n| !mounted.contains(n))
            .collect();
        let all = a.services().join(", ");
        if missing.is_empty() {
            return Check::ok(format!(
                "Airflow {} project (FROM {}): its services {all} all mount ~/.aws",
                a.major, a.image
            ));
        }
        let why = if missing.contains(&"dag-processor") {
            " (the DAG processor runs top-level DAG code, which may read Variables and \
             Connections)"
        } else {
            ""
        };
        Check::warn(
            format!(
                "Airflow {} project (FROM {}) runs {all}; {} {} no mount of ~/.aws: \
                 {} no AWS credentials{why}",
                a.major,
                a.image,
                missing.join(", "),
                if missing.len() == 1 { "has" } else { "have" },
                if missing.len() == 1 {
                    "that container sees"
                } else {
                    "those containers see"
                },
            ),
            format!(
                "add under services: in {COMPOSE_FILE}:\n{}",
                self.services_block(&missing)
                    .trim_start_matches("services:\n")
                    .trim_end()
            ),
        )
    }

    pub(super) fn mount_check(&self, m: &Mount, host: &Path, kind: PathKind, sso: bool) -> Check {
        let written = format!(
            "{}:{}{}",
            m.source,
            m.target,
            if m.read_only { ":ro" } else { "" }
        );
        let mode = if m.read_only {
            "read-only"
        } else {
            "read-write (read-only is the safer choice once credsync is the only refresher)"
        };
        let what = |kind: &str| format!("mount {written}: {kind}, {mode}");
        match kind {
            PathKind::Missing => Check::warn(
                what(&format!("{} does not exist on the host", host.display())),
                "create it, or fix the path: Docker creates a missing source as an empty \
                 directory owned by root",
            ),
            PathKind::File => {
                if let Some(which) = self.replaced_by_rename(host) {
                    let parent = host.parent().unwrap_or(Path::new("/"));
                    let target_parent = Path::new(&m.target)
                        .parent()
                        .map_or("/".to_owned(), |p| p.display().to_string());
                    let mut fix = format!(
                        "a single-file bind mount pins the inode; mount the directory instead:\n\
                         - {}:{target_parent}:ro",
                        self.tilde(parent)
                    );
                    if which == "the credentials file" {
                        fix += "\nor set [write] mode = \"in-place\" in credsync's config";
                    }
                    Check::fail(
                        what(&format!(
                            "single file, {which}, which credsync replaces by rename: the \
                             container keeps reading the old file"
                        )),
                        fix,
                    )
                } else if !m.read_only && !sso {
                    Check::warn(what("single file"), ro_fix(m))
                } else {
                    Check::ok(what("single file"))
                }
            }
            PathKind::Dir if !m.read_only && !sso => Check::warn(what("directory"), ro_fix(m)),
            PathKind::Dir => Check::ok(what("directory")),
        }
    }

    /// The `.env` lines of credsync's setup: the view's, else the files credsync reads and
    /// writes as the `~/.aws` mount shows them.
    pub(super) fn suggest_env(&self) -> String {
        self.view_env().unwrap_or_else(|| {
            let seen = |host: &Path, default: &str| match host.strip_prefix(self.aws_dir()) {
                Ok(rest) => format!("{CONTAINER_HOME}/.aws/{}", rest.display()),
                Err(_) => format!("{CONTAINER_HOME}/.aws/{default}"),
            };
            format!(
                "AWS_CONFIG_FILE={}\nAWS_SHARED_CREDENTIALS_FILE={}",
                seen(&self.cfg.aws.config_file, "config"),
                seen(&self.cfg.aws.credentials_file, "credentials")
            )
        })
    }

    pub(super) fn view_mount_line(&self) -> String {
        let Some(v) = &self.cfg.container else {
            return self.aws_mount_line();
        };
        let under_aws = v.dir.strip_prefix(self.aws_dir()).ok();
        let pic_under = Path::new(&v.path_in_container)
            .strip_prefix(format!("{CONTAINER_HOME}/.aws"))
            .ok();
        if under_aws.is_some() && under_aws == pic_under {
            self.aws_mount_line()
        } else {
            format!("- {}:{}:ro", self.tilde(&v.dir), v.path_in_container)
        }
    }

    /// The check for a path the container's uid cannot use: `need` is [`acl::READ`] (a file)
    /// or [`acl::SEARCH`] (a directory on the way).
    pub(super) fn access_check(
        &self,
        path: &Path,
        need: u16,
        perms: &Perms,
        in_view: bool,
    ) -> Check {
        let host_uid = self.p.host_uid.unwrap_or(self.uid);
        let verb = if need == acl::READ { "read" } else { "search" };
        let acl_note = match &perms.acl {
            Some(_) => "an ACL without an entry for it",
            None => "no ACL",
        };
        let who = if host_uid == self.uid {
            format!("uid {}", self.uid)
        } else {
            format!("uid {} (host uid {host_uid})", self.uid)
        };
        let what = format!(
            "{who} (the container's user) cannot {verb} {} (owner uid {}, mode {:04o}, {acl_note})",
            path.display(),
            perms.owner,
            perms.mode
        );
        let perm = if need == acl::READ { "r" } else { "x" };
        let uid_set = self.cfg.container.as_ref().and_then(|c| c.uid).is_some();
        let fix = if in_view && !uid_set {
            format!(
                "set in {}:\n[container]\nuid = {}\nthen run `credsync reload` (credsync \
                             grants that uid read access with a POSIX ACL)",
                self.config_path.display(),
                self.uid
            )
        } else if in_view {
            format!(
                "run `credsync sync` to rewrite the view with its ACL; on a filesystem \
                             without ACLs, run `chmod o+{perm} {}`",
                path.display()
            )
        } else if uid_set && path == self.cfg.aws.credentials_file {
            format!(
                "use the [container] view instead (docs/astro.md); or, if the containers \
                             must read {0}, set share_credentials_file = true in [container] of {1} and \
                             run `credsync reload` (it exposes every section of {0}, your long-lived keys \
                             included, to the containers)",
                path.display(),
                self.config_path.display()
            )
        } else {
            format!(
                "run `setfacl -m u:{host_uid}:{perm} {}`\n(or use the [container] view with uid = {})",
                path.display(),
                self.uid
            )
        };
        Check::fail(what, fix)
    }
}

fn ro_fix(m: &Mount) -> String {
    if m.long {
        "add to that volume:\nread_only: true".to_owned()
    } else {
        format!(
            "make the mount read-only in {COMPOSE_FILE}:\n- {}:{}:ro",
            m.source, m.target
        )
    }
}
