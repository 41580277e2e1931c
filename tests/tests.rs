//! The integration tests, one binary: each file in this directory is a module, the harness
//! (temp HOMEs, the fake AWS, the Python readers, the container engines) is `support`. One binary
//! links once and runs every test in parallel; `cargo test --test tests MODULE::` runs one file.

mod support;

mod cli_install;
mod cli_pipes;
mod config_example;
mod container_acl;
mod container_docker;
mod container_podman;
mod container_view;
mod control_socket;
mod daemon_control;
mod docs_refs;
mod doctor;
mod env_paths;
mod fake_aws_selftest;
mod faults_sim;
mod fuzz_props;
mod ini_edit_props;
mod login;
mod login_interop;
mod notify;
mod package_deb;
mod packaged_unit;
mod real_systemd;
mod refresh_e2e;
mod reliability_crash;
mod reliability_files;
mod reliability_long_run;
mod reliability_secrets;
mod reliability_torn_reads;
mod role_chain;
mod schedule_sim;
mod service_files;
mod sync_sso;
mod token_refresh;
mod watch_files;
mod write_files;
