"""What ``catlog serve`` takes on its command line, checked before anything is opened
(spec/server.md SRV-2, SRV-10, SRV-15, SRV-21, SRV-27), the descriptor budget it gives its
store (SRV-26), and the descriptor limit it asks for (SRV-30).

:class:`ServerConfig` holds every setting of a server as one frozen value. :func:`add_arguments`
declares the flags and :func:`config_from` turns the parsed command line into a config; the
password may also come from a file or the environment (:func:`password_from`, SRV-21), so that
it need not show in ``ps``. A password given wrong stops the server here, before the data
directory is opened, with a :class:`StartError` that says how (SRV-21; the line as SRV-15's).
"""

from __future__ import annotations

import argparse
import os
import resource
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from . import auth
from . import options as store_module
from .errors import CatlogError
from .filecache import (
    MAX_DEFAULT_OPEN_FILES,
    MIN_OPEN_FILES,
    RESERVED_DESCRIPTORS,
    default_max_open_files,
)
from .index import MAX_SEGMENT_SIZE
from .options import FsyncPolicy
from .protocol import line, resp

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 4000
DEFAULT_DATA_DIR: Final = "./data"
DEFAULT_MAX_CONNECTIONS: Final = 1024
DEFAULT_IDLE_TIMEOUT: Final = 300.0

DEFAULT_COMPACT_THRESHOLD: Final = 0.5


def _threshold(text: str) -> float | None:
    """SRV-10: ``--compact-threshold``: a share between 0 and 1 exclusive, or 0 for never."""
    value = float(text)
    if value == 0:
        return None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1 (0 turns it off)")
    return value


def _open_files(text: str) -> int:
    """SRV-2: ``--max-open-files``: a positive count (ENG-65)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def segment_size(text: str) -> int:
    """SRV-27, TOOL-42: the sizes a store accepts (ENG-9, FMT-12), refused here as a usage
    error rather than by the store once the server is starting."""
    value = int(text)
    if not store_module.MIN_SEGMENT_SIZE <= value <= MAX_SEGMENT_SIZE:
        raise argparse.ArgumentTypeError(
            f"must be between {store_module.MIN_SEGMENT_SIZE} and {MAX_SEGMENT_SIZE} bytes"
        )
    return value


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything ``catlog serve`` takes on its command line (SRV-2)."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    data_dir: str = DEFAULT_DATA_DIR
    fsync: FsyncPolicy = "always"
    fsync_interval_ms: int = store_module.DEFAULT_FSYNC_INTERVAL_MS
    segment_size: int = store_module.DEFAULT_SEGMENT_SIZE
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_line_length: int = line.MAX_LINE_LENGTH
    max_bulk_length: int = resp.MAX_BULK_LENGTH
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    """Seconds a connection may stay silent before it is closed; 0 turns it off."""
    compact_threshold: float | None = DEFAULT_COMPACT_THRESHOLD
    """SRV-10: the dead share of the data that starts a compaction (ENG-41); None: never."""
    hints: bool = True
    """SRV-10: write each sealed segment's hint in the background (ENG-43)."""
    max_open_files: int | None = None
    """SRV-2, ENG-65: sealed segments' descriptors held open at once; None: the default."""
    password: auth.Password | None = None
    """SRV-21: the password every RESP connection must give (PROTO-103); None: none."""
    protected_mode: bool = True
    """SRV-23: with no password, serve only clients on the loopback interface."""


class StartError(CatlogError):
    """SRV-15: the server could not start; the message says which resource failed, and why."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """SRV-2: the flags of ``catlog serve``, each with its default."""
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help="address to bind (default %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="TCP port, 0 for any (default %(default)s)"
    )
    parser.add_argument(
        "--data-dir", default=DEFAULT_DATA_DIR, help="data directory (default %(default)s)"
    )
    parser.add_argument(
        "--fsync",
        choices=store_module.FSYNC_POLICIES,
        default="always",
        help="durability policy, see spec/engine.md (default %(default)s)",
    )
    parser.add_argument(
        "--fsync-interval-ms",
        type=int,
        default=store_module.DEFAULT_FSYNC_INTERVAL_MS,
        help="background fsync period under --fsync interval (default %(default)s)",
    )
    parser.add_argument(
        "--segment-size",
        type=segment_size,
        default=store_module.DEFAULT_SEGMENT_SIZE,
        help="bytes per segment file before rotation (default %(default)s)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        help="connections served at once (default %(default)s)",
    )
    parser.add_argument(
        "--max-line-length",
        type=int,
        default=line.MAX_LINE_LENGTH,
        help="longest line-protocol request, bytes (default %(default)s)",
    )
    parser.add_argument(
        "--max-bulk-length",
        type=int,
        default=resp.MAX_BULK_LENGTH,
        help="longest RESP argument, bytes (default %(default)s)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=DEFAULT_IDLE_TIMEOUT,
        help="close a connection silent this many seconds; 0 never (default %(default)s)",
    )
    parser.add_argument(
        "--compact-threshold",
        type=_threshold,
        default=DEFAULT_COMPACT_THRESHOLD,
        help="compact in the background once this share of the data is dead; 0 never "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--no-hints",
        dest="hints",
        action="store_false",
        help="do not write hint files for sealed segments (restarts then scan every segment)",
    )
    parser.add_argument(
        "--max-open-files",
        type=_open_files,
        default=None,
        help="sealed segments' descriptors held open at once (default: from ulimit -n and"
        " --max-connections, SRV-26)",
    )
    parser.add_argument(
        "--requirepass",
        metavar="PASSWORD",
        help="require AUTH with this password; visible to every user in ps, so prefer "
        f"--requirepass-file or ${PASSWORD_VARIABLE}",
    )
    parser.add_argument(
        "--requirepass-file",
        metavar="PATH",
        help="require AUTH with the password this file holds (one trailing newline is dropped)",
    )
    parser.add_argument(
        "--protected-mode",
        choices=["yes", "no"],
        default="yes",
        help="with no password, serve only clients on the loopback interface (default %(default)s)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="logging threshold (default %(default)s)",
    )


def store_open_files(config: ServerConfig, soft_limit: int | None = None) -> int:
    """SRV-26: the store's descriptor budget, leaving one for each of ``max_connections``.

    The engine's default (ENG-65) keeps half of what ``soft_limit`` (``RLIMIT_NOFILE``'s, read
    now if ``None``) leaves for the rest of the process; a server knows what that rest is, its
    connections, and may need more than half for them.
    """
    if config.max_open_files is not None:
        return config.max_open_files
    if soft_limit is None:
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    default = default_max_open_files(soft_limit)
    if soft_limit == resource.RLIM_INFINITY or soft_limit < 0:
        return default
    room = soft_limit - RESERVED_DESCRIPTORS - config.max_connections
    return max(MIN_OPEN_FILES, min(default, room))


def wanted_open_files(config: ServerConfig) -> int:
    """SRV-30: the soft ``RLIMIT_NOFILE`` a server asks for: the reserve, a descriptor per
    connection, and its store's budget as given or ENG-65's ceiling."""
    files = config.max_open_files if config.max_open_files is not None else MAX_DEFAULT_OPEN_FILES
    return RESERVED_DESCRIPTORS + config.max_connections + files


def raised_soft_limit(soft: int, hard: int, wanted: int) -> int | None:
    """SRV-30: the soft limit to set so that ``wanted`` descriptors may be open, at most
    ``hard``; ``None`` when the soft limit is high enough already, or cannot rise."""
    infinite = resource.RLIM_INFINITY
    if soft == infinite or soft >= wanted:
        return None
    target = wanted if hard == infinite else min(wanted, hard)
    return target if target > soft else None


PASSWORD_VARIABLE: Final = "CATLOG_REQUIREPASS"
"""SRV-21: the environment variable a password may come from, out of sight of ``ps``."""


def password_from(
    flag: str | None, path: str | None, environ: Mapping[str, str]
) -> auth.Password | None:
    """SRV-21: the password from the one place it was given, or None; StartError when it was
    given in more than one, is empty, or its file cannot be read. Nothing here names it."""
    variable = environ.get(PASSWORD_VARIABLE) or None  # set but empty: not set
    given = [
        name
        for name, value in (
            ("--requirepass", flag),
            ("--requirepass-file", path),
            (PASSWORD_VARIABLE, variable),
        )
        if value is not None
    ]
    if len(given) > 1:
        raise StartError(f"the password is given more than once ({', '.join(given)}): give one")
    if path is not None:
        try:
            with open(path, "rb") as file:
                secret = file.read()
        except OSError as exc:
            raise StartError(f"cannot read the password file {path}: {exc.strerror}") from exc
        secret = secret.removesuffix(b"\n").removesuffix(b"\r")
        if not secret:
            raise StartError(f"the password file {path} is empty")
        return auth.Password(secret)
    text = flag if flag is not None else variable
    if text is None:
        return None
    if not text:
        raise StartError("the password given with --requirepass is empty")
    return auth.Password(os.fsencode(text))


def config_from(args: argparse.Namespace) -> ServerConfig:
    """The config ``args`` describe; StartError for a password given wrong (SRV-21)."""
    return ServerConfig(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        fsync=args.fsync,
        fsync_interval_ms=args.fsync_interval_ms,
        segment_size=args.segment_size,
        max_connections=args.max_connections,
        max_line_length=args.max_line_length,
        max_bulk_length=args.max_bulk_length,
        idle_timeout=args.idle_timeout,
        compact_threshold=args.compact_threshold,
        hints=args.hints,
        max_open_files=args.max_open_files,
        password=password_from(args.requirepass, args.requirepass_file, os.environ),
        protected_mode=args.protected_mode == "yes",
    )
