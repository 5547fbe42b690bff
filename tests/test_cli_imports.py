"""The command line imports the heavy optional libraries only when a command needs them (docs/diffusers.md,
"Start-up"): building the parser (``critdiff --help``) imports neither diffusers, transformers, matplotlib nor
scipy; a fresh interpreter checks ``sys.modules`` (this test process has imported them all already)."""

import json
import subprocess
import sys

HEAVY = ("diffusers", "transformers", "matplotlib", "scipy")


def _imported_after(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=600,
                         env={"OMP_NUM_THREADS": "1", "PATH": "", "PYTHONPATH": ":".join(sys.path)})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_building_the_cli_imports_no_heavy_optional_library():
    assert _imported_after("import critdiff.cli as c\nc.build_parser()") == []


def test_the_probe_sees_an_import():
    """The check itself can fail: importing the figures module pulls matplotlib in."""
    assert _imported_after("import critdiff.report.figures") == ["matplotlib"]
