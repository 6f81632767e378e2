"""The simulator's HTTP side: a threaded loopback server, auth, latency, faults, the request log.

Every /v1 request goes through one pipeline (`SimServer.respond`): it is logged, authorised,
delayed by the simulated latency, offered to the injected faults, then answered by `SimApi`.
`/_sim/...` are the simulator's own admin endpoints, so a test in another process can drive it; they
take the simulator's key (`admin_key`), so that no web page or stranger can. It listens on loopback
only unless told otherwise: it has no real authentication.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import secrets
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .api import Answerer, ApiRequest, ApiResponse, SimApi, Upload
from .errors import ApiError, bad_request, not_found
from .faults import BATCH_KINDS, JUDGE_KINDS, SHAPE_KINDS, Fault, FaultQueue
from .ids import request_id
from .seed import load_seeds
from .state import StateFile

MISSING_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth "
    "(i.e. Authorization: Bearer YOUR_KEY). You can obtain an API key from https://platform.openai.com/account/api-keys."
)
MALFORMED_BODY = b'{"id": "chatcmpl-sim", "object": "chat.completion", "choices": [{"index": 0, "mess'


@dataclass(frozen=True)
class RequestRecord:
    """A request seen on /v1: `body` is the JSON object, or the form fields of an upload."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        """The JSON form `GET /_sim/requests` lists."""
        return asdict(self)


class RequestLog:
    """The requests seen, in arrival order, and how many were served at once at the most; safe to use
    from many handler threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._in_flight = 0
        self.peak_in_flight = 0

    @contextmanager
    def serving(self, record: RequestRecord) -> Iterator[None]:
        """Log `record` and count it as in flight while the block runs."""
        with self._lock:
            self._records.append(record)
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    def snapshot(self) -> list[RequestRecord]:
        """A copy, so callers can iterate while requests keep arriving."""
        with self._lock:
            return list(self._records)

    def clear(self) -> int:
        """Forget all records and the peak; return how many records there were."""
        with self._lock:
            count = len(self._records)
            self._records.clear()
            self.peak_in_flight = self._in_flight
            return count


class SimServer:
    """An offline OpenAI-compatible API on a loopback port, serving from a daemon thread.

    `seed` are JSONL files in the fine-tuning chat format that become stored teacher
    completions; `latency_s` delays every /v1 answer; a fine-tuning job takes `job_seconds`;
    with `api_key`, any other bearer token is refused like a wrong key on the real API; with
    `state_dir`, uploaded files and fine-tuning jobs (so fine-tuned models) outlive a restart.
    The admin endpoints take `admin_key`: `api_key`, or a random one when any key is accepted.
    A `host` beyond loopback is refused unless `allow_remote`, and so is a request whose `Host` header
    names anything but loopback (a browser page whose name was made to resolve to 127.0.0.1, DNS
    rebinding, would otherwise read the stored completions). `answerers` are tried in order on a
    chat request that asks for free text; the first that returns a text answers it (the benchmark
    answers other eval tools' judge prompts this way).
    """

    def __init__(
        self,
        seed: Iterable[str | os.PathLike[str]] = (),
        *,
        latency_s: float = 0.0,
        job_seconds: float = 3.0,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        state_dir: str | os.PathLike[str] | None = None,
        allow_remote: bool = False,
        fine_tunes: Sequence[str] = (),
        answerers: Sequence[Answerer] = (),
    ) -> None:
        if latency_s < 0 or job_seconds < 0:
            raise ValueError("latency_s and job_seconds must be >= 0")
        if not allow_remote and not is_loopback(host):
            raise ValueError(f"refusing to listen on {host or 'every interface'}: the simulator has no real "
                             "authentication, so it listens on loopback only unless asked (allow_remote, --allow-remote)")
        seeded = load_seeds(seed)
        self.seeded = len(seeded)
        self.seed_digest = hashlib.sha256(json.dumps(
            [[cid, example.input, example.answer, example.trailing, example.metadata] for cid, example in seeded],
            ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()
        """What the seeds make the simulator answer, in one SHA-256: a client's cache keys its answers by it."""
        self.latency_s = latency_s
        self.api_key = api_key
        self.admin_key = api_key or f"sk-sim-admin-{secrets.token_hex(16)}"
        self.host = host
        self.port = port
        self.allow_remote = allow_remote
        self._api = SimApi(seeded, job_seconds=job_seconds, run_line=self._run_line, fine_tunes=fine_tunes,
                           answerers=answerers)
        if state_dir is not None:
            state = StateFile(state_dir)
            self._api.restore(state.load())
            self._api.on_change = lambda: state.save(self._api.state)
        self._log = RequestLog()
        self._faults = FaultQueue()
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._stalls_lock = threading.Lock()
        self._stalls_end = threading.Event()

    def start(self) -> SimServer:
        """Bind and serve in a daemon thread; `url` is known from here on."""
        if self._httpd is not None:
            raise RuntimeError("the simulator is already running")
        self._httpd = _HttpServer((self.host, self.port), self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=f"distill-sim:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, join the thread and close the socket; safe to call twice."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        if self._thread is not None:
            self._thread.join()
        self._httpd.server_close()
        self._httpd = self._thread = None

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL clients use, what OPENAI_BASE_URL gets: http://HOST:PORT/v1."""
        if self._httpd is None:
            raise RuntimeError("the simulator is not running: call start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address, bracketed as URLs have it
        return f"http://{host}:{self.port}/v1"

    @property
    def requests(self) -> list[RequestRecord]:
        """The requests seen on /v1 so far, in order."""
        return self._log.snapshot()

    def clear_requests(self) -> None:
        """Forget the requests seen so far, and their peak in flight."""
        self._log.clear()

    @property
    def peak_in_flight(self) -> int:
        """The most /v1 requests served at once since the start (or `clear_requests`)."""
        return self._log.peak_in_flight

    def inject(self, fault: Fault) -> None:
        """Apply `fault` to the next `fault.count` matching /v1 requests."""
        if fault.kind == "stall":
            with self._stalls_lock:
                if self._stalls_end.is_set():
                    self._stalls_end = threading.Event()
        self._faults.add(fault)

    def end_stalls(self) -> None:
        """End every stall injected so far, under way or still to come, as if its seconds were over: a
        test holds a client inside a request exactly as long as it needs to, without guessing a duration."""
        with self._stalls_lock:
            self._stalls_end.set()

    def _stall(self, seconds: float) -> None:
        with self._stalls_lock:
            ending = self._stalls_end
        ending.wait(seconds)

    def respond(self, method: str, target: str, headers: Mapping[str, str], data: bytes) -> ApiResponse:
        """Answer one HTTP request (`target` is the path with its query)."""
        url = urlsplit(target)
        path = unquote(url.path)
        query = parse_qs(url.query, keep_blank_values=True)
        if not self.allow_remote and not loopback_name(headers.get("host", "localhost")):
            return ApiResponse.error(ApiError(421, "The simulator answers only requests addressed to a loopback name "
                                                   "(localhost, 127.0.0.1, [::1]); start it with --allow-remote to "
                                                   "answer others."))
        if path.startswith("/_sim/"):
            if not secrets.compare_digest(headers.get("authorization", "").encode(), f"Bearer {self.admin_key}".encode()):
                return ApiResponse.error(ApiError(401, "The simulator's admin endpoints take its key: "
                                                       "Authorization: Bearer <SimServer.admin_key>."))
            return self._admin(method, path, data)
        if path != "/v1" and not path.startswith("/v1/"):
            return ApiResponse.error(not_found(f"Invalid URL ({method} {path})"))
        started = time.monotonic()
        rid = request_id()
        response = self._serve_api(method, path, query, headers, data, rid)
        elapsed_ms = str(int((time.monotonic() - started) * 1000))
        extra = {"x-request-id": rid, "openai-processing-ms": elapsed_ms}
        return ApiResponse(response.status, response.body, response.content_type, {**response.headers, **extra})

    def _serve_api(
        self, method: str, path: str, query: dict[str, list[str]], headers: Mapping[str, str], data: bytes, rid: str
    ) -> ApiResponse:
        """The /v1 pipeline: log, authorise, wait, apply a fault, answer (`rid` is the x-request-id)."""
        parse_error: ApiError | None = None
        try:
            body, uploads = parse_body(headers.get("content-type", ""), data)
        except ApiError as error:
            body, uploads, parse_error = None, {}, error
        with self._log.serving(RequestRecord(method, path, query, _loggable(body, uploads))):
            try:
                self._authorize(headers.get("authorization"))
                if parse_error is not None:
                    raise parse_error
                time.sleep(self.latency_s)
                api_path = path.removeprefix("/v1")
                model = body.get("model") if isinstance(body, dict) else None
                judging = _is_judge(method, api_path, body)
                fault = self._faults.take(path, model if isinstance(model, str) else None, judge=judging)
                if fault is not None and fault.kind == "stall":
                    self._stall(fault.seconds or 0.0)
                    fault = None
                elif fault is not None and fault.kind not in JUDGE_KINDS + SHAPE_KINDS + BATCH_KINDS:
                    early = _apply_fault(fault, model)
                    if early is not None:
                        return early
                    fault = None
                return self._api.handle(ApiRequest(method, api_path, query, body, uploads, rid, fault))
            except ApiError as error:
                return ApiResponse.error(error)
            except Exception as exc:  # a simulator bug must reach the client as a 500, not a hang
                traceback.print_exc(file=sys.stderr)
                return ApiResponse.error(ApiError(500, f"The simulator failed: {exc!r}", type="server_error"))

    def _run_line(self, endpoint: str, body: dict[str, Any]) -> tuple[int, Any, str]:
        """One line of a batch, with the fault its endpoint's request would take (a stall waits not in a batch)."""
        model = body.get("model")
        model = model if isinstance(model, str) else None
        fault = self._faults.take(endpoint, model, judge=_is_judge("POST", endpoint.removeprefix("/v1"), body))
        if fault is not None and fault.kind not in JUDGE_KINDS + SHAPE_KINDS:
            try:
                early = _apply_fault(fault, model)
            except ApiError as error:
                return error.status, error.body(), request_id()
            if early is not None:
                return early.status, early.body.decode("utf-8", "replace"), request_id()
            fault = None
        return self._api.run_line(endpoint, body, fault)

    def _authorize(self, header: str | None) -> None:
        scheme, _, token = (header or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, MISSING_KEY)
        if self.api_key is not None and token != self.api_key:
            raise ApiError(
                401,
                f"Incorrect API key provided: {mask_key(token)}. "
                "You can find your API key at https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )

    def _admin(self, method: str, path: str, data: bytes) -> ApiResponse:
        """GET/DELETE /_sim/requests and POST /_sim/faults."""
        if path == "/_sim/requests" and method == "GET":
            return ApiResponse.json([record.to_json() for record in self._log.snapshot()])
        if path == "/_sim/requests" and method == "DELETE":
            return ApiResponse.json({"deleted": self._log.clear()})
        if path == "/_sim/faults" and method == "POST":
            try:
                fault = Fault.from_json(json.loads(data or b"null"))
            except (ValueError, TypeError) as exc:
                return ApiResponse.error(bad_request(f"Invalid fault: {exc}"))
            self.inject(fault)
            return ApiResponse.json({"queued": fault.to_json()})
        return ApiResponse.error(not_found(f"Invalid URL ({method} {path})"))


def is_loopback(host: str) -> bool:
    """Whether every address `host` names is a loopback one ("" and 0.0.0.0 mean every interface)."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)} if host else set()
    except (socket.gaierror, UnicodeError):
        return False
    return bool(addresses) and all(ipaddress.ip_address(str(a).partition("%")[0]).is_loopback for a in addresses)


def loopback_name(host: str) -> bool:
    """Whether a `Host` header names loopback: localhost, 127.x.x.x or [::1], with or without a port."""
    name = host.strip().lower()
    if name.startswith("["):
        name, bracket, rest = name[1:].partition("]")
        if not bracket or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return False
    elif name.count(":") == 1:
        name, _, port = name.partition(":")
        if not port.isdigit():
            return False
    if name in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def mask_key(key: str) -> str:
    """A key as the real API echoes it: the first five and last two characters, stars between."""
    if len(key) <= 7:
        return "*" * len(key)
    return key[:5] + "*" * (len(key) - 7) + key[-2:]


def parse_body(content_type: str, data: bytes) -> tuple[Any, dict[str, Upload]]:
    """The JSON body, or a multipart form's fields and files; 400 when it cannot be read."""
    if content_type.lower().startswith("multipart/form-data"):
        return _parse_multipart(content_type, data)
    if not data.strip():
        return None, {}
    try:
        return json.loads(data), {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise bad_request(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP "
            "library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"
        ) from None


def _parse_multipart(content_type: str, data: bytes) -> tuple[dict[str, str], dict[str, Upload]]:
    message = BytesParser(policy=policy.HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + data)
    if not message.is_multipart():
        raise bad_request("The multipart body of the request could not be read.")
    fields: dict[str, str] = {}
    uploads: dict[str, Upload] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        content = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if not isinstance(name, str):
            continue
        if filename is None:
            fields[name] = content.decode("utf-8", errors="replace")
        else:
            uploads[name] = Upload(filename, content)
    return fields, uploads


def _loggable(body: Any, uploads: Mapping[str, Upload]) -> dict[str, Any] | None:
    """What the request log keeps of a body: the JSON object, or form fields with file sizes."""
    if uploads:
        files = {name: {"filename": u.filename, "bytes": len(u.data)} for name, u in uploads.items()}
        return {**(body or {}), **files}
    return body if isinstance(body, dict) else None


def _is_judge(method: str, api_path: str, body: Any) -> bool:
    """A chat completion or a response asking for a `json_schema` answer: what the simulated judge answers."""
    if method != "POST" or api_path not in ("/chat/completions", "/responses") or not isinstance(body, dict):
        return False
    text = body.get("text")
    chat = api_path == "/chat/completions"
    response_format = body.get("response_format") if chat else text.get("format") if isinstance(text, dict) else None
    return isinstance(response_format, dict) and response_format.get("type") == "json_schema"


def _apply_fault(fault: Fault, model: object) -> ApiResponse | None:
    """Raise a 404, 429 or 500 fault's error, return a malformed fault's body, or None for the others."""
    if fault.kind == "404":
        raise not_found("No object with that id was found (it may have been deleted).")
    if fault.kind == "429":
        wait = f"Please try again in {fault.retry_after:g}s." if fault.retry_after is not None else "Please try again later."
        headers = {"retry-after": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
        raise ApiError(
            429,
            f"Rate limit reached for {model or 'requests'} in organization org-sim on requests per min (RPM): "
            f"Limit 60, Used 60, Requested 1. {wait} Visit https://platform.openai.com/account/rate-limits to learn more.",
            type="requests",
            code="rate_limit_exceeded",
            headers=headers,
        )
    if fault.kind == "500":
        raise ApiError(500, "The server had an error while processing your request. Sorry about that!", type="server_error")
    if fault.kind == "malformed":
        return ApiResponse(200, MALFORMED_BODY)
    return None


class _HttpServer(ThreadingHTTPServer):
    """One thread per request, a deep accept queue for bursts, quiet about dropped clients."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sim: SimServer) -> None:
        self.sim = sim
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET  # "::1" is IPv6 loopback
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Reads the request, lets `SimServer.respond` answer it, writes the answer."""

    server: _HttpServer

    def do_GET(self) -> None:
        data = self._read_body()
        response = self.server.sim.respond(self.command, self.path, _lower_keys(self.headers.items()), data)
        self.send_response(response.status)
        self.send_header("content-type", response.content_type)
        self.send_header("content-length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    do_POST = do_DELETE = do_PUT = do_PATCH = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():
                pass
            return b"".join(chunks)
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr line: `SimServer.requests` is the log."""


def _lower_keys(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in items}
