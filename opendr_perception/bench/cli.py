"""opendr-bench: benchmarks that report ratios measured side by side in one run.

Every benchmark is a module of this package with ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> dict``; ``run`` prints a readable
table and returns the figures, which ``--json`` writes to a file.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys

BENCHMARKS = (
    "opendr_perception.bench.node_overhead",
    "opendr_perception.bench.high_resolution_pose",
    "opendr_perception.bench.continual",
    "opendr_perception.bench.continual_video",
    "opendr_perception.bench.face_recognition",
    "opendr_perception.bench.active_vision",
    "opendr_perception.bench.spa",
    "opendr_perception.bench.active_face",
    "opendr_perception.bench.occlusion",
)


def _available():
    for module_name in BENCHMARKS:
        try:
            yield importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name:  # the module exists but a dependency is missing
                raise


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="opendr-bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", metavar="FILE", help="also write the figures to this JSON file")
    sub = parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    for module in _available():
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    args = parser.parse_args(argv)
    figures = args.run(args)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(figures, f, indent=2, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
