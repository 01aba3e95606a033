"""Credentials masked out of text before anyone sees it: messages, status, logs.

A leader backend string may carry a password in any of these forms, and none may be shown:
URL user-info (``postgresql://user:secret@host/db``, also with an unencoded ``@`` or ``/`` in
the password), a URL query (``redis://host/0?password=secret``) and libpq ``key=value``
(``password=secret``, ``password = 'two words'``, ``password='it\\'s'``, ``sslpassword=…``).
"""

from __future__ import annotations

import re

MASK = "***"

# From "scheme://" to the LAST '@' of the same run of non-blank characters: a password holding
# an unencoded '@' or '/' is masked whole (the host part may go too; better than a leak).
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)\S*@")
# Any key ending in "password" (password, sslpassword, PASSWORD), then its value: single- or
# double-quoted with backslash escapes (to the end of the text if the quote never closes),
# else everything up to the next blank.
_PASSWORD_KV = re.compile(
    r"""(\w*password\s*=\s*)('(?:[^'\\]|\\.)*(?:'|\Z)|"(?:[^"\\]|\\.)*(?:"|\Z)|\S+)""",
    re.IGNORECASE | re.DOTALL,
)


def redact(text: str, secret: str | None = None) -> str:
    """``text`` with ``secret`` (a whole DSN), URL user-info and password values masked."""
    if secret:
        text = text.replace(secret, "<dsn>")
    text = _USERINFO.sub(rf"\1{MASK}@", text)
    return _PASSWORD_KV.sub(rf"\1{MASK}", text)
