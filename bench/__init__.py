"""A short alias for the checkout: ``python -m bench ...`` is ``python -m libsrv_bench ...``.

Only in a checkout of the kit (it is not installed, so it cannot collide with another ``bench``);
installed elsewhere, use ``python -m libsrv_bench`` or the ``libsrv-bench`` command.
"""
