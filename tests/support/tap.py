"""A TCP relay on 127.0.0.1 that keeps every byte its clients send: which requests went out."""

from __future__ import annotations

import socket
import threading


class Tap:
    """Relays each connection to ``target`` and records what clients sent, in ``sent``;
    with ``cut_after``, cuts every connection once clients have sent that many bytes; with
    ``mute``, cuts a connection when the server starts to answer a request whose line holds
    ``mute`` (the answer lost on the way back, the request carried out)."""

    def __init__(
        self, target: tuple[str, int], cut_after: int | None = None, *, mute: bytes | None = None
    ) -> None:
        self.target = target
        self.cut_after = cut_after
        self.mute = mute  # may change between connections
        self.sent = bytearray()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            server = socket.create_connection(self.target)
            asked = bytearray()  # what this connection's client sent
            for src, dst in ((client, server), (server, client)):
                threading.Thread(
                    target=self._pipe, args=(src, dst, src is client, asked), daemon=True
                ).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, record: bool, asked: bytearray) -> None:
        try:
            while data := src.recv(1 << 16):
                if record:
                    with self._lock:
                        self.sent += data
                        asked += data
                    if self.cut_after is not None and len(self.sent) >= self.cut_after:
                        self._cut(src, dst)
                        return
                elif self.mute and self._last_request_holds(asked, self.mute):
                    self._cut(src, dst)
                    return
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    @staticmethod
    def _cut(*ends: socket.socket) -> None:
        for end in ends:
            end.shutdown(socket.SHUT_RDWR)

    def _last_request_holds(self, asked: bytearray, part: bytes) -> bool:
        with self._lock:
            lines = [line for line in bytes(asked).split(b"\r\n") if b" HTTP/1." in line]
        return bool(lines) and part in lines[-1]

    def requested(self, path: str) -> bool:
        """Whether any request line so far named ``path`` (with or without a query)."""
        with self._lock:
            return any(
                line.split(b" ")[1].split(b"?")[0] == path.encode()
                for line in bytes(self.sent).split(b"\r\n")
                if line.startswith((b"GET ", b"POST ", b"PUT ", b"DELETE "))
                and line.count(b" ") >= 2
            )

    def clear(self) -> None:
        with self._lock:
            self.sent.clear()

    def close(self) -> None:
        self._listener.close()
