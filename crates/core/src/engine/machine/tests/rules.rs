//! The machine's rules one at a time, each at the values where a changed comparison or a
//! dropped branch would show: how a failure of each kind is recorded and when it is looked at
//! again, when a session's token is next checked after a read, a failed save or a refresh, what
//! a failed or successful write does to the profiles it did not fetch, when a change of the
//! credentials file asks for a write, and when a reload keeps a profile's credentials.

use super::*;
use crate::chain::RoleHop;

/// The shape of profile `i` in `m`.
fn status(m: &Machine, i: usize) -> ProfileStatus {
    m.profiles()[i].status()
}

/// A profile entry `source` → `target` with `plan`, no jitter.
fn managed(source: &str, target: &str, plan: Result<Plan, ResolveError>) -> ManagedProfile {
    let entry = ProfileEntry {
        source: source.to_owned(),
        target: target.to_owned(),
    };
    ManagedProfile::new(entry, plan, 0.0)
}

fn static_plan(profile: &str, key_id: &str, secret: &str) -> Result<Plan, ResolveError> {
    let credentials = Credentials {
        access_key_id: SecretString::from(key_id),
        secret_access_key: SecretString::from(secret),
        session_token: None,
        expiration: None,
        account_id: None,
    };
    Ok(Plan {
        base: Base::Static {
            profile: profile.to_owned(),
            credentials,
        },
        hops: Vec::new(),
    })
}

fn hop(profile: &str, role_arn: &str) -> RoleHop {
    RoleHop {
        profile: profile.to_owned(),
        role_arn: role_arn.to_owned(),
        role_session_name: format!("credsync-{profile}"),
        external_id: None,
        duration_seconds: None,
        region: None,
    }
}

/// A machine of one profile `p0` planned as `plan`, whose credentials were fetched at `t(0)`
/// (expiring in an hour), then reconfigured to `new_plan`: whether it kept them.
fn reload_keeps_credentials(
    plan: Result<Plan, ResolveError>,
    new_plan: Result<Plan, ResolveError>,
) -> bool {
    let random: Random = Arc::new(|| 0.0);
    let mut m = Machine::new(vec![managed("p0", "p0", plan)], settings(), random);
    m.apply(t(0), fetched(0, Ok(creds(t(0) + HOUR)), None));
    assert!(m.profiles()[0].credentials().is_some(), "fetched");
    let profiles = vec![managed("p0", "p0", new_plan)];
    m.apply(
        t(1),
        Event::Reconfigured {
            profiles,
            settings: settings(),
        },
    );
    let kept = m.profiles()[0].credentials();
    assert_eq!(kept.is_some(), status(&m, 0).state == State::Fresh);
    kept.is_some()
}

#[test]
fn a_failure_is_recorded_by_kind_and_looked_at_again_by_kind() {
    let draw = 0.5;
    let mut m = machine(&["p0"], draw);
    m.apply(t(0), fetched(0, Ok(creds(t(0) + HOUR)), None));
    let transient = ResolveError::Transient {
        service: "SSO",
        message: "timeout".to_owned(),
        retry_after: None,
    };
    // While the credentials are valid: degraded, kept, tried again after the backoff.
    m.apply(t(100), fetched(0, Err(transient.clone()), None));
    let s = status(&m, 0);
    assert_eq!(s.state, State::Degraded);
    assert_eq!(
        s.next_refresh,
        Some(t(100) + schedule::backoff(1, None, draw))
    );
    assert!(
        m.profiles()[0].credentials().is_some(),
        "still valid, still written"
    );
    // A token file that did not read: looked at again soon, on its own schedule.
    let unreadable = ResolveError::TokenUnreadable {
        path: PathBuf::from("/h/.aws/sso/cache/x.json"),
        reason: "half written".to_owned(),
    };
    m.apply(t(200), fetched(0, Err(unreadable), None));
    let s = status(&m, 0);
    assert_eq!(
        s.next_refresh,
        Some(t(200) + schedule::unreadable_token_retry(2))
    );
    assert_ne!(
        schedule::unreadable_token_retry(2),
        schedule::backoff(2, None, draw)
    );
    // Refused: not retried in a loop, looked at again after the longest backoff.
    let refused = ResolveError::Refused {
        service: "SSO",
        code: "ForbiddenException".to_owned(),
        message: "no access".to_owned(),
    };
    m.apply(t(300), fetched(0, Err(refused), None));
    let s = status(&m, 0);
    assert_eq!(s.state, State::Degraded);
    assert_eq!(s.next_refresh, Some(t(300) + schedule::MAX_BACKOFF));
    assert_ne!(schedule::MAX_BACKOFF, schedule::backoff(3, None, draw));
    // Misconfigured: an error, whatever the credentials.
    m.apply(
        t(400),
        fetched(0, Err(ResolveError::Config("bad".to_owned())), None),
    );
    let s = status(&m, 0);
    assert_eq!(s.state, State::Error);
    assert_eq!(s.next_refresh, Some(t(400) + schedule::MAX_BACKOFF));
    // At the very second the credentials expire they are no longer valid: expired, dropped.
    m.apply(t(0) + HOUR, fetched(0, Err(transient), None));
    let s = status(&m, 0);
    assert_eq!(s.state, State::Expired);
    assert!(m.profiles()[0].credentials().is_none());
    assert!(m.sections().is_empty(), "nothing left to write");
}

#[test]
fn a_repeated_failure_is_marked_repeated_in_the_report() {
    let mut m = machine(&["p0"], 0.0);
    m.apply(t(0), fetched(0, Err(login_required()), None));
    assert!(!end_round(&mut m).profiles[0].repeated, "the first time");
    m.apply(t(10), fetched(0, Err(login_required()), None));
    assert!(
        end_round(&mut m).profiles[0].repeated,
        "the same failure again"
    );
    let other = ResolveError::Config("bad".to_owned());
    m.apply(t(20), fetched(0, Err(other), None));
    assert!(!end_round(&mut m).profiles[0].repeated, "another failure");
}

#[test]
fn profiles_are_named_by_source_or_target() {
    let random: Random = Arc::new(|| 0.0);
    let aws = crate::aws_profile::parse(AWS, Path::new("config")).expect("aws config");
    let plan = |name| {
        crate::chain::plan(&aws, &BTreeMap::new(), name)
            .map_err(|e| ResolveError::Config(e.to_string()))
    };
    let profiles = vec![
        managed("p0", "dev", plan("p0")),
        managed("p1", "ops", plan("p1")),
    ];
    let m = Machine::new(profiles, settings(), random);
    assert_eq!(m.named(Some("p0")), vec![0]);
    assert_eq!(m.named(Some("dev")), vec![0]);
    assert_eq!(m.named(Some("ops")), vec![1]);
    assert_eq!(m.named(None), vec![0, 1]);
    assert!(m.named(Some("nope")).is_empty());
}

#[test]
fn a_profile_that_cannot_be_planned_is_never_fetched_even_when_asked_for() {
    let random: Random = Arc::new(|| 0.0);
    let broken = Err(ResolveError::Config("no such profile".to_owned()));
    let mut m = Machine::new(vec![managed("gone", "gone", broken)], settings(), random);
    m.apply(t(0), Event::RefreshRequested(None));
    assert_eq!(m.apply(t(0), Event::Tick), Vec::new());
    assert_eq!(status(&m, 0).state, State::Error);
}

#[test]
fn profiles_waiting_on_the_token_cache_are_those_needing_a_login_or_a_readable_token_file() {
    let mut m = machine(&["p0", "p1"], 0.0);
    m.apply(t(0), fetched(0, Err(login_required()), None));
    let unreadable = ResolveError::TokenUnreadable {
        path: PathBuf::from("/h/.aws/sso/cache/x.json"),
        reason: "half written".to_owned(),
    };
    m.apply(t(0), fetched(1, Err(unreadable), None));
    assert_eq!(m.waiting_on_the_token_cache(), vec![0, 1]);
    // `refresh` forgets the login wait, but the profile still needs a login.
    m.apply(t(1), Event::RefreshRequested(Some("p0".to_owned())));
    assert_eq!(m.waiting_on_the_token_cache(), vec![0, 1]);
}

#[test]
fn a_token_read_keeps_a_later_retry_of_a_failed_refresh_but_not_an_earlier_one() {
    let registered = Some(t(0) + 90 * 24 * HOUR);
    let next = |m: &Machine| m.session_status(t(0))[0].next_token_refresh;
    // No failure: a read plans the token's own due time, even before an earlier plan.
    let mut m = machine(&["p0"], 0.0);
    let long = facts(t(0) + 2 * HOUR, registered);
    m.apply(
        t(0),
        Event::TokensRead(vec![("corp".to_owned(), Some(long))]),
    );
    assert_eq!(next(&m), Some(t(0) + 2 * HOUR - BEFORE));
    let short = facts(t(0) + HOUR, registered);
    assert!(!read_token(&mut m, t(0), short));
    assert_eq!(next(&m), Some(t(0) + HOUR - BEFORE));

    // A refresh failed and is retried in 10 minutes (the server's Retry-After)...
    let failing = |m: &mut Machine, old: TokenFacts, at: SystemTime| {
        let read = vec![("corp".to_owned(), Some(old.clone()))];
        m.apply(at, Event::TokensRead(read));
        let throttled = ResolveError::Throttled {
            service: "SSO-OIDC",
            code: "TooManyRequests".to_owned(),
            retry_after: Some(Duration::from_secs(600)),
        };
        let event = Event::TokenRefreshed {
            key: "corp".to_owned(),
            old,
            result: Err(throttled),
        };
        m.apply(at, event);
        assert_eq!(next(m), Some(at + Duration::from_secs(600)));
    };
    let due = t(0) + HOUR - BEFORE;
    let mut m = machine(&["p0"], 0.0);
    failing(&mut m, facts(t(0) + HOUR, registered), due);
    // ...then another program left a token due in 5 minutes: the retry stays.
    let soon = facts(due + Duration::from_secs(300) + BEFORE, registered);
    assert!(!read_token(&mut m, due + Duration::from_secs(1), soon));
    assert_eq!(next(&m), Some(due + Duration::from_secs(600)));
    // A token due later than the retry: its own due time.
    let mut m = machine(&["p0"], 0.0);
    failing(&mut m, facts(t(0) + HOUR, registered), due);
    let later = facts(due + HOUR, registered);
    assert!(!read_token(&mut m, due + Duration::from_secs(1), later));
    assert_eq!(next(&m), Some(due + HOUR - BEFORE));
}

#[test]
fn a_failed_refresh_of_an_expired_token_schedules_nothing_and_says_so() {
    let registered = Some(t(0) + 90 * 24 * HOUR);
    let mut m = machine(&["p0"], 0.0);
    let old = facts(t(0) + HOUR, registered);
    let transient = || ResolveError::Transient {
        service: "SSO-OIDC",
        message: "timeout".to_owned(),
        retry_after: None,
    };
    for at in [t(0) + HOUR, t(0) + HOUR + Duration::from_secs(60)] {
        let event = Event::TokenRefreshed {
            key: "corp".to_owned(),
            old: old.clone(),
            result: Err(transient()),
        };
        m.apply(at, event);
        assert_eq!(m.session_status(at)[0].next_token_refresh, None);
    }
    let report = end_round(&mut m);
    let outcomes: Vec<&SessionOutcome> = report.sessions.iter().map(|s| &s.outcome).collect();
    assert!(
        matches!(
            outcomes[..],
            [
                SessionOutcome::RefreshFailed {
                    valid_until: None,
                    repeated: false,
                    ..
                },
                SessionOutcome::RefreshFailed {
                    valid_until: None,
                    repeated: true,
                    ..
                },
            ]
        ),
        "{outcomes:?}"
    );
    // While the old token is valid, a failure is retried and marked repeated the same way.
    let mut m = machine(&["p0"], 0.0);
    for at in [t(10), t(20)] {
        let event = Event::TokenRefreshed {
            key: "corp".to_owned(),
            old: old.clone(),
            result: Err(transient()),
        };
        m.apply(at, event);
    }
    let report = end_round(&mut m);
    let repeated: Vec<bool> = report
        .sessions
        .iter()
        .map(|s| {
            matches!(
                s.outcome,
                SessionOutcome::RefreshFailed { repeated: true, .. }
            )
        })
        .collect();
    assert_eq!(repeated, [false, true]);
}

#[test]
fn a_short_token_lifetime_is_said_once() {
    let registered = Some(t(0) + 90 * 24 * HOUR);
    let mut m = machine(&["p0"], 0.0);
    let old = facts(t(0) + HOUR, registered);
    let short = BEFORE + Duration::from_secs(600);
    // Said with the first short token, not again with the next.
    for (at, want) in [(t(0), 1), (t(0) + short, 0)] {
        let event = Event::TokenRefreshed {
            key: "corp".to_owned(),
            old: old.clone(),
            result: Ok(facts(at + short, registered)),
        };
        m.apply(at, event);
        let report = end_round(&mut m);
        let said = report
            .sessions
            .iter()
            .filter(|s| matches!(s.outcome, SessionOutcome::ShortLifetime { .. }))
            .count();
        assert_eq!(said, want, "{:?}", report.sessions);
    }
}

#[test]
fn a_failed_save_is_tried_again_with_backoff_and_said_when_it_starts_changes_and_ends() {
    let draw = 0.5;
    let mut m = machine(&["p0"], draw);
    // A token that cannot be refreshed: the save's retry is the only deadline.
    let token = facts(t(0) + HOUR, None);
    m.apply(
        t(0),
        Event::TokensRead(vec![("corp".to_owned(), Some(token))]),
    );
    assert_eq!(m.next_deadline(), None);
    let saved = |m: &mut Machine, at: SystemTime, result: Result<(), String>| {
        let key = "corp".to_owned();
        m.apply(at, Event::TokenSaved { key, result });
    };
    saved(&mut m, t(0), Err("disk full".to_owned()));
    let first = t(0) + schedule::backoff(1, None, draw);
    assert_eq!(m.next_deadline(), Some(first));
    let s = &m.session_status(t(0))[0];
    assert_eq!(s.token_unsaved_since, Some(t(0)));
    assert_eq!(s.token_unsaved_error.as_deref(), Some("disk full"));
    // The same failure again: a longer wait, nothing new to say.
    saved(&mut m, first, Err("disk full".to_owned()));
    assert_eq!(
        m.next_deadline(),
        Some(first + schedule::backoff(2, None, draw))
    );
    // Another reason: said.
    saved(&mut m, t(100), Err("read-only file system".to_owned()));
    saved(&mut m, t(200), Ok(()));
    assert_eq!(m.next_deadline(), None);
    assert_eq!(m.session_status(t(200))[0].token_unsaved_since, None);
    let report = end_round(&mut m);
    let outcomes: Vec<&SessionOutcome> = report.sessions.iter().map(|s| &s.outcome).collect();
    assert!(
        matches!(outcomes[..], [
            SessionOutcome::NotSaved { error: a },
            SessionOutcome::NotSaved { error: b },
            SessionOutcome::Saved,
        ] if a == "disk full" && b == "read-only file system"),
        "{outcomes:?}"
    );
}

#[test]
fn a_failed_write_degrades_only_the_profiles_it_should_have_written() {
    let mut m = machine(&["p0", "p1"], 0.0);
    m.apply(t(0), fetched(0, Ok(creds(t(0) + HOUR)), None));
    let ok = Event::Written {
        conflicts: Vec::new(),
        result: Ok(write::Outcome::Written),
    };
    m.apply(t(0), ok);
    end_round(&mut m);
    // The next round fetches p1 only, and its write fails: p0's credentials are on disk.
    m.apply(t(10), fetched(1, Ok(creds(t(10) + HOUR)), None));
    let failed = Event::Written {
        conflicts: Vec::new(),
        result: Err("disk full".to_owned()),
    };
    m.apply(t(10), failed);
    assert_eq!(status(&m, 0).state, State::Fresh);
    assert_eq!(status(&m, 0).last_error, None);
    assert_eq!(status(&m, 1).state, State::Degraded);
}

#[test]
fn a_successful_write_makes_fresh_only_what_it_wrote_and_is_still_valid() {
    let transient = ResolveError::Transient {
        service: "SSO",
        message: "timeout".to_owned(),
        retry_after: None,
    };
    let ok = || Event::Written {
        conflicts: Vec::new(),
        result: Ok(write::Outcome::Written),
    };
    let mut m = machine(&["p0", "p1"], 0.0);
    m.apply(t(0), fetched(0, Ok(creds(t(0) + HOUR)), None));
    m.apply(t(0), fetched(1, Ok(creds(t(0) + HOUR)), None));
    m.apply(t(0), ok());
    // p1 fails a refresh while its credentials are valid: degraded for its own reason.
    m.apply(t(10), fetched(1, Err(transient), None));
    assert_eq!(status(&m, 1).state, State::Degraded);
    // p0's write fails, then a write succeeds when p0's credentials have just expired.
    m.apply(t(20), fetched(0, Ok(creds(t(0) + HOUR)), None));
    let failed = Event::Written {
        conflicts: Vec::new(),
        result: Err("disk full".to_owned()),
    };
    m.apply(t(20), failed);
    assert_eq!(status(&m, 0).state, State::Degraded);
    m.apply(t(0) + HOUR, ok());
    assert_eq!(status(&m, 0).state, State::Degraded, "expired: not fresh");
    assert_eq!(
        status(&m, 1).state,
        State::Degraded,
        "its own failure stands"
    );
    // Before the expiry, the same write would have made p0 fresh.
    m.apply(t(30), fetched(0, Ok(creds(t(30) + HOUR)), None));
    m.apply(
        t(30),
        Event::Written {
            conflicts: Vec::new(),
            result: Err("disk full".to_owned()),
        },
    );
    m.apply(t(40), ok());
    assert_eq!(status(&m, 0).state, State::Fresh);
}

#[test]
fn a_write_after_a_failed_fetch_is_asked_for_only_when_something_is_to_be_removed() {
    let mut m = machine(&["p0", "p1"], 0.0);
    let transient = || ResolveError::Transient {
        service: "SSO",
        message: "timeout".to_owned(),
        retry_after: None,
    };
    assert_eq!(
        m.apply(t(0), fetched(0, Err(transient()), None)),
        Vec::new()
    );
    let random: Random = Arc::new(|| 0.0);
    let profiles = profiles(&["p0"], &random);
    m.apply(
        t(1),
        Event::Reconfigured {
            profiles,
            settings: settings(),
        },
    );
    assert_eq!(m.removed_targets(), vec!["p1"]);
    assert_eq!(
        m.apply(t(2), fetched(0, Err(transient()), None)),
        vec![Action::Write]
    );
}

#[test]
fn a_change_of_the_credentials_file_asks_for_a_write_only_when_it_drifted() {
    let mut m = machine(&["p0", "p1"], 0.0);
    m.apply(t(0), fetched(0, Ok(creds(t(0) + HOUR)), None));
    m.apply(t(0), fetched(1, Ok(creds(t(0) + HOUR)), None));
    let both = ini_edit::apply("", &m.sections(), &[]).text;
    let changed = |m: &mut Machine, text: &str| {
        let event = Event::CredentialsFileChanged {
            text: text.to_owned(),
        };
        m.apply(t(1), event)
    };
    assert_eq!(changed(&mut m, &both), Vec::new(), "as written");
    // p1 leaves the configuration: its section is to go.
    let random: Random = Arc::new(|| 0.0);
    let kept = profiles(&["p0"], &random);
    m.apply(
        t(1),
        Event::Reconfigured {
            profiles: kept,
            settings: settings(),
        },
    );
    assert_eq!(m.removed_targets(), vec!["p1"]);
    let p0_only = ini_edit::apply("", &m.sections(), &[]).text;
    assert!(!p0_only.contains("[p1]") && both.contains("[p1]"));
    assert_eq!(
        changed(&mut m, &p0_only),
        Vec::new(),
        "p1's section is gone already"
    );
    assert_eq!(
        changed(&mut m, &both),
        vec![Action::Write],
        "p1's section is still there"
    );
}

#[test]
fn a_session_keeps_the_login_command_of_the_profiles_that_use_it_now() {
    const LEGACY: &str = "[profile l0]\nsso_start_url = https://old.awsapps.com/start\n\
        sso_region = us-east-1\nsso_account_id = 333333333333\nsso_role_name = Dev\n\n\
        [profile l1]\nsso_start_url = https://old.awsapps.com/start\n\
        sso_region = us-east-1\nsso_account_id = 444444444444\nsso_role_name = Dev\n";
    let aws = crate::aws_profile::parse(LEGACY, Path::new("config")).expect("aws config");
    let plan = |name| {
        crate::chain::plan(&aws, &BTreeMap::new(), name)
            .map_err(|e| ResolveError::Config(e.to_string()))
    };
    let random: Random = Arc::new(|| 0.0);
    let both = vec![
        managed("l0", "l0", plan("l0")),
        managed("l1", "l1", plan("l1")),
    ];
    let mut m = Machine::new(both, settings(), random);
    let url = "https://old.awsapps.com/start".to_owned();
    assert_eq!(m.session_keys(), vec![(url.clone(), true)]);
    let command = |m: &Machine| m.session_status(t(0))[0].login_command.clone();
    assert_eq!(command(&m), "credsync login --profile l0");
    let profiles = vec![managed("l1", "l1", plan("l1"))];
    m.apply(
        t(1),
        Event::Reconfigured {
            profiles,
            settings: settings(),
        },
    );
    assert_eq!(command(&m), "credsync login --profile l1");
    assert_eq!(
        machine(&["p0"], 0.0).session_keys(),
        vec![("corp".to_owned(), false)]
    );
}

#[test]
fn a_reload_keeps_credentials_only_when_the_plan_is_the_same() {
    let sso = |name: &str| {
        let aws = crate::aws_profile::parse(AWS, Path::new("config")).expect("aws config");
        crate::chain::plan(&aws, &BTreeMap::new(), name)
            .map_err(|e| ResolveError::Config(e.to_string()))
    };
    let with_hop = |arn: &str| {
        let mut plan = sso("p0");
        plan.as_mut().expect("planned").hops.push(hop("r", arn));
        plan
    };
    let env = || {
        Ok(Plan {
            base: Base::Environment,
            hops: Vec::new(),
        })
    };
    assert!(reload_keeps_credentials(sso("p0"), sso("p0")));
    assert!(
        !reload_keeps_credentials(sso("p0"), sso("p1")),
        "another account"
    );
    assert!(!reload_keeps_credentials(
        sso("p0"),
        static_plan("p0", "AKIA1", "s")
    ));
    assert!(reload_keeps_credentials(env(), env()));
    assert!(!reload_keeps_credentials(env(), sso("p0")));
    let keys = |id, secret| static_plan("base", id, secret);
    assert!(reload_keeps_credentials(
        keys("AKIA1", "s1"),
        keys("AKIA1", "s1")
    ));
    assert!(
        !reload_keeps_credentials(keys("AKIA1", "s1"), keys("AKIA1", "s2")),
        "a new secret"
    );
    assert!(
        !reload_keeps_credentials(keys("AKIA1", "s1"), keys("AKIA2", "s2")),
        "new keys"
    );
    assert!(
        !reload_keeps_credentials(keys("AKIA1", "s1"), static_plan("other", "AKIA1", "s1")),
        "another profile's keys"
    );
    let arn = "arn:aws:iam::111111111111:role/a";
    assert!(reload_keeps_credentials(with_hop(arn), with_hop(arn)));
    assert!(
        !reload_keeps_credentials(sso("p0"), with_hop(arn)),
        "a hop more"
    );
    assert!(
        !reload_keeps_credentials(with_hop(arn), with_hop("arn:aws:iam::111111111111:role/b")),
        "another role"
    );
    let login = |session: &str| {
        Ok(Plan {
            base: Base::Login(crate::chain::LoginProfile {
                profile: "dev".to_owned(),
                session: session.to_owned(),
                region: Some("us-east-1".to_owned()),
            }),
            hops: Vec::new(),
        })
    };
    let user = "arn:aws:iam::111111111111:user/u";
    assert!(reload_keeps_credentials(login(user), login(user)));
    assert!(
        !reload_keeps_credentials(login(user), login("arn:aws:iam::111111111111:user/v")),
        "another signed-in user"
    );
    assert!(!reload_keeps_credentials(login(user), env()));
}
