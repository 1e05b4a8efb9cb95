"""paddle.hub entry points: one per model in paddlehub_cls's registry.

    import paddle
    model = paddle.hub.load("path/to/paddlehub_cls", "ResNet50", source="local", pretrained=True)
    model = paddle.hub.load("path/to/paddlehub_cls", "resnet50", source="local")  # any case
    paddle.hub.list("path/to/paddlehub_cls", source="local")       # every model name
    print(paddle.hub.help("path/to/paddlehub_cls", "ResNet50", source="local"))

Each entry point is ``NAME(pretrained=True, **kwargs)`` and takes the keyword arguments
of :func:`paddlehub_cls.load_model` (``num_classes``, ``weights``, ``in_chans``,
``features_only``, ...). The functions are generated from registry.json when this file
is imported, so a model added to the registry is an entry point without editing it.
"""

import keyword as _keyword

from paddlehub_cls import load_model as _load_model
from paddlehub_cls.registry import load_registry as _load_registry

dependencies = ["paddle"]


def _make_entrypoint(name, info):
    def entrypoint(pretrained=True, **kwargs):
        return _load_model(name, pretrained=pretrained, **kwargs)

    variants = (
        ", ".join(f"{tag}{' (default)' if tag == info.default_weights else ''}" for tag in info.weights)
        or "none"
    )
    paper = f"\n\nPaper: {info.paper['title']} <{info.paper['url']}>" if info.paper else ""
    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__module__ = __name__
    entrypoint.__doc__ = (
        f"{name} ({info.family} family), input {'x'.join(str(v) for v in info.input_size)}.{paper}\n\n"
        f"Weight variants: {variants}.\n\n"
        f"Args:\n"
        f"    pretrained: restore the default ImageNet weights (False: random init).\n"
        f"    **kwargs: passed to paddlehub_cls.load_model (num_classes, weights, in_chans,\n"
        f"        cache_dir, progress, features_only, out_indices).\n\n"
        f"Returns:\n"
        f"    The paddle.nn.Layer in eval mode."
    )
    return entrypoint


def _define_entrypoints():
    registry = _load_registry()
    names = []
    for name in registry.names():
        # paddle.hub looks entry points up with getattr(), so every registry name that is a
        # valid identifier becomes a module attribute.
        if name.isidentifier() and not _keyword.iskeyword(name) and not name.startswith("_"):
            globals()[name] = _make_entrypoint(name, registry.get(name))
            names.append(name)
    return names


_ENTRYPOINTS = _define_entrypoints()
_BY_LOWER_NAME = {name.lower(): name for name in _load_registry().names()}


def __getattr__(name):
    # Any spelling of a name, e.g. "resnet50" as torchvision's hub spells it, finds the entry
    # point; paddle.hub.list() shows each model once, as the registry spells it.
    canonical = _BY_LOWER_NAME.get(name.lower())
    if canonical is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return globals().get(canonical) or _make_entrypoint(canonical, _load_registry().get(canonical))
