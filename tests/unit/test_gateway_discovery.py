"""Discovery sources: the static list, the registry file (atomic rewrites, junk keeps the last good), DNS."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from winnow.services.gateway.discovery import Topology, dns_source, parse_shards, read_registry, registry_source


def test_static_list_with_replicas():
    assert parse_shards(["a:1|a:2", " b:1 "]) == (("a:1", "a:2"), ("b:1",))
    assert parse_shards(["a:1|a:1"]) == (("a:1",),)
    for bad in (["a:1", ""], ["a"], ["a:x"], [":1"]):
        with pytest.raises(ValueError):
            parse_shards(bad)


def _write(path, doc) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    os.replace(tmp, path)


async def test_registry_changes_are_followed_and_junk_keeps_the_last_good(tmp_path):
    path = tmp_path / "registry.json"
    it = registry_source(path, poll_s=0.01)
    _write(path, {"version": 1, "layout": "L1", "shards": {"0": ["h:1", "h:2"], "1": ["h:3"]}})
    assert await asyncio.wait_for(anext(it), 2) == Topology("L1", (("h:1", "h:2"), ("h:3",)), 1)
    _write(path, "{not json")
    _write(path, {"version": 2, "layout": "L1", "shards": {"0": ["h:1", "h:9"], "1": ["h:3"]}})
    assert (await asyncio.wait_for(anext(it), 2)).shards == (("h:1", "h:9"), ("h:3",))
    await it.aclose()


def test_registry_validation(tmp_path):
    path = tmp_path / "r.json"
    for bad in ({"shards": {"0": ["h:1"], "2": ["h:2"]}}, {"shards": {"0": "h:1"}}, {"shards": []}, [1]):
        path.write_text(json.dumps(bad))
        with pytest.raises(ValueError):
            read_registry(path)


async def test_dns_resolves_every_address_and_keeps_the_last_on_failure():
    answers = {"s0": [["10.0.0.1:7", "10.0.0.2:7"]], "s1": [["10.0.1.1:7"]]}
    fail = {"s0": False}

    async def resolve(host, port):
        if fail.get(host):
            raise OSError("NXDOMAIN")
        return answers[host][-1]

    it = dns_source(["s0:7", "s1:7"], "L0", interval_s=0.01, resolve=resolve)
    assert (await anext(it)).shards == (("10.0.0.1:7", "10.0.0.2:7"), ("10.0.1.1:7",))
    fail["s0"] = True
    answers["s1"].append(["10.0.1.1:7", "10.0.1.5:7"])
    assert (await asyncio.wait_for(anext(it), 2)).shards == (("10.0.0.1:7", "10.0.0.2:7"),
                                                             ("10.0.1.1:7", "10.0.1.5:7"))
    await it.aclose()
