//! Test support: isolated workspaces and runs of the real binary whose
//! failures show the command, its output and the files involved.
#![allow(dead_code)]

pub mod lab_site;
pub mod png;
pub mod postgres;
pub mod serve;
pub mod sshd;

use std::fmt::Write as _;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub const EXAMPLE_HYPERVISORS: &str = include_str!("../../hypervisors.example.txt");
pub const EXAMPLE_CREDENTIALS: &str = include_str!("../../credentials.example.yaml");

/// Every secret value of the example credentials file.
pub const EXAMPLE_SECRETS: &[&str] = &[
    "example-api-token",
    "0123456789abcdef0123456789abcdef01234567",
    "example-openstack-password",
    "example-alertmanager-password",
    "example-scc-password",
];

pub fn running_as_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A private temporary folder holding the input files of one test, and
/// another for the binary's own temporary files (its `TMPDIR`): what a run
/// killed with -9 leaves there (SSH control folders) goes with the test.
pub struct Workspace {
    dir: tempfile::TempDir,
    tmp: tempfile::TempDir,
}

impl Workspace {
    /// An empty workspace (mode 0700).
    pub fn empty() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        Workspace { dir, tmp: tempfile::tempdir().expect("temp dir") }
    }

    /// A workspace with the example files as `hypervisors.txt` and `credentials.yaml` (0600).
    pub fn with_examples() -> Self {
        let ws = Self::empty();
        ws.write("hypervisors.txt", EXAMPLE_HYPERVISORS);
        ws.write_secret("credentials.yaml", EXAMPLE_CREDENTIALS);
        ws
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.file(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    pub fn write_secret(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.write(name, contents);
        self.chmod(name, 0o600);
        path
    }

    pub fn chmod(&self, name: &str, mode: u32) {
        std::fs::set_permissions(self.file(name), std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Every file under the workspace, relative, sorted.
    pub fn files(&self) -> Vec<String> {
        let mut found = Vec::new();
        collect_files(self.path(), self.path(), &mut found);
        found.sort();
        found
    }

    /// The text of every file under `dir` (relative to the workspace), joined.
    pub fn read_all(&self, dir: &str) -> String {
        let mut text = String::new();
        let mut files = Vec::new();
        collect_files(self.path(), &self.file(dir), &mut files);
        for file in files {
            text.push_str(&std::fs::read_to_string(self.file(&file)).unwrap_or_default());
        }
        text
    }

    /// The binary with this workspace as its folder and its files as inputs.
    pub fn command(&self, args: &[&str]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hvmigrate"));
        command.current_dir(self.path()).env("NO_COLOR", "1").env("TMPDIR", self.tmp.path());
        command.env_remove("RUST_LOG").args(args);
        Run { command, workspace: self.path().to_owned() }
    }

    /// As [`Self::command`], adding `--allow-root` when the tests run as root.
    /// The flag comes first, so that it never lands after a `--` (`vm exec`).
    pub fn hvmigrate(&self, args: &[&str]) -> Run {
        if running_as_root() {
            let mut all = vec!["--allow-root"];
            all.extend_from_slice(args);
            return self.command(&all);
        }
        self.command(args)
    }
}

fn collect_files(root: &Path, dir: &Path, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(root, &path, found);
        } else {
            found.push(path.strip_prefix(root).unwrap().display().to_string());
        }
    }
}

pub struct Run {
    pub command: Command,
    workspace: PathBuf,
}

/// A run started with [`Run::start`].
pub struct Running {
    pub child: Child,
    stdout: std::thread::JoinHandle<Vec<u8>>,
    stderr: std::thread::JoinHandle<Vec<u8>>,
    run: Run,
}

impl Running {
    /// Whether it has ended.
    pub fn ended(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_some()
    }

    /// Waits for it to end.
    pub fn finish(mut self) -> Outcome {
        let status = self.child.wait().expect("wait");
        let output = Output { status, stdout: self.stdout.join().unwrap(), stderr: self.stderr.join().unwrap() };
        self.run.outcome(output)
    }
}

/// What a finished run produced.
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    report: String,
}

impl Run {
    pub fn arg(mut self, arg: &str) -> Self {
        self.command.arg(arg);
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.command.env(key, value);
        self
    }

    pub fn run(mut self) -> Outcome {
        let output = self.command.output().expect("the binary runs");
        self.outcome(output)
    }

    /// Starts the run in the background, its output kept: for tests that act while it runs.
    pub fn start(mut self) -> Running {
        self.command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = self.command.spawn().expect("the binary starts");
        // Read while it runs, so that a full pipe never blocks it.
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut bytes);
                }
                bytes
            })
        };
        let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
        let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
        Running { child, stdout, stderr, run: self }
    }

    fn outcome(&self, output: Output) -> Outcome {
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let code = output.status.code().unwrap_or(-1);
        let mut report = String::new();
        let args: Vec<_> = self.command.get_args().map(|arg| arg.to_string_lossy().into_owned()).collect();
        let _ = writeln!(report, "command: hvmigrate {}", args.join(" "));
        let _ = writeln!(report, "in: {}", self.workspace.display());
        let _ = writeln!(report, "exit code: {code}");
        let _ = writeln!(report, "--- stdout\n{stdout}--- stderr\n{stderr}--- files");
        let mut files = Vec::new();
        collect_files(&self.workspace, &self.workspace, &mut files);
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(self.workspace.join(&file)).unwrap_or_else(|_| "(binary)".into());
            let _ = writeln!(report, "== {file}\n{}", text.lines().take(40).collect::<Vec<_>>().join("\n"));
        }
        Outcome { code, stdout, stderr, report }
    }

    /// Runs and checks the exit code, showing everything if it differs.
    pub fn expect_code(self, code: i32) -> Outcome {
        let outcome = self.run();
        assert_eq!(outcome.code, code, "unexpected exit code\n{}", outcome.report);
        outcome
    }
}

impl Outcome {
    /// Asserts that stderr holds `needle`, showing everything if not.
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(self.stderr.contains(needle), "stderr lacks {needle:?}\n{}", self.report);
        self
    }

    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(self.stdout.contains(needle), "stdout lacks {needle:?}\n{}", self.report);
        self
    }

    pub fn report(&self) -> &str {
        &self.report
    }
}
