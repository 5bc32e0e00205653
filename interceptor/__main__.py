"""``python -m interceptor`` runs the same CLI as the ``interceptor`` console script."""

from interceptor.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
