"""Execute the analysis notebooks in notebooks/ (on real data in ../shared/data), optionally writing HTML.

    python -m bayescale.notebooks [--html] [--size small|full] [NAME ...]

Each notebook reads `BAYESCALE_NOTEBOOK_SIZE` ("small": few draws and data subsets, for tests; "full":
draws=1000, tune=1000, chains=4) in its first code cell and its data by the relative path
../../shared/data from its own folder. Executed notebooks are never written back: the .ipynb files in the
repository carry no outputs; `--html` writes a rendered copy next to each one instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
SHARED_DATA = REPO.parent / "shared" / "data"
SIZES = ("small", "full")


def notebooks() -> list[Path]:
    """The analysis notebooks, in reading order."""
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def missing_data(path: str | Path | None = None) -> str | None:
    """Why a notebook (any, without `path`) cannot run here: it reads ../shared/data and that folder is absent.
    None when it can (notebooks on the data shipped in the package, bs.datasets, run anywhere)."""
    if path is not None and "shared" not in Path(path).read_text(encoding="utf-8"):
        return None
    if not SHARED_DATA.is_dir():
        return f"shared data not found at {SHARED_DATA} (it lives in ../shared/data beside the checkout)"
    return None


def run(path: str | Path, size: str = "small", timeout: int = 1200, kernel_name: str = "python3"):
    """Execute one notebook with cwd = its folder and BAYESCALE_NOTEBOOK_SIZE = `size`; return the executed copy.

    Raises nbclient's CellExecutionError on the first cell that fails; the file on disk is left untouched.
    """
    import nbformat
    from nbclient import NotebookClient

    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    path = Path(path).resolve()
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name=kernel_name, resources={"metadata": {"path": str(path.parent)}}
    )
    env = {**os.environ, "BAYESCALE_NOTEBOOK_SIZE": size, "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    client.execute(env=env)
    return nb


def to_html(nb, path: str | Path) -> Path:
    """Write an executed notebook as HTML (needs nbconvert)."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb)
    path = Path(path)
    path.write_text(body, encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bayescale.notebooks", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook names or stems to run (default: all)")
    parser.add_argument("--html", action="store_true", help="write NAME.html next to each executed notebook")
    parser.add_argument(
        "--size",
        choices=SIZES,
        default=os.environ.get("BAYESCALE_NOTEBOOK_SIZE", "full"),
        help="sampling size (default: $BAYESCALE_NOTEBOOK_SIZE, else full)",
    )
    parser.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    reason = missing_data()
    if reason:
        print(f"skipping notebooks: {reason}", file=sys.stderr)
        return 0
    paths = notebooks()
    if args.names:
        paths = [p for p in paths if p.name in args.names or p.stem in args.names]
        if not paths:
            print(f"no notebook matches {args.names}; have {[p.name for p in notebooks()]}", file=sys.stderr)
            return 2
    failed = []
    for path in paths:
        start = time.perf_counter()
        try:
            nb = run(path, size=args.size, timeout=args.timeout)
        except Exception as exc:  # report every notebook, then fail
            failed.append(path.name)
            print(f"FAILED {path.name}: {type(exc).__name__}: {str(exc)[-2000:]}", file=sys.stderr)
            continue
        line = f"ran {path.name} ({args.size}) in {time.perf_counter() - start:.0f} s"
        if args.html:
            line += f" -> {to_html(nb, path.with_suffix('.html')).name}"
        print(line, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
