//! Helpers shared by the process-level tests: a lake in a temporary directory driven through
//! the real `tarn` binary, `ts,id,v` rows rendered exactly as `tarn read --format csv` prints
//! them, and fingerprints of a lake's visible state (its log and its storage's files). A lake
//! is on one backend: SQLite + local files, or PostgreSQL + S3 (`TestLake::on`).

#![allow(dead_code)]

use serde_json::Value;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
pub use tarn_testkit::Backend;
use tarn_testkit::LakePlace;

/// The binary under test.
pub const TARN: &str = env!("CARGO_BIN_EXE_tarn");

/// A `tarn` command with a clean environment: no lake, durability or log level inherited
/// from the developer's shell, and a working directory that is no lake.
pub fn tarn_cmd(cwd: &Path) -> Command {
    let mut cmd = Command::new(TARN);
    cmd.current_dir(cwd)
        .env_remove("TARN_LAKE")
        .env_remove("TARN_DURABILITY")
        .env_remove("TARN_LOG")
        .env_remove("TARN_JOB")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    cmd
}

/// What one `tarn` process did.
#[derive(Debug, Clone)]
pub struct Run {
    pub args: Vec<OsString>,
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn from_output(args: Vec<OsString>, out: Output) -> Self {
        Self {
            args,
            code: out.status.code(),
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn stdout(&self) -> String {
        String::from_utf8(self.stdout.clone())
            .unwrap_or_else(|e| panic!("{}: stdout is not UTF-8: {e}", self.describe()))
    }

    pub fn describe(&self) -> String {
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        format!(
            "`tarn {}` exited {:?}\n--- stderr ---\n{}\n--- stdout (first 2000 bytes) ---\n{}",
            args.join(" "),
            self.code,
            self.stderr,
            String::from_utf8_lossy(&self.stdout[..self.stdout.len().min(2000)])
        )
    }

    /// Panics unless the process exited 0.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, Some(0), "{}", self.describe());
        self
    }

    /// Panics unless stdout is exactly one JSON value.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}): {}", self.describe()))
    }

    /// Panics unless the process failed with `code`, an `error: ` line on stderr, and a
    /// message that contains every one of `needles` (case-insensitive).
    #[track_caller]
    pub fn fails(&self, code: i32, needles: &[&str]) {
        assert_eq!(
            self.code,
            Some(code),
            "wrong exit code: {}",
            self.describe()
        );
        assert!(
            self.stderr.starts_with("error: "),
            "stderr must start with `error: `: {}",
            self.describe()
        );
        let lower = self.stderr.to_lowercase();
        for n in needles {
            assert!(
                lower.contains(&n.to_lowercase()),
                "stderr must mention {n:?}: {}",
                self.describe()
            );
        }
    }
}

/// A lake made by `tarn init` in a fresh place of one backend (tarn-testkit's
/// [`LakePlace`]): a temporary directory that holds the lake at `dir/lake` and room for
/// input files beside it, plus, for [`Backend::Remote`], a fresh PostgreSQL schema and S3
/// prefix. Several lake directories may share one place ([`TestLake::join`]).
pub struct TestLake {
    place: Arc<LakePlace>,
    /// The lake directory: where `tarn.toml` is.
    pub lake: PathBuf,
}

impl TestLake {
    /// A SQLite + local lake (the default of `tarn init`).
    pub fn new() -> Self {
        Self::on(Backend::Local).expect("the local backend is always available")
    }

    /// A lake on `backend`, or `None` when its servers are not configured (the test skips;
    /// tarn-testkit says so on stderr, and panics instead under TARN_TEST_REQUIRE_REMOTE=1).
    pub fn on(backend: Backend) -> Option<Self> {
        let t = Self::uninitialized(backend)?;
        let init = t.raw(t.init_args(&t.lake)).ok();
        assert!(t.lake.join("tarn.toml").is_file(), "{}", init.describe());
        Some(t)
    }

    /// A place on `backend` where no `tarn init` ran yet (for tests of `init` itself).
    pub fn uninitialized(backend: Backend) -> Option<Self> {
        let place = Arc::new(LakePlace::new(backend)?);
        Some(Self {
            lake: place.dir.clone(),
            place,
        })
    }

    /// Another lake directory `dir/NAME` whose `tarn init` joins this lake (its catalog and
    /// storage), as a second machine would; `init` is what that `tarn init` printed.
    pub fn join(&self, name: &str) -> (Self, Run) {
        let other = Self {
            place: self.place.clone(),
            lake: self.path(name),
        };
        let init = other.raw(other.init_args(&other.lake)).ok();
        (other, init)
    }

    pub fn backend(&self) -> Backend {
        self.place.backend
    }

    /// The configuration the lake was made with.
    pub fn config(&self) -> &tarn::LakeConfig {
        &self.place.config
    }

    /// `init DIR` plus the options that make this backend's lake: none for the local
    /// default, `--catalog/--storage/--s3-endpoint/--s3-allow-http` for the remote one.
    pub fn init_args(&self, dir: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["init".into(), dir.into()];
        if self.backend() == Backend::Remote {
            let c = self.config();
            args.extend(["--catalog".into(), c.catalog.clone().into()]);
            args.extend(["--storage".into(), c.storage.clone().into()]);
            if let Some(e) = &c.s3.endpoint {
                args.extend(["--s3-endpoint".into(), e.into()]);
            }
            if c.s3.allow_http == Some(true) {
                args.push("--s3-allow-http".into());
            }
        }
        args
    }

    /// PostgreSQL + S3.
    pub fn is_remote(&self) -> bool {
        self.backend() == Backend::Remote
    }

    /// The temporary directory around the lake (inputs and outputs go here).
    pub fn dir(&self) -> &Path {
        self.place.tmp.path()
    }

    /// A path beside the lake (for inputs and outputs).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    pub fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, contents).expect("write input file");
        p
    }

    /// `tarn ARGS` with no `--lake`, run in the temporary directory.
    pub fn raw<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        let out = tarn_cmd(self.dir()).args(&args).output().expect("run tarn");
        Run::from_output(args, out)
    }

    /// `tarn ARGS` with no `--lake`, with environment variables set (`Some`) or removed
    /// (`None`) for this process only (wrong credentials, say).
    pub fn raw_env<I, S>(&self, args: I, env: &[(&str, Option<&str>)]) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        let mut cmd = tarn_cmd(self.dir());
        for (k, v) in env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let out = cmd.args(&args).output().expect("run tarn");
        Run::from_output(args, out)
    }

    /// `tarn --lake LAKE ARGS` with environment variables set or removed, as [`Self::raw_env`].
    pub fn run_env<I, S>(&self, args: I, env: &[(&str, Option<&str>)]) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.raw_env(self.args(args), env)
    }

    /// The arguments of `tarn --lake LAKE ARGS`.
    pub fn args<I, S>(&self, args: I) -> Vec<OsString>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut all: Vec<OsString> = vec!["--lake".into(), self.lake.clone().into_os_string()];
        all.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        all
    }

    /// `tarn --lake LAKE ARGS`.
    pub fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.raw(self.args(args))
    }

    /// `tarn --lake LAKE ARGS` with `input` on stdin.
    pub fn run_stdin<I, S>(&self, args: I, input: &str) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        use std::io::Write;
        let args = self.args(args);
        let mut child = tarn_cmd(self.dir())
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tarn");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("write stdin");
        drop(stdin);
        Run::from_output(args, child.wait_with_output().expect("wait"))
    }

    /// Starts `tarn --lake LAKE ARGS` with piped output.
    pub fn spawn<I, S>(&self, args: I) -> (Vec<OsString>, Child)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args = self.args(args);
        let child = tarn_cmd(self.dir())
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tarn");
        (args, child)
    }

    /// `tarn --json log URI`, newest first.
    pub fn log(&self, uri: &str) -> Vec<Value> {
        let run = self.run(["--json", "log", uri]).ok();
        match run.json() {
            Value::Array(a) => a,
            other => panic!("log --json is not an array: {other}"),
        }
    }

    /// `tarn read URI --format csv` (plus extra arguments), as text.
    pub fn read_csv(&self, uri: &str, extra: &[&str]) -> String {
        let mut args = vec!["read", uri, "--format", "csv"];
        args.extend_from_slice(extra);
        self.run(args).ok().stdout()
    }

    /// Every file of the lake's storage (the local `data/` directory, including the
    /// temporary `NAME#N` files a killed local writer leaves, or the S3 prefix), as paths
    /// relative to the storage root, sorted.
    pub fn data_files(&self) -> Vec<String> {
        tarn_testkit::runtime()
            .block_on(self.place.files())
            .into_iter()
            .collect()
    }

    /// Puts `bytes` at `path` (relative to the storage root) in the lake's storage, beside
    /// tarn: a file a writer left without committing it.
    pub fn plant_file(&self, path: &str, bytes: Vec<u8>) {
        let c = self.config();
        let location = c
            .storage_location(&self.place.dir)
            .expect("storage location");
        let store =
            tarn_store::DataStore::open(&location, &c.s3_settings(), false).expect("open store");
        tarn_testkit::runtime()
            .block_on(store.put(path, bytes.into()))
            .unwrap_or_else(|e| panic!("put {path}: {e}"));
    }

    /// The lake's visible state: `ls --json`; `log --json`, `branches --json` (each branch's
    /// head, parent, fork point and creating commit) and `tags --json` of each dataset; and
    /// the data files.
    pub fn fingerprint(&self, datasets: &[&str]) -> String {
        let mut s = self.run(["--json", "ls"]).ok().stdout();
        for d in datasets {
            s.push_str(&self.run(["--json", "log", d]).ok().stdout());
            s.push_str(&self.run(["--json", "branches", d]).ok().stdout());
            s.push_str(&self.run(["--json", "tags", d]).ok().stdout());
        }
        s.push_str(&self.data_files().join("\n"));
        s
    }
}

/// Turns `fn name(lake: TestLake)` test bodies into one test per backend,
/// `sqlite_local::name` and `postgres_s3::name`; the remote one skips (with a message) when
/// the servers are not configured.
#[macro_export]
macro_rules! lake_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite_local {
            $(#[test]
            fn $name() {
                let lake = $crate::common::TestLake::new();
                super::$name(lake)
            })*
        }
        mod postgres_s3 {
            $(#[test]
            fn $name() {
                if let Some(lake) = $crate::common::TestLake::on($crate::common::Backend::Remote) {
                    super::$name(lake)
                }
            })*
        }
    };
}

pub fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(root, &p, out);
        } else {
            out.push(p.strip_prefix(root).unwrap_or(&p).display().to_string());
        }
    }
}

/// Every file and directory under `dir`, relative, sorted (to show nothing appeared).
pub fn tree(dir: &Path) -> Vec<String> {
    fn go(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap_or(&p).display().to_string());
            if p.is_dir() {
                go(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    go(dir, dir, &mut out);
    out.sort();
    out
}

/// One `ts,id,v` row. `ts` is milliseconds since the Unix epoch; `v` is `id + 0.5` unless
/// set otherwise (never integral, so text inputs always infer a float column).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    pub ts_ms: i64,
    pub id: i64,
    pub v: f64,
}

impl Row {
    pub fn new(ts_ms: i64, id: i64) -> Self {
        Self {
            ts_ms,
            id,
            v: id as f64 + 0.5,
        }
    }

    /// The CSV line `tarn read --format csv` prints for this row.
    pub fn csv(&self) -> String {
        format!("{},{},{}", rfc3339_ms(self.ts_ms), self.id, self.v)
    }

    pub fn json(&self) -> String {
        format!(
            r#"{{"ts":"{}","id":{},"v":{}}}"#,
            rfc3339_ms(self.ts_ms),
            self.id,
            self.v
        )
    }
}

/// 2024-01-01T00:00:00Z in milliseconds.
pub const BASE_MS: i64 = 1_704_067_200_000;

/// A CSV file with the `ts,id,v` header, rows in the given order.
pub fn csv_text(rows: &[Row]) -> String {
    let mut s = String::with_capacity(rows.len() * 40 + 8);
    s.push_str("ts,id,v\n");
    for r in rows {
        s.push_str(&r.csv());
        s.push('\n');
    }
    s
}

/// JSON lines, rows in the given order.
pub fn jsonl_text(rows: &[Row]) -> String {
    let mut s = String::new();
    for r in rows {
        s.push_str(&r.json());
        s.push('\n');
    }
    s
}

/// `tarn read --format csv --columns id` for these rows.
pub fn id_csv(rows: &[Row]) -> String {
    let mut s = String::from("id\n");
    for r in rows {
        s.push_str(&r.id.to_string());
        s.push('\n');
    }
    s
}

/// The ordered merge of SPEC §3 without duplicates_on: the new rows, stably sorted by `ts`,
/// go after every existing row with an equal `ts`.
pub fn merge(existing: &mut Vec<Row>, new: &[Row]) {
    existing.extend_from_slice(new);
    existing.sort_by_key(|r| r.ts_ms); // stable
}

/// RFC 3339 in UTC the way arrow prints `timestamp[ns, UTC]`: seconds, then `.fff` only
/// when the milliseconds are not zero, then `Z`.
pub fn rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let base = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    );
    if milli == 0 {
        format!("{base}Z")
    } else {
        format!("{base}.{milli:03}Z")
    }
}

/// Howard Hinnant's days-from-civil inverse.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A small deterministic RNG (xorshift64*), so failures replay with the same seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, n)`.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

/// The `version` fields of a `log --json` answer, in its order.
pub fn versions(log: &[Value]) -> Vec<u64> {
    log.iter()
        .map(|e| {
            e["version"]
                .as_u64()
                .unwrap_or_else(|| panic!("log entry without a version: {e}"))
        })
        .collect()
}

#[test]
fn rfc3339_matches_known_instants() {
    assert_eq!(rfc3339_ms(BASE_MS), "2024-01-01T00:00:00Z");
    assert_eq!(
        rfc3339_ms(BASE_MS + 59 * 86_400_000 + 5_007),
        "2024-02-29T00:00:05.007Z"
    );
    assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339_ms(951_782_400_000 + 1), "2000-02-29T00:00:00.001Z");
}
