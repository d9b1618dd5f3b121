#!/usr/bin/env bash
# The real `openstack` CLI (python-openstackclient + openstacksdk) against the
# lab's Keystone and Nova. Run by lab/tests/real_clients_openstack.rs, which
# sets OS_* for the lab and LAB_HOST (a campaign host) and LAB_SERVER (an
# ACTIVE server on it). Prints what each step proved; exits non-zero on the
# first failure.
set -euo pipefail

fail() { echo "FAIL: $*" >&2; exit 1; }
json_field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(d$1)"; }

echo "== compute service list"
services=$(openstack compute service list -f json)
echo "$services" | python3 -c "
import json, sys, os
rows = json.load(sys.stdin)
mine = [r for r in rows if r['Host'] == os.environ['LAB_HOST'] and r['Binary'] == 'nova-compute']
assert len(mine) == 1, rows[:3]
assert mine[0]['Status'] == 'enabled' and mine[0]['State'] == 'up', mine[0]
" || fail "service list"

echo "== compute service set --disable --disable-reason"
openstack compute service set --disable --disable-reason "hv migration MH-101" "$LAB_HOST" nova-compute
openstack compute service list --host "$LAB_HOST" --service nova-compute --long -f json | python3 -c "
import json, sys
row = json.load(sys.stdin)[0]
assert row['Status'] == 'disabled', row
assert row['Disabled Reason'] == 'hv migration MH-101', row
" || fail "service disabled with its reason"

echo "== server list --all-projects --host"
openstack server list --all-projects --host "$LAB_HOST" --long -f json | python3 -c "
import json, sys, os
rows = json.load(sys.stdin)
ids = [r['ID'] for r in rows]
assert os.environ['LAB_SERVER'] in ids, ids
assert all(r['Host'] == os.environ['LAB_HOST'] for r in rows), rows
" || fail "server list by host"

echo "== hypervisor show"
openstack hypervisor show "$LAB_HOST" -f json | python3 -c "
import json, sys, os
h = json.load(sys.stdin)
assert h['hypervisor_hostname'] == os.environ['LAB_HOST'], h
assert h['state'] == 'up' and h['status'] == 'disabled', h
" || fail "hypervisor show"

echo "== server migrate --live-migration"
openstack server migrate --live-migration "$LAB_SERVER"
for _ in $(seq 1 100); do
  status=$(openstack server show "$LAB_SERVER" -f value -c status)
  host=$(openstack server show "$LAB_SERVER" -f value -c OS-EXT-SRV-ATTR:host)
  [ "$status" = ACTIVE ] && [ "$host" != "$LAB_HOST" ] && break
  sleep 0.2
done
[ "$status" = ACTIVE ] && [ "$host" != "$LAB_HOST" ] || fail "server never left $LAB_HOST (status $status, host $host)"
echo "moved to $host"

echo "== server migration list"
openstack server migration list --server "$LAB_SERVER" -f json | python3 -c "
import json, sys
rows = json.load(sys.stdin)
assert rows and rows[0]['Status'] == 'completed', rows
assert rows[0]['Type'] == 'live-migration', rows
" || fail "server migration list"

echo "== compute service set --enable"
openstack compute service set --enable "$LAB_HOST" nova-compute
echo "all openstack CLI checks passed"
