"""The course around the notebooks: running the series, checking it, rendering it, exercises.

None of this is what a lesson teaches; notebooks import only :mod:`.settings` (profile-dependent
settings), :mod:`.results` (key results for the summary), :mod:`.exercises` and :mod:`.widgets`.

- :mod:`.settings`       notebook settings that follow the run profile (papermill-style)
- :mod:`.results`        key results a notebook records for the main job's summary; JSON conversion
- :mod:`.notebook_info`  the one reader of a notebook's ``inference_suite`` metadata
- :mod:`.series`         the main job: execute the notebooks, write the summary
- :mod:`.output_checks`  checks that an executed notebook's outputs are clean
- :mod:`.site`           render executed notebooks to HTML with an index
- :mod:`.widgets`        ipywidgets for classroom use
- :mod:`.exercises`      exercises with automatic checks (``nbNN.py``: one notebook's exercises)
"""
