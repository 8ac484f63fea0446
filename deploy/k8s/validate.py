#!/usr/bin/env python3
"""Validates Kubernetes manifests offline against the JSON schemas in schemas/
(Kubernetes 1.29's, in yannh/kubernetes-json-schema's naming: KIND-GROUP-VERSION.json,
KIND-VERSION.json for the core group; "strict": unknown fields are errors).

    validate.py MANIFEST.yaml...

Prints one line per object (`ok FILE KIND NAME`) or per error, and exits 1 when any
object is invalid or has no schema here. Needs python3-yaml and python3-jsonschema.
"""
import json
import pathlib
import sys

import jsonschema
import yaml

SCHEMAS = pathlib.Path(__file__).resolve().parent / "schemas"


def schema_file(obj):
    group, _, version = obj["apiVersion"].rpartition("/")
    parts = [obj["kind"].lower()] + ([group.split(".")[0]] if group else []) + [version]
    return SCHEMAS / ("-".join(parts) + ".json")


def errors_of(obj):
    if not isinstance(obj, dict) or "apiVersion" not in obj or "kind" not in obj:
        return ["not a Kubernetes object (no apiVersion or kind)"]
    path = schema_file(obj)
    if not path.is_file():
        return [f"no schema for {obj['apiVersion']} {obj['kind']} ({path.name})"]
    validator = jsonschema.Draft7Validator(json.loads(path.read_text()))
    return [
        f"{'.'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
        for e in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    ]


def main(files):
    failed = checked = 0
    for name in files:
        for obj in yaml.safe_load_all(pathlib.Path(name).read_text()):
            if obj is None:
                continue
            checked += 1
            label = f"{name} {obj.get('kind', '?')} {obj.get('metadata', {}).get('name', '?')}"
            errors = errors_of(obj)
            for error in errors:
                print(f"invalid {label}: {error}")
            if errors:
                failed += 1
            else:
                print(f"ok {label}")
    if checked == 0:
        print("no manifest given")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
