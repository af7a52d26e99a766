"""Every public class (or function) that cllip_mm registers has its own docstring.

A docstring written after a class attribute is a plain string statement, not
``__doc__``; this finds it, in cllip_mm's registries and in mmdet's (the mmdet plugins).
"""
import inspect

from mmengine.registry import Registry

from cllip_mm.utils import register_all_modules


def registered_cllip_objects():
    """(registry name, registered name, object) of everything cllip_mm code registered."""
    import mmdet.registry

    import cllip_mm.mmdet_plugins  # noqa: F401  (registers into mmdet's registries)
    register_all_modules(init_default_scope=False)
    registries = {id(r): r for module in (cllip_mm.registry, mmdet.registry)
                  for r in vars(module).values() if isinstance(r, Registry)}
    for registry in registries.values():
        for name, obj in registry.module_dict.items():
            if getattr(obj, '__module__', '').startswith('cllip_mm') and not name.startswith('_'):
                yield registry.name, name, obj


def own_docstring(obj) -> str:
    """``obj``'s own docstring (a class does not count its base class's)."""
    doc = obj.__dict__.get('__doc__') if inspect.isclass(obj) else obj.__doc__
    return (doc or '').strip()


def test_every_registered_public_class_has_a_docstring():
    found = list(registered_cllip_objects())
    names = {name for _, name, _ in found}
    # The walk reaches the models, the mmdet plugins and the engine parts.
    assert {'CLOC', 'Prompter', 'GroundingHead', 'ClocViT', 'ClocRegionClassifier',
            'ResumableIterBasedTrainLoop'} <= names
    missing = sorted(f'{registry}: {name} ({obj.__module__})' for registry, name, obj in found
                     if not own_docstring(obj))
    assert missing == []


def test_own_docstring_ignores_inherited_and_misplaced_ones():
    class Base:
        """Base."""

    class Misplaced(Base):
        KINDS = ('a', )
        """Written after an attribute: not the class docstring."""

    assert own_docstring(Base) == 'Base.'
    assert Misplaced.__doc__ is None and own_docstring(Misplaced) == ''
