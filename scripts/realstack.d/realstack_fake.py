"""Nova virt driver used by the realstack test backend.

It is upstream ``nova.virt.fake.FakeLiveMigrateDriver`` (or ``FakeDriver``)
unchanged, except for the node identity, so that a fake hypervisor can be
stopped (its service goes "down") and started again against the same database:

* upstream FakeDriver derives the compute-node UUID from
  ``oslo_utils.fixture.uuidsentinel``: a *new random* UUID in every process, so
  a restart fails with ``InvalidConfiguration: Duplicate compute node record``;
* upstream FakeDriver never writes ``<state_path>/compute_id``, so a restart
  fails with ``InvalidConfiguration: No local node identity found, but this is
  not our first startup on this host``.

Here the node UUID is a deterministic uuid5 of the node name (= CONF.host),
and it is written to ``<state_path>/compute_id`` the way a real driver's
node identity is persisted. Also, upstream FakeDriver keeps its guests only in
memory and its ``resume_state_on_host_boot`` is a no-op, so after a restart every
guest shows power state NOSTATE; here it re-registers the guest as running (used
with ``[DEFAULT] resume_guests_state_on_host_boot = true``), like a hypervisor
that restarts its guests on boot.

Nova imports drivers only as ``nova.virt.<compute_driver>``, so scripts/realstack links
this file into the installed nova/virt/ package and sets
``compute_driver = realstack_fake.StableFakeLiveMigrateDriver``.
"""

import uuid

from nova.compute import power_state
import nova.virt.node
from nova.virt import fake

_NS = uuid.UUID('6f1d0a52-8c1e-4d7e-9d0c-7e5a1f3b2c44')


def _node_uuid(nodename):
    return str(uuid.uuid5(_NS, nodename))


class _StableNodeIdentity:
    def init_host(self, host):
        super().init_host(host)
        nodes = self.get_available_nodes()
        if len(nodes) == 1 and nova.virt.node.read_local_node_uuid() is None:
            nova.virt.node.write_local_node_uuid(_node_uuid(nodes[0]))

    def get_available_resource(self, nodename):
        res = super().get_available_resource(nodename)
        if res:
            res['uuid'] = _node_uuid(nodename)
        return res

    def get_nodenames_by_uuid(self, refresh=False):
        return {_node_uuid(n): n for n in self.get_available_nodes()}

    def resume_state_on_host_boot(self, context, instance, network_info,
                                  share_info, block_device_info=None):
        self.instances[instance.uuid] = fake.FakeInstance(
            instance.name, power_state.RUNNING, instance.uuid)


class StableFakeLiveMigrateDriver(_StableNodeIdentity, fake.FakeLiveMigrateDriver):
    """Live migration runs ~5 s (status 'running'), then completes; it can be
    force-completed or aborted through the API meanwhile (upstream behaviour)."""


class StableFakeDriver(_StableNodeIdentity, fake.FakeDriver):
    """Live migration completes immediately (upstream FakeDriver behaviour)."""
