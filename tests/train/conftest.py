import pytest


@pytest.fixture
def crash_after_mid_epoch_checkpoint(monkeypatch):
    """Make the next run stop (KeyboardInterrupt) one optimiser update after its first mid-epoch checkpoint of
    epoch 1, as if the machine went down there: that update is lost and must be redone. Returns the list the
    checkpoint's batch count is appended to; ``monkeypatch.undo()`` restores the real training step."""
    from edgenext.train import engine as engine_mod
    from edgenext.train import runner as runner_mod

    real_save, real_step = runner_mod._MidEpochSaver.__call__, engine_mod._optimizer_step
    saved_in_epoch_1: list[int] = []

    def save(self, global_step, progress):
        real_save(self, global_step, progress)
        if self.epoch == 1 and global_step % self.cfg.checkpoint_every == 0:
            saved_in_epoch_1.append(progress.batches)

    def step(parts):
        if saved_in_epoch_1:
            raise KeyboardInterrupt
        real_step(parts)

    monkeypatch.setattr(runner_mod._MidEpochSaver, "__call__", save)
    monkeypatch.setattr(engine_mod, "_optimizer_step", step)
    return saved_in_epoch_1
