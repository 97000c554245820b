"""Is the training engine as fast as a hand-written loop? Ratios measured in one run.

    python benchmarks/bench_train.py [--depth 20] [--steps 25] [--repeats 3] [--device cpu]

Runs `train.fit` (per-layer gradient norms recorded every step, no plots) and a minimal PyTorch loop
(index a batch on the device, forward, backward, SGD step) alternately on the same model, data
and device, and prints images/s of both and their ratio (target: >= 0.95). The first step of
each run is left out of the timing, and the engine evaluates only after the timed steps (the
minimal loop does not evaluate at all).
"""

import argparse
import statistics

import torch
import torch.nn.functional as F
from timing import StepClock, Stopwatch  # benchmarks/, the folder of this script

import resnet_lab as rl
from resnet_lab.training import data, train


def minimal_loop(model, images, steps, batch_size, device) -> float:
    """Images/s of the simplest loop that trains the same way."""
    x_all, y_all = images.x_train.to(device), images.y_train.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    g = torch.Generator(device).manual_seed(0)
    watch = Stopwatch(device)
    for step in range(steps + 1):
        if step == 1:
            watch.start()
        index = torch.randint(0, len(x_all), (batch_size,), generator=g, device=device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out = model(x_all[index])
        loss = F.cross_entropy(out.float(), y_all[index])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * batch_size / watch.stop()


def engine(model, images, steps, batch_size, device) -> float:
    clock = StepClock(1, steps + 1)
    train.fit(model, images, steps=steps + 1, batch_size=batch_size, recipe="constant",
              device=device, eval_every=steps + 1, eval_samples=batch_size, callbacks=[clock])
    return clock.images_per_second(batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = rl.pick_device(args.device)
    images = data.synthetic(10_000, 256, size=args.size)
    ours, minimal = [], []
    for _ in range(args.repeats):                    # alternate, so drift hits both alike
        minimal.append(minimal_loop(rl.cifar_resnet(args.depth, seed=0).to(device), images,
                                    args.steps, args.batch_size, device))
        ours.append(engine(rl.cifar_resnet(args.depth, seed=0), images, args.steps,
                           args.batch_size, device))
    a, b = statistics.median(minimal), statistics.median(ours)
    print(f"ResNet-{args.depth}, batch {args.batch_size}, {args.size}x{args.size}, {device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"minimal loop: {a:8.0f} images/s")
    print(f"resnet-lab:   {b:8.0f} images/s (per-layer norms every step)")
    print(f"ratio engine / minimal: {b / a:.3f}")


if __name__ == "__main__":
    main()
