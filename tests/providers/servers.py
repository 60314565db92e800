"""Real HTTP servers on 127.0.0.1 that speak the parts of the model APIs spellide uses.

One ``ModelServer`` serves all five endpoints (a test points any provider at it):

* ``POST /v1/chat/completions`` — OpenAI chat: JSON or ``stream: true`` SSE (``data:`` chunks,
  ``data: [DONE]``), function tool calls (streamed as argument deltas), usage with
  ``prompt_tokens_details.cached_tokens``, the trailing usage chunk when
  ``stream_options.include_usage`` is set.
* ``POST /v1/completions`` — OpenAI text completions (prefill).
* ``POST /v1/messages`` — Anthropic Messages: JSON or SSE events (``message_start``,
  ``content_block_start``, ``ping``, ``content_block_delta`` with ``text_delta`` /
  ``input_json_delta``, ``content_block_stop``, ``message_delta``, ``message_stop``), ``tool_use``
  blocks, usage with ``cache_read_input_tokens``; it rejects an assistant prefill that ends in
  whitespace like the real API does.
* ``POST /api/generate`` and ``POST /api/chat`` — Ollama, JSON or NDJSON streaming.

Replies are scripted: ``server.push(Reply(...), Reply(...))`` queues what the next requests get
(after the queue is empty, ``server.default`` answers). A ``Reply`` can carry faults: an HTTP
error ``status`` (with the provider's error body format and headers such as Retry-After),
``drop_after`` (close the socket after N stream pieces, or mid-body), ``stall`` (sleep before
piece N), ``malformed`` (invalid JSON as the body or as one stream piece), ``stream_error`` (an
error object inside the stream), an empty answer, text instead of a tool call. Every request is
recorded (path, headers, JSON body, arrival time) for assertions.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional, Union


@dataclass
class Reply:
    text: str = "(def x 1) x"
    tool: Optional[str] = None            # tool-call answer: spell_suffix(suffix=tool)
    tool_args: Optional[str] = None       # raw arguments JSON text (overrides ``tool``)
    tool_name: str = "spell_suffix"
    tool_count: int = 1                   # how many (identical) tool calls
    finish: Optional[str] = None          # "stop" | "length" (mapped per protocol)
    usage: tuple[int, int, int] = (120, 20, 10)  # prompt tokens (incl. cached), cached, output
    chunk: int = 5                        # characters per streamed piece
    model: str = "fake-model"
    # faults
    status: Optional[int] = None
    error_message: str = "simulated error"
    error_type: Optional[str] = None
    headers: dict[str, str] = field(default_factory=dict)
    drop_after: Optional[int] = None      # close after N stream pieces (0 = before any response)
    stall: float = 0.0                    # seconds to sleep ...
    stall_after: int = 1                  # ... before stream piece N (non-stream: before the body)
    malformed: Optional[str] = None       # 200 with this body / this text as one stream piece
    stream_error: Optional[str] = None    # error object inside the stream, after 1 piece
    delay_between: float = 0.0            # sleep between stream pieces
    first_piece_delay: float = 0.0        # sleep after the first content piece (TTFT benches)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes
    time: float


Item = Union[Reply, Callable[["Recorded"], Reply]]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up (timeouts, closed keep-alive connections) are expected here.
        import sys
        if not isinstance(sys.exc_info()[1], (ConnectionError, OSError)):
            super().handle_error(request, client_address)


class ModelServer:
    """A threaded HTTP/1.1 server with keep-alive and chunked streaming."""

    def __init__(self, default: Optional[Reply] = None):
        self.default = default or Reply()
        self.queue: deque[Item] = deque()
        self.requests: list[Recorded] = []
        self.first_piece_sent: list[float] = []   # perf_counter when the first content piece was written
        self.first_piece_wall: list[float] = []   # ...and time.time(), to compare with another process
        self._lock = threading.Lock()
        self._stop = threading.Event()
        handler = type("Handler", (_Handler,), {"owner": self})
        self.httpd = _QuietServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    # --- control ---------------------------------------------------------------------------
    def start(self) -> "ModelServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "ModelServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    def push(self, *items: Item) -> "ModelServer":
        with self._lock:
            self.queue.extend(items)
        return self

    def reset(self) -> None:
        with self._lock:
            self.queue.clear()
            self.requests.clear()
            self.first_piece_sent.clear()
            self.first_piece_wall.clear()

    def next_reply(self, rec: Recorded) -> Reply:
        with self._lock:
            self.requests.append(rec)
            item = self.queue.popleft() if self.queue else self.default
        return item(rec) if callable(item) else item

    def sleep(self, seconds: float) -> None:
        """Interruptible sleep, so stopping the server does not wait for stalls."""
        self._stop.wait(seconds)


# --- protocol renderers: (reply, request body) -> JSON body / stream pieces ---------------------

def _pieces(text: str, n: int) -> list[str]:
    n = max(1, n)
    return [text[i:i + n] for i in range(0, len(text), n)] or []


def _tool_args(r: Reply) -> str:
    if r.tool_args is not None:
        return r.tool_args
    return json.dumps({"suffix": r.tool if r.tool is not None else ""})


class OpenAIChat:
    content_type = "text/event-stream"

    @staticmethod
    def finish(r: Reply) -> str:
        if r.finish == "length":
            return "length"
        return "tool_calls" if (r.tool is not None or r.tool_args is not None) else (r.finish or "stop")

    @staticmethod
    def usage(r: Reply) -> dict[str, Any]:
        p, c, o = r.usage
        return {"prompt_tokens": p, "completion_tokens": o, "total_tokens": p + o,
                "prompt_tokens_details": {"cached_tokens": c}}

    def full(self, r: Reply, req: dict) -> dict:
        msg: dict[str, Any] = {"role": "assistant", "content": None}
        if r.tool is not None or r.tool_args is not None:
            msg["tool_calls"] = [{"id": f"call_{i}", "type": "function",
                                  "function": {"name": r.tool_name, "arguments": _tool_args(r)}}
                                 for i in range(r.tool_count)]
        else:
            msg["content"] = r.text
        return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000,
                "model": r.model, "choices": [{"index": 0, "message": msg, "finish_reason": self.finish(r),
                                               "logprobs": None}],
                "usage": self.usage(r)}

    def _chunk(self, r: Reply, delta: dict, finish: Optional[str] = None) -> bytes:
        d = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000,
             "model": r.model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return b"data: " + json.dumps(d).encode() + b"\n\n"

    def stream(self, r: Reply, req: dict) -> list[tuple[bytes, bool]]:
        """Pieces as (bytes, is_content)."""
        out: list[tuple[bytes, bool]] = [(self._chunk(r, {"role": "assistant", "content": ""}), False)]
        if r.tool is not None or r.tool_args is not None:
            args = _tool_args(r)
            for i in range(r.tool_count):
                out.append((self._chunk(r, {"tool_calls": [{"index": i, "id": f"call_{i}", "type": "function",
                                                            "function": {"name": r.tool_name, "arguments": ""}}]}), False))
                for piece in _pieces(args, r.chunk):
                    out.append((self._chunk(r, {"tool_calls": [{"index": i, "function": {"arguments": piece}}]}), True))
        else:
            for piece in _pieces(r.text, r.chunk):
                out.append((self._chunk(r, {"content": piece}), True))
        out.append((self._chunk(r, {}, self.finish(r)), False))
        if (req.get("stream_options") or {}).get("include_usage"):
            d = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000,
                 "model": r.model, "choices": [], "usage": self.usage(r)}
            out.append((b"data: " + json.dumps(d).encode() + b"\n\n", False))
        out.append((b"data: [DONE]\n\n", False))
        return out

    def malformed_piece(self, text: str) -> bytes:
        return b"data: " + text.encode() + b"\n\n"

    def stream_error(self, r: Reply) -> bytes:
        return b"data: " + json.dumps({"error": {"message": r.stream_error, "type": "server_error"}}).encode() + b"\n\n"

    def error(self, r: Reply) -> dict:
        etype = r.error_type or {429: "rate_limit_exceeded", 401: "invalid_request_error"}.get(
            r.status or 0, "server_error")
        return {"error": {"message": r.error_message, "type": etype, "param": None, "code": None}}


class OpenAICompletions(OpenAIChat):
    def full(self, r: Reply, req: dict) -> dict:
        return {"id": "cmpl-1", "object": "text_completion", "created": 1700000000, "model": r.model,
                "choices": [{"index": 0, "text": r.text, "finish_reason": r.finish or "stop", "logprobs": None}],
                "usage": self.usage(r)}

    def _c(self, r: Reply, text: str, finish: Optional[str]) -> bytes:
        d = {"id": "cmpl-1", "object": "text_completion", "created": 1700000000, "model": r.model,
             "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}]}
        return b"data: " + json.dumps(d).encode() + b"\n\n"

    def stream(self, r: Reply, req: dict) -> list[tuple[bytes, bool]]:
        out = [(self._c(r, piece, None), True) for piece in _pieces(r.text, r.chunk)]
        out.append((self._c(r, "", r.finish or "stop"), False))
        if (req.get("stream_options") or {}).get("include_usage"):
            d = {"id": "cmpl-1", "object": "text_completion", "created": 1700000000, "model": r.model,
                 "choices": [], "usage": self.usage(r)}
            out.append((b"data: " + json.dumps(d).encode() + b"\n\n", False))
        out.append((b"data: [DONE]\n\n", False))
        return out


class AnthropicMessages:
    content_type = "text/event-stream"

    @staticmethod
    def stop(r: Reply) -> str:
        if r.finish == "length":
            return "max_tokens"
        return "tool_use" if (r.tool is not None or r.tool_args is not None) else "end_turn"

    @staticmethod
    def usage(r: Reply) -> dict[str, Any]:
        p, c, o = r.usage
        return {"input_tokens": p - c, "output_tokens": o, "cache_read_input_tokens": c,
                "cache_creation_input_tokens": 0}

    def check(self, req: dict) -> Optional[str]:
        """The real API's validation that matters to us."""
        msgs = req.get("messages") or []
        if not req.get("max_tokens"):
            return "max_tokens: Field required"
        if msgs and msgs[-1].get("role") == "assistant":
            content = msgs[-1].get("content")
            text = content if isinstance(content, str) else "".join(
                b.get("text", "") for b in content if isinstance(b, dict))
            last = content if isinstance(content, str) else (content[-1].get("text", "") if content else "")
            if text != text.rstrip() or last != last.rstrip():
                return "messages: final assistant content cannot end with trailing whitespace"
        return None

    def full(self, r: Reply, req: dict) -> dict:
        if r.tool is not None or r.tool_args is not None:
            content = [{"type": "tool_use", "id": f"toolu_{i}", "name": r.tool_name,
                        "input": json.loads(_tool_args(r))} for i in range(r.tool_count)]
        else:
            content = [{"type": "text", "text": r.text}] if r.text else []
        return {"id": "msg_1", "type": "message", "role": "assistant", "model": r.model,
                "content": content, "stop_reason": self.stop(r), "stop_sequence": None,
                "usage": self.usage(r)}

    @staticmethod
    def _ev(name: str, data: dict) -> bytes:
        return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

    def stream(self, r: Reply, req: dict) -> list[tuple[bytes, bool]]:
        u = self.usage(r)
        start_usage = dict(u, output_tokens=1)
        out = [(self._ev("message_start", {"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "model": r.model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": start_usage}}), False)]
        if r.tool is not None or r.tool_args is not None:
            args = _tool_args(r)
            for i in range(r.tool_count):
                out.append((self._ev("content_block_start", {"type": "content_block_start", "index": i,
                            "content_block": {"type": "tool_use", "id": f"toolu_{i}", "name": r.tool_name,
                                              "input": {}}}), False))
                for piece in _pieces(args, r.chunk):
                    out.append((self._ev("content_block_delta", {"type": "content_block_delta", "index": i,
                                "delta": {"type": "input_json_delta", "partial_json": piece}}), True))
                out.append((self._ev("content_block_stop", {"type": "content_block_stop", "index": i}), False))
        else:
            out.append((self._ev("content_block_start", {"type": "content_block_start", "index": 0,
                        "content_block": {"type": "text", "text": ""}}), False))
            out.append((self._ev("ping", {"type": "ping"}), False))
            for piece in _pieces(r.text, r.chunk):
                out.append((self._ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                            "delta": {"type": "text_delta", "text": piece}}), True))
            out.append((self._ev("content_block_stop", {"type": "content_block_stop", "index": 0}), False))
        out.append((self._ev("message_delta", {"type": "message_delta",
                    "delta": {"stop_reason": self.stop(r), "stop_sequence": None},
                    "usage": {"output_tokens": r.usage[2]}}), False))
        out.append((self._ev("message_stop", {"type": "message_stop"}), False))
        return out

    def malformed_piece(self, text: str) -> bytes:
        return f"event: content_block_delta\ndata: {text}\n\n".encode()

    def stream_error(self, r: Reply) -> bytes:
        return self._ev("error", {"type": "error", "error": {"type": r.error_type or "overloaded_error",
                                                              "message": r.stream_error}})

    def error(self, r: Reply) -> dict:
        etype = r.error_type or {429: "rate_limit_error", 401: "authentication_error", 400: "invalid_request_error",
                                 529: "overloaded_error"}.get(r.status or 0, "api_error")
        return {"type": "error", "error": {"type": etype, "message": r.error_message}}


class OllamaGenerate:
    content_type = "application/x-ndjson"
    field = "response"

    def _obj(self, r: Reply, text: str, done: bool) -> dict:
        d: dict[str, Any] = {"model": r.model, "created_at": "2026-11-22T00:00:00Z", "done": done}
        if self.field == "response":
            d["response"] = text
        else:
            d["message"] = {"role": "assistant", "content": text}
        if done:
            d.update(done_reason="length" if r.finish == "length" else "stop",
                     prompt_eval_count=r.usage[0], eval_count=r.usage[2], total_duration=1000)
        return d

    def full(self, r: Reply, req: dict) -> dict:
        return self._obj(r, r.text, True)

    def stream(self, r: Reply, req: dict) -> list[tuple[bytes, bool]]:
        out = [(json.dumps(self._obj(r, p, False)).encode() + b"\n", True) for p in _pieces(r.text, r.chunk)]
        out.append((json.dumps(self._obj(r, "", True)).encode() + b"\n", False))
        return out

    def malformed_piece(self, text: str) -> bytes:
        return text.encode() + b"\n"

    def stream_error(self, r: Reply) -> bytes:
        return json.dumps({"error": r.stream_error}).encode() + b"\n"

    def error(self, r: Reply) -> dict:
        return {"error": r.error_message}


class OllamaChat(OllamaGenerate):
    field = "message"


PROTOCOLS = {
    "/v1/chat/completions": OpenAIChat(),
    "/v1/completions": OpenAICompletions(),
    "/v1/messages": AnthropicMessages(),
    "/api/generate": OllamaGenerate(),
    "/api/chat": OllamaChat(),
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: ModelServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm
        # and the client's delayed ACK add ~40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        """``/_stats``: for benchmarks that run the server in another process."""
        if self.path == "/_stats":
            o = self.owner
            return self._json(200, {"requests": len(o.requests),
                                    "first_piece_sent": o.first_piece_sent[-1] if o.first_piece_sent else None})
        self._json(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        arrived = time.perf_counter()
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        rec = Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body, raw, arrived)
        proto = PROTOCOLS.get(self.path.split("?")[0])
        if proto is None:
            self.owner.next_reply(rec)
            return self._json(404, {"error": f"no route {self.path}"})
        r = self.owner.next_reply(rec)
        req = body if isinstance(body, dict) else {}
        streaming = bool(req.get("stream", self.path.startswith("/api/")))
        try:
            self._serve(proto, r, req, streaming)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    # --- writers ---------------------------------------------------------------------------
    def _json(self, status: int, obj: Any, headers: Optional[dict[str, str]] = None) -> None:
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", "req_fake")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _drop(self) -> None:
        self.wfile.flush()
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.connection.close()
        self.close_connection = True

    def _serve(self, proto: Any, r: Reply, req: dict, streaming: bool) -> None:
        if r.drop_after == 0:
            return self._drop()
        if r.status is not None:
            return self._json(r.status, proto.error(r), r.headers)
        if isinstance(proto, AnthropicMessages):
            problem = proto.check(req)
            if problem:
                return self._json(400, {"type": "error", "error": {"type": "invalid_request_error",
                                                                    "message": problem}})
        if not streaming:
            if r.stall:
                self.owner.sleep(r.stall)
            if r.malformed is not None:
                return self._json(200, r.malformed.encode(), r.headers)
            data = json.dumps(proto.full(r, req)).encode()
            if r.drop_after is not None:
                # Promise the whole body, send half, hang up.
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                return self._drop()
            return self._json(200, data, r.headers)
        pieces = proto.stream(r, req)
        if r.malformed is not None:
            pieces.insert(min(2, len(pieces)), (proto.malformed_piece(r.malformed), False))
        if r.stream_error is not None:
            pieces = pieces[:2] + [(proto.stream_error(r), False)]
        self.send_response(200)
        self.send_header("Content-Type", proto.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        for k, v in r.headers.items():
            self.send_header(k, v)
        self.end_headers()
        first_content = True
        for i, (piece, is_content) in enumerate(pieces):
            if r.drop_after is not None and i >= r.drop_after:
                return self._drop()
            if r.stall and i == r.stall_after:
                self.owner.sleep(r.stall)
                if self.owner._stop.is_set():
                    return self._drop()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
            if is_content and first_content:
                first_content = False
                self.owner.first_piece_sent.append(time.perf_counter())
                self.owner.first_piece_wall.append(time.time())
                if r.first_piece_delay:
                    self.owner.sleep(r.first_piece_delay)
            elif r.delay_between:
                self.owner.sleep(r.delay_between)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
