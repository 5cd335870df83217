"""Doubles of the systems Gridflow talks to (department systems over HTTP, a GeoReport v2
server) and the contract suite's harnesses for the adapters Gridflow ships."""
