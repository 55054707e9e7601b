"""An OCI mount's ``options``, split into what mount(2) and mount_setattr(2) take.

The split is runc's (``specconv.parseMountOptions``): flag words (``ro``, ``nosuid``, ``bind``
...) become ``MS_*`` bits, propagation words a separate propagation call, recursive attribute
words (``rro``, ``rnosuid`` ...) a ``mount_setattr(AT_RECURSIVE)`` after the mount, ``tmpcopyup``
a copy of the covered directory into a new tmpfs, and every other word the filesystem's data
(``size=64m``, ``mode=1777``, ``newinstance``), given to the kernel as is.

Two refusals runc does not make, by name and before any side effect: a bare word that is not
recognised on a bind mount (a bind mount has no filesystem to take data: the kernel would
drop it silently, and ``nosiud`` would go unnoticed), and ``idmap=``/``ridmap=`` with a value
(crun's inline maps: not supported; the bare words, with the mount's ``uidMappings``, are, and
are no mount(2) flags). ``tmpcopyup`` on anything but a tmpfs is refused as well.

    >>> o = parse_mount_options(("nosuid", "rro", "size=1m", "tmpcopyup", "rslave"))
    >>> o.flags == kernel.MS_NOSUID, o.data, o.copyup, o.rec_set == ATTR_RDONLY
    (True, 'size=1m', True, True)
    >>> check_mount_options("bind", ("rbind", "ro", "nosiud"))
    "option 'nosiud' is not a bind mount option"

A ``key=value`` word on a bind mount (``mode=755``, ``size=1k``: generated specs add them to
every mount) cannot be a misspelt flag, since no flag has a value: it is dropped, as the kernel
and runc drop it.
"""

from __future__ import annotations

from berth.libcontainer import kernel
from berth.libcontainer.record import record

# mount_setattr(2) attributes (linux/mount.h)
ATTR_RDONLY = 0x1
ATTR_NOSUID = 0x2
ATTR_NODEV = 0x4
ATTR_NOEXEC = 0x8
ATTR__ATIME = 0x70  # the atime "enum": set one of the three below, clear this
ATTR_RELATIME = 0x0
ATTR_NOATIME = 0x10
ATTR_STRICTATIME = 0x20
ATTR_NODIRATIME = 0x80
ATTR_NOSYMFOLLOW = 0x200000


@record
class MountOptions:
    """Mount options split into ``mount(2)`` arguments."""

    flags: int = 0
    propagation: int = 0  # MS_SHARED/MS_SLAVE/MS_PRIVATE/MS_UNBINDABLE (| MS_REC), 0 = leave
    data: str = ""
    rec_set: int = 0  # mount_setattr(AT_RECURSIVE) attributes to set ...
    rec_clear: int = 0  # ... and to clear
    copyup: bool = False  # tmpcopyup

    @property
    def bind(self) -> bool:
        return bool(self.flags & kernel.MS_BIND)

    @property
    def data_words(self) -> tuple[str, ...]:
        return tuple(self.data.split(",")) if self.data else ()


# word -> (clear, bits): runc's mountFlags table ("defaults" is a no-op here; runc 1.1 hands it
# to the filesystem as data, which tmpfs then refuses)
FLAG_WORDS: dict[str, tuple[bool, int]] = {
    "defaults": (False, 0),
    "ro": (False, kernel.MS_RDONLY),
    "rw": (True, kernel.MS_RDONLY),
    "suid": (True, kernel.MS_NOSUID),
    "nosuid": (False, kernel.MS_NOSUID),
    "dev": (True, kernel.MS_NODEV),
    "nodev": (False, kernel.MS_NODEV),
    "exec": (True, kernel.MS_NOEXEC),
    "noexec": (False, kernel.MS_NOEXEC),
    "sync": (False, kernel.MS_SYNCHRONOUS),
    "async": (True, kernel.MS_SYNCHRONOUS),
    "dirsync": (False, kernel.MS_DIRSYNC),
    "remount": (False, kernel.MS_REMOUNT),
    "mand": (False, kernel.MS_MANDLOCK),
    "nomand": (True, kernel.MS_MANDLOCK),
    "atime": (True, kernel.MS_NOATIME),
    "noatime": (False, kernel.MS_NOATIME),
    "diratime": (True, kernel.MS_NODIRATIME),
    "nodiratime": (False, kernel.MS_NODIRATIME),
    "bind": (False, kernel.MS_BIND),
    "rbind": (False, kernel.MS_BIND | kernel.MS_REC),
    "relatime": (False, kernel.MS_RELATIME),
    "norelatime": (True, kernel.MS_RELATIME),
    "strictatime": (False, kernel.MS_STRICTATIME),
    "nostrictatime": (True, kernel.MS_STRICTATIME),
    "lazytime": (False, kernel.MS_LAZYTIME),
    "nolazytime": (True, kernel.MS_LAZYTIME),
    "acl": (False, kernel.MS_POSIXACL),
    "noacl": (True, kernel.MS_POSIXACL),
    "iversion": (False, kernel.MS_I_VERSION),
    "noiversion": (True, kernel.MS_I_VERSION),
    "silent": (False, kernel.MS_SILENT),
    "loud": (True, kernel.MS_SILENT),
    "nosymfollow": (False, kernel.MS_NOSYMFOLLOW),
    "symfollow": (True, kernel.MS_NOSYMFOLLOW),
}

PROPAGATION = {
    "private": kernel.MS_PRIVATE,
    "rprivate": kernel.MS_PRIVATE | kernel.MS_REC,
    "shared": kernel.MS_SHARED,
    "rshared": kernel.MS_SHARED | kernel.MS_REC,
    "slave": kernel.MS_SLAVE,
    "rslave": kernel.MS_SLAVE | kernel.MS_REC,
    "unbindable": kernel.MS_UNBINDABLE,
    "runbindable": kernel.MS_UNBINDABLE | kernel.MS_REC,
}

# word -> (clear, attribute): runc's recAttrFlags, applied with mount_setattr(AT_RECURSIVE)
REC_ATTR_WORDS: dict[str, tuple[bool, int]] = {
    "rro": (False, ATTR_RDONLY),
    "rrw": (True, ATTR_RDONLY),
    "rnosuid": (False, ATTR_NOSUID),
    "rsuid": (True, ATTR_NOSUID),
    "rnodev": (False, ATTR_NODEV),
    "rdev": (True, ATTR_NODEV),
    "rnoexec": (False, ATTR_NOEXEC),
    "rexec": (True, ATTR_NOEXEC),
    "rnodiratime": (False, ATTR_NODIRATIME),
    "rdiratime": (True, ATTR_NODIRATIME),
    "rrelatime": (False, ATTR_RELATIME),
    "rnorelatime": (True, ATTR_RELATIME),
    "rnoatime": (False, ATTR_NOATIME),
    "ratime": (True, ATTR_NOATIME),
    "rstrictatime": (False, ATTR_STRICTATIME),
    "rnostrictatime": (True, ATTR_STRICTATIME),
    "rnosymfollow": (False, ATTR_NOSYMFOLLOW),
    "rsymfollow": (True, ATTR_NOSYMFOLLOW),
}

COPYUP = "tmpcopyup"
_IDMAP = ("idmap", "ridmap")


def parse_mount_options(options: tuple[str, ...] | list[str]) -> MountOptions:
    flags = 0
    propagation = 0
    rec_set = rec_clear = 0
    copyup = False
    data: list[str] = []
    for word in options:
        if word in FLAG_WORDS:
            clear, bits = FLAG_WORDS[word]
            flags = flags & ~bits if clear else flags | bits
        elif word in PROPAGATION:
            propagation = PROPAGATION[word]
        elif word in REC_ATTR_WORDS:
            clear, attr = REC_ATTR_WORDS[word]
            if clear:
                rec_clear |= attr
            else:
                rec_set |= attr
                if attr & ATTR__ATIME == attr:  # an atime value: clear the enum too (mount_setattr(2))
                    rec_clear |= ATTR__ATIME
        elif word == COPYUP:
            copyup = True
        elif word in _IDMAP:
            pass  # read from the Mount (spec.Mount.idmap_recursive)
        else:
            data.append(word)
    return MountOptions(flags, propagation, ",".join(data), rec_set, rec_clear, copyup)


def check_mount_options(mtype: str, options: tuple[str, ...]) -> str | None:
    """What is wrong with ``options`` for a mount of ``mtype``, naming the word; None if nothing."""
    for word in options:
        if word.split("=", 1)[0] in _IDMAP and word not in _IDMAP:
            return f"option '{word}': inline id maps are not supported by berth (give the mount uidMappings and gidMappings)"
    opts = parse_mount_options(options)
    if opts.copyup and mtype != "tmpfs":
        return f"option '{COPYUP}' needs a tmpfs mount, not {mtype}"
    if opts.bind or mtype == "bind":
        for word in opts.data_words:
            if "=" not in word:
                return f"option '{word}' is not a bind mount option"
    return None

