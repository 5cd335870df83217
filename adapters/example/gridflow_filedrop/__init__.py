"""filedrop: an example Gridflow department adapter, packaged on its own (README.md)."""

from gridflow_filedrop.adapter import FiledropAdapter, FiledropOptions

__all__ = ["FiledropAdapter", "FiledropOptions"]
