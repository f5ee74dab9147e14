"""Labs: the theory the library relies on, shown numerically with the library's own code.

``deepgen lab NAME`` runs one and writes NAME.png and NAME.json; ``run_lab`` is the API.
"""

from . import divergences as _divergences  # noqa: F401
from . import elbo_gap as _elbo_gap  # noqa: F401
from . import gan_1d as _gan_1d  # noqa: F401
from . import optimal_discriminator as _optimal_discriminator  # noqa: F401
from . import reparameterisation as _reparameterisation  # noqa: F401
from .common import LABS, Lab, run_lab

__all__ = ["LABS", "Lab", "run_lab"]
