"""tl.dot under the Triton interpreter with the tensor cores' TF32 arithmetic.

The interpreter computes every ``tl.dot`` as a float32 matmul, whatever its
``input_precision``, so kernel tests on the CPU would not see what a GPU does
to float32 operands:

* ``"tf32"``: the tensor cores read 19 bits of each operand (sign, 8 exponent
  bits, 10 mantissa bits). Modelled by truncating the 13 low mantissa bits, the
  larger of the two possible errors (truncation, or the round-to-nearest that
  a ``cvt.rna.tf32.f32`` before the dot would give).
* ``"tf32x3"``: Triton's F32DotTC pass splits each operand into
  ``big = cvt.rna.tf32.f32(a)`` and ``small = a - big`` and sums
  ``dot(small_a, big_b) + dot(big_a, small_b) + dot(big_a, big_b)``, each a TF32
  dot, in that order onto the accumulator.
* ``"ieee"`` and 16-bit operands: exact products, as the interpreter does.

``emulate_tensor_cores(monkeypatch)`` installs this for a test.
"""

from __future__ import annotations

import numpy as np
from triton._C.libtriton import ir
from triton.runtime import interpreter

LOW_BITS = np.uint32(0x1FFF)  # the 13 mantissa bits float32 has and TF32 lacks


def tf32_truncated(a: np.ndarray) -> np.ndarray:
    return (a.astype(np.float32).view(np.uint32) & ~LOW_BITS).view(np.float32)


def tf32_rounded(a: np.ndarray) -> np.ndarray:
    """cvt.rna.tf32.f32: to the nearest TF32 value, ties away from zero (finite inputs)."""
    bits = a.astype(np.float32).view(np.uint32)
    # Sign and magnitude: adding half of the dropped unit to the magnitude bits
    # rounds |a| half-up, carrying into the exponent when the mantissa overflows.
    return ((bits + np.uint32(0x1000)) & ~LOW_BITS).view(np.float32)


def tf32_dot(a: np.ndarray, b: np.ndarray, acc: np.ndarray) -> np.ndarray:
    return np.matmul(tf32_truncated(a), tf32_truncated(b), dtype=np.float32) + acc


def tf32x3_dot(a: np.ndarray, b: np.ndarray, acc: np.ndarray) -> np.ndarray:
    a_big, b_big = tf32_rounded(a), tf32_rounded(b)
    a_small, b_small = a - a_big, b - b_big
    acc = tf32_dot(a_small, b_big, acc)
    acc = tf32_dot(a_big, b_small, acc)
    return tf32_dot(a_big, b_big, acc)


def emulate_tensor_cores(monkeypatch) -> list:
    """Route the interpreter's float32 tl.dot through the TF32 models above.

    Returns a list that records the precision of every dot so emulated, so a
    test can check that its kernels reached it.
    """
    exact = interpreter.InterpreterBuilder.create_dot
    calls = []

    def create_dot(self, a, b, d, input_precision, max_num_imprecise_acc):
        if input_precision == ir.INPUT_PRECISION.IEEE or not (a.data.dtype == b.data.dtype == np.float32):
            return exact(self, a, b, d, input_precision, max_num_imprecise_acc)
        model = {ir.INPUT_PRECISION.TF32: tf32_dot, ir.INPUT_PRECISION.TF32x3: tf32x3_dot}.get(input_precision)
        if model is None:
            raise ValueError(f"tests/tf32_dot.py has no model of tl.dot input_precision={input_precision}")
        calls.append(input_precision.name)
        return interpreter.TensorHandle(model(a.data, b.data, d.data.astype(np.float32)), d.dtype.scalar)

    monkeypatch.setattr(interpreter.InterpreterBuilder, "create_dot", create_dot)
    return calls
