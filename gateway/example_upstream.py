"""The example upstream: a small, fast HTTP/1.1 server the demo, the tests and the benchmark proxy to.

It is written on raw asyncio (no framework) so that it is never the bottleneck of a benchmark:
one `asyncio.Protocol` per connection with its own minimal request parser, keep-alive by
default, pipelined requests answered in order. It deliberately has no Django dependency:
`python -m gateway.example_upstream --port 8001` runs it on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import math
import random
import re
import signal
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from functools import cache, lru_cache
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

logger = logging.getLogger(__name__)

MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 200
MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_BYTES_SIZE = 10 * 1024 * 1024
# While a response is pending, stop reading once this much pipelined input is waiting.
PAUSE_READING_ABOVE = 1024 * 1024
# Beyond this many distinct paths /stats stops adding keys, so a scanner cannot grow memory forever.
MAX_TRACKED_PATHS = 10_000
# Bodies below this size are joined to the head so a response costs a single write.
JOIN_BODY_BELOW = 64 * 1024

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_REQUEST_LINE = re.compile(r"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e\x80-\xff]+) HTTP/(1\.[01])")
_BAD_FIELD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# What a request's first bytes must look like: a method token then a space (or not yet arrived).
_METHOD_START = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32}(?: |$)")
_HEX = re.compile(r"[0-9A-Fa-f]{1,16}")

# One pre-built payload: /bytes and /large answer with zero-copy slices of it.
_PATTERN = b"heliox-example-upstream-0123456789abcdefghijklmnopqrstuvwxyz\n"
_BLOB = memoryview((_PATTERN * (MAX_BYTES_SIZE // len(_PATTERN) + 1))[:MAX_BYTES_SIZE])

CATALOGUE: dict[int, dict[str, Any]] = {
    1: {"id": 1, "name": "Widget", "price": 9.99, "description": "A plain, dependable widget."},
    2: {"id": 2, "name": "Gadget", "price": 24.5, "description": "A gadget with one button."},
    3: {"id": 3, "name": "Gizmo", "price": 3.75, "description": "A small gizmo for small jobs."},
    5: {"id": 5, "name": "Doohickey", "price": 120.0, "description": "The deluxe doohickey."},
    10: {"id": 10, "name": "Thingamajig", "price": 0.5, "description": "Sold by the dozen."},
}

# Never reset, shared by every server in the process: lets /cache callers tell a fresh fetch from a cached copy.
_request_seq = itertools.count(1)


class HttpError(Exception):
    """A request the server refuses; becomes a JSON error response."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


def _bad_request(detail: str) -> HttpError:
    return HttpError(400, "bad_request", detail)


@dataclass(slots=True)
class ServerState:
    """Per-server counters (two servers in one process, as in the tests, must not share them)."""

    total_requests: int = 0
    by_path: dict[str, int] = field(default_factory=dict)
    next_item_id: int = max(CATALOGUE) + 1
    connections: set[asyncio.Transport] = field(default_factory=set)

    def count(self, path: str) -> None:
        self.total_requests += 1
        if path in self.by_path:
            self.by_path[path] += 1
        elif len(self.by_path) < MAX_TRACKED_PATHS:
            self.by_path[path] = 1


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: str
    version: str
    headers: dict[str, str]
    keep_alive: bool
    state: ServerState
    body: bytes = b""

    @property
    def params(self) -> Mapping[str, str]:
        return _parse_query(self.query)


@dataclass(slots=True)
class Response:
    status: int = 200
    body: bytes | memoryview = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    # Streamed body: chunked (HTTP/1.1) or close-delimited (HTTP/1.0) unless `length` is declared.
    stream: AsyncIterator[bytes] | None = None
    # Content-Length to declare instead of len(body): for a streamed body (drip), or a cut one (close-mid-body).
    length: int | None = None
    # Close the connection right after the body, without honouring the declared length.
    cut: bool = False


# A handler answers at once (Response) or later (coroutine); the sentinel means "never answer".
HANG = Response(status=0)
Result = Response | Coroutine[Any, Any, Response]
Handler = Callable[[Request], Result]


@lru_cache(maxsize=1024)
def _parse_query(query: str) -> Mapping[str, str]:
    # Cached: the benchmark sends the same query string thousands of times; callers never mutate it.
    return dict(parse_qsl(query, keep_blank_values=True))


@cache
def _status_line(status: int) -> str:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    return f"HTTP/1.1 {status} {reason}\r\n"


@lru_cache(maxsize=1)
def _format_date(second: int) -> str:
    return formatdate(second, usegmt=True)


def _http_date() -> str:
    return _format_date(int(time.time()))


def _json(obj: Any, status: int = 200, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(status=status, body=json.dumps(obj).encode(), headers=headers)


def _error(exc: HttpError) -> Response:
    return _json({"error": exc.error, "detail": exc.detail}, status=exc.status)


def _number_param(request: Request, name: str, default: float, minimum: float, cap: float,
                  kind: Callable[[str], float]) -> Any:
    """Below `minimum` is an error; above `cap` is capped."""
    raw = request.params.get(name, "")
    if raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise _bad_request(f"{name} is not a valid number") from None
    if not math.isfinite(value) or value < minimum:
        raise _bad_request(f"{name} must be at least {minimum}")
    return min(value, cap)


def _int_param(request: Request, name: str, default: int, minimum: int, cap: int) -> int:
    return int(_number_param(request, name, default, minimum, cap, int))


def _float_param(request: Request, name: str, default: float, minimum: float, cap: float) -> float:
    return float(_number_param(request, name, default, minimum, cap, float))


def _header_value(value: str) -> str:
    """Refuse what would split or break a response header (CR/LF injection, non-latin-1)."""
    if _BAD_FIELD_VALUE.search(value) or (not value.isascii() and max(value) > "\xff"):
        raise _bad_request("value not allowed in a header")
    return value


def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.body)
    except ValueError:
        raise _bad_request("body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _bad_request("body must be a JSON object")
    return body


def _tokens(text: str) -> int:
    return len(text) // 4 + 1


# --- endpoints ---------------------------------------------------------------------------------------


def _index(request: Request) -> Response:
    return _json({"service": "heliox-example-upstream", "endpoints": sorted(_ENDPOINTS)})


def _health(request: Request) -> Response:
    return _json({"status": "healthy"})


def _list_items(request: Request) -> Response:
    page = _int_param(request, "page", 1, 1, 1_000_000)
    page_size = _int_param(request, "page_size", 10, 1, 100)
    items = list(CATALOGUE.values())
    start = (page - 1) * page_size
    return _json({"items": items[start:start + page_size], "page": page, "page_size": page_size,
                  "total": len(items)})


def _create_item(request: Request) -> Response:
    body = _json_body(request)
    state = request.state
    item_id, state.next_item_id = state.next_item_id, state.next_item_id + 1
    return _json({**body, "id": item_id}, status=201)


def _get_item(request: Request) -> Response:
    raw = request.path[len("/items/"):]
    item = CATALOGUE.get(int(raw)) if raw.isascii() and raw.isdigit() and len(raw) < 10 else None
    if item is None:
        return _json({"error": "not_found", "detail": f"item {raw} not found"}, status=404)
    return _json(item)


async def _slow(request: Request) -> Response:
    delay = _float_param(request, "delay", 1.0, 0.0, 60.0)
    await asyncio.sleep(delay)
    return _json({"delayed": delay})


def _flaky(request: Request) -> Response:
    rate = _float_param(request, "failure_rate", 0.5, 0.0, 1.0)
    if random.random() < rate:
        return _json({"error": "flaky_failure"}, status=500)
    return _json({"status": "ok"})


def _echo_headers(request: Request) -> Response:
    return _json({"method": request.method, "path": request.path, "query": request.query,
                  "headers": request.headers, "body_length": len(request.body)})


def _vary(request: Request) -> Response:
    headers = request.headers
    return _json({"variant": request.params.get("variant"), "accept": headers.get("accept"),
                  "accept_language": headers.get("accept-language")},
                 headers=(("Vary", "Accept, Accept-Language"),))


def _large(request: Request) -> Response:
    size_kb = _int_param(request, "size_kb", 100, 0, MAX_BYTES_SIZE // 1024)
    return Response(body=_BLOB[:size_kb * 1024], content_type="application/octet-stream")


def _bytes(request: Request) -> Response:
    size = _int_param(request, "size", 1024, 0, MAX_BYTES_SIZE)
    return Response(body=_BLOB[:size], content_type="application/octet-stream")


def _stats(request: Request) -> Response:
    state = request.state
    return _json({"total_requests": state.total_requests, "by_path": state.by_path})


def _stats_reset(request: Request) -> Response:
    state = request.state
    state.total_requests = 0
    state.by_path = {}
    return _json({"reset": True})


def _cache(request: Request) -> Response:
    directive = _header_value(unquote(request.path[len("/cache/"):]))
    if not directive:
        raise _bad_request("missing cache directive")
    return _json({"directive": directive, "served_at": time.time(), "counter": next(_request_seq)},
                 headers=(("Cache-Control", directive),))


def _status(request: Request) -> Response:
    raw = request.path[len("/status/"):]
    code = int(raw) if raw.isascii() and raw.isdigit() and len(raw) == 3 else 0
    if not 200 <= code <= 599:
        raise _bad_request("status must be an integer from 200 to 599")
    if code in (204, 205, 304):
        return Response(status=code)
    return _json({"status": code}, status=code)


def _sse(request: Request) -> Response:
    count = _int_param(request, "n", 5, 0, 1000)
    interval = _float_param(request, "interval", 0.1, 0.0, 60.0)

    async def events() -> AsyncIterator[bytes]:
        for i in range(count):
            if i:
                await asyncio.sleep(interval)
            yield b'data: {"n": %d}\n\n' % i

    return Response(content_type="text/event-stream", headers=(("Cache-Control", "no-cache"),), stream=events())


def _drip(request: Request) -> Response:
    total = _int_param(request, "bytes", 10, 0, 100_000)
    interval = _float_param(request, "interval", 1.0, 0.0, 60.0)

    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(total):
            await asyncio.sleep(interval)
            yield b"x"

    return Response(content_type="application/octet-stream", stream=trickle(), length=total)


def _hang(request: Request) -> Response:
    return HANG


def _close_mid_body(request: Request) -> Response:
    return Response(body=_BLOB[:100], content_type="application/octet-stream", length=1000, cut=True)


def _redirect(request: Request) -> Response:
    target = _header_value(request.params.get("to", ""))
    if not target:
        raise _bad_request("missing 'to'")
    return _json({"location": target}, status=302, headers=(("Location", target),))


def _set_cookie(request: Request) -> Response:
    return _json({"cookie": "set"}, headers=(("Set-Cookie", "session=abc; Path=/"),))


def _models(request: Request) -> Response:
    return _json({"object": "list", "data": [
        {"id": "heliox-echo-1", "object": "model", "created": 1_700_000_000, "owned_by": "heliox"}]})


def _message_text(content: Any) -> str:
    """Text of an OpenAI/Anthropic message content: a string or a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict)
                       and isinstance(part.get("text"), str))
    return ""


def _conversation(body: dict[str, Any]) -> tuple[str, str]:
    """(the whole prompt's text, the last user message's text)."""
    raw_messages = body.get("messages")
    messages = [m for m in raw_messages if isinstance(m, dict)] if isinstance(raw_messages, list) else []
    texts = [_message_text(m.get("content")) for m in messages]
    last_user = next((t for m, t in zip(reversed(messages), reversed(texts), strict=True)
                      if m.get("role") == "user"), "")
    return "".join(texts), last_user


def _chat_completions(request: Request) -> Response:
    body = _json_body(request)
    prompt, reply = _conversation(body)
    model = str(body.get("model") or "heliox-echo-1")
    usage = {"prompt_tokens": _tokens(prompt), "completion_tokens": _tokens(reply),
             "total_tokens": _tokens(prompt) + _tokens(reply)}
    ident = f"chatcmpl-{next(_request_seq)}"
    created = int(time.time())
    if body.get("stream") is True:
        return Response(content_type="text/event-stream", headers=(("Cache-Control", "no-cache"),),
                        stream=_chat_chunks(ident, created, model, reply, usage))
    return _json({"id": ident, "object": "chat.completion", "created": created, "model": model,
                  "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                               "finish_reason": "stop"}],
                  "usage": usage})


async def _chat_chunks(ident: str, created: int, model: str, reply: str,
                       usage: dict[str, int]) -> AsyncIterator[bytes]:
    third = -(-len(reply) // 3)
    parts = [reply[:third], reply[third:2 * third], reply[2 * third:]]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        delta = {"role": "assistant", "content": part} if i == 0 else {"content": part}
        chunk: dict[str, Any] = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                                 "choices": [{"index": 0, "delta": delta, "finish_reason": "stop" if last else None}]}
        if last:
            chunk["usage"] = usage
        yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


def _messages(request: Request) -> Response:
    body = _json_body(request)
    prompt, reply = _conversation(body)
    return _json({"id": f"msg_{next(_request_seq)}", "type": "message", "role": "assistant",
                  "model": str(body.get("model") or "heliox-echo-1"),
                  "content": [{"type": "text", "text": reply}], "stop_reason": "end_turn", "stop_sequence": None,
                  "usage": {"input_tokens": _tokens(prompt), "output_tokens": _tokens(reply)}})


_ANY_METHOD = "*"

_ROUTES: dict[str, dict[str, Handler]] = {
    "/": {"GET": _index},
    "/health": {"GET": _health},
    "/items": {"GET": _list_items, "POST": _create_item},
    "/slow": {"GET": _slow},
    "/flaky": {"GET": _flaky},
    "/headers": {_ANY_METHOD: _echo_headers},
    "/vary": {"GET": _vary},
    "/large": {"GET": _large},
    "/bytes": {"GET": _bytes},
    "/stats": {"GET": _stats},
    "/stats/reset": {"POST": _stats_reset},
    "/sse": {"GET": _sse},
    "/drip": {"GET": _drip},
    "/hang": {"GET": _hang},
    "/close-mid-body": {"GET": _close_mid_body},
    "/redirect": {"GET": _redirect},
    "/set-cookie": {"GET": _set_cookie},
    "/v1/models": {"GET": _models},
    "/v1/chat/completions": {"POST": _chat_completions},
    "/v1/messages": {"POST": _messages},
}
_PREFIX_ROUTES: tuple[tuple[str, dict[str, Handler]], ...] = (
    ("/items/", {"GET": _get_item}),
    ("/cache/", {"GET": _cache}),
    ("/status/", {"GET": _status}),
)
_UNCOUNTED = frozenset({"/stats", "/stats/reset"})
_ENDPOINTS = [f"{m} {p}" for p, methods in _ROUTES.items() for m in methods] + [
    f"{m} {p}<value>" for p, methods in _PREFIX_ROUTES for m in methods]


def _not_found(request: Request) -> Response:
    return _json({"error": "not_found"}, status=404)


def _route(method: str, path: str) -> Handler:
    methods = _ROUTES.get(path)
    if methods is None:
        methods = next((m for prefix, m in _PREFIX_ROUTES if path.startswith(prefix)), None)
        if methods is None:
            return _not_found
    handler = methods.get(method) or methods.get(_ANY_METHOD)
    if handler is None and method == "HEAD":
        handler = methods.get("GET")
    if handler is None:
        allowed = ", ".join(sorted({*methods, "HEAD"} if "GET" in methods else methods))
        return lambda request: _json({"error": "method_not_allowed"}, status=405, headers=(("Allow", allowed),))
    return handler


# --- the connection ------------------------------------------------------------------------------------


def _parse_request_line(line: str) -> tuple[str, str, str, str]:
    match = _REQUEST_LINE.fullmatch(line)
    if match is None:
        raise _bad_request("malformed request line")
    method, target, version = match.groups()
    if target.startswith("/"):
        path, _, query = target.partition("?")
    elif target.startswith(("http://", "https://")):
        parts = urlsplit(target)
        path, query = parts.path or "/", parts.query
    elif target == "*" and method == "OPTIONS":
        path, query = "*", ""
    else:
        raise _bad_request("malformed request target")
    return method, path, query, version


def _parse_headers(lines: list[str]) -> dict[str, str]:
    if len(lines) > MAX_HEADERS:
        raise HttpError(431, "headers_too_large", "too many header fields")
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        # A name that is not a token also catches obsolete line folding and space before the colon.
        if not sep or _TOKEN.fullmatch(name) is None:
            raise _bad_request("malformed header field")
        value = value.strip(" \t")
        if _BAD_FIELD_VALUE.search(value):
            raise _bad_request("control character in a header value")
        key = name.lower()
        previous = headers.get(key)
        headers[key] = value if previous is None else f"{previous}, {value}"
    return headers


def _keep_alive(version: str, headers: dict[str, str]) -> bool:
    connection = headers.get("connection")
    if connection is None:
        return version == "1.1"
    tokens = {token.strip().lower() for token in connection.split(",")}
    return "close" not in tokens if version == "1.1" else "keep-alive" in tokens


def _body_framing(version: str, headers: dict[str, str]) -> int | None:
    """The Content-Length to read, or None for a chunked body."""
    transfer_encoding = headers.get("transfer-encoding")
    content_length = headers.get("content-length")
    if transfer_encoding is not None:
        # Both framings at once is the classic request-smuggling shape: refuse rather than pick one.
        if content_length is not None or version == "1.0":
            raise _bad_request("ambiguous message framing")
        if transfer_encoding.strip().lower() != "chunked":
            raise _bad_request("only chunked transfer-coding is supported")
        return None
    if content_length is None:
        return 0
    if not (content_length.isascii() and content_length.isdigit() and len(content_length) <= 18):
        raise _bad_request("malformed Content-Length")
    length = int(content_length)
    if length > MAX_BODY_BYTES:
        raise HttpError(413, "payload_too_large", "request body too large")
    return length


# Chunked-body parser states (besides a positive count of data bytes still to read).
_CHUNK_SIZE = -1
_CHUNK_END = -2
_TRAILERS = -3


class UpstreamProtocol(asyncio.Protocol):
    """One client connection: parse requests from the byte stream and answer them in order."""

    def __init__(self, state: ServerState) -> None:
        self._state = state
        self._transport: asyncio.Transport  # set by connection_made, before any other callback
        self._buffer = bytearray()
        self._request: Request | None = None
        self._body_left = 0
        self._chunk_left = 0
        self._chunks: list[bytes] = []
        self._chunked_size = 0
        self._task: asyncio.Task[None] | None = None
        self._busy = False  # a response is in progress outside the parse loop
        self._hanging = False
        self._eof = False
        self._closed = False
        self._write_paused = False
        self._read_paused = False

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._state.connections.add(self._transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._state.connections.discard(self._transport)
        if self._task is not None:
            self._task.cancel()
        self._buffer.clear()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._busy or self._write_paused:
            if len(self._buffer) > PAUSE_READING_ABOVE and not self._read_paused:
                self._read_paused = True
                self._transport.pause_reading()
            return
        self._process()

    def eof_received(self) -> bool:
        # A hanging request answers nothing, so the client going away is the end of it. Otherwise
        # finish the response in progress (the client may have only half-closed) and close after.
        if self._busy and not self._hanging:
            self._eof = True
            return True
        return False

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if not (self._busy or self._closed):
            self._process()

    # parsing

    def _process(self) -> None:
        try:
            while not (self._busy or self._write_paused or self._closed):
                request = self._request or self._parse_head()
                if request is None or not self._read_body(request):
                    break
                self._request = None
                self._dispatch(request)
        except HttpError as exc:
            self._fail(exc)
            return
        except Exception:
            logger.exception("example upstream: unexpected error")
            self._fail(HttpError(500, "internal_error", "unexpected server error"))
            return
        if self._eof and not self._busy and not self._closed:
            self._close()
        elif self._read_paused and not (self._busy or self._write_paused or self._closed):
            self._read_paused = False
            self._transport.resume_reading()

    def _parse_head(self) -> Request | None:
        """Parse a complete request head off the buffer, or return None until one has arrived."""
        buffer = self._buffer
        # RFC 9112 §2.2: tolerate empty lines before a request line (some clients send CRLF after a body).
        while buffer.startswith(b"\r\n"):
            del buffer[:2]
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD_BYTES:
                raise HttpError(431, "headers_too_large", "request head too large")
            # Fail fast on garbage (say a TLS hello) instead of waiting for a blank line that never comes.
            if buffer[:1] not in (b"", b"\r") and _METHOD_START.match(bytes(buffer[:33])) is None:
                raise _bad_request("malformed request line")
            line_end = buffer.find(b"\r\n")
            if line_end >= 0:
                _parse_request_line(buffer[:line_end].decode("latin-1"))
            return None
        if end > MAX_HEAD_BYTES:
            raise HttpError(431, "headers_too_large", "request head too large")
        lines = buffer[:end].decode("latin-1").split("\r\n")
        del buffer[:end + 4]
        method, path, query, version = _parse_request_line(lines[0])
        headers = _parse_headers(lines[1:])
        length = _body_framing(version, headers)
        request = Request(method, path, query, version, headers, _keep_alive(version, headers), self._state)
        self._request = request
        if length is None:
            self._chunk_left, self._chunks, self._chunked_size = _CHUNK_SIZE, [], 0
        else:
            self._chunk_left, self._body_left = 0, length
        expects_body = length is None or length > len(buffer)
        if expects_body and version == "1.1" and headers.get("expect", "").lower() == "100-continue":
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return request

    def _read_body(self, request: Request) -> bool:
        """Move the request's body off the buffer; False while it has not all arrived."""
        if self._chunk_left:
            return self._read_chunked(request)
        left = self._body_left
        if left:
            if len(self._buffer) < left:
                return False
            request.body = bytes(self._buffer[:left])
            del self._buffer[:left]
            self._body_left = 0
        return True

    def _read_chunked(self, request: Request) -> bool:
        buffer = self._buffer
        while True:
            if self._chunk_left > 0:
                take = min(self._chunk_left, len(buffer))
                self._chunks.append(bytes(buffer[:take]))
                del buffer[:take]
                self._chunk_left -= take
                if self._chunk_left:
                    return False
                self._chunk_left = _CHUNK_END
            line_end = buffer.find(b"\r\n")
            if line_end < 0:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise _bad_request("chunk framing line too long")
                return False
            line = buffer[:line_end].decode("latin-1")
            del buffer[:line_end + 2]
            if self._chunk_left == _CHUNK_END:
                if line:
                    raise _bad_request("chunk data longer than its size")
                self._chunk_left = _CHUNK_SIZE
            elif self._chunk_left == _CHUNK_SIZE:
                self._chunk_left = self._chunk_size(line)
            elif not line:  # the blank line that ends the trailer section
                request.body = b"".join(self._chunks)
                self._chunks = []
                self._chunk_left = 0
                return True

    def _chunk_size(self, line: str) -> int:
        size_text = line.partition(";")[0].strip(" \t")
        if _HEX.fullmatch(size_text) is None:
            raise _bad_request("malformed chunk size")
        size = int(size_text, 16)
        self._chunked_size += size
        if self._chunked_size > MAX_BODY_BYTES:
            raise HttpError(413, "payload_too_large", "request body too large")
        return size or _TRAILERS

    # answering

    def _dispatch(self, request: Request) -> None:
        if request.path not in _UNCOUNTED:
            self._state.count(request.path)
        try:
            result = _route(request.method, request.path)(request)
        except HttpError as exc:
            result = _error(exc)
        except Exception:
            logger.exception("example upstream: handler failed")
            result = _error(HttpError(500, "internal_error", "handler failed"))
        if result is HANG:
            self._busy = self._hanging = True
        elif isinstance(result, Response) and result.stream is None:
            self._send(request, result)
        else:
            self._busy = True
            self._task = asyncio.get_running_loop().create_task(self._answer_later(request, result))

    async def _answer_later(self, request: Request, result: Result) -> None:
        head_sent = False
        try:
            response = result if isinstance(result, Response) else await result
            if response.stream is None:
                self._send(request, response)
            else:
                head_sent = True
                await self._send_stream(request, response)
        except HttpError as exc:
            self._send(request, _error(exc))
        except Exception:
            logger.exception("example upstream: handler failed")
            if head_sent:
                self._abort()
            else:
                self._send(request, _error(HttpError(500, "internal_error", "handler failed")))
        self._task = None
        self._busy = False
        self._process()

    def _send(self, request: Request, response: Response) -> None:
        if self._closed:
            return
        body = response.body
        keep_alive = request.keep_alive and not response.cut
        length = len(body) if response.length is None else response.length
        framing = "" if response.status in (204, 304) else f"Content-Length: {length}\r\n"
        head = self._head(request, response, framing, keep_alive)
        transport = self._transport
        if request.method == "HEAD" or not body:
            transport.write(head)
        elif len(body) < JOIN_BODY_BELOW:
            transport.write(head + body)
        else:
            transport.writelines((head, body))
        if response.cut and request.method != "HEAD":
            self._abort()
        elif not keep_alive:
            self._close()

    async def _send_stream(self, request: Request, response: Response) -> None:
        stream = response.stream
        assert stream is not None
        chunked = response.length is None and request.version == "1.1"
        keep_alive = request.keep_alive and (chunked or response.length is not None)
        if response.length is not None:
            framing = f"Content-Length: {response.length}\r\n"
        else:
            framing = "Transfer-Encoding: chunked\r\n" if chunked else ""
        transport = self._transport
        transport.write(self._head(request, response, framing, keep_alive))
        if request.method != "HEAD":
            async for chunk in stream:
                if self._closed or transport.is_closing():
                    return
                transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            if chunked:
                transport.write(b"0\r\n\r\n")
        if not keep_alive:
            self._close()

    def _head(self, request: Request, response: Response, framing: str, keep_alive: bool) -> bytes:
        if not keep_alive:
            connection = "Connection: close\r\n"
        else:
            connection = "Connection: keep-alive\r\n" if request.version == "1.0" else ""
        extra = "".join(f"{name}: {value}\r\n" for name, value in response.headers)
        return (f"{_status_line(response.status)}Content-Type: {response.content_type}\r\n{framing}"
                f"X-Upstream: heliox-example\r\nDate: {_http_date()}\r\n{connection}{extra}\r\n").encode("latin-1")

    def _fail(self, exc: HttpError) -> None:
        """Answer a request we could not parse, then close: the byte stream can no longer be trusted."""
        if self._closed:
            return
        body = json.dumps({"error": exc.error, "detail": exc.detail}).encode()
        head = (f"{_status_line(exc.status)}Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"X-Upstream: heliox-example\r\nDate: {_http_date()}\r\nConnection: close\r\n\r\n")
        self._transport.write(head.encode() + body)
        self._close()

    def _abort(self) -> None:
        """Cut the connection; still let bytes already queued out first, or there is nothing to cut short."""
        self._closed = True
        self._buffer.clear()
        transport = self._transport
        if transport.get_write_buffer_size():
            transport.close()
        else:
            transport.abort()

    def _close(self) -> None:
        self._closed = True
        self._buffer.clear()
        self._transport.close()


async def _start(host: str, port: int, state: ServerState) -> asyncio.base_events.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: UpstreamProtocol(state), host, port, reuse_address=True, backlog=2048)


async def start_server(host: str = "127.0.0.1", port: int = 8001) -> asyncio.base_events.Server:
    """Start the example upstream on the running loop; with port 0, read the port from server.sockets."""
    return await _start(host, port, ServerState())


async def _serve(host: str, port: int) -> None:
    state = ServerState()
    server = await _start(host, port, state)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows loops
            loop.add_signal_handler(signum, stop.set)
    bound_port = server.sockets[0].getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    print(f"example upstream listening on http://{shown_host}:{bound_port}", flush=True)
    await stop.wait()
    server.close()
    # Hanging and streaming connections would otherwise keep wait_closed() (and the process) alive.
    for transport in list(state.connections):
        transport.abort()
    await server.wait_closed()


def serve_forever(host: str, port: int) -> None:
    """Run the example upstream until SIGINT/SIGTERM, on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        run: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run
    else:
        run = uvloop.run
    with contextlib.suppress(KeyboardInterrupt):
        run(_serve(host, port))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Heliox example upstream HTTP server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args(argv)
    serve_forever(args.host, args.port)


if __name__ == "__main__":
    main()
