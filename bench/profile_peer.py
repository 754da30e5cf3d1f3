"""Where the time goes: one exact-peer spec and its peer (same weights, as bench_peers.py builds
them) under torch.profiler on the CPU, op by op, side by side.

    python bench/profile_peer.py SPEC [--set K=V ...] [--size N] [--batch B]
                                 [--task forward|train|both] [--reps R] [--top N]

``SPEC`` is a zoo spec with a peer (skipgraph.integrations.peers.PEERS); ``--set dims=3`` etc.
are its params (values parsed as YAML); ``--size`` is the spatial size of the input
``(B, C, *[N] * dims)``. After two untimed calls of each, ``R`` rounds of one profiled call
of each module, in rotating order, are recorded (forward: eval mode, no grad; train: train mode,
forward + backward of every output, as skipgraph.compile.timing.train_step_fn). Printed per task:

- a header per module: the least wall ms of a call over the rounds (under the profiler, so
  above bench_peers.py's figures), the ms inside recorded ops (sum over ops of each op's least
  self CPU time) and the rest (Python: module calls, fx code, autograd bookkeeping between ops;
  approximate, as the two least values may come from different rounds);
- the top N ops by the larger self CPU time of the two: calls per module call and the least
  self ms per call over the rounds, for skipgraph and the peer;
- every op whose count differs (the structural differences: extra copies, ``aten::contiguous``,
  ``aten::cat``, out-of-place activations, ...), whatever its time.

Counts are load-independent; self times are not (run with OMP_NUM_THREADS=1 on a shared machine
and read the times as shares).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import yaml
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_peers import make_pair  # noqa: E402
from skipgraph.compile.timing import forward_fn, train_step_fn  # noqa: E402

OpStats = dict[str, tuple[int, float]]  # op name -> (calls per call, least self ms per call)


def profile_pair(fns: dict[str, Callable[[], None]], reps: int
                 ) -> dict[str, tuple[OpStats, float]]:
    """Per function: each op's calls per call and its least self ms over the rounds, and the
    least wall ms per call; ``reps`` rounds of one profiled call each in rotating order (as
    bench_peers.py times them), after two untimed calls of each. The least of the rounds drops
    the time another process took from this one (a shared machine's preemption lands on random
    ops); counts are the same in every round."""
    names = list(fns)
    for n in names:
        for _ in range(2):
            fns[n]()
    rounds: dict[str, list[dict[str, tuple[int, float]]]] = {n: [] for n in names}
    walls: dict[str, list[float]] = {n: [] for n in names}
    for r in range(reps):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                t0 = time.perf_counter()
                fns[n]()
                walls[n].append((time.perf_counter() - t0) * 1e3)
            rounds[n].append({e.key: (e.count, e.self_cpu_time_total / 1e3)
                              for e in prof.key_averages()})
    out = {}
    for n in names:
        keys = set().union(*rounds[n])
        out[n] = ({k: (max(rd.get(k, (0, 0.0))[0] for rd in rounds[n]),
                       min(rd.get(k, (0, 0.0))[1] for rd in rounds[n])) for k in keys},
                  min(walls[n]))
    return out


def side_by_side(ours: OpStats, theirs: OpStats, top: int) -> list[str]:
    names = sorted(set(ours) | set(theirs),
                   key=lambda n: -max(ours.get(n, (0, 0))[1], theirs.get(n, (0, 0))[1]))

    def row(n: str) -> str:
        a, b = ours.get(n, (0, 0.0)), theirs.get(n, (0, 0.0))
        mark = "  *" if a[0] != b[0] else ""
        return (f"{n[:44]:44s} {a[0]:9d} {b[0]:9d} {a[1]:10.3f} {b[1]:10.3f} "
                f"{a[1] - b[1]:+9.3f}{mark}")

    head = (f"{'op':44s} {'sg count':>9s} {'peer cnt':>9s} {'sg ms':>10s} {'peer ms':>10s} "
            f"{'diff ms':>9s}")
    lines = [head, "-" * len(head)] + [row(n) for n in names[:top]]
    differ = [n for n in names if ours.get(n, (0, 0))[0] != theirs.get(n, (0, 0))[0]]
    lines += ["", f"ops whose count differs ({len(differ)}; * above):"]
    lines += [row(n) for n in differ] or ["  (none: the same ops, the same number of times)"]
    return lines


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("spec")
    p.add_argument("--set", action="append", default=[], metavar="K=V",
                   help="a spec param (value parsed as YAML), repeatable")
    p.add_argument("--size", type=int, default=64, help="spatial size of the input")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--task", choices=["forward", "train", "both"], default="both")
    p.add_argument("--reps", type=int, default=3, help="profiled calls of each module")
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    params = {}
    for item in args.set:
        key, _, value = item.partition("=")
        params[key] = yaml.safe_load(value)
    torch.manual_seed(0)
    model, peer, x = make_pair(args.spec, params, args.size, args.size, args.batch,
                               torch.device("cpu"))
    print(f"{args.spec} {params} input {'x'.join(map(str, x.shape))}, "
          f"{torch.get_num_threads()} threads, {args.reps} profiled rounds")
    tasks = ["forward", "train"] if args.task == "both" else [args.task]
    for task in tasks:
        make = forward_fn if task == "forward" else train_step_fn
        model.train(task == "train"), peer.train(task == "train")
        got = profile_pair({"skipgraph": make(model, x), "peer": make(peer, x)}, args.reps)
        (ours, w_ours), (theirs, w_theirs) = got["skipgraph"], got["peer"]
        in_ours = sum(v[1] for v in ours.values())
        in_theirs = sum(v[1] for v in theirs.values())
        print(f"\n== {task} ==")
        print(f"skipgraph: wall {w_ours:.3f} ms/call (least), in ops {in_ours:.3f}, "
              f"outside ops {w_ours - in_ours:.3f}")
        print(f"peer:      wall {w_theirs:.3f} ms/call (least), in ops {in_theirs:.3f}, "
              f"outside ops {w_theirs - in_theirs:.3f}")
        print("\n".join(side_by_side(ours, theirs, args.top)))


if __name__ == "__main__":
    main()
