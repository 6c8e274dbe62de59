"""as-deploy exports models with parity checks and serves them.

Export, the model repository and the server arrive in the releases that follow; this
release fixes the package's name, version and error tree.
"""

from as_deploy._version import __version__
from as_deploy.exceptions import AsDeployError

__all__ = ["AsDeployError", "__version__"]
