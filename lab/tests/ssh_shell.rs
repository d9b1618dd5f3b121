//! The simulated shell's commands against the world, without SSH in between
//! (`ssh_hosts.rs` goes through the real client): disks, Aquilon, Kayobe and
//! the reinstall.

use hvmigrate_lab::shell::{self, Login, Machine, Outcome};
use hvmigrate_lab::{World, WorldOptions};

fn world() -> World {
    let world = World::generate(&WorldOptions::default());
    hvmigrate_lab::ssh::prepare_world(&mut world.lock(), &Default::default());
    world
}

fn root() -> Login {
    Login { user: "root".into(), sudo_password: None }
}

fn run(world: &World, machine: &Machine, line: &str) -> Outcome {
    shell::run(&mut world.lock(), machine, &root(), line, b"")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn host_with_model(world: &World, model: &str) -> Machine {
    Machine::Hypervisor(world.lock().hosts.iter().find(|h| h.model == model).expect("model present").fqdn.clone())
}

#[test]
fn lenovo_fix_formats_mounts_once_and_refuses_to_reformat() {
    let world = world();
    let host = host_with_model(&world, "hv-2022-lenovo");
    let line = "/dev/nvme0n1 /var/lib/nova/instances xfs rw,relatime,attr2,inode64,logbufs=8,logbsize=32k,noquota 0 0";
    let outcome = run(&world, &host, "mkfs.xfs /dev/nvme0n1");
    assert_eq!(outcome.status, 0, "{}", text(&outcome.stderr));
    assert!(text(&outcome.stdout).starts_with("meta-data=/dev/nvme0n1"));
    let again = run(&world, &host, "mkfs.xfs /dev/nvme0n1");
    assert_eq!(again.status, 1);
    assert!(text(&again.stderr).contains("appears to contain an existing filesystem (xfs)"));
    for _ in 0..2 {
        let append = format!("grep -qxF '{line}' /etc/fstab || echo '{line}' >> /etc/fstab");
        assert_eq!(run(&world, &host, &append).status, 0);
    }
    let outcome = run(&world, &host, "mount -a");
    assert_eq!(outcome.status, 32, "no mount point yet");
    assert!(text(&outcome.stderr).contains("mount point does not exist"));
    let outcome = run(&world, &host, "mkdir -p /var/lib/nova/instances && mount -a && systemctl daemon-reload");
    assert_eq!(outcome.status, 0, "{}", text(&outcome.stderr));
    let outcome = run(&world, &host, "findmnt -n -o SOURCE /var/lib/nova/instances");
    assert_eq!(text(&outcome.stdout), "/dev/nvme0n1\n");
    let outcome = run(&world, &host, "mkfs.xfs -f /dev/nvme0n1");
    assert!(outcome.status != 0 && text(&outcome.stderr).contains("mounted filesystem"));
    let fstab = world.lock().host(host.name()).unwrap().shell.fstab.clone();
    assert_eq!(fstab.lines().filter(|l| *l == line).count(), 1, "the fstab line is added once");
    let outcome = run(&world, &host, "blkid -o value -s TYPE /dev/nvme0n1");
    assert_eq!(text(&outcome.stdout), "xfs\n");
}

#[test]
fn a100_raid0_of_two_partitions() {
    let world = world();
    let host = host_with_model(&world, "xma-hv-2022-a100");
    let fresh = run(&world, &host, "mdadm --zero-superblock /dev/nvme0n1");
    assert_eq!(fresh.status, 1, "no md superblock on a fresh disk, as the real mdadm says");
    let script = "sgdisk -n 1:0:0 /dev/nvme0n1 && sgdisk -t 1:fd00 /dev/nvme0n1 && sgdisk -n 1:0:0 /dev/nvme1n1 && \
                  sgdisk -t 1:fd00 /dev/nvme1n1 && \
                  mdadm --create --verbose /dev/md0 --level=0 --raid-devices=2 /dev/nvme0n1p1 /dev/nvme1n1p1 && \
                  mkfs.xfs /dev/md0 && mdadm --detail --scan >> /etc/mdadm.conf";
    let outcome = run(&world, &host, script);
    assert_eq!(outcome.status, 0, "{}", text(&outcome.stderr));
    assert!(text(&outcome.stderr).contains("array /dev/md0 started"));
    let detail = run(&world, &host, "mdadm --detail /dev/md0");
    assert!(text(&detail.stdout).contains("Raid Level : raid0"), "{}", text(&detail.stdout));
    let again = run(&world, &host, "mdadm --create /dev/md0 --level=0 --raid-devices=2 /dev/nvme0n1p1 /dev/nvme1n1p1");
    assert_eq!(again.status, 1);
    let lsblk = run(&world, &host, "lsblk -J -o NAME,TYPE,FSTYPE");
    let parsed: serde_json::Value = serde_json::from_str(&text(&lsblk.stdout)).unwrap();
    let nvme = parsed["blockdevices"].as_array().unwrap().iter().find(|d| d["name"] == "nvme0n1").unwrap().clone();
    assert_eq!(nvme["children"][0]["children"][0]["name"], "md0");
    assert_eq!(nvme["children"][0]["children"][0]["fstype"], "xfs");
    assert!(world
        .lock()
        .host(host.name())
        .unwrap()
        .shell
        .mdadm_conf
        .lines()
        .next()
        .unwrap()
        .starts_with("ARRAY /dev/md0 metadata=1.2"));
}

#[test]
fn dnf_updates_or_fails_with_resolv_conf_to_show() {
    let world = world();
    let host = Machine::Hypervisor(world.lock().hosts[0].fqdn.clone());
    let outcome = run(&world, &host, "dnf -y update qemu-kvm");
    assert_eq!(outcome.status, 0);
    assert!(text(&outcome.stdout).contains("Upgraded:") && text(&outcome.stdout).ends_with("Complete!\n"));
    let outcome = run(&world, &host, "dnf -y update qemu-kvm");
    assert!(text(&outcome.stdout).contains("Nothing to do."));
    world.lock().hosts[0].shell.dnf_works = false;
    let outcome = run(&world, &host, "dnf -y update qemu-kvm || cat /etc/resolv.conf");
    assert_eq!(outcome.status, 0);
    assert!(text(&outcome.stderr).contains("Failed to download metadata for repo 'baseos'"));
    assert!(text(&outcome.stdout).contains("nameserver"));
}

#[test]
fn aquilon_reimport_make_and_pxeswitch() {
    let world = world();
    let aquilon = Machine::Aquilon(world.lock().aquilon_host_name());
    let (fqdn, machine) = {
        let state = world.lock();
        let host = state.campaign_hosts().find(|h| h.netbox_device.is_some()).unwrap();
        (host.fqdn.clone(), host.aquilon.machine.clone())
    };
    let show = run(&world, &aquilon, &format!("aq show host --hostname {fqdn}"));
    assert!(text(&show.stdout).contains(&format!("Machine: {machine}")), "{}", text(&show.stdout));
    let blocked = run(&world, &aquilon, &format!("aq del_machine --machine {machine}"));
    assert_eq!(blocked.status, 4, "the host still uses the machine");
    let script = format!(
        "aq del_host --hostname {fqdn} && aq del_interface --machine {machine} --interface br0 && \
         aq del_interface_address --machine {machine} --interface eth0 && aq del_interface --machine {machine} --interface eth0 && \
         aq del_interface_address --machine {machine} --interface bmc0 && aq del_interface --machine {machine} --interface bmc0 && \
         aq del_machine --machine {machine} && \
         netbox2aquilon --hostname {fqdn} --archetype cloud --domain prod --osname rocky --osversion 9 && \
         aq update_interface --hostname {fqdn} --interface eth0 --boot --default_route && \
         aq manage --hostname {fqdn} --domain prod --force && \
         aq make --hostname {fqdn} --personality kayobe-prod --osname rocky --osversion 9x-x86_64 && \
         aq pxeswitch --hostname {fqdn} --install"
    );
    let outcome = run(&world, &aquilon, &script);
    assert_eq!(outcome.status, 0, "{}", text(&outcome.stderr));
    let second = run(&world, &aquilon, &format!("netbox2aquilon --hostname {fqdn} --archetype cloud --domain prod"));
    assert_eq!(second.status, 1, "a second import is refused");
    let state = world.lock();
    let record = &state.host(&fqdn).unwrap().aquilon;
    assert!(record.host_exists && record.pxe_install);
    assert_eq!((record.reimports, record.personality.as_str()), (1, "kayobe-prod"));
    assert_eq!(state.service_hosts[&state.aquilon_host_name()].history.len(), 4);
}

#[test]
fn kayobe_recap_and_fatal_paragraphs() {
    let world = world();
    let kayobe = Machine::Kayobe(world.lock().kayobe_host_name());
    let (good, bad) = {
        let mut state = world.lock();
        let hosts: Vec<String> =
            state.campaign_hosts().filter(|h| h.netbox_device.is_some()).map(|h| h.fqdn.clone()).collect();
        let (good, bad) = (hosts[0].clone(), hosts[1].clone());
        for fqdn in [&good, &bad] {
            state.host_mut(fqdn).unwrap().os = hvmigrate_lab::world::OsRelease::rocky("9.4");
        }
        state.host_mut(&bad).unwrap().kayobe.fail_with = Some("nova-compute container exited".into());
        (good, bad)
    };
    let without_env = run(&world, &kayobe, &format!("kayobe overcloud service deploy --limit {good}"));
    assert_eq!(without_env.status, 1, "needs the environment sourced");
    let line = format!(
        "source ~/kayobe-prod/env-vars.sh && kayobe overcloud service deploy -kl {good}:{bad} --limit {good}:{bad}"
    );
    let outcome =
        shell::run(&mut world.lock(), &kayobe, &Login { user: "ops".into(), sudo_password: None }, &line, b"");
    let out = text(&outcome.stdout);
    assert_eq!(outcome.status, 2, "{out}{}", text(&outcome.stderr));
    assert!(
        out.contains(&format!(
            "fatal: [{bad}]: FAILED! => {{\"changed\":false,\"msg\":\"nova-compute container exited\"}}"
        )),
        "{out}"
    );
    assert!(out.contains("PLAY RECAP") && out.contains("failed=1"));
    let state = world.lock();
    assert_eq!(state.host(&good).unwrap().kayobe.service_deploys, 1);
    assert_eq!(state.host(&bad).unwrap().kayobe.service_deploys, 0);
}

#[test]
fn a_background_kayobe_run_finishes_in_real_time_and_can_be_killed() {
    let world = world();
    let kayobe = Machine::Kayobe(world.lock().kayobe_host_name());
    let ops = Login { user: "ops".into(), sudo_password: None };
    let good = {
        let mut state = world.lock();
        state.remote_job_minute = std::time::Duration::from_millis(10);
        let fqdn = state.campaign_hosts().find(|h| h.netbox_device.is_some()).unwrap().fqdn.clone();
        let host = state.host_mut(&fqdn).unwrap();
        host.os = hvmigrate_lab::world::OsRelease::rocky("9.4");
        host.compute.state = "down".into();
        fqdn
    };
    let start = |dir: &str| {
        let line = format!(
            "mkdir -p jobs/{dir} && setsid nohup bash -c '( . ~/kayobe-prod/env-vars.sh && \"$@\" ) > \"$0/log\" 2>&1; \
             echo $? > \"$0/exit\"' jobs/{dir} kayobe overcloud service deploy --limit {good} > /dev/null 2>&1 < /dev/null & \
             echo $! > jobs/{dir}/pid; cat jobs/{dir}/pid"
        );
        let outcome = shell::run(&mut world.lock(), &kayobe, &ops, &line, b"");
        assert_eq!(outcome.status, 0, "{}", text(&outcome.stderr));
        assert!(outcome.delay.is_zero(), "the session does not wait for its background job");
        text(&outcome.stdout).trim().to_owned()
    };
    let look = |dir: &str| {
        let line = format!("cat jobs/{dir}/exit 2>/dev/null || {{ kill -0 $(cat jobs/{dir}/pid) && echo running; }}");
        text(&shell::run(&mut world.lock(), &kayobe, &ops, &line, b"").stdout).trim().to_owned()
    };
    let pid = start("a");
    assert!(pid.parse::<u32>().is_ok(), "$! is the pid: {pid}");
    assert_eq!(look("a"), "running");
    {
        let state = world.lock();
        assert_eq!(state.kayobe_runs.service_deploy, 1, "counted when it starts");
        assert_eq!(state.host(&good).unwrap().kayobe.service_deploys, 0, "not deployed yet");
        assert_eq!(state.host(&good).unwrap().compute.state, "down");
    }
    let log = run(&world, &kayobe, "cat /home/ops/jobs/a/log");
    assert!(text(&log.stdout).is_empty(), "the log comes at the end");
    // 20 simulated minutes of 10 ms each.
    let started = std::time::Instant::now();
    while look("a") == "running" {
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "the job never ended");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(look("a"), "0");
    let log = shell::run(&mut world.lock(), &kayobe, &ops, "cat jobs/a/log", b"");
    assert!(text(&log.stdout).contains("PLAY RECAP"), "{}", text(&log.stdout));
    let dead = shell::run(&mut world.lock(), &kayobe, &ops, &format!("kill -0 {pid}"), b"");
    assert_eq!((dead.status, text(&dead.stderr)), (1, format!("bash: kill: ({pid}) - No such process\n")));
    {
        let state = world.lock();
        assert_eq!(state.host(&good).unwrap().kayobe.service_deploys, 1);
        assert_eq!(state.host(&good).unwrap().compute.state, "up");
    }

    // Killed, it never ends and changes nothing more.
    world.lock().host_mut(&good).unwrap().compute.state = "down".into();
    let pid = start("b");
    let killed = shell::run(&mut world.lock(), &kayobe, &ops, &format!("kill -TERM {pid}"), b"");
    assert_eq!(killed.status, 0, "{}", text(&killed.stderr));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(look("b"), "", "no exit status, no process");
    let state = world.lock();
    assert_eq!(state.kayobe_runs.service_deploy, 2);
    assert_eq!(state.host(&good).unwrap().kayobe.service_deploys, 1);
    assert_eq!(state.host(&good).unwrap().compute.state, "down");
}

#[test]
fn a_foreground_kayobe_run_takes_its_simulated_minutes() {
    let world = world();
    let kayobe = Machine::Kayobe(world.lock().kayobe_host_name());
    world.lock().remote_job_minute = std::time::Duration::from_millis(100);
    let line = "source ~/kayobe-prod/env-vars.sh && kayobe playbook run ansible/build-inventory-from-netbox.yml";
    let outcome = shell::run(&mut world.lock(), &kayobe, &Login { user: "ops".into(), sudo_password: None }, line, b"");
    assert_eq!(outcome.status, 0, "{}", text(&outcome.stderr));
    assert_eq!(outcome.delay, std::time::Duration::from_millis(200), "2 simulated minutes");
    assert_eq!(world.lock().kayobe_runs.inventory, 1);
}

#[test]
fn reinstall_needs_pxeswitch_and_resets_the_host() {
    let world = world();
    let fqdn = {
        let state = world.lock();
        state.hosts.iter().find(|h| !h.in_campaign).unwrap().fqdn.clone()
    };
    let refused = world.reinstall(&fqdn).unwrap_err();
    assert!(refused.to_string().contains("pxeswitch"), "{refused}");
    {
        let mut state = world.lock();
        let host = state.host_mut(&fqdn).unwrap();
        host.aquilon.pxe_install = true;
        host.os = hvmigrate_lab::world::OsRelease::rocky("8.10");
        host.shell.root_authorized_keys.append_line("ssh-ed25519 AAAA test");
    }
    world.reinstall(&fqdn).unwrap();
    let state = world.lock();
    let host = state.host(&fqdn).unwrap();
    assert!(host.os.version_id.starts_with('9'));
    assert!(host.shell.root_authorized_keys.is_empty() && !host.aquilon.pxe_install);
    assert!(host.shell.fstab.lines().any(|l| l.contains(" / ")), "{:?}", host.shell.fstab);
}

#[test]
fn quoting_positional_arguments_and_sudo() {
    let world = world();
    let host = Machine::Hypervisor(world.lock().hosts[0].fqdn.clone());
    let ops = Login { user: "ops".into(), sudo_password: Some("s3cret".into()) };
    // The product's shape: `sh -c SCRIPT sh ARG...` with values as positional parameters.
    let line =
        r#"sudo -S -p '' sh -c 'grep -qxF "$1" "$2" || printf '\''%s\n'\'' "$1" >> "$2"' sh 'a b  c' /etc/fstab"#;
    let outcome = shell::run(&mut world.lock(), &host, &ops, line, b"s3cret\n");
    assert_eq!(outcome.status, 0, "{}", text(&outcome.stderr));
    assert_eq!(world.lock().hosts[0].shell.fstab.lines().last().unwrap(), "a b  c");
    let wrong = shell::run(&mut world.lock(), &host, &ops, "sudo -S true", b"nope\n");
    assert_eq!(wrong.status, 1);
    let no_password = shell::run(&mut world.lock(), &host, &ops, "sudo -n true", b"");
    assert_eq!((no_password.status, text(&no_password.stderr).as_str()), (1, "sudo: a password is required\n"));
    let outcome = run(&world, &host, "if test -d /nope; then echo yes; else echo \"no $HOME\"; fi; echo $?");
    assert_eq!(outcome.status, 0);
    let outcome = run(&world, &host, "echo 'unterminated");
    assert_eq!(outcome.status, 2);
}

#[test]
fn files_keep_a_missing_final_newline_as_a_real_host_does() {
    let world = world();
    let host = Machine::Hypervisor(world.lock().hosts[0].fqdn.clone());
    let fstab = world.lock().hosts[0].shell.fstab.text().trim_end_matches('\n').to_owned();
    world.lock().hosts[0].shell.fstab = hvmigrate_lab::world::TextFile::new(fstab.clone());
    let last = fstab.lines().last().unwrap().to_owned();
    // `tail -c 1` shows the last byte: not a newline here.
    assert_eq!(text(&run(&world, &host, "tail -c 1 /etc/fstab").stdout), last[last.len() - 1..]);
    // A plain `>>` glues the new line to the last one, as on a real host.
    run(&world, &host, "echo 'glued 0 0' >> /etc/fstab");
    let now = world.lock().hosts[0].shell.fstab.clone();
    assert_eq!(now.lines().last().unwrap(), format!("{last}glued 0 0"));
    assert_eq!(text(&run(&world, &host, "tail -c 1 /etc/fstab").stdout), "\n");
}

#[test]
fn exec_runs_the_command_and_ends_the_script_and_kill_finds_nothing_left() {
    let world = world();
    let host = Machine::Hypervisor(world.lock().hosts[0].fqdn.clone());
    let outcome = run(&world, &host, "echo hvmigrate-pid:$$; exec sh -c 'echo ran; exit 3'; echo never");
    assert_eq!((outcome.status, text(&outcome.stdout)), (3, "hvmigrate-pid:4242\nran\n".to_owned()));
    // The history lists the command asked for.
    assert_eq!(world.lock().hosts[0].shell.history.last().unwrap(), "sh -c 'echo ran; exit 3'; echo never");
    let kill = run(&world, &host, "kill -s TERM -- -4242");
    assert_eq!(kill.status, 1);
    assert!(text(&kill.stderr).contains("No such process"));
}

/// A campaign host with a NetBox device, emptied and switched to PXE install.
fn ready_for_reinstall(world: &World) -> String {
    let mut state = world.lock();
    let fqdn = state.campaign_hosts().find(|h| h.netbox_device.is_some()).unwrap().fqdn.clone();
    state.servers.retain(|_, server| server.host != fqdn);
    state.host_mut(&fqdn).unwrap().aquilon.pxe_install = true;
    fqdn
}

fn out(world: &World, host: &Machine, line: &str) -> String {
    let outcome = run(world, host, line);
    assert_eq!(outcome.status, 0, "{line}: {}", text(&outcome.stderr));
    text(&outcome.stdout)
}

fn deploy(world: &World, fqdn: &str) {
    let kayobe = Machine::Kayobe(world.lock().kayobe_host_name());
    let line = format!("source ~/kayobe-prod/env-vars.sh && kayobe overcloud service deploy --limit {fqdn}");
    let outcome =
        shell::run(&mut world.lock(), &kayobe, &Login { user: "ops".into(), sudo_password: None }, &line, b"");
    assert_eq!(outcome.status, 0, "{}{}", text(&outcome.stdout), text(&outcome.stderr));
}

#[test]
fn a_real_reinstall_makes_new_host_keys_and_machine_id_and_loses_compute_id() {
    let world = World::generate(&WorldOptions { reinstall_like_real: true, ..WorldOptions::default() });
    hvmigrate_lab::ssh::prepare_world(&mut world.lock(), &Default::default());
    let fqdn = ready_for_reinstall(&world);
    let host = Machine::Hypervisor(fqdn.clone());
    let facts = "cat /sys/class/dmi/id/product_uuid /sys/class/dmi/id/product_serial; ip -o -d link show";
    let before = (out(&world, &host, facts), out(&world, &host, "cat /etc/machine-id"));
    let key_before = out(&world, &host, "cat /etc/ssh/ssh_host_ed25519_key.pub");
    let hypervisor_uuid = world.lock().host(&fqdn).unwrap().hypervisor_uuid.clone();
    assert_eq!(out(&world, &host, &format!("cat {}", shell::KOLLA_COMPUTE_ID_PATH)), hypervisor_uuid);

    world.reinstall(&fqdn).unwrap();
    assert_eq!(out(&world, &host, facts), before.0, "the same machine: DMI and NICs unchanged");
    assert_ne!(out(&world, &host, "cat /etc/machine-id"), before.1, "a new machine-id");
    assert_ne!(out(&world, &host, "cat /etc/ssh/ssh_host_ed25519_key.pub"), key_before, "new host keys");
    let gone = run(&world, &host, &format!("cat {}", shell::KOLLA_COMPUTE_ID_PATH));
    assert_eq!(gone.status, 1, "compute_id went with the disk");

    // nova-compute of an existing service refuses to start without it, as Nova does.
    deploy(&world, &fqdn);
    assert_eq!(world.lock().host(&fqdn).unwrap().compute.state, "down");
    let log = out(&world, &host, &format!("cat {}", shell::KOLLA_NOVA_COMPUTE_LOG));
    assert!(log.contains(shell::NOVA_NO_NODE_IDENTITY), "{log}");

    // With the identity written back, it comes up as the same node.
    let path = shell::KOLLA_COMPUTE_ID_PATH;
    let folder = path.rsplit_once('/').unwrap().0;
    out(
        &world,
        &host,
        &format!("mkdir -p {folder} && printf %s {hypervisor_uuid} > {path} && chown 42436:42436 {path}"),
    );
    deploy(&world, &fqdn);
    let state = world.lock();
    let after = state.host(&fqdn).unwrap();
    assert_eq!((after.compute.state.as_str(), after.hypervisor_uuid.as_str()), ("up", hypervisor_uuid.as_str()));
    assert_eq!(after.shell.owners.get(path).map(String::as_str), Some("42436:42436"));
}

#[test]
fn the_default_reinstall_keeps_host_keys_and_a_wrong_machine_is_another_box() {
    let world = world();
    let fqdn = ready_for_reinstall(&world);
    let host = Machine::Hypervisor(fqdn.clone());
    let key = out(&world, &host, "cat /etc/ssh/ssh_host_ed25519_key.pub");
    let machine_id = out(&world, &host, "cat /etc/machine-id");
    world.reinstall(&fqdn).unwrap();
    assert_eq!(out(&world, &host, "cat /etc/ssh/ssh_host_ed25519_key.pub"), key);
    assert_eq!(out(&world, &host, "cat /etc/machine-id"), machine_id);
    deploy(&world, &fqdn);
    assert_eq!(world.lock().host(&fqdn).unwrap().compute.state, "up", "no compute_id check by default");

    let before = world.lock().host(&fqdn).unwrap().machine.clone();
    world.lock().host_mut(&fqdn).unwrap().aquilon.pxe_install = true;
    world.reinstall_as(&fqdn, true).unwrap();
    let after = world.lock().host(&fqdn).unwrap().machine.clone();
    assert_ne!(after.system_uuid, before.system_uuid);
    assert_ne!(after.serial, before.serial);
    assert_ne!(after.mac("eth0"), before.mac("eth0"));
    assert_ne!(after.bmc_mac, before.bmc_mac);
    let links = out(&world, &host, "ip -o -d link show");
    assert!(links.contains(after.mac("eth0").unwrap()) && links.contains("parentbus pci"), "{links}");
    assert_ne!(out(&world, &host, "cat /etc/ssh/ssh_host_ed25519_key.pub"), key, "another box, another key");
    let bmc = out(&world, &host, "ipmitool lan print");
    assert!(bmc.contains(&after.bmc_mac), "{bmc}");
    let ops = Login { user: "ops".into(), sudo_password: None };
    let refused = shell::run(&mut world.lock(), &host, &ops, "cat /sys/class/dmi/id/product_uuid", b"");
    assert_eq!((refused.status, text(&refused.stderr).contains("Permission denied")), (1, true));
}
