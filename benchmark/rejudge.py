"""Re-judge recorded bench results in place with this version's memory model, floors and
roofline, and redraw their plots: ``python -m llmdoctor.benchmark.rejudge FILE.json ...``
(a FILE.png beside a FILE.json is redrawn from the re-judged JSON). The measurements are
never changed; only what is derived from them is."""

from __future__ import annotations

import json
import os
import sys

from llmdoctor.benchmark import run


def main(argv: list[str] | None = None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            result = run.rejudge(json.load(fh))
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
            fh.write("\n")
        png = os.path.splitext(path)[0] + ".png"
        if os.path.exists(png):
            run.plot(result, png)
        print(f"{path}: " + ", ".join(f"{n} {p.get('verdict')}" for n, p in result["profiles"].items())
              + f", exit code {run.exit_code(result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
