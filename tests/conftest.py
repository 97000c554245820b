"""Shared test set-up: keep Jupyter, IPython and matplotlib files out of the home folder, and
run the device-sensitive tests on every device this machine has."""

import os
import tempfile

import pytest

from resnet_lab.devices import available_devices

_TMP = tempfile.mkdtemp(prefix="resnet-lab-tests-")
for var in ("JUPYTER_RUNTIME_DIR", "IPYTHONDIR", "MPLCONFIGDIR"):
    os.environ.setdefault(var, os.path.join(_TMP, var.lower()))


@pytest.fixture(params=available_devices())
def device(request) -> str:
    """"cpu" always; "cuda" and "mps" where present. Tests taking it run once per device."""
    return request.param
