//! Commands every simulated host has: shell builtins and coreutils-like
//! tools (`echo`, `printf`, `cat`, `grep`, `awk`, `test`, `mkdir`, `tee`,
//! `sudo`, `sh -c`, ...).

use super::text::{printf, unescape, Pattern};
use super::{Io, Shell};

/// Runs a generic command; `None` when the name is not one of them.
pub fn run(shell: &mut Shell<'_>, name: &str, args: &[String], io: &mut Io) -> Option<i32> {
    let status = match name {
        "true" | ":" => 0,
        "false" => 1,
        // Files here carry no modes, so a mask only needs to be valid.
        "umask" => match args.first() {
            Some(mask) if u32::from_str_radix(mask, 8).is_err() => {
                io.err(&format!("{}: umask: {mask}: octal number out of range\n", shell.program));
                1
            }
            Some(_) => 0,
            None => {
                io.out("0022\n");
                0
            }
        },
        "echo" => echo(args, io),
        "printf" => match args.split_first() {
            Some((format, rest)) => {
                io.out(&printf(format, rest));
                0
            }
            None => {
                io.err("printf: usage: printf [-v var] format [arguments]\n");
                2
            }
        },
        "cat" => cat(shell, args, io),
        "grep" => grep(shell, args, io),
        "awk" => awk(shell, args, io),
        "head" | "tail" => head_tail(shell, name, args, io),
        "wc" => wc(shell, args, io),
        "test" => test(shell, args, io),
        "[" => match args.split_last() {
            Some((last, rest)) if last == "]" => test(shell, rest, io),
            _ => {
                io.err(&format!("{}: [: missing `]'\n", shell.program));
                2
            }
        },
        "mkdir" => mkdir(shell, args, io),
        "chmod" | "chown" | "chgrp" | "restorecon" => touch_existing(shell, name, args, io),
        "touch" => touch(shell, args, io),
        "rm" => rm(shell, args, io),
        "mv" => mv(shell, args, io),
        "tee" => tee(shell, args, io),
        "ls" => ls(shell, args, io),
        "sudo" => sudo(shell, args, io),
        "su" => su(shell, args, io),
        "sh" | "bash" => child_shell(shell, name, args, io),
        "exit" => {
            let code = args.first().and_then(|a| a.parse().ok()).unwrap_or(shell.status);
            shell.exit(code);
            code
        }
        "cd" => {
            let target = args.first().cloned().unwrap_or_else(|| shell.env.get("HOME").cloned().unwrap_or_default());
            if shell.is_dir(&target) {
                let path = shell.absolute(&target);
                shell.env.insert("PWD".into(), path);
                0
            } else {
                io.err(&format!("{}: cd: {target}: No such file or directory\n", shell.program));
                1
            }
        }
        "pwd" => {
            io.out(&format!("{}\n", shell.cwd()));
            0
        }
        "source" | "." => source(shell, args, io),
        // The Kayobe runner's script shifts its own arguments away.
        "shift" => {
            let count: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(1);
            if count >= shell.positional.len() {
                1
            } else {
                shell.positional.drain(1..=count);
                0
            }
        }
        "dirname" => match args.first() {
            Some(path) => {
                let trimmed = path.trim_end_matches('/');
                let parent = match trimmed.rfind('/') {
                    Some(0) => "/",
                    Some(at) => &trimmed[..at],
                    None if path.starts_with('/') => "/",
                    None => ".",
                };
                io.out(&format!("{parent}\n"));
                0
            }
            None => {
                io.err("dirname: missing operand\n");
                1
            }
        },
        "export" => {
            for arg in args {
                if let Some((key, value)) = arg.split_once('=') {
                    shell.env.insert(key.into(), value.into());
                }
            }
            0
        }
        "hostname" => {
            let name = shell.machine.name().to_owned();
            if args.iter().any(|a| a == "-I") {
                // The addresses of the host's interfaces (its eth0's, as Aquilon records it).
                let ips: Vec<String> = match &shell.machine {
                    super::Machine::Hypervisor(fqdn) => shell
                        .world
                        .host(fqdn)
                        .into_iter()
                        .flat_map(|host| host.aquilon.interfaces.iter())
                        .filter(|nic| !nic.name.starts_with("bmc"))
                        .filter_map(|nic| nic.ip.clone())
                        .collect(),
                    _ => vec!["127.0.0.1".into()],
                };
                io.out(&format!("{} \n", ips.join(" ")));
                return Some(0);
            }
            let short = name.split('.').next().unwrap_or_default().to_owned();
            io.out(&format!("{}\n", if args.iter().any(|a| a == "-s") { short } else { name }));
            0
        }
        "whoami" => {
            io.out(&format!("{}\n", shell.user));
            0
        }
        "id" => {
            if shell.is_root() {
                io.out("uid=0(root) gid=0(root) groups=0(root)\n");
            } else {
                let user = &shell.user;
                io.out(&format!("uid=1000({user}) gid=1000({user}) groups=1000({user}),10(wheel)\n"));
            }
            0
        }
        // The simulated host has no process to replace: run the command, then end the script.
        "exec" => {
            let status = if args.is_empty() { 0 } else { shell.command(args, io) };
            if !args.is_empty() {
                shell.exit(status);
            }
            status
        }
        // A new session, immune to hangups: the process is the same to the site.
        "setsid" | "nohup" => match args.iter().position(|arg| !arg.starts_with('-')) {
            Some(start) => shell.command(&args[start..], io),
            None => {
                io.err(&format!("{name}: missing operand\n"));
                if name == "nohup" {
                    125
                } else {
                    1
                }
            }
        },
        "kill" => super::jobs::kill(shell, args, io),
        "sleep" => {
            let secs: f64 = args.first().and_then(|a| a.trim_end_matches('s').parse().ok()).unwrap_or(0.0);
            shell.delay += std::time::Duration::from_secs_f64(secs.clamp(0.0, 3600.0));
            0
        }
        "command" | "which" | "type" => {
            let names: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
            let mut status = 0;
            for wanted in names {
                if shell.knows(wanted) {
                    io.out(&format!("/usr/bin/{wanted}\n"));
                } else {
                    if name == "which" {
                        io.err(&format!("/usr/bin/which: no {wanted} in (/usr/local/bin:/usr/bin)\n"));
                    }
                    status = 1;
                }
            }
            status
        }
        "env" if args.is_empty() => {
            for (key, value) in &shell.env {
                io.out(&format!("{key}={value}\n"));
            }
            0
        }
        "date" => {
            io.out(&format!("{}\n", jiff::Timestamp::now().strftime("%a %b %e %H:%M:%S UTC %Y")));
            0
        }
        _ => return None,
    };
    Some(status)
}

/// Commands every host has (for `command -v` and `which`).
const COMMON: [&str; 43] = [
    "true",
    "umask",
    "false",
    "echo",
    "printf",
    "cat",
    "grep",
    "awk",
    "head",
    "tail",
    "wc",
    "test",
    "[",
    "mkdir",
    "chmod",
    "chown",
    "chgrp",
    "restorecon",
    "touch",
    "rm",
    "mv",
    "tee",
    "ls",
    "sudo",
    "su",
    "sh",
    "bash",
    "exit",
    "cd",
    "pwd",
    "source",
    "shift",
    "dirname",
    "export",
    "hostname",
    "whoami",
    "id",
    "sleep",
    "env",
    "date",
    "setsid",
    "nohup",
    "kill",
];

impl Shell<'_> {
    /// Whether a command exists on this host.
    fn knows(&self, name: &str) -> bool {
        let specific: &[&str] = match self.machine {
            super::Machine::Hypervisor(_) => &[
                "virsh",
                "lsblk",
                "lspci",
                "dnf",
                "yum",
                "mdadm",
                "mkfs.xfs",
                "sgdisk",
                "blkid",
                "findmnt",
                "mount",
                "umount",
                "systemctl",
                "uname",
                "partprobe",
                "wipefs",
                "ip",
                "ipmitool",
            ],
            super::Machine::Aquilon(_) => &["aq", "netbox2aquilon", "myaq-get-model"],
            super::Machine::Kayobe(_) => &["kayobe", "ansible-playbook"],
        };
        COMMON.contains(&name) || specific.contains(&name)
    }
}

fn echo(args: &[String], io: &mut Io) -> i32 {
    let mut newline = true;
    let mut escapes = false;
    let mut words = args;
    while let Some(first) = words.first() {
        match first.as_str() {
            "-n" => newline = false,
            "-e" => escapes = true,
            "-ne" | "-en" => {
                newline = false;
                escapes = true;
            }
            _ => break,
        }
        words = &words[1..];
    }
    let text = words.join(" ");
    io.out(&if escapes { unescape(&text) } else { text });
    if newline {
        io.out("\n");
    }
    0
}

/// The inputs of a filter: named files, or standard input.
fn inputs(shell: &Shell<'_>, tool: &str, files: &[String], io: &mut Io) -> (Vec<(String, String)>, bool) {
    if files.is_empty() || files == ["-"] {
        return (vec![("(standard input)".into(), io.stdin_text())], true);
    }
    let mut found = Vec::new();
    let mut ok = true;
    for file in files {
        match shell.read_file(file) {
            Ok(text) => found.push((file.clone(), text)),
            Err(problem) => {
                io.err(&format!("{tool}: {file}: {}\n", problem.message()));
                ok = false;
            }
        }
    }
    (found, ok)
}

fn cat(shell: &mut Shell<'_>, args: &[String], io: &mut Io) -> i32 {
    let files: Vec<String> = args.iter().filter(|a| !a.starts_with('-') || *a == "-").cloned().collect();
    let (texts, ok) = inputs(shell, "cat", &files, io);
    for (_, text) in texts {
        io.out(&text);
    }
    i32::from(!ok)
}

fn grep(shell: &mut Shell<'_>, args: &[String], io: &mut Io) -> i32 {
    let (mut quiet, mut invert, mut whole_line, mut fixed, mut ignore_case, mut count, mut only_matching) =
        (false, false, false, false, false, false, false);
    let mut silent_errors = false;
    let mut pattern: Option<String> = None;
    let mut files = Vec::new();
    let mut index = 0;
    let mut options_done = false;
    while index < args.len() {
        let arg = &args[index];
        if arg == "--" {
            options_done = true;
        } else if !options_done && arg == "-e" {
            index += 1;
            pattern = args.get(index).cloned();
        } else if !options_done && arg.starts_with('-') && arg.len() > 1 {
            for flag in arg[1..].chars() {
                match flag {
                    'q' => quiet = true,
                    'v' => invert = true,
                    'x' => whole_line = true,
                    'F' => fixed = true,
                    'i' => ignore_case = true,
                    'c' => count = true,
                    'o' => only_matching = true,
                    's' => silent_errors = true,
                    'E' | 'w' | 'n' | 'H' | 'h' => {}
                    other => {
                        io.err(&format!(
                            "grep: invalid option -- '{other}'\nUsage: grep [OPTION]... PATTERNS [FILE]...\n"
                        ));
                        return 2;
                    }
                }
            }
        } else if pattern.is_none() {
            pattern = Some(arg.clone());
        } else {
            files.push(arg.clone());
        }
        index += 1;
    }
    let Some(pattern) = pattern else {
        io.err("Usage: grep [OPTION]... PATTERNS [FILE]...\nTry 'grep --help' for more information.\n");
        return 2;
    };
    let mut scratch = Io::default();
    let (texts, ok) = inputs(shell, "grep", &files, if silent_errors { &mut scratch } else { io });
    if silent_errors {
        io.stdin = std::mem::take(&mut scratch.stdin);
    }
    let compiled = (!fixed).then(|| {
        let regex = if whole_line {
            format!("^{}$", pattern.trim_start_matches('^').trim_end_matches('$'))
        } else {
            pattern.clone()
        };
        Pattern::new(&regex, ignore_case)
    });
    let fold = |text: &str| if ignore_case { text.to_lowercase() } else { text.to_owned() };
    let matches = |line: &str| -> bool {
        let found = match &compiled {
            Some(regex) => regex.is_match(line),
            None if whole_line => fold(line) == fold(&pattern),
            None => fold(line).contains(&fold(&pattern)),
        };
        found != invert
    };
    let mut total = 0;
    let several = texts.len() > 1;
    for (name, text) in &texts {
        let mut in_file = 0;
        for line in text.lines() {
            if matches(line) {
                in_file += 1;
                if !quiet && !count {
                    let prefix = if several { format!("{name}:") } else { String::new() };
                    if only_matching && fixed {
                        io.out(&format!("{prefix}{pattern}\n"));
                    } else {
                        io.out(&format!("{prefix}{line}\n"));
                    }
                }
            }
        }
        if count && !quiet {
            io.out(&format!("{}{in_file}\n", if several { format!("{name}:") } else { String::new() }));
        }
        total += in_file;
    }
    if quiet && total > 0 {
        return 0;
    }
    if !ok {
        2
    } else {
        i32::from(total == 0)
    }
}

/// `awk [-F SEP] '[/regex/] {print $N, $M}'`: the programs tools pipe into.
fn awk(shell: &mut Shell<'_>, args: &[String], io: &mut Io) -> i32 {
    let mut separator: Option<String> = None;
    let mut program: Option<String> = None;
    let mut files = Vec::new();
    let mut index = 0;
    while index < args.len() {
        let arg = &args[index];
        if let Some(rest) = arg.strip_prefix("-F") {
            separator = Some(if rest.is_empty() {
                index += 1;
                args.get(index).cloned().unwrap_or_default()
            } else {
                rest.to_owned()
            });
        } else if program.is_none() {
            program = Some(arg.clone());
        } else {
            files.push(arg.clone());
        }
        index += 1;
    }
    let Some(program) = program else {
        io.err("usage: awk [-F fs][-v var=value][prog | -f progfile][file ...]\n");
        return 2;
    };
    let program = program.trim();
    let (filter, action) = match program.strip_prefix('/') {
        Some(rest) => match rest.split_once('/') {
            Some((regex, action)) => (Some(Pattern::new(regex, false)), action.trim()),
            None => (None, program),
        },
        None => (None, program),
    };
    let Some(body) = action.strip_prefix('{').and_then(|a| a.strip_suffix('}')).map(str::trim) else {
        io.err(&format!("awk: the simulated awk runs only '{{print ...}}' programs, not: {program}\n"));
        return 2;
    };
    let Some(fields) = body.strip_prefix("print").map(str::trim) else {
        io.err(&format!("awk: the simulated awk runs only '{{print ...}}' programs, not: {program}\n"));
        return 2;
    };
    let (texts, ok) = inputs(shell, "awk", &files, io);
    for (_, text) in texts {
        for line in text.lines() {
            if filter.as_ref().is_some_and(|regex| !regex.is_match(line)) {
                continue;
            }
            let columns: Vec<&str> = match &separator {
                Some(sep) if sep.len() == 1 || !sep.trim().is_empty() => line.split(sep.as_str()).collect(),
                _ => line.split_whitespace().collect(),
            };
            let values: Vec<String> = if fields.is_empty() {
                vec![line.to_owned()]
            } else {
                fields
                    .split(',')
                    .map(|field| {
                        let field = field.trim();
                        match field.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
                            Some(0) => line.to_owned(),
                            Some(n) => columns.get(n - 1).map(|s| (*s).to_owned()).unwrap_or_default(),
                            None if field == "$NF" => columns.last().map(|s| (*s).to_owned()).unwrap_or_default(),
                            None => field.trim_matches('"').to_owned(),
                        }
                    })
                    .collect()
            };
            io.out(&format!("{}\n", values.join(" ")));
        }
    }
    i32::from(!ok) * 2
}

fn head_tail(shell: &mut Shell<'_>, name: &str, args: &[String], io: &mut Io) -> i32 {
    let mut count = 10usize;
    // `-c N`: bytes instead of lines (`tail -c 1 file` is its last byte).
    let mut bytes: Option<usize> = None;
    let mut files = Vec::new();
    let mut index = 0;
    while index < args.len() {
        let arg = &args[index];
        if arg == "-n" {
            index += 1;
            count = args.get(index).and_then(|n| n.parse().ok()).unwrap_or(10);
        } else if arg == "-c" {
            index += 1;
            bytes = args.get(index).and_then(|n| n.parse().ok());
        } else if let Some(n) = arg.strip_prefix("-c").filter(|n| !n.is_empty()) {
            bytes = n.parse().ok();
        } else if let Some(n) = arg.strip_prefix("-n").or_else(|| arg.strip_prefix('-')).filter(|n| !n.is_empty()) {
            count = n.parse().unwrap_or(10);
        } else {
            files.push(arg.clone());
        }
        index += 1;
    }
    let (texts, ok) = inputs(shell, name, &files, io);
    for (_, text) in texts {
        if let Some(count) = bytes {
            let raw = text.as_bytes();
            let chosen =
                if name == "head" { &raw[..count.min(raw.len())] } else { &raw[raw.len().saturating_sub(count)..] };
            io.stdout.extend_from_slice(chosen);
            continue;
        }
        let lines: Vec<&str> = text.lines().collect();
        let chosen =
            if name == "head" { &lines[..count.min(lines.len())] } else { &lines[lines.len().saturating_sub(count)..] };
        for line in chosen {
            io.out(&format!("{line}\n"));
        }
    }
    i32::from(!ok)
}

fn wc(shell: &mut Shell<'_>, args: &[String], io: &mut Io) -> i32 {
    let files: Vec<String> = args.iter().filter(|a| !a.starts_with('-')).cloned().collect();
    let (texts, ok) = inputs(shell, "wc", &files, io);
    for (name, text) in texts {
        let lines = text.lines().count();
        if args.iter().any(|a| a == "-l") {
            if files.is_empty() {
                io.out(&format!("{lines}\n"));
            } else {
                io.out(&format!("{lines} {name}\n"));
            }
        } else {
            io.out(&format!("{lines:>7} {:>7} {:>7}\n", text.split_whitespace().count(), text.len()));
        }
    }
    i32::from(!ok)
}

/// `test` / `[`: file tests, string and integer comparisons, `!`.
fn test(shell: &mut Shell<'_>, args: &[String], io: &mut Io) -> i32 {
    let truth = |value: bool| i32::from(!value);
    match args {
        [] => 1,
        [bang, rest @ ..] if bang == "!" => {
            let status = test(shell, rest, io);
            if status > 1 {
                status
            } else {
                1 - status
            }
        }
        [value] => truth(!value.is_empty()),
        [op, operand] => match op.as_str() {
            "-d" => truth(shell.is_dir(operand)),
            "-e" => truth(shell.exists(operand)),
            "-f" => truth(!shell.is_dir(operand) && shell.read_file(operand).is_ok()),
            "-s" => truth(shell.read_file(operand).is_ok_and(|text| !text.is_empty())),
            "-r" => {
                truth(shell.read_file(operand).is_ok() || (shell.is_dir(operand) && shell.list_dir(operand).is_ok()))
            }
            "-w" => truth(shell.check_writable(operand).is_ok()),
            "-b" => truth(shell.is_block_device(operand)),
            "-x" => truth(shell.is_dir(operand)),
            "-z" => truth(operand.is_empty()),
            "-n" => truth(!operand.is_empty()),
            _ => {
                io.err(&format!("{}: test: {op}: unary operator expected\n", shell.program));
                2
            }
        },
        [left, op, right] => {
            let numbers = || -> Option<(i64, i64)> { Some((left.trim().parse().ok()?, right.trim().parse().ok()?)) };
            match op.as_str() {
                "=" | "==" => truth(left == right),
                "!=" => truth(left != right),
                "-eq" | "-ne" | "-lt" | "-le" | "-gt" | "-ge" => match numbers() {
                    Some((a, b)) => truth(match op.as_str() {
                        "-eq" => a == b,
                        "-ne" => a != b,
                        "-lt" => a < b,
                        "-le" => a <= b,
                        "-gt" => a > b,
                        _ => a >= b,
                    }),
                    None => {
                        io.err(&format!("{}: test: integer expression expected\n", shell.program));
                        2
                    }
                },
                _ => {
                    io.err(&format!("{}: test: {op}: binary operator expected\n", shell.program));
                    2
                }
            }
        }
        _ => {
            io.err(&format!("{}: test: too many arguments\n", shell.program));
            2
        }
    }
}

fn mkdir(shell: &mut Shell<'_>, args: &[String], io: &mut Io) -> i32 {
    let mut parents = false;
    let mut paths = Vec::new();
    let mut index = 0;
    while index < args.len() {
        match args[index].as_str() {
            "-p" | "--parents" => parents = true,
            "-m" | "--mode" => index += 1,
            "-pm" => {
                parents = true;
                index += 1;
            }
            flag if flag.starts_with("-m") || flag.starts_with("--mode=") => {}
            "-v" => {}
            path => paths.push(path.to_owned()),
        }
        index += 1;
    }
    if paths.is_empty() {
        io.err("mkdir: missing operand\nTry 'mkdir --help' for more information.\n");
        return 1;
    }
    let mut status = 0;
    for path in paths {
        let absolute = shell.absolute(&path);
        if shell.is_dir(&absolute) {
            if !parents {
                io.err(&format!("mkdir: cannot create directory ‘{path}’: File exists\n"));
                status = 1;
            }
            continue;
        }
        if shell.exists(&absolute) {
            io.err(&format!("mkdir: cannot create directory ‘{path}’: File exists\n"));
            status = 1;
            continue;
        }
        let chain: Vec<String> = if parents {
            let mut chain = Vec::new();
            let mut current = String::new();
            for part in absolute.split('/').filter(|p| !p.is_empty()) {
                current = format!("{current}/{part}");
                chain.push(current.clone());
            }
            chain
        } else {
            vec![absolute]
        };
        for dir in chain {
            if shell.is_dir(&dir) {
                continue;
            }
            if let Err(problem) = shell.make_dir(&dir) {
                io.err(&format!("mkdir: cannot create directory ‘{path}’: {}\n", problem.message()));
                status = 1;
                break;
            }
        }
    }
    status
}

/// `chmod`/`chown`: the lab has no permission bits; the path must exist and be the user's to change.
fn touch_existing(shell: &mut Shell<'_>, name: &str, args: &[String], io: &mut Io) -> i32 {
    let operands: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let paths = if name == "restorecon" { &operands[..] } else { operands.get(1..).unwrap_or_default() };
    if paths.is_empty() {
        io.err(&format!("{name}: missing operand\n"));
        return 1;
    }
    let mut status = 0;
    for path in paths {
        if !shell.exists(path) {
            io.err(&format!("{name}: cannot access '{path}': No such file or directory\n"));
            status = 1;
        } else if !shell.is_root() && shell.check_writable(path).is_err() && !shell.is_dir(path) {
            io.err(&format!("{name}: changing permissions of '{path}': Operation not permitted\n"));
            status = 1;
        } else if let (Some(value), true) = (operands.first(), matches!(name, "chown" | "chmod")) {
            // Kept so that tests can see what owner and mode a file was given.
            let absolute = shell.absolute(path);
            let machine = shell.machine.clone();
            if let Some(state) = shell.world.machine_shell_mut(&machine) {
                let map = if name == "chown" { &mut state.owners } else { &mut state.modes };
                map.insert(absolute, (*value).clone());
            }
        }
    }
    status
}

fn touch(shell: &mut Shell<'_>, args: &[String], io: &mut Io) -> i32 {
    let mut status = 0;
    for path in args.iter().filter(|a| !a.starts_with('-')) {
        if shell.exists(path) && !shell.is_dir(path) {
            if shell.check_writable(path).is_err() {
                io.err(&format!("touch: cannot touch '{path}': Permission denied\n"));
                status = 1;
            }
            continue;
        }
        if shell.is_dir(path) {
            continue;
        }
        if let Err(problem) = shell.write_file(path, "", true) {
            io.err(&format!("touch: cannot touch '{path}': {}\n", problem.message()));
            status = 1;
        }
    }
    status
}

fn rm(shell: &mut Shell<'_>, args: &[String], io: &mut Io) -> i32 {
    let force = args.iter().any(|a| a.starts_with('-') && a.contains('f'));
    let mut status = 0;
    for path in args.iter().filter(|a| !a.starts_with('-')) {
        // Globs are not expanded: a pattern matches nothing, which `-f` accepts.
        if let Err(problem) = shell.remove_file(path) {
            if !(force && problem == super::fs::FsError::NotFound) {
                io.err(&format!("rm: cannot remove '{path}': {}\n", problem.message()));
                status = 1;
            }
        }
    }
    status
}

/// `mv SOURCE DEST` of one file (a rename: its owner and mode go with it).
fn mv(shell: &mut Shell<'_>, args: &[String], io: &mut Io) -> i32 {
    let operands: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let [source, dest] = operands[..] else {
        io.err("mv: the simulated host moves one file: mv SOURCE DEST\n");
        return 1;
    };
    let text = match shell.read_file(source) {
        Ok(text) => text,
        Err(problem) => {
            io.err(&format!("mv: cannot stat '{source}': {}\n", problem.message()));
            return 1;
        }
    };
    if let Err(problem) = shell.write_file(dest, &text, false).and_then(|()| shell.remove_file(source)) {
        io.err(&format!("mv: cannot move '{source}' to '{dest}': {}\n", problem.message()));
        return 1;
    }
    let (from, to) = (shell.absolute(source), shell.absolute(dest));
    let machine = shell.machine.clone();
    if let Some(state) = shell.world.machine_shell_mut(&machine) {
        for map in [&mut state.owners, &mut state.modes] {
            if let Some(value) = map.remove(&from) {
                map.insert(to.clone(), value);
            }
        }
    }
    0
}

fn tee(shell: &mut Shell<'_>, args: &[String], io: &mut Io) -> i32 {
    let append = args.iter().any(|a| a == "-a" || a == "--append");
    let input = io.stdin_text();
    let mut status = 0;
    for path in args.iter().filter(|a| !a.starts_with('-')) {
        if let Err(problem) = shell.write_file(path, &input, append) {
            io.err(&format!("tee: {path}: {}\n", problem.message()));
            status = 1;
        }
    }
    io.out(&input);
    status
}

fn ls(shell: &mut Shell<'_>, args: &[String], io: &mut Io) -> i32 {
    let paths: Vec<String> = args.iter().filter(|a| !a.starts_with('-')).cloned().collect();
    let paths = if paths.is_empty() { vec![shell.cwd()] } else { paths };
    let mut status = 0;
    for path in &paths {
        if paths.len() > 1 {
            io.out(&format!("{path}:\n"));
        }
        match shell.list_dir(path) {
            // Not a terminal: one name per line, like `ls` into a pipe.
            Ok(names) => names.iter().for_each(|name| io.out(&format!("{name}\n"))),
            Err(super::fs::FsError::NotDirectory) => io.out(&format!("{path}\n")),
            Err(problem) => {
                let verb = if problem == super::fs::FsError::PermissionDenied { "open directory" } else { "access" };
                io.err(&format!("ls: cannot {verb} '{path}': {}\n", problem.message()));
                status = 2;
            }
        }
    }
    status
}

/// `sudo [-n] [-S] [-u root] [-E] [-H] [--] command...`
fn sudo(shell: &mut Shell<'_>, args: &[String], io: &mut Io) -> i32 {
    let mut non_interactive = false;
    let mut from_stdin = false;
    let mut target = "root".to_owned();
    let mut prompt: Option<String> = None;
    let mut index = 0;
    while index < args.len() && args[index].starts_with('-') {
        match args[index].as_str() {
            "--" => {
                index += 1;
                break;
            }
            "-u" => {
                index += 1;
                target = args.get(index).cloned().unwrap_or_default();
            }
            "-p" | "--prompt" => {
                index += 1;
                prompt = args.get(index).cloned();
            }
            flags => {
                for flag in flags[1..].chars() {
                    match flag {
                        'n' => non_interactive = true,
                        'S' => from_stdin = true,
                        'E' | 'H' | 'i' | 'k' => {}
                        other => {
                            io.err(&format!("sudo: invalid option -- '{other}'\nusage: sudo -h | -K | -k | -V\n"));
                            return 1;
                        }
                    }
                }
            }
        }
        index += 1;
    }
    let command = &args[index..];
    if command.is_empty() {
        io.err("usage: sudo -h | -K | -k | -V\nusage: sudo [-AbEHknPS] [-u user] [command [arg ...]]\n");
        return 1;
    }
    if !shell.is_root() {
        if let Some(password) = shell.login.sudo_password.clone() {
            if from_stdin {
                let prompt = prompt.unwrap_or_else(|| format!("[sudo] password for {}: ", shell.user));
                io.err(&prompt);
                let input = io.stdin_text();
                let (line, rest) = input.split_once('\n').unwrap_or((input.as_str(), ""));
                if line != password {
                    io.err("Sorry, try again.\nsudo: 1 incorrect password attempt\n");
                    return 1;
                }
                io.stdin = rest.as_bytes().to_vec();
            } else if non_interactive {
                io.err("sudo: a password is required\n");
                return 1;
            } else {
                io.err("sudo: a terminal is required to read the password; either use the -S option to read from standard input or configure an askpass helper\nsudo: a password is required\n");
                return 1;
            }
        }
    }
    shell.run_as(&target, command, io)
}

/// `su [-] [root] -c COMMAND`
fn su(shell: &mut Shell<'_>, args: &[String], io: &mut Io) -> i32 {
    let mut script = None;
    let mut user = "root".to_owned();
    let mut index = 0;
    while index < args.len() {
        match args[index].as_str() {
            "-c" | "--command" => {
                index += 1;
                script = args.get(index).cloned();
            }
            "-" | "-l" | "--login" => {}
            other => user = other.to_owned(),
        }
        index += 1;
    }
    if !shell.is_root() {
        io.err("Password: su: Authentication failure\n");
        return 1;
    }
    match script {
        Some(script) => shell.run_as(&user, &["bash".into(), "-c".into(), script], io),
        None => 0,
    }
}

/// `sh -c SCRIPT [NAME ARGS...]`, `bash -c ...`, `bash -lc ...`; `sh FILE` runs a file.
fn child_shell(shell: &mut Shell<'_>, name: &str, args: &[String], io: &mut Io) -> i32 {
    let mut index = 0;
    let mut script = None;
    while index < args.len() {
        let arg = &args[index];
        if arg.starts_with('-') && arg.contains('c') {
            index += 1;
            script = args.get(index).cloned();
            index += 1;
            break;
        } else if arg.starts_with('-') {
            index += 1;
        } else {
            break;
        }
    }
    match script {
        Some(script) => shell.run_child_shell(name, &script, &args[index.min(args.len())..], io),
        None => match args.get(index) {
            Some(file) => match shell.read_file(file) {
                Ok(text) => shell.run_child_shell(name, &text, &args[index..], io),
                Err(problem) => {
                    io.err(&format!("{name}: {file}: {}\n", problem.message()));
                    127
                }
            },
            None => {
                // A shell reading its script from standard input.
                let script = io.stdin_text();
                io.stdin.clear();
                shell.run_child_shell(name, &script, &[], io)
            }
        },
    }
}

fn source(shell: &mut Shell<'_>, args: &[String], io: &mut Io) -> i32 {
    let Some(file) = args.first() else {
        io.err(&format!("{}: source: filename argument required\n", shell.program));
        return 2;
    };
    match shell.read_file(file) {
        Ok(text) => shell.run_script(&text, io),
        Err(problem) => {
            io.err(&format!("{}: {file}: {}\n", shell.program, problem.message()));
            1
        }
    }
}
