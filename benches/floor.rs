//! The floor for credsync's binary size and memory: the least program that does the network
//! work the daemon does. A current-thread tokio runtime, `aws-config` loading the `SdkConfig`
//! (so `AWS_ENDPOINT_URL` reaches the fake) with the same HTTPS client as credsync, one
//! `aws-sdk-sso` client, and the same
//! GetRoleCredentials calls with the same profile settings as `benches/process.rs` (region
//! us-east-1, accounts 100000.., role `Dev`). No config parsing, no files, no socket, no
//! watcher, no logging.
//!
//! Built with the release profile by `scripts/bench` (`cargo build --release --example floor`);
//! `cargo bench --bench process -- size idle` runs it beside credsync.
//!
//!   floor PROFILES CYCLES TOKEN
//!
//! makes PROFILES x CYCLES calls, prints `done N` and then holds its client, idle, until
//! standard input closes, so that its memory can be read like the idle daemon's.

use std::io::Read as _;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, profiles, cycles, token] = args.as_slice() else {
        eprintln!("usage: floor PROFILES CYCLES TOKEN");
        std::process::exit(2);
    };
    let (Ok(profiles), Ok(cycles)) = (profiles.parse::<u64>(), cycles.parse::<u64>()) else {
        eprintln!("floor: PROFILES and CYCLES are numbers");
        std::process::exit(2);
    };
    // credsync's HTTPS client (hyper, rustls on ring); link-time optimisation leaves nothing
    // else of credsync in this binary.
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(credsync::aws::https_client(
            credsync::aws::Proxy::FromEnvironment,
        ))
        .region(aws_config::Region::new("us-east-1"))
        .no_credentials()
        .load()
        .await;
    let client = aws_sdk_sso::Client::new(&config);
    let mut calls = 0u64;
    for _ in 0..cycles {
        for i in 0..profiles {
            let out = client
                .get_role_credentials()
                .role_name("Dev")
                .account_id(format!("{:012}", 100_000 + i))
                .access_token(token)
                .send()
                .await;
            if let Err(e) = out {
                eprintln!("floor: GetRoleCredentials failed: {e}");
                std::process::exit(1);
            }
            calls += 1;
        }
    }
    println!("done {calls}");
    // Idle with the client alive until the bench closes our standard input.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drop(client);
}
