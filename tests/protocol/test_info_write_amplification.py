"""INFO's write amplification (ENG-77, PROTO-46), from the store's own counters."""

from __future__ import annotations

import pytest

import catlog
from catlog.commands import ServerInfo, Session
from catlog.protocol.replies import Verbatim


def persistence(session: Session) -> dict[str, str]:
    reply = session.execute([b"INFO", b"persistence"])
    assert isinstance(reply, Verbatim)
    fields = {}
    for line in reply.text.decode().split("\r\n"):
        name, _, value = line.partition(":")
        if value:
            fields[name] = value
    return fields


@pytest.mark.spec("ENG-77", "PROTO-46")
def test_info_reports_the_write_amplification_with_two_decimals(data_dir: str) -> None:
    with catlog.open(data_dir, fsync="never", segment_size=256) as db:
        session = Session(db, server=ServerInfo(fsync="never"))
        assert persistence(session)["catlog_write_amplification"] == "0.00"
        for i in range(30):
            session.execute([b"SET", b"k%d" % (i % 3), b"%020d" % i])
        db.compact()
        expected = db.stats().write_amplification
        assert expected > 0
        assert persistence(session)["catlog_write_amplification"] == f"{expected:.2f}"
