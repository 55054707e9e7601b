"""The worked examples in the client and CLI module docstrings (and a few daemon ones) stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "berth.cli.options",
    "berth.cli.template",
    "berth.cli.templatefuncs",
    "berth.cli.tabwriter",
    "berth.cli.units",
    "berth.cli.timespec",
    "berth.cli.formatter",
    "berth.cli.reference",
    "berth.cli.flagvalues",
    "berth.cli.containerspec",
    "berth.client.transport",
    "berth.client.stdcopy",
    "berth.client.jsonstream",
    "berth.client.status",
    "berth.drivers.network.model",
    "berth.drivers.network.subnets",
    "berth.drivers.network.ipam",
    "berth.drivers.network.ports",
    "berth.drivers.network.files",
    "berth.drivers.network.firewall",
    "berth.daemon.users",
    "berth.daemon.remap",
    "berth.daemon.mountspec",
    "berth.libcontainer.removetree",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
