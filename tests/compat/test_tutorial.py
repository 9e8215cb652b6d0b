"""The tutorial (docs/src/tutorial/first-ab-test.md) as written: its Python files run in turn
against a berth of their own started as step 1 says (`--file-root` the working directory), and
`berth ab` then prints a decided test naming the better model."""

import re
import subprocess
import sys

from conftest import ROOT, berth_binary

TUTORIAL = ROOT / "docs" / "src" / "tutorial" / "first-ab-test.md"


def test_the_tutorial_runs_as_written(own_berth, tmp_path):
    server = own_berth("--file-root", str(tmp_path))
    files = []
    for block in re.findall(r"```python\n(.*?)```", TUTORIAL.read_text(), re.S):
        if m := re.match(r"# (\w+\.py)\n", block):
            (tmp_path / m.group(1)).write_text(block.replace("http://127.0.0.1:8080", server.url))
            files.append(m.group(1))
    assert files == ["train.py", "deploy.py", "traffic.py"]
    for f in files:
        out = subprocess.run([sys.executable, f], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, f"{f}: {out.stderr[-2000:]}"
    ab = subprocess.run([berth_binary(), "ab", "iris-ab", "--url", server.url], capture_output=True, text=True, timeout=60)
    assert ab.returncode == 0, ab.stderr
    assert re.search(r"^Logistic is better: accuracy \+[\d.]+ points, 95% interval .*; decided after \d+ labels$", ab.stdout, re.M), ab.stdout
