"""Repair of a consumer group whose leader has gone (a Tansu 0.6 bug), over the Kafka protocol.

Tansu 0.6 keeps a member that left a still-forming group as the group's leader, so every later
join is handed an absent leader and the group never forms: a worker gets no partitions until
the broker happens to reload the group (seen: 395 s and 123 s after three killed joins).
librdkafka cannot join a group under a chosen member id, and that is the repair, so three
requests of the wire protocol (JoinGroup v1, DescribeGroups v0) are spoken directly here, over
PLAINTEXT only. `KafkaSource` calls `repair_group` when it has had no assignment for several
session timeouts.
"""

from __future__ import annotations

import logging
import socket
import struct

log = logging.getLogger(__name__)


def _wire_str(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">h", len(data)) + data


class _Reply:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def int(self, size: int) -> int:
        value = int.from_bytes(self.data[self.at : self.at + size], "big", signed=True)
        self.at += size
        return value

    def str(self) -> str:
        size = self.int(2)
        value = self.data[self.at : self.at + max(size, 0)].decode(errors="replace")
        self.at += max(size, 0)
        return value

    def skip_bytes(self) -> None:
        self.at += max(self.int(4), 0)


class _Wire:
    """One PLAINTEXT connection to a broker, one request at a time."""

    def __init__(self, server: str, timeout: float) -> None:
        host, _, port = server.rpartition(":")
        self.sock = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
        self.correlation = 0

    def call(self, api_key: int, version: int, body: bytes) -> _Reply:
        self.correlation += 1
        request = struct.pack(">hhi", api_key, version, self.correlation)
        request += _wire_str("pharmaflow-group-repair") + body
        self.sock.sendall(struct.pack(">i", len(request)) + request)
        size = int.from_bytes(self._read(4), "big")
        reply = _Reply(self._read(size))
        if reply.int(4) != self.correlation:
            raise OSError("unexpected reply from the broker")
        return reply

    def _read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise OSError("connection closed by the broker")
            data += chunk
        return data

    def join(
        self, group: str, member: str, topics: tuple[str, ...], session_ms: int
    ) -> tuple[int, str, str]:
        """JoinGroup v1 as a `range` consumer: (error code, leader, our member id)."""
        subscription = struct.pack(">hi", 0, len(topics)) + b"".join(map(_wire_str, topics))
        subscription += struct.pack(">i", -1)  # no user data
        body = _wire_str(group) + struct.pack(">ii", session_ms, session_ms) + _wire_str(member)
        body += _wire_str("consumer") + struct.pack(">i", 1) + _wire_str("range")
        body += struct.pack(">i", len(subscription)) + subscription
        reply = self.call(11, 1, body)
        error, _generation, _protocol = reply.int(2), reply.int(4), reply.str()
        return error, reply.str(), reply.str()

    def members(self, group: str) -> list[str]:
        """DescribeGroups v0: the member ids of `group`."""
        reply = self.call(15, 0, struct.pack(">i", 1) + _wire_str(group))
        members: list[str] = []
        for _ in range(reply.int(4)):
            reply.int(2)
            for _ in range(4):
                reply.str()  # group id, state, protocol type, protocol
            for _ in range(reply.int(4)):
                members.append(reply.str())
                reply.str(), reply.str()  # client id, host
                reply.skip_bytes(), reply.skip_bytes()  # metadata, assignment
        return members

    def close(self) -> None:
        self.sock.close()


_NOT_COORDINATOR = 16
_MEMBER_ID_REQUIRED = 79


def repair_group(
    bootstrap: str, group: str, topics: tuple[str, ...], session_timeout_ms: int = 10_000
) -> bool:
    """If `group`'s leader is not among its members, join once under the leader's id, so the
    broker expires that "member" after a session timeout and the next join elects a live
    leader. Returns whether a repair was made.

    Tansu 0.6 keeps a member that left a forming group as its leader (its LeaveGroup does not
    clear the leader; only missing heartbeats of a present member do), so the group never
    forms again. Elsewhere a group's leader is always a member and this only joins and
    abandons a placeholder member (never a LeaveGroup: that is what orphans a forming group),
    which expires after a session timeout."""
    for server in bootstrap.split(","):
        wire = None
        try:
            wire = _Wire(server.strip(), timeout=session_timeout_ms / 1000 + 10)
            error, leader, member = wire.join(group, "", topics, session_timeout_ms)
            if error == _NOT_COORDINATOR:
                continue
            if error == _MEMBER_ID_REQUIRED:  # join again under the id the broker gave us
                error, leader, member = wire.join(group, member, topics, session_timeout_ms)
            if error or not leader or leader == member or leader in wire.members(group):
                log.info(
                    "group %s: leader %r present (error %d); nothing to repair",
                    group,
                    leader,
                    error,
                )
                return False
            log.warning("group %s: its leader %s has left; replacing it", group, leader)
            wire.join(group, leader, topics, session_timeout_ms)
            return True
        except (OSError, ValueError, IndexError) as exc:
            log.info("group repair via %s failed: %s", server, exc)
        finally:
            if wire is not None:
                wire.close()
    return False
