"""Every Python example in docs/api.md and the README runs as written (with the demo clip as song.flac)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil

import pytest

from .conftest import ROOT

BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "api.md").read_text(), re.S)[1:]
README = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
assert README, "the README's Python example is gone"


@pytest.mark.parametrize("code", BLOCKS + README,
                         ids=[f"api-{i}" for i in range(1, len(BLOCKS) + 1)] + [f"readme-{i}" for i in range(len(README))])
def test_api_example_runs(code, demo_path, tmp_path):
    shutil.copy(demo_path, tmp_path / "song.flac")  # soundfile reads it by content, not by name
    cwd = os.getcwd()
    os.chdir(tmp_path)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, "docs/api.md", "exec"), {})
    finally:
        os.chdir(cwd)
    if "tracker.push" in code:
        assert out.getvalue().split()[:2] == ["4", "2.0"]
    else:
        assert out.getvalue().strip() or "descriptors" in code
