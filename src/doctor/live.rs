//! `credsync doctor --project DIR --live`: asks the project's running containers themselves.
//! For each running Airflow service of the project (found through the engine's labels: Astro's
//! `io.astronomer.docker.component`, Compose's `com.docker.compose.project`, `.service` and
//! `.project.working_dir`), runs [`PROBE`] inside it, as the container's own user, through
//! `docker exec` / `podman exec`: botocore's own credential resolution, with no network call.
//! The report says, per service, the provider botocore chose (`custom-process` is the view),
//! the key's last four characters and its expiry, compared with what credsync last wrote.
//!
//! [`gather`] is the edge (the engine's CLI through a [`Runner`], the view's JSON file);
//! [`select`], [`parse_probe`] and [`judge`] are pure. Nothing here ever holds more of a key
//! than its last four characters, and never a secret key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Check;
use crate::process::Runner;

/// Astro's label naming an Airflow component (`airflow-scheduler`, ...).
pub const COMPONENT_LABEL: &str = "io.astronomer.docker.component";
const PROJECT_LABEL: &str = "com.docker.compose.project";
const SERVICE_LABEL: &str = "com.docker.compose.service";
const WORKING_DIR_LABEL: &str = "com.docker.compose.project.working_dir";

/// How long one engine command may take (an `exec` starts a Python with botocore).
const ENGINE_TIMEOUT: Duration = Duration::from_secs(60);

/// What runs in each container: botocore's credential chain without the two providers that
/// call the network when asked (the ECS container endpoint and IMDS), and without fetching
/// what a deferred provider (SSO, assume-role, web identity) would fetch. Prints one JSON
/// object: the uid, the profile, the provider's name, the last four characters of the access
/// key, the expiry (UTC), the files botocore reads, whether they are there (a missing one is a
/// missing mount; one behind a directory that denies the search is there) and readable, or
/// the error.
pub const PROBE: &str = r#"import json, os, datetime
out = {"uid": os.getuid(), "profile": os.environ.get("AWS_PROFILE") or os.environ.get("AWS_DEFAULT_PROFILE") or "default"}
for var, default in (("AWS_CONFIG_FILE", "~/.aws/config"), ("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")):
    path = os.path.expanduser(os.path.expandvars(os.environ.get(var, default)))
    out[var] = path
    try:
        os.stat(path)
        out[var + "_exists"] = True
    except (FileNotFoundError, NotADirectoryError):
        out[var + "_exists"] = False
    except OSError:
        out[var + "_exists"] = True  # a directory on the way denies the search: it is there
    out[var + "_readable"] = os.access(path, os.R_OK)
try:
    import botocore.session, botocore.credentials
    resolver = botocore.session.Session().get_component("credential_provider")
    for name in ("container-role", "iam-role"):
        try:
            resolver.remove(name)
        except Exception:
            pass
    creds = resolver.load_credentials()
    if creds is not None:
        out["method"] = creds.method
        if not isinstance(creds, botocore.credentials.DeferredRefreshableCredentials):
            out["key4"] = (creds.get_frozen_credentials().access_key or "")[-4:]
            exp = getattr(creds, "_expiry_time", None)
            if exp is not None:
                out["expires"] = exp.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
except Exception as e:
    out["error"] = (type(e).__name__ + ": " + str(e))[:300]
print(json.dumps(out))
"#;

/// A running container of the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub id: String,
    /// The Compose service (else Astro's component without `airflow-`).
    pub service: String,
}

/// What [`PROBE`] printed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct Probe {
    pub uid: u32,
    pub profile: String,
    /// botocore's provider name; `None`: nothing resolved.
    pub method: Option<String>,
    pub key4: Option<String>,
    pub expires: Option<String>,
    pub error: Option<String>,
    #[serde(rename = "AWS_CONFIG_FILE")]
    pub config_file: String,
    /// Whether the config file is there: a missing file is a missing mount; one that is
    /// there but not readable is a permission the container's uid lacks.
    #[serde(rename = "AWS_CONFIG_FILE_exists")]
    pub config_exists: bool,
    #[serde(rename = "AWS_CONFIG_FILE_readable")]
    pub config_readable: bool,
    #[serde(rename = "AWS_SHARED_CREDENTIALS_FILE")]
    pub credentials_file: String,
}

/// Why a container could not be asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unasked {
    /// The engine ran nothing in the container: its `exec` failed (the container is gone, or
    /// this engine client does not see it).
    Exec(String),
    /// The container ran the probe, which gave no answer (no `python3`, or it crashed).
    Probe(String),
}

impl std::fmt::Display for Unasked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unasked::Exec(why) | Unasked::Probe(why) => f.write_str(why),
        }
    }
}

/// What one container answered.
pub type Answer = Result<Probe, Unasked>;

/// What credsync last wrote to the view for a profile: the key's last four characters and
/// the expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub key4: String,
    pub expires: String,
}

/// Parses the view's `<target>.json` down to what the report compares (the secret key is
/// never kept).
pub fn written_of(json: &[u8]) -> Option<Written> {
    #[derive(serde::Deserialize)]
    struct View {
        #[serde(rename = "AccessKeyId")]
        access_key_id: String,
        #[serde(rename = "Expiration")]
        expiration: String,
    }
    let v: View = serde_json::from_slice(json).ok()?;
    let n = v.access_key_id.len();
    Some(Written {
        key4: v.access_key_id[n.saturating_sub(4)..].to_owned(),
        expires: v.expiration,
    })
}

/// What `container inspect` prints of each container: one JSON object a line, its id and
/// labels only. The whole inspect document is ~8 KB a container, so a machine running a few
/// Compose projects would overflow what a child's output may hold ([`crate::process`]); this
/// is ~1 KB. The same template works with Docker and Podman (both evaluate it on their Go
/// types, whose field is `ID`).
pub const INSPECT_FORMAT: &str = r#"{"Id":{{json .ID}},"Labels":{{json .Config.Labels}}}"#;

/// The containers of `container inspect --format` [`INSPECT_FORMAT`]'s lines that belong to
/// the project in `dir` (its Compose working directory, or Astro's project name
/// `<name>_<6 hex>`, normalised as Astro does) and run an Airflow service: labelled by Astro,
/// or named as one of `airflow_services`. A line that does not parse (output cut short) is an
/// error: a project's containers are never silently missed.
pub fn select(
    inspect: &str,
    dir: &Path,
    astro_name: Option<&str>,
    airflow_services: &[&str],
) -> Result<Vec<Running>, String> {
    let mut items = Vec::new();
    for (i, line) in inspect.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let item: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| format!("line {} of the engine's inspect output: {e}", i + 1))?;
        items.push(item);
    }
    let prefix = astro_name.map(|n| format!("{}_", normalize_name(n)));
    let mut out: Vec<Running> = items
        .iter()
        .filter_map(|c| {
            let labels = c.get("Labels")?.as_object()?;
            let label = |k: &str| labels.get(k).and_then(|v| v.as_str());
            let ours = label(WORKING_DIR_LABEL).is_some_and(|w| Path::new(w) == dir)
                || label(PROJECT_LABEL)
                    .zip(prefix.as_deref())
                    .is_some_and(|(p, pre)| p.strip_prefix(pre).is_some_and(|h| h.len() == 6));
            if !ours {
                return None;
            }
            let component = label(COMPONENT_LABEL);
            let service = label(SERVICE_LABEL)
                .or_else(|| component.and_then(|c| c.strip_prefix("airflow-")))?;
            let id = c.get("Id")?.as_str()?;
            (component.is_some() || airflow_services.contains(&service)).then(|| Running {
                id: id.to_owned(),
                service: service.to_owned(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.service.cmp(&b.service));
    Ok(out)
}

/// Whether an engine's stderr only says that containers are gone: one listed by `ps` and
/// removed before `inspect` (another project going down meanwhile). Docker: `Error response
/// from daemon: No such container: ID` (or `Error: No such object`); Podman: `Error: no such
/// container ID`.
fn only_gone(stderr: &str) -> bool {
    stderr.lines().filter(|l| !l.trim().is_empty()).all(|l| {
        let l = l.to_ascii_lowercase();
        l.contains("no such container") || l.contains("no such object")
    })
}

/// Astro's `normalizeName`: lower case, only `[a-z0-9_-]`, no leading `_` or `-`.
fn normalize_name(s: &str) -> String {
    let s: String = s
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    s.trim_start_matches(['_', '-']).to_owned()
}

/// `project: name:` of Astro's `.astro/config.yaml`.
pub fn astro_project_name(config_yaml: &str) -> Option<String> {
    crate::uidmap::astro_config_value(config_yaml, "project", "name")
}

/// [`PROBE`]'s answer from what `exec` returned (`code`: its exit code, `None` for a signal),
/// or why there is none: exit 126 and 127 are the engines' "cannot run" and "not found" for the
/// command inside the container (docker-run(1), podman-exec(1)); an engine's own error is
/// printed on stderr as `Error...` (Docker's `Error response from daemon:`, Podman's `Error:`).
pub fn answer_of(code: Option<i32>, stdout: &str, stderr: &str) -> Answer {
    let parsed = parse_probe(stdout);
    if code == Some(0) || parsed.is_ok() {
        return parsed.map_err(Unasked::Probe);
    }
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let why = format!(
        "{} (exit {}: {last})",
        parsed.err().unwrap_or_default(),
        code.map_or_else(|| "by a signal".to_owned(), |c| c.to_string()),
    );
    let engine_error = stdout.trim().is_empty()
        && !matches!(code, Some(126 | 127))
        && stderr.lines().any(|l| l.starts_with("Error"));
    if engine_error {
        Err(Unasked::Exec(why))
    } else {
        Err(Unasked::Probe(why))
    }
}

/// [`PROBE`]'s output, or why there is none.
pub fn parse_probe(stdout: &str) -> Result<Probe, String> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| "the probe printed nothing".to_owned())?;
    serde_json::from_str(line).map_err(|e| format!("the probe's output did not parse: {e}"))
}

/// What the report needs to write its fixes.
#[derive(Debug, Clone)]
pub struct Fixes {
    /// The compose mount line (`- SOURCE:TARGET:ro`).
    pub mount: String,
    /// The `.env` lines of the view.
    pub env_lines: String,
    /// The restart command that makes the containers read `.env` and the override again.
    pub restart: String,
    /// What to check when the engine's `exec` itself failed (it depends on the engine).
    pub exec: String,
    /// What makes the view readable by the containers' uid (credsync's config, by path).
    pub grant: String,
}

/// The verdict per service: `probes` in service order, `expected` the Airflow services of the
/// project's version, `written` what credsync last wrote per profile (`None`: not found).
pub fn judge(
    probes: &[(String, Answer)],
    expected: &[&str],
    written: &BTreeMap<String, Written>,
    fixes: &Fixes,
) -> Vec<Check> {
    if probes.is_empty() {
        return vec![Check::fail(
            "live: no running Airflow service of this project (by the engine's labels)",
            "start it (`astro dev start`), then run doctor --live again",
        )];
    }
    let good = |p: &Answer| matches!(p, Ok(Probe { method: Some(m), error: None, .. }) if m == "custom-process" || m == "sso");
    let scheduler_ok = probes
        .iter()
        .find(|(s, _)| s == "scheduler")
        .is_some_and(|(_, p)| good(p));
    let mut out = Vec::new();
    for (service, probe) in probes {
        let mut c = one(service, probe, written, fixes);
        if scheduler_ok && !good(probe) {
            let what = match service.as_str() {
                "triggerer" => Some(
                    "the triggerer lacks what the scheduler has: deferrable operators resumed \
                     there fail with ExpiredToken once keys expire",
                ),
                "dag-processor" => Some(
                    "the DAG processor lacks what the scheduler has: top-level DAG code that \
                     reads Variables and Connections there fails",
                ),
                _ => None,
            };
            if let Some(w) = what {
                c.what = format!("{}; {w}", c.what);
            }
        }
        out.push(c);
    }
    for svc in expected {
        if !probes.iter().any(|(s, _)| s == svc) {
            out.push(Check::warn(
                format!("live {svc}: not running"),
                format!("the project's Airflow runs {svc}; start it (`astro dev start`)"),
            ));
        }
    }
    out
}

fn one(service: &str, probe: &Answer, written: &BTreeMap<String, Written>, fixes: &Fixes) -> Check {
    let p = match probe {
        Ok(p) => p,
        Err(Unasked::Exec(e)) => {
            return Check::fail(
                format!("live {service}: could not ask the container: {e}"),
                fixes.exec.clone(),
            );
        }
        Err(Unasked::Probe(e)) => {
            return Check::fail(
                format!("live {service}: the container gave no answer: {e}"),
                "the probe needs python3 with botocore in the container (Astro Runtime has both)",
            );
        }
    };
    let head = format!("live {service} (uid {}, profile {})", p.uid, p.profile);
    let key = |p: &Probe| {
        let exp = p
            .expires
            .as_deref()
            .map_or_else(String::new, |e| format!(", expires {e}"));
        format!("key …{}{exp}", p.key4.as_deref().unwrap_or("?"))
    };
    let to_view = format!(
        "in .env (or the service's environment):\n{}\nand under services: in the override:\n  \
         {service}:\n    volumes:\n      {}\nthen `{}`",
        fixes.env_lines, fixes.mount, fixes.restart
    );
    // The config file there but unreadable is a permission, not a mount: another fix.
    let unreadable = (!p.config_readable).then(|| {
        if p.config_exists {
            (
                format!(
                    "{} is not readable there: it is there, and uid {} lacks read permission",
                    p.config_file, p.uid
                ),
                fixes.grant.clone(),
            )
        } else {
            (
                format!(
                    "{} is not readable there: no such file (nothing mounted there)",
                    p.config_file
                ),
                to_view.clone(),
            )
        }
    });
    if let Some(e) = &p.error {
        return match unreadable {
            Some((why, fix)) => Check::fail(format!("{head}: botocore fails: {e} ({why})"), fix),
            None => Check::fail(format!("{head}: botocore fails: {e}"), to_view),
        };
    }
    match p.method.as_deref() {
        None => match unreadable {
            Some((why, fix)) => Check::fail(format!("{head}: resolves no credentials: {why}"), fix),
            None => Check::fail(format!("{head}: resolves no credentials"), to_view),
        },
        Some("custom-process") => {
            let now = format!("{head}: custom-process (the view), {}", key(p));
            match written.get(&p.profile) {
                Some(w) if Some(&w.key4) == p.key4.as_ref() => {
                    Check::ok(format!("{now}: what credsync last wrote"))
                }
                Some(w) => Check::warn(
                    format!(
                        "{now}; credsync last wrote …{} (expires {})",
                        w.key4, w.expires
                    ),
                    "botocore keeps keys until 15 minutes before they expire, then reads the \
                     view again; if this stays after that, the container reads another view",
                ),
                None => Check::warn(
                    format!("{now}; credsync's view has no {}.json", p.profile),
                    "run `credsync sync`",
                ),
            }
        }
        Some("sso") => Check::ok(format!(
            "{head}: sso (through the mounted token cache; credsync keeps the token fresh)"
        )),
        Some("shared-credentials-file") => Check::fail(
            format!(
                "{head}: static keys from the credentials file {} ({}): a long-lived client \
                 keeps them after they expire",
                p.credentials_file,
                key(p)
            ),
            to_view,
        ),
        Some("env") => Check::warn(
            format!(
                "{head}: static keys from AWS_ACCESS_KEY_ID in its environment ({})",
                key(p)
            ),
            format!(
                "remove AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; then use the view:\n{to_view}"
            ),
        ),
        Some(m) => Check::warn(format!("{head}: {m}, not credsync's view"), to_view),
    }
}

/// Each service with what its probe found, and what credsync last wrote per profile.
pub type Asked = (Vec<(String, Answer)>, BTreeMap<String, Written>);

/// [`PROBE`] through `exec` (argv), parsed.
fn probe_in(runner: &dyn Runner, exec: &[String]) -> Answer {
    let f = runner
        .run(exec, ENGINE_TIMEOUT)
        .map_err(|e| Unasked::Exec(e.to_string()))?;
    answer_of(f.code, &f.stdout, &f.stderr)
}

/// The edge: the project's running Airflow containers through `engine` (`docker` or
/// `podman`), [`PROBE`] in each, and what credsync last wrote (the view's JSON files in
/// `view_dir`).
pub fn gather(
    runner: &dyn Runner,
    engine: &str,
    dir: &Path,
    astro_name: Option<&str>,
    airflow_services: &[&str],
    view_dir: Option<&Path>,
) -> Result<Asked, String> {
    let argv = |args: &[&str]| -> Vec<String> {
        std::iter::once(engine)
            .chain(args.iter().copied())
            .map(str::to_owned)
            .collect()
    };
    let ps = argv(&[
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("label={PROJECT_LABEL}"),
    ]);
    let ids = runner
        .run(&ps, ENGINE_TIMEOUT)
        .and_then(|f| f.check(&ps))
        .map_err(|e| format!("cannot list the containers: {e}"))?;
    let ids: Vec<&str> = ids.stdout.split_whitespace().collect();
    let running = if ids.is_empty() {
        Vec::new()
    } else {
        let mut inspect = argv(&["container", "inspect", "--format", INSPECT_FORMAT]);
        inspect.extend(ids.iter().map(|s| (*s).to_owned()));
        let out = runner
            .run(&inspect, ENGINE_TIMEOUT)
            .and_then(|f| {
                // The others are printed all the same when one is gone.
                if f.success() || only_gone(&f.stderr) {
                    Ok(f)
                } else {
                    f.check(&inspect)
                }
            })
            .map_err(|e| format!("cannot inspect the containers: {e}"))?;
        select(&out.stdout, dir, astro_name, airflow_services)
            .map_err(|e| format!("cannot read the containers' labels: {e}"))?
    };
    // One `exec` per container, all at once: each starts a Python with botocore.
    let asked: Vec<(String, Answer)> = std::thread::scope(|scope| {
        let handles: Vec<_> = running
            .into_iter()
            .map(|r| {
                let exec = argv(&["exec", &r.id, "python3", "-c", PROBE]);
                scope.spawn(move || (r.service, probe_in(runner, &exec)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    (
                        String::new(),
                        Err(Unasked::Exec("the probe panicked".to_owned())),
                    )
                })
            })
            .collect()
    });
    let mut written = BTreeMap::new();
    for (_, probe) in &asked {
        if let (Ok(p), Some(v)) = (probe, view_dir) {
            let path: PathBuf = v.join(crate::view::json_name(&p.profile));
            if let Ok(Some(bytes)) =
                crate::user_file::read(&path, crate::user_file::Kind::Credentials)
                && let Some(w) = written_of(&bytes)
            {
                written.insert(p.profile.clone(), w);
            }
        }
    }
    let probes = asked;
    Ok((probes, written))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixes() -> Fixes {
        Fixes {
            mount: "- ${HOME}/.aws:/home/astro/.aws:ro".into(),
            env_lines: "AWS_CONFIG_FILE=/home/astro/.aws/credsync/config\nAWS_SHARED_CREDENTIALS_FILE=/dev/null\nAWS_PROFILE=dev".into(),
            restart: "astro dev restart".into(),
            exec: "EXEC-HINT".into(),
            grant: "GRANT-HINT".into(),
        }
    }

    fn probe(method: Option<&str>, key4: &str) -> Answer {
        Ok(Probe {
            uid: 50000,
            profile: "dev".into(),
            method: method.map(Into::into),
            key4: Some(key4.into()),
            expires: Some("2030-01-01T00:00:00Z".into()),
            config_file: "/home/astro/.aws/credsync/config".into(),
            config_exists: true,
            config_readable: true,
            credentials_file: "/dev/null".into(),
            ..Probe::default()
        })
    }

    #[test]
    fn selects_the_projects_airflow_containers_by_label() {
        let inspect = r#"{"Id": "a1", "Labels": {"com.docker.compose.project": "p", "com.docker.compose.service": "scheduler", "com.docker.compose.project.working_dir": "/w/proj", "io.astronomer.docker.component": "airflow-scheduler"}}
{"Id": "b2", "Labels": {"com.docker.compose.project": "p", "com.docker.compose.service": "postgres", "com.docker.compose.project.working_dir": "/w/proj"}}
{"Id": "c3", "Labels": {"com.docker.compose.project": "other", "com.docker.compose.service": "scheduler", "com.docker.compose.project.working_dir": "/w/other"}}
{"Id": "d4", "Labels": {"com.docker.compose.project": "myproj_0a1b2c", "io.astronomer.docker.component": "airflow-triggerer"}}
{"Id": "f6", "Labels": null}
{"Id": "e5", "Labels": {"com.docker.compose.project": "p", "com.docker.compose.service": "dag-processor", "com.docker.compose.project.working_dir": "/w/proj"}}
"#;
        let got = select(
            inspect,
            Path::new("/w/proj"),
            Some("My Proj"),
            &["scheduler", "dag-processor"],
        )
        .unwrap();
        let names: Vec<(&str, &str)> = got
            .iter()
            .map(|r| (r.id.as_str(), r.service.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("e5", "dag-processor"),
                ("a1", "scheduler"),
                ("d4", "triggerer")
            ]
        );
        // Output cut short (or anything else) is an error, not "nothing running".
        let cut = &inspect[..inspect.len() - 20];
        let e = select(cut, Path::new("/w/proj"), None, &[]).unwrap_err();
        assert!(
            e.starts_with("line 6 of the engine's inspect output: "),
            "{e}"
        );
        assert_eq!(select("", Path::new("/"), None, &[]), Ok(Vec::new()));
        // A container gone between `ps` and `inspect` is not an error; anything else is.
        assert!(only_gone(
            "Error response from daemon: No such container: 0a1b\n"
        ));
        assert!(only_gone("Error: no such container 0a1b\n"));
        assert!(!only_gone(
            "Cannot connect to the Docker daemon at unix:///var/run/docker.sock.\n"
        ));
        assert_eq!(
            astro_project_name("project:\n  name: my-proj\n").as_deref(),
            Some("my-proj")
        );
        assert_eq!(astro_project_name("other:\n  name: x\n"), None);
    }

    #[test]
    fn probe_output_and_the_views_json() {
        let p = parse_probe("warning\n{\"uid\": 50000, \"profile\": \"dev\", \"AWS_CONFIG_FILE\": \"/c\", \"AWS_CONFIG_FILE_exists\": false, \"AWS_CONFIG_FILE_readable\": false, \"AWS_SHARED_CREDENTIALS_FILE\": \"/dev/null\", \"AWS_SHARED_CREDENTIALS_FILE_readable\": true}\n").unwrap();
        assert_eq!(p.method, None);
        assert!(!p.config_readable);
        assert!(parse_probe("").is_err());
        let w = written_of(br#"{"Version":1,"AccessKeyId":"ASIAFAKE1234","SecretAccessKey":"s","SessionToken":"t","Expiration":"2030-01-01T00:00:00Z"}"#).unwrap();
        assert_eq!(
            w,
            Written {
                key4: "1234".into(),
                expires: "2030-01-01T00:00:00Z".into()
            }
        );
        assert!(!format!("{w:?}").contains("ASIAFAKE"));
    }

    #[test]
    fn judges_each_service_and_names_the_triggerer_that_lacks_the_view() {
        let mut written = BTreeMap::new();
        written.insert(
            "dev".to_owned(),
            Written {
                key4: "1234".into(),
                expires: "2030-01-01T00:00:00Z".into(),
            },
        );
        let mut no_config = probe(None, "").unwrap();
        no_config.key4 = None;
        no_config.config_readable = false;
        no_config.config_exists = false;
        let probes = vec![
            (
                "dag-processor".to_owned(),
                probe(Some("custom-process"), "9999"),
            ),
            (
                "scheduler".to_owned(),
                probe(Some("custom-process"), "1234"),
            ),
            ("triggerer".to_owned(), Ok(no_config)),
        ];
        let checks = judge(
            &probes,
            &["scheduler", "dag-processor", "api-server", "triggerer"],
            &written,
            &fixes(),
        );
        let text = super::super::render(&checks);
        assert!(text.contains("warn  live dag-processor (uid 50000, profile dev): custom-process (the view), key …9999, expires 2030-01-01T00:00:00Z; credsync last wrote …1234"), "{text}");
        assert!(text.contains("ok    live scheduler (uid 50000, profile dev): custom-process (the view), key …1234, expires 2030-01-01T00:00:00Z: what credsync last wrote"), "{text}");
        assert!(text.contains("fail  live triggerer (uid 50000, profile dev): resolves no credentials: /home/astro/.aws/credsync/config is not readable there: no such file (nothing mounted there); the triggerer lacks what the scheduler has"), "{text}");
        assert!(
            text.contains("  triggerer:\n               volumes:\n                 - ${HOME}/.aws"),
            "{text}"
        );
        assert!(
            text.contains("warn  live api-server: not running"),
            "{text}"
        );
        // Static keys from the credentials file fail, with the view as the fix.
        let mut creds = probe(Some("shared-credentials-file"), "ABCD").unwrap();
        creds.credentials_file = "/home/astro/.aws/credentials".into();
        let checks = judge(
            &[("scheduler".to_owned(), Ok(creds))],
            &[],
            &written,
            &fixes(),
        );
        assert_eq!(checks[0].level, super::super::Level::Fail);
        assert!(
            checks[0].what.contains(
                "static keys from the credentials file /home/astro/.aws/credentials (key …ABCD"
            ),
            "{:?}",
            checks[0]
        );
        assert!(
            judge(&[], &["scheduler"], &written, &fixes())[0]
                .what
                .contains("no running Airflow service")
        );
    }

    #[test]
    fn a_view_there_but_unreadable_is_a_permission_with_its_own_fix() {
        let mut p = probe(None, "").unwrap();
        p.config_readable = false;
        let checks = judge(
            &[("scheduler".to_owned(), Ok(p.clone()))],
            &[],
            &BTreeMap::new(),
            &fixes(),
        );
        assert_eq!(
            checks[0].what,
            "live scheduler (uid 50000, profile dev): resolves no credentials: \
             /home/astro/.aws/credsync/config is not readable there: it is there, and uid 50000 \
             lacks read permission"
        );
        assert_eq!(checks[0].fix.as_deref(), Some("GRANT-HINT"));
        // botocore's own error (the profile is in the file it cannot read): the same cause.
        p.error = Some("ProfileNotFound: The config profile (dev) could not be found".into());
        let c = &judge(
            &[("scheduler".to_owned(), Ok(p))],
            &[],
            &BTreeMap::new(),
            &fixes(),
        )[0];
        assert!(c.what.ends_with("(/home/astro/.aws/credsync/config is not readable there: it is there, and uid 50000 lacks read permission)"), "{c:?}");
        assert_eq!(c.fix.as_deref(), Some("GRANT-HINT"));
    }

    #[test]
    fn an_engine_that_cannot_exec_is_told_apart_from_a_container_without_python() {
        // Podman run outside the session that started the container (runc's state is elsewhere).
        let podman = answer_of(
            Some(255),
            "",
            "Error: OCI runtime error: /usr/sbin/runc: exec failed: container does not exist\n",
        );
        assert!(
            matches!(&podman, Err(Unasked::Exec(w)) if w.contains("exit 255: Error: OCI runtime error")),
            "{podman:?}"
        );
        let docker = answer_of(
            Some(1),
            "",
            "Error response from daemon: container abc is not running\n",
        );
        assert!(matches!(docker, Err(Unasked::Exec(_))));
        // No python3 in the image: the engine's 127, the container's fault.
        let none = answer_of(
            Some(127),
            "",
            "Error: runc: exec failed: exec: \"python3\": executable file not found in $PATH\n",
        );
        assert!(matches!(none, Err(Unasked::Probe(_))), "{none:?}");
        // Python ran and crashed: a traceback, not the engine.
        let crash = answer_of(
            Some(1),
            "",
            "Traceback (most recent call last):\n  ...\nSyntaxError: x\n",
        );
        assert!(matches!(crash, Err(Unasked::Probe(_))));
        let ok = answer_of(
            Some(0),
            "{\"uid\": 1, \"profile\": \"p\", \"AWS_CONFIG_FILE\": \"/c\", \"AWS_CONFIG_FILE_exists\": true, \"AWS_CONFIG_FILE_readable\": true, \"AWS_SHARED_CREDENTIALS_FILE\": \"/dev/null\"}\n",
            "",
        );
        assert_eq!(ok.unwrap().uid, 1);
        let checks = judge(
            &[
                ("scheduler".to_owned(), podman),
                ("triggerer".to_owned(), none),
            ],
            &[],
            &BTreeMap::new(),
            &fixes(),
        );
        assert_eq!(checks[0].fix.as_deref(), Some("EXEC-HINT"));
        assert!(
            checks[1]
                .what
                .starts_with("live triggerer: the container gave no answer: "),
            "{:?}",
            checks[1]
        );
        assert!(
            checks[1]
                .fix
                .as_deref()
                .unwrap()
                .contains("python3 with botocore")
        );
    }
}
