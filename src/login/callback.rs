//! The loopback listener of an authorization-code sign-in: `127.0.0.1:<ephemeral port>`,
//! path `/oauth/callback`, where the browser lands after the user approves, with `code` and
//! `state` in the query (or `error`).
//!
//! [`read_target`] is the pure part: one request line's target read against the `state` this
//! sign-in sent. [`CallbackListener::wait`] is the edge: it accepts connections until the callback
//! comes, answers each with a page ([`super::page`]: signed in, or what failed and the command
//! that signs in again), and gives up on a connection that sends nothing within a few seconds
//! (so a stray client cannot block the sign-in). The code never leaves this module except as a
//! [`SecretString`], and no answer or error quotes it.

use std::time::Duration;

use percent_encoding::percent_decode_str;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::secret::SecretString;

/// The redirect URI registered with SSO-OIDC: the loopback address without a port (any port
/// matches, RFC 8252), as the AWS CLI registers it.
pub(crate) const REDIRECT_URI_WITHOUT_PORT: &str = "http://127.0.0.1/oauth/callback";

/// The callback's path.
pub(crate) const CALLBACK_PATH: &str = "/oauth/callback";

/// How long one connection may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The most of a request head read.
const MAX_HEAD: usize = 16 * 1024;

/// What one request told.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Not the callback (a favicon, another path): answer 404 and keep waiting.
    NotCallback,
    /// The authorization code, with the state this sign-in sent.
    Code(String),
    /// The identity provider said no: `error` (an OAuth error code) and `error_description`, as
    /// the request had them (anyone can send a browser here: shown only escaped or sanitised).
    Denied {
        error: String,
        description: Option<String>,
    },
    /// A code with another `state` (or none): not an answer to this sign-in.
    StateMismatch,
    /// The callback without `code`.
    Malformed,
}

/// Why the sign-in's callback failed.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// The authorize endpoint's error, made safe for a terminal ([`terminal_text`]).
    #[error("the sign-in was refused in the browser ({0})")]
    Denied(String),
    #[error(
        "the browser came back with a `state` that is not this sign-in's, so its code was not \
         used (an old browser tab, or a page that is not AWS's); run the command again"
    )]
    StateMismatch,
    #[error("the browser came back without an authorization code; run the command again")]
    Malformed,
    #[error("the local sign-in listener failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The decoded query pairs of a request target (`+` is a space).
fn query_pairs(query: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// Reads a request target (`/oauth/callback?code=…&state=…`) for the sign-in that sent
/// `expected_state`.
pub(crate) fn read_target(target: &str, expected_state: &str) -> Answer {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != CALLBACK_PATH {
        return Answer::NotCallback;
    }
    let pairs = query_pairs(query);
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if let Some(error) = get("error") {
        return Answer::Denied {
            error: error.to_owned(),
            description: get("error_description").map(str::to_owned),
        };
    }
    match (get("code"), get("state")) {
        (Some(code), Some(state)) if !code.is_empty() && state == expected_state => {
            Answer::Code(code.to_owned())
        }
        (Some(_), _) => Answer::StateMismatch,
        (None, _) => Answer::Malformed,
    }
}

/// What a terminal is shown of the authorize endpoint's `error` and `error_description`: the
/// error when it is an OAuth error code (a short token), else `an error`; then the description
/// without control characters (no escape sequence reaches the terminal), cut to 200 characters.
pub(crate) fn terminal_text(error: &str, description: Option<&str>) -> String {
    let token = error.len() <= 64
        && error
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let mut out = if token && !error.is_empty() {
        error.to_owned()
    } else {
        "an error".to_owned()
    };
    if let Some(d) = description {
        let d: String = d.chars().filter(|c| !c.is_control()).take(200).collect();
        if !d.trim().is_empty() {
            out.push_str(": ");
            out.push_str(d.trim());
        }
    }
    out
}

/// The listener of one sign-in.
pub(crate) struct CallbackListener {
    listener: TcpListener,
    port: u16,
    /// What a failure page tells the user to run.
    retry_command: String,
}

impl CallbackListener {
    /// Binds `127.0.0.1` on a port the system picks.
    pub(crate) async fn bind() -> std::io::Result<CallbackListener> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        Ok(CallbackListener {
            listener,
            port,
            retry_command: String::from("credsync login"),
        })
    }

    /// The command a failure page tells the user to run (`credsync login` unless set).
    pub(crate) fn with_retry_command(mut self, command: String) -> CallbackListener {
        self.retry_command = command;
        self
    }

    /// `http://127.0.0.1:<port>/oauth/callback`: the redirect URI of the authorize request and
    /// of `CreateToken`.
    pub(crate) fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}{CALLBACK_PATH}", self.port)
    }

    /// Waits for the callback of the sign-in that sent `expected_state` and returns its code.
    /// Each connection is served on its own task, so one a browser opens ahead and leaves idle
    /// (a preconnect) cannot hold up the callback. (The caller bounds the whole wait.)
    pub(crate) async fn wait(self, expected_state: &str) -> Result<SecretString, CallbackError> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Answer>(8);
        let state: std::sync::Arc<str> = std::sync::Arc::from(expected_state);
        let retry: std::sync::Arc<str> = std::sync::Arc::from(self.retry_command.as_str());
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let (stream, _) = accepted?;
                    let (tx, state, retry) = (tx.clone(), state.clone(), retry.clone());
                    tokio::spawn(async move {
                        if let Ok(answer) = answer_one(stream, &state, &retry).await {
                            let _ = tx.send(answer).await;
                        }
                    });
                }
                Some(answer) = rx.recv() => match answer {
                    Answer::NotCallback => continue,
                    Answer::Code(code) => return Ok(code.into()),
                    Answer::Denied { error, description } => {
                        let shown = terminal_text(&error, description.as_deref());
                        return Err(CallbackError::Denied(shown));
                    }
                    Answer::StateMismatch => return Err(CallbackError::StateMismatch),
                    Answer::Malformed => return Err(CallbackError::Malformed),
                },
            }
        }
    }
}

/// Reads one request, answers it (in one write: head and page), and says what it was.
async fn answer_one(
    mut stream: TcpStream,
    expected_state: &str,
    retry_command: &str,
) -> std::io::Result<Answer> {
    let head = tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let target = head
        .lines()
        .next()
        .and_then(|line| {
            let mut parts = line.split(' ');
            match (parts.next(), parts.next()) {
                (Some("GET"), Some(target)) => Some(target.to_owned()),
                _ => None,
            }
        })
        .unwrap_or_default();
    let answer = read_target(&target, expected_state);
    let response = super::page::response(&answer, retry_command);
    // The answer to the browser is a courtesy: the sign-in goes on if it cannot be sent.
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
    Ok(answer)
}

/// The request head (up to the blank line, at most [`MAX_HEAD`] bytes).
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < MAX_HEAD {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callback_gives_the_code_only_with_this_sign_ins_state() {
        assert_eq!(
            read_target("/oauth/callback?code=fake-code%2B1&state=s-1", "s-1"),
            Answer::Code("fake-code+1".into())
        );
        assert_eq!(
            read_target("/oauth/callback?state=s-1&code=c", "s-2"),
            Answer::StateMismatch
        );
        assert_eq!(
            read_target("/oauth/callback?code=c", "s-1"),
            Answer::StateMismatch
        );
        assert_eq!(
            read_target("/oauth/callback?state=s-1", "s-1"),
            Answer::Malformed
        );
        assert_eq!(
            read_target("/oauth/callback?error=access_denied&state=s-1", "s-1"),
            Answer::Denied {
                error: "access_denied".into(),
                description: None
            }
        );
        assert_eq!(
            read_target(
                "/oauth/callback?error=%3Cscript%3E&error_description=a+b%0A",
                "s-1"
            ),
            Answer::Denied {
                error: "<script>".into(),
                description: Some("a b\n".into())
            }
        );
        assert_eq!(read_target("/favicon.ico", "s-1"), Answer::NotCallback);
        assert_eq!(
            read_target("/oauth/callbackx?code=c&state=s-1", "s-1"),
            Answer::NotCallback
        );
    }

    #[test]
    fn the_terminal_gets_an_error_code_and_a_description_without_control_characters() {
        assert_eq!(terminal_text("access_denied", None), "access_denied");
        assert_eq!(
            terminal_text("access_denied", Some("User said no\x1b]0;pwned\x07\r\n")),
            "access_denied: User said no]0;pwned"
        );
        assert_eq!(terminal_text("<script>", Some(" ")), "an error");
        assert_eq!(terminal_text("", None), "an error");
        assert_eq!(
            terminal_text("e", Some(&"d".repeat(500))),
            format!("e: {}", "d".repeat(200))
        );
    }

    #[tokio::test]
    async fn an_idle_connection_does_not_hold_up_the_callback() {
        let l = CallbackListener::bind().await.unwrap();
        let uri = l.redirect_uri();
        let port: u16 = uri["http://127.0.0.1:".len()..uri.len() - CALLBACK_PATH.len()]
            .parse()
            .unwrap();
        // A preconnect that sends nothing, kept open until the callback is through.
        let idle = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let client = async move {
            let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            s.write_all(b"GET /oauth/callback?code=fake-c&state=st HTTP/1.1\r\n\r\n")
                .await
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        // Far below the 10 s an idle connection may take: a bound against a hang, not a timing.
        let (code, answer) = tokio::time::timeout(Duration::from_secs(5), async {
            tokio::join!(l.wait("st"), client)
        })
        .await
        .expect("the callback waited on the idle connection");
        use crate::secret::ExposeSecret;
        assert_eq!(code.unwrap().expose_secret(), "fake-c");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        drop(idle);
    }

    #[tokio::test]
    async fn the_listener_skips_other_paths_and_returns_the_code() {
        let l = CallbackListener::bind().await.unwrap();
        let uri = l.redirect_uri();
        assert!(uri.starts_with("http://127.0.0.1:") && uri.ends_with(CALLBACK_PATH));
        let port: u16 = uri["http://127.0.0.1:".len()..uri.len() - CALLBACK_PATH.len()]
            .parse()
            .unwrap();
        let client = async move {
            let mut answers = Vec::new();
            for target in ["/favicon.ico", "/oauth/callback?code=fake-c&state=st"] {
                let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                s.write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).await.unwrap();
                answers.push(out);
            }
            answers
        };
        let (code, answers) = tokio::join!(l.wait("st"), client);
        use crate::secret::ExposeSecret;
        assert_eq!(code.unwrap().expose_secret(), "fake-c");
        assert!(answers[0].starts_with("HTTP/1.1 404"), "{}", answers[0]);
        assert!(answers[1].starts_with("HTTP/1.1 200"), "{}", answers[1]);
        assert!(!answers[1].contains("fake-c"));
    }
}
