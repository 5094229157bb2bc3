"""The tunnel protocol between the control plane's cluster gateway and its plane agents: frames, the paths either side refuses, TLS."""
