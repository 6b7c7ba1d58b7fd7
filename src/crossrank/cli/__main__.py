from crossrank.cli import main

raise SystemExit(main())
