//! An Astro project as `astro dev init` lays it out (Airflow 3 or 2), and its Airflow services
//! run by a real Compose implementation (Debian's `docker-compose`) the way `astro dev start`
//! runs them.
//!
//! `astro dev start` renders its own compose file from astronomer/astro-cli's
//! `airflow/include/airflow3/composeyml.go.tmpl` (Airflow 2: `airflow2/`; both read at commit
//! ed93cc5) and layers the project's `docker-compose.override.yml` over it. [`compose3`] and
//! [`compose2`] are those templates rendered for a local image: the same services, `user:
//! astro`, `io.astronomer.docker.component` labels, `airflow` bridge network, project mounts,
//! `env_file: .env` and common environment, with the changes the local image and Compose v1
//! force: Airflow 3's `STANDALONE_DAG_PROCESSOR: "True"` quoted (Compose v2 takes the bare
//! boolean, v1 wants a string), no `postgres` and `db-migration` services and no `depends_on`
//! them (their images cannot be pulled here, and nothing here needs a database), no
//! `airflow_logs` volume (`duplicate_volumes`: nothing here writes logs), no published ports
//! (tests run in parallel), and each service's `airflow <component>` command replaced by a
//! long-lived boto3 client (`include/credsync_reader.py`). The templates themselves are not
//! copied into the tree (their licence adds the Commons Clause); these are their renderings,
//! written out.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use super::docker::Docker;

/// The services Airflow 3 runs, as the template names them.
pub const SERVICES3: &[&str] = &["scheduler", "dag-processor", "api-server", "triggerer"];
/// The services Airflow 2 runs (the triggerer on every Astro Runtime from 4.0), as the
/// template names them.
pub const SERVICES2: &[&str] = &["scheduler", "webserver", "triggerer"];

/// `astro dev init`'s Dockerfile line for each Airflow (`pkg/airflowrt/include/*/dockerfile`,
/// `FROM %s:%s`, with the image each version's projects use: Airflow 3's Runtime on
/// astrocrpublic.azurecr.io, Airflow 2's `quay.io/astronomer/astro-runtime`).
pub const DOCKERFILE3: &str = "FROM astrocrpublic.azurecr.io/runtime:3.0-2\n";
pub const DOCKERFILE2: &str = "FROM quay.io/astronomer/astro-runtime:12.7.1\n";

/// The long-lived client each service runs: one `boto3.Session` made at start, asked for its
/// credentials every 200 ms; one JSON line on stdout each time the key it returns changes (an
/// error's name in its place: like Airflow, it keeps running without credentials).
pub const READER: &str = r#"import json, os, time
import boto3
try:
    creds, err = boto3.Session().get_credentials(), None
except Exception as e:
    creds, err = None, "ERR:" + type(e).__name__
last = None
while True:
    try:
        key = creds.get_frozen_credentials().access_key if creds else (err or "NONE")
    except Exception as e:
        key = "ERR:" + type(e).__name__
    if key != last:
        print(json.dumps({"uid": os.getuid(), "pid": os.getpid(),
                          "method": creds.method if creds else None, "key": key}), flush=True)
        last = key
    time.sleep(0.2)
"#;

/// Lays out an Airflow 3 project in `dir` as `astro dev init` does (see [`init_project_from`]).
pub fn init_project(dir: &Path) {
    init_project_from(dir, DOCKERFILE3);
}

/// Lays out a project in `dir` as `astro dev init` does (the directories, `.env`, the
/// `dockerfile`, `.astro/config.yaml`, `airflow_settings.yaml`), plus the reader in
/// `include/`, readable by the containers' uid 50000.
pub fn init_project_from(dir: &Path, dockerfile: &str) {
    for d in ["dags", "plugins", "include", ".astro", "tests/dags"] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    let name = dir.file_name().unwrap().to_string_lossy();
    for (file, text) in [
        (".env", String::new()),
        ("packages.txt", String::new()),
        ("requirements.txt", "# Astro Runtime includes the following pre-installed providers packages: https://www.astronomer.io/docs/astro/runtime-image-architecture#provider-packages\n".to_owned()),
        ("dags/.airflowignore", String::new()),
        ("Dockerfile", dockerfile.to_owned()),
        (".astro/config.yaml", format!("project:\n  name: {name}\n")),
        (".astro/dag_integrity_exceptions.txt", "# Add dag files to exempt from parse test below. ex: dags/<test-file>".to_owned()),
        ("airflow_settings.yaml", "airflow:\n  connections:\n  pools:\n  variables:\n".to_owned()),
        ("include/credsync_reader.py", READER.to_owned()),
    ] {
        fs::write(dir.join(file), text).unwrap();
    }
    for d in ["dags", "plugins", "include", "tests"] {
        fs::set_permissions(dir.join(d), fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::set_permissions(
        dir.join("include/credsync_reader.py"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
}

/// Airflow 3's compose file as `astro dev start` renders it for project `dir` (named `name`),
/// for the local `image` (see the module's header for what differs).
pub fn compose3(dir: &Path, name: &str, image: &str) -> String {
    let mut out = format!(
        r#"x-common-env-vars: &common-env-vars
  AIRFLOW__API__BASE_URL: "http://localhost:8080"
  AIRFLOW__API__PORT: 8080
  AIRFLOW__API_AUTH__JWT_SECRET: "{name}"
  AIRFLOW__CORE__AUTH_MANAGER: airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
  AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS: "True"
  AIRFLOW__CORE__EXECUTION_API_SERVER_URL: "http://api-server:8080/execution/"
  AIRFLOW__CORE__EXECUTOR: LocalExecutor
  AIRFLOW__CORE__LOAD_EXAMPLES: "False"
  AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR: "True"
  AIRFLOW__API__SECRET_KEY: "{name}"
  ASTRONOMER_ENVIRONMENT: local

networks:
  airflow:
    driver: bridge

services:
"#
    );
    for svc in SERVICES3 {
        out += &service(dir, image, svc, "");
    }
    out
}

/// Airflow 2's compose file as `astro dev start` renders it for project `dir` (named `name`),
/// for the local `image`, with Astro's defaults (postgres user, password and host `postgres`,
/// the triggerer enabled; see the module's header for what differs).
pub fn compose2(dir: &Path, name: &str, image: &str) -> String {
    let mut out = format!(
        r#"x-common-env-vars: &common-env-vars
  AIRFLOW__CORE__EXECUTOR: LocalExecutor
  AIRFLOW__CORE__SQL_ALCHEMY_CONN: postgresql://postgres:postgres@postgres:5432
  AIRFLOW__DATABASE__SQL_ALCHEMY_CONN: postgresql://postgres:postgres@postgres:5432
  AIRFLOW__CORE__LOAD_EXAMPLES: "False"
  AIRFLOW__CORE__FERNET_KEY: "d6Vefz3G9U_ynXB3cr7y_Ak35tAHkEGAVxuz_B-jzWw="
  AIRFLOW__WEBSERVER__SECRET_KEY: "{name}"
  AIRFLOW__WEBSERVER__RBAC: "True"
  AIRFLOW__WEBSERVER__EXPOSE_CONFIG: "True"
  ASTRONOMER_ENVIRONMENT: local

networks:
  airflow:
    driver: bridge

services:
"#
    );
    for svc in SERVICES2 {
        let depends = if *svc == "webserver" {
            "    depends_on:\n      - scheduler\n"
        } else {
            ""
        };
        out += &service(dir, image, svc, depends);
    }
    out
}

/// One Airflow service of both templates, rendered for project `dir` and `image`: `extra`
/// (its `depends_on:`, the one difference between them here) between its labels and its
/// environment; the `tests` mount in all but the triggerer, the settings file in the scheduler.
fn service(dir: &Path, image: &str, svc: &str, extra: &str) -> String {
    let home = dir.display();
    let mut out = format!(
        r#"  {svc}:
    image: {image}
    command:
      - python3
      - /usr/local/airflow/include/credsync_reader.py
    restart: unless-stopped
    networks:
      - airflow
    user: astro
    labels:
      io.astronomer.docker: "true"
      io.astronomer.docker.cli: "true"
      io.astronomer.docker.component: "airflow-{svc}"
{extra}    environment: *common-env-vars
    volumes:
      - {home}/dags:/usr/local/airflow/dags:z
      - {home}/plugins:/usr/local/airflow/plugins:z
      - {home}/include:/usr/local/airflow/include:z
"#
    );
    if svc != "triggerer" {
        out += &format!("      - {home}/tests:/usr/local/airflow/tests:z\n");
    }
    if svc == "scheduler" {
        out += &format!(
            "      - {home}/airflow_settings.yaml:/usr/local/airflow/airflow_settings.yaml:z\n"
        );
    }
    out + "    env_file: .env\n\n"
}

/// A Compose implementation: Debian's `docker-compose` (v1) when installed, else the docker
/// CLI's `compose` plugin (v2, as on CI runners with Docker CE); the program and its first
/// arguments. Panics under CI when there is neither (`scripts/test` installs one), else skips
/// `test`.
pub fn compose_program(test: &str, docker: &Docker) -> Option<Vec<std::ffi::OsString>> {
    static FOUND: OnceLock<Option<Vec<std::ffi::OsString>>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let v1 = ["/usr/bin/docker-compose", "/usr/local/bin/docker-compose"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists());
        if let Some(v1) = v1 {
            return Some(vec![v1.into()]);
        }
        let plugin = docker
            .cmd(["compose", "version"])
            .output()
            .is_ok_and(|o| o.status.success());
        plugin.then(|| vec![docker.bin().into(), "compose".into()])
    });
    if found.is_none() {
        super::skip(
            test,
            "no Compose (docker-compose, or the docker CLI's compose plugin); scripts/test \
             installs Debian's docker-compose",
        );
    }
    found.clone()
}

/// A Compose project of the test engine: `docker-compose -p NAME -f FILE...` in the project
/// directory, with the test's HOME (for `${HOME}` in the override); taken down on drop.
pub struct Compose {
    program: Vec<std::ffi::OsString>,
    docker: Docker,
    pub name: String,
    dir: PathBuf,
    home: PathBuf,
    files: Vec<String>,
}

impl Compose {
    pub fn new(
        program: Vec<std::ffi::OsString>,
        docker: &Docker,
        name: String,
        dir: &Path,
        home: &Path,
        files: &[&str],
    ) -> Compose {
        Compose {
            program,
            docker: docker.clone(),
            name,
            dir: dir.to_owned(),
            home: home.to_owned(),
            files: files.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    /// `docker-compose -p NAME -f ... ARGS`, with `files` instead of the project's own list
    /// when given.
    pub fn cmd_with(&self, files: &[&str], args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.program[0]);
        cmd.args(&self.program[1..])
            .current_dir(&self.dir)
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("HOME", &self.home)
            .env("DOCKER_HOST", self.docker.host())
            .args(["--ansi", "never", "-p", &self.name]);
        for f in files {
            cmd.args(["-f", f]);
        }
        cmd.args(args);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let files: Vec<&str> = self.files.iter().map(String::as_str).collect();
        self.cmd_with(&files, args)
            .output()
            .expect("run docker-compose")
    }

    /// Runs and asserts success.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "docker-compose {args:?}:\n{}",
            super::output_text(&o)
        );
        super::output_text(&o)
    }

    /// The JSON lines `service` printed so far (through the docker CLI, by the labels Compose
    /// puts on its containers: quicker than `docker-compose logs`).
    pub fn readings(&self, service: &str) -> Vec<serde_json::Value> {
        let project = format!("label=com.docker.compose.project={}", self.name);
        let svc = format!("label=com.docker.compose.service={service}");
        let ps = self
            .docker
            .cmd(["ps", "-q", "--filter", &project, "--filter", &svc])
            .output()
            .expect("docker ps");
        let id = String::from_utf8_lossy(&ps.stdout).trim().to_owned();
        if id.is_empty() {
            return Vec::new();
        }
        let o = self
            .docker
            .cmd(["logs", &id])
            .output()
            .expect("docker logs");
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.find('{').map(|i| &l[i..]))
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        let _ = self.run(&["down", "--remove-orphans", "--timeout", "1"]);
    }
}
