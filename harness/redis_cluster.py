"""A Redis Cluster of three masters (no replicas) as child processes on free ports, nothing
persisted: what Tidings' `redis+cluster://` URL is tested against."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

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
        """Start the masters and make them one cluster; on failure, none is left running."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> RedisClusterServer:
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
        """The master that holds `key`'s hash slot (by its own account)."""
        slot = int(self._ask(self.nodes[0], "KEYSLOT", key))
        for node in self.nodes:
            for start, end, master, *_ in self._ask(node, "SLOTS"):
                if start <= slot <= end and int(master[1]) == node.port:
                    return node
        raise LookupError(f"no master holds the slot of {key!r}")

    def move_slot(self, key: str, to: ClusterNodeServer) -> None:
        """Move `key`'s hash slot, with its keys, to the master `to`, as a resharding does
        (IMPORTING, MIGRATING, MIGRATE, then SETSLOT NODE on every master)."""
        source = self.owner(key)
        slot = int(self._ask(source, "KEYSLOT", key))
        src_id, dst_id = self._ask(source, "MYID"), self._ask(to, "MYID")
        self._ask(to, "SETSLOT", slot, "IMPORTING", src_id)
        self._ask(source, "SETSLOT", slot, "MIGRATING", dst_id)
        while keys := self._ask(source, "GETKEYSINSLOT", slot, 100):
            with redis.Redis(port=source.port, socket_timeout=5) as client:
                client.migrate("127.0.0.1", to.port, keys, 0, 5000)
        for node in (to, source, *(n for n in self.nodes if n not in (to, source))):
            self._ask(node, "SETSLOT", slot, "NODE", dst_id)

    @staticmethod
    def _ask(node: ClusterNodeServer, *command: object) -> Any:
        """`CLUSTER <command>` of `node`, decoded."""
        with redis.Redis(port=node.port, decode_responses=True, socket_timeout=5) as client:
            return client.cluster(*command)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
