# Copyright (c) cllip_mm contributors. All rights reserved.
import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every cllip_mm module so its components are registered.

    Args:
        init_default_scope (bool): Also make ``cllip_mm`` the current default scope,
            so that ``Registry.build`` looks in cllip_mm's registries first.
    """
    import cllip_mm.datasets  # noqa: F401,F403
    import cllip_mm.engine  # noqa: F401,F403
    import cllip_mm.evaluation  # noqa: F401,F403
    import cllip_mm.models  # noqa: F401,F403
    import cllip_mm.vesl  # noqa: F401,F403
    import cllip_mm.visualization  # noqa: F401,F403

    if not init_default_scope:
        return
    never_created = DefaultScope.get_current_instance() is None \
        or not DefaultScope.check_instance_created('cllip_mm')
    if never_created:
        DefaultScope.get_instance('cllip_mm', scope_name='cllip_mm')
        return
    current_scope = DefaultScope.get_current_instance()
    if current_scope.scope_name != 'cllip_mm':
        warnings.warn('The current default scope '
                      f'"{current_scope.scope_name}" is not "cllip_mm", '
                      '`register_all_modules` will force the current'
                      'default scope to be "cllip_mm". If this is not '
                      'expected, please set `init_default_scope=False`.')
        # avoid name conflict
        new_instance_name = f'cllip_mm-{datetime.datetime.now()}'
        DefaultScope.get_instance(new_instance_name, scope_name='cllip_mm')
