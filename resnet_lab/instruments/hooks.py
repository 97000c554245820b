"""Instruments that watch gradients and activations flow through a network, then clean up.

    with GradientNorms(model) as norms:      # hooks go on here ...
        train_a_few_steps(model)
    norms.names, norms.values()              # ... and are gone here, even after an exception

`GradientNorms` records, after every backward pass, the gradient norm of each conv/linear
layer's weights (batched `torch._foreach_norm`s, one device sync per recorded step).
`ActivationStats` records per-layer mean, std, dead fraction and a histogram.
`UpdateRatios` records how far each step moves each layer's weights (update / weight size).
`gradient_profile` is a single forward + backward that touches neither `.grad` nor hooks.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..nets.blocks import blocks_of
from ..nets.checks import check_count
from ..nets.devices import to_device_of

LAYER_TYPES = (nn.Conv2d, nn.Linear)


def weight_layers(model: nn.Module, shortcuts: bool = False) -> dict[str, nn.Module]:
    """Conv and linear layers in network order, by name. Projection shortcuts (`downsample`)
    are left out unless `shortcuts=True`: the profile follows the main path through the net."""
    return {name: m for name, m in model.named_modules()
            if isinstance(m, LAYER_TYPES) and (shortcuts or ".downsample." not in f".{name}.")}


def watched_weights(model: nn.Module, shortcuts: bool) -> tuple[list[str], list[torch.Tensor]]:
    """Names and weights of `weight_layers`; a clear error when there are none."""
    layers = weight_layers(model, shortcuts)
    if not layers:
        raise ValueError("model has no Conv2d or Linear layer to watch")
    return list(layers), [m.weight for m in layers.values()]


def layer_norms(weights: list[torch.Tensor], grads: list[torch.Tensor | None]) -> torch.Tensor:
    """The norm of each layer's gradient (0 where it got none), on the device: no sync here.
    Each is divided by its largest entry first: squared as it is, an entry below about 1e-23
    underflows float32 to 0, and a gradient that only vanished would read as exactly 0."""
    grads = [torch.zeros((), device=w.device) if g is None else g.detach()
             for w, g in zip(weights, grads, strict=True)]
    largest = torch._foreach_norm(grads, float("inf"))
    scaled = torch._foreach_div(grads, [m.clamp_min(torch.finfo(m.dtype).tiny) for m in largest])
    return (torch.stack(torch._foreach_norm(scaled)) * torch.stack(largest)).float()


def scaled_norm(t: torch.Tensor) -> torch.Tensor:
    """The norm of `t`, on the device, safe from underflow (see `layer_norms`)."""
    return layer_norms([t], [t])[0]


def weight_snapshot(model: nn.Module, shortcuts: bool = False) -> dict[str, torch.Tensor]:
    """A CPU copy of each watched layer's weights, to see later how far training moved them."""
    return {name: m.weight.detach().cpu().clone()
            for name, m in weight_layers(model, shortcuts).items()}


def relative_weight_change(model: nn.Module, snapshot: dict[str, torch.Tensor]
                           ) -> dict[str, float]:
    """||W - W0|| / ||W0|| of each layer in `snapshot`, wherever the model lives now."""
    change = {}
    for name, start in snapshot.items():
        weight = model.get_submodule(name).weight.detach()
        start = start.to(weight.device)
        change[name] = ((weight - start).norm() / start.norm()).item()
    return change


class Ring:
    """A bounded store of rows of floats: the last `capacity` rows are kept (a ring buffer)."""

    def __init__(self, width: int, capacity: int = 10_000):
        check_count("capacity", capacity)
        self.data = np.zeros((capacity, width), dtype=np.float32)
        self.steps = np.zeros(capacity, dtype=np.int64)
        self.count = 0

    def append(self, step: int, row: np.ndarray) -> None:
        i = self.count % len(self.data)
        self.data[i] = row
        self.steps[i] = step
        self.count += 1

    def _order(self) -> np.ndarray:
        n, cap = min(self.count, len(self.data)), len(self.data)
        return np.arange(self.count - n, self.count) % cap

    def values(self) -> np.ndarray:
        """The kept rows, oldest first: an array (rows, width)."""
        return self.data[self._order()].copy()

    def step_numbers(self) -> np.ndarray:
        return self.steps[self._order()].copy()

    def __len__(self) -> int:
        return min(self.count, len(self.data))


ATTACHED: weakref.WeakKeyDictionary[nn.Module, list] = weakref.WeakKeyDictionary()


def instruments_on(model: nn.Module) -> str:
    """"" when no instrument watches `model`, else which do (a captured graph runs no hook)."""
    names = [type(i).__name__ for i in ATTACHED.get(model, ())]
    return f"instruments attached ({', '.join(names)})" if names else ""


# where a module keeps its hooks (torch's attribute names; the global ones: "_global" + name)
HOOK_KINDS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def global_hooks() -> bool:
    """Whether a global module hook (nn.modules.module.register_module_forward_hook & co.) is
    registered: it runs on every module, so a captured graph would skip it too."""
    return any(getattr(torch.nn.modules.module, f"_global{kind}", None) for kind in HOOK_KINDS)


def capture_problem(model: nn.Module) -> str:
    """"" when a training step of `model` can be captured as a graph, else why not: an
    instrument or any forward/backward hook (a replay would not run it)."""
    hooked = [name or "the model" for name, m in model.named_modules()
              if any(getattr(m, kind, None) for kind in HOOK_KINDS)]
    if global_hooks():
        hooked.insert(0, "every module (global hooks)")
    return instruments_on(model) or (
        f"hooks attached (on {', '.join(hooked[:3])}{', ...' if len(hooked) > 3 else ''})"
        if hooked else "")


class Instrument:
    """Hook bookkeeping shared by the instruments: a context manager that removes itself.
    While attached it is listed in ATTACHED (the training engine asks `instruments_on`)."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.handles: list = []
        ATTACHED.setdefault(model, []).append(self)

    def remove(self) -> None:
        """Remove every hook this instrument added (safe to call twice)."""
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        attached = ATTACHED.get(self.model, [])
        if self in attached:
            attached.remove(self)
        if not attached:
            ATTACHED.pop(self.model, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


class LayerRecorder(Instrument):
    """An instrument that records one number per watched conv/linear layer (`names`, their
    `weights`) at each recorded step, the last `capacity` steps kept."""

    def __init__(self, model: nn.Module, shortcuts: bool, capacity: int):
        self.names, self.weights = watched_weights(model, shortcuts)
        super().__init__(model)
        self.ring = Ring(len(self.names), capacity)

    def values(self) -> np.ndarray:
        """The recorded numbers, an array (recorded steps, layers), oldest first."""
        return self.ring.values()

    def step_numbers(self) -> np.ndarray:
        """The step each row was recorded at (what counts as a step: the class says)."""
        return self.ring.step_numbers()


class GradientNorms(LayerRecorder):
    """Per-layer weight-gradient norms after every (or every `every`-th) backward pass.

    `block_outputs=True` also records the norm of the gradient arriving at each residual
    block's output: the signal that the skip connections carry ("gradient superhighway").
    Works on any model (an `nn.Sequential` too); hooks are removed on exit or `remove()`.
    """

    def __init__(self, model: nn.Module, *, every: int = 1, block_outputs: bool = False,
                 shortcuts: bool = False, capacity: int = 10_000):
        check_count("every", every)
        super().__init__(model, shortcuts, capacity)
        self.every = every
        self.backward_passes = 0         # seen so far: a row's step is the pass it came from
        self.blocks = blocks_of(model) if block_outputs else {}
        self.block_names = list(self.blocks)
        self.block_ring = Ring(len(self.block_names), capacity) if self.blocks else None
        self._block_sq: list[list[torch.Tensor]] = [[] for _ in self.block_names]
        # once per backward pass, when every watched weight that takes part has its gradient
        # (a public autograd hook: whatever the model returns, a tensor or a tuple)
        self.handles.append(torch.autograd.graph.register_multi_grad_hook(
            self.weights, self._record, mode="all"))
        for i, block in enumerate(self.blocks.values()):
            self.handles.append(block.register_forward_hook(self._block_hook(i)))

    def _recording(self) -> bool:
        return self.backward_passes % self.every == 0

    def _block_hook(self, i: int) -> Callable:
        def hook(module, inputs, output) -> None:   # returns None: the output is untouched
            if output.requires_grad and self._recording():
                output.register_hook(lambda g: self._block_sq[i].append(scaled_norm(g.detach())))
        return hook

    def _record(self, grads: Sequence[torch.Tensor | None]) -> None:
        if self._recording():
            rows = [layer_norms(self.weights, list(grads))]
            if self.blocks:   # a block used twice adds both gradients' squares (in float64)
                rows.append(torch.stack([torch.stack(sq).double().norm() if sq else
                                         rows[0].new_zeros(()) for sq in self._block_sq]).float())
            values = torch.cat(rows).cpu().numpy()       # the one device sync of this step
            self.ring.append(self.backward_passes, values[:len(self.names)])
            if self.block_ring is not None:
                self.block_ring.append(self.backward_passes, values[len(self.names):])
        for sq in self._block_sq:
            sq.clear()
        self.backward_passes += 1

    def block_values(self) -> np.ndarray:
        """Recorded block-output gradient norms, an array (recorded steps, blocks)."""
        if self.block_ring is None:
            raise ValueError("block outputs were not recorded; pass block_outputs=True")
        return self.block_ring.values()

    def to_dict(self) -> dict:
        """A plain, JSON-ready form: layer names, step numbers and a list of rows."""
        out = {"layers": self.names, "step": self.step_numbers().tolist(),
               "norms": self.values().tolist()}
        if self.block_ring is not None:
            out.update(blocks=self.block_names, block_norms=self.block_values().tolist())
        return out


ACTIVATION_TYPES = (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.GELU, nn.SiLU, nn.LeakyReLU)


class ActivationStats(Instrument):
    """Per-layer mean, std, fraction of exact zeros ("dead" units) and a fixed-bin histogram
    of the outputs of each watched module, at every (or every `every`-th) forward pass.

    Watches residual blocks when the model has any, else activation modules, else conv/linear
    layers; or the `modules` you name. The histogram covers [lo, hi] in `bins` bins: plotted as
    layer x step it is fast.ai's "colorful dimension" picture.
    """

    def __init__(self, model: nn.Module, modules: Iterable[str] | None = None, *,
                 every: int = 1, bins: int = 40, hist_range: tuple[float, float] = (-5.0, 5.0),
                 train_only: bool = True, capacity: int = 10_000):
        check_count("every", every)
        check_count("bins", bins)
        if hist_range[0] >= hist_range[1]:
            raise ValueError(f"hist_range={hist_range!r} is not allowed; "
                             "use (low, high) with low < high")
        super().__init__(model)
        named = dict(model.named_modules())
        if modules is not None:
            modules = list(modules)
            unknown = [n for n in modules if n not in named]
            if unknown:
                raise ValueError(f"modules={unknown!r} are not in the model; e.g. "
                                 f"{list(named)[1:4]!r}")
            chosen = {n: named[n] for n in modules}
        else:
            chosen = (blocks_of(model)
                      or {n: m for n, m in named.items() if isinstance(m, ACTIVATION_TYPES)}
                      or {n: m for n, m in named.items() if isinstance(m, LAYER_TYPES)})
        if not chosen:
            raise ValueError("modules=[] watches nothing; name at least one module, e.g. "
                             f"{list(named)[1:4]!r}" if modules is not None else
                             "model has no block, activation, Conv2d or Linear layer to watch")
        self.names = list(chosen)
        self.every, self.bins, self.hist_range = every, bins, hist_range
        self.train_only = train_only
        self.forwards = 0
        self._pending: list[list[torch.Tensor]] = [[] for _ in self.names]
        self.stats = Ring(3 * len(self.names), capacity)          # mean, std, dead per layer
        self.hist = Ring(bins * len(self.names), capacity)
        for i, m in enumerate(chosen.values()):
            self.handles.append(m.register_forward_hook(self._module_hook(i)))
        self.handles.append(model.register_forward_hook(self._flush))

    def _active(self) -> bool:
        return self.forwards % self.every == 0 and (self.model.training or not self.train_only)

    def _module_hook(self, i: int) -> Callable:
        def hook(module, inputs, output) -> None:   # returns None: the output is untouched
            if self._active() and not self._pending[i]:   # a reused module counts once
                a = output.detach().float()
                lo, hi = self.hist_range
                self._pending[i] = [a.mean(), a.std(), (a == 0).float().mean(),
                                    torch.histc(a, self.bins, lo, hi) / a.numel()]
        return hook

    def _flush(self, module, inputs, output) -> None:
        if self._active() and all(self._pending):
            scalars = torch.stack([torch.stack(p[:3]) for p in self._pending])     # (L, 3)
            hists = torch.stack([p[3] for p in self._pending])                     # (L, bins)
            flat = torch.cat([scalars.flatten(), hists.flatten()]).cpu().numpy()   # one sync
            self.stats.append(self.forwards, flat[:scalars.numel()])
            self.hist.append(self.forwards, flat[scalars.numel():])
        for p in self._pending:
            p.clear()
        self.forwards += 1

    def _stat(self, k: int) -> np.ndarray:
        return self.stats.values().reshape(len(self.stats), len(self.names), 3)[:, :, k]

    def means(self) -> np.ndarray:
        """(recorded steps, layers)."""
        return self._stat(0)

    def stds(self) -> np.ndarray:
        """(recorded steps, layers): He et al. 2015 Fig. 7 plots these."""
        return self._stat(1)

    def dead(self) -> np.ndarray:
        """(recorded steps, layers): fraction of outputs that are exactly zero."""
        return self._stat(2)

    def histograms(self) -> np.ndarray:
        """(recorded steps, layers, bins), each row a fraction of the layer's outputs."""
        return self.hist.values().reshape(len(self.hist), len(self.names), self.bins)

    def step_numbers(self) -> np.ndarray:
        return self.stats.step_numbers()


class UpdateRatios(LayerRecorder):
    """How far each step moves each layer's weights, relative to their size:
    ||W_after - W_before|| / ||W_before|| per conv/linear layer and training step.

    Karpathy's rule of thumb (`paper.KARPATHY_UPDATE_RATIO`): around 1e-3 per step is healthy;
    far below, the layer is not learning; far above, it is thrashing. Works with any training
    loop and optimizer: each training-mode forward pass compares the weights with those of the
    previous one, so what it records is the update the optimizer made in between (a row's step:
    the training forward pass it was measured at).
    """

    def __init__(self, model: nn.Module, *, shortcuts: bool = False, capacity: int = 10_000):
        super().__init__(model, shortcuts, capacity)
        self.forwards = 0
        self._before: list[torch.Tensor] | None = None
        self.handles.append(model.register_forward_pre_hook(self._on_forward))

    @torch.no_grad()
    def _on_forward(self, module, inputs) -> None:
        if not self.model.training:
            return
        now = [w.detach() for w in self.weights]
        if self._before is not None:
            moved = torch._foreach_norm(torch._foreach_sub(now, self._before))
            size = torch._foreach_norm(self._before)
            ratio = torch.stack(moved) / torch.stack(size).clamp_min(1e-30)
            self.ring.append(self.forwards, ratio.float().cpu().numpy())   # one sync a step
        self._before = [w.clone() for w in now]
        self.forwards += 1


def gradient_profile(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, *,
                     loss_fn: Callable | None = None, shortcuts: bool = False
                     ) -> dict[str, float]:
    """Per-layer weight-gradient norms from one forward + backward pass on (x, y).

    Leaves the model exactly as it was: `.grad` untouched (gradients come from
    `torch.autograd.grad`), no hooks added, BatchNorm running statistics restored.
    `loss_fn(output, y)` defaults to cross-entropy; with y=None, to mean(output**2)/2.
    x and y are moved to the model's device.
    """
    names, weights = watched_weights(model, shortcuts)
    x, y = to_device_of(model, x, y)
    saved = [b.detach().clone() for b in model.buffers()]
    try:
        with torch.enable_grad():
            out = model(x)
            if loss_fn is not None:
                loss = loss_fn(out, y)
            elif y is None:
                loss = out.pow(2).mean() / 2
            else:
                loss = F.cross_entropy(out, y)
            grads = torch.autograd.grad(loss, weights, allow_unused=True)
    finally:
        with torch.no_grad():
            for b, old in zip(model.buffers(), saved, strict=True):
                b.copy_(old)
    return dict(zip(names, layer_norms(weights, list(grads)).cpu().tolist(), strict=True))
