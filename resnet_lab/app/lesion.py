"""The lesion view (Veit et al. 2016): click a block of a trained net to delete it and see its
test error at once."""

from __future__ import annotations

from contextlib import ExitStack

import ipywidgets as W
import torch

from ..nets.ensembles import deletable_blocks, without_block
from ..pictures.diagrams import draw_network
from ..training import data as datasets
from ..training.evaluation import evaluate, precise_bn
from .widgets import NetworkStrip, html_text


class LesionView:
    """Each trained net drawn as a strip; after training a click deletes a block (its output
    becomes its input, Veit et al. 2016) and the net's test error is measured at once.

    A table keeps "deleted blocks -> test error" for every net and every set of blocks deleted
    together (one block, or two): residual nets lose little,
    plain nets fall towards chance, because every path of a plain net runs through every block.
    """

    def __init__(self, test_samples: int = 2000):
        self.test_samples = test_samples
        self.strips: dict[str, NetworkStrip] = {}
        self.models: dict[str, torch.nn.Module] = {}
        self.deleted: dict[str, set[str]] = {}
        self.results: dict[str, dict[str, float]] = {}     # deleted blocks -> net -> error
        self.test: tuple[torch.Tensor, torch.Tensor] | None = None
        self.last_norms: dict[str, dict[str, float]] = {}
        self.readout = W.HTML()
        self.table = W.HTML()
        self.rows = W.VBox()
        self.widget = W.VBox([self.rows, self.readout, self.table])

    def prepare(self, models: dict[str, torch.nn.Module]) -> None:
        """A strip per net (not clickable while it trains), and no lesion results yet."""
        self.models, self.test, self.results, self.last_norms = models, None, {}, {}
        self.deleted = {name: set() for name in models}
        self.strips = {name: NetworkStrip(lambda block, n=name: self.toggle(n, block),
                                          mark="✕", marked_text="deleted",
                                          unmarked_text="in place",
                                          action="delete it or put it back")
                       for name in models}
        for name, model in models.items():
            self.strips[name].show(model, None, (), ())
        self.rows.children = [W.VBox([W.HTML(f"<b>{name}</b>"), strip.widget])
                              for name, strip in self.strips.items()]
        self.readout.value = self.table.value = ""

    def start(self, data: datasets.Dataset, last_norms: dict[str, dict[str, float]]) -> None:
        """Training is over: blocks that keep the shape become clickable. `last_norms` (net ->
        layer -> gradient norm at the last step) keeps each strip in its training colours."""
        self.last_norms = last_norms
        self.test = data.x_test[:self.test_samples], data.y_test[:self.test_samples]
        for model in self.models.values():      # the intact nets measured honestly (precise BN)
            precise_bn(model, data.x_train)
        self.results["none"] = {name: self.error(name) for name in self.models}
        for name in self.models:
            self.redraw(name)
        self.readout.value = ("<b>Lesion view:</b> click a block of a trained net to delete "
                              "it; click again to put it back.")
        self.render_table()

    def error(self, name: str) -> float:
        """Test error of net `name` with its deleted blocks taken out."""
        model = self.models[name]
        with ExitStack() as stack:
            for block in self.deleted[name]:
                stack.enter_context(without_block(model, block))
            return evaluate(model, *self.test)[1]

    def toggle(self, name: str, block: str) -> None:
        if self.test is None:
            return
        self.deleted[name] ^= {block}
        error = self.error(name)
        gone = " + ".join(sorted(self.deleted[name]))        # one block, or several together
        if gone:
            self.results.setdefault(gone, {})[name] = error
        what = f"without <b>{gone}</b>" if gone else "with every block in place"
        self.readout.value = (f"<b>{name}</b> {what}: test error "
                              f"<b class='lesion-error'>{100 * error:.1f}%</b> (intact: "
                              f"{100 * self.results['none'][name]:.1f}%)")
        self.redraw(name)
        self.render_table()

    def redraw(self, name: str) -> None:
        """The net's strip in its last training colours, deleted blocks marked."""
        model = self.models[name]
        clickable = deletable_blocks(model) if self.test is not None else ()
        self.strips[name].show(model, self.last_norms.get(name), self.deleted[name], clickable)

    def snapshot(self) -> list:
        """The readout, the table and each net drawn, its deleted blocks crossed out, for a
        page without a kernel."""
        size = (1, *self.test[0].shape[1:]) if self.test is not None else (1, 3, 32, 32)
        titles = {name: f"{name}: {' + '.join(sorted(gone))} deleted (✕)" if gone else
                  f"{name}: click a block to delete it" for name, gone in self.deleted.items()}
        return [html_text(self.readout.value), *([self.table_text()] if self.results else []),
                *(draw_network(model, size, title=titles[name], deleted=self.deleted[name])
                  for name, model in self.models.items())]

    def table_text(self) -> str:
        """The table as plain text, its columns aligned: deleted block -> each net's error."""
        names = list(self.models)
        rows = [["deleted block", *names]] + [
            [block, *(f"{100 * errors[n]:.1f}%" if n in errors else "" for n in names)]
            for block, errors in self.results.items()]
        widths = [max(len(row[i]) for row in rows) for i in range(len(names) + 1)]
        return "\n".join("  ".join(cell.rjust(w) if i else cell.ljust(w)
                                   for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
                         for row in rows)

    def render_table(self) -> None:
        names = list(self.models)
        head = "".join(f"<th style='padding:0 10px'>{n}</th>" for n in names)
        rows = "".join(
            f"<tr><td>{block}</td>" + "".join(
                f"<td style='text-align:right;padding:0 10px'>"
                f"{'' if n not in errors else f'{100 * errors[n]:.1f}%'}</td>" for n in names)
            + "</tr>" for block, errors in self.results.items())
        self.table.value = (f"<table class='lesion-table'><tr><th>deleted blocks</th>{head}</tr>"
                            f"{rows}</table>")
