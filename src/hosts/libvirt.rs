//! libvirt on a hypervisor, through `virsh` over SSH: what an SCC upload
//! needs (host UUID, CPU totals, RAM, every domain with UUID, name and state).

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{key_values, HostError, Remote};
use crate::ssh::{RemoteCommand, RemoteShell, Target};

/// The `<host>` part of `virsh capabilities`, with CPU counts as host totals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostCapabilities {
    /// The host's system UUID: its identifier for SCC.
    pub uuid: String,
    pub arch: String,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub topology: CpuTotals,
    /// As virtual-host-gatherer reads them (`libvirt.py`): `host/cpu/topology`
    /// `sockets`, `cores × sockets`, `threads × cores`. libvirt gives them per
    /// NUMA cell, so a two-cell host shows one socket's worth.
    pub gatherer_topology: Option<CpuTotals>,
    pub numa_cells: usize,
}

/// Sockets, cores and threads of the whole host (not per socket or per cell).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuTotals {
    pub sockets: u32,
    pub cores: u32,
    pub threads: u32,
}

/// One domain and its state, from `virsh dominfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainInfo {
    pub uuid: String,
    pub name: String,
    /// `running`, `shut off`, `paused`…
    pub state: String,
}

/// Everything an SCC upload needs about one hypervisor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostDetails {
    pub capabilities: HostCapabilities,
    pub ram_mib: u64,
    pub domains: Vec<DomainInfo>,
}

pub struct Libvirt {
    remote: Remote,
}

impl Libvirt {
    /// libvirt on `host`, driven as root.
    pub fn new(shell: Arc<dyn RemoteShell>, host: &str) -> Self {
        Libvirt { remote: Remote::new(shell, Target::root(host)) }
    }

    pub async fn capabilities(&self) -> Result<HostCapabilities, HostError> {
        let action = "virsh-capabilities";
        let output = self.remote.run_ok(&RemoteCommand::new(action, "virsh").arg("capabilities")).await?;
        parse_capabilities(&output.stdout).map_err(|reason| self.remote.unexpected(action, reason))
    }

    /// Total memory in MiB, from `virsh nodememstats`.
    pub async fn memory_mib(&self) -> Result<u64, HostError> {
        let action = "virsh-nodememstats";
        let output = self.remote.run_ok(&RemoteCommand::new(action, "virsh").arg("nodememstats")).await?;
        parse_nodememstats_total_kib(&output.stdout)
            .map(|kib| kib / 1024)
            .ok_or_else(|| self.remote.unexpected(action, "no 'total' line in KiB"))
    }

    /// Every domain, stopped ones included.
    pub async fn domains(&self) -> Result<Vec<DomainInfo>, HostError> {
        let action = "virsh-list-uuid";
        let output = self.remote.run_ok(&RemoteCommand::new(action, "virsh").args(["list", "--all", "--uuid"])).await?;
        let mut domains = Vec::new();
        for uuid in output.stdout.lines().map(str::trim).filter(|line| !line.is_empty()) {
            let action = "virsh-dominfo";
            let info = self.remote.run(&RemoteCommand::new(action, "virsh").args(["dominfo", uuid])).await?;
            if !info.success() {
                // Undefined between the two commands: it is gone, not an error.
                if info.stderr.contains("failed to get domain") || info.stderr.contains("Domain not found") {
                    continue;
                }
                return Err(self.remote.failed(action, &info));
            }
            domains.push(parse_dominfo(&info.stdout).map_err(|reason| self.remote.unexpected(action, reason))?);
        }
        Ok(domains)
    }

    pub async fn host_details(&self) -> Result<HostDetails, HostError> {
        Ok(HostDetails {
            capabilities: self.capabilities().await?,
            ram_mib: self.memory_mib().await?,
            domains: self.domains().await?,
        })
    }
}

pub fn parse_capabilities(xml: &str) -> Result<HostCapabilities, String> {
    let document = roxmltree::Document::parse(xml).map_err(|err| format!("capabilities XML: {err}"))?;
    let host = child(document.root_element(), "host").ok_or("no <host>")?;
    let uuid = child_text(host, "uuid").ok_or("no <host><uuid>")?;
    let cpu = child(host, "cpu").ok_or("no <host><cpu>")?;
    let arch = child_text(cpu, "arch").ok_or("no <cpu><arch>")?;
    let cells: Vec<roxmltree::Node> = child(host, "topology")
        .and_then(|topology| child(topology, "cells"))
        .map(|cells| cells.children().filter(|node| node.has_tag_name("cell")).collect())
        .unwrap_or_default();
    let topology = cpu_totals_from_cells(&cells).or_else(|| cpu_totals_from_summary(cpu, cells.len().max(1)));
    Ok(HostCapabilities {
        uuid,
        arch,
        vendor: child_text(cpu, "vendor"),
        model: child_text(cpu, "model"),
        topology: topology.ok_or("no CPU topology")?,
        gatherer_topology: gatherer_topology(cpu),
        numa_cells: cells.len(),
    })
}

fn gatherer_topology(cpu: roxmltree::Node) -> Option<CpuTotals> {
    let topology = child(cpu, "topology")?;
    let number = |name: &str| topology.attribute(name).and_then(|value| value.parse::<u32>().ok());
    let sockets = number("sockets")?;
    let cores = number("cores")? * sockets;
    Some(CpuTotals { sockets, cores, threads: number("threads")? * cores })
}

/// Counts over every logical CPU of every NUMA cell: distinct sockets,
/// distinct (socket, die, core), and CPUs. Right for several cells per
/// socket (sub-NUMA clustering) and several sockets per cell alike.
fn cpu_totals_from_cells(cells: &[roxmltree::Node]) -> Option<CpuTotals> {
    let mut sockets = BTreeSet::new();
    let mut cores = BTreeSet::new();
    let mut threads = 0u32;
    for cpu in cells.iter().flat_map(|cell| cell.descendants()).filter(|node| node.has_tag_name("cpu")) {
        let socket = cpu.attribute("socket_id")?;
        let die = cpu.attribute("die_id").unwrap_or("0");
        let core = cpu.attribute("core_id")?;
        sockets.insert(socket.to_owned());
        cores.insert((socket.to_owned(), die.to_owned(), core.to_owned()));
        threads += 1;
    }
    (threads > 0).then_some(CpuTotals { sockets: sockets.len() as u32, cores: cores.len() as u32, threads })
}

/// When the cells list no CPUs: `<topology sockets cores threads>` counts per
/// NUMA cell, so it is scaled by the number of cells.
fn cpu_totals_from_summary(cpu: roxmltree::Node, cells: usize) -> Option<CpuTotals> {
    let topology = child(cpu, "topology")?;
    let number = |name: &str| topology.attribute(name).and_then(|value| value.parse::<u32>().ok());
    let sockets = number("sockets")? * cells as u32;
    let dies = number("dies").unwrap_or(1);
    let cores = sockets * dies * number("cores")?;
    Some(CpuTotals { sockets, cores, threads: cores * number("threads")? })
}

fn child<'a, 'input>(node: roxmltree::Node<'a, 'input>, name: &str) -> Option<roxmltree::Node<'a, 'input>> {
    node.children().find(|child| child.has_tag_name(name))
}

fn child_text(node: roxmltree::Node, name: &str) -> Option<String> {
    child(node, name)
        .and_then(|child| child.text())
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(ToOwned::to_owned)
}

/// `total  :  263846236 KiB` from `virsh nodememstats`.
pub fn parse_nodememstats_total_kib(text: &str) -> Option<u64> {
    let (_, value) = key_values(text).into_iter().find(|(key, _)| key == "total")?;
    let mut words = value.split_whitespace();
    let amount: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("KiB") | None => Some(amount),
        _ => None,
    }
}

pub fn parse_dominfo(text: &str) -> Result<DomainInfo, String> {
    let pairs = key_values(text);
    let field = |name: &str| {
        pairs.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone()).ok_or(format!("no {name} field"))
    };
    Ok(DomainInfo { uuid: field("UUID")?, name: field("Name")?, state: field("State")? })
}

#[cfg(test)]
mod tests;
