"""opendr-models: list, inspect, fetch and verify the model files the suite uses.

  opendr-models list              # every registered model, its source and licence
  opendr-models info NAME         # the whole manifest entry (training data, scores, origin)
  opendr-models fetch NAME ...    # download URL-sourced models into the cache
  opendr-models verify            # check every model is present with the right sha256
  opendr-models path NAME         # print the verified local path

Environment: OPENDR_MODEL_CACHE (cache directory), OPENDR_OFFLINE=1 (never download),
OPENDR_MODEL_MANIFESTS (extra manifest files or directories, ':'-separated).
"""
from __future__ import annotations

import argparse
import sys

from opendr_perception.core.registry import ModelError, ModelRegistry


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="opendr-models", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("list", help="list the registered models")
    for command, text in (("info", "print a model's manifest entry"), ("path", "print a model's verified path")):
        sub.add_parser(command, help=text).add_argument("name")
    sub.add_parser("fetch", help="download models into the cache").add_argument("names", nargs="+")
    sub.add_parser("verify", help="check models are present and intact (all by default)").add_argument(
        "names", nargs="*")
    args = parser.parse_args(argv)
    try:
        registry = ModelRegistry()
        if args.command == "list":
            for name in registry.names():
                spec = registry.spec(name)
                print(f"{name:32s} {spec.source:8s} {spec.license.split()[0]:12s} {spec.description or spec.origin}")
        elif args.command == "info":
            spec = registry.spec(args.name)
            for key in ("name", "source", "location", "path", "sha256", "license", "origin", "training_data",
                        "scores", "description"):
                value = getattr(spec, key)
                if value:
                    print(f"{key:14s} {value}")
        elif args.command == "path":
            print(registry.resolve(args.name))
        else:
            failures = 0
            for name in (args.names if args.command == "fetch" else args.names or registry.names()):
                try:
                    print(f"ok      {name}  {registry.resolve(name)}")
                except ModelError as e:
                    failures += 1
                    print(f"FAILED  {name}  {e}")
            return 1 if failures else 0
    except ModelError as e:
        print(f"opendr-models: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
