//! The simulated shell of each host reached over SSH: it parses the command
//! line like `bash -c` would and runs each command against the world model,
//! with the output and exit codes of the real tools.
//!
//! The whole command line runs under one short lock of the world (no I/O and
//! no waiting inside), so a command sees and leaves a consistent site.

mod aquilon;
mod builtins;
mod disks;
mod fs;
mod hypervisor;
pub mod jobs;
mod kayobe;
mod libvirt_guest;
pub mod parse;
mod reinstall;
mod text;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::world::{HostShell, WorldState};
use parse::{Node, Part, Redirect, RedirectKind, Word};

pub use reinstall::{
    fill_base_fstab, ReinstallError, KOLLA_COMPUTE_ID_PATH, KOLLA_NOVA_COMPUTE_LOG, NOVA_NO_NODE_IDENTITY,
    TARGET_OS_VERSION,
};

/// Which kind of machine a shell runs on, by host name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Machine {
    Hypervisor(String),
    /// The host where `aq` and `netbox2aquilon` run.
    Aquilon(String),
    /// The host where `kayobe` and `ansible-playbook` run.
    Kayobe(String),
}

impl Machine {
    pub fn name(&self) -> &str {
        match self {
            Machine::Hypervisor(name) | Machine::Aquilon(name) | Machine::Kayobe(name) => name,
        }
    }
}

impl WorldState {
    /// The name of the Aquilon host (in the site's domain).
    pub fn aquilon_host_name(&self) -> String {
        format!("aquilon.{}.example.org", self.site)
    }

    /// The name of the Kayobe host (in the site's domain).
    pub fn kayobe_host_name(&self) -> String {
        format!("kayobe.{}.example.org", self.site)
    }

    /// Every machine reachable over SSH: the hypervisors, then the Aquilon and Kayobe hosts.
    pub fn machines(&self) -> Vec<Machine> {
        let mut machines: Vec<Machine> = self.hosts.iter().map(|host| Machine::Hypervisor(host.fqdn.clone())).collect();
        machines.push(Machine::Aquilon(self.aquilon_host_name()));
        machines.push(Machine::Kayobe(self.kayobe_host_name()));
        machines
    }

    /// The shell state (files, history) of a machine.
    pub fn machine_shell(&self, machine: &Machine) -> Option<&HostShell> {
        match machine {
            Machine::Hypervisor(fqdn) => self.host(fqdn).map(|host| &host.shell),
            Machine::Aquilon(name) | Machine::Kayobe(name) => self.service_hosts.get(name),
        }
    }

    pub fn machine_shell_mut(&mut self, machine: &Machine) -> Option<&mut HostShell> {
        match machine {
            Machine::Hypervisor(fqdn) => self.host_mut(fqdn).map(|host| &mut host.shell),
            Machine::Aquilon(name) | Machine::Kayobe(name) => self.service_hosts.get_mut(name),
        }
    }
}

/// What one command line did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub status: u32,
    /// Time the commands would take (`sleep`), for the caller to wait out.
    pub delay: Duration,
}

/// Who runs the command line, and how sudo behaves for them.
#[derive(Clone, Debug)]
pub struct Login {
    pub user: String,
    /// The password `sudo` asks for; `None`: sudo without password (NOPASSWD).
    pub sudo_password: Option<String>,
}

/// Runs one command line (an SSH exec request) as `login` on `machine`, and
/// records it in the machine's history.
pub fn run(world: &mut WorldState, machine: &Machine, login: &Login, line: &str, stdin: &[u8]) -> Outcome {
    // What background processes did meanwhile is there for this command to see.
    world.advance_jobs();
    if let Some(shell) = world.machine_shell_mut(machine) {
        shell.history.push(requested_command(line).to_owned());
    }
    let mut shell = Shell::new(world, machine.clone(), login);
    let mut io = Io { stdin: stdin.to_vec(), ..Io::default() };
    let status = shell.run_script(line, &mut io);
    Outcome { stdout: io.stdout, stderr: io.stderr, status: status as u32 & 0xff, delay: shell.delay }
}

/// hvmigrate starts every command as `echo hvmigrate-pid:$$; exec COMMAND`,
/// to learn the remote process to stop if it times out.
const PID_REPORT: &str = "echo hvmigrate-pid:$$; exec ";

/// The command a line asks for, without hvmigrate's process-id report: what
/// the history lists and what decides whether the command reads its input.
pub fn requested_command(line: &str) -> &str {
    line.strip_prefix(PID_REPORT).unwrap_or(line)
}

/// The three streams of a command. Output is collected, then sent.
#[derive(Debug, Default)]
pub struct Io {
    pub stdin: Vec<u8>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Io {
    pub fn out(&mut self, text: &str) {
        self.stdout.extend_from_slice(text.as_bytes());
    }

    pub fn err(&mut self, text: &str) {
        self.stderr.extend_from_slice(text.as_bytes());
    }

    pub fn stdin_text(&self) -> String {
        String::from_utf8_lossy(&self.stdin).into_owned()
    }
}

/// The interpreter's state for one command line.
pub struct Shell<'w> {
    pub world: &'w mut WorldState,
    pub machine: Machine,
    /// The effective user (root under sudo).
    pub user: String,
    pub login: Login,
    pub env: BTreeMap<String, String>,
    /// `$0`, `$1`, ...
    pub positional: Vec<String>,
    pub status: i32,
    /// Set by `exit`: stops the current script.
    exiting: Option<i32>,
    /// The name in error messages (`bash`, or `sh` under `sh -c`).
    pub program: String,
    pub delay: Duration,
    depth: u32,
    /// The background process this shell runs, if it is one.
    job: Option<jobs::JobClock>,
    /// `$!`: the pid of the last background process.
    last_background: Option<u32>,
}

impl<'w> Shell<'w> {
    fn new(world: &'w mut WorldState, machine: Machine, login: &Login) -> Self {
        let home = if login.user == "root" { "/root".to_owned() } else { format!("/home/{}", login.user) };
        let env = BTreeMap::from([
            ("HOME".to_owned(), home.clone()),
            ("USER".to_owned(), login.user.clone()),
            ("LOGNAME".to_owned(), login.user.clone()),
            ("PWD".to_owned(), home),
            ("PATH".to_owned(), "/usr/local/bin:/usr/bin:/usr/local/sbin:/usr/sbin".to_owned()),
            ("SHELL".to_owned(), "/bin/bash".to_owned()),
            ("HOSTNAME".to_owned(), machine.name().to_owned()),
        ]);
        Shell {
            world,
            machine,
            user: login.user.clone(),
            login: login.clone(),
            env,
            positional: vec!["bash".into()],
            status: 0,
            exiting: None,
            program: "bash".into(),
            delay: Duration::ZERO,
            depth: 0,
            job: None,
            last_background: None,
        }
    }

    pub fn is_root(&self) -> bool {
        self.user == "root"
    }

    /// Parses and runs a script; a syntax error is reported like bash does (status 2).
    pub fn run_script(&mut self, script: &str, io: &mut Io) -> i32 {
        self.depth += 1;
        if self.depth > 16 {
            io.err(&format!("{}: maximum nesting level exceeded\n", self.program));
            self.depth -= 1;
            return 2;
        }
        let status = match parse::parse(script) {
            Ok(node) => {
                let status = self.exec(&node, io);
                self.exiting.take().unwrap_or(status)
            }
            Err(err) => {
                io.err(&format!("{}: -c: line 1: {err}\n", self.program));
                2
            }
        };
        self.depth -= 1;
        self.status = status;
        status
    }

    fn exec(&mut self, node: &Node, io: &mut Io) -> i32 {
        if let Some(code) = self.exiting {
            return code;
        }
        let status = match node {
            Node::List(items) => {
                let mut status = 0;
                for item in items {
                    status = self.exec(item, io);
                    if self.exiting.is_some() {
                        break;
                    }
                }
                status
            }
            Node::AndOr { first, rest } => {
                let mut status = self.exec(first, io);
                for (and, next) in rest {
                    if self.exiting.is_some() {
                        break;
                    }
                    if (*and && status == 0) || (!*and && status != 0) {
                        status = self.exec(next, io);
                    }
                }
                status
            }
            Node::Pipeline { negate, commands } => {
                let mut input = std::mem::take(&mut io.stdin);
                let mut status = 0;
                for (index, command) in commands.iter().enumerate() {
                    let mut stage = Io { stdin: input, ..Io::default() };
                    status = self.exec(command, &mut stage);
                    io.stderr.append(&mut stage.stderr);
                    if index + 1 == commands.len() {
                        io.stdout.append(&mut stage.stdout);
                        input = Vec::new();
                    } else {
                        input = stage.stdout;
                    }
                }
                if *negate {
                    i32::from(status == 0)
                } else {
                    status
                }
            }
            Node::If { branches, otherwise } => {
                let mut status = 0;
                let mut taken = false;
                for (condition, body) in branches {
                    if self.exec(condition, io) == 0 {
                        status = self.exec(body, io);
                        taken = true;
                        break;
                    }
                }
                if !taken {
                    if let Some(body) = otherwise {
                        status = self.exec(body, io);
                    }
                }
                status
            }
            Node::Group { body, redirects, subshell } => {
                let saved_env = subshell.then(|| self.env.clone());
                let status = self.with_redirects(redirects, io, |shell, io| shell.exec(body, io));
                if let Some(env) = saved_env {
                    self.env = env;
                    if let Some(code) = self.exiting.take() {
                        return code;
                    }
                }
                status
            }
            Node::Simple { assignments, words, redirects } => self.simple(assignments, words, redirects, io),
            Node::Background(body) => self.run_in_background(body),
        };
        self.status = status;
        status
    }

    fn simple(&mut self, assignments: &[(String, Word)], words: &[Word], redirects: &[Redirect], io: &mut Io) -> i32 {
        let mut argv = Vec::new();
        for word in words {
            argv.extend(self.expand(word, io));
        }
        let mut values = Vec::new();
        for (name, value) in assignments {
            let value = self.expand_joined(value, io);
            values.push((name.clone(), value));
        }
        if argv.is_empty() {
            for (name, value) in values {
                self.env.insert(name, value);
            }
            return self.with_redirects(redirects, io, |_, _| 0);
        }
        // `VAR=value command`: the variables are for that command only.
        let saved: Vec<(String, Option<String>)> =
            values.iter().map(|(name, _)| (name.clone(), self.env.get(name).cloned())).collect();
        for (name, value) in values {
            self.env.insert(name, value);
        }
        let status = self.with_redirects(redirects, io, |shell, io| shell.command(&argv, io));
        for (name, old) in saved {
            match old {
                Some(value) => self.env.insert(name, value),
                None => self.env.remove(&name),
            };
        }
        status
    }

    /// Runs `body` with the redirections applied to its streams.
    fn with_redirects(
        &mut self,
        redirects: &[Redirect],
        io: &mut Io,
        body: impl FnOnce(&mut Self, &mut Io) -> i32,
    ) -> i32 {
        #[derive(Clone, PartialEq)]
        enum Sink {
            Out,
            Err,
            Null,
            File { path: String, append: bool },
        }
        let mut out = Sink::Out;
        let mut err = Sink::Err;
        let mut stdin = None;
        for redirect in redirects {
            let target = self.expand_joined(&redirect.target, io);
            match (redirect.fd, redirect.kind) {
                (0, RedirectKind::Read) => match self.read_file(&target) {
                    Ok(text) => stdin = Some(text.into_bytes()),
                    Err(problem) => {
                        io.err(&format!("{}: {target}: {}\n", self.program, problem.message()));
                        return 1;
                    }
                },
                (fd, RedirectKind::Write | RedirectKind::Append) => {
                    let sink = match target.as_str() {
                        "/dev/null" => Sink::Null,
                        "/dev/stdout" => Sink::Out,
                        "/dev/stderr" => Sink::Err,
                        _ => {
                            if let Err(problem) = self.check_writable(&target) {
                                io.err(&format!("{}: {target}: {}\n", self.program, problem.message()));
                                return 1;
                            }
                            let append = redirect.kind == RedirectKind::Append;
                            if !append {
                                // `>` truncates before the command runs.
                                let _ = self.write_file(&target, "", false);
                            }
                            Sink::File { path: target.clone(), append: true }
                        }
                    };
                    if fd == 2 {
                        err = sink;
                    } else {
                        out = sink;
                    }
                }
                (fd, RedirectKind::Duplicate) => {
                    let source = if target == "2" { err.clone() } else { out.clone() };
                    if fd == 2 {
                        err = source;
                    } else {
                        out = source;
                    }
                }
                (_, RedirectKind::Read) => {}
            }
        }
        let mut inner = Io { stdin: stdin.unwrap_or_else(|| std::mem::take(&mut io.stdin)), ..Io::default() };
        let status = body(self, &mut inner);
        for (bytes, sink) in [(inner.stdout, out), (inner.stderr, err)] {
            match sink {
                Sink::Out => io.stdout.extend(bytes),
                Sink::Err => io.stderr.extend(bytes),
                Sink::Null => {}
                Sink::File { path, append } => {
                    if let Err(problem) = self.write_file(&path, &String::from_utf8_lossy(&bytes), append) {
                        io.err(&format!("{}: {path}: {}\n", self.program, problem.message()));
                    }
                }
            }
        }
        status
    }

    /// Runs one command with its arguments.
    pub fn command(&mut self, argv: &[String], io: &mut Io) -> i32 {
        let Some(first) = argv.first() else { return 0 };
        // `/usr/sbin/mdadm` runs `mdadm`.
        let name = if first.starts_with('/') { first.rsplit('/').next().unwrap_or(first) } else { first.as_str() };
        let args = &argv[1..];
        if let Some(status) = builtins::run(self, name, args, io) {
            return status;
        }
        let machine_status = match self.machine.clone() {
            Machine::Hypervisor(fqdn) => {
                hypervisor::run(self, &fqdn, name, args, io).or_else(|| disks::run(self, &fqdn, name, args, io))
            }
            Machine::Aquilon(_) => aquilon::run(self, name, args, io),
            Machine::Kayobe(_) => kayobe::run(self, name, args, io),
        };
        match machine_status {
            Some(status) => status,
            None => {
                io.err(&format!("{}: {first}: command not found\n", self.program));
                127
            }
        }
    }

    /// Expands a word into fields (`"$@"` can give several, an empty unquoted expansion none).
    fn expand(&mut self, word: &Word, io: &mut Io) -> Vec<String> {
        let only_at = word.iter().all(|part| match part {
            Part::Text { text, quoted: true } => text.is_empty(),
            Part::Var { name, quoted: true } => name == "@",
            _ => false,
        }) && word.iter().any(|part| matches!(part, Part::Var { .. }));
        if only_at {
            return self.positional.iter().skip(1).cloned().collect();
        }
        let mut fields = Vec::new();
        let mut current = String::new();
        let mut has_field = false;
        for part in word {
            match part {
                Part::Text { text, .. } => {
                    current.push_str(text);
                    has_field = true;
                }
                Part::Home => {
                    current.push_str(&self.env.get("HOME").cloned().unwrap_or_default());
                    has_field = true;
                }
                Part::Var { name, quoted } => {
                    let value = self.variable(name);
                    self.push_expansion(&value, *quoted, &mut fields, &mut current, &mut has_field);
                }
                Part::Command { script, quoted } => {
                    let mut inner = Io::default();
                    self.run_nested(script, &mut inner);
                    io.stderr.append(&mut inner.stderr);
                    let value = String::from_utf8_lossy(&inner.stdout).trim_end_matches('\n').to_owned();
                    self.push_expansion(&value, *quoted, &mut fields, &mut current, &mut has_field);
                }
            }
        }
        if has_field {
            fields.push(current);
        }
        fields
    }

    fn push_expansion(
        &self,
        value: &str,
        quoted: bool,
        fields: &mut Vec<String>,
        current: &mut String,
        has_field: &mut bool,
    ) {
        if quoted {
            current.push_str(value);
            *has_field = true;
            return;
        }
        let starts_blank = value.starts_with(char::is_whitespace);
        let ends_blank = value.ends_with(char::is_whitespace);
        let mut pieces = value.split_whitespace().peekable();
        if pieces.peek().is_none() {
            return;
        }
        if starts_blank && *has_field {
            fields.push(std::mem::take(current));
        }
        while let Some(piece) = pieces.next() {
            current.push_str(piece);
            *has_field = true;
            if pieces.peek().is_some() {
                fields.push(std::mem::take(current));
            }
        }
        if ends_blank {
            fields.push(std::mem::take(current));
            *has_field = false;
        }
    }

    /// A word expanded into one string (redirection targets, assignments).
    fn expand_joined(&mut self, word: &Word, io: &mut Io) -> String {
        let mut text = String::new();
        for part in word {
            match part {
                Part::Text { text: piece, .. } => text.push_str(piece),
                Part::Home => text.push_str(&self.env.get("HOME").cloned().unwrap_or_default()),
                Part::Var { name, .. } => text.push_str(&self.variable(name)),
                Part::Command { script, .. } => {
                    let mut inner = Io::default();
                    self.run_nested(script, &mut inner);
                    io.stderr.append(&mut inner.stderr);
                    text.push_str(String::from_utf8_lossy(&inner.stdout).trim_end_matches('\n'));
                }
            }
        }
        text
    }

    fn variable(&self, name: &str) -> String {
        match name {
            "@" | "*" => self.positional.iter().skip(1).cloned().collect::<Vec<_>>().join(" "),
            "#" => self.positional.len().saturating_sub(1).to_string(),
            "?" => self.status.to_string(),
            "$" => "4242".into(),
            "!" => self.last_background.map(|pid| pid.to_string()).unwrap_or_default(),
            _ if name.chars().all(|c| c.is_ascii_digit()) => {
                name.parse::<usize>().ok().and_then(|n| self.positional.get(n)).cloned().unwrap_or_default()
            }
            _ => {
                // `${NAME:-default}`
                if let Some((var, default)) = name.split_once(":-") {
                    return self.env.get(var).filter(|v| !v.is_empty()).cloned().unwrap_or_else(|| default.to_owned());
                }
                self.env.get(name).cloned().unwrap_or_default()
            }
        }
    }

    /// Runs a nested script (`$(...)`) in a copy of the variables.
    fn run_nested(&mut self, script: &str, io: &mut Io) -> i32 {
        let saved_env = self.env.clone();
        let status = self.run_script(script, io);
        self.env = saved_env;
        status
    }

    /// `sh -c SCRIPT [NAME [ARGS...]]`: a new shell with its own positional parameters.
    pub fn run_child_shell(&mut self, program: &str, script: &str, name_and_args: &[String], io: &mut Io) -> i32 {
        let saved = (self.positional.clone(), self.env.clone(), self.program.clone());
        self.positional = if name_and_args.is_empty() { vec![program.to_owned()] } else { name_and_args.to_vec() };
        self.program = program.to_owned();
        let status = self.run_script(script, io);
        (self.positional, self.env, self.program) = saved;
        status
    }

    /// Runs argv as another user (sudo, su), then comes back.
    pub fn run_as(&mut self, user: &str, argv: &[String], io: &mut Io) -> i32 {
        let saved = (self.user.clone(), self.env.clone());
        self.user = user.to_owned();
        let home = if user == "root" { "/root".to_owned() } else { format!("/home/{user}") };
        self.env.insert("HOME".into(), home);
        self.env.insert("USER".into(), user.to_owned());
        let status = self.command(argv, io);
        (self.user, self.env) = saved;
        status
    }

    /// Ends the current script with this status (`exit`).
    pub fn exit(&mut self, code: i32) {
        self.exiting = Some(code);
    }

    /// Seeds for generated identifiers (filesystem and array UUIDs) that
    /// differ between runs of the same command on the same host.
    pub fn fresh_seed(&self, label: &str) -> u64 {
        let history = self.world.machine_shell(&self.machine).map(|shell| shell.history.len()).unwrap_or(0);
        crate::ssh::keys::fnv1a(format!("{}:{label}:{history}", self.machine.name()).as_bytes()) ^ self.world.seed
    }
}
