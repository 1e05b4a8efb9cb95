"""``python -m paddlehub_cls``: the same CLI as the ``paddlehub-cls`` console script."""

from paddlehub_cls.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
