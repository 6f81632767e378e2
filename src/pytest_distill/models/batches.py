"""`--distill-batch`: the session's calls go through OpenAI's Batch API, at half the price, in its own
rate-limit pool, answered within its 24-hour window.

A call is queued instead of sent. The queue is flushed when a test waits for a queued call (prefetch has
by then queued the calls of every test ahead that it could): its calls become batch files, one model and
one server each, at most 50,000 lines or 200 MB, each line's `custom_id` the call's request key. Every
batch is polled to its end and its output and error files hand each call its answer, or its error.

The batches made are noted in pytest's cache (`distill-batches/`, one file a batch: its server and its
request keys), so a session killed while they run is resumed by the next one: a call whose key is in a
noted batch waits for that batch instead of being sent again, and is never paid twice. A resumed batch
that ended without answering a call (expired, cancelled, failed, or gone) sends that call again.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..atomic import write_atomic
from ..jsonl import BadLine, parse_jsonl
from ..untrusted import capped, printable
from .types import ModelError

if TYPE_CHECKING:
    import openai

MAX_LINES = 50_000
MAX_BYTES = 200_000_000
"""The Batch API's limits on one input file (200 MB)."""
ENDED = frozenset({"completed", "failed", "expired", "cancelled"})
Endpoint = Literal["/v1/chat/completions", "/v1/responses"]
LABEL = "POST /v1/batches"
_BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")


class InBatch(Exception):
    """A call asked ahead (prefetch) waits in a batch not sent yet: the helper that asked stops here
    and runs again when the answer is in (`future` is done then)."""

    def __init__(self, future: asyncio.Future[Any] | Any) -> None:
        super().__init__("the call waits in a batch")
        self.future = future


@dataclass
class _Call:
    key: str
    server: str
    endpoint: Endpoint
    """What the line calls: chat completions, or the Responses API (`distill_api = responses`)."""
    model: str
    """The name the caller used (errors name it)."""
    body: dict[str, Any]
    future: asyncio.Future[Any]


@dataclass
class _Group:
    """The calls of one batch file: one server (its client), one endpoint and one model."""

    server: str
    endpoint: Endpoint
    client: openai.AsyncOpenAI
    calls: dict[str, _Call] = field(default_factory=dict)


@dataclass
class Followed:
    """A batch being polled: what the progress line says of it."""

    id: str
    status: str = "validating"
    total: int = 0
    done: int = 0


class BatchRecord:
    """The batches of this project's sessions, one JSON file each in pytest's cache: `{"server",
    "batch", "keys"}`. Read as hostile (a file edited by hand, or cut short, is ignored)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def saved(self, server: str) -> list[tuple[str, frozenset[str]]]:
        """The noted batches of `server`: (batch id, request keys)."""
        found = []
        for path in sorted(self.folder.glob("batch_*.json")) if self.folder is not None else ():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if (isinstance(data, dict) and data.get("server") == server and isinstance(data.get("batch"), str)
                    and _BATCH_ID.fullmatch(data["batch"]) and isinstance(data.get("keys"), list)):
                found.append((data["batch"], frozenset(key for key in data["keys"] if isinstance(key, str))))
        return found

    def save(self, server: str, batch_id: str, keys: Iterable[str]) -> None:
        if self.folder is not None and _BATCH_ID.fullmatch(batch_id):
            write_atomic(self.folder / f"{batch_id}.json", json.dumps({"server": server, "batch": batch_id, "keys": list(keys)}))

    def forget(self, batch_ids: Iterable[str]) -> None:
        for batch_id in batch_ids:
            if self.folder is not None and _BATCH_ID.fullmatch(batch_id):
                (self.folder / f"{batch_id}.json").unlink(missing_ok=True)


class Batches:
    """The queue of calls for the Batch API and the batches that answer them, on the runtime's loop."""

    def __init__(self, record: BatchRecord, poll_s: float) -> None:
        self.record, self.poll_s = record, poll_s
        self.explain: Callable[[BaseException], str] = str
        """Set by the runtime: an SDK failure as a message fit to show (the server's words, no key)."""
        self._queue: dict[str, _Call] = {}
        self._clients: dict[str, openai.AsyncOpenAI] = {}
        self._sent: set[str] = set()
        """Keys in a batch already (made here or resumed)."""
        self._ended: set[str] = set()
        """Noted batches found ended or gone: a call they did not answer is sent again."""
        self.followed: dict[str, Followed] = {}
        self.used: set[str] = set()
        """The batches this session made or resumed: forgotten when it ends normally."""
        self.created = 0

    def queued(self, key: str) -> bool:
        """Whether the call waits for a flush (from any thread: a read of a dict)."""
        return key in self._queue

    async def answer(self, key: str, client: openai.AsyncOpenAI, server: str, model: str, body: dict[str, Any],
                     endpoint: Endpoint = "/v1/chat/completions") -> Any:
        """The answer body of a call, once its batch has ended; a ModelError for a line that failed."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if server not in self._clients:  # files and batches with the SDK's retries: a lost look is no lost batch
            self._clients[server] = client.with_options(max_retries=3)
        self._queue[key] = _Call(key, server, endpoint, model, body, future)
        try:
            return await future
        finally:
            self._queue.pop(key, None)

    async def flush(self) -> None:
        """Send every queued call: those a noted batch holds wait for it, the others go in new batches."""
        calls = [call for call in self._queue.values() if not call.future.done() and call.key not in self._sent]
        groups: dict[tuple[str, str, str], _Group] = {}
        for call in calls:
            group = groups.setdefault((call.server, call.endpoint, str(call.body.get("model"))),
                                      _Group(call.server, call.endpoint, self._clients[call.server]))
            group.calls[call.key] = call
            self._sent.add(call.key)
        outcomes = await asyncio.gather(*(self._send(group) for group in groups.values()), return_exceptions=True)
        for group, outcome in zip(groups.values(), outcomes, strict=True):
            if isinstance(outcome, Exception) and group.calls:  # the record could not be written, a bug: no call may wait forever
                _fail(group.calls.values(), ModelError(next(iter(group.calls.values())).model, LABEL, repr(outcome)))

    def status(self) -> str:
        """`batch batch_abc: in_progress 1,200/5,000` for each batch still followed."""
        return "; ".join(f"batch {b.id}: {b.status} {b.done:,}/{b.total:,}" for b in self.followed.values())

    async def _send(self, group: _Group) -> None:
        waits = []
        for batch_id, keys in self.record.saved(group.server):
            mine = {key: group.calls.pop(key) for key in keys & group.calls.keys()} if batch_id not in self._ended else {}
            if mine:
                waits.append(self._follow(group.client, batch_id, mine, resumed=True))
        for chunk in _chunks(list(group.calls.values())):
            waits.append(self._create(group, chunk))
        await asyncio.gather(*waits)

    async def _create(self, group: _Group, calls: list[_Call]) -> None:
        """Upload one batch file and start its batch; a failure here fails its calls."""
        import openai

        client = group.client
        data = b"".join(_line(call) for call in calls)
        try:
            uploaded = await client.files.create(file=("distill-batch.jsonl", io.BytesIO(data)), purpose="batch")
            batch = await client.batches.create(input_file_id=uploaded.id, endpoint=group.endpoint, completion_window="24h",
                                                metadata={"made_by": "pytest-distill"})
        except openai.OpenAIError as exc:
            _fail(calls, ModelError(calls[0].model, LABEL, self.explain(exc), getattr(exc, "status_code", None)))
            return
        batch_id = str(getattr(batch, "id", ""))
        if not _BATCH_ID.fullmatch(batch_id):
            _fail(calls, ModelError(calls[0].model, LABEL, f"the server's batch id {batch_id[:80]!r} is not an id"))
            return
        self.created += 1
        self.record.save(group.server, batch_id, (call.key for call in calls))
        await self._follow(client, batch_id, {call.key: call for call in calls}, resumed=False)

    async def _follow(self, client: openai.AsyncOpenAI, batch_id: str, calls: dict[str, _Call], resumed: bool) -> None:
        """Poll the batch to its end, then hand each call its line of the output or the error file."""
        import openai

        label = f"batch {batch_id}"
        model = next(iter(calls.values())).model
        followed = self.followed[batch_id] = Followed(batch_id)
        self.used.add(batch_id)
        try:
            while True:
                batch = await client.batches.retrieve(batch_id)
                followed.status = str(getattr(batch, "status", ""))
                counts = getattr(batch, "request_counts", None)
                followed.total = _count(counts, "total")
                followed.done = _count(counts, "completed") + _count(counts, "failed")
                if followed.status in ENDED:
                    break
                await asyncio.sleep(self.poll_s)
            answers: dict[str, tuple[int | None, Any]] = {}
            for name in ("output_file_id", "error_file_id"):
                file_id = getattr(batch, name, None)
                if isinstance(file_id, str) and file_id:
                    answers.update(_answers((await client.files.content(file_id)).content, calls.keys() - answers.keys()))
        except openai.OpenAIError as exc:
            if resumed:  # gone (another server, deleted): the calls are sent again
                self._ended.add(batch_id)
                await self._again(calls)
                return
            _fail(list(calls.values()), ModelError(model, label, self.explain(exc), getattr(exc, "status_code", None)))
            return
        finally:
            self.followed.pop(batch_id, None)
        unanswered = {}
        for key, call in calls.items():
            status, body = answers.get(key, (None, None))
            if call.future.done():
                continue
            if status == 200:
                call.future.set_result(body)
            elif resumed and followed.status != "completed":
                unanswered[key] = call
            else:
                call.future.set_exception(ModelError(call.model, label, _why(followed.status, body, batch), status))
        if unanswered:
            self._ended.add(batch_id)
            await self._again(unanswered)

    async def _again(self, calls: Mapping[str, _Call]) -> None:
        """Calls a resumed batch did not answer: queued again, in a batch of their own."""
        for call in calls.values():
            self._sent.discard(call.key)
        await self.flush()


def _line(call: _Call) -> bytes:
    line = {"custom_id": call.key, "method": "POST", "url": call.endpoint, "body": call.body}
    return json.dumps(line, ensure_ascii=False).encode("utf-8", "backslashreplace") + b"\n"


def _chunks(calls: list[_Call], max_lines: int = MAX_LINES, max_bytes: int = MAX_BYTES) -> Iterable[list[_Call]]:
    """The calls in files of at most `max_lines` lines and `max_bytes` bytes."""
    chunk: list[_Call] = []
    size = 0
    for call in calls:
        length = len(_line(call))
        if chunk and (len(chunk) == max_lines or size + length > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(call)
        size += length
    if chunk:
        yield chunk


def _answers(data: bytes, wanted: Iterable[str]) -> dict[str, tuple[int | None, Any]]:
    """The lines of an output or error file for the wanted keys: (status, body), or (None, error) for a
    line the batch never ran. Lines off the API's shape (read as every JSONL file is: no JSON object, or too
    long) are left out: their call errors as unanswered."""
    wanted = set(wanted)
    found: dict[str, tuple[int | None, Any]] = {}
    for parsed in parse_jsonl(data):
        if isinstance(parsed, BadLine):
            continue
        line = parsed.data
        key = line.get("custom_id")
        if not isinstance(key, str) or key not in wanted or key in found:
            continue
        response = line.get("response")
        if isinstance(response, dict) and isinstance(response.get("status_code"), int):
            found[key] = (response["status_code"], response.get("body"))
        elif isinstance(line.get("error"), dict):
            found[key] = (None, line["error"])
    return found


def _why(status: str, body: Any, batch: Any) -> str:
    """Why a call got no answer: its line's error, or what ended the batch."""
    error = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), dict) else body
    message = error.get("message") if isinstance(error, dict) else None
    if isinstance(message, str):
        return capped(printable(message))
    if status == "failed":
        errors = getattr(getattr(batch, "errors", None), "data", None)
        said = [str(getattr(error, "message", "")) for error in (errors[:3] if isinstance(errors, list) else [])]
        return "the batch failed" + (f": {capped(printable('; '.join(said)))}" if any(said) else "")
    if status in ("expired", "cancelled"):
        return f"the batch {status} before this call ran"
    return "the batch gave no answer for this call"


def _count(counts: Any, name: str) -> int:
    value = getattr(counts, name, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _fail(calls: Iterable[_Call], error: ModelError) -> None:
    for call in calls:
        if not call.future.done():
            call.future.set_exception(error)

