"""The transparency log: signing keys, signed checkpoints, inclusion proofs, offline receipt checks."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from wattlens.cli.common import ConfigOpt, app, err, group, out, settings_for
from wattlens.cli.serve import keys_app

if TYPE_CHECKING:
    from collections.abc import Iterable

    from wattlens.factors import FactorSet
    from wattlens.ledger import Ledger
    from wattlens.ledger.chain import Problem
    from wattlens.ledger.note import Signer, Verifier
    from wattlens.ledger.tree import Entry

log_app = group("The Merkle log over the ledger: signed checkpoints and proofs.")
app.add_typer(log_app, name="log")
signing_app = group("Ed25519 keys that sign the log's checkpoints (C2SP signed notes).")
keys_app.add_typer(signing_app, name="signing")

LedgerOpt = Annotated[str | None, typer.Option(help="Ledger file or postgresql:// URL (default: the data dir).")]


def _write(text: str, output: str | None, what: str) -> None:
    if output is None or output == "-":
        out.file.write(text)
        return
    Path(output).write_text(text, encoding="utf-8")
    err.print(f"wrote the {what} to {output}")


def _signer(path: str) -> Signer:
    from wattlens.ledger.note import Signer

    return Signer.parse(Path(path).read_text(encoding="utf-8"))


def _verifier(key: str) -> Verifier:
    """A verifier key given inline (NAME+ID+BASE64) or as a file holding one."""
    from wattlens.ledger.note import Verifier

    text = Path(key).read_text(encoding="utf-8") if os.path.isfile(key) else key
    return Verifier.parse(text)


@signing_app.command("new")
def signing_new(
    name: Annotated[str, typer.Option(help="Key name, and the log's origin line: e.g. wattlens.example/org-ledger.")],
    output: Annotated[str, typer.Option("--output", "-o", help="File for the private key (created mode 0600).")],
    witness: Annotated[
        bool, typer.Option("--witness", help="A witness key, that cosigns other logs' checkpoints (C2SP tlog-cosignature).")
    ] = False,
) -> None:
    """Make an Ed25519 signing key: writes the private key, prints the verifier key to publish."""
    from wattlens.ledger.note import COSIGNATURE_V1, ED25519, Signer

    path = Path(output)
    if path.exists():
        raise typer.BadParameter(f"{output} exists: a signing key is never overwritten")
    signer = Signer.generate(name, COSIGNATURE_V1 if witness else ED25519)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(signer.encode() + "\n")
    err.print(f"wrote the signing key to {output}; the verifier key (publish it, give it to auditors):")
    print(signer.verifier.encode())


def _checkpoint(led: Ledger, key: str, origin: str | None, state: str | None) -> str:
    """Sign the log's head, never one that contradicts the last checkpoint signed with this key.

    That last checkpoint is kept outside the ledger (`state`, by default KEY.last-checkpoint, the
    gateway's default too) and in the ledger: a rolled-back or forked database is refused.
    """
    from wattlens.gateway.notary import Notary, RollbackError

    last = Path(state) if state else Path(key).with_name(Path(key).name + ".last-checkpoint")
    try:
        return Notary(led, _signer(key), last, origin=origin).sign()
    except RollbackError as e:
        err.print(f"[bold red]not signed[/]: {escape(str(e))}; the log was truncated, rolled back or forked (see {last})")
        raise typer.Exit(1) from e


StateOpt = Annotated[
    str | None,
    typer.Option(
        help="File keeping the last checkpoint signed with this key, outside the ledger (default: KEY.last-checkpoint)."
    ),
]


def check_witnesses(note: str, keys: list[str]) -> str:
    """Every witness key given must have cosigned the note (NoteError otherwise); says who did, and when."""
    import datetime as dt

    from wattlens.ledger.note import open_cosigned

    said = []
    for k in keys:
        w = _verifier(k)
        _, ts = open_cosigned(note, w)
        try:
            when = dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()
        except (ValueError, OverflowError, OSError):  # a valid 64-bit time beyond what datetime shows
            when = f"timestamp {ts}"
        said.append(f"{w.name} at {when}")
    return f"; cosigned by {', '.join(said)}" if said else ""


@log_app.command("checkpoint")
def log_checkpoint(
    key: Annotated[str, typer.Option(help="Signing key file (wattlens keys signing new).")],
    ledger: LedgerOpt = None,
    origin: Annotated[
        str | None, typer.Option(help="Origin line: must be the key's name, which verifiers take as the log's origin.")
    ] = None,
    output: Annotated[str | None, typer.Option("--output", "-o", help="File to write (default: standard output).")] = None,
    state: StateOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Sign a C2SP checkpoint of the log: origin, size and root hash, signed with Ed25519.

    Refuses (exit 1) when the log does not extend the last checkpoint signed with this key (kept
    in --state and in the ledger): a truncated, rolled-back or forked ledger is never signed.
    """
    from wattlens.ledger import open_ledger

    led = open_ledger(settings_for(config, ledger=ledger).ledger, create=False)
    try:
        note = _checkpoint(led, key, origin, state)
    finally:
        led.close()
    _write(note, output, "checkpoint")


@log_app.command("proof")
def log_proof(
    record_id: Annotated[str, typer.Argument(metavar="ID", help="The record's id.")],
    ledger: LedgerOpt = None,
    key: Annotated[str | None, typer.Option(help="Signing key: sign a checkpoint of the log as it is now.")] = None,
    checkpoint: Annotated[
        str | None, typer.Option(help="Or prove inclusion in this signed checkpoint (a tree at least this long).")
    ] = None,
    record: Annotated[str | None, typer.Option(help="Also write the record itself (JSON) here.")] = None,
    output: Annotated[str | None, typer.Option("--output", "-o", help="File to write (default: standard output).")] = None,
    state: StateOpt = None,
    config: ConfigOpt = None,
) -> None:
    """A C2SP tlog-proof of one record: its index, its inclusion path and a signed checkpoint."""
    from wattlens.ledger import merkle, open_ledger
    from wattlens.ledger.note import Proof, read_checkpoint, read_note_file

    if (key is None) == (checkpoint is None):
        raise typer.BadParameter("give --key (sign a checkpoint now) or --checkpoint (an existing one)")
    led = open_ledger(settings_for(config, ledger=ledger).ledger, create=False)
    try:
        found = led.locate(record_id)
        if found is None:
            err.print(f"[red]no record {record_id} in the ledger[/]")
            raise typer.Exit(1)
        index, body = found
        if key is not None:
            note = _checkpoint(led, key, None, state)
        else:
            assert checkpoint is not None
            note = read_note_file(checkpoint)
        size = read_checkpoint(note).size
        if index >= size:
            err.print(f"[red]record {record_id} (index {index}) is not in the checkpoint's tree of {size}[/]")
            raise typer.Exit(1)
        held = led.tree_state().size  # a ledger from before the stored nodes gets them now (once)
        if size > held:
            err.print(f"[red]the checkpoint commits to {size} records but the log holds {held}: records were removed[/]")
            raise typer.Exit(1)
        path = merkle.inclusion_path(index, size, led.node)  # O(log n) stored hashes
    finally:
        led.close()
    _write(Proof(index, tuple(path), note).encode(), output, f"proof of record {record_id}")
    if record:
        Path(record).write_text(json.dumps(json.loads(body), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


@app.command("verify-receipt")
def verify_receipt(
    record_file: Annotated[str, typer.Argument(metavar="RECORD.json", help="The ledger record (JSON) to check.")],
    proof: Annotated[str, typer.Option(help="Its proof (wattlens log proof).")],
    key: Annotated[str, typer.Option(help="The log's verifier key (NAME+ID+BASE64, or a file holding it).")],
    witness: Annotated[
        list[str] | None,
        typer.Option(help="A witness's verifier key: the proof's checkpoint must carry its cosignature (repeatable)."),
    ] = None,
    entry_hash: Annotated[
        str | None,
        typer.Option(help="The entry hash the gateway's answer carried (x-wattlens-entry): the record must be that entry."),
    ] = None,
) -> None:
    """Check offline, with no access to the ledger, that a record is in the log the key signed."""
    from wattlens.ledger import jcs, merkle
    from wattlens.ledger.note import NoteError, Proof, read_checkpoint, read_note_file

    verifier = _verifier(key)
    try:
        body = json.loads(Path(record_file).read_text(encoding="utf-8"))
        p = Proof.parse(read_note_file(proof))
        cp = read_checkpoint(p.checkpoint, verifier)
        cosigners = check_witnesses(p.checkpoint, witness or [])
        leaf = merkle.leaf_hash(jcs.entry_bytes(body))  # NaN, 1e400, an integer past 2**53: no canonical form
    except (NoteError, ValueError, OSError) as e:  # OSError: a missing or unreadable file
        err.print(f"[bold red]receipt does not verify[/]: {escape(str(e))}")
        raise typer.Exit(1) from e
    if entry_hash is not None and entry_hash.strip().lower() != leaf.hex():
        err.print(
            f"[bold red]receipt does not verify[/]: this record's entry hash is {leaf.hex()}, not the "
            f"{entry_hash.strip()} that the gateway's answer carried (the record was changed or swapped)"
        )
        raise typer.Exit(1)
    if not merkle.verify_inclusion(p.index, cp.size, leaf, p.path, cp.root):
        err.print(
            f"[bold red]receipt does not verify[/]: this record is not entry {p.index} of the log "
            f"{cp.origin} at size {cp.size} (the record or the proof was changed)"
        )
        raise typer.Exit(1)
    out.print(
        f"[green]receipt verifies[/]: entry {p.index} of {cp.origin} (size {cp.size}), checkpoint signed by "
        f"{verifier.name}+{verifier.id.hex()}{cosigners}",
        highlight=False,
    )


@log_app.command("migrate")
def log_migrate(ledger: LedgerOpt = None, config: ConfigOpt = None) -> None:
    """Bring a ledger's Merkle log up to date: leaves and stored nodes for every record, in one pass.

    A ledger from before the log (or from a wattlens that did not store the tree's nodes) is
    migrated in place, in one transaction, without changing a record; appends and proofs also do
    this at their first use, so this command only chooses when the one-off pass happens.
    """
    import time

    from wattlens.ledger import open_ledger

    led = open_ledger(settings_for(config, ledger=ledger).ledger, create=False)
    try:
        before = led.stored_state()
        t0 = time.perf_counter()
        state = led.tree_state()
        took_s = time.perf_counter() - t0
        records = led.count()
    finally:
        led.close()
    was = "no Merkle log" if before is None else f"a log of {before.size}"
    out.print(
        f"[green]log up to date[/]: {records} records, tree size {state.size}, root {state.root.hex()} "
        f"(was {was}; {took_s:.2f} s)",
        highlight=False,
    )


def _fetch(url: str, api_key_env: str | None) -> str:
    """GET a text resource of a gateway's log (its client key, if any, from the named environment variable)."""
    import urllib.error
    import urllib.request

    headers = {"accept": "text/plain"}
    if api_key_env:
        token = os.environ.get(api_key_env)
        if not token:
            raise typer.BadParameter(f"--api-key-env {api_key_env}: that environment variable is not set")
        headers["authorization"] = f"Bearer {token}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
            return str(r.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        err.print(f"[red]{url} answered {e.code}[/]: {e.read()[:300].decode('utf-8', 'replace')}", highlight=False)
        raise typer.Exit(1) from e
    except (urllib.error.URLError, OSError) as e:
        err.print(f"[red]cannot fetch {url}[/]: {getattr(e, 'reason', e)}", highlight=False)
        raise typer.Exit(1) from e


@log_app.command("witness")
def log_witness(
    checkpoint: Annotated[
        str,
        typer.Option(help="The log's signed checkpoint: a file, or the URL of a gateway's /wattlens/log/checkpoint."),
    ],
    key: Annotated[str, typer.Option(help="This witness's key file (wattlens keys signing new --witness).")],
    state: Annotated[str, typer.Option(help="Directory where the witness keeps the last checkpoint it cosigned, per log.")],
    log_key: Annotated[str, typer.Option(help="The log's verifier key (NAME+ID+BASE64, or a file holding it).")],
    ledger: Annotated[
        str | None, typer.Option(help="With a checkpoint file: prove consistency from this ledger (read-only).")
    ] = None,
    proof: Annotated[
        str | None, typer.Option(help="With a checkpoint file: a consistency proof file (one base64 hash a line).")
    ] = None,
    api_key_env: Annotated[
        str | None, typer.Option(help="Environment variable holding a client key for the gateway's URL.")
    ] = None,
    output: Annotated[str | None, typer.Option("--output", "-o", help="Write the cosigned checkpoint here.")] = None,
) -> None:
    """Cosign a log's checkpoint after proving it extends the last one this witness saw (C2SP tlog-cosignature).

    A witness refuses a checkpoint of a smaller tree, a different root for the same size, or one
    that a consistency proof does not join to what it cosigned before: so an operator cannot
    show two histories of its log to two auditors once both check the witness's cosignature.
    """
    import base64

    from wattlens.ledger import merkle
    from wattlens.ledger.note import NoteError, read_checkpoint, read_note_file
    from wattlens.ledger.witness import Witness, request_body

    verifier = _verifier(log_key)
    url = checkpoint if checkpoint.startswith(("http://", "https://")) else None
    note = _fetch(checkpoint, api_key_env) if url else read_note_file(checkpoint)
    try:
        new = read_checkpoint(note, verifier)
    except NoteError as e:
        err.print(f"[bold red]not cosigned[/]: the checkpoint does not verify with the log's key: {escape(str(e))}")
        raise typer.Exit(1) from e
    w = Witness(_signer(key), {new.origin: verifier}, Path(state))
    seen = w.latest(new.origin)
    old = read_checkpoint(seen, verifier) if seen else None
    how, hashes = "first checkpoint seen of this log (trusted on first use)", list[bytes]()
    if old is not None and new.size < old.size:
        err.print(f"[bold red]not cosigned[/]: the log shrank from {old.size} to {new.size} records (rollback)")
        raise typer.Exit(1)
    if old is not None and new.size == old.size:
        how = "the same tree as last time"
    elif old is not None:
        if url:
            base = url.rsplit("/checkpoint", 1)[0]
            lines = _fetch(f"{base}/consistency?old={old.size}&new={new.size}", api_key_env)
        elif proof:
            lines = read_note_file(proof)
        elif ledger:
            from wattlens.ledger import open_ledger

            led = open_ledger(ledger, create=False)
            try:
                led.tree_state()
                path = merkle.consistency_path(old.size, new.size, led.node)
            finally:
                led.close()
            lines = "".join(base64.b64encode(h).decode() + "\n" for h in path)
        else:
            raise typer.BadParameter("with a checkpoint file, give --ledger or --proof to prove consistency")
        try:
            hashes = [base64.b64decode(x, validate=True) for x in lines.split()]
        except ValueError as e:
            err.print(f"[bold red]not cosigned[/]: the consistency proof is not base64 hashes: {escape(str(e))}")
            raise typer.Exit(1) from e
        how = f"extends the {old.size} records cosigned before ({len(hashes)}-hash consistency proof)"
    answer = w.add_checkpoint(request_body(old.size if old else 0, hashes, note))
    if answer.status != 200:
        why = {
            409: f"two different logs of {new.size} records (a fork)",
            422: f"the log of {new.size} records does not extend the one of {old.size if old else 0} "
            "this witness cosigned (rewritten, rolled back or forked)",
        }.get(answer.status, answer.body.strip())
        err.print(f"[bold red]not cosigned[/]: {escape(why)}", highlight=False)
        raise typer.Exit(1)
    cosigned = w.latest(new.origin) or ""
    if output:
        _write(cosigned, output, "cosigned checkpoint")
    else:
        out.file.write(cosigned)
    err.print(f"cosigned {new.origin} at {new.size} records: {how}", highlight=False)


@log_app.command("witness-serve")
def log_witness_serve(
    key: Annotated[str, typer.Option(help="This witness's key file (wattlens keys signing new --witness).")],
    state: Annotated[str, typer.Option(help="Directory where the witness keeps the last checkpoint it cosigned, per log.")],
    log_key: Annotated[
        list[str], typer.Option(help="A log's verifier key (NAME+ID+BASE64 or a file; its name is its origin; repeatable).")
    ],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free port, printed).")] = 8788,
) -> None:
    """Run a witness as an HTTP service: POST /add-checkpoint of c2sp.org/tlog-witness.

    Gateways with `[log] witnesses` send each new checkpoint with a consistency proof; the witness
    cosigns only a checkpoint that extends the last one it cosigned of that log (409, 422
    otherwise) and keeps that one in --state before it answers.
    """
    from wattlens.ledger.witness import Witness, serve

    logs = {v.name: v for v in (_verifier(k) for k in log_key)}
    w = Witness(_signer(key), logs, Path(state))
    serve(w, host, port, ready=lambda url: err.print(f"witness {w.key.name} listening on {url} for {', '.join(logs)}"))


def recompute_problems(entries: Iterable[Entry], factors: FactorSet) -> list[Problem]:
    """verify --recompute: each receipt against its recorded inputs; says what could not be recomputed."""
    from wattlens.ledger.chain import Problem
    from wattlens.ledger.recompute import recompute

    r = recompute(((e.seq, e.body) for e in entries), factors)
    skipped = [f"{r.measured} from the meter (energy read in a window: the window and carbon checked, not the counters)"]
    skipped += [f"{n} with factor tables {v} (this wattlens ships {factors.version})" for v, n in r.other_factors.items()]
    if r.no_receipt:
        skipped.append(f"{r.no_receipt} without a receipt")
    err.print(
        f"recomputed {r.checked} estimated receipts, checked the carbon of {r.derived}; "
        f"not recomputed: {'; '.join(skipped)}",
        highlight=False,
    )
    return [Problem(d.seq, "recomputed", f"record {d.record_id}: {d.detail}") for d in r.differences]
