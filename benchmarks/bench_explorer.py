"""How fast does the explorer answer a control change? Latency from change to new figure data.

    python benchmarks/bench_explorer.py [--repeats 15]

For depths 20, 56 and 110: the time from setting a control's value to the figure holding the
new profile (`picture(state)` + the FigureWidget update), median and p95, for a skip-gate
change and for a depth change (models cached, as after the app's start-up warm-up; profiles
not: each change is timed as a state never seen before). Target: <= 150 ms.
"""

import argparse
import time

import numpy as np

from resnet_lab.app import Explorer
from resnet_lab.app.explorer import profile_of


def timed(action) -> float:
    """Milliseconds for `action`, every profile computed afresh (none from the cache)."""
    profile_of.cache_clear()
    t = time.perf_counter()
    action()
    return 1000 * (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    explorer = Explorer()
    explorer.warm_cache()
    print(f"{'depth':>5} {'change':<12}{'median ms':>10}{'p95 ms':>8}")
    for depth in (20, 56, 110):
        explorer.depth.value = depth
        skip_ms = [timed(lambda i=i: setattr(explorer.skip, "value", float(i % 2)))
                   for i in range(1, args.repeats + 1)]
        depth_ms = []
        for _ in range(args.repeats):                            # move away, time the way back
            explorer.depth.value = 44 if depth != 44 else 20
            depth_ms.append(timed(lambda d=depth: setattr(explorer.depth, "value", d)))
        for name, ms in (("skip gate", skip_ms), ("depth", depth_ms)):
            print(f"{depth:>5} {name:<12}{np.median(ms):>10.0f}{np.percentile(ms, 95):>8.0f}")


if __name__ == "__main__":
    main()
