#!/usr/bin/env python3
"""Average the parameters of the last N epoch checkpoints of a fairseq run.

fairseq's own averaging script is not installed by pip. This one takes the N
highest-numbered ``checkpointE.pt`` of ``--inputs`` (fewer than N is an error,
not a silent average of what is there), averages every floating-point tensor
of their ``model`` state dicts in float64, and writes the newest checkpoint
with those parameters and without optimizer state (a model for decoding).

    python average_checkpoints.py --inputs CKPT_DIR --num-epoch-checkpoints 10 --output model.pt
"""

from __future__ import annotations

import argparse
import os
import re
import sys


def epoch_checkpoints(folder: str) -> list:
    """``checkpointE.pt`` paths of folder, highest epoch first."""
    found = []
    for name in os.listdir(folder):
        m = re.fullmatch(r"checkpoint(\d+)\.pt", name)
        if m:
            found.append((int(m.group(1)), os.path.join(folder, name)))
    return [p for _, p in sorted(found, reverse=True)]


def average(paths: list) -> dict:
    import torch

    import lightconv_plugin.compat  # noqa: F401  (fairseq checkpoints unpickle under weights_only)

    total, newest = None, None
    for path in paths:
        state = torch.load(path, map_location="cpu", weights_only=True)
        params = state["model"]
        if total is None:
            newest, keys = state, list(params)
            total = {k: v.double() if v.is_floating_point() else v for k, v in params.items()}
            continue
        if list(params) != keys:
            raise SystemExit(f"{path}: its parameters differ from {paths[0]}'s; cannot average")
        for k, v in params.items():
            if v.is_floating_point():
                total[k] += v.double()
    n = len(paths)
    newest["model"] = {k: (v / n).to(newest["model"][k].dtype) if v.is_floating_point() else v
                       for k, v in total.items()}
    newest["last_optimizer_state"] = None
    newest["extra_state"] = {"averaged_from": [os.path.basename(p) for p in paths]}
    return newest


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--inputs", required=True, help="the fairseq-train --save-dir")
    p.add_argument("--num-epoch-checkpoints", type=int, required=True)
    p.add_argument("--output", required=True)
    a = p.parse_args(argv)
    if a.num_epoch_checkpoints < 1:
        p.error(f"--num-epoch-checkpoints={a.num_epoch_checkpoints}: must be >= 1")
    if not os.path.isdir(a.inputs):
        raise SystemExit(f"--inputs {a.inputs}: no such directory")
    paths = epoch_checkpoints(a.inputs)
    if len(paths) < a.num_epoch_checkpoints:
        raise SystemExit(f"--num-epoch-checkpoints {a.num_epoch_checkpoints}: {a.inputs} has only "
                         f"{len(paths)} epoch checkpoints ({', '.join(map(os.path.basename, paths)) or 'none'}); "
                         "train longer or average fewer")
    chosen = paths[: a.num_epoch_checkpoints]
    import torch

    state = average(chosen)
    tmp = a.output + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, a.output)
    print(f"averaged {', '.join(map(os.path.basename, chosen))} -> {a.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
