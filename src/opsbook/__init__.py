"""opsbook: run a small k3s production system from Ansible, driven from Python."""

__version__ = "0.1.0"
