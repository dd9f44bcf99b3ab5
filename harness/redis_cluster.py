"""A Redis Cluster of three masters (no replicas) as child processes on free ports, nothing
persisted: what Tidings' `redis+cluster://` URL is tested against."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import redis

from .common import free_port, wait_until
from .redis import RedisServer

MASTERS = 3


class ClusterNodeServer(RedisServer):
    """One redis-server with `cluster-enabled yes`, its cluster state in a file of its own and
    its cluster bus on a free port of its own (the default, port + 10000, may be taken or past
    65535)."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.bus_port = free_port()

    def command(self, binary: str) -> list[str]:
        return [*super().command(binary), "--cluster-enabled", "yes",
                "--cluster-port", str(self.bus_port),
                "--cluster-config-file", f"nodes-{self.port}.conf",
                "--cluster-node-timeout", "2000"]  # fmt: skip


class RedisClusterServer:
    def __init__(self, workdir: Path, masters: int = MASTERS) -> None:
        self.workdir = workdir / f"redis-cluster-{free_port()}"
        self.nodes = [ClusterNodeServer(self.workdir) for _ in range(masters)]

    @property
    def url(self) -> str:
        """Tidings' URL of the cluster: every master as a seed (one would do)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self) -> RedisClusterServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for node in self.nodes:
            node.start()
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not installed (make test installs it)")
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30,
        )  # fmt: skip
        wait_until(self.ready, 20, what="the Redis Cluster to agree on its slots")
        return self

    def ready(self) -> bool:
        """Every master says the cluster is ok (all slots served)."""
        return all(b"cluster_state:ok" in node.ask(b"CLUSTER INFO") for node in self.nodes)

    def owner(self, key: str) -> ClusterNodeServer:
        """The master that holds `key`'s hash slot."""
        slot = self._client(self.nodes[0]).cluster("KEYSLOT", key)
        for node in self.nodes:
            for start, end, *_ in self._client(node).execute_command("CLUSTER SLOTS"):
                if start <= slot <= end and _port_of(_) == node.port:
                    return node
        raise LookupError(f"no master holds the slot of {key!r}")

    def move_slot(self, key: str, to: ClusterNodeServer) -> None:
        """Move `key`'s hash slot, with its keys, to the master `to`, as a resharding does
        (IMPORTING, MIGRATING, MIGRATE, then SETSLOT NODE on every master)."""
        source = self.owner(key)
        src, dst = self._client(source), self._client(to)
        slot = int(src.cluster("KEYSLOT", key))
        src_id, dst_id = src.cluster("MYID"), dst.cluster("MYID")
        dst.cluster("SETSLOT", slot, "IMPORTING", src_id)
        src.cluster("SETSLOT", slot, "MIGRATING", dst_id)
        while keys := src.cluster("GETKEYSINSLOT", slot, 100):
            src.execute_command("MIGRATE", "127.0.0.1", to.port, "", 0, 5000, "KEYS", *keys)
        for node in (to, source, *(n for n in self.nodes if n not in (to, source))):
            self._client(node).cluster("SETSLOT", slot, "NODE", dst_id)

    @staticmethod
    def _client(node: ClusterNodeServer) -> redis.Redis:
        return redis.Redis(port=node.port, decode_responses=True, socket_timeout=5)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _port_of(nodes: list[list[object]]) -> int:
    """The port of the master in a CLUSTER SLOTS range (its first node)."""
    return int(str(nodes[0][1]))
