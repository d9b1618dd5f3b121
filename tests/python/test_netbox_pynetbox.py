"""pynetbox, unmodified, against the lab's NetBox emulator.

Run by lab/tests/real_clients_jira_netbox.rs with LAB_NETBOX_URL, LAB_NETBOX_TOKEN
and LAB_NETBOX_DEVICE (an active device with an out-of-band IP) in the environment.
"""

import os
import sys

import pynetbox

url = os.environ["LAB_NETBOX_URL"]
token = os.environ["LAB_NETBOX_TOKEN"]
name = os.environ["LAB_NETBOX_DEVICE"]
checks = 0


def check(condition, what):
    global checks
    if not condition:
        sys.exit(f"FAILED: {what}")
    checks += 1


nb = pynetbox.api(url, token=token)
check(nb.version == "4.6", f"version from the API-Version header: {nb.version!r}")
check(nb.status()["netbox-version"].startswith("4.6"), "status()")

# Find a device by exact name, read nested objects.
device = nb.dcim.devices.get(name=name)
check(device is not None and device.name == name, "dcim.devices.get(name=)")
check(device.status.value == "active", f"status is a choice object: {device.status!r}")
check(device.role.slug == "openstack-prod-kolla-compute", "nested role")
check(device.device_type.manufacturer.name, "nested device type and manufacturer")
check(device.oob_ip is not None and "/" in device.oob_ip.address, "nested oob_ip")
check(nb.dcim.devices.get(name=name.upper()) is None, "exact name is case-sensitive")
check(nb.dcim.devices.get(name__ie=name.upper()).id == device.id, "name__ie")

# Save a status change: pynetbox PATCHes only the changed field to the device's url.
device.status = "offline"
check(device.save(), "save() of a status change")
check(nb.dcim.devices.get(device.id).status.value == "offline", "status change stored")
check(not device.save(), "save() with nothing changed sends nothing")

# Custom fields are merged.
device.custom_fields["maintenance_ticket"] = "MH-101"
check(device.save(), "save() of a custom field")
again = nb.dcim.devices.get(device.id)
check(again.custom_fields == {"maintenance_ticket": "MH-101", "migration_state": None}, "custom fields merged")

# Roles: get by slug, switch the device's role by object.
maintenance = nb.dcim.device_roles.get(slug="openstack-prod-maintenance")
check(maintenance is not None and maintenance.name == "Openstack Prod Maintenance", "dcim.device_roles.get(slug=)")
check(nb.dcim.device_roles.get(slug="no-such-role") is None, "unknown role slug gives None")
again.role = maintenance
check(again.save(), "save() of a role change")
check(nb.dcim.devices.get(device.id).role.id == maintenance.id, "role change stored")
check(nb.dcim.devices.count(role="openstack-prod-maintenance") == 1, "count() with a role filter")

# Interfaces and IP addresses by their filters.
interfaces = list(nb.dcim.interfaces.filter(device_id=device.id))
check(sorted(i.name for i in interfaces) == ["bmc0", "eth0"], "interfaces.filter(device_id=)")
bmc = nb.dcim.interfaces.get(device_id=device.id, name="bmc0")
check(bmc is not None and bmc.mgmt_only, "interfaces.get(device_id=, name=)")
addresses = list(nb.ipam.ip_addresses.filter(interface_id=bmc.id))
check(len(addresses) == 1 and addresses[0].address == device.oob_ip.address, "ip_addresses.filter(interface_id=)")
check(addresses[0].assigned_object.device.id == device.id, "assigned_object nests the interface and its device")
check(len(list(nb.ipam.ip_addresses.filter(device_id=device.id))) == 1, "ip_addresses.filter(device_id=)")

# Paging: every device, through small offset pages and (4.6+) cursor pages.
total = nb.dcim.devices.count()
check(len(list(nb.dcim.devices.all(limit=7))) == total, "all() across offset pages")
check(len(list(nb.dcim.devices.filter(site="lab", limit=5))) == total, "filter() across offset pages")
cursor_api = pynetbox.api(url, token=token, pagination="cursor")
check(len(list(cursor_api.dcim.devices.all(limit=7))) == total, "all() across cursor pages")

# Errors come back as RequestError with NetBox's status codes.
try:
    list(nb.dcim.devices.filter(role="no-such-role"))
    check(False, "a bad related filter value raises")
except pynetbox.RequestError as err:
    check(err.req.status_code == 400, "a bad related filter value is 400")
try:
    pynetbox.api(url, token="0" * 40).dcim.devices.count()
    check(False, "a bad token raises")
except pynetbox.RequestError as err:
    check(err.req.status_code == 403, "a bad token is 403")

print(f"pynetbox {pynetbox.__version__}: {checks} checks passed")
