//! The daemon's side of the control socket: binding it safely (private directory, 0600 socket,
//! one daemon per user, stale sockets replaced) and serving requests, one task per connection.
//!
//! `status` is answered straight from a `watch` channel, so a busy daemon answers at once;
//! `refresh` and `reload` go to the daemon as [`Command`]s and wait for its reply.

use std::future::Future;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener as StdUnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use super::client::{self, ClientError};
use super::protocol::{MAX_REQUEST_LINE, Request, Response, parse_request};
use crate::status::Status;

/// What the server needs from the daemon.
#[derive(Debug, Clone)]
pub struct ControlHandle {
    /// The current status; `status` requests read it without involving the daemon.
    pub status: watch::Receiver<Status>,
    /// Where `refresh` and `reload` go.
    pub commands: mpsc::Sender<Command>,
}

/// A request the daemon itself must answer. `Ok` is the message shown to the user, `Err` the
/// error.
#[derive(Debug)]
pub enum Command {
    Refresh {
        profile: Option<String>,
        reply: oneshot::Sender<Result<String, String>>,
    },
    Reload {
        reply: oneshot::Sender<Result<String, String>>,
    },
}

/// Server tunables; [`ServeOptions::default`] is what the daemon uses.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// How long a client may take to send a complete request line (also the idle limit
    /// between requests on one connection).
    pub read_timeout: Duration,
    /// How long a reply may take to be written before the client is dropped.
    pub write_timeout: Duration,
    /// How long to wait for the daemon to answer a `refresh` or `reload`.
    pub command_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(
        "another credsync daemon is already running ({}) on {path}; \
         stop it first (`systemctl --user stop credsync`, or kill it) or use a different \
         [control] socket",
        match pid { Some(pid) => format!("pid {pid}"), None => "pid unknown".to_owned() }
    )]
    AlreadyRunning { path: PathBuf, pid: Option<u32> },
    #[error(
        "{path} exists and is not a socket; credsync will not delete it: move it away or set a different [control] socket"
    )]
    NotASocket { path: PathBuf },
    #[error("cannot create the control socket directory {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot bind the control socket {path}: {source}")]
    Bind { path: PathBuf, source: io::Error },
    #[error("cannot set the mode of {path}: {source}")]
    Chmod { path: PathBuf, source: io::Error },
}

/// A bound control socket. Dropping it removes the socket file (if it is still the one this
/// listener bound).
#[derive(Debug)]
pub struct Listener {
    inner: Option<StdUnixListener>,
    path: PathBuf,
    /// (device, inode) of the socket file this listener created.
    identity: Option<(u64, u64)>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .map(|m| Some((m.dev(), m.ino())) == self.identity)
            .unwrap_or(false);
        if ours && let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(
                "cannot remove the control socket {}: {e}",
                self.path.display()
            );
        }
    }
}

/// Binds the control socket at `path`: creates its directory (0700; an existing directory of
/// ours is tightened to 0700, except the home directory `home`), binds, and makes the socket
/// 0600.
///
/// An existing socket that a daemon answers on is [`BindError::AlreadyRunning`]; one nobody
/// answers on is stale (a crash) and is replaced; anything else at the path is left alone.
pub fn bind(path: &Path, home: Option<&Path>) -> Result<Listener, BindError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        prepare_dir(dir, home)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            match client::request(path, &Request::Status, Duration::from_secs(2)) {
                Err(ClientError::NotRunning { .. }) => {
                    tracing::info!("replacing the stale control socket {}", path.display());
                    if let Err(source) = std::fs::remove_file(path)
                        && source.kind() != io::ErrorKind::NotFound
                    {
                        return Err(BindError::Bind {
                            path: path.to_owned(),
                            source,
                        });
                    }
                }
                Ok(Response::Status(status)) => {
                    return Err(BindError::AlreadyRunning {
                        path: path.to_owned(),
                        pid: Some(status.daemon.pid),
                    });
                }
                // Something accepted the connection: it is alive, even if it did not say who.
                Ok(_) | Err(_) => {
                    return Err(BindError::AlreadyRunning {
                        path: path.to_owned(),
                        pid: None,
                    });
                }
            }
        }
        Ok(_) => {
            return Err(BindError::NotASocket {
                path: path.to_owned(),
            });
        }
        Err(_) => {}
    }
    let listener = StdUnixListener::bind(path).map_err(|source| BindError::Bind {
        path: path.to_owned(),
        source,
    })?;
    let chmod = |source| BindError::Chmod {
        path: path.to_owned(),
        source,
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(chmod)?;
    listener.set_nonblocking(true).map_err(chmod)?;
    let identity = std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()));
    Ok(Listener {
        inner: Some(listener),
        path: path.to_owned(),
        identity,
    })
}

fn prepare_dir(dir: &Path, home: Option<&Path>) -> Result<(), BindError> {
    let err = |source| BindError::CreateDir {
        path: dir.to_owned(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(err)?;
    let meta = std::fs::metadata(dir).map_err(err)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let is_home = home == Some(dir);
    if meta.uid() == euid && meta.mode() & 0o077 != 0 {
        if is_home {
            tracing::warn!(
                "the control socket is directly in the home directory {}; \
                 a dedicated 0700 directory is safer",
                dir.display()
            );
        } else {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(
                |source| BindError::Chmod {
                    path: dir.to_owned(),
                    source,
                },
            )?;
        }
    }
    Ok(())
}

/// Serves with [`ServeOptions::default`] until `shutdown` completes.
pub async fn serve(listener: Listener, handle: ControlHandle, shutdown: impl Future<Output = ()>) {
    serve_with(listener, handle, ServeOptions::default(), shutdown).await
}

/// Accepts connections until `shutdown` completes, then closes every connection and removes
/// the socket file. Must run inside a tokio runtime (current-thread is enough).
pub async fn serve_with(
    mut listener: Listener,
    handle: ControlHandle,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    let Some(std_listener) = listener.inner.take() else {
        return;
    };
    let tokio_listener = match tokio::net::UnixListener::from_std(std_listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(
                "cannot serve the control socket {}: {e}",
                listener.path.display()
            );
            return;
        }
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = tokio_listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(stream, handle.clone(), options.clone(), euid));
                }
                Err(e) => {
                    tracing::warn!("control socket accept failed: {e}");
                    // Out of file descriptors and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    connections.shutdown().await;
    drop(tokio_listener);
    // `listener` drops here and removes the socket file.
}

async fn connection(stream: UnixStream, handle: ControlHandle, options: ServeOptions, euid: u32) {
    let (read, mut write) = stream.into_split();
    let peer = write.as_ref().peer_cred();
    match peer {
        Ok(cred) if cred.uid() == euid => {}
        Ok(cred) => {
            tracing::warn!(
                "refused a control connection from uid {} (pid {:?}): the socket belongs to uid {euid}",
                cred.uid(),
                cred.pid()
            );
            let reply =
                Response::Error(format!("refused: the control socket belongs to uid {euid}"));
            let _ = send(&mut write, &reply, &options).await;
            // Keep reading briefly so that a client that writes before it reads still gets the
            // refusal instead of a broken pipe.
            let _ = write.shutdown().await;
            let mut sink = tokio::io::sink();
            let mut rest = read.take(MAX_REQUEST_LINE as u64);
            let drain = tokio::io::copy(&mut rest, &mut sink);
            let _ = tokio::time::timeout(options.read_timeout, drain).await;
            return;
        }
        Err(e) => {
            tracing::warn!("refused a control connection: cannot read its credentials: {e}");
            return;
        }
    }

    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let limit = (MAX_REQUEST_LINE + 1) as u64;
        let mut limited = (&mut reader).take(limit);
        let read = limited.read_until(b'\n', &mut line);
        match tokio::time::timeout(options.read_timeout, read).await {
            Err(_) => {
                let reply = Response::Error(format!(
                    "timed out after {:?} waiting for a complete request line",
                    options.read_timeout
                ));
                let _ = send(&mut write, &reply, &options).await;
                return;
            }
            Ok(Err(e)) => {
                tracing::debug!("control connection read failed: {e}");
                return;
            }
            Ok(Ok(0)) => return,
            Ok(Ok(_)) => {}
        }
        if !line.ends_with(b"\n") && line.len() > MAX_REQUEST_LINE {
            let reply = Response::Error(format!(
                "request line longer than {MAX_REQUEST_LINE} bytes; closing the connection"
            ));
            let _ = send(&mut write, &reply, &options).await;
            return;
        }
        // A last line cut short by the end of the stream is answered like any other.
        let reply = match parse_request(&line) {
            Ok(request) => answer(request, &handle, &options).await,
            Err(message) => Response::Error(message),
        };
        if send(&mut write, &reply, &options).await.is_err() {
            return;
        }
    }
}

async fn answer(request: Request, handle: &ControlHandle, options: &ServeOptions) -> Response {
    let (reply, answer) = oneshot::channel();
    let command = match request {
        Request::Status => {
            let status = handle.status.borrow().clone();
            return Response::Status(Box::new(status));
        }
        Request::Refresh { profile } => Command::Refresh { profile, reply },
        Request::Reload => Command::Reload { reply },
    };
    let asked = async {
        handle.commands.send(command).await.map_err(|_| ())?;
        answer.await.map_err(|_| ())
    };
    match tokio::time::timeout(options.command_timeout, asked).await {
        Ok(Ok(Ok(message))) => Response::Message(message),
        Ok(Ok(Err(error))) => Response::Error(error),
        Ok(Err(())) => Response::Error("the daemon is shutting down".to_owned()),
        Err(_) => Response::Error(format!(
            "the daemon did not answer within {:?}; see its log",
            options.command_timeout
        )),
    }
}

async fn send(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    reply: &Response,
    options: &ServeOptions,
) -> io::Result<()> {
    let line = reply.to_line();
    let written = async {
        write.write_all(line.as_bytes()).await?;
        write.flush().await
    };
    tokio::time::timeout(options.write_timeout, written)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "reply not read in time"))?
}
