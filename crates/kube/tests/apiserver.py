"""A Kubernetes API emulator for quarry-kube's tests (no real apiserver can run on the test machines).

It is kmock 0.8's KubernetesEmulator (an in-memory object store served over HTTP, with list and watch)
plus the few things kube-rs watchers need from a real apiserver that kmock 0.8 does not do itself:

* `/api/v1/namespaces` and `/api/v1/namespaces/<name>` are misparsed by kmock 0.8 (the list path raises
  "not enough values to unpack", the object path is taken for a namespace with no resource), so the path
  parser is wrapped to read them as the cluster-scoped `namespaces` resource;
* kmock ignores `fieldSelector`, so list and watch results are filtered here (`=`, `==`, `!=`, comma-joined);
* kmock neither sets nor bumps `metadata.resourceVersion` (kube-rs watchers relist in a loop without it),
  so every create and update is stamped from one counter, and lists carry the current one;
* created objects get a `uid` and `creationTimestamp` when they have none, as the apiserver does.

Known difference that remains: a watch replays the current objects as ADDED instead of the events after
the requested resourceVersion, so a deletion between a list and the following watch is not seen.

Usage: python3 apiserver.py --meta-dir DIR --node NODE --other-node NODE
Loads the recorded Pod and Namespace objects of DIR in place, adds what a cluster would have around them
(namespaces, two nodes, one pod on the other node), serves on a free loopback port and prints one JSON line
{"port", "pods", "namespaces", "node_labels", "uids_rewritten"} to stdout. It exits when its stdin is closed.
"""

import argparse
import asyncio
import copy
import datetime
import itertools
import json
import pathlib
import sys
import uuid

import kmock
from kmock._internal import parsing

_original_parse_path = parsing.parse_path


def _parse_path(path: str) -> parsing.ParsedPath:
    parts = path.strip('/').split('/')
    if parts[:3] == ['api', 'v1', 'namespaces'] and len(parts) <= 4:
        name = parts[3] if len(parts) == 4 and parts[3] else None
        return parsing.ParsedPath(group='', version='v1', plural='namespaces', namespace=None, name=name)
    return _original_parse_path(path)


parsing.parse_path = _parse_path

_versions = itertools.count(100_000_000)


def next_version() -> str:
    return str(next(_versions))


def lookup(obj: dict, dotted: str) -> str:
    value = obj
    for part in dotted.split('.'):
        value = value.get(part) if isinstance(value, dict) else None
    return '' if value is None else str(value)


def parse_field_selector(selector: str) -> list[tuple[str, bool, str]]:
    terms = []
    for term in filter(None, (t.strip() for t in selector.split(','))):
        if '!=' in term:
            key, value = term.split('!=', 1)
            terms.append((key.strip(), False, value.strip()))
        elif '==' in term:
            key, value = term.split('==', 1)
            terms.append((key.strip(), True, value.strip()))
        elif '=' in term:
            key, value = term.split('=', 1)
            terms.append((key.strip(), True, value.strip()))
        else:
            raise kmock.KubernetesError(status=400, reason='BadRequest',
                                        message=f'unsupported field selector term: {term!r}')
    return terms


def selected(obj: dict, terms: list[tuple[str, bool, str]]) -> bool:
    return all((lookup(obj, key) == value) == equal for key, equal, value in terms)


class Apiserver(kmock.KubernetesEmulator):
    """kmock's emulator with resourceVersions, uids and field selectors."""

    async def _handle(self, request):
        data = request.data if isinstance(request.data, dict) else None
        if request.resource is not None and data is not None:
            if request.action == kmock.action.CREATE:
                meta = data.setdefault('metadata', {})
                meta['resourceVersion'] = next_version()
                meta.setdefault('uid', str(uuid.uuid4()))
                meta.setdefault('creationTimestamp',
                                datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'))
            elif request.action == kmock.action.UPDATE:
                data.setdefault('metadata', {})['resourceVersion'] = next_version()
        return await super()._handle(request)

    async def _serve_list(self, request):
        terms = parse_field_selector(request.params.get('fieldSelector', ''))
        result = await super()._serve_list(request)
        result['items'] = [obj for obj in result['items'] if selected(obj, terms)]
        result['metadata'] = {'resourceVersion': next_version()}
        return result

    async def _serve_watch(self, request):
        terms = parse_field_selector(request.params.get('fieldSelector', ''))
        async for event in super()._serve_watch(request):
            if not isinstance(event, dict) or selected(event.get('object', {}), terms):
                yield event


def images(pod: dict) -> dict[str, str]:
    spec = pod.get('spec', {})
    containers = spec.get('containers', []) + spec.get('initContainers', []) + spec.get('ephemeralContainers', [])
    return {c['name']: c['image'] for c in containers if c.get('image')}


def recorded_objects(meta_dir: pathlib.Path) -> list[dict]:
    objects = []
    for path in sorted(meta_dir.iterdir()):
        try:
            doc = json.loads(path.read_text())
        except (ValueError, OSError):
            continue
        for obj in doc.get('items') or [doc]:
            if isinstance(obj, dict) and obj.get('metadata', {}).get('name'):
                obj.setdefault('apiVersion', 'v1')
                obj.setdefault('kind', doc.get('kind'))
                objects.append(obj)
    return objects


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--meta-dir', required=True, type=pathlib.Path)
    parser.add_argument('--node', required=True)
    parser.add_argument('--other-node', required=True)
    args = parser.parse_args()

    pods: dict[tuple[str, str], dict] = {}
    namespaces: dict[str, dict] = {}
    uids_rewritten: dict[str, str] = {}
    seen_uids: set[str] = set()
    for obj in recorded_objects(args.meta_dir):
        meta = obj['metadata']
        meta.setdefault('resourceVersion', next_version())
        if obj.get('kind') == 'Namespace':
            namespaces.setdefault(meta['name'], obj)
        elif obj.get('kind') == 'Pod' and meta.get('namespace') and (meta['namespace'], meta['name']) not in pods:
            # The recordings reuse one uid for several pods; a cluster never does.
            key = f"{meta['namespace']}/{meta['name']}"
            if meta.get('uid', '') in seen_uids or not meta.get('uid'):
                meta['uid'] = str(uuid.uuid5(uuid.NAMESPACE_URL, key))
                uids_rewritten[key] = meta['uid']
            seen_uids.add(meta['uid'])
            obj.setdefault('spec', {})['nodeName'] = args.node
            pods[(meta['namespace'], meta['name'])] = obj

    elsewhere = copy.deepcopy(pods[('default', 'kairosdb-914055854-b63vq')])
    elsewhere['metadata'].update(name='kairosdb-914055854-zz9xx', uid=str(uuid.uuid4()),
                                 resourceVersion=next_version())
    elsewhere['spec']['nodeName'] = args.other_node
    pods[('default', elsewhere['metadata']['name'])] = elsewhere

    for name in sorted({ns for ns, _ in pods} - set(namespaces)):
        namespaces[name] = {
            'apiVersion': 'v1', 'kind': 'Namespace',
            'metadata': {'name': name, 'uid': str(uuid.uuid4()), 'resourceVersion': next_version(),
                         'labels': {'kubernetes.io/metadata.name': name, 'team': f'team-{name}'}},
        }
    nodes = {
        name: {
            'apiVersion': 'v1', 'kind': 'Node',
            'metadata': {'name': name, 'uid': str(uuid.uuid4()), 'resourceVersion': next_version(),
                         'labels': {'kubernetes.io/hostname': name,
                                    'topology.kubernetes.io/zone': zone,
                                    'node.kubernetes.io/instance-type': 'm5.large'}},
        }
        for name, zone in ((args.node, 'eu-west-1a'), (args.other_node, 'eu-west-1b'))
    }

    async with Apiserver() as k, kmock.Server(k) as srv:
        for resource in ('v1/pods', 'v1/namespaces', 'v1/nodes'):
            k.resources[resource] = {}
        for (ns, name), obj in pods.items():
            k.objects['v1/pods', ns, name] = obj
        for name, obj in namespaces.items():
            k.objects['v1/namespaces', None, name] = obj
        for name, obj in nodes.items():
            k.objects['v1/nodes', None, name] = obj

        manifest = {
            'port': srv.port,
            'pods': [{'namespace': ns, 'name': name, 'uid': obj['metadata']['uid'],
                      'node': obj['spec']['nodeName'],
                      'labels': obj['metadata'].get('labels') or {},
                      'annotations': obj['metadata'].get('annotations') or {},
                      'images': images(obj)} for (ns, name), obj in pods.items()],
            'namespaces': {name: obj['metadata'].get('labels') or {} for name, obj in namespaces.items()},
            'node_labels': nodes[args.node]['metadata']['labels'],
            'uids_rewritten': uids_rewritten,
        }
        print(json.dumps(manifest), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


if __name__ == '__main__':
    asyncio.run(main())
