"""Files in and out of a container's view (``docker cp``): paths resolved inside the view's
root, Docker's path-stat, a tar of a path, a tar extracted at a path.

Every operation takes the view's root as a directory fd and resolves paths with
``openat2(RESOLVE_IN_ROOT)`` (:mod:`berth.container.files.resolve`), then works relative to
directory fds one name at a time with ``O_NOFOLLOW``: a ``..``, an absolute symlink or a symlink
swapped in during the copy (the docker cp CVE-2018-15664 class) stays inside the container.

    res = resolve_resource(root_fd, "/etc/")      # Docker's ResolvePath + StatPath
    for chunk in pack(root_fd, res): ...          # GET /containers/{id}/archive
    unpack(root_fd, "/tmp", reader, options)      # PUT /containers/{id}/archive
"""
