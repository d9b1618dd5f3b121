use super::*;

const GPU_XML: &str = r#"<domain type='kvm' id='3'>
  <name>instance-0000002a</name>
  <uuid>2f1c0e4a-0000-4000-8000-000000000001</uuid>
  <metadata>
    <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
      <nova:package version="27.5.1"/>
      <nova:name>render-01</nova:name>
      <nova:flavor name="g1.large"><nova:vcpus>2</nova:vcpus></nova:flavor>
      <nova:owner>
        <nova:user uuid="u1">admin</nova:user>
        <nova:project uuid="p1">graphics</nova:project>
      </nova:owner>
    </nova:instance>
  </metadata>
  <memory unit='KiB'>4194304</memory>
  <vcpu placement='static'>2</vcpu>
  <cputune><vcpupin vcpu='0' cpuset='16'/><vcpupin vcpu='1' cpuset='17'/></cputune>
  <numatune><memory mode='strict' nodeset='1'/></numatune>
  <cpu mode='host-model'><numa><cell id='0' cpus='0-1' memory='4194304' unit='KiB'/></numa></cpu>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/nova/instances/x/disk'/>
      <backingStore type='file'><format type='raw'/><source file='/var/lib/nova/instances/_base/abc'/><backingStore/></backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='bridge'><mac address='fa:16:3e:00:00:01'/><source bridge='br-int'/><model type='virtio'/></interface>
    <interface type='hostdev' managed='yes'><mac address='fa:16:3e:5a:01:02'/>
      <source><address type='pci' domain='0x0000' bus='0x3b' slot='0x02' function='0x1'/></source></interface>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source><address domain='0x0000' bus='0x81' slot='0x00' function='0x0'/></source>
    </hostdev>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0' state='connected'/></channel>
  </devices>
</domain>
"#;

#[test]
fn domain_xml_gives_nova_metadata_devices_pinning_and_numa() {
    let xml = parse_domain_xml(GPU_XML).unwrap();
    let nova = xml.nova.as_ref().unwrap();
    assert_eq!(
        (nova.name.as_str(), nova.flavor.as_deref(), nova.project.as_deref()),
        ("render-01", Some("g1.large"), Some("graphics"))
    );
    assert_eq!(xml.disks[0].backing, vec!["/var/lib/nova/instances/_base/abc".to_owned()]);
    assert_eq!(xml.disks[0].format.as_deref(), Some("qcow2"));
    assert_eq!(
        xml.host_devices,
        vec![
            HostDevice { kind: HostDeviceKind::SriovVf, address: "0000:3b:02.1".into() },
            HostDevice { kind: HostDeviceKind::PciPassthrough, address: "0000:81:00.0".into() },
        ]
    );
    assert_eq!(xml.nics.len(), 2);
    assert_eq!(xml.cpu_pinning, vec![(0, "16".into()), (1, "17".into())]);
    assert_eq!((xml.numa_nodeset.as_deref(), xml.guest_numa_cells, xml.agent_channel), (Some("1"), 1, true));
    let migration = xml.migratability(true);
    assert_eq!(migration.label(), "cold only");
    assert!(migration.reasons().iter().any(|r| r.contains("PCI passthrough 0000:81:00.0")), "{migration:?}");
}

#[test]
fn without_nova_metadata_a_domain_cannot_move_through_nova() {
    // The same element names in another namespace are not Nova's.
    let xml =
        parse_domain_xml(&GPU_XML.replace("http://openstack.org/xmlns/libvirt/nova/1.1", "urn:example:other")).unwrap();
    assert!(xml.nova.is_none());
    assert_eq!(xml.migratability(true).label(), "not at all");
}

#[test]
fn a_plain_running_guest_moves_live_and_a_stopped_one_cold() {
    let plain = r#"<domain><name>d</name><uuid>u</uuid><metadata><nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.0"><nova:name>n</nova:name></nova:instance></metadata>
      <devices><disk type='network' device='disk'><source protocol='rbd' name='vms/u_disk'/><target dev='vda'/></disk></devices></domain>"#;
    let xml = parse_domain_xml(plain).unwrap();
    assert_eq!(xml.disks[0].source.as_deref(), Some("rbd:vms/u_disk"));
    assert!(!xml.agent_channel);
    assert_eq!(xml.migratability(true), Migratability::Live(Vec::new()));
    assert_eq!(xml.migratability(false).label(), "cold only");
}

#[test]
fn domstats_are_summed_per_domain_and_overall() {
    let text = "Domain: 'a'\n  state.state=1\n  cpu.time=100\n  balloon.current=10\n  vcpu.current=2\n  net.count=2\n  net.0.name=tap1\n  net.0.rx.bytes=5\n  net.1.rx.bytes=7\n  block.0.capacity=1000\n\nDomain: 'b'\n  state.state=5\n  balloon.maximum=20\n  vcpu.current=1\n\n";
    let stats = parse_domstats(text).unwrap();
    assert_eq!(stats.len(), 2);
    assert_eq!((stats[0].name.as_str(), stats[0].net_rx_bytes, stats[0].cpu_time_ns), ("a", 12, 100));
    let total = DomainStats::total(&stats);
    assert_eq!(
        (total.vcpus, total.memory_current_kib, total.memory_maximum_kib, total.block_capacity_bytes),
        (3, 10, 20, 1000)
    );
    assert!(parse_domstats("  cpu.time=1\n").is_err());
}

#[test]
fn dominfo_is_typed() {
    let text = "Id:             3\nName:           instance-1\nUUID:           u\nState:          running\nCPU(s):         4\nMax memory:     8388608 KiB\nUsed memory:    8388608 KiB\nPersistent:     yes\nAutostart:      enable\n";
    let info = parse_dominfo(text).unwrap();
    assert_eq!((info.vcpus, info.max_memory_kib, info.autostart, info.running()), (4, 8388608, true, true));
}

#[test]
fn guest_output_is_decoded_escaped_and_signals_become_exit_codes() {
    let status = json!({"exited": true, "exitcode": 3, "out-data": "aGkbWzJKCg==", "err-data": "b29wcwo="});
    let output = guest_output(&status, 2);
    assert_eq!((output.exit_code, output.stdout.as_str(), output.stderr.as_str()), (3, "hi\\x1b[2J\n", "oops\n"));
    assert_eq!(guest_output(&json!({"exited": true, "signal": 9}), 1).exit_code, 137);
    assert!(guest_output(&json!({"exited": true, "exitcode": 0, "out-truncated": true}), 1).truncated);
}

#[test]
fn power_refuses_what_the_state_does_not_allow() {
    assert_eq!(PowerAction::Start.refusal(true), Some("is already running"));
    assert_eq!(PowerAction::Stop.refusal(false), Some("is not running"));
    assert_eq!(PowerAction::Reboot.refusal(true), None);
}
