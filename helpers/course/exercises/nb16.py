"""Exercises of notebook 16 (Under the hood): reading per-operator profiles; registered on import."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from helpers.course.exercises.framework import (
    Exercise,
    Feedback,
    Wrong,
    as_function,
    as_names,
    as_number,
    correct,
    is_close,
    register,
)


def _check_10_1(answer: Any, profiles: Sequence[pd.DataFrame]) -> Feedback:
    category_share = as_function(answer, "category_share(profile, category)")
    checked = 0
    for profile in profiles:
        total = float(profile["time_ms"].sum())
        for category in sorted(set(profile["category"])) + ["no such category"]:
            want = float(profile.loc[profile["category"] == category, "time_ms"].sum()) / total
            got = as_number(category_share(profile, category), "the share")
            if is_close(got, want, rel=1e-6, abs_=1e-9):
                checked += 1
                continue
            runtime = profile.attrs.get("runtime", "a profile")
            if is_close(got, want * 100, rel=1e-6):
                raise Wrong(f"{got:.2f} is a percentage; the share of {category!r} is a fraction, {want:.4f}.",
                            "Divide by the total, do not multiply by 100.")
            rows = profile[profile["category"] == category]
            if len(rows) and is_close(got, float(rows["share"].iloc[0]), rel=1e-6) and len(rows) > 1:
                raise Wrong(f"{got:.4f} is the share of one operator type only; {category!r} has "
                            f"{len(rows)} in {runtime}'s profile ({', '.join(rows['op_type'])}).",
                            "Add up time_ms (or share) over every row of the category.")
            raise Wrong(f"For {category!r} in {runtime}'s profile your function returns {got:.4f}; "
                        f"the share of operator time is {want:.4f}.",
                        "Select the rows with profile['category'] == category, sum their time_ms, divide by "
                        "the sum of all time_ms (a category that is absent has share 0).")
    return correct(f"Right on {checked} categories of {len(profiles)} profiles, absent categories included.")


def _check_10_2(answer: Any, before: pd.DataFrame, after: pd.DataFrame) -> Feedback:
    names = set(as_names(answer))
    ran_before = set(before.loc[before["calls"] > 0, "op_type"])
    ran_after = set(after.loc[after["calls"] > 0, "op_type"])
    want = ran_before - ran_after
    if names == want:
        return correct(f"Right: {', '.join(sorted(want)) or 'nothing'} ran without optimisations and not "
                       "with them — fused into other kernels (or folded away).")
    if names == ran_after - ran_before:
        raise Wrong("Those are the operator types that appeared with optimisations, not the ones that went away.",
                    "Swap before and after.")
    unknown = names - ran_before - ran_after
    if unknown:
        raise Wrong(f"{', '.join(sorted(unknown))} ran in neither profile.",
                    "Read the names from the op_type column of the two tables.")
    missing, extra = want - names, names - want
    raise Wrong(f"Not yet: missing {', '.join(sorted(missing)) or 'nothing'}; "
                f"{', '.join(sorted(extra)) or 'nothing'} still run with optimisations enabled.",
                "An operator type went away when it has calls in `before` and none in `after`.")


register(
    Exercise(
        key="16.1",
        title="The share of a category",
        prompt=(
            "Write `category_share(profile, category)`: the fraction (0 to 1) of a profile's operator time spent "
            "in one category (`profile` is a table from `helpers.under_the_hood.profiling`, "
            "`category` e.g. `\"matmul\"`). "
            "The check runs it on this notebook's profiles, for every category they have and one they do not."
        ),
        checker=_check_10_1,
        context=("profiles",),
        call='exercises.check("16.1", category_share, profiles=[ort_profile, torch_profile, qa_profiles["ORT fp32"]])',
        solution="def category_share(profile, category):\n"
        '    in_category = profile.loc[profile["category"] == category, "time_ms"].sum()\n'
        '    return in_category / profile["time_ms"].sum()',
    )
)

register(
    Exercise(
        key="16.2",
        title="What the graph optimiser removed",
        prompt=(
            "Which operator types did ONNX Runtime run for the classifier with graph optimisations **disabled** "
            "(`ort_disabled`) but not with them enabled (`ort_profile`)? Answer with a list of names computed "
            "from the two tables."
        ),
        checker=_check_10_2,
        context=("before", "after"),
        call='exercises.check("16.2", answer, before=ort_disabled, after=ort_profile)',
        solution='answer = sorted(set(ort_disabled.op_type) - set(ort_profile.op_type))\n'
        '# or: changes.loc[changes.change == "removed", "op_type"].tolist()',
    )
)
