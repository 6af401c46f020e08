"""Talk to a person: the control plane (signalling, matchmaking, auth, metrics)."""
