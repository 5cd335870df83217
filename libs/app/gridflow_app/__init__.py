"""The application: the composition root above the services (embedded default, the `gridflow`
command, scenario replay and the wiring of all five services). Nothing below imports it."""
