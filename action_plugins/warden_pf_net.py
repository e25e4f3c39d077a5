"""Runs warden_pf_net through the warden binary cache (see warden_binary.py)."""

from __future__ import annotations

from ansible.plugins.loader import action_loader

# The shared implementation in this directory (the collection's copy of this file imports its
# own from plugins/plugin_utils, see bin/build-collection).
_Base = action_loader.get("warden_binary", class_only=True)


class ActionModule(_Base):  # type: ignore[misc,valid-type]
    pass
