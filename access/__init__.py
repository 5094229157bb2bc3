"""Authentication and authorization shared by the observer and the control plane (OIDC, subjects, the Casbin PDP)."""
