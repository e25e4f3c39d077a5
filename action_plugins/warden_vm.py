"""Runs warden_vm through the warden binary cache (see warden_binary.py)."""

from __future__ import annotations

from ansible.plugins.loader import action_loader

# The shared implementation, from the installed collection or from this directory.
_Base = action_loader.get("warden.freebsd.warden_binary", class_only=True) or action_loader.get("warden_binary", class_only=True)


class ActionModule(_Base):  # type: ignore[misc,valid-type]
    pass
