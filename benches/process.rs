//! Whole-process benches: the real `credsync` binary (built with the bench profile,
//! which is the release profile) against the fake AWS of tests/support, in a temp HOME.
//!
//! `cargo bench --bench process -- [SECTION...]` (or `scripts/bench`), sections:
//!   sync      1. `credsync sync` of 10, 100, 500 profiles with 50 ms latency
//!   edit      2. CPU time of one `ini_edit::apply` on 1,000 sections (getrusage, thread CPU)
//!   idle      3. a daemon of 20 profiles: RSS (anonymous and file-backed) after 1,000 and
//!             10,000 refresh cycles, idle CPU; the floor's RSS after the same calls
//!   reaction  4. token written into the cache as the AWS CLI writes it (in place) -> fresh
//!             credentials on disk, 50 trials; an AWS config edit adding a profile -> its
//!             section on disk, 50 trials
//!   size      7. release binary size of credsync and of the floor (benches/floor.rs)
//!   status    5. `credsync status` with 100 profiles, 100 runs
//!   startup   6. exec -> READY=1 with 100 fresh profiles, 20 trials, and no request at start
//!   scale     10. many profiles fresh on disk, 500 / 2,000 / 10,000 (`CREDSYNC_BENCH_SCALE`
//!             sets the list): daemon start to its first `status` answer, an idle `sync` (no
//!             token: nothing to fetch), `doctor`, each one's peak RSS and the daemon's memory
//!             per profile; then `aws_profile::parse` of 40,000 and 100,000 profiles.
//!             `CREDSYNC_BENCH_BIN=/path/to/credsync` runs another build (to compare with),
//!             `CREDSYNC_BENCH_RUNS` sets the runs per figure (default 5, 3 above 5,000)
//!   status-serve  (for scripts/bench) a daemon of 100 profiles for hyperfine, until
//!             target/tmp/status-bench.env, which it writes, is removed
//! No section named: all of them but status-serve. Under `cargo test` (no `--bench`) nothing runs.
//! `CREDSYNC_BENCH_CYCLES` (default 10000) and `CREDSYNC_BENCH_IDLE_SECS` (default 60) shorten the
//! idle section.
//!
//! Every figure is printed with the machine's load average at the time: the machine may be
//! shared, so CPU times (getrusage, /proc/<pid>/stat, schedstat) are given beside wall times.

// A bench reads /proc and its own scratch files, not a user's: the plain reads are fine here.
#![allow(clippy::disallowed_methods)]

#[path = "../tests/support/mod.rs"]
#[allow(unused_imports)]
mod support;

mod common;

use std::fs;
use std::hint::black_box;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use credsync::control::{self, Request, Response};
use credsync::ini_edit::{self, ManagedSection};
use credsync::status::{State, Status};
use support::fake_aws::FakeAws;
use support::{Daemon, TestEnv, botocore_token_json};

const HOUR: Duration = Duration::from_secs(3600);
/// `[refresh] max_concurrency` default.
const MAX_CONCURRENCY: usize = 4;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`. Without it this is `cargo test --all-targets` (CI's test
    // command), which builds and starts benches too: minutes of benches do not belong there.
    if !args.iter().any(|a| a == "--bench") {
        println!("benches/process.rs: run with `cargo bench --bench process` or scripts/bench");
        return;
    }
    // Anything else not starting with `-` names a section.
    let wanted: Vec<String> = args.into_iter().filter(|a| !a.starts_with('-')).collect();
    let run = |name: &str| wanted.is_empty() || wanted.iter().any(|w| w == name);
    println!(
        "credsync process benches: {}",
        support::credsync_bin().display()
    );
    println!("load at start: {}", load());
    if run("sync") {
        bench_sync();
    }
    if run("edit") {
        bench_edit_cpu();
    }
    if run("idle") {
        bench_idle();
    }
    if run("reaction") {
        bench_reaction();
    }
    if run("status") {
        bench_status();
    }
    if run("startup") {
        bench_startup();
    }
    if run("size") {
        bench_size();
    }
    if run("scale") {
        bench_scale();
    }
    // Not part of "all": scripts/bench runs it beside hyperfine.
    if wanted.iter().any(|w| w == "status-serve") {
        status_serve();
    }
    println!("load at end: {}", load());
}

// --- measuring --------------------------------------------------------------------------

/// `/proc/loadavg`'s three load averages.
fn load() -> String {
    let s = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let parts: Vec<&str> = s.split_whitespace().take(3).collect();
    format!("load average {}", parts.join(" "))
}

fn rusage(who: libc::c_int) -> Duration {
    // SAFETY: getrusage fills the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `who` is RUSAGE_CHILDREN, RUSAGE_THREAD or RUSAGE_SELF.
    let rc = unsafe { libc::getrusage(who, &mut ru) };
    assert_eq!(rc, 0, "getrusage");
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU time of all reaped children so far (user + system).
fn children_cpu() -> Duration {
    rusage(libc::RUSAGE_CHILDREN)
}

/// CPU time of the calling thread (Linux: `RUSAGE_THREAD`; the other platforms' libc has no
/// such constant, and there the whole process is measured: the bench thread is its only busy one).
fn thread_cpu() -> Duration {
    #[cfg(target_os = "linux")]
    let who = libc::RUSAGE_THREAD;
    #[cfg(not(target_os = "linux"))]
    let who = libc::RUSAGE_SELF;
    rusage(who)
}

/// utime + stime of `pid` from /proc/<pid>/stat (clock ticks: 10 ms resolution).
fn proc_cpu_ticks(pid: u32) -> Duration {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/<pid>/stat");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').expect("comm ends with )") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_nanos(ticks * 1_000_000_000 / hz)
}

/// Time on CPU of every live thread of `pid` (schedstat, nanoseconds).
fn proc_cpu_schedstat(pid: u32) -> Duration {
    let mut ns = 0u64;
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = fs::read_to_string(t.path().join("schedstat")) {
                ns += s
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    Duration::from_nanos(ns)
}

fn proc_threads(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

/// A `kB` field of `/proc/<pid>/status`, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status =
        fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/<pid>/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/<pid>/status"))
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS")
}

/// `VmRSS = RssAnon + RssFile + RssShmem`, as one line.
fn rss_parts(pid: u32) -> String {
    let kib = |f| status_kib(pid, f);
    format!(
        "VmRSS {} KiB = RssAnon {} + RssFile {} + RssShmem {}",
        kib("VmRSS"),
        kib("RssAnon"),
        kib("RssFile"),
        kib("RssShmem")
    )
}

/// The floor program (benches/floor.rs), built with the same profile as credsync by
/// `cargo build --release --example floor` (scripts/bench does it).
fn floor_bin() -> PathBuf {
    support::credsync_bin()
        .parent()
        .expect("the binary has a directory")
        .join("examples/floor")
}

/// Starts the floor with `env`'s environment (HOME, endpoint), making `profiles` x `cycles`
/// GetRoleCredentials calls with `token`, and waits until it is done and idle. Its stdin is
/// a pipe: dropping the child's stdin ends it.
fn floor(env: &TestEnv, profiles: usize, cycles: u64, token: &str) -> Option<std::process::Child> {
    let bin = floor_bin();
    if !bin.exists() {
        println!(
            "  (no floor: {} missing; build it with `cargo build --release --example floor`)",
            bin.display()
        );
        return None;
    }
    let base = env.cmd(["unused"]);
    let mut cmd = Command::new(&bin);
    cmd.env_clear();
    for (k, v) in base.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let mut child = cmd
        .args([profiles.to_string(), cycles.to_string(), token.to_owned()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the floor");
    let mut line = String::new();
    use std::io::BufRead as _;
    std::io::BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("read the floor's output");
    assert!(line.starts_with("done "), "the floor failed: {line:?}");
    Some(child)
}

struct Stats {
    median: Duration,
    p95: Duration,
    min: Duration,
    max: Duration,
}

fn stats(samples: &[Duration]) -> Stats {
    let mut s = samples.to_vec();
    s.sort();
    let rank = |p: f64| {
        let i = ((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
        s[i]
    };
    Stats {
        median: if s.len() % 2 == 1 {
            s[s.len() / 2]
        } else {
            (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2
        },
        p95: rank(0.95),
        min: s[0],
        max: s[s.len() - 1],
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn show(what: &str, samples: &[Duration]) -> Stats {
    let st = stats(samples);
    println!(
        "  {what}: median {}  p95 {}  min {}  max {}  (n={})",
        ms(st.median),
        ms(st.p95),
        ms(st.min),
        ms(st.max),
        samples.len()
    );
    st
}

/// Runs `cmd` to completion: wall time, CPU time (user + system) of the process, its output.
fn timed(mut cmd: Command) -> (Duration, Duration, std::process::Output) {
    cmd.stdin(Stdio::null());
    let cpu0 = children_cpu();
    let t0 = Instant::now();
    let out = cmd.output().expect("run credsync");
    let wall = t0.elapsed();
    (wall, children_cpu() - cpu0, out)
}

// --- set-up -----------------------------------------------------------------------------

/// An AWS config with `n` SSO profiles `p0..pn` in sso-session `corp`, one account each.
fn sso_config(n: usize) -> String {
    let mut s = String::from(
        "[sso-session corp]\nsso_start_url = https://fake.awsapps.com/start\nsso_region = us-east-1\n\n",
    );
    for i in 0..n {
        s += &format!(
            "[profile p{i}]\nsso_session = corp\nsso_account_id = {:012}\nsso_role_name = Dev\nregion = eu-west-1\n\n",
            100_000 + i
        );
    }
    s
}

/// credsync's config managing `p0..pn` as `t0..tn`, with `extra` TOML in front.
fn config_toml(n: usize, extra: &str) -> String {
    let mut s = String::from(extra);
    for i in 0..n {
        s += &format!("[[profiles]]\nsource = \"p{i}\"\ntarget = \"t{i}\"\n");
    }
    s
}

/// A temp HOME with `n` profiles against `fake`, logged in (a token valid for 8 h) unless
/// `logged_in` is false. Logs at `info`, the daemon's default.
fn setup(fake: &FakeAws, n: usize, logged_in: bool) -> TestEnv {
    let mut env = TestEnv::with_fake(fake);
    env.env("CREDSYNC_LOG", "info");
    env.write_aws_config(&sso_config(n));
    env.write_config_toml(&config_toml(n, ""));
    if logged_in {
        log_in(&env, fake, "tok-corp");
    }
    env
}

fn log_in(env: &TestEnv, fake: &FakeAws, token: &str) {
    fake.add_token(token);
    env.write_token_cache(
        "corp",
        &botocore_token_json(token, SystemTime::now() + 8 * HOUR, None),
    );
}

fn socket(env: &TestEnv) -> PathBuf {
    env.run_dir().join("credsync/credsync.sock")
}

fn daemon_status(sock: &Path) -> Option<Status> {
    match control::request(sock, &Request::Status, Duration::from_secs(5)) {
        Ok(Response::Status(s)) => Some(*s),
        _ => None,
    }
}

/// Polls the daemon's status until every profile is in `state`; panics after 60 s.
fn wait_all(daemon: &Daemon, sock: &Path, state: State) {
    daemon.expect_within(
        &format!("every profile {state:?}"),
        || daemon_status(sock).is_some_and(|s| s.profiles.iter().all(|p| p.state == state)),
        Duration::from_secs(60),
    );
}

// --- 1. many profiles -------------------------------------------------------------------

fn bench_sync() {
    println!("\n== 1. credsync sync, 50 ms latency, max_concurrency {MAX_CONCURRENCY} ==");
    println!("{}", load());
    // The fixed cost: one profile, no latency (process start, config, one request, one write).
    let startup = {
        let fake = FakeAws::new();
        let env = setup(&fake, 1, true);
        let mut walls = Vec::new();
        for _ in 0..10 {
            let _ = fs::remove_file(env.credentials_path());
            let (wall, _, out) = timed(env.cmd(["sync"]));
            assert!(out.status.success(), "{out:?}");
            walls.push(wall);
        }
        show("fixed start-up (1 profile, 0 ms latency), wall", &walls).median
    };
    for (n, runs) in [(10usize, 10usize), (100, 5), (500, 3)] {
        let fake = FakeAws::new();
        let env = setup(&fake, n, true);
        fake.set_latency(Duration::from_millis(50));
        let mut walls = Vec::new();
        let mut cpus = Vec::new();
        let mut max_in_flight = 0;
        for _ in 0..runs {
            let _ = fs::remove_file(env.credentials_path());
            fake.reset_records();
            let (wall, cpu, out) = timed(env.cmd(["sync"]));
            assert!(out.status.success(), "{out:?}");
            assert_eq!(
                fake.count("GetRoleCredentials"),
                n,
                "one request per profile"
            );
            max_in_flight = max_in_flight.max(fake.max_in_flight());
            walls.push(wall);
            cpus.push(cpu);
        }
        let ideal = Duration::from_millis(50) * n.div_ceil(MAX_CONCURRENCY) as u32;
        println!("N = {n} ({})", load());
        let st = show("wall", &walls);
        show("CPU (user+sys)", &cpus);
        let ratio = st.median.saturating_sub(startup).as_secs_f64() / ideal.as_secs_f64();
        println!(
            "  ideal N x 50 ms / {MAX_CONCURRENCY} = {}; (median - start-up) / ideal = {ratio:.3} (target <= 1.25); \
             max in flight {max_in_flight} (limit {MAX_CONCURRENCY})",
            ms(ideal)
        );
    }
}

// --- 2. edit CPU --------------------------------------------------------------------------

fn bench_edit_cpu() {
    println!("\n== 2. ini_edit::apply on 1,000 sections, CPU time of this thread ==");
    println!("{}", load());
    let (text, names) = common::thousand_sections();
    let one = common::creds(7, 1);
    let iters = 2_000u32;
    let mut per = Vec::new();
    for _ in 0..5 {
        let c0 = thread_cpu();
        for _ in 0..iters {
            let sections = [ManagedSection {
                name: &names[7],
                credentials: &one,
            }];
            black_box(ini_edit::apply(black_box(&text), &sections, &[]));
        }
        per.push((thread_cpu() - c0) / iters);
    }
    println!("  file: {} bytes", text.len());
    show(
        "CPU per edit (1 section rewritten), 5 batches of 2000",
        &per,
    );
}

// --- 3. idle ------------------------------------------------------------------------------

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn bench_idle() {
    let cycles = env_num("CREDSYNC_BENCH_CYCLES", 10_000);
    let idle_secs = env_num("CREDSYNC_BENCH_IDLE_SECS", 60);
    println!("\n== 3. daemon of 20 profiles: memory over {cycles} refresh cycles, idle CPU ==");
    println!("{}", load());
    let fake = FakeAws::new();
    let env = setup(&fake, 20, true);
    let daemon = env.daemon(Vec::<String>::new());
    let pid = daemon.pid();
    let sock = socket(&env);
    wait_all(&daemon, &sock, State::Fresh);
    println!(
        "  after start (20 fresh): VmRSS {} KiB, {} threads",
        rss_kib(pid),
        proc_threads(pid)
    );
    let mut marks = Vec::new();
    let t0 = Instant::now();
    let cpu0 = proc_cpu_ticks(pid);
    for cycle in 1..=cycles {
        match control::request(
            &sock,
            &Request::Refresh { profile: None },
            Duration::from_secs(60),
        ) {
            Ok(Response::Message(_)) => {}
            other => panic!("refresh cycle {cycle} failed: {other:?}\n{}", daemon.logs()),
        }
        if cycle == 1_000 || cycle == cycles || cycle % 2_000 == 0 {
            let rss = rss_kib(pid);
            println!(
                "  after {cycle} cycles: {} ({:.1} s, {})",
                rss_parts(pid),
                t0.elapsed().as_secs_f64(),
                load()
            );
            marks.push((cycle, rss));
        }
    }
    let spent = proc_cpu_ticks(pid) - cpu0;
    println!(
        "  {} GetRoleCredentials served; daemon CPU per cycle (20 profiles + one write): {}",
        fake.count("GetRoleCredentials"),
        ms(spent / cycles.max(1) as u32)
    );
    if let (Some(first), Some(last)) = (marks.iter().find(|m| m.0 == 1_000), marks.last()) {
        println!(
            "  growth {} -> {} cycles: {} KiB (target < 1024 KiB)",
            first.0,
            last.0,
            last.1 as i64 - first.1 as i64
        );
    }
    // The floor after the same calls (20 profiles x 1,000 cycles), beside the daemon.
    let floor_cycles = cycles.min(1_000);
    if let Some(mut child) = floor(&env, 20, floor_cycles, "tok-corp") {
        println!(
            "  floor after 20 x {floor_cycles} calls: {} ({})",
            rss_parts(child.id()),
            load()
        );
        drop(child.stdin.take());
        let _ = child.wait();
    }
    // Idle: nothing due for 40 minutes (1 h credentials, 20 min min_remaining).
    fake.reset_records();
    let ticks0 = proc_cpu_ticks(pid);
    let sched0 = proc_cpu_schedstat(pid);
    std::thread::sleep(Duration::from_secs(idle_secs));
    let ticks = proc_cpu_ticks(pid) - ticks0;
    let sched = proc_cpu_schedstat(pid) - sched0;
    let per_min = |d: Duration| d.mul_f64(60.0 / idle_secs as f64);
    println!(
        "  idle {idle_secs} s: CPU {} by /proc/<pid>/stat (10 ms ticks), {} by schedstat; \
         per minute {} / {} (target < 10 ms); requests while idle: {}; {} ({})",
        ms(ticks),
        ms(sched),
        ms(per_min(ticks)),
        ms(per_min(sched)),
        fake.total_requests(),
        rss_parts(pid),
        load()
    );
}

// --- 4. reaction --------------------------------------------------------------------------

fn bench_reaction() {
    println!(
        "\n== 4. login -> fresh credentials on disk; config edit -> new section, 0 ms latency =="
    );
    println!("{}", load());
    let mut samples = Vec::new();
    for trial in 0..50 {
        let fake = FakeAws::new();
        let env = setup(&fake, 1, false);
        let daemon = env.daemon(Vec::<String>::new());
        let sock = socket(&env);
        wait_all(&daemon, &sock, State::LoginRequired);
        let token = format!("tok-{trial}");
        fake.add_token(&token);
        let json = botocore_token_json(&token, SystemTime::now() + 8 * HOUR, None);
        let path = env.token_cache_path("corp");
        let t0 = Instant::now();
        write_in_place(&path, &json);
        wait_for_section(&env, &daemon, "t0", t0);
        samples.push(t0.elapsed());
    }
    let st = show(
        "login (token written in place, as the AWS CLI does) -> credentials on disk",
        &samples,
    );
    verdict(&st);

    let mut samples = Vec::new();
    for _ in 0..50 {
        let fake = FakeAws::new();
        let env = setup(&fake, 1, true);
        let daemon = env.daemon(Vec::<String>::new());
        let sock = socket(&env);
        wait_all(&daemon, &sock, State::Fresh);
        // The AWS config gains p1 (an editor's save: temp file, rename), and credsync's config
        // already names it: its section must appear.
        let config_path = env.config_toml_path();
        fs::write(&config_path, config_toml(2, "")).expect("write config.toml");
        let aws_config = env.aws_config_path();
        let tmp = aws_config.with_file_name(".config.swp");
        fs::write(&tmp, sso_config(2)).expect("write the edited AWS config");
        // Let the config.toml event pass (it already names p1; p1 is not in the AWS config).
        std::thread::sleep(Duration::from_millis(300));
        let t0 = Instant::now();
        fs::rename(&tmp, &aws_config).expect("save the AWS config");
        wait_for_section(&env, &daemon, "t1", t0);
        samples.push(t0.elapsed());
    }
    let st = show(
        "AWS config edit adding a profile -> its section on disk",
        &samples,
    );
    verdict(&st);
}

/// Writes `text` over `path` as botocore's JSON cache does: open without truncating, truncate,
/// write, close (a reader can see an empty or partial file in between).
fn write_in_place(path: &Path, text: &str) {
    use std::io::Write as _;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .expect("open the token file");
    f.set_len(0).expect("truncate");
    f.write_all(text.as_bytes()).expect("write the token");
}

/// Waits (polling every millisecond, at most 10 s) until `target`'s managed section is in the
/// credentials file.
fn wait_for_section(env: &TestEnv, daemon: &Daemon, target: &str, t0: Instant) {
    let path = env.credentials_path();
    let present = || {
        fs::read_to_string(&path)
            .ok()
            .is_some_and(|t| ini_edit::read_managed(&t, target).is_some())
    };
    let deadline = t0 + Duration::from_secs(10);
    while !present() {
        assert!(
            Instant::now() < deadline,
            "no [{target}] 10 s after the change\n{}",
            daemon.logs()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn verdict(st: &Stats) {
    println!(
        "  target p95 <= 50 ms: {} ({})",
        if st.p95 <= Duration::from_millis(50) {
            "met"
        } else {
            "MISSED"
        },
        load()
    );
}

// --- 7. size ------------------------------------------------------------------------------

fn bench_size() {
    println!("\n== 7. release binary size, credsync beside the floor ==");
    let size = |p: &Path| fs::metadata(p).map(|m| m.len()).ok();
    let credsync = support::credsync_bin();
    let Some(c) = size(&credsync) else {
        println!("  {} missing", credsync.display());
        return;
    };
    println!(
        "  credsync {}: {c} bytes ({:.2} MB)",
        credsync.display(),
        c as f64 / 1e6
    );
    match size(&floor_bin()) {
        Some(f) => println!(
            "  floor    {}: {f} bytes ({:.2} MB); credsync / floor = {:.2}",
            floor_bin().display(),
            f as f64 / 1e6,
            c as f64 / f as f64
        ),
        None => println!(
            "  no floor: build it with `cargo build --release --example floor` (scripts/bench does)"
        ),
    }
}

// --- 5. status ----------------------------------------------------------------------------

fn bench_status() {
    println!("\n== 5. credsync status with 100 profiles, whole process ==");
    let fake = FakeAws::new();
    let env = setup(&fake, 100, true);
    let daemon = env.daemon(Vec::<String>::new());
    let sock = socket(&env);
    wait_all(&daemon, &sock, State::Fresh);
    println!("{}", load());
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    for i in 0..105 {
        let (wall, cpu, out) = timed(env.cmd(["status"]));
        assert!(out.status.success(), "{out:?}");
        if i >= 5 {
            walls.push(wall);
            cpus.push(cpu);
        }
    }
    let st = show("wall", &walls);
    show("CPU (user+sys)", &cpus);
    println!(
        "  target median < 10 ms: {} ({})",
        if st.median < Duration::from_millis(10) {
            "met"
        } else {
            "MISSED"
        },
        load()
    );
}

// --- 6. start-up --------------------------------------------------------------------------

fn bench_startup() {
    println!("\n== 6. exec -> READY=1, 100 profiles fresh on disk ==");
    let fake = FakeAws::new();
    let mut env = setup(&fake, 100, true);
    let out = env.run(["sync"]);
    assert!(out.status.success(), "{out:?}");
    let notify = env.root().join("notify.sock");
    env.env("NOTIFY_SOCKET", &notify);
    println!("{}", load());
    let mut walls = Vec::new();
    let mut requests = 0;
    for _ in 0..20 {
        let _ = fs::remove_file(&notify);
        let sock = UnixDatagram::bind(&notify).expect("bind the notify socket");
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("set a read timeout");
        fake.reset_records();
        let mut cmd = env.cmd(["daemon"]);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let t0 = Instant::now();
        let mut child = cmd.spawn().expect("spawn the daemon");
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).expect("READY=1 within 20 s");
        walls.push(t0.elapsed());
        assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
        // Give it a moment to make any call it would make, then count them.
        let settle = Instant::now();
        while settle.elapsed() < Duration::from_millis(300) {
            std::thread::sleep(Duration::from_millis(10));
        }
        requests += fake.total_requests();
        // SAFETY: kill(2) on the child we spawned and have not reaped.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = child.wait();
    }
    let st = show("exec -> READY=1", &walls);
    println!(
        "  target < 100 ms: {}; requests to the fake at start (20 starts): {requests} ({})",
        if st.median < Duration::from_millis(100) {
            "met"
        } else {
            "MISSED"
        },
        load()
    );
}

// --- 10. many profiles --------------------------------------------------------------------

/// The profile counts of the scale section: `CREDSYNC_BENCH_SCALE` (comma-separated), else
/// 500, 2,000 and 10,000.
fn scale_sizes() -> Vec<usize> {
    let given: Vec<usize> = std::env::var("CREDSYNC_BENCH_SCALE")
        .unwrap_or_default()
        .split(',')
        .filter_map(|n| n.trim().replace('_', "").parse().ok())
        .collect();
    if given.is_empty() {
        vec![500, 2_000, 10_000]
    } else {
        given
    }
}

/// A credentials file holding, for each of `t0..tn`, the managed section credsync writes, fresh
/// for 8 hours, with keys of realistic sizes (a 600-byte session token).
fn fresh_credentials(n: usize) -> String {
    use credsync::secret::ExposeSecret as _;
    let expires = humantime::format_rfc3339_seconds(SystemTime::now() + 8 * HOUR);
    let mut text = String::new();
    for i in 0..n {
        let c = common::creds(i, 1);
        let token = c.session_token.as_ref().expect("a session token");
        if i > 0 {
            text.push('\n');
        }
        text += &format!(
            "# managed by credsync; expires {expires}\n[t{i}]\naws_access_key_id = {}\n\
             aws_secret_access_key = {}\naws_session_token = {}\n",
            c.access_key_id.expose_secret(),
            c.secret_access_key.expose_secret(),
            token.expose_secret()
        );
    }
    text
}

/// Runs `cmd` to completion with its output in files under `dir`: wall time, CPU time, peak
/// RSS in KiB (`wait4`'s `ru_maxrss`), exit status, stdout.
fn run_measured(mut cmd: Command, dir: &Path) -> (Duration, Duration, u64, i32, String) {
    let out_path = dir.join("measured.stdout");
    let stdout = fs::File::create(&out_path).expect("create the stdout file");
    cmd.stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::null());
    let t0 = Instant::now();
    // Reaped by wait4 below, which also gives its resource usage (`Child::wait` does not).
    let child = cmd.spawn().expect("spawn credsync").id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: wait4 fills the zeroed struct we own; `child` is ours and not yet reaped.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let pid = unsafe { libc::wait4(child, &mut status, 0, &mut ru) };
    let wall = t0.elapsed();
    assert_eq!(pid, child, "wait4");
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    // Linux reports ru_maxrss in KiB, macOS in bytes.
    let maxrss = if cfg!(target_os = "macos") {
        ru.ru_maxrss as u64 / 1024
    } else {
        ru.ru_maxrss as u64
    };
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    let text = fs::read_to_string(&out_path).unwrap_or_default();
    (wall, tv(ru.ru_utime) + tv(ru.ru_stime), maxrss, code, text)
}

/// `credsync COMMAND` in `env`, run by the binary `CREDSYNC_BENCH_BIN` names when set (another
/// build to compare with), else by the one under test.
fn scale_cmd(env: &TestEnv, command: &str) -> Command {
    let cmd = env.cmd([command]);
    let Some(bin) = std::env::var_os("CREDSYNC_BENCH_BIN") else {
        return cmd;
    };
    let mut other = Command::new(bin);
    other.arg(command).env_clear().current_dir(env.home());
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            other.env(k, v);
        }
    }
    other
}

/// The median of `v` (the upper one of an even count).
fn median_u64(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

/// One size's figures, for the comparison at the end.
struct Scale {
    n: usize,
    /// Medians of the start, the idle sync and doctor: wall time, and CPU time.
    wall: [Duration; 3],
    cpu: [Duration; 3],
    daemon_anon_kib: u64,
    daemon_hwm_kib: u64,
    sync_kib: u64,
    doctor_kib: u64,
}

fn bench_scale() {
    println!("\n== 10. many profiles, all fresh on disk: start, idle sync, doctor, memory ==");
    if let Some(bin) = std::env::var_os("CREDSYNC_BENCH_BIN") {
        println!(
            "  binary: {} (CREDSYNC_BENCH_BIN)",
            Path::new(&bin).display()
        );
    }
    let mut figures = Vec::new();
    for n in scale_sizes() {
        let runs = env_num("CREDSYNC_BENCH_RUNS", if n > 5_000 { 3 } else { 5 }) as usize;
        figures.push(scale_one(n, runs));
    }
    if figures.len() > 1 {
        let first = &figures[0];
        println!("  growth against N = {}:", first.n);
        for f in &figures[1..] {
            let r = |a: &[Duration; 3], b: &[Duration; 3]| {
                let r = |i: usize| a[i].as_secs_f64() / b[i].as_secs_f64();
                format!("start {:.2}x, sync {:.2}x, doctor {:.2}x", r(0), r(1), r(2))
            };
            let per = |a: u64, b: u64| (a as f64 - b as f64) * 1024.0 / (f.n - first.n) as f64;
            println!(
                "    N = {} ({:.1}x the profiles): wall {}; CPU {}; bytes per profile: daemon \
                 RssAnon {:.0}, daemon peak {:.0}, sync peak {:.0}, doctor peak {:.0}",
                f.n,
                f.n as f64 / first.n as f64,
                r(&f.wall, &first.wall),
                r(&f.cpu, &first.cpu),
                per(f.daemon_anon_kib, first.daemon_anon_kib),
                per(f.daemon_hwm_kib, first.daemon_hwm_kib),
                per(f.sync_kib, first.sync_kib),
                per(f.doctor_kib, first.doctor_kib),
            );
        }
    }
    // The AWS config parser alone, at sizes no one writes by hand but tools can generate.
    for n in [40_000usize, 100_000] {
        let text = sso_config(n);
        let path = Path::new("/bench/config");
        let mut samples = Vec::new();
        for _ in 0..3 {
            let t0 = Instant::now();
            let parsed = credsync::aws_profile::parse(black_box(&text), path).expect("parses");
            samples.push(t0.elapsed());
            assert_eq!(parsed.profiles.len(), n);
        }
        show(
            &format!("aws_profile::parse, {n} profiles ({} bytes)", text.len()),
            &samples,
        );
    }
}

/// The figures of `n` profiles, medians of `runs` runs each.
fn scale_one(n: usize, runs: usize) -> Scale {
    let fake = FakeAws::new();
    let env = setup(&fake, n, true);
    env.write_credentials(&fresh_credentials(n));
    let sock = socket(&env);
    println!(
        "N = {n}: AWS config {} bytes, credentials file {} bytes ({})",
        fs::metadata(env.aws_config_path()).map_or(0, |m| m.len()),
        fs::metadata(env.credentials_path()).map_or(0, |m| m.len()),
        load()
    );

    // The daemon: exec -> the first `status` answer, every profile adopted, no request.
    let (mut starts, mut start_cpus) = (Vec::new(), Vec::new());
    let mut memory = String::new();
    let (mut anon, mut hwm) = (Vec::new(), Vec::new());
    fake.reset_records();
    for _ in 0..runs {
        // From before the spawn: a bench thread descheduled after it would start late.
        let t0 = Instant::now();
        let mut daemon = Daemon::spawn(scale_cmd(&env, "daemon"), env.root());
        let status = loop {
            if let Ok(Response::Status(s)) =
                control::request(&sock, &Request::Status, Duration::from_secs(600))
            {
                break s;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(600),
                "no status answer\n{}",
                daemon.logs()
            );
            std::thread::sleep(Duration::from_millis(1));
        };
        starts.push(t0.elapsed());
        start_cpus.push(proc_cpu_schedstat(daemon.pid()));
        let fresh = status
            .profiles
            .iter()
            .filter(|p| p.state == State::Fresh)
            .count();
        assert_eq!(fresh, n, "every profile adopted\n{}", daemon.logs());
        let pid = daemon.pid();
        anon.push(status_kib(pid, "RssAnon"));
        hwm.push(status_kib(pid, "VmHWM"));
        memory = format!("{}, VmHWM {} KiB", rss_parts(pid), status_kib(pid, "VmHWM"));
        daemon.sigterm();
    }
    assert_eq!(fake.total_requests(), 0, "no request at start");
    let start = show("daemon start -> first status answer", &starts).median;
    let start_cpu = show("daemon CPU until then (schedstat)", &start_cpus).median;
    println!("  daemon memory then (last run): {memory}");

    // An idle `sync`: logged out, so no profile can be fetched and nothing is requested.
    fs::remove_file(env.token_cache_path("corp")).expect("log out");
    let (mut walls, mut cpus, mut peaks) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let (wall, cpu, peak, code, out) = run_measured(scale_cmd(&env, "sync"), env.root());
        assert_eq!(code, 1, "sync says the profiles need a login");
        assert_eq!(out.matches(": login_required").count(), n, "{out}");
        walls.push(wall);
        cpus.push(cpu);
        peaks.push(peak);
    }
    assert_eq!(fake.total_requests(), 0, "nothing fetched");
    let sync = show("idle sync (nothing to fetch), wall", &walls).median;
    let sync_cpu = show("idle sync, CPU", &cpus).median;
    let sync_kib = median_u64(&peaks);
    println!("  idle sync peak RSS (median): {sync_kib} KiB");

    // `doctor`, logged in again (one token check), no daemon running.
    log_in(&env, &fake, "tok-corp");
    let (mut walls, mut cpus, mut peaks) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let (wall, cpu, peak, _, out) = run_measured(scale_cmd(&env, "doctor"), env.root());
        assert_eq!(out.matches(": resolves through SSO").count(), n, "{out}");
        walls.push(wall);
        cpus.push(cpu);
        peaks.push(peak);
    }
    let doctor = show("doctor, wall", &walls).median;
    let doctor_cpu = show("doctor, CPU", &cpus).median;
    let doctor_kib = median_u64(&peaks);
    println!("  doctor peak RSS (median): {doctor_kib} KiB ({})", load());

    Scale {
        n,
        wall: [start, sync, doctor],
        cpu: [start_cpu, sync_cpu, doctor_cpu],
        daemon_anon_kib: median_u64(&anon),
        daemon_hwm_kib: median_u64(&hwm),
        sync_kib,
        doctor_kib,
    }
}

/// A daemon of 100 fresh profiles for `hyperfine` (scripts/bench): writes the environment a
/// `credsync status` needs to target/tmp/status-bench.env and runs until that file is removed.
fn status_serve() {
    let fake = FakeAws::new();
    let env = setup(&fake, 100, true);
    let daemon = env.daemon(Vec::<String>::new());
    wait_all(&daemon, &socket(&env), State::Fresh);
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-bench.env");
    let vars = format!(
        "unset XDG_CONFIG_HOME CREDSYNC_CONFIG AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE AWS_PROFILE\n\
         export HOME='{}' XDG_RUNTIME_DIR='{}' CREDSYNC_BIN='{}'\n",
        env.home().display(),
        env.run_dir().display(),
        support::credsync_bin().display()
    );
    fs::write(&file, vars).expect("write status-bench.env");
    while file.exists() {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(daemon);
}
