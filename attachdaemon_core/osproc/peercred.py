"""Who is on the other end of a connected AF_UNIX stream socket: (pid, uid, gid), for the control
socket's access check (control/server.py). One mechanism per platform; where none is known, or the
call fails, or the answer does not have the documented shape, ``PeerUnknown`` is raised and the
caller refuses the connection (fail closed). The pid is informational (0: the platform does not
say); the uid decides.

Layouts, as the platforms' headers declare them (read, not guessed):

- Linux: ``getsockopt(SOL_SOCKET, SO_PEERCRED)``, ``struct ucred {pid_t pid; uid_t uid; gid_t
  gid;}`` (12 bytes).
- macOS: ``getsockopt(SOL_LOCAL=0, LOCAL_PEERCRED=0x001)``, ``struct xucred {u_int cr_version;
  uid_t cr_uid; short cr_ngroups; gid_t cr_groups[NGROUPS=16];}`` (76 bytes; cr_gid is
  cr_groups[0]; XUCRED_VERSION 0), xnu bsd/sys/ucred.h; the pid from ``LOCAL_PEERPID=0x002`` (an
  int), as the libc crate's apple constants name them.
- FreeBSD, DragonFly: ``getsockopt(0, LOCAL_PEERCRED=1)``, the same xucred followed by ``union
  {void *_cr_unused1; pid_t cr_pid;}`` (80 bytes on 32-bit, 88 on 64-bit, the union aligned to a
  pointer), freebsd-src sys/sys/ucred.h; releases before cr_pid leave it 0.
- OpenBSD: ``getsockopt(SOL_SOCKET, SO_PEERCRED=0x1022)``, ``struct sockpeercred {uid_t uid;
  gid_t gid; pid_t pid;}`` (the uid first, unlike Linux), sys/socket.h.
- NetBSD: ``getsockopt(0, LOCAL_PEEREID=3)``, ``struct unpcbid {pid_t unp_pid; uid_t unp_euid;
  gid_t unp_egid;}``, sys/un.h.

Only the Linux path runs here (and in CI); the others are checked by ``decode`` on byte strings
built to these layouts (tests/core/test_portable_calls.py)."""

from __future__ import annotations

import socket
import struct
import sys

SOL_LOCAL = 0  # the level of the LOCAL_* options on macOS and the BSDs
XU_NGROUPS = 16
XUCRED = struct.Struct(f"=IIh2x{XU_NGROUPS}I")  # cr_version, cr_uid, cr_ngroups, cr_groups
POINTER = struct.calcsize("P")
# FreeBSD's xucred: the union after cr_groups is aligned to (and as large as) a pointer
XUCRED_PID_AT = -(-XUCRED.size // POINTER) * POINTER
XUCRED_PID_SIZE = XUCRED_PID_AT + POINTER
PID_UID_GID = struct.Struct("=iII")  # Linux's ucred, NetBSD's unpcbid
UID_GID_PID = struct.Struct("=IIi")  # OpenBSD's sockpeercred
PID = struct.Struct("=i")


class PeerUnknown(OSError):
    """The peer's credentials cannot be known here; the connection must be refused."""


def layout(platform: str) -> str | None:
    """The credential layout of ``platform`` (a ``sys.platform`` value), None where none is known."""
    if platform.startswith("linux"):
        return "ucred"
    if platform == "darwin":
        return "xucred"
    if platform.startswith(("freebsd", "dragonfly")):
        return "xucred+pid"
    if platform.startswith("openbsd"):
        return "sockpeercred"
    if platform.startswith("netbsd"):
        return "unpcbid"
    return None


def decode(kind: str, raw: bytes, pid_raw: bytes | None = None) -> tuple[int, int, int]:
    """(pid, uid, gid) from the bytes of ``kind``'s getsockopt; ``pid_raw`` is macOS's
    LOCAL_PEERPID answer (None: not asked or failed, pid 0). ValueError when the bytes do not
    have the documented shape."""
    if kind in {"ucred", "unpcbid"}:
        if len(raw) != PID_UID_GID.size:
            raise ValueError(f"{kind}: {len(raw)} bytes, not {PID_UID_GID.size}")
        pid, uid, gid = PID_UID_GID.unpack(raw)
        return pid, uid, gid
    if kind == "sockpeercred":
        if len(raw) != UID_GID_PID.size:
            raise ValueError(f"{kind}: {len(raw)} bytes, not {UID_GID_PID.size}")
        uid, gid, pid = UID_GID_PID.unpack(raw)
        return pid, uid, gid
    if kind in ("xucred", "xucred+pid"):
        size = XUCRED.size if kind == "xucred" else XUCRED_PID_SIZE
        if len(raw) != size:
            raise ValueError(f"{kind}: {len(raw)} bytes, not {size}")
        version, uid, ngroups, *groups = XUCRED.unpack_from(raw)
        if version != 0 or not 1 <= ngroups <= XU_NGROUPS:
            raise ValueError(f"{kind}: version {version}, {ngroups} groups")
        if kind == "xucred+pid":
            pid = PID.unpack_from(raw, XUCRED_PID_AT)[0]
        else:
            pid = PID.unpack(pid_raw)[0] if pid_raw is not None and len(pid_raw) == PID.size else 0
        return max(pid, 0), uid, groups[0]
    raise ValueError(f"no credential layout {kind!r}")


def _ask(sock: socket.socket, kind: str) -> tuple[bytes, bytes | None]:
    """The raw getsockopt answers for ``kind`` on this platform."""
    if kind == "ucred":
        if not hasattr(socket, "SO_PEERCRED"):
            raise PeerUnknown("this Linux has no SO_PEERCRED")
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PID_UID_GID.size), None
    if kind == "xucred":
        raw = sock.getsockopt(SOL_LOCAL, 0x001, XUCRED.size)  # LOCAL_PEERCRED
        try:
            pid_raw: bytes | None = sock.getsockopt(SOL_LOCAL, 0x002, PID.size)  # LOCAL_PEERPID
        except OSError:
            pid_raw = None  # (before macOS 10.8): the pid is only logged
        return raw, pid_raw
    if kind == "xucred+pid":
        return sock.getsockopt(SOL_LOCAL, 1, XUCRED_PID_SIZE), None  # LOCAL_PEERCRED
    if kind == "sockpeercred":
        return sock.getsockopt(socket.SOL_SOCKET, 0x1022, UID_GID_PID.size), None  # SO_PEERCRED
    return sock.getsockopt(SOL_LOCAL, 3, PID_UID_GID.size), None  # unpcbid: LOCAL_PEEREID


def peer_credentials(sock: socket.socket, platform: str = sys.platform) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process that connected ``sock``; PeerUnknown if it cannot be told."""
    kind = layout(platform)
    if kind is None:
        raise PeerUnknown(f"no way to tell a socket's peer on {platform}")
    try:
        raw, pid_raw = _ask(sock, kind)
        return decode(kind, raw, pid_raw)
    except PeerUnknown:
        raise
    except (OSError, ValueError) as exc:
        raise PeerUnknown(f"the peer's credentials ({kind}) could not be read: {exc}") from exc
