"""Shared test set-up: keep Jupyter, IPython and matplotlib files out of the home folder."""

import os
import tempfile

_TMP = tempfile.mkdtemp(prefix="resnet-lab-tests-")
for var in ("JUPYTER_RUNTIME_DIR", "IPYTHONDIR", "MPLCONFIGDIR"):
    os.environ.setdefault(var, os.path.join(_TMP, var.lower()))
