"""The local stack: every piece Publipost needs, started as processes on this machine, no Docker."""
