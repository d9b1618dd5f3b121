//! Block devices and filesystems: `lsblk`, `blkid`, `findmnt`, `mkfs.xfs`,
//! `mount`, `mdadm`, `sgdisk`, acting on the host's `disks` tree. A RAID
//! array appears under each of its member partitions, as `lsblk` shows it.

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::text::human_size;
use super::{Io, Shell};
use crate::world::{uuid, Disk, Host};

pub fn run(shell: &mut Shell<'_>, fqdn: &str, name: &str, args: &[String], io: &mut Io) -> Option<i32> {
    shell.world.host(fqdn)?;
    let status = match name {
        "lsblk" => lsblk(shell, fqdn, args, io),
        "blkid" => blkid(shell, fqdn, args, io),
        "findmnt" => findmnt(shell, fqdn, args, io),
        "mkfs.xfs" => mkfs_xfs(shell, fqdn, args, io),
        "mkfs" => match args.iter().position(|a| a == "-t") {
            Some(at) if args.get(at + 1).map(String::as_str) == Some("xfs") => {
                let rest: Vec<String> =
                    args.iter().enumerate().filter(|(i, _)| *i != at && *i != at + 1).map(|(_, a)| a.clone()).collect();
                mkfs_xfs(shell, fqdn, &rest, io)
            }
            _ => {
                io.err("mkfs: the simulated host only has mkfs.xfs\n");
                1
            }
        },
        "mount" => mount(shell, fqdn, args, io),
        "umount" => umount(shell, fqdn, args, io),
        "mdadm" => mdadm(shell, fqdn, args, io),
        "sgdisk" => sgdisk(shell, fqdn, args, io),
        "partprobe" | "udevadm" => 0,
        "wipefs" => wipefs(shell, fqdn, args, io),
        _ => return None,
    };
    Some(status)
}

/// The device of that name anywhere in the tree.
pub fn find<'a>(disks: &'a [Disk], name: &str) -> Option<&'a Disk> {
    disks.iter().find_map(|disk| if disk.name == name { Some(disk) } else { find(&disk.children, name) })
}

/// Every device once, parents first.
pub fn flatten(disks: &[Disk]) -> Vec<&Disk> {
    fn walk<'a>(disks: &'a [Disk], out: &mut Vec<&'a Disk>) {
        for disk in disks {
            if !out.iter().any(|seen| seen.name == disk.name) {
                out.push(disk);
            }
            walk(&disk.children, out);
        }
    }
    let mut out = Vec::new();
    walk(disks, &mut out);
    out
}

/// Applies `change` to every copy of the named device (an array has one per member).
fn for_each_named(disks: &mut [Disk], name: &str, change: &mut dyn FnMut(&mut Disk)) {
    for disk in disks {
        if disk.name == name {
            change(disk);
        }
        for_each_named(&mut disk.children, name, change);
    }
}

/// The devices whose children include `name` (the members of an array).
fn parents_of<'a>(disks: &'a [Disk], name: &str) -> Vec<&'a Disk> {
    flatten(disks).into_iter().filter(|disk| disk.children.iter().any(|child| child.name == name)).collect()
}

fn device_name(path: &str) -> &str {
    path.strip_prefix("/dev/").unwrap_or(path)
}

fn is_array(disk: &Disk) -> bool {
    disk.kind.starts_with("raid")
}

fn major_minor(disks: &[Disk], name: &str) -> String {
    let all = flatten(disks);
    if let Some(rest) = name.strip_prefix("sd") {
        let letter = rest.chars().next().map_or(0, |c| c as u32 - 'a' as u32);
        let part: u32 = rest.trim_start_matches(|c: char| c.is_ascii_alphabetic()).parse().unwrap_or(0);
        return format!("8:{}", letter * 16 + part);
    }
    if let Some(number) = name.strip_prefix("md") {
        return format!("9:{}", number.parse::<u32>().unwrap_or(0));
    }
    let index = all.iter().filter(|d| d.name.starts_with("nvme")).position(|d| d.name == name).unwrap_or(0);
    format!("259:{index}")
}

/// A deterministic identifier for a filesystem or an array.
fn new_uuid(shell: &Shell<'_>, label: &str) -> String {
    let mut rng = StdRng::seed_from_u64(shell.fresh_seed(label));
    uuid(&mut rng)
}

fn mount_options(fstype: &str) -> &'static str {
    match fstype {
        "vfat" => "rw,relatime,fmask=0077,dmask=0077,codepage=437,iocharset=ascii,shortname=winnt,errors=remount-ro",
        _ => "rw,relatime,attr2,inode64,logbufs=8,logbsize=32k,noquota",
    }
}

fn needs_root(shell: &Shell<'_>, tool: &str, device: &str, io: &mut Io) -> bool {
    if shell.is_root() {
        return false;
    }
    match tool {
        "mount" | "umount" => io.err(&format!("{tool}: {device}: must be superuser to use {tool}.\n")),
        "sgdisk" => io.err(&format!(
            "Problem opening {device} for reading! Error is 13.\nYou must run this program as root or use sudo!\n"
        )),
        _ => io.err(&format!("{tool}: cannot open {device}: Permission denied\n")),
    }
    true
}

// ---------------------------------------------------------------- lsblk

/// util-linux 2.32 (Rocky 8) prints JSON values as strings and a MOUNTPOINT
/// column; 2.37 (Rocky 9) has booleans, numbers with `-b` and MOUNTPOINTS.
fn modern_util_linux(host: &Host) -> bool {
    !host.os.version_id.starts_with('8')
}

fn lsblk(shell: &mut Shell<'_>, fqdn: &str, args: &[String], io: &mut Io) -> i32 {
    let Some(host) = shell.world.host(fqdn) else { return 1 };
    let modern = modern_util_linux(host);
    let mount_column = if modern { "MOUNTPOINTS" } else { "MOUNTPOINT" };
    let mut columns: Vec<String> =
        ["NAME", "MAJ:MIN", "RM", "SIZE", "RO", "TYPE", mount_column].iter().map(|s| s.to_string()).collect();
    let (mut json, mut bytes, mut no_header, mut paths, mut no_deps, mut list) =
        (false, false, false, false, false, false);
    let mut devices = Vec::new();
    let mut index = 0;
    while index < args.len() {
        let arg = args[index].as_str();
        let output = |spec: &str, columns: &mut Vec<String>| {
            let names = spec.trim_start_matches('+').split(',').map(|c| c.trim().to_uppercase());
            if spec.starts_with('+') {
                columns.extend(names);
            } else {
                *columns = names.collect();
            }
        };
        match arg {
            "-o" | "--output" => {
                index += 1;
                output(args.get(index).map(String::as_str).unwrap_or(""), &mut columns);
            }
            _ if arg.starts_with("--output=") => output(&arg["--output=".len()..], &mut columns),
            "-f" | "--fs" => {
                columns = ["NAME", "FSTYPE", "LABEL", "UUID", mount_column].iter().map(|s| s.to_string()).collect()
            }
            "--json" => json = true,
            "--bytes" => bytes = true,
            "--noheadings" => no_header = true,
            "--paths" => paths = true,
            "--nodeps" => no_deps = true,
            "--list" => list = true,
            _ if arg.starts_with("--") => {}
            _ if arg.starts_with('-') => {
                for flag in arg[1..].chars() {
                    match flag {
                        'J' => json = true,
                        'b' => bytes = true,
                        'n' => no_header = true,
                        'p' => paths = true,
                        'd' => no_deps = true,
                        'l' | 'r' | 'P' => list = true,
                        'a' | 'e' | 'i' => {}
                        'o' => {
                            index += 1;
                            output(args.get(index).map(String::as_str).unwrap_or(""), &mut columns);
                        }
                        'f' => {
                            columns = ["NAME", "FSTYPE", "LABEL", "UUID", mount_column]
                                .iter()
                                .map(|s| s.to_string())
                                .collect()
                        }
                        other => {
                            io.err(&format!(
                                "lsblk: invalid option -- '{other}'\nTry 'lsblk --help' for more information.\n"
                            ));
                            return 1;
                        }
                    }
                }
            }
            device => devices.push(device.to_owned()),
        }
        index += 1;
    }
    const KNOWN: [&str; 16] = [
        "NAME",
        "KNAME",
        "PATH",
        "MAJ:MIN",
        "RM",
        "SIZE",
        "RO",
        "TYPE",
        "FSTYPE",
        "MOUNTPOINT",
        "MOUNTPOINTS",
        "UUID",
        "LABEL",
        "MODEL",
        "SERIAL",
        "PKNAME",
    ];
    if let Some(unknown) = columns.iter().find(|c| !KNOWN.contains(&c.as_str())) {
        io.err(&format!("lsblk: unknown column: {unknown}\n"));
        return 1;
    }
    let mut roots: Vec<&Disk> = Vec::new();
    for device in &devices {
        match find(&host.disks, device_name(device)) {
            Some(disk) => roots.push(disk),
            None => {
                io.err(&format!("lsblk: {device}: not a block device\n"));
                return 32;
            }
        }
    }
    if devices.is_empty() {
        roots = host.disks.iter().collect();
    }
    let ctx = Lsblk { host, modern, bytes, paths };
    if json {
        let mut out = String::from("{\n   \"blockdevices\": [\n");
        let items: Vec<String> = roots.iter().map(|d| ctx.json(d, &columns, 6, no_deps, None)).collect();
        out.push_str(&items.join(",\n"));
        out.push_str("\n   ]\n}\n");
        io.out(&out);
        return 0;
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    for root in &roots {
        ctx.rows(root, &columns, "", "", no_deps, list, None, &mut rows);
    }
    let right_aligned = ["MAJ:MIN", "RM", "SIZE", "RO"];
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).chain([columns[i].len()]).max().unwrap_or(0))
        .collect();
    let mut render = |cells: &[String]| {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let width = widths[i];
            let pad = width.saturating_sub(cell.chars().count());
            if right_aligned.contains(&columns[i].as_str()) {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                if i + 1 < cells.len() {
                    line.push_str(&" ".repeat(pad));
                }
            }
            if i + 1 < cells.len() {
                line.push(' ');
            }
        }
        io.out(&format!("{}\n", line.trim_end()));
    };
    if !no_header {
        render(&columns);
    }
    for row in &rows {
        render(row);
    }
    0
}

struct Lsblk<'a> {
    host: &'a Host,
    modern: bool,
    bytes: bool,
    paths: bool,
}

enum Value {
    Text(Option<String>),
    Flag(bool),
    Number(u64),
    List(Option<String>),
}

impl Lsblk<'_> {
    fn value(&self, disk: &Disk, column: &str, parent: Option<&Disk>) -> Value {
        let name = if self.paths { format!("/dev/{}", disk.name) } else { disk.name.clone() };
        match column {
            "NAME" => Value::Text(Some(name)),
            "KNAME" => Value::Text(Some(disk.name.clone())),
            "PATH" => Value::Text(Some(format!("/dev/{}", disk.name))),
            "PKNAME" => Value::Text(parent.map(|p| p.name.clone())),
            "MAJ:MIN" => Value::Text(Some(major_minor(&self.host.disks, &disk.name))),
            "RM" | "RO" => Value::Flag(false),
            "SIZE" if self.bytes => Value::Number(disk.size_bytes),
            "SIZE" => Value::Text(Some(human_size(disk.size_bytes))),
            "TYPE" => Value::Text(Some(disk.kind.clone())),
            "FSTYPE" => Value::Text(disk.fstype.clone()),
            "MOUNTPOINT" => Value::Text(disk.mountpoint.clone()),
            "MOUNTPOINTS" => Value::List(disk.mountpoint.clone()),
            "UUID" => Value::Text(disk.fs_uuid.clone().filter(|_| disk.fstype.is_some())),
            "MODEL" if disk.kind == "disk" => Value::Text(Some(
                if disk.name.starts_with("nvme") { "SAMSUNG MZQL23T8HCLS-00A07" } else { "PERC H755 Front" }.into(),
            )),
            _ => Value::Text(None),
        }
    }

    fn cell(&self, value: Value) -> String {
        match value {
            Value::Text(text) | Value::List(text) => text.unwrap_or_default(),
            Value::Flag(flag) => u8::from(flag).to_string(),
            Value::Number(n) => n.to_string(),
        }
    }

    fn json_value(&self, value: Value) -> String {
        let text = |t: Option<String>| t.map_or("null".into(), |t| serde_json::Value::String(t).to_string());
        if !self.modern {
            // util-linux 2.32: every value is a string, or null.
            return match value {
                Value::Text(t) | Value::List(t) => text(t),
                Value::Flag(flag) => format!("\"{}\"", u8::from(flag)),
                Value::Number(n) => format!("\"{n}\""),
            };
        }
        match value {
            Value::Text(t) => text(t),
            Value::Flag(flag) => flag.to_string(),
            Value::Number(n) => n.to_string(),
            Value::List(t) => format!("[{}]", text(t)),
        }
    }

    fn json(&self, disk: &Disk, columns: &[String], indent: usize, no_deps: bool, parent: Option<&Disk>) -> String {
        let pad = " ".repeat(indent);
        let fields: Vec<String> = columns
            .iter()
            .map(|c| format!("\"{}\":{}", c.to_lowercase(), self.json_value(self.value(disk, c, parent))))
            .collect();
        let mut out = format!("{pad}{{{}", fields.join(", "));
        if !no_deps && !disk.children.is_empty() {
            let children: Vec<String> =
                disk.children.iter().map(|c| self.json(c, columns, indent + 6, no_deps, Some(disk))).collect();
            out.push_str(&format!(",\n{pad}   \"children\": [\n{}\n{pad}   ]\n{pad}}}", children.join(",\n")));
        } else {
            out.push('}');
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn rows(
        &self,
        disk: &Disk,
        columns: &[String],
        prefix: &str,
        branch: &str,
        no_deps: bool,
        list: bool,
        parent: Option<&Disk>,
        rows: &mut Vec<Vec<String>>,
    ) {
        let row = columns
            .iter()
            .map(|c| {
                let cell = self.cell(self.value(disk, c, parent));
                if c == "NAME" && !list {
                    format!("{prefix}{branch}{cell}")
                } else {
                    cell
                }
            })
            .collect();
        rows.push(row);
        if no_deps {
            return;
        }
        let child_prefix = format!(
            "{prefix}{}",
            if branch == "├─" {
                "│ "
            } else if branch.is_empty() {
                ""
            } else {
                "  "
            }
        );
        for (i, child) in disk.children.iter().enumerate() {
            let branch = if i + 1 == disk.children.len() { "└─" } else { "├─" };
            self.rows(child, columns, &child_prefix, branch, no_deps, list, Some(disk), rows);
        }
    }
}

// ---------------------------------------------------------------- blkid, findmnt

fn blkid_line(disk: &Disk, array_name: Option<&str>) -> Option<String> {
    match (&disk.fstype, &disk.fs_uuid) {
        (Some(fstype), Some(fs_uuid)) if fstype == "linux_raid_member" => Some(format!(
            "/dev/{}: UUID=\"{fs_uuid}\" UUID_SUB=\"{}\" LABEL=\"{}\" TYPE=\"linux_raid_member\" PARTUUID=\"{}\"",
            disk.name,
            fs_uuid,
            array_name.unwrap_or("0"),
            fs_uuid
        )),
        (Some(fstype), Some(fs_uuid)) => {
            let block = if fstype == "xfs" { " BLOCK_SIZE=\"512\"" } else { "" };
            Some(format!("/dev/{}: UUID=\"{fs_uuid}\"{block} TYPE=\"{fstype}\"", disk.name))
        }
        _ if disk.kind == "disk" && !disk.children.iter().all(is_array) => {
            Some(format!("/dev/{}: PTUUID=\"{}\" PTTYPE=\"gpt\"", disk.name, &disk.size_bytes.to_string()[..6]))
        }
        _ if disk.kind == "part" => {
            Some(format!("/dev/{}: PARTUUID=\"{}-01\"", disk.name, &disk.size_bytes.to_string()[..8]))
        }
        _ => None,
    }
}

fn blkid(shell: &mut Shell<'_>, fqdn: &str, args: &[String], io: &mut Io) -> i32 {
    let Some(host) = shell.world.host(fqdn) else { return 1 };
    let mut value_only = false;
    // `-o export`: `KEY=value` lines, a blank line between devices.
    let mut export = false;
    let mut tag: Option<String> = None;
    let mut devices = Vec::new();
    let mut index = 0;
    while index < args.len() {
        match args[index].as_str() {
            "-o" => {
                index += 1;
                value_only = args.get(index).is_some_and(|v| v == "value");
                export = args.get(index).is_some_and(|v| v == "export");
            }
            "-s" => {
                index += 1;
                tag = args.get(index).cloned();
            }
            "-p" | "-c" => {
                if args[index] == "-c" {
                    index += 1;
                }
            }
            other if other.starts_with('-') => {}
            device => devices.push(device.to_owned()),
        }
        index += 1;
    }
    let chosen: Vec<&Disk> = if devices.is_empty() {
        flatten(&host.disks).into_iter().filter(|d| d.fstype.is_some()).collect()
    } else {
        devices.iter().filter_map(|d| find(&host.disks, device_name(d))).collect()
    };
    let mut found = false;
    for disk in chosen {
        let Some(line) = blkid_line(disk, None) else { continue };
        if let Some(tag) = &tag {
            let key = format!(" {tag}=\"");
            let Some(start) = line.find(&key) else { continue };
            let value = &line[start + key.len()..];
            let value = &value[..value.find('"').unwrap_or(value.len())];
            found = true;
            if value_only {
                io.out(&format!("{value}\n"));
            } else {
                io.out(&format!("/dev/{}: {tag}=\"{value}\"\n", disk.name));
            }
            continue;
        }
        if export {
            let pairs = line.split_once(": ").map_or("", |(_, pairs)| pairs);
            let mut text = format!("{}DEVNAME=/dev/{}\n", if found { "\n" } else { "" }, disk.name);
            for pair in pairs.split("\" ").filter(|pair| !pair.is_empty()) {
                text.push_str(&format!("{}\n", pair.trim().replacen("=\"", "=", 1).trim_end_matches('"')));
            }
            found = true;
            io.out(&text);
            continue;
        }
        found = true;
        if value_only {
            let values: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
            io.out(&format!("{}\n", values.join("\n")));
        } else {
            io.out(&format!("{line}\n"));
        }
    }
    if found {
        0
    } else {
        2
    }
}

/// Mounted filesystems: (source device, target, fstype).
fn mounts(host: &Host) -> Vec<(String, String, String)> {
    flatten(&host.disks)
        .into_iter()
        .filter_map(|d| {
            Some((format!("/dev/{}", d.name), d.mountpoint.clone()?, d.fstype.clone().unwrap_or_else(|| "xfs".into())))
        })
        .collect()
}

fn findmnt(shell: &mut Shell<'_>, fqdn: &str, args: &[String], io: &mut Io) -> i32 {
    let Some(host) = shell.world.host(fqdn) else { return 1 };
    let mut columns = vec!["TARGET".to_owned(), "SOURCE".into(), "FSTYPE".into(), "OPTIONS".into()];
    let (mut json, mut no_header) = (false, false);
    let mut wanted: Vec<String> = Vec::new();
    let mut index = 0;
    while index < args.len() {
        let arg = args[index].as_str();
        match arg {
            "-o" | "--output" => {
                index += 1;
                columns = args.get(index).map(|s| s.split(',').map(|c| c.to_uppercase()).collect()).unwrap_or_default();
            }
            "-J" | "--json" => json = true,
            "-n" | "--noheadings" => no_header = true,
            "-T" | "--target" | "-M" | "--mountpoint" | "-S" | "--source" => {
                index += 1;
                if let Some(value) = args.get(index) {
                    wanted.push(value.clone());
                }
            }
            "-no" => {
                no_header = true;
                index += 1;
                columns = args.get(index).map(|s| s.split(',').map(|c| c.to_uppercase()).collect()).unwrap_or_default();
            }
            _ if arg.starts_with('-') => {
                no_header |= arg.contains('n') && !arg.starts_with("--");
                json |= arg.contains('J') && !arg.starts_with("--");
            }
            _ => wanted.push(arg.to_owned()),
        }
        index += 1;
    }
    let fstab = &host.shell.fstab;
    let options_of = |target: &str, fstype: &str| {
        fstab
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                (fields.len() >= 4 && fields[1] == target && !fields[3].contains("defaults"))
                    .then(|| fields[3].to_owned())
            })
            .next()
            .unwrap_or_else(|| mount_options(fstype).to_owned())
    };
    let rows: Vec<Vec<String>> = mounts(host)
        .into_iter()
        .filter(|(source, target, _)| wanted.is_empty() || wanted.iter().any(|w| w == source || w == target))
        .map(|(source, target, fstype)| {
            columns
                .iter()
                .map(|c| match c.as_str() {
                    "TARGET" => target.clone(),
                    "SOURCE" => source.clone(),
                    "FSTYPE" => fstype.clone(),
                    "OPTIONS" => options_of(&target, &fstype),
                    _ => String::new(),
                })
                .collect()
        })
        .collect();
    if rows.is_empty() {
        return 1;
    }
    if json {
        let items: Vec<String> = rows
            .iter()
            .map(|row| {
                let fields: Vec<String> = columns
                    .iter()
                    .zip(row)
                    .map(|(c, v)| format!("\"{}\": {}", c.to_lowercase(), serde_json::Value::String(v.clone())))
                    .collect();
                format!("      {{\n         {}\n      }}", fields.join(",\n         "))
            })
            .collect();
        io.out(&format!("{{\n   \"filesystems\": [\n{}\n   ]\n}}\n", items.join(",\n")));
        return 0;
    }
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| rows.iter().map(|r| r[i].len()).chain([columns[i].len()]).max().unwrap_or(0))
        .collect();
    let render = |cells: &[String]| {
        let line: Vec<String> =
            cells.iter().enumerate().map(|(i, c)| format!("{c:<width$}", width = widths[i])).collect();
        format!("{}\n", line.join(" ").trim_end())
    };
    if !no_header {
        io.out(&render(&columns));
    }
    for row in &rows {
        io.out(&render(row));
    }
    0
}

// ---------------------------------------------------------------- mkfs, mount

fn mkfs_xfs(shell: &mut Shell<'_>, fqdn: &str, args: &[String], io: &mut Io) -> i32 {
    let force = args.iter().any(|a| a == "-f" || (a.starts_with('-') && !a.starts_with("--") && a.contains('f')));
    let quiet = args.iter().any(|a| a == "-q");
    let mut device = None;
    let mut index = 0;
    while index < args.len() {
        match args[index].as_str() {
            "-L" | "-b" | "-d" | "-i" | "-l" | "-m" | "-n" | "-s" => index += 1,
            arg if arg.starts_with('-') => {}
            arg => device = Some(arg.to_owned()),
        }
        index += 1;
    }
    let Some(device) = device else {
        io.err("No device name specified\nUsage: mkfs.xfs\n");
        return 1;
    };
    if needs_root(shell, "mkfs.xfs", &device, io) {
        return 1;
    }
    let name = device_name(&device).to_owned();
    let Some(host) = shell.world.host(fqdn) else { return 1 };
    let Some(disk) = find(&host.disks, &name).cloned() else {
        io.err(&format!("error reading existing superblock: No such file or directory\nmkfs.xfs: pwrite failed: No such file or directory\nlibxfs_bwrite: write failed on (unknown) bno 0x0/0x1, err=2\nmkfs.xfs: cannot open {device}: No such file or directory\n"));
        return 1;
    };
    if disk.mountpoint.is_some() {
        io.err(&format!(
            "mkfs.xfs: {device} contains a mounted filesystem\nUsage: mkfs.xfs\n/* blocksize */\t\t[-b size=num]\n"
        ));
        return 1;
    }
    if disk.children.iter().any(is_array) || disk.children.iter().any(|c| c.mountpoint.is_some()) {
        io.err(&format!("mkfs.xfs: cannot open {device}: Device or resource busy\n"));
        return 1;
    }
    if !force {
        if let Some(existing) = &disk.fstype {
            io.err(&format!("mkfs.xfs: {device} appears to contain an existing filesystem ({existing}).\nmkfs.xfs: Use the -f option to force overwrite.\n"));
            return 1;
        }
        if !disk.children.is_empty() {
            io.err(&format!("mkfs.xfs: {device} appears to contain a partition table (gpt).\nmkfs.xfs: Use the -f option to force overwrite.\n"));
            return 1;
        }
    }
    let fs_uuid = new_uuid(shell, &format!("mkfs:{name}"));
    let Some(host) = shell.world.host_mut(fqdn) else { return 1 };
    for_each_named(&mut host.disks, &name, &mut |d| {
        d.fstype = Some("xfs".into());
        d.fs_uuid = Some(fs_uuid.clone());
        d.children.clear();
    });
    if !quiet {
        let blocks = disk.size_bytes / 4096;
        let agsize = blocks / 4;
        io.out(&format!(
            "meta-data={device:<22} isize=512    agcount=4, agsize={agsize} blks\n         =                       sectsz=512   attr=2, projid32bit=1\n         =                       crc=1        finobt=1, sparse=1, rmapbt=0\n         =                       reflink=1    bigtime=1 inobtcount=1 nrext64=0\ndata     =                       bsize=4096   blocks={blocks}, imaxpct=5\n         =                       sunit=0      swidth=0 blks\nnaming   =version 2              bsize=4096   ascii-ci=0, ftype=1\nlog      =internal log           bsize=4096   blocks=521728, version=2\n         =                       sectsz=512   sunit=0 blks, lazy-count=1\nrealtime =none                   extsz=4096   blocks=0, rtextents=0\n"
        ));
        if name.starts_with("nvme") {
            io.out("Discarding blocks...Done.\n");
        }
    }
    0
}

/// The fstab entries: (device spec, mount point, fstype).
fn fstab_entries(host: &Host) -> Vec<(String, String, String)> {
    host.shell
        .fstab
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.len() >= 3).then(|| (fields[0].to_owned(), fields[1].to_owned(), fields[2].to_owned()))
        })
        .collect()
}

/// The device an fstab spec (`/dev/x`, `UUID=...`) names.
fn resolve_spec(host: &Host, spec: &str) -> Option<String> {
    if let Some(fs_uuid) = spec.strip_prefix("UUID=") {
        let fs_uuid = fs_uuid.trim_matches('"');
        return flatten(&host.disks)
            .into_iter()
            .find(|d| d.fs_uuid.as_deref() == Some(fs_uuid))
            .map(|d| d.name.clone());
    }
    Some(device_name(spec).to_owned())
}

/// Mounts one device; the error text is `mount`'s.
fn mount_one(shell: &mut Shell<'_>, fqdn: &str, spec: &str, target: &str, fstype: Option<&str>) -> Result<(), String> {
    let Some(host) = shell.world.host(fqdn) else { return Err(String::new()) };
    let name = resolve_spec(host, spec).ok_or_else(|| format!("mount: {target}: can't find {spec}.\n"))?;
    let Some(disk) = find(&host.disks, &name) else {
        return Err(format!("mount: {target}: special device {spec} does not exist.\n"));
    };
    if disk.mountpoint.as_deref() == Some(target) {
        return Ok(());
    }
    if !shell.is_dir(target) {
        return Err(format!("mount: {target}: mount point does not exist.\n"));
    }
    let usable = disk
        .fstype
        .as_deref()
        .is_some_and(|fs| fs != "linux_raid_member" && fstype.is_none_or(|want| want == fs || want == "auto"));
    if !usable {
        return Err(format!("mount: {target}: wrong fs type, bad option, bad superblock on /dev/{name}, missing codepage or helper program, or other error.\n"));
    }
    if disk.mountpoint.is_some() {
        return Err(format!(
            "mount: {target}: /dev/{name} already mounted on {}.\n",
            disk.mountpoint.clone().unwrap_or_default()
        ));
    }
    let target = target.to_owned();
    if let Some(host) = shell.world.host_mut(fqdn) {
        for_each_named(&mut host.disks, &name, &mut |d| d.mountpoint = Some(target.clone()));
    }
    Ok(())
}

fn mount(shell: &mut Shell<'_>, fqdn: &str, args: &[String], io: &mut Io) -> i32 {
    let Some(host) = shell.world.host(fqdn) else { return 1 };
    let mut fstype = None;
    let mut operands = Vec::new();
    let mut all = false;
    let mut index = 0;
    while index < args.len() {
        match args[index].as_str() {
            "-a" | "--all" => all = true,
            "-t" => {
                index += 1;
                fstype = args.get(index).cloned();
            }
            "-o" => index += 1,
            arg if arg.starts_with('-') => {}
            arg => operands.push(arg.to_owned()),
        }
        index += 1;
    }
    if !all && operands.is_empty() {
        for (source, target, fstype) in mounts(host) {
            io.out(&format!("{source} on {target} type {fstype} ({})\n", mount_options(&fstype)));
        }
        return 0;
    }
    if needs_root(shell, "mount", operands.first().map_or("/", String::as_str), io) {
        return 1;
    }
    let entries = fstab_entries(host);
    let jobs: Vec<(String, String, Option<String>)> = if all {
        entries
            .into_iter()
            .filter(|(_, target, fs)| target.starts_with('/') && fs != "swap")
            .map(|(spec, target, fs)| (spec, target, Some(fs)))
            .collect()
    } else if operands.len() == 1 {
        let wanted = &operands[0];
        match entries.into_iter().find(|(spec, target, _)| spec == wanted || target == wanted) {
            Some((spec, target, fs)) => vec![(spec, target, Some(fs))],
            None => {
                io.err(&format!("mount: {wanted}: can't find in /etc/fstab.\n"));
                return 1;
            }
        }
    } else {
        vec![(operands[0].clone(), shell.absolute(&operands[1]), fstype)]
    };
    let mut status = 0;
    for (spec, target, fs) in jobs {
        if let Err(message) = mount_one(shell, fqdn, &spec, &target, fs.as_deref()) {
            io.err(&message);
            status = 32;
        }
    }
    status
}

fn umount(shell: &mut Shell<'_>, fqdn: &str, args: &[String], io: &mut Io) -> i32 {
    let Some(wanted) = args.iter().find(|a| !a.starts_with('-')).cloned() else {
        io.err("umount: bad usage\n");
        return 1;
    };
    if needs_root(shell, "umount", &wanted, io) {
        return 1;
    }
    let Some(host) = shell.world.host_mut(fqdn) else { return 1 };
    let name = device_name(&wanted).to_owned();
    let mut done = false;
    let all: Vec<String> = flatten(&host.disks)
        .into_iter()
        .filter(|d| d.name == name || d.mountpoint.as_deref() == Some(wanted.as_str()))
        .map(|d| d.name.clone())
        .collect();
    for found in all {
        for_each_named(&mut host.disks, &found, &mut |d| {
            if d.mountpoint.take().is_some() {
                done = true;
            }
        });
    }
    if done {
        0
    } else {
        io.err(&format!("umount: {wanted}: not mounted.\n"));
        32
    }
}

fn wipefs(shell: &mut Shell<'_>, fqdn: &str, args: &[String], io: &mut Io) -> i32 {
    let Some(device) = args.iter().find(|a| !a.starts_with('-')).cloned() else { return 1 };
    if needs_root(shell, "wipefs", &device, io) {
        return 1;
    }
    let name = device_name(&device).to_owned();
    let Some(host) = shell.world.host_mut(fqdn) else { return 1 };
    if find(&host.disks, &name).is_none_or(|d| d.mountpoint.is_some()) {
        io.err(&format!("wipefs: error: {device}: probing initialization failed: Device or resource busy\n"));
        return 1;
    }
    for_each_named(&mut host.disks, &name, &mut |d| {
        d.fstype = None;
        d.fs_uuid = None;
    });
    0
}

// ---------------------------------------------------------------- mdadm, sgdisk

/// `3f2a...` as mdadm prints array UUIDs: four colon-separated groups of eight.
fn mdadm_uuid(uuid: &str) -> String {
    let hex: String = uuid.chars().filter(|c| *c != '-').collect();
    hex.as_bytes().chunks(8).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(":")
}

fn arrays(host: &Host) -> Vec<(&Disk, Vec<&Disk>)> {
    flatten(&host.disks).into_iter().filter(|d| is_array(d)).map(|a| (a, parents_of(&host.disks, &a.name))).collect()
}

fn mdadm(shell: &mut Shell<'_>, fqdn: &str, args: &[String], io: &mut Io) -> i32 {
    let has = |flag: &str| args.iter().any(|a| a == flag);
    let operands: Vec<String> = args.iter().filter(|a| !a.starts_with('-')).cloned().collect();
    if !shell.is_root() {
        io.err("mdadm: must be super-user to perform this action\n");
        return 1;
    }
    let Some(host) = shell.world.host(fqdn) else { return 1 };
    if (has("--detail") || has("-D")) && (has("--scan") || has("-s")) {
        for (array, members) in arrays(host) {
            let uuid = members.first().and_then(|m| m.fs_uuid.clone()).unwrap_or_default();
            io.out(&format!(
                "ARRAY /dev/{} metadata=1.2 name={fqdn}:{} UUID={}\n",
                array.name,
                array.name.trim_start_matches("md"),
                mdadm_uuid(&uuid)
            ));
        }
        return 0;
    }
    if has("--detail") || has("-D") {
        let Some(device) = operands.first() else {
            io.err("mdadm: No devices given.\n");
            return 1;
        };
        let name = device_name(device);
        let Some((array, members)) = arrays(host).into_iter().find(|(a, _)| a.name == name) else {
            io.err(&format!("mdadm: cannot open {device}: No such file or directory\n"));
            return 1;
        };
        let uuid = members.first().and_then(|m| m.fs_uuid.clone()).unwrap_or_default();
        let kib = array.size_bytes / 1024;
        let mut text = format!(
            "/dev/{}:\n           Version : 1.2\n     Creation Time : Mon Jan  5 09:00:00 2026\n        Raid Level : {}\n        Array Size : {kib} ({:.2} TiB {:.2} TB)\n      Raid Devices : {n}\n     Total Devices : {n}\n       Persistence : Superblock is persistent\n\n       Update Time : Mon Jan  5 09:00:00 2026\n             State : clean \n    Active Devices : {n}\n   Working Devices : {n}\n    Failed Devices : 0\n     Spare Devices : 0\n\n            Layout : -unknown-\n        Chunk Size : 512K\n\nConsistency Policy : none\n\n              Name : {fqdn}:{}  (local to host {fqdn})\n              UUID : {}\n            Events : 0\n\n    Number   Major   Minor   RaidDevice State\n",
            array.name,
            array.kind,
            array.size_bytes as f64 / (1u64 << 40) as f64,
            array.size_bytes as f64 / 1e12,
            array.name.trim_start_matches("md"),
            mdadm_uuid(&uuid),
            n = members.len(),
        );
        for (i, member) in members.iter().enumerate() {
            let mm = major_minor(&host.disks, &member.name);
            let (major, minor) = mm.split_once(':').unwrap_or(("0", "0"));
            text.push_str(&format!(
                "       {i}     {major:>3}      {minor:>3}        {i}      active sync   /dev/{}\n",
                member.name
            ));
        }
        io.out(&text);
        return 0;
    }
    if has("--zero-superblock") {
        let mut status = 0;
        for device in &operands {
            let name = device_name(device).to_owned();
            let Some(host) = shell.world.host(fqdn) else { return 1 };
            match find(&host.disks, &name) {
                None => {
                    io.err(&format!("mdadm: Couldn't open {device} for write - not zeroing\n"));
                    status = 1;
                }
                Some(disk) if disk.children.iter().any(is_array) => {
                    io.err(&format!("mdadm: Couldn't open {device} for write - not zeroing\n"));
                    status = 1;
                }
                Some(disk) if disk.fstype.as_deref() == Some("linux_raid_member") => {
                    if let Some(host) = shell.world.host_mut(fqdn) {
                        for_each_named(&mut host.disks, &name, &mut |d| {
                            d.fstype = None;
                            d.fs_uuid = None;
                        });
                    }
                }
                Some(_) => {
                    io.err(&format!("mdadm: Unrecognised md component device - {device}\n"));
                    status = 1;
                }
            }
        }
        return status;
    }
    if has("--stop") || has("-S") {
        let Some(device) = operands.first() else { return 1 };
        let name = device_name(device).to_owned();
        let Some(host) = shell.world.host_mut(fqdn) else { return 1 };
        if find(&host.disks, &name).is_none_or(|d| !is_array(d)) {
            io.err(&format!("mdadm: error opening {device}: No such file or directory\n"));
            return 1;
        }
        fn detach(disks: &mut [Disk], name: &str) {
            for disk in disks {
                disk.children.retain(|c| c.name != name);
                detach(&mut disk.children, name);
            }
        }
        detach(&mut host.disks, &name);
        io.err(&format!("mdadm: stopped {device}\n"));
        return 0;
    }
    if has("--create") || has("-C") {
        return mdadm_create(shell, fqdn, args, io);
    }
    io.err("mdadm: the simulated mdadm knows --detail, --detail --scan, --create, --zero-superblock and --stop\n");
    1
}

fn mdadm_create(shell: &mut Shell<'_>, fqdn: &str, args: &[String], io: &mut Io) -> i32 {
    let mut level = None;
    let mut count = None;
    let mut run = false;
    let mut devices = Vec::new();
    let mut index = 0;
    while index < args.len() {
        let arg = args[index].as_str();
        let value = |prefix: &str| arg.strip_prefix(prefix).map(str::to_owned);
        if let Some(v) = value("--level=").or_else(|| value("-l")) {
            level = Some(v);
        } else if arg == "--level" {
            index += 1;
            level = args.get(index).cloned();
        } else if let Some(v) = value("--raid-devices=").or_else(|| value("-n")) {
            count = v.parse::<usize>().ok();
        } else if arg == "--raid-devices" {
            index += 1;
            count = args.get(index).and_then(|v| v.parse().ok());
        } else if arg == "--run" || arg == "-R" {
            run = true;
        } else if !arg.starts_with('-') {
            devices.push(arg.to_owned());
        }
        index += 1;
    }
    let (Some(level), Some(count)) = (level, count) else {
        io.err("mdadm: a RAID level and the number of devices are needed (--level, --raid-devices)\n");
        return 2;
    };
    let Some((array, members)) = devices.split_first() else {
        io.err("mdadm: an md device must be given in --create mode\n");
        return 2;
    };
    if members.len() != count {
        io.err(&format!(
            "mdadm: You have listed more or fewer devices ({}) than are in the array({count})!\n",
            members.len()
        ));
        return 2;
    }
    let level = match level.trim_start_matches("raid") {
        "0" | "stripe" => "raid0",
        "1" | "mirror" => "raid1",
        other => {
            io.err(&format!("mdadm: the simulated host only builds RAID0 and RAID1, not {other}\n"));
            return 2;
        }
    };
    let array_name = device_name(array).to_owned();
    let Some(host) = shell.world.host(fqdn) else { return 1 };
    if find(&host.disks, &array_name).is_some() {
        io.err(&format!("mdadm: {array} is already in use.\n"));
        return 1;
    }
    let mut sizes = Vec::new();
    let mut signatures = Vec::new();
    for member in members {
        let Some(disk) = find(&host.disks, device_name(member)) else {
            io.err(&format!("mdadm: cannot open {member}: No such file or directory\n"));
            return 1;
        };
        if disk.mountpoint.is_some() || !disk.children.is_empty() {
            io.err(&format!("mdadm: cannot open {member}: Device or resource busy\n"));
            return 1;
        }
        if let Some(fs) = &disk.fstype {
            signatures.push(format!("mdadm: {member} appears to contain an {fs} file system\n       size={}K  mtime=Mon Jan  5 09:00:00 2026\n", disk.size_bytes / 1024));
        }
        sizes.push(disk.size_bytes);
    }
    io.err("mdadm: chunk size defaults to 512K\n");
    if !signatures.is_empty() && !run {
        for line in &signatures {
            io.err(line);
        }
        io.err("Continue creating array? ");
        let answer = io.stdin_text();
        if !answer.trim_start().to_lowercase().starts_with('y') {
            io.err("mdadm: create aborted.\n");
            return 1;
        }
    }
    let usable: Vec<u64> = sizes.iter().map(|s| (s.saturating_sub(136 << 20)) / (512 << 10) * (512 << 10)).collect();
    let size = if level == "raid0" { usable.iter().sum() } else { usable.iter().copied().min().unwrap_or(0) };
    let array_uuid = new_uuid(shell, &format!("md:{array_name}"));
    let array_disk = Disk {
        name: array_name.clone(),
        kind: level.to_owned(),
        size_bytes: size,
        fstype: None,
        mountpoint: None,
        fs_uuid: None,
        children: vec![],
    };
    let Some(host) = shell.world.host_mut(fqdn) else { return 1 };
    for member in members {
        for_each_named(&mut host.disks, device_name(member), &mut |d| {
            d.fstype = Some("linux_raid_member".into());
            d.fs_uuid = Some(array_uuid.clone());
            d.children = vec![array_disk.clone()];
        });
    }
    io.err(&format!("mdadm: Defaulting to version 1.2 metadata\nmdadm: array {array} started.\n"));
    0
}

/// The partition of `disk` numbered `number` (`nvme0n1p1`, `sda1`).
fn partition_name(disk: &str, number: u32) -> String {
    if disk.chars().last().is_some_and(|c| c.is_ascii_digit()) {
        format!("{disk}p{number}")
    } else {
        format!("{disk}{number}")
    }
}

fn sgdisk(shell: &mut Shell<'_>, fqdn: &str, args: &[String], io: &mut Io) -> i32 {
    let Some(device) = args.iter().rev().find(|a| a.starts_with("/dev/")).cloned() else {
        io.err("Usage: sgdisk [OPTION...] <device>\n");
        return 2;
    };
    if needs_root(shell, "sgdisk", &device, io) {
        return 2;
    }
    let name = device_name(&device).to_owned();
    let Some(host) = shell.world.host(fqdn) else { return 1 };
    let Some(disk) = find(&host.disks, &name).cloned() else {
        io.err(&format!("Problem opening {device} for reading! Error is 2.\nThe specified file does not exist!\n"));
        return 2;
    };
    if disk.kind != "disk" {
        io.err(&format!("Caution: invalid main GPT header, but valid backup; regenerating main header\nfrom backup!\nProblem opening {device}: not a whole disk\n"));
        return 2;
    }
    let mut partitions = disk.children.clone();
    let had_table = !partitions.is_empty();
    let mut messages = String::new();
    let mut index = 0;
    let value_of = |index: &mut usize, arg: &str, short: &str, long: &str| -> Option<String> {
        if arg == short || arg == long {
            *index += 1;
            return args.get(*index).cloned();
        }
        arg.strip_prefix(&format!("{long}="))
            .or_else(|| arg.strip_prefix(short).filter(|v| !v.is_empty()))
            .map(str::to_owned)
    };
    while index < args.len() {
        let arg = args[index].clone();
        if arg == "-Z" || arg == "--zap-all" || arg == "-o" || arg == "--clear" {
            if partitions.iter().any(|p| p.mountpoint.is_some() || p.children.iter().any(is_array)) {
                io.err("Warning: The kernel is still using the old partition table.\n");
            }
            partitions.clear();
            messages.push_str(if arg.contains('Z') || arg.contains("zap") {
                "GPT data structures destroyed! You may now partition the disk using fdisk or\nother utilities.\n"
            } else {
                "Creating new GPT entries in memory.\n"
            });
        } else if let Some(spec) = value_of(&mut index, &arg, "-n", "--new") {
            let number: u32 = spec.split(':').next().and_then(|n| n.parse().ok()).unwrap_or(0);
            let number = if number == 0 { partitions.len() as u32 + 1 } else { number };
            let part = partition_name(&name, number);
            if partitions.iter().any(|p| p.name == part) || !partitions.is_empty() {
                io.err(&format!(
                    "Could not create partition {number} from 34 to 2047\nError encountered; not saving changes.\n"
                ));
                return 4;
            }
            if !had_table && messages.is_empty() {
                messages.push_str("Creating new GPT entries in memory.\n");
            }
            partitions.push(Disk {
                name: part,
                kind: "part".into(),
                size_bytes: disk.size_bytes.saturating_sub(2 << 20),
                fstype: None,
                mountpoint: None,
                fs_uuid: None,
                children: vec![],
            });
        } else if let Some(spec) = value_of(&mut index, &arg, "-t", "--typecode") {
            let number: u32 = spec.split(':').next().and_then(|n| n.parse().ok()).unwrap_or(0);
            let code = spec.split(':').nth(1).unwrap_or_default().to_owned();
            if !partitions.iter().any(|p| p.name == partition_name(&name, number)) {
                io.err(&format!("Could not change partition {number}'s type code to {code}!\nError encountered; not saving changes.\n"));
                return 4;
            }
        } else if arg == "-p" || arg == "--print" {
            io.out(&format!("Disk {device}: {} sectors, {}\nPartition table holds up to 128 entries\nNumber  Start (sector)    End (sector)  Size       Code  Name\n", disk.size_bytes / 512, human_size(disk.size_bytes)));
            for (i, p) in partitions.iter().enumerate() {
                io.out(&format!(
                    "   {}            2048     {:>11}   {:<10} 8300\n",
                    i + 1,
                    p.size_bytes / 512 + 2047,
                    human_size(p.size_bytes)
                ));
            }
        }
        index += 1;
    }
    messages.push_str("The operation has completed successfully.\n");
    io.out(&messages);
    let Some(host) = shell.world.host_mut(fqdn) else { return 1 };
    for_each_named(&mut host.disks, &name, &mut |d| {
        d.children = partitions.clone();
        d.fstype = None;
        d.fs_uuid = None;
    });
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(partition_name("nvme0n1", 1), "nvme0n1p1");
        assert_eq!(partition_name("sda", 2), "sda2");
        assert_eq!(mdadm_uuid("3f2a4b5c-6d7e-4f80-a1b2-c3d4e5f60718"), "3f2a4b5c:6d7e4f80:a1b2c3d4:e5f60718");
    }
}
