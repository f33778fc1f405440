"""Exercises with automatic checks, one or two per notebook (keys ``"00.1"``, ``"04.2"``, ...).

In a notebook::

    from helpers.course import exercises

    exercises.show("04.1")                               # the question
    answer = None                                        # the learner replaces None
    exercises.check("04.1", answer, table=latency, threads=threads)   # shows the feedback
    exercises.solution("04.1")                           # a collapsed solution, on request

Checks compute the right answer from the **context** passed in (the notebook's own runner,
table, model, ...) instead of comparing with numbers written down in advance, so they hold on
every machine, profile and environment. :func:`check` never raises for a learner's mistake: an
unanswered exercise (``None``), a wrong type, a missing context value or an exception inside the
learner's function all become feedback — notebooks keep executing headless in CI.
Only an unknown exercise key (an author's typo) raises :class:`KeyError`.

:func:`evaluate` is the same check without display; it returns a :class:`Feedback`.

Layout: the framework is :mod:`helpers.course.exercises.framework`; each notebook's exercises live in
their own module, ``helpers/exercises/nbNN.py`` (keys ``"NN.1"``, ``"NN.2"``), imported — and so
registered — when the package is imported. A new notebook's exercises go into a new ``nbNN.py``;
nothing else needs to change.
"""

import importlib
import pkgutil
import re

from helpers.course.exercises.framework import (
    REGISTRY,
    Exercise,
    Feedback,
    all_keys,
    check,
    evaluate,
    get,
    show,
    solution,
)

for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if re.fullmatch(r"nb\d\d", _module.name):  # one module per notebook; importing registers
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "REGISTRY",
    "Exercise",
    "Feedback",
    "all_keys",
    "check",
    "evaluate",
    "get",
    "show",
    "solution",
]
