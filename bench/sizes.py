"""How a default fit's time, memory and saved size grow with the number of runs (rows).

Each size is a fresh Python process: simulate `n` Chinchilla runs, fit with the defaults (4 chains x 1000 draws,
500 from 20,000 runs; the calibration included), save. Reported: wall time of the fit, peak resident memory of
the process and of the forked processes that sampled chains, and the size of the saved .nc. The law is compiled
once beforehand, so no row pays for compilation.

Usage: python bench/sizes.py [--sizes 1000,3000,10000]      results: bench/results/sizes.md
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
CHILD = """
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
import bayescale as bs
from bayescale.simulate import chinchilla_runs
n, out = int(sys.argv[1]), sys.argv[2]
data = chinchilla_runs(n=n, noise=0.01, seed=0)
t = time.perf_counter()
fit = bs.fit("chinchilla", data, seed=0, progress=False)
seconds = time.perf_counter() - t
fit.save(out)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
forked = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest process that sampled chains
print(json.dumps({"rows": n, "fit (s)": seconds, "peak memory (MB)": peak, "forked process peak (MB)": forked}))
"""


def measure(n: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fit.nc"
        done = subprocess.run([sys.executable, "-c", CHILD, str(n), str(out)], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(done.stderr[-2000:])
        row = json.loads(done.stdout.strip().splitlines()[-1])
        return row | {"saved fit (MB)": out.stat().st_size / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,3000,10000")
    args = parser.parse_args()
    measure(200)  # compile the law once (disk cache), so that no measured row includes compilation
    rows = []
    for n in map(int, args.sizes.split(",")):
        rows.append(measure(n))
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows).set_index("rows")
    text = (
        "# Default chinchilla fit by number of runs (fresh process each; default draws: 4 x (1000 tune + 1000), "
        "from 20,000 runs 4 x (300 tune + 500); calibration included)\n\n" + table.to_markdown(floatfmt=".1f")
    )
    (HERE / "results" / "sizes.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
