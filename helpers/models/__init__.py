"""Where models come from, below the catalog (:mod:`helpers.catalog` is the one call to use).

- :mod:`.task`        a task as one record (:class:`~.task.TaskRecord`: canonical, offline and
                      tiny sources) and the loaders the tasks share (hub, PyPI package, tiny)
- :mod:`.image_classification`, :mod:`.question_answering`, :mod:`.text_generation`,
  :mod:`.sentence_embedding` — one task each: its ``RECORD`` and its loaders
- :mod:`.hub`         model files on disk, in the hub caches, in a classroom folder, or online
- :mod:`.packaged`    real pretrained models shipped inside PyPI packages: files and loading
- :mod:`.tiny`        tiny hand-written models (one lesson point each) and a tiny ONNX classifier
- :mod:`.embeddings`  sentence embeddings: mean pooling (eager and in-graph), cosine similarity
- :mod:`.build`       every one-time build the notebooks need, ahead of the lessons
                      (``python -m helpers.models.build``)
- :mod:`.optimum`     Hugging Face Optimum next to the hand-written paths: why it did not run here
"""
