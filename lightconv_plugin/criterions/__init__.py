from . import depth_adaptive  # noqa: F401
