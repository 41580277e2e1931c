//! The container view (`[container]`): per target a `credential_process` JSON file and one AWS
//! `config` whose profiles `cat` them, so that SDKs in a container re-read credentials before
//! they expire; and the POSIX ACL that lets the container's uid read them.
//!
//! - **Files.** In `[container] dir` (created `0700` when missing, plus search for the classes
//!   that `file_mode` lets read): `<target>.json` in the `credential_process` format and
//!   `config`. Both go through [`crate::write::update_guarded`], always atomically (`cat` must never
//!   read half a file; the view is mounted as a directory, which sees renames); new files get
//!   `file_mode`, and every write sets an existing file to exactly `file_mode` too (its ACL's
//!   named entries kept). The directory is credsync's: `config` is rewritten whole
//!   (a header says so), and only `<target>.json` of targets credsync manages is created or
//!   deleted. A target stays in `config` (with its last region) until it is passed in `removed`,
//!   even in a round where it has no credentials: its JSON file then keeps the last keys.
//! - **ACL** (`[container] uid`, as the host uid [`crate::uidmap`] maps it to): after each
//!   write, the view's files get a named-user entry `r--` for the uid and the directories on
//!   their path ([`view_dirs`]) `--x` (search, no listing), by setting the
//!   `system.posix_acl_access` extended attribute directly (Linux only; its binary format is
//!   small and fixed, see [`acl::encode`]). The credentials file gets nothing unless
//!   `share_credentials_file` asks for it ([`wanted_grants`]): least privilege. An atomic
//!   rewrite carries the old file's ACL over to the new inode ([`crate::write`]), so a grant
//!   never lapses and never turns into group access. Never does a secret become group- or
//!   world-readable on the way.
//! - **What credsync added** is recorded on the file itself ([`RECORD_XATTR`]); when the
//!   configuration stops asking for it (`share_credentials_file` off, `[container]` or its uid
//!   changed or removed), [`revoke_unwanted`] takes back exactly those bits at the next write or
//!   reload. Entries credsync did not add are never touched.
//! - **No ACL support** (`EOPNOTSUPP`, or not Linux): one warning per process with the
//!   mode-based alternative; the write itself succeeds.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::acl;
use crate::config::ContainerConfig;
use crate::secret::{Credentials, ExposeSecret};
use crate::timefmt;
use crate::write::{self, WriteError, WriteMode, WriteOptions};

/// One target in the view: its name, its region (from the source profile), its credentials.
pub(crate) type ViewSection<'a> = (&'a str, Option<&'a str>, &'a Credentials);

/// The view's config file name inside `[container] dir`.
pub(crate) const CONFIG_NAME: &str = "config";

/// First line of the view's `config`: the file is credsync's alone.
pub(crate) const CONFIG_HEADER: &str =
    "# Written by credsync (the container view): rewritten whole on every refresh; do not edit.";

#[derive(Debug, thiserror::Error)]
pub(crate) enum ViewError {
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(
        "target {target:?} cannot name a file in the container view ({why}); give that \
         [[profiles]] entry a target made of letters, digits and . _ - @ + = ,"
    )]
    UnsafeTarget { target: String, why: &'static str },
    #[error("cannot create the container view directory {path}: {source}")]
    Dir { path: PathBuf, source: io::Error },
    #[error("cannot remove {path} from the container view: {source}")]
    Remove { path: PathBuf, source: io::Error },
    #[error(
        "cannot take back the access credsync granted on {path} with a POSIX ACL: {source}\ncheck \
         that you own the file; `getfacl {path}` shows the entries"
    )]
    Revoke { path: PathBuf, source: io::Error },
    #[error(
        "cannot grant uid {uid} access to {path} with a POSIX ACL: {source}\ncheck that you own \
         the file; or remove `uid` from [container]"
    )]
    Acl {
        path: PathBuf,
        uid: u32,
        source: io::Error,
    },
}

impl ViewError {
    /// The same failure as a [`WriteError`] (what the engine's write reports).
    pub(crate) fn into_write_error(self) -> WriteError {
        match self {
            ViewError::Write(e) => e,
            ViewError::Dir { path, source } => WriteError::Write { path, source },
            ViewError::Remove { ref path, .. }
            | ViewError::Acl { ref path, .. }
            | ViewError::Revoke { ref path, .. } => WriteError::Edit {
                path: path.clone(),
                message: self.to_string(),
            },
            ViewError::UnsafeTarget { .. } => WriteError::Edit {
                path: PathBuf::from("[container] dir"),
                message: self.to_string(),
            },
        }
    }
}

/// What [`grant`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AclOutcome {
    /// The ACL was written.
    Set,
    /// The uid already had that access.
    Unchanged,
    /// The file system (or OS) has no POSIX ACLs; a warning was logged (once per process).
    Unsupported,
}

/// Writes the view: `<target>.json` per section, `config` listing every target (the ones kept
/// from the previous `config` that are not in `removed`, then new ones), deletes the JSON files
/// of `removed` targets, and with `host_uid` (the host uid of `[container] uid`, see
/// [`crate::uidmap`]) grants that uid read access to the files and search on the directories
/// on their path ([`view_dirs`]). Returns the files it wrote or deleted (for the watcher's
/// own-write filter).
pub(crate) fn write_view(
    cfg: &ContainerConfig,
    host_uid: Option<u32>,
    sections: &[ViewSection<'_>],
    removed: &[&str],
    file_mode: u32,
) -> Result<Vec<PathBuf>, ViewError> {
    for (target, _, _) in sections {
        check_target(target)?;
    }
    ensure_dir(&cfg.dir, file_mode)?;
    // Always atomic: `cat` must never see a half-written file. The view is meant to be mounted
    // as a directory, so renames reach the container.
    let opts = WriteOptions {
        mode: WriteMode::Atomic,
        new_file_mode: file_mode & 0o777,
    };
    let mut changed = Vec::new();
    let mut readable = Vec::new();

    for (target, _, creds) in sections {
        let path = cfg.dir.join(json_name(target));
        let json = render_json(creds);
        let (outcome, _) =
            write::update_guarded(&path, &opts, VIEW_FILE, |_| Ok(Some(json.clone())))?;
        if outcome == write::Outcome::Written {
            changed.push(path.clone());
        }
        readable.push(path);
    }

    let config_path = cfg.dir.join(CONFIG_NAME);
    let fresh: Vec<(&str, Option<&str>)> = sections.iter().map(|(t, r, _)| (*t, *r)).collect();
    let (outcome, _) = write::update_guarded(&config_path, &opts, VIEW_FILE, |old| {
        let old = old.map(String::from_utf8_lossy).unwrap_or_default();
        let entries = merge_entries(&parse_config(&old), &fresh, removed);
        let refs: Vec<(&str, Option<&str>)> = entries
            .iter()
            .map(|(t, r)| (t.as_str(), r.as_deref()))
            .collect();
        Ok(Some(
            render_config(&refs, &cfg.path_in_container).into_bytes(),
        ))
    })?;
    if outcome == write::Outcome::Written {
        changed.push(config_path.clone());
    }
    readable.push(config_path);

    for target in removed {
        if check_target(target).is_err() {
            continue; // never a file of ours
        }
        let path = cfg.dir.join(json_name(target));
        match fs::remove_file(&path) {
            Ok(()) => changed.push(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(ViewError::Remove { path, source }),
        }
    }

    if let Some(uid) = host_uid {
        for dir in view_dirs(cfg) {
            grant(&dir, uid, Access::Search)?;
        }
        for path in &readable {
            grant(path, uid, Access::Read)?;
        }
    }
    Ok(changed)
}

/// How the view's files are written: they are credsync's alone, so every write leaves exactly
/// `file_mode` on them, whatever mode a file had (a `0644` file planted there, or left from an
/// earlier `file_mode`, would show the secrets to every user).
const VIEW_FILE: write::Guard = write::Guard {
    own_file: false,
    exact_mode: true,
};

/// `<target>.json`.
pub(crate) fn json_name(target: &str) -> String {
    format!("{target}.json")
}

/// A target names a file and goes, unquoted, into a `credential_process` command line.
fn check_target(target: &str) -> Result<(), ViewError> {
    let bad = |why| {
        Err(ViewError::UnsafeTarget {
            target: target.to_owned(),
            why,
        })
    };
    if target.is_empty() {
        return bad("it is empty");
    }
    if target.starts_with('.') {
        return bad("it starts with a dot");
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || "._-@+=,".contains(c);
    if !target.chars().all(ok) {
        return bad("it has a character that is not safe in a file name or a shell word");
    }
    Ok(())
}

/// The `credential_process` output for `creds`:
/// `{"Version":1,"AccessKeyId":…,"SecretAccessKey":…,"SessionToken":…,"Expiration":"…",
/// "AccountId":"…"}`, with `SessionToken` and `Expiration` left out when there are none (static
/// keys), `AccountId` when the account is not known, and a newline.
pub(crate) fn render_json(creds: &Credentials) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(b"{\"Version\":1,\"AccessKeyId\":");
    push_json_str(&mut out, creds.access_key_id.expose_secret());
    out.extend_from_slice(b",\"SecretAccessKey\":");
    push_json_str(&mut out, creds.secret_access_key.expose_secret());
    if let Some(token) = &creds.session_token {
        out.extend_from_slice(b",\"SessionToken\":");
        push_json_str(&mut out, token.expose_secret());
    }
    if let Some(exp) = creds.expiration {
        out.extend_from_slice(b",\"Expiration\":");
        push_json_str(&mut out, &timefmt::rfc3339(exp));
    }
    if let Some(account) = &creds.account_id {
        // botocore's ProcessProvider reads it (and else the profile's `aws_account_id`).
        out.extend_from_slice(b",\"AccountId\":");
        push_json_str(&mut out, account);
    }
    out.extend_from_slice(b"}\n");
    out
}

fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// The view's `config`: the header, then per target `[profile <target>]` (`[default]` for
/// `default`), `region = …` when known, and `credential_process = cat <dir>/<target>.json`.
pub(crate) fn render_config(entries: &[(&str, Option<&str>)], path_in_container: &str) -> String {
    let dir = path_in_container.trim_end_matches('/');
    let mut out = String::new();
    out.push_str(CONFIG_HEADER);
    out.push('\n');
    let _ = writeln!(
        out,
        "# Containers use it with AWS_CONFIG_FILE={dir}/{CONFIG_NAME}."
    );
    for (target, region) in entries {
        out.push('\n');
        if *target == "default" {
            out.push_str("[default]\n");
        } else {
            let _ = writeln!(out, "[profile {target}]");
        }
        if let Some(region) = region.map(str::trim).filter(|r| !r.is_empty()) {
            let _ = writeln!(out, "region = {region}");
        }
        let _ = writeln!(out, "credential_process = cat {dir}/{}", json_name(target));
    }
    out
}

/// The targets (and regions) of a `config` credsync wrote, in order, read as botocore reads
/// it (through [`crate::ini`], like every AWS file credsync reads). Anything else is ignored.
pub(crate) fn parse_config(text: &str) -> Vec<(String, Option<String>)> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    let mut lexer = crate::ini::Lexer::new();
    // Whether the options that follow belong to an entry of ours.
    let mut ours = false;
    for line in crate::ini::split_lines(text) {
        match lexer.next(line.content) {
            crate::ini::Token::Header(name) => {
                let name = name.trim();
                let target = if name == "default" {
                    Some("default")
                } else {
                    name.strip_prefix("profile ").map(str::trim)
                };
                ours = false;
                if let Some(t) = target.filter(|t| check_target(t).is_ok()) {
                    out.push((t.to_owned(), None));
                    ours = true;
                }
            }
            crate::ini::Token::Option { key, value } if ours && key == "region" => {
                if let Some(last) = out.last_mut() {
                    last.1 = Some(value.to_owned());
                }
            }
            _ => {}
        }
    }
    out
}

/// The previous entries minus `removed`, with the regions of `fresh` ones updated, then the
/// `fresh` ones not seen before, in their order.
fn merge_entries(
    previous: &[(String, Option<String>)],
    fresh: &[(&str, Option<&str>)],
    removed: &[&str],
) -> Vec<(String, Option<String>)> {
    let removed: HashSet<&str> = removed.iter().copied().collect();
    // Each fresh target's first region.
    let mut fresh_region: HashMap<&str, Option<&str>> = HashMap::with_capacity(fresh.len());
    for &(target, region) in fresh {
        fresh_region.entry(target).or_insert(region);
    }
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for (target, region) in previous {
        if removed.contains(target.as_str()) || !seen.insert(target) {
            continue;
        }
        let region = match fresh_region.get(target.as_str()) {
            Some(r) => r.map(str::to_owned),
            None => region.clone(),
        };
        out.push((target.clone(), region));
    }
    for &(target, region) in fresh {
        if seen.insert(target) {
            out.push((target.to_owned(), region.map(str::to_owned)));
        }
    }
    out
}

/// Creates the view directory when missing: `0700`, plus search (`x`) for the group and others
/// when `file_mode` lets them read (so the mode-based alternative to ACLs works: `0644` files in
/// a `0711` directory). An existing directory is left as it is.
fn ensure_dir(dir: &Path, file_mode: u32) -> Result<(), ViewError> {
    let mode = dir_mode(file_mode);
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(ViewError::Dir {
            path: dir.to_path_buf(),
            source: io::Error::from_raw_os_error(libc::ENOTDIR),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let err = |source| ViewError::Dir {
                path: dir.to_path_buf(),
                source,
            };
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(err)?;
            // The umask may have narrowed it; widen only to what `file_mode` asked for.
            fs::set_permissions(dir, fs::Permissions::from_mode(mode)).map_err(err)
        }
        Err(source) => Err(ViewError::Dir {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// `0700` plus `x` for each class `file_mode` gives `r`.
pub(crate) fn dir_mode(file_mode: u32) -> u32 {
    0o700 | ((file_mode & 0o044) >> 2)
}

/// A failed ACL step on `path` for `uid`.
pub(crate) fn acl_error(path: &Path, uid: Option<u32>, source: io::Error) -> ViewError {
    ViewError::Acl {
        path: path.to_path_buf(),
        uid: uid.unwrap_or_default(),
        source,
    }
}

// ---------------------------------------------------------------------------------------------
// The grants credsync keeps in place for the container uid (the format is `crate::acl`'s).

/// What the granted uid may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// `r--`: read a file.
    Read,
    /// `--x`: open names in a directory, without listing it.
    Search,
}

impl Access {
    fn perm(self) -> u16 {
        match self {
            Access::Read => acl::READ,
            Access::Search => acl::SEARCH,
        }
    }
}

static WARNED_NO_ACL: AtomicBool = AtomicBool::new(false);

fn warn_no_acl(path: &Path, uid: u32) {
    if WARNED_NO_ACL.swap(true, Ordering::Relaxed) {
        return;
    }
    tracing::warn!(
        "the file system of {} has no POSIX ACLs, so uid {uid} ([container] uid) cannot be \
         granted read access to the container view; the container user will get \"permission \
         denied\". Either keep ~/.aws on a file system with ACLs (ext4, xfs, btrfs), or remove \
         `uid` and set [write] file_mode = \"0644\" (the view directory is then created 0711): \
         that lets every user of this machine read these credentials",
        path.display()
    );
}

/// The directories the container's uid must search to reach the view files: `[container] dir`
/// and, while its names match `path_in_container` from the end, its parents (the mounted
/// `~/.aws` in the docs' setup: `~/.aws/credsync` is `/home/astro/.aws/credsync`). Never the
/// home directory or above it.
pub(crate) fn view_dirs(cfg: &ContainerConfig) -> Vec<PathBuf> {
    let mut out = vec![cfg.dir.clone()];
    let mut host = cfg.dir.as_path();
    let mut inside = Path::new(&cfg.path_in_container);
    while let (Some(h), Some(c)) = (host.file_name(), inside.file_name()) {
        if h != c {
            break;
        }
        let (Some(hp), Some(cp)) = (host.parent(), inside.parent()) else {
            break;
        };
        // The container side must still be a directory below its root, and the host side below
        // the home directory.
        if cp.parent().is_none()
            || hp.parent().is_none()
            || !hp.starts_with(&cfg.home)
            || hp == cfg.home
        {
            break;
        }
        out.push(hp.to_path_buf());
        host = hp;
        inside = cp;
    }
    out
}

/// One ACL grant credsync keeps in place: `uid` gets `access` on `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AclGrant {
    pub(crate) path: PathBuf,
    pub(crate) uid: u32,
    pub(crate) access: Access,
}

/// The grants the configuration asks for, on files that exist: with `host_uid`, search on
/// [`view_dirs`], read on the view's `config` and `*.json` files; and, only with
/// `share_credentials_file`, read on the credentials file (symlinks resolved) and search on its
/// directory. Least privilege: without that setting the credentials file gets nothing.
pub(crate) fn wanted_grants(
    container: Option<&ContainerConfig>,
    host_uid: Option<u32>,
    credentials_file: &Path,
) -> Vec<AclGrant> {
    let (Some(c), Some(uid)) = (container, host_uid) else {
        return Vec::new();
    };
    let mut out: Vec<AclGrant> = view_dirs(c)
        .into_iter()
        .map(|path| AclGrant {
            path,
            uid,
            access: Access::Search,
        })
        .collect();
    for path in view_files(&c.dir) {
        out.push(AclGrant {
            path,
            uid,
            access: Access::Read,
        });
    }
    if c.share_credentials_file
        && let Ok(file) = fs::canonicalize(credentials_file)
    {
        if let Some(dir) = file.parent() {
            out.push(AclGrant {
                path: dir.to_path_buf(),
                uid,
                access: Access::Search,
            });
        }
        out.push(AclGrant {
            path: file,
            uid,
            access: Access::Read,
        });
    }
    out
}

/// The view's own files in `dir`: `config` and `*.json`.
fn view_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().is_some_and(|n| n == CONFIG_NAME)
                || p.extension().is_some_and(|x| x == "json")
        })
        .collect();
    out.sort();
    out
}

/// Every path on which credsync may have granted access under `container` (current or past)
/// and for `credentials_file`: where [`revoke_unwanted`] looks for its own entries.
pub(crate) fn grant_candidates(
    container: Option<&ContainerConfig>,
    credentials_file: &Path,
) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(file) = fs::canonicalize(credentials_file) {
        if let Some(dir) = file.parent() {
            out.push(dir.to_path_buf());
        }
        out.push(file);
    }
    if let Some(c) = container {
        out.extend(view_dirs(c));
        out.extend(view_files(&c.dir));
    }
    out
}

/// For each of `candidates`, removes the ACL entries (or permission bits) that credsync's
/// record says it added and that `wanted` no longer asks for; entries credsync did not add are
/// never touched. Returns the paths changed. A file system without ACLs or extended attributes
/// has nothing to revoke.
pub(crate) fn revoke_unwanted(
    candidates: &[PathBuf],
    wanted: &[AclGrant],
) -> Result<Vec<PathBuf>, ViewError> {
    let mut changed = Vec::new();
    // What `wanted` keeps on each path, in its order.
    let mut kept: HashMap<&Path, Vec<(u32, u16)>> = HashMap::new();
    for g in wanted {
        let keep = kept.entry(g.path.as_path()).or_default();
        keep.push((g.uid, g.access.perm()));
    }
    let mut seen: HashSet<&Path> = HashSet::new();
    for path in candidates {
        if !seen.insert(path.as_path()) {
            continue;
        }
        let keep = kept.remove(path.as_path()).unwrap_or_default();
        match revoke_io(path, &keep) {
            Ok(true) => changed.push(path.clone()),
            Ok(false) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound || acl::is_unsupported(&e) => {}
            Err(source) => {
                return Err(ViewError::Revoke {
                    path: path.clone(),
                    source,
                });
            }
        }
    }
    Ok(changed)
}

/// Applies `wanted` (see [`grant`]). Missing files are skipped (a target without a file yet).
pub(crate) fn apply_grants(wanted: &[AclGrant]) -> Result<(), ViewError> {
    for g in wanted {
        if fs::symlink_metadata(&g.path).is_err() {
            continue;
        }
        grant(&g.path, g.uid, g.access)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The record of what credsync added: the `user.credsync.acl` extended attribute of the same
// file. It travels with the inode (an atomic rewrite starts without both the ACL and the
// record; a file the user puts in place has no record, so its entries are never ours), and it
// is written right after the ACL: a crash in between leaves an entry credsync will not remove
// (the safe side), never a record of an entry that is the user's.

/// The extended attribute that lists the ACL entries credsync added to a file.
pub use crate::acl::RECORD_XATTR;

/// One recorded grant: credsync gave `uid` the bits `added`; `created` when credsync created
/// the entry (no entry for that uid existed), so that it may remove the entry itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recorded {
    pub(crate) uid: u32,
    pub(crate) added: u16,
    pub(crate) created: bool,
}

/// `uid:bits:new|old` per entry, comma-separated (e.g. `50000:4:new`).
pub(crate) fn encode_record(record: &[Recorded]) -> String {
    record
        .iter()
        .map(|r| {
            format!(
                "{}:{}:{}",
                r.uid,
                r.added,
                if r.created { "new" } else { "old" }
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The record's entries; anything unreadable is dropped (and so never acted on).
pub(crate) fn decode_record(text: &str) -> Vec<Recorded> {
    text.split(',')
        .filter_map(|e| {
            let mut p = e.trim().split(':');
            let uid = p.next()?.parse().ok()?;
            let added: u16 = p.next()?.parse().ok()?;
            let created = match p.next()? {
                "new" => true,
                "old" => false,
                _ => return None,
            };
            (added & !7 == 0 && added != 0).then_some(Recorded {
                uid,
                added,
                created,
            })
        })
        .collect()
}

/// `acl` with the bits of `record` that `keep` does not ask for taken back: the bits are
/// cleared, an entry credsync created and left empty is removed, the mask recomputed (dropped
/// when no named entry remains). Returns the new ACL and record; `None` when nothing changes.
pub(crate) fn revoke_in(
    acl: &[acl::Entry],
    record: &[Recorded],
    keep: &[(u32, u16)],
) -> Option<(Vec<acl::Entry>, Vec<Recorded>)> {
    let mut out = acl.to_vec();
    let mut rec = Vec::new();
    let mut changed = false;
    for r in record {
        let kept: u16 = keep
            .iter()
            .filter(|(u, _)| *u == r.uid)
            .fold(0, |m, (_, p)| m | p);
        let take = r.added & !kept;
        if take == 0 {
            rec.push(*r);
            continue;
        }
        changed = true;
        let Some(i) = out
            .iter()
            .position(|e| e.tag == acl::TAG_USER && e.id == r.uid)
        else {
            continue; // the entry is gone: nothing of ours left
        };
        out[i].perm &= !take;
        if out[i].perm == 0 && r.created {
            out.remove(i);
        }
        let left = r.added & kept;
        if left != 0 {
            rec.push(Recorded { added: left, ..*r });
        }
    }
    if !changed {
        return None;
    }
    out.retain(|e| e.tag != acl::TAG_MASK);
    if out
        .iter()
        .any(|e| matches!(e.tag, acl::TAG_USER | acl::TAG_GROUP))
    {
        let mask = out
            .iter()
            .filter(|e| matches!(e.tag, acl::TAG_USER | acl::TAG_GROUP | acl::TAG_GROUP_OBJ))
            .fold(0, |m, e| m | e.perm);
        out.push(acl::Entry {
            tag: acl::TAG_MASK,
            perm: mask,
            id: acl::UNDEFINED_ID,
        });
    }
    Some((out, rec))
}

fn revoke_io(path: &Path, keep: &[(u32, u16)]) -> io::Result<bool> {
    let Some(text) = acl::read_xattr(path, RECORD_XATTR)? else {
        return Ok(false);
    };
    let record = decode_record(&String::from_utf8_lossy(&text));
    let acl = match acl::read(path)? {
        Some(acl) => acl,
        None => acl::from_mode(fs::metadata(path)?.permissions().mode()),
    };
    let Some((new_acl, new_record)) = revoke_in(&acl, &record, keep) else {
        return Ok(false);
    };
    acl::write(path, &new_acl)?;
    if new_record.is_empty() {
        acl::remove_xattr(path, RECORD_XATTR)?;
    } else {
        acl::write_xattr(path, RECORD_XATTR, encode_record(&new_record).as_bytes())?;
    }
    Ok(true)
}

/// The record of `path` (empty without one).
pub(crate) fn read_record(path: &Path) -> io::Result<Vec<Recorded>> {
    Ok(acl::read_xattr(path, RECORD_XATTR)?
        .map(|t| decode_record(&String::from_utf8_lossy(&t)))
        .unwrap_or_default())
}

static WARNED_NO_RECORD: AtomicBool = AtomicBool::new(false);

/// Adds to `path`'s record that credsync gave `uid` the bits `added` (`created`: a new entry).
fn record_grant(path: &Path, uid: u32, added: u16, created: bool) {
    let result = (|| {
        let mut record = read_record(path)?;
        match record.iter_mut().find(|r| r.uid == uid) {
            Some(r) => r.added |= added,
            None => record.push(Recorded {
                uid,
                added,
                created,
            }),
        }
        acl::write_xattr(path, RECORD_XATTR, encode_record(&record).as_bytes())
    })();
    if let Err(e) = result
        && !WARNED_NO_RECORD.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(
            "cannot record on {} that credsync granted uid {uid} access ({e}); credsync will not              remove that ACL entry by itself when the setting changes: remove it with              setfacl -x u:{uid}",
            path.display()
        );
    }
}

/// Grants `uid` `access` on `path` (a file: read; a directory: search) by adding a named-user
/// entry to its access ACL, and records what it added ([`RECORD_XATTR`]). On a file system
/// without ACLs, warns once and returns [`AclOutcome::Unsupported`].
pub(crate) fn grant(path: &Path, uid: u32, access: Access) -> Result<AclOutcome, ViewError> {
    match grant_io(path, uid, access.perm()) {
        Ok(outcome) => Ok(outcome),
        Err(e) if acl::is_unsupported(&e) => {
            warn_no_acl(path, uid);
            Ok(AclOutcome::Unsupported)
        }
        Err(source) => Err(acl_error(path, Some(uid), source)),
    }
}

fn grant_io(path: &Path, uid: u32, perm: u16) -> io::Result<AclOutcome> {
    let acl = match acl::read(path)? {
        Some(acl) => acl,
        None => acl::from_mode(fs::metadata(path)?.permissions().mode()),
    };
    let before = acl
        .iter()
        .find(|e| e.tag == acl::TAG_USER && e.id == uid)
        .map(|e| e.perm);
    match acl::with_user(&acl, uid, perm) {
        None => Ok(AclOutcome::Unchanged),
        Some(new) => {
            acl::write(path, &new)?;
            let added = perm & !before.unwrap_or(0);
            if added != 0 {
                record_grant(path, uid, added, before.is_none());
            }
            Ok(AclOutcome::Set)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::time::{Duration, SystemTime};

    fn creds(akid: &str, exp: Option<u64>) -> Credentials {
        Credentials {
            access_key_id: akid.into(),
            secret_access_key: "se\"cret".into(),
            session_token: exp.map(|_| "tok".into()),
            expiration: exp.map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s)),
            account_id: None,
        }
    }

    fn container(dir: &Path, uid: Option<u32>) -> ContainerConfig {
        ContainerConfig {
            dir: dir.to_path_buf(),
            path_in_container: "/home/astro/.aws/credsync".into(),
            uid,
            share_credentials_file: false,
            engine: None,
            home: "/nonexistent-home".into(),
        }
    }

    #[test]
    fn the_view_config_is_read_the_way_botocore_reads_it() {
        let text = "[profile a]\r\nregion: eu-west-1\n  ; a comment\n[not ours]\nregion = us-east-1\n\
                    [profile b]\n# region = nowhere\nregion = ap-south-1\n";
        assert_eq!(
            parse_config(text),
            vec![
                // `key: value` and CRLF, as configparser takes them.
                ("a".to_owned(), Some("eu-west-1".to_owned())),
                // A comment is not a region, and the foreign section's region is not b's or a's.
                ("b".to_owned(), Some("ap-south-1".to_owned())),
            ]
        );
    }

    #[test]
    fn json_is_the_credential_process_format() {
        let c = creds("ASIA1", Some(1_800_000_000));
        assert_eq!(
            render_json(&c),
            b"{\"Version\":1,\"AccessKeyId\":\"ASIA1\",\"SecretAccessKey\":\"se\\\"cret\",\
              \"SessionToken\":\"tok\",\"Expiration\":\"2027-01-15T08:00:00Z\"}\n"
        );
        let v: serde_json::Value = serde_json::from_slice(&render_json(&c)).unwrap();
        assert_eq!(v["SecretAccessKey"], "se\"cret");
        let c = Credentials {
            account_id: Some("123456789012".into()),
            ..creds("AKIA1", None)
        };
        assert_eq!(
            render_json(&c),
            b"{\"Version\":1,\"AccessKeyId\":\"AKIA1\",\"SecretAccessKey\":\"se\\\"cret\",\
              \"AccountId\":\"123456789012\"}\n"
        );
    }

    #[test]
    fn static_keys_have_no_token_or_expiration() {
        assert_eq!(
            render_json(&creds("AKIA1", None)),
            b"{\"Version\":1,\"AccessKeyId\":\"AKIA1\",\"SecretAccessKey\":\"se\\\"cret\"}\n"
        );
    }

    #[test]
    fn config_has_profiles_regions_and_cat_commands() {
        let text = render_config(
            &[("default", Some("eu-west-1")), ("data-ro", None)],
            "/home/astro/.aws/credsync/",
        );
        assert_eq!(
            text,
            format!(
                "{CONFIG_HEADER}\n\
                 # Containers use it with AWS_CONFIG_FILE=/home/astro/.aws/credsync/config.\n\
                 \n\
                 [default]\n\
                 region = eu-west-1\n\
                 credential_process = cat /home/astro/.aws/credsync/default.json\n\
                 \n\
                 [profile data-ro]\n\
                 credential_process = cat /home/astro/.aws/credsync/data-ro.json\n"
            )
        );
        assert_eq!(
            parse_config(&text),
            vec![
                ("default".to_owned(), Some("eu-west-1".to_owned())),
                ("data-ro".to_owned(), None)
            ]
        );
    }

    #[test]
    fn merge_keeps_known_targets_and_drops_removed_ones() {
        let prev = vec![
            ("a".to_owned(), Some("r1".to_owned())),
            ("b".to_owned(), None),
            ("c".to_owned(), Some("r3".to_owned())),
        ];
        let merged = merge_entries(&prev, &[("d", None), ("a", Some("r9"))], &["b"]);
        assert_eq!(
            merged,
            vec![
                ("a".to_owned(), Some("r9".to_owned())),
                ("c".to_owned(), Some("r3".to_owned())),
                ("d".to_owned(), None)
            ]
        );
    }

    proptest::proptest! {
        #![proptest_config(crate::test_support::proptest_config())]

        /// The merge looks targets up in sets (linear in the number of profiles); it must give
        /// what the search of the lists it replaced gave, duplicates and removed targets
        /// included.
        #[test]
        fn merge_gives_what_searching_the_lists_gives(
            previous in proptest::collection::vec(
                (proptest::sample::select(vec!["a", "b", "c", "d"]),
                 proptest::option::of(proptest::sample::select(vec!["r1", "r2"]))),
                0..8,
            ),
            fresh in proptest::collection::vec(
                (proptest::sample::select(vec!["a", "b", "c", "e"]),
                 proptest::option::of(proptest::sample::select(vec!["r3", "r4"]))),
                0..8,
            ),
            removed in proptest::sample::subsequence(vec!["a", "b", "e"], 0..3),
        ) {
            let previous: Vec<(String, Option<String>)> = previous
                .iter()
                .map(|(t, r)| ((*t).to_owned(), r.map(str::to_owned)))
                .collect();
            // The searches the merge used to make.
            let mut want: Vec<(String, Option<String>)> = Vec::new();
            for (target, region) in &previous {
                if removed.contains(&target.as_str()) || want.iter().any(|(t, _)| t == target) {
                    continue;
                }
                let region = match fresh.iter().find(|(t, _)| t == target) {
                    Some((_, r)) => r.map(str::to_owned),
                    None => region.clone(),
                };
                want.push((target.clone(), region));
            }
            for (target, region) in &fresh {
                if !want.iter().any(|(t, _)| t == target) {
                    want.push(((*target).to_owned(), region.map(str::to_owned)));
                }
            }
            proptest::prop_assert_eq!(merge_entries(&previous, &fresh, &removed), want);
        }
    }

    #[test]
    fn unsafe_targets_are_refused() {
        for bad in ["", ".hidden", "a/b", "../x", "my profile", "a;b", "x$y"] {
            assert!(
                matches!(check_target(bad), Err(ViewError::UnsafeTarget { .. })),
                "{bad:?}"
            );
        }
        for good in ["default", "dev-admin", "acct_1.role@x", "a+b=c,d"] {
            check_target(good).unwrap();
        }
    }

    #[test]
    fn dir_mode_follows_file_mode() {
        assert_eq!(dir_mode(0o600), 0o700);
        assert_eq!(dir_mode(0o644), 0o711);
        assert_eq!(dir_mode(0o640), 0o710);
    }

    #[test]
    fn without_uid_nothing_has_group_or_other_bits() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("view");
        let cfg = container(&dir, None);
        let a = creds("ASIA-A", Some(1_800_000_000));
        let b = creds("ASIA-B", Some(1_800_000_000));
        let written = write_view(
            &cfg,
            cfg.uid,
            &[("default", Some("us-east-1"), &a), ("b", None, &b)],
            &[],
            0o600,
        )
        .unwrap();
        assert_eq!(written.len(), 3);
        let mut seen = 0;
        for entry in fs::read_dir(&dir).unwrap() {
            let m = entry.unwrap().metadata().unwrap();
            assert_eq!(m.mode() & 0o077, 0, "{:o}", m.mode());
            assert!(acl::read(&dir).unwrap_or(None).is_none());
            seen += 1;
        }
        assert_eq!(seen, 3);
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        // Same content again: nothing written.
        let again = write_view(
            &cfg,
            cfg.uid,
            &[("default", Some("us-east-1"), &a), ("b", None, &b)],
            &[],
            0o600,
        )
        .unwrap();
        assert!(again.is_empty(), "{again:?}");
    }

    #[test]
    fn removed_targets_lose_their_file_and_config_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("view");
        let cfg = container(&dir, None);
        let a = creds("ASIA-A", Some(1_800_000_000));
        let b = creds("ASIA-B", Some(1_800_000_000));
        write_view(
            &cfg,
            cfg.uid,
            &[("a", None, &a), ("b", Some("r"), &b)],
            &[],
            0o600,
        )
        .unwrap();
        fs::write(dir.join("user-file.json"), "{}").unwrap();
        // A round where `b` has no credentials keeps it; removing `a` drops it.
        let changed = write_view(&cfg, cfg.uid, &[], &["a"], 0o600).unwrap();
        assert!(!dir.join("a.json").exists());
        assert!(dir.join("b.json").exists());
        assert!(dir.join("user-file.json").exists());
        assert!(changed.contains(&dir.join("a.json")));
        let config = fs::read_to_string(dir.join("config")).unwrap();
        assert!(!config.contains("[profile a]"), "{config}");
        assert!(config.contains("[profile b]\nregion = r\n"), "{config}");
    }

    /// The uid's entry and the owning group's bits, as the kernel reports them.
    #[cfg(target_os = "linux")]
    fn acl_of(path: &Path) -> (Option<u16>, u16) {
        let acl = acl::read(path).unwrap().expect("an ACL");
        let user = acl
            .iter()
            .find(|e| e.tag == acl::TAG_USER && e.id == 50000)
            .map(|e| e.perm);
        let group = acl
            .iter()
            .find(|e| e.tag == acl::TAG_GROUP_OBJ)
            .unwrap()
            .perm;
        (user, group)
    }

    // POSIX ACLs are Linux's (src/acl.rs); elsewhere granting fails with ENOTSUP.
    #[cfg(target_os = "linux")]
    #[test]
    fn uid_gets_read_on_files_and_search_on_the_dir_across_rewrites() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("view");
        let cfg = container(&dir, Some(50000));
        for round in 0..3 {
            let c = creds(&format!("ASIA-{round}"), Some(1_800_000_000 + round));
            write_view(&cfg, cfg.uid, &[("dev", None, &c)], &[], 0o600).unwrap();
            for name in ["dev.json", "config"] {
                let path = dir.join(name);
                assert_eq!(acl_of(&path), (Some(acl::READ), 0), "{name} round {round}");
                // Group bits show the mask (r), but the owning group itself has nothing.
                assert_eq!(fs::metadata(&path).unwrap().mode() & 0o007, 0);
            }
            assert_eq!(acl_of(&dir), (Some(acl::SEARCH), 0));
        }
        // Each grant is recorded as credsync's own.
        assert_eq!(
            read_record(&dir.join("dev.json")).unwrap(),
            vec![Recorded {
                uid: 50000,
                added: acl::READ,
                created: true
            }]
        );
    }

    #[test]
    fn view_dirs_follow_the_mounted_suffix_and_stop_below_home() {
        let mut c = container(Path::new("/home/u/.aws/credsync"), Some(50000));
        c.home = "/home/u".into();
        assert_eq!(
            view_dirs(&c),
            vec![
                PathBuf::from("/home/u/.aws/credsync"),
                PathBuf::from("/home/u/.aws")
            ]
        );
        // Same names all the way up: still never the home directory or above.
        c.dir = "/home/astro/.aws/credsync".into();
        c.home = "/home/astro".into();
        assert_eq!(view_dirs(&c).len(), 2);
        // Nothing in common: the view directory alone.
        c.dir = "/home/u/view".into();
        c.home = "/home/u".into();
        assert_eq!(view_dirs(&c), vec![PathBuf::from("/home/u/view")]);
    }

    #[test]
    fn record_round_trips_and_drops_garbage() {
        let r = vec![
            Recorded {
                uid: 50000,
                added: 4,
                created: true,
            },
            Recorded {
                uid: 7,
                added: 1,
                created: false,
            },
        ];
        assert_eq!(encode_record(&r), "50000:4:new,7:1:old");
        assert_eq!(decode_record(&encode_record(&r)), r);
        assert_eq!(
            decode_record("x:4:new,5:9:new,5:0:new,5:4:maybe,6:4"),
            vec![]
        );
    }

    fn user(uid: u32, perm: u16) -> acl::Entry {
        acl::Entry {
            tag: acl::TAG_USER,
            perm,
            id: uid,
        }
    }

    fn sorted(mut v: Vec<acl::Entry>) -> Vec<acl::Entry> {
        v.sort_by_key(|e| (e.tag, e.id));
        v
    }

    #[test]
    fn revoke_takes_back_only_what_credsync_added() {
        let base = acl::from_mode(0o600);
        let ours = acl::with_user(&base, 50000, acl::READ).unwrap();
        let rec = [Recorded {
            uid: 50000,
            added: acl::READ,
            created: true,
        }];
        // Wanted: nothing changes.
        assert_eq!(revoke_in(&ours, &rec, &[(50000, acl::READ)]), None);
        // Not wanted: the entry and the mask go; the ACL is the mode again.
        let (acl, left) = revoke_in(&ours, &rec, &[]).unwrap();
        assert_eq!(sorted(acl.clone()), sorted(base.clone()));
        assert!(left.is_empty());
        assert_eq!(acl::true_mode(&acl), None);
        // The user's own entry for another uid stays, with the mask it needs.
        let mixed = acl::with_user(&ours, 1001, 6).unwrap();
        let (acl, _) = revoke_in(&mixed, &rec, &[]).unwrap();
        assert_eq!(
            sorted(acl),
            sorted(vec![
                base[0],
                base[1],
                base[2],
                user(1001, 6),
                acl::Entry {
                    tag: acl::TAG_MASK,
                    perm: 6,
                    id: acl::UNDEFINED_ID
                }
            ])
        );
        // An entry the user had (x) that credsync widened (r): only r is taken back.
        let had = acl::with_user(&base, 50000, acl::SEARCH).unwrap();
        let widened = acl::with_user(&had, 50000, acl::READ).unwrap();
        let rec_old = [Recorded {
            uid: 50000,
            added: acl::READ,
            created: false,
        }];
        let (acl, _) = revoke_in(&widened, &rec_old, &[]).unwrap();
        assert_eq!(sorted(acl), sorted(had));
        // A uid change: the old uid's entry goes, the new one's is kept.
        let (acl, left) = revoke_in(&ours, &rec, &[(50001, acl::READ)]).unwrap();
        assert!(!acl.iter().any(|e| e.tag == acl::TAG_USER));
        assert!(left.is_empty());
        // The entry was removed by someone else meanwhile: the record is dropped.
        let (acl, left) = revoke_in(&base, &rec, &[]).unwrap();
        assert_eq!(sorted(acl), sorted(base));
        assert!(left.is_empty());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn revoke_on_disk_keeps_entries_credsync_did_not_add() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("credentials");
        fs::write(&f, "x").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
        // The user's own entry for uid 1234, then credsync's for 50000.
        acl::write(
            &f,
            &acl::with_user(&acl::from_mode(0o600), 1234, acl::READ).unwrap(),
        )
        .unwrap();
        assert_eq!(grant(&f, 50000, Access::Read).unwrap(), AclOutcome::Set);
        // The user's entry was there before: granting it again records nothing.
        assert_eq!(
            grant(&f, 1234, Access::Read).unwrap(),
            AclOutcome::Unchanged
        );
        assert_eq!(read_record(&f).unwrap().len(), 1);
        let changed = revoke_unwanted(std::slice::from_ref(&f), &[]).unwrap();
        assert_eq!(changed, vec![f.clone()]);
        let acl = acl::read(&f).unwrap().unwrap();
        assert!(
            acl.iter()
                .any(|e| e.tag == acl::TAG_USER && e.id == 1234 && e.perm == acl::READ)
        );
        assert!(!acl.iter().any(|e| e.tag == acl::TAG_USER && e.id == 50000));
        assert!(read_record(&f).unwrap().is_empty());
        // Nothing recorded any more: a second pass changes nothing.
        assert!(
            revoke_unwanted(std::slice::from_ref(&f), &[])
                .unwrap()
                .is_empty()
        );
        // A file whose record was lost is never touched.
        let g = tmp.path().join("g");
        fs::write(&g, "x").unwrap();
        acl::write(
            &g,
            &acl::with_user(&acl::from_mode(0o600), 50000, acl::READ).unwrap(),
        )
        .unwrap();
        assert!(
            revoke_unwanted(std::slice::from_ref(&g), &[])
                .unwrap()
                .is_empty()
        );
        assert!(
            acl::read(&g)
                .unwrap()
                .unwrap()
                .iter()
                .any(|e| e.id == 50000)
        );
    }
}
