//! `credsync init`: writes a starting config listing the SSO and role profiles of the AWS
//! config as `[[profiles]]` (the rest as commented hints). Never overwrites a file; writes through
//! the atomic writer (`credsync::write`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use credsync::aws_profile::{self, AwsConfig};
use credsync::chain::{self, Base};
use credsync::config::{self, Env, toml_string};
use credsync::status::Kind;
use credsync::user_file;
use credsync::write::{self, WriteMode, WriteOptions};

pub(crate) fn run(explicit: Option<&Path>) -> ExitCode {
    let env = Env::from_process();
    let path = explicit.map_or_else(|| config::default_path(&env), Path::to_owned);
    let defaults = match config::try_defaults(&env) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("credsync init: {e}\nnothing was written");
            return ExitCode::from(super::EXIT_USAGE);
        }
    };
    let aws = match aws_profile::load(&defaults.aws.config_file) {
        Ok(aws) => aws,
        Err(e) => {
            eprintln!("credsync init: {e}\nfix the AWS config first; nothing was written");
            return ExitCode::from(super::EXIT_USAGE);
        }
    };
    let creds_path = &defaults.aws.credentials_file;
    let creds_text = user_file::read_text_or_empty(creds_path, user_file::Kind::Credentials);
    let credentials =
        credsync::ini_edit::source_credentials(&creds_text, creds_path).unwrap_or_default();
    let text = starting_config(&aws, &credentials);

    // Through the atomic writer: a reader never sees half a config, and a file that exists
    // (or appears meanwhile) is left alone.
    let mut existed = false;
    let opts = WriteOptions {
        mode: WriteMode::Atomic,
        new_file_mode: 0o644,
    };
    let result = write::update(&path, &opts, |old| {
        existed = old.is_some();
        Ok((!existed).then(|| text.as_bytes().to_vec()))
    });
    match result {
        Ok(_) if existed => {
            eprintln!(
                "credsync init: {} already exists; not overwriting it (edit it, or move it away \
                 and run `credsync init` again)",
                path.display()
            );
            ExitCode::from(super::EXIT_USAGE)
        }
        Ok(_) => {
            println!("wrote {}:\n\n{text}", path.display());
            println!("next: `credsync sync` to try it, then `credsync service install`");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("credsync init: {e}");
            ExitCode::from(super::EXIT_USAGE)
        }
    }
}

/// The section an `aws login` profile's keys go to: `<name>-keys`, not the profile's own name
/// (keys in the credentials file would win over `login_session` for every reader of it).
pub(crate) fn login_target(name: &str) -> String {
    format!("{name}-keys")
}

/// The starting config for `aws` (the credentials map without credsync's managed sections):
/// every profile that resolves through SSO or an assumed role as a `[[profiles]]` entry, the
/// others as commented hints with the reason.
pub(crate) fn starting_config(
    aws: &AwsConfig,
    credentials: &BTreeMap<String, BTreeMap<String, String>>,
) -> String {
    let mut managed = String::new();
    let mut hints = String::new();
    let planner = chain::Planner::new(aws, credentials);
    for name in aws.profiles.keys() {
        match planner.plan(name) {
            // Keys in the credentials file would win over login_session for every reader of
            // the profile: an `aws login` profile's keys go to a section of another name.
            Ok(plan) if plan.kind() == Kind::Login => {
                managed += &format!(
                    "[[profiles]]\nsource = {}   # aws login session\ntarget = {}   # not the \
                     source: keys in the credentials file would win over login_session\n\n",
                    toml_string(name),
                    toml_string(&login_target(name))
                );
            }
            Ok(plan) if matches!(plan.kind(), Kind::Sso | Kind::AssumeRole) => {
                let how = match (&plan.base, plan.hops.last()) {
                    (_, Some(hop)) => format!("assume-role {}", hop.role_arn),
                    (Base::Sso(sso), None) => match &sso.session {
                        Some(s) => format!("SSO, sso-session {s}"),
                        None => "SSO (legacy)".to_owned(),
                    },
                    _ => String::new(),
                };
                managed += &format!(
                    "[[profiles]]\nsource = {}   # {how}\n# target = {}   # the credentials file's section (default: the source)\n\n",
                    toml_string(name),
                    toml_string(name)
                );
            }
            Ok(_) => {
                hints += &format!(
                    "# [[profiles]]\n# source = {}   # static keys: nothing to refresh\n\n",
                    toml_string(name)
                );
            }
            Err(e) => {
                let why = e.to_string().replace('\n', " ");
                hints += &format!(
                    "# [[profiles]]\n# source = {}\n#   (not refreshable as it is: {why})\n\n",
                    toml_string(name)
                );
            }
        }
    }
    let mut out = format!(
        "# credsync config, written by `credsync init`; config.example.toml documents every key.\n\
         # Profiles found in {}: each [[profiles]] entry is kept fresh and written to the\n\
         # credentials file as section `target`.\n\n",
        aws.path.display()
    );
    if managed.is_empty() {
        out += "# No SSO or role profiles were found. With no [[profiles]], credsync manages\n\
                # $AWS_PROFILE, else `default`.\n\n";
    }
    out += &managed;
    if !hints.is_empty() {
        out += "# Other profiles (uncomment to manage):\n\n";
        out += &hints;
    }
    out += "# For containers (Astro/Airflow), the credential_process view:\n\
            # [container]\n\
            # dir = \"~/.aws/credsync\"\n\
            # path_in_container = \"/home/astro/.aws/credsync\"\n\
            # uid = 50000\n";
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_sso_and_role_profiles_and_parses() {
        let aws = aws_profile::parse(
            "[sso-session corp]\nsso_start_url = https://x/start\nsso_region = us-east-1\n\
             [profile dev]\nsso_session = corp\nsso_account_id = 1\nsso_role_name = R\n\
             [profile \"we\\\"ird\"]\nrole_arn = arn:aws:iam::2:role/A\nsource_profile = dev\n\
             [profile keys]\naws_access_key_id = A\naws_secret_access_key = B\n\
             [profile odd]\nregion = x\n\
             [profile me]\nlogin_session = arn:aws:iam::111122223333:user/me\n",
            Path::new("/h/.aws/config"),
        )
        .unwrap();
        let text = starting_config(&aws, &BTreeMap::new());
        assert!(
            text.contains("[[profiles]]\nsource = \"dev\"   # SSO, sso-session corp"),
            "{text}"
        );
        assert!(
            text.contains("# source = \"keys\"   # static keys"),
            "{text}"
        );
        assert!(
            text.contains("# source = \"odd\"\n#   (not refreshable"),
            "{text}"
        );
        let env = Env::default();
        let cfg = config::parse(&text, Path::new("/c.toml"), &env).unwrap();
        let sources: Vec<&str> = cfg.profiles.iter().map(|p| p.source.as_str()).collect();
        assert_eq!(sources.len(), 3, "{text}");
        assert!(sources.contains(&"dev"));
        let me = cfg
            .profiles
            .iter()
            .find(|p| p.source == "me")
            .expect("{text}");
        assert_eq!(me.target, "me-keys");
    }
}
