"""The image graph: content-addressed configs, layers, names, and the GraphDB that ties them.

The model: an image is a config document (its sha256 is the image id) over a chain of
layers (each a graph-driver directory, keyed by chain id); tags and digests name images;
containers get a read-write layer on an image's top layer. One :class:`Graph` per daemon::

    graph = Graph(data_root, data_root / "berth.db", new_driver(None, data_root))
    image_id = graph.import_tar(Path("rootfs.tar"), "busybox", [], "")
    graph.inspect("busybox")["RepoTags"]                 # ['busybox:latest']

Modules: ``imagestore``, ``layerstore``, ``content`` (the three stores; ``txn`` locks two of
them in order), ``store`` (SQLite), ``reference`` (names), ``image`` (config documents, ids,
times), ``changes`` (``--change``), ``layers`` (applying a tar), ``registration``,
``importer``, ``derive``, ``rwlayer`` (containers' layers, commit), ``imagearchive`` and
``ocilayout`` (save, load), ``distribution`` (push), ``views`` (API shapes), ``filters``,
``removal`` (rmi), ``pruning``, ``graph`` (the facade the daemon holds; locking is described
there).
"""

from berth.graph.graph import Graph

__all__ = ["Graph"]
