"""Records what this build produces for every case of `cases.py` into `outputs.json`:

    python tests/golden/make_golden.py        # from the repository root, with the build to record

First recorded before the fast paths of issue 15 changed the code; re-recorded at ae244af (no
code change) when the inputs became integer-exact, so that it holds on every numpy version and
architecture. The cases whose inputs did not change kept their recorded values. Re-recorded
for issue 24's precision chooser (FORMAT.md 5.4), and again when its bound of a table that fits
went from 32 to 16 KiB: each time only the cases whose tables' precision changed moved, checked
by `check_moved.py` against the record before. Re-recorded for the encoder's lane counts
(`stream_lanes`, FORMAT.md 5.5): only the cases whose streams' lanes changed moved (41, by at
most +0.35 %), checked the same way.
"""

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cases  # noqa: E402


def main():
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=cases.ROOT).stdout.strip()
    record = {"commit": commit, "cases": dict(cases.all_cases())}
    out = Path(__file__).resolve().parent / "outputs.json"
    out.write_text(json.dumps(record, indent=0, sort_keys=True) + "\n")
    print(f"{len(record['cases'])} cases from {commit} -> {out}")


if __name__ == "__main__":
    main()
