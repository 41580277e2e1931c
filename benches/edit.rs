//! Criterion benches of the credentials-file write path (issue 7, target 2): the pure edit
//! (`ini_edit::apply`) on a file of 1,000 sections, and the whole atomic write
//! (`write::update`: read, edit, temp file, fsync, rename, fsync of the directory) of the same
//! file, beside a bare write + fsync of the same bytes, to show the write is dominated by fsync.
//!
//! `cargo bench --bench edit` (figures and how to read them: docs/performance.md).

// A bench reads its own scratch files, not a user's: the plain reads are fine here.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::hint::black_box;
use std::io::Write;
use std::path::Path;

use credsync::ini_edit::{self, ManagedSection};
use credsync::secret::Credentials;
use credsync::write::{self, WriteOptions};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

mod common;
use common::{creds, thousand_sections};

fn bench_apply(c: &mut Criterion) {
    let (text, names) = thousand_sections();
    let mut group = c.benchmark_group("ini_edit::apply/1000 sections");
    // The daemon's usual round: one profile fell due.
    let one = creds(7, 1);
    group.bench_function("rewrite 1 managed section", |b| {
        b.iter(|| {
            let sections = [ManagedSection {
                name: &names[7],
                credentials: &one,
            }];
            black_box(ini_edit::apply(black_box(&text), &sections, &[]))
        })
    });
    // `credsync sync` of every profile: all 500 managed sections rewritten at once.
    let all: Vec<Credentials> = (0..names.len()).map(|i| creds(i, 2)).collect();
    group.bench_function("rewrite all 500 managed sections", |b| {
        b.iter(|| {
            let sections: Vec<ManagedSection<'_>> = names
                .iter()
                .zip(&all)
                .map(|(name, credentials)| ManagedSection { name, credentials })
                .collect();
            black_box(ini_edit::apply(black_box(&text), &sections, &[]))
        })
    });
    // A new profile: appended after 1,000 sections.
    group.bench_function("append 1 new section", |b| {
        b.iter(|| {
            let sections = [ManagedSection {
                name: "brand-new",
                credentials: &one,
            }];
            black_box(ini_edit::apply(black_box(&text), &sections, &[]))
        })
    });
    group.finish();
}

fn bench_write(c: &mut Criterion) {
    let (text, names) = thousand_sections();
    // Under the target dir (a real disk; /tmp may be tmpfs, where fsync costs nothing).
    let dir = tempfile::Builder::new()
        .prefix("credsync-bench-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("create a temp dir for the bench");
    let path = dir.path().join("credentials");
    fs::write(&path, &text).expect("write the benched credentials file");
    let opts = WriteOptions::default();
    let mut group = c.benchmark_group("write/1000 sections");
    group.sample_size(30);
    let mut generation = 10u64;
    group.bench_function("write::update atomic, 1 section changed", |b| {
        b.iter(|| {
            generation += 1;
            let fresh = creds(7, generation);
            let outcome = write::update(&path, &opts, |old| {
                let old =
                    std::str::from_utf8(old.unwrap_or_default()).map_err(|e| e.to_string())?;
                let sections = [ManagedSection {
                    name: &names[7],
                    credentials: &fresh,
                }];
                Ok(Some(ini_edit::apply(old, &sections, &[]).text.into_bytes()))
            })
            .expect("the atomic write succeeds");
            black_box(outcome)
        })
    });
    // The floor: the same bytes written to a new file and fsynced, plus the directory fsync.
    let bytes = fs::read(&path).expect("read back the benched file");
    let scratch = dir.path().join("scratch");
    group.bench_function("bare write + fsync + dir fsync (floor)", |b| {
        b.iter_batched(
            || (),
            |()| write_and_fsync(&scratch, &bytes, dir.path()),
            BatchSize::PerIteration,
        )
    });
    // The same atomic write minus the fsyncs: what the write path costs without the disk.
    group.bench_function("read + edit + write + rename, no fsync", |b| {
        b.iter(|| {
            generation += 1;
            let fresh = creds(7, generation);
            let old = fs::read_to_string(&path).expect("read");
            let sections = [ManagedSection {
                name: &names[7],
                credentials: &fresh,
            }];
            let new = ini_edit::apply(&old, &sections, &[]).text;
            let tmp = dir.path().join(".credentials.tmp");
            fs::write(&tmp, new).expect("write temp");
            fs::rename(&tmp, &path).expect("rename");
        })
    });
    group.finish();
}

fn write_and_fsync(path: &Path, bytes: &[u8], dir: &Path) {
    let mut f = fs::File::create(path).expect("create scratch");
    f.write_all(bytes).expect("write scratch");
    f.sync_all().expect("fsync scratch");
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .expect("fsync dir");
}

criterion_group!(benches, bench_apply, bench_write);
criterion_main!(benches);
