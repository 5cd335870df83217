"""The department adapters Gridflow ships, one module each, named in pyproject's entry-point
group ``gridflow.department_adapters``: ``amqp`` (the default), ``inbox``, ``webhook``,
``email`` and ``open311``."""
