//! The `kill -9` harness shared by the kill-and-resume tests (the CLI's in
//! `crates/cli/tests/kill_resume.rs`, `reproduce-splitting`'s in `xtask/tests/`): run a command,
//! SIGKILL it in the middle of its work, check what it left, resume, twenty times over.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How many kills in the middle of the work each loop makes.
pub(crate) const KILLS: usize = 20;

/// Every visible file under `dir`, by relative path (hidden files are locks and temporaries).
pub(crate) fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(rd) = std::fs::read_dir(d) else {
            return;
        };
        for e in rd {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if let Ok(b) = std::fs::read(&p) {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, b);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Runs `cmd` to completion, returning how long it took.
pub(crate) fn run_ok(mut cmd: Command) -> Duration {
    let t0 = Instant::now();
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    t0.elapsed()
}

/// When each run is killed.
pub(crate) enum KillAt<'a> {
    /// After a pseudo-random delay drawn uniformly from `from..to` times `span` (an
    /// uninterrupted run's time, startup included).
    Random { span: Duration, from: f64, to: f64 },
    /// Once the run has made progress past the previous kill's (the closure reads it from the
    /// outputs), plus a pseudo-random delay of up to the given time: every kill lands inside
    /// the work, and every run moves it on.
    AfterProgress(&'a dyn Fn() -> u64, Duration),
}

/// Spawns `make()` and SIGKILLs it as `when` says until it has been killed [`KILLS`] times in
/// the middle of its work, calling `check` after each kill. A run that finishes before its kill
/// (the work was nearly done) is handed to `finished`, which checks its outputs against the
/// uninterrupted run's and clears them, and the kills go on from scratch. Returns how many runs
/// finished that way.
pub(crate) fn kill_loop(
    when: KillAt<'_>,
    seed: u64,
    make: impl Fn() -> Command,
    check: impl Fn(usize),
    finished: impl Fn(),
) -> usize {
    let mut s = seed;
    let mut rnd = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let (mut i, mut attempts, mut completed) = (0, 0, 0);
    while i < KILLS {
        attempts += 1;
        assert!(
            attempts <= 3 * KILLS,
            "{attempts} runs for {i} kills: too little work"
        );
        let mut child = make().spawn().unwrap();
        let t0 = Instant::now();
        let mut exited = false;
        match &when {
            KillAt::Random { span, from, to } => {
                let at = span.mul_f64(from + (to - from) * rnd());
                while t0.elapsed() < at && !exited {
                    exited = child.try_wait().unwrap().is_some();
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            KillAt::AfterProgress(progress, jitter) => {
                let before = progress();
                while progress() <= before && !exited {
                    assert!(t0.elapsed() < Duration::from_secs(120), "no progress");
                    exited = child.try_wait().unwrap().is_some();
                    std::thread::sleep(Duration::from_millis(1));
                }
                std::thread::sleep(jitter.mul_f64(rnd()));
            }
        }
        if exited || child.try_wait().unwrap().is_some() {
            let o = child.wait_with_output().unwrap();
            assert!(o.status.success(), "a run between kills failed");
            finished();
            completed += 1;
            continue;
        }
        child.kill().unwrap_or(()); // SIGKILL
        child.wait().unwrap();
        check(i);
        i += 1;
    }
    completed
}

/// Files present in `got` that are final outputs must equal `want`'s (`skip`: files that are
/// rewritten as the run goes, checked separately).
pub(crate) fn assert_complete(
    got: &BTreeMap<String, Vec<u8>>,
    want: &BTreeMap<String, Vec<u8>>,
    skip: &dyn Fn(&str) -> bool,
    kill: usize,
) {
    for (name, bytes) in got {
        if skip(name) {
            continue;
        }
        let w = want
            .get(name)
            .unwrap_or_else(|| panic!("kill {kill}: unexpected file {name}"));
        assert!(
            bytes == w,
            "kill {kill}: {name} differs from the uninterrupted run's ({} vs {} bytes)",
            bytes.len(),
            w.len()
        );
    }
}
