"""The image graph: content-addressed configs, layers, names, and the GraphDB that ties them.

The model: an image is a config document (its sha256 is the image id) over a chain of
layers (each a graph-driver directory, keyed by chain id); tags and digests name images;
containers get a read-write layer on an image's top layer. One :class:`Graph` per daemon::

    graph = Graph(data_root, data_root / "berth.db", new_driver(None, data_root))
    image_id = graph.import_tar(Path("rootfs.tar"), "busybox", [], "")
    graph.inspect("busybox")["RepoTags"]                 # ['busybox:latest']

Modules: ``reference`` (names), ``content`` (blobs), ``store`` (SQLite), ``image`` (config
documents, ids, times), ``changes`` (``--change``), ``layers``, ``importer``, ``views``
(API shapes), ``filters``, ``removal`` (rmi), ``graph`` (the facade).
"""

from berth.graph.graph import Graph

__all__ = ["Graph"]
