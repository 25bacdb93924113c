"""The PyInstaller entry point: the same `crossledger` command as the installed console script."""

from app.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
