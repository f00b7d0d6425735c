"""Every Python example in docs/api.md runs as written (with the demo clip as song.flac)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil

import pytest

from .conftest import ROOT

BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "api.md").read_text(), re.S)


@pytest.mark.parametrize("code", BLOCKS[1:], ids=[f"example-{i}" for i in range(1, len(BLOCKS))])
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
