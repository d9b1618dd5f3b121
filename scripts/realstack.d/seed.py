"""Seeds the real services for a campaign and writes the credentials files.

Run by scripts/realstack with the OpenStack venv's python (openstacksdk, requests, PyYAML).

  seed.py hosts --lab DIR --spares N
      prints Nova's hypervisors: the lab's campaign hosts, then N of its spare hosts
  seed.py seed --lab DIR --out DIR --computes "H1 H2 ..." --vms-per-host N [--bench-hosts B --bench-vms M]
      NetBox: the lab's devices of those hosts (site, manufacturer, device type, role,
      serial, status, interfaces, BMC address) copied into the real NetBox;
      Nova: flavors, an image, servers booted onto each campaign host (the last one of
      each host stopped: SHUTOFF); the last B campaign hosts are the drain benchmark's:
      M running servers each, and their nova-compute disabled (BENCH_REASON) so that no
      other drain's server is scheduled there; writes credentials.yaml (admin), credentials-member.yaml
      (a member-role user) and hypervisors.txt into --out.
      Environment: KS_URL, ADMIN_PASSWORD, MEMBER_PASSWORD, NETBOX_URL, NETBOX_TOKEN, ALERTMANAGER_URL.
Every step looks before it creates: a second run changes nothing.
"""
import argparse
import io
import json
import os
import sys
import time

import openstack
import requests
import yaml


def lab_files(lab_dir):
    with open(os.path.join(lab_dir, 'credentials.yaml')) as f:
        creds = yaml.safe_load(f)
    campaign = []
    with open(os.path.join(lab_dir, 'hypervisors.txt')) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line:
                campaign.append(line.split()[0])
    return creds, campaign


class NetBox:
    def __init__(self, url, token):
        self.url = url.rstrip('/')
        self.s = requests.Session()
        self.s.headers.update({'Authorization': f'Token {token}', 'Accept': 'application/json'})

    def list(self, path, **query):
        query.setdefault('limit', 1000)
        r = self.s.get(f'{self.url}/api/{path}/', params=query, timeout=60)
        r.raise_for_status()
        return r.json()['results']

    def create(self, path, body):
        r = self.s.post(f'{self.url}/api/{path}/', json=body, timeout=60)
        if r.status_code >= 400:
            raise SystemExit(f'NetBox POST {path}: {r.status_code} {r.text[:500]}')
        return r.json()

    def patch(self, path, ident, body):
        r = self.s.patch(f'{self.url}/api/{path}/{ident}/', json=body, timeout=60)
        if r.status_code >= 400:
            raise SystemExit(f'NetBox PATCH {path}/{ident}: {r.status_code} {r.text[:500]}')
        return r.json()

    def get_or_create(self, path, match, body):
        found = self.list(path, **match)
        return found[0] if found else self.create(path, body)


def cmd_hosts(args):
    creds, campaign = lab_files(args.lab)
    lab = NetBox(creds['netbox']['url'], creds['netbox']['token'])
    others = sorted(d['name'] for d in lab.list('dcim/devices') if d['name'] and d['name'] not in campaign
                    and d['name'].startswith('hv'))
    print(' '.join(campaign + others[:args.spares]))


def seed_netbox(lab, real, hosts):
    for name in hosts:
        src = lab.list('dcim/devices', name=name)
        if not src:
            raise SystemExit(f'the lab has no device {name}')
        src = src[0]
        site = real.get_or_create('dcim/sites', {'slug': src['site']['slug']},
                                  {'name': src['site']['name'], 'slug': src['site']['slug'], 'status': 'active'})
        man = src['device_type']['manufacturer']
        manufacturer = real.get_or_create('dcim/manufacturers', {'slug': man['slug']},
                                          {'name': man['name'], 'slug': man['slug']})
        dt = src['device_type']
        device_type = real.get_or_create('dcim/device-types', {'slug': dt['slug']},
                                         {'manufacturer': manufacturer['id'], 'model': dt['model'], 'slug': dt['slug'],
                                          'description': dt.get('description', '')})
        role_src = src.get('role') or src.get('device_role')
        role = real.get_or_create('dcim/device-roles', {'slug': role_src['slug']},
                                  {'name': role_src['name'], 'slug': role_src['slug'], 'color': '2196f3'})
        existing = real.list('dcim/devices', name=name)
        if existing:
            device = existing[0]
        else:
            device = real.create('dcim/devices', {
                'name': name, 'device_type': device_type['id'], 'role': role['id'], 'site': site['id'],
                'status': src['status']['value'], 'serial': src.get('serial') or ''})
        oob = None
        for iface in lab.list('dcim/interfaces', device=name):
            mine = real.list('dcim/interfaces', device_id=device['id'], name=iface['name'])
            target = mine[0] if mine else real.create('dcim/interfaces', {
                'device': device['id'], 'name': iface['name'], 'type': iface['type']['value'],
                **({'mac_address': iface['mac_address']} if iface.get('mac_address') else {})})
            for ip in lab.list('ipam/ip-addresses', interface_id=iface['id']):
                have = real.list('ipam/ip-addresses', address=ip['address'])
                addr = have[0] if have else real.create('ipam/ip-addresses', {
                    'address': ip['address'], 'status': 'active', 'assigned_object_type': 'dcim.interface',
                    'assigned_object_id': target['id']})
                if src.get('oob_ip') and src['oob_ip']['address'] == ip['address']:
                    oob = addr
        if oob and not (device.get('oob_ip') and device['oob_ip']['id'] == oob['id']):
            real.patch('dcim/devices', device['id'], {'oob_ip': oob['id']})
        print(f'netbox: {name} ready', file=sys.stderr)


def wait(what, check, timeout=300):
    deadline = time.time() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.time() > deadline:
            raise SystemExit(f'timed out waiting for {what}')
        time.sleep(2)


# benches/realstack_drain.rs finds its hosts by this reason.
BENCH_REASON = 'realstack: held for the drain benchmark'


def seed_nova(conn, computes, campaign, vms_per_host, bench_hosts, bench_vms):
    def computes_up():
        services = {s.host: s for s in conn.compute.services(binary='nova-compute')}
        hypervisors = {h.name for h in conn.compute.hypervisors()}
        return all(h in services and services[h].state == 'up' and h in hypervisors for h in computes)
    wait('every nova-compute up with its hypervisor mapped', computes_up, 600)

    flavors = {}
    for name, vcpus, ram in (('rs.small', 1, 512), ('rs.medium', 2, 1024)):
        flavors[name] = conn.compute.find_flavor(name) or conn.compute.create_flavor(
            name=name, vcpus=vcpus, ram=ram, disk=1)
    image = conn.image.find_image('rs-image')
    if image is None:
        image = conn.image.create_image(name='rs-image', disk_format='raw', container_format='bare',
                                        data=io.BytesIO(b'\0' * (1 << 20)), allow_duplicates=True)
    wait('the image active', lambda: conn.image.get_image(image.id).status == 'active', 120)

    # Nova's default quota (10 instances, 20 cores) is below the campaign's servers.
    conn.set_compute_quotas('admin', instances=-1, cores=-1, ram=-1)
    existing = {s.name: s for s in conn.compute.servers(all_projects=True)}
    bench = campaign[len(campaign) - bench_hosts:] if bench_hosts else []
    # A host named in the availability zone still passes the scheduler's ComputeFilter:
    # a benchmark host held by an earlier seeding is enabled again while it gets its servers.
    for service in conn.compute.services(binary='nova-compute'):
        if service.host in bench and service.disabled_reason == BENCH_REASON:
            conn.compute.enable_service(service, service.host, 'nova-compute')
    booted, to_stop = [], []
    for host in campaign:
        short = host.split('.')[0]
        count = bench_vms if host in bench else vms_per_host
        for i in range(1, count + 1):
            name = f'{short}-vm{i}'
            if host not in bench and i == count and count > 1:
                to_stop.append(name)
            if name in existing and existing[name].status == 'ERROR':
                # a boot that failed (a compute not yet ready): boot it again
                conn.compute.delete_server(existing[name])
                conn.compute.wait_for_delete(existing[name], wait=120)
            elif name in existing:
                continue
            flavor = flavors['rs.medium' if i % 2 == 0 else 'rs.small']
            booted.append(conn.compute.create_server(name=name, flavor_id=flavor.id, image_id=image.id,
                                                     networks='none', availability_zone=f'nova:{host}'))
    for server in booted:
        conn.compute.wait_for_server(server, status='ACTIVE', wait=300)
    # Looked up by name: an interrupted seeding left some booted and not yet stopped.
    servers = {s.name: s for s in conn.compute.servers(all_projects=True)}
    stopping = []
    for name in to_stop:
        server = servers[name]
        if server.status == 'BUILD':
            server = conn.compute.wait_for_server(server, status='ACTIVE', wait=300)
        if server.status == 'ACTIVE':
            conn.compute.stop_server(server)
            stopping.append(server)
    for server in stopping:
        conn.compute.wait_for_server(server, status='SHUTOFF', wait=300)
    print(f'nova: {len(booted)} servers booted', file=sys.stderr)
    # Disabled only once their servers are booted there.
    for service in conn.compute.services(binary='nova-compute'):
        if service.host in bench and service.status != 'disabled':
            conn.compute.disable_service(service, service.host, 'nova-compute', disabled_reason=BENCH_REASON)
            print(f'nova: {service.host} held for the drain benchmark', file=sys.stderr)


def write_credentials(args, lab_creds, campaign, member):
    env = os.environ
    creds = dict(lab_creds)
    creds['netbox'] = {'url': env['NETBOX_URL'], 'allow_insecure_http': True, 'token': env['NETBOX_TOKEN']}
    creds['openstack'] = {
        'auth_url': env['KS_URL'], 'allow_insecure_http': True,
        'username': 'demo' if member else 'admin',
        'password': env['MEMBER_PASSWORD'] if member else env['ADMIN_PASSWORD'],
        'project_name': 'demo' if member else 'admin',
        'user_domain_name': 'Default', 'project_domain_name': 'Default',
        'region_name': 'RegionOne', 'interface': 'public'}
    creds['alertmanager'] = {'url': env['ALERTMANAGER_URL'], 'allow_insecure_http': True}
    # The fake virt driver's guests have no QEMU agent to ping.
    creds.setdefault('workflow', {}).setdefault('drain', {})['guest_check'] = 'none'
    path = os.path.join(args.out, 'credentials-member.yaml' if member else 'credentials.yaml')
    fd = os.open(path + '.tmp', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as f:
        f.write('# Written by scripts/realstack: netbox, openstack and alertmanager are the real services,\n'
                '# the rest the simulated site beside them.\n')
        yaml.safe_dump(creds, f, sort_keys=False)
    os.replace(path + '.tmp', path)


def cmd_seed(args):
    env = os.environ
    lab_creds, campaign = lab_files(args.lab)
    computes = args.computes.split()
    lab = NetBox(lab_creds['netbox']['url'], lab_creds['netbox']['token'])
    seed_netbox(lab, NetBox(env['NETBOX_URL'], env['NETBOX_TOKEN']), computes)
    conn = openstack.connect(auth_url=env['KS_URL'], username='admin', password=env['ADMIN_PASSWORD'],
                             project_name='admin', user_domain_name='Default', project_domain_name='Default',
                             region_name='RegionOne', identity_api_version='3')
    seed_nova(conn, computes, campaign, args.vms_per_host, args.bench_hosts, args.bench_vms)
    write_credentials(args, lab_creds, campaign, member=False)
    write_credentials(args, lab_creds, campaign, member=True)
    endpoints = {'keystone': env['KS_URL'], 'nova': env.get('NOVA_URL'), 'netbox': env['NETBOX_URL'],
                 'alertmanager': env['ALERTMANAGER_URL'], 'lab': os.path.abspath(args.lab), 'computes': computes}
    with open(os.path.join(args.out, 'endpoints.json'), 'w') as f:
        json.dump(endpoints, f, indent=1)
    with open(os.path.join(args.lab, 'hypervisors.txt')) as src, \
            open(os.path.join(args.out, 'hypervisors.txt'), 'w') as dst:
        dst.write(src.read())


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest='cmd', required=True)
    h = sub.add_parser('hosts')
    h.add_argument('--lab', required=True)
    h.add_argument('--spares', type=int, default=1)
    s = sub.add_parser('seed')
    s.add_argument('--lab', required=True)
    s.add_argument('--out', required=True)
    s.add_argument('--computes', required=True)
    s.add_argument('--vms-per-host', type=int, default=2)
    s.add_argument('--bench-hosts', type=int, default=0)
    s.add_argument('--bench-vms', type=int, default=4)
    args = p.parse_args()
    {'hosts': cmd_hosts, 'seed': cmd_seed}[args.cmd](args)


if __name__ == '__main__':
    main()
