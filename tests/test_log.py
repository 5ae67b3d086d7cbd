"""The Merkle log: RFC 9162 arithmetic (against pymerkle and known vectors), C2SP notes, and every attack."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_ledger import postgres, rec  # noqa: F401 - the PostgreSQL server fixture

from wattlens.cli import main
from wattlens.errors import WattlensError
from wattlens.ledger import jcs, merkle, open_ledger
from wattlens.ledger.chain import link
from wattlens.ledger.note import (
    Checkpoint,
    NoteError,
    Proof,
    Signer,
    Verifier,
    open_note,
    read_checkpoint,
    sign_checkpoint,
    sign_note,
)
from wattlens.ledger.tree import TreeState, check_extends, check_nodes, check_tree, leaf_of

H = merkle.leaf_hash


def leaves(n: int) -> list[bytes]:
    return [H(f"entry {i}".encode()) for i in range(n)]


# -- the arithmetic --------------------------------------------------------------------------------
def test_small_trees_by_hand() -> None:
    a, b, c, d, e = (H(x) for x in (b"a", b"b", b"c", b"d", b"e"))
    n = merkle.node_hash
    assert merkle.root([]) == hashlib.sha256(b"").digest()
    assert merkle.root([a]) == a == hashlib.sha256(b"\x00a").digest()
    assert merkle.root([a, b]) == hashlib.sha256(b"\x01" + a + b).digest()
    assert merkle.root([a, b, c]) == n(n(a, b), c)
    assert merkle.root([a, b, c, d, e]) == n(n(n(a, b), n(c, d)), e)
    # the audit path of c in a tree of 5: d, then ab, then e (RFC 9162 2.1.3)
    assert merkle.inclusion_proof(2, [a, b, c, d, e]) == [d, n(a, b), e]
    assert merkle.inclusion_proof(4, [a, b, c, d, e]) == [n(n(a, b), n(c, d))]
    # consistency of 3 in 5: c, d, ab, e (RFC 9162 2.1.4.1's example shape)
    assert merkle.consistency_proof(3, [a, b, c, d, e]) == [c, d, n(a, b), e]
    assert merkle.consistency_proof(4, [a, b, c, d, e]) == [e]


def test_certificate_transparency_vectors() -> None:
    """The roots of the RFC 6962 reference test tree (certificate-transparency merkle_tree_test)."""
    data = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
    roots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
    ls = [H(bytes.fromhex(x)) for x in data]
    assert [merkle.root(ls[: i + 1]).hex() for i in range(8)] == roots


def test_against_pymerkle_for_many_sizes() -> None:
    from pymerkle import InmemoryTree

    tree = InmemoryTree(algorithm="sha256")
    entries = [f"record {i}".encode() for i in range(140)]
    ls = [H(e) for e in entries]
    stack: list[bytes] = []
    for size, e in enumerate(entries, start=1):
        tree.append_entry(e)
        merkle.compact_append(stack, size - 1, ls[size - 1])
        want = tree.get_root(size) if hasattr(tree, "get_root") else tree.get_state(size)
        assert merkle.root(ls[:size]) == want == merkle.compact_root(stack), size
        if size in (1, 2, 3, 5, 8, 13, 64, 100, 140):
            for i in range(size):
                theirs = tree.prove_inclusion(i + 1, size).serialize()["path"]
                mine = merkle.inclusion_proof(i, ls[:size])
                assert [bytes.fromhex(h) for h in theirs[1:]] == mine, (i, size)  # theirs starts with the leaf


def test_proofs_verify_and_reject_tampering() -> None:
    ls = leaves(37)
    for n in range(1, 38):
        head = merkle.root(ls[:n])
        for i in range(n):
            path = merkle.inclusion_proof(i, ls[:n])
            assert merkle.verify_inclusion(i, n, ls[i], path, head)
            assert not merkle.verify_inclusion(i, n, H(b"forged"), path, head)
            if path:
                bad = [*path[:-1], H(b"x")]
                assert not merkle.verify_inclusion(i, n, ls[i], bad, head)
                assert not merkle.verify_inclusion(i, n, ls[i], path[:-1], head)
            if n > 1:
                assert not merkle.verify_inclusion((i + 1) % n, n, ls[i], path, head) or ls[i] == ls[(i + 1) % n]
        for m in range(0, n + 1):
            proof = merkle.consistency_proof(m, ls[:n])
            old = merkle.root(ls[:m])
            assert merkle.verify_consistency(m, n, old, head, proof), (m, n)
            if 0 < m < n:
                assert not merkle.verify_consistency(m, n, H(b"other"), head, proof)
                assert not merkle.verify_consistency(m, n, old, H(b"other"), proof)
                assert not merkle.verify_consistency(m, n, old, head, proof[:-1])
    assert not merkle.verify_consistency(5, 4, merkle.root(ls[:5]), merkle.root(ls[:4]), [])


def test_canonical_json_is_rfc8785() -> None:
    """The fast encoder agrees byte for byte with the rfc8785 package, on records and random floats."""
    import random
    import struct

    import rfc8785

    rnd = random.Random(7)
    floats: list[float] = []
    while len(floats) < 30_000:
        x = struct.unpack("<d", rnd.randbytes(8))[0] if len(floats) % 2 else rnd.uniform(-1, 1) * 10 ** rnd.randint(-25, 25)
        if x == x and abs(x) != float("inf"):
            floats.append(x)
    for i in range(0, len(floats), 500):
        assert jcs.entry_bytes(floats[i : i + 500]) == rfc8785.dumps(floats[i : i + 500])
    odd = rec(1) | {
        "tags": {"\u00e9": 'a\n\x01"\\\u2028', "\ue000": 1, "\U0001f600": 2, "z": [True, None, -0.0, 1e21, 1e-7, 100.0]},
        "tokens": {"input": 2**53 - 1},
    }
    assert jcs.entry_bytes(odd) == rfc8785.dumps(odd)
    assert jcs.entry_bytes({1: (1, 2)}) == b'{"1":[1,2]}'  # as json would store it
    for bad in ({"a": float("nan")}, {"a": 2**53}):
        with pytest.raises(ValueError):
            jcs.entry_bytes(bad)


def test_canonical_json_fast_path_is_rfc8785_on_random_values() -> None:
    """orjson's output, with its numbers rewritten outside strings, equals rfc8785's on any JSON value:
    strings holding quotes, backslashes, digits and `1.0,` or `e-5`; floats of every size."""
    import rfc8785
    from hypothesis import given, settings
    from hypothesis import strategies as st

    text = st.text(st.sampled_from(list('ab"\\:,.0123456789e-+]}{ \n\u00e9\ue000\U0001f600')), max_size=12)
    leaf = (
        st.none()
        | st.booleans()
        | st.integers(-(2**53) + 1, 2**53 - 1)
        | st.floats(allow_nan=False, allow_infinity=False)
        | text
    )
    values = st.recursive(
        leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4), max_leaves=20
    )

    @settings(max_examples=600, deadline=None)
    @given(values)
    def agree(v: object) -> None:
        assert jcs.entry_bytes(v) == rfc8785.dumps(v)

    agree()
    assert jcs._orjson_form({"a": [1.0, 1e-7, 1e21], "s": "1.0, e-5"}) == '{"a":[1,1e-7,1e+21],"s":"1.0, e-5"}'
    # each pattern the scan folds together ("}" and "]" read ",", "+" reads "-"), inside and outside strings
    folded = {"a": [1e16, 2.0], "b": {"c": 3.0}, "d": 1e-6, "s": "x+1e+16 2.0] 3.0} e-6", "t": "+"}
    assert jcs._orjson_form(folded) == rfc8785.dumps(folded).decode()
    slashed = {**folded, "u": "\\"}  # an escaped backslash: the fast form declines, the Python encoder answers
    assert jcs._orjson_form(slashed) is None
    assert jcs.canonical_text(slashed) == rfc8785.dumps(slashed).decode()
    for top in (1e16, 5.0, 1e-6, -2.0, [7.0]):
        assert jcs._orjson_form(top) == rfc8785.dumps(top).decode()
    # orjson writes NaN and infinity as null: however many nulls the record already holds, at its top
    # level, nested, or in its text, such a value is refused, never stored as null
    for bad in (
        {"a": None, "b": math.nan},
        {"a": None, "b": {"c": math.inf}},
        {"a": None, "b": [None, -math.inf]},
        {"a": "null", "b": math.nan, "c": None},
        [None, math.nan],
    ):
        with pytest.raises(ValueError):
            jcs.canonical_text(bad)
    assert jcs.canonical_text({"a": None, "b": {"c": None}, "d": "null"}) == '{"a":null,"b":{"c":null},"d":"null"}'


# -- C2SP notes --------------------------------------------------------------------------------------
GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_SIG = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="


def test_signed_note_matches_the_go_reference_vector() -> None:
    signer = Signer.parse(GO_SIGNER)
    assert signer.encode() == GO_SIGNER and signer.verifier.encode() == GO_VERIFIER
    note = sign_note(GO_TEXT, signer)
    assert note == GO_TEXT + "\n\u2014 PeterNeumann " + GO_SIG + "\n"
    assert open_note(note, Verifier.parse(GO_VERIFIER)) == GO_TEXT
    with pytest.raises(NoteError):
        open_note(note.replace("problem,", "problem;"), Verifier.parse(GO_VERIFIER))
    other = Signer.generate("PeterNeumann").verifier
    with pytest.raises(NoteError, match="not signed by"):
        open_note(note, other)  # same name, another key: ignored, so no known signature


def test_checkpoint_text_layout() -> None:
    signer = Signer.parse(GO_SIGNER.replace("PeterNeumann", "PeterNeumann"))
    head = merkle.root(leaves(3))
    note = sign_checkpoint(Checkpoint("PeterNeumann", 3, head), signer)
    b64 = base64.b64encode(head).decode()
    m = re.fullmatch(rf"PeterNeumann\n3\n{re.escape(b64)}\n\n\u2014 PeterNeumann ([A-Za-z0-9+/=]+)\n", note)
    assert m, note
    sig = base64.b64decode(m.group(1))
    assert len(sig) == 68 and sig[:4] == bytes.fromhex("c74f20a3")  # key id || Ed25519 signature
    cp = read_checkpoint(note, Verifier.parse(GO_VERIFIER))
    assert (cp.origin, cp.size, cp.root) == ("PeterNeumann", 3, head)
    # the tlog-checkpoint specification's example parses (its signature is not checked here)
    example = (
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
        "\u2014 example.com/behind-the-sofa "
        "Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    )
    cp = read_checkpoint(example)
    assert (cp.origin, cp.size) == ("example.com/behind-the-sofa", 20852163)
    for bad in ("o\n012\n" + b64 + "\n", "o\n3\n" + b64 + "\n\n", "o\n3\nAAAA\n"):
        with pytest.raises(NoteError):
            Checkpoint.parse_text(bad)


def test_tlog_proof_text_layout() -> None:
    ls = leaves(5)
    signer = Signer.generate("wattlens.example/org-ledger")
    note = sign_checkpoint(Checkpoint("wattlens.example/org-ledger", 5, merkle.root(ls)), signer)
    p = Proof(2, tuple(merkle.inclusion_proof(2, ls)), note)
    text = p.encode()
    lines = text.split("\n")
    assert lines[0] == "c2sp.org/tlog-proof@v1" and lines[1] == "index 2" and lines[5] == ""
    assert text.endswith(note) and Proof.parse(text) == p
    assert Proof.parse(Proof(2, p.path, note, b"x").encode()).extra == b"x"


# -- the ledger and the commands ---------------------------------------------------------------------
def wl(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    o, e = capsys.readouterr()
    return code, " ".join(o.split()), " ".join(e.split())  # as one line: rich wraps at the terminal width


@pytest.fixture()
def setup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    db = tmp_path / "l.db"
    led = open_ledger(db)
    led.append([rec(i) for i in range(10)])
    led.close()
    key = tmp_path / "log.key"
    code, pub, _ = wl(capsys, "keys", "signing", "new", "--name", "wattlens.example/org-ledger", "-o", str(key))
    assert code == 0 and pub.startswith("wattlens.example/org-ledger+")
    assert key.stat().st_mode & 0o777 == 0o600 and key.read_text().startswith("PRIVATE+KEY+wattlens.example/org-ledger+")
    cp = tmp_path / "cp.txt"
    assert wl(capsys, "log", "checkpoint", "--ledger", str(db), "--key", str(key), "-o", str(cp))[0] == 0
    return {"db": db, "key": key, "pub": pub, "cp": cp, "dir": tmp_path}


def check(capsys: pytest.CaptureFixture[str], s: dict[str, Any]) -> tuple[int, str]:
    code, o, e = wl(capsys, "verify", "--ledger", str(s["db"]), "--checkpoint", str(s["cp"]), "--key", s["pub"])
    return code, o + e


def sql(p: Path, *statements: tuple[str, tuple[Any, ...]]) -> None:
    con = sqlite3.connect(p)
    for q, args in statements:
        con.execute(q, args)
    con.commit()
    con.close()


def forge_tail(p: Path, body: dict[str, Any], replace_last: bool = False) -> None:
    """What someone who can write the database and knows the formats does: a record with a correct
    chain link and leaf, and the stored tree head recomputed to match."""
    con = sqlite3.connect(p)
    if replace_last:
        con.execute("DELETE FROM records WHERE seq = (SELECT MAX(seq) FROM records)")
    seq, head = con.execute("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1").fetchone()
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    con.execute(
        "INSERT INTO records (seq, ts, body, prev_hash, hash, id, leaf) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (seq + 1, body["ts"], text, head, link(head, seq + 1, text), body["id"], leaf_of(text).hex()),
    )
    ls = [bytes.fromhex(r[0]) for r in con.execute("SELECT leaf FROM records ORDER BY seq")]
    stack = merkle.compact_range(ls)
    con.execute("UPDATE log_state SET size = ?, seq = ?, range = ?", (len(ls), seq + 1, ",".join(h.hex() for h in stack)))
    con.execute("DELETE FROM log_nodes")  # and the proof nodes, as verify checks them too
    con.executemany("INSERT INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)", TreeState(0, 0, []).extend(ls, seq + 1))
    con.commit()
    con.close()


def rewrite(p: Path, bodies: list[dict[str, Any]]) -> None:
    """The whole log rebuilt from scratch with wattlens's own code: chain and tree both intact."""
    p.unlink()
    led = open_ledger(p)
    led.append(bodies)
    led.close()


def test_intact_log_checkpoint_proof_and_offline_receipt(setup: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    s = setup
    code, text = check(capsys, s)
    assert code == 0 and "extends the checkpoint (10 records)" in text
    led = open_ledger(s["db"])
    led.append([rec(i) for i in range(10, 15)])
    led.close()
    code, text = check(capsys, s)
    assert code == 0 and "log (15 records) extends" in text
    proof, record = s["dir"] / "p.tlog-proof", s["dir"] / "r.json"
    args = ["log", "proof", "r12", "--ledger", str(s["db"]), "--key", str(s["key"]), "-o", str(proof)]
    assert wl(capsys, *args, "--record", str(record))[0] == 0
    assert proof.read_text().startswith("c2sp.org/tlog-proof@v1\nindex 12\n")
    code, o, _e = wl(capsys, "verify-receipt", str(record), "--proof", str(proof), "--key", s["pub"])
    assert code == 0 and "entry 12 of wattlens.example/org-ledger (size 15)" in o
    # a receipt whose figure was shrunk does not verify; nor does one checked with another key
    body = json.loads(record.read_text())
    body["footprint"]["energy_wh"]["mid"] /= 10
    record.write_text(json.dumps(body))
    assert wl(capsys, "verify-receipt", str(record), "--proof", str(proof), "--key", s["pub"])[0] == 1
    other = Signer.generate("wattlens.example/org-ledger").verifier.encode()
    rec_ok = s["dir"] / "ok.json"
    rec_ok.write_text(json.dumps(rec(3)))
    assert wl(capsys, "log", "proof", "r3", "--ledger", str(s["db"]), "--checkpoint", str(s["cp"]), "-o", str(proof))[0] == 0
    assert wl(capsys, "verify-receipt", str(rec_ok), "--proof", str(proof), "--key", s["pub"])[0] == 0
    assert wl(capsys, "verify-receipt", str(rec_ok), "--proof", str(proof), "--key", other)[0] == 1
    # a record appended after the checkpoint is not in it
    assert wl(capsys, "log", "proof", "r12", "--ledger", str(s["db"]), "--checkpoint", str(s["cp"]))[0] == 1


def test_truncation_is_detected(setup: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    sql(setup["db"], ("DELETE FROM records WHERE seq = 10", ()), ("DELETE FROM log_state", ()))
    code, text = check(capsys, setup)
    assert code == 1 and "records were removed" in text
    sql(setup["db"], ("DELETE FROM records", ()))
    code, text = check(capsys, setup)
    assert code == 1 and "holds 0 records but the checkpoint commits to 10" in text


def test_rollback_and_fork_are_detected(setup: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    s = setup
    old = s["dir"] / "old.db"
    led = open_ledger(old)
    led.append([rec(i) for i in range(6)])
    led.close()
    shutil.copy(old, s["db"])  # the file rolled back to an older copy
    code, text = check(capsys, s)
    assert code == 1 and "holds 6 records but the checkpoint commits to 10" in text
    led = open_ledger(s["db"])  # the gateway carries on: a fork, longer than the checkpoint
    led.append([rec(i) for i in range(100, 110)])
    led.close()
    code, text = check(capsys, s)
    assert code == 1 and "rewritten, rolled back or forked" in text
    assert wl(capsys, "verify", "--ledger", str(s["db"]))[0] == 0  # chain and tree alone cannot see it


def test_whole_log_rewrite_is_detected(setup: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    bodies = [rec(i) for i in range(10)]
    bodies[3]["footprint"]["energy_wh"]["mid"] /= 10
    rewrite(setup["db"], bodies)
    assert wl(capsys, "verify", "--ledger", str(setup["db"]))[0] == 0
    code, text = check(capsys, setup)
    assert code == 1 and "the first 10 records are not the ones the checkpoint commits to" in text


def test_forged_append_after_a_rewritten_checkpointed_log(setup: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    bodies = [rec(i) for i in range(10)]
    bodies[9]["team"] = "someone-else"
    rewrite(setup["db"], bodies)
    forged = rec(50) | {"id": "forged"}
    forge_tail(setup["db"], forged)
    assert wl(capsys, "verify", "--ledger", str(setup["db"]))[0] == 0
    code, text = check(capsys, setup)
    assert code == 1 and "rewritten, rolled back or forked" in text


def test_edited_last_record_with_recomputed_hashes_is_detected(
    setup: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    body = rec(9)
    body["footprint"]["energy_wh"]["mid"] /= 10
    forge_tail(setup["db"], body, replace_last=True)  # chain hash, leaf and tree head all recomputed
    assert wl(capsys, "verify", "--ledger", str(setup["db"]))[0] == 0
    code, text = check(capsys, setup)
    assert code == 1 and "not the ones the checkpoint commits to" in text


def test_edits_without_recomputing_are_named(setup: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    db = setup["db"]
    sql(db, ("UPDATE records SET ts = '2027-01-01T00:00:00+00:00' WHERE seq = 4", ()))
    code, _o, e = wl(capsys, "verify", "--ledger", str(db))
    assert code == 1 and "record 4: changed" in e and "is not the record's time" in e
    sql(db, ("UPDATE records SET leaf = ? WHERE seq = 2", ("00" * 32,)))
    code, _o, e = wl(capsys, "verify", "--ledger", str(db))
    assert "record 2: changed" in e and "leaf hash" in e


def test_replayed_record_is_named(setup: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    forge_tail(setup["db"], rec(4))  # the same record again, correctly chained and logged
    code, _o, e = wl(capsys, "verify", "--ledger", str(setup["db"]))
    assert code == 1 and "record 11: replayed" in e and "already stored as number 5" in e
    assert check(capsys, setup)[0] == 1


def test_checkpoint_signature_and_key_are_checked(setup: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    s = setup
    text = s["cp"].read_text()
    s["cp"].write_text(text.replace("\n10\n", "\n9\n", 1))  # a checkpoint edited to excuse a truncation
    code, out = check(capsys, s)
    assert code == 1 and "does not verify" in out
    s["cp"].write_text(text)
    code, _o, e = wl(capsys, "verify", "--ledger", str(s["db"]), "--checkpoint", str(s["cp"]))
    assert code == 0 and "not checked" in e
    # a note re-saved with CRLF endings is a changed file: refused, not quietly read as LF
    s["cp"].write_bytes(text.replace("\n", "\r\n").encode())
    code, out = check(capsys, s)
    assert code == 1 and "CR line endings" in out


def test_a_ledger_from_before_the_log_is_logged_on_first_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "old.db"
    con = sqlite3.connect(db)
    con.executescript(
        "CREATE TABLE records (seq INTEGER PRIMARY KEY, ts TEXT NOT NULL, body TEXT NOT NULL,"
        " prev_hash TEXT NOT NULL, hash TEXT NOT NULL)"
    )
    from wattlens.ledger.chain import link_batch

    rows, _, _ = link_batch([rec(i) for i in range(7)], 0, "0" * 64)
    con.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?)", rows)
    con.commit()
    con.close()
    assert wl(capsys, "verify", "--ledger", str(db))[0] == 0  # not yet logged: still verifies
    led = open_ledger(db)
    assert led.tree_state().size == 7
    led.append([rec(7)])
    problems, ls = check_tree(list(led.entries()), led.stored_state())
    assert problems == [] and len(ls) == 8 and led.tree_state().root == merkle.root(ls)
    led.close()
    assert wl(capsys, "verify", "--ledger", str(db))[0] == 0


def test_records_without_an_rfc8785_form_are_set_aside(tmp_path: Path) -> None:
    from wattlens.ledger import LedgerWriter

    w = LedgerWriter(open_ledger(tmp_path / "l.db"), flush_s=0.01)
    w.submit(rec(1))
    w.submit(rec(2) | {"tokens": {"input": 2**60}})  # past JSON's safe integers
    w.submit(rec(3))
    w.close()
    led = open_ledger(tmp_path / "l.db")
    assert [r["id"] for r in led.records()] == ["r1", "r3"] and w.dead == 1
    led.close()


def test_commands_run_as_a_program(setup: dict[str, Any]) -> None:
    cmd = [sys.executable, "-m", "wattlens.cli", "verify", "--ledger", str(setup["db"]), "--checkpoint", str(setup["cp"])]
    r = subprocess.run([*cmd, "--key", setup["pub"]], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "consistent with the checkpoint" in r.stdout


def test_postgres_log_detects_truncation_and_rewrite(postgres: str) -> None:  # noqa: F811
    import psycopg

    with psycopg.connect(postgres, autocommit=True) as con:
        con.execute(
            "DROP TABLE IF EXISTS wattlens_records, wattlens_log_state, wattlens_log_nodes, wattlens_log_checkpoints"
        )
    a, b = open_ledger(postgres), open_ledger(postgres)  # two replicas, one log
    for i in range(0, 20, 4):
        a.append([rec(i), rec(i + 1)])
        b.append([rec(i + 2), rec(i + 3), rec(i)])  # a replayed id is skipped
    problems, ls = check_tree(list(a.entries()), a.stored_state())
    assert problems == [] and len(ls) == 20 and a.tree_state().root == merkle.root(ls)
    assert check_nodes(ls, a.stored_state(), a.stored_nodes()) == [] and len(list(b.stored_nodes())) >= 15
    assert b.leaves(7) == ls[7:] and a.leaves() == ls  # what a notary re-derives the tree head from
    # proofs from the nodes both replicas stored, and checkpoints kept in the database
    assert [merkle.inclusion_path(i, 20, b.node) for i in range(20)] == [merkle.inclusion_proof(i, ls) for i in range(20)]
    assert [merkle.consistency_path(m, 20, a.node) for m in range(21)] == [
        merkle.consistency_proof(m, ls) for m in range(21)
    ]
    from wattlens.gateway.notary import Notary, RollbackError

    signer = Signer.generate("o")
    notary = Notary(a, signer, Path(a.spill_path).with_name(f"pg-last-{id(a)}.txt"))
    assert read_checkpoint(notary.sign(), signer.verifier).size == 20 == read_checkpoint(b.latest_checkpoint() or "").size
    cp = Checkpoint("o", len(ls), merkle.root(ls))
    assert check_extends(ls, cp)[0]
    b.append([rec(99)])
    assert check_extends(check_tree(list(a.entries()), a.stored_state())[1], cp)[0]
    with psycopg.connect(postgres, autocommit=True) as con:
        con.execute("DELETE FROM wattlens_records WHERE seq >= 20")
    ok, why = check_extends(check_tree(list(a.entries()), None)[1], cp)
    assert not ok and "records were removed" in why
    with pytest.raises(RollbackError):  # the gateway will not sign the truncated log
        notary.sign()
    notary.last_path.unlink()
    with psycopg.connect(postgres, autocommit=True) as con:
        con.execute("DELETE FROM wattlens_records")
        con.execute("DELETE FROM wattlens_log_state")
    bodies = [rec(i) for i in range(21)]
    bodies[0]["team"] = "x"
    a.append(bodies)  # rewritten whole: chain and tree intact, the checkpoint is not
    problems, ls = check_tree(list(a.entries()), a.stored_state())
    assert problems == [] and not check_extends(ls, cp)[0]
    # reads stream on a connection of their own: the ledger appends while a verify is half-way through
    it = a.entries()
    first = next(it)
    a.append([rec(500)])
    assert first.seq == 1 and len([first, *it]) in (21, 22) and a.count() == 22
    # rows as stored, ts and id read in Python; a ts column edit and a body that is no longer JSON
    # are named, and the records after the broken one are still checked
    with psycopg.connect(postgres, autocommit=True) as con:
        con.execute("UPDATE wattlens_records SET ts = '2020-01-01T00:00:00+00:00' WHERE seq = 3")
        con.execute("UPDATE wattlens_records SET body = 'not json' WHERE seq = 5")
        con.execute("UPDATE wattlens_records SET ts = '2020-01-01T00:00:00+00:00' WHERE seq = 7")
    entries = list(a.entries())
    assert [e.seq for e in entries] == list(range(1, 23))
    problems, _ = check_tree(entries, None)
    assert [(p.seq, p.kind) for p in problems] == [(3, "changed"), (5, "changed"), (7, "changed")]
    assert "not valid JSON" in problems[1].detail and "ts column" in problems[2].detail
    a.close()
    b.close()


# -- stored nodes: proofs in O(log n) reads ------------------------------------------------------------
def test_proofs_from_stored_nodes_equal_the_leaf_proofs_and_pymerkle() -> None:
    from pymerkle import InmemoryTree

    for n in (1, 2, 3, 7, 8, 9, 31, 64, 100):
        ls = leaves(n)
        nodes: list[merkle.Node] = []
        stack: list[bytes] = []
        for i, lf in enumerate(ls):
            merkle.compact_append(stack, i, lf, nodes)
        stored = {(0, i): lf for i, lf in enumerate(ls)} | {(lv, i): h for lv, i, h in nodes}
        assert len(nodes) == n - bin(n).count("1")  # a tree of n leaves has n - popcount(n) complete interior nodes
        for lv, i, h in nodes:  # each is the head of its 2**lv leaves
            assert h == merkle.root(ls[i << lv : (i + 1) << lv])
        reads: list[tuple[int, int]] = []

        def node(lv: int, i: int, stored: dict[tuple[int, int], bytes] = stored, reads: list[Any] = reads) -> bytes:
            reads.append((lv, i))
            return stored[(lv, i)]

        assert merkle.range_root(0, n, node) == merkle.root(ls)
        for i in range(n):
            reads.clear()
            assert merkle.inclusion_path(i, n, node) == merkle.inclusion_proof(i, ls)
            assert len(reads) <= 2 * n.bit_length()  # O(log n), never every leaf
        for m in range(n + 1):
            reads.clear()
            assert merkle.consistency_path(m, n, node) == merkle.consistency_proof(m, ls)
            assert len(reads) <= 2 * n.bit_length() + 1
    tree = InmemoryTree(algorithm="sha256")
    entries = [f"record {i}".encode() for i in range(45)]
    for e in entries:
        tree.append_entry(e)
    ls = [H(e) for e in entries]
    nodes = []
    stack = []
    for i, lf in enumerate(ls):
        merkle.compact_append(stack, i, lf, nodes)
    stored = {(0, i): lf for i, lf in enumerate(ls)} | {(lv, i): h for lv, i, h in nodes}
    for i in range(45):
        theirs = tree.prove_inclusion(i + 1, 45).serialize()["path"]
        assert [bytes.fromhex(h) for h in theirs[1:]] == merkle.inclusion_path(i, 45, lambda lv, j: stored[(lv, j)])


def test_ledger_stores_nodes_in_the_append_and_proves_from_them(tmp_path: Path) -> None:
    led = open_ledger(tmp_path / "l.db")
    for start in range(0, 23, 5):  # batches of 5 that cut across subtrees
        led.append([rec(i) for i in range(start, min(start + 5, 23))])
    ls = led.leaves()
    assert len(ls) == 23 and led.tree_state().root == merkle.root(ls)
    for i in range(23):
        assert merkle.inclusion_path(i, 23, led.node) == merkle.inclusion_proof(i, ls)
    for m in range(24):
        assert merkle.consistency_path(m, 23, led.node) == merkle.consistency_proof(m, ls)
    count = sqlite3.connect(tmp_path / "l.db").execute("SELECT COUNT(*) FROM log_nodes").fetchone()[0]
    assert count == 23 - bin(23).count("1")
    with pytest.raises(WattlensError, match="log migrate"):
        led.node(1, 50)
    led.close()


def test_log_migrate_rebuilds_an_older_ledgers_nodes(setup: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    s = setup
    # a ledger written before nodes were stored: no node rows, no `nodes` column in log_state
    sql(s["db"], ("DROP TABLE log_nodes", ()), ("ALTER TABLE log_state DROP COLUMN nodes", ()))
    code, o, _ = wl(capsys, "log", "migrate", "--ledger", str(s["db"]))
    assert code == 0 and "10 records, tree size 10" in o and "was a log of 10" in o
    led = open_ledger(s["db"])
    ls = led.leaves()
    assert [merkle.inclusion_path(i, 10, led.node) for i in range(10)] == [merkle.inclusion_proof(i, ls) for i in range(10)]
    led.close()
    # and a proof works at once on an older ledger, without the command (migrated at first use)
    sql(s["db"], ("DELETE FROM log_nodes", ()), ("UPDATE log_state SET nodes = 0", ()))
    proof, record = s["dir"] / "p", s["dir"] / "r.json"
    args = ["log", "proof", "r4", "--ledger", str(s["db"]), "--checkpoint", str(s["cp"]), "-o", str(proof)]
    assert wl(capsys, *args, "--record", str(record))[0] == 0
    assert wl(capsys, "verify-receipt", str(record), "--proof", str(proof), "--key", s["pub"])[0] == 0
    assert wl(capsys, "log", "migrate", "--ledger", str(s["dir"] / "none.db"))[0] != 0


# -- the gateway signs and serves the log ---------------------------------------------------------------
def test_notary_signs_and_refuses_after_rollback_or_fork(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry

    from wattlens.gateway.notary import Notary, RollbackError

    db, signer = tmp_path / "l.db", Signer.generate("wattlens.example/org-ledger")
    led = open_ledger(db)
    led.append([rec(i) for i in range(10)])
    reg = CollectorRegistry()
    notary = Notary(led, signer, tmp_path / "outside" / "last.txt", reg)
    first = read_checkpoint(notary.sign(), signer.verifier)
    assert (first.size, first.root) == (10, merkle.root(led.leaves()))
    assert notary.sign() == led.latest_checkpoint()  # unchanged log: the same note, not a second one
    led.close()
    shutil.copy(db, tmp_path / "old.db")  # a backup taken at 10 records
    led = open_ledger(db)
    led.append([rec(i) for i in range(10, 15)])
    notary.ledger = led
    assert read_checkpoint(notary.sign()).size == 15
    led.close()
    want = Checkpoint(first.origin, 15, merkle.root([leaf_of(json.dumps(rec(i))) for i in range(15)]))
    assert (tmp_path / "outside" / "last.txt").read_text() == sign_checkpoint(want, signer)  # kept outside the database
    for attack in ("rollback", "fork"):
        shutil.copy(tmp_path / "old.db", db)  # the database restored from the backup: its checkpoint table too
        led = open_ledger(db)
        if attack == "fork":  # and the gateway went on appending other records: larger than the last checkpoint
            led.append([rec(i) | {"team": "forked"} for i in range(10, 16)])
        notary.ledger = led
        with pytest.raises(RollbackError, match="15" if attack == "rollback" else "not the ones"):
            notary.sign()
        assert notary.try_sign() is None and notary.last_error
        led.close()
    assert reg.get_sample_value("wattlens_log_signing_refusals_total") == 4
    # a new key (rotated): the old key's checkpoints are not its promise; it signs the log as it is
    rotated = Notary(open_ledger(db), Signer.generate("wattlens.example/org-ledger"), tmp_path / "outside" / "last.txt")
    assert read_checkpoint(rotated.sign(), rotated.signer.verifier).size == 16
    rotated.ledger.close()
    assert reg.get_sample_value("wattlens_log_checkpoints_signed_total") == 2
    # the forger's way round those refusals: the stored tree state and nodes rewritten to extend
    # the last checkpoint (its 15 leaves, then the fork's last one), the records left as they are
    con = sqlite3.connect(db)
    fork = [bytes.fromhex(r[0]) for r in con.execute("SELECT leaf FROM records ORDER BY seq")]
    forged = TreeState(0, 0, [])
    nodes = forged.extend([leaf_of(json.dumps(rec(i))) for i in range(15)] + fork[15:], 16)
    con.execute("UPDATE log_state SET size = 16, seq = 16, range = ?", (forged.encode_range(),))
    con.execute("DELETE FROM log_nodes")
    con.executemany("INSERT INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)", nodes)
    con.commit()
    con.close()
    notary.ledger = open_ledger(db)
    assert notary.ledger.tree_state().root == forged.root != merkle.root(fork)  # what the signer is shown
    with pytest.raises(RollbackError, match="leaf hashes"):
        notary.sign()
    notary.ledger.close()


def test_gateway_signs_on_a_timer_and_at_shutdown_and_serves_proofs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import hashlib
    import time

    import httpx
    import upstream as up

    from wattlens.gateway.app import create_app
    from wattlens.gateway.config import ApiKey, GatewayConfig, Upstream
    from wattlens.gateway.logapi import LogSettings
    from wattlens.ledger import LedgerWriter

    signer = Signer.generate("wattlens.example/org-ledger")
    key = tmp_path / "log.key"
    key.write_text(signer.encode() + "\n")
    db = tmp_path / "ledger.db"
    client = "wl-client"
    cfg = GatewayConfig(
        upstreams=(Upstream("oai", "openai", "http://unused/v1", models=("gpt-4o-mini",)),),
        keys=(
            ApiKey("k1", hashlib.sha256(client.encode()).hexdigest(), team="t"),
            ApiKey("ops", hashlib.sha256(b"wl-admin").hexdigest(), admin=True),
        ),
    )
    settings = LogSettings(key, checkpoint_interval_s=0.2, state_file=tmp_path / "last.txt")
    with up.ServerThread(up.app) as upstream:
        cfg = GatewayConfig(
            upstreams=(Upstream("oai", "openai", upstream.url + "/v1", models=("gpt-4o-mini",)),), keys=cfg.keys
        )
        writer = LedgerWriter(open_ledger(db), flush_s=0.01)
        with up.ServerThread(create_app(cfg, writer, log=settings)) as gw:
            h = {"authorization": f"Bearer {client}"}
            assert httpx.get(gw.url + "/wattlens/log/checkpoint").status_code == 401  # the client key, as /v1/models
            ids, entries = [], []
            for i in range(4):
                body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"hi {i}"}]}
                r = httpx.post(gw.url + "/v1/chat/completions", json=body, headers=h, timeout=10)
                assert r.status_code == 200
                ids.append(r.headers["x-wattlens-record"])
                entries.append(r.headers["x-wattlens-entry"])
            # a stream names its record in a header and its entry hash in a comment after the end marker
            body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi 4"}]}
            r = httpx.post(gw.url + "/v1/chat/completions", json=body, headers=h, timeout=10)
            ids.append(r.headers["x-wattlens-record"])
            tail = r.text[r.text.index("data: [DONE]") :].splitlines()
            note = json.loads(
                next(line for line in tail if line.startswith(": wattlens-entry "))[len(": wattlens-entry ") :]
            )
            assert note["record"] == ids[-1]
            entries.append(note["entry_hash"])
            deadline = time.time() + 10
            while time.time() < deadline:
                r = httpx.get(gw.url + "/wattlens/log/checkpoint", headers=h)
                if r.status_code == 200 and read_checkpoint(r.text).size >= 5:
                    break
                time.sleep(0.1)
            assert r.headers["content-type"].startswith("text/plain")
            cp = read_checkpoint(r.text, signer.verifier)
            assert cp.size == 5
            p = httpx.get(gw.url + f"/wattlens/log/proof/{ids[2]}", headers=h)
            assert p.status_code == 200 and p.text.startswith("c2sp.org/tlog-proof@v1\nindex 2\n")
            proof = Proof.parse(p.text)
            assert httpx.get(gw.url + "/wattlens/log/proof/nope", headers=h).status_code == 404
            c = httpx.get(gw.url + "/wattlens/log/consistency?old=2", headers=h)
            path = [base64.b64decode(x) for x in c.text.splitlines()]
            led = open_ledger(db)
            ls = led.leaves()
            assert merkle.verify_consistency(2, 5, merkle.root(ls[:2]), cp.root, path)
            # each answer's entry hash is the leaf its record got in the log, computed from the stored record
            for rid, entry in zip(ids, entries, strict=True):
                stored = led.locate(rid)
                assert stored is not None
                assert entry == merkle.leaf_hash(jcs.entry_bytes(json.loads(stored[1]))).hex()
            swapped = json.loads(led.locate(ids[3])[1])  # type: ignore[index]
            assert httpx.get(gw.url + "/wattlens/log/consistency?old=x", headers=h).status_code == 400
            assert httpx.get(gw.url + "/wattlens/log/consistency?old=9", headers=h).status_code == 400
            record = json.loads(led.locate(ids[2])[1])  # type: ignore[index]
            led.close()
            rfile, pfile = tmp_path / "r.json", tmp_path / "p.tlog-proof"
            rfile.write_text(json.dumps(record))
            pfile.write_text(proof.encode())
            assert wl(capsys, "verify-receipt", str(rfile), "--proof", str(pfile), "--key", signer.verifier.encode())[0] == 0
            ok = wl(
                capsys,
                "verify-receipt",
                str(rfile),
                "--proof",
                str(pfile),
                "--key",
                signer.verifier.encode(),
                "--entry-hash",
                entries[2],
            )
            assert ok[0] == 0, ok
            # the operator hands over another record (here: the next one) with a proof that fits it
            sfile, spfile = tmp_path / "s.json", tmp_path / "s.tlog-proof"
            sfile.write_text(json.dumps(swapped))
            spfile.write_text(httpx.get(gw.url + f"/wattlens/log/proof/{ids[3]}", headers=h).text)
            code, _o, e = wl(
                capsys,
                "verify-receipt",
                str(sfile),
                "--proof",
                str(spfile),
                "--key",
                signer.verifier.encode(),
                "--entry-hash",
                entries[2],
            )
            assert code == 1 and "not the" in e and entries[2] in e, e
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "last"}]}
            assert httpx.post(gw.url + "/v1/chat/completions", json=body, headers=h, timeout=10).status_code == 200
            m = httpx.get(gw.url + "/metrics", headers={"authorization": "Bearer wl-admin"}).text
            assert "wattlens_log_checkpoints_signed_total" in m
    # at shutdown: the last record written, then a checkpoint that covers it, in the ledger and outside it
    led = open_ledger(db)
    last = read_checkpoint(led.latest_checkpoint() or "", signer.verifier)
    assert last.size == led.count() == 6 and last.root == merkle.root(led.leaves())
    led.close()
    assert read_checkpoint((tmp_path / "last.txt").read_text(), signer.verifier) == last
    code, _o, e = wl(capsys, "verify", "--ledger", str(db), "--recompute")  # the gateway's own receipts recompute
    assert code == 0 and "recomputed 6 estimated receipts" in e, e


def test_log_settings_from_file_and_environment(tmp_path: Path) -> None:
    from wattlens.config import load_settings
    from wattlens.errors import ConfigError
    from wattlens.gateway.logapi import log_settings

    f = tmp_path / "wattlens.toml"
    f.write_text('[log]\nkey_file = "keys/log.key"\ncheckpoint_interval_s = 30\n')
    s = log_settings(load_settings(f, env={}), env={})
    assert s.key_file == tmp_path / "keys/log.key" and s.checkpoint_interval_s == 30
    assert s.last_path == tmp_path / "keys/log.key.last-checkpoint"
    env = {"WATTLENS_LOG_CHECKPOINT_INTERVAL_S": "5", "WATTLENS_LOG_KEY_FILE": "/k/other.key"}
    s = log_settings(load_settings(f, env=env), env=env)
    assert s.checkpoint_interval_s == 5 and s.key_file == Path("/k/other.key")
    f.write_text("[log]\nkey_fle = 'x'\n")
    with pytest.raises(ConfigError, match="did you mean 'key_file'"):
        log_settings(load_settings(f, env={}), env={})
    f.write_text("[log]\ncheckpoint_interval_s = -1\n")
    with pytest.raises(ConfigError, match="above 0"):
        log_settings(load_settings(f, env={}), env={})


# -- witnesses ----------------------------------------------------------------------------------------------
def test_cosignature_layout_follows_c2sp_tlog_cosignature() -> None:
    from wattlens.ledger.note import COSIGNATURE_V1, cosign, cosigned_message, key_id, open_cosigned

    # the specification's example cosignature line: key id, then the time 1679315147 as 8 big-endian bytes
    raw = base64.b64decode(
        "jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA=="
    )
    assert len(raw) == 4 + 8 + 64 and int.from_bytes(raw[4:12], "big") == 1679315147
    text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    assert cosigned_message(text, 1679315147) == b"cosignature/v1\ntime 1679315147\n" + text.encode()
    log, w = Signer.generate("example.com/behind-the-sofa"), Signer.generate("witness.example.com/w1", COSIGNATURE_V1)
    assert w.verifier.id == key_id(w.name, w.verifier.public, 0x04) != key_id(w.name, w.verifier.public, 0x01)
    assert base64.b64decode(w.verifier.encode().split("+", 2)[2])[0] == 0x04  # a vkey of type 0x04
    note = cosign(sign_note(text, log), w, 1679315147)
    line = note.splitlines()[-1]
    assert line.startswith("\u2014 witness.example.com/w1 ")
    blob = base64.b64decode(line.split(" ")[2])
    assert blob[:4] == w.verifier.id and blob[4:12] == (1679315147).to_bytes(8, "big")
    assert Verifier(w.name, w.verifier.public).check(b"cosignature/v1\ntime 1679315147\n" + text.encode(), blob[12:])
    assert open_cosigned(note, w.verifier) == (text, 1679315147)
    assert open_note(note, log.verifier) == text  # the log's own signature still checks
    with pytest.raises(NoteError, match="not cosigned"):
        open_cosigned(sign_note(text, log), w.verifier)
    with pytest.raises(NoteError, match="does not verify"):
        open_cosigned(note.replace("20852163", "20852164"), w.verifier)
    with pytest.raises(NoteError):
        cosign(sign_note(text, log), log, 1)  # a log key is not a witness key


def test_witness_cosigns_only_consistent_checkpoints(setup: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    s, d = setup, setup["dir"]
    wkey = d / "w.key"
    code, wpub, _ = wl(capsys, "keys", "signing", "new", "--witness", "--name", "witness.example/w1", "-o", str(wkey))
    assert code == 0 and base64.b64decode(wpub.split("+", 2)[2])[0] == 0x04
    state = d / "witness-state"
    args = ["--key", str(wkey), "--state", str(state), "--log-key", s["pub"]]
    first = d / "cosigned-10.txt"
    code, _o, e = wl(capsys, "log", "witness", "--checkpoint", str(s["cp"]), *args, "-o", str(first))
    assert code == 0 and "trusted on first use" in e
    assert (
        wl(capsys, "verify", "--ledger", str(s["db"]), "--checkpoint", str(first), "--key", s["pub"], "--witness", wpub)[0]
        == 0
    )
    # without the cosignature, --witness refuses
    code, _o, e = wl(
        capsys, "verify", "--ledger", str(s["db"]), "--checkpoint", str(s["cp"]), "--key", s["pub"], "--witness", wpub
    )
    assert code == 1 and "not cosigned by the witness" in e
    # the log grows: the witness proves consistency from the ledger and cosigns
    led = open_ledger(s["db"])
    led.append([rec(i) for i in range(10, 13)])
    led.close()
    cp13 = d / "cp13.txt"
    assert wl(capsys, "log", "checkpoint", "--ledger", str(s["db"]), "--key", str(s["key"]), "-o", str(cp13))[0] == 0
    code, o, e = wl(capsys, "log", "witness", "--checkpoint", str(cp13), "--ledger", str(s["db"]), *args)
    assert code == 0 and "extends the 10 records cosigned before" in e and "witness.example/w1" in o
    # a rollback, then a fork, are refused: the witness remembers what it cosigned
    code, _o, e = wl(capsys, "log", "witness", "--checkpoint", str(s["cp"]), *args)
    assert code == 1 and "shrank from 13 to 10" in e
    rewrite(s["db"], [rec(i) | {"team": "forged"} for i in range(14)])
    cp14 = d / "cp14.txt"
    # `log checkpoint` refuses to sign the rewritten log (it remembers, outside the ledger, what it signed) ...
    code, _o, e = wl(capsys, "log", "checkpoint", "--ledger", str(s["db"]), "--key", str(s["key"]), "-o", str(cp14))
    assert code == 1 and "not signed" in e and "13 records are not the ones" in e and not cp14.exists()
    # ... so the forger, who holds the key, signs by hand: the witness still refuses
    led = open_ledger(s["db"])
    st = led.tree_state()
    led.close()
    forged = Checkpoint("wattlens.example/org-ledger", st.size, st.root)
    cp14.write_text(sign_checkpoint(forged, Signer.parse(s["key"].read_text())))
    code, _o, e = wl(capsys, "log", "witness", "--checkpoint", str(cp14), "--ledger", str(s["db"]), *args)
    assert code == 1 and "does not extend the one of 13" in e
    # a checkpoint not signed by the log's key is not cosigned at all
    other = d / "other.key"
    assert wl(capsys, "keys", "signing", "new", "--name", "wattlens.example/org-ledger", "-o", str(other))[0] == 0
    fake = d / "fake.txt"
    assert wl(capsys, "log", "checkpoint", "--ledger", str(s["db"]), "--key", str(other), "-o", str(fake))[0] == 0
    assert wl(capsys, "log", "witness", "--checkpoint", str(fake), "--ledger", str(s["db"]), *args)[0] == 1


def test_witness_follows_a_gateway_over_http(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import upstream as up
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from wattlens.gateway.app import Gateway
    from wattlens.gateway.config import GatewayConfig, Upstream
    from wattlens.gateway.logapi import LogService, LogSettings
    from wattlens.ledger import LedgerWriter
    from wattlens.ledger.note import COSIGNATURE_V1

    signer, w = Signer.generate("wattlens.example/org-ledger"), Signer.generate("w.example/1", COSIGNATURE_V1)
    key, wkey = tmp_path / "log.key", tmp_path / "w.key"
    key.write_text(signer.encode())
    wkey.write_text(w.encode())
    writer = LedgerWriter(open_ledger(tmp_path / "l.db"), flush_s=0.01)
    gw = Gateway(GatewayConfig(upstreams=(Upstream("u", "openai", "http://unused/v1"),)), writer)
    svc = LogService(gw, LogSettings(key, 60.0, tmp_path / "last"))
    assert svc.notary is not None

    async def health(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[*svc.routes(), Route("/h", health)])
    args = ["--key", str(wkey), "--state", str(tmp_path / "st"), "--log-key", signer.verifier.encode()]
    with up.ServerThread(app) as server:
        url = server.url + "/wattlens/log/checkpoint"
        for n in (4, 9, 30):
            writer.ledger.append([rec(i) for i in range(writer.ledger.count(), n)])
            svc.notary.sign()
            code, _o, e = wl(capsys, "log", "witness", "--checkpoint", url, *args, "-o", str(tmp_path / "c.txt"))
            assert code == 0 and f"at {n} records" in e, e
            assert open_cosigned_size((tmp_path / "c.txt").read_text(), w) == n
    writer.close()


def _witness_process(tmp_path: Path, wkey: Path, log_pub: str) -> tuple[subprocess.Popen[str], str]:
    """`wattlens log witness-serve` as a real process on a free port; returns it and its URL."""
    import select

    cmd = [sys.executable, "-m", "wattlens.cli", "log", "witness-serve", "--key", str(wkey)]
    cmd += ["--state", str(tmp_path / "wstate"), "--log-key", log_pub, "--port", "0"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    ready, _, _ = select.select([proc.stderr], [], [], 30)
    line = proc.stderr.readline() if ready else ""
    m = re.search(r"listening on (http://\S+)", line)
    if not m:
        proc.kill()
        raise AssertionError(f"the witness did not start: {line}")
    return proc, m.group(1)


def _post(url: str, body: str) -> tuple[int, str, str]:
    from wattlens.ledger.witness import http_post

    return http_post(5.0)(url + "/add-checkpoint", body)


def test_witness_service_speaks_tlog_witness(tmp_path: Path) -> None:
    """The add-checkpoint call of c2sp.org/tlog-witness, status code by status code, over real HTTP."""
    from upstream import stop

    from wattlens.ledger.note import COSIGNATURE_V1, open_cosigned
    from wattlens.ledger.witness import SIZE_TYPE, request_body

    log, w = Signer.generate("wattlens.example/org-ledger"), Signer.generate("witness.example/w1", COSIGNATURE_V1)
    wkey = tmp_path / "w.key"
    wkey.write_text(w.encode())
    led = open_ledger(tmp_path / "l.db")
    led.append([rec(i) for i in range(4)])
    note4 = sign_checkpoint(Checkpoint(log.name, 4, led.tree_state().root), log)
    led.append([rec(i) for i in range(4, 9)])
    st9 = led.tree_state()
    note9 = sign_checkpoint(Checkpoint(log.name, 9, st9.root), log)
    proof = merkle.consistency_path(4, 9, led.node)
    led.close()
    proc, url = _witness_process(tmp_path, wkey, log.verifier.encode())
    try:
        status, ctype, body = _post(url, request_body(0, [], note4))
        assert status == 200 and body.startswith("\u2014 witness.example/w1 ") and body.endswith("\n")
        assert Checkpoint.parse_text(open_cosigned(note4 + body, w.verifier)[0]).size == 4
        # the old size must be the one the witness holds: 409 names it, as text/x.tlog.size
        status, ctype, body = _post(url, request_body(0, [], note9))
        assert (status, ctype, body) == (409, SIZE_TYPE, "4\n")
        bad = [hashlib.sha256(b"x").digest(), *proof[1:]]
        assert _post(url, request_body(4, bad, note9))[0] == 422  # a proof that does not join the trees
        status, _, body = _post(url, request_body(4, proof, note9))
        assert status == 200 and open_cosigned(note9 + body, w.verifier)
        # a fork at the same size, a rollback, an unknown log, another key, a malformed body
        fork = sign_checkpoint(Checkpoint(log.name, 9, hashlib.sha256(b"fork").digest()), log)
        assert _post(url, request_body(9, [], fork))[:2] == (409, SIZE_TYPE)
        assert _post(url, request_body(9, [], note4))[0] == 400  # old size above the checkpoint's
        other = Signer.generate("other.example/log")
        assert _post(url, request_body(0, [], sign_checkpoint(Checkpoint(other.name, 1, st9.root), other)))[0] == 404
        impostor = Signer.generate(log.name)  # the log's name, not its key
        assert _post(url, request_body(9, [], sign_checkpoint(Checkpoint(log.name, 9, st9.root), impostor)))[0] == 403
        assert _post(url, "old 01\n\n" + note9)[0] == 400
        # the witness kept what it cosigned before answering: a new process holds the same size
        stop(proc)
        proc, url = _witness_process(tmp_path, wkey, log.verifier.encode())
        assert _post(url, request_body(0, [], note9))[:3] == (409, SIZE_TYPE, "9\n")
    finally:
        stop(proc)


def test_gateway_publishes_cosigned_checkpoints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The gateway asks a witness to cosign each checkpoint it signs, and serves the cosigned one;
    a receipt's proof then verifies offline with --witness; a rollback shows at the witness."""
    import upstream as up
    from starlette.applications import Starlette
    from upstream import stop

    from wattlens.gateway.app import Gateway
    from wattlens.gateway.config import GatewayConfig, Upstream
    from wattlens.gateway.logapi import LogService, LogSettings
    from wattlens.ledger import LedgerWriter
    from wattlens.ledger.note import COSIGNATURE_V1

    signer, w = Signer.generate("wattlens.example/org-ledger"), Signer.generate("w.example/1", COSIGNATURE_V1)
    key, wkey = tmp_path / "log.key", tmp_path / "w.key"
    key.write_text(signer.encode())
    wkey.write_text(w.encode())
    proc, wurl = _witness_process(tmp_path, wkey, signer.verifier.encode())
    try:
        writer = LedgerWriter(open_ledger(tmp_path / "l.db"), flush_s=0.01)
        gw = Gateway(GatewayConfig(upstreams=(Upstream("u", "openai", "http://unused/v1"),)), writer)
        settings = LogSettings(key, 60.0, tmp_path / "last", ((wurl, w.verifier),))
        svc = LogService(gw, settings)
        assert svc.notary is not None
        app = Starlette(routes=svc.routes())
        with up.ServerThread(app) as server:
            for n in (3, 8, 21):
                writer.ledger.append([rec(i) for i in range(writer.ledger.count(), n)])
                svc.notary.try_sign()
                served = urlopen_text(server.url + "/wattlens/log/checkpoint")
                assert open_cosigned_size(served, w) == n and read_checkpoint(served, signer.verifier).size == n
            (tmp_path / "p.txt").write_text(urlopen_text(server.url + "/wattlens/log/proof/r5"))
        (tmp_path / "r5.json").write_text(json.dumps(rec(5)))
        args = ["verify-receipt", str(tmp_path / "r5.json"), "--proof", str(tmp_path / "p.txt")]
        code, o, e = wl(capsys, *args, "--key", signer.verifier.encode(), "--witness", w.verifier.encode())
        assert code == 0 and "cosigned by w.example/1" in o, e
        assert svc.notary.cosigned.labels("w.example/1")._value.get() == 3
        # a second gateway process (no memory of the witness's size) asks with old 0, gets 409, retries
        writer.ledger.append([rec(i) for i in range(21, 25)])
        cfg = GatewayConfig(upstreams=(Upstream("u", "openai", "http://unused/v1"),))
        again = LogService(Gateway(cfg, writer), settings)
        assert again.notary is not None and open_cosigned_size(again.notary.try_sign() or "", w) == 25
        # the database rolled back to 10 records, the state file lost too: the gateway signs, the witness refuses
        writer.close()
        rewrite(tmp_path / "l.db", [rec(i) for i in range(10)])
        (tmp_path / "last").unlink()
        writer = LedgerWriter(open_ledger(tmp_path / "l.db"), flush_s=0.01)
        gw2 = Gateway(GatewayConfig(upstreams=(Upstream("u", "openai", "http://unused/v1"),)), writer)
        late = LogService(gw2, settings)
        assert late.notary is not None
        note = late.notary.try_sign() or ""
        assert read_checkpoint(note).size == 10 and "w.example/1" not in note
        assert late.notary.cosign_failures.labels("w.example/1")._value.get() == 1
        assert "cosigned 25 records of this log, more than its 10" in (late.notary.last_error or "")
        writer.close()
    finally:
        stop(proc)


def urlopen_text(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as r:
        return str(r.read().decode())


def open_cosigned_size(note: str, w: Signer) -> int:
    from wattlens.ledger.note import open_cosigned

    return Checkpoint.parse_text(open_cosigned(note, w.verifier)[0]).size


# -- recomputation ------------------------------------------------------------------------------------------
def test_recompute_catches_an_edited_figure_whose_hashes_were_recomputed(
    setup: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    s = setup
    code, _o, e = wl(capsys, "verify", "--ledger", str(s["db"]), "--recompute")
    assert code == 0 and "recomputed 10 estimated receipts, checked the carbon of 10" in e, e
    for what in ("energy", "carbon", "tokens"):
        body = rec(9)
        fp = body["footprint"]
        if what == "energy":  # the figure shrunk by half: every hash recomputed, so only recomputation sees it
            fp["energy_wh"] = {k: v / 2 for k, v in fp["energy_wh"].items()}
        elif what == "carbon":
            fp["carbon_g"]["location"]["mid"] /= 3
        else:  # fewer output tokens claimed for the same energy
            fp["tokens"]["output"] = 5
        forge_tail(s["db"], body, replace_last=True)
        assert wl(capsys, "verify", "--ledger", str(s["db"]))[0] == 0  # chain and tree intact: the forger recomputed them
        code, _o, e = wl(capsys, "verify", "--ledger", str(s["db"]), "--recompute")
        want = {"energy": "energy_wh is", "carbon": "carbon_g.location.mid", "tokens": "energy_wh is"}[what]
        assert code == 1 and "record 10: recomputed" in e and "record r9" in e and want in e, (what, e)
    # a receipt computed with other factor tables is said to be out of reach, not wrong
    body = rec(9)
    body["footprint"]["factors_version"] = "2001.01"
    forge_tail(s["db"], body, replace_last=True)
    code, _o, e = wl(capsys, "verify", "--ledger", str(s["db"]), "--recompute")
    assert code == 0 and "1 with factor tables 2001.01" in e


def test_verify_reads_past_a_body_that_is_not_json(setup: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    s = setup
    sql(
        s["db"],
        ("UPDATE records SET body = '{not json' WHERE seq = 4", ()),
        ("UPDATE records SET ts = '2020-01-01T00:00:00+00:00' WHERE seq = 8", ()),  # after it: still checked
    )
    code, _o, e = wl(capsys, "verify", "--ledger", str(s["db"]))
    assert code == 1 and "record 4: changed - the record is not valid JSON" in e and "record 8: changed - the ts column" in e


def test_verify_names_a_swapped_id_column_and_a_duplicate_key(
    setup: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    s = setup
    con = sqlite3.connect(s["db"])
    (i6,), (i7,) = con.execute("SELECT id FROM records WHERE seq IN (6, 7) ORDER BY seq").fetchall()
    (b3,) = con.execute("SELECT body FROM records WHERE seq = 3").fetchone()
    con.close()
    # ids swapped (a proof looked up by id would serve the other record); a duplicate key put first
    # (SQLite's json_extract reads the first value, Python's json the last: budgets and reports disagree)
    forged = '{"team":"EVIL",' + b3[1:]
    sql(
        s["db"],
        ("UPDATE records SET id = ? WHERE seq = 6", (i7,)),
        ("UPDATE records SET id = ? WHERE seq = 7", (i6,)),
        ("UPDATE records SET body = ? WHERE seq = 3", (forged,)),
    )
    code, _o, e = wl(capsys, "verify", "--ledger", str(s["db"]))
    assert code == 1 and "record 6: changed - the id column" in e and "record 7: changed - the id column" in e
    assert "record 3: changed - the record is not valid JSON any more: a key appears twice" in e


def test_a_checkpoint_of_another_origin_signed_with_the_logs_key_is_refused() -> None:
    # A split view past a witness: the same key signs a rewritten history as "org-ledger " (a space),
    # which a witness keyed by origin would take for a new log and cosign.
    signer = Signer.generate("wattlens.example/org-ledger")
    root = hashlib.sha256(b"").digest()
    good = sign_checkpoint(Checkpoint("wattlens.example/org-ledger", 3, root), signer)
    assert read_checkpoint(good, signer.verifier).size == 3
    fork = sign_checkpoint(Checkpoint("wattlens.example/org-ledger ", 3, root), signer)
    with pytest.raises(NoteError, match="not the log"):
        read_checkpoint(fork, signer.verifier)
    assert read_checkpoint(fork).origin.endswith(" ")  # without a key: read, not trusted
    from wattlens.gateway.notary import Notary

    with pytest.raises(WattlensError, match="must be the signing key's name"):
        Notary(None, signer, Path("/nonexistent"), origin="another/log")  # type: ignore[arg-type]


def test_odd_numbers_and_files_get_clear_refusals(
    setup: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    signer = Signer.generate("wattlens.example/org-ledger")
    root = hashlib.sha256(b"").digest()
    note = sign_checkpoint(Checkpoint("wattlens.example/org-ledger", 30, root), signer)
    for size in ("\u0663\u0660", "\u00b3", "030"):  # Arabic-Indic 30, superscript 3, a leading zero
        with pytest.raises(NoteError):
            read_checkpoint(note.replace("\n30\n", f"\n{size}\n", 1))
    with pytest.raises(NoteError, match="ASCII decimal"):
        Proof.parse(Proof(5, (), note).encode().replace("index 5", "index 05"))
    code, _o, e = wl(
        capsys,
        "verify-receipt",
        str(tmp_path / "missing.json"),
        "--proof",
        str(tmp_path / "p"),
        "--key",
        signer.verifier.encode(),
    )
    assert code == 1 and "receipt does not verify" in e and "Traceback" not in e
    body = rec(9)
    body["footprint"]["tokens"] = "many"  # a field of the wrong shape: named, not a crash
    forge_tail(setup["db"], body, replace_last=True)
    code, _o, e = wl(capsys, "verify", "--ledger", str(setup["db"]), "--recompute")
    assert code == 1 and "the receipt is malformed" in e
    body = rec(9)
    body["tokens"] = {**body["footprint"]["tokens"], "output": 1}  # what reports sum, edited alone
    forge_tail(setup["db"], body, replace_last=True)
    code, _o, e = wl(capsys, "verify", "--ledger", str(setup["db"]), "--recompute")
    assert code == 1 and "the record's tokens" in e
    del body["tokens"]["output"]  # a count deleted from what reports sum (they read it as 0)
    body["tokens"].update(output=body["footprint"]["tokens"]["output"])
    body["tokens"].pop("input")
    forge_tail(setup["db"], body, replace_last=True)
    code, _o, e = wl(capsys, "verify", "--ledger", str(setup["db"]), "--recompute")
    assert code == 1 and "the record's tokens" in e


def test_verify_names_an_edited_proof_node(setup: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """The interior nodes proofs are served from are checked against the records' leaves."""
    code, _o, e = wl(capsys, "verify", "--ledger", str(setup["db"]))
    assert code == 0, e
    db = sqlite3.connect(setup["db"])
    (level, idx), n = db.execute("SELECT level, idx FROM log_nodes ORDER BY level DESC LIMIT 1").fetchone(), 0
    n = db.execute("UPDATE log_nodes SET hash = ? WHERE level = ? AND idx = ?", (b"\0" * 32, level, idx)).rowcount
    db.commit()
    db.close()
    assert n == 1
    code, _o, e = wl(capsys, "verify", "--ledger", str(setup["db"]))
    assert code == 1 and "nodes" in e and f"level {level}, index {idx}" in e, e


def _scaled(fp: dict[str, Any], f: float) -> None:
    """Energy, facility energy and carbon scaled together: the carbon still follows from the energy."""
    for part in (fp["energy_wh"], fp["facility_wh"], fp["carbon_g"]["location"]):
        part.update({k: v * f for k, v in part.items()})


def test_recompute_checks_a_metered_receipts_window(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "l.db"
    command = [sys.executable, "-c", "sum(range(10**6))"]
    run = subprocess.run(  # a receipt from the meter, as `wattlens run` writes it
        [sys.executable, "-m", "wattlens.cli", "run", "--zone", "FR", "--ledger", str(db), "--", *command],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    led = open_ledger(db)
    metered = next(led.records())
    led.append([rec(0), metered | {"id": "m2"}])
    led.close()
    m = metered["footprint"]["measurement"]
    assert m["window_s"] > 0 and m["devices"] and metered["schema_version"] >= 2
    shares = sum(d["attributed_j"] for d in m["devices"].values())
    assert math.isclose(shares / 3600, metered["footprint"]["energy_wh"]["mid"], rel_tol=1e-4)
    code, _o, e = wl(capsys, "verify", "--ledger", str(db), "--recompute")
    assert code == 0 and "recomputed 1 estimated" in e and "2 from the meter" in e, e
    cases: dict[str, tuple[dict[str, Any], str]] = {}
    body = rec(0) | {"id": "m2"}  # an estimate relabelled measured, its figures halved together
    body["footprint"]["method"] = "measured"
    _scaled(body["footprint"], 0.5)
    cases["relabelled"] = (body, "keeps no measurement window")
    body = rec(0) | {"id": "m2"}
    del body["footprint"]["method"]
    cases["method deleted"] = (body, "is none of estimated, measured, mixed")
    body = json.loads(json.dumps(metered)) | {"id": "m2"}
    _scaled(body["footprint"], 0.5)
    cases["metered figure halved"] = (body, "is not its devices' shares")
    body = json.loads(json.dumps(metered)) | {"id": "m2"}
    body["footprint"]["measurement"]["window_s"] = 1e-9
    cases["window too short for its joules"] = (body, "would have drawn")
    body = json.loads(json.dumps(metered)) | {"id": "m2", "latency_s": metered["latency_s"] / 100}
    body["footprint"]["measurement"]["window_s"] = metered["latency_s"] + 5
    cases["window longer than the request"] = (body, "longer than the request")
    body = json.loads(json.dumps(metered)) | {"id": "m2"}
    body["footprint"]["boundary"] = ["accelerator", "facility"]
    cases["boundary edited"] = (body, "is not the kinds it measured")
    for what, (body, want) in cases.items():
        forge_tail(db, body, replace_last=True)
        assert wl(capsys, "verify", "--ledger", str(db))[0] == 0  # hashes recomputed: only recomputation sees it
        code, _o, e = wl(capsys, "verify", "--ledger", str(db), "--recompute")
        assert code == 1 and "record m2" in e and want in " ".join(e.split()), (what, e)
