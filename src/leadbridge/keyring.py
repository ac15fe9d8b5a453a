"""Encryption of connection credentials: AES-256-GCM under versioned keys, for rotation.

Where the keys come from, in order:

- `LEADBRIDGE_SECRET_KEY` (any string): a 32-byte key is derived from it with HKDF-SHA256.
  Its key version is a fingerprint of the derived key (a number at or above 2**30), so a
  ciphertext names the secret that made it without revealing it, and a changed secret is
  recognised as such instead of looking like tampering.
- otherwise the key file `<data_dir>/keyring.json` (mode 0600), created on first use:
  `{"current": 2, "keys": {"1": "<base64>", "2": "<base64>"}}`, versions counted from 1.

When the secret key is set and a key file exists too, the file's keys stay readable (so
credentials encrypted before the switch still open) and the secret key encrypts.

A ciphertext is one self-describing text token, `v1:<key version>:<base64url nonce||ct>`.
The connection's name is authenticated with it (associated data), so a token copied to
another connection, or altered in any way, does not decrypt. Error messages never carry a
key or a plaintext.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
import stat
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from leadbridge.config import Settings
from leadbridge.errors import ConfigError, InputError

KEYRING_FILE = "keyring.json"
TOKEN_FORMAT = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
SECRET_KEY_VERSIONS = 2**30  # versions at or above this come from LEADBRIDGE_SECRET_KEY
MAX_PLAINTEXT_BYTES = 64 * 1024

_KEY_INFO = b"leadbridge connection credentials v1"
_FINGERPRINT_INFO = b"leadbridge connection credentials key fingerprint v1"
_AAD_PREFIX = b"leadbridge/connection\x00"


def _hkdf(secret: str, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(
        secret.encode("utf-8", "surrogatepass")
    )


def key_from_secret(secret: str) -> tuple[int, bytes]:
    """The key version and 32-byte key derived from a `LEADBRIDGE_SECRET_KEY` value."""
    if not secret:
        raise ConfigError("LEADBRIDGE_SECRET_KEY is empty; set it to a long random string")
    fingerprint = int.from_bytes(_hkdf(secret, _FINGERPRINT_INFO, 4), "big")
    version = SECRET_KEY_VERSIONS | (fingerprint & (SECRET_KEY_VERSIONS - 1))
    return version, _hkdf(secret, _KEY_INFO, KEY_BYTES)


def _aad(name: str, version: int) -> bytes:
    return _AAD_PREFIX + f"{TOKEN_FORMAT}\x00{version}\x00{name}".encode()


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


class Keyring:
    """The keys that encrypt connection credentials; one of them (`current`) encrypts.

    Build it with `load_keyring(settings)`. Safe to share between threads.
    """

    __slots__ = ("_keys", "_lock", "_secret_version", "current", "path")

    def __init__(
        self,
        keys: Mapping[int, bytes],
        current: int,
        *,
        path: Path | None = None,
        secret_version: int | None = None,
    ) -> None:
        if current not in keys:
            raise ConfigError(f"key version {current} is current but no such key is loaded")
        for version, key in keys.items():
            if len(key) != KEY_BYTES:
                raise ConfigError(f"key version {version} is not {KEY_BYTES} bytes long")
        self._keys: dict[int, AESGCM] = {v: AESGCM(k) for v, k in keys.items()}
        self.current = current
        self.path = path  # the key file, if one is used (read, or read and written)
        self._secret_version = secret_version  # set when LEADBRIDGE_SECRET_KEY encrypts
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Keyring(source={self.source!r}, current={self.current}, versions={self.versions})"

    @property
    def source(self) -> str:
        """Where the current key comes from, in words for messages."""
        if self._secret_version is not None:
            return "LEADBRIDGE_SECRET_KEY"
        return f"key file {self.path}"

    @property
    def versions(self) -> tuple[int, ...]:
        return tuple(sorted(self._keys))

    # -- encryption -----------------------------------------------------------------------

    def encrypt(self, name: str, plaintext: Mapping[str, Any]) -> tuple[str, int]:
        """Encrypt `plaintext` (a JSON object) for connection `name`; return token, version."""
        if not name:
            raise InputError("credentials can only be encrypted for a named connection")
        if not isinstance(plaintext, Mapping):
            raise InputError("credentials must be a JSON object of names and values")
        try:
            data = json.dumps(dict(plaintext), separators=(",", ":"), sort_keys=True,
                              ensure_ascii=False, allow_nan=False).encode()
        except (TypeError, ValueError):
            raise InputError(
                f"credentials of connection {name!r} must be JSON values (text, numbers)"
            ) from None
        if len(data) > MAX_PLAINTEXT_BYTES:
            raise InputError(
                f"credentials of connection {name!r} are over {MAX_PLAINTEXT_BYTES} bytes"
            )
        version = self.current
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[version].encrypt(nonce, data, _aad(name, version))
        payload = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{TOKEN_FORMAT}:{version}:{payload}", version

    def decrypt(self, name: str, token: str) -> dict[str, Any]:
        """The credentials of connection `name` from a token made by `encrypt`.

        Raises ConfigError when the token is damaged or altered, belongs to another
        connection, or was made with a key this keyring does not hold.
        """
        version, blob = self._parse(name, token)
        cipher = self._cipher(name, version)
        try:
            data = cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _aad(name, version))
        except InvalidTag:
            raise ConfigError(
                f"the stored credentials of connection {name!r} do not decrypt: they were "
                "altered, or copied from another connection. Remove the connection and add "
                "it again with its credentials."
            ) from None
        try:
            value = json.loads(data)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise ConfigError(f"the stored credentials of connection {name!r} are not a JSON "
                              "object; add the connection again")
        return value

    def version_of(self, token: str) -> int:
        """The key version a token was encrypted with (without decrypting it)."""
        return self._parse("?", token)[0]

    def reencrypt(self, name: str, token: str) -> tuple[str, int]:
        """The same credentials under the current key (unchanged if already under it)."""
        if self.version_of(token) == self.current:
            self.decrypt(name, token)  # still prove it is intact
            return token, self.current
        return self.encrypt(name, self.decrypt(name, token))

    def _parse(self, name: str, token: str) -> tuple[int, bytes]:
        damaged = ConfigError(f"the stored credentials of connection {name!r} are damaged "
                              "(not a LeadBridge ciphertext); add the connection again")
        if not isinstance(token, str):
            raise damaged
        parts = token.split(":", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            raise damaged
        fmt, version_text, payload = parts
        if fmt != TOKEN_FORMAT:
            raise ConfigError(f"the stored credentials of connection {name!r} use format "
                              f"{fmt[:10]!r}, which this version of LeadBridge does not read")
        try:
            blob = _b64decode(payload)
        except (binascii.Error, ValueError):
            raise damaged from None
        if len(blob) < NONCE_BYTES + TAG_BYTES:
            raise damaged
        return int(version_text), blob

    def _cipher(self, name: str, version: int) -> AESGCM:
        cipher = self._keys.get(version)
        if cipher is None and self.path is not None and version < SECRET_KEY_VERSIONS:
            self._reload()  # another process may have rotated the key file
            cipher = self._keys.get(version)
        if cipher is not None:
            return cipher
        if version >= SECRET_KEY_VERSIONS:
            hint = ("a different LEADBRIDGE_SECRET_KEY. Set the secret key that was used, or "
                    "run `leadbridge secrets rotate --previous-key-stdin` with it")
        else:
            hint = (f"key version {version} of a key file, which {self.source} does not hold. "
                    "Restore the key file that held it")
        raise ConfigError(
            f"the stored credentials of connection {name!r} were encrypted with {hint}, "
            "or remove the connection and add it again."
        )

    # -- keys -----------------------------------------------------------------------------

    def add_secret_key(self, secret: str) -> int:
        """Also accept ciphertexts made with another (previous) `LEADBRIDGE_SECRET_KEY`.

        The current key does not change; return the version of the added key.
        """
        version, key = key_from_secret(secret)
        with self._lock:
            self._keys.setdefault(version, AESGCM(key))
        return version

    def rotate(self) -> int:
        """Add a new random key version to the key file and make it current; return it.

        Old versions stay in the file so existing ciphertexts still decrypt until they are
        re-encrypted (`leadbridge.connections.rotate_secrets`).
        """
        if self._secret_version is not None:
            raise ConfigError(
                "the key comes from LEADBRIDGE_SECRET_KEY: to rotate it, set a new value, then "
                "run `leadbridge secrets rotate --previous-key-stdin` and give the old one"
            )
        if self.path is None:
            raise ConfigError("this keyring has no key file to add a key to")
        with _locked(self.path):
            _, keys = _read_key_file(self.path)
            new = max(keys) + 1
            if new >= SECRET_KEY_VERSIONS:
                raise ConfigError(f"{self.path}: no key versions left")
            keys[new] = AESGCM.generate_key(bit_length=256)
            _write_key_file(self.path, new, keys)
        with self._lock:
            self._keys.update({v: AESGCM(k) for v, k in keys.items()})
            self.current = new
        return new

    def _reload(self) -> None:
        assert self.path is not None
        if not self.path.exists():
            return
        _, keys = _read_key_file(self.path)
        with self._lock:
            for version, key in keys.items():
                self._keys.setdefault(version, AESGCM(key))


def load_keyring(settings: Settings) -> Keyring:
    """The keyring for these settings: the secret key if set, else the key file (created,
    mode 0600, with one random key when missing). Raises ConfigError naming what is wrong."""
    path = settings.data_dir / KEYRING_FILE
    keys: dict[int, bytes] = {}
    current = 0
    if path.exists() or not settings.secret_key:
        if not path.exists():
            _create_key_file(path)
        current, keys = _read_key_file(path)
    if settings.secret_key:
        version, key = key_from_secret(settings.secret_key)
        keys[version] = key
        return Keyring(keys, version, path=path if path.exists() else None,
                       secret_version=version)
    return Keyring(keys, current, path=path)


# -- the key file ---------------------------------------------------------------------------


def _read_key_file(path: Path) -> tuple[int, dict[int, bytes]]:
    try:
        info = path.stat()
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"key file {path} cannot be read: {exc.strerror or exc}") from None
    if os.name == "posix" and info.st_mode & 0o077:
        raise ConfigError(
            f"key file {path} can be read by other users (mode "
            f"{stat.S_IMODE(info.st_mode):04o}); run `chmod 600 {path}`"
        )
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ConfigError(f"key file {path} is not valid JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), dict):
        raise ConfigError(f'key file {path} needs {{"current": N, "keys": {{"N": "<base64>"}}}}')
    keys: dict[int, bytes] = {}
    for label, encoded in data["keys"].items():
        if not (isinstance(label, str) and label.isdigit()
                and 1 <= int(label) < SECRET_KEY_VERSIONS):
            raise ConfigError(f"key file {path}: key version {label[:20]!r} is not a number "
                              f"from 1 to {SECRET_KEY_VERSIONS - 1}")
        try:
            key = base64.b64decode(encoded, validate=True) if isinstance(encoded, str) else b""
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_BYTES:
            raise ConfigError(f"key file {path}: key version {label} is not {KEY_BYTES} bytes "
                              "of base64")
        keys[int(label)] = key
    current = data.get("current")
    if not keys:
        raise ConfigError(f"key file {path} holds no keys")
    if not isinstance(current, int) or isinstance(current, bool) or current not in keys:
        raise ConfigError(f"key file {path}: \"current\" must name one of its key versions "
                          f"({', '.join(str(v) for v in sorted(keys))})")
    return current, keys


def _create_key_file(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path):
            if not path.exists():
                _write_key_file(path, 1, {1: AESGCM.generate_key(bit_length=256)})
    except OSError as exc:
        raise ConfigError(f"key file {path} cannot be created: {exc.strerror or exc}") from None


def _write_key_file(path: Path, current: int, keys: Mapping[int, bytes]) -> None:
    """Replace the file atomically; it is never visible half-written or with a wider mode."""
    data = {"current": current,
            "keys": {str(v): base64.b64encode(k).decode() for v, k in sorted(keys.items())}}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o600)
            json.dump(data, fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"key file {path} cannot be written: {exc.strerror or exc}") from None


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise key-file changes between processes (a lock file next to it)."""
    lock = path.with_name(path.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)

