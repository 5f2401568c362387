"""Shared fixtures: the osml binary under test, and an offline tiktoken."""

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

R50K_URL = "https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken"


@pytest.fixture(scope="session")
def osml_bin() -> str:
    path = os.environ.get("OSML_BIN")
    assert path and Path(path).is_file(), "run through scripts/python-tests.sh (OSML_BIN unset)"
    return path


@pytest.fixture()
def osml(osml_bin):
    """Runs `osml ARGS...`; returns the CompletedProcess (text mode)."""

    def run(*args, check=True, cwd=None):
        proc = subprocess.run([osml_bin, *map(str, args)], capture_output=True, text=True, cwd=cwd)
        if check and proc.returncode != 0:
            raise AssertionError(f"osml {' '.join(map(str, args))} exited {proc.returncode}: {proc.stderr}")
        return proc

    return run


@pytest.fixture()
def show(osml):
    """Every document of a dataset as a list of token lists, as osml reads it."""

    def read(path, *extra):
        out = osml("data", "show", path, *extra).stdout
        return [json.loads(line) for line in out.splitlines()]

    return read


@pytest.fixture(scope="session")
def gpt2(tmp_path_factory):
    """tiktoken's GPT-2 encoding (r50k_base), loaded offline from tiktoken-rs's copy of the ranks."""
    assets = os.environ.get("OSML_TIKTOKEN_ASSETS")
    assert assets, "run through scripts/python-tests.sh (OSML_TIKTOKEN_ASSETS unset)"
    cache = tmp_path_factory.mktemp("tiktoken-cache")
    # tiktoken names cache entries by the sha1 of the download URL and checks their sha256.
    shutil.copy(Path(assets) / "r50k_base.tiktoken", cache / hashlib.sha1(R50K_URL.encode()).hexdigest())
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    import tiktoken

    return tiktoken.get_encoding("r50k_base")
