"""CLI verbs, one module each; ``edge_isp.cli`` assembles them."""
