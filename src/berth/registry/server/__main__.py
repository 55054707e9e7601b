from berth.registry.server.main import main

raise SystemExit(main())
