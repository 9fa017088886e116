"""Small pieces shared by run.py, _extra_workloads.py and first_call.py."""


class NotAvailable(Exception):
    """This implementation cannot run this workload here (not installed, missing feature)."""


class Variants(dict):
    """Several ways tracegrad runs one workload: label -> zero-argument builder returning the callable.

    A builder may raise NotAvailable (e.g. the feature it measures has not landed yet); each variant is
    one row of the table, next to the same peers.
    """
