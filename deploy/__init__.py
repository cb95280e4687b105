"""Deployment files: the nginx site template and its renderer, systemd units, the env file."""
