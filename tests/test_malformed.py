"""Each file in data/malformed/ states the diagnostic it must give: `# expect: CODE LINE`."""
import re
import subprocess
import sys

import pytest

from skipgraph.errors import SpecError
from skipgraph.graph import build_ir
from skipgraph.spec import load_spec
from tests.conftest import MALFORMED

CASES = sorted(MALFORMED.glob("*.yaml"))


def _expectation(path):
    code, line = re.search(r"# expect: (\S+) (\d+)", path.read_text()).groups()
    return code, int(line)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_malformed_spec_gives_positioned_error(path):
    code, line = _expectation(path)
    with pytest.raises(SpecError) as info:
        build_ir(load_spec(path))
    found = [(d.code, d.span.line if d.span else None) for d in info.value.diagnostics]
    assert (code, line) in found, found
    assert all(d.span and d.span.file == str(path) for d in info.value.diagnostics)


def test_suite_covers_the_required_kinds():
    codes = {_expectation(p)[0] for p in CASES}
    assert {"yaml-syntax", "unknown-key", "unknown-family", "cycle-outside-loop", "bad-type",
            "bad-expression", "channel-mismatch"} <= codes


@pytest.mark.parametrize("path", CASES[:4], ids=[p.stem for p in CASES[:4]])
def test_cli_prints_diagnostic_without_traceback(path):
    code, line = _expectation(path)
    proc = subprocess.run([sys.executable, "-m", "skipgraph.cli", "check", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"{path}:{line}:" in proc.stderr and f"[{code}]" in proc.stderr
    assert "^" in proc.stderr  # the caret under the source line
