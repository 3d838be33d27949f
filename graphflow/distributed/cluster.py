"""Ray, when it is installed: starting a local instance or joining a cluster, and what it has to offer.

Every use of Ray goes through :func:`require_ray`, which names the extra to install when Ray is
missing, so that graphflow itself never needs it.

>>> describe_address(None), describe_address("auto"), describe_address("ray://head:10001")
('a local Ray instance', 'the running Ray cluster of this machine', 'the Ray cluster at ray://head:10001')
"""

from __future__ import annotations

from graphflow.errors import GraphflowError

INSTALL_HINT = "pip install 'graphflow[ray]'"


def ray_available() -> bool:
    """Whether Ray can be imported."""
    try:
        require_ray()
    except GraphflowError:
        return False
    return True


def require_ray(what: str = "distributed meta-training"):
    """The ``ray`` module, or a :class:`GraphflowError` saying that ``what`` needs it and how to install it."""
    try:
        import ray
    except ImportError:
        raise GraphflowError(f"{what} needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def describe_address(address: str | None) -> str:
    """Words for where :func:`connect` goes with ``address``."""
    if address is None:
        return "a local Ray instance"
    if address == "auto":
        return "the running Ray cluster of this machine"
    return f"the Ray cluster at {address}"


def connect(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Make sure this process is connected to Ray; True when this call connected it (started a
    local instance, or joined a cluster), so that :func:`shutdown_if_started` undoes just that.

    ``address=None`` starts a local instance with ``num_cpus`` (default: every core of the
    machine); ``"auto"`` joins the cluster ``ray start --head`` started on this machine, and
    ``"ray://host:port"`` or ``"host:port"`` a remote one. A process already connected stays with
    the instance it has (Ray allows one per process).
    """
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise GraphflowError(f"Ray address {address!r}: use 'auto', 'ray://host:port' or 'host:port'")
    ray = require_ray()
    if ray.is_initialized():
        return False
    try:
        if address is None:
            # "local": a new instance even where a stale or foreign cluster file (/tmp/ray) names another
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, logging_level="WARNING",
                     configure_logging=True)
        else:
            ray.init(address=address, logging_level="WARNING", configure_logging=True)
    except Exception as err:  # Ray raises ConnectionError, RuntimeError, ValueError, ... by version
        raise GraphflowError(f"cannot reach {describe_address(address)}: {type(err).__name__}: {err}") from None
    return True


def cluster_cpus() -> int:
    """The CPUs of the Ray instance this process is connected to."""
    return int(require_ray().cluster_resources().get("CPU", 0))


def shutdown_if_started(started: bool) -> None:
    """Leave Ray when :func:`connect` connected this process (a local instance it started stops; a
    cluster it joined keeps running); a connection the caller made stays."""
    if started:
        ray = require_ray()
        if ray.is_initialized():
            ray.shutdown()
