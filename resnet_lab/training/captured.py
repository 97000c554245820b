"""The training step as a CUDA graph: recorded once, replayed as one launch per step instead of
hundreds of small kernels.

`CapturedStep` is a `Step` (step.py) whose step is a captured graph:
- The learning rate lives in the step: a 0-dim tensor that fused SGD reads from memory, so a
  schedule never recaptures. Optimizer state is loaded through the step
  (`load_optimizer_state`), which keeps that tensor, so a resumed run trains at its schedule.
- What Python bakes into the graph (training mode, a skip gate, the batch shape) is the graph's
  key; a new key recaptures, at most `MAX_RECAPTURES` times. Every capture has its own
  `WARM_UP` eager steps first (they train; they count).
- At its first replay a graph is checked against the eager step on the same batch and state;
  the eager step's result stands. On an error or a mismatch the step falls back to eager
  training from the state before it, saying why once (`graphs="require"` raises instead).
- A replay's fault is asynchronous: it surfaces at the flush (`settle`). The step then goes
  back to the state of the last flush and trains eagerly from there; the rows since are void.
  A "sticky" CUDA error (`STICKY`: an illegal memory access, a device-side assert, ...) leaves
  the process's CUDA context dead, so no eager step can follow: it raises `ContextLostError`,
  which says to restart the process and resume from the last checkpoint.
- A model with hooks or an instrument attached is never captured (a replay runs no Python).
  One attached later (a forward/backward hook on any submodule, or an instrument) is seen at
  the next step, which falls back to eager training, saying why once.

`CudaGraphs` holds the few CUDA calls, one capture per process at a time, errors of other
threads not counted against it ("thread_local"). The tests swap in `graphs_cpu.CpuGraphs`,
a CPU graph with the same semantics. Not yet verified on GPU hardware.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..instruments.hooks import HOOK_KINDS, capture_problem, global_hooks, instruments_on
from ..nets.blocks import blocks_of
from ..nets.checks import check_choice
from ..nets.devices import device_of
from .step import Step

CAPTURE_LOCK = threading.Lock()     # one capture in the process at a time
STAND_IN: Callable[[], CudaGraphs] | None = None   # graphs_cpu.stand_in() sets it (tests)


# The CUDA errors after which the process's CUDA context cannot be used again ("sticky": every
# later CUDA call fails with the same error; CUDA's documentation of each: "To continue using
# CUDA, the process must be terminated and relaunched"): cudaError_t code -> its text as
# cudaGetErrorString gives it (torch >= 2.8 raises torch.AcceleratorError with `error_code`).
STICKY = {214: "uncorrectable ECC error encountered",
          226: "Invalid access of peer GPU memory over nvlink or a hardware error",
          700: "an illegal memory access was encountered",
          702: "the launch timed out and was terminated",
          710: "device-side assert triggered",
          714: "hardware stack error",
          715: "an illegal instruction was encountered",
          716: "misaligned address",
          717: "operation not supported on global/shared address space",
          718: "invalid program counter",
          719: "unspecified launch failure"}


def is_sticky(err: BaseException) -> bool:
    """Whether `err` is a CUDA error that leaves the process's CUDA context unusable (its
    `error_code`, or without one its text; an out-of-memory error, for one, is not)."""
    code = getattr(err, "error_code", None)
    return code in STICKY if code is not None else any(t in str(err) for t in STICKY.values())


class ContextLostError(RuntimeError):
    """A sticky CUDA error: this process can make no CUDA call any more, an eager step neither."""

    @classmethod
    def of(cls, name: str, err: BaseException) -> ContextLostError:
        return cls(f"{name}: the GPU failed with {type(err).__name__}: {err}. This CUDA error is "
                   "sticky: the process's CUDA context cannot be used any more (every later "
                   "CUDA call fails with it), so training cannot go on here, not even eagerly. "
                   "Restart the kernel (or the process) and resume from the last checkpoint.")

    def resume_from(self, checkpoint: Path | None) -> ContextLostError:
        """The same error, saying where the run's last checkpoint is (None: it keeps none)."""
        if checkpoint is None:
            where = ("This run keeps no checkpoint (`callbacks=[Checkpoint(path)]` keeps one; "
                     "a grid run keeps its own under its folder's checkpoints/): train again.")
        elif Path(checkpoint).exists():
            where = (f"Its last checkpoint is {checkpoint}: the same run started again in a new "
                     "process, with this Checkpoint, resumes from there.")
        else:
            where = f"Its checkpoint {checkpoint} was not written yet: train again."
        return ContextLostError(f"{self} {where}")


class CudaGraphs:
    """The CUDA calls a captured step makes (warm-up stream, capture, synchronize)."""

    def __init__(self):
        self.stream = torch.cuda.Stream()

    def warm_up(self, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Run `fn` on the side stream, as capture wants its first steps run."""
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            out = fn()
        torch.cuda.current_stream().wait_stream(self.stream)
        return out

    def capture(self, fn: Callable[[], torch.Tensor]):
        """Record `fn`: the graph and `fn`'s output, refilled by each replay. Under the one
        capture lock: two captures at once would see each other's work."""
        with CAPTURE_LOCK:
            graph = self.new_graph()
            with self.recording(graph):
                out = fn()
        return graph, out

    def new_graph(self):
        return torch.cuda.CUDAGraph()

    def recording(self, graph):
        """Capture into `graph`; a CUDA call from another thread (the next notebook cell)
        neither breaks it nor is broken by it."""
        return torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local")

    def synchronize(self) -> None:
        """Wait for the replays: an asynchronous fault of one is raised here."""
        torch.cuda.current_stream().synchronize()


def graph_backend(device: torch.device) -> CudaGraphs | None:
    """The graphs for a model on `device`: CUDA's, the stand-in's on the CPU in tests, else
    None (MPS and the CPU train eagerly)."""
    if device.type == "cuda":
        return CudaGraphs()
    return STAND_IN() if STAND_IN is not None and device.type == "cpu" else None


def saved(state: dict) -> dict:
    """A copy of a (nested) state dict whose tensors do not change with the live ones."""
    if isinstance(state, dict):
        return {k: saved(v) for k, v in state.items()}
    if isinstance(state, list):
        return [saved(v) for v in state]
    return state.detach().clone() if isinstance(state, torch.Tensor) else state


class CapturedStep(Step):
    """A `Step` that replays a captured graph; see the module's docstring. SGD with momentum
    and weight decay (fused, reading its learning rate from a 0-dim tensor)."""

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
        self.hook_dicts = [getattr(m, kind) for m in model.modules() for kind in HOOK_KINDS]
        self.graph, self.key, self.captures = None, None, 0
        self.warm_key, self.warmed = None, 0
        self.static: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self.good: dict | None = None     # the state at the last flush
        self.unsettled, self.void = 0, 0  # graph rows since the last flush; rows to drop
        self.engine = "cuda graph"

    def set_lr(self, lr: float) -> None:
        if self.engine == "cuda graph":
            self.lr.fill_(lr)                  # on the device: the graph reads it, no recapture
        else:
            super().set_lr(lr)

    def load_optimizer_state(self, state: dict) -> None:
        """Load momentum and settings, and keep reading the lr from the step's own tensor
        (`load_state_dict` copies the groups, lr included). A graph recaptures afterwards."""
        super().load_optimizer_state(state)
        if self.engine == "cuda graph":
            self.release()
            self.lr.fill_(float(state["param_groups"][0]["lr"]))
            for group in self.optimizer.param_groups:
                group["lr"], group["fused"] = self.lr, True
            self.good, self.warm_key = None, None

    def __call__(self, x: torch.Tensor, y: torch.Tensor, lr: float | None = None,
                 norms: bool = True) -> torch.Tensor:
        if lr is not None:
            self.set_lr(lr)
        if self.engine == "cuda graph" and (attached := self.hooks_added()):
            self.fall_back(attached)           # a replay would run none of their hooks
        if self.engine != "cuda graph":
            return self.compute(x, y)
        if self.good is None:
            self.good = self.state_now()
        self.unsettled += 1
        key = self.current_key(x, y)
        if key == self.key:
            return self.replay(x, y)
        if key != self.warm_key:
            self.warm_key, self.warmed = key, 0
        if self.warmed < self.WARM_UP:         # each (re)capture warms up first
            self.warmed += 1
            return self.guarded(lambda: self.backend.warm_up(lambda: self.compute(x, y)), x, y)
        return self.first_replay(x, y, key)

    def hooks_added(self) -> str:
        """"" unless an instrument or a module hook (forward, forward-pre, backward, full
        backward, on any submodule or global) was added since the step was made, else which.
        Cheap enough for every step: the instrument registry, and whether any hook dict of the
        modules the model had when the step was made is non-empty."""
        if instruments_on(self.model) or any(self.hook_dicts) or global_hooks():
            return capture_problem(self.model)
        return ""

    def current_key(self, x: torch.Tensor, y: torch.Tensor) -> tuple:
        """What Python bakes into the graph: a change means a recapture."""
        return (self.model.training, tuple(b.skip for b in self.blocks), tuple(x.shape),
                tuple(y.shape), x.dtype, y.dtype)

    def replay(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One replay on (x, y); a failure voids the rows since the last flush."""
        try:
            self.static[0].copy_(x)
            self.static[1].copy_(y)
            self.graph.replay()
            return self.static[2].clone()      # the next replay overwrites the static row
        except Exception as err:               # noqa: BLE001 - any failure means: go eager
            self.recover(self.failed(err))
            return torch.full((self.width,), float("nan"), device=self.device)

    def guarded(self, fn: Callable[[], torch.Tensor], x: torch.Tensor, y: torch.Tensor
                ) -> torch.Tensor:
        """`fn()` (a step); on an error, back to the state before it, and the step eagerly."""
        before = self.snapshot()
        try:
            return fn()
        except Exception as err:               # noqa: BLE001 - any failure means: go eager
            reason = self.failed(err)
            self.restore(before)
            self.fall_back(reason)
            return self.compute(x, y)

    def first_replay(self, x: torch.Tensor, y: torch.Tensor, key: tuple) -> torch.Tensor:
        """Capture for this key, replay once, and check the replay against the eager step on
        the same batch and state. The eager step's result stands (it is the only step taken)."""
        if self.captures > self.MAX_RECAPTURES:
            self.fall_back(f"recaptured {self.MAX_RECAPTURES} times already")
            return self.compute(x, y)
        self.release()
        self.captures += 1
        row = self.guarded(lambda: self.capture_and_check(x, y), x, y)
        if self.engine == "cuda graph":
            self.key = key
        return row

    def capture_and_check(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Capture, replay once, undo it, take the step eagerly: the eager row, or an error
        saying how the replay differed."""
        self.static = (x.clone(), y.clone(), None)
        before = self.snapshot()
        graph, row = self.backend.capture(
            lambda: self.compute(self.static[0], self.static[1], set_to_none=False,
                                 cache=False))
        self.graph, self.static = graph, (self.static[0], self.static[1], row)
        self.restore(before)                   # a real capture ran nothing; a stand-in may have
        self.graph.replay()
        replayed, after_graph = row.clone(), self.snapshot()
        self.restore(before)
        eager = self.compute(x, y, set_to_none=False)
        problem = self.mismatch(replayed, eager, after_graph, self.snapshot())
        if problem:
            raise RuntimeError(problem)
        return eager

    def state(self) -> list[torch.Tensor]:
        """Everything a step changes, live: weights, BatchNorm buffers, momentum."""
        momentum = [s["momentum_buffer"] for s in self.optimizer.state.values()
                    if s.get("momentum_buffer") is not None]
        return [*self.model.state_dict().values(), *momentum]

    def snapshot(self) -> list[torch.Tensor]:
        return [t.detach().clone() for t in self.state()]

    def restore(self, snapshot: list[torch.Tensor]) -> None:
        """Put a snapshot back in place (the graph keeps pointing at the same tensors)."""
        with torch.no_grad():
            for tensor, value in zip(self.state(), snapshot, strict=True):
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

    def state_now(self) -> dict:
        """The model's and optimizer's state as it is now, as a copy."""
        return {"model": saved(self.model.state_dict()),
                "optimizer": saved(self.optimizer.state_dict())}

    def settle(self) -> int:
        """At the flush: wait for the replays. A fault there voids the rows since the last
        flush and goes back to its state; else this is the state to go back to next time."""
        if self.engine == "cuda graph":
            try:
                self.backend.synchronize()
                self.good = self.state_now()
            except Exception as err:           # noqa: BLE001 - any failure means: go eager
                self.recover(self.failed(err))
        self.unsettled, void, self.void = 0, self.void, 0
        return void

    def failed(self, err: Exception) -> str:
        """Why the graph is off after `err`; a sticky CUDA error raises `ContextLostError` instead
        (no CUDA call works after it: no state to go back to, no eager step)."""
        if is_sticky(err):
            self.engine = f"stopped (CUDA context lost: {type(err).__name__}: {err})"
            raise ContextLostError.of(self.name, err) from err
        return f"{type(err).__name__}: {err}"

    def recover(self, reason: str) -> None:
        """Back to the state of the last flush, training eagerly; the rows since are void."""
        self.fall_back(reason, self.good["optimizer"])
        self.model.load_state_dict(self.good["model"])
        self.void += self.unsettled

    def release(self) -> None:
        """Forget the graph and its gradients (they live in the graph's memory)."""
        if self.graph is not None:
            self.graph.reset()
        self.graph, self.key = None, None
        self.optimizer.zero_grad(set_to_none=True)

    def fall_back(self, reason: str, state: dict | None = None) -> None:
        """Train eagerly from here on, with the optimizer's `state` (default: as it is now,
        momentum kept); say why once."""
        if self.require:
            raise RuntimeError(f"{self.name}: CUDA graph required, but {reason}")
        self.release()
        eager = torch.optim.SGD(self.model.parameters(), lr=float(self.lr))
        eager.load_state_dict(state or self.optimizer.state_dict())
        for group in eager.param_groups:                          # a float lr, not fused
            group["lr"], group["fused"] = float(self.lr), None
        self.optimizer = eager
        self.engine = f"eager (CUDA graph off: {reason})"
        print(f"{self.name}: CUDA graph off ({reason}); training eagerly")
