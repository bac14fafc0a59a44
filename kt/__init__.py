"""ktpath: knowledge tracing to learning paths.

Layers flow one way: data -> models -> mastery -> planner -> api / app.
Importing this package has no side effects; heavy modules (torch, mlflow) are imported
by the submodules that need them.
"""

__version__ = "0.1.0"
