"""The keyring: AES-256-GCM round trips, tampering, rotation, the key file and its errors."""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from leadbridge.config import Settings, load_settings
from leadbridge.errors import ConfigError, InputError
from leadbridge.keyring import KEYRING_FILE, SECRET_KEY_VERSIONS, Keyring, load_keyring

CREDS = {"email": "sync@example.com", "password": "PLANTED-s3cr3t-4242"}
SECRET = "env-secret-key-0123456789abcdef-ffff"

MakeSettings = Callable[..., Settings]


@pytest.fixture
def make_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MakeSettings:
    """Settings with a fresh data folder; the secret key only when asked for."""
    for key in list(os.environ):
        if key.startswith("LEADBRIDGE_"):
            monkeypatch.delenv(key)

    def make(secret_key: str = "", data_dir: Path | None = None) -> Settings:
        return load_settings(tmp_path / "absent.toml", data_dir=str(data_dir or tmp_path / "var"),
                             secret_key=secret_key)

    return make


def key_file(settings: Settings) -> Path:
    return settings.data_dir / KEYRING_FILE


def flip(token: str, index: int = -5) -> str:
    """The token with one byte of its payload changed, re-encoded as valid base64url.

    The byte is changed, not a character: the last character of unpadded base64 may carry
    only padding bits, and changing those leaves the bytes as they were."""
    head, payload = token.rsplit(":", 1)
    blob = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    blob[index] ^= 0x01
    return f"{head}:{base64.urlsafe_b64encode(bytes(blob)).decode().rstrip('=')}"


# -- round trips ----------------------------------------------------------------------------


def test_key_file_is_created_0600_with_one_version_and_round_trips(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = make_settings(data_dir=tmp_path / "not" / "yet")
    keyring = load_keyring(settings)
    path = key_file(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["current"] == 1 and list(data["keys"]) == ["1"]
    assert len(base64.b64decode(data["keys"]["1"])) == 32

    token, version = keyring.encrypt("main-crm", CREDS)
    assert version == 1 and token.startswith("v1:1:")
    assert CREDS["password"] not in token and CREDS["email"] not in token
    assert keyring.decrypt("main-crm", token) == CREDS
    # another process reads the same file and opens the same token
    assert load_keyring(settings).decrypt("main-crm", token) == CREDS


def test_each_encryption_uses_a_fresh_nonce(make_settings: MakeSettings) -> None:
    keyring = load_keyring(make_settings())
    first, _ = keyring.encrypt("a", CREDS)
    second, _ = keyring.encrypt("a", CREDS)
    assert first != second
    assert keyring.decrypt("a", first) == keyring.decrypt("a", second) == CREDS


def test_secret_key_derives_a_stable_key_and_writes_no_file(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings(secret_key=SECRET)
    keyring = load_keyring(settings)
    token, version = keyring.encrypt("main-crm", CREDS)
    assert version >= SECRET_KEY_VERSIONS and version < 2**31  # fits an SQL INTEGER
    assert token.startswith(f"v1:{version}:")
    assert not key_file(settings).exists()
    again = load_keyring(make_settings(secret_key=SECRET))
    assert again.current == version
    assert again.decrypt("main-crm", token) == CREDS
    assert SECRET not in repr(keyring) and "LEADBRIDGE_SECRET_KEY" in repr(keyring)


def test_a_changed_secret_key_is_named_as_the_cause(make_settings: MakeSettings) -> None:
    token, _ = load_keyring(make_settings(secret_key=SECRET)).encrypt("main-crm", CREDS)
    other = load_keyring(make_settings(secret_key="another-secret-key-entirely-9876"))
    with pytest.raises(ConfigError, match="different LEADBRIDGE_SECRET_KEY") as err:
        other.decrypt("main-crm", token)
    assert SECRET not in str(err.value) and CREDS["password"] not in str(err.value)


def test_plaintext_must_be_a_json_object(make_settings: MakeSettings) -> None:
    keyring = load_keyring(make_settings())
    with pytest.raises(InputError, match="JSON values"):
        keyring.encrypt("a", {"password": object()})
    with pytest.raises(InputError, match="JSON object"):
        keyring.encrypt("a", ["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(InputError, match="named connection"):
        keyring.encrypt("", CREDS)


# -- tampering --------------------------------------------------------------------------------


def test_a_modified_ciphertext_does_not_decrypt(make_settings: MakeSettings) -> None:
    keyring = load_keyring(make_settings())
    token, _ = keyring.encrypt("main-crm", CREDS)
    for index in (-1, -5, 0, 2, 20):  # the tag's last bytes, the nonce, the ciphertext
        with pytest.raises(ConfigError, match="altered") as err:
            keyring.decrypt("main-crm", flip(token, index))
        assert CREDS["password"] not in str(err.value)


def test_a_ciphertext_moved_to_another_connection_does_not_decrypt(
    make_settings: MakeSettings,
) -> None:
    keyring = load_keyring(make_settings())
    token, _ = keyring.encrypt("main-crm", CREDS)
    with pytest.raises(ConfigError, match="another connection"):
        keyring.decrypt("other-crm", token)


def test_damaged_tokens_get_clear_errors(make_settings: MakeSettings) -> None:
    keyring = load_keyring(make_settings())
    token, _ = keyring.encrypt("main-crm", CREDS)
    payload = token.split(":", 2)[2]
    for bad in ("", "garbage", "v1:x:abc", "v1:1:***not-base64***", "v1:1:AAAA",
                token.replace("v1:", "v1:1", 1)):
        with pytest.raises(ConfigError, match=r"damaged|key version"):
            keyring.decrypt("main-crm", bad)
    with pytest.raises(ConfigError, match="format 'v9'"):
        keyring.decrypt("main-crm", f"v9:1:{payload}")
    # the version is authenticated too: a token relabelled with another version fails
    keyring.rotate()
    with pytest.raises(ConfigError, match="altered"):
        keyring.decrypt("main-crm", f"v1:2:{payload}")


# -- rotation ---------------------------------------------------------------------------------


def test_rotation_adds_a_version_and_old_tokens_still_decrypt(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings()
    keyring = load_keyring(settings)
    old, _ = keyring.encrypt("main-crm", CREDS)
    assert keyring.rotate() == 2
    assert keyring.current == 2 and keyring.versions == (1, 2)
    data = json.loads(key_file(settings).read_text())
    assert data["current"] == 2 and sorted(data["keys"]) == ["1", "2"]
    assert stat.S_IMODE(key_file(settings).stat().st_mode) == 0o600

    assert keyring.decrypt("main-crm", old) == CREDS
    new, version = keyring.encrypt("main-crm", CREDS)
    assert version == 2 and new.startswith("v1:2:")
    moved, moved_version = keyring.reencrypt("main-crm", old)
    assert moved_version == 2 and keyring.version_of(moved) == 2
    assert keyring.decrypt("main-crm", moved) == CREDS
    assert keyring.reencrypt("main-crm", moved) == (moved, 2)  # already current: unchanged


def test_a_keyring_loaded_before_a_rotation_reads_the_new_version(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings()
    server = load_keyring(settings)  # e.g. the API process
    admin = load_keyring(settings)  # `leadbridge secrets rotate`
    admin.rotate()
    token, version = admin.encrypt("main-crm", CREDS)
    assert version == 2 and server.current == 1
    assert server.decrypt("main-crm", token) == CREDS


def test_rotate_refuses_when_the_key_comes_from_the_environment(
    make_settings: MakeSettings,
) -> None:
    with pytest.raises(ConfigError, match="--previous-key-stdin"):
        load_keyring(make_settings(secret_key=SECRET)).rotate()


def test_a_previous_secret_key_opens_old_tokens_for_reencryption(
    make_settings: MakeSettings,
) -> None:
    old_token, old_version = load_keyring(make_settings(secret_key=SECRET)).encrypt("a", CREDS)
    keyring = load_keyring(make_settings(secret_key="the-new-secret-key-0000000000"))
    assert keyring.add_secret_key(SECRET) == old_version
    assert keyring.current != old_version
    token, version = keyring.reencrypt("a", old_token)
    assert version == keyring.current
    assert load_keyring(make_settings(secret_key="the-new-secret-key-0000000000")).decrypt(
        "a", token) == CREDS


def test_key_file_tokens_still_open_after_switching_to_a_secret_key(
    make_settings: MakeSettings,
) -> None:
    file_token, _ = load_keyring(make_settings()).encrypt("a", CREDS)
    keyring = load_keyring(make_settings(secret_key=SECRET))
    assert keyring.source == "LEADBRIDGE_SECRET_KEY"
    assert keyring.decrypt("a", file_token) == CREDS
    assert keyring.reencrypt("a", file_token)[1] == keyring.current >= SECRET_KEY_VERSIONS


def test_a_key_version_missing_from_the_file_is_named(make_settings: MakeSettings) -> None:
    settings = make_settings()
    keyring = load_keyring(settings)
    keyring.rotate()
    token, _ = keyring.encrypt("a", CREDS)
    key_file(settings).unlink()
    fresh = load_keyring(settings)  # a new file with only version 1
    with pytest.raises(ConfigError, match="key version 2"):
        fresh.decrypt("a", token)


# -- key configuration errors -----------------------------------------------------------------


def write_key_file(settings: Settings, content: str, mode: int = 0o600) -> Path:
    path = key_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    path.chmod(mode)
    return path


def test_a_key_file_readable_by_others_is_refused(make_settings: MakeSettings) -> None:
    settings = make_settings()
    load_keyring(settings)
    key_file(settings).chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_keyring(settings)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "not valid JSON"),
        ("[]", '"current"'),
        ('{"current": 1, "keys": {}}', "holds no keys"),
        ('{"current": 1, "keys": {"one": "AAAA"}}', "'one' is not a number"),
        ('{"current": 1, "keys": {"1": "c2hvcnQ="}}', "not 32 bytes"),
        ('{"current": 1, "keys": {"1": "!!!"}}', "not 32 bytes"),
        ('{"current": 3, "keys": {"1": "' + base64.b64encode(b"k" * 32).decode() + '"}}',
         "must name one of its key versions (1)"),
    ],
)
def test_an_invalid_key_file_gets_a_clear_error(
    make_settings: MakeSettings, content: str, needle: str
) -> None:
    settings = make_settings()
    path = write_key_file(settings, content)
    with pytest.raises(ConfigError) as err:
        load_keyring(settings)
    assert needle in str(err.value) and str(path) in str(err.value)
    assert "a2tra2" not in str(err.value)  # base64 of the key material never shows


def test_an_unwritable_data_folder_is_a_config_error(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot be created"):
        load_keyring(make_settings(data_dir=blocker / "var"))


def test_a_keyring_needs_its_current_key_and_32_byte_keys() -> None:
    with pytest.raises(ConfigError, match="current"):
        Keyring({1: b"k" * 32}, 2)
    with pytest.raises(ConfigError, match="32 bytes"):
        Keyring({1: b"short"}, 1)
