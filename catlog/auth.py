"""Who may connect and what a connection may do before it authenticates (spec/server.md SRV-21 ..
SRV-25, spec/protocol.md PROTO-103 .. PROTO-112).

Sans-I/O: the decisions are made here from values (a peer's address, a command's name, the words
of AUTH), and the server and the command layer only carry them out. Keeping them in one module
means a reader can check the whole access policy in one sitting, and tests can check every
decision without a socket.

Three decisions:

- *May this peer connect at all?* (:func:`admits_peer`, SRV-23): in protected mode, with no
  password, only loopback peers are served, as in Redis.
- *May this connection run this command yet?* (:meth:`Gate.refusal`, PROTO-104): before it
  authenticates, only AUTH, HELLO and QUIT.
- *Does this user and password let it in?* (:meth:`Gate.authenticate`, PROTO-105): the one user
  is ``default``; its password is compared in constant time (SRV-22).

The line protocol has no AUTH, so a server with a password refuses it (:func:`line_refusal`,
PROTO-110): a way around the password is worse than a protocol that cannot be used.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from typing import Final

from .protocol.replies import OK, Error, Reply

DEFAULT_USER: Final = b"default"
"""Redis's one user when no ACL is configured; user names are case-sensitive (PROTO-105)."""

ALLOWED_BEFORE_AUTH: Final = frozenset(("auth", "hello", "quit"))
"""PROTO-104: the commands Redis 7 flags ``no-auth`` (AUTH, HELLO, QUIT and RESET) that catlog
has; every other command waits for authentication."""

NOAUTH: Final = Error("NOAUTH Authentication required.")
EXEC_NOAUTH: Final = Error(
    "EXECABORT Transaction discarded because of: NOAUTH Authentication required."
)
WRONGPASS: Final = Error("WRONGPASS invalid username-password pair or user is disabled.")
NO_PASSWORD_SET: Final = Error(
    "ERR AUTH <password> called without any password configured for the default user."
    " Are you sure your configuration is correct?"
)
HELLO_NOAUTH: Final = Error(
    "NOAUTH HELLO must be called with the client already authenticated, otherwise the"
    " HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select"
    " the RESP protocol version at the same time"
)
SYNTAX_ERROR: Final = Error("ERR syntax error")

REDACTED: Final = "(redacted)"
"""PROTO-111: what CONFIG GET shows for a password that is set: Redis's own placeholder for an
argument it hides from its logs."""

LINE_REFUSED: Final = (
    "NOAUTH this server requires a password and the line protocol has no AUTH;"
    " connect with RESP and send AUTH"
)
"""PROTO-110: the line protocol's refusal, sent as ``ERROR <this>`` before the server closes."""

DENIED: Final = (
    b"-DENIED Redis is running in protected mode because protected mode is enabled and no"
    b" password is set for the default user. In this mode connections are only accepted from"
    b" the loopback interface. If you want to connect from external computers to Redis you may"
    b" adopt one of the following solutions: 1) If you started the server manually just for"
    b" testing, restart it with the '--protected-mode no' option. 2) Set up an authentication"
    b" password for the default user. NOTE: You only need to do one of the above things in order"
    b" for the server to start accepting connections from the outside.\r\n"
)
"""SRV-23: Redis 7.2's reply to a peer protected mode turns away, without its two remedies that
name what catlog lacks (CONFIG SET, CONFIG REWRITE, a configuration file); the rest is kept word
for word, "Redis" included, so a client or a reader that knows the message recognises it."""


class Password:
    """The server's password. Its ``repr`` hides it, so a config printed or logged by mistake
    does not leak it (SRV-22).

    :meth:`matches` compares SHA-256 digests with :func:`hmac.compare_digest`, as Redis compares
    hashes: ``compare_digest`` on the raw bytes would still take less time for a candidate of
    another length, and a digest's length is always 32.
    """

    __slots__ = ("_digest",)

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("a password may not be empty")
        self._digest = hashlib.sha256(secret).digest()

    def matches(self, candidate: bytes) -> bool:
        return hmac.compare_digest(self._digest, hashlib.sha256(candidate).digest())

    def __repr__(self) -> str:
        return f"Password({REDACTED})"


def config_value(password: Password | None) -> str:
    """PROTO-111: ``requirepass`` as CONFIG GET shows it: empty when unset, as in Redis; never
    the password itself."""
    return "" if password is None else REDACTED


class Gate:
    """One connection's standing: authenticated or not, and the checks that change it.

    A connection to a server without a password starts authenticated (Redis's ``nopass``
    default user); with one, it starts outside and only a successful AUTH or HELLO ... AUTH
    lets it in. A failed attempt never lets an authenticated connection out (PROTO-105), and
    every failure is answered alike (PROTO-109). AUTH inside MULTI is queued by the command
    layer and reaches :meth:`auth_command` when EXEC runs it (PROTO-108).
    """

    __slots__ = ("authenticated", "password")

    def __init__(self, password: Password | None) -> None:
        self.password: Final = password
        self.authenticated = password is None

    def refusal(self, name: str) -> Error | None:
        """PROTO-104: why the command ``name`` (lower case, known, of the right arity) may not run
        yet, or None. EXEC's refusal ends a transaction, so Redis words it as EXECABORT."""
        if self.authenticated or name in ALLOWED_BEFORE_AUTH:
            return None
        return EXEC_NOAUTH if name == "exec" else NOAUTH

    def authenticate(self, username: bytes, candidate: bytes) -> bool:
        """PROTO-105: let the connection in if ``username`` and ``candidate`` are right."""
        if username != DEFAULT_USER:
            return False
        if self.password is not None and not self.password.matches(candidate):
            return False
        self.authenticated = True
        return True

    def auth_command(self, args: list[bytes]) -> Reply:
        """PROTO-106: ``AUTH [username] password``, as Redis 7's authCommand answers it."""
        if len(args) > 3:
            return SYNTAX_ERROR
        if len(args) == 2:
            if self.password is None:
                return NO_PASSWORD_SET
            username, candidate = DEFAULT_USER, args[1]
        else:
            username, candidate = args[1], args[2]
        return OK if self.authenticate(username, candidate) else WRONGPASS


def line_refusal(password: Password | None) -> str | None:
    """PROTO-110: the message a line-protocol connection is closed with, or None to serve it."""
    return None if password is None else LINE_REFUSED


def is_loopback(host: str | None) -> bool:
    """SRV-23: a peer on this machine's loopback network: 127.0.0.0/8 or ::1, also written as
    an IPv4-mapped IPv6 address. ``None`` (a peer with no IP address, such as a Unix socket's)
    is local."""
    if host is None:
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def admits_peer(host: str | None, *, protected: bool, password: Password | None) -> bool:
    """SRV-23: whether a peer at ``host`` may connect: always, unless protected mode is on and
    no password is set, when only loopback peers may."""
    return not protected or password is not None or is_loopback(host)
