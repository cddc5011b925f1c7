"""Point fits on the real Chinchilla runs: variable projection (`method="map"`) vs the classic multi-start recipe.

Both minimise the same objective: the sum over runs of Huber(delta=1e-3) of log L_pred - log L_obs
(Hoffmann et al. 2022; Besiroglu et al. 2024). Classic = L-BFGS-B (analytic gradient) from every point
of the Epoch grid (4500 starts unless --starts N thins it). VP = one deterministic search: NNLS for the
linear part inside a grid + Nelder-Mead search over (alpha, beta), then one polish. Timed in the same
run; VP is timed --repeats times (median reported). Two data sets: Epoch's protocol (drop the 5
highest-loss runs, 240 runs) and all 245 runs. Writes bench/results/pointfit.md and prints it.

Usage: python bench/pointfit.py [--starts N] [--repeats R]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import bayescale as bs
from bayescale import pointfit as pf

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "chinchilla-epoch" / "svg_extracted_data.csv"
EPOCH = {"E": 1.8172, "alpha": 0.3478, "beta": 0.3658, "A": 482.01, "B": 2085.43}


def load(epoch_protocol: bool) -> bs.ScalingData:
    data = bs.ScalingData.from_csv(DATA, columns={"N": "Model Size", "C": "Training FLOP", "loss": "loss"})
    data = data.with_inputs(["N", "D"])
    if epoch_protocol:
        loss = data["loss"]
        data = data.subset(loss < np.sort(loss)[-5])
    return data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=None, help="thin the 4500-start classic grid to N starts")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"real data not found at {DATA}")
    rows = []
    for label, epoch_protocol in (("Epoch protocol (240 runs)", True), ("all 245 runs", False)):
        data = load(epoch_protocol)
        vps = [pf.map_fit("chinchilla", data) for _ in range(args.repeats)]
        vp = vps[0]
        vp_seconds = statistics.median(f.seconds for f in vps)
        classic = pf.classic_fit(data, n_starts=args.starts, seed=0)
        epoch_params = {
            "E": EPOCH["E"],
            "alpha": EPOCH["alpha"],
            "beta": EPOCH["beta"],
            "a": np.log(EPOCH["A"]) - EPOCH["alpha"] * np.log(1e9),
            "b": np.log(EPOCH["B"]) - EPOCH["beta"] * np.log(1e11),
        }
        rows.append(
            dict(
                label=label,
                n=len(data),
                vp=vp,
                vp_seconds=vp_seconds,
                classic=classic,
                epoch_objective=pf.huber_objective("chinchilla", data, epoch_params),
            )
        )
        print(label, vp, classic, sep="\n  ", flush=True)

    lines = [
        "| data | method | objective (sum Huber) | VP - classic | wall (s) | classic / VP time "
        "| E | alpha | beta | A | B |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        vp, classic = r["vp"], r["classic"]
        for name, f, secs in (
            ("VP (map_fit), 1 start", vp, r["vp_seconds"]),
            (f"classic, {classic.info['n_starts']} L-BFGS-B starts", classic, classic.seconds),
        ):
            p = f.params
            diff = f"{vp.objective - classic.objective:+.2e}" if f is vp else ""
            ratio = f"{classic.seconds / r['vp_seconds']:.1f}x" if f is vp else "1.0x"
            lines.append(
                f"| {r['label']} | {name} | {f.objective:.10f} | {diff} | {secs:.2f} | {ratio} | "
                f"{p['E']:.4f} | {p['alpha']:.4f} | {p['beta']:.4f} | {p['A']:.1f} | {p['B']:.1f} |"
            )
        lines.append(
            f"| {r['label']} | Epoch's published estimate | {r['epoch_objective']:.10f} | | | | "
            f"{EPOCH['E']} | {EPOCH['alpha']} | {EPOCH['beta']} | {EPOCH['A']} | {EPOCH['B']} |"
        )
    notes = [
        "",
        "Classic starts that reached the best objective (within 1e-9): "
        + "; ".join(
            f"{r['label']}: {r['classic'].info['n_starts_at_best']} of {r['classic'].info['n_starts']}" for r in rows
        )
        + ".",
        f"VP wall time is the median of {args.repeats} runs; VP profile evaluations: "
        + "; ".join(f"{r['label']}: {r['vp'].info['profile_evals']}" for r in rows)
        + ".",
        "Both methods run with OpenBLAS limited to one thread (bayescale.pointfit does this itself).",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"load average at the end {os.getloadavg()[0]:.1f} (the machine was shared with other test runs). "
        f"Date: {time.strftime('%Y-%m-%d')}.",
    ]
    text = (
        "# Point fits on the real Chinchilla data: variable projection vs classic multi-start\n\n"
        + "\n".join(lines + notes)
        + "\n"
    )
    out = ROOT / "bench" / "results" / "pointfit.md"
    out.write_text(text)
    print("\n" + text)


if __name__ == "__main__":
    main()
