"""CPU: the chunk length of the convolutions' PyTorch path, swept on this machine.

The PyTorch path (``lightconv_kernels/conv/reference.py``) cuts time into
chunks of L = max(CHUNK, K - 1 rounded up to 8) positions, one chunk for a
sequence up to 2L long, and multiplies each chunk's band of taps with its
window of inputs on BLAS. The band matmul does L + K - 1 multiply-adds per
output where K are needed, so short chunks waste less; too short, and the
BLAS calls cost more than they save. CHUNK's default was measured on a
2-core AMD EPYC. On another CPU (more cores, AVX-512) a different floor may
win: this script times each candidate against the default on the two ops.

For each op, shape and K, every candidate runs the forward and the
forward+backward once per round, the candidates in turn, so that a drift of
the machine's speed falls on all of them alike. Cells are medians over the
rounds, and each candidate's time is also given over the default's. The
output is a Markdown table (and ``chunk.csv``, ``chunk.md`` under ``--out``).

    python scripts/bench_conv_chunk.py [--chunks 8 16 32 64] [--K 3 15 31] \\
        [--shapes 4x2048 4x8192 1x1024 64x48] [--rounds 5] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_common as bc  # noqa: E402

COLUMNS = ["op", "B", "T", "K", "chunk", "L", "forward_ms", "fwd_bwd_ms", "forward_vs_default", "fwd_bwd_vs_default"]
C, H = 512, 8


def _shape(text: str):
    try:
        B, T = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not BxT, e.g. 4x2048") from None
    if B < 1 or T < 1:
        raise argparse.ArgumentTypeError(f"{text!r} needs B >= 1 and T >= 1")
    return B, T


def _positive(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} is not a positive integer")
    return v


def _once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def sweep(op: str, B: int, T: int, K: int, chunks, rounds: int) -> list:
    """One row per chunk floor: median ms of the forward and of forward+backward, and L."""
    import torch

    from lightconv_kernels.conv import reference

    g = torch.Generator().manual_seed(0)
    x, grad = torch.randn(B, T, C, generator=g), torch.randn(B, T, C, generator=g)
    w = torch.randn(*((B, T, H, K) if op == "dynamic" else (H, K)), generator=g)
    pad = K // 2

    def forward():
        reference.forward(x, w, pad, True, 0.0, None, False)

    def forward_backward():
        forward()
        reference.backward(grad, x, w, pad, True, 0.0, None, None)

    default = reference.CHUNK
    times = {c: ([], []) for c in chunks}
    lengths = {}
    try:
        for c in chunks:
            reference.CHUNK = c
            lengths[c] = reference._Plan(x.shape, H, K, pad).L
        for r in range(rounds + 1):  # round 0 warms each candidate up, untimed
            for c in chunks:
                reference.CHUNK = c
                f, fb = _once(forward), _once(forward_backward)
                if r:
                    times[c][0].append(f * 1e3)
                    times[c][1].append(fb * 1e3)
    finally:
        reference.CHUNK = default
    med = {c: (bc.summarize(f)["median"], bc.summarize(fb)["median"]) for c, (f, fb) in times.items()}
    return [{"op": op, "B": B, "T": T, "K": K, "chunk": c, "L": lengths[c], "forward_ms": med[c][0],
             "fwd_bwd_ms": med[c][1], "forward_vs_default": med[c][0] / med[default][0],
             "fwd_bwd_vs_default": med[c][1] / med[default][1]} for c in chunks]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chunks", type=_positive, nargs="+", default=[8, 16, 32, 64], help="floors to try (the default is always added)")
    p.add_argument("--K", type=_positive, nargs="+", default=[3, 15, 31], help="kernel widths")
    p.add_argument("--shapes", type=_shape, nargs="+", default=[(4, 2048), (4, 8192), (1, 1024), (64, 48)],
                   help="BxT, C = 512 in 8 heads")
    p.add_argument("--ops", nargs="+", choices=["lightweight", "dynamic"], default=["lightweight", "dynamic"])
    p.add_argument("--rounds", type=_positive, default=5, help="timed calls of each candidate, interleaved")
    p.add_argument("--out", type=Path, help="also write chunk.csv and chunk.md here")
    bc.add_threads_arg(p)
    args = p.parse_args(argv)
    bc.apply_threads_arg(args)

    import torch

    from lightconv_kernels.conv import reference

    torch.set_num_threads(bc.threads())
    chunks = sorted({*args.chunks, reference.CHUNK})
    rows = []
    for op in args.ops:
        for B, T in args.shapes:
            for K in args.K:
                bc.log(f"{op} B={B} T={T} K={K}")
                rows += sweep(op, B, T, K, chunks, args.rounds)
    head = (f"PyTorch conv path, C = {C}, {H} heads, softmax taps; median ms over {args.rounds} interleaved "
            f"rounds, and over the default chunk floor ({reference.CHUNK}); {bc.threads()} torch threads on "
            f"{bc.cpu_model()}.\n\n")
    table = bc.markdown_table(COLUMNS, [[bc.fmt(r[c]) for c in COLUMNS] for r in rows])
    print(head + table)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        bc.write_csv(args.out / "chunk.csv", rows, COLUMNS)
        (args.out / "chunk.md").write_text(head + table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
