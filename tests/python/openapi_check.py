"""Validates ScanGate's OpenAPI document with openapi-spec-validator, an implementation
independent of the one that generates it.

Usage: openapi_check.py URL. Prints `ok: openapi 3.1` and exits 0 when the document is a
valid OpenAPI 3.1 document; prints every problem found and exits 1 otherwise.
"""

import json
import sys
import urllib.request

from openapi_spec_validator import OpenAPIV31SpecValidator


def main() -> int:
    with urllib.request.urlopen(sys.argv[1], timeout=30) as res:
        doc = json.load(res)
    errors = list(OpenAPIV31SpecValidator(doc).iter_errors())
    for error in errors:
        where = "/".join(str(p) for p in error.path)
        print(f"error at {where}: {error.message}")
    if errors:
        return 1
    print("ok: openapi 3.1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
