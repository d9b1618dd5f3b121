//! A private PostgreSQL cluster for tests: `initdb` into a temporary folder
//! from the Debian binaries (`pg_config --bindir`, else
//! /usr/lib/postgresql/*/bin), listening on 127.0.0.1 on a free port, one per
//! test process, each test with a database of its own. A watcher stops the
//! cluster and removes its folder when the test process ends, however it
//! ends. initdb refuses root: as root, the cluster runs as the `postgres`
//! user the Debian package made (through `runuser`).
//!
//! Used by the library's unit tests and the benchmarks too (`#[path]`), so
//! std only. Tests run the cluster without fsync; a benchmark asks for a
//! durable one ([`durable`]), as a production server is.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The superuser of test clusters (trust authentication on 127.0.0.1 only).
pub const USER: &str = "hvmigrate";

pub struct Cluster {
    bindir: PathBuf,
    folder: PathBuf,
    port: u16,
    run_as: Option<String>,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static DATABASES: AtomicUsize = AtomicUsize::new(0);
static DURABLE: AtomicBool = AtomicBool::new(false);

/// Before the first [`database`]: the cluster syncs every commit to disk
/// (`fsync` on, PostgreSQL's default), so that what a commit costs is measured.
pub fn durable() {
    DURABLE.store(true, Ordering::SeqCst);
}

/// A new empty database on this process's cluster, as a `postgres://` URL;
/// `None`, after saying why on stderr, when this machine has no PostgreSQL
/// binaries. Any other failure to start one is a test failure.
pub fn database(test: &str) -> Option<String> {
    let cluster = match CLUSTER.get_or_init(Cluster::start) {
        Ok(cluster) => cluster,
        Err(reason) if reason.starts_with("no PostgreSQL") => {
            eprintln!("SKIPPED on PostgreSQL ({test}): {reason}");
            return None;
        }
        Err(reason) => panic!("the test PostgreSQL cluster did not start: {reason}"),
    };
    let name = format!("t{}_{}", DATABASES.fetch_add(1, Ordering::SeqCst), std::process::id());
    cluster.run("createdb", &["-h", "127.0.0.1", "-p", &cluster.port.to_string(), "-U", USER, &name]).unwrap();
    Some(format!("postgres://{USER}@127.0.0.1:{}/{name}?sslmode=disable", cluster.port))
}

/// The folder of the PostgreSQL programs, if this machine has them.
pub fn bindir() -> Option<PathBuf> {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.flatten().map(|entry| entry.path().join("bin")).collect())
        .unwrap_or_default();
    debian.sort_by_key(|dir| {
        dir.parent().and_then(|version| version.file_name()?.to_str()?.parse::<u32>().ok()).unwrap_or(0)
    });
    from_pg_config.into_iter().chain(debian.into_iter().rev()).find(|dir| dir.join("initdb").is_file())
}

impl Cluster {
    fn start() -> Result<Cluster, String> {
        let bindir = bindir().ok_or("no PostgreSQL binaries (install the postgresql package)")?;
        // SAFETY: geteuid cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let folder = std::env::temp_dir().join(format!("hvmigrate-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&folder);
        std::fs::create_dir_all(&folder).map_err(|err| format!("{}: {err}", folder.display()))?;
        let run_as = if root {
            let owner = Command::new("id").args(["-u", "postgres"]).output().map_err(|err| err.to_string())?;
            let group = Command::new("id").args(["-g", "postgres"]).output().map_err(|err| err.to_string())?;
            let number = |out: std::process::Output| String::from_utf8_lossy(&out.stdout).trim().parse::<u32>().ok();
            let (Some(uid), Some(gid)) = (number(owner), number(group)) else {
                return Err("running as root, and there is no postgres user to run the cluster as".into());
            };
            std::os::unix::fs::chown(&folder, Some(uid), Some(gid)).map_err(|err| err.to_string())?;
            Some("postgres".to_owned())
        } else {
            None
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|err| err.to_string())?
            .port();
        let cluster = Cluster { bindir, folder, port, run_as };
        let data = cluster.folder.join("data");
        let data = data.to_str().ok_or("temp folder not UTF-8")?;
        cluster.run("initdb", &["-D", data, "-U", USER, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"])?;
        cluster.watch();
        let fsync = if DURABLE.load(Ordering::SeqCst) { "on" } else { "off" };
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync={fsync} -c max_connections=200",
            cluster.folder.display()
        );
        let log = cluster.folder.join("log");
        cluster.run("pg_ctl", &["-D", data, "-o", &options, "-l", log.to_str().unwrap_or("log"), "-w", "start"])?;
        Ok(cluster)
    }

    /// Runs a PostgreSQL program (as the cluster's user); its output in the error.
    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let path = self.bindir.join(program);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&path);
                command
            }
            None => Command::new(&path),
        };
        let out = command
            .args(args)
            .current_dir(&self.folder)
            .stdin(Stdio::null())
            .output()
            .map_err(|err| format!("{}: {err}", path.display()))?;
        if out.status.success() {
            return Ok(());
        }
        let log = std::fs::read_to_string(self.folder.join("log")).unwrap_or_default();
        Err(format!(
            "{} {} exited {}\n{}{}\n--- server log\n{log}",
            path.display(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }

    /// A watcher that stops the cluster and removes its folder once this
    /// process is gone (the cluster lives in a static: no drop ever runs).
    fn watch(&self) {
        let pg_ctl = self.bindir.join("pg_ctl");
        let data = self.folder.join("data");
        let stop = match &self.run_as {
            Some(user) => {
                format!("runuser -u {user} -- '{}' -D '{}' -m immediate stop", pg_ctl.display(), data.display())
            }
            None => format!("'{}' -D '{}' -m immediate stop", pg_ctl.display(), data.display()),
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop} >/dev/null 2>&1; rm -rf '{folder}'",
            pid = std::process::id(),
            folder = self.folder.display()
        );
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    pub fn folder(&self) -> &Path {
        &self.folder
    }
}
