"""Concurrency and kills: two processes compiling one law at once, and a process killed while it writes a
saved fit, leave a valid compile cache and a valid fit file (the old one or the new one)."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time

import bayescale as bs

FIT_TINY = (
    "import warnings, bayescale as bs\n"
    "from bayescale.simulate import design_runs\n"
    "warnings.simplefilter('ignore')\n"
    "fit = bs.fit('power', design_runs('power', seed=0), draws=20, tune=20, chains=2, seed=0, progress=False)\n"
)


def test_two_processes_compiling_one_law_at_once_leave_one_valid_cache_entry(tmp_path):
    env = os.environ | {"BAYESCALE_CACHE": str(tmp_path / "cache")}
    procs = [subprocess.Popen([sys.executable, "-c", FIT_TINY], env=env, stderr=subprocess.PIPE) for _ in range(2)]
    errors = [p.communicate(timeout=600)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    files = sorted(os.listdir(tmp_path / "cache"))
    assert len(files) == 1 and files[0].endswith(".pkl"), files  # no half-written temporary file is left
    with open(tmp_path / "cache" / files[0], "rb") as fh:
        assert set(pickle.load(fh)) == {"module_dir", "cxxflags"}  # the header: where PyTensor keeps the law's C module
        assert type(pickle.load(fh)).__name__ == "CFunctions"


def test_a_process_killed_while_saving_leaves_the_old_or_the_new_fit(tmp_path):
    path = tmp_path / "fit.nc"
    saver = FIT_TINY + f"while True:\n    fit.save({str(path)!r})\n"
    log = tmp_path / "saver.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", saver], stderr=err)
    try:
        deadline = time.monotonic() + 300
        while not path.exists() and proc.poll() is None and time.monotonic() < deadline:  # first save complete
            time.sleep(0.05)
        assert path.exists(), f"the saving process wrote no fit (exit {proc.poll()}): {log.read_text()[-2000:]}"
        for delay in (0.013, 0.071, 0.19):  # readers during the saves always find a whole fit
            time.sleep(delay)
            assert bs.load(path).law.name == "power"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    fit = bs.load(path)  # the file at the path is whole: the last complete save
    assert fit.law.name == "power" and fit.n_draws == 40
    assert {p.name for p in tmp_path.iterdir() if not p.name.endswith(".tmp")} == {"fit.nc", "saver.log"}
