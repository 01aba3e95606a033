"""The ``redis`` backend: a token lease (``SET NX PX``) with Lua-checked renew and release.

Keys (prefix ``attachdaemon:leader:``): ``<name>`` holds ``<epoch>:<nonce>:<holder json>`` with a
PX lease; ``<name>:epoch`` is an INCR fencing counter (the token); ``<name>:released`` is the
epoch of the last clean release. The client has retries off and socket timeouts <= the renew
period, so no call outlives a renew period (research §6 E4).

Possible loss of lock state (restart without persistence, failover to a replica that lacked
the keys): the epoch found at acquisition is lower than the highest epoch this process has
seen (a missing epoch key counts as 0). The acquisition is then ``clean_handover=False`` and
the holder waits out the lock delay. A contender that never saw an epoch cannot tell a first
use from a wiped server; it does not delay (documented residual risk).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from attachdaemon_core.leader.base import BackendUnavailable, Lease, LeaseLost, LeaseUnknown, one_line

PREFIX = "attachdaemon:leader:"

ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('GET', KEYS[2]) or '0', '', ''}
end
local prev = redis.call('GET', KEYS[2]) or '0'
local rel = redis.call('GET', KEYS[3]) or ''
local epoch = redis.call('INCR', KEYS[2])
local value = tostring(epoch) .. ':' .. ARGV[1]
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return {1, tostring(epoch), prev, rel, value}
"""
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[3], ARGV[2])
  return 1
end
return 0
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _int(value: Any) -> int:
    try:
        return int(_text(value))
    except ValueError:
        return 0


class RedisLock:
    state_may_be_lost = True
    fencing = True
    connection_bound_release = False
    handover_grace = 0.0

    def __init__(self, name: str, url: str, *, lease: float, renew: float, holder_info: dict[str, Any]):
        self.name = name
        self._url = url
        self.lease = lease
        self.info = dict(holder_info)
        self.info.setdefault("host", socket.gethostname())
        self.info.setdefault("pid", os.getpid())
        self.keys = [PREFIX + name, PREFIX + name + ":epoch", PREFIX + name + ":released"]
        self.highest_epoch = 0
        self._value: str | None = None
        self._timeout = max(0.2, min(renew, 2.0))
        self._client: redis.Redis | None = None
        self._scripts: dict[str, Any] = {}

    def _get(self) -> redis.Redis:
        """The client, created on first use (redis-py connects a single-connection client at once)."""
        if self._client is None:
            try:
                client = redis.Redis.from_url(
                    self._url,
                    socket_timeout=self._timeout,
                    socket_connect_timeout=self._timeout,
                    retry=Retry(NoBackoff(), 0),
                    retry_on_timeout=False,
                    health_check_interval=0,
                    single_connection_client=True,
                    client_name=f"attachdaemon:{self.name}:{self.info['host']}:{self.info['pid']}"[:120],
                )
            except Exception as exc:
                raise BackendUnavailable(one_line(exc, self._url)) from None
            self._scripts = {
                "acquire": client.register_script(ACQUIRE),
                "renew": client.register_script(RENEW),
                "release": client.register_script(RELEASE),
            }
            self._client = client
        return self._client

    def _script(self, which: str, keys: list[str], args: list[Any]) -> Any:
        self._get()
        return self._scripts[which](keys=keys, args=args)

    def __repr__(self) -> str:
        return f"<RedisLock {self.name!r}>"

    def _seen(self, epoch: int) -> None:
        self.highest_epoch = max(self.highest_epoch, epoch)

    def try_acquire(self) -> Lease | None:
        payload = secrets.token_hex(8) + ":" + json.dumps({**self.info, "since": time.time()})
        sent = time.monotonic()
        try:
            res = self._script("acquire", self.keys, [payload, int(self.lease * 1000)])
        except (redis.RedisError, BackendUnavailable) as exc:
            raise BackendUnavailable(one_line(exc, self._url)) from None
        if not res or _int(res[0]) != 1:
            if res:
                self._seen(_int(res[1]))
            return None
        epoch, prev, rel = _int(res[1]), _int(res[2]), _text(res[3])
        self._value = _text(res[4])
        lost_state = prev < self.highest_epoch
        self._seen(epoch)
        return Lease(
            token=epoch,
            sent_at=sent,
            clean_handover=not lost_state,
            previous_released=prev == 0 or (rel != "" and _int(rel) == prev),
        )

    def renew(self, lease: Lease) -> Lease:
        if self._value is None:
            raise LeaseLost("not holding the lock")
        sent = time.monotonic()
        try:
            ok = self._script("renew", self.keys[:1], [self._value, int(self.lease * 1000)])
        except (redis.RedisError, BackendUnavailable) as exc:
            raise LeaseUnknown(one_line(exc, self._url)) from None
        if _int(ok) != 1:
            self._value = None
            raise LeaseLost("the lock key is gone or holds another token")
        return Lease(lease.token, sent, lease.clean_handover, lease.previous_released)

    def release(self, lease: Lease) -> None:
        value, self._value = self._value, None
        if value is None:
            return
        try:
            self._script("release", self.keys, [value, str(lease.token or 0)])
        except (redis.RedisError, BackendUnavailable):
            pass  # best effort: the key expires after one lease

    def holder(self) -> dict[str, Any] | None:
        try:
            value, epoch = self._get().mget(self.keys[:2])
        except (redis.RedisError, BackendUnavailable) as exc:
            raise BackendUnavailable(one_line(exc, self._url)) from None
        if epoch is not None:
            self._seen(_int(epoch))
        if value is None:
            return None
        token_s, _, rest = _text(value).partition(":")
        _, _, info_s = rest.partition(":")
        try:
            info = json.loads(info_s)
        except ValueError:
            info = {}
        if not isinstance(info, dict):
            info = {}
        return {
            "host": info.get("host"),
            "pid": info.get("pid"),
            "since": info.get("since"),
            "token": _int(token_s),
        }

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:
                pass

    def lock_fds(self) -> list[int]:
        return []

    def watch_fd(self) -> int | None:
        return None

    def abort(self) -> None:
        return None  # every call is bounded by the socket timeout (retries off)
