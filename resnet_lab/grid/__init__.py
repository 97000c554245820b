"""Layer 4, the grid: He et al.'s Fig. 6 and Table 6 reproduced, plain and residual nets over
depth and seeds. `runs` plans and trains one grid run and keeps the output folder, `cluster`
runs the grid on Ray, `reproduce` puts them together and `report` writes the figure and table.

Imports `nets` and `training`."""

from .report import show, write_report
from .runs import Grid

__all__ = ["Grid", "show", "write_report"]
