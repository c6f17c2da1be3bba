"""The sandbox kernel: configs, studies, the runner, results, reports, and shared models.

Nothing here imports `envs`, `agents` or `studies`; they import from here.
"""

__version__ = "0.1.0"
