"""The builder (the seed's "build" path to new images): Dockerfiles in, images out.

The model, box by box::

    parser        text -> nodes (directives, continuations, heredocs, line numbers)
    instructions  nodes -> typed, checked instructions (flags, forms, argument counts)
    shell, words  Docker's word lexer: quotes, escapes, $VAR expansion
    context       the context tar, spooled and indexed (never unpacked on the host)
    copier        COPY/ADD sources, checksums, and the layer tar they add
    cache         SQLite rows: (parent image, step config) -> image, and why a step missed
    dispatch      one stage's instructions as Docker's classic builder runs them
    build         the stages in order, step numbering, target, labels, the JSON stream
    host          what the builder asks of the daemon (jobs: create/start/wait/commit ...)

A build is the ``image.build`` job (``berth.daemon.build``); each step is a ``build.step`` job
and a RUN runs the engine's own container jobs, so ``berth jobs`` shows it all.
"""
