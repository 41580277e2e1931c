//! Rootless Podman for real (`scripts/podman-here`: Debian's podman, a test user with a
//! subordinate uid range, the image scripts/docker-here built): container uid 50000 is not host
//! uid 50000 there but `subuid start + 49999`. credsync, run as that user with Astro CLI set to
//! Podman, grants the mapped host uid, and `doctor` says which one and why; the container, as
//! 50000:50000 with the docs' `.env`, reads the view. Forcing `engine = "docker"` grants 50000,
//! takes back the mapped uid's entries (a uid change), and the container is refused.
//!
//! The host uid is checked against the engine itself: the container's `/proc/self/uid_map`.
//!
//! `doctor --project --live` through `podman exec`: `astro setup` on a project whose Astro
//! config selects Podman, then a scheduler with setup's mount and a triggerer without it,
//! labelled as Compose and Astro label them; doctor passes the one and fails the other, says
//! where to run when `podman exec` cannot reach them, and tells a view that is not mounted
//! from one the container's uid may not read.

use crate::support;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::docker::{BOTO3_KEYS, Container, container_name};
use support::fake_aws::FakeAws;
use support::{TestEnv, credsync_bin};

const ACCOUNT: &str = "000000100000";
const LIFETIME: Duration = Duration::from_secs(14 * 60);
const CONFIG: &str = "[[profiles]]\nsource = \"dev-sso\"\ntarget = \"dev\"\n\n[container]\n\
                      dir = \"~/.aws/credsync\"\npath_in_container = \"/home/astro/.aws/credsync\"\n\
                      uid = 50000\n";
const DOTENV: &str = "AWS_CONFIG_FILE=/home/astro/.aws/credsync/config\n\
                      AWS_SHARED_CREDENTIALS_FILE=/dev/null\nAWS_PROFILE=dev\n";

/// Per line: the host uid of container uid 50000 from the container's uid map, and the keys a
/// long-lived and a new boto3 Session return.
fn reader() -> String {
    format!(
        "{BOTO3_KEYS}{}",
        r#"
def host_uid(uid):
    for line in open("/proc/self/uid_map"):
        inside, outside, count = map(int, line.split())
        if inside <= uid < inside + count:
            return outside + uid - inside
long_lived, err = session_creds()
for _ in sys.stdin:
    print(json.dumps({"uid": os.getuid(), "host_uid": host_uid(os.getuid()),
                      "long_lived": key(long_lived, err), "new_session": key(*session_creds())}), flush=True)
"#
    )
}

/// The test user, the storage and the OCI runtime `scripts/podman-here` set up.
struct Podman {
    user: String,
    dir: PathBuf,
    runtime: String,
    uid: u32,
    gid: u32,
}

impl Podman {
    fn get(test: &str) -> Option<Podman> {
        let var = |k: &str, d: &str| {
            std::env::var(k)
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| d.to_owned())
        };
        let user = var("CREDSYNC_PODMAN_USER", "credsync-podman");
        let dir = PathBuf::from(var("CREDSYNC_PODMAN_DIR", "/var/tmp/credsync-podman"));
        let runtime = var("CREDSYNC_PODMAN_RUNTIME", "/usr/sbin/runc");
        let id = |flag: &str| -> Option<u32> {
            let o = Command::new("id").args([flag, &user]).output().ok()?;
            String::from_utf8_lossy(&o.stdout).trim().parse().ok()
        };
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let why = if !root {
            Some("needs root (runs credsync and podman as the test user)".to_owned())
        } else if !Path::new("/usr/bin/podman").exists() || id("-u").is_none() {
            Some(format!(
                "no podman or no user {user}; run scripts/podman-here as root"
            ))
        } else {
            None
        };
        if let Some(why) = why {
            support::skip(test, &why);
            return None;
        }
        Some(Podman {
            uid: id("-u")?,
            gid: id("-g")?,
            user,
            dir,
            runtime,
        })
    }

    /// `podman ARGS` as the test user, rootless, with the script's storage.
    fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", &self.user, "--", "env"])
            .arg(format!("HOME={}", self.dir.join("home").display()))
            .arg(format!(
                "XDG_RUNTIME_DIR={}",
                self.dir.join("xdg").display()
            ))
            .arg("podman")
            .arg("--root")
            .arg(self.dir.join("storage/root"))
            .arg("--runroot")
            .arg(self.dir.join("storage/run"))
            .args([
                "--storage-driver",
                "overlay",
                "--cgroup-manager",
                "cgroupfs",
                "--runtime",
                &self.runtime,
            ])
            .args(args);
        cmd
    }
}

fn text(o: &Output) -> String {
    support::output_text(o)
}

/// Runs `credsync ARGS` as the test user, with the environment `TestEnv` gives its commands and
/// a copy of the binary the user can execute.
fn credsync_as(env: &TestEnv, p: &Podman, bin: &Path, args: &[&str]) -> Output {
    credsync_as_with(env, p, bin, args, &[])
}

/// [`credsync_as`] with `extra` variables set on top.
fn credsync_as_with(
    env: &TestEnv,
    p: &Podman,
    bin: &Path,
    args: &[&str],
    extra: &[(&str, &OsStr)],
) -> Output {
    let template = env.cmd(args);
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={}", p.uid))
        .arg(format!("--regid={}", p.gid))
        .arg("--init-groups")
        .arg("--")
        .arg(bin)
        .args(args)
        .env_clear()
        .current_dir(env.home());
    for (k, v) in template.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd.env("USER", &p.user);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null())
        .output()
        .expect("run credsync as the test user")
}

/// A HOME signed in to `fake`, whose AWS config has the SSO profile `profile` (account
/// [`ACCOUNT`], role Dev), its keys lasting [`LIFETIME`].
fn signed_in(fake: &FakeAws, profile: &str) -> TestEnv {
    let env = TestEnv::with_fake(fake);
    env.write_aws_config(&format!(
        "[sso-session corp]\nsso_start_url = https://fake.awsapps.com/start\nsso_region = us-east-1\n\n\
         [profile {profile}]\nsso_session = corp\nsso_account_id = {ACCOUNT}\nsso_role_name = Dev\n\
         region = eu-west-1\n"
    ));
    fake.set_credential_lifetime(LIFETIME);
    env.sign_in(fake, "corp", "tok-corp");
    env
}

fn chown_r(path: &Path, uid: u32, gid: u32) {
    let o = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn rootless_podman_container_uid_reads_the_view_through_the_mapped_host_uid() {
    let test = "rootless_podman_container_uid_reads_the_view_through_the_mapped_host_uid";
    let Some(p) = Podman::get(test) else {
        return;
    };
    let fake = FakeAws::new();
    let env = signed_in(&fake, "dev-sso");
    env.write_credentials("");
    // Astro CLI set to Podman: credsync detects rootless Podman from it.
    env.write_file(".astro/config.yaml", "container:\n  binary: podman\n");
    env.write_config_toml(CONFIG);
    let project = env.root().join("astro-project");
    fs::create_dir_all(&project).unwrap();
    fs::write(project.join(".env"), DOTENV).unwrap();
    // The doc's Dockerfile and compose override, for `doctor --project`.
    let md =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/astro.md")).unwrap();
    let blocks = support::fenced_blocks(&md);
    let first = |info: &str| blocks.iter().find(|(i, _)| i == info).unwrap().1.clone();
    fs::write(project.join("Dockerfile"), first("dockerfile")).unwrap();
    fs::write(project.join("docker-compose.override.yml"), first("yaml")).unwrap();
    // The test user owns HOME (as a user owns theirs) and can reach it and the binary.
    let bin = env.root().join("credsync");
    fs::copy(credsync_bin(), &bin).unwrap();
    for (path, mode) in [
        (env.root(), 0o711),
        (bin.as_path(), 0o755),
        (project.as_path(), 0o755),
    ] {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }
    fs::set_permissions(project.join(".env"), fs::Permissions::from_mode(0o644)).unwrap();
    chown_r(env.home(), p.uid, p.gid);
    fs::set_permissions(env.aws_dir(), fs::Permissions::from_mode(0o700)).unwrap();

    let o = credsync_as(&env, &p, &bin, &["sync"]);
    assert!(o.status.success(), "credsync sync: {}", text(&o));
    let first = fake.last_credentials(ACCOUNT, "Dev").unwrap().access_key_id;

    let name = container_name("credsync-podman");
    let mut run = p.cmd(["run", "-i", "--rm", "--network", "none", "--name", &name]);
    run.args(["-u", "50000:50000", "--env-file"])
        .arg(project.join(".env"))
        .arg("-v")
        .arg(format!("{}:/home/astro/.aws:ro", env.aws_dir().display()))
        .args(["local/credsync-boto3", "python3", "-c", &reader()]);
    let rm = p.cmd(["rm", "-f", &name]);
    let mut ctr = Container::start(run, name, rm);

    let r = ctr.read_json();
    assert_eq!(r["uid"], 50000);
    let host_uid = r["host_uid"].as_u64().expect("50000 is mapped") as u32;
    assert_ne!(host_uid, 50000, "rootless Podman remaps container uids");
    assert_eq!(r["long_lived"], first.as_str(), "{r}");
    // credsync granted exactly that host uid, and doctor says so and why.
    let json = env.aws_dir().join("credsync/dev.json");
    let acl = credsync::acl::read(&json).unwrap().unwrap();
    assert!(
        acl.iter()
            .any(|e| e.tag == credsync::acl::TAG_USER && e.id == host_uid),
        "{acl:?}"
    );
    let d = text(&credsync_as(&env, &p, &bin, &["doctor"]));
    assert!(
        d.contains(&format!("credsync grants host uid {host_uid} read access")),
        "{d}"
    );
    assert!(d.contains("container.binary = podman"), "{d}");
    // doctor --project checks the mapped uid too (with 50000 it would find no entry on the
    // view and fail): the verdict the container showed.
    let project_arg = project.to_str().unwrap();
    let o = credsync_as(&env, &p, &bin, &["doctor", "--project", project_arg]);
    assert!(
        o.status.success() && !text(&o).contains("cannot read"),
        "{}",
        text(&o)
    );

    let next = {
        let o = credsync_as(&env, &p, &bin, &["sync"]);
        assert!(o.status.success(), "{}", text(&o));
        fake.last_credentials(ACCOUNT, "Dev").unwrap().access_key_id
    };
    assert_ne!(next, first);
    let r = ctr.read_json();
    assert_eq!(r["long_lived"], next.as_str(), "no restart: {r}");

    // The Docker mapping here grants the wrong uid: the mapped uid's entries are taken back
    // and the container is refused.
    env.write_config_toml(&format!("{CONFIG}engine = \"docker\"\n"));
    chown_r(env.home(), p.uid, p.gid);
    let o = credsync_as(&env, &p, &bin, &["sync"]);
    assert!(o.status.success(), "{}", text(&o));
    let acl = credsync::acl::read(&json).unwrap().unwrap();
    assert!(
        !acl.iter()
            .any(|e| e.tag == credsync::acl::TAG_USER && e.id == host_uid),
        "{acl:?}"
    );
    let r = ctr.read_json();
    let fresh = r["new_session"].as_str().unwrap_or_default();
    assert!(fresh == "NONE" || fresh.starts_with("ERR:"), "{r}");
    // doctor shows the uid it now grants, and why (it trusts the setting: the user said Docker).
    let d = text(&credsync_as(&env, &p, &bin, &["doctor"]));
    assert!(
        d.contains("credsync grants host uid 50000 read access ([container] engine = \"docker\""),
        "{d}"
    );
}

/// A container the test user's rootless Podman runs detached; removed on drop.
struct Detached<'a> {
    p: &'a Podman,
    name: String,
}

impl Drop for Detached<'_> {
    fn drop(&mut self) {
        let _ = self.p.cmd(["rm", "-f", "-t", "0", &self.name]).output();
    }
}

#[test]
fn doctor_live_asks_rootless_podman_containers_and_fails_the_service_without_the_view() {
    let test = "doctor_live_asks_rootless_podman_containers_and_fails_the_service_without_the_view";
    let Some(p) = Podman::get(test) else {
        return;
    };
    let fake = FakeAws::new();
    let env = signed_in(&fake, "dev");
    // An Astro project whose own config selects Podman (`astro config set container.binary
    // podman`), as `astro dev init` lays it out.
    let name = container_name("credsync-live");
    let project = env.root().join(&name);
    support::astro::init_project(&project);
    fs::write(
        project.join(".astro/config.yaml"),
        format!("project:\n  name: {name}\ncontainer:\n  binary: podman\n"),
    )
    .unwrap();
    // The test user's Podman configuration, as a user keeps it in ~/.config/containers: the
    // storage and runtime scripts/podman-here set up, so that the plain `podman` credsync runs
    // sees the containers the test starts (containers.conf(5), containers-storage.conf(5)).
    env.write_file(
        ".config/containers/storage.conf",
        &format!(
            "[storage]\ndriver = \"overlay\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            p.dir.join("storage/root").display(),
            p.dir.join("storage/run").display()
        ),
    );
    env.write_file(
        ".config/containers/containers.conf",
        &format!(
            "[engine]\ncgroup_manager = \"cgroupfs\"\nruntime = \"{}\"\n",
            p.runtime
        ),
    );
    let bin = env.root().join("credsync");
    fs::copy(credsync_bin(), &bin).unwrap();
    for (path, mode) in [(env.root(), 0o711), (bin.as_path(), 0o755)] {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }
    chown_r(env.home(), p.uid, p.gid);
    chown_r(&project, p.uid, p.gid);
    fs::set_permissions(env.aws_dir(), fs::Permissions::from_mode(0o700)).unwrap();

    let project_arg = project.to_str().unwrap();
    let o = credsync_as(&env, &p, &bin, &["astro", "setup", project_arg]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("container engine: rootless Podman ("), "{t}");
    let key = fake.last_credentials(ACCOUNT, "Dev").unwrap();
    // The mount setup wrote, as Compose expands it.
    let mount = "${HOME}/.aws:/home/astro/.aws:ro";
    let over = fs::read_to_string(project.join("docker-compose.override.yml")).unwrap();
    assert!(
        over.contains(&format!("  scheduler:\n    volumes:\n      - {mount}\n")),
        "{over}"
    );
    let volume = mount.replace("${HOME}", env.home().to_str().unwrap());

    // The scheduler as Compose starts it with the override; the triggerer without it. Both
    // carry the labels Compose and Astro's template put on them.
    let start = |svc: &str, with_mount: bool| -> Detached<'_> {
        let ctr = format!("{name}-{svc}");
        let mut run = p.cmd(["run", "-d", "--network", "none", "--name", &ctr]);
        run.args(["--user", "astro", "--env-file"])
            .arg(project.join(".env"));
        for label in [
            format!("com.docker.compose.project={name}"),
            format!("com.docker.compose.service={svc}"),
            format!("com.docker.compose.project.working_dir={project_arg}"),
            "com.docker.compose.oneoff=False".to_owned(),
            "io.astronomer.docker=true".to_owned(),
            "io.astronomer.docker.cli=true".to_owned(),
            format!("io.astronomer.docker.component=airflow-{svc}"),
        ] {
            run.arg("--label").arg(label);
        }
        if with_mount {
            run.arg("-v").arg(&volume);
        }
        run.args(["local/credsync-boto3", "sleep", "600"]);
        let o = run.output().expect("podman run");
        assert!(o.status.success(), "podman run {svc}: {}", text(&o));
        Detached { p: &p, name: ctr }
    };
    let _scheduler = start("scheduler", true);
    let _triggerer = start("triggerer", false);

    // doctor, as the user, in the session that runs their containers (its XDG_RUNTIME_DIR,
    // where rootless Podman and runc keep their state).
    let xdg = p.dir.join("xdg");
    let live = ["doctor", "--project", project_arg, "--live"];
    let failing_doctor = || {
        let session = [("XDG_RUNTIME_DIR", xdg.as_os_str())];
        let o = credsync_as_with(&env, &p, &bin, &live, &session);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "{t}");
        t
    };
    let t = failing_doctor();
    let key4 = &key.access_key_id[key.access_key_id.len() - 4..];
    let ok = format!(
        "ok    live scheduler (uid 50000, profile dev): custom-process (the view), key …{key4}, expires "
    );
    assert!(t.contains(&ok), "missing {ok:?} in:\n{t}");
    let fails: Vec<&str> = t.lines().filter(|l| l.starts_with("fail")).collect();
    assert_eq!(fails.len(), 1, "{t}");
    assert!(
        fails[0].starts_with("fail  live triggerer (uid 50000, profile dev): ")
            && fails[0].contains(
                "/home/astro/.aws/credsync/config is not readable there: no such file (nothing mounted there)"
            )
            && fails[0].contains("the triggerer lacks what the scheduler has"),
        "{t}"
    );
    for svc in ["dag-processor", "api-server"] {
        assert!(t.contains(&format!("warn  live {svc}: not running")), "{t}");
    }
    assert!(
        !t.contains(&key.access_key_id) && !t.contains(&key.secret_access_key),
        "a secret in:\n{t}"
    );

    // From another session (the test's own XDG_RUNTIME_DIR): `podman ps` still lists them
    // (storage.conf), but `podman exec` cannot reach them; doctor says so, and where to run.
    let o = credsync_as(&env, &p, &bin, &live);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    for svc in ["scheduler", "triggerer"] {
        assert!(
            t.contains(&format!("fail  live {svc}: could not ask the container: ")),
            "{svc}:\n{t}"
        );
    }
    let hint = format!(
        "fix: `podman exec` did not reach it: check that it runs (`podman ps`); run doctor as \
         the user who started the containers, in a session with the same XDG_RUNTIME_DIR \
         (here {}), where rootless Podman keeps their state",
        env.run_dir().display()
    );
    assert!(t.contains(&hint), "missing {hint:?} in:\n{t}");

    // The view there but unreadable by the container's uid (astro-cli#1119's case): credsync
    // told to grant Docker's uid 50000, which is not the host uid rootless Podman runs it as.
    let cfg_path = env.config_toml_path();
    let cfg = fs::read_to_string(&cfg_path).unwrap();
    assert!(cfg.contains("engine = \"podman-rootless\"\n"), "{cfg}");
    fs::write(
        &cfg_path,
        cfg.replace("engine = \"podman-rootless\"", "engine = \"docker\""),
    )
    .unwrap();
    let o = credsync_as(&env, &p, &bin, &["sync"]);
    assert!(o.status.success(), "{}", text(&o));
    let t = failing_doctor();
    let scheduler = t
        .lines()
        .find(|l| l.starts_with("fail  live scheduler "))
        .unwrap_or_else(|| panic!("the scheduler does not fail:\n{t}"));
    assert!(
        scheduler.contains(
            "/home/astro/.aws/credsync/config is not readable there: it is there, and uid 50000 \
             lacks read permission"
        ),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "fix: credsync makes the view readable by `[container] uid` (in {}) with an ACL",
            cfg_path.display()
        )),
        "{t}"
    );
}
