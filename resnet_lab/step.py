"""One model's training step as an object: the seam between the training loop and the device.

    step = Step(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    row = step(x, y, lr=0.1)      # a tensor on the device: [loss, error, norm_1, ..., norm_L]

`Step` is the eager step: forward (bf16 autocast on CUDA), loss, backward, the per-layer
gradient norms read from `.grad` in one `torch._foreach_norm`, then the optimizer's step. It
returns its numbers as one tensor on the device and reads nothing back to the host, so a loop
can keep a GPU busy and copy many rows at once (`train.compare` does, once per flush).

`CapturedStep` (for CUDA) records the same step once into a CUDA graph and replays it: one
launch per step instead of hundreds of small kernels. The learning rate is a tensor that the
graph reads (fused SGD), so a schedule never recaptures; a change of what Python bakes into the
graph (training mode, a skip gate, the batch shape) does, at most `MAX_RECAPTURES` times. At its
first replay it checks itself against the eager step on the same batch, and on any error or
mismatch it falls back to eager training, saying why (`graphs="require"` raises instead).
Not yet verified on GPU hardware: the CPU tests drive it through a fake graph.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_choice
from .devices import device_of
from .hooks import layer_norms, watched_weights
from .models import blocks_of

GRAPH_MODES = ("auto", "off", "require")


def autocast(device: torch.device, cache: bool = True):
    """bf16 autocast on CUDA (inside a graph capture: no weight cache), a no-op elsewhere."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda",
                          cache_enabled=cache)


def layout(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Images in channels-last on CUDA (faster convolutions there), as they are elsewhere."""
    return x.contiguous(memory_format=torch.channels_last) \
        if device.type == "cuda" and x.dim() == 4 else x


def classification_error(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The fraction of wrong answers (1 - accuracy), on the device."""
    return (out.argmax(1) != y).float().mean()


class Step:
    """Forward, loss, backward, norms and the optimizer's step for one model.

    `loss_fn(output, target)` is cross-entropy by default (any loss works, e.g. F.mse_loss);
    `error_fn` gives the row's error column (None: NaN). With `norms=False` the row is just
    [loss, error]. `engine` says how the step runs ("eager", or why a graph is off).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, *,
                 loss_fn: Callable = F.cross_entropy,
                 error_fn: Callable | None = classification_error, norms: bool = True,
                 name: str = "model"):
        self.model, self.optimizer, self.name = model, optimizer, name
        self.loss_fn, self.error_fn = loss_fn, error_fn
        self.layers, self.weights = watched_weights(model, False) if norms else ([], [])
        self.device = device_of(model)
        self.engine = "eager"

    @property
    def width(self) -> int:
        """The length of a row: loss, error and one norm per watched layer."""
        return 2 + len(self.layers)

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def __call__(self, x: torch.Tensor, y: torch.Tensor, lr: float | None = None,
                 norms: bool = True) -> torch.Tensor:
        """One training step on (x, y); `norms=False` leaves the norms NaN (not computed)."""
        if lr is not None:
            self.set_lr(lr)
        return self.compute(x, y, norms)

    def compute(self, x: torch.Tensor, y: torch.Tensor, norms: bool = True,
                set_to_none: bool = True, cache: bool = True) -> torch.Tensor:
        """The step itself. `set_to_none=False` zeroes `.grad` in place instead of dropping it
        (a captured graph's gradients must stay where they are)."""
        with autocast(self.device, cache):
            out = self.model(x)
        loss = self.loss_fn(out.float(), y)
        self.optimizer.zero_grad(set_to_none=set_to_none)
        loss.backward()
        error = self.error_fn(out, y) if self.error_fn else loss.new_full((), float("nan"))
        row = [loss.detach().float().reshape(1), error.detach().float().reshape(1)]
        if self.weights:
            row.append(layer_norms(self.weights, [w.grad for w in self.weights]) if norms
                       else loss.new_full((len(self.weights),), float("nan")))
        self.optimizer.step()
        return torch.cat(row)


def fused_sgd_problem(device: torch.device) -> str:
    """"" when SGD can read a tensor learning rate on `device` (fused=True), else why not."""
    try:
        weight = torch.zeros(2, device=device, requires_grad=True)
        opt = torch.optim.SGD([weight], lr=torch.tensor(0.1, device=device), momentum=0.9,
                              fused=True)
        weight.grad = torch.ones_like(weight)
        opt.step()
        return ""
    except (RuntimeError, TypeError, ValueError) as err:
        return f"fused SGD with a tensor learning rate is not supported: {err}"


class CudaGraphs:
    """The few CUDA calls a captured step makes; the CPU tests swap in a fake."""

    def __init__(self):
        self.stream = torch.cuda.Stream()

    def warm_up(self, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Run `fn` on a side stream, as capture wants its first steps run."""
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            out = fn()
        torch.cuda.current_stream().wait_stream(self.stream)
        return out

    def capture(self, fn: Callable[[], torch.Tensor]):
        """Record `fn` (nothing runs): the graph and `fn`'s output, refilled by each replay."""
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=self.stream):
            out = fn()
        return graph, out


class CapturedStep(Step):
    """A `Step` for CUDA that replays a captured graph; see the module's docstring.

    SGD with momentum and weight decay (fused, reading its learning rate from a 0-dim tensor).
    The first `WARM_UP` steps run eagerly on a side stream (they train: they count). Rows
    always carry the norms (a graph cannot skip them).
    """

    WARM_UP = 3
    MAX_RECAPTURES = 3
    RTOL, ATOL = 2e-2, 1e-3     # the self-check's tolerance: bf16 has 8 bits of mantissa

    def __init__(self, model: nn.Module, *, lr: float, momentum: float, weight_decay: float,
                 graphs: str = "auto", backend: CudaGraphs | None = None, **options):
        check_choice("graphs", graphs, ("auto", "require"))
        self.lr = torch.tensor(float(lr), device=device_of(model))
        optimizer = torch.optim.SGD(model.parameters(), lr=self.lr, momentum=momentum,
                                    weight_decay=weight_decay, fused=True)
        super().__init__(model, optimizer, **options)
        self.require = graphs == "require"
        self.backend = backend if backend is not None else CudaGraphs()
        self.blocks = list(blocks_of(model).values())
        self.graph, self.key, self.captures, self.warmed = None, None, 0, 0
        self.static: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self.engine = "cuda graph"

    def set_lr(self, lr: float) -> None:
        if self.engine == "cuda graph":
            self.lr.fill_(lr)                  # on the device: the graph reads it, no recapture
        else:
            super().set_lr(lr)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, lr: float | None = None,
                 norms: bool = True) -> torch.Tensor:
        if lr is not None:
            self.set_lr(lr)
        if self.engine != "cuda graph":
            return self.compute(x, y)
        try:
            if self.warmed < self.WARM_UP:
                self.warmed += 1
                return self.backend.warm_up(lambda: self.compute(x, y))
            if self.key != self.current_key(x, y):
                return self.first_replay(x, y)
            self.static[0].copy_(x)
            self.static[1].copy_(y)
            self.graph.replay()
            return self.static[2].clone()      # the next replay overwrites the static row
        except Exception as err:               # noqa: BLE001 - any failure means: go eager
            return self.fall_back(f"{type(err).__name__}: {err}", x, y)

    def current_key(self, x: torch.Tensor, y: torch.Tensor) -> tuple:
        """What Python bakes into the graph: a change means a recapture."""
        return (self.model.training, tuple(b.skip for b in self.blocks), tuple(x.shape),
                tuple(y.shape), x.dtype, y.dtype)

    def first_replay(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Capture for this key, replay once, and check the replay against the eager step on
        the same batch and state. The eager step's result stands as this step."""
        if self.captures > self.MAX_RECAPTURES:
            return self.fall_back(f"recaptured {self.MAX_RECAPTURES} times already", x, y)
        self.release()
        self.captures += 1
        self.static = (x.clone(), y.clone(), None)
        before = self.snapshot()
        graph, row = self.backend.capture(
            lambda: self.compute(self.static[0], self.static[1], set_to_none=False,
                                 cache=False))
        self.graph, self.static = graph, (self.static[0], self.static[1], row)
        self.restore(before)                   # capture may have touched nothing; be sure
        self.graph.replay()
        replayed, after_graph = row.clone(), self.snapshot()
        self.restore(before)
        eager = self.compute(x, y, set_to_none=False)
        problem = self.mismatch(replayed, eager, after_graph, self.snapshot())
        if problem:
            return self.fall_back(problem, x, y, done=eager)
        self.key = self.current_key(x, y)
        return eager

    def state(self) -> list[torch.Tensor]:
        """Everything a step changes, live: weights, BatchNorm buffers, momentum."""
        momentum = [s["momentum_buffer"] for s in self.optimizer.state.values()
                    if s.get("momentum_buffer") is not None]
        return [*self.model.state_dict().values(), *momentum]

    def snapshot(self) -> list[torch.Tensor]:
        return [t.detach().clone() for t in self.state()]

    def restore(self, saved: list[torch.Tensor]) -> None:
        """Put a snapshot back in place (the graph keeps pointing at the same tensors)."""
        with torch.no_grad():
            for tensor, value in zip(self.state(), saved, strict=True):
                tensor.copy_(value)

    def mismatch(self, graph_row: torch.Tensor, eager_row: torch.Tensor,
                 graph_state: list[torch.Tensor], eager_state: list[torch.Tensor]) -> str:
        """"" when the replay and the eager step agree (bf16 tolerance), else what differs."""
        if not torch.allclose(graph_row, eager_row, rtol=self.RTOL, atol=self.ATOL,
                              equal_nan=True):
            return (f"the replayed step's loss/error/norms differ from the eager step's "
                    f"(max difference {(graph_row - eager_row).abs().nan_to_num().max():.3g})")
        for g, e in zip(graph_state, eager_state, strict=True):
            if g.is_floating_point() and not torch.allclose(g, e, rtol=self.RTOL,
                                                            atol=self.ATOL):
                return "the replayed step left other weights, BatchNorm statistics or momentum"
        return ""

    def release(self) -> None:
        """Forget the graph and its gradients (they live in the graph's memory)."""
        if self.graph is not None:
            self.graph.reset()
        self.graph, self.key = None, None
        self.optimizer.zero_grad(set_to_none=True)

    def fall_back(self, reason: str, x: torch.Tensor, y: torch.Tensor,
                  done: torch.Tensor | None = None) -> torch.Tensor:
        """Train eagerly from here on, momentum kept; say why once. `done`: this step's row
        when it already ran (else it runs now)."""
        if self.require:
            raise RuntimeError(f"{self.name}: CUDA graph required, but {reason}")
        self.release()
        eager = torch.optim.SGD(self.model.parameters(), lr=float(self.lr))
        eager.load_state_dict(self.optimizer.state_dict())      # momentum carried over
        for group in eager.param_groups:                          # a float lr, not fused
            group["lr"], group["fused"] = float(self.lr), None
        self.optimizer = eager
        self.engine = f"eager (CUDA graph off: {reason})"
        print(f"{self.name}: CUDA graph off ({reason}); training eagerly")
        return done if done is not None else self.compute(x, y)
