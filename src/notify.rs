//! Desktop notifications: the edge that shows the notices the core decides on
//! (`credsync_core::notice`, re-exported as `crate::notice`). [`Sender`] hands a notice to the
//! user's `[notify] command`, else to the desktop ([`Desktop`]): on Linux the freedesktop
//! notification service (`org.freedesktop.Notifications.Notify` on the session bus, through
//! systemd's `busctl`, else libnotify's `notify-send`), on macOS Notification Center
//! (`osascript`), in a WSL distribution a Windows toast (Windows PowerShell). Each program is
//! run directly through a `Runner` with the text in its arguments (for PowerShell, inside its
//! encoded script as base64 data), never through a shell. With no notifier at hand it says so
//! in one log line and nothing more.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;

use crate::config::{Env, NotifyConfig};
use crate::mounts::MountTable;
use crate::notice::Notice;
use crate::platform::{Platform, Wsl};
use crate::process::{RunError, Runner};

/// How long a notifier program may run before it is stopped.
const PROGRAM_TIMEOUT: Duration = Duration::from_secs(30);

/// Hands notices to a notifier (see the module header for which).
pub(crate) struct Sender {
    cfg: NotifyConfig,
    /// The process environment as read where the program started (where the session bus is).
    env: Env,
    /// Where desktop notifications go on this machine.
    desktop: Desktop,
    /// Runs the notifier programs.
    runner: Arc<dyn Runner>,
    /// Whether "no notifier" was logged already (it is said once).
    said_unavailable: bool,
}

impl Sender {
    pub(crate) fn new(
        cfg: NotifyConfig,
        env: Env,
        desktop: Desktop,
        runner: Arc<dyn Runner>,
    ) -> Sender {
        Sender {
            cfg,
            env,
            desktop,
            runner,
            said_unavailable: false,
        }
    }

    /// Takes a new `[notify]` (a reload).
    pub(crate) fn set_config(&mut self, cfg: NotifyConfig) {
        self.cfg = cfg;
    }

    pub(crate) fn config(&self) -> &NotifyConfig {
        &self.cfg
    }

    /// Logs `notice` and sends it in the background (a blocking thread: the program may take
    /// its time). A program that fails is logged; none found is logged once.
    pub(crate) fn send(&mut self, notice: &Notice) {
        if !self.cfg.enabled {
            tracing::info!(
                session = %notice.session,
                "not notifying ([notify] enabled = false): {}",
                notice.body
            );
            return;
        }
        tracing::warn!(session = %notice.session, "notifying: {}", notice.body);
        let candidates = match &self.cfg.command {
            Some(argv) => vec![with_text(argv, notice)],
            None => self.desktop.commands(notice),
        };
        if candidates.is_empty() {
            self.unavailable("no desktop notifier on this platform");
            return;
        }
        if self.cfg.command.is_none()
            && self.desktop == Desktop::Freedesktop
            && !session_bus(&self.env)
        {
            self.unavailable(
                "no session bus: DBUS_SESSION_BUS_ADDRESS is unset and there is no \
                 $XDG_RUNTIME_DIR/bus",
            );
            return;
        }
        let session = notice.session.clone();
        let user_command = self.cfg.command.is_some();
        let runner = self.runner.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(why) = deliver(&*runner, &candidates, user_command) {
                tracing::warn!(%session, "the notification was not shown: {why}");
            }
        });
    }

    fn unavailable(&mut self, why: &str) {
        if !self.said_unavailable {
            self.said_unavailable = true;
            tracing::warn!(
                "desktop notifications are not available ({why}); set [notify] command to a \
                 program of your own, or [notify] enabled = false to silence this"
            );
        }
    }
}

/// `argv` followed by the summary and the body.
fn with_text(argv: &[String], n: &Notice) -> Vec<String> {
    let mut out = argv.to_vec();
    out.push(n.summary.clone());
    out.push(n.body.clone());
    out
}

/// Where desktop notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Desktop {
    /// The freedesktop notification service on the session bus (Linux).
    Freedesktop,
    /// Notification Center, through `osascript` (macOS).
    MacOs,
    /// A Windows toast from a WSL distribution, shown by Windows PowerShell at `powershell`.
    Windows { powershell: PathBuf },
    /// None known here.
    Unknown,
}

/// Where Windows PowerShell is, below the mount point of the `C:` drive.
const POWERSHELL_ON_C: &str = "Windows/System32/WindowsPowerShell/v1.0/powershell.exe";

impl Desktop {
    /// The desktop of `platform`; in a WSL distribution (`wsl`), Windows'. PowerShell is named
    /// by its path on the `C:` drive as `mounts` shows it (as wslu runs it): a service systemd
    /// starts has systemd's `PATH`, without the Windows directories WSL adds to a terminal's
    /// (diablodale/pinentry-wsl-ps1#14). Without a `C:` mount, `powershell.exe` on `PATH`.
    pub(crate) fn of(
        platform: Option<Platform>,
        wsl: Option<&Wsl>,
        mounts: &MountTable,
    ) -> Desktop {
        match (platform, wsl) {
            (Some(Platform::Linux), Some(_)) => Desktop::Windows {
                powershell: mounts.windows_drive('C').map_or_else(
                    || PathBuf::from("powershell.exe"),
                    |c| c.join(POWERSHELL_ON_C),
                ),
            },
            (Some(Platform::Linux), None) => Desktop::Freedesktop,
            (Some(Platform::MacOs), _) => Desktop::MacOs,
            (None, _) => Desktop::Unknown,
        }
    }

    /// The desktop of this machine.
    pub(crate) fn here(env: &Env) -> Desktop {
        let wsl = Wsl::here(env);
        let mounts = match wsl {
            Some(_) => MountTable::system(),
            None => MountTable::default(),
        };
        Desktop::of(Platform::current(), wsl.as_ref(), &mounts)
    }

    /// The notifiers to try for `n`, in order, as argument vectors.
    fn commands(&self, n: &Notice) -> Vec<Vec<String>> {
        match self {
            Desktop::Freedesktop => freedesktop(n),
            Desktop::MacOs => vec![osascript(n)],
            Desktop::Windows { powershell } => vec![windows_toast(powershell, n)],
            Desktop::Unknown => Vec::new(),
        }
    }
}

fn words(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

/// macOS: the text reaches the AppleScript as `argv`, never inside its source.
fn osascript(n: &Notice) -> Vec<String> {
    let mut argv = words(&[
        "osascript",
        "-e",
        "on run argv",
        "-e",
        "display notification (item 2 of argv) with title (item 1 of argv)",
        "-e",
        "end run",
        "--",
    ]);
    argv.push(n.summary.clone());
    argv.push(n.body.clone());
    argv
}

/// Linux: `busctl` calling the notification service, else `notify-send`. The body may hold
/// markup for servers that support it: what would be read as markup is escaped.
fn freedesktop(n: &Notice) -> Vec<Vec<String>> {
    let body = escape_markup(&n.body);
    let mut busctl = words(&[
        "busctl",
        "--user",
        "--timeout=10",
        "--",
        "call",
        "org.freedesktop.Notifications",
        "/org/freedesktop/Notifications",
        "org.freedesktop.Notifications",
        "Notify",
        "susssasa{sv}i",
        "credsync",
        "0",
        "dialog-warning",
    ]);
    busctl.push(n.summary.clone());
    busctl.push(body.clone());
    // No actions, one hint (critical urgency: the user must act), the server's timeout.
    busctl.extend(words(&["0", "1", "urgency", "y", "2", "-1"]));
    let mut notify_send = words(&[
        "notify-send",
        "--app-name=credsync",
        "--urgency=critical",
        "--icon=dialog-warning",
        "--",
    ]);
    notify_send.push(n.summary.clone());
    notify_send.push(body);
    vec![busctl, notify_send]
}

/// The script Windows PowerShell runs for a toast; `{title}` and `{body}` are the texts in
/// base64 (of UTF-8), decoded by the script itself, so that no character of theirs is ever read
/// as PowerShell or XML: the texts become text nodes of the toast's XML (`CreateTextNode`).
/// The WinRT types load this way in Windows PowerShell 5.1 (not in PowerShell 7); the toast is
/// shown as Windows PowerShell's (its AppUserModelID), the one app id every Windows has
/// registered (neko3cs/pwsh-tools Show-ToastNotification.ps1 does the same). An error stops the
/// script with a non-zero exit status.
const TOAST_SCRIPT: &str = "$ErrorActionPreference = 'Stop'
$utf8 = [Text.Encoding]::UTF8
$title = $utf8.GetString([Convert]::FromBase64String('{title}'))
$body = $utf8.GetString([Convert]::FromBase64String('{body}'))
$null = [Windows.UI.Notifications.ToastNotificationManager, Windows.UI.Notifications, ContentType = WindowsRuntime]
$null = [Windows.Data.Xml.Dom.XmlDocument, Windows.Data.Xml.Dom.XmlDocument, ContentType = WindowsRuntime]
$xml = New-Object Windows.Data.Xml.Dom.XmlDocument
$xml.LoadXml('<toast duration=\"long\"><visual><binding template=\"ToastGeneric\"><text/><text/></binding></visual></toast>')
$texts = $xml.GetElementsByTagName('text')
$null = $texts.Item(0).AppendChild($xml.CreateTextNode($title))
$null = $texts.Item(1).AppendChild($xml.CreateTextNode($body))
$toast = New-Object Windows.UI.Notifications.ToastNotification $xml
$app = '{1AC14E77-02E7-4E5D-B744-2EB1AE5198B7}\\WindowsPowerShell\\v1.0\\powershell.exe'
[Windows.UI.Notifications.ToastNotificationManager]::CreateToastNotifier($app).Show($toast)
";

/// WSL: Windows PowerShell at `powershell` showing a toast with `n`'s text. The script goes as
/// `-EncodedCommand`, base64 of its UTF-16LE (about_PowerShell_exe), so the command line holds
/// only base64: WSL passes it to Windows as it is, and no quoting of any program applies.
fn windows_toast(powershell: &Path, n: &Notice) -> Vec<String> {
    let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t.as_bytes());
    let script = TOAST_SCRIPT
        .replace("{title}", &b64(&n.summary))
        .replace("{body}", &b64(&n.body));
    let utf16: Vec<u8> = script.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let mut argv = vec![powershell.display().to_string()];
    argv.extend(words(&[
        "-NoProfile",
        "-NonInteractive",
        "-ExecutionPolicy",
        "Bypass",
        "-EncodedCommand",
    ]));
    argv.push(base64::engine::general_purpose::STANDARD.encode(utf16));
    argv
}

/// `&`, `<` and `>` as entities (the freedesktop body markup is a subset of XML).
fn escape_markup(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Whether a D-Bus session bus can be reached the way sd-bus and libdbus look for it.
fn session_bus(env: &Env) -> bool {
    env.get("DBUS_SESSION_BUS_ADDRESS").is_some()
        || env
            .get("XDG_RUNTIME_DIR")
            .is_some_and(|d| std::path::Path::new(d).join("bus").exists())
}

/// Runs the first of `candidates` that is installed, waiting up to [`PROGRAM_TIMEOUT`]. The
/// user's own command (`user_command`) is the only candidate and has no fallback. `Err` says
/// why nothing was shown.
fn deliver(
    runner: &dyn Runner,
    candidates: &[Vec<String>],
    user_command: bool,
) -> Result<(), String> {
    for argv in candidates {
        match runner
            .run(argv, PROGRAM_TIMEOUT)
            .and_then(|ran| ran.check(argv))
        {
            Ok(_) => return Ok(()),
            Err(RunError::NotFound { .. }) if !user_command => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    let tried: Vec<&str> = candidates.iter().map(|a| a[0].as_str()).collect();
    Err(format!("none of {} is installed", tried.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notice::SessionEvent;

    /// A notice as the core gives it for a refused refresh (its text is the core's to test).
    fn refused_notice() -> Notice {
        Notice {
            session: "corp".into(),
            event: SessionEvent::Refused,
            summary: "credsync: sign in to corp".into(),
            body: "The SSO session corp can no longer be renewed: the refresh token was refused. \
                   Sign in again: credsync login --sso-session corp"
                .into(),
        }
    }

    #[test]
    fn desktop_text_goes_in_arguments_and_markup_is_escaped() {
        let n = Notice {
            session: "a&b".into(),
            event: SessionEvent::Refused,
            summary: "credsync: sign in to a&b".into(),
            body: "-x <b>$(rm -rf ~)</b>".into(),
        };
        assert_eq!(
            with_text(&["prog".into(), "--flag".into()], &n),
            [
                "prog",
                "--flag",
                "credsync: sign in to a&b",
                "-x <b>$(rm -rf ~)</b>"
            ]
        );
        let d = Desktop::Freedesktop.commands(&n);
        let busctl = &d[0];
        assert_eq!(busctl[0], "busctl");
        // Options end before the call, so a body starting with "-" is not an option.
        let end = busctl.iter().position(|a| a == "--").unwrap();
        let summary = busctl.iter().position(|a| a == &n.summary).unwrap();
        assert!(end < summary);
        assert!(busctl.contains(&"-x &lt;b&gt;$(rm -rf ~)&lt;/b&gt;".to_owned()));
        assert_eq!(d[1][0], "notify-send");
        assert_eq!(d[1][d[1].len() - 3], "--");
        // macOS: the text reaches the AppleScript as its argv, never inside its source.
        let mac = Desktop::MacOs.commands(&n);
        assert_eq!(mac.len(), 1);
        let osa = &mac[0];
        assert_eq!(osa[0], "osascript");
        let script: Vec<&String> = osa.iter().skip(2).step_by(2).take(3).collect();
        assert_eq!(script[0], "on run argv");
        assert!(
            script
                .iter()
                .all(|l| !l.contains("sign in") && !l.contains("rm -rf"))
        );
        assert_eq!(
            osa[osa.len() - 3..],
            ["--", "credsync: sign in to a&b", "-x <b>$(rm -rf ~)</b>"]
        );
        assert!(Desktop::Unknown.commands(&n).is_empty());
    }

    /// The script PowerShell would run for `argv`'s `-EncodedCommand`.
    fn decoded_script(argv: &[String]) -> String {
        let at = argv.iter().position(|a| a == "-EncodedCommand").unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&argv[at + 1])
            .unwrap();
        let units: Vec<u16> = bytes
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16(&units).unwrap()
    }

    /// The text the script decodes for `name` (`title` or `body`).
    fn decoded_text(script: &str, name: &str) -> String {
        let line = script
            .lines()
            .find(|l| l.starts_with(&format!("${name} = ")))
            .unwrap();
        let b64 = line.split('\'').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn a_windows_toast_carries_the_text_as_data() {
        let n = Notice {
            session: "a&b".into(),
            event: SessionEvent::Refused,
            summary: "credsync: sign in to a'b \u{2019}x".into(),
            body: "-x <b>$(Remove-Item ~)</b> \"q\" `n\nline".into(),
        };
        let ps = PathBuf::from("/mnt/c/Windows/System32/WindowsPowerShell/v1.0/powershell.exe");
        let argv = Desktop::Windows {
            powershell: ps.clone(),
        }
        .commands(&n)
        .remove(0);
        assert_eq!(argv[0], ps.display().to_string());
        assert_eq!(
            argv[1..6],
            [
                "-NoProfile",
                "-NonInteractive",
                "-ExecutionPolicy",
                "Bypass",
                "-EncodedCommand"
            ]
        );
        // Nothing but base64 on the command line: WSL passes it unquoted, nothing parses it.
        let word = &argv[6];
        assert!(
            word.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        );
        let script = decoded_script(&argv);
        for part in ["sign in", "Remove-Item", "<b>", "line"] {
            assert!(
                !script.contains(part),
                "{part} in the script's source:\n{script}"
            );
        }
        assert_eq!(decoded_text(&script, "title"), n.summary);
        assert_eq!(decoded_text(&script, "body"), n.body);
        assert!(
            script.contains("CreateTextNode($title)") && script.contains("CreateTextNode($body)")
        );
    }

    #[test]
    fn the_desktop_is_windows_in_wsl_with_powershell_on_the_c_drive() {
        let wsl = Wsl {
            distro: None,
            systemd: true,
            interop: true,
        };
        let mounts = MountTable::parse("C:\\134 /mnt/c 9p rw,aname=drvfs 0 0\n");
        let linux = Some(Platform::Linux);
        assert_eq!(
            Desktop::of(linux, Some(&wsl), &mounts),
            Desktop::Windows {
                powershell: "/mnt/c/Windows/System32/WindowsPowerShell/v1.0/powershell.exe".into()
            }
        );
        assert_eq!(
            Desktop::of(linux, Some(&wsl), &MountTable::default()),
            Desktop::Windows {
                powershell: "powershell.exe".into()
            }
        );
        assert_eq!(Desktop::of(linux, None, &mounts), Desktop::Freedesktop);
        assert_eq!(
            Desktop::of(Some(Platform::MacOs), None, &mounts),
            Desktop::MacOs
        );
        assert_eq!(Desktop::of(None, None, &mounts), Desktop::Unknown);
    }

    #[test]
    fn the_first_installed_desktop_notifier_shows_it() {
        use crate::process::Finished;
        use crate::process::tests::{Scripted, not_found};
        let n = refused_notice();
        // No busctl (a desktop without systemd): notify-send is next.
        let runner = Scripted::new(|argv: &[String]| match argv[0].as_str() {
            "notify-send" => Ok(Finished::exit(0, "", "")),
            _ => Err(not_found(argv)),
        });
        assert_eq!(
            deliver(&runner, &Desktop::Freedesktop.commands(&n), false),
            Ok(())
        );
        assert_eq!(runner.programs(), ["busctl", "notify-send"]);
        // busctl there: notify-send is not needed.
        let runner = Scripted::new(|_: &[String]| Ok(Finished::exit(0, "(u) 7\n", "")));
        assert_eq!(
            deliver(&runner, &Desktop::Freedesktop.commands(&n), false),
            Ok(())
        );
        assert_eq!(runner.programs(), ["busctl"]);
        // Neither: said once, naming both.
        let runner = Scripted::new(|argv: &[String]| Err(not_found(argv)));
        assert_eq!(
            deliver(&runner, &Desktop::Freedesktop.commands(&n), false),
            Err("none of busctl, notify-send is installed".to_owned())
        );
    }

    #[test]
    fn a_notifier_that_fails_is_reported_and_not_passed_over() {
        use crate::process::Finished;
        use crate::process::tests::Scripted;
        let n = refused_notice();
        // busctl ran and the notification service refused: that is the answer, not a reason
        // to try notify-send (it would reach the same service).
        let runner = Scripted::new(|_: &[String]| {
            Ok(Finished::exit(
                1,
                "",
                "Call failed: The name org.freedesktop.Notifications was not provided by any \
                 .service files\n",
            ))
        });
        let why = deliver(&runner, &Desktop::Freedesktop.commands(&n), false).unwrap_err();
        assert_eq!(
            why,
            "busctl failed (exit status 1): Call failed: The name \
             org.freedesktop.Notifications was not provided by any .service files"
        );
        assert_eq!(runner.programs(), ["busctl"]);
    }

    #[test]
    fn the_users_command_gets_the_text_and_is_the_only_one_tried() {
        use crate::process::tests::{Scripted, not_found};
        let n = refused_notice();
        let argv = with_text(&["/home/u/bin/notify-me".into()], &n);
        let runner = Scripted::new(|argv: &[String]| Err(not_found(argv)));
        assert_eq!(
            deliver(&runner, std::slice::from_ref(&argv), true),
            Err("/home/u/bin/notify-me is not installed".to_owned())
        );
        let calls = runner.calls.lock().unwrap();
        assert_eq!(*calls, std::slice::from_ref(&argv));
    }
}
