"""A live control's pictures, for a reader who does not run the lesson: the control as it
starts, and, under a predict-then-check question, the control in the state the question asks
about.

scripts/execute_notebooks.py runs `show(<name>)` after a cell tagged "snapshot:<name>", and
`show(<name>, <state>)` after a cell tagged "answer:<name>:<state>", in the lesson's own
kernel. `ANSWERS[state]` drives the control there as a student would: it sets its widgets'
values and clicks its buttons (or calls what a button's click calls), then hands back what it
did, in words, and the control's own `snapshot()`. Nothing is drawn beside the control: the
picture is what it shows.
"""

from __future__ import annotations

from collections.abc import Callable

import matplotlib.pyplot as plt
from IPython.display import display

from resnet_lab.nets.ensembles import deletable_blocks
from resnet_lab.nets.models import is_plain


def delete(lesion, net: str, block: str) -> None:
    """Click block `block` of net `net`'s strip in a lesion view: it is deleted."""
    strip = lesion.strips[net]
    strip.buttons[[cell.name for cell in strip.cells].index(block)].click()


# ---------------------------------------------------------------------------------------------
# The states the questions ask about: each drives its control and returns (what it did, the
# control's pictures).

def relu_default_init(explorer) -> tuple[str, list]:
    """Lesson 1, question (1): the deep MLP with ReLU, PyTorch's default init kept."""
    explorer.kind.value = "deep MLP, ReLU"
    explorer.init.value = "default"
    return ("switching the network to deep MLP, ReLU (PyTorch's default init kept)",
            explorer.snapshot(previous=True))


def relu_he_init(explorer) -> tuple[str, list]:
    """Lesson 1, question (2): the same ReLU MLP with He init."""
    relu_default_init(explorer)
    explorer.init.value = "he"
    return "switching the ReLU MLP's init to He", explorer.snapshot(previous=True)


def resnet56_stage1_cut(explorer) -> tuple[str, list]:
    """Lesson 2: the ResNet-56 preset, then the skips of stage 1 cut (its toggle)."""
    explorer.apply_preset("ResNet-56")            # what the preset's button calls
    explorer.stages.children[0].value = False
    return ("pressing the ResNet-56 preset, then cutting the skips of stage 1 (its toggle; "
            "'previous setting' is ResNet-56 with every skip)", explorer.snapshot(previous=True))


def train_then_delete(panel) -> tuple[str, list]:
    """Lesson 2's training lab: Train, then the same block deleted in each trained net."""
    panel.train_button.click()
    panel.thread.join()
    if not panel.histories:
        raise RuntimeError(f"the lab did not train: {panel.status.value}")
    first = next(iter(panel.models.values()))
    block = next(b for b in deletable_blocks(first) if b.startswith("layer2."))
    for net in panel.models:
        delete(panel.lesion, net, block)
    return (f"pressing Train ({panel.steps.value} steps), then deleting block {block} of each "
            "trained net", panel.snapshot())


def delete_last_blocks(lesion) -> tuple[str, list]:
    """Lesson 5's lesion view: stage 3's last block deleted in each net, then the deletable
    block before it in the ResNet too."""
    blocks = deletable_blocks(next(iter(lesion.models.values())))
    last = [b for b in blocks if b.startswith("layer3.")][-1]
    second = blocks[blocks.index(last) - 1]
    for net in lesion.models:
        delete(lesion, net, last)
    residual = [net for net, model in lesion.models.items() if not is_plain(model)]
    for net in residual:
        delete(lesion, net, second)
    return (f"deleting {last}, stage 3's last block, of each net, then {second} of "
            f"{' and '.join(residual)} too (two blocks at once)", lesion.snapshot())


def depth_56(architecture) -> tuple[str, list]:
    """Lesson 3: basic blocks at 56 layers, the question's starting point."""
    architecture.depth.value = 56
    return "moving the depth to 56 layers (basic blocks)", architecture.snapshot()


def bottleneck_56(architecture) -> tuple[str, list]:
    """Lesson 3: the block type switched to bottleneck at 56 layers."""
    depth_56(architecture)
    architecture.block.value = "bottleneck"
    return "switching the block type to bottleneck at 56 layers", architecture.snapshot()


def cardinality_32(cardinality) -> tuple[str, list]:
    """Lesson 4: C slid from 1 to 32, ResNeXt's block."""
    cardinality.cardinality.value = 32
    return "sliding C to 32 (ResNeXt's 32 × 4d)", cardinality.snapshot()


ANSWERS: dict[str, Callable[[object], tuple[str, list]]] = {
    "relu-default": relu_default_init,
    "relu-he": relu_he_init,
    "resnet56-stage1-cut": resnet56_stage1_cut,
    "train-then-delete": train_then_delete,
    "delete-last-blocks": delete_last_blocks,
    "depth-56": depth_56,
    "bottleneck-56": bottleneck_56,
    "cardinality-32": cardinality_32,
}


def show(control, state: str | None = None) -> None:
    """Print and display `control`'s pictures: as it starts (`state` None), or after
    `ANSWERS[state]` drove it, headed by what was done."""
    if state is None:
        print("As it starts (run the notebook in JupyterLab to use it):")
        items = control.snapshot()
    else:
        said, items = ANSWERS[state](control)
        for number in plt.get_fignums():         # an earlier state's pictures, made on the way
            if plt.figure(number) not in items:
                plt.close(number)
        print(f"The answer, as the widget shows it after {said}:")
    for item in items:
        if isinstance(item, str):
            print(item)
        else:
            display(item)
            plt.close(item)
