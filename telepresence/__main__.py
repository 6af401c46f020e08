from telepresence.cli import main

raise SystemExit(main())
