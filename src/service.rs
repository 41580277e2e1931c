//! Installing credsync as a user service (systemd user unit on Linux, LaunchAgent on macOS).
