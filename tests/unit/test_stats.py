"""docker stats documents: the host CPU clock from /proc/stat and the document's shape."""

from __future__ import annotations

from berth.daemon.stats import NS_PER_TICK, document, sample, system_cpu_ns
from berth.libcontainer.cgroups import Stats

PROC_STAT = "cpu  100 0 50 1000 10 0 5 7 0 0\ncpu0 50 0 25 500 5 0 2 3 0 0\n"


def test_system_cpu_counts_the_first_seven_fields() -> None:
    assert system_cpu_ns(PROC_STAT) == (100 + 50 + 1000 + 10 + 5) * NS_PER_TICK
    assert system_cpu_ns("") == 0


def test_document_shape() -> None:
    class C:
        name, id = "web", "c" * 64

    s = Stats(
        cpu_usage_ns=5_000,
        memory_usage=1 << 20,
        memory_limit=64 << 20,
        memory_stat=(("total_inactive_file", 4096),),
        pids_current=3,
        pids_limit=10,
    )
    before, now = sample(s, PROC_STAT), sample(s, PROC_STAT)
    doc = document(C(), now, before)
    assert doc["name"] == "/web" and doc["preread"] == before["read"]
    assert doc["cpu_stats"]["cpu_usage"]["total_usage"] == 5_000 and doc["cpu_stats"]["online_cpus"] >= 1
    assert doc["memory_stats"] == {
        "usage": 1 << 20,
        "limit": 64 << 20,
        "stats": {"total_inactive_file": 4096},
    }
    assert doc["pids_stats"] == {"current": 3, "limit": 10}
    assert document(C(), now, None)["preread"].startswith("0001-")


def test_network_stats_from_proc_net_dev() -> None:
    from berth.daemon.stats import network_stats

    text = (
        "Inter-|   Receive                                                |  Transmit\n"
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n"
        "    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0\n"
        "  eth0:    1296      16    1    2    0     0          0         0      866      11    3    4    0     0       0          0\n"
    )
    assert network_stats(text) == {"eth0": {
        "rx_bytes": 1296, "rx_packets": 16, "rx_errors": 1, "rx_dropped": 2,
        "tx_bytes": 866, "tx_packets": 11, "tx_errors": 3, "tx_dropped": 4,
    }}
