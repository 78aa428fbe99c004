"""Data-loading workers never outnumber the CPUs the process may run on, whatever the recipe asks."""

import logging

from edgenext.tasks import fit
from edgenext.train import runner as runner_mod
from edgenext.train import setup as setup_mod
from edgenext.train.setup import loader_workers


def test_workers_are_capped_at_the_cpus_of_the_process_and_the_log_says_so_once(tiny_config, monkeypatch, caplog):
    for module in (setup_mod, runner_mod):
        monkeypatch.setattr(module, "cores", lambda: 1)
    assert [loader_workers(n) for n in (0, 1, 8)] == [0, 1, 1]
    made = []

    class Recording(setup_mod.DataLoader):
        def __init__(self, *args, **kwargs):
            made.append(kwargs["num_workers"])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(setup_mod, "DataLoader", Recording)
    with caplog.at_level(logging.INFO, logger="edgenext"):
        fit(tiny_config(workers=8, epochs=1, train_limit=32, val_limit=16))
    assert made == [1, 1]  # the training and the validation loader
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("workers:")]
    assert lines == ["workers: 1 (the config's 8, capped at the CPUs this process may use: 1)"]
