"""The SupSup scenarios whose stages see a whole stream of tasks: NNs and HopSupSup."""

from __future__ import annotations

from unforget.utils.exit_codes import ExitCode
from unforget.utils.methods.supsup.settings import SupSupSettings


def run_scenario(settings: SupSupSettings) -> ExitCode:
    if settings.supsup_scenario == "nns":
        from unforget.utils.methods.supsup import nns

        return nns.train(settings) if settings.mode == "finetune" else nns.evaluate(settings)
    from unforget.utils.methods.supsup import hopfield

    return hopfield.train(settings) if settings.mode == "finetune" else hopfield.evaluate(settings)
