"""``python -m deepgen`` and the ``deepgen`` command: the command line, imported inside a
guard so that a Ctrl-C while torch is still loading ends with one line, not a traceback."""

import sys


def run() -> int:
    """Import and run the command line (:func:`deepgen.cli.main`); returns its exit code."""
    try:
        from .cli import main
    except KeyboardInterrupt:
        print("deepgen: interrupted", file=sys.stderr)
        return 130
    return main()


if __name__ == "__main__":
    sys.exit(run())
