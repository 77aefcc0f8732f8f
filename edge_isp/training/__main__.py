"""``python -m edge_isp.training``: the same as ``edge-isp train`` (no Typer needed)."""

from edge_isp.commands.train import main_entry

if __name__ == "__main__":
    main_entry()
