"""ROS 2 glue for hpe: nodes, message conversion, TF, services, diagnostics.

The generated interface modules (``hpe_ros.msg``, ``hpe_ros.srv``) are installed by the colcon
(ament_cmake) build into a ``site-packages/hpe_ros`` directory. In a development checkout the
sources of this package live elsewhere, so the package path is extended to every ``hpe_ros``
directory on ``sys.path``: both halves then import as one package.
"""
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
