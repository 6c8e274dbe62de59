"""as-template generates and checks new as-toolkit workspace members.

The generator arrives in a release that follows; this release fixes the package's name,
version and error tree.
"""

from as_template._version import __version__
from as_template.exceptions import AsTemplateError

__all__ = ["AsTemplateError", "__version__"]
