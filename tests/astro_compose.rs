//! `credsync astro setup` on a project laid out as `astro dev init` lays it out, then a real
//! Compose (Debian's `docker-compose`, else Docker's compose plugin) running Airflow 3's four
//! services (Airflow 2's three) from the compose file `astro dev start` renders (for the local
//! image, see `support::astro`) plus the override setup wrote: each service, as uid 50000, a
//! long-lived boto3 client that gets each new key across two refreshes (Airflow 2: one) with
//! no restart.
//!
//! Refreshes are `credsync sync` against the fake AWS, whose keys last 14 minutes (inside
//! botocore's 15-minute advisory window, so each read runs `credential_process` again): the test
//! waits for each container to print the key the sync wrote, never for a duration.

use crate::support;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::astro::{self, Compose, SERVICES2, SERVICES3};
use support::docker::Docker;
use support::fake_aws::FakeAws;
use support::{TestEnv, output_text};

const ACCOUNT: &str = "000000100000";
const LIFETIME: Duration = Duration::from_secs(14 * 60);
/// How long a container may take to print a key it can already read (an event, not a pace).
const WAIT: Duration = Duration::from_secs(60);

/// A HOME signed in to `fake`, with one SSO profile, and an Astro project `name` in it, on
/// `dockerfile`'s Airflow.
fn signed_in(fake: &FakeAws, name: &str, dockerfile: &str) -> (TestEnv, std::path::PathBuf) {
    let env = TestEnv::with_fake(fake);
    env.write_aws_config(
        "[sso-session corp]\nsso_start_url = https://fake.awsapps.com/start\nsso_region = us-east-1\n\n\
         [profile dev]\nsso_session = corp\nsso_account_id = 000000100000\nsso_role_name = Dev\n\
         region = eu-west-1\n",
    );
    fake.set_credential_lifetime(LIFETIME);
    env.sign_in(fake, "corp", "tok-corp");
    let project = env.root().join(name);
    astro::init_project_from(&project, dockerfile);
    (env, project)
}

/// Waits until `service` has printed `key`; returns that reading.
fn wait_key(compose: &Compose, service: &str, key: &str) -> serde_json::Value {
    let mut found = None;
    let ok = support::wait_for(
        || {
            found = compose
                .readings(service)
                .into_iter()
                .find(|r| r["key"] == key);
            found.is_some()
        },
        WAIT,
    );
    assert!(
        ok,
        "{service} never printed {key}; it printed {:?}",
        compose.readings(service)
    );
    found.unwrap()
}

fn served(fake: &FakeAws) -> String {
    fake.last_credentials(ACCOUNT, "Dev")
        .expect("the fake served credentials")
        .access_key_id
}

fn doctor_live(env: &TestEnv, project: &Path, docker: &Docker) -> (i32, String) {
    let mut cmd = env.cmd([
        "doctor".as_ref(),
        "--project".as_ref(),
        project.as_os_str(),
        "--live".as_ref(),
    ]);
    cmd.env("DOCKER_HOST", docker.host());
    let o = cmd.stdin(std::process::Stdio::null()).output().unwrap();
    (o.status.code().unwrap_or(-1), output_text(&o))
}

/// An Astro project after `credsync astro setup`, running under a real Compose: Astro's compose
/// file plus setup's override, each Airflow service on the first key.
struct Up {
    // Dropped first: `down` reads the project's files, which go with `env`.
    compose: Compose,
    docker: Docker,
    fake: FakeAws,
    env: TestEnv,
    project: PathBuf,
    /// Each service's reader process, to tell that it never restarted.
    pids: Vec<serde_json::Value>,
}

/// Lays out the project on `dockerfile`'s Airflow, runs `credsync astro setup` on it, brings
/// up `render`'s compose file with the override, and waits for each of `services` to read the
/// first key as uid 50000 through the view. `None`: no engine or Compose (skipped).
fn setup_and_up(
    test: &str,
    dockerfile: &str,
    render: fn(&Path, &str, &str) -> String,
    services: &[&str],
) -> Option<Up> {
    let docker = Docker::get(test)?;
    let program = astro::compose_program(test, &docker)?;
    let fake = FakeAws::new();
    let name = support::docker::container_name("credsync-astro");
    let (env, project) = signed_in(&fake, &name, dockerfile);

    let o = env.run(["astro".as_ref(), "setup".as_ref(), project.as_os_str()]);
    let t = output_text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains(" 0 failed, "), "{t}");
    let first = served(&fake);

    fs::write(
        project.join(".astro-compose.yml"),
        render(&project, &name, &docker.image),
    )
    .unwrap();
    let compose = Compose::new(
        program,
        &docker,
        name,
        &project,
        env.home(),
        &[".astro-compose.yml", "docker-compose.override.yml"],
    );
    compose.ok(&["up", "-d"]);
    let mut pids = Vec::new();
    for svc in services {
        let r = wait_key(&compose, svc, &first);
        assert_eq!(r["uid"], 50000, "{svc}: {r}");
        assert_eq!(r["method"], "custom-process", "{svc}: {r}");
        pids.push(r["pid"].clone());
    }
    Some(Up {
        compose,
        docker,
        fake,
        env,
        project,
        pids,
    })
}

impl Up {
    /// One `credsync sync`, then each of `services` reads its new key, same process; the key.
    fn refresh(&self, services: &[&str]) -> String {
        let next = self.env.sync_served_key(&self.fake, ACCOUNT);
        for (svc, pid) in services.iter().zip(&self.pids) {
            let r = wait_key(&self.compose, svc, &next);
            assert_eq!(&r["pid"], pid, "{svc} restarted: {r}");
        }
        next
    }

    /// `doctor --project --live`: its exit code and output.
    fn doctor_live(&self) -> (i32, String) {
        doctor_live(&self.env, &self.project, &self.docker)
    }
}

/// Asserts that doctor's output `t` passes each of `services` on the view with `key`.
fn assert_live_ok(t: &str, services: &[&str], key: &str) {
    let key4 = &key[key.len() - 4..];
    for svc in services {
        let needle = format!(
            "ok    live {svc} (uid 50000, profile dev): custom-process (the view), key …{key4}, expires "
        );
        assert!(t.contains(&needle), "missing {needle:?} in:\n{t}");
    }
}

#[test]
fn astro_setup_then_real_compose_every_airflow3_service_gets_each_new_key_without_restart() {
    let test =
        "astro_setup_then_real_compose_every_airflow3_service_gets_each_new_key_without_restart";
    let Some(up) = setup_and_up(test, astro::DOCKERFILE3, astro::compose3, SERVICES3) else {
        return;
    };
    up.refresh(SERVICES3);
    let last = up.refresh(SERVICES3);

    // doctor --live asks each container: all four on the view, with the key credsync wrote.
    let secret = up
        .fake
        .last_credentials(ACCOUNT, "Dev")
        .unwrap()
        .secret_access_key;
    let (code, t) = up.doctor_live();
    assert_eq!(code, 0, "{t}");
    assert_live_ok(&t, SERVICES3, &last);
    assert!(
        !t.contains(&last) && !t.contains(&secret),
        "a secret in:\n{t}"
    );

    // The triggerer recreated from Astro's file alone (no override, so no ~/.aws): doctor
    // fails exactly that service, and says why and what the scheduler has that it lacks.
    up.compose
        .cmd_with(
            &[".astro-compose.yml"],
            &[
                "up",
                "-d",
                "--no-deps",
                "--force-recreate",
                "-t",
                "1",
                "triggerer",
            ],
        )
        .output()
        .map(|o| assert!(o.status.success(), "{}", output_text(&o)))
        .unwrap();
    let (code, t) = up.doctor_live();
    assert_eq!(code, 1, "{t}");
    let fails: Vec<&str> = t.lines().filter(|l| l.starts_with("fail")).collect();
    assert_eq!(fails.len(), 1, "{t}");
    assert!(
        fails[0].starts_with("fail  live triggerer (uid 50000, profile dev): ")
            && fails[0].contains(
                "/home/astro/.aws/credsync/config is not readable there: no such file (nothing \
                 mounted there)"
            )
            && fails[0].contains("the triggerer lacks what the scheduler has"),
        "{t}"
    );
    assert!(t.contains("           then `astro dev restart`"), "{t}");
    for svc in ["scheduler", "dag-processor", "api-server"] {
        assert!(t.contains(&format!("ok    live {svc} ")), "{svc}:\n{t}");
    }
}

#[test]
fn astro_setup_then_real_compose_every_airflow2_service_gets_the_new_key_without_restart() {
    let test =
        "astro_setup_then_real_compose_every_airflow2_service_gets_the_new_key_without_restart";
    let Some(up) = setup_and_up(test, astro::DOCKERFILE2, astro::compose2, SERVICES2) else {
        return;
    };
    let next = up.refresh(SERVICES2);
    // doctor --live: the three services, each on the view with the key credsync wrote.
    let (code, t) = up.doctor_live();
    assert_eq!(code, 0, "{t}");
    assert_live_ok(&t, SERVICES2, &next);
}
