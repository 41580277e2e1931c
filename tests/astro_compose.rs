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
use std::path::Path;
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

#[test]
fn astro_setup_then_real_compose_every_airflow3_service_gets_each_new_key_without_restart() {
    let test =
        "astro_setup_then_real_compose_every_airflow3_service_gets_each_new_key_without_restart";
    let Some(docker) = Docker::get(test) else {
        return;
    };
    let Some(program) = astro::compose_program(test, &docker) else {
        return;
    };
    let fake = FakeAws::new();
    let name = support::docker::container_name("credsync-astro");
    let (env, project) = signed_in(&fake, &name, astro::DOCKERFILE3);

    let o = env.run(["astro".as_ref(), "setup".as_ref(), project.as_os_str()]);
    let t = output_text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains(" 0 failed, "), "{t}");
    let first = served(&fake);

    fs::write(
        project.join(".astro-compose.yml"),
        astro::compose3(&project, &name, &docker.image),
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
    for svc in SERVICES3 {
        let r = wait_key(&compose, svc, &first);
        assert_eq!(r["uid"], 50000, "{svc}: {r}");
        assert_eq!(r["method"], "custom-process", "{svc}: {r}");
        pids.push(r["pid"].clone());
    }
    let mut last = first;
    for round in 0..2 {
        let next = env.sync_served_key(&fake, ACCOUNT);
        for (svc, pid) in SERVICES3.iter().zip(&pids) {
            let r = wait_key(&compose, svc, &next);
            assert_eq!(&r["pid"], pid, "round {round}: {svc} restarted: {r}");
        }
        last = next;
    }

    // doctor --live asks each container: all four on the view, with the key credsync wrote.
    let secret = fake
        .last_credentials(ACCOUNT, "Dev")
        .unwrap()
        .secret_access_key;
    let (code, t) = doctor_live(&env, &project, &docker);
    assert_eq!(code, 0, "{t}");
    let key4 = &last[last.len() - 4..];
    for svc in SERVICES3 {
        let needle = format!(
            "ok    live {svc} (uid 50000, profile dev): custom-process (the view), key …{key4}, expires "
        );
        assert!(t.contains(&needle), "missing {needle:?} in:\n{t}");
    }
    assert!(
        !t.contains(&last) && !t.contains(&secret),
        "a secret in:\n{t}"
    );

    // The triggerer recreated from Astro's file alone (no override, so no ~/.aws): doctor
    // fails exactly that service, and says why and what the scheduler has that it lacks.
    compose
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
    let (code, t) = doctor_live(&env, &project, &docker);
    assert_eq!(code, 1, "{t}");
    let fails: Vec<&str> = t.lines().filter(|l| l.starts_with("fail")).collect();
    assert_eq!(fails.len(), 1, "{t}");
    assert!(
        fails[0].starts_with("fail  live triggerer (uid 50000, profile dev): ")
            && fails[0].contains("/home/astro/.aws/credsync/config is not readable there")
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
    let Some(docker) = Docker::get(test) else {
        return;
    };
    let Some(program) = astro::compose_program(test, &docker) else {
        return;
    };
    let fake = FakeAws::new();
    let name = support::docker::container_name("credsync-astro2");
    let (env, project) = signed_in(&fake, &name, astro::DOCKERFILE2);

    let o = env.run(["astro".as_ref(), "setup".as_ref(), project.as_os_str()]);
    let t = output_text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("Airflow 2 project "), "{t}");
    let first = served(&fake);

    fs::write(
        project.join(".astro-compose.yml"),
        astro::compose2(&project, &name, &docker.image),
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
    for svc in SERVICES2 {
        let r = wait_key(&compose, svc, &first);
        assert_eq!(r["uid"], 50000, "{svc}: {r}");
        assert_eq!(r["method"], "custom-process", "{svc}: {r}");
        pids.push(r["pid"].clone());
    }
    let next = env.sync_served_key(&fake, ACCOUNT);
    for (svc, pid) in SERVICES2.iter().zip(&pids) {
        let r = wait_key(&compose, svc, &next);
        assert_eq!(&r["pid"], pid, "{svc} restarted: {r}");
    }
    // doctor --live: the three services, each on the view with the key credsync wrote.
    let (code, t) = doctor_live(&env, &project, &docker);
    assert_eq!(code, 0, "{t}");
    let key4 = &next[next.len() - 4..];
    for svc in SERVICES2 {
        let needle = format!(
            "ok    live {svc} (uid 50000, profile dev): custom-process (the view), key …{key4}, expires "
        );
        assert!(t.contains(&needle), "missing {needle:?} in:\n{t}");
    }
}
