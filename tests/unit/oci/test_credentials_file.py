"""`login` writes the docker config file as docker does: 0600, tab-indented JSON, and all
at once (a reader sees the old file or the new one)."""

from __future__ import annotations

import base64
import errno
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from wasmctl.errors import InputError
from wasmctl.oci.auth import Credentials, remove_credentials, store_credentials


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_the_credentials_file_is_readable_by_its_owner_only(
    tmp_path: Path, open_umask: None
) -> None:
    config = tmp_path / "docker" / "config.json"
    store_credentials("ghcr.io", Credentials("bot", "s3cret"), config)
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    assert remove_credentials("ghcr.io", config)
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


def test_the_credentials_file_is_tab_indented_json_and_keeps_other_settings(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"credHelpers": {}, "proxies": {"default": {}}}))
    store_credentials("ghcr.io", Credentials("bot", "s3cret"), config)
    text = config.read_text()
    auth = base64.b64encode(b"bot:s3cret").decode()
    assert json.loads(text) == {
        "credHelpers": {},
        "proxies": {"default": {}},
        "auths": {"ghcr.io": {"auth": auth}},
    }
    assert text.endswith("}\n") and '\n\t"auths": {' in text
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_a_credentials_file_that_cannot_be_written_is_an_input_error_and_stays_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.json"
    config.write_text('{"auths": {}}')

    def read_only_file_system(src: object, dst: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(os, "replace", read_only_file_system)
    with pytest.raises(InputError, match=r"cannot write .*config\.json: Read-only file system"):
        store_credentials("ghcr.io", Credentials("bot", "s3cret"), config)
    assert config.read_text() == '{"auths": {}}'
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]
