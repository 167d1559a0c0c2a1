"""A second Docker engine on this machine, reachable only over ssh:// (issue 18)."""
