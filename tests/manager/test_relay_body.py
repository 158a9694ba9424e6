"""The event-loop relay's body decoding, fed the way a socket delivers: in any pieces."""

from __future__ import annotations

import io

import pytest

from manager.proxy.upstream import BodyDecoder, ResponseHead, UpstreamError

CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"5;name=value\r\nhello\r\n0000B\r\n, relayed!!\r\n0\r\nX-Trailer: t\r\n\r\n",
)


def decoder(head: bytes) -> BodyDecoder:
    return BodyDecoder(ResponseHead(io.BytesIO(head), "GET"))


def feed_in_pieces(body: BodyDecoder, wire: bytes, size: int) -> tuple[bytes, bytearray]:
    content, buffer = b"", bytearray()
    for start in range(0, len(wire), size):
        buffer += wire[start : start + size]
        content += body.feed(buffer)
    return content, buffer


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_a_chunked_body_decodes_the_same_however_it_is_split(size):
    head, wire = CHUNKED
    body = decoder(head)
    content, left = feed_in_pieces(body, wire + b"HTTP/1.1 next", size)
    assert content == b"hello, relayed!!"
    assert body.done
    assert left == b"HTTP/1.1 next"  # what follows the body is not taken


@pytest.mark.parametrize("size", [1, 4, 1000])
def test_a_body_of_known_length_stops_at_its_length(size):
    body = decoder(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    content, left = feed_in_pieces(body, b"0123456789extra", size)
    assert (content, body.done, bytes(left)) == (b"0123456789", True, b"extra")


def test_a_body_without_length_runs_until_the_connection_ends():
    body = decoder(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
    content, _ = feed_in_pieces(body, b"all of it", 4)
    assert (content, body.done, body.until_close) == (b"all of it", False, True)


@pytest.mark.parametrize("status", [b"204 No Content", b"304 Not Modified"])
def test_statuses_without_a_body_are_done_at_once(status):
    body = decoder(b"HTTP/1.1 " + status + b"\r\nContent-Length: 5\r\n\r\n")
    assert body.done
    assert body.feed(bytearray(b"later")) == b""


@pytest.mark.parametrize(
    "wire", [b"zz\r\nhello\r\n", b"-5\r\nhello\r\n", b"5\r\nhelloXX\r\n", b"9" * 70000]
)
def test_broken_chunking_is_an_upstream_error(wire):
    body = decoder(CHUNKED[0])
    with pytest.raises(UpstreamError):
        body.feed(bytearray(wire))
