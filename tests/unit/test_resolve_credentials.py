"""spawn.resolve_credentials: an ASCII digit string is an id, anything else a name (pure lookups)."""

from __future__ import annotations

import grp
import os
import pwd

import pytest

from attachdaemon_core.osproc.spawn import resolve_credentials

pytestmark = pytest.mark.unit  # pure: no process (tests/conftest.py checks)


def test_ascii_digits_are_ids() -> None:
    creds = resolve_credentials(str(os.getuid()), str(os.getgid()))
    assert creds is not None
    assert (creds.uid, creds.gid) == (os.getuid(), os.getgid())


def test_non_ascii_digits_are_names_not_numbers() -> None:
    # '²'.isdigit() is True but int('²') raises ValueError; it must be looked up as a name.
    with pytest.raises(KeyError):
        pwd.getpwnam("²")
    with pytest.raises(KeyError):
        resolve_credentials("²", None)
    with pytest.raises(KeyError):
        grp.getgrnam("²")
    with pytest.raises(KeyError):
        resolve_credentials(None, "²")
