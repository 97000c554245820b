"""Shared test set-up: keep Jupyter, IPython and matplotlib files out of the home folder, run
the device-sensitive tests on every device this machine has, and the gpu tier (tests marked
`gpu`) only where CUDA is (or in gpu_check's dry run, RESNET_LAB_GPU_DRY_RUN=1)."""

import os
import tempfile

import pytest
import torch

from resnet_lab.nets.devices import available_devices

_TMP = tempfile.mkdtemp(prefix="resnet-lab-tests-")
for var in ("JUPYTER_RUNTIME_DIR", "IPYTHONDIR", "MPLCONFIGDIR"):
    os.environ.setdefault(var, os.path.join(_TMP, var.lower()))


@pytest.fixture(params=available_devices())
def device(request) -> str:
    """"cpu" always; "cuda" and "mps" where present. Tests taking it run once per device."""
    return request.param


GPU_TIER = torch.cuda.is_available() or os.environ.get("RESNET_LAB_GPU_DRY_RUN") == "1"


def pytest_report_header(config) -> str:
    return ("gpu tier: runs" if GPU_TIER else
            "gpu tier: skipped (no CUDA here; the tests marked gpu run in benchmarks/gpu_check.py)")


# whole modules of one tier; single slow tests carry @pytest.mark.slow themselves
MODULE_TIERS = {"test_browser.py": "browser", "test_install_paths.py": "install"}


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        tier = MODULE_TIERS.get(item.path.name)
        if tier:
            item.add_marker(tier)
    if not GPU_TIER:
        skip = pytest.mark.skip(reason="the gpu tier needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
