//! The CLI's side of the control socket: one blocking request, one reply.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::protocol::{Request, Response};

/// The longest reply the client reads (a status of thousands of profiles fits easily).
const MAX_REPLY_LINE: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No socket file, or nobody listening on it.
    #[error("the credsync daemon is not running (no answer on {path}: {source})")]
    NotRunning { path: PathBuf, source: io::Error },
    #[error("the credsync daemon did not answer on {path} within {timeout:?}")]
    Timeout { path: PathBuf, timeout: Duration },
    #[error("cannot talk to the credsync daemon on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// The daemon answered something this credsync does not understand.
    #[error("unexpected reply from the credsync daemon on {path}: {message}")]
    Protocol { path: PathBuf, message: String },
}

/// Sends `req` to the daemon listening on `path` and reads its reply. `timeout` bounds each
/// of connect-write and read.
pub fn request(path: &Path, req: &Request, timeout: Duration) -> Result<Response, ClientError> {
    let io_err = |source: io::Error| match source.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => ClientError::NotRunning {
            path: path.to_owned(),
            source,
        },
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout {
            path: path.to_owned(),
            timeout,
        },
        _ => ClientError::Io {
            path: path.to_owned(),
            source,
        },
    };
    let mut stream = UnixStream::connect(path).map_err(io_err)?;
    stream.set_read_timeout(Some(timeout)).map_err(io_err)?;
    stream.set_write_timeout(Some(timeout)).map_err(io_err)?;
    if let Err(e) = stream.write_all(req.to_line().as_bytes()) {
        // The server may have answered (a refusal) and hung up before reading: show its reply.
        if e.kind() != io::ErrorKind::BrokenPipe {
            return Err(io_err(e));
        }
    }
    let mut line = Vec::new();
    BufReader::new(stream.take(MAX_REPLY_LINE))
        .read_until(b'\n', &mut line)
        .map_err(io_err)?;
    if line.is_empty() {
        return Err(ClientError::Protocol {
            path: path.to_owned(),
            message: "the connection closed without a reply".to_owned(),
        });
    }
    Response::parse(&line).map_err(|message| ClientError::Protocol {
        path: path.to_owned(),
        message,
    })
}
