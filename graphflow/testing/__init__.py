"""Helpers for graphflow's own tests; the library never imports this package.

:mod:`graphflow.testing.device` is a stand-in for a GPU: numpy arrays that refuse implicit
conversion to the host as CuPy's do, and a backend over them, so that host/device mixing shows up
on machines without a GPU.
"""
