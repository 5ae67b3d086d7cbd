"""C2SP signed notes (Ed25519), tlog-checkpoint and tlog-proof texts.

A signer key is `PRIVATE+KEY+<name>+<key id, 8 hex>+base64(0x01 || 32-byte seed)` and a verifier
key `<name>+<key id>+base64(0x01 || 32-byte public key)`, as golang.org/x/mod/sumdb/note writes
them; the key id is the first 4 bytes of SHA-256(name || 0x0A || 0x01 || public key). A signed note
is the text (ending in a newline), a blank line, then lines `— <name> base64(key id || signature)`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from wattlens.errors import WattlensError

ED25519 = 0x01
COSIGNATURE_V1 = 0x04  # c2sp.org/tlog-cosignature: an Ed25519 witness key signs "cosignature/v1" messages
DASH = "\u2014 "
PROOF_HEADER = "c2sp.org/tlog-proof@v1"


class NoteError(WattlensError):
    """A key, note, checkpoint or proof that is malformed or does not verify."""


def read_note_file(path: str | Path) -> str:
    """A note or proof file's text as written: CR line endings are kept (so refused), not turned into LF.

    Python's text mode would convert CRLF silently; the formats are LF-only, and a note that was
    re-saved with CRLF (an editor, git's autocrlf) is a changed file, not the one that was signed.
    """
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise NoteError(f"{path} is not UTF-8 text: a note or proof is") from e
    if "\r" in text:
        raise NoteError(f"{path} has CR line endings: notes and proofs use LF only (re-save it with LF endings)")
    return text


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as e:
        raise NoteError(f"not base64: {text[:40]!r}") from e


def key_id(name: str, public: bytes, alg: int = ED25519) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public).digest()[:4]


def _alg(raw: bytes, what: str) -> int:
    if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
        raise NoteError(f"only Ed25519 {what} keys (type 0x01, or 0x04 for a witness; 32 bytes) are supported")
    return raw[0]


def _check_name(name: str) -> str:
    if not name or "+" in name or any(c.isspace() for c in name):
        raise NoteError(f"a key name must be non-empty, with no spaces or '+': {name!r}")
    return name


@dataclass(frozen=True, slots=True)
class Verifier:
    name: str
    public: bytes  # 32 bytes
    alg: int = ED25519  # COSIGNATURE_V1 for a witness

    @property
    def id(self) -> bytes:
        return key_id(self.name, self.public, self.alg)

    def encode(self) -> str:
        return f"{self.name}+{self.id.hex()}+{_b64(bytes([self.alg]) + self.public)}"

    @classmethod
    def parse(cls, text: str) -> Verifier:
        parts = text.strip().split("+", 2)  # base64 may hold '+'
        if len(parts) != 3:
            raise NoteError("a verifier key reads NAME+KEYID+BASE64")
        name, kid, blob = parts
        raw = _unb64(blob)
        v = cls(_check_name(name), raw[1:], _alg(raw, "verifier"))
        if v.id.hex() != kid.lower():
            raise NoteError(f"the key id {kid} does not match the key")
        return v

    def check(self, message: bytes, signature: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
            return True
        except (InvalidSignature, ValueError):
            return False


@dataclass(frozen=True, slots=True)
class Signer:
    name: str
    seed: bytes = field(repr=False)  # the 32-byte Ed25519 private key
    alg: int = ED25519  # COSIGNATURE_V1 for a witness

    @classmethod
    def generate(cls, name: str, alg: int = ED25519) -> Signer:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

        key = Ed25519PrivateKey.generate()
        return cls(_check_name(name), key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()), alg)

    @property
    def verifier(self) -> Verifier:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        pub = Ed25519PrivateKey.from_private_bytes(self.seed).public_key()
        return Verifier(self.name, pub.public_bytes(Encoding.Raw, PublicFormat.Raw), self.alg)

    def encode(self) -> str:
        return f"PRIVATE+KEY+{self.name}+{self.verifier.id.hex()}+{_b64(bytes([self.alg]) + self.seed)}"

    @classmethod
    def parse(cls, text: str) -> Signer:
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("a signing key reads PRIVATE+KEY+NAME+KEYID+BASE64")
        _, _, name, kid, blob = parts
        raw = _unb64(blob)
        s = cls(_check_name(name), raw[1:], _alg(raw, "signing"))
        if s.verifier.id.hex() != kid.lower():
            raise NoteError(f"the key id {kid} does not match the key")
        return s

    def sign(self, message: bytes) -> bytes:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)


def sign_note(text: str, *signers: Signer) -> str:
    """The signed note: text (ending in a newline), a blank line, one signature line per signer."""
    if not text.endswith("\n"):
        raise NoteError("a note's text ends in a newline")
    if any(s.alg != ED25519 for s in signers):
        raise NoteError("a witness key cosigns (cosign), it does not sign notes")
    lines = [f"{DASH}{s.name} {_b64(s.verifier.id + s.sign(text.encode()))}\n" for s in signers]
    return text + "\n" + "".join(lines)


@dataclass(frozen=True, slots=True)
class Signature:
    name: str
    id: bytes
    signature: bytes


def split_note(note: str) -> tuple[str, list[Signature]]:
    """The text and the signature lines of a signed note (nothing is verified here)."""
    if any(ord(c) < 0x20 and c != "\n" for c in note):
        raise NoteError("a signed note holds no control characters other than newline")
    if not note.endswith("\n"):
        raise NoteError("a signed note ends in a newline")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise NoteError("a signed note has a blank line before its signatures")
    text, block = note[: cut + 1], note[cut + 2 :]
    sigs = []
    for line in block.splitlines():
        if not line.startswith(DASH):
            raise NoteError(f"not a signature line: {line[:60]!r}")
        name, _, b64 = line[len(DASH) :].partition(" ")
        raw = _unb64(b64)
        if not name or len(raw) < 5:
            raise NoteError(f"a malformed signature line: {line[:60]!r}")
        sigs.append(Signature(name, raw[:4], raw[4:]))
    if not sigs:
        raise NoteError("a signed note has at least one signature")
    return text, sigs


def open_note(note: str, verifier: Verifier) -> str:
    """The note's text once the verifier's signature checks; NoteError otherwise."""
    text, sigs = split_note(note)
    if verifier.alg != ED25519:
        raise NoteError(f"{verifier.name} is a witness key: check its cosignature (open_cosigned)")
    mine = [s for s in sigs if s.name == verifier.name and s.id == verifier.id]
    if not mine:
        raise NoteError(f"the note is not signed by {verifier.name}+{verifier.id.hex()}")
    if not all(verifier.check(text.encode(), s.signature) for s in mine):
        raise NoteError(f"the signature of {verifier.name} does not verify: the note was changed")
    return text


# -- checkpoints ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        return "".join(f"{line}\n" for line in (self.origin, str(self.size), _b64(self.root), *self.extensions))

    @classmethod
    def parse_text(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("a checkpoint has an origin, a size and a root hash, each on its own line")
        origin, size, root, *ext = lines[:-1]
        if not origin or not decimal_number(size):
            raise NoteError("a checkpoint's second line is its size in decimal")
        raw = _unb64(root)
        if len(raw) != 32:
            raise NoteError("a checkpoint's third line is a base64 SHA-256 root hash")
        if any(not line for line in ext):
            raise NoteError("a checkpoint has no empty extension lines")
        return cls(origin, int(size), raw, tuple(ext))


def sign_checkpoint(cp: Checkpoint, signer: Signer) -> str:
    return sign_note(cp.text(), signer)


def read_checkpoint(note: str, verifier: Verifier | None = None) -> Checkpoint:
    """The checkpoint of a signed note: its signature checked when a verifier key is given."""
    text = open_note(note, verifier) if verifier else split_note(note)[0]
    cp = Checkpoint.parse_text(text)
    if verifier is not None and cp.origin != verifier.name:
        # The log's key names the log: a checkpoint of another origin signed with the same key (a fork
        # under "org-ledger " with a space) would be a second history that a witness keys apart.
        raise NoteError(f"the checkpoint's origin {cp.origin[:200]!r} is not the log {verifier.name!r} that this key names")
    return cp


# -- tlog-proof ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Proof:
    index: int
    path: tuple[bytes, ...]
    checkpoint: str  # the signed note
    extra: bytes | None = None

    def encode(self) -> str:
        lines = [PROOF_HEADER]
        if self.extra is not None:
            lines.append(f"extra {_b64(self.extra)}")
        lines.append(f"index {self.index}")
        lines += [_b64(h) for h in self.path]
        return "\n".join(lines) + "\n\n" + self.checkpoint

    @classmethod
    def parse(cls, text: str) -> Proof:
        head, sep, note = text.partition("\n\n")
        lines = head.split("\n")
        if not sep or not lines or lines[0] != PROOF_HEADER:
            raise NoteError(f"a proof starts with {PROOF_HEADER} and has a blank line before its checkpoint")
        rest, extra = lines[1:], None
        if rest and rest[0].startswith("extra "):
            extra, rest = _unb64(rest[0][6:]), rest[1:]
        if not rest or not rest[0].startswith("index ") or not decimal_number(rest[0][6:]):
            raise NoteError("a proof names the entry's index: `index N` (ASCII decimal, no leading zeroes)")
        path = tuple(_unb64(h) for h in rest[1:])
        if any(len(h) != 32 for h in path):
            raise NoteError("each line of an inclusion path is a base64 SHA-256 hash")
        return cls(int(rest[0][6:]), path, note, extra)


# -- cosignatures (c2sp.org/tlog-cosignature, Ed25519 "cosignature/v1") ---------------------------------
def cosigned_message(text: str, timestamp: int) -> bytes:
    """What a witness signs: `cosignature/v1`, `time <POSIX seconds>`, then the checkpoint's whole body."""
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def cosign(note: str, witness: Signer, timestamp: int) -> str:
    """The note with the witness's cosignature line added (its other signature lines kept)."""
    if witness.alg != COSIGNATURE_V1:
        raise NoteError(f"{witness.name} is not a witness key (make one with: wattlens keys signing new --witness)")
    if not 0 <= timestamp < 2**63:
        raise NoteError("a cosignature's time is a POSIX timestamp below 2**63")
    text, _ = split_note(note)
    blob = witness.verifier.id + timestamp.to_bytes(8, "big") + witness.sign(cosigned_message(text, timestamp))
    return note + f"{DASH}{witness.name} {_b64(blob)}\n"


def open_cosigned(note: str, witness: Verifier) -> tuple[str, int]:
    """The note's text and the cosignature's time, once the witness's cosignature checks; NoteError otherwise."""
    if witness.alg != COSIGNATURE_V1:
        raise NoteError(f"{witness.name}+{witness.id.hex()} is not a witness key (type 0x04)")
    text, sigs = split_note(note)
    mine = [s for s in sigs if s.name == witness.name and s.id == witness.id]
    if not mine:
        raise NoteError(f"the checkpoint is not cosigned by the witness {witness.name}+{witness.id.hex()}")
    for s in mine:
        if len(s.signature) != 8 + 64:
            raise NoteError(f"a malformed cosignature of {witness.name}")
        ts = int.from_bytes(s.signature[:8], "big")
        if witness.check(cosigned_message(text, ts), s.signature[8:]):
            return text, ts
    raise NoteError(f"the cosignature of {witness.name} does not verify: the checkpoint was changed")


def decimal_number(text: str) -> bool:
    """C2SP's numbers: ASCII decimal digits without leading zeroes (str.isdigit also takes '٣' and '³')."""
    return text.isascii() and text.isdigit() and (text == "0" or not text.startswith("0"))
