"""Moving bytes for attached sessions: output copy, stdin pump with half-close, detach keys."""

from __future__ import annotations

import os
import socket

import pytest

from berth.cli.commands.run import parse_detach_keys
from berth.cli.streams import DetachKeys, StdinPump, copy_output
from berth.client.http import RawStream
from berth.client.stdcopy import frame
from berth.errors import InvalidParameter, SystemFailure


def test_copy_output_demuxes_and_stops_on_daemon_error():
    got = []
    data = frame(1, b"a") + frame(2, b"b")
    copy_output([data[:3], data[3:]], lambda d, s: got.append((s, d)), tty=False)
    assert got == [(1, b"a"), (2, b"b")]
    with pytest.raises(SystemFailure, match="error from daemon in stream: oops"):
        copy_output([frame(3, b"oops")], lambda d, s: None, tty=False)
    raw = []
    copy_output([b"\x01\x00 not framed"], lambda d, s: raw.append((s, d)), tty=True)
    assert raw == [(1, b"\x01\x00 not framed")]


def test_stdin_pump_sends_then_half_closes():
    ours, theirs = socket.socketpair()
    r, w = os.pipe()
    try:
        pump = StdinPump(r, RawStream(ours)).start()
        os.write(w, b"line1\nline2\n")
        os.close(w)
        w = -1
        received = b""
        while chunk := theirs.recv(100):
            received += chunk
        assert received == b"line1\nline2\n"  # then EOF: the write side was shut
        assert pump.done.wait(2)
        theirs.sendall(b"still readable")  # our read side stays open after the half-close
        assert ours.recv(100) == b"still readable"
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
        ours.close()
        theirs.close()


def test_detach_keys_swallow_the_sequence_and_pass_the_rest():
    keys = DetachKeys(b"\x10\x11")
    assert keys(b"ab\x10") == b"ab"          # a possible start is held back
    assert keys(b"c") == b"\x10c"            # ...and released when it was not the sequence
    assert keys(b"x\x10") == b"x"
    assert keys(b"\x11rest") is None         # the full sequence: detach


def test_parse_detach_keys():
    assert parse_detach_keys(None) == b"\x10\x11"
    assert parse_detach_keys("ctrl-a,x") == b"\x01x"
    assert parse_detach_keys("ctrl-[") == b"\x1b"
    with pytest.raises(InvalidParameter):
        parse_detach_keys("ctrl-ab")
