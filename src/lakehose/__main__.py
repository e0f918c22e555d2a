from lakehose.cli import main

raise SystemExit(main())
