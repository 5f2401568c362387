"""The README's Python examples run as they are."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # Examples build on each other (the first writes train.bin), as a reader runs them.
    scope: dict = {}
    for block in BLOCKS[: index + 1]:
        exec(compile(block, f"README.md python block {index}", "exec"), scope)  # noqa: S102
