"""Pick the default NUTS backend by measurement: PyMC's sampler vs nutpie vs numpyro.

Chinchilla law, 250 simulated runs, 4 chains x 1000 draws (+1000 tune). Each backend runs in a fresh
process so "first fit" includes compilation; "refit" is a second fit on new data in the same process.
ESS/s = smallest bulk ESS over the parameters / wall time of that fit. Ratios are against PyMC's
default sampler measured in the same run. Usage: python bench/backends.py [--quick]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

CONFIGS = {
    "pymc (default NUTS)": dict(sampler="pymc"),
    "numpyro via pm.sample": dict(sampler="numpyro"),
    "nutpie, diagonal mass matrix": dict(sampler="nutpie", low_rank_modified_mass_matrix=False, target_accept=0.8),
    "nutpie, low-rank + target_accept 0.95 (bayescale default)": dict(sampler="nutpie"),
}

CHILD = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
t0 = time.perf_counter()
import arviz as az
import bayescale as bs
from bayescale.simulate import chinchilla_runs
opts = json.loads(sys.argv[1]); draws = int(sys.argv[2])
out = {"import_s": time.perf_counter() - t0}
for label, seed in (("first", 0), ("refit", 1)):
    data = chinchilla_runs(n=250, noise=0.01, seed=seed)
    t = time.perf_counter()
    # sampling speed only, without the learned drift's extra refit
    fit = bs.fit("chinchilla", data, draws=draws, tune=draws, chains=4, seed=seed, progress=False, discrepancy=0.0, **opts)
    wall = time.perf_counter() - t
    ess = az.summary(fit.idata, var_names=list(fit.law.params), kind="diagnostics", round_to="none")["ess_bulk"].min()
    out[label] = {"wall_s": wall, "min_ess_bulk": float(ess), "ess_per_s": float(ess) / wall,
                  "divergences": fit.diagnostics["divergences"], "max_rhat": fit.diagnostics["max_rhat"]}
print("RESULT" + json.dumps(out))
"""


def main() -> None:
    draws = 200 if "--quick" in sys.argv else 1000
    rows = {}
    for name, opts in CONFIGS.items():
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps(opts), str(draws)], capture_output=True, text=True
        )
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
        if not line:
            print(f"{name}: FAILED\n{proc.stderr[-2000:]}")
            continue
        rows[name] = json.loads(line[0][6:])
        rows[name]["process_s"] = time.perf_counter() - start
        print(name, json.dumps(rows[name]), flush=True)
    ref = rows.get("pymc (default NUTS)")
    print(
        "\n| backend | first fit wall (s, incl. compile) | refit wall (s) | ESS/s first | ESS/s refit | "
        "ESS/s refit vs PyMC | divergences (first/refit) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        ratio = r["refit"]["ess_per_s"] / ref["refit"]["ess_per_s"] if ref else float("nan")
        print(
            f"| {name} | {r['first']['wall_s']:.1f} | {r['refit']['wall_s']:.1f} | {r['first']['ess_per_s']:.0f} | "
            f"{r['refit']['ess_per_s']:.0f} | {ratio:.1f}x | {r['first']['divergences']}/{r['refit']['divergences']} |"
        )
    print(f"\n{draws} draws + {draws} tune x 4 chains, 250 runs; machine: {_machine()}")


def _machine() -> str:
    import os
    import platform

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


if __name__ == "__main__":
    main()
