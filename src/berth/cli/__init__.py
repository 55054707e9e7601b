"""The ``berth`` command: docker's commands, flags, output formats and exit codes.

Model: ``main.main(argv) -> int`` parses the global flags, looks the command up in a table and
imports only that command's module (``commands/``); each command is ``fn(ctx, argv) -> int``
over a ``Context`` (streams, environment, a lazily created ``berth.client.api.Client``).
Pure pieces, each unit-tested: ``options`` (a pflag-compatible parser), ``template`` (the Go
text/template subset of ``--format``), ``tabwriter`` + ``formatter`` (docker's tables),
``units``/``timespec`` (sizes, ``2 minutes ago``, ``--since 10m``), ``containerspec`` (run
flags -> the create body). ``session``/``streams``/``terminal`` move bytes for attached runs.

    >>> from berth.cli.main import main
    >>> main(["-H", "unix:///no/such.sock", "ps"])    # prints the no-daemon message   # doctest: +SKIP
    1
"""
