"""One module per family of ``berth`` commands; each command is ``fn(ctx, argv) -> exit code``."""
