"""Why a stored payload cannot be decoded (both are ``ValueError``; a corrupt payload raises a plain one)."""

__all__ = ["ModelMismatchError", "UnknownCodecError"]


class UnknownCodecError(ValueError):
    """The payload's codec id is not registered in this process."""


class ModelMismatchError(ValueError):
    """The payload names a model the codec cannot use (missing, unexpected or unknown model id)."""
