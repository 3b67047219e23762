"""The access decisions of catlog/auth.py, without a socket: who may connect, what a connection may
run before it authenticates, and which credentials let it in."""

from __future__ import annotations

import hmac
from pathlib import Path

import pytest

from catlog import auth
from catlog.auth import Gate, Password
from catlog.protocol.replies import OK
from catlog.serverconfig import ServerConfig, StartError, password_from

SECRET = b"correct horse battery staple"


@pytest.mark.spec("SRV-23")
@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("127.255.255.254", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("192.0.2.2", False),
        ("10.0.0.1", False),
        ("0.0.0.0", False),
        ("::", False),
        ("fd00::2", False),
        ("fe80::1%eth0", False),
        ("::ffff:192.0.2.2", False),
        ("localhost", False),  # a peer address is never a name; if it were, trust no name
        (None, True),  # no IP address at all: a Unix socket's peer is on this machine
    ],
)
def test_loopback_is_127_slash_8_and_colon_colon_1(host: str | None, loopback: bool) -> None:
    assert auth.is_loopback(host) is loopback


@pytest.mark.spec("SRV-23")
def test_protected_mode_admits_only_loopback_peers_when_there_is_no_password() -> None:
    assert not auth.admits_peer("192.0.2.2", protected=True, password=None)
    assert auth.admits_peer("127.0.0.1", protected=True, password=None)
    assert auth.admits_peer("::1", protected=True, password=None)


@pytest.mark.spec("SRV-23")
def test_a_password_or_protected_mode_off_admits_every_peer() -> None:
    assert auth.admits_peer("192.0.2.2", protected=True, password=Password(SECRET))
    assert auth.admits_peer("192.0.2.2", protected=False, password=None)


@pytest.mark.spec("SRV-22")
def test_a_password_matches_itself_only() -> None:
    password = Password(SECRET)
    assert password.matches(SECRET)
    assert not password.matches(SECRET[:-1])
    assert not password.matches(SECRET + b"x")
    assert not password.matches(b"")
    assert not password.matches(SECRET.upper())


@pytest.mark.spec("SRV-22")
def test_the_comparison_is_of_fixed_length_digests(monkeypatch: pytest.MonkeyPatch) -> None:
    """hmac.compare_digest is constant-time only for inputs of equal length: every comparison
    must hand it two 32-byte digests, whatever the candidate's length."""
    seen: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    password = Password(SECRET)
    for candidate in (b"", b"x", SECRET, SECRET * 100):
        password.matches(candidate)
    assert seen == [(32, 32)] * 4


@pytest.mark.spec("SRV-25")
def test_neither_a_password_nor_a_config_holding_one_shows_it() -> None:
    password = Password(SECRET)
    assert SECRET.decode() not in repr(password)
    assert SECRET.decode() not in repr(ServerConfig(password=password))
    assert auth.config_value(password) == "(redacted)"
    assert auth.config_value(None) == ""


@pytest.mark.spec("PROTO-103")
def test_a_connection_starts_authenticated_only_without_a_password() -> None:
    assert Gate(None).authenticated
    assert not Gate(Password(SECRET)).authenticated


@pytest.mark.spec("PROTO-104")
def test_before_auth_only_auth_hello_and_quit_may_run() -> None:
    gate = Gate(Password(SECRET))
    for name in ("auth", "hello", "quit"):
        assert gate.refusal(name) is None
    for name in ("get", "set", "ping", "multi", "discard", "watch", "config", "info", "client"):
        assert gate.refusal(name) == auth.NOAUTH
    assert gate.refusal("exec") == auth.EXEC_NOAUTH
    assert gate.auth_command([b"AUTH", SECRET]) == OK
    assert gate.refusal("get") is None
    assert gate.refusal("exec") is None


@pytest.mark.spec("PROTO-105", "PROTO-109")
def test_only_default_with_the_password_gets_in_and_a_failure_changes_nothing() -> None:
    gate = Gate(Password(SECRET))
    assert not gate.authenticate(b"Default", SECRET)
    assert not gate.authenticate(b"bob", SECRET)
    assert not gate.authenticate(b"default", b"wrong")
    assert not gate.authenticated
    assert gate.authenticate(b"default", SECRET)
    assert not gate.authenticate(b"default", b"wrong")
    assert gate.authenticated  # a failed attempt never lets a connection out


@pytest.mark.spec("PROTO-105", "PROTO-53")
def test_without_a_password_default_takes_any_password() -> None:
    gate = Gate(None)
    assert gate.authenticate(b"default", b"anything")
    assert not gate.authenticate(b"bob", b"anything")


@pytest.mark.spec("PROTO-106", "PROTO-109")
def test_auth_answers_as_redis() -> None:
    gate = Gate(Password(SECRET))
    assert gate.auth_command([b"AUTH", b"a", b"b", b"c"]) == auth.SYNTAX_ERROR
    assert gate.auth_command([b"AUTH", b"wrong"]) == auth.WRONGPASS
    assert gate.auth_command([b"AUTH", b"bob", SECRET]) == auth.WRONGPASS
    assert gate.auth_command([b"AUTH", b"default", b"wrong"]) == auth.WRONGPASS
    assert gate.auth_command([b"AUTH", b"default", SECRET]) == OK
    assert Gate(None).auth_command([b"AUTH", b"pw"]) == auth.NO_PASSWORD_SET


@pytest.mark.spec("PROTO-110")
def test_the_line_protocol_is_refused_only_with_a_password() -> None:
    assert auth.line_refusal(None) is None
    assert auth.line_refusal(Password(SECRET)) == auth.LINE_REFUSED


# ----------------------------------------------------------------------- where it comes from


@pytest.mark.spec("SRV-21")
def test_the_password_comes_from_the_flag_the_file_or_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "pass"
    path.write_bytes(SECRET + b"\r\n")
    sources = [
        password_from(SECRET.decode(), None, {}),
        password_from(None, str(path), {}),
        password_from(None, None, {"CATLOG_REQUIREPASS": SECRET.decode()}),
    ]
    for password in sources:
        assert password is not None
        assert password.matches(SECRET)
    path.write_bytes(SECRET + b"\n\n")  # only one trailing newline goes
    from_file = password_from(None, str(path), {})
    assert from_file is not None
    assert from_file.matches(SECRET + b"\n")
    assert password_from(None, None, {}) is None
    assert password_from(None, None, {"CATLOG_REQUIREPASS": ""}) is None


@pytest.mark.spec("SRV-21", "SRV-25")
def test_a_password_given_wrong_stops_the_server_without_showing_it(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"\n")
    secret = SECRET.decode()
    cases = [
        ((secret, None, {"CATLOG_REQUIREPASS": secret}), "given more than once"),
        ((secret, str(empty), {}), "given more than once"),
        (("", None, {}), "is empty"),
        ((None, str(empty), {}), f"the password file {empty} is empty"),
        ((None, str(tmp_path / "none"), {}), "cannot read the password file"),
    ]
    for (flag, path, environ), message in cases:
        with pytest.raises(StartError, match=message) as raised:
            password_from(flag, path, environ)
        assert secret not in str(raised.value)
