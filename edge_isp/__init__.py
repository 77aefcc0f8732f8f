"""edge-isp: take learned ISP networks from PyTorch to phones and boards, verified.

Importing the package is cheap: heavy libraries load only in the functions that need them.
"""

from edge_isp.errors import EdgeIspError

__version__ = "0.1.0"

__all__ = ["EdgeIspError", "__version__"]
