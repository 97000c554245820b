"""Layer 6, the lessons: what the notebooks share. Quick or full mode and the degradation
experiment (`settings`), a claim measured as a one-line verdict with its spread over seeds
(`verdicts`), each lesson's experiments (`experiments`, one module per lesson) and the checks of
the build-it-yourself exercises (`build_yourself`).

A notebook starts with `from resnet_lab import lessons` and calls `lessons.settings()`."""

from .build_yourself import check_bottleneck, check_resnet18
from .settings import (
    DEGRADATION_NETS,
    FULL,
    QUICK,
    Settings,
    degradation_data,
    degradation_nets,
    degradation_runs,
    lesson_data,
    settings,
)
from .verdicts import CLAIMS, MARGINS_FILE, Verdict, claim, verdict

__all__ = [
    "CLAIMS", "DEGRADATION_NETS", "FULL", "MARGINS_FILE", "QUICK", "Settings", "Verdict",
    "check_bottleneck", "check_resnet18", "claim", "degradation_data", "degradation_nets",
    "degradation_runs", "lesson_data", "settings", "verdict",
]
