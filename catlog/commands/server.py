"""The server's own commands: INFO, CONFIG, TIME, LASTSAVE, SAVE and BGREWRITEAOF.

Clauses: PROTO-46 (INFO), PROTO-48 (CONFIG), PROTO-59 (BGREWRITEAOF), PROTO-70 (the write
status in INFO), PROTO-92 (TIME, LASTSAVE, SAVE), PROTO-101, PROTO-102.
"""

from __future__ import annotations

import contextlib
import resource
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from catlog import __version__
from catlog.auth import config_value
from catlog.errors import StoreClosedError, StoreFailedError
from catlog.protocol.pattern import glob_match
from catlog.protocol.replies import OK, Error, Map, Reply, SimpleString, Verbatim

from .arguments import _help, _text, unknown_subcommand, wrong_arity
from .context import REDIS_VERSION, FailureSource, StatsSource, Syncable

if TYPE_CHECKING:
    from . import Session


def _bgrewriteaof(session: Session, args: list[bytes]) -> Reply:
    """PROTO-59: Redis rewrites its append-only file; catlog's log is compacted (ENG-42)."""
    if session.store.compact_in_background():
        return SimpleString(b"Background append only file rewriting started")
    return Error("ERR Background append only file rewriting already in progress")


def _time(session: Session, args: list[bytes]) -> Reply:
    """PROTO-92: the store's clock as unix seconds and microseconds (ms precision)."""
    now = session.store.now_ms()
    return [b"%d" % (now // 1000), b"%d" % (now % 1000 * 1000)]


def _lastsave(session: Session, args: list[bytes]) -> Reply:
    """PROTO-92"""
    server = session.server
    if server.saves.at:
        return server.saves.at
    uptime = int(server.clock.monotonic() - server.started)
    return server.clock.now_ms() // 1000 - uptime


def _save(session: Session, args: list[bytes]) -> Reply:
    """PROTO-92: every write so far made durable (ENG-17)."""
    store = session.store
    if isinstance(store, Syncable):
        store.sync()
    session.server.saves.at = session.server.clock.now_ms() // 1000
    return OK


def _info_server(session: Session) -> list[str]:
    server = session.server
    uptime = max(0, int(server.clock.monotonic() - server.started))
    return [
        f"redis_version:{REDIS_VERSION}",
        f"catlog_version:{__version__}",
        "redis_mode:standalone",
        f"os:{server.os}",
        "arch_bits:64",
        "multiplexing_api:asyncio",
        f"process_id:{server.process_id}",
        f"tcp_port:{server.tcp_port}",
        f"uptime_in_seconds:{uptime}",
        f"uptime_in_days:{uptime // 86400}",
    ]


def _info_clients(session: Session) -> list[str]:
    server = session.server
    return [
        f"connected_clients:{server.counters.connected}",
        f"maxclients:{server.max_clients}",
        "blocked_clients:0",
    ]


def used_memory() -> int:
    """PROTO-101: the process's resident set size in bytes, from ``/proc/self/statm``; where
    that file is absent, the peak resident size ``getrusage`` reports."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize()
    except (OSError, IndexError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def _info_memory(session: Session) -> list[str]:
    rss = used_memory()
    return [
        f"used_memory:{rss}",
        f"used_memory_rss:{rss}",
        "maxmemory:0",
        "maxmemory_policy:noeviction",
    ]


def _info_stats(session: Session) -> list[str]:
    counters = session.server.counters
    return [
        f"total_connections_received:{counters.connections}",
        f"total_commands_processed:{counters.commands}",
        f"instantaneous_ops_per_sec:{counters.ops_per_sec()}",
        f"keyspace_hits:{counters.hits}",
        f"keyspace_misses:{counters.misses}",
    ]


def _info_replication(session: Session) -> list[str]:
    return ["role:master", "connected_slaves:0"]


def _info_persistence(session: Session) -> list[str]:
    lines = ["loading:0", "aof_enabled:1", f"catlog_fsync:{session.server.fsync}"]
    store = session.store
    stats = None
    if isinstance(store, StatsSource):
        # SRV-18: between closing a failed store and opening it again there are no counts,
        # but the write status below is what an operator asks INFO for then.
        with contextlib.suppress(StoreClosedError):
            stats = store.stats()
    if stats is not None:
        lines += [
            f"aof_rewrite_in_progress:{int(stats.compacting)}",
            # ENG-57, PROTO-102: a compaction that failed alone, in Redis's words for a rewrite
            f"aof_last_bgrewrite_status:{'ok' if stats.compaction_error is None else 'err'}",
            "catlog_last_compaction_error:" + " ".join((stats.compaction_error or "").split()),
            f"catlog_segments:{stats.segments}",
            f"catlog_disk_bytes:{stats.disk_bytes}",
            f"catlog_unflushed_bytes:{stats.unflushed_bytes}",
            f"catlog_dead_bytes:{stats.dead_bytes}",
            f"catlog_write_amplification:{stats.write_amplification:.2f}",  # ENG-77
            f"catlog_write_stalls:{stats.write_stalls}",  # ENG-98
            f"catlog_write_stall_seconds:{stats.write_stall_seconds:.3f}",
        ]
    if isinstance(store, FailureSource):
        lines += _write_status(store.failure)
    return lines


def _write_status(failure: StoreFailedError | None) -> list[str]:
    """PROTO-70: Redis's ``aof_last_write_status``, and catlog's word on the error and the way
    back (SRV-18, SRV-19)."""
    if failure is None:
        return [
            "aof_last_write_status:ok",
            "catlog_last_write_error:",
            "catlog_write_recovery:none",
        ]
    text = " ".join(str(failure).split())  # one INFO line, whatever the OS's message holds
    recovery = "restart" if failure.fsync_failed else "automatic"
    return [
        "aof_last_write_status:err",
        f"catlog_last_write_error:{text}",
        f"catlog_write_recovery:{recovery}",
    ]


def _info_keyspace(session: Session) -> list[str]:
    """PROTO-46: ``expires`` counts the keys with an expiry; catlog keeps no ``avg_ttl``."""
    store = session.store
    keys = len(store)
    expires = store.stats().expiring_keys if isinstance(store, StatsSource) else 0
    return [f"db0:keys={keys},expires={expires},avg_ttl=0"] if keys else []


INFO_SECTIONS: Final[dict[str, Callable[[Session], list[str]]]] = {
    "server": _info_server,
    "clients": _info_clients,
    "memory": _info_memory,
    "persistence": _info_persistence,
    "stats": _info_stats,
    "replication": _info_replication,
    "keyspace": _info_keyspace,
}


def _info(session: Session, args: list[bytes]) -> Reply:
    """PROTO-46: INFO [section ...]; the text is ``# Section`` headers and ``key:value`` lines."""
    asked = {_text(arg).lower() for arg in args[1:]}
    if not asked or asked & {"all", "default", "everything"}:
        asked = set(INFO_SECTIONS)
    parts = []
    for name, lines in INFO_SECTIONS.items():
        if name in asked:
            body = "".join(f"{text}\r\n" for text in lines(session))
            parts.append(f"# {name.capitalize()}\r\n{body}")
    return Verbatim("\r\n".join(parts).encode("utf-8", "surrogateescape"))


_FSYNC_AS_APPENDFSYNC: Final = {"always": "always", "interval": "everysec", "never": "no"}


def _config_values(session: Session) -> dict[str, str]:
    server = session.server
    return {
        "maxmemory": "0",
        "maxmemory-policy": "noeviction",
        "timeout": str(int(server.idle_timeout)),
        "maxclients": str(server.max_clients),
        "appendonly": "yes",
        "appendfsync": _FSYNC_AS_APPENDFSYNC.get(server.fsync, server.fsync),
        "save": "",
        "databases": "1",
        "port": str(server.tcp_port),
        "requirepass": config_value(session.gate.password),  # PROTO-111
    }


_CONFIG_HELP: Final = (
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "HELP",
    "    Print this help.",
)


def _config(session: Session, args: list[bytes]) -> Reply:
    """PROTO-48: CONFIG GET parameter [parameter ...]; CONFIG HELP"""
    sub = args[1].lower()
    if sub == b"get":
        if len(args) < 3:
            return wrong_arity("config|get")
        values = _config_values(session)
        found: dict[str, str] = {}
        for pattern in args[2:]:
            lowered = pattern.lower()
            for name, value in values.items():
                if name not in found and glob_match(lowered, name.encode()):
                    found[name] = value
        return Map(tuple((name.encode(), value.encode()) for name, value in found.items()))
    if sub == b"help" and len(args) == 2:
        return _help(_CONFIG_HELP)
    return unknown_subcommand(args)
