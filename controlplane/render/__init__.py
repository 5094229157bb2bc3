"""What the control plane renders into each plane: pure functions from resources to Kubernetes objects."""
