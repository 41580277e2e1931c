//! The control socket: how `credsync status`, `refresh` and `reload` talk to the running
//! daemon. [`protocol`] is the wire format, [`server`] the daemon's side, [`client`] the
//! CLI's side, [`table`] the human rendering of a status.

pub(crate) mod client;
pub(crate) mod protocol;
pub(crate) mod server;
pub(crate) mod table;

pub use client::{ClientError, request};
pub use protocol::{MAX_REQUEST_LINE, PROTOCOL_VERSION, Request, Response, parse_request};
pub use server::{
    BindError, Command, ControlHandle, Listener, ServeOptions, bind, serve, serve_with,
};
pub use table::render_table;
