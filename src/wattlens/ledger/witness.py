"""Witnesses (c2sp.org/tlog-witness): cosign a log's checkpoint only if it extends the last one cosigned.

The witness side (`Witness.add_checkpoint`) answers the protocol's one call,

    POST <submission prefix>/add-checkpoint
    old <size of the previous checkpoint>
    <consistency proof, one base64 hash a line (none when old is 0)>

    <the log's signed checkpoint>

with the status codes the specification fixes (200 cosignature lines, 400, 403, 404, 409 with the
size it holds as `text/x.tlog.size`, 422). The check of the old size and the write of the new
checkpoint are one atomic step (a lock, and a file lock across processes), so two racing requests
cannot roll the witness back. `wattlens log witness` (pull, from a file or a gateway's URL) and
`wattlens log witness-serve` (the HTTP service) both go through it.

The log side (`request_cosignature`) is what the gateway does after it signs a checkpoint: it sends
the checkpoint with a consistency proof from the size the witness last cosigned (asking with old 0
first, as the specification allows, and once more with the size a 409 names), checks the returned
cosignature with the witness's verifier key and adds the line to its own note.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from wattlens.errors import WattlensError
from wattlens.ledger import merkle
from wattlens.ledger.note import (
    DASH,
    NoteError,
    Signer,
    Verifier,
    cosign,
    decimal_number,
    open_cosigned,
    read_checkpoint,
    split_note,
)

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer

SIZE_TYPE = "text/x.tlog.size"
MAX_PROOF_LINES = 63  # the client MUST NOT send more (tlog-witness)


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer of the witness: status, body and content type."""

    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


def request_body(old_size: int, proof: Sequence[bytes], note: str) -> str:
    """The add-checkpoint request body: the old size line, the proof lines, a blank line, the checkpoint."""
    return f"old {old_size}\n" + "".join(base64.b64encode(h).decode() + "\n" for h in proof) + "\n" + note


def parse_request(body: str) -> tuple[int, list[bytes], str]:
    """(old size, consistency proof, signed checkpoint) of a request body; ValueError when malformed."""
    head, sep, note = body.partition("\n\n")
    lines = head.split("\n")
    if not sep or not lines[0].startswith("old "):
        raise ValueError("the body starts with `old SIZE`, then the proof lines, a blank line and the checkpoint")
    size = lines[0][4:]
    if not decimal_number(size):
        raise ValueError("the old size is a decimal number without leading zeroes")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise ValueError(f"at most {MAX_PROOF_LINES} consistency proof lines")
    proof = [base64.b64decode(x, validate=True) for x in lines[1:]]
    if any(len(h) != 32 for h in proof):
        raise ValueError("each proof line is a base64 SHA-256 hash")
    return int(size), proof, note


class Witness:
    """A witness's key, the logs it knows (origin -> verifier key) and the last checkpoint it cosigned of each."""

    def __init__(self, key: Signer, logs: Mapping[str, Verifier], state_dir: Path) -> None:
        self.key, self.logs, self.state_dir = key, dict(logs), state_dir
        self._lock = threading.Lock()
        state_dir.mkdir(parents=True, exist_ok=True)

    def path(self, origin: str) -> Path:
        return self.state_dir / (base64.urlsafe_b64encode(origin.encode()).decode().rstrip("=") + ".checkpoint")

    def latest(self, origin: str) -> str | None:
        """The last checkpoint this witness cosigned of that log (the whole cosigned note), or None."""
        try:
            return self.path(origin).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One check-and-write at a time, across threads and processes sharing the state directory."""
        with self._lock, open(self.state_dir / ".lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def add_checkpoint(self, body: str, now: Callable[[], float] = time.time) -> Answer:
        """The add-checkpoint call, with the specification's status codes."""
        try:
            old_size, proof, note = parse_request(body)
            text, _ = split_note(note)
            cp = read_checkpoint(note)
        except (ValueError, NoteError) as e:
            return Answer(400, f"malformed add-checkpoint request: {e}\n")
        verifier = self.logs.get(cp.origin)
        if verifier is None:
            return Answer(404, f"unknown log origin {cp.origin[:200]}\n")
        try:
            read_checkpoint(note, verifier)  # signatures from other keys are ignored (open_note looks for this one)
        except NoteError as e:
            return Answer(403, f"the checkpoint is not signed by the log's key: {e}\n")
        if old_size > cp.size:
            return Answer(400, f"old size {old_size} is above the checkpoint's size {cp.size}\n")
        if old_size == 0 and proof:
            return Answer(400, "the proof is empty when the old size is 0\n")
        with self._exclusive():
            last_note = self.latest(cp.origin)
            last = read_checkpoint(last_note, verifier) if last_note else None
            held = last.size if last else 0
            if old_size != held:
                return Answer(409, f"{held}\n", SIZE_TYPE)
            if last is not None and last.size == cp.size and last.root != cp.root:
                return Answer(409, f"{held}\n", SIZE_TYPE)  # the same size with another root: a fork
            joined = last is None or last.size == cp.size
            if (
                not joined
                and last is not None
                and not merkle.verify_consistency(last.size, cp.size, last.root, cp.root, proof)
            ):
                return Answer(422, f"the consistency proof from {last.size} to {cp.size} does not verify\n")
            cosigned = cosign(text + "\n" + _own_lines(note, verifier), self.key, int(now()))
            tmp = self.path(cp.origin).with_name(self.path(cp.origin).name + ".tmp")
            tmp.write_text(cosigned, encoding="utf-8")
            os.replace(tmp, self.path(cp.origin))  # persisted before the answer (the spec's MUST)
        return Answer(200, cosigned.splitlines(keepends=True)[-1])


def _own_lines(note: str, verifier: Verifier) -> str:
    """The log's own signature lines of a note (a stored note keeps only what the witness checked)."""
    _, sigs = split_note(note)
    lines = note[note.rfind("\n\n") + 2 :].splitlines(keepends=True)
    return "".join(line for line, s in zip(lines, sigs, strict=True) if s.name == verifier.name and s.id == verifier.id)


class WitnessError(WattlensError):
    """A witness did not cosign (it refused, or it could not be reached)."""


def request_cosignature(
    url: str,
    note: str,
    witness: Verifier,
    proof_from: Callable[[int], list[bytes]],
    post: Callable[[str, str], tuple[int, str, str]],
    old_size: int = 0,
) -> tuple[str, int]:
    """The note with the witness's cosignature added, and the size the witness now holds.

    `old_size` is the size this log last had cosigned by that witness (0 when unknown: the witness's
    409 then says which, and the request is made once more with a proof from there).
    `proof_from(m)` gives the consistency proof from size m to the note's size; `post(url, body)`
    makes the HTTP request and returns (status, content type, body).
    """
    endpoint = url.rstrip("/") + "/add-checkpoint"
    size = read_checkpoint(note).size
    for _ in range(2):
        status, ctype, text = post(endpoint, request_body(old_size, proof_from(old_size) if old_size else [], note))
        if status == 409 and ctype.split(";")[0].strip() == SIZE_TYPE and decimal_number(text.strip()):
            held = int(text.strip())
            if held > size:
                raise WitnessError(
                    f"witness {witness.name} has cosigned {held} records of this log, more than its {size}: "
                    "the log was truncated or rolled back"
                )
            if held == old_size:  # the same size with another root
                raise WitnessError(f"witness {witness.name} holds another tree of {held} records: a fork")
            old_size = held
            continue
        if status != 200:
            raise WitnessError(f"witness {witness.name} answered {status}: {text.strip()[:300]}")
        lines = [line for line in text.splitlines(keepends=True) if line.startswith(DASH)]
        cosigned = note + "".join(lines)
        try:
            open_cosigned(cosigned, witness)
        except NoteError as e:
            raise WitnessError(f"witness {witness.name}'s answer does not verify: {e}") from e
        # keep only the line(s) of the key we trust (the spec: ignore cosignatures from unknown keys)
        mine = [ln for ln in lines if ln[len(DASH) :].startswith(witness.name + " ")]
        return note + "".join(mine), size
    raise WitnessError(f"witness {witness.name} kept answering 409 (another writer is racing this log)")


def http_post(timeout_s: float = 10.0) -> Callable[[str, str], tuple[int, str, str]]:
    """POST a text body with urllib (keep-alive is not needed at one request per checkpoint)."""
    import urllib.error
    import urllib.request

    def post(url: str, body: str) -> tuple[int, str, str]:
        req = urllib.request.Request(url, data=body.encode(), method="POST", headers={"content-type": "text/plain"})
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as r:
                return int(r.status), str(r.headers.get("content-type", "")), r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            return int(e.code), str(e.headers.get("content-type", "")), e.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as e:
            raise WitnessError(f"cannot reach the witness at {url}: {getattr(e, 'reason', e)}") from e

    return post


MAX_BODY_BYTES = 64 * 1024  # a checkpoint, its signatures and 63 hashes fit many times over


def make_server(witness: Witness, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server for POST /add-checkpoint (threaded stdlib: one call per checkpoint per log)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the specification recommends

        def _answer(self, a: Answer) -> None:
            data = a.body.encode()
            self.send_response(a.status)
            self.send_header("content-type", a.content_type)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            if self.path.split("?")[0].rstrip("/").rsplit("/", 1)[-1] != "add-checkpoint":
                self._answer(Answer(404, "this witness serves POST /add-checkpoint only\n"))
                return
            try:
                n = int(self.headers.get("content-length", ""))
            except ValueError:
                self._answer(Answer(411, "give a content-length\n"))
                return
            if not 0 <= n <= MAX_BODY_BYTES:
                self._answer(Answer(413, f"a request body is at most {MAX_BODY_BYTES} bytes\n"))
                return
            try:
                body = self.rfile.read(n).decode("utf-8")
            except UnicodeDecodeError:
                self._answer(Answer(400, "the body is UTF-8 text\n"))
                return
            self._answer(witness.add_checkpoint(body))

        def do_GET(self) -> None:
            self._answer(Answer(405, "POST /add-checkpoint\n"))

        def log_message(self, format: str, *args: object) -> None:
            pass  # requests hold nothing secret, but one line per checkpoint is noise

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def serve(witness: Witness, host: str, port: int, ready: Callable[[str], None] | None = None) -> None:
    """Serve POST /add-checkpoint until interrupted."""
    server = make_server(witness, host, port)
    if ready is not None:
        ready(f"http://{host}:{server.server_address[1]}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
