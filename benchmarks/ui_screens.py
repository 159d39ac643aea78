"""Screenshots of every UI page, regenerated: runs the browser tests, whose seed data fills each page and whose
``shot()`` calls save one PNG per page and state, then prints JSON naming each file (under tests/artifacts/ui/,
git-ignored).

    python benchmarks/ui_screens.py

The pages are driven exactly as the tests drive them (a real API and UI on real SQLite storage, headless
Debian chromium), so a screenshot shows what a test asserted about that page. Look at each one after a
UI change: a test checks what it names, a reader sees what it does not.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "tests" / "artifacts" / "ui"


def main() -> int:
    started = time.time()
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             str(ROOT / "tests" / "test_ui_browser.py")], cwd=ROOT, capture_output=True, text=True)
    shots = sorted(p for p in SHOTS.glob("*.png") if p.stat().st_mtime >= started)
    print(json.dumps({"tests_passed": result.returncode == 0, "seconds": round(time.time() - started, 1),
                      "screenshots": [str(p.relative_to(ROOT)) for p in shots],
                      "tail": result.stdout.strip().splitlines()[-1:]}, indent=2))
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
