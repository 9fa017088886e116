"""Small pieces shared by run.py, _extra_workloads.py and first_call.py."""
import json
import os


class NotAvailable(Exception):
    """This implementation cannot run this workload here (not installed, missing feature)."""


class Variants(dict):
    """Several ways tracegrad runs one workload: label -> zero-argument builder returning the callable.

    A builder may raise NotAvailable (e.g. the feature it measures has not landed yet); each variant is
    one row of the table, next to the same peers.
    """


def write_json(path, doc):
    """Write a benchmark's results document (creating its folder) and say where."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=2, default=float)
        f.write("\n")
    print(f"\nwrote {path}")
