"""CLI subcommands, one module each, discovered by :mod:`kt.cli`.

Each module defines ``register(subparsers)`` that adds its parser and sets ``func``.
Modules import heavy dependencies inside their handlers so ``kt --help`` stays fast.
"""
