"""The local lab: Debian nodes as systemd podman containers reached by real SSH."""
