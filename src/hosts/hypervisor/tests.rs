use super::*;
use crate::ssh::fake::{FakeShell, Reply};

const OS_RELEASE_ROCKY9: &str = r#"NAME="Rocky Linux"
VERSION="9.4 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.4"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"
ANSI_COLOR="0;32"
LOGO="fedora-logo-icon"
CPE_NAME="cpe:/o:rocky:rocky:9::baseos"
HOME_URL="https://rockylinux.org/"
# a comment
ROCKY_SUPPORT_PRODUCT="Rocky-Linux-9"
"#;

const VIRSH_LIST: &str = " Id   Name                         State
-----------------------------------------------------
 1    instance-0000a1b2            running
 7    my vm with spaces            paused
 -    instance-0000a1b4            shut off
 -    shut off lab copy            shut off
 12   in shutdown soon             in shutdown

";

const VIRSH_LIST_EMPTY: &str = " Id   Name   State
--------------------

";

const LSBLK_ROCKY9: &str = r#"{
   "blockdevices": [
      {"name":"/dev/sda", "type":"disk", "size":480103981056, "fstype":null, "mountpoint":null,
         "children": [
            {"name":"/dev/sda1", "type":"part", "size":629145600, "fstype":"vfat", "mountpoint":"/boot/efi"},
            {"name":"/dev/sda2", "type":"part", "size":1073741824, "fstype":"xfs", "mountpoint":"/boot"},
            {"name":"/dev/sda3", "type":"part", "size":478399168512, "fstype":"LVM2_member", "mountpoint":null,
               "children": [
                  {"name":"/dev/mapper/rl-root", "type":"lvm", "size":75161927680, "fstype":"xfs", "mountpoint":"/"}
               ]
            }
         ]
      },
      {"name":"/dev/nvme0n1", "type":"disk", "size":3840755982336, "fstype":null, "mountpoint":null}
   ]
}
"#;

/// util-linux 2.32 (Rocky 8) prints every value as a string.
const LSBLK_ROCKY8: &str = r#"{
   "blockdevices": [
      {"name": "/dev/nvme0n1", "type": "disk", "size": "3840755982336", "fstype": null, "mountpoint": null,
         "children": [
            {"name": "/dev/nvme0n1p1", "type": "part", "size": "3840754933760", "fstype": "linux_raid_member", "mountpoint": null,
               "children": [
                  {"name": "/dev/md0", "type": "raid0", "size": "7681240064000", "fstype": "xfs", "mountpoint": "/var/lib/nova/instances"}
               ]
            }
         ]
      }
   ]
}
"#;

const LSPCI: &str = "\
00:00.0 Host bridge: Intel Corporation Device 09a2 (rev 04)
17:00.0 3D controller: NVIDIA Corporation GA100 [A100 PCIe 80GB] (rev a1)
31:00.0 Ethernet controller: Mellanox Technologies MT28908 Family [ConnectX-6]
31:00.1 Ethernet controller: Mellanox Technologies MT28908 Family [ConnectX-6]
";

const MDADM_DETAIL: &str = "/dev/md0:
           Version : 1.2
     Creation Time : Tue Mar  4 10:12:01 2025
        Raid Level : raid0
        Array Size : 7501211648 (6.99 TiB 7.68 TB)
      Raid Devices : 2
     Total Devices : 2
       Persistence : Superblock is persistent

       Update Time : Tue Mar  4 10:12:01 2025
             State : clean
    Active Devices : 2
   Working Devices : 2
    Failed Devices : 0
     Spare Devices : 0

            Layout : -unknown-
        Chunk Size : 512K

Consistency Policy : none

              Name : hv42.example.org:0  (local to host hv42.example.org)
              UUID : 5d3a9a7e:2c1b6f0e:9b1c7a55:0f2e8d11
            Events : 0

    Number   Major   Minor   RaidDevice State
       0     259        5        0      active sync   /dev/nvme0n1p1
       1     259        7        1      active sync   /dev/nvme1n1p1
";

#[test]
fn os_release_is_parsed_from_key_values() {
    let release = parse_os_release(OS_RELEASE_ROCKY9).expect("parsed");
    assert_eq!((release.id.as_str(), release.version_id.as_str()), ("rocky", "9.4"));
    assert_eq!(release.pretty_name.as_deref(), Some("Rocky Linux 9.4 (Blue Onyx)"));
    assert!(release.is("rocky", "9"));
    assert!(!release.is("rocky", "8"));
    assert_eq!(parse_os_release("ID=rocky\nVERSION_ID='8.10'\n").expect("parsed").major_version(), "8");
    assert!(parse_os_release("NAME=x\n").is_none());
}

#[test]
fn virsh_list_keeps_names_with_spaces_and_two_word_states() {
    let domains = parse_virsh_list(VIRSH_LIST).expect("parsed");
    let rows: Vec<(Option<u32>, &str, &str)> =
        domains.iter().map(|d| (d.id, d.name.as_str(), d.state.as_str())).collect();
    assert_eq!(
        rows,
        vec![
            (Some(1), "instance-0000a1b2", "running"),
            (Some(7), "my vm with spaces", "paused"),
            (None, "instance-0000a1b4", "shut off"),
            (None, "shut off lab copy", "shut off"),
            (Some(12), "in shutdown soon", "in shutdown"),
        ]
    );
    assert_eq!(parse_virsh_list(VIRSH_LIST_EMPTY).expect("parsed"), vec![]);
    assert!(parse_virsh_list("error: failed to connect to the hypervisor\n").is_err());
}

#[test]
fn lsblk_json_of_both_util_linux_generations() {
    let devices = parse_lsblk(LSBLK_ROCKY9).expect("parsed");
    assert_eq!(devices.len(), 2);
    let root = devices[0].find("/dev/mapper/rl-root").expect("found");
    assert_eq!((root.kind.as_str(), root.mountpoint.as_deref()), ("lvm", Some("/")));
    assert_eq!(devices[1].size, Some(3_840_755_982_336));
    assert_eq!(devices[0].in_use().as_deref(), Some("/dev/sda1 is mounted at /boot/efi"));
    assert_eq!(devices[1].in_use(), None);

    let old = parse_lsblk(LSBLK_ROCKY8).expect("parsed");
    assert_eq!(old[0].size, Some(3_840_755_982_336));
    assert_eq!(old[0].in_use().as_deref(), Some("/dev/nvme0n1p1 holds /dev/md0 (raid0)"));
}

#[test]
fn lspci_is_filtered_in_rust() {
    let devices = parse_lspci(LSPCI);
    assert_eq!(devices.0.len(), 4);
    assert_eq!(devices.nvidia().len(), 1);
    assert_eq!(devices.nvidia()[0].class, "3D controller");
    assert_eq!(devices.mellanox().len(), 2);
    assert_eq!(parse_lspci("00:00.0 Host bridge: Intel Corporation Device 09a2\n").mellanox().len(), 0);
}

#[test]
fn mdadm_detail_and_fstab() {
    let array = parse_mdadm_detail("/dev/md0", MDADM_DETAIL).expect("parsed");
    assert_eq!(array.level, "raid0");
    assert_eq!(array.members, vec!["/dev/nvme0n1p1", "/dev/nvme1n1p1"]);

    let fstab = "# /etc/fstab\n/dev/mapper/rl-root /  xfs defaults 0 0\nUUID=ab-12 /boot xfs defaults 0 0\n\n\
                 /dev/nvme0n1\t/var/lib/nova/instances xfs rw,relatime 0 0\n";
    let entries = parse_fstab(fstab);
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[2].device, "/dev/nvme0n1");
    assert_eq!(entries[2].mountpoint, "/var/lib/nova/instances");
}

fn hypervisor(shell: &Arc<FakeShell>) -> Hypervisor {
    Hypervisor::new(shell.clone(), "hv42.example.org")
}

const NVME_LSBLK: &str = "lsblk -J -b -p -o NAME,TYPE,SIZE,FSTYPE,MOUNTPOINT /dev/nvme0n1";

#[tokio::test]
async fn mkfs_refuses_a_mounted_device_and_never_runs() {
    let shell = Arc::new(FakeShell::new());
    shell.on("test -b /dev/nvme0n1", Reply::ok(""));
    shell.on(
        NVME_LSBLK,
        Reply::ok(r#"{"blockdevices":[{"name":"/dev/nvme0n1","type":"disk","size":1,"fstype":"xfs","mountpoint":"/var/lib/nova/instances"}]}"#),
    );
    let err = hypervisor(&shell).make_xfs("/dev/nvme0n1", Overwrite::Allowed).await.expect_err("refused");
    assert_eq!(
        err.to_string(),
        "root@hv42.example.org: mkfs-xfs: refused: /dev/nvme0n1 is mounted at /var/lib/nova/instances"
    );
    assert!(!shell.command_lines().iter().any(|line| line.starts_with("mkfs")));
}

#[tokio::test]
async fn mkfs_keeps_an_existing_filesystem_unless_allowed() {
    let shell = Arc::new(FakeShell::new());
    shell.on("test -b /dev/nvme0n1", Reply::ok(""));
    shell.on(NVME_LSBLK, Reply::ok(r#"{"blockdevices":[{"name":"/dev/nvme0n1","type":"disk","size":1}]}"#));
    shell.on("blkid -p -o export /dev/nvme0n1", Reply::ok("DEVNAME=/dev/nvme0n1\nTYPE=ext4\n"));
    let err = hypervisor(&shell).make_xfs("/dev/nvme0n1", Overwrite::Never).await.expect_err("refused");
    assert!(err.to_string().contains("holds a ext4 filesystem"), "{err}");

    shell.on("mkfs.xfs -f /dev/nvme0n1", Reply::ok("meta-data=/dev/nvme0n1\n"));
    let outcome = hypervisor(&shell).make_xfs("/dev/nvme0n1", Overwrite::Allowed).await.expect("formatted");
    assert!(outcome.changed());

    let shell = Arc::new(FakeShell::new());
    shell.on("test -b /dev/nvme0n1", Reply::ok(""));
    shell.on(NVME_LSBLK, Reply::ok(r#"{"blockdevices":[{"name":"/dev/nvme0n1","type":"disk","size":1}]}"#));
    shell.on("blkid -p -o export /dev/nvme0n1", Reply::exit(2, "", ""));
    shell.on("mkfs.xfs /dev/nvme0n1", Reply::ok(""));
    assert!(hypervisor(&shell).make_xfs("/dev/nvme0n1", Overwrite::Never).await.expect("formatted").changed());
}

#[tokio::test]
async fn fstab_entry_is_appended_once() {
    let entry = FstabEntry {
        device: "/dev/nvme0n1".into(),
        mountpoint: "/var/lib/nova/instances".into(),
        fstype: "xfs".into(),
        options: "rw,relatime,attr2,inode64,logbufs=8,logbsize=32k,noquota".into(),
    };
    let shell = Arc::new(FakeShell::new());
    shell.on("cat /etc/fstab", Reply::ok("/dev/mapper/rl-root / xfs defaults 0 0\n"));
    shell.on("cat /etc/fstab", Reply::ok(format!("/dev/mapper/rl-root / xfs defaults 0 0\n{}\n", entry.line())));
    let append = RemoteCommand::script("fstab-append", &super::append_line_to("/etc/fstab"), &[&entry.line()]);
    shell.on(&append.command_line(), Reply::ok(""));
    let hv = hypervisor(&shell);
    assert!(hv.ensure_fstab_entry(&entry).await.expect("appended").changed());
    assert!(!hv.ensure_fstab_entry(&entry).await.expect("present").changed());
    assert_eq!(shell.command_lines().iter().filter(|line| line.starts_with("sh -c")).count(), 1);
}

#[tokio::test]
async fn a_failed_update_captures_resolv_conf() {
    let shell = Arc::new(FakeShell::new());
    shell.on("dnf -y update qemu-kvm", Reply::exit(1, "", "Error: Failed to download metadata for repo 'appstream'\n"));
    shell.on("cat /etc/resolv.conf", Reply::ok("nameserver 10.0.0.53\n"));
    let update = hypervisor(&shell).update_packages(&["qemu-kvm"]).await.expect("ran");
    assert!(!update.succeeded());
    assert_eq!(update.resolv_conf.expect("read").stdout, "nameserver 10.0.0.53\n");
}

#[tokio::test]
async fn efi_check_is_a_boolean_not_an_error() {
    let shell = Arc::new(FakeShell::new());
    shell.on("test -d /sys/firmware/efi", Reply::exit(1, "", ""));
    assert!(!hypervisor(&shell).is_efi().await.expect("answered"));
}

#[tokio::test]
async fn root_access_is_granted_through_sudo_with_the_password_on_stdin() {
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB operator@laptop";
    let sudo = Sudo::Password(Secret::new("s3cret"));
    let expected_prefix = "sudo -S -p '' sh -c ";
    let recorder = Arc::new(FakeShell::new());
    recorder.on_user("ops", Reply::ok(""));
    // First probe refused, then (after the key is added) accepted.
    recorder.on("true", Reply::refused());
    recorder.on("true", Reply::ok(""));
    let access = ensure_root_access(recorder.clone(), "hv42.example.org", "ops", key, &sudo).await.expect("granted");
    assert!(matches!(access, RootAccess::Granted(_)));
    let calls = recorder.calls();
    let sudo_call = calls.iter().find(|call| call.target.user == "ops").expect("sudo ran");
    assert!(sudo_call.command_line.starts_with(expected_prefix), "{}", sudo_call.command_line);
    assert!(sudo_call.command_line.ends_with(&format!("sh '{key}'")), "{}", sudo_call.command_line);
    assert!(!sudo_call.command_line.contains("s3cret"));
    assert_eq!(sudo_call.stdin.as_deref(), Some("s3cret\n"));
    assert_eq!(recorder.closed(), vec![Target::new("ops", "hv42.example.org")]);
}

#[tokio::test]
async fn root_access_already_there_touches_nothing() {
    let shell = Arc::new(FakeShell::new());
    shell.on("true", Reply::ok(""));
    let access = ensure_root_access(shell.clone(), "hv42", "ops", "ssh-ed25519 AAAA x", &Sudo::NoPassword)
        .await
        .expect("probed");
    assert!(matches!(access, RootAccess::AlreadyGranted));
    assert_eq!(shell.calls().len(), 1);
}

#[tokio::test]
async fn root_access_without_sudo_is_refused_clearly() {
    let shell = Arc::new(FakeShell::new());
    shell.on("true", Reply::refused());
    let err = ensure_root_access(shell.clone(), "hv42", "ops", "ssh-ed25519 AAAA x", &Sudo::Disabled)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("sudo is disabled"), "{err}");
}
