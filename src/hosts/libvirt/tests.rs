use super::*;
use crate::ssh::fake::{FakeShell, Reply};

/// `virsh capabilities` of a host with `cells` NUMA cells; each entry of
/// `cpus` is (cell, socket, core) for one logical CPU.
fn capabilities(summary: &str, cells: usize, cpus: &[(usize, u32, u32)]) -> String {
    let mut topology = format!("    <topology>\n      <cells num='{cells}'>\n");
    for cell in 0..cells {
        let mine: Vec<_> = cpus.iter().enumerate().filter(|(_, cpu)| cpu.0 == cell).collect();
        topology.push_str(&format!(
            "        <cell id='{cell}'>\n          <memory unit='KiB'>131542400</memory>\n          \
             <pages unit='KiB' size='4'>32885600</pages>\n          <distances>\n            \
             <sibling id='0' value='10'/>\n          </distances>\n          <cpus num='{}'>\n",
            mine.len()
        ));
        for (id, (_, socket, core)) in mine {
            topology.push_str(&format!(
                "            <cpu id='{id}' socket_id='{socket}' die_id='0' core_id='{core}' siblings='{id}'/>\n"
            ));
        }
        topology.push_str("          </cpus>\n        </cell>\n");
    }
    topology.push_str("      </cells>\n    </topology>\n");
    format!(
        "<capabilities>

  <host>
    <uuid>4c4c4544-0051-4710-8052-b4c04f4e3233</uuid>
    <cpu>
      <arch>x86_64</arch>
      <model>Icelake-Server</model>
      <vendor>Intel</vendor>
      <microcode version='218104611'/>
      <signature family='6' model='106' stepping='6'/>
      <counter name='tsc' frequency='2000000000' scaling='no'/>
      {summary}
      <maxphysaddr mode='emulate' bits='46'/>
      <feature name='ds'/>
      <feature name='vmx'/>
      <pages unit='KiB' size='4'/>
      <pages unit='KiB' size='2048'/>
    </cpu>
    <power_management>
      <suspend_mem/>
    </power_management>
    <iommu support='yes'/>
    <migration_features>
      <live/>
      <uri_transports>
        <uri_transport>tcp</uri_transport>
      </uri_transports>
    </migration_features>
{topology}    <cache>
      <bank id='0' level='3' type='both' size='48' unit='MiB' cpus='0-7'/>
    </cache>
    <secmodel>
      <model>selinux</model>
      <doi>0</doi>
    </secmodel>
  </host>

  <guest>
    <os_type>hvm</os_type>
    <arch name='x86_64'>
      <wordsize>64</wordsize>
      <emulator>/usr/libexec/qemu-kvm</emulator>
      <machine maxCpus='710'>pc-q35-rhel9.4.0</machine>
      <domain type='kvm'/>
    </arch>
  </guest>

</capabilities>
"
    )
}

#[test]
fn one_cell_without_hyper_threading() {
    let cpus: Vec<_> = (0..8).map(|core| (0, 0, core)).collect();
    let xml = capabilities("<topology sockets='1' dies='1' cores='8' threads='1'/>", 1, &cpus);
    let caps = parse_capabilities(&xml).expect("parsed");
    assert_eq!(caps.uuid, "4c4c4544-0051-4710-8052-b4c04f4e3233");
    assert_eq!(
        (caps.arch.as_str(), caps.vendor.as_deref(), caps.model.as_deref()),
        ("x86_64", Some("Intel"), Some("Icelake-Server"))
    );
    assert_eq!(caps.topology, CpuTotals { sockets: 1, cores: 8, threads: 8 });
    assert_eq!(caps.numa_cells, 1);
}

#[test]
fn two_cells_two_sockets_with_hyper_threading_are_host_totals() {
    // Linux numbers the second thread of each core after all first threads.
    let mut cpus = Vec::new();
    for _thread in 0..2 {
        for socket in 0..2u32 {
            for core in 0..4 {
                cpus.push((socket as usize, socket, core));
            }
        }
    }
    let xml = capabilities("<topology sockets='1' dies='1' cores='4' threads='2'/>", 2, &cpus);
    let caps = parse_capabilities(&xml).expect("parsed");
    assert_eq!(caps.topology, CpuTotals { sockets: 2, cores: 8, threads: 16 });
    assert_eq!(caps.numa_cells, 2);
}

#[test]
fn one_socket_split_in_two_cells_is_one_socket() {
    // Sub-NUMA clustering: the per-cell summary would suggest two sockets.
    let cpus: Vec<_> = (0..8).map(|core| (usize::from(core >= 4), 0, core as u32)).collect();
    let xml = capabilities("<topology sockets='1' dies='1' cores='4' threads='1'/>", 2, &cpus);
    assert_eq!(parse_capabilities(&xml).expect("parsed").topology, CpuTotals { sockets: 1, cores: 8, threads: 8 });
}

#[test]
fn without_cpu_lists_the_summary_is_scaled_by_cells() {
    let xml = capabilities("<topology sockets='1' dies='1' cores='16' threads='2'/>", 2, &[]);
    assert_eq!(parse_capabilities(&xml).expect("parsed").topology, CpuTotals { sockets: 2, cores: 32, threads: 64 });
    assert!(parse_capabilities("<capabilities><host/></capabilities>").is_err());
    assert!(parse_capabilities("not xml").is_err());
}

const NODEMEMSTATS: &str = "total  :          263846236 KiB\nfree   :          198231552 KiB\n\
                            buffers:               4096 KiB\ncached :           12582912 KiB\n";

const DOMINFO_RUNNING: &str = "Id:             1
Name:           instance-0000a1b2
UUID:           2f0c6f3e-8d4b-4a0e-9d6e-1a2b3c4d5e6f
OS Type:        hvm
State:          running
CPU(s):         4
CPU time:       1234.5s
Max memory:     8388608 KiB
Used memory:    8388608 KiB
Persistent:     yes
Autostart:      disable
Managed save:   no
Security model: selinux
Security DOI:   0
Security label: system_u:system_r:svirt_t:s0:c100,c200 (enforcing)

";

const DOMINFO_SHUT_OFF: &str = "Id:             -
Name:           my vm: copy
UUID:           9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d
OS Type:        hvm
State:          shut off
CPU(s):         2
Max memory:     2097152 KiB
Used memory:    2097152 KiB
Persistent:     yes
Autostart:      disable
Managed save:   no
Security model: selinux
Security DOI:   0

";

#[test]
fn memory_and_domain_info() {
    assert_eq!(parse_nodememstats_total_kib(NODEMEMSTATS), Some(263_846_236));
    let info = parse_dominfo(DOMINFO_SHUT_OFF).expect("parsed");
    assert_eq!(
        (info.uuid.as_str(), info.name.as_str(), info.state.as_str()),
        ("9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d", "my vm: copy", "shut off")
    );
}

#[tokio::test]
async fn host_details_for_scc() {
    let shell = Arc::new(FakeShell::new());
    let cpus: Vec<_> = (0..8).map(|core| (0, 0, core)).collect();
    shell.on(
        "virsh capabilities",
        Reply::ok(capabilities("<topology sockets='1' dies='1' cores='8' threads='1'/>", 1, &cpus)),
    );
    shell.on("virsh nodememstats", Reply::ok(NODEMEMSTATS));
    shell.on(
        "virsh list --all --uuid",
        Reply::ok("2f0c6f3e-8d4b-4a0e-9d6e-1a2b3c4d5e6f\n9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d\n0000-gone\n\n"),
    );
    shell.on("virsh dominfo 2f0c6f3e-8d4b-4a0e-9d6e-1a2b3c4d5e6f", Reply::ok(DOMINFO_RUNNING));
    shell.on("virsh dominfo 9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d", Reply::ok(DOMINFO_SHUT_OFF));
    shell.on("virsh dominfo 0000-gone", Reply::exit(1, "", "error: failed to get domain '0000-gone'\n"));
    let details = Libvirt::new(shell.clone(), "hv42").host_details().await.expect("collected");
    assert_eq!(details.ram_mib, 257_662);
    assert_eq!(details.capabilities.topology.threads, 8);
    let states: Vec<&str> = details.domains.iter().map(|d| d.state.as_str()).collect();
    assert_eq!(states, vec!["running", "shut off"]);
}
