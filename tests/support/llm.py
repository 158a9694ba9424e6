"""A scripted OpenAI-compatible LLM on 127.0.0.1: the edge of the system, so that OpenCode's
agent really runs (on the Manager, writing real files) without a network or a model.

Each ``Turn`` says what to do with a prompt that contains its ``prompt`` text: call OpenCode's
``write`` tool with ``file_path`` and ``content``, then, once the tool's result comes back,
answer ``reply``. A request without tools (OpenCode asking for a session title) gets a short
title. Chat completions stream as Server-Sent Events the way the AI SDK's openai-compatible
provider reads them; a non-streaming request gets the same answer as one JSON document.

``opencode_environment`` is what the Manager's OpenCode must inherit to use it (FIELD-NOTES).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.http_server import StandInServer

PROVIDER = "scripted"
MODEL = "m"
TITLE = "Scripted session"


@dataclass(frozen=True)
class Turn:
    prompt: str
    file_path: str
    content: str
    reply: str
    # When given, the answer after the file is written waits for it: an agent still at work.
    hold: threading.Event | None = None


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _has_write_tool(body: dict[str, Any]) -> bool:
    return any(tool.get("function", {}).get("name") == "write" for tool in body.get("tools") or [])


class ScriptedLLM:
    """Start with ``start()`` (port 0), stop with ``stop()``; ``requests`` records every body."""

    def __init__(self, turns: list[Turn]) -> None:
        self.turns = list(turns)
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server: StandInServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the scripted LLM first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> ScriptedLLM:
        handler = type("Handler", (_Handler,), {"llm": self})
        self._server = StandInServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def add(self, turn: Turn) -> None:
        with self._lock:
            self.turns.append(turn)

    def opencode_environment(self) -> dict[str, str]:
        config = {
            "$schema": "https://opencode.ai/config.json",
            "model": f"{PROVIDER}/{MODEL}",
            "small_model": f"{PROVIDER}/{MODEL}",
            "share": "disabled",
            "autoupdate": False,
            "provider": {
                PROVIDER: {
                    "npm": "@ai-sdk/openai-compatible",
                    "name": "Scripted",
                    "options": {"baseURL": self.base_url, "apiKey": "x"},
                    "models": {
                        MODEL: {
                            "name": "Scripted model",
                            "tool_call": True,
                            "limit": {"context": 100000, "output": 4096},
                        }
                    },
                }
            },
        }
        return {
            "OPENCODE_CONFIG_CONTENT": json.dumps(config),
            "OPENCODE_DISABLE_MODELS_FETCH": "1",
        }

    # -- answers ------------------------------------------------------------------------

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        """The assistant message for one request: ``{"content"}`` or ``{"tool_call"}``."""
        with self._lock:
            self.requests.append(body)
            turns = list(self.turns)
        messages = body.get("messages") or []
        if not _has_write_tool(body):
            return {"content": TITLE}
        user_texts = [_text_of(m) for m in messages if m.get("role") == "user"]
        last_user = user_texts[-1] if user_texts else ""
        turn = next((t for t in reversed(turns) if t.prompt in last_user), None)
        if turn is None:
            return {"content": f"No scripted turn matches {last_user[:80]!r}."}
        after_user = messages[max(i for i, m in enumerate(messages) if m.get("role") == "user") :]
        if any(m.get("role") == "tool" for m in after_user):
            if turn.hold is not None:
                turn.hold.wait(timeout=120)
            return {"content": turn.reply}
        arguments = json.dumps({"filePath": turn.file_path, "content": turn.content})
        return {"tool_call": {"name": "write", "arguments": arguments}}


def _chunks(answer: dict[str, Any], model: str) -> Iterator[dict[str, Any]]:
    base = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 0}
    base["model"] = model

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return base | {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": ""})
    if "tool_call" in answer:
        call = answer["tool_call"]
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_scripted",
                        "type": "function",
                        "function": {"name": call["name"], "arguments": call["arguments"]},
                    }
                ]
            }
        )
        finish = "tool_calls"
    else:
        yield chunk({"content": answer["content"]})
        finish = "stop"
    last = chunk({}, finish)
    last["usage"] = {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
    yield last


def _completion(answer: dict[str, Any], model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer.get("content")}
    finish = "stop"
    if "tool_call" in answer:
        message["tool_calls"] = [
            {"id": "call_scripted", "type": "function", "function": answer["tool_call"]}
        ]
        finish = "tool_calls"
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


class _Handler(BaseHTTPRequestHandler):
    llm: ScriptedLLM
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._json(400, {"error": {"message": "the body is not JSON"}})
            return
        if not self.path.endswith("/chat/completions"):
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        answer = self.llm.answer(body)
        model = str(body.get("model") or MODEL)
        if not body.get("stream"):
            self._json(200, _completion(answer, model))
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        for item in _chunks(answer, model):
            self.wfile.write(f"data: {json.dumps(item)}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
