"""Polyseek's shared core: the embedder interface, the bundled model, settings and errors.

The build side lives in ``index/`` and the query side in ``search/``; both depend on this
package and on nothing of each other's except the on-disk index format in ``index``.
"""

__version__ = "0.1.0"
