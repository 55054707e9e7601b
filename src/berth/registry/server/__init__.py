"""berth's registry server (``berth registry serve``): see ``app`` for the routes, ``store`` for the layout."""
