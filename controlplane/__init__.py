"""The compact control plane: OpenChoreo resource kinds, validated against their CRD schemas."""
