"""Chains in forked processes (bayescale._sampling._chains_in_processes): order, errors, a killed process."""

from __future__ import annotations

import os
import signal

import arviz as az
import numpy as np
import pytest

from bayescale import _sampling
from bayescale.errors import BayescaleError

pytestmark = pytest.mark.skipif(not _sampling._can_fork(), reason="chains are forked on Linux only")


def _pid_chain(chain: int, bar: bool) -> az.InferenceData:
    """A one-chain 'trace' that records which process sampled it and which chain it was."""
    return az.from_dict(posterior={"pid": np.full((1, 3), os.getpid()), "chain_id": np.full((1, 3), chain)})


def test_chains_run_in_other_processes_and_come_back_in_order():
    idata = _sampling._chains_in_processes(_pid_chain, chains=4, processes=2, progress=False)
    pids = idata.posterior["pid"].values[:, 0]
    np.testing.assert_array_equal(idata.posterior["chain_id"].values[:, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(idata.posterior.chain.values, [0, 1, 2, 3])
    assert pids[0] == pids[2] == os.getpid()  # this process keeps every other chain (and the progress bar)
    assert pids[1] == pids[3] != os.getpid()


def test_one_process_samples_every_chain_here():
    idata = _sampling._chains_in_processes(_pid_chain, chains=3, processes=1, progress=False)
    assert set(idata.posterior["pid"].values.ravel()) == {os.getpid()}


def test_an_error_in_a_forked_process_is_raised_here():
    def failing(chain: int, bar: bool) -> az.InferenceData:
        if chain == 1:
            raise ValueError("chain 1 failed on purpose")
        return _pid_chain(chain, bar)

    with pytest.raises(ValueError, match="chain 1 failed on purpose"):
        _sampling._chains_in_processes(failing, chains=2, processes=2, progress=False)


def test_a_killed_process_is_a_named_error_not_a_hang():
    def killed(chain: int, bar: bool) -> az.InferenceData:
        if chain == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return _pid_chain(chain, bar)

    with pytest.raises(BayescaleError, match=r"chains \[1\] ended without returning them.*cores=1"):
        _sampling._chains_in_processes(killed, chains=2, processes=2, progress=False)


def test_a_daemon_process_samples_its_chains_itself(monkeypatch):
    """Dask workers are daemon processes, which may not have children: their fits keep every chain at home."""
    import multiprocessing

    monkeypatch.setattr(multiprocessing.current_process(), "daemon", True, raising=False)
    assert _sampling._cores("nutpie", 4) == 1
