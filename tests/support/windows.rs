//! Stand-ins for the Windows side of a WSL distribution, as programs on `PATH` that the real
//! credsync binary runs: `wslview` (wslu) and `cmd.exe`. Each hands the URL it was given to a
//! stand-in browser ([`Browser`]) that follows it, as Windows' browser would, and logs what it
//! was given. Where each behaviour is documented is written beside it.
//!
//! `cmd.exe` is the one that can break a URL, so its fake does what happens between credsync's
//! argument vector and Windows' browser, step by step: WSL joins the vector into a Windows
//! command line, `cmd.exe` expands `%NAME%`, then splits commands at `&` and removes carets,
//! and `start` opens what follows its title. A URL that does not survive any step reaches the
//! browser cut or changed, and the log shows it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::browser::Browser;

/// `cmd.exe` as a WSL distribution runs it. `{browser}` and `{log}` are filled in.
const CMD_EXE: &str = r#"#!/usr/bin/python3
import os, subprocess, sys

LOG = "{log}"
BROWSER = "{browser}"

def log(line):
    with open(LOG, "a") as f:
        f.write(line + "\n")

def format_command_line(args):
    # WSL joins the argument vector into one Windows command line: a word that is empty or
    # holds a space, tab, CR, LF or '"' is quoted (backslashes before a quote doubled, the quote
    # escaped), any other word is passed as it is (microsoft/WSL src/windows/common/interop.cpp,
    # FormatCommandLine).
    out = []
    for a in args:
        if a and not any(c in a for c in ' \t\r\n"'):
            out.append(a)
            continue
        s, bs = '"', 0
        for c in a:
            if c == '"':
                s += '\\' * (bs * 2 + 1) + '"'
                bs = 0
            elif c == '\\':
                bs += 1
            else:
                s += '\\' * bs + c
                bs = 0
        out.append(s + '\\' * (bs * 2) + '"')
    return " ".join(out)

def expand_percent(line):
    # cmd.exe first expands %NAME% from its environment; on a command line (not in a batch file)
    # an undefined name is left as it is ("%VAR% is kept as is when VAR is not set") and there is
    # no escape for '%' (the caret is read after this step).
    env = {k.upper(): v for k, v in os.environ.items()}
    out, i = "", 0
    while i < len(line):
        if line[i] == "%":
            j = line.find("%", i + 1)
            if j > i + 1 and line[i + 1:j].upper() in env:
                out += env[line[i + 1:j].upper()]
                i = j + 1
                continue
        out += line[i]
        i += 1
    return out

def split_commands(line):
    # Then each character: '"' toggles quoting; outside quotes '^' makes the next character
    # plain (the caret is removed) and '&' ends one command and starts the next (cmd /?,
    # "special characters ... &<>()@^|"). Words are split at unquoted spaces; a word remembers
    # whether it was quoted. '|', '<' and '>' are not modelled: a URL handed to cmd.exe must
    # not hold them, and this fake fails when it does.
    commands, words, word, quoted, in_quotes, i = [], [], None, False, False, 0
    def end_word():
        nonlocal word, quoted
        if word is not None:
            words.append((word, quoted))
        word, quoted = None, False
    while i < len(line):
        c = line[i]
        if c == '"':
            in_quotes = not in_quotes
            quoted = True
            word = word or ""
        elif in_quotes:
            word = (word or "") + c
        elif c == "^" and i + 1 < len(line):
            i += 1
            word = (word or "") + line[i]
        elif c in "|<>":
            log("cmd.exe: unescaped operator " + c)
            sys.exit(1)
        elif c == "&":
            end_word()
            commands.append(words)
            words = []
        elif c in " \t":
            end_word()
        else:
            word = (word or "") + c
        i += 1
    end_word()
    commands.append(words)
    return [c for c in commands if c]

line = format_command_line(sys.argv[1:])
log("command line: " + line)
head, _, rest = line.partition(" ")
if head.lower() != "/c":
    log("cmd.exe: expected /c first")
    sys.exit(1)
code = 0
for words in split_commands(expand_percent(rest)):
    name = words[0][0].lower()
    if name != "start":
        # cmd.exe: "'NAME' is not recognized as an internal or external command", errorlevel
        # 9009. The exit status of `cmd /c a & b` is the last command's.
        sys.stderr.write("'%s' is not recognized as an internal or external command,\n" % words[0][0])
        log("not a command: " + words[0][0])
        code = 9009
        continue
    # start ["title"] target: a quoted first argument is the window's title (start /?).
    args = words[1:]
    if args and args[0][1]:
        args = args[1:]
    target = args[0][0] if args else ""
    log("opened " + target)
    subprocess.run([BROWSER, target])
    code = 0
sys.exit(code)
"#;

/// `wslview URL` (wslu): hands URL to Windows and exits with 0, or with `code` when it fails
/// (wslview exits with the status of the PowerShell it runs, or with its own error code:
/// wslutilities/wslu src/wslview.sh, src/wslu-header `error_echo`).
const WSLVIEW: &str = "#!/bin/sh\n\
printf 'wslview %s\\n' \"$*\" >>'{log}'\n\
if [ {code} -ne 0 ]; then echo 'WSL Interoperability is disabled. Please enable it before using WSL.' >&2; exit {code}; fi\n\
exec '{browser}' \"$1\"\n";

/// A directory of fake Windows programs to put first on `PATH`, and what they were given.
pub struct WindowsSide {
    pub bin: PathBuf,
    pub log: PathBuf,
    pub browser: Browser,
}

impl WindowsSide {
    /// An empty bin directory in `dir` and a stand-in browser; add the programs wanted.
    pub fn new(dir: &Path) -> WindowsSide {
        let bin = dir.join("windows-bin");
        fs::create_dir_all(&bin).expect("create the fake Windows bin");
        WindowsSide {
            bin,
            log: dir.join("windows.log"),
            browser: Browser::new(dir, 0),
        }
    }

    /// Adds `cmd.exe`.
    pub fn with_cmd(self) -> WindowsSide {
        self.program("cmd.exe", CMD_EXE)
    }

    /// Adds `wslview`, which exits with `code` (0: it works).
    pub fn with_wslview(self, code: i32) -> WindowsSide {
        self.program("wslview", &WSLVIEW.replace("{code}", &code.to_string()))
    }

    fn program(self, name: &str, template: &str) -> WindowsSide {
        let text = template
            .replace("{log}", &self.log.display().to_string())
            .replace("{browser}", &self.browser.script.display().to_string());
        let path = self.bin.join(name);
        fs::write(&path, text).expect("write a fake Windows program");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod it");
        self
    }

    /// `PATH` with the fakes first.
    pub fn path(&self) -> String {
        let rest = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
        format!("{}:{rest}", self.bin.display())
    }

    /// What the fakes logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The targets `start` opened (cmd.exe) or `wslview` was given, in order.
    pub fn opened(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|l| l.strip_prefix("opened ").or(l.strip_prefix("wslview ")))
            .map(str::to_owned)
            .collect()
    }
}
