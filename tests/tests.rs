//! The integration tests, one binary: each file in this directory is a module, the harness
//! (temp HOMEs, the fake AWS, the Python readers, the container engines) is `support`. One binary
//! links once and runs every test in parallel; `cargo test --test tests MODULE::` runs one file.

// Tests read the files they made (and what credsync wrote) any way they like; credsync itself
// reads the user's files through `credsync::user_file` (see clippy.toml).
#![allow(clippy::disallowed_methods)]

mod support;

mod architecture;
mod cli_install;
mod packaging;
mod portability;

// Off Linux only the checks above build (the command line, the packaging, the portability
// scan): the rest need Linux (inotify's timing, POSIX ACLs, systemd, dpkg, /proc, the
// container engines).
#[cfg(target_os = "linux")]
mod astro_compose;
#[cfg(target_os = "linux")]
mod astro_setup;
#[cfg(target_os = "linux")]
mod cli_pipes;
#[cfg(target_os = "linux")]
mod config_example;
#[cfg(target_os = "linux")]
mod container_acl;
#[cfg(target_os = "linux")]
mod container_docker;
#[cfg(target_os = "linux")]
mod container_podman;
#[cfg(target_os = "linux")]
mod container_view;
#[cfg(target_os = "linux")]
mod control_socket;
#[cfg(target_os = "linux")]
mod daemon_control;
#[cfg(target_os = "linux")]
mod daemon_files;
#[cfg(target_os = "linux")]
mod docs_refs;
#[cfg(target_os = "linux")]
mod doctor;
#[cfg(target_os = "linux")]
mod duration_bounds;
#[cfg(target_os = "linux")]
mod env_paths;
#[cfg(target_os = "linux")]
mod fake_aws_selftest;
#[cfg(target_os = "linux")]
mod faults_sim;
#[cfg(target_os = "linux")]
mod fuzz_props;
#[cfg(target_os = "linux")]
mod hostile_sim;
#[cfg(target_os = "linux")]
mod in_place_lock;
#[cfg(target_os = "linux")]
mod ini_edit_props;
#[cfg(target_os = "linux")]
mod login;
#[cfg(target_os = "linux")]
mod login_interop;
#[cfg(target_os = "linux")]
mod login_page;
// `aws login` sessions: renewal, the end of a session, the AWS CLI and boto3.
#[cfg(target_os = "linux")]
mod login_session;
#[cfg(target_os = "linux")]
mod notify;
#[cfg(target_os = "linux")]
mod package_deb;
#[cfg(target_os = "linux")]
mod packaged_unit;
#[cfg(target_os = "linux")]
mod real_systemd;
#[cfg(target_os = "linux")]
mod refresh_e2e;
#[cfg(target_os = "linux")]
mod reliability_crash;
#[cfg(target_os = "linux")]
mod reliability_files;
#[cfg(target_os = "linux")]
mod reliability_long_run;
#[cfg(target_os = "linux")]
mod reliability_secrets;
#[cfg(target_os = "linux")]
mod reliability_torn_reads;
#[cfg(target_os = "linux")]
mod role_chain;
#[cfg(target_os = "linux")]
mod schedule_sim;
#[cfg(target_os = "linux")]
mod service_files;
#[cfg(target_os = "linux")]
mod sync_sso;
#[cfg(target_os = "linux")]
mod token_refresh;
#[cfg(target_os = "linux")]
mod watch_files;
#[cfg(target_os = "linux")]
mod write_files;
#[cfg(target_os = "linux")]
mod wsl;
