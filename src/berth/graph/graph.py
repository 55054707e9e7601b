"""The Graph: one daemon's image store, layer store and content store, and the operations that
use them (Docker's image store + layer store + reference store).

The model: an image is a config blob (its digest is the image id) on top of a chain of layers
held by the graph driver; tags and digests name images; containers get a read-write layer on
an image's top layer. Three stores hold it:

- :class:`~berth.graph.imagestore.ImageStore` -- images, configs, tags and digests;
- :class:`~berth.graph.layerstore.LayerStore` -- layers, containers' layers, the driver's dirs,
  the layers held by builds in progress;
- :class:`~berth.graph.content.ContentStore` -- blobs by digest (configs, layer tars, their
  compressed forms).

Each operation module takes only the stores it needs, as arguments: ``importer``, ``derive``
and ``registration`` (images + layers + content), ``imagearchive``/``ocilayout`` (save, load),
``rwlayer`` (containers' layers, commit), ``pruning`` and ``removal`` (:class:`Stores`),
``distribution`` (what a push reads), ``views`` (inspect, list, history). None of them sees
this class; it composes them for the daemon. The API is synchronous; the daemon calls it from
worker threads::

    graph = Graph(Path("/var/lib/berth"), Path("/var/lib/berth/berth.db"), new_driver(None, root))
    image_id = graph.import_tar(Path("rootfs.tar"), "busybox:latest", ['CMD ["sh"]'], "")
    graph.resolve("busybox")                 # 'sha256:...'
    graph.prepare_rw(cid, image_id); graph.rootfs_mounts(cid, "/run/berth/<id>/rootfs")

Locking. Each of the image store and the layer store has one RLock (``images.lock``,
``layers.lock``); the database has its own, held by every statement and for a whole
transaction. The order is always images, then layers, then the database, never the reverse:

- a change of names alone (tag, a pulled digest) takes the images' lock;
- a change of layers alone (a build's layers applied and held, a container's layer removed,
  layer garbage, a blob's compressed form or source) takes the layers' lock;
- a change of both (registering an image, rmi, image prune, a container's new layer on an
  image) takes both, with :func:`berth.graph.txn.locked`;
- reads (inspect, list, history, resolve) take no store lock: each statement is consistent,
  and rows are immutable except tags;
- heavy I/O (unpacking a layer, compressing one for a push, writing a save) runs outside
  every lock; what it made is recorded afterwards under the locks. A layer being applied is
  kept from garbage collection by :class:`~berth.graph.layerstore.LayerHolds` (under the
  layers' lock), and the layer garbage collector reads the images' top layers under the
  layers' lock only (an image that takes layers records them under it too).

The content store has no lock: blobs are written to a temp file and renamed into place, and a
blob is deleted only by the store that owns it, under that store's lock.

On disk: ``<root>/blobs/sha256/<hex>`` (configs, layer tars), the driver's dirs, and the tables
in ``db_path`` (see :mod:`berth.graph.store`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from berth.drivers.graph import GraphDriver
from berth.drivers.graph.diff import IdShift
from berth.errors import InvalidParameter, NotFound
from berth.graph import imagearchive, importer, pruning, registration, rwlayer
from berth.graph.budget import DEFAULT_MAX_IMPORT_SIZE, UnpackBudget
from berth.graph.content import ContentStore
from berth.graph.distribution import Blob, Distribution
from berth.graph.imagestore import ImageStore
from berth.graph.layers import PendingLayer
from berth.graph.layerstore import LayerStore
from berth.graph.removal import Stores, remove_image
from berth.graph.store import GraphDB, ImageRow
from berth.graph.views import Views, image_history, inspect_image, list_images
from berth.libcontainer import Mount

RESOLVED_MAX = 64  # references remembered by Graph.resolve (emptied when full)


class Graph:
    """Images and layers of one daemon (one data root)."""

    def __init__(
        self, root: Path, db_path: Path, driver: GraphDriver, max_import_size: int = DEFAULT_MAX_IMPORT_SIZE
    ) -> None:
        self.root = root
        self.max_import_size = max_import_size  # decompressed bytes one import/load/pull may read
        self.content = ContentStore(root)
        self._db = GraphDB(db_path)
        self.images = ImageStore(self._db, self.content)
        self.layers = LayerStore(self._db, driver, self.content)
        self._resolved: dict[str, tuple[int, str]] = {}  # ref -> (the tables' generation, image id)
        self.collect_garbage()

    @property
    def driver(self) -> GraphDriver:
        return self.layers.driver

    def close(self) -> None:
        self._db.close()

    # what each operation takes
    @property
    def stores(self) -> Stores:
        return Stores(self.images, self.layers, self.content)

    @property
    def distribution(self) -> Distribution:
        return Distribution(self.images, self.layers, self.content)

    @property
    def archives(self) -> imagearchive.Archives:
        return imagearchive.Archives(self.images, self.layers, self.content, self.root / "tmp", self.max_import_size)

    @property
    def views(self) -> Views:
        return Views(self.images, self.layers)

    # names -> ids, images, configs, tags
    def resolve(self, ref_or_id: str) -> str:
        """The image id for a name, digest reference, full id or unique id prefix."""
        generation = self._db.names_generation  # before the lookup: a write meanwhile voids the answer
        image_id = self.images.resolve(ref_or_id)
        if len(self._resolved) >= RESOLVED_MAX:
            self._resolved.clear()
        self._resolved[ref_or_id] = (generation, image_id)
        return image_id

    def resolve_cached(self, ref_or_id: str) -> str | None:
        """What :meth:`resolve` answered for ``ref_or_id`` last, if nothing was written to the
        tables of names since (no tag or digest moved, no image came or went); None otherwise. No I/O: for
        the event loop (a create's image without a hop to a worker thread)."""
        hit = self._resolved.get(ref_or_id)
        return hit[1] if hit is not None and hit[0] == self._db.names_generation else None

    def config_cached(self, image_id_: str) -> dict[str, Any] | None:
        """:meth:`config` if the image's config document is in memory already (no I/O), else None."""
        return self.images.config(image_id_) if self.images.config_loaded(image_id_) else None

    def image(self, image_id_: str) -> ImageRow:
        return self.images.get(image_id_)

    def image_config(self, image_id_: str) -> dict[str, Any]:
        """The whole image config document (cached; configs never change)."""
        return self.images.config_doc(image_id_)

    def config_bytes(self, image_id_: str) -> bytes:
        return self.images.config_bytes(image_id_)

    def config(self, image_id_: str) -> dict[str, Any]:
        """The image's container config (``Cmd``, ``Env``, ``WorkingDir``...), Docker's shape."""
        return self.images.config(image_id_)

    def repo_tags(self, image_id_: str) -> list[str]:
        return self.images.repo_tags(image_id_)

    def repo_digests(self, image_id_: str) -> list[str]:
        return self.images.repo_digests(image_id_)

    def tag(self, ref: str, repo: str, tag: str = "") -> str:
        """Point ``repo:tag`` at the image ``ref`` names; return the familiar new name."""
        return self.images.tag(ref, repo, tag)

    def add_digest(self, image_id_: str, repo: str, digest: str) -> None:
        """Record ``repo@digest`` (a pulled manifest) as a name of the image."""
        self.images.add_digest(image_id_, repo, digest)

    # images
    def register_image(
        self, config: bytes, pending: list[PendingLayer], repo_tag: str | None = None, parent: str = ""
    ) -> str:
        """Record an image whose config bytes are ``config`` and whose new layers are ``pending``
        (the top one last), optionally tagged; one transaction. Returns the image id."""
        return registration.register_image(self.images, self.layers, self.content, config, pending, repo_tag, parent)

    def create_image(
        self,
        config: bytes,
        open_layer: Callable[[int], BinaryIO],
        repo_tag: str | None = None,
        budget: UnpackBudget | None = None,
    ) -> str:
        """Build an image from its config and its layer tars (``docker load``, a pull); see
        :func:`berth.graph.registration.create_image`."""
        budget = budget or UnpackBudget(self.max_import_size, "create image")
        return registration.create_image(self.images, self.layers, self.content, config, open_layer, repo_tag, budget)

    def manifest(self, image_id_: str) -> bytes:
        """Docker v2 schema 2 manifest for a push (see :mod:`berth.graph.distribution`)."""
        return self.distribution.manifest(image_id_)

    def push_blobs(self, image_id_: str) -> list[Blob]:
        """The image's compressed layer blobs, base first (made once, then reused)."""
        return self.distribution.push_blobs(image_id_)

    def config_blob(self, image_id_: str) -> Blob:
        return self.distribution.config_blob(image_id_)

    def record_layer_blob(self, diff_id: str, digest: str, media_type: str, size: int) -> None:
        """After a pull: blob ``digest`` (in :attr:`content`) is a compressed form of ``diff_id``."""
        self.layers.record_blob(diff_id, digest, media_type, size)

    def layers_size(self) -> int:
        """Bytes of all image layers, each counted once (``docker system df``'s LayersSize)."""
        return self.layers.total_size()

    def layer_tar(self, diff_id: str) -> Path:
        """The uncompressed tar of a layer, exactly as imported or pulled (its sha256 is ``diff_id``)."""
        return self.layers.tar(diff_id)

    def import_tar(self, path: Path, repo_tag: str | None, changes: list[str], message: str) -> str:
        """``docker import``: one rootfs tar (plain or compressed) becomes a one-layer image."""
        try:
            stream: BinaryIO = open(path, "rb")
        except OSError as exc:
            raise InvalidParameter(f"import {path}: {exc.strerror or exc}") from exc
        with stream:
            return self.import_stream(stream, repo_tag, changes, message)

    def import_stream(self, stream: BinaryIO, repo_tag: str | None, changes: list[str], message: str) -> str:
        """:meth:`import_tar` from an open stream (an HTTP body)."""
        budget = UnpackBudget(self.max_import_size, "import")
        return importer.import_stream(self.images, self.layers, self.content, stream, repo_tag, changes, message, budget)

    def prune(
        self, filters: dict[str, Any] | None = None, users: Callable[[str], list[str]] | None = None
    ) -> dict[str, Any]:
        """``docker image prune``: ``{"ImagesDeleted": [...] | None, "SpaceReclaimed": n}``."""
        return pruning.prune(self.stores, filters or {}, users or (lambda _id: []))

    def save(self, names: list[str], out: BinaryIO, oci: bool = False) -> None:
        """``docker save``: write the named images as a docker-archive tar to ``out``."""
        imagearchive.save(self.archives, names, out, oci)

    def load(self, stream: BinaryIO) -> list[str]:
        """``docker load``: returns the lines Docker prints (``Loaded image: busybox:latest``)."""
        return imagearchive.load(self.archives, stream)

    def inspect(self, ref: str) -> dict[str, Any]:
        try:
            found = self.resolve(ref)
        except NotFound as exc:
            raise NotFound(f"no such image: {ref}: {exc.message}") from exc
        return inspect_image(self.views, found)

    def history(self, ref: str) -> list[dict[str, Any]]:
        return image_history(self.views, self.resolve(ref))

    def remove(
        self,
        ref: str,
        force: bool = False,
        noprune: bool = False,
        users: Callable[[str], list[str]] | None = None,
        running: Callable[[str], list[str]] | None = None,
    ) -> list[dict[str, str]]:
        """``docker rmi``: ``[{"Untagged": "busybox:latest"}, {"Deleted": "sha256:..."}]``."""
        return remove_image(self.stores, ref, force, noprune, users or (lambda _id: []), running or (lambda _id: []))

    # container layers
    def prepare_rw(self, container_id: str, image_id_: str) -> None:
        """Create the container's init and read-write layers on the image's top layer."""
        rwlayer.prepare_rw(self.images, self.layers, container_id, image_id_)

    def rootfs_mounts(self, container_id: str, target: str | Path) -> list[Mount]:
        """The mount plan that makes ``target`` the container's root file system."""
        return self.layers.mounts(container_id, target)

    def read_file(self, container_id: str, path: str) -> bytes | None:
        """A small file as the container sees it (no mount needed); None if absent;
        ``berth.accountfile.AccountFileError`` if it is not a regular file of at most 1 MiB."""
        return rwlayer.read_file(self.layers, container_id, path)

    def read_files(self, container_id: str, paths: tuple[str, ...]) -> list[bytes | None]:
        """:meth:`read_file` of each path, the container's layers looked up once."""
        return rwlayer.read_files(self.layers, container_id, paths)

    def mkdir(self, container_id: str, path: str) -> None:
        """Create a missing directory (``WorkingDir``) in a container that is not running."""
        rwlayer.make_dirs(self.layers, container_id, path)

    def copy_dir(self, container_id: str, path: str, target: Path) -> bool:
        """Copy the container's directory ``path`` (its merged view, no mount) into the empty
        directory ``target``: a new volume's copy-up. False if ``path`` is not a directory."""
        return rwlayer.copy_dir(self.layers, container_id, path, target)

    def changes(self, container_id: str) -> list[dict[str, Any]]:
        """``docker diff``: ``[{"Path": "/root", "Kind": 1}, ...]`` (0 changed, 1 added, 2 deleted)."""
        return rwlayer.container_changes(self.layers, container_id)

    def export(self, container_id: str, out: BinaryIO, to_container: IdShift | None = None) -> None:
        """``docker export``: the container's file system as a tar written to ``out``
        (``to_container``: host ids -> the container's, for a container in a user namespace)."""
        rwlayer.export(self.layers, container_id, out, to_container)

    def commit(
        self,
        container_id: str,
        repo_tag: str | None,
        changes: list[str],
        message: str = "",
        author: str = "",
        container_config: dict[str, Any] | None = None,
        image_config: dict[str, Any] | None = None,
        created_by: str | None = None,
        to_container: IdShift | None = None,
    ) -> str:
        """``docker commit``: a new image from the container's changes; returns its id. A build
        step gives the new image's config and history line itself (``image_config``, ``created_by``);
        ``to_container`` maps the ids a container in a user namespace wrote back to its own."""
        return rwlayer.commit(
            self.images, self.layers, self.content, self.root / "tmp", container_id, repo_tag, changes, message,
            author, container_config, image_config, created_by,
            to_container,
        )

    def has_rw(self, container_id: str) -> bool:
        """Whether the container's read-write layer is recorded (a removal deletes it first)."""
        return self.layers.rw(container_id) is not None

    def rw_size(self, container_id: str) -> int:
        """Bytes the container wrote (``SizeRw``)."""
        return self.layers.rw_size(container_id)

    def rw_metadata(self, container_id: str) -> dict[str, str]:
        """``GraphDriver.Data`` of a container's inspect."""
        return self.layers.rw_metadata(container_id)

    def remove_rw(self, container_id: str) -> None:
        """Remove the container's layer, and layers only a removed image still held."""
        with self.layers.lock:
            self.layers.delete_rw(container_id)
            self.prune_layers()

    # garbage
    def prune_layers(self) -> list[str]:
        """Delete layers no image or container uses; return their chain ids (top first)."""
        return self.layers.prune(self.images.tops)

    def collect_garbage(self) -> None:
        """At start-up: drop driver dirs with no row (an import cut short) and temp blobs."""
        self.layers.collect_garbage(self.images.tops)

    # last in the class body: the name shadows the builtin in annotations below it
    def list(self, all: bool = False, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:  # noqa: A002
        return list_images(self.views, all, filters or {})
