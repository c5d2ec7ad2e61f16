"""Tools for the face-mesh estimator: deriving the canonical face from our rendered heads."""
