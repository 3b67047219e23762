"""The connection's commands: PING, ECHO, SELECT, QUIT, HELLO, AUTH and CLIENT.

Clauses: PROTO-32, PROTO-33, PROTO-49 .. PROTO-53.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from catlog.auth import HELLO_NOAUTH, WRONGPASS
from catlog.protocol.replies import OK, PONG, Error, Map, Reply

from .arguments import (
    NOT_AN_INTEGER,
    _c_string,
    _help,
    _text,
    parse_int,
    unknown_subcommand,
    wrong_arity,
)
from .context import REDIS_VERSION

if TYPE_CHECKING:
    from . import Session


def _ping(session: Session, args: list[bytes]) -> Reply:
    """PROTO-32"""
    if len(args) > 2:
        return wrong_arity("ping")
    return args[1] if len(args) == 2 else PONG


def _echo(session: Session, args: list[bytes]) -> Reply:
    """PROTO-33"""
    return args[1]


def _select(session: Session, args: list[bytes]) -> Reply:
    """PROTO-49: there is one database, number 0."""
    index = parse_int(args[1])
    if index is None:
        return NOT_AN_INTEGER
    if not -(1 << 31) <= index < 1 << 31:
        return Error("ERR value is out of range, value must between -2147483648 and 2147483647")
    return OK if index == 0 else Error("ERR DB index is out of range")


def _quit(session: Session, args: list[bytes]) -> Reply:
    """PROTO-51"""
    session.closing = True
    return OK


def _valid_name(name: bytes) -> bool:
    """Redis's rule for client and library names: printable ASCII, no spaces."""
    return all(33 <= byte <= 126 for byte in name)


def _hello(session: Session, args: list[bytes]) -> Reply:
    """PROTO-52: HELLO [protover [AUTH username password] [SETNAME clientname]]"""
    version = 0
    i = 1
    if len(args) >= 2:
        parsed = parse_int(args[1])
        if parsed is None:
            return Error("ERR Protocol version is not an integer or out of range")
        if parsed not in (2, 3):
            return Error("NOPROTO unsupported protocol version")
        version = parsed
        i = 2
    name: bytes | None = None
    credentials: tuple[bytes, bytes] | None = None
    while i < len(args):
        option = args[i].upper()
        more = len(args) - 1 - i
        if option == b"AUTH" and more >= 2:
            credentials = (args[i + 1], args[i + 2])
            i += 3
        elif option == b"SETNAME" and more >= 1:
            name = args[i + 1]
            if not _valid_name(name):
                return Error(
                    "ERR Client names cannot contain spaces, newlines or special characters."
                )
            i += 2
        else:
            return Error(f"ERR Syntax error in HELLO option '{_text(_c_string(args[i], 1024))}'")
    gate = session.gate  # PROTO-107: the options are checked first, then the credentials
    if credentials is not None and not gate.authenticate(*credentials):
        return WRONGPASS
    if not gate.authenticated:
        return HELLO_NOAUTH
    if name is not None:
        session.name = name or None
    if version:
        session.protocol = version
    return Map(
        (
            (b"server", b"catlog"),
            (b"version", REDIS_VERSION.encode()),
            (b"proto", session.protocol),
            (b"id", session.client_id),
            (b"mode", b"standalone"),
            (b"role", b"master"),
            (b"modules", []),
        )
    )


def _auth(session: Session, args: list[bytes]) -> Reply:
    """PROTO-53, PROTO-106 (catlog/auth.py)"""
    return session.gate.auth_command(args)


_CLIENT_HELP: Final = (
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "SETINFO <LIB-NAME|LIB-VER> <value>",
    "    Set client meta attributes (accepted and kept, not used).",
    "HELP",
    "    Print this help.",
)


def _client(session: Session, args: list[bytes]) -> Reply:
    """PROTO-50: CLIENT SETNAME | GETNAME | SETINFO | ID | HELP"""
    sub = args[1].lower()
    if sub == b"setname":
        if len(args) != 3:
            return wrong_arity("client|setname")
        if not _valid_name(args[2]):
            return Error("ERR Client names cannot contain spaces, newlines or special characters.")
        session.name = args[2] or None
        return OK
    if sub == b"getname":
        return session.name if len(args) == 2 else wrong_arity("client|getname")
    if sub == b"id":
        return session.client_id if len(args) == 2 else wrong_arity("client|id")
    if sub == b"setinfo":
        if len(args) != 4:
            return wrong_arity("client|setinfo")
        attribute = args[2].lower()
        if attribute not in (b"lib-name", b"lib-ver"):
            return Error(f"ERR Unrecognized option '{_text(args[2])}'")
        if not _valid_name(args[3]):
            return Error(
                f"ERR {_text(attribute)} cannot contain spaces, newlines or special characters."
            )
        if attribute == b"lib-name":
            session.lib_name = args[3]
        else:
            session.lib_ver = args[3]
        return OK
    if sub == b"help" and len(args) == 2:
        return _help(_CLIENT_HELP)
    return unknown_subcommand(args)
