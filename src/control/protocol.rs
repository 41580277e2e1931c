//! The control socket's wire format: newline-delimited JSON, one request per line and one
//! reply per line, each carrying `"version": 1`. Pure: bytes in, values out.
//!
//! Requests: `{"version":1,"command":"status"}`, `{"version":1,"command":"refresh"}` (all
//! profiles) or with `"profile":"dev"`, `{"version":1,"command":"reload"}`.
//! Replies: `{"version":1,"ok":true,"status":{…}}`, `{"version":1,"ok":true,"message":"…"}`,
//! `{"version":1,"ok":false,"error":"…"}`.

use serde::{Deserialize, Serialize};

use crate::status::Status;

/// The protocol version this build speaks, in every request and reply.
pub const PROTOCOL_VERSION: u32 = 1;

/// The longest request line the server reads, without its newline.
pub const MAX_REQUEST_LINE: usize = 64 * 1024;

/// The commands a request may name, for error messages.
pub(crate) const ACCEPTED_COMMANDS: &str = "status, refresh (optional \"profile\"), reload";

/// One request from a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Request {
    /// The daemon's [`Status`].
    Status,
    /// Refresh one profile (by source or target name), or all when `profile` is `None`.
    Refresh {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        profile: Option<String>,
    },
    /// Re-read credsync's config and the AWS config file.
    Reload,
}

/// One reply from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "WireResponse", try_from = "WireResponse")]
pub enum Response {
    Status(Box<Status>),
    Message(String),
    Error(String),
}

/// The request envelope on the wire: the version beside the tagged command.
#[derive(Serialize)]
struct WireRequest<'a> {
    version: u32,
    #[serde(flatten)]
    request: &'a Request,
}

#[derive(Serialize, Deserialize)]
struct WireResponse {
    version: u32,
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<Box<Status>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl From<Response> for WireResponse {
    fn from(r: Response) -> WireResponse {
        let mut w = WireResponse {
            version: PROTOCOL_VERSION,
            ok: !matches!(r, Response::Error(_)),
            status: None,
            message: None,
            error: None,
        };
        match r {
            Response::Status(s) => w.status = Some(s),
            Response::Message(m) => w.message = Some(m),
            Response::Error(e) => w.error = Some(e),
        }
        w
    }
}

impl TryFrom<WireResponse> for Response {
    type Error = String;

    fn try_from(w: WireResponse) -> Result<Response, String> {
        if w.version != PROTOCOL_VERSION {
            return Err(format!(
                "reply has protocol version {}, this credsync speaks version {PROTOCOL_VERSION}",
                w.version
            ));
        }
        match (w.ok, w.status, w.message, w.error) {
            (true, Some(s), None, None) => Ok(Response::Status(s)),
            (true, None, Some(m), None) => Ok(Response::Message(m)),
            (false, None, None, Some(e)) => Ok(Response::Error(e)),
            _ => Err("reply must be ok with one of \"status\" or \"message\", \
                      or not ok with \"error\""
                .to_owned()),
        }
    }
}

impl Request {
    /// The request as one line of JSON, with its newline.
    pub(crate) fn to_line(&self) -> String {
        let wire = WireRequest {
            version: PROTOCOL_VERSION,
            request: self,
        };
        // Serialising a plain enum of strings cannot fail.
        let mut line = serde_json::to_string(&wire).unwrap_or_default();
        line.push('\n');
        line
    }
}

impl Response {
    /// The reply as one line of JSON, with its newline.
    pub(crate) fn to_line(&self) -> String {
        // A Status holds only strings, numbers and times: serialising cannot fail.
        let mut line = serde_json::to_string(self).unwrap_or_else(|e| {
            format!(
                r#"{{"version":{PROTOCOL_VERSION},"ok":false,"error":"cannot encode reply: {}"}}"#,
                e.to_string().replace(['"', '\\'], "'")
            )
        });
        line.push('\n');
        line
    }

    /// Parses one reply line (with or without its newline).
    pub fn parse(line: &[u8]) -> Result<Response, String> {
        serde_json::from_slice(trim_newline(line)).map_err(|e| format!("malformed reply: {e}"))
    }
}

/// Parses one request line (with or without its newline). The error is the message to send
/// back: what was wrong and what is accepted.
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    let value: serde_json::Value = serde_json::from_slice(trim_newline(line)).map_err(|e| {
        format!(
            "malformed request: {e}; send one JSON object per line, \
             e.g. {{\"version\":{PROTOCOL_VERSION},\"command\":\"status\"}}"
        )
    })?;
    let serde_json::Value::Object(mut map) = value else {
        return Err(format!(
            "malformed request: expected a JSON object like \
             {{\"version\":{PROTOCOL_VERSION},\"command\":\"status\"}}"
        ));
    };
    match map.remove("version") {
        Some(v) if v.as_u64() == Some(u64::from(PROTOCOL_VERSION)) => {}
        Some(v) => {
            return Err(format!(
                "unsupported protocol version {v}; this daemon speaks version {PROTOCOL_VERSION}"
            ));
        }
        None => {
            return Err(format!(
                "request has no \"version\"; add \"version\":{PROTOCOL_VERSION}"
            ));
        }
    }
    let allowed: &[&str] = match map.get("command") {
        Some(serde_json::Value::String(c)) if c == "refresh" => &["command", "profile"],
        Some(serde_json::Value::String(c)) if c == "status" || c == "reload" => &["command"],
        Some(c) => {
            return Err(format!(
                "unknown command {c}; accepted: {ACCEPTED_COMMANDS}"
            ));
        }
        None => {
            return Err(format!(
                "request has no \"command\"; accepted: {ACCEPTED_COMMANDS}"
            ));
        }
    };
    if let Some(key) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!(
            "invalid request: unknown field {key:?}; accepted: {ACCEPTED_COMMANDS}"
        ));
    }
    serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| format!("invalid request: {e}; accepted: {ACCEPTED_COMMANDS}"))
}

fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::status::{DaemonInfo, STATUS_VERSION};

    #[test]
    fn requests_round_trip_through_their_lines() {
        assert_eq!(
            Request::Status.to_line(),
            "{\"version\":1,\"command\":\"status\"}\n"
        );
        assert_eq!(
            Request::Refresh { profile: None }.to_line(),
            "{\"version\":1,\"command\":\"refresh\"}\n"
        );
        for req in [
            Request::Status,
            Request::Reload,
            Request::Refresh { profile: None },
            Request::Refresh {
                profile: Some("dev".into()),
            },
        ] {
            assert_eq!(parse_request(req.to_line().as_bytes()), Ok(req));
        }
    }

    #[test]
    fn parses_requests_as_clients_write_them() {
        assert_eq!(
            parse_request(b"{\"command\":\"refresh\",\"profile\":\"dev\",\"version\":1}\r\n"),
            Ok(Request::Refresh {
                profile: Some("dev".into())
            })
        );
        assert_eq!(
            parse_request(b"{\"version\":1,\"command\":\"refresh\",\"profile\":null}"),
            Ok(Request::Refresh { profile: None })
        );
    }

    #[test]
    fn bad_requests_say_what_is_accepted() {
        let cases: [(&[u8], &str); 8] = [
            (b"{not json", "malformed request"),
            (b"[1,2]", "expected a JSON object"),
            (b"{\"command\":\"status\"}", "no \"version\""),
            (
                b"{\"version\":2,\"command\":\"status\"}",
                "unsupported protocol version 2",
            ),
            (
                b"{\"version\":\"1\",\"command\":\"status\"}",
                "unsupported protocol version",
            ),
            (
                b"{\"version\":1,\"command\":\"shutdown\"}",
                "unknown command \"shutdown\"",
            ),
            (b"{\"version\":1}", "no \"command\""),
            (
                b"{\"version\":1,\"command\":\"status\",\"x\":1}",
                "invalid request",
            ),
        ];
        for (line, want) in cases {
            let err = parse_request(line).expect_err(want);
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
        let err = parse_request(b"{\"version\":1,\"command\":\"shutdown\"}").unwrap_err();
        assert!(err.contains("status, refresh"), "{err}");
    }

    #[test]
    fn responses_match_the_documented_shapes() {
        assert_eq!(
            Response::Message("refreshed dev".into()).to_line(),
            "{\"version\":1,\"ok\":true,\"message\":\"refreshed dev\"}\n"
        );
        assert_eq!(
            Response::Error("no such profile".into()).to_line(),
            "{\"version\":1,\"ok\":false,\"error\":\"no such profile\"}\n"
        );
        let status = Status {
            version: STATUS_VERSION,
            daemon: DaemonInfo {
                pid: 42,
                version: "0.1.0".into(),
                started_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_964_400),
                config: "built-in default".into(),
                credentials_file: "/h/.aws/credentials".into(),
                effective: None,
                reload_error: None,
            },
            profiles: vec![],
            sso_sessions: vec![],
        };
        let line = Response::Status(Box::new(status.clone())).to_line();
        assert!(
            line.starts_with(&format!(
                "{{\"version\":1,\"ok\":true,\"status\":{{\"version\":{STATUS_VERSION},"
            )),
            "{line}"
        );
        assert_eq!(
            Response::parse(line.as_bytes()),
            Ok(Response::Status(Box::new(status)))
        );
    }

    #[test]
    fn inconsistent_replies_are_rejected() {
        for bad in [
            &b"{\"version\":1,\"ok\":true}"[..],
            b"{\"version\":1,\"ok\":false,\"message\":\"x\"}",
            b"{\"version\":9,\"ok\":true,\"message\":\"x\"}",
            b"refused",
        ] {
            assert!(
                Response::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
