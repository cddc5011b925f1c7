"""NUTS throughput for every catalogue law: bayescale's default path against PyMC's default sampler.

Each law: 250 runs simulated over its [design] ranges (Student-t noise, as fitted), the law's default
draws/tune x 4 chains. Every row is a fresh Python process, so nothing is shared but the disk caches:
  nutpie (C), first   - the first fit of this law on this machine (empty bayescale cache: compiles)
  nutpie (C), later   - a fit in a new process once the law is cached (the normal case)
  nutpie-numba        - the Numba backend in a new process (compiles every time), then a refit in-process
  pymc                - pm.sample's default NUTS on the same model
"start" is the time from the fit call until NUTS begins (load or compile, MAP start);
ESS/s = the smallest bulk ESS over the law's parameters / the fit's wall time.
Usage: python bench/nuts.py [--quick] [law ...]   or   python bench/nuts.py --table LOG
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
import arviz as az, nutpie
import bayescale as bs
from bayescale.simulate import design_runs
name, sampler, draws, refit = sys.argv[1], sys.argv[2], int(sys.argv[3]) or None, sys.argv[4] == "1"
marks = {}
_sample = nutpie.sample
def sample(*a, **k):
    marks.setdefault("start", time.perf_counter())  # the first chain's call (chains are sampled one per call)
    return _sample(*a, **k)
nutpie.sample = sample
out = {}
for label, seed in (("first", 0), ("refit", 1))[: 2 if refit else 1]:
    data = design_runs(name, n=250, seed=seed, likelihood="student_t")
    marks.clear()
    t = time.perf_counter()
    # sampling speed only: the learned drift's extra refit (discrepancy="auto") is not what is compared
    options = dict(draws=draws, tune=draws, chains=4, seed=seed, progress=False, sampler=sampler, discrepancy=0.0)
    fit = bs.fit(name, data, **options)
    wall = time.perf_counter() - t
    s = az.summary(fit.idata, var_names=list(fit.law.params), kind="diagnostics", round_to="none")
    out[label] = {"wall": wall, "start": marks.get("start", t) - t, "ess": float(s["ess_bulk"].min()),
                  "rhat": float(s["r_hat"].max()), "div": fit.diagnostics["divergences"]}
print("RESULT" + json.dumps(out))
"""


def child(name: str, sampler: str, draws: int, refit: bool, cache: str) -> dict | None:
    env = {**os.environ, "BAYESCALE_CACHE": cache}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, name, sampler, str(draws), "1" if refit else "0"],
        capture_output=True,
        text=True,
        env=env,
    )
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    if not line:
        print(f"  {name}/{sampler} FAILED: {proc.stderr[-1500:]}", flush=True)
        return None
    return json.loads(line[0][6:])


def main() -> None:
    import bayescale as bs

    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    draws = 300 if "--quick" in sys.argv else 0  # 0: the law's own default
    if "--table" in sys.argv:  # re-render the JSON lines of an earlier run's log
        rows = [json.loads(ln) for ln in open(args[0]) if ln.startswith("{")]
        print_table(rows, draws)
        return
    names = args or [n for n in bs.laws() if len(bs.law(n).design.get("ranges", {})) == len(bs.law(n).inputs)]
    rows = []
    for name in names:
        cache = tempfile.mkdtemp(prefix="bayescale-bench-")
        r = {"law": name}
        r["c_first"] = child(name, "nutpie", draws, False, cache)
        r["c_later"] = child(name, "nutpie", draws, False, cache)
        r["numba"] = child(name, "nutpie-numba", draws, True, cache)
        r["pymc"] = child(name, "pymc", draws, False, cache)
        rows.append(r)
        print(json.dumps(r), flush=True)
    print_table(rows, draws)


PYMC_UNCONVERGED = 1.1  # above this R-hat PyMC's run is no reference


def print_table(rows: list[dict], draws: int) -> None:
    """The README table from the per-law results (also: python bench/nuts.py --table LOG re-renders a log)."""
    print(
        "\n| law | PyMC wall (s) | PyMC ESS/s | C first fit (s) | C later: start (s) | C later wall (s) | C later ESS/s "
        "| **vs PyMC** | numba new process (s) | numba refit (s) | numba refit ESS/s | divergences C/PyMC |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    ratios = []
    for r in rows:
        p, f, c, nb = r["pymc"], r["c_first"], r["c_later"], r["numba"]
        if not (p and f and c and nb):
            continue
        p, f, c = p["first"], f["first"], c["first"]
        pe, ce = p["ess"] / p["wall"], c["ess"] / c["wall"]
        if p["rhat"] > PYMC_UNCONVERGED:  # no reference: PyMC's chains disagree, so its ESS/s means nothing
            ratio = f"n/a (PyMC R-hat {p['rhat']:.2f})"
        else:
            ratios.append(ce / pe)
            ratio = f"**{ce / pe:.1f}x**"
        print(
            f"| {r['law']} | {p['wall']:.1f} | {pe:.0f} | {f['wall']:.1f} | {c['start']:.2f} | {c['wall']:.1f} | {ce:.0f} "
            f"| {ratio} | {nb['first']['wall']:.1f} | {nb['refit']['wall']:.1f} "
            f"| {nb['refit']['ess'] / nb['refit']['wall']:.0f} | {c['div']}/{p['div']} |"
        )
    if ratios:
        import numpy as np

        print(
            f"\nESS/s vs PyMC, default path: median {np.median(ratios):.1f}x, min {min(ratios):.1f}x "
            f"(over {len(ratios)} laws where PyMC's R-hat <= {PYMC_UNCONVERGED})"
        )
    print(f"{'300 draws + 300 tune' if draws else 'law default draws + tune'} x 4 chains, 250 runs; {_machine()}")


def _machine() -> str:
    import platform

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"bench took {time.perf_counter() - start:.0f} s")
