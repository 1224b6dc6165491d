"""fairseq user dir: ``fairseq-train --user-dir lightconv_plugin`` (or the path printed
by ``python -m lightconv_plugin --user-dir``). Importing it registers the models."""

from . import compat  # noqa: F401  (first: fixes fairseq/torch incompatibilities)
from . import models  # noqa: F401
from . import criterions  # noqa: F401
