"""LeadBridge: a self-hosted hub that joins a company's marketing data to its CRM."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
