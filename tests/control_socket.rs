//! The control socket end to end: a real `serve` on a temp socket with a fake daemon behind
//! it, real clients in front (std sockets, and a client running as another uid).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use credsync::control::{
    self, BindError, ClientError, Command, ControlHandle, Request, Response, ServeOptions,
};
use credsync::status::{DaemonInfo, ProfileStatus, STATUS_VERSION, State, Status};
use tokio::sync::{mpsc, oneshot, watch};

/// The longest any single answer may take before the test calls it blocked.
const DEADLINE: Duration = Duration::from_secs(10);

fn fake_status() -> Status {
    let mut p = ProfileStatus::new("dev-admin", "default");
    p.state = State::Fresh;
    Status {
        version: STATUS_VERSION,
        daemon: DaemonInfo {
            pid: 4242,
            version: "0.1.0".into(),
            started_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_964_400),
            config: "test".into(),
            credentials_file: "/nowhere/credentials".into(),
            effective: None,
            reload_error: None,
        },
        profiles: vec![p],
        sso_sessions: vec![],
    }
}

/// A server on its own thread and current-thread runtime, with a fake daemon answering
/// commands. Stops (and joins) on drop.
struct Server {
    path: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(path: &Path, options: ServeOptions) -> Server {
        let listener = control::bind(path, None).expect("bind");
        Server::serve(listener, path, options)
    }

    fn serve(listener: control::Listener, path: &Path, options: ServeOptions) -> Server {
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let (_status_tx, status) = watch::channel(fake_status());
                let (commands, mut rx) = mpsc::channel::<Command>(8);
                tokio::spawn(async move {
                    while let Some(cmd) = rx.recv().await {
                        match cmd {
                            Command::Refresh {
                                profile: None,
                                reply,
                            } => {
                                let _ = reply.send(Ok("refreshed 1 profile".into()));
                            }
                            Command::Refresh {
                                profile: Some(p),
                                reply,
                            } if p == "dev-admin" => {
                                let _ = reply.send(Ok(format!("refreshed {p}")));
                            }
                            Command::Refresh {
                                profile: Some(p),
                                reply,
                            } => {
                                let _ = reply.send(Err(format!("no managed profile {p:?}")));
                            }
                            Command::Reload { reply } => {
                                let _ = reply.send(Ok("reloaded".into()));
                            }
                        }
                    }
                });
                let handle = ControlHandle { status, commands };
                control::serve_with(listener, handle, options, async {
                    let _ = stopped.await;
                })
                .await;
            });
        });
        Server {
            path: path.to_owned(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn request(&self, req: &Request) -> Response {
        control::request(&self.path, req, DEADLINE).expect("request")
    }

    fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().expect("server thread panicked");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn fast() -> ServeOptions {
    ServeOptions {
        read_timeout: Duration::from_millis(300),
        ..ServeOptions::default()
    }
}

fn connect(path: &Path) -> UnixStream {
    let s = UnixStream::connect(path).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.set_write_timeout(Some(DEADLINE)).unwrap();
    s
}

/// Sends raw bytes and reads one reply line.
fn raw(path: &Path, bytes: &[u8]) -> String {
    let mut s = connect(path);
    s.write_all(bytes).unwrap();
    let mut line = String::new();
    BufReader::new(s)
        .read_line(&mut line)
        .expect("reply within the deadline");
    line
}

fn error_of(line: &str) -> String {
    match Response::parse(line.as_bytes()) {
        Ok(Response::Error(e)) => e,
        other => panic!("expected an error reply, got {other:?} from {line:?}"),
    }
}

fn assert_status_answers(path: &Path) {
    match control::request(path, &Request::Status, DEADLINE) {
        Ok(Response::Status(s)) => assert_eq!(s.daemon.pid, 4242),
        other => panic!("status not answered: {other:?}"),
    }
}

#[test]
fn status_refresh_and_reload_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run/credsync.sock");
    let server = Server::start(&path, fast());

    assert_eq!(
        server.request(&Request::Status),
        Response::Status(Box::new(fake_status()))
    );
    assert_eq!(
        server.request(&Request::Refresh { profile: None }),
        Response::Message("refreshed 1 profile".into())
    );
    assert_eq!(
        server.request(&Request::Refresh {
            profile: Some("dev-admin".into())
        }),
        Response::Message("refreshed dev-admin".into())
    );
    assert_eq!(
        server.request(&Request::Refresh {
            profile: Some("nope".into())
        }),
        Response::Error("no managed profile \"nope\"".into())
    );
    assert_eq!(
        server.request(&Request::Reload),
        Response::Message("reloaded".into())
    );

    // Several requests on one connection, in order.
    let mut s = connect(&path);
    s.write_all(
        b"{\"version\":1,\"command\":\"reload\"}\n{\"version\":1,\"command\":\"status\"}\n",
    )
    .unwrap();
    let mut lines = BufReader::new(s).lines();
    let first = lines.next().unwrap().unwrap();
    assert_eq!(
        first,
        "{\"version\":1,\"ok\":true,\"message\":\"reloaded\"}"
    );
    let second = lines.next().unwrap().unwrap();
    assert!(
        second.starts_with("{\"version\":1,\"ok\":true,\"status\":{"),
        "{second}"
    );

    server.stop();
    assert!(!path.exists(), "the socket file is removed on shutdown");
}

#[test]
fn bad_requests_get_error_replies_and_the_server_survives() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credsync.sock");
    let _server = Server::start(&path, fast());

    let e = error_of(&raw(&path, b"{\"version\":1,\"command\":\n"));
    assert!(e.starts_with("malformed request"), "{e}");
    let e = error_of(&raw(&path, b"{\"version\":1,\"command\":\"explode\"}\n"));
    assert!(
        e.contains("unknown command \"explode\"") && e.contains("status, refresh"),
        "{e}"
    );
    let e = error_of(&raw(&path, b"{\"version\":7,\"command\":\"status\"}\n"));
    assert!(e.contains("unsupported protocol version 7"), "{e}");
    let e = error_of(&raw(&path, b"\xff\xfe garbage\n"));
    assert!(e.starts_with("malformed request"), "{e}");

    // An error does not end the connection: the next line is answered.
    let mut s = connect(&path);
    s.write_all(b"nope\n{\"version\":1,\"command\":\"status\"}\n")
        .unwrap();
    let mut lines = BufReader::new(s).lines();
    assert!(error_of(&lines.next().unwrap().unwrap()).starts_with("malformed"));
    assert!(lines.next().unwrap().unwrap().contains("\"status\":{"));

    assert_status_answers(&path);
}

#[test]
fn a_ten_megabyte_line_is_refused_and_the_connection_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credsync.sock");
    let _server = Server::start(&path, fast());

    let stream = connect(&path);
    let mut writer = stream.try_clone().unwrap();
    let flood = std::thread::spawn(move || {
        let chunk = vec![b'x'; 1024 * 1024];
        for _ in 0..10 {
            if writer.write_all(&chunk).is_err() {
                return; // the server hung up, as it should
            }
        }
        let _ = writer.write_all(b"\n");
    });

    // A second client is answered while the flood is going on.
    assert_status_answers(&path);

    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .expect("a reply before the deadline");
    let e = error_of(&line);
    assert!(e.contains("longer than 65536 bytes"), "{e}");
    let mut rest = Vec::new();
    let n = reader.read_to_end(&mut rest);
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "the connection is closed after the error"
    );
    flood.join().unwrap();

    assert_status_answers(&path);
}

#[test]
fn a_stalled_client_blocks_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credsync.sock");
    // A read timeout far longer than the deadline: if the stall blocked the server, the
    // second client would miss its deadline.
    let patient = ServeOptions {
        read_timeout: Duration::from_secs(600),
        ..ServeOptions::default()
    };
    let _server = Server::start(&path, patient);

    let mut stalled = connect(&path);
    stalled
        .write_all(b"{\"version\":1,\"command\":\"sta")
        .unwrap();
    let _idle = connect(&path); // connected, sends nothing at all
    for _ in 0..3 {
        assert_status_answers(&path);
    }
    assert_eq!(
        control::request(&path, &Request::Reload, DEADLINE).unwrap(),
        Response::Message("reloaded".into())
    );
}

#[test]
fn a_stalled_client_is_cut_off_after_the_read_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credsync.sock");
    let _server = Server::start(&path, fast());

    let mut stalled = connect(&path);
    stalled
        .write_all(b"{\"version\":1,\"command\":\"sta")
        .unwrap();
    let mut reader = BufReader::new(stalled);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .expect("cut off before the deadline");
    assert!(error_of(&line).contains("timed out"), "{line}");
    let mut rest = Vec::new();
    assert_eq!(
        reader.read_to_end(&mut rest).unwrap(),
        0,
        "closed after the timeout"
    );
    assert_status_answers(&path);
}

#[test]
fn socket_is_0600_in_a_0700_directory() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("new/deeper/credsync.sock");
    let _a = Server::start(&fresh, fast());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&fresh), 0o600);
    assert_eq!(mode(fresh.parent().unwrap()), 0o700);
    assert!(std::fs::metadata(&fresh).unwrap().file_type().is_socket());

    // An existing directory of ours with loose modes is tightened.
    let loose = dir.path().join("loose");
    std::fs::create_dir(&loose).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _b = Server::start(&loose.join("credsync.sock"), fast());
    assert_eq!(mode(&loose), 0o700);
    assert_eq!(mode(&loose.join("credsync.sock")), 0o600);
}

#[test]
fn a_second_daemon_is_told_the_running_pid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credsync.sock");
    let _server = Server::start(&path, fast());

    match control::bind(&path, None) {
        Err(
            e @ BindError::AlreadyRunning {
                pid: Some(4242), ..
            },
        ) => {
            let message = e.to_string();
            assert!(message.contains("pid 4242"), "{message}");
        }
        other => panic!("expected AlreadyRunning with pid 4242, got {other:?}"),
    }
    // The running daemon's socket is untouched.
    assert_status_answers(&path);
}

#[test]
fn a_stale_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credsync.sock");
    drop(UnixListener::bind(&path).unwrap()); // a crash: the file stays, nobody listens
    assert!(
        std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_socket()
    );
    assert!(matches!(
        control::request(&path, &Request::Status, DEADLINE),
        Err(ClientError::NotRunning { .. })
    ));

    let _server = Server::start(&path, fast());
    assert_status_answers(&path);
}

#[test]
fn a_file_that_is_not_a_socket_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credsync.sock");
    std::fs::write(&path, b"precious").unwrap();
    match control::bind(&path, None) {
        Err(e @ BindError::NotASocket { .. }) => {
            assert!(e.to_string().contains("not a socket"), "{e}");
        }
        other => panic!("expected NotASocket, got {other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}

#[test]
fn no_daemon_is_not_running() {
    let dir = tempfile::tempdir().unwrap();
    let err = control::request(&dir.path().join("absent.sock"), &Request::Status, DEADLINE);
    assert!(
        matches!(err, Err(ClientError::NotRunning { .. })),
        "{err:?}"
    );
}

/// Whether this test may run; it must under CI.
fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    crate::support::skip(
        test,
        "needs root to run a client as another uid (setpriv --reuid)",
    );
    false
}

#[test]
fn a_client_of_another_uid_is_refused() {
    if !root_or_skip("a_client_of_another_uid_is_refused") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let open = dir.path().join("open");
    let path = open.join("credsync.sock");
    let server = Server::start(&path, fast());
    // Open every file mode, so that only the peer-uid check can refuse.
    for (p, m) in [
        (dir.path(), 0o755),
        (open.as_path(), 0o755),
        (path.as_path(), 0o666),
    ] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    }

    let script = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(b'{"version":1,"command":"status"}\n')
print(s.makefile('rb').readline().decode(), end='')
"#;
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
        ])
        .arg(script)
        .arg(&path)
        .output()
        .expect("run setpriv (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e = error_of(&stdout);
    assert_eq!(e, "refused: the control socket belongs to uid 0");
    assert!(
        !stdout.contains("dev-admin"),
        "no status leaks to another uid: {stdout}"
    );

    // The owner is still served.
    assert_status_answers(&server.path);
}
