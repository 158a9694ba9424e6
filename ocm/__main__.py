from ocm.cli import main

raise SystemExit(main())
