"""gaussvae_ros: a compact, queryable visual memory for robots.

Camera frames are fitted with 2D Gaussian splats (:mod:`gaussvae_ros.core`), stored by pose and
time (:mod:`gaussvae_ros.store`), and recalled as images at any resolution. The core and the store
import in a plain Python shell; only :mod:`gaussvae_ros.nodes` needs ROS 2.
"""

__version__ = "0.1.0"
