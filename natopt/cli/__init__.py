"""The ``natopt`` command line: one module per subcommand, dispatched by ``main``.

``SUMMARIES`` is each subcommand's one-line help: ``natopt --help`` lists them without
importing the subcommands' modules, and each module's parser uses its own line.
"""

from __future__ import annotations

__all__ = ["SUMMARIES"]

SUMMARIES = {
    "optimize": "optimise a trained model",
    "inspect": "show a model's computational units, their shapes and costs",
    "bench": "measure the latency of ONNX models with onnxruntime",
    "report": "Markdown, plot and CI gate from optimize/bench result files",
}
