"""A Redis Sentinel set of the test's own on free loopback ports: one primary, one replica and three Sentinels
(``redis-server <conf> --sentinel``, quorum 2), with short ``down-after-milliseconds`` and ``failover-timeout``
so that a failover takes seconds. Never the machine's 6379; every process started here is stopped on the way
out, whatever happened.

What a failover looks like from outside (Redis 7.0): ``SENTINEL FAILOVER`` (or a primary that stays down for
``down-after-milliseconds`` and a quorum that agrees) promotes the replica (``REPLICAOF NO ONE``) and, about a
second later, publishes ``+switch-master``. An old primary that is still running keeps its role, and accepts
writes, until a Sentinel turns it into a replica of the new one: Sentinel waits 8 s
(``SENTINEL_PUBLISH_PERIOD * 4``) and polls a replica's INFO every 10 s, so about 10 s. The old primary then
resynchronises from the new one and discards whatever it accepted in between.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.support.ports import free_port
from tests.support.redis_server import REDIS_SERVER, redis_answers

SERVICE = "gwmaster"
READY_TIMEOUT = 20.0


@dataclass
class RedisNode:
    """One redis-server (a data node, or a Sentinel when ``sentinel`` is set)."""

    directory: Path
    name: str
    args: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    sentinel_conf: str | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_file(self) -> Path:
        return self.directory / f"{self.name}-{self.port}.log"

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def client(self, timeout: float = 2.0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=timeout, socket_connect_timeout=timeout)

    def launch(self) -> None:
        if not Path(REDIS_SERVER).is_file():
            raise AssertionError(f"{REDIS_SERVER} is missing; the Sentinel failover tests need redis-server")
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.sentinel_conf is not None:
            conf = self.directory / f"{self.name}-{self.port}.conf"  # Sentinel rewrites it: one per instance
            conf.write_text(self.sentinel_conf.format(port=self.port, dir=self.directory))
            argv = [REDIS_SERVER, str(conf), "--sentinel"]
        else:
            argv = [
                REDIS_SERVER,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
                "--dbfilename", f"{self.name}-{self.port}.rdb",
                *self.args,
            ]  # fmt: skip
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    async def wait_answers(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not redis_answers(self.port):
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited with code {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not answer PING in time:\n{self.log()}")
            await asyncio.sleep(0.05)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process is gone at once, with whatever it had not replicated yet."""
        assert self.process is not None and self.process.poll() is None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=5)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


SENTINEL_CONF = """\
port {{port}}
bind 127.0.0.1
dir {{dir}}
sentinel resolve-hostnames no
sentinel monitor {service} 127.0.0.1 {primary} 2
sentinel down-after-milliseconds {service} {down_after}
sentinel failover-timeout {service} {failover_timeout}
sentinel parallel-syncs {service} 1
"""


@dataclass
class SentinelSet:
    primary: RedisNode
    replica: RedisNode
    sentinels: list[RedisNode]
    service: str = SERVICE

    @property
    def url(self) -> str:
        """The gateway's ``session.store`` value for this set."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}/0"

    @property
    def nodes(self) -> list[RedisNode]:
        return [self.primary, self.replica]

    def node_at(self, port: int) -> RedisNode:
        return next(n for n in self.nodes if n.port == port)

    def logs(self) -> str:
        return "\n".join(f"--- {n.name}:{n.port}\n{n.log()[-3000:]}" for n in (*self.nodes, *self.sentinels))

    def master_port(self) -> int | None:
        """The primary a majority of the Sentinels names (None while they disagree or cannot be reached)."""
        votes: dict[int, int] = {}
        for sentinel in self.sentinels:
            if not sentinel.running():
                continue
            try:
                with sentinel.client(1.0) as client:
                    found = client.execute_command("SENTINEL", "get-master-addr-by-name", self.service)
            except redis.RedisError:
                continue
            if found:
                port = int(found[1])
                votes[port] = votes.get(port, 0) + 1
        for port, count in votes.items():
            if count >= 2:
                return port
        return None

    @staticmethod
    def role(node: RedisNode) -> str | None:
        if not node.running():
            return None
        try:
            with node.client(1.0) as client:
                answer = client.execute_command("ROLE")
        except redis.RedisError:
            return None
        return bytes(answer[0]).decode()

    async def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """The replica in sync, and every Sentinel knowing the replica and both other Sentinels."""
        deadline = time.monotonic() + timeout
        while True:
            problems = self._not_ready()
            if not problems:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the Sentinel set did not get ready: {problems}\n{self.logs()}")
            await asyncio.sleep(0.1)

    def _not_ready(self) -> list[str]:
        problems = []
        try:
            with self.replica.client(1.0) as client:
                info = client.info("replication")
            if info.get("master_link_status") != "up":
                problems.append("replica link down")
        except redis.RedisError as exc:
            problems.append(f"replica: {exc}")
        for sentinel in self.sentinels:
            try:
                with sentinel.client(1.0) as client:
                    state = client.sentinel_master(self.service)
                if state["num-slaves"] < 1 or state["num-other-sentinels"] < 2:
                    problems.append(
                        f"sentinel {sentinel.port}: {state['num-slaves']} replicas, "
                        f"{state['num-other-sentinels']} other sentinels"
                    )
            except redis.RedisError as exc:
                problems.append(f"sentinel {sentinel.port}: {exc}")
        return problems

    def failover(self) -> None:
        """``SENTINEL FAILOVER``: a manual failover, with the primary still running."""
        with self.sentinels[0].client() as client:
            client.execute_command("SENTINEL", "FAILOVER", self.service)

    async def wait_new_master(self, old: RedisNode, timeout: float = 20.0) -> RedisNode:
        """A majority of Sentinels names another node, and that node answers as a primary."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            port = self.master_port()
            if port is not None and port != old.port and self.role(self.node_at(port)) == "master":
                return self.node_at(port)
            await asyncio.sleep(0.05)
        raise AssertionError(f"no new primary within {timeout}s\n{self.logs()}")

    async def wait_settled(self, new: RedisNode, timeout: float = 30.0) -> None:
        """Failover over: ``new`` is the primary and every other running node is its replica, in sync."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._settled(new):
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"the failover did not settle within {timeout}s\n{self.logs()}")

    def _settled(self, new: RedisNode) -> bool:
        if self.role(new) != "master" or self.master_port() != new.port:
            return False
        with new.client() as client:
            offset = int(client.info("replication")["master_repl_offset"])
        for node in self.nodes:
            if node is new or not node.running():
                continue
            try:
                with node.client(1.0) as client:
                    info = client.info("replication")
            except redis.RedisError:
                return False
            if info.get("role") != "slave" or int(info.get("master_port", 0)) != new.port:
                return False
            if info.get("master_link_status") != "up" or int(info.get("slave_repl_offset", -1)) < offset:
                return False
        return True


@asynccontextmanager
async def sentinel_set(
    directory: Path, *, down_after_ms: int = 1000, failover_timeout_ms: int = 3000, node_args: list[str] | None = None
) -> AsyncIterator[SentinelSet]:
    """Start the primary, the replica (``--replicaof`` the primary; both with ``node_args``) and three
    Sentinels; wait until the set can fail over (the replica in sync, each Sentinel knows the other two);
    stop every process afterwards."""
    async with AsyncExitStack() as stack:
        # A full resynchronisation (the old primary joining the new one) starts at once, not after 5 s.
        common = ["--repl-diskless-sync-delay", "0", *(node_args or [])]
        primary = RedisNode(directory, "primary", common)
        stack.callback(primary.stop)
        primary.launch()
        await primary.wait_answers()
        replica = RedisNode(directory, "replica", ["--replicaof", "127.0.0.1", str(primary.port), *common])
        stack.callback(replica.stop)
        replica.launch()
        conf = SENTINEL_CONF.format(
            service=SERVICE, primary=primary.port, down_after=down_after_ms, failover_timeout=failover_timeout_ms
        )
        sentinels = [RedisNode(directory, f"sentinel{i}", sentinel_conf=conf) for i in range(3)]
        for sentinel in sentinels:
            stack.callback(sentinel.stop)
            sentinel.launch()
        for node in (replica, *sentinels):
            await node.wait_answers()
        found = SentinelSet(primary, replica, sentinels)
        await found.wait_ready()
        yield found


#: A replica that joins at once (no diskless-sync delay): the tests start one per test.
FAST = ["--repl-diskless-sync-delay", "0"]


@dataclass
class Pair:
    primary: RedisNode
    replica: RedisNode

    def url(self, node: RedisNode | None = None) -> str:
        return f"redis://127.0.0.1:{(node or self.primary).port}/0"

    def calls(self, command: str) -> int:
        """How often the primary has run ``command`` (INFO commandstats)."""
        with self.primary.client() as client:
            stats = client.info("commandstats")
        return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))

    async def replica_in_sync(self) -> None:
        """The replica has acknowledged the primary's stream (ROLE on the primary shows its offset): before
        that, a joining replica cannot answer a WAIT."""
        for _ in range(200):
            with self.primary.client() as client:
                client.set("ready", 1)  # an offset above 0 to acknowledge: an idle primary's stays at 0
                role = client.execute_command("ROLE")
            if role[2] and int(role[2][0][2]) > 0:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"the replica did not sync\n{self.replica.log()}")


@asynccontextmanager
async def primary_and_replica(directory: Path) -> AsyncIterator[Pair]:
    """A primary and its replica, in sync; both stopped afterwards (a paused one is woken first)."""
    primary = RedisNode(directory, "primary", FAST)
    replica = RedisNode(directory, "replica", FAST)
    try:
        primary.launch()
        await primary.wait_answers()
        replica.args = ["--replicaof", "127.0.0.1", str(primary.port), *FAST]
        replica.launch()
        await replica.wait_answers()
        found = Pair(primary, replica)
        await found.replica_in_sync()
        yield found
    finally:
        for node in (replica, primary):
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGCONT)
            node.stop()
