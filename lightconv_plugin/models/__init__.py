from . import seq2seq, seq2seq_archs, lm, lm_archs  # noqa: F401  (register on import)
