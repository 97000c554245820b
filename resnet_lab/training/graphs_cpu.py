"""A test double: CUDA graphs on the CPU, with their semantics, so the captured step's logic is
tested without a GPU (the tests and `benchmarks/gpu_check.py --dry-run` use it).

    with graphs_cpu.stand_in():          # `compare` on the CPU now trains through CapturedStep
        train.fit(model, images, steps=20, device="cpu", graphs="require")

What a CUDA graph does, and how this one does the same on the CPU:
- Capture records the step; a read into Python (`.item()`, `.tolist()`, `.cpu()`) is an error,
  as on a GPU. Here the step runs under a `TorchDispatchMode` that records every aten op with
  its arguments, and raises on `aten._local_scalar_dense` and those Tensor methods.
- Replay re-runs the recorded ops on the same tensors; Python does not run. A float read at
  capture (a Python lr, a skip gate, a list of hooks) stays what it was then. Each new output
  is copied into the tensor captured in its place (the graph's static memory); in-place ops and
  views act on the same storage, so they need no copy. Replay runs below autograd.
What it cannot emulate (it is not a GPU): streams (`warm_up` just runs the step), and faults,
which a test injects: an asynchronous one with `fail_at_sync` (raised by `synchronize`, where a
real one surfaces), a synchronous one in capture with `capture_fault`. After a sticky CUDA error
(`captured.is_sticky`) the mock's context is dead as a GPU's is: every later call through the
seam (synchronize, warm-up, capture, replay) raises it again. The eager step on the CPU still
runs, as it would not on a GPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from . import captured

HOST_READ_METHODS = (torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.cpu,
                     torch.Tensor.numpy)


def cuda_error(code: int, text: str) -> torch.AcceleratorError:
    """A CUDA error as torch raises it: "CUDA error: <text>", its cudaError_t `error_code`."""
    err = torch.AcceleratorError(f"CUDA error: {text} (simulated)")
    err.error_code = code
    return err


def illegal_address() -> torch.AcceleratorError:
    """The typical asynchronous fault of a kernel: sticky (the CUDA context is dead after it)."""
    return cuda_error(700, "an illegal memory access was encountered")


class HostReadInCaptureError(RuntimeError):
    """A read into Python while capturing: a real capture fails the same way."""


class Recorder(TorchDispatchMode):
    """Appends (op, args, kwargs, output) for every aten op; raises on a host read."""

    def __init__(self, ops: list):
        super().__init__()
        self.ops = ops

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            raise HostReadInCaptureError("a tensor was read into Python during graph capture "
                                    "(operation not permitted when stream is capturing)")
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.ops.append((func, args, kwargs, out))
        return out


class NoHostCopies(TorchFunctionMode):
    """Raises on the Tensor methods that copy to the host (they need no aten op on a CPU)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in HOST_READ_METHODS:
            raise HostReadInCaptureError(f"Tensor.{func.__name__}() during graph capture")
        return func(*args, **(kwargs or {}))


def tensors(value) -> list[torch.Tensor]:
    """The tensors in an op's output (a tensor, a list or tuple of them, or None)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in tensors(v)]
    return []


def refill(captured_out, fresh) -> None:
    """Copy a replayed op's new outputs into the tensors captured in their place."""
    for old, new in zip(tensors(captured_out), tensors(fresh), strict=True):
        if new.untyped_storage().data_ptr() != old.untyped_storage().data_ptr():
            old.copy_(new)


class CpuGraph:
    """One recorded step: `replay()` re-runs it on the captured tensors, `reset()` forgets it.
    `fail_at_op=k`: the first replay raises after k ops (a replay that broke half-way).
    `context`: the CpuGraphs that made it (a replay in a dead context fails)."""

    def __init__(self, context: CpuGraphs, fail_at_op: int | None = None):
        self.ops: list = []
        self.context, self.replays, self.fail_at_op = context, 0, fail_at_op

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        with NoHostCopies(), Recorder(self.ops):
            yield

    def replay(self) -> None:
        self.context.call()
        with torch.no_grad(), torch._C._AutoDispatchBelowADInplaceOrView():
            for i, (func, args, kwargs, out) in enumerate(self.ops):
                if i == self.fail_at_op and not self.replays:
                    raise RuntimeError(f"replay broke at op {i} (simulated)")
                refill(out, func(*args, **kwargs))
        self.replays += 1

    def reset(self) -> None:
        self.ops = []


class CpuGraphs(captured.CudaGraphs):
    """The `CudaGraphs` seam on the CPU: capture under the one capture lock, as on CUDA.

    `log` lists "warm up" and "capture" in the order they happened. Faults a test injects:
    `fail_at_sync=n`: the n-th `synchronize` raises `fault` (default: an illegal memory access,
    sticky), as an asynchronous fault of a replay surfaces on a GPU; `fail_at_op=k`: the first
    graph's first replay breaks after k ops; `capture_fault`: the first capture raises it (an
    out-of-memory error, say). A sticky fault kills the context: every later call fails."""

    def __init__(self, fail_at_sync: int | None = None, fail_at_op: int | None = None,
                 fault: Exception | None = None, capture_fault: Exception | None = None):
        self.stream = None
        self.log: list[str] = []
        self.graphs: list[CpuGraph] = []
        self.syncs, self.fail_at_sync, self.fail_at_op = 0, fail_at_sync, fail_at_op
        self.fault, self.capture_fault = fault or illegal_address(), capture_fault
        self.dead: Exception | None = None      # the sticky error that killed the context

    def call(self, fault: Exception | None = None) -> None:
        """A call into the (emulated) CUDA context: raises `fault`, or the sticky error that
        killed the context before."""
        fault = self.dead or fault
        if fault is not None:
            self.dead = fault if captured.is_sticky(fault) else None
            raise fault

    def warm_up(self, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        self.call()
        self.log.append("warm up")
        return fn()

    def new_graph(self) -> CpuGraph:
        self.call()
        self.log.append("capture")
        self.graphs.append(CpuGraph(self, None if self.graphs else self.fail_at_op))
        return self.graphs[-1]

    @contextlib.contextmanager
    def recording(self, graph: CpuGraph) -> Iterator[None]:
        with graph.recording():
            yield
            fault, self.capture_fault = self.capture_fault, None
            self.call(fault)

    def synchronize(self) -> None:
        self.syncs += 1
        self.call(self.fault if self.syncs == self.fail_at_sync else None)


@contextlib.contextmanager
def stand_in(make: Callable[[], captured.CudaGraphs] = CpuGraphs) -> Iterator[None]:
    """While inside, a CPU model in `compare`/`fit` trains through `CapturedStep`, with the
    graphs that `make()` returns (CpuGraphs), as a CUDA model does with real ones."""
    before, captured.STAND_IN = captured.STAND_IN, make
    try:
        yield
    finally:
        captured.STAND_IN = before
