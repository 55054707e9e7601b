"""Moving bytes for attached sessions: output copy, stdin pump with half-close, detach keys."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from berth.cli.commands.run import parse_detach_keys
from berth.cli.streams import DetachKeys, OutputSink, copy_output, duplex
from berth.client.rawstream import RawStream
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


def test_duplex_sends_stdin_half_closes_and_keeps_reading():
    ours, theirs = socket.socketpair()
    r, w = os.pipe()
    got = []
    try:
        os.write(w, b"line1\nline2\n")
        os.close(w)
        w = -1

        def daemon():
            received = b""
            while chunk := theirs.recv(100):
                received += chunk
            # stdin ended (half-close seen); output still flows back afterwards
            theirs.sendall(b"echo:" + received)
            theirs.shutdown(socket.SHUT_WR)

        t = threading.Thread(target=daemon)
        t.start()
        assert duplex(RawStream(ours), r, got.append) is True
        t.join(5)
        assert b"".join(got) == b"echo:line1\nline2\n"
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
        ours.close()
        theirs.close()


def test_duplex_large_input_and_output_do_not_deadlock():
    ours, theirs = socket.socketpair()
    r, w = os.pipe()
    payload = os.urandom(3 << 20)
    got = []

    def feeder():
        with os.fdopen(w, "wb") as fh:
            fh.write(payload)

    def echo():
        # like `cat`: every byte comes back while more is still being sent
        while chunk := theirs.recv(65536):
            theirs.sendall(chunk)
        theirs.shutdown(socket.SHUT_WR)

    threads = [threading.Thread(target=feeder), threading.Thread(target=echo)]
    for t in threads:
        t.start()
    try:
        assert duplex(RawStream(ours), r, got.append) is True
        assert b"".join(got) == payload
    finally:
        for t in threads:
            t.join(5)
        os.close(r)
        ours.close()
        theirs.close()


def test_duplex_detach_keys_stop_the_session():
    ours, theirs = socket.socketpair()
    r, w = os.pipe()
    try:
        os.write(w, b"ls\x10\x11more")
        keys = DetachKeys(b"\x10\x11")
        # returns at once although the "daemon" never ends the stream
        assert duplex(RawStream(ours), r, lambda data: None, keys) is False
    finally:
        os.close(r)
        os.close(w)
        ours.close()
        theirs.close()


def test_output_sink_demuxes_unless_tty():
    got = []
    sink = OutputSink(lambda d, s: got.append((s, d)), tty=False)
    data = frame(1, b"a") + frame(2, b"b")
    sink(data[:5])
    sink(data[5:])
    assert got == [(1, b"a"), (2, b"b")]
    raw = []
    OutputSink(lambda d, s: raw.append((s, d)), tty=True)(b"\x01\x00x")
    assert raw == [(1, b"\x01\x00x")]
    with pytest.raises(SystemFailure, match="error from daemon in stream: oops"):
        OutputSink(lambda d, s: None, tty=False)(frame(3, b"oops"))


def test_detach_keys_swallow_the_sequence_and_pass_the_rest():
    keys = DetachKeys(b"\x10\x11")
    assert keys(b"ab\x10") == b"ab"  # a possible start is held back
    assert keys(b"c") == b"\x10c"  # ...and released when it was not the sequence
    assert keys(b"x\x10") == b"x"
    assert keys(b"\x11rest") is None  # the full sequence: detach


def test_parse_detach_keys():
    assert parse_detach_keys(None) == b"\x10\x11"
    assert parse_detach_keys("ctrl-a,x") == b"\x01x"
    assert parse_detach_keys("ctrl-[") == b"\x1b"
    with pytest.raises(InvalidParameter):
        parse_detach_keys("ctrl-ab")


def test_duplex_ends_with_output_even_if_stdin_is_never_read():
    ours, theirs = socket.socketpair()
    r, w = os.pipe()
    got = []

    def feeder():
        try:
            with os.fdopen(w, "wb") as fh:
                fh.write(b"z" * (8 << 20))
        except BrokenPipeError:
            pass  # duplex returned and its reader end was closed: expected

    t = threading.Thread(target=feeder, daemon=True)
    t.start()
    theirs.sendall(b"bye")
    theirs.shutdown(socket.SHUT_WR)  # output over; stdin is never read
    try:
        assert duplex(RawStream(ours), r, got.append) is True
        assert b"".join(got) == b"bye"
    finally:
        os.close(r)
        ours.close()
        theirs.close()
        t.join(5)
